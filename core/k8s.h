/* k8s: what every Kubernetes object cocod serves shares — the field error
 * list that validation fills and the 422 `Status` built from it (worded as
 * the apiserver words it), the name/label/annotation validators of
 * k8s.io/apimachinery, timestamps and UIDs. */
#ifndef COCOD_K8S_H
#define COCOD_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum k8s_field_type {
	K8S_FIELD_REQUIRED,      /* "Required value" */
	K8S_FIELD_INVALID,       /* "Invalid value" */
	K8S_FIELD_DUPLICATE,     /* "Duplicate value" */
	K8S_FIELD_NOT_SUPPORTED, /* "Unsupported value" */
	K8S_FIELD_FORBIDDEN,     /* "Forbidden" */
	K8S_FIELD_TOO_LONG,      /* "Too long" */
	K8S_FIELD_TOO_MANY,      /* "Too many" */
	K8S_FIELD_NOT_FOUND,     /* "Not found" */
};

/* Kubernetes' cause reason for a type: "FieldValueRequired", ... */
const char *k8s_field_type_reason(enum k8s_field_type t);

struct k8s_field_error {
	enum k8s_field_type type;
	char *field;   /* "spec.containers[0].image" */
	char *message; /* the cause message: "Required value", "Invalid value: \"X\": ..." */
};

/* Errors in the order found.  At most K8S_FIELD_ERRORS_MAX are kept so that a
 * hostile document cannot make the answer huge; `dropped` counts the rest. */
#define K8S_FIELD_ERRORS_MAX 256
struct k8s_field_errors {
	struct k8s_field_error *v;
	size_t n, cap, dropped;
};

void k8s_field_errors_init(struct k8s_field_errors *fe);
void k8s_field_errors_fini(struct k8s_field_errors *fe);

/* Adds one error.  `value` is the offending value, formatted as Go's %v/%q
 * would (strings quoted, numbers and booleans bare); NULL, or an object or
 * array, omits it.  `detail` (may be NULL or "") follows after ": ".  Required,
 * Forbidden and TooLong never print the value, as in Kubernetes. */
void k8s_field_error_add(struct k8s_field_errors *fe, enum k8s_field_type type, const char *field,
                         const json_t *value, const char *detail);

/* Shorthands.  The *_str/_int forms take the bad value as a C value. */
void k8s_fe_required(struct k8s_field_errors *fe, const char *field, const char *detail);
void k8s_fe_forbidden(struct k8s_field_errors *fe, const char *field, const char *detail);
void k8s_fe_invalid(struct k8s_field_errors *fe, const char *field, const json_t *value,
                    const char *detail);
void k8s_fe_invalid_str(struct k8s_field_errors *fe, const char *field, const char *value,
                        const char *detail);
void k8s_fe_invalid_int(struct k8s_field_errors *fe, const char *field, int64_t value,
                        const char *detail);
void k8s_fe_duplicate_str(struct k8s_field_errors *fe, const char *field, const char *value);
void k8s_fe_not_found_str(struct k8s_field_errors *fe, const char *field, const char *value);
/* `supported` is a NULL-terminated list, printed quoted and comma-separated
 * in the given order. */
void k8s_fe_not_supported_str(struct k8s_field_errors *fe, const char *field, const char *value,
                              const char *const *supported);
/* "Too long: may not be more than N bytes". */
void k8s_fe_too_long(struct k8s_field_errors *fe, const char *field, size_t max_bytes);
/* "Too many: N: must have at most M items". */
void k8s_fe_too_many(struct k8s_field_errors *fe, const char *field, size_t actual, size_t max);

/* printf into a new heap string, for field paths:
 * `k8s_path("%s[%zu].name", base, i)`.  The caller frees it. */
char *k8s_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Go's %q of `s` appended to a malloc'd copy: "\"a\\\"b\"".  Caller frees. */
char *k8s_quote(const char *s);

/* The 422 Status the apiserver returns for `fe` (which must not be empty):
 * message "<Kind> \"<name>\" is invalid: <cause>" or, for several causes,
 * "... is invalid: [<c1>, <c2>]" (identical messages once), details with name
 * (omitted when empty), kind and every cause as {reason, message, field}.
 * Kubernetes puts the object's kind ("Pod") in details.kind.  New reference. */
json_t *k8s_invalid_status(const char *kind, const char *name, const struct k8s_field_errors *fe);

/* Validators: the bool forms answer yes/no; the k8s_validate_* forms add one
 * FieldValueInvalid per problem at `field`, each worded as Kubernetes'
 * IsDNS1123Label, IsDNS1123Subdomain, IsQualifiedName, IsValidLabelValue. */
bool k8s_is_dns1123_label(const char *s);
bool k8s_is_dns1123_subdomain(const char *s);
void k8s_validate_dns1123_label(struct k8s_field_errors *fe, const char *field, const char *s);
void k8s_validate_dns1123_subdomain(struct k8s_field_errors *fe, const char *field, const char *s);
void k8s_validate_qualified_name(struct k8s_field_errors *fe, const char *field, const char *s);
void k8s_validate_label_value(struct k8s_field_errors *fe, const char *field, const char *s);

/* metadata.labels / metadata.annotations as JSON: an object of strings
 * (anything else is a field error), keys qualified names, label values valid,
 * annotations at most K8S_ANNOTATIONS_MAX bytes of keys plus values. */
#define K8S_ANNOTATIONS_MAX (256 * 1024)
void k8s_validate_labels(struct k8s_field_errors *fe, const char *field, const json_t *labels);
void k8s_validate_annotations(struct k8s_field_errors *fe, const char *field,
                              const json_t *annotations);

/* The current UTC time as "2024-05-01T12:00:00Z". */
void k8s_now_rfc3339(char buf[32]);

/* A random version-4 UUID ("0f8fad5b-d9cb-469f-a165-70867728950e") from
 * OpenSSL's RAND_bytes.  Returns 0, or ERR_CRYPTO when the generator fails
 * (then `out` is an empty string). */
int k8s_new_uid(char out[37]);

#endif
