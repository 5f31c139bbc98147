/* vmboot: a small driver for tests/integration/test_vm.py that boots a
 * REAL pod VM through the library, without the daemon.  It prints one JSON
 * object per line on stdout for the test to check.
 *
 *   vmboot pod DATA_DIR KIT_DIR POD_JSON
 *       launcher (accelerator probe, qemu.conf, domain XML) + runtime
 *       (agent channel, `ready`, create_sandbox) + podctl + images: the pod
 *       runs to Succeeded/Failed, its logs are read back, then it is
 *       deleted (destroy_sandbox: the guest powers off, the domain is gone)
 *
 * One boot covers what used to take two (a bare launcher boot and a pod):
 * the test reads the rest from the daemon log on stderr, the console and
 * libvirt's domain log.  Built by test_vm.py against build/libcocod.a. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "images.h"
#include "kit.h"
#include "launcher.h"
#include "log.h"
#include "podctl.h"
#include "runtime.h"
#include "store.h"
#include "util.h"

static uv_loop_t loop;
static uint64_t t0;
static int step; /* progress flags */
static launcher *pod_l;
static const char *pod_uid;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("{\"t_ms\": %llu, ", (unsigned long long)((now_ns() - t0) / 1000000));
	vprintf(fmt, ap);
	printf("}\n");
	fflush(stdout);
	va_end(ap);
}

static void die(const char *what, const char *msg)
{
	out("\"event\": \"error\", \"what\": \"%s\", \"message\": %s", what,
	    json_dumps(json_string(msg ? msg : ""), JSON_ENCODE_ANY));
	exit(1);
}

static void wait_for(const int *flag, int seconds, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)seconds * 1000000000ull;
	while (!*flag && now_ns() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(2000);
	}
	if (!*flag)
		die(what, "timed out");
}

static void on_done(void *arg, const struct err *e)
{
	if (e)
		die(arg, e->msg);
	step++;
}

static launcher *start_launcher(const char *data, const struct kit *k)
{
	struct launcher_opts lo = {.data_dir = data, .accel = getenv("VMBOOT_ACCEL"),
				   .kernel = k->kernel_path, .probe_timeout_ms = 8000};
	struct err e = {0};
	launcher *l;
	if (launcher_new(&loop, &lo, &l, &e))
		die("launcher_new", e.msg);
	int s = step;
	launcher_start(l, on_done, "launcher_start");
	int target = s + 1;
	uint64_t end = now_ns() + 60000000000ull;
	while (step < target && now_ns() < end)
		uv_run(&loop, UV_RUN_ONCE);
	if (step < target)
		die("launcher_start", "timed out");
	out("\"event\": \"started\", \"accel\": \"%s\"", launcher_accel(l));
	return l;
}

/* ---- pod mode ---- */

static json_t *status;
static int removed;
static int64_t wake = -1;
static void sink_status(void *ud, const char *uid, const json_t *st)
{
	json_decref(status);
	status = json_deep_copy(st);
	out("\"event\": \"status\", \"phase\": \"%s\"",
	    json_string_value(json_object_get(status, "phase")));
}
static void sink_event(void *ud, const char *uid, const char *type, const char *reason,
		       const char *message)
{
	json_t *m = json_string(message);
	char *s = json_dumps(m, JSON_ENCODE_ANY);
	out("\"event\": \"k8s\", \"type\": \"%s\", \"reason\": \"%s\", \"message\": %s", type, reason,
	    s);
	free(s);
	json_decref(m);
	/* the container runs in the guest: its domain must exist */
	if (strcmp(reason, "Started") == 0)
		out("\"event\": \"domain\", \"exists\": %d", launcher_exists(pod_l, pod_uid));
}
static void sink_bound(void *ud, const char *uid, const char *node) {}
static void sink_removed(void *ud, const char *uid) { removed = 1; }
static int64_t clock_now(void *ud)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static void clock_wake(void *ud, int64_t at) { wake = at; }

static int terminal(void)
{
	const char *ph = json_string_value(json_object_get(status, "phase"));
	return ph && (strcmp(ph, "Succeeded") == 0 || strcmp(ph, "Failed") == 0);
}

