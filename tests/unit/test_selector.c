/* Unit tests for selector: label selector operators, field selectors,
 * refusal of unsupported fields and malformed text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "selector.h"

static json_t *pod(const char *name, const char *app, const char *tier, const char *phase)
{
	json_t *labels = json_object();
	if (app)
		json_object_set_new(labels, "app", json_string(app));
	if (tier)
		json_object_set_new(labels, "tier", json_string(tier));
	return json_pack("{s:{s:s, s:s, s:o}, s:{s:s}}", "metadata", "name", name, "namespace",
			 "default", "labels", labels, "status", "phase", phase);
}

static int lmatch(const char *sel, const json_t *obj)
{
	selector *s = NULL;
	struct err e;
	assert_int_equal(selector_parse_labels(sel, &s, &e), 0);
	int m = selector_matches(s, obj);
	selector_free(s);
	return m;
}

static void label_equality_and_inequality(void **state)
{
	json_t *p = pod("a", "web", "front", "Running");
	assert_true(lmatch("app=web", p));
	assert_true(lmatch("app==web", p));
	assert_false(lmatch("app=db", p));
	assert_true(lmatch("app!=db", p));
	assert_true(lmatch("missing!=x", p));
	assert_true(lmatch("app=web, tier=front", p));
	assert_false(lmatch("app=web,tier=back", p));
	assert_true(lmatch("", p));
	assert_true(lmatch(NULL, p));
	json_decref(p);
}

static void label_set_and_existence(void **state)
{
	json_t *p = pod("a", "web", NULL, "Running");
	assert_true(lmatch("app in (db, web)", p));
	assert_false(lmatch("app in (db)", p));
	assert_true(lmatch("app notin (db)", p));
	assert_false(lmatch("app notin (web,db)", p));
	assert_true(lmatch("tier notin (x)", p));
	assert_true(lmatch("app", p));
	assert_false(lmatch("tier", p));
	assert_true(lmatch("!tier", p));
	assert_false(lmatch("!app", p));
	json_decref(p);
}

static void malformed_label_selectors_are_refused(void **state)
{
	const char *bad[] = {"app in web", "app in (a,b", "=x", "app=web;rm", "app >> 3", "app in (a b)"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		selector *s = NULL;
		struct err e = {0};
		assert_int_equal(selector_parse_labels(bad[i], &s, &e), ERR_BAD_REQUEST);
		assert_null(s);
		assert_true(e.msg[0] != '\0');
	}
}

static void too_many_requirements_are_refused(void **state)
{
	char text[2000] = "";
	for (int i = 0; i < 70; i++)
		strcat(text, "a=b,");
	strcat(text, "a=b");
	selector *s = NULL;
	struct err e;
	assert_int_equal(selector_parse_labels(text, &s, &e), ERR_BAD_REQUEST);
	assert_non_null(strstr(e.msg, "more than"));
}

static void field_selectors_match_paths(void **state)
{
	static const char *const allowed[] = {"metadata.name", "metadata.namespace", "status.phase", NULL};
	json_t *p = pod("web-1", "web", NULL, "Running");
	selector *s = NULL;
	struct err e;
	assert_int_equal(selector_parse_fields("metadata.name=web-1,status.phase!=Failed", allowed, &s, &e), 0);
	assert_true(selector_matches(s, p));
	assert_string_equal(selector_required(s, "metadata.name"), "web-1");
	assert_null(selector_required(s, "status.phase"));
	selector_free(s);
	assert_int_equal(selector_parse_fields("metadata.name=other", allowed, &s, &e), 0);
	assert_false(selector_matches(s, p));
	selector_free(s);
	json_decref(p);
}

static void unsupported_field_is_refused_by_name(void **state)
{
	static const char *const allowed[] = {"metadata.name", NULL};
	selector *s = NULL;
	struct err e;
	assert_int_equal(selector_parse_fields("spec.secret=x", allowed, &s, &e), ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "field label not supported: spec.secret");
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(label_equality_and_inequality),
		cmocka_unit_test(label_set_and_existence),
		cmocka_unit_test(malformed_label_selectors_are_refused),
		cmocka_unit_test(too_many_requirements_are_refused),
		cmocka_unit_test(field_selectors_match_paths),
		cmocka_unit_test(unsupported_field_is_refused_by_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
