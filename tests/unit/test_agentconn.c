/* Unit tests for agentconn against a socketpair peer playing the guest
 * (frames written and read with tee/frame.c), plus connecting to a UNIX
 * socket that appears late, and RFC 3339 parsing.
 * Cases: request_reply, request_refused, timeout_then_late_reply, events,
 * payload_only_after_ready_offers_it, hostile_oversized_frame, hostile_garbage,
 * hostile_bad_event_fields, hostile_reply_never_asked, hostile_flood, guest_closes,
 * no_callbacks_after_close, connect_retries_until_socket_exists,
 * connect_gives_up, parse_time. */
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
#include <sys/un.h>
#include <unistd.h>

#include "agentconn.h"
#include "frame.h"
#include "util.h"

struct fx {
	uv_loop_t loop;
	agentconn *c;
	int peer;
	struct frame_reader rd;
	int connected, ready, started, exited, logs, att, closed, replies;
	char reason[256], exit_reason[32], log[256], stage[64];
	size_t loglen;
	int exit_code, reply_code;
	int64_t started_at, pid;
	json_t *reply_body;
	char reply_msg[256];
};

static void h_connected(void *ud)
{
	((struct fx *)ud)->connected++;
}
static void h_ready(void *ud, const char *v, const char *k, int64_t boot_ms)
{
	((struct fx *)ud)->ready++;
}
static void h_started(void *ud, const char *name, int64_t pid, int64_t at)
{
	struct fx *x = ud;
	x->started++;
	x->pid = pid;
	x->started_at = at;
}
static void h_exited(void *ud, const char *name, int code, const char *reason, int64_t at)
{
	struct fx *x = ud;
	x->exited++;
	x->exit_code = code;
	snprintf(x->exit_reason, sizeof x->exit_reason, "%s", reason);
}
static void h_log(void *ud, const char *name, const char *stream, const void *d, size_t n)
{
	struct fx *x = ud;
	x->logs++;
	if (x->loglen + n < sizeof x->log) {
		memcpy(x->log + x->loglen, d, n);
		x->loglen += n;
	}
}
static void h_att(void *ud, const char *stage, const char *detail)
{
	struct fx *x = ud;
	x->att++;
	snprintf(x->stage, sizeof x->stage, "%s", stage);
}
static void h_closed(void *ud, const char *reason)
{
	struct fx *x = ud;
	x->closed++;
	x->c = NULL;
	snprintf(x->reason, sizeof x->reason, "%s", reason);
}

static const struct agentconn_handlers handlers_tmpl = {NULL,     h_connected, h_ready, h_started,
                                                        h_exited, h_log,       h_att,   h_closed};

static void on_reply(void *arg, const json_t *body, const struct err *e)
{
	struct fx *x = arg;
	x->replies++;
	x->reply_code = e ? e->code : 0;
	snprintf(x->reply_msg, sizeof x->reply_msg, "%s", e ? e->msg : "");
	json_decref(x->reply_body);
	x->reply_body = body ? json_deep_copy(body) : NULL;
}

