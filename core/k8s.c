/* k8s: field errors, the 422 Status, apimachinery's name validators,
 * timestamps and UIDs.
 *
 * Wording follows k8s.io/apimachinery/pkg/util/validation and
 * .../validation/field: a cause message is "<Type>[: <value>][: <detail>]",
 * the value printed as Go's %q (strings) or %v (numbers, booleans), left out
 * for Required, Forbidden and TooLong.  Values longer than VALUE_MAX bytes are
 * cut short in messages so that a hostile document cannot inflate the
 * answer. */
#include "k8s.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "util.h"

#define VALUE_MAX 4096

/* jansson's object iterator takes a non-const pointer although it only
 * reads; this is the one place that says so. */
static json_t *mut(const json_t *j)
{
	return (json_t *)(uintptr_t)j;
}

static const struct {
	const char *reason, *text;
} field_types[] = {
    [K8S_FIELD_REQUIRED] = {"FieldValueRequired", "Required value"},
    [K8S_FIELD_INVALID] = {"FieldValueInvalid", "Invalid value"},
    [K8S_FIELD_DUPLICATE] = {"FieldValueDuplicate", "Duplicate value"},
    [K8S_FIELD_NOT_SUPPORTED] = {"FieldValueNotSupported", "Unsupported value"},
    [K8S_FIELD_FORBIDDEN] = {"FieldValueForbidden", "Forbidden"},
    [K8S_FIELD_TOO_LONG] = {"FieldValueTooLong", "Too long"},
    [K8S_FIELD_TOO_MANY] = {"FieldValueTooMany", "Too many"},
    [K8S_FIELD_NOT_FOUND] = {"FieldValueNotFound", "Not found"},
};

const char *k8s_field_type_reason(enum k8s_field_type t)
{
	if ((unsigned)t >= sizeof field_types / sizeof field_types[0])
		return "FieldValueInvalid";
	return field_types[t].reason;
}

void k8s_field_errors_init(struct k8s_field_errors *fe)
{
	memset(fe, 0, sizeof *fe);
}

void k8s_field_errors_fini(struct k8s_field_errors *fe)
{
	for (size_t i = 0; i < fe->n; i++) {
		free(fe->v[i].field);
		free(fe->v[i].message);
	}
	free(fe->v);
	k8s_field_errors_init(fe);
}

/* Length of the valid UTF-8 sequence at `p` (at most `n` bytes), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (p[0] >= 0xf8 || len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Go's strconv.Quote, close enough: escapes quotes, backslashes, control
 * bytes and invalid UTF-8; passes valid UTF-8 through. */
static void quote_into(struct buf *b, const char *s, size_t n)
{
	static const char esc[] = "\a\b\f\n\r\t\v";
	static const char letter[] = "abfnrtv";
	buf_adds(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *x = c ? strchr(esc, c) : NULL;
		size_t u;
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (x)
			buf_printf(b, "\\%c", letter[x - esc]);
		else if (c >= 0x20 && c < 0x7f)
			buf_add(b, &s[i], 1);
		else if (c >= 0x80 && (u = utf8_len((const unsigned char *)s + i, n - i)) > 0) {
			buf_add(b, &s[i], u);
			i += u - 1;
		} else
			buf_printf(b, "\\x%02x", c);
	}
	buf_adds(b, "\"");
}

char *k8s_quote(const char *s)
{
	struct buf b;
	buf_init(&b);
	quote_into(&b, s, strlen(s));
	return buf_steal(&b, NULL);
}

/* Appends ": <value>" the way Go's %v/%q prints it; returns 0 when the value
 * is left out (NULL, object, array). */
