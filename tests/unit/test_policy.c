/* Unit tests for policy: the decision log's input digest.
 *
 *   input_digest_is_sha256_of_sorted_compact_json   the digest is the
 *       SHA-256 of the arguments as one compact JSON array with sorted
 *       keys, for objects, strings and missing (null) arguments alike
 *   same_input_in_another_key_order_has_the_same_digest */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "policy.h"
#include "util.h"

struct fixture {
	char dir[64];
	char path[128];
	store *s;
	policy *p;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct err e;
	strcpy(f->dir, "/tmp/cocod-policy-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/db", f->dir);
	assert_int_equal(store_open(f->path, &f->s, &e), 0);
	assert_int_equal(policy_new(f->s, NULL, NULL, &f->p, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	policy_free(f->p);
	store_close(f->s);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* SHA-256 (hex) of json_dumps of the arguments as an array, sorted keys. */
static void expected_digest(json_t *const *args, int n, char out[65])
{
	json_t *all = json_array();
	for (int i = 0; i < n; i++)
		json_array_append(all, args[i] ? args[i] : json_null());
	char *text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char md[32];
	unsigned int len = 0;
	EVP_Digest(text, strlen(text), md, &len, EVP_sha256(), NULL);
	hex_encode(md, sizeof md, out);
	free(text);
	json_decref(all);
}

/* The digest logged for the newest decision. */
static const char *logged_digest(struct fixture *f, char out[65])
{
	json_t *d = NULL;
	struct err e;
	assert_int_equal(policy_decisions(f->p, NULL, NULL, 1, &d, &e), 0);
	assert_int_equal(json_array_size(d), 1);
	snprintf(out, 65, "%s",
	         json_string_value(json_object_get(json_array_get(d, 0), "inputSha256")));
	json_decref(d);
	return out;
}

static json_t *parse(const char *text)
{
	json_t *v = json_loads(text, 0, NULL);
	assert_non_null(v);
	return v;
}

static void input_digest_is_sha256_of_sorted_compact_json(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;
	char want[65], got[65];
	json_t *pod = parse("{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
	                    "\"env\":[{\"value\":\"a\\\"b\\u0001\\u00e9/\",\"name\":\"X\"}]}]},"
	                    "\"metadata\":{\"name\":\"p\",\"labels\":{\"z\":\"1\",\"a\":\"2\"}},"
	                    "\"n\":0.5,\"i\":-3,\"t\":true,\"nil\":null,\"kind\":\"Pod\"}");
	json_t *req = parse("{\"operation\":\"CREATE\",\"namespace\":\"default\",\"name\":\"p\"}");
	json_t *args[2] = {pod, req};
	policy_eval(f->p, POLICY_ADMISSION, "default/p", args, 2, &v);
	policy_verdict_fini(&v);
	expected_digest(args, 2, want);
	assert_string_equal(logged_digest(f, got), want);

	json_t *path = json_string("repo/key/1");
	json_t *rargs[2] = {path, NULL};
	policy_eval(f->p, POLICY_RESOURCE, "repo/key/1", rargs, 2, &v);
	policy_verdict_fini(&v);
	expected_digest(rargs, 2, want);
	assert_string_equal(logged_digest(f, got), want);

	policy_eval(f->p, POLICY_RESOURCE, "none", NULL, 0, &v);
	policy_verdict_fini(&v);
	expected_digest(NULL, 0, want);
	assert_string_equal(logged_digest(f, got), want);
	json_decref(path);
	json_decref(pod);
	json_decref(req);
}

static void same_input_in_another_key_order_has_the_same_digest(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;
	char first[65], second[65];
	json_t *a = parse("{\"metadata\":{\"name\":\"p\",\"namespace\":\"d\"},\"spec\":{}}");
	json_t *b = parse("{\"spec\":{},\"metadata\":{\"namespace\":\"d\",\"name\":\"p\"}}");
	policy_eval(f->p, POLICY_ADMISSION, "d/p", &a, 1, &v);
	policy_verdict_fini(&v);
	logged_digest(f, first);
	policy_eval(f->p, POLICY_ADMISSION, "d/p", &b, 1, &v);
	policy_verdict_fini(&v);
	assert_string_equal(logged_digest(f, second), first);
	json_decref(a);
	json_decref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(input_digest_is_sha256_of_sorted_compact_json, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(same_input_in_another_key_order_has_the_same_digest,
	                                    setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
