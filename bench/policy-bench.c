/* policy_bench: times policy decisions through the daemon's own path
 * (policy_eval: sandbox call plus the decision log in one transaction per
 * batch of 64, as admission runs inside the pod transaction) and the bare
 * sandbox call, for the default admission and attestation policies and for
 * an empty Lua function.  Prints median and p99 in microseconds.
 *   policy-bench [iterations] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy.h"
#include "util.h"

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, int n)
{
	qsort(ns, (size_t)n, sizeof *ns, cmp);
	printf("%-44s median %7.2f us   p99 %7.2f us\n", what, ns[n / 2] / 1e3, ns[n * 99 / 100] / 1e3);
}

static json_t *sample_pod(void)
{
	return json_loads("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\",\"namespace\":\"default\","
			  "\"labels\":{\"app\":\"web\"}},\"spec\":{\"runtimeClassName\":\"cocod-sim\",\"restartPolicy\":\"Always\","
			  "\"containers\":[{\"name\":\"c\",\"image\":\"busybox:1.36\",\"command\":[\"sh\",\"-c\",\"echo hi\"],"
			  "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"},\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"}}}]}}",
			  0, NULL);
}

static json_t *sample_claims(void)
{
	return json_loads("{\"tee\":\"snp\",\"sim\":false,\"measurement\":\"a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c\","
			  "\"host_data\":\"00\",\"report_data\":\"00\",\"policy\":{\"debug\":false,\"migrate_ma\":false,\"smt\":true},"
			  "\"tcb_status\":\"UpToDate\",\"tcb\":{\"bootloader\":3,\"tee\":0,\"snp\":8,\"microcode\":115}}",
			  0, NULL);
}

static json_t *sample_refs(void)
{
	return json_loads("{\"measurement\":[\"a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c\"],"
			  "\"host_data\":[\"00\"]}", 0, NULL);
}

/* Times `n` decisions of hook `h` through policy_eval, committing the
 * decision log every 64 decisions as a busy daemon's batches would. */
static void through_engine(policy *p, store *s, enum policy_hook h, json_t *const *args, int nargs,
			   int n, const char *what)
{
	uint64_t *ns = xcalloc((size_t)n, sizeof *ns);
	struct err e;
	for (int i = 0; i < n; i++) {
		if (i % 64 == 0)
			store_begin(s, &e);
		struct policy_verdict v;
		uint64_t t0 = now_ns();
		policy_eval(p, h, "bench", args, nargs, &v);
		ns[i] = now_ns() - t0;
		if (!v.allow && i == 0)
			fprintf(stderr, "note: %s denied: %s\n", what, v.reason);
		policy_verdict_fini(&v);
		if (i % 64 == 63)
			store_commit(s, &e);
	}
	store_commit(s, &e);
	report(what, ns, n);
	free(ns);
}

static void bare(const char *src, const char *fn, json_t *const *args, int nargs, int n, const char *what)
{
	struct sandbox_limits lim;
	sandbox_policy *sp;
	struct err e;
	sandbox_default_limits(&lim);
	if (sandbox_compile("bench.lua", src, strlen(src), fn, &lim, &sp, &e)) {
		fprintf(stderr, "%s: %s\n", what, e.msg);
		exit(1);
	}
	uint64_t *ns = xcalloc((size_t)n, sizeof *ns);
	for (int i = 0; i < n; i++) {
		struct sandbox_decision d;
		uint64_t t0 = now_ns();
		sandbox_call(sp, args, nargs, &d);
		ns[i] = now_ns() - t0;
		sandbox_decision_fini(&d);
	}
	report(what, ns, n);
	free(ns);
	sandbox_free(sp);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20000;
	char dir[] = "/tmp/cocod-policy-bench-XXXXXX";
	struct err e;
	store *s;
	policy *p;
	if (!mkdtemp(dir))
		return 1;
	char *db = xasprintf("%s/cocod.db", dir);
	if (store_open(db, &s, &e) || policy_new(s, NULL, NULL, &p, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	json_t *pod = sample_pod(), *req = json_pack("{s:s, s:s}", "operation", "CREATE", "namespace", "default");
	json_t *claims = sample_claims(), *refs = sample_refs();
	json_t *admit_args[2] = {pod, req}, *appraise_args[2] = {claims, refs};
	printf("%d decisions each, after 1000 warm-up calls\n", n);
	through_engine(p, s, POLICY_ADMISSION, admit_args, 2, 1000, "(warm-up)");
	through_engine(p, s, POLICY_ADMISSION, admit_args, 2, n, "admission, default policy, policy_eval");
	through_engine(p, s, POLICY_ATTESTATION, appraise_args, 2, n, "appraisal, default policy, policy_eval");
	int v;
	const char *empty = "function admit(pod, request) return {allow = true} end\n";
	if (policy_set(p, POLICY_ADMISSION, empty, strlen(empty), "bench", &v, NULL, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	through_engine(p, s, POLICY_ADMISSION, admit_args, 2, n, "empty Lua function, policy_eval");
	bare(empty, "admit", admit_args, 2, n, "empty Lua function, bare sandbox call");
	json_decref(pod);
	json_decref(req);
	json_decref(claims);
	json_decref(refs);
	policy_free(p);
	store_close(s);
	char *rm = xasprintf("rm -rf %s", dir);
	if (system(rm) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	free(rm);
	free(db);
	return 0;
}
