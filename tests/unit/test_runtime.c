/* Unit tests for runtime: the container log files (line format, partial
 * lines, rotation), reading them back (timestamps, tail, byte limit,
 * follow), and whole pod lives driven by the real pod controller against
 * libvirt's test:///default mock driver and a fake guest agent listening on
 * the pod's channel socket (the mock boots nothing, so the test plays the
 * guest): boot → create_sandbox → image streaming → container start → logs
 * → exit → Succeeded → teardown; a missing image; a hostile guest; init-data
 * (sent as text, its digest in the domain's metadata, the guest's digest
 * checked against the recorded one); the warm pool (filled after
 * runtime_restored, taken by a pod of its size, following the size of pods,
 * never serving init-data, dropped and backed off when its agent stays
 * silent, destroyed at close, its taken VM re-adopted after a crash).
 * Cases: log_lines_and_partials, log_rotation, logs_backlog_options,
 * logs_not_found, pod_life_on_mock, missing_image_is_errimagepull,
 * hostile_guest_fails_pod, init_data_reaches_the_guest,
 * init_data_digest_mismatch_fails_pod, init_data_unlike_its_record_is_not_booted,
 * pool_serves_a_pod_of_its_shape, pool_follows_the_size_of_pods,
 * init_data_pod_never_takes_the_pool, pool_vm_not_ready_is_dropped_then_backs_off,
 * runtime_close_destroys_the_pool, pool_vm_of_a_pod_is_adopted_after_a_crash,
 * pool_vm_prefetches_the_last_pods_images. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "b64.h"
#include "frame.h"
#include "images.h"
#include "initdata.h"
#include "launcher.h"
#include "podctl.h"
#include "runtime.h"
#include "store.h"
#include "util.h"
#include "testinit.h"

static char *mktmp(void)
{
	char tmpl[] = "/tmp/rt-test-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return xstrdup(tmpl);
}

static void rm_rf(const char *dir)
{
	cleanup_free char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void log_lines_and_partials(void **state)
{
	cleanup_free char *dir = mktmp();
	cleanup_free char *path = xasprintf("%s/web.log", dir);
	struct err e = {0};
	assert_int_equal(runtime_log_append(path, 1 << 20, "stdout", "hello\nwor", 9, &e), 0);
	assert_int_equal(runtime_log_append(path, 1 << 20, "stderr", "ld\n", 3, &e), 0);
	char *data;
	size_t len;
	assert_int_equal(file_read(path, 1 << 20, &data, &len, &e), 0);
	/* "<time> stdout F hello\n<time> stdout P wor\n<time> stderr F ld\n" */
	char ts[3][64], st[3][16], tag[3][4], text[3][16];
	assert_int_equal(sscanf(data, "%63s %15s %3s %15s\n%63s %15s %3s %15s\n%63s %15s %3s %15s",
	                        ts[0], st[0], tag[0], text[0], ts[1], st[1], tag[1], text[1], ts[2],
	                        st[2], tag[2], text[2]),
	                 12);
	assert_string_equal(st[0], "stdout");
	assert_string_equal(tag[0], "F");
	assert_string_equal(text[0], "hello");
	assert_string_equal(tag[1], "P");
	assert_string_equal(text[1], "wor");
	assert_string_equal(st[2], "stderr");
	assert_string_equal(text[2], "ld");
	assert_int_equal(strlen(ts[0]), 30); /* 2026-01-01T00:00:00.123456789Z */
	assert_int_equal(ts[0][29], 'Z');
	free(data);
	rm_rf(dir);
}

static void log_rotation(void **state)
{
	cleanup_free char *dir = mktmp();
	cleanup_free char *path = xasprintf("%s/web.log", dir);
	cleanup_free char *old = xasprintf("%s.1", path);
	struct err e = {0};
	struct stat st;
	for (int i = 0; i < 20; i++)
		assert_int_equal(runtime_log_append(path, 400, "stdout", "0123456789\n", 11, &e),
		                 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size <= 400);
	assert_int_equal(stat(old, &st), 0);
	assert_true(st.st_size <= 400 && st.st_size > 0);
	rm_rf(dir);
}

/* ---- reading logs back ---- */

struct rd {
	struct buf got;
	int ended;
	int stop_after; /* on_data returns 1 after this many calls (0: never) */
	int calls;
};

static int rd_data(void *arg, const char *d, size_t n)
{
	struct rd *r = arg;
	buf_add(&r->got, d, n);
	return r->stop_after && ++r->calls >= r->stop_after;
}

static void rd_end(void *arg, const struct err *e)
{
	((struct rd *)arg)->ended++;
}

