/* selector: Kubernetes label selectors (`app=web,tier!=db,env in (a,b),
 * !legacy,gpu`) and field selectors (`metadata.name=x,status.phase!=Failed`)
 * parsed once and matched against JSON objects.  A label selector looks at
 * metadata.labels; a field selector at dotted paths into the object. */
#ifndef COCOD_SELECTOR_H
#define COCOD_SELECTOR_H

#include <jansson.h>

#include "err.h"

typedef struct selector selector;

/* Parses a label selector; NULL or "" selects everything.  ERR_BAD_REQUEST
 * with a message naming the bad term. */
int selector_parse_labels(const char *text, selector **out, struct err *e);

/* Parses a field selector (=, ==, != only); `allowed` is a NULL-terminated
 * list of supported field paths; others are refused as Kubernetes does
 * ("field label not supported: spec.foo"). */
int selector_parse_fields(const char *text, const char *const *allowed, selector **out,
			  struct err *e);

/* True when `obj` matches (a NULL selector matches everything). */
int selector_matches(const selector *s, const json_t *obj);

/* The value a field selector requires for `path` with `=`, if any (lets
 * callers turn metadata.name=x into a direct lookup). */
const char *selector_required(const selector *s, const char *path);

void selector_free(selector *s);

#endif
