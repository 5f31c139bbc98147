/* Unit tests for router: literal and capture matching, order, HEAD → GET,
 * 405 detection with the Allow list, malformed patterns and paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"

static int h_list, h_get, h_status, h_create, h_root;

static router *make(void)
{
	router *r = router_new();
	struct route routes[] = {
		{"GET", "/", &h_root, NULL, 0},
		{"GET", "/api/v1/namespaces/{ns}/pods", &h_list, NULL, 0},
		{"POST", "/api/v1/namespaces/{ns}/pods", &h_create, NULL, 0},
		{"GET", "/api/v1/namespaces/{ns}/pods/{name}", &h_get, NULL, 1},
		{"GET", "/api/v1/namespaces/{ns}/pods/{name}/status", &h_status, NULL, 0},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		assert_int_equal(router_add(r, &routes[i], NULL), 0);
	return r;
}

static void captures_are_returned_by_name(void **state)
{
	router *r = make();
	const struct route *rt;
	struct route_params p;
	assert_int_equal(router_match(r, "GET", "/api/v1/namespaces/kube/pods/web-1", &rt, &p, NULL, 0),
			 ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_get);
	assert_int_equal(rt->flags, 1);
	assert_string_equal(route_param(&p, "ns"), "kube");
	assert_string_equal(route_param(&p, "name"), "web-1");
	assert_null(route_param(&p, "other"));
	route_params_fini(&p);
	router_free(r);
}

static void longer_and_shorter_paths_do_not_match(void **state)
{
	router *r = make();
	const struct route *rt;
	struct route_params p;
	assert_int_equal(router_match(r, "GET", "/api/v1/namespaces/a/pods/b/status/x", &rt, &p, NULL, 0),
			 ROUTER_NO_PATH);
	assert_int_equal(router_match(r, "GET", "/api/v1/namespaces", &rt, &p, NULL, 0), ROUTER_NO_PATH);
	assert_int_equal(router_match(r, "GET", "/api/v1/namespaces/a/pods/b/status", &rt, &p, NULL, 0),
			 ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_status);
	route_params_fini(&p);
	router_free(r);
}

static void method_selects_route_and_head_matches_get(void **state)
{
	router *r = make();
	const struct route *rt;
	struct route_params p;
	assert_int_equal(router_match(r, "POST", "/api/v1/namespaces/x/pods", &rt, &p, NULL, 0), ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_create);
	route_params_fini(&p);
	assert_int_equal(router_match(r, "HEAD", "/api/v1/namespaces/x/pods", &rt, &p, NULL, 0), ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_list);
	route_params_fini(&p);
	router_free(r);
}

static void wrong_method_reports_allowed_methods(void **state)
{
	router *r = make();
	const struct route *rt;
	struct route_params p;
	char allow[64];
	assert_int_equal(router_match(r, "DELETE", "/api/v1/namespaces/x/pods", &rt, &p, allow, sizeof allow),
			 ROUTER_NO_METHOD);
	assert_string_equal(allow, "GET, POST");
	router_free(r);
}

static void root_and_trailing_slash(void **state)
{
	router *r = make();
	const struct route *rt;
	struct route_params p;
	assert_int_equal(router_match(r, "GET", "/", &rt, &p, NULL, 0), ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_root);
	route_params_fini(&p);
	assert_int_equal(router_match(r, "GET", "/api/v1/namespaces/x/pods/", &rt, &p, NULL, 0), ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_list);
	route_params_fini(&p);
	router_free(r);
}

static void malformed_paths_never_match(void **state)
{
	router *r = make();
	const struct route *rt;
	struct route_params p;
	assert_int_equal(router_match(r, "GET", "", &rt, &p, NULL, 0), ROUTER_NO_PATH);
	assert_int_equal(router_match(r, "GET", "api/v1", &rt, &p, NULL, 0), ROUTER_NO_PATH);
	assert_int_equal(router_match(r, "GET", "/api//v1/namespaces/x/pods", &rt, &p, NULL, 0), ROUTER_NO_PATH);
	char deep[400];
	memset(deep, 0, sizeof deep);
	for (int i = 0; i < 100; i++)
		strcat(deep, "/a");
	assert_int_equal(router_match(r, "GET", deep, &rt, &p, NULL, 0), ROUTER_NO_PATH);
	router_free(r);
}

static void malformed_patterns_are_refused(void **state)
{
	router *r = router_new();
	struct err e;
	struct route bad1 = {"GET", "no-slash", &h_get, NULL, 0};
	struct route bad2 = {"GET", "/a/{}/b", &h_get, NULL, 0};
	struct route bad3 = {"GET", "/a/{x", &h_get, NULL, 0};
	struct route bad4 = {"GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", &h_get, NULL, 0};
	assert_int_equal(router_add(r, &bad1, &e), ERR_INVALID);
	assert_int_equal(router_add(r, &bad2, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "/a/{}/b"));
	assert_int_equal(router_add(r, &bad3, &e), ERR_INVALID);
	assert_int_equal(router_add(r, &bad4, &e), ERR_INVALID);
	router_free(r);
}

static void first_added_route_wins(void **state)
{
	router *r = router_new();
	struct route a = {"GET", "/apis/{group}", &h_list, NULL, 0};
	struct route b = {"GET", "/apis/cocod.io", &h_get, NULL, 0};
	assert_int_equal(router_add(r, &a, NULL), 0);
	assert_int_equal(router_add(r, &b, NULL), 0);
	const struct route *rt;
	struct route_params p;
	assert_int_equal(router_match(r, "GET", "/apis/cocod.io", &rt, &p, NULL, 0), ROUTER_FOUND);
	assert_ptr_equal(rt->handler, &h_list);
	route_params_fini(&p);
	router_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(captures_are_returned_by_name),
		cmocka_unit_test(longer_and_shorter_paths_do_not_match),
		cmocka_unit_test(method_selects_route_and_head_matches_get),
		cmocka_unit_test(wrong_method_reports_allowed_methods),
		cmocka_unit_test(root_and_trailing_slash),
		cmocka_unit_test(malformed_paths_never_match),
		cmocka_unit_test(malformed_patterns_are_refused),
		cmocka_unit_test(first_added_route_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
