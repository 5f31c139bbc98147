/* Unit tests for podctl, driven by a scripted fake runtime (it records every
 * call; the test completes them), a hand-driven clock and a recording sink.
 * Cases: happy path with events and conditions; init containers in order;
 * the restartPolicy matrix; back-off doubling, cap and reset;
 * CrashLoopBackOff; Succeeded/Failed; graceful and forced deletion;
 * activeDeadlineSeconds; restore (adopted, lost, terminal, re-created);
 * no runtime; image pull failures; scheduling through the controller;
 * sandbox retries; bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "podctl.h"

#define T0 1700000000000LL
#define GI (1024ull * 1024 * 1024)
#define MAXREC 512

struct fake {
	char *calls[MAXREC];
	int ncalls, seen;
	int fail_create, fail_pull, fail_start, fail_destroy;
	int exists;
};

struct rec_status {
	char uid[64];
	json_t *last;
	int changes;
};

struct fx {
	podctl *ctl;
	struct fake rt;
	int has_rt;
	int64_t now, wake;
	char *events[MAXREC];
	int nevents, eseen;
	struct rec_status st[8];
	char bound[8][64];
	int nbound;
	char removed[8][64];
	int nremoved;
	struct sched_node node;
};

/* ---- fake runtime ---- */

static void call(struct fake *f, const char *fmt, ...)
{
	char b[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	assert_true(f->ncalls < MAXREC);
	f->calls[f->ncalls++] = strdup(b);
}

static int rt_create(void *ud, const char *uid, const json_t *pod, struct err *e)
{
	struct fake *f = ud;
	assert_non_null(json_object_get(pod, "spec"));
	call(f, "create %s", uid);
	return f->fail_create ? err_set(e, ERR_IO, "no KVM") : 0;
}

static int rt_pull(void *ud, const char *uid, const char *c, const char *image, struct err *e)
{
	struct fake *f = ud;
	call(f, "pull %s %s %s", uid, c, image);
	return f->fail_pull ? err_set(e, ERR_IO, "registry down") : 0;
}

static int rt_start(void *ud, const char *uid, const char *c, struct err *e)
{
	struct fake *f = ud;
	call(f, "start %s %s", uid, c);
	return f->fail_start ? err_set(e, ERR_IO, "exec format error") : 0;
}

static int rt_stop(void *ud, const char *uid, const char *c, int64_t grace, struct err *e)
{
	call(ud, "stop %s %s %lld", uid, c, (long long)grace);
	return 0;
}

static int rt_destroy(void *ud, const char *uid, struct err *e)
{
	struct fake *f = ud;
	call(f, "destroy %s", uid);
	return f->fail_destroy ? err_set(e, ERR_IO, "libvirt busy") : 0;
}

static int rt_exists(void *ud, const char *uid)
{
	struct fake *f = ud;
	call(f, "exists %s", uid);
	return f->exists;
}

/* ---- recording sink and clock ---- */

static struct rec_status *slot(struct fx *x, const char *uid)
{
	for (int i = 0; i < 8; i++)
		if (strcmp(x->st[i].uid, uid) == 0)
			return &x->st[i];
	for (int i = 0; i < 8; i++)
		if (!x->st[i].uid[0]) {
			snprintf(x->st[i].uid, sizeof x->st[i].uid, "%s", uid);
			return &x->st[i];
		}
	fail_msg("too many pods in one test");
	return NULL;
}

static void sk_status(void *ud, const char *uid, const json_t *status)
{
	struct rec_status *s = slot(ud, uid);
	json_decref(s->last);
	s->last = json_deep_copy(status);
	s->changes++;
}

static void sk_event(void *ud, const char *uid, const char *type, const char *reason,
		     const char *msg)
{
	struct fx *x = ud;
	assert_true(x->nevents < MAXREC);
	size_t n = strlen(uid) + strlen(type) + strlen(reason) + strlen(msg) + 8;
	x->events[x->nevents] = malloc(n);
	snprintf(x->events[x->nevents++], n, "%s %s %s: %s", uid, type, reason, msg);
}

static void sk_bound(void *ud, const char *uid, const char *node)
{
	struct fx *x = ud;
	snprintf(x->bound[x->nbound++ % 8], 64, "%s@%s", uid, node);
}

static void sk_removed(void *ud, const char *uid)
{
	struct fx *x = ud;
	snprintf(x->removed[x->nremoved++ % 8], 64, "%s", uid);
}

static int64_t ck_now(void *ud) { return ((struct fx *)ud)->now; }
static void ck_wake(void *ud, int64_t at) { ((struct fx *)ud)->wake = at; }

static void fx_start(struct fx *x)
{
	struct runtime_ops ops = {&x->rt, rt_create, rt_pull, rt_start, rt_stop, rt_destroy,
				  rt_exists};
	struct podctl_sink sink = {x, sk_status, sk_event, sk_bound, sk_removed};
	struct podctl_clock clock = {x, ck_now, ck_wake};
	struct podctl_config cfg = {"box1", NULL};
	if (!x->node.cpu_milli)
		x->node = (struct sched_node){8000, 16 * GI, 110, SCHED_TEE_SIM};
	x->ctl = podctl_new(&cfg, &x->node, x->has_rt ? &ops : NULL, &sink, &clock);
}

static void fx_clear(struct fx *x)
{
	for (int i = 0; i < x->rt.ncalls; i++)
		free(x->rt.calls[i]);
	for (int i = 0; i < x->nevents; i++)
		free(x->events[i]);
	for (int i = 0; i < 8; i++)
		json_decref(x->st[i].last);
}

static struct fx *fx_new(void)
{
	struct fx *x = calloc(1, sizeof *x);
	x->now = T0;
	x->wake = -1;
	x->has_rt = 1;
	return x;
}

static int setup(void **state)
{
	struct fx *x = fx_new();
	fx_start(x);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	podctl_free(x->ctl);
	fx_clear(x);
	free(x);
	return 0;
}

/* Moves the clock forward by `ms`, ticking at every wake-up requested. */
static void elapse(struct fx *x, int64_t ms)
{
	int64_t target = x->now + ms;
	for (int guard = 0; x->wake >= 0 && x->wake <= target; guard++) {
		assert_true(guard < 1000);
		if (x->wake > x->now)
			x->now = x->wake;
		podctl_tick(x->ctl);
	}
	x->now = target;
}

/* ---- assertions ---- */

static void next_call(struct fx *x, const char *want)
{
	if (x->rt.seen >= x->rt.ncalls)
		fail_msg("expected runtime call \"%s\", got none", want);
	assert_string_equal(x->rt.calls[x->rt.seen], want);
	x->rt.seen++;
}

static void no_more_calls(struct fx *x)
{
	if (x->rt.seen < x->rt.ncalls)
		fail_msg("unexpected runtime call \"%s\"", x->rt.calls[x->rt.seen]);
}

static void next_event(struct fx *x, const char *want)
{
	if (x->eseen >= x->nevents)
		fail_msg("expected event \"%s\", got none", want);
	assert_string_equal(x->events[x->eseen], want);
	x->eseen++;
}

static void no_more_events(struct fx *x)
{
	if (x->eseen < x->nevents)
		fail_msg("unexpected event \"%s\"", x->events[x->eseen]);
}

static const json_t *status(struct fx *x, const char *uid) { return slot(x, uid)->last; }

static const char *sget(struct fx *x, const char *uid, const char *path)
{
	/* path like "containerStatuses.0.state.waiting.reason" */
	const json_t *v = status(x, uid);
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *tok = strtok(buf, "."); tok && v; tok = strtok(NULL, ".")) {
		if (json_is_array(v))
			v = json_array_get(v, (size_t)atoi(tok));
		else
			v = json_object_get(v, tok);
	}
	if (json_is_integer(v)) {
		static char num[32];
		snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
		return num;
	}
	if (json_is_boolean(v))
		return json_is_true(v) ? "true" : "false";
	return json_string_value(v);
}