static void spin(struct fx *x, const int *flag, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;
	while ((!flag || !*flag) && now_ns() < end) {
		uv_run(&x->loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static void setup_pair(struct fx *x, uint64_t flood)
{
	int sv[2];
	struct err e = {0};
	memset(x, 0, sizeof *x);
	uv_loop_init(&x->loop);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct agentconn_handlers h = handlers_tmpl;
	h.ud = x;
	struct agentconn_opts o = {.flood_bytes = flood};
	assert_int_equal(agentconn_open_fd(&x->loop, sv[0], &o, &h, &x->c, &e), 0);
	x->peer = sv[1];
	frame_reader_init(&x->rd);
	assert_true(agentconn_connected(x->c));
}

static void teardown(struct fx *x)
{
	agentconn_close(x->c);
	if (x->peer >= 0)
		close(x->peer);
	spin(x, NULL, 20);
	uv_run(&x->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&x->loop), 0);
	frame_reader_fini(&x->rd);
	json_decref(x->reply_body);
}

static void peer_raw(struct fx *x, const void *p, size_t n)
{
	assert_int_equal(write(x->peer, p, n), (ssize_t)n);
}

static void peer_send(struct fx *x, int64_t id, const char *type, const char *body_json)
{
	struct buf b;
	struct err e = {0};
	json_t *body = json_loads(body_json, 0, NULL);
	assert_non_null(body);
	buf_init(&b);
	assert_int_equal(frame_encode(&b, id, type, body, &e), 0);
	peer_raw(x, b.data, b.len);
	buf_fini(&b);
	json_decref(body);
}

/* Reads the next frame the host sent. */
static void peer_recv(struct fx *x, struct frame_msg *m)
{
	struct err e = {0};
	for (int i = 0; i < 2000; i++) {
		int rc = frame_next(&x->rd, m, &e);
		assert_true(rc >= 0);
		if (rc == 1)
			return;
		uv_run(&x->loop, UV_RUN_NOWAIT);
		struct pollfd p = {x->peer, POLLIN, 0};
		if (poll(&p, 1, 1) == 1) {
			char buf[65536];
			ssize_t n = read(x->peer, buf, sizeof buf);
			assert_true(n > 0);
			frame_reader_feed(&x->rd, buf, (size_t)n);
		}
	}
	fail_msg("no frame from the host");
}

static void request_reply(void **state)
{
	struct fx x;
	struct err e = {0};
	struct frame_msg m;
	setup_pair(&x, 0);
	json_t *body = json_pack("{s:s}", "uid", "u1");
	assert_int_equal(agentconn_request(x.c, "create_sandbox", body, 5000, on_reply, &x, &e), 0);
	json_decref(body);
	peer_recv(&x, &m);
	assert_string_equal(m.type, "create_sandbox");
	assert_int_equal(m.id, 1);
	assert_string_equal(json_string_value(json_object_get(m.body, "uid")), "u1");
	frame_msg_fini(&m);
	peer_send(&x, 1, "reply", "{\"ok\": true, \"pid\": 4}");
	spin(&x, &x.replies, 2000);
	assert_int_equal(x.reply_code, 0);
	assert_int_equal(json_integer_value(json_object_get(x.reply_body, "pid")), 4);
	assert_int_equal(x.closed, 0);
	teardown(&x);
}

static void request_refused(void **state)
{
	struct fx x;
	struct err e = {0};
	struct frame_msg m;
	setup_pair(&x, 0);
	assert_int_equal(agentconn_request(x.c, "create_container", NULL, 5000, on_reply, &x, &e),
	                 0);
	peer_recv(&x, &m);
	frame_msg_fini(&m);
	peer_send(&x, 1, "reply", "{\"ok\": false, \"error\": \"container \\\"c\\\" exists\"}");
	spin(&x, &x.replies, 2000);
	assert_int_equal(x.reply_code, ERR_CONFLICT);
	assert_non_null(strstr(x.reply_msg, "container \"c\" exists"));
	teardown(&x);
}

static void timeout_then_late_reply(void **state)
{
	struct fx x;
	struct err e = {0};
	setup_pair(&x, 0);
	assert_int_equal(agentconn_request(x.c, "signal", NULL, 150, on_reply, &x, &e), 0);
	spin(&x, &x.replies, 3000);
	assert_int_equal(x.replies, 1);
	assert_int_equal(x.reply_code, ERR_TIMEOUT);
	peer_send(&x, 1, "reply", "{\"ok\": true}"); /* too late: ignored */
	spin(&x, NULL, 100);
	assert_int_equal(x.replies, 1);
	assert_int_equal(x.closed, 0);
	teardown(&x);
}

static void events(void **state)
{
	struct fx x;
	setup_pair(&x, 0);
	peer_send(&x, 0, "ready", "{\"version\": \"0.1\", \"kernel\": \"6.1\", \"boot_ms\": 900}");
	peer_send(&x, 0, "container_started",
	          "{\"name\": \"web\", \"pid\": 42, \"started_at\": \"2024-05-01T10:00:00.5Z\"}");
	peer_send(&x, 0, "log",
	          "{\"name\": \"web\", \"stream\": \"stdout\", \"data_b64\": \"aGVsbG8K\"}");
	peer_send(
	    &x, 0, "container_exited",
	    "{\"name\": \"web\", \"exit_code\": 3, \"reason\": \"Error\", \"finished_at\": null}");
	peer_send(&x, 0, "attestation", "{\"stage\": \"evidence\", \"detail\": \"sent\"}");
	spin(&x, &x.att, 2000);
	assert_int_equal(x.ready, 1);
	assert_int_equal(x.started, 1);
	assert_int_equal(x.pid, 42);
	assert_int_equal(x.started_at, 1714557600500LL);
	assert_int_equal(x.logs, 1);
	assert_int_equal(x.loglen, 6);
	assert_memory_equal(x.log, "hello\n", 6);
	assert_int_equal(x.exited, 1);
	assert_int_equal(x.exit_code, 3);
	assert_string_equal(x.exit_reason, "Error");
	assert_string_equal(x.stage, "evidence");
	assert_int_equal(x.closed, 0);
	teardown(&x);
}

/* Frame payloads go only to a guest whose `ready` offered "payload"; the
 * bytes arrive after the JSON, announced by it. */
static void payload_only_after_ready_offers_it(void **state)
{
	static const char raw[] = {0, 1, 2, '}', (char)0xff};
	struct fx x;
	struct err e = {0};
	struct frame_msg m;
	setup_pair(&x, 0);
	assert_int_equal(agentconn_has(x.c, AGENTCONN_F_PAYLOAD), 0);
	assert_int_equal(agentconn_request_payload(x.c, "blob_chunk", NULL, raw, sizeof raw, 5000,
	                                           on_reply, &x, &e),
	                 ERR_UNAVAILABLE);
	peer_send(&x, 0, "ready",
	          "{\"version\": \"0.1\", \"kernel\": \"6.1\", \"boot_ms\": 9, "
	          "\"features\": [\"newer-thing\", \"payload\"]}");
	spin(&x, &x.ready, 2000);
	assert_int_equal(agentconn_has(x.c, AGENTCONN_F_PAYLOAD), 1);
	json_t *body = json_pack("{s:s}", "digest", "sha256:00");
	assert_int_equal(agentconn_request_payload(x.c, "blob_chunk", body, raw, sizeof raw, 5000,
	                                           on_reply, &x, &e),
	                 0);
	json_decref(body);
	peer_recv(&x, &m);
	assert_string_equal(m.type, "blob_chunk");
	assert_string_equal(json_string_value(json_object_get(m.body, "digest")), "sha256:00");
	assert_int_equal(m.payload_len, sizeof raw);
	assert_memory_equal(m.payload, raw, sizeof raw);
	frame_msg_fini(&m);
	peer_send(&x, 1, "reply", "{\"ok\": true}");
	spin(&x, &x.replies, 2000);
	assert_int_equal(x.reply_code, 0);
	teardown(&x);
}

static void expect_closed(struct fx *x, const char *why)
{
	spin(x, &x->closed, 2000);
	assert_int_equal(x->closed, 1);
	if (!strstr(x->reason, why))
		fail_msg("reason \"%s\" lacks \"%s\"", x->reason, why);
	assert_null(x->c);
}

static void hostile_oversized_frame(void **state)
{
	struct fx x;
	setup_pair(&x, 0);
	peer_raw(&x, "\x00\x20\x00\x00{", 5); /* 2 MiB announced */
	expect_closed(&x, "larger than 1 MiB");
	assert_non_null(strstr(x.reason, "hostile guest"));
	teardown(&x);
}

static void hostile_garbage(void **state)
{
	struct fx x;
	setup_pair(&x, 0);
	peer_raw(&x, "\x00\x00\x00\x08not json", 12);
	expect_closed(&x, "hostile guest");
	teardown(&x);
}

static void hostile_bad_event_fields(void **state)
{
	static const char *const bad[][2] = {
	    {"container_exited", "{\"name\": \"web\", \"exit_code\": 999, \"reason\": \"Error\"}"},
	    {"container_exited", "{\"name\": \"web\", \"exit_code\": 1, \"reason\": \"Bored\"}"},
	    {"log", "{\"name\": \"../../etc\", \"stream\": \"stdout\", \"data_b64\": \"aGk=\"}"},
	    {"log", "{\"name\": \"web\", \"stream\": \"stdin\", \"data_b64\": \"aGk=\"}"},
	    {"log", "{\"name\": \"web\", \"stream\": \"stdout\", \"data_b64\": \"!!\"}"},
	    {"container_started", "{\"name\": \"web\", \"started_at\": \"yesterday\"}"},
	    {"ready", "{\"version\": 7}"},
	    {"ready", "{\"version\": \"1\", \"features\": \"payload\"}"},
	    {"ready", "{\"version\": \"1\", \"features\": [7]}"},
	    {"bogus_event", "{}"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct fx x;
		setup_pair(&x, 0);
		peer_send(&x, 0, bad[i][0], bad[i][1]);
		expect_closed(&x, "hostile guest");
		assert_int_equal(x.exited + x.logs + x.started + x.ready, 0);
		teardown(&x);
	}
}

static void hostile_reply_never_asked(void **state)
{
	struct fx x;
	setup_pair(&x, 0);
	peer_send(&x, 77, "reply", "{\"ok\": true}");
	expect_closed(&x, "never sent");
	teardown(&x);
}

static void hostile_flood(void **state)
{
	struct fx x;
	setup_pair(&x, 8192);
	char data[1400];
	memset(data, 'A', sizeof data - 1);
	data[sizeof data - 1] = '\0';
	char body[1600];
	snprintf(body, sizeof body,
	         "{\"name\": \"web\", \"stream\": \"stdout\", \"data_b64\": \"%.1396s\"}",
	         data); /* 1047 raw bytes */
	for (int i = 0; i < 20 && !x.closed; i++) {
		peer_send(&x, 0, "log", body);
		uv_run(&x.loop, UV_RUN_NOWAIT);
	}
	expect_closed(&x, "flood");
	assert_true(x.logs < 20);
	teardown(&x);
}

static void guest_closes(void **state)
{
	struct fx x;
	struct err e = {0};
	setup_pair(&x, 0);
	assert_int_equal(agentconn_request(x.c, "signal", NULL, 5000, on_reply, &x, &e), 0);
	close(x.peer);
	x.peer = -1;
	expect_closed(&x, "closed by the guest");
	assert_int_equal(x.replies, 0); /* dropped, not called */
	teardown(&x);
}

static void no_callbacks_after_close(void **state)
{
	struct fx x;
	struct err e = {0};
	setup_pair(&x, 0);
	assert_int_equal(agentconn_request(x.c, "signal", NULL, 50, on_reply, &x, &e), 0);
	peer_send(&x, 0, "ready", "{}"); /* buffered, never read */
	agentconn_close(x.c);
	x.c = NULL;
	spin(&x, NULL, 200);
	assert_int_equal(x.ready + x.replies + x.closed, 0);
	teardown(&x);
}

static int listen_at(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s, 1), 0);
	return s;
}

static void connect_retries_until_socket_exists(void **state)
{
	struct fx x;
	struct err e = {0};
	char dir[] = "/tmp/agentconn-XXXXXX";
	assert_non_null(mkdtemp(dir));
	cleanup_free char *path = xasprintf("%s/agent.sock", dir);
	memset(&x, 0, sizeof x);
	x.peer = -1;
	uv_loop_init(&x.loop);
	frame_reader_init(&x.rd);
	struct agentconn_handlers h = handlers_tmpl;
	h.ud = &x;
	struct agentconn_opts o = {.connect_timeout_ms = 5000};
	assert_int_equal(agentconn_connect(&x.loop, path, &o, &h, &x.c, &e), 0);
	spin(&x, NULL, 300);
	assert_int_equal(x.connected, 0);
	assert_int_equal(agentconn_request(x.c, "signal", NULL, 50, on_reply, &x, &e),
	                 ERR_UNAVAILABLE);
	int ls = listen_at(path);
	spin(&x, &x.connected, 3000);
	assert_int_equal(x.connected, 1);
	x.peer = accept(ls, NULL, NULL);
	assert_true(x.peer >= 0);
	peer_send(&x, 0, "ready", "{}");
	spin(&x, &x.ready, 2000);
	assert_int_equal(x.ready, 1);
	close(ls);
	unlink(path);
	rmdir(dir);
	teardown(&x);
}

static void connect_gives_up(void **state)
{
	struct fx x;
	struct err e = {0};
	memset(&x, 0, sizeof x);
	x.peer = -1;
	uv_loop_init(&x.loop);
	frame_reader_init(&x.rd);
	struct agentconn_handlers h = handlers_tmpl;
	h.ud = &x;
	struct agentconn_opts o = {.connect_timeout_ms = 300};
	assert_int_equal(agentconn_connect(&x.loop, "/nonexistent/agent.sock", &o, &h, &x.c, &e),
	                 0);
	expect_closed(&x, "cannot connect");
	teardown(&x);
}

static void parse_time(void **state)
{
	assert_int_equal(agentconn_parse_time("1970-01-01T00:00:01Z"), 1000);
	assert_int_equal(agentconn_parse_time("2024-05-01T10:00:00.123456789Z"), 1714557600123LL);
	assert_int_equal(agentconn_parse_time("2024-05-01T12:00:00+02:00"), 1714557600000LL);
	assert_int_equal(agentconn_parse_time("2024-05-01T10:00:00"), -1);
	assert_int_equal(agentconn_parse_time("2024-05-01T10:00:00.Z"), -1);
	assert_int_equal(agentconn_parse_time("2024-05-01T10:00:00Zjunk"), -1);
	assert_int_equal(agentconn_parse_time("soon"), -1);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(request_reply),
	    cmocka_unit_test(request_refused),
	    cmocka_unit_test(timeout_then_late_reply),
	    cmocka_unit_test(events),
	    cmocka_unit_test(payload_only_after_ready_offers_it),
	    cmocka_unit_test(hostile_oversized_frame),
	    cmocka_unit_test(hostile_garbage),
	    cmocka_unit_test(hostile_bad_event_fields),
	    cmocka_unit_test(hostile_reply_never_asked),
	    cmocka_unit_test(hostile_flood),
	    cmocka_unit_test(guest_closes),
	    cmocka_unit_test(no_callbacks_after_close),
	    cmocka_unit_test(connect_retries_until_socket_exists),
	    cmocka_unit_test(connect_gives_up),
	    cmocka_unit_test(parse_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