static void spin_loop(uv_loop_t *loop, const int *flag, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while ((!flag || !*flag) && now_ns() < end) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static void read_logs(runtime *rt, uv_loop_t *loop, const struct runtime_log_opts *o, struct rd *r)
{
	struct err e = {0};
	memset(r, 0, sizeof *r);
	buf_init(&r->got);
	assert_int_equal(runtime_logs(rt, "u1", "web", o, rd_data, rd_end, r, NULL, &e), 0);
	spin_loop(loop, &r->ended, 3000);
	assert_int_equal(r->ended, 1);
}

static void logs_backlog_options(void **state)
{
	cleanup_free char *dir = mktmp();
	cleanup_free char *pods = xasprintf("%s/pods/u1", dir);
	cleanup_free char *path = xasprintf("%s/web.log", pods);
	struct err e = {0};
	assert_int_equal(mkdir_p(pods, 0700, &e), 0);
	assert_int_equal(runtime_log_append(path, 1 << 20, "stdout", "one\ntwo\n", 8, &e), 0);
	assert_int_equal(runtime_log_append(path, 1 << 20, "stderr", "thr", 3, &e), 0);
	assert_int_equal(runtime_log_append(path, 1 << 20, "stderr", "ee\nfour\n", 8, &e), 0);
	uv_loop_t loop;
	uv_loop_init(&loop);
	launcher *l;
	runtime *rt;
	struct launcher_opts lo = {.data_dir = dir, .accel = "tcg"};
	struct runtime_opts ro = {.data_dir = dir};
	assert_int_equal(launcher_new(&loop, &lo, &l, &e), 0);
	assert_int_equal(runtime_new(&loop, l, NULL, &ro, &rt, &e), 0);
	struct rd r;
	struct runtime_log_opts o = {.tail_lines = -1, .limit_bytes = -1};
	read_logs(rt, &loop, &o, &r);
	assert_string_equal(r.got.data, "one\ntwo\nthree\nfour\n");
	buf_fini(&r.got);
	o.tail_lines = 2;
	read_logs(rt, &loop, &o, &r);
	assert_string_equal(r.got.data, "ee\nfour\n"); /* stored lines, partials included */
	buf_fini(&r.got);
	o.tail_lines = 0;
	read_logs(rt, &loop, &o, &r);
	assert_int_equal(r.got.len, 0);
	buf_fini(&r.got);
	o.tail_lines = -1;
	o.limit_bytes = 6;
	read_logs(rt, &loop, &o, &r);
	assert_string_equal(r.got.data, "one\ntw");
	buf_fini(&r.got);
	o.limit_bytes = -1;
	o.timestamps = 1;
	read_logs(rt, &loop, &o, &r);
	assert_int_equal(strncmp(r.got.data + 30, " one\n", 5), 0);
	assert_int_equal(r.got.data[29], 'Z');
	buf_fini(&r.got);
	/* follow on a container that is not running ends after the backlog */
	o.timestamps = 0;
	o.follow = 1;
	read_logs(rt, &loop, &o, &r);
	assert_string_equal(r.got.data, "one\ntwo\nthree\nfour\n");
	buf_fini(&r.got);
	runtime_close(rt, NULL, NULL);
	launcher_close(l, NULL, NULL);
	spin_loop(&loop, NULL, 50);
	runtime_free(rt);
	launcher_free(l);
	assert_int_equal(uv_loop_close(&loop), 0);
	rm_rf(dir);
}

static void logs_not_found(void **state)
{
	cleanup_free char *dir = mktmp();
	uv_loop_t loop;
	uv_loop_init(&loop);
	launcher *l;
	runtime *rt;
	struct err e = {0};
	struct launcher_opts lo = {.data_dir = dir, .accel = "tcg"};
	struct runtime_opts ro = {.data_dir = dir};
	assert_int_equal(launcher_new(&loop, &lo, &l, &e), 0);
	assert_int_equal(runtime_new(&loop, l, NULL, &ro, &rt, &e), 0);
	struct runtime_log_opts o = {.tail_lines = -1, .limit_bytes = -1};
	assert_int_equal(runtime_logs(rt, "u1", "web", &o, rd_data, rd_end, NULL, NULL, &e),
	                 ERR_NOT_FOUND);
	assert_int_equal(runtime_logs(rt, "..", "web", &o, rd_data, rd_end, NULL, NULL, &e),
	                 ERR_NOT_FOUND);
	assert_int_equal(runtime_logs(rt, "u1", "../x", &o, rd_data, rd_end, NULL, NULL, &e),
	                 ERR_NOT_FOUND);
	runtime_close(rt, NULL, NULL);
	launcher_close(l, NULL, NULL);
	spin_loop(&loop, NULL, 50);
	runtime_free(rt);
	launcher_free(l);
	assert_int_equal(uv_loop_close(&loop), 0);
	rm_rf(dir);
}

/* ---- whole pod lives on the mock driver ---- */

struct fx {
	char *dir;
	uv_loop_t loop;
	launcher *l;
	runtime *rt;
	podctl *ctl;
	store *st;
	images *im;
	int started, removed;
	json_t *status; /* last status */
	char events[4096];
	int64_t wake;
	unsigned pool_size;
	uint64_t boot_timeout_ms;
	int ls, peer;
	struct frame_reader rd;
};

static void sink_status(void *ud, const char *uid, const json_t *status)
{
	struct fx *x = ud;
	json_decref(x->status);
	x->status = json_deep_copy(status);
}

static void sink_event(void *ud, const char *uid, const char *type, const char *reason,
                       const char *message)
{
	struct fx *x = ud;
	size_t n = strlen(x->events);
	snprintf(x->events + n, sizeof x->events - n, "%s %s: %s\n", type, reason, message);
}

static void sink_bound(void *ud, const char *uid, const char *node) {}
static void sink_removed(void *ud, const char *uid)
{
	((struct fx *)ud)->removed++;
}

static int64_t clock_now(void *ud)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void clock_wake(void *ud, int64_t at)
{
	((struct fx *)ud)->wake = at;
}

static void on_started(void *arg, const struct err *e)
{
	assert_null(e);
	((struct fx *)arg)->started = 1;
}

/* Runs the loop (and the controller's clock) for up to `ms`, until *flag. */
static void spin(struct fx *x, const int *flag, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while ((!flag || !*flag) && now_ns() < end) {
		uv_run(&x->loop, UV_RUN_NOWAIT);
		if (x->ctl && x->wake > 0 && clock_now(x) >= x->wake) {
			x->wake = -1;
			podctl_tick(x->ctl);
		}
		usleep(1000);
	}
}

/* Starts a daemon's pod side on x->dir: the launcher on the mock, the
 * runtime and the pod controller (a second call after fx_stop is a
 * restart). */
static void fx_start(struct fx *x)
{
	struct err e = {0};
	struct launcher_opts lo = {.uri = "test:///default", .data_dir = x->dir, .accel = "tcg"};
	x->started = 0;
	assert_int_equal(launcher_new(&x->loop, &lo, &x->l, &e), 0);
	assert_int_equal(launcher_start(x->l, on_started, x), 0);
	spin(x, &x->started, 5000);
	assert_true(x->started);
	struct runtime_opts ro = {.data_dir = x->dir,
	                          .kernel = "/kit/vmlinuz",
	                          .initrd = "/kit/initramfs.img",
	                          .destroy_grace_ms = 300,
	                          .boot_timeout_ms = x->boot_timeout_ms,
	                          .pool_size = x->pool_size};
	assert_int_equal(runtime_new(&x->loop, x->l, x->im, &ro, &x->rt, &e), 0);
	struct podctl_config cfg = {.node_name = "n1"};
	struct sched_node node = {8000, 8ull << 30, 10, SCHED_TEE_SIM};
	struct podctl_sink sink = {x, sink_status, sink_event, sink_bound, sink_removed};
	struct podctl_clock clock = {x, clock_now, clock_wake};
	x->ctl = podctl_new(&cfg, &node, runtime_ops(x->rt), &sink, &clock);
	runtime_attach(x->rt, x->ctl);
}

/* Stops what fx_start started.  `crash`: as a killed daemon leaves things
 * (the launcher is gone before the runtime could destroy anything), so
 * every domain keeps running. */
static void fx_stop(struct fx *x, int crash)
{
	if (!x->rt)
		return;
	podctl_free(x->ctl);
	x->ctl = NULL;
	if (crash)
		launcher_close(x->l, NULL, NULL);
	runtime_close(x->rt, NULL, NULL);
	if (!crash)
		launcher_close(x->l, NULL, NULL);
	spin(x, NULL, 100);
	runtime_free(x->rt);
	launcher_free(x->l);
	x->rt = NULL;
	x->l = NULL;
}

/* A temporary data dir and a daemon with `pool_size` warm VMs whose agents
 * must be ready within `boot_timeout_ms`. */
static void fx_setup_with(struct fx *x, int with_images, unsigned pool_size,
                          uint64_t boot_timeout_ms)
{
	struct err e = {0};
	memset(x, 0, sizeof *x);
	x->dir = mktmp();
	x->peer = x->ls = -1;
	x->pool_size = pool_size;
	x->boot_timeout_ms = boot_timeout_ms;
	uv_loop_init(&x->loop);
	frame_reader_init(&x->rd);
	if (with_images) {
		cleanup_free char *db = xasprintf("%s/cocod.db", x->dir);
		assert_int_equal(store_open(db, &x->st, &e), 0);
		assert_int_equal(images_open(x->st, x->dir, &x->im, &e), 0);
	}
	fx_start(x);
}

static void fx_setup(struct fx *x, int with_images)
{
	fx_setup_with(x, with_images, 0, 5000);
}

static void fx_teardown(struct fx *x)
{
	if (x->peer >= 0)
		close(x->peer);
	if (x->ls >= 0)
		close(x->ls);
	fx_stop(x, 0);
	images_close(x->im);
	store_close(x->st);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	frame_reader_fini(&x->rd);
	json_decref(x->status);
	rm_rf(x->dir);
	free(x->dir);
}

static json_t *new_pod(const char *uid, const char *image)
{
	return json_pack("{s:{s:s, s:s, s:s}, s:{s:[{s:s, s:s}], s:s}}", "metadata", "uid", uid,
	                 "name", "p", "namespace", "default", "spec", "containers", "name", "web",
	                 "image", image, "restartPolicy", "Never");
}

/* Hands `pod` (reference taken) to the controller. */
static void submit(struct fx *x, json_t *pod)
{
	struct podctl_req req = {
	    .tee = "sim", .runtime_class = "cocod-sim", .qos_class = "BestEffort"};
	struct err e = {0};
	assert_int_equal(podctl_add(x->ctl, pod, &req, &e), 0);
	json_decref(pod);
}

/* The host's next agent connection on x->ls, into x->peer. */
static void guest_accept(struct fx *x)
{
	for (int i = 0; i < 5000 && x->peer < 0; i++) {
		spin(x, NULL, 1);
		struct pollfd p = {x->ls, POLLIN, 0};
		if (poll(&p, 1, 0) == 1)
			x->peer = accept(x->ls, NULL, NULL);
	}
	assert_true(x->peer >= 0);
}

/* Plays a guest: listens on `path`, where libvirt would bind the VM's
 * channel, and accepts the host's agent connection into x->ls/x->peer. */
static void guest_listen(struct fx *x, const char *path)
{
	assert_int_equal(x->ls, -1);
	assert_int_equal(x->peer, -1);
	x->ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	assert_int_equal(bind(x->ls, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(x->ls, 1), 0);
	guest_accept(x);
}

/* Submits `pod` and plays its guest: accepts the agent connection. */
static void add_pod_json(struct fx *x, const char *uid, json_t *pod)
{
	submit(x, pod);
	cleanup_free char *path = xasprintf("%s/pods/%s/agent.sock", x->dir, uid);
	guest_listen(x, path);
}

static void add_pod(struct fx *x, const char *uid, const char *image)
{
	add_pod_json(x, uid, new_pod(uid, image));
}

static void agent_send(struct fx *x, int64_t id, const char *type, json_t *body)
{
	struct buf b;
	struct err e = {0};
	buf_init(&b);
	assert_int_equal(frame_encode(&b, id, type, body, &e), 0);
	assert_int_equal(write(x->peer, b.data, b.len), (ssize_t)b.len);
	buf_fini(&b);
	json_decref(body);
}

static void agent_recv(struct fx *x, struct frame_msg *m, const char *type)
{
	struct err e = {0};
	for (int i = 0; i < 5000; i++) {
		int rc = frame_next(&x->rd, m, &e);
		assert_true(rc >= 0);
		if (rc == 1) {
			if (strcmp(m->type, type) != 0)
				fail_msg("expected %s, got %s", type, m->type);
			return;
		}
		spin(x, NULL, 1);
		struct pollfd p = {x->peer, POLLIN, 0};
		if (poll(&p, 1, 0) == 1) {
			char buf[65536];
			ssize_t n = read(x->peer, buf, sizeof buf);
			assert_true(n > 0);
			frame_reader_feed(&x->rd, buf, (size_t)n);
		}
	}
	fail_msg("no %s from the host", type);
}

static void reply_ok(struct fx *x, const struct frame_msg *m, json_t *extra)
{
	json_t *b = extra ? extra : json_object();
	json_object_set_new(b, "ok", json_true());
	agent_send(x, m->id, "reply", b);
}

static const char *phase(struct fx *x)
{
	return json_string_value(json_object_get(x->status, "phase"));
}

static void wait_phase(struct fx *x, const char *want)
{
	for (int i = 0; i < 5000; i++) {
		if (phase(x) && strcmp(phase(x), want) == 0)
			return;
		spin(x, NULL, 1);
	}
	fail_msg("phase %s, wanted %s; events:\n%s", phase(x) ? phase(x) : "-", want, x->events);
}

/* Streams every blob_chunk of every missing layer; returns bytes seen. */
static size_t receive_layers(struct fx *x, const json_t *missing)
{
	size_t total = 0;
	for (size_t i = 0; i < json_array_size(missing); i++) {
		const char *digest = json_string_value(json_array_get(missing, i));
		int64_t off = 0;
		for (;;) {
			struct frame_msg m;
			agent_recv(x, &m, "blob_chunk");
			assert_string_equal(json_string_value(json_object_get(m.body, "digest")),
			                    digest);
			assert_int_equal(json_integer_value(json_object_get(m.body, "offset")),
			                 off);
			uint8_t *raw;
			size_t n;
			assert_int_equal(
			    b64_decode(json_string_value(json_object_get(m.body, "data_b64")),
			               (size_t)-1, &raw, &n),
			    0);
			assert_true(n <= 512 * 1024);
			free(raw);
			off += (int64_t)n;
			total += n;
			int last = json_is_true(json_object_get(m.body, "last"));
			reply_ok(x, &m, NULL);
			frame_msg_fini(&m);
			if (last)
				break;
		}
	}
	return total;
}

/* The image a guest is offered (image_begin), with all its layers. */
static json_t *all_layers(const struct frame_msg *m)
{
	json_t *man = json_loads(json_string_value(json_object_get(m->body, "manifest")), 0, NULL);
	json_t *missing = json_array();
	size_t i;
	json_t *ly;
	json_array_foreach(json_object_get(man, "layers"), i, ly)
	    json_array_append(missing, json_object_get(ly, "digest"));
	json_decref(man);
	return missing;
}

/* After create_sandbox: the guest takes the whole image (every layer
 * missing), then creates and starts container "web"; the pod runs. */
static void start_container(struct fx *x)
{
	struct frame_msg m;
	/* the image: all layers missing */
	agent_recv(x, &m, "image_begin");
	assert_non_null(strstr(json_string_value(json_object_get(m.body, "manifest")), "layers"));
	json_t *missing = all_layers(&m);
	assert_true(json_array_size(missing) >= 1);
	reply_ok(x, &m, json_pack("{s:O}", "missing", missing));
	frame_msg_fini(&m);
	assert_true(receive_layers(x, missing) > 0);
	json_decref(missing);
	/* the container */
	agent_recv(x, &m, "create_container");
	assert_string_equal(json_string_value(json_object_get(m.body, "name")), "web");
	assert_int_equal(strncmp(json_string_value(json_object_get(m.body, "image")), "sha256:", 7),
	                 0);
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	agent_recv(x, &m, "start_container");
	reply_ok(x, &m, json_pack("{s:i}", "pid", 7));
	frame_msg_fini(&m);
	agent_send(x, 0, "container_started", json_pack("{s:s, s:i}", "name", "web", "pid", 7));
	wait_phase(x, "Running");
}

static void pod_life_on_mock(void **state)
{
	struct fx x;
	struct frame_msg m;
	fx_setup(&x, 1);
	add_pod(&x, "u-life", "busybox");
	agent_send(&x, 0, "ready", json_pack("{s:s}", "version", "test"));
	agent_recv(&x, &m, "create_sandbox");
	assert_string_equal(json_string_value(json_object_get(m.body, "uid")), "u-life");
	assert_string_equal(json_string_value(json_object_get(m.body, "namespace")), "default");
	assert_true(json_is_null(json_object_get(m.body, "init_data"))); /* no annotation */
	reply_ok(&x, &m, NULL);
	frame_msg_fini(&m);
	start_container(&x);
	/* follow the logs while the container runs */
	struct rd r = {0};
	struct err e = {0};
	buf_init(&r.got);
	struct runtime_log_opts o = {.follow = 1, .tail_lines = -1, .limit_bytes = -1};
	agent_send(&x, 0, "log",
	           json_pack("{s:s, s:s, s:s}", "name", "web", "stream", "stdout", "data_b64",
	                     "aGVsbG8K")); /* hello\n */
	spin(&x, NULL, 50);
	assert_int_equal(runtime_logs(x.rt, "u-life", "web", &o, rd_data, rd_end, &r, NULL, &e), 0);
	spin(&x, NULL, 50);
	agent_send(&x, 0, "log",
	           json_pack("{s:s, s:s, s:s}", "name", "web", "stream", "stderr", "data_b64",
	                     "YnllCg==")); /* bye\n */
	agent_send(
	    &x, 0, "container_exited",
	    json_pack("{s:s, s:i, s:s}", "name", "web", "exit_code", 0, "reason", "Completed"));
	spin(&x, &r.ended, 3000);
	assert_int_equal(r.ended, 1);
	assert_string_equal(r.got.data, "hello\nbye\n");
	buf_fini(&r.got);
	wait_phase(&x, "Succeeded");
	/* a terminal pod's VM is torn down: destroy_sandbox, then (no power-off
	 * on the mock) the domain is destroyed after the grace */
	agent_recv(&x, &m, "destroy_sandbox");
	reply_ok(&x, &m, NULL);
	frame_msg_fini(&m);
	for (int k = 0; k < 3000 && launcher_exists(x.l, "u-life"); k++)
		spin(&x, NULL, 1);
	assert_false(launcher_exists(x.l, "u-life"));
	fx_teardown(&x);
}

static void missing_image_is_errimagepull(void **state)
{
	struct fx x;
	struct frame_msg m;
	fx_setup(&x, 1);
	add_pod(&x, "u-miss", "nosuch:1.0");
	agent_send(&x, 0, "ready", json_object());
	agent_recv(&x, &m, "create_sandbox");
	reply_ok(&x, &m, NULL);
	frame_msg_fini(&m);
	for (int i = 0; i < 3000 && !strstr(x.events, "ErrImagePull"); i++)
		spin(&x, NULL, 1);
	if (!strstr(x.events,
	            "image nosuch:1.0 not found: import it with `cocod image import FILE`"))
		fail_msg("events:\n%s", x.events);
	fx_teardown(&x);
}

static void hostile_guest_fails_pod(void **state)
{
	struct fx x;
	fx_setup(&x, 0);
	add_pod(&x, "u-evil", "busybox");
	assert_int_equal(write(x.peer, "\xff\xff\xff\xff", 4), 4);
	for (int i = 0; i < 3000 && !strstr(x.events, "hostile guest"); i++)
		spin(&x, NULL, 1);
	if (!strstr(x.events, "hostile guest"))
		fail_msg("events:\n%s", x.events);
	for (int k = 0; k < 3000 && launcher_exists(x.l, "u-evil"); k++)
		spin(&x, NULL, 1);
	assert_false(launcher_exists(x.l, "u-evil"));
	fx_teardown(&x);
}

/* ---- init-data ---- */

#define INIT_TOML "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"aa.toml\" = '''\nx\n'''\n"

/* A pod carrying INIT_TOML as CoCo's annotation, with `digest` recorded (as
 * pod_normalize would; NULL: the real one, computed here with OpenSSL). */
static json_t *init_pod(const char *uid, const char *digest, char real[INITDATA_DIGEST_STR])
{
	unsigned char md[48];
	char hex[97];
	cleanup_free char *b64 = init_annotation(INIT_TOML);
	EVP_Digest(INIT_TOML, strlen(INIT_TOML), md, NULL, EVP_sha384(), NULL);
	hex_encode(md, sizeof md, hex);
	snprintf(real, INITDATA_DIGEST_STR, "sha384:%s", hex);
	json_t *pod = new_pod(uid, "busybox");
	json_object_set_new(json_object_get(pod, "metadata"), "annotations",
	                    json_pack("{s:s, s:s}", INITDATA_ANNOTATION, b64,
	                              INITDATA_DIGEST_ANNOTATION, digest ? digest : real));
	return pod;
}

static void init_data_reaches_the_guest(void **state)
{
	struct fx x;
	struct frame_msg m;
	char digest[INITDATA_DIGEST_STR];
	fx_setup(&x, 1);
	add_pod_json(&x, "u-init", init_pod("u-init", NULL, digest));
	/* the domain carries the digest where the launch will bind it */
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	virDomainPtr d = virDomainLookupByName(c, "cocod-u-init");
	assert_non_null(d);
	char *xml = virDomainGetXMLDesc(d, 0);
	cleanup_free char *elem =
	    xasprintf("<cocod:init-data-digest>%s</cocod:init-data-digest>", digest);
	if (!xml || !strstr(xml, elem))
		fail_msg("no %s in:\n%s", elem, xml ? xml : "(no XML)");
	free(xml);
	virDomainFree(d);
	virConnectClose(c);
	/* the TOML text goes to the guest, byte for byte */
	agent_send(&x, 0, "ready", json_pack("{s:s}", "version", "test"));
	agent_recv(&x, &m, "create_sandbox");
	const json_t *init = json_object_get(m.body, "init_data");
	assert_true(json_is_string(init));
	assert_int_equal(json_string_length(init), strlen(INIT_TOML));
	assert_string_equal(json_string_value(init), INIT_TOML);
	reply_ok(&x, &m, json_pack("{s:s}", "init_data_digest", digest));
	frame_msg_fini(&m);
	/* accepted: the pod goes on to its image */
	agent_recv(&x, &m, "image_begin");
	frame_msg_fini(&m);
	assert_null(strstr(x.events, "FailedCreatePodSandBox"));
	fx_teardown(&x);
}

static void init_data_digest_mismatch_fails_pod(void **state)
{
	static const struct {
		const char *uid;
		const char *reply; /* init_data_digest in the guest's reply; NULL: none */
		const char *reason;
	} cases[] = {
	    {"u-id1", "sha384:0000000000000000ffff",
	     "hostile guest: init-data digest mismatch: the guest computed "
	     "sha384:0000000000000000..., cocod recorded sha384:"},
	    {"u-id2", "sha384:\x1b[2J evil", "the guest computed (malformed), cocod recorded"},
	    {"u-id3", NULL, "the guest did not report the digest of the init-data"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fx x;
		struct frame_msg m;
		char digest[INITDATA_DIGEST_STR];
		fx_setup(&x, 0);
		add_pod_json(&x, cases[i].uid, init_pod(cases[i].uid, NULL, digest));
		agent_send(&x, 0, "ready", json_object());
		agent_recv(&x, &m, "create_sandbox");
		reply_ok(&x, &m,
		         cases[i].reply ? json_pack("{s:s}", "init_data_digest", cases[i].reply)
		                        : NULL);
		frame_msg_fini(&m);
		wait_phase(&x, "Failed");
		const char *msg = json_string_value(json_object_get(x.status, "message"));
		assert_string_equal(json_string_value(json_object_get(x.status, "reason")),
		                    "HostileGuest");
		if (!msg || !strstr(msg, cases[i].reason))
			fail_msg("status message %s; events:\n%s", msg ? msg : "-", x.events);
		for (int k = 0; k < 3000 && launcher_exists(x.l, cases[i].uid); k++)
			spin(&x, NULL, 1);
		assert_false(launcher_exists(x.l, cases[i].uid));
		fx_teardown(&x);
	}
}

static void init_data_unlike_its_record_is_not_booted(void **state)
{
	struct fx x;
	char digest[INITDATA_DIGEST_STR];
	fx_setup(&x, 0);
	const char *forged = "sha384:000000000000000000000000000000000000000000000000000000000000"
	                     "000000000000000000000000000000000000";
	submit(&x, init_pod("u-forged", forged, digest));
	for (int i = 0; i < 3000 && !strstr(x.events, "FailedCreatePodSandBox"); i++)
		spin(&x, NULL, 1);
	digest[23] = '\0'; /* the reason shows "sha384:" and 16 hex digits */
	cleanup_free char *want = xasprintf(
	    "annotation io.katacontainers.config.hypervisor.cc_init_data hashes to %s..., not to the "
	    "sha384:0000000000000000... recorded at admission in cocod.io/init-data-digest; "
	    "recreate the pod",
	    digest);
	if (!strstr(x.events, want))
		fail_msg("events:\n%s", x.events);
	assert_false(launcher_exists(x.l, "u-forged"));
	fx_teardown(&x);
}

/* ---- the warm pool ---- */

#define POOL_PREFIX LAUNCHER_PREFIX "pool-"
#define MIB         (1ull << 20)

/* The test's own connection to the mock.  test:///default keeps its
 * domains while any connection is open, so this one also keeps them across
 * a daemon restart. */
static virConnectPtr mock_open(void)
{
	virConnectPtr c = virConnectOpen("test:///default");
	assert_non_null(c);
	return c;
}

/* How many running domains on the mock are named `prefix`*; the first
 * `max` of their ids (the name without "cocod-") go to `ids`. */
static int mock_doms(virConnectPtr c, const char *prefix, char ids[][40], int max)
{
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE), k = 0;
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);
		if (name && strncmp(name, prefix, strlen(prefix)) == 0) {
			if (k < max)
				snprintf(ids[k], 40, "%.39s", name + strlen(LAUNCHER_PREFIX));
			k++;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	return k;
}

/* 1 when domain cocod-`id` runs on the mock. */
static int mock_alive(virConnectPtr c, const char *id)
{
	cleanup_free char *name = xasprintf(LAUNCHER_PREFIX "%s", id);
	virDomainPtr d = virDomainLookupByName(c, name);
	int alive = d && virDomainIsActive(d) == 1;
	if (d)
		virDomainFree(d);
	return alive;
}

/* Guest RAM of domain cocod-`id`, in bytes. */
static uint64_t mock_memory(virConnectPtr c, const char *id)
{
	cleanup_free char *name = xasprintf(LAUNCHER_PREFIX "%s", id);
	virDomainPtr d = virDomainLookupByName(c, name);
	assert_non_null(d);
	unsigned long kib = virDomainGetMaxMemory(d);
	virDomainFree(d);
	return (uint64_t)kib * 1024;
}

/* Runs the loop for up to `ms` until a pool domain other than `other`
 * (NULL: any) runs; its id goes to `id`.  1 when one did. */
static int wait_pool_vm(struct fx *x, virConnectPtr c, const char *other, int ms, char id[40])
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	do {
		char ids[8][40];
		int n = mock_doms(c, POOL_PREFIX, ids, 8);
		for (int i = 0; i < n && i < 8; i++)
			if (!other || strcmp(ids[i], other) != 0) {
				snprintf(id, 40, "%.39s", ids[i]);
				spin(x, NULL, 20); /* its creation completes on the loop */
				return 1;
			}
		spin(x, NULL, 5);
	} while (now_ns() < end);
	return 0;
}

/* Runs the loop for up to `ms` until domain cocod-`id` is gone; 1 if it is. */
static int wait_gone(struct fx *x, virConnectPtr c, const char *id, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while (mock_alive(c, id) && now_ns() < end)
		spin(x, NULL, 5);
	return !mock_alive(c, id);
}

/* Runs the loop for up to `ms` until the host closes the guest end `fd`
 * (EOF); 1 if it did.  Other input is discarded. */
static int wait_eof(struct fx *x, int fd, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while (now_ns() < end) {
		struct pollfd p = {fd, POLLIN, 0};
		char buf[4096];
		if (poll(&p, 1, 0) == 1 && read(fd, buf, sizeof buf) <= 0)
			return 1;
		spin(x, NULL, 2);
	}
	return 0;
}

static int exists(const char *dir, const char *sub)
{
	cleanup_free char *path = xasprintf("%s/%s", dir, sub);
	struct stat st;
	return stat(path, &st) == 0;
}

/* Plays pool VM `id`'s guest up to its agent's `ready`, which the host
 * has then seen. */
static void pool_guest_hello(struct fx *x, const char *id)
{
	cleanup_free char *path = xasprintf("%s/pool/%s/agent.sock", x->dir, id);
	guest_listen(x, path);
	agent_send(x, 0, "ready", json_pack("{s:s}", "version", "test"));
	spin(x, NULL, 100);
}

/* The host's warm_up for an idle pool VM, answered. */
static void pool_guest_warm_up(struct fx *x)
{
	struct frame_msg m;
	agent_recv(x, &m, "warm_up");
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
}

/* pool_guest_hello for a pool VM with no image to prefetch: the host asks
 * for the warm-up at once. */
static void pool_guest_ready(struct fx *x, const char *id)
{
	pool_guest_hello(x, id);
	pool_guest_warm_up(x);
}

/* The guest end of a connection, moved out of the fixture so that the
 * next guest can use x->ls/x->peer. */
struct guest_end {
	int ls, peer;
};

static struct guest_end guest_stash(struct fx *x)
{
	struct guest_end g = {x->ls, x->peer};
	x->ls = x->peer = -1;
	frame_reader_fini(&x->rd);
	frame_reader_init(&x->rd);
	return g;
}

static void guest_end_close(struct guest_end *g)
{
	if (g->peer >= 0)
		close(g->peer);
	if (g->ls >= 0)
		close(g->ls);
}

/* The container exits 0: the pod succeeds and the host asks the guest to
 * tear down (destroy_sandbox, answered). */
static void finish_container(struct fx *x)
{
	struct frame_msg m;
	agent_send(
	    x, 0, "container_exited",
	    json_pack("{s:s, s:i, s:s}", "name", "web", "exit_code", 0, "reason", "Completed"));
	wait_phase(x, "Succeeded");
	agent_recv(x, &m, "destroy_sandbox");
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
}

/* Pool cases run under pool_setup/pool_teardown, so that a failed one
 * still stops its daemon and destroys its domains (they would confuse the
 * cases after it). */
struct pool_case {
	struct fx x;
	virConnectPtr c;
};

static int pool_setup(void **state)
{
	*state = xcalloc(1, sizeof(struct pool_case));
	return 0;
}

static int pool_teardown(void **state)
{
	struct pool_case *pc = *state;
	if (pc->x.dir)
		fx_teardown(&pc->x);
	if (pc->c)
		virConnectClose(pc->c);
	free(pc);
	return 0;
}

static struct fx *pool_fx(void **state)
{
	return &((struct pool_case *)*state)->x;
}

static virConnectPtr pool_mock(void **state)
{
	struct pool_case *pc = *state;
	pc->c = mock_open();
	return pc->c;
}

static void pool_serves_a_pod_of_its_shape(void **state)
{
	struct fx *x = pool_fx(state);
	struct frame_msg m;
	char id[40], ids[4][40], next[40];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 1, 1, 5000);
	/* nothing boots before the previous daemon's leftovers are dealt with */
	spin(x, NULL, 500);
	assert_int_equal(mock_doms(c, POOL_PREFIX, ids, 4), 0);
	runtime_restored(x->rt);
	assert_true(wait_pool_vm(x, c, NULL, 3000, id));
	cleanup_free char *pool_dir = xasprintf("pool/%s", id);
	assert_true(exists(x->dir, pool_dir));
	assert_int_equal(mock_memory(c, id), LAUNCHER_MEMORY_DEFAULT + LAUNCHER_OVERHEAD_DEFAULT);
	pool_guest_ready(x, id);
	/* a pod without limits takes it: create_sandbox on the same channel */
	uint64_t taken = now_ns();
	submit(x, new_pod("u-warm", "busybox"));
	agent_recv(x, &m, "create_sandbox");
	assert_string_equal(json_string_value(json_object_get(m.body, "uid")), "u-warm");
	/* no VM of its own: the pool VM is its only domain */
	assert_int_equal(mock_doms(c, LAUNCHER_PREFIX, ids, 4), 1);
	assert_string_equal(ids[0], id);
	assert_false(launcher_exists(x->l, "u-warm"));
	/* its files moved to the pod, where `domain` names the VM */
	assert_false(exists(x->dir, pool_dir));
	assert_true(exists(x->dir, "pods/u-warm/agent.sock"));
	assert_true(exists(x->dir, "pods/u-warm/console.log"));
	cleanup_free char *domf = xasprintf("%s/pods/u-warm/domain", x->dir);
	char *dom;
	size_t len;
	struct err e = {0};
	assert_int_equal(file_read(domf, 64, &dom, &len, &e), 0);
	assert_string_equal(dom, id);
	free(dom);
	/* the refill waits a second after the take */
	uint64_t since_ms = (now_ns() - taken) / 1000000;
	if (since_ms < 700)
		spin(x, NULL, 700 - (int)since_ms);
	assert_int_equal(mock_doms(c, POOL_PREFIX, ids, 4), 1);
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	start_container(x);
	assert_true(wait_pool_vm(x, c, id, 3000, next));
	assert_int_equal(mock_memory(c, next), LAUNCHER_MEMORY_DEFAULT + LAUNCHER_OVERHEAD_DEFAULT);
	/* the pod ends: its VM, the pool's domain, is destroyed */
	finish_container(x);
	assert_true(wait_gone(x, c, id, 3000));
	assert_true(mock_alive(c, next));
}

