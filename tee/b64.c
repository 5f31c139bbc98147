/* b64: see b64.h.  Small and table-driven; both alphabets share one
 * encoder and one decoder parameterised by the alphabet. */
#include "b64.h"

#include <string.h>

#include "util.h"

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *encode(const uint8_t *p, size_t n, const char *abc, int pad)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
	size_t i;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = abc[(v >> 6) & 63];
		*o++ = abc[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		if (i + 1 < n)
			*o++ = abc[(v >> 6) & 63];
		else if (pad)
			*o++ = '=';
		if (pad)
			*o++ = '=';
	}
	*o = '\0';
	return out;
}

char *b64_encode(const void *in, size_t n) { return encode(in, n, STD, 1); }
char *b64url_encode(const void *in, size_t n) { return encode(in, n, URL, 0); }

static int value(const char *abc, char c)
{
	const char *p = c ? strchr(abc, c) : NULL;
	return p ? (int)(p - abc) : -1;
}

static int decode(const char *in, size_t len, const char *abc, uint8_t **out, size_t *outlen)
{
	if (len == (size_t)-1)
		len = strlen(in);
	for (int k = 0; k < 2 && len > 0 && in[len - 1] == '='; k++)
		len--;
	if (len % 4 == 1)
		return -1;
	uint8_t *buf = xmalloc(len * 3 / 4 + 1), *o = buf;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = value(abc, in[i]);
		if (v < 0) {
			free(buf);
			return -1;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (uint8_t)(acc >> bits);
		}
	}
	if (bits && (acc & ((1u << bits) - 1))) { /* non-canonical trailing bits */
		free(buf);
		return -1;
	}
	*o = 0;
	*out = buf;
	*outlen = (size_t)(o - buf);
	return 0;
}

int b64_decode(const char *in, size_t len, uint8_t **out, size_t *outlen)
{
	return decode(in, len, STD, out, outlen);
}

int b64url_decode(const char *in, size_t len, uint8_t **out, size_t *outlen)
{
	return decode(in, len, URL, out, outlen);
}