static const char *phase(struct fx *x, const char *uid) { return sget(x, uid, "phase"); }

static const json_t *cond(struct fx *x, const char *uid, const char *type)
{
	size_t i;
	const json_t *c;
	json_array_foreach(json_object_get(status(x, uid), "conditions"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0)
			return c;
	}
	return NULL;
}

static const char *cond_status(struct fx *x, const char *uid, const char *type)
{
	const json_t *c = cond(x, uid, type);
	return c ? json_string_value(json_object_get(c, "status")) : "(absent)";
}

static const char *cond_field(struct fx *x, const char *uid, const char *type, const char *key)
{
	return json_string_value(json_object_get(cond(x, uid, type), key));
}

/* ---- pods ---- */

/* Builds a pod from JSON written with single quotes. */
static json_t *mkpod(const char *fmt, ...)
{
	char b[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	for (char *s = b; *s; s++)
		if (*s == '\'')
			*s = '"';
	json_error_t je;
	json_t *p = json_loads(b, 0, &je);
	if (!p)
		fail_msg("bad test pod: %s: %s", je.text, b);
	return p;
}

static json_t *simple_pod(const char *uid, const char *policy, const char *extra_spec)
{
	return mkpod("{'metadata':{'uid':'%s','name':'%s','namespace':'default',"
		     "'creationTimestamp':'2024-01-01T00:00:00Z'},"
		     "'spec':{'restartPolicy':'%s',%s"
		     "'containers':[{'name':'app','image':'nginx'}]}}",
		     uid, uid, policy, extra_spec ? extra_spec : "");
}

static void add(struct fx *x, json_t *pod, uint64_t cpu)
{
	struct podctl_req req = {.cpu_milli = cpu, .mem_bytes = 0, .qos_class = "BestEffort"};
	struct err e = {0};
	int rc = podctl_add(x->ctl, pod, &req, &e);
	if (rc != 0)
		fail_msg("podctl_add: %s", e.msg);
	json_decref(pod);
}

/* Adds a one-container pod and drives it to Running; consumes the calls and
 * events of the way there. */
static void run_pod(struct fx *x, const char *uid, const char *policy, const char *extra)
{
	char b[128];
	add(x, simple_pod(uid, policy, extra), 100);
	snprintf(b, sizeof b, "create %s", uid);
	next_call(x, b);
	assert_int_equal(podctl_on_sandbox_ready(x->ctl, uid), 0);
	snprintf(b, sizeof b, "pull %s app nginx", uid);
	next_call(x, b);
	assert_int_equal(podctl_on_pulled(x->ctl, uid, "app", "sha256:abc"), 0);
	snprintf(b, sizeof b, "start %s app", uid);
	next_call(x, b);
	assert_int_equal(podctl_on_container_started(x->ctl, uid, "app", "cid-1", 0), 0);
	assert_string_equal(phase(x, uid), "Running");
	x->eseen = x->nevents;
}

/* ---- cases ---- */

static void happy_path_goes_pending_to_running_with_events_and_conditions(void **state)
{
	struct fx *x = *state;
	add(x, simple_pod("u1", "Always", NULL), 500);
	next_call(x, "create u1");
	no_more_calls(x);
	next_event(x, "u1 Normal Scheduled: Successfully assigned default/u1 to box1");
	assert_string_equal(x->bound[0], "u1@box1");
	assert_string_equal(phase(x, "u1"), "Pending");
	assert_string_equal(cond_status(x, "u1", "PodScheduled"), "True");
	assert_string_equal(cond_status(x, "u1", "Ready"), "False");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.state.waiting.reason"),
			    "ContainerCreating");
	assert_string_equal(sget(x, "u1", "hostIP"), "127.0.0.1");
	assert_string_equal(sget(x, "u1", "startTime"), "2023-11-14T22:13:20Z");

	x->now += 2000;
	podctl_on_sandbox_ready(x->ctl, "u1");
	next_call(x, "pull u1 app nginx");
	next_event(x, "u1 Normal Pulling: Pulling image \"nginx\"");
	podctl_on_pulled(x->ctl, "u1", "app", "sha256:abc");
	next_call(x, "start u1 app");
	next_event(x, "u1 Normal Pulled: Successfully pulled image \"nginx\"");
	assert_string_equal(phase(x, "u1"), "Pending");
	x->now += 1000;
	podctl_on_container_started(x->ctl, "u1", "app", "cid-1", 0);
	next_event(x, "u1 Normal Created: Created container app");
	next_event(x, "u1 Normal Started: Started container app");
	no_more_events(x);
	no_more_calls(x);

	assert_string_equal(phase(x, "u1"), "Running");
	assert_string_equal(cond_status(x, "u1", "Initialized"), "True");
	assert_string_equal(cond_status(x, "u1", "ContainersReady"), "True");
	assert_string_equal(cond_status(x, "u1", "Ready"), "True");
	assert_string_equal(cond_field(x, "u1", "Ready", "lastTransitionTime"),
			    "2023-11-14T22:13:23Z");
	assert_string_equal(cond_field(x, "u1", "PodScheduled", "lastTransitionTime"),
			    "2023-11-14T22:13:20Z");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.state.running.startedAt"),
			    "2023-11-14T22:13:23Z");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.ready"), "true");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.started"), "true");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.containerID"), "cid-1");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.imageID"), "sha256:abc");
	assert_string_equal(sget(x, "u1", "containerStatuses.0.restartCount"), "0");
	assert_string_equal(sget(x, "u1", "qosClass"), "BestEffort");
	assert_non_null(podctl_status(x->ctl, "u1"));
	assert_true(json_equal(podctl_status(x->ctl, "u1"), status(x, "u1")));
}