static void pool_follows_the_size_of_pods(void **state)
{
	struct fx *x = pool_fx(state);
	struct frame_msg m;
	char id[40], ids[4][40], next[40];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 0, 1, 5000);
	runtime_restored(x->rt);
	assert_true(wait_pool_vm(x, c, NULL, 3000, id));
	pool_guest_ready(x, id);
	struct guest_end warm = guest_stash(x);
	/* a pod that needs more memory boots its own VM */
	json_t *pod = new_pod("u-big", "busybox");
	json_object_set_new(
	    json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0),
	    "resources", json_pack("{s:{s:s}}", "limits", "memory", "512Mi"));
	add_pod_json(x, "u-big", pod);
	assert_true(mock_alive(c, "u-big"));
	assert_int_equal(mock_memory(c, "u-big"), 512 * MIB + LAUNCHER_OVERHEAD_DEFAULT);
	assert_false(exists(x->dir, "pods/u-big/domain"));
	agent_send(x, 0, "ready", json_object());
	agent_recv(x, &m, "create_sandbox");
	assert_string_equal(json_string_value(json_object_get(m.body, "uid")), "u-big");
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	/* the idle pool VM, now of the wrong size, is dropped */
	assert_true(wait_eof(x, warm.peer, 3000));
	assert_true(wait_gone(x, c, id, 3000));
	spin(x, NULL, 100);
	cleanup_free char *dropped = xasprintf("pool/%s", id);
	assert_false(exists(x->dir, dropped)); /* nobody's files: removed with the VM */
	/* and the refill is of the new size */
	assert_true(wait_pool_vm(x, c, id, 3000, next));
	assert_int_equal(mock_memory(c, next), 512 * MIB + LAUNCHER_OVERHEAD_DEFAULT);
	assert_int_equal(mock_doms(c, POOL_PREFIX, ids, 4), 1);
	guest_end_close(&warm);
}

