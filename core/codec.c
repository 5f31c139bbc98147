/* codec: JSON and YAML bodies to and from json_t.  JSON goes through jansson
 * after a pre-scan that enforces the depth and node bounds without recursion;
 * YAML goes through libyaml's event parser into an explicit stack of at most
 * CODEC_MAX_DEPTH frames, resolving plain scalars with the YAML 1.2 core
 * schema, deep-copying aliases under the same node budget (no billion
 * laughs) and rejecting what JSON cannot hold: non-string keys, duplicate
 * keys, .inf/.nan, NUL in strings, unknown tags, merge keys.  The YAML
 * emitter is libyaml's, fed with a style per scalar chosen by the same
 * resolver, so that what it writes reads back as the value it was given. */
#include "codec.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "log.h"

#define JSON_TYPE "application/json"
#define YAML_TYPE "application/yaml"

enum fmt { FMT_SNIFF, FMT_JSON, FMT_YAML };
enum mode { ONE_OBJECT, ONE_ANY, ALL };

/* ---- media types ---------------------------------------------------- */

static const struct {
	const char *type;
	enum fmt fmt;
} media_types[] = {
    {"application/json", FMT_JSON},
    {"application/merge-patch+json", FMT_JSON},
    {"application/strategic-merge-patch+json", FMT_JSON},
    {"application/json-patch+json", FMT_JSON},
    {"application/yaml", FMT_YAML},
    {"application/x-yaml", FMT_YAML},
    {"text/yaml", FMT_YAML},
    {"application/apply-patch+yaml", FMT_YAML},
};

/* The media type of one header item (`s`, `n` bytes) without parameters,
 * trimmed and lowercased into `out` (truncated to `size` - 1). */
static void media_base(const char *s, size_t n, char *out, size_t size)
{
	const char *semi = memchr(s, ';', n);
	if (semi)
		n = (size_t)(semi - s);
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n >= size)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
}

static int content_fmt(const char *content_type, enum fmt *fmt, struct err *e)
{
	char base[128];
	*fmt = FMT_SNIFF;
	if (!content_type)
		return 0;
	media_base(content_type, strlen(content_type), base, sizeof base);
	if (!base[0])
		return 0;
	for (size_t i = 0; i < sizeof media_types / sizeof media_types[0]; i++)
		if (strcmp(base, media_types[i].type) == 0) {
			*fmt = media_types[i].fmt;
			return 0;
		}
	return err_set(e, ERR_UNSUPPORTED_MEDIA,
	               "unsupported media type \"%s\"; use application/json or application/yaml",
	               base);
}

/* ---- positions ------------------------------------------------------ */

/* Line and column (1-based; columns count UTF-8 characters, as jansson's
 * do) of the byte at `off`. */
