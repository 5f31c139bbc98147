/* initdata: see initdata.h.  A cursor walks the text once; every string
 * form decodes into a growable buffer; any construct outside the subset
 * is refused with its line number (the KBS then refuses the attestation,
 * as Trustee's AS does for unparsable init-data).  The annotation decoder
 * (base64, then gzip through zlib with the output bounded, then a text
 * check) sits at the end. */
#include "initdata.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "b64.h"
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

void initdata_digest_str(const struct initdata *d, char out[INITDATA_DIGEST_STR])
{
	char hex[2 * sizeof d->digest + 1];
	hex_encode(d->digest, d->digest_len, hex);
	snprintf(out, INITDATA_DIGEST_STR, "%s:%s", d->algorithm, hex);
}

const json_t *initdata_annotation(const json_t *annotations, const char **name)
{
	const char *n = INITDATA_ANNOTATION;
	const json_t *v = json_object_get(annotations, n);
	if (!v) {
		n = INITDATA_ANNOTATION_OLD;
		v = json_object_get(annotations, n);
	}
	if (name)
		*name = v ? n : NULL;
	return v;
}

/* ---- the annotation: base64, gzip, text ---- */

#define INFLATE_STEP (16u << 10)
#define NOT_B64      "init-data is not standard base64"

static int b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '=';
}

/* Standard base64 with CR and LF skipped; names the first character that
 * cannot be base64 (its position, and itself when printable). */
static int unbase64(const char *in, size_t len, uint8_t **out, size_t *n, struct err *e)
{
	cleanup_free char *clean = xmalloc(len + 1);
	size_t m = 0;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '\r' || c == '\n')
			continue;
		if (!b64_char(c)) {
			unsigned char u = (unsigned char)c;
			if (u > 0x20 && u < 0x7f)
				return err_set(e, ERR_INVALID, "%s: character %zu is '%c'", NOT_B64,
					       i + 1, c);
			return err_set(e, ERR_INVALID, "%s: character %zu is byte 0x%02x", NOT_B64,
				       i + 1, u);
		}
		clean[m++] = c;
	}
	if (m == 0)
		return err_set(e, ERR_INVALID, "init-data is empty: expected base64 of gzip'd TOML");
	if (b64_decode(clean, m, out, n) < 0)
		return err_set(e, ERR_INVALID, "%s: its length, padding or last character is wrong",
			       NOT_B64);
	return 0;
}

/* Inflates every gzip member of `in` into `out`, never past INITDATA_MAX
 * bytes: a gzip bomb stops at the limit. */
static int gunzip(const uint8_t *in, size_t n, struct buf *out, struct err *e)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) /* 16: gzip only */
		return err_set(e, ERR_INTERNAL, "init-data: zlib: %s", z.msg ? z.msg : "no memory");
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	int member = 1, rc = 0;
	for (;;) {
		size_t room = INITDATA_MAX + 1 - out->len;
		buf_reserve(out, room < INFLATE_STEP ? room : INFLATE_STEP);
		z.next_out = (Bytef *)out->data + out->len;
		z.avail_out = (uInt)(room < INFLATE_STEP ? room : INFLATE_STEP);
		int zr = inflate(&z, Z_NO_FLUSH);
		out->len = (size_t)((char *)z.next_out - out->data);
		out->data[out->len] = '\0';
		if (out->len > INITDATA_MAX) {
			rc = err_set(e, ERR_INVALID,
				     "init-data decompresses to more than %u bytes (the limit)",
				     INITDATA_MAX);
			break;
		}
		if (zr == Z_STREAM_END) {
			if (z.avail_in == 0)
				break;
			member++; /* concatenated members, as gzip(1) and Go read them */
			inflateReset(&z);
			continue;
		}
		if (zr == Z_OK && (z.avail_in > 0 || z.avail_out == 0))
			continue; /* more to read, or output waiting for room */
		if (zr == Z_OK || zr == Z_BUF_ERROR)
			rc = err_set(e, ERR_INVALID, "init-data: the gzip data is truncated");
		else if (member > 1)
			rc = err_set(e, ERR_INVALID, "init-data: bytes after the gzip data: %s",
				     z.msg ? z.msg : "not a gzip member");
		else
			rc = err_set(e, ERR_INVALID, "init-data is not valid gzip data: %s",
				     z.msg ? z.msg : zError(zr));
		break;
	}
	inflateEnd(&z);
	return rc;
}

/* Length of the UTF-8 sequence at s[0..n) (1..4), or 0 when malformed:
 * overlong forms, surrogates and code points past U+10FFFF included. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len = c < 0x80             ? 1
	             : (c & 0xE0) == 0xC0 ? 2
	             : (c & 0xF0) == 0xE0 ? 3
	             : (c & 0xF8) == 0xF0 ? 4
	                                  : 0;
	if (len == 0 || len > n)
		return 0;
	unsigned long cp = len == 1 ? c : c & (0x7Fu >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3Fu);
	}
	static const unsigned long min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static int check_text(const char *text, size_t len, struct err *e)
{
	const unsigned char *s = (const unsigned char *)text;
	for (size_t i = 0; i < len;) {
		if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') || s[i] == 0x7f)
			return err_set(e, ERR_INVALID,
				       "init-data holds control character 0x%02x at byte %zu (TOML "
				       "allows only tab, CR and LF)",
				       s[i], i);
		size_t n = utf8_seq(s + i, len - i);
		if (n == 0)
			return err_set(e, ERR_INVALID, "init-data is not UTF-8 text (byte %zu)", i);
		i += n;
	}
	return 0;
}

int initdata_decode(const char *b64, size_t b64_len, char **toml, size_t *len, struct err *e)
{
	uint8_t *gz = NULL;
	size_t gz_len = 0;
	struct buf out;
	if (unbase64(b64, b64_len, &gz, &gz_len, e) < 0)
		return e->code;
	buf_init(&out);
	int rc = gunzip(gz, gz_len, &out, e);
	free(gz);
	if (rc == 0)
		rc = check_text(out.data ? out.data : "", out.len, e);
	if (rc < 0) {
		buf_fini(&out);
		return rc;
	}
	*toml = buf_steal(&out, len);
	return 0;
}