static void init_data_pod_never_takes_the_pool(void **state)
{
	struct fx *x = pool_fx(state);
	struct frame_msg m;
	char id[40], digest[INITDATA_DIGEST_STR];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 0, 1, 5000);
	runtime_restored(x->rt);
	assert_true(wait_pool_vm(x, c, NULL, 3000, id));
	pool_guest_ready(x, id);
	struct guest_end warm = guest_stash(x);
	/* the pod's size is the pool's (no limits), its init-data is not */
	add_pod_json(x, "u-initp", init_pod("u-initp", NULL, digest));
	assert_true(mock_alive(c, "u-initp"));
	assert_false(exists(x->dir, "pods/u-initp/domain"));
	agent_send(x, 0, "ready", json_object());
	agent_recv(x, &m, "create_sandbox");
	assert_string_equal(json_string_value(json_object_get(m.body, "init_data")), INIT_TOML);
	reply_ok(x, &m, json_pack("{s:s}", "init_data_digest", digest));
	frame_msg_fini(&m);
	/* the pool VM stays, idle: nothing was sent to it */
	spin(x, NULL, 300);
	struct pollfd p = {warm.peer, POLLIN, 0};
	assert_int_equal(poll(&p, 1, 0), 0);
	assert_true(mock_alive(c, id));
	cleanup_free char *pool_dir = xasprintf("pool/%s", id);
	assert_true(exists(x->dir, pool_dir));
	guest_end_close(&warm);
}