static void pos_at(const char *s, size_t len, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 0;
	for (size_t i = 0; i <= off && i < len; i++) {
		if (s[i] == '\n' && i < off) {
			(*line)++;
			*col = 0;
		} else if (((unsigned char)s[i] & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

static const char *type_name(const json_t *v)
{
	if (!v)
		return "null";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

/* ---- JSON ------------------------------------------------------------ */

static int too_deep(struct err *e, size_t line, size_t col)
{
	return err_set(e, ERR_BAD_REQUEST, "nesting deeper than %d levels at line %zu, column %zu",
	               CODEC_MAX_DEPTH, line, col);
}

static int too_many(struct err *e, size_t line, size_t col)
{
	return err_set(e, ERR_BAD_REQUEST, "more than %d values at line %zu, column %zu",
	               CODEC_MAX_NODES, line, col);
}

/* Enforces depth and node bounds before jansson sees the text: strings
 * (keys included), literals and containers each count as a node.  Invalid
 * JSON is left for jansson to report. */
static int json_prescan(const char *s, size_t len, struct err *e)
{
	size_t depth = 0, nodes = 0, line = 1, col = 0;
	int in_str = 0, esc = 0, in_lit = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			line++, col = 0;
		else if ((c & 0xC0) != 0x80)
			col++;
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		int lit = isalnum(c) || c == '-' || c == '+' || c == '.';
		int starts = c == '"' || c == '[' || c == '{' || (lit && !in_lit);
		in_lit = lit;
		if (starts && ++nodes > CODEC_MAX_NODES)
			return too_many(e, line, col);
		if (c == '"')
			in_str = 1;
		else if ((c == '[' || c == '{') && ++depth > CODEC_MAX_DEPTH)
			return too_deep(e, line, col);
		else if ((c == ']' || c == '}') && depth)
			depth--;
	}
	return 0;
}

/* Reports a jansson error; (line0, col0) is where the parsed slice began. */
static int json_fail(struct err *e, const json_error_t *je, size_t line0, size_t col0)
{
	size_t line = je->line > 0 ? (size_t)je->line : 1;
	size_t col = je->column > 0 ? (size_t)je->column : 1;
	if (line == 1)
		col += col0 - 1;
	line += line0 - 1;
	return err_set(e, ERR_BAD_REQUEST, "invalid JSON at line %zu, column %zu: %s", line, col,
	               je->text);
}

static int json_one(const char *data, size_t len, json_t **out, struct err *e)
{
	json_error_t je;
	int rc;
	if ((rc = json_prescan(data, len, e)) < 0)
		return rc;
	json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!v)
		return json_fail(e, &je, 1, 1);
	*out = v;
	return 0;
}

static size_t skip_space(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	return i;
}

/* Concatenated JSON values, each an object (null is skipped), appended to
 * the array `all`. */
static int json_all(const char *data, size_t len, json_t *all, struct err *e)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK;
	json_error_t je;
	int rc;
	if ((rc = json_prescan(data, len, e)) < 0)
		return rc;
	for (size_t off = skip_space(data, len, 0), n = 1; off < len;
	     off = skip_space(data, len, off), n++) {
		size_t line0, col0;
		json_t *v = json_loadb(data + off, len - off, flags, &je);
		if (!v) {
			pos_at(data, len, off, &line0, &col0);
			return json_fail(e, &je, line0, col0);
		}
		off += (size_t)je.position;
		if (json_is_null(v))
			continue;
		if (!json_is_object(v)) {
			const char *t = type_name(v);
			json_decref(v);
			return err_set(e, ERR_BAD_REQUEST,
			               "document %zu: expected an object, got %s", n, t);
		}
		json_array_append_new(all, v);
	}
	return 0;
}

/* ---- YAML 1.2 core schema ------------------------------------------- */

enum plain { P_STR, P_NULL, P_BOOL, P_INT, P_FLOAT, P_INFNAN };

static int word_in(const char *s, size_t n, const char *const *words)
{
	for (; *words; words++)
		if (strlen(*words) == n && memcmp(s, *words, n) == 0)
			return 1;
	return 0;
}

static const char *const null_words[] = {"null", "Null", "NULL", "~", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const infnan_words[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                           "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                           ".NaN",  ".NAN",  NULL};

static size_t span(const char *s, size_t n, size_t i, const char *set)
{
	size_t start = i;
	while (i < n && s[i] && strchr(set, s[i]))
		i++;
	return i - start;
}

#define DIGITS "0123456789"

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
static int is_int(const char *s, size_t n)
{
	if (n > 2 && s[0] == '0' && s[1] == 'o')
		return span(s, n, 2, "01234567") == n - 2;
	if (n > 2 && s[0] == '0' && s[1] == 'x')
		return span(s, n, 2, DIGITS "abcdefABCDEF") == n - 2;
	size_t i = n && (s[0] == '-' || s[0] == '+');
	return i < n && span(s, n, i, DIGITS) == n - i;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )? */
static int is_float(const char *s, size_t n)
{
	size_t i = n && (s[0] == '-' || s[0] == '+');
	size_t whole = span(s, n, i, DIGITS), frac = 0;
	i += whole;
	int dot = i < n && s[i] == '.';
	if (dot) {
		frac = span(s, n, i + 1, DIGITS);
		i += 1 + frac;
	}
	if (whole == 0 && frac == 0)
		return 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		size_t exp = span(s, n, i, DIGITS);
		if (exp == 0)
			return 0;
		i += exp;
	}
	return i == n;
}

/* What a plain (unquoted, untagged) scalar means under the core schema. */
static enum plain plain_kind(const char *s, size_t n)
{
	if (n == 0 || word_in(s, n, null_words))
		return P_NULL;
	if (word_in(s, n, true_words) || word_in(s, n, false_words))
		return P_BOOL;
	if (is_int(s, n))
		return P_INT;
	if (is_float(s, n))
		return P_FLOAT;
	if (word_in(s, n, infnan_words))
		return P_INFNAN;
	return P_STR;
}

/* Strings that a YAML 1.1 reader (kubectl, go-yaml v2) would take for
 * something else; the emitter quotes them too so its output means the same
 * to both. */
static int yaml11_special(const char *s, size_t n)
{
	static const char *const words[] = {"y",   "Y",   "yes", "Yes", "YES", "n",  "N",
	                                    "no",  "No",  "NO",  "on",  "On",  "ON", "off",
	                                    "Off", "OFF", "<<",  "=",   NULL};
	if (word_in(s, n, words))
		return 1;
	size_t i = n && (s[0] == '-' || s[0] == '+');
	if (i >= n || !(isdigit((unsigned char)s[i]) ||
	                (s[i] == '.' && i + 1 < n && isdigit((unsigned char)s[i + 1]))))
		return 0;
	return span(s, n, i, DIGITS "abcdefABCDEFxXoO_.:+-") == n - i;
}

/* ---- YAML decoding --------------------------------------------------- */

#define AT(m) (size_t)(m).line + 1, (size_t)(m).column + 1

struct anchor {
	json_t *value;
	size_t nodes; /* what one alias to it costs */
	int height;   /* container levels it adds */
};

struct frame {
	json_t *node;        /* object or array being filled */
	char *key;           /* an object's key awaiting its value */
	yaml_char_t *anchor; /* registered when the node completes */
	size_t first;        /* node count before this node */
	int height;          /* 1 + the tallest child so far */
};

struct ydec {
	yaml_parser_t p;
	const char *data;
	size_t len;
	struct frame st[CODEC_MAX_DEPTH];
	int depth;
	struct anchor *anchors; /* growable, indexed by name in anchor_index */
	size_t nanchors, anchors_cap;
	json_t *anchor_index; /* name → position in anchors, so lookups stay O(1) */
	size_t nodes;
	json_t *doc;
	yaml_mark_t doc_mark;
};

static void anchors_free(struct ydec *d)
{
	for (size_t i = 0; i < d->nanchors; i++)
		json_decref(d->anchors[i].value);
	d->nanchors = 0;
	json_object_clear(d->anchor_index);
}

/* Borrows `name` and `value`; a later anchor of the same name wins. */
static void anchor_add(struct ydec *d, const yaml_char_t *name, json_t *value, size_t nodes,
                       int height)
{
	if (d->nanchors == d->anchors_cap) {
		d->anchors_cap = d->anchors_cap ? 2 * d->anchors_cap : 16;
		d->anchors = xrealloc(d->anchors, d->anchors_cap * sizeof *d->anchors);
	}
	d->anchors[d->nanchors] = (struct anchor){json_incref(value), nodes, height};
	json_object_set_new(d->anchor_index, (const char *)name,
	                    json_integer((json_int_t)d->nanchors++));
}

static const struct anchor *anchor_find(const struct ydec *d, const char *name)
{
	json_t *i = json_object_get(d->anchor_index, name);
	return i ? &d->anchors[json_integer_value(i)] : NULL;
}

static int parse_error(struct ydec *d, struct err *e)
{
	const yaml_parser_t *p = &d->p;
	size_t line, col;
	if (p->error == YAML_MEMORY_ERROR)
		return err_set(e, ERR_INTERNAL, "out of memory parsing YAML");
	if (p->error == YAML_READER_ERROR) {
		pos_at(d->data, d->len, p->problem_offset, &line, &col);
		return err_set(e, ERR_BAD_REQUEST, "invalid YAML at line %zu, column %zu: %s", line,
		               col, p->problem ? p->problem : "unreadable input");
	}
	return err_set(e, ERR_BAD_REQUEST, "invalid YAML at line %zu, column %zu: %s%s%s%s",
	               AT(p->problem_mark), p->problem ? p->problem : "syntax error",
	               p->context ? " (" : "", p->context ? p->context : "", p->context ? ")" : "");
}

static int count(struct ydec *d, size_t n, yaml_mark_t m, struct err *e)
{
	d->nodes += n;
	return d->nodes > CODEC_MAX_NODES ? too_many(e, AT(m)) : 0;
}

static struct frame *top(struct ydec *d)
{
	return d->depth ? &d->st[d->depth - 1] : NULL;
}

static int want_key(struct ydec *d)
{
	struct frame *t = top(d);
	return t && json_is_object(t->node) && !t->key;
}

/* Places a finished value (`v`, owned) in the open container or as the
 * document. */
static int attach(struct ydec *d, json_t *v, int height)
{
	struct frame *t = top(d);
	if (!t) {
		d->doc = v;
		return 0;
	}
	if (t->height < height + 1)
		t->height = height + 1;
	if (json_is_array(t->node)) {
		json_array_append_new(t->node, v);
	} else {
		json_object_set_new(t->node, t->key, v);
		free(t->key);
		t->key = NULL;
	}
	return 0;
}

enum tag { T_NONE, T_STR, T_INT, T_FLOAT, T_BOOL, T_NULL, T_MAP, T_SEQ, T_OTHER };

static enum tag tag_of(const yaml_char_t *tag)
{
	static const struct {
		const char *name;
		enum tag tag;
	} tags[] = {
	    {"!", T_STR},
	    {YAML_STR_TAG, T_STR},
	    {YAML_INT_TAG, T_INT},
	    {YAML_FLOAT_TAG, T_FLOAT},
	    {YAML_BOOL_TAG, T_BOOL},
	    {YAML_NULL_TAG, T_NULL},
	    {YAML_MAP_TAG, T_MAP},
	    {YAML_SEQ_TAG, T_SEQ},
	};
	if (!tag)
		return T_NONE;
	for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
		if (strcmp((const char *)tag, tags[i].name) == 0)
			return tags[i].tag;
	return T_OTHER;
}

static int bad_tag(const yaml_event_t *ev, const yaml_char_t *tag, struct err *e)
{
	return err_set(e, ERR_BAD_REQUEST, "unsupported tag %s at line %zu, column %zu",
	               (const char *)tag, AT(ev->start_mark));
}

static int integer_of(const char *s, size_t n, const yaml_event_t *ev, json_t **out, struct err *e)
{
	int base =
	    n > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x') ? (s[1] == 'o' ? 8 : 16) : 10;
	errno = 0;
	long long v = strtoll(base == 10 ? s : s + 2, NULL, base);
	if (errno == ERANGE)
		return err_set(e, ERR_BAD_REQUEST,
		               "integer %.40s out of the 64-bit range at line %zu, column %zu", s,
		               AT(ev->start_mark));
	*out = json_integer(v);
	return 0;
}

static int real_of(const char *s, size_t n, const yaml_event_t *ev, json_t **out, struct err *e)
{
	double v = strtod(s, NULL);
	if (!isfinite(v))
		return err_set(e, ERR_BAD_REQUEST,
		               "number %.40s out of range at line %zu, column %zu", s,
		               AT(ev->start_mark));
	*out = json_real(v);
	return 0;
}

/* A plain scalar (or one tagged !!int, !!float, ...) as a JSON value. */
static int typed_scalar(const char *s, size_t n, enum tag tag, const yaml_event_t *ev, json_t **out,
                        struct err *e)
{
	enum plain k = plain_kind(s, n);
	if (k == P_INFNAN)
		return err_set(e, ERR_BAD_REQUEST,
		               "%s at line %zu, column %zu: JSON cannot represent infinity or NaN",
		               s, AT(ev->start_mark));
	if (tag == T_NONE || (tag == T_INT && k == P_INT) || (tag == T_BOOL && k == P_BOOL) ||
	    (tag == T_NULL && k == P_NULL) || (tag == T_FLOAT && (k == P_INT || k == P_FLOAT))) {
		if (k == P_NULL)
			*out = json_null();
		else if (k == P_BOOL)
			*out = json_boolean(word_in(s, n, true_words));
		else if (k == P_INT && tag != T_FLOAT)
			return integer_of(s, n, ev, out, e);
		else if (k == P_INT || k == P_FLOAT)
			return real_of(s, n, ev, out, e);
		else
			*out = json_stringn(s, n);
		return 0;
	}
	return err_set(e, ERR_BAD_REQUEST, "\"%.40s\" is not a valid %s at line %zu, column %zu", s,
	               (const char *)ev->data.scalar.tag, AT(ev->start_mark));
}

/* Checks what keys and values share: a known tag, no NUL byte. */
static int scalar_check(const yaml_event_t *ev, enum tag *tag, struct err *e)
{
	*tag = tag_of(ev->data.scalar.tag);
	if (*tag == T_OTHER || *tag == T_MAP || *tag == T_SEQ)
		return bad_tag(ev, ev->data.scalar.tag, e);
	if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
		return err_set(e, ERR_BAD_REQUEST,
		               "string contains a NUL character at line %zu, column %zu",
		               AT(ev->start_mark));
	return 0;
}

/* Makes `key` (owned) the pending key of the innermost object. */
static int set_key(struct ydec *d, char *key, yaml_mark_t m, struct err *e)
{
	struct frame *t = &d->st[d->depth - 1];
	if (json_object_get(t->node, key)) {
		int rc = err_set(e, ERR_BAD_REQUEST,
		                 "duplicate key \"%.60s\" at line %zu, column %zu", key, AT(m));
		free(key);
		return rc;
	}
	t->key = key;
	return 0;
}

/* A scalar key keeps its text ("1", "true"), as JSON keys are strings. */
static int on_key(struct ydec *d, const yaml_event_t *ev, struct err *e)
{
	const char *s = (const char *)ev->data.scalar.value;
	enum tag tag;
	int rc;
	if ((rc = scalar_check(ev, &tag, e)) < 0)
		return rc;
	if (tag == T_NONE && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    strcmp(s, "<<") == 0)
		return err_set(e, ERR_BAD_REQUEST,
		               "merge keys (<<) are not supported at line %zu, column %zu; "
		               "write the keys out",
		               AT(ev->start_mark));
	char *key = xstrndup(s, ev->data.scalar.length);
	if (ev->data.scalar.anchor) {
		json_t *v = json_string(key);
		anchor_add(d, ev->data.scalar.anchor, v, 1, 0);
		json_decref(v);
	}
	return set_key(d, key, ev->start_mark, e);
}

static int on_scalar(struct ydec *d, const yaml_event_t *ev, struct err *e)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	enum tag tag;
	json_t *v = NULL;
	int rc;
	if ((rc = count(d, 1, ev->start_mark, e)) < 0)
		return rc;
	if (want_key(d))
		return on_key(d, ev, e);
	if ((rc = scalar_check(ev, &tag, e)) < 0)
		return rc;
	if (tag == T_STR || (tag == T_NONE && ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE))
		v = json_stringn(s, n);
	else if ((rc = typed_scalar(s, n, tag, ev, &v, e)) < 0)
		return rc;
	if (ev->data.scalar.anchor)
		anchor_add(d, ev->data.scalar.anchor, v, 1, 0);
	return attach(d, v, 0);
}

/* An alias becomes a deep copy of its anchor's value, paid for in full
 * against the node budget before anything is copied. */
static int on_alias(struct ydec *d, const yaml_event_t *ev, struct err *e)
{
	const char *name = (const char *)ev->data.alias.anchor;
	const struct anchor *a = anchor_find(d, name);
	int rc;
	if (!a)
		return err_set(e, ERR_BAD_REQUEST,
		               "alias *%.60s at line %zu, column %zu names no earlier, complete "
		               "anchor",
		               name, AT(ev->start_mark));
	if (want_key(d) && !json_is_string(a->value))
		return err_set(e, ERR_BAD_REQUEST,
		               "mapping keys must be strings; alias *%.60s at line %zu, column "
		               "%zu is not a string",
		               name, AT(ev->start_mark));
	if (d->depth + a->height > CODEC_MAX_DEPTH)
		return too_deep(e, AT(ev->start_mark));
	if ((rc = count(d, a->nodes, ev->start_mark, e)) < 0)
		return rc;
	if (want_key(d))
		return set_key(d, xstrdup(json_string_value(a->value)), ev->start_mark, e);
	return attach(d, json_deep_copy(a->value), a->height);
}

static int on_open(struct ydec *d, const yaml_event_t *ev, int is_map, struct err *e)
{
	const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
	const yaml_char_t *anchor =
	    is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
	enum tag t = tag_of(tag);
	int rc;
	if (want_key(d))
		return err_set(e, ERR_BAD_REQUEST,
		               "mapping keys must be strings, found a %s at line %zu, column %zu",
		               is_map ? "mapping" : "sequence", AT(ev->start_mark));
	if (t != T_NONE && t != (is_map ? T_MAP : T_SEQ) && strcmp((const char *)tag, "!") != 0)
		return bad_tag(ev, tag, e);
	if (d->depth >= CODEC_MAX_DEPTH)
		return too_deep(e, AT(ev->start_mark));
	size_t first = d->nodes;
	if ((rc = count(d, 1, ev->start_mark, e)) < 0)
		return rc;
	d->st[d->depth++] = (struct frame){
	    .node = is_map ? json_object() : json_array(),
	    .anchor = anchor ? (yaml_char_t *)xstrdup((const char *)anchor) : NULL,
	    .first = first,
	    .height = 1,
	};
	return 0;
}

static int on_close(struct ydec *d)
{
	struct frame f = d->st[--d->depth];
	free(f.key);
	if (f.anchor)
		anchor_add(d, f.anchor, f.node, d->nodes - f.first, f.height);
	free(f.anchor);
	return attach(d, f.node, f.height);
}

static int on_event(struct ydec *d, const yaml_event_t *ev, struct err *e)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		anchors_free(d);
		d->doc_mark = ev->start_mark;
		return 0;
	case YAML_SCALAR_EVENT:
		return on_scalar(d, ev, e);
	case YAML_ALIAS_EVENT:
		return on_alias(d, ev, e);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		return on_open(d, ev, ev->type == YAML_MAPPING_START_EVENT, e);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		return on_close(d);
	default:
		return 0;
	}
}

