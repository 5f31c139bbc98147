/* jcs: see jcs.h.  Numbers: the shortest precision whose %e rendering
 * reads back as the same double gives ECMAScript's digits (the closest
 * p-digit decimal lies inside the rounding interval whenever any p-digit
 * decimal does), then ECMAScript's layout rules place the decimal point. */
#include "jcs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Digits (no point) and the decimal exponent n, value = 0.d1d2... * 10^n. */
static int shortest_digits(double d, char *digits, int *n)
{
	char tmp[40];
	for (int p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
		if (strtod(tmp, NULL) != d && p < 17)
			continue;
		char *e = strchr(tmp, 'e'), *o = digits;
		for (char *c = tmp; c < e; c++)
			if (*c >= '0' && *c <= '9')
				*o++ = *c;
		while (o > digits + 1 && o[-1] == '0')
			o--;
		*o = '\0';
		*n = atoi(e + 1) + 1;
		return (int)(o - digits);
	}
	return -1;
}

int jcs_number(double d, char *out, size_t len)
{
	if (isnan(d) || isinf(d))
		return -1;
	if (d == 0) {
		snprintf(out, len, "0");
		return 0;
	}
	char digits[24], *o = out;
	int n, k = shortest_digits(fabs(d), digits, &n);
	if (k < 0 || len < 32)
		return -1;
	if (d < 0)
		*o++ = '-';
	if (k <= n && n <= 21) {
		o += sprintf(o, "%s%.*s", digits, n - k, "000000000000000000000");
	} else if (0 < n && n <= 21) {
		o += sprintf(o, "%.*s.%s", n, digits, digits + n);
	} else if (-6 < n && n <= 0) {
		o += sprintf(o, "0.%.*s%s", -n, "000000", digits);
	} else {
		o += sprintf(o, "%c", digits[0]);
		if (k > 1)
			o += sprintf(o, ".%s", digits + 1);
		o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
	}
	return 0;
}

static void append_string(struct buf *out, const char *s, size_t len)
{
	buf_add(out, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
				: c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
				: c == '\t' ? "\\t" : NULL;
		if (esc)
			buf_adds(out, esc);
		else if (c < 0x20)
			buf_printf(out, "\\u%04x", c);
		else
			buf_add(out, &s[i], 1);
	}
	buf_add(out, "\"", 1);
}

/* Next UTF-16 code unit of a UTF-8 string (jansson guarantees validity);
 * *pending carries the low surrogate of a supplementary character. */
static unsigned next_unit(const unsigned char **p, unsigned *pending)
{
	if (*pending) {
		unsigned u = *pending;
		*pending = 0;
		return u;
	}
	const unsigned char *s = *p;
	unsigned cp;
	if (s[0] < 0x80)
		cp = s[0], *p += 1;
	else if (s[0] < 0xE0)
		cp = (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu), *p += 2;
	else if (s[0] < 0xF0)
		cp = (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu), *p += 3;
	else
		cp = (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu),
		*p += 4;
	if (cp < 0x10000)
		return cp;
	cp -= 0x10000;
	*pending = 0xDC00 + (cp & 0x3FF);
	return 0xD800 + (cp >> 10);
}

static int utf16_cmp(const void *a, const void *b)
{
	const unsigned char *x = *(const unsigned char *const *)a, *y = *(const unsigned char *const *)b;
	unsigned px = 0, py = 0;
	while ((*x || px) && (*y || py)) {
		unsigned ux = next_unit(&x, &px), uy = next_unit(&y, &py);
		if (ux != uy)
			return ux < uy ? -1 : 1;
	}
	return (*x || px) ? 1 : (*y || py) ? -1 : 0;
}

static int append_object(const json_t *v, struct buf *out, struct err *e)
{
	size_t n = json_object_size(v), i = 0;
	const char **keys = xcalloc(n ? n : 1, sizeof *keys), *k;
	json_t *val;
	json_object_foreach((json_t *)(uintptr_t)v, k, val) keys[i++] = k;
	qsort(keys, n, sizeof *keys, utf16_cmp);
	buf_add(out, "{", 1);
	int rc = 0;
	for (i = 0; i < n && !rc; i++) {
		if (i)
			buf_add(out, ",", 1);
		append_string(out, keys[i], strlen(keys[i]));
		buf_add(out, ":", 1);
		rc = jcs_append(json_object_get(v, keys[i]), out, e);
	}
	buf_add(out, "}", 1);
	free(keys);
	return rc;
}

static int append_number(double d, struct buf *out, struct err *e)
{
	char num[40];
	if (jcs_number(d, num, sizeof num))
		return err_set(e, ERR_INVALID, "JCS: NaN and infinities have no JSON form");
	buf_adds(out, num);
	return 0;
}

int jcs_append(const json_t *v, struct buf *out, struct err *e)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return append_object(v, out, e);
	case JSON_ARRAY:
		buf_add(out, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				buf_add(out, ",", 1);
			if (jcs_append(json_array_get(v, i), out, e))
				return e->code;
		}
		buf_add(out, "]", 1);
		return 0;
	case JSON_STRING: append_string(out, json_string_value(v), json_string_length(v)); return 0;
	case JSON_INTEGER: {
		json_int_t i = json_integer_value(v);
		if (i > (1LL << 53) || i < -(1LL << 53))
			return append_number((double)i, out, e);
		buf_printf(out, "%lld", (long long)i);
		return 0;
	}
	case JSON_REAL: return append_number(json_real_value(v), out, e);
	case JSON_TRUE: buf_adds(out, "true"); return 0;
	case JSON_FALSE: buf_adds(out, "false"); return 0;
	case JSON_NULL: buf_adds(out, "null"); return 0;
	}
	return err_set(e, ERR_INVALID, "JCS: unknown JSON type");
}

int jcs_serialize(const json_t *v, char **out, size_t *len, struct err *e)
{
	struct buf b;
	buf_init(&b);
	if (!v || jcs_append(v, &b, e)) {
		buf_fini(&b);
		return v ? e->code : err_set(e, ERR_INVALID, "JCS: no value");
	}
	*out = buf_steal(&b, len);
	return 0;
}