static void pool_vm_not_ready_is_dropped_then_backs_off(void **state)
{
	struct fx *x = pool_fx(state);
	char id[40], next[40];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 0, 1, 300);
	runtime_restored(x->rt);
	assert_true(wait_pool_vm(x, c, NULL, 3000, id));
	/* the channel connects, the agent never says ready */
	cleanup_free char *path = xasprintf("%s/pool/%s/agent.sock", x->dir, id);
	guest_listen(x, path);
	assert_true(wait_eof(x, x->peer, 3000));
	assert_true(wait_gone(x, c, id, 3000));
	/* the next one waits (2 s) instead of booting at the next tick */
	uint64_t t0 = now_ns();
	assert_true(wait_pool_vm(x, c, id, 5000, next));
	uint64_t waited_ms = (now_ns() - t0) / 1000000;
	if (waited_ms < 1500)
		fail_msg("the next pool VM booted %llu ms after the last one was dropped",
		         (unsigned long long)waited_ms);
}

static void runtime_close_destroys_the_pool(void **state)
{
	struct fx *x = pool_fx(state);
	char a[40], b[40], ids[4][40];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 0, 2, 5000);
	runtime_restored(x->rt);
	assert_true(wait_pool_vm(x, c, NULL, 3000, a));
	/* one at a time: the second waits for the first to come up */
	spin(x, NULL, 600);
	assert_int_equal(mock_doms(c, POOL_PREFIX, ids, 4), 1);
	pool_guest_ready(x, a);
	struct guest_end ga = guest_stash(x);
	assert_true(wait_pool_vm(x, c, a, 3000, b));
	pool_guest_ready(x, b);
	assert_int_equal(mock_doms(c, POOL_PREFIX, ids, 4), 2);
	fx_stop(x, 0);
	assert_int_equal(mock_doms(c, POOL_PREFIX, ids, 4), 0);
	guest_end_close(&ga);
}