/* Parses the next document into `*out` (owned by the caller); returns 1,
 * or 0 at the end of the stream, or a negative code. */
static int ydec_next(struct ydec *d, json_t **out, struct err *e)
{
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&d->p, &ev))
			return parse_error(d, e);
		yaml_event_type_t type = ev.type;
		int rc = on_event(d, &ev, e);
		yaml_event_delete(&ev);
		if (rc < 0)
			return rc;
		if (type == YAML_STREAM_END_EVENT)
			return 0;
		if (type == YAML_DOCUMENT_END_EVENT) {
			*out = d->doc ? d->doc : json_null();
			d->doc = NULL;
			return 1;
		}
	}
}

static void ydec_init(struct ydec *d, const char *data, size_t len)
{
	memset(d, 0, sizeof *d);
	d->data = data;
	d->len = len;
	d->anchor_index = json_object();
	if (!yaml_parser_initialize(&d->p))
		abort(); /* only fails on OOM */
	yaml_parser_set_input_string(&d->p, (const unsigned char *)data, len);
}

static void ydec_fini(struct ydec *d)
{
	while (d->depth) {
		struct frame *f = &d->st[--d->depth];
		json_decref(f->node);
		free(f->key);
		free(f->anchor);
	}
	anchors_free(d);
	free(d->anchors);
	json_decref(d->anchor_index);
	json_decref(d->doc);
	yaml_parser_delete(&d->p);
}