static void init_containers_run_one_by_one_before_app_containers(void **state)
{
	struct fx *x = *state;
	add(x, mkpod("{'metadata':{'uid':'u','name':'w'},'spec':{"
		     "'initContainers':[{'name':'i1','image':'busybox'},"
		     "{'name':'i2','image':'alpine'}],"
		     "'containers':[{'name':'a','image':'nginx'},{'name':'b','image':'redis'}]}}"),
	    0);
	next_call(x, "create u");
	podctl_on_sandbox_ready(x->ctl, "u");
	next_call(x, "pull u i1 busybox");
	no_more_calls(x);
	assert_string_equal(cond_status(x, "u", "Initialized"), "False");
	assert_string_equal(cond_field(x, "u", "Initialized", "message"),
			    "containers with incomplete status: [i1 i2]");
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.reason"),
			    "PodInitializing");
	podctl_on_pulled(x->ctl, "u", "i1", NULL);
	next_call(x, "start u i1");
	podctl_on_container_started(x->ctl, "u", "i1", "c-i1", 0);
	no_more_calls(x); /* i2 waits for i1 to finish */
	podctl_on_container_exited(x->ctl, "u", "i1", 0, NULL, 0);
	next_call(x, "pull u i2 alpine");
	assert_string_equal(sget(x, "u", "initContainerStatuses.0.state.terminated.reason"),
			    "Completed");
	podctl_on_pulled(x->ctl, "u", "i2", NULL);
	next_call(x, "start u i2");
	podctl_on_container_started(x->ctl, "u", "i2", "c-i2", 0);
	no_more_calls(x);
	assert_string_equal(phase(x, "u"), "Pending");
	podctl_on_container_exited(x->ctl, "u", "i2", 0, NULL, 0);
	next_call(x, "pull u a nginx");
	next_call(x, "pull u b redis");
	no_more_calls(x);
	assert_string_equal(cond_status(x, "u", "Initialized"), "True");
	podctl_on_pulled(x->ctl, "u", "a", NULL);
	podctl_on_pulled(x->ctl, "u", "b", NULL);
	next_call(x, "start u a");
	next_call(x, "start u b");
	podctl_on_container_started(x->ctl, "u", "a", "c-a", 0);
	assert_string_equal(phase(x, "u"), "Pending"); /* b has not started yet */
	assert_string_equal(cond_field(x, "u", "Ready", "message"),
			    "containers with unready status: [b]");
	podctl_on_container_started(x->ctl, "u", "b", "c-b", 0);
	assert_string_equal(phase(x, "u"), "Running");
	assert_string_equal(cond_status(x, "u", "Ready"), "True");
}

static void restart_policy_matrix_decides_restart_and_phase(void **state)
{
	static const struct {
		const char *policy;
		int code;
		int restarts;
		const char *phase;
	} cases[] = {
		{"Always", 0, 1, "Running"},     {"Always", 1, 1, "Running"},
		{"OnFailure", 0, 0, "Succeeded"}, {"OnFailure", 1, 1, "Running"},
		{"Never", 0, 0, "Succeeded"},    {"Never", 1, 0, "Failed"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fx *x = fx_new();
		fx_start(x);
		run_pod(x, "u", cases[i].policy, NULL);
		podctl_on_container_exited(x->ctl, "u", "app", cases[i].code, NULL, 0);
		assert_string_equal(phase(x, "u"), cases[i].phase);
		if (cases[i].restarts) {
			const char *why = "containerStatuses.0.state.waiting.reason";
			assert_string_equal(sget(x, "u", why), "CrashLoopBackOff");
			assert_string_equal(
				sget(x, "u", "containerStatuses.0.lastState.terminated.exitCode"),
				cases[i].code ? "1" : "0");
			elapse(x, 10000);
			next_call(x, "start u app");
			assert_string_equal(sget(x, "u", "containerStatuses.0.restartCount"), "1");
		} else {
			assert_string_equal(
				sget(x, "u", "containerStatuses.0.state.terminated.exitCode"),
				cases[i].code ? "1" : "0");
			next_call(x, "destroy u"); /* terminal: the VM goes */
			elapse(x, 600000);
		}
		no_more_calls(x);
		podctl_free(x->ctl);
		fx_clear(x);
		free(x);
	}
}

static void crash_loop_back_off_doubles_to_five_minutes_and_resets(void **state)
{
	struct fx *x = *state;
	static const int64_t delays[] = {10, 20, 40, 80, 160, 300, 300};
	static const char *const shown[] = {"10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s"};
	run_pod(x, "u", "Always", NULL);
	for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
		char want[256];
		podctl_on_container_exited(x->ctl, "u", "app", 2, NULL, 0);
		snprintf(want, sizeof want,
			 "back-off %s restarting failed container=app pod=u_default(u)", shown[i]);
		assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.message"),
				    want);
		next_event(x, "u Warning BackOff: Back-off restarting failed container app in "
			      "pod u_default(u)");
		assert_string_equal(phase(x, "u"), "Running");
		assert_string_equal(cond_status(x, "u", "Ready"), "False");
		elapse(x, delays[i] * 1000 - 1);
		no_more_calls(x);
		elapse(x, 1);
		next_call(x, "start u app");
		podctl_on_container_started(x->ctl, "u", "app", "cid", 0);
		x->eseen = x->nevents;
	}
	assert_string_equal(sget(x, "u", "containerStatuses.0.restartCount"), "7");
	/* Ten minutes of running: the next crash waits 10 s again. */
	elapse(x, 600000);
	podctl_on_container_exited(x->ctl, "u", "app", 2, NULL, 0);
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.message"),
			    "back-off 10s restarting failed container=app pod=u_default(u)");
	elapse(x, 10000);
	next_call(x, "start u app");
}