/* No frame from the host on x->peer within `ms`. */
static int quiet(struct fx *x, int ms)
{
	spin(x, NULL, ms);
	struct pollfd p = {x->peer, POLLIN, 0};
	return poll(&p, 1, 0) == 0;
}

static void pool_vm_prefetches_the_last_pods_images(void **state)
{
	struct fx *x = pool_fx(state);
	struct frame_msg m;
	char a[40], b[40], d[40];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 1, 1, 5000);
	runtime_restored(x->rt);
	/* the first pool VM: no pod yet, so no image to prefetch */
	assert_true(wait_pool_vm(x, c, NULL, 3000, a));
	pool_guest_ready(x, a);
	assert_true(quiet(x, 300));
	submit(x, new_pod("u-1", "busybox"));
	agent_recv(x, &m, "create_sandbox");
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	start_container(x); /* the whole image goes over */
	struct guest_end g1 = guest_stash(x);
	/* the refill is offered busybox, u-1's image, as soon as it is ready */
	assert_true(wait_pool_vm(x, c, a, 3000, b));
	pool_guest_hello(x, b);
	agent_recv(x, &m, "image_begin");
	assert_string_equal(json_string_value(json_object_get(m.body, "ref")), "busybox");
	json_t *missing = all_layers(&m);
	reply_ok(x, &m, json_pack("{s:O}", "missing", missing));
	frame_msg_fini(&m);
	assert_true(receive_layers(x, missing) > 0);
	json_decref(missing);
	pool_guest_warm_up(x); /* after the images */
	assert_true(quiet(x, 200));
	/* the next busybox pod takes it: its image is there, nothing is sent */
	submit(x, new_pod("u-2", "busybox"));
	agent_recv(x, &m, "create_sandbox");
	assert_string_equal(json_string_value(json_object_get(m.body, "uid")), "u-2");
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	agent_recv(x, &m, "image_begin");
	reply_ok(x, &m, json_pack("{s:[]}", "missing"));
	frame_msg_fini(&m);
	agent_recv(x, &m, "create_container"); /* no blob_chunk before it */
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	agent_recv(x, &m, "start_container");
	reply_ok(x, &m, json_pack("{s:i}", "pid", 7));
	frame_msg_fini(&m);
	agent_send(x, 0, "container_started", json_pack("{s:s, s:i}", "name", "web", "pid", 7));
	wait_phase(x, "Running");
	struct guest_end g2 = guest_stash(x);
	/* a pool VM that answers the prefetch like a hostile guest is dropped;
	 * no pod hears of it */
	char ids[4][40];
	int n = 0;
	for (int i = 0; i < 300 && (n = mock_doms(c, POOL_PREFIX, ids, 4)) < 3; i++)
		spin(x, NULL, 10);
	assert_int_equal(n, 3); /* u-1's, u-2's and the new one */
	for (int i = 0; i < n; i++)
		if (strcmp(ids[i], a) && strcmp(ids[i], b))
			memcpy(d, ids[i], sizeof d);
	pool_guest_hello(x, d);
	agent_recv(x, &m, "image_begin");
	reply_ok(x, &m, json_pack("{s:[s]}", "missing", "sha256:0000"));
	frame_msg_fini(&m);
	assert_true(wait_eof(x, x->peer, 3000));
	assert_true(wait_gone(x, c, d, 3000));
	assert_string_equal(phase(x), "Running");
	assert_true(mock_alive(c, b));
	guest_end_close(&g1);
	guest_end_close(&g2);
}