/* The one non-empty document (or null when every document is empty). */
static int yaml_one(struct ydec *d, json_t **out, struct err *e)
{
	json_t *v = NULL, *next;
	int rc;
	while ((rc = ydec_next(d, &next, e)) > 0) {
		if (json_is_null(next) && v) {
			json_decref(next);
			continue;
		}
		if (v && !json_is_null(v)) {
			json_decref(next);
			rc = err_set(e, ERR_BAD_REQUEST,
			             "a second YAML document starts at line %zu; only one document "
			             "is accepted here",
			             (size_t)d->doc_mark.line + 1);
			break;
		}
		json_decref(v);
		v = next;
	}
	if (rc == 0 && !v)
		rc = err_set(e, ERR_BAD_REQUEST, "request body holds no YAML document");
	if (rc < 0) {
		json_decref(v);
		return rc;
	}
	*out = v;
	return 0;
}

static int yaml_all(struct ydec *d, json_t *all, struct err *e)
{
	json_t *v;
	int rc;
	for (size_t n = 1; (rc = ydec_next(d, &v, e)) > 0; n++) {
		if (json_is_null(v))
			continue;
		if (!json_is_object(v)) {
			const char *t = type_name(v);
			json_decref(v);
			return err_set(e, ERR_BAD_REQUEST,
			               "document %zu (line %zu): expected an object, got %s", n,
			               (size_t)d->doc_mark.line + 1, t);
		}
		json_array_append_new(all, v);
	}
	return rc;
}

