/* initdata: see initdata.h.  A cursor walks the text once; every string
 * form decodes into a growable buffer; any construct outside the subset
 * is refused with its line number (the KBS then refuses the attestation,
 * as Trustee's AS does for unparsable init-data). */
#include "initdata.h"

#include <string.h>

#include <openssl/evp.h>

#include "util.h"

struct cur {
	const char *p, *end;
	int line;
};

static void skip_ws(struct cur *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

/* Skips spaces, a comment and the line end; -1 if anything else follows. */
static int end_line(struct cur *c)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == '#')
		while (c->p < c->end && *c->p != '\n')
			c->p++;
	if (c->p < c->end && *c->p == '\r')
		c->p++;
	if (c->p < c->end && *c->p != '\n')
		return -1;
	if (c->p < c->end) {
		c->p++;
		c->line++;
	}
	return 0;
}

static void put_utf8(struct buf *b, unsigned long cp)
{
	char o[4];
	int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	if (n == 1)
		o[0] = (char)cp;
	else if (n == 2)
		o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F));
	else if (n == 3)
		o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F));
	else
		o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)),
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
	buf_add(b, o, (size_t)n);
}

static int escape(struct cur *c, struct buf *b)
{
	char ch = *c->p++;
	const char *map = "b\bt\tn\nf\fr\r\"\"\\\\";
	for (const char *m = map; *m; m += 2)
		if (ch == m[0]) {
			buf_add(b, &m[1], 1);
			return 0;
		}
	int n = ch == 'u' ? 4 : ch == 'U' ? 8 : 0;
	if (!n || c->end - c->p < n)
		return -1;
	unsigned long cp = 0;
	for (int i = 0; i < n; i++, c->p++) {
		char h = *c->p;
		int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
		if (v < 0)
			return -1;
		cp = cp << 4 | (unsigned long)v;
	}
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	put_utf8(b, cp);
	return 0;
}

/* A string in any of the four forms; the cursor is on the opening quote. */
static int string(struct cur *c, struct buf *b)
{
	char q = *c->p;
	int multi = c->end - c->p >= 3 && c->p[1] == q && c->p[2] == q;
	c->p += multi ? 3 : 1;
	if (multi && c->p < c->end && *c->p == '\n')
		c->p++, c->line++;
	else if (multi && c->end - c->p >= 2 && c->p[0] == '\r' && c->p[1] == '\n')
		c->p += 2, c->line++;
	while (c->p < c->end) {
		if (*c->p == q && (!multi || (c->end - c->p >= 3 && c->p[1] == q && c->p[2] == q))) {
			c->p += multi ? 3 : 1;
			return 0;
		}
		if (*c->p == '\n') {
			if (!multi)
				return -1;
			c->line++;
		}
		if (q == '"' && *c->p == '\\') {
			c->p++;
			if (multi && c->p < c->end && (*c->p == '\n' || *c->p == ' ' || *c->p == '\r' || *c->p == '\t')) {
				while (c->p < c->end && *c->p && strchr(" \t\r\n", *c->p))
					c->line += *c->p++ == '\n';
				continue;
			}
			if (c->p >= c->end || escape(c, b))
				return -1;
			continue;
		}
		buf_add(b, c->p++, 1);
	}
	return -1;
}

static int key(struct cur *c, struct buf *b)
{
	if (c->p < c->end && (*c->p == '"' || *c->p == '\''))
		return string(c, b);
	const char *s = c->p;
	while (c->p < c->end && ((*c->p && strchr("-_", *c->p)) || (*c->p >= 'a' && *c->p <= 'z') ||
				 (*c->p >= 'A' && *c->p <= 'Z') || (*c->p >= '0' && *c->p <= '9')))
		c->p++;
	buf_add(b, s, (size_t)(c->p - s));
	return c->p > s ? 0 : -1;
}

/* One `key = "value"` line into `table`. */
static int pair(struct cur *c, json_t *table)
{
	struct buf k, v;
	buf_init(&k);
	buf_init(&v);
	int rc = key(c, &k);
	skip_ws(c);
	if (!rc && (c->p >= c->end || *c->p++ != '='))
		rc = -1;
	skip_ws(c);
	if (!rc && (c->p >= c->end || (*c->p != '"' && *c->p != '\'')))
		rc = -1;
	if (!rc)
		rc = string(c, &v);
	if (!rc && json_object_get(table, k.data ? k.data : ""))
		rc = -1; /* duplicate keys are invalid TOML */
	if (!rc) {
		json_t *s = json_stringn(v.data ? v.data : "", v.len);
		rc = s ? json_object_set_new(table, k.data ? k.data : "", s) : -1;
	}
	buf_fini(&k);
	buf_fini(&v);
	return rc ? -1 : end_line(c);
}

static int parse(struct cur *c, json_t *top, json_t *data)
{
	json_t *table = top;
	int seen_data = 0;
	while (c->p < c->end) {
		skip_ws(c);
		if (c->p >= c->end || *c->p == '#' || *c->p == '\n' || *c->p == '\r') {
			if (end_line(c))
				return -1;
			continue;
		}
		if (*c->p == '[') {
			if (seen_data || c->end - c->p < 6 || strncmp(c->p, "[data]", 6) != 0)
				return -1;
			c->p += 6;
			table = data;
			seen_data = 1;
			if (end_line(c))
				return -1;
			continue;
		}
		if (pair(c, table))
			return -1;
	}
	return 0;
}

static const EVP_MD *digest_of(const char *alg)
{
	return strcmp(alg, "sha256") == 0 ? EVP_sha256() : strcmp(alg, "sha384") == 0 ? EVP_sha384()
	     : strcmp(alg, "sha512") == 0 ? EVP_sha512() : NULL;
}

int initdata_parse(const char *toml, size_t len, struct initdata *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	if (len > INITDATA_MAX)
		return err_set(e, ERR_BAD_REQUEST, "init-data of %zu bytes (limit %u)", len, INITDATA_MAX);
	struct cur c = {toml, toml + len, 1};
	json_t *top = json_object();
	out->data = json_object();
	int rc = parse(&c, top, out->data);
	const char *ver = json_string_value(json_object_get(top, "version"));
	const char *alg = json_string_value(json_object_get(top, "algorithm"));
	const EVP_MD *md = alg ? digest_of(alg) : NULL;
	if (rc)
		rc = err_set(e, ERR_BAD_REQUEST, "init-data: TOML not understood at line %d", c.line);
	else if (!ver || strlen(ver) >= sizeof out->version)
		rc = err_set(e, ERR_BAD_REQUEST, "init-data: version missing");
	else if (!md)
		rc = err_set(e, ERR_BAD_REQUEST, "init-data: algorithm %s is not sha256, sha384 or sha512",
			     alg ? alg : "(missing)");
	if (!rc) {
		snprintf(out->version, sizeof out->version, "%s", ver);
		snprintf(out->algorithm, sizeof out->algorithm, "%s", alg);
		unsigned int dl = 0;
		EVP_Digest(toml, len, out->digest, &dl, md, NULL);
		out->digest_len = dl;
	}
	json_decref(top);
	if (rc)
		initdata_fini(out);
	return rc;
}

void initdata_fini(struct initdata *d)
{
	json_decref(d->data);
	d->data = NULL;
}
