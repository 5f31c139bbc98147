/* Unit tests for err: the code → HTTP status / Kubernetes reason table and
 * the message helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"

static void codes_map_to_http_status_and_reason(void **state)
{
	assert_int_equal(err_http_status(ERR_NOT_FOUND), 404);
	assert_string_equal(err_reason(ERR_NOT_FOUND), "NotFound");
	assert_int_equal(err_http_status(ERR_INVALID), 422);
	assert_string_equal(err_reason(ERR_INVALID), "Invalid");
	assert_int_equal(err_http_status(ERR_EXISTS), 409);
	assert_string_equal(err_reason(ERR_EXISTS), "AlreadyExists");
	assert_int_equal(err_http_status(ERR_UNAUTHORIZED), 401);
	assert_int_equal(err_http_status(ERR_TOO_LARGE), 413);
	assert_int_equal(err_http_status(ERR_HEADERS_TOO_LARGE), 431);
	assert_int_equal(err_http_status(ERR_GONE), 410);
	assert_string_equal(err_reason(ERR_GONE), "Expired");
	assert_string_equal(err_name(ERR_METHOD), "METHOD");
}

static void unknown_code_is_internal(void **state)
{
	assert_int_equal(err_http_status(12345), 500);
	assert_string_equal(err_reason(-1), "InternalError");
	assert_int_equal(err_from_http_status(404), ERR_NOT_FOUND);
	assert_int_equal(err_from_http_status(599), ERR_INTERNAL);
}

static void every_code_has_distinct_name(void **state)
{
	for (int a = ERR__FIRST + 1; a < ERR__LAST; a++)
		for (int b = a + 1; b < ERR__LAST; b++)
			assert_string_not_equal(err_name(a), err_name(b));
}

static void set_returns_code_and_formats(void **state)
{
	struct err e;
	assert_int_equal(err_set(&e, ERR_IO, "open %s: %d", "x", 5), ERR_IO);
	assert_int_equal(e.code, ERR_IO);
	assert_string_equal(e.msg, "open x: 5");
	assert_int_equal(err_wrap(&e, "loading %s", "cfg"), ERR_IO);
	assert_string_equal(e.msg, "loading cfg: open x: 5");
	assert_int_equal(err_set(NULL, ERR_DB, "ignored"), ERR_DB);
}

static void long_messages_are_truncated_not_overflowed(void **state)
{
	struct err e;
	char big[1000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	err_set(&e, ERR_IO, "%s", big);
	assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
	err_wrap(&e, "%s", big);
	assert_int_equal(strlen(e.msg), sizeof e.msg - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(codes_map_to_http_status_and_reason),
		cmocka_unit_test(unknown_code_is_internal),
		cmocka_unit_test(every_code_has_distinct_name),
		cmocka_unit_test(set_returns_code_and_formats),
		cmocka_unit_test(long_messages_are_truncated_not_overflowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