/* ---- decoding entry points ------------------------------------------ */

static int yaml_decode(const char *data, size_t len, enum mode mode, json_t **out, struct err *e)
{
	struct ydec *d = xmalloc(sizeof *d);
	json_t *v = mode == ALL ? json_array() : NULL;
	ydec_init(d, data, len);
	int rc = mode == ALL ? yaml_all(d, v, e) : yaml_one(d, &v, e);
	ydec_fini(d);
	free(d);
	if (rc < 0) {
		json_decref(v);
		return rc;
	}
	*out = v;
	return 0;
}

static int json_decode(const char *data, size_t len, enum mode mode, json_t **out, struct err *e)
{
	if (mode != ALL)
		return json_one(data, len, out, e);
	json_t *all = json_array();
	int rc = json_all(data, len, all, e);
	if (rc < 0) {
		json_decref(all);
		return rc;
	}
	*out = all;
	return 0;
}

static int decode(const char *data, size_t len, const char *content_type, enum mode mode,
                  json_t **out, struct err *e)
{
	enum fmt fmt;
	json_t *v = NULL;
	int rc;
	if ((rc = content_fmt(content_type, &fmt, e)) < 0)
		return rc;
	if (len > CODEC_MAX_BYTES)
		return err_set(e, ERR_TOO_LARGE, "request body of %zu bytes exceeds %u", len,
		               CODEC_MAX_BYTES);
	size_t first = data ? skip_space(data, len, 0) : 0;
	if (first == len && mode != ALL)
		return err_set(e, ERR_BAD_REQUEST, "request body is empty");
	if (first == len) {
		*out = json_array();
		return 0;
	}
	if (fmt == FMT_SNIFF)
		fmt = data[first] == '{' || data[first] == '[' ? FMT_JSON : FMT_YAML;
	rc = fmt == FMT_JSON ? json_decode(data, len, mode, &v, e)
	                     : yaml_decode(data, len, mode, &v, e);
	if (rc < 0)
		return rc;
	if (mode == ONE_OBJECT && !json_is_object(v)) {
		const char *t = type_name(v);
		json_decref(v);
		return err_set(e, ERR_BAD_REQUEST, "expected an object at the top level, got %s",
		               t);
	}
	*out = v;
	return 0;
}