static void all_containers_done_gives_succeeded_or_failed(void **state)
{
	struct fx *x = *state;
	add(x, mkpod("{'metadata':{'uid':'u','name':'j'},'spec':{'restartPolicy':'Never',"
		     "'containers':[{'name':'a','image':'x'},{'name':'b','image':'y'}]}}"),
	    0);
	podctl_on_sandbox_ready(x->ctl, "u");
	podctl_on_pulled(x->ctl, "u", "a", NULL);
	podctl_on_pulled(x->ctl, "u", "b", NULL);
	podctl_on_container_started(x->ctl, "u", "a", "ca", 0);
	podctl_on_container_started(x->ctl, "u", "b", "cb", 0);
	podctl_on_container_exited(x->ctl, "u", "a", 0, NULL, 0);
	assert_string_equal(phase(x, "u"), "Running"); /* b still runs */
	podctl_on_container_exited(x->ctl, "u", "b", 3, NULL, 0);
	assert_string_equal(phase(x, "u"), "Failed");
	assert_string_equal(sget(x, "u", "containerStatuses.1.state.terminated.reason"), "Error");
	assert_string_equal(cond_field(x, "u", "Ready", "reason"), "ContainersNotReady");

	add(x, mkpod("{'metadata':{'uid':'v','name':'k'},'spec':{'restartPolicy':'OnFailure',"
		     "'containers':[{'name':'a','image':'x'}]}}"),
	    0);
	podctl_on_sandbox_ready(x->ctl, "v");
	podctl_on_pulled(x->ctl, "v", "a", NULL);
	podctl_on_container_started(x->ctl, "v", "a", "ca", 0);
	podctl_on_container_exited(x->ctl, "v", "a", 0, NULL, 0);
	assert_string_equal(phase(x, "v"), "Succeeded");
	assert_string_equal(cond_field(x, "v", "Ready", "reason"), "PodCompleted");
	/* A terminal pod frees its capacity once its VM is gone. */
	uint32_t pods;
	sched_used(podctl_sched(x->ctl), NULL, NULL, &pods);
	assert_int_equal(pods, 2);
	podctl_on_sandbox_gone(x->ctl, "v", "destroyed");
	sched_used(podctl_sched(x->ctl), NULL, NULL, &pods);
	assert_int_equal(pods, 1);
	assert_string_equal(phase(x, "v"), "Succeeded");
	assert_int_equal(podctl_count(x->ctl), 2);
}

static void failed_init_container_with_never_fails_the_pod(void **state)
{
	struct fx *x = *state;
	add(x, mkpod("{'metadata':{'uid':'u','name':'w'},'spec':{'restartPolicy':'Never',"
		     "'initContainers':[{'name':'i','image':'busybox'}],"
		     "'containers':[{'name':'a','image':'nginx'}]}}"),
	    0);
	next_call(x, "create u");
	podctl_on_sandbox_ready(x->ctl, "u");
	next_call(x, "pull u i busybox");
	podctl_on_pulled(x->ctl, "u", "i", NULL);
	next_call(x, "start u i");
	podctl_on_container_started(x->ctl, "u", "i", "ci", 0);
	podctl_on_container_exited(x->ctl, "u", "i", 1, NULL, 0);
	assert_string_equal(phase(x, "u"), "Failed");
	next_call(x, "destroy u");
	no_more_calls(x); /* the app container never starts */
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.reason"),
			    "PodInitializing");
}

static void failed_init_container_with_always_is_retried(void **state)
{
	struct fx *x = *state;
	add(x, mkpod("{'metadata':{'uid':'u','name':'w'},'spec':{"
		     "'initContainers':[{'name':'i','image':'busybox'}],"
		     "'containers':[{'name':'a','image':'nginx'}]}}"),
	    0);
	podctl_on_sandbox_ready(x->ctl, "u");
	podctl_on_pulled(x->ctl, "u", "i", NULL);
	podctl_on_container_started(x->ctl, "u", "i", "ci", 0);
	x->rt.seen = x->rt.ncalls;
	podctl_on_container_exited(x->ctl, "u", "i", 1, NULL, 0);
	assert_string_equal(phase(x, "u"), "Pending");
	assert_string_equal(sget(x, "u", "initContainerStatuses.0.state.waiting.reason"),
			    "CrashLoopBackOff");
	elapse(x, 10000);
	next_call(x, "start u i");
	no_more_calls(x);
}

