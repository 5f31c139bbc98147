/* Unit tests for quantity: Kubernetes' quantity grammar and rounding.
 *
 * Cases:
 *   parses_kubernetes_examples_to_milli     table from apimachinery's own tests
 *   parses_to_whole_units_rounding_up       Value(): bytes, ceil in magnitude
 *   rounds_away_from_zero_like_scaled_value 0.1m -> 1, -0.1m -> -1
 *   long_mantissas_and_huge_exponents       exact over many digits, bounded work
 *   overflow_is_an_error                    int64 range enforced, both scales
 *   rejects_what_kubernetes_rejects         malformed text, with the message
 *   json_strings_and_numbers_are_quantities string, integer, real, not bool/null
 *   formats_cpu_and_bytes                   "250m", "2", "512Mi", plain bytes
 *
 * Expected values were computed independently with Python's decimal module
 * (exact ceil of the documented grammar), not by this code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quantity.h"

#define OVF INT64_MIN /* sentinel: the scale overflows */

struct qcase {
	const char *in;
	int64_t milli, value;
};

static const struct qcase table[] = {
    {"0", 0, 0},
    {"100m", 100, 1},
    {"0.5", 500, 1},
    {"1", 1000, 1},
    {"1Gi", 1073741824000LL, 1073741824LL},
    {"512M", 512000000000LL, 512000000LL},
    {"1e3", 1000000, 1000},
    {"1.5Ki", 1536000, 1536},
    {"1E", OVF, 1000000000000000000LL},
    {"12E-2", 120, 1},
    {"1.2e3", 1200000, 1200},
    {"1.3E+6", 1300000000LL, 1300000},
    {"100.035k", 100035000, 100035},
    {"0.0005k", 500, 1},
    {"3.001n", 1, 1},
    {"0.9n", 1, 1},
    {"1.1E-9", 1, 1},
    {"0.000000000001Ki", 1, 1},
    {"0.5Mi", 524288000LL, 524288},
    {"100.035Ki", 102435840LL, 102436},
    {"0.05Gi", 53687091200LL, 53687092LL},
    {"0.025Ti", 27487790694400LL, 27487790695LL},
    {".001", 1, 1},
    {"1.", 1000, 1},
    {"1.G", 1000000000000LL, 1000000000LL},
    {"+5", 5000, 5},
    {"-1.5", -1500, -2},
    {"0001.5", 1500, 2},
    {"1.0005", 1001, 2},
    {"-0", 0, 0},
    {"1Ki", 1024000, 1024},
    {"7Ei", OVF, 8070450532247928832LL},
    {"9223372036854775807", OVF, INT64_MAX},
};

static void parses_kubernetes_examples_to_milli(void **state)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		int64_t m = 42;
		int rc = quantity_parse(table[i].in, &m, NULL);
		if (table[i].milli == OVF && (rc != ERR_INVALID || m != 42))
			fail_msg("%s: want overflow, got rc=%d milli=%" PRId64, table[i].in, rc, m);
		if (table[i].milli != OVF && (rc != 0 || m != table[i].milli))
			fail_msg("%s: want %" PRId64 ", got rc=%d milli=%" PRId64, table[i].in,
			         table[i].milli, rc, m);
	}
}

static void parses_to_whole_units_rounding_up(void **state)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		int64_t v = 0;
		int rc = quantity_parse_value(table[i].in, &v, NULL);
		if (rc != 0 || v != table[i].value)
			fail_msg("%s: want %" PRId64 ", got rc=%d value=%" PRId64, table[i].in,
			         table[i].value, rc, v);
	}
}