int codec_decode(const char *data, size_t len, const char *content_type, json_t **out,
                 struct err *e)
{
	return decode(data, len, content_type, ONE_OBJECT, out, e);
}

int codec_decode_any(const char *data, size_t len, const char *content_type, json_t **out,
                     struct err *e)
{
	return decode(data, len, content_type, ONE_ANY, out, e);
}

int codec_decode_all(const char *data, size_t len, const char *content_type, json_t **out,
                     struct err *e)
{
	return decode(data, len, content_type, ALL, out, e);
}

/* ---- YAML encoding --------------------------------------------------- */

#define EMIT_MAX_DEPTH 1000 /* past this, fall back to JSON (jansson's own cap is 2048) */

static int write_out(void *data, unsigned char *buffer, size_t size)
{
	buf_add(data, buffer, size);
	return 1;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, size_t n, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	if (n > INT_MAX)
		return 0;
	return yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)n, 1, 1,
	                                    style) &&
	       yaml_emitter_emit(em, &ev);
}

/* Plain when it reads back as the same string, double-quoted when it would
 * read as null, a bool or a number (under YAML 1.2 or 1.1), a literal block
 * for multi-line text; libyaml falls back to quoting when a style cannot
 * hold the text (indicators, ": ", " #", edge spaces, control chars). */
static int emit_string(yaml_emitter_t *em, const char *s, size_t n)
{
	yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
	if (plain_kind(s, n) != P_STR || yaml11_special(s, n))
		style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	else if (memchr(s, '\n', n))
		style = YAML_LITERAL_SCALAR_STYLE;
	return emit_scalar(em, s, n, style);
}

/* The shortest text that reads back as `d`, with a '.' or exponent so it
 * stays a float. */
static void format_real(double d, char *out, size_t size)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (!strpbrk(out, ".eEn"))
		strncat(out, ".0", size - strlen(out) - 1);
}

