/* quantity: Kubernetes resource.Quantity in exact integer arithmetic.
 *
 * A quantity is <sign?><digits>[.<digits>]<suffix>: the number becomes a
 * digit string D and a power of ten (minus the fraction length, plus the
 * decimal suffix or exponent), the binary suffixes a power of two.  The
 * result ceil(|D * 10^t * 2^b|) is computed digit by digit so that neither a
 * long fraction ("0.00000012345") nor a huge exponent ("1e-999999") needs
 * floating point or more than a few dozen steps beyond the input length.
 * Kubernetes rounds the parsed value up to nano and then ScaledValue rounds
 * up again; rounding once to the target scale gives the same answer.
 *
 * One deliberate difference: the apiserver's scanner lets a number without
 * digits through ("." or "Mi" read as 0); the documented grammar does not,
 * and neither does cocod. */
#include "quantity.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Exponents beyond this make any non-zero value overflow or round to the
 * smallest unit, so clamping them changes nothing and keeps sums in range. */
#define EXP_CLAMP ((int64_t)1 << 40)

struct qnum {
	int neg;
	const char *ip; /* integer digits */
	size_t ni;
	const char *fp; /* fraction digits */
	size_t nf;
	int64_t exp10; /* from the suffix */
	int exp2;      /* from a binary suffix */
};

struct suffix_row {
	const char *s;
	int exp10, exp2;
};

static const struct suffix_row suffixes[] = {
    {"", 0, 0},    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},  {"k", 3, 0},   {"M", 6, 0},
    {"G", 9, 0},   {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},  {"Ki", 0, 10}, {"Mi", 0, 20},
    {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60},
};

/* The characters the apiserver's scanner accepts in a suffix; text made only
 * of these (then an optional signed integer) fails as a bad suffix rather
 * than as a malformed quantity. */
static int suffix_shaped(const char *s)
{
	s += strspn(s, "eEinumkKMGTP");
	if (*s == '+' || *s == '-')
		s++;
	s += strspn(s, "0123456789");
	return *s == '\0';
}

static int parse_exponent(const char *s, int64_t *out)
{
	int neg = 0;
	int64_t v = 0;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v > (INT64_MAX - 9) / 10)
			return -1; /* strconv.ParseInt would fail too */
		v = v * 10 + (*s - '0');
	}
	if (v > EXP_CLAMP)
		v = EXP_CLAMP;
	*out = neg ? -v : v;
	return 0;
}

static int parse_suffix(const char *s, struct qnum *q, struct err *e)
{
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		if (strcmp(s, suffixes[i].s) == 0) {
			q->exp10 = suffixes[i].exp10;
			q->exp2 = suffixes[i].exp2;
			return 0;
		}
	}
	if ((s[0] == 'e' || s[0] == 'E') && parse_exponent(s + 1, &q->exp10) == 0)
		return 0;
	if (suffix_shaped(s))
		return err_set(e, ERR_INVALID, "unable to parse quantity's suffix");
	return err_set(e, ERR_INVALID, QUANTITY_FORMAT_MSG);
}

static int split(const char *s, struct qnum *q, struct err *e)
{
	memset(q, 0, sizeof *q);
	if (!s || !*s)
		return err_set(e, ERR_INVALID, QUANTITY_FORMAT_MSG);
	if (*s == '+' || *s == '-')
		q->neg = *s++ == '-';
	q->ip = s;
	q->ni = strspn(s, "0123456789");
	s += q->ni;
	if (*s == '.') {
		q->fp = ++s;
		q->nf = strspn(s, "0123456789");
		s += q->nf;
	}
	if (q->ni + q->nf == 0)
		return err_set(e, ERR_INVALID, QUANTITY_FORMAT_MSG);
	return parse_suffix(s, q, e);
}

/* Digit i of the mantissa: integer digits then fraction digits. */
static int digit_at(const struct qnum *q, size_t i)
{
	return i < q->ni ? q->ip[i] - '0' : q->fp[i - q->ni] - '0';
}

/* floor(0.<pad zeros><digits [from, to)> * 2^exp2), Horner-style from the
 * last digit, setting `*inexact` when a non-zero remainder is dropped. */
static uint64_t fraction_times(const struct qnum *q, size_t from, size_t to, uint64_t pad,
                               int *inexact)
{
	unsigned __int128 m = (unsigned __int128)1 << q->exp2, c = 0;
	for (size_t i = to; i > from; i--) {
		unsigned __int128 x = digit_at(q, i - 1) * m + c;
		*inexact |= x % 10 != 0;
		c = x / 10;
	}
	for (uint64_t i = 0; i < pad && c; i++) {
		*inexact |= c % 10 != 0;
		c /= 10;
	}
	return (uint64_t)c;
}

