/* selector: a selector is a list of requirements that must all hold.  Label
 * requirements: key=value, key==value, key!=value, key in (...),
 * key notin (...), key (exists), !key (does not exist).  Field
 * requirements: path=value, path==value, path!=value, where a missing field
 * compares as "".  Input is bounded: at most 64 requirements of at most 64
 * values each. */
#include "selector.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

#define MAX_REQS 64
#define MAX_VALUES 64

enum op { OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_EXISTS, OP_NOT_EXISTS };

struct req {
	char *key;
	enum op op;
	int nvalues;
	char *values[MAX_VALUES];
};

struct selector {
	int fields; /* 1: keys are dotted paths into the object */
	int n;
	struct req r[MAX_REQS];
};

void selector_free(selector *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n; i++) {
		free(s->r[i].key);
		for (int j = 0; j < s->r[i].nvalues; j++)
			free(s->r[i].values[j]);
	}
	free(s);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A key or value token: label-ish characters only. */
static int tokchar(int c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/';
}

static char *token(const char **pp)
{
	const char *p = skip_ws(*pp), *start = p;
	while (*p && tokchar((unsigned char)*p))
		p++;
	*pp = p;
	return xstrndup(start, (size_t)(p - start));
}

static int parse_set(const char **pp, struct req *r, struct err *e)
{
	const char *p = skip_ws(*pp);
	if (*p != '(')
		return err_set(e, ERR_BAD_REQUEST, "unable to parse requirement: expected '(' after in/notin for %s", r->key);
	p++;
	for (;;) {
		if (r->nvalues == MAX_VALUES)
			return err_set(e, ERR_BAD_REQUEST, "too many values for %s (max %d)", r->key, MAX_VALUES);
		r->values[r->nvalues++] = token(&p);
		p = skip_ws(p);
		if (*p == ')')
			break;
		if (*p != ',')
			return err_set(e, ERR_BAD_REQUEST, "unable to parse requirement: expected ',' or ')' in values of %s", r->key);
		p++;
	}
	*pp = p + 1;
	return 0;
}

/* One requirement, starting at *pp; advances past it. */
static int parse_req(const char **pp, int fields, struct req *r, struct err *e)
{
	const char *p = skip_ws(*pp);
	int negated = 0;
	if (*p == '!' && !fields) {
		negated = 1;
		p++;
	}
	r->key = token(&p);
	if (!r->key[0])
		return err_set(e, ERR_BAD_REQUEST, "unable to parse requirement: missing key near \"%.40s\"", *pp);
	p = skip_ws(p);
	if (negated) {
		r->op = OP_NOT_EXISTS;
	} else if (p[0] == '!' && p[1] == '=') {
		r->op = OP_NE;
		p += 2;
	} else if (p[0] == '=') {
		r->op = OP_EQ;
		p += p[1] == '=' ? 2 : 1;
	} else if (!fields && strncmp(p, "notin", 5) == 0 && !tokchar((unsigned char)p[5])) {
		r->op = OP_NOTIN;
		p += 5;
	} else if (!fields && strncmp(p, "in", 2) == 0 && !tokchar((unsigned char)p[2])) {
		r->op = OP_IN;
		p += 2;
	} else if (!fields && (*p == ',' || *p == '\0')) {
		r->op = OP_EXISTS;
	} else {
		return err_set(e, ERR_BAD_REQUEST, "unable to parse requirement: unexpected \"%.20s\" after %s", p, r->key);
	}
	if (r->op == OP_EQ || r->op == OP_NE) {
		r->values[r->nvalues++] = token(&p);
	} else if ((r->op == OP_IN || r->op == OP_NOTIN) && parse_set(&p, r, e)) {
		return e->code;
	}
	*pp = p;
	return 0;
}

static int parse(const char *text, int fields, selector **out, struct err *e)
{
	selector *s = xcalloc(1, sizeof *s);
	s->fields = fields;
	const char *p = text ? skip_ws(text) : "";
	while (*p) {
		if (s->n == MAX_REQS) {
			selector_free(s);
			return err_set(e, ERR_BAD_REQUEST, "selector has more than %d requirements", MAX_REQS);
		}
		if (parse_req(&p, fields, &s->r[s->n++], e)) {
			selector_free(s);
			return e->code;
		}
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p) {
			selector_free(s);
			return err_set(e, ERR_BAD_REQUEST, "unable to parse selector: unexpected \"%.20s\"", p);
		}
	}
	*out = s;
	return 0;
}

int selector_parse_labels(const char *text, selector **out, struct err *e)
{
	return parse(text, 0, out, e);
}

int selector_parse_fields(const char *text, const char *const *allowed, selector **out,
			  struct err *e)
{
	if (parse(text, 1, out, e))
		return e->code;
	for (int i = 0; i < (*out)->n; i++) {
		int ok = 0;
		for (size_t k = 0; allowed && allowed[k] && !ok; k++)
			ok = strcmp(allowed[k], (*out)->r[i].key) == 0;
		if (!ok) {
			int rc = err_set(e, ERR_BAD_REQUEST, "field label not supported: %s", (*out)->r[i].key);
			selector_free(*out);
			*out = NULL;
			return rc;
		}
	}
	return 0;
}

/* The string at a dotted path ("" when absent; numbers formatted). */
static const char *field_value(const json_t *obj, const char *path, char *tmp, size_t tmplen)
{
	char part[128];
	const json_t *v = obj;
	for (const char *p = path; v && *p;) {
		size_t n = strcspn(p, ".");
		if (n >= sizeof part)
			return "";
		memcpy(part, p, n);
		part[n] = '\0';
		v = json_is_object(v) ? json_object_get(v, part) : NULL;
		p += n + (p[n] == '.');
	}
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(tmp, tmplen, "%lld", (long long)json_integer_value(v));
		return tmp;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	return "";
}

static int in_values(const struct req *r, const char *v)
{
	for (int i = 0; i < r->nvalues; i++)
		if (strcmp(r->values[i], v) == 0)
			return 1;
	return 0;
}

static int req_holds(const struct req *r, const json_t *obj, int fields)
{
	char tmp[32];
	const char *v;
	int present;
	if (fields) {
		v = field_value(obj, r->key, tmp, sizeof tmp);
		present = 1;
	} else {
		const json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");
		const json_t *lv = json_object_get(labels, r->key);
		present = json_is_string(lv);
		v = present ? json_string_value(lv) : "";
	}
	switch (r->op) {
	case OP_EQ: return present && strcmp(v, r->values[0]) == 0;
	case OP_NE: return !present || strcmp(v, r->values[0]) != 0;
	case OP_IN: return present && in_values(r, v);
	case OP_NOTIN: return !present || !in_values(r, v);
	case OP_EXISTS: return present;
	case OP_NOT_EXISTS: return !present;
	}
	return 0;
}

int selector_matches(const selector *s, const json_t *obj)
{
	for (int i = 0; s && i < s->n; i++)
		if (!req_holds(&s->r[i], obj, s->fields))
			return 0;
	return 1;
}

const char *selector_required(const selector *s, const char *path)
{
	for (int i = 0; s && i < s->n; i++)
		if (s->r[i].op == OP_EQ && strcmp(s->r[i].key, path) == 0)
			return s->r[i].values[0];
	return NULL;
}