static void rounds_away_from_zero_like_scaled_value(void **state)
{
	int64_t m;
	assert_int_equal(quantity_parse("0.1m", &m, NULL), 0);
	assert_int_equal(m, 1);
	assert_int_equal(quantity_parse("-0.1m", &m, NULL), 0);
	assert_int_equal(m, -1);
	assert_int_equal(quantity_parse("1.0001", &m, NULL), 0);
	assert_int_equal(m, 1001);
	assert_int_equal(quantity_parse("1.0000", &m, NULL), 0);
	assert_int_equal(m, 1000);
	assert_int_equal(quantity_parse("1n", &m, NULL), 0);
	assert_int_equal(m, 1);
	assert_int_equal(quantity_parse("0n", &m, NULL), 0);
	assert_int_equal(m, 0);
}

static void long_mantissas_and_huge_exponents(void **state)
{
	int64_t m;
	assert_int_equal(quantity_parse("0.1000000000000000000000000000001", &m, NULL), 0);
	assert_int_equal(m, 101);
	assert_int_equal(quantity_parse("123456789012345678901234567890e-27", &m, NULL), 0);
	assert_int_equal(m, 123457);
	assert_int_equal(quantity_parse("1e-100", &m, NULL), 0);
	assert_int_equal(m, 1);
	assert_int_equal(quantity_parse("1e-999999999999", &m, NULL), 0);
	assert_int_equal(m, 1);
	assert_int_equal(quantity_parse("0e999999999999", &m, NULL), 0);
	assert_int_equal(m, 0);
	assert_int_equal(quantity_parse("0.000000000000000000000000000000000000000000Ei", &m, NULL),
	                 0);
	assert_int_equal(m, 0);
	/* 2^-? fraction of a binary suffix: 0.3Ki = 307.2 bytes */
	assert_int_equal(quantity_parse_value("0.3Ki", &m, NULL), 0);
	assert_int_equal(m, 308);
	assert_int_equal(quantity_parse("0.3Ki", &m, NULL), 0);
	assert_int_equal(m, 307200);
}

static void overflow_is_an_error(void **state)
{
	static const char *const big[] = {
	    "9223372036854775808", "8Ei", "12E", "9Ei", "1e19", "10000000000000000000000000",
	    "1e999999999999",      NULL};
	for (const char *const *s = big; *s; s++) {
		struct err e = {0};
		int64_t v = 7;
		if (quantity_parse_value(*s, &v, &e) != ERR_INVALID)
			fail_msg("%s: parsed as %" PRId64, *s, v);
		assert_int_equal(e.code, ERR_INVALID);
		assert_string_equal(e.msg, "quantity is too large");
		assert_int_equal(v, 7);
	}
	int64_t m;
	assert_int_equal(quantity_parse("9223372036854775", &m, NULL), 0);
	assert_int_equal(m, 9223372036854775000LL);
	assert_int_equal(quantity_parse("9223372036854776", &m, NULL), ERR_INVALID);
	assert_int_equal(quantity_parse("-9223372036854776", &m, NULL), ERR_INVALID);
}

static void rejects_what_kubernetes_rejects(void **state)
{
	static const char *const bad[] = {
	    "",       " 1",
	    "1 ",     "1 Gi",
	    "1.2.3",  "1gi",
	    "0x10",   "1.1.M",
	    "1+1.0M", "aoeu",
	    "Mi",     ".",
	    "-",      "+",
	    "--1",    "1e",
	    "1E+",    "1ee3",
	    "1e3m",   "1KiB",
	    ".5i",    "1i",
	    "-3.01i", "-3.01e-",
	    "0.1am",  "1e99999999999999999999",
	    "1,5",    "١",
	    NULL,
	};
	for (const char *const *s = bad; *s; s++) {
		struct err e = {0};
		int64_t m = 9;
		if (quantity_parse(*s, &m, &e) != ERR_INVALID)
			fail_msg("'%s': parsed as %" PRId64, *s, m);
		assert_int_equal(m, 9);
		assert_true(e.msg[0] != '\0');
	}
	struct err e;
	assert_int_equal(quantity_parse("1 Gi", NULL, &e), ERR_INVALID);
	assert_string_equal(e.msg, QUANTITY_FORMAT_MSG);
	assert_int_equal(quantity_parse("0.1mi", NULL, &e), ERR_INVALID);
	assert_string_equal(e.msg, "unable to parse quantity's suffix");
	assert_int_equal(quantity_parse(NULL, NULL, &e), ERR_INVALID);
}