static void start_error_is_an_exit_with_code_128(void **state)
{
	struct fx *x = *state;
	add(x, mkpod("{'metadata':{'uid':'u','name':'j'},'spec':{'restartPolicy':'Never',"
		     "'containers':[{'name':'a','image':'x'},{'name':'b','image':'y'}]}}"),
	    0);
	podctl_on_sandbox_ready(x->ctl, "u");
	podctl_on_pulled(x->ctl, "u", "a", NULL);
	x->rt.fail_start = 1;
	podctl_on_pulled(x->ctl, "u", "b", NULL);
	assert_string_equal(sget(x, "u", "containerStatuses.1.state.terminated.reason"),
			    "StartError");
	assert_string_equal(sget(x, "u", "containerStatuses.1.state.terminated.exitCode"), "128");
	assert_string_equal(x->events[x->nevents - 1],
			    "u Warning Failed: Error: exec format error");
	assert_string_equal(phase(x, "u"), "Pending"); /* a is still starting */
	podctl_on_container_exited(x->ctl, "u", "a", 0, NULL, 0);
	assert_string_equal(phase(x, "u"), "Failed");
}

static void graceful_delete_kills_after_grace_then_destroys_and_removes(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", "'terminationGracePeriodSeconds':30,");
	assert_int_equal(podctl_delete(x->ctl, "u", -1, NULL), 0);
	next_event(x, "u Normal Killing: Stopping container app");
	next_call(x, "stop u app 30");
	no_more_calls(x);
	elapse(x, 29999);
	no_more_calls(x);
	assert_int_equal(x->nremoved, 0);
	elapse(x, 1);
	next_call(x, "stop u app 0");
	next_call(x, "destroy u");
	no_more_calls(x);
	assert_int_equal(x->nremoved, 0); /* not before the VM is gone */
	podctl_on_sandbox_gone(x->ctl, "u", "destroyed");
	assert_int_equal(x->nremoved, 1);
	assert_string_equal(x->removed[0], "u");
	assert_int_equal(podctl_count(x->ctl), 0);
	assert_null(podctl_status(x->ctl, "u"));
	uint32_t pods;
	sched_used(podctl_sched(x->ctl), NULL, NULL, &pods);
	assert_int_equal(pods, 0);
	no_more_events(x);
}

static void graceful_delete_ends_early_when_containers_exit(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", NULL);
	podctl_delete(x->ctl, "u", 30, NULL);
	next_call(x, "stop u app 30");
	x->now += 2000;
	podctl_on_container_exited(x->ctl, "u", "app", 143, NULL, 0);
	next_call(x, "destroy u"); /* no restart while deleting, no waiting */
	no_more_calls(x);
	podctl_on_sandbox_gone(x->ctl, "u", "destroyed");
	assert_int_equal(x->nremoved, 1);
}

static void force_delete_kills_and_destroys_at_once(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", NULL);
	podctl_delete(x->ctl, "u", 0, NULL);
	next_event(x, "u Normal Killing: Stopping container app");
	next_call(x, "stop u app 0");
	next_call(x, "destroy u");
	no_more_calls(x);
	podctl_on_sandbox_gone(x->ctl, "u", "destroyed");
	assert_int_equal(x->nremoved, 1);
}

static void delete_of_unscheduled_pod_removes_it_at_once(void **state)
{
	struct fx *x = *state;
	x->node = (struct sched_node){1000, GI, 110, SCHED_TEE_SIM};
	podctl_free(x->ctl);
	fx_start(x);
	add(x, simple_pod("big", "Always", NULL), 4000);
	no_more_calls(x);
	podctl_delete(x->ctl, "big", -1, NULL);
	no_more_calls(x);
	assert_int_equal(x->nremoved, 1);
	struct err e;
	assert_int_equal(podctl_delete(x->ctl, "big", -1, &e), ERR_NOT_FOUND);
}

static void active_deadline_fails_the_pod(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", "'activeDeadlineSeconds':60,");
	elapse(x, 59000);
	no_more_calls(x);
	elapse(x, 1000);
	next_event(x, "u Normal DeadlineExceeded: Pod was active on the node longer than the "
		      "specified deadline");
	next_event(x, "u Normal Killing: Stopping container app");
	next_call(x, "stop u app 30");
	assert_string_equal(phase(x, "u"), "Failed");
	assert_string_equal(sget(x, "u", "reason"), "DeadlineExceeded");
	podctl_on_container_exited(x->ctl, "u", "app", 137, NULL, 0);
	next_call(x, "destroy u");
	podctl_on_sandbox_gone(x->ctl, "u", "destroyed");
	assert_string_equal(phase(x, "u"), "Failed");
	assert_int_equal(x->nremoved, 0);
	elapse(x, 3600000);
	no_more_calls(x); /* no restart of a failed pod */
}

/* A stored copy of pod `uid` as the store would keep it: spec + status. */
static json_t *stored(struct fx *x, json_t *pod, const char *uid)
{
	json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("box1"));
	json_object_set_new(pod, "status", json_deep_copy(status(x, uid)));
	return pod;
}

static void restore_readopts_running_pod_whose_vm_exists(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", NULL);
	json_t *pod = stored(x, simple_pod("u", "Always", NULL), "u");
	podctl_free(x->ctl); /* kill -9: the VM keeps running */
	x->ctl = NULL;
	struct fx *y = fx_new();
	y->rt.exists = 1;
	fx_start(y);
	struct podctl_req req = {.cpu_milli = 100, .qos_class = "BestEffort"};
	assert_int_equal(podctl_restore(y->ctl, pod, &req, NULL), 0);
	podctl_schedule(y->ctl);
	next_call(y, "exists u");
	no_more_calls(y); /* nothing created or started twice */
	no_more_events(y);
	assert_int_equal(slot(y, "u")->changes, 0); /* status unchanged */
	assert_string_equal(json_string_value(json_object_get(podctl_status(y->ctl, "u"), "phase")),
			    "Running");
	uint64_t cpu;
	sched_used(podctl_sched(y->ctl), &cpu, NULL, NULL);
	assert_int_equal(cpu, 100);
	/* The adopted machine still works. */
	podctl_on_container_exited(y->ctl, "u", "app", 1, NULL, 0);
	assert_string_equal(sget(y, "u", "containerStatuses.0.state.waiting.reason"),
			    "CrashLoopBackOff");
	json_decref(pod);
	x->ctl = y->ctl;
	fx_clear(y);
	free(y);
}