static void run_ctl(podctl *ctl, int (*until)(void), int seconds, const char *what)
{
	uint64_t end = now_ns() + (uint64_t)seconds * 1000000000ull;
	while (!until() && now_ns() < end) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if (wake >= 0 && clock_now(NULL) >= wake) {
			wake = -1;
			podctl_tick(ctl);
		}
		usleep(2000);
	}
	if (!until())
		die(what, "timed out");
}

static struct buf logs;
static int logs_done;
static int on_log(void *arg, const char *d, size_t n)
{
	buf_add(&logs, d, n);
	return 0;
}
static void on_log_end(void *arg, const struct err *e) { logs_done = 1; }
static int is_removed(void) { return removed; }

static int pod(const char *data, const struct kit *k, const char *pod_path)
{
	struct err e = {0};
	json_t *p = json_load_file(pod_path, 0, NULL);
	if (!p)
		die("pod", "cannot read the pod JSON");
	launcher *l = start_launcher(data, k);
	pod_l = l;
	pod_uid = json_string_value(json_object_get(json_object_get(p, "metadata"), "uid"));
	store *st;
	images *im;
	cleanup_free char *db = xasprintf("%s/cocod.db", data);
	if (store_open(db, &st, &e) || images_open(st, data, &im, &e))
		die("images", e.msg);
	struct runtime_opts ro = {.data_dir = data, .kernel = k->kernel_path,
				  .initrd = k->initramfs_path, .cmdline = k->cmdline};
	runtime *rt;
	if (runtime_new(&loop, l, im, &ro, &rt, &e))
		die("runtime", e.msg);
	struct podctl_config cfg = {.node_name = "it"};
	struct sched_node node = {2000, 4ull << 30, 10, SCHED_TEE_SIM};
	struct podctl_sink sink = {NULL, sink_status, sink_event, sink_bound, sink_removed};
	struct podctl_clock clock = {NULL, clock_now, clock_wake};
	podctl *ctl = podctl_new(&cfg, &node, runtime_ops(rt), &sink, &clock);
	runtime_attach(rt, ctl);
	runtime_restored(rt);
	struct podctl_req req = {.tee = "sim", .runtime_class = "cocod-sim", .qos_class = "BestEffort"};
	if (podctl_add(ctl, p, &req, &e))
		die("podctl_add", e.msg);
	run_ctl(ctl, terminal, 120, "terminal phase");
	const char *uid = pod_uid;
	const char *ctr = json_string_value(
		json_object_get(json_array_get(json_object_get(json_object_get(p, "spec"), "containers"), 0),
				"name"));
	struct runtime_log_opts lo = {.tail_lines = -1, .limit_bytes = -1};
	buf_init(&logs);
	if (runtime_logs(rt, uid, ctr, &lo, on_log, on_log_end, NULL, NULL, &e))
		die("logs", e.msg);
	wait_for(&logs_done, 10, "logs");
	json_t *lj = json_stringn(logs.data ? logs.data : "", logs.len);
	char *ls = json_dumps(lj, JSON_ENCODE_ANY);
	out("\"event\": \"logs\", \"text\": %s", ls ? ls : "\"\"");
	free(ls);
	json_decref(lj);
	char *sj = json_dumps(status, JSON_COMPACT);
	out("\"event\": \"final\", \"status\": %s", sj);
	free(sj);
	if (podctl_delete(ctl, uid, 0, &e))
		die("delete", e.msg);
	run_ctl(ctl, is_removed, 60, "removal");
	out("\"event\": \"removed\", \"exists\": %d", launcher_exists(l, uid));
	json_decref(p);
	return 0;
}

int main(int argc, char **argv)
{
	launcher_prepare_process(); /* before any libuv loop: see launcher.h */
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_DEBUG);
	t0 = now_ns();
	if (argc < 5 || strcmp(argv[1], "pod")) {
		fprintf(stderr, "usage: vmboot pod DATA_DIR KIT_DIR POD_JSON\n");
		return 2;
	}
	struct kit k;
	struct err e = {0};
	if (kit_load(argv[3], &k, &e))
		die("kit", e.msg);
	uv_loop_init(&loop);
	int rc = pod(argv[2], &k, argv[4]);
	kit_fini(&k);
	/* VMs are gone; libvirt's thread and the loop die with the process */
	return rc;
}