static int add_value(struct buf *b, const json_t *v)
{
	if (!v || json_is_object(v) || json_is_array(v))
		return 0;
	buf_adds(b, ": ");
	if (json_is_string(v)) {
		size_t n = json_string_length(v);
		quote_into(b, json_string_value(v), n > VALUE_MAX ? VALUE_MAX : n);
		if (n > VALUE_MAX)
			buf_adds(b, "...");
	} else if (json_is_integer(v)) {
		buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		buf_printf(b, "%g", json_real_value(v));
	} else {
		buf_adds(b, json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
	}
	return 1;
}

static int prints_value(enum k8s_field_type t)
{
	return t != K8S_FIELD_REQUIRED && t != K8S_FIELD_FORBIDDEN && t != K8S_FIELD_TOO_LONG;
}

void k8s_field_error_add(struct k8s_field_errors *fe, enum k8s_field_type type, const char *field,
                         const json_t *value, const char *detail)
{
	if (fe->n >= K8S_FIELD_ERRORS_MAX) {
		fe->dropped++;
		return;
	}
	if ((unsigned)type >= sizeof field_types / sizeof field_types[0])
		type = K8S_FIELD_INVALID;
	struct buf b;
	buf_init(&b);
	buf_adds(&b, field_types[type].text);
	if (prints_value(type))
		add_value(&b, value);
	if (detail && *detail)
		buf_printf(&b, ": %s", detail);
	if (fe->n == fe->cap) {
		fe->cap = fe->cap ? fe->cap * 2 : 8;
		fe->v = xrealloc(fe->v, fe->cap * sizeof *fe->v);
	}
	fe->v[fe->n].type = type;
	fe->v[fe->n].field = xstrdup(field ? field : "");
	fe->v[fe->n].message = buf_steal(&b, NULL);
	fe->n++;
}

void k8s_fe_required(struct k8s_field_errors *fe, const char *field, const char *detail)
{
	k8s_field_error_add(fe, K8S_FIELD_REQUIRED, field, NULL, detail);
}

void k8s_fe_forbidden(struct k8s_field_errors *fe, const char *field, const char *detail)
{
	k8s_field_error_add(fe, K8S_FIELD_FORBIDDEN, field, NULL, detail);
}

void k8s_fe_invalid(struct k8s_field_errors *fe, const char *field, const json_t *value,
                    const char *detail)
{
	k8s_field_error_add(fe, K8S_FIELD_INVALID, field, value, detail);
}

/* Adds an error whose value is the string `value`. */
static void add_str(struct k8s_field_errors *fe, enum k8s_field_type type, const char *field,
                    const char *value, const char *detail)
{
	json_t *v = json_string_nocheck(value ? value : "");
	k8s_field_error_add(fe, type, field, v, detail);
	json_decref(v);
}

void k8s_fe_invalid_str(struct k8s_field_errors *fe, const char *field, const char *value,
                        const char *detail)
{
	add_str(fe, K8S_FIELD_INVALID, field, value, detail);
}

void k8s_fe_invalid_int(struct k8s_field_errors *fe, const char *field, int64_t value,
                        const char *detail)
{
	json_t *v = json_integer(value);
	k8s_field_error_add(fe, K8S_FIELD_INVALID, field, v, detail);
	json_decref(v);
}

void k8s_fe_duplicate_str(struct k8s_field_errors *fe, const char *field, const char *value)
{
	add_str(fe, K8S_FIELD_DUPLICATE, field, value, NULL);
}

void k8s_fe_not_found_str(struct k8s_field_errors *fe, const char *field, const char *value)
{
	add_str(fe, K8S_FIELD_NOT_FOUND, field, value, NULL);
}

void k8s_fe_not_supported_str(struct k8s_field_errors *fe, const char *field, const char *value,
                              const char *const *supported)
{
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; supported && supported[i]; i++) {
		buf_adds(&b, i ? ", " : "supported values: ");
		quote_into(&b, supported[i], strlen(supported[i]));
	}
	add_str(fe, K8S_FIELD_NOT_SUPPORTED, field, value, b.data);
	buf_fini(&b);
}

void k8s_fe_too_long(struct k8s_field_errors *fe, const char *field, size_t max_bytes)
{
	char detail[64];
	snprintf(detail, sizeof detail, "may not be more than %zu %s", max_bytes,
	         max_bytes == 1 ? "byte" : "bytes");
	k8s_field_error_add(fe, K8S_FIELD_TOO_LONG, field, NULL, detail);
}