/* Pod `uid` as the store keeps it: spec, node and the last status. */
static json_t *stored_pod(struct fx *x, const char *uid)
{
	json_t *pod = new_pod(uid, "busybox");
	json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string("n1"));
	json_object_set_new(pod, "status", json_deep_copy(x->status));
	return pod;
}

static void pool_vm_of_a_pod_is_adopted_after_a_crash(void **state)
{
	struct fx *x = pool_fx(state);
	struct frame_msg m;
	struct err e = {0};
	char id[40], spare[40], next[40];
	virConnectPtr c = pool_mock(state);
	fx_setup_with(x, 1, 1, 5000);
	runtime_restored(x->rt);
	assert_true(wait_pool_vm(x, c, NULL, 3000, id));
	pool_guest_ready(x, id);
	submit(x, new_pod("u-adopt", "busybox"));
	agent_recv(x, &m, "create_sandbox");
	reply_ok(x, &m, NULL);
	frame_msg_fini(&m);
	start_container(x);
	assert_true(wait_pool_vm(x, c, id, 3000, spare)); /* the refill, never taken */
	json_t *pod = stored_pod(x, "u-adopt");
	/* kill -9: both domains keep running */
	fx_stop(x, 1);
	assert_true(mock_alive(c, id) && mock_alive(c, spare));
	close(x->peer); /* the old daemon's end went with it */
	x->peer = -1;
	frame_reader_fini(&x->rd);
	frame_reader_init(&x->rd);
	json_decref(x->status);
	x->status = NULL;
	/* the next daemon finds the pod's VM through pods/u-adopt/domain */
	fx_start(x);
	struct podctl_req req = {
	    .tee = "sim", .runtime_class = "cocod-sim", .qos_class = "BestEffort"};
	assert_int_equal(podctl_restore(x->ctl, pod, &req, &e), 0);
	json_decref(pod);
	podctl_schedule(x->ctl);
	const struct runtime_ops *ops = runtime_ops(x->rt);
	assert_true(ops->sandbox_exists(ops->ud, "u-adopt"));
	runtime_restored(x->rt);
	/* the pod's VM is not an orphan; the untaken pool VM is */
	assert_true(wait_gone(x, c, spare, 3000));
	cleanup_free char *spare_dir = xasprintf("pool/%s", spare);
	assert_false(exists(x->dir, spare_dir));
	assert_true(mock_alive(c, id));
	if (x->status && strcmp(phase(x), "Running") != 0) /* restored as it was */
		fail_msg("phase %s after the restart; events:\n%s", phase(x), x->events);
	/* the agent channel comes back on the pod's socket and the pod goes on */
	guest_accept(x);
	finish_container(x);
	assert_true(wait_gone(x, c, id, 3000));
	assert_true(wait_pool_vm(x, c, spare, 3000, next)); /* this daemon's pool */
}

#define POOL_CASE(f) cmocka_unit_test_setup_teardown(f, pool_setup, pool_teardown)

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(log_lines_and_partials),
	    cmocka_unit_test(log_rotation),
	    cmocka_unit_test(logs_backlog_options),
	    cmocka_unit_test(logs_not_found),
	    cmocka_unit_test(pod_life_on_mock),
	    cmocka_unit_test(missing_image_is_errimagepull),
	    cmocka_unit_test(hostile_guest_fails_pod),
	    cmocka_unit_test(init_data_reaches_the_guest),
	    cmocka_unit_test(init_data_digest_mismatch_fails_pod),
	    cmocka_unit_test(init_data_unlike_its_record_is_not_booted),
	    POOL_CASE(pool_serves_a_pod_of_its_shape),
	    POOL_CASE(pool_follows_the_size_of_pods),
	    POOL_CASE(init_data_pod_never_takes_the_pool),
	    POOL_CASE(pool_vm_not_ready_is_dropped_then_backs_off),
	    POOL_CASE(runtime_close_destroys_the_pool),
	    POOL_CASE(pool_vm_of_a_pod_is_adopted_after_a_crash),
	    POOL_CASE(pool_vm_prefetches_the_last_pods_images),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