static void restore_marks_running_pod_lost_when_vm_is_gone(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", NULL);
	json_t *pod = stored(x, simple_pod("u", "Always", NULL), "u");
	podctl_free(x->ctl);
	x->ctl = NULL;
	struct fx *y = fx_new();
	fx_start(y);
	assert_int_equal(podctl_restore(y->ctl, pod, NULL, NULL), 0);
	podctl_schedule(y->ctl);
	next_call(y, "exists u");
	no_more_calls(y);
	next_event(y, "u Warning Lost: the pod's VM is gone: it no longer existed when cocod "
		      "restarted");
	assert_string_equal(phase(y, "u"), "Failed");
	assert_string_equal(sget(y, "u", "reason"), "Lost");
	assert_string_equal(sget(y, "u", "containerStatuses.0.state.terminated.reason"),
			    "ContainerStatusUnknown");
	assert_string_equal(sget(y, "u", "containerStatuses.0.state.terminated.exitCode"), "137");
	uint32_t pods;
	sched_used(podctl_sched(y->ctl), NULL, NULL, &pods);
	assert_int_equal(pods, 0);
	json_decref(pod);
	x->ctl = y->ctl;
	fx_clear(y);
	free(y);
}

static void restore_leaves_terminal_pods_as_they_are(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Never", NULL);
	podctl_on_container_exited(x->ctl, "u", "app", 0, NULL, 0);
	assert_string_equal(phase(x, "u"), "Succeeded");
	json_t *pod = stored(x, simple_pod("u", "Never", NULL), "u");
	json_object_set_new(json_object_get(pod, "status"), "podIP", json_string("10.0.0.2"));
	podctl_free(x->ctl);
	x->ctl = NULL;
	struct fx *y = fx_new();
	fx_start(y);
	assert_int_equal(podctl_restore(y->ctl, pod, NULL, NULL), 0);
	podctl_schedule(y->ctl);
	next_call(y, "exists u");
	no_more_calls(y);
	no_more_events(y);
	assert_int_equal(slot(y, "u")->changes, 0);
	assert_true(json_equal(podctl_status(y->ctl, "u"),
			       json_object_get(pod, "status")));
	elapse(y, 3600000);
	no_more_calls(y);
	podctl_delete(y->ctl, "u", -1, NULL);
	assert_int_equal(y->nremoved, 1);
	json_decref(pod);
	x->ctl = y->ctl;
	fx_clear(y);
	free(y);
}

static void restore_recreates_vm_of_a_scheduled_pod_that_never_ran(void **state)
{
	struct fx *x = *state;
	add(x, simple_pod("u", "Always", NULL), 100);
	next_call(x, "create u");
	json_t *pod = stored(x, simple_pod("u", "Always", NULL), "u");
	podctl_free(x->ctl);
	x->ctl = NULL;
	struct fx *y = fx_new();
	fx_start(y);
	assert_int_equal(podctl_restore(y->ctl, pod, NULL, NULL), 0);
	podctl_schedule(y->ctl);
	next_call(y, "exists u");
	next_call(y, "create u");
	no_more_calls(y);
	no_more_events(y); /* not scheduled a second time */
	json_decref(pod);
	x->ctl = y->ctl;
	fx_clear(y);
	free(y);
}

static void restore_then_schedule_places_pending_pods_after_bound_ones(void **state)
{
	struct fx *x = *state;
	x->node = (struct sched_node){1000, GI, 110, SCHED_TEE_SIM};
	podctl_free(x->ctl);
	x->rt.exists = 1;
	fx_start(x);
	json_t *a = simple_pod("a", "Always", NULL);
	json_object_set_new(json_object_get(a, "spec"), "nodeName", json_string("box1"));
	json_object_set_new(a, "status", json_pack("{s:s}", "phase", "Running"));
	json_t *b = simple_pod("b", "Always", NULL);
	struct podctl_req req = {.cpu_milli = 1000};
	assert_int_equal(podctl_restore(x->ctl, b, &req, NULL), 0); /* pending, restored first */
	assert_int_equal(podctl_restore(x->ctl, a, &req, NULL), 0);
	podctl_schedule(x->ctl);
	assert_string_equal(cond_status(x, "b", "PodScheduled"), "False");
	assert_string_equal(cond_field(x, "b", "PodScheduled", "reason"), "Unschedulable");
	assert_int_equal(x->nbound, 0);
	json_decref(a);
	json_decref(b);
}

static void restored_unschedulable_pod_is_not_reported_again(void **state)
{
	struct fx *x = *state;
	x->node = (struct sched_node){1000, GI, 110, SCHED_TEE_SIM};
	podctl_free(x->ctl);
	fx_start(x);
	add(x, simple_pod("b", "Always", NULL), 2000);
	next_event(x, "b Warning FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu "
		      "(requested 2, free 1).");
	json_t *pod = simple_pod("b", "Always", NULL);
	json_object_set_new(pod, "status", json_deep_copy(status(x, "b")));
	podctl_free(x->ctl);
	x->ctl = NULL;
	struct fx *y = fx_new();
	y->node = x->node;
	fx_start(y);
	struct podctl_req req = {.cpu_milli = 2000, .qos_class = "BestEffort"};
	assert_int_equal(podctl_restore(y->ctl, pod, &req, NULL), 0);
	podctl_schedule(y->ctl);
	no_more_events(y);
	no_more_calls(y);
	assert_int_equal(slot(y, "b")->changes, 0);
	json_decref(pod);
	x->ctl = y->ctl;
	fx_clear(y);
	free(y);
}