static void json_strings_and_numbers_are_quantities(void **state)
{
	int64_t m;
	json_t *v = json_integer(2);
	assert_int_equal(quantity_parse_json(v, &m, NULL), 0);
	assert_int_equal(m, 2000);
	json_decref(v);
	v = json_real(0.5);
	assert_int_equal(quantity_parse_json(v, &m, NULL), 0);
	assert_int_equal(m, 500);
	json_decref(v);
	v = json_real(0.1); /* must not become 0.1000000000000000055 -> 101 */
	assert_int_equal(quantity_parse_json(v, &m, NULL), 0);
	assert_int_equal(m, 100);
	json_decref(v);
	v = json_real(1e3);
	assert_int_equal(quantity_parse_json_value(v, &m, NULL), 0);
	assert_int_equal(m, 1000);
	json_decref(v);
	v = json_string(" 100m\t");
	assert_int_equal(quantity_parse_json(v, &m, NULL), 0);
	assert_int_equal(m, 100);
	json_decref(v);
	v = json_string("1Gi");
	assert_int_equal(quantity_parse_json_value(v, &m, NULL), 0);
	assert_int_equal(m, 1073741824);
	json_decref(v);

	struct err e;
	json_t *bad[] = {json_true(),        json_null(),     json_object(),
	                 json_array(),       json_string(""), json_stringn("1\0Gi", 4),
	                 json_string("1 Gi")};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		m = 5;
		assert_int_equal(quantity_parse_json(bad[i], &m, &e), ERR_INVALID);
		assert_int_equal(m, 5);
		json_decref(bad[i]);
	}
	assert_int_equal(quantity_parse_json(NULL, &m, &e), ERR_INVALID);
	assert_string_equal(e.msg, "a quantity must be a string or a number");
}

static void formats_cpu_and_bytes(void **state)
{
	char b[32];
	quantity_format_cpu(250, b, sizeof b);
	assert_string_equal(b, "250m");
	quantity_format_cpu(2000, b, sizeof b);
	assert_string_equal(b, "2");
	quantity_format_cpu(1500, b, sizeof b);
	assert_string_equal(b, "1500m");
	quantity_format_cpu(0, b, sizeof b);
	assert_string_equal(b, "0");
	quantity_format_bytes(536870912, b, sizeof b);
	assert_string_equal(b, "512Mi");
	quantity_format_bytes(1073741824, b, sizeof b);
	assert_string_equal(b, "1Gi");
	quantity_format_bytes(1024, b, sizeof b);
	assert_string_equal(b, "1Ki");
	quantity_format_bytes(1536, b, sizeof b);
	assert_string_equal(b, "1536");
	quantity_format_bytes(1000000000, b, sizeof b);
	assert_string_equal(b, "1000000000");
	quantity_format_bytes(0, b, sizeof b);
	assert_string_equal(b, "0");
	quantity_format_bytes((int64_t)3 << 60, b, sizeof b);
	assert_string_equal(b, "3Ei");
	char tiny[4];
	quantity_format_bytes(536870912, tiny, sizeof tiny);
	assert_string_equal(tiny, "512");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parses_kubernetes_examples_to_milli),
	    cmocka_unit_test(parses_to_whole_units_rounding_up),
	    cmocka_unit_test(rounds_away_from_zero_like_scaled_value),
	    cmocka_unit_test(long_mantissas_and_huge_exponents),
	    cmocka_unit_test(overflow_is_an_error),
	    cmocka_unit_test(rejects_what_kubernetes_rejects),
	    cmocka_unit_test(json_strings_and_numbers_are_quantities),
	    cmocka_unit_test(formats_cpu_and_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
