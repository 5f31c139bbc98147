/* Unit tests for ocispec (the guest agent's OCI runtime config): command
 * and args against the image's Entrypoint/Cmd, env merging, user, working
 * directory, read-only root, namespaces, seccomp, the personality that
 * restores address-space randomization, and volume mounts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ocispec.h"

static json_t *image(const char *json_config)
{
	json_error_t je;
	json_t *c = json_loads(json_config, 0, &je);
	assert_non_null(c);
	return json_pack("{s:s, s:s, s:o}", "architecture", "amd64", "os", "linux", "config", c);
}

static char *args_of(const json_t *doc)
{
	return json_dumps(json_object_get(json_object_get(doc, "process"), "args"), JSON_COMPACT);
}

static void check_args(const char *img, const char *cmd, const char *args, const char *want)
{
	json_error_t je;
	json_t *ic = image(img), *c = cmd ? json_loads(cmd, 0, &je) : NULL,
	       *a = args ? json_loads(args, 0, &je) : NULL;
	struct ocispec_in in = {.command = c, .args = a, .rootfs = "/r", .image_config = ic};
	struct err e = {0};
	json_t *doc = ocispec_build(&in, &e);
	assert_non_null(doc);
	char *got = args_of(doc);
	assert_string_equal(got, want);
	free(got);
	json_decref(doc);
	json_decref(ic);
	json_decref(c);
	json_decref(a);
}

static void args_follow_kubernetes_rules(void **state)
{
	const char *img = "{\"Entrypoint\":[\"/bin/ep\"],\"Cmd\":[\"c1\",\"c2\"]}";
	check_args(img, NULL, NULL, "[\"/bin/ep\",\"c1\",\"c2\"]");
	check_args(img, NULL, "[\"a1\"]", "[\"/bin/ep\",\"a1\"]");
	check_args(img, "[\"sh\"]", NULL, "[\"sh\"]");
	check_args(img, "[\"sh\",\"-c\"]", "[\"echo hi\"]", "[\"sh\",\"-c\",\"echo hi\"]");
	check_args("{\"Cmd\":[\"sh\"]}", NULL, NULL, "[\"sh\"]");
}

static void no_command_is_an_error(void **state)
{
	json_t *ic = image("{\"Env\":[]}");
	struct ocispec_in in = {.rootfs = "/r", .image_config = ic};
	struct err e = {0};
	assert_null(ocispec_build(&in, &e));
	assert_int_equal(e.code, ERR_INVALID);
	assert_non_null(strstr(e.msg, "no command"));
	json_decref(ic);
}

static void env_merges_with_pod_winning(void **state)
{
	json_t *ic = image("{\"Cmd\":[\"x\"],\"Env\":[\"A=image\",\"B=image\"]}");
	json_t *env = json_pack("[s, s]", "B=pod", "C=pod");
	struct ocispec_in in = {.env = env, .rootfs = "/r", .image_config = ic};
	struct err e = {0};
	json_t *doc = ocispec_build(&in, &e);
	assert_non_null(doc);
	char *got = json_dumps(json_object_get(json_object_get(doc, "process"), "env"), JSON_COMPACT);
	assert_string_equal(got, "[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:"
				 "/bin\",\"A=image\",\"B=pod\",\"C=pod\"]");
	free(got);
	json_decref(doc);
	json_decref(env);
	env = json_pack("[s]", "NOEQUALS");
	in.env = env;
	assert_null(ocispec_build(&in, &e));
	json_decref(env);
	json_decref(ic);
}

static void user_and_working_dir(void **state)
{
	json_t *ic = image("{\"Cmd\":[\"x\"],\"User\":\"1000:2000\",\"WorkingDir\":\"/srv\"}");
	struct ocispec_in in = {.rootfs = "/r", .image_config = ic};
	struct err e = {0};
	json_t *doc = ocispec_build(&in, &e), *p = json_object_get(doc, "process");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 1000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")), 2000);
	assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/srv");
	json_decref(doc);
	in.has_user = 1;
	in.uid = 5;
	in.gid = 6;
	in.working_dir = "/w";
	doc = ocispec_build(&in, &e);
	p = json_object_get(doc, "process");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 5);
	assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/w");
	json_decref(doc);
	in.working_dir = "relative";
	assert_null(ocispec_build(&in, &e));
	json_decref(ic);
	ic = image("{\"Cmd\":[\"x\"],\"User\":\"nobody\"}");
	struct ocispec_in in2 = {.rootfs = "/r", .image_config = ic};
	assert_null(ocispec_build(&in2, &e));
	assert_non_null(strstr(e.msg, "numeric"));
	json_decref(ic);
}

static int has_string(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), s)) return 1;
	return 0;
}

static void hardening_namespaces_mounts(void **state)
{
	json_t *ic = image("{\"Cmd\":[\"x\"]}");
	struct ocispec_mount m[] = {{"/run/cocod/volumes/v", "/data", 1}};
	struct ocispec_in in = {.rootfs = "/b/rootfs", .image_config = ic, .read_only_root = 1,
				.mounts = m, .nmounts = 1, .hostname = "pod"};
	struct err e = {0};
	json_t *doc = ocispec_build(&in, &e);
	assert_non_null(doc);
	json_t *root = json_object_get(doc, "root"), *lx = json_object_get(doc, "linux");
	assert_true(json_is_true(json_object_get(root, "readonly")));
	assert_string_equal(json_string_value(json_object_get(root, "path")), "/b/rootfs");
	assert_true(json_is_true(json_object_get(json_object_get(doc, "process"), "noNewPrivileges")));
	assert_string_equal(json_string_value(json_object_get(doc, "hostname")), "pod");
	size_t i;
	json_t *v;
	int pid = 0, net = 0;
	json_array_foreach(json_object_get(lx, "namespaces"), i, v)
	{
		pid |= !strcmp(json_string_value(json_object_get(v, "type")), "pid");
		net |= !strcmp(json_string_value(json_object_get(v, "type")), "network");
	}
	assert_true(pid);
	assert_false(net);
	/* crun runs without address-space randomization (gproc.h); the
	 * personality it sets in the container's init turns it back on */
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(lx, "personality"), "domain")),
		"LINUX");
	assert_null(json_object_get(json_object_get(lx, "personality"), "flags"));
	json_t *names = json_object_get(json_array_get(json_object_get(json_object_get(lx, "seccomp"),
								      "syscalls"), 0), "names");
	const char *must[] = {"keyctl", "add_key", "request_key", "ptrace", "mount", "umount2",
			      "pivot_root", "kexec_load", "kexec_file_load", "init_module",
			      "finit_module", "delete_module", "bpf", "perf_event_open", NULL};
	for (int k = 0; must[k]; k++)
		assert_true(has_string(names, must[k]));
	json_t *last = json_array_get(json_object_get(doc, "mounts"),
				      json_array_size(json_object_get(doc, "mounts")) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "destination")), "/data");
	assert_string_equal(json_string_value(json_object_get(last, "source")), "/run/cocod/volumes/v");
	assert_true(has_string(json_object_get(last, "options"), "ro"));
	json_decref(doc);
	m[0].destination = "data";
	assert_null(ocispec_build(&in, &e));
	json_decref(ic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(args_follow_kubernetes_rules),
		cmocka_unit_test(no_command_is_an_error),
		cmocka_unit_test(env_merges_with_pod_winning),
		cmocka_unit_test(user_and_working_dir),
		cmocka_unit_test(hardening_namespaces_mounts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