static void delete_while_vm_boots_destroys_it_once_ready(void **state)
{
	struct fx *x = *state;
	add(x, simple_pod("u", "Always", NULL), 0);
	next_call(x, "create u");
	podctl_delete(x->ctl, "u", -1, NULL);
	no_more_calls(x);
	assert_int_equal(x->nremoved, 0);
	podctl_on_sandbox_ready(x->ctl, "u");
	next_call(x, "destroy u"); /* no container is started */
	no_more_calls(x);
	podctl_on_sandbox_gone(x->ctl, "u", "destroyed");
	assert_int_equal(x->nremoved, 1);
}

static void no_runtime_places_pod_and_keeps_it_pending_with_message(void **state)
{
	struct fx *x = *state;
	podctl_free(x->ctl);
	x->has_rt = 0;
	fx_start(x);
	add(x, simple_pod("u", "Always", NULL), 100);
	assert_string_equal(phase(x, "u"), "Pending");
	assert_string_equal(cond_status(x, "u", "PodScheduled"), "True");
	assert_string_equal(cond_status(x, "u", "Ready"), "False");
	next_event(x, "u Normal Scheduled: Successfully assigned default/u to box1");
	next_event(x, "u Warning FailedCreatePodSandBox: no container runtime is available on this "
		      "box yet");
	no_more_events(x);
	const json_t *waiting = json_object_get(
		json_object_get(json_array_get(json_object_get(status(x, "u"), "containerStatuses"), 0),
				"state"),
		"waiting");
	assert_string_equal(json_string_value(json_object_get(waiting, "reason")), "ContainerCreating");
	assert_string_equal(json_string_value(json_object_get(waiting, "message")),
			    "no container runtime is available on this box yet");
	elapse(x, 3600000);
	no_more_events(x);
	assert_int_equal(x->nbound, 1);
	podctl_delete(x->ctl, "u", -1, NULL);
	assert_int_equal(x->nremoved, 1);
}

static void image_pull_failure_shows_err_image_pull_then_back_off(void **state)
{
	struct fx *x = *state;
	add(x, simple_pod("u", "Always", NULL), 0);
	podctl_on_sandbox_ready(x->ctl, "u");
	next_call(x, "create u");
	next_call(x, "pull u app nginx");
	x->eseen = x->nevents;
	podctl_on_pull_failed(x->ctl, "u", "app", "manifest unknown");
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.reason"),
			    "ErrImagePull");
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.message"),
			    "manifest unknown");
	next_event(x, "u Warning Failed: Failed to pull image \"nginx\": manifest unknown");
	next_event(x, "u Warning Failed: Error: ErrImagePull");
	elapse(x, 5000);
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.reason"),
			    "ImagePullBackOff");
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.message"),
			    "Back-off pulling image \"nginx\"");
	next_event(x, "u Normal BackOff: Back-off pulling image \"nginx\"");
	next_event(x, "u Warning Failed: Error: ImagePullBackOff");
	no_more_calls(x);
	elapse(x, 5000); /* 10 s after the failure */
	next_call(x, "pull u app nginx");
	podctl_on_pull_failed(x->ctl, "u", "app", "manifest unknown");
	elapse(x, 19999);
	no_more_calls(x);
	elapse(x, 1); /* the second back-off is 20 s */
	next_call(x, "pull u app nginx");
	podctl_on_pulled(x->ctl, "u", "app", NULL);
	next_call(x, "start u app");
	assert_string_equal(sget(x, "u", "containerStatuses.0.state.waiting.reason"),
			    "ContainerCreating");
}

static void unschedulable_pod_waits_then_runs_when_capacity_frees(void **state)
{
	struct fx *x = *state;
	x->node = (struct sched_node){2000, GI, 110, SCHED_TEE_SIM};
	podctl_free(x->ctl);
	fx_start(x);
	run_pod(x, "a", "Always", NULL); /* 100m */
	add(x, simple_pod("b", "Always", NULL), 2000);
	no_more_calls(x);
	next_event(x, "b Warning FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu "
		      "(requested 2, free 1900m).");
	assert_string_equal(cond_field(x, "b", "PodScheduled", "reason"), "Unschedulable");
	assert_string_equal(phase(x, "b"), "Pending");
	add(x, simple_pod("c", "Always", NULL), 0); /* another run: b is not reported again */
	next_call(x, "create c");
	next_event(x, "c Normal Scheduled: Successfully assigned default/c to box1");
	no_more_events(x);
	podctl_delete(x->ctl, "a", 0, NULL);
	next_call(x, "stop a app 0");
	next_call(x, "destroy a");
	no_more_calls(x);
	podctl_on_sandbox_gone(x->ctl, "a", "destroyed");
	next_call(x, "create b");
	assert_string_equal(cond_status(x, "b", "PodScheduled"), "True");
}

static void missing_tee_makes_pod_unschedulable(void **state)
{
	struct fx *x = *state;
	struct podctl_req req = {.tee = "snp", .runtime_class = "cocod-snp"};
	json_t *pod = simple_pod("u", "Always", NULL);
	assert_int_equal(podctl_add(x->ctl, pod, &req, NULL), 0);
	json_decref(pod);
	no_more_calls(x);
	assert_string_equal(cond_field(x, "u", "PodScheduled", "message"),
			    "runtime class cocod-snp needs the snp TEE, which this box lacks "
			    "(available: sim)");
}

static void sandbox_failure_is_retried_with_back_off(void **state)
{
	struct fx *x = *state;
	x->rt.fail_create = 1;
	add(x, simple_pod("u", "Always", NULL), 0);
	next_call(x, "create u");
	assert_string_equal(phase(x, "u"), "Pending");
	x->rt.fail_create = 0;
	elapse(x, 9999);
	no_more_calls(x);
	elapse(x, 1);
	next_call(x, "create u");
	podctl_on_sandbox_failed(x->ctl, "u", "guest did not boot");
	elapse(x, 19999);
	no_more_calls(x);
	elapse(x, 1);
	next_call(x, "create u");
	int found = 0;
	for (int i = 0; i < x->nevents; i++)
		found += strcmp(x->events[i], "u Warning FailedCreatePodSandBox: Failed to create "
					      "pod sandbox: guest did not boot") == 0;
	assert_int_equal(found, 1);
}