/* Value of the digits [from, to) as an integer; -1 when over 19 digits. */
static int digits_value(const struct qnum *q, size_t from, size_t to, unsigned __int128 *out)
{
	if (to - from > 19)
		return -1;
	unsigned __int128 v = 0;
	for (size_t i = from; i < to; i++)
		v = v * 10 + digit_at(q, i);
	*out = v;
	return 0;
}

/* D * 10^t * 2^b for t >= 0. */
static int scaled_up(const struct qnum *q, size_t lead, int64_t t, unsigned __int128 *out)
{
	unsigned __int128 v;
	if (digits_value(q, lead, q->ni + q->nf, &v) < 0)
		return -1;
	for (int64_t i = 0; i < t; i++) {
		v *= 10;
		if (v > INT64_MAX)
			return -1;
	}
	v <<= q->exp2;
	if (v > INT64_MAX)
		return -1;
	*out = v;
	return 0;
}

/* ceil(D * 2^b / 10^s) for s > 0: whole digits times 2^b plus the rounded
 * product of the discarded fraction. */
static int scaled_down(const struct qnum *q, size_t lead, uint64_t s, unsigned __int128 *out)
{
	size_t n = q->ni + q->nf, len = n - lead;
	size_t whole = len > s ? len - (size_t)s : 0;
	uint64_t pad = len < s ? s - len : 0;
	unsigned __int128 v;
	int inexact = 0;
	if (digits_value(q, lead, lead + whole, &v) < 0)
		return -1;
	v <<= q->exp2;
	if (v > INT64_MAX)
		return -1;
	v += fraction_times(q, lead + whole, n, pad, &inexact);
	v += inexact;
	if (v > INT64_MAX)
		return -1;
	*out = v;
	return 0;
}

static int parse_scaled(const char *s, int scale, int64_t *out, struct err *e)
{
	struct qnum q;
	int rc = split(s, &q, e);
	if (rc < 0)
		return rc;
	size_t n = q.ni + q.nf, lead = 0;
	while (lead < n && digit_at(&q, lead) == 0)
		lead++;
	if (lead == n) {
		*out = 0;
		return 0;
	}
	int64_t t = q.exp10 - (int64_t)q.nf + scale;
	unsigned __int128 v;
	rc = t >= 0 ? scaled_up(&q, lead, t, &v) : scaled_down(&q, lead, (uint64_t)-t, &v);
	if (rc < 0)
		return err_set(e, ERR_INVALID, "quantity is too large");
	*out = q.neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int quantity_parse(const char *s, int64_t *milli, struct err *e)
{
	return parse_scaled(s, 3, milli, e);
}

int quantity_parse_value(const char *s, int64_t *value, struct err *e)
{
	return parse_scaled(s, 0, value, e);
}

/* The shortest "%.*g" text that reads back as `d`, so 0.1 stays "0.1". */
static void shortest_real(double d, char *buf, size_t n)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

static int parse_json_scaled(const json_t *v, int scale, int64_t *out, struct err *e)
{
	char num[64];
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = json_string_length(v);
		if (strlen(s) != len)
			return err_set(e, ERR_INVALID, QUANTITY_FORMAT_MSG);
		while (len && isspace((unsigned char)s[len - 1]))
			len--;
		while (len && isspace((unsigned char)*s))
			s++, len--;
		char *t = xstrndup(s, len);
		int rc = parse_scaled(t, scale, out, e);
		free(t);
		return rc;
	}
	if (json_is_integer(v))
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		shortest_real(json_real_value(v), num, sizeof num);
	else
		return err_set(e, ERR_INVALID, "a quantity must be a string or a number");
	return parse_scaled(num, scale, out, e);
}

int quantity_parse_json(const json_t *v, int64_t *milli, struct err *e)
{
	return parse_json_scaled(v, 3, milli, e);
}

int quantity_parse_json_value(const json_t *v, int64_t *value, struct err *e)
{
	return parse_json_scaled(v, 0, value, e);
}

void quantity_format_cpu(int64_t milli, char *buf, size_t n)
{
	if (milli % 1000 == 0)
		snprintf(buf, n, "%" PRId64, milli / 1000);
	else
		snprintf(buf, n, "%" PRId64 "m", milli);
}

void quantity_format_bytes(int64_t bytes, char *buf, size_t n)
{
	static const char *const bin[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
	for (int i = 0; i < 6 && bytes != 0; i++) {
		int64_t unit = (int64_t)1 << (10 * (6 - i));
		if (bytes % unit == 0) {
			snprintf(buf, n, "%" PRId64 "%s", bytes / unit, bin[i]);
			return;
		}
	}
	snprintf(buf, n, "%" PRId64, bytes);
}