static int emit_value(yaml_emitter_t *em, const json_t *v, int depth);

/* json_object_foreach wants a mutable object; iterating does not mutate. */
static json_t *unconst(const json_t *v)
{
	return (json_t *)(uintptr_t)v;
}

static int emit_container(yaml_emitter_t *em, const json_t *v, int depth)
{
	yaml_event_t ev;
	int is_map = json_is_object(v);
	size_t n = is_map ? json_object_size(v) : json_array_size(v);
	int ok =
	    is_map
	        ? yaml_mapping_start_event_initialize(
	              &ev, NULL, NULL, 1, n ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE)
	        : yaml_sequence_start_event_initialize(
	              &ev, NULL, NULL, 1, n ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE);
	if (!ok || !yaml_emitter_emit(em, &ev))
		return 0;
	if (is_map) {
		const char *k;
		const json_t *x;
		json_object_foreach(unconst(v), k, x)
		{
			if (!emit_string(em, k, strlen(k)) || !emit_value(em, x, depth + 1))
				return 0;
		}
	} else {
		for (size_t i = 0; i < n; i++)
			if (!emit_value(em, json_array_get(v, i), depth + 1))
				return 0;
	}
	ok = is_map ? yaml_mapping_end_event_initialize(&ev)
	            : yaml_sequence_end_event_initialize(&ev);
	return ok && yaml_emitter_emit(em, &ev);
}

/* Returns 1 on success, 0 when libyaml fails or nesting is absurd. */
static int emit_value(yaml_emitter_t *em, const json_t *v, int depth)
{
	char num[64];
	if (depth > EMIT_MAX_DEPTH)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		return emit_container(em, v, depth);
	case JSON_STRING:
		return emit_string(em, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL:
		format_real(json_real_value(v), num, sizeof num);
		return emit_scalar(em, num, strlen(num), YAML_PLAIN_SCALAR_STYLE);
	case JSON_TRUE:
		return emit_scalar(em, "true", 4, YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return emit_scalar(em, "false", 5, YAML_PLAIN_SCALAR_STYLE);
	default:
		return emit_scalar(em, "null", 4, YAML_PLAIN_SCALAR_STYLE);
	}
}

static int emit_document(const json_t *v, struct buf *out)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	if (!yaml_emitter_initialize(&em))
		return 0;
	yaml_emitter_set_output(&em, write_out, out);
	yaml_emitter_set_indent(&em, 2);
	yaml_emitter_set_width(&em, -1);
	yaml_emitter_set_unicode(&em, 1);
	int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
	         yaml_emitter_emit(&em, &ev) &&
	         yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
	         yaml_emitter_emit(&em, &ev) && emit_value(&em, v, 0) &&
	         yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
	         yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev) &&
	         yaml_emitter_flush(&em);
	yaml_emitter_delete(&em);
	return ok;
}

/* libyaml closes a document that ends in a keep-chomped block scalar with
 * "..."; at the end of the stream the marker says nothing, so drop it. */
static void drop_end_marker(struct buf *out, size_t start)
{
	static const char marker[] = "\n...\n";
	size_t n = sizeof marker - 1;
	if (out->len - start > n && memcmp(out->data + out->len - n, marker, n) == 0) {
		out->len -= n - 1;
		out->data[out->len] = '\0';
	}
}

void codec_encode_yaml(const json_t *v, struct buf *out)
{
	size_t start = out->len, n;
	if (emit_document(v, out)) {
		drop_end_marker(out, start);
		return;
	}
	/* JSON is YAML too: better than a truncated document. */
	log_warn("codec", "YAML emitter failed; writing JSON instead");
	out->len = start;
	buf_reserve(out, 0);
	char *json = codec_encode_json(v, 1, &n);
	if (json) {
		buf_add(out, json, n);
		buf_adds(out, "\n");
	}
	free(json);
}

/* ---- JSON encoding and negotiation ----------------------------------- */

/* The compact writer below produces exactly what jansson's json_dumps
 * writes with JSON_COMPACT (and JSON_SORT_KEYS when asked) — the unit tests
 * compare the two — in about a third of the time: strings are copied in
 * runs rather than a code point at a time, with no callback per token. */
#define COMPACT_MAX_DEPTH 2048

/* buf_add and a one-byte form, with the common case (room left) inline. */
static inline void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap)
		buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static inline void put1(struct buf *b, char c)
{
	if (b->len + 2 > b->cap)
		buf_reserve(b, 1);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s[0] (a byte >= 0x80), 0 if none:
 * no overlong forms, surrogates or code points past U+10FFFF, as jansson
 * requires of its strings. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len = c >= 0xc2 && c <= 0xdf   ? 2
	             : c >= 0xe0 && c <= 0xef ? 3
	             : c >= 0xf0 && c <= 0xf4 ? 4
	                                      : 0;
	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return len;
}