static void hostile_guest_fails_the_pod_without_retry(void **state)
{
	struct fx *x = *state;
	add(x, simple_pod("u", "Always", NULL), 0);
	next_call(x, "create u");
	podctl_on_sandbox_failed(x->ctl, "u", "hostile guest: agent channel: frame is not JSON");
	assert_string_equal(phase(x, "u"), "Failed");
	assert_string_equal(sget(x, "u", "reason"), "HostileGuest");
	assert_string_equal(sget(x, "u", "message"),
			    "hostile guest: agent channel: frame is not JSON");
	elapse(x, 600000);
	no_more_calls(x);
	uint32_t pods;
	sched_used(podctl_sched(x->ctl), NULL, NULL, &pods);
	assert_int_equal(pods, 0);
	/* after ready, a hostile guest also fails its running pod */
	run_pod(x, "v", "Always", NULL);
	podctl_on_sandbox_gone(x->ctl, "v", "hostile guest: more than 1048576 bytes (flood)");
	assert_string_equal(phase(x, "v"), "Failed");
	assert_string_equal(sget(x, "v", "reason"), "HostileGuest");
}

static void vm_vanishing_under_a_running_pod_fails_it(void **state)
{
	struct fx *x = *state;
	run_pod(x, "u", "Always", NULL);
	podctl_on_sandbox_gone(x->ctl, "u", "qemu exited");
	assert_string_equal(phase(x, "u"), "Failed");
	assert_string_equal(sget(x, "u", "message"), "the pod's VM is gone: qemu exited");
	next_event(x, "u Warning Lost: the pod's VM is gone: qemu exited");
	uint32_t pods;
	sched_used(podctl_sched(x->ctl), NULL, NULL, &pods);
	assert_int_equal(pods, 0);
	assert_int_equal(podctl_on_sandbox_gone(x->ctl, "u", "again"), ERR_CONFLICT);
}

static void bounds_are_enforced(void **state)
{
	struct fx *x = *state;
	struct err e;
	char spec[8192] = "{'metadata':{'uid':'u','name':'n'},'spec':{'containers':[";
	for (int i = 0; i < PODCTL_MAX_CONTAINERS + 1; i++)
		snprintf(spec + strlen(spec), sizeof spec - strlen(spec),
			 "%s{'name':'c%d','image':'x'}", i ? "," : "", i);
	strcat(spec, "]}}");
	for (char *s = spec; *s; s++)
		if (*s == '\'')
			*s = '"';
	json_t *pod = json_loads(spec, 0, NULL);
	assert_non_null(pod);
	assert_int_equal(podctl_add(x->ctl, pod, NULL, &e), ERR_INVALID);
	json_decref(pod);
	pod = mkpod("{'metadata':{'uid':'u','name':'n'},'spec':{'containers':[{'name':'a'}]}}");
	assert_int_equal(podctl_add(x->ctl, pod, NULL, &e), ERR_INVALID);
	json_decref(pod);
	assert_int_equal(podctl_count(x->ctl), 0);

	add(x, simple_pod("u", "Always", NULL), 0);
	assert_int_equal(podctl_add(x->ctl, pod = simple_pod("u", "Always", NULL), NULL, &e),
			 ERR_EXISTS);
	json_decref(pod);
	podctl_on_sandbox_ready(x->ctl, "u");
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	podctl_on_pull_failed(x->ctl, "u", "app", big);
	const char *ev = x->events[x->nevents - 2]; /* "Failed to pull image ..." */
	assert_int_equal(strlen(ev), strlen("u Warning Failed: ") + PODCTL_EVENT_MAX - 1);
	assert_int_equal(podctl_on_pulled(x->ctl, "u", "nope", NULL), ERR_NOT_FOUND);
	assert_int_equal(podctl_on_pulled(x->ctl, "nope", "app", NULL), ERR_NOT_FOUND);
	assert_int_equal(podctl_on_container_started(x->ctl, "u", "app", "c", 0), ERR_CONFLICT);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(happy_path_goes_pending_to_running_with_events_and_conditions),
		T(init_containers_run_one_by_one_before_app_containers),
		T(restart_policy_matrix_decides_restart_and_phase),
		T(crash_loop_back_off_doubles_to_five_minutes_and_resets),
		T(all_containers_done_gives_succeeded_or_failed),
		T(failed_init_container_with_never_fails_the_pod),
		T(failed_init_container_with_always_is_retried),
		T(start_error_is_an_exit_with_code_128),
		T(graceful_delete_kills_after_grace_then_destroys_and_removes),
		T(graceful_delete_ends_early_when_containers_exit),
		T(force_delete_kills_and_destroys_at_once),
		T(delete_of_unscheduled_pod_removes_it_at_once),
		T(active_deadline_fails_the_pod),
		T(restore_readopts_running_pod_whose_vm_exists),
		T(restore_marks_running_pod_lost_when_vm_is_gone),
		T(restore_leaves_terminal_pods_as_they_are),
		T(restore_recreates_vm_of_a_scheduled_pod_that_never_ran),
		T(restore_then_schedule_places_pending_pods_after_bound_ones),
		T(restored_unschedulable_pod_is_not_reported_again),
		T(delete_while_vm_boots_destroys_it_once_ready),
		T(no_runtime_places_pod_and_keeps_it_pending_with_message),
		T(image_pull_failure_shows_err_image_pull_then_back_off),
		T(unschedulable_pod_waits_then_runs_when_capacity_frees),
		T(missing_tee_makes_pod_unschedulable),
		T(sandbox_failure_is_retried_with_back_off),
		T(hostile_guest_fails_the_pod_without_retry),
		T(vm_vanishing_under_a_running_pod_fails_it),
		T(bounds_are_enforced),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