void k8s_fe_too_many(struct k8s_field_errors *fe, const char *field, size_t actual, size_t max)
{
	char detail[64];
	snprintf(detail, sizeof detail, "must have at most %zu %s", max,
	         max == 1 ? "item" : "items");
	json_t *v = json_integer((json_int_t)actual);
	k8s_field_error_add(fe, K8S_FIELD_TOO_MANY, field, v, detail);
	json_decref(v);
}

char *k8s_path(const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	buf_init(&b);
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	buf_reserve(&b, (size_t)(n < 0 ? 0 : n) + 1);
	va_start(ap, fmt);
	vsnprintf(b.data, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
	va_end(ap);
	return b.data;
}

/* "<field>: <message>" of cause i, as Go's field.Error.Error() prints it. */
static char *cause_text(const struct k8s_field_error *c)
{
	return xasprintf("%s: %s", c->field, c->message);
}

/* The aggregate text: one cause bare, several in brackets, each distinct
 * text once (utilerrors.NewAggregate after ErrorList.ToAggregate). */
static char *aggregate(const struct k8s_field_errors *fe)
{
	struct buf b;
	size_t shown = 0;
	char **texts = xcalloc(fe->n, sizeof *texts);
	buf_init(&b);
	for (size_t i = 0; i < fe->n; i++) {
		texts[i] = cause_text(&fe->v[i]);
		size_t j = 0;
		while (j < i && strcmp(texts[j], texts[i]) != 0)
			j++;
		if (j < i)
			continue;
		buf_adds(&b, shown++ ? ", " : "");
		buf_adds(&b, texts[i]);
	}
	for (size_t i = 0; i < fe->n; i++)
		free(texts[i]);
	free(texts);
	char *inner = buf_steal(&b, NULL);
	if (shown <= 1)
		return inner;
	char *out = xasprintf("[%s]", inner);
	free(inner);
	return out;
}

static json_t *causes_json(const struct k8s_field_errors *fe)
{
	json_t *a = json_array();
	for (size_t i = 0; i < fe->n; i++) {
		json_t *c = json_object();
		json_object_set_new(c, "reason", json_string(k8s_field_type_reason(fe->v[i].type)));
		json_object_set_new(c, "message", json_string(fe->v[i].message));
		if (fe->v[i].field[0])
			json_object_set_new(c, "field", json_string(fe->v[i].field));
		json_array_append_new(a, c);
	}
	return a;
}

json_t *k8s_invalid_status(const char *kind, const char *name, const struct k8s_field_errors *fe)
{
	cleanup_free char *qname = k8s_quote(name ? name : "");
	cleanup_free char *agg = fe->n ? aggregate(fe) : NULL;
	cleanup_free char *msg = agg ? xasprintf("%s %s is invalid: %s", kind, qname, agg)
	                             : xasprintf("%s %s is invalid", kind, qname);
	json_t *details = json_object();
	if (name && *name)
		json_object_set_new(details, "name", json_string(name));
	json_object_set_new(details, "kind", json_string(kind));
	json_object_set_new(details, "causes", causes_json(fe));

	json_t *st = json_object();
	json_object_set_new(st, "kind", json_string("Status"));
	json_object_set_new(st, "apiVersion", json_string("v1"));
	json_object_set_new(st, "metadata", json_object());
	json_object_set_new(st, "status", json_string("Failure"));
	json_object_set_new(st, "message", json_string(msg));
	json_object_set_new(st, "reason", json_string("Invalid"));
	json_object_set_new(st, "details", details);
	json_object_set_new(st, "code", json_integer(422));
	return st;
}

/* ---- name validators ---------------------------------------------------- */

#define LABEL_FMT "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
#define LABEL_MSG                                                                                  \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "   \
	"and must start and end with an alphanumeric character"
#define SUBDOMAIN_FMT LABEL_FMT "(\\." LABEL_FMT ")*"
#define SUBDOMAIN_MSG                                                                              \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "  \
	"or '.', and must start and end with an alphanumeric character"
#define QNAME_FMT "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define QNAME_MSG                                                                                  \
	"must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "   \
	"an "                                                                                      \
	"alphanumeric character"
#define LABEL_VALUE_MSG                                                                            \
	"a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "   \
	"or "                                                                                      \
	"'.', and must start and end with an alphanumeric character"

static int is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* Matches LABEL_FMT over s[0..n), ignoring length limits. */
static bool label_shape(const char *s, size_t n)
{
	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool subdomain_shape(const char *s)
{
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);
		if (!label_shape(s, n))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

/* Matches QNAME_FMT over s[0..n). */
static bool qname_shape(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("-_.", s[i]))
			return false;
	return true;
}

bool k8s_is_dns1123_label(const char *s)
{
	size_t n = strlen(s);
	return n <= 63 && label_shape(s, n);
}

bool k8s_is_dns1123_subdomain(const char *s)
{
	return strlen(s) <= 253 && subdomain_shape(s);
}

static void max_len(struct k8s_field_errors *fe, const char *field, const char *s,
                    const char *prefix, size_t max)
{
	char msg[96];
	snprintf(msg, sizeof msg, "%smust be no more than %zu characters", prefix, max);
	k8s_fe_invalid_str(fe, field, s, msg);
}

void k8s_validate_dns1123_label(struct k8s_field_errors *fe, const char *field, const char *s)
{
	size_t n = strlen(s);
	if (n > 63)
		max_len(fe, field, s, "", 63);
	if (label_shape(s, n))
		return;
	if (subdomain_shape(s))
		k8s_fe_invalid_str(fe, field, s, "must not contain dots");
	else
		k8s_fe_invalid_str(fe, field, s,
		                   LABEL_MSG " (e.g. 'my-name',  or '123-abc', regex used for "
		                             "validation is '" LABEL_FMT "')");
}

/* Adds the subdomain problems of `s`, each message prefixed (for the prefix
 * part of a qualified name); `shown` is the value printed. */
static void subdomain_errors(struct k8s_field_errors *fe, const char *field, const char *s,
                             const char *shown, const char *prefix)
{
	if (strlen(s) > 253)
		max_len(fe, field, shown, prefix, 253);
	if (!subdomain_shape(s)) {
		cleanup_free char *msg = xasprintf("%s" SUBDOMAIN_MSG " (e.g. 'example.com', regex "
		                                   "used for validation is '" SUBDOMAIN_FMT "')",
		                                   prefix);
		k8s_fe_invalid_str(fe, field, shown, msg);
	}
}

void k8s_validate_dns1123_subdomain(struct k8s_field_errors *fe, const char *field, const char *s)
{
	subdomain_errors(fe, field, s, s, "");
}

#define QNAME_REGEX_ERR                                                                            \
	QNAME_MSG " (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "   \
	          "'" QNAME_FMT "')"

/* IsQualifiedName of `s`, printing `shown` as the value (annotation keys are
 * checked lower-cased but reported as written). */
static void qualified_name(struct k8s_field_errors *fe, const char *field, const char *s,
                           const char *shown)
{
	const char *slash = strchr(s, '/');
	const char *name = s;
	if (slash && strchr(slash + 1, '/')) {
		k8s_fe_invalid_str(fe, field, shown,
		                   "a qualified name " QNAME_REGEX_ERR
		                   " with an optional DNS subdomain prefix and '/' (e.g. "
		                   "'example.com/MyName')");
		return;
	}
	if (slash) {
		cleanup_free char *prefix = xstrndup(s, (size_t)(slash - s));
		if (!*prefix)
			k8s_fe_invalid_str(fe, field, shown, "prefix part must be non-empty");
		else
			subdomain_errors(fe, field, prefix, shown, "prefix part ");
		name = slash + 1;
	}
	size_t n = strlen(name);
	if (n == 0)
		k8s_fe_invalid_str(fe, field, shown, "name part must be non-empty");
	else if (n > 63)
		max_len(fe, field, shown, "name part ", 63);
	if (!qname_shape(name, n))
		k8s_fe_invalid_str(fe, field, shown, "name part " QNAME_REGEX_ERR);
}

void k8s_validate_qualified_name(struct k8s_field_errors *fe, const char *field, const char *s)
{
	qualified_name(fe, field, s, s);
}

void k8s_validate_label_value(struct k8s_field_errors *fe, const char *field, const char *s)
{
	size_t n = strlen(s);
	if (n > 63)
		max_len(fe, field, s, "", 63);
	if (n > 0 && !qname_shape(s, n))
		k8s_fe_invalid_str(fe, field, s,
		                   LABEL_VALUE_MSG " (e.g. 'MyValue',  or 'my_value',  or '12345', "
		                                   "regex used for validation is '(" QNAME_FMT
		                                   ")?')");
}

/* Checks that `m` is null or an object of strings; 1 when there is something
 * to look at. */
static int string_map(struct k8s_field_errors *fe, const char *field, const json_t *m)
{
	if (!m || json_is_null(m))
		return 0;
	if (!json_is_object(m)) {
		k8s_fe_invalid(fe, field, m, "must be an object of strings");
		return 0;
	}
	const char *k;
	json_t *v;
	json_object_foreach(mut(m), k, v)
	{
		if (!json_is_string(v)) {
			cleanup_free char *p = k8s_path("%s[%s]", field, k);
			k8s_fe_invalid(fe, p, v, "must be a string");
		}
	}
	return 1;
}

void k8s_validate_labels(struct k8s_field_errors *fe, const char *field, const json_t *labels)
{
	if (!string_map(fe, field, labels))
		return;
	const char *k;
	json_t *v;
	json_object_foreach(mut(labels), k, v)
	{
		k8s_validate_qualified_name(fe, field, k);
		if (json_is_string(v))
			k8s_validate_label_value(fe, field, json_string_value(v));
	}
}

void k8s_validate_annotations(struct k8s_field_errors *fe, const char *field,
                              const json_t *annotations)
{
	if (!string_map(fe, field, annotations))
		return;
	const char *k;
	json_t *v;
	size_t total = 0;
	json_object_foreach(mut(annotations), k, v)
	{
		cleanup_free char *lower = xstrdup(k);
		for (char *p = lower; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		qualified_name(fe, field, lower, k);
		total += strlen(k) + (json_is_string(v) ? json_string_length(v) : 0);
	}
	if (total > K8S_ANNOTATIONS_MAX)
		k8s_fe_too_long(fe, field, K8S_ANNOTATIONS_MAX);
}

/* ---- time and identity -------------------------------------------------- */

void k8s_now_rfc3339(char buf[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Random bytes for uids (not secrets), drawn from OpenSSL a pool at a time:
 * one RAND_bytes call per UID_POOL / 16 uids instead of one per uid.  Per
 * thread; a forked child starts from an empty pool, so that it never hands
 * out its parent's uids. */
#define UID_POOL 512
static __thread unsigned char uid_pool[UID_POOL];
static __thread size_t uid_left;
static pthread_once_t uid_once = PTHREAD_ONCE_INIT;

static void uid_forked(void)
{
	uid_left = 0;
}
static void uid_init(void)
{
	pthread_atfork(NULL, NULL, uid_forked);
}

int k8s_new_uid(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	out[0] = '\0';
	pthread_once(&uid_once, uid_init);
	if (uid_left < sizeof b) {
		if (RAND_bytes(uid_pool, sizeof uid_pool) != 1)
			return ERR_CRYPTO;
		uid_left = sizeof uid_pool;
	}
	uid_left -= sizeof b;
	memcpy(b, uid_pool + uid_left, sizeof b);
	/* RFC 9562 version 7: the first 48 bits are the Unix time in ms, so
	 * that new uids land at the end of the store's uid index (one page
	 * written per commit, not one per uid); 74 bits stay random. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	char *p = out;
	for (size_t i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
	return 0;
}