static int put_string(struct buf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t run = 0, i = 0;
	buf_reserve(b, n + 2);
	put1(b, '"');
	while (i < n) {
		unsigned char c = s[i];
		if (c >= 0x80) {
			size_t len = utf8_seq(s + i, n - i);
			if (!len)
				return -1;
			i += len;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		put(b, s + run, i - run);
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		size_t elen = 2;
		switch (c) {
		case '"':
			esc[1] = '"';
			break;
		case '\\':
			esc[1] = '\\';
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			elen = 6;
		}
		put(b, esc, elen);
		run = ++i;
	}
	put(b, s + run, n - run);
	put1(b, '"');
	return 0;
}

static void put_integer(struct buf *b, json_int_t v)
{
	char tmp[24], *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	do
		*--p = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	put(b, p, (size_t)(tmp + sizeof tmp - p));
}

static int add_chunk(const char *data, size_t size, void *ud)
{
	buf_add(ud, data, size);
	return 0;
}

struct key {
	const char *k;
	size_t len;
	const json_t *v;
};

/* jansson's order for JSON_SORT_KEYS: bytes, then length. */
static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	int r = memcmp(x->k, y->k, x->len < y->len ? x->len : y->len);
	return r ? r : (x->len > y->len) - (x->len < y->len);
}

static int put_value(struct buf *b, const json_t *v, int sort, int depth);

static int put_object(struct buf *b, const json_t *v, int sort, int depth)
{
	size_t n = json_object_size(v), i = 0;
	struct key small[32], *keys = n <= 32 ? small : xmalloc(n * sizeof *keys);
	for (void *it = json_object_iter(unconst(v)); it && i < n;
	     it = json_object_iter_next(unconst(v), it), i++)
		keys[i] = (struct key){json_object_iter_key(it), json_object_iter_key_len(it),
		                       json_object_iter_value(it)};
	if (sort)
		qsort(keys, i, sizeof *keys, key_cmp);
	int rc = 0;
	put1(b, '{');
	for (size_t k = 0; k < i && rc == 0; k++) {
		if (k)
			put1(b, ',');
		rc = put_string(b, keys[k].k, keys[k].len);
		if (rc == 0) {
			put1(b, ':');
			rc = put_value(b, keys[k].v, sort, depth + 1);
		}
	}
	put1(b, '}');
	if (keys != small)
		free(keys);
	return rc;
}

static int put_value(struct buf *b, const json_t *v, int sort, int depth)
{
	if (depth > COMPACT_MAX_DEPTH)
		return -1;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return put_object(b, v, sort, depth);
	case JSON_ARRAY:
		put1(b, '[');
		for (size_t i = 0, n = json_array_size(v); i < n; i++) {
			if (i)
				put1(b, ',');
			if (put_value(b, json_array_get(v, i), sort, depth + 1))
				return -1;
		}
		put1(b, ']');
		return 0;
	case JSON_STRING:
		return put_string(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		put_integer(b, json_integer_value(v));
		return 0;
	case JSON_REAL: /* rare: jansson's own formatting, to the byte */
		return json_dump_callback(v, add_chunk, b, JSON_COMPACT | JSON_ENCODE_ANY);
	case JSON_TRUE:
		put(b, "true", 4);
		return 0;
	case JSON_FALSE:
		put(b, "false", 5);
		return 0;
	default:
		put(b, "null", 4);
		return 0;
	}
}

int codec_json_compact(const json_t *v, int sort_keys, struct buf *out)
{
	size_t start = out->len;
	if (v && put_value(out, v, sort_keys, 0) == 0)
		return 0;
	out->len = start;
	buf_reserve(out, 0);
	return -1;
}

char *codec_encode_json(const json_t *v, int pretty, size_t *len)
{
	size_t flags = JSON_ENCODE_ANY | (pretty ? JSON_INDENT(4) : JSON_COMPACT);
	char *s = json_dumps(v, flags);
	if (len)
		*len = s ? strlen(s) : 0;
	return s;
}

int codec_negotiate(const char *accept, const char **type, struct err *e)
{
	static const char *const json_types[] = {"application/json", "*/*", "application/*", NULL};
	static const char *const yaml_types[] = {"application/yaml", "application/x-yaml",
	                                         "text/yaml", NULL};
	int named = 0;
	*type = JSON_TYPE;
	for (const char *p = accept; p && *p;) {
		size_t n = strcspn(p, ",");
		char base[128];
		media_base(p, n, base, sizeof base);
		named |= base[0] != '\0';
		if (word_in(base, strlen(base), json_types))
			return 0;
		if (word_in(base, strlen(base), yaml_types)) {
			*type = YAML_TYPE;
			return 0;
		}
		p += n + (p[n] == ',');
	}
	if (!named)
		return 0;
	return err_set(e, ERR_NOT_ACCEPTABLE,
	               "none of the accepted media types is available; use application/json "
	               "or application/yaml");
}

const char *codec_media_type(const char *accept)
{
	const char *type;
	codec_negotiate(accept, &type, NULL);
	return type;
}
