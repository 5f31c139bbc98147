/* Unit tests for http: a real server on 127.0.0.1 (port 0) runs its libuv
 * loop in a background thread with a small handler, and the test thread
 * talks to it over blocking sockets (plain and TLS with a throwaway
 * self-signed certificate).  Every case starts its own server so that
 * limits and timeouts can differ; the teardown shuts it down gracefully and
 * checks that the loop closes with no handle left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* the server under test                                               */

struct tsrv {
	struct http_server_opts opts;
	uv_loop_t loop;
	uv_async_t async;
	http_server *srv;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ready, start_rc, port, running, stopping;
	uint64_t grace_ms;
	atomic_int shutdown_done;
	atomic_int closes;      /* on_close callbacks seen */
	atomic_int delays;      /* delayed requests with the handler */
	atomic_int done_calls;  /* done callbacks */
	atomic_int done_status; /* status of the last one */
	atomic_ullong done_bytes;
	atomic_int handler_calls;
	atomic_int loop_close_rc;
	atomic_ullong shutdown_ns;
};

static struct tsrv T;

static uint64_t ms_since(uint64_t t0)
{
	return (now_ns() - t0) / 1000000u;
}

struct delayed {
	uv_timer_t timer;
	http_req *req;
};

static void delayed_closed(uv_handle_t *h)
{
	free(h->data);
}

static void delayed_fire(uv_timer_t *t)
{
	struct delayed *d = t->data;
	char body[256];
	snprintf(body, sizeof body, "delayed %s", http_req_raw_target(d->req));
	atomic_fetch_sub(&T.delays, 1);
	http_respond_str(d->req, 200, "text/plain", body);
	uv_close((uv_handle_t *)&d->timer, delayed_closed);
}

static void route_delay(http_req *r)
{
	const char *ms = http_req_query(r, "ms");
	struct delayed *d = xcalloc(1, sizeof *d);
	d->req = r;
	d->timer.data = d;
	uv_timer_init(&T.loop, &d->timer);
	uv_timer_start(&d->timer, delayed_fire, ms ? strtoull(ms, NULL, 10) : 100, 0);
	atomic_fetch_add(&T.delays, 1);
}

static void route_echo(http_req *r)
{
	size_t blen;
	const char *body = http_req_body(r, &blen);
	const char *a = http_req_query(r, "a"), *h = http_req_header(r, "x-test");
	char *out =
	    xasprintf("%s %s q=%s a=%s h=%s body=%.*s", http_req_method(r), http_req_path(r),
	              http_req_query_raw(r), a ? a : "-", h ? h : "-", (int)blen, body);
	http_add_header(r, "X-Echo", "yes");
	http_respond_str(r, 200, "text/plain", out);
	free(out);
}

static void watch_closed(http_req *r, void *arg)
{
	atomic_fetch_add(&T.closes, 1);
	http_stream_end(r);
}

static void route_big(http_req *r)
{
	size_t n = 1u << 20;
	char *b = xmalloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = (char)('a' + i % 26);
	http_respond(r, 200, "application/octet-stream", b, n);
	free(b);
}

static void handler(http_req *r, void *ud)
{
	const char *p = http_req_path(r);
	atomic_fetch_add(&T.handler_calls, 1);
	if (!strcmp(p, "/echo")) {
		route_echo(r);
	} else if (!strcmp(p, "/delay")) {
		route_delay(r);
	} else if (!strcmp(p, "/peer")) {
		http_respond_str(r, 200, "text/plain", http_req_peer(r));
	} else if (!strcmp(p, "/stream")) {
		http_stream_begin(r, 200, "text/plain");
		http_stream_write(r, "alpha", 5);
		http_stream_write(r, "beta", 4);
		http_stream_write(r, "gamma", 5);
		http_stream_end(r);
	} else if (!strcmp(p, "/watch")) {
		http_req_on_close(r, watch_closed, NULL);
		http_stream_begin(r, 200, "text/plain");
		http_stream_write(r, "hello\n", 6);
	} else if (!strcmp(p, "/inject")) {
		http_add_header(r, "X-Bad", "a\r\nSet-Cookie: evil=1");
		http_add_header(r, "Bad Name", "v");
		http_add_header(r, "X-Good", "fine");
		http_respond(r, 204, NULL, NULL, 0);
	} else if (!strcmp(p, "/big")) {
		route_big(r);
	} else {
		char *out = xasprintf("path=%s", p);
		http_respond_str(r, 404, "text/plain", out);
		free(out);
	}
}

static void done_cb(http_req *r, int status, uint64_t bytes, uint64_t dur, void *ud)
{
	atomic_store(&T.done_status, status);
	atomic_store(&T.done_bytes, bytes);
	atomic_fetch_add(&T.done_calls, 1);
}

static void shutdown_done(void *arg)
{
	atomic_store(&T.shutdown_ns, now_ns());
	atomic_store(&T.shutdown_done, 1);
	uv_close((uv_handle_t *)&T.async, NULL);
}

static void on_async(uv_async_t *a)
{
	if (T.stopping)
		http_server_shutdown(T.srv, T.grace_ms, shutdown_done, NULL);
}

static void *server_main(void *arg)
{
	struct err e;
	uv_loop_init(&T.loop);
	uv_async_init(&T.loop, &T.async, on_async);
	int rc = http_server_start(&T.loop, &T.opts, &T.srv, &e);
	pthread_mutex_lock(&T.mu);
	T.start_rc = rc;
	T.port = rc ? 0 : http_server_port(T.srv);
	T.ready = 1;
	pthread_cond_signal(&T.cv);
	pthread_mutex_unlock(&T.mu);
	if (rc)
		uv_close((uv_handle_t *)&T.async, NULL);
	uv_run(&T.loop, UV_RUN_DEFAULT);
	if (!rc)
		http_server_free(T.srv);
	atomic_store(&T.loop_close_rc, uv_loop_close(&T.loop));
	return NULL;
}

static void default_opts(struct http_server_opts *o)
{
	memset(o, 0, sizeof *o);
	o->host = "127.0.0.1";
	o->port = 0;
	o->request_timeout_ms = 3000;
	o->idle_timeout_ms = 3000;
	o->handler = handler;
	o->done = done_cb;
}

static void start_server(const struct http_server_opts *o)
{
	memset(&T, 0, sizeof T);
	T.opts = *o;
	pthread_mutex_init(&T.mu, NULL);
	pthread_cond_init(&T.cv, NULL);
	assert_int_equal(pthread_create(&T.th, NULL, server_main, NULL), 0);
	pthread_mutex_lock(&T.mu);
	while (!T.ready)
		pthread_cond_wait(&T.cv, &T.mu);
	pthread_mutex_unlock(&T.mu);
	T.running = 1;
	assert_int_equal(T.start_rc, 0);
	assert_true(T.port > 0);
}

static void begin_shutdown(uint64_t grace_ms)
{
	T.grace_ms = grace_ms;
	T.stopping = 1;
	uv_async_send(&T.async);
}

static void join_server(void)
{
	if (!T.running)
		return;
	pthread_join(T.th, NULL);
	T.running = 0;
	pthread_mutex_destroy(&T.mu);
	pthread_cond_destroy(&T.cv);
}

static int teardown(void **state)
{
	if (!T.running)
		return 0;
	if (!T.stopping)
		begin_shutdown(1000);
	join_server();
	assert_int_equal(atomic_load(&T.shutdown_done), 1);
	assert_int_equal(atomic_load(&T.loop_close_rc), 0);
	return 0;
}

static void start_default(void)
{
	struct http_server_opts o;
	default_opts(&o);
	start_server(&o);
}

/* Waits up to `ms` for an atomic counter to reach `want`. */
static int wait_for(atomic_int *v, int want, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (atomic_load(v) >= want)
			return 1;
		usleep(1000);
	}
	return atomic_load(v) >= want;
}

/* ------------------------------------------------------------------ */
/* a small blocking client                                             */

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char *buf;
	size_t len, cap;
};

struct resp {
	int status;
	char head[8192];
	char *body;
	size_t blen;
};

static void set_timeout(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int tcp_connect(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	set_timeout(fd, 5000);
	return fd;
}

static void cl_open(struct client *c, int port)
{
	memset(c, 0, sizeof *c);
	c->fd = tcp_connect(port);
	assert_true(c->fd >= 0);
}

static void cl_open_tls(struct client *c, int port)
{
	cl_open(c, port);
	c->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->ctx);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	assert_int_equal(SSL_connect(c->ssl), 1);
}

static void cl_close(struct client *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static void cl_send(struct client *c, const void *p, size_t n)
{
	if (c->ssl) {
		assert_int_equal(SSL_write(c->ssl, p, (int)n), (int)n);
		return;
	}
	const char *s = p;
	while (n) {
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
		assert_true(w > 0);
		s += w;
		n -= (size_t)w;
	}
}

static void cl_sends(struct client *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Reads more bytes into the buffer; returns what recv/SSL_read returned. */
static ssize_t cl_more(struct client *c)
{
	if (c->cap - c->len < 65536) {
		c->cap = c->cap ? c->cap * 2 : 131072;
		c->buf = realloc(c->buf, c->cap + 1);
		assert_non_null(c->buf);
	}
	ssize_t n;
	if (c->ssl) {
		int r = SSL_read(c->ssl, c->buf + c->len, 65536);
		n = r > 0 ? r : SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
		ERR_clear_error();
	} else {
		n = recv(c->fd, c->buf + c->len, 65536, 0);
	}
	if (n > 0)
		c->len += (size_t)n;
	c->buf[c->len] = '\0';
	return n;
}

static int cl_need(struct client *c, size_t n)
{
	while (c->len < n)
		if (cl_more(c) <= 0)
			return -1;
	return 0;
}

static void cl_consume(struct client *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	c->buf[c->len] = '\0';
}

static const char *head_value(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (!strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			size_t len = strcspn(v, "\r\n");
			if (len >= cap)
				len = cap - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return out;
		}
	}
	return NULL;
}

static void body_add(struct resp *r, const char *p, size_t n)
{
	r->body = realloc(r->body, r->blen + n + 1);
	memcpy(r->body + r->blen, p, n);
	r->blen += n;
	r->body[r->blen] = '\0';
}

/* Reads a chunked body; -1 on malformed input or EOF. */
static int read_chunked(struct client *c, struct resp *r)
{
	for (;;) {
		char *eol;
		while (!(eol = strstr(c->buf, "\r\n")))
			if (cl_more(c) <= 0)
				return -1;
		size_t size = strtoul(c->buf, NULL, 16);
		size_t line = (size_t)(eol - c->buf) + 2;
		if (cl_need(c, line + size + 2) < 0)
			return -1;
		body_add(r, c->buf + line, size);
		cl_consume(c, line + size + 2);
		if (size == 0)
			return 0;
	}
}

/* Reads one response; `head_only` for replies to HEAD.  -1 on EOF/error. */
static int cl_response2(struct client *c, struct resp *r, int head_only)
{
	char v[64];
	memset(r, 0, sizeof *r);
	r->body = calloc(1, 1);
	char *end;
	while (!(end = strstr(c->buf ? c->buf : "", "\r\n\r\n")))
		if (cl_more(c) <= 0)
			return -1;
	size_t hlen = (size_t)(end - c->buf) + 4;
	if (hlen >= sizeof r->head)
		return -1;
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	cl_consume(c, hlen);
	if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	if (head_only)
		return 0;
	if (head_value(r->head, "Transfer-Encoding", v, sizeof v))
		return read_chunked(c, r);
	if (head_value(r->head, "Content-Length", v, sizeof v)) {
		size_t n = strtoul(v, NULL, 10);
		if (cl_need(c, n) < 0)
			return -1;
		body_add(r, c->buf, n);
		cl_consume(c, n);
		return 0;
	}
	while (cl_more(c) > 0)
		;
	body_add(r, c->buf, c->len);
	cl_consume(c, c->len);
	return 0;
}

static int cl_response(struct client *c, struct resp *r)
{
	return cl_response2(c, r, 0);
}

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* True when the peer closes (EOF or reset) within the socket timeout,
 * after any bytes still in flight. */
static int cl_sees_close(struct client *c)
{
	for (;;) {
		ssize_t n = cl_more(c);
		if (n == 0)
			return 1;
		if (n < 0)
			return errno == ECONNRESET || (c->ssl && errno != EAGAIN);
	}
}

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		const char *h_ = (hay), *n_ = (needle);                                            \
		if (!h_ || !strstr(h_, n_))                                                        \
			fail_msg("expected \"%s\" in \"%s\"", n_, h_ ? h_ : "(null)");             \
	} while (0)

/* One request on a fresh connection; the response is left in *r. */
static void get_once(const char *req, struct resp *r)
{
	struct client c;
	cl_open(&c, T.port);
	cl_sends(&c, req);
	assert_int_equal(cl_response(&c, r), 0);
	cl_close(&c);
}

/* ------------------------------------------------------------------ */
/* cases                                                               */

static void get_returns_body_with_content_length(void **state)
{
	struct resp r;
	char v[64];
	start_default();
	get_once("GET /echo?a=1 HTTP/1.1\r\nHost: x\r\nX-Test: hi\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /echo q=a=1 a=1 h=hi body=");
	assert_non_null(head_value(r.head, "Content-Length", v, sizeof v));
	assert_int_equal(atoi(v), (int)r.blen);
	assert_string_equal(head_value(r.head, "Content-Type", v, sizeof v), "text/plain");
	assert_string_equal(head_value(r.head, "X-Echo", v, sizeof v), "yes");
	assert_non_null(head_value(r.head, "Date", v, sizeof v));
	assert_null(head_value(r.head, "Connection", v, sizeof v));
	resp_free(&r);
}

static void keep_alive_serves_two_requests_on_one_socket(void **state)
{
	struct client c;
	struct resp a, b;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &a), 0);
	cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
	assert_int_equal(cl_response(&c, &b), 0);
	assert_int_equal(a.status, 200);
	assert_contains(a.body, "127.0.0.1:");
	assert_string_equal(b.body, "POST /echo q= a=- h=- body=hello");
	cl_sends(&c, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
	resp_free(&b);
	assert_int_equal(cl_response(&c, &b), 0);
	assert_string_equal(a.body, b.body); /* same peer port: same connection */
	resp_free(&a);
	resp_free(&b);
	cl_close(&c);
}

static void pipelined_requests_are_answered_in_order(void **state)
{
	struct client c;
	struct resp r;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /delay?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"
	             "POST /echo?a=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
	             "GET /echo?a=3 HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "delayed /delay?ms=150");
	resp_free(&r);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "POST /echo q=a=2 a=2 h=- body=xyz");
	resp_free(&r);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "GET /echo q=a=3 a=3 h=- body=");
	resp_free(&r);
	assert_int_equal(atomic_load(&T.handler_calls), 3);
	cl_close(&c);
}

static void request_split_into_single_bytes_is_reassembled(void **state)
{
	struct client c;
	struct resp r;
	int one = 1;
	static const char req[] =
	    "POST /e%63ho?a=sp%20lit HTTP/1.1\r\nHost: x\r\n"
	    "X-Test: frag mented\r\nContent-Length: 6\r\n\r\nabcdefGET /echo HTTP/1.1\r\n\r\n";
	start_default();
	cl_open(&c, T.port);
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (size_t i = 0; i < sizeof req - 1; i++) {
		cl_send(&c, req + i, 1);
		usleep(300);
	}
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "POST /echo q=a=sp%20lit a=sp lit h=frag mented body=abcdef");
	resp_free(&r);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "GET /echo q= a=- h=- body=");
	resp_free(&r);
	cl_close(&c);
}

static void oversized_headers_get_431_and_close(void **state)
{
	struct client c;
	struct resp r;
	char v[64];
	start_default();
	size_t n = 17 * 1024;
	char *big = xmalloc(n + 64);
	int len = snprintf(big, 64, "GET / HTTP/1.1\r\nX-Big: ");
	memset(big + len, 'a', n);
	memcpy(big + len + n, "\r\n\r\n", 5);
	cl_open(&c, T.port);
	cl_sends(&c, big);
	free(big);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 431);
	assert_string_equal(head_value(r.head, "Content-Type", v, sizeof v), "application/json");
	assert_string_equal(head_value(r.head, "Connection", v, sizeof v), "close");
	assert_contains(r.body, "\"kind\":\"Status\"");
	assert_contains(r.body, "\"reason\":\"RequestHeaderFieldsTooLarge\"");
	assert_contains(r.body, "\"code\":431");
	assert_true(cl_sees_close(&c));
	assert_int_equal(atomic_load(&T.handler_calls), 0);
	resp_free(&r);
	cl_close(&c);
}

static void headers_just_under_the_limit_are_accepted(void **state)
{
	struct resp r;
	start_default();
	size_t n = 15 * 1024;
	char *big = xmalloc(n + 64);
	int len = snprintf(big, 64, "GET /echo HTTP/1.1\r\nX-Test: ");
	memset(big + len, 'a', n);
	memcpy(big + len + n, "\r\n\r\n", 5);
	get_once(big, &r);
	free(big);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.blen, strlen("GET /echo q= a=- h= body=") + n);
	resp_free(&r);
}

static void small_limits(struct http_server_opts *o)
{
	default_opts(o);
	o->max_body_bytes = 1024;
}

static void content_length_over_limit_gets_413(void **state)
{
	struct client c;
	struct resp r;
	struct http_server_opts o;
	small_limits(&o);
	start_server(&o);
	cl_open(&c, T.port);
	cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 413);
	assert_contains(r.body, "\"reason\":\"RequestEntityTooLarge\"");
	assert_true(cl_sees_close(&c));
	assert_int_equal(atomic_load(&T.handler_calls), 0);
	assert_true(wait_for(&T.done_calls, 1, 1000));
	assert_int_equal(atomic_load(&T.done_status), 413);
	resp_free(&r);
	cl_close(&c);
}

static void chunked_body_over_limit_gets_413(void **state)
{
	struct client c;
	struct resp r;
	struct http_server_opts o;
	char chunk[600 + 16];
	small_limits(&o);
	start_server(&o);
	int n = snprintf(chunk, sizeof chunk, "258\r\n");
	memset(chunk + n, 'q', 600);
	memcpy(chunk + n + 600, "\r\n", 2);
	cl_open(&c, T.port);
	cl_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
	cl_send(&c, chunk, (size_t)n + 602);
	cl_send(&c, chunk, (size_t)n + 602);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 413);
	assert_contains(r.body, "RequestEntityTooLarge");
	assert_true(cl_sees_close(&c));
	resp_free(&r);
	cl_close(&c);
}

static void chunked_body_within_limit_is_received(void **state)
{
	struct resp r;
	start_default();
	get_once("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	         "3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n",
	         &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /echo q= a=- h=- body=abcdefg");
	resp_free(&r);
}

static void garbage_request_line_gets_400_and_close(void **state)
{
	struct client c;
	struct resp r;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "\x01\x02 garbage \xff\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 400);
	assert_contains(r.body, "\"reason\":\"BadRequest\"");
	assert_contains(r.body, "\"status\":\"Failure\"");
	assert_true(cl_sees_close(&c));
	resp_free(&r);
	cl_close(&c);

	cl_open(&c, T.port);
	cl_sends(&c, "GET / HTTP/1.1\r\nBad Header\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 400);
	assert_true(cl_sees_close(&c));
	resp_free(&r);
	cl_close(&c);
}

static void slowloris_is_closed_after_request_timeout(void **state)
{
	struct client c;
	struct http_server_opts o;
	default_opts(&o);
	o.request_timeout_ms = 300;
	start_server(&o);
	cl_open(&c, T.port);
	uint64_t t0 = now_ns();
	cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: x\r\n");
	int closed = 0;
	while (ms_since(t0) < 3000 && !closed) {
		usleep(50000);
		if (send(c.fd, "X-a: b\r\n", 8, MSG_NOSIGNAL) < 0)
			closed = 1;
		char tmp[512];
		ssize_t n = recv(c.fd, tmp, sizeof tmp - 1, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			closed = 1;
		if (n > 0) {
			tmp[n] = '\0';
			assert_contains(tmp, "408");
			closed = 1;
		}
	}
	uint64_t el = ms_since(t0);
	assert_true(closed);
	assert_true(el >= 250);
	assert_true(el < 1500);
	assert_int_equal(atomic_load(&T.handler_calls), 0);
	cl_close(&c);
}

static void idle_keep_alive_connection_is_closed(void **state)
{
	struct client c;
	struct resp r;
	struct http_server_opts o;
	default_opts(&o);
	o.idle_timeout_ms = 300;
	start_server(&o);
	cl_open(&c, T.port);
	cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	resp_free(&r);
	uint64_t t0 = now_ns();
	assert_true(cl_sees_close(&c));
	uint64_t el = ms_since(t0);
	assert_true(el >= 250);
	assert_true(el < 1500);
	cl_close(&c);
}

static void query_parameters_are_decoded(void **state)
{
	struct resp r;
	start_default();
	get_once("GET /echo?b=1&a=hello%20w%C3%B6rld+x%2B&a=second HTTP/1.1\r\nHost: x\r\n\r\n",
	         &r);
	assert_string_equal(
	    r.body,
	    "GET /echo q=b=1&a=hello%20w%C3%B6rld+x%2B&a=second a=hello w\xc3\xb6rld x+ h=- body=");
	resp_free(&r);
	get_once("GET /echo?x=1&&a&c=%zz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_contains(r.body, " a= h="); /* present without '=' means empty */
	resp_free(&r);
	get_once("GET /echo?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_contains(r.body, " a=- h="); /* absent */
	resp_free(&r);
}

static void path_is_percent_decoded_and_nul_rejected(void **state)
{
	struct resp r;
	start_default();
	get_once("GET /%65ch%6F HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /echo q= a=- h=- body=");
	resp_free(&r);
	get_once("GET /a%2Fb%20c HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "path=/a/b c");
	resp_free(&r);
	get_once("GET /echo%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	assert_contains(r.body, "BadRequest");
	resp_free(&r);
	get_once("GET /bad%4 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	get_once("GET /bad%zz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	assert_int_equal(atomic_load(&T.handler_calls), 2);
}

static void absolute_form_target_is_understood(void **state)
{
	struct resp r;
	start_default();
	get_once("GET http://example.com:8080/echo?a=abs HTTP/1.1\r\nHost: example.com\r\n\r\n",
	         &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /echo q=a=abs a=abs h=- body=");
	resp_free(&r);
}

static void header_lookup_is_case_insensitive(void **state)
{
	struct resp r;
	start_default();
	get_once("GET /echo HTTP/1.1\r\nHost: x\r\nX-TEST: Upper\r\nx-test: second\r\n\r\n", &r);
	assert_string_equal(r.body, "GET /echo q= a=- h=Upper body=");
	resp_free(&r);
}

static void head_request_gets_headers_only(void **state)
{
	struct client c;
	struct resp r;
	char v[64];
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response2(&c, &r, 1), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(atoi(head_value(r.head, "Content-Length", v, sizeof v)),
	                 (int)strlen("HEAD /echo q= a=- h=- body="));
	resp_free(&r);
	/* the next response starts right after the head: no body was sent */
	cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "GET /echo q= a=- h=- body=");
	resp_free(&r);
	cl_close(&c);
}

static void http10_closes_unless_keep_alive_asked(void **state)
{
	struct client c;
	struct resp r;
	char v[64];
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /echo HTTP/1.0\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(head_value(r.head, "Connection", v, sizeof v), "close");
	assert_true(cl_sees_close(&c));
	resp_free(&r);
	cl_close(&c);

	cl_open(&c, T.port);
	cl_sends(&c, "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(head_value(r.head, "Connection", v, sizeof v), "keep-alive");
	resp_free(&r);
	cl_sends(&c, "GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(head_value(r.head, "Connection", v, sizeof v), "close");
	assert_true(cl_sees_close(&c));
	resp_free(&r);
	cl_close(&c);
}

static void expect_continue_gets_100_before_body(void **state)
{
	struct client c;
	struct resp r;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
	             "Expect: 100-continue\r\n\r\n");
	assert_int_equal(cl_response2(&c, &r, 1), 0);
	assert_int_equal(r.status, 100);
	resp_free(&r);
	cl_sends(&c, "data");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "PUT /echo q= a=- h=- body=data");
	resp_free(&r);
	cl_close(&c);
}

static void response_headers_cannot_be_injected(void **state)
{
	struct client c;
	struct resp r;
	char v[64];
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /inject HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response2(&c, &r, 1), 0);
	assert_int_equal(r.status, 204);
	assert_null(strstr(r.head, "evil"));
	assert_null(strstr(r.head, "Bad Name"));
	assert_null(head_value(r.head, "Content-Length", v, sizeof v));
	assert_string_equal(head_value(r.head, "X-Good", v, sizeof v), "fine");
	resp_free(&r);
	cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"); /* 204 sent no body */
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	cl_close(&c);
}

static void chunked_stream_is_readable(void **state)
{
	struct client c;
	struct resp r;
	char v[64];
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(head_value(r.head, "Transfer-Encoding", v, sizeof v), "chunked");
	assert_string_equal(r.body, "alphabetagamma");
	resp_free(&r);
	/* still usable afterwards */
	cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	cl_close(&c);
	assert_true(wait_for(&T.done_calls, 2, 1000));
}

static void on_close_fires_when_stream_client_disconnects(void **state)
{
	struct client c;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
	while (!strstr(c.buf ? c.buf : "", "hello\n"))
		assert_true(cl_more(&c) > 0);
	assert_int_equal(atomic_load(&T.closes), 0);
	cl_close(&c);
	assert_true(wait_for(&T.closes, 1, 2000));
	assert_true(wait_for(&T.done_calls, 1, 2000));
	assert_int_equal(atomic_load(&T.done_status), 200);
	assert_int_equal(atomic_load(&T.done_bytes), 6);
}

static void large_response_arrives_intact(void **state)
{
	struct client c;
	struct resp r;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	usleep(100000); /* let the server's socket buffer fill up */
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.blen, 1u << 20);
	for (size_t i = 0; i < r.blen; i += 4099)
		assert_int_equal(r.body[i], 'a' + (int)(i % 26));
	resp_free(&r);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "GET /echo q= a=- h=- body=");
	resp_free(&r);
	cl_close(&c);
}

static SSL_CTX *make_server_ctx(void)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	assert_non_null(pkey);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pkey);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
	                           -1, 0);
	X509_set_issuer_name(x, n);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, pkey), 1);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ctx;
}

static SSL_CTX *tls_ctx;

static int teardown_tls(void **state)
{
	int rc = teardown(state);
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
	return rc;
}

static void tls_get_keep_alive_and_large_body_work(void **state)
{
	struct client c;
	struct resp r;
	struct http_server_opts o;
	default_opts(&o);
	tls_ctx = make_server_ctx();
	o.tls_ctx = tls_ctx;
	start_server(&o);
	cl_open_tls(&c, T.port);
	cl_sends(&c, "GET /echo?a=tls HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /echo q=a=tls a=tls h=- body=");
	resp_free(&r);
	cl_sends(&c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_int_equal(r.blen, 1u << 20);
	assert_int_equal(r.body[r.blen - 1], 'a' + (int)((r.blen - 1) % 26));
	resp_free(&r);
	assert_int_equal(cl_response(&c, &r), 0);
	assert_string_equal(r.body, "alphabetagamma");
	resp_free(&r);
	cl_close(&c);

	/* plain HTTP to the TLS port fails the handshake and is closed */
	cl_open(&c, T.port);
	cl_sends(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(cl_sees_close(&c));
	cl_close(&c);
	assert_int_equal(atomic_load(&T.handler_calls), 3);
}

static void graceful_shutdown_waits_for_in_flight_request(void **state)
{
	struct client a, b, late;
	struct resp r;
	char v[64];
	start_default();
	cl_open(&b, T.port);
	cl_sends(&b, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&b, &r), 0); /* b is now an idle keep-alive */
	resp_free(&r);
	cl_open(&a, T.port);
	cl_sends(&a, "GET /delay?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(wait_for(&T.delays, 1, 2000));
	uint64_t t0 = now_ns();
	begin_shutdown(5000);
	assert_true(cl_sees_close(&b)); /* idle: closed at once */
	assert_true(ms_since(t0) < 300);
	assert_int_equal(atomic_load(&T.shutdown_done), 0);
	assert_int_equal(cl_response(&a, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "delayed /delay?ms=400");
	assert_string_equal(head_value(r.head, "Connection", v, sizeof v), "close");
	assert_true(cl_sees_close(&a));
	resp_free(&r);
	join_server();
	assert_int_equal(atomic_load(&T.shutdown_done), 1);
	assert_true(atomic_load(&T.shutdown_ns) - t0 >= 300 * 1000000ull);
	assert_true(atomic_load(&T.shutdown_ns) - t0 < 3000 * 1000000ull);
	assert_int_equal(atomic_load(&T.loop_close_rc), 0);
	late.fd = tcp_connect(T.port);
	assert_true(late.fd < 0); /* no longer listening */
	cl_close(&a);
	cl_close(&b);
}

static void shutdown_ends_streams_through_on_close(void **state)
{
	struct client c;
	struct resp r;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /watch HTTP/1.1\r\nHost: x\r\n\r\n");
	while (!strstr(c.buf ? c.buf : "", "hello\n"))
		assert_true(cl_more(&c) > 0);
	begin_shutdown(5000);
	assert_int_equal(cl_response(&c, &r), 0); /* the stream ends cleanly */
	assert_string_equal(r.body, "hello\n");
	assert_true(cl_sees_close(&c));
	resp_free(&r);
	join_server();
	assert_int_equal(atomic_load(&T.closes), 1);
	assert_int_equal(atomic_load(&T.shutdown_done), 1);
	cl_close(&c);
}

static void grace_expiry_force_closes_and_detaches(void **state)
{
	struct client a;
	start_default();
	cl_open(&a, T.port);
	cl_sends(&a, "GET /delay?ms=600 HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_true(wait_for(&T.delays, 1, 2000));
	uint64_t t0 = now_ns();
	begin_shutdown(100);
	assert_true(cl_sees_close(&a)); /* cut after the grace period */
	assert_true(ms_since(t0) < 500);
	join_server(); /* completes once the detached request is finished */
	assert_true(atomic_load(&T.shutdown_ns) - t0 >= 500 * 1000000ull);
	assert_int_equal(atomic_load(&T.done_calls), 1);
	assert_int_equal(atomic_load(&T.done_status), 0); /* nothing could be sent */
	cl_close(&a);
}

static void connections_over_the_limit_are_closed(void **state)
{
	struct client a, b;
	struct resp r;
	struct http_server_opts o;
	default_opts(&o);
	o.max_connections = 1;
	start_server(&o);
	cl_open(&a, T.port);
	cl_sends(&a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&a, &r), 0);
	resp_free(&r);
	cl_open(&b, T.port);
	assert_true(cl_sees_close(&b));
	cl_sends(&a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&a, &r), 0);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	cl_close(&a);
	cl_close(&b);
}

static void done_callback_reports_each_request(void **state)
{
	struct client c;
	struct resp r;
	start_default();
	cl_open(&c, T.port);
	cl_sends(&c, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_true(wait_for(&T.done_calls, 1, 1000));
	assert_int_equal(atomic_load(&T.done_status), 404);
	assert_int_equal(atomic_load(&T.done_bytes), r.blen);
	resp_free(&r);
	cl_sends(&c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_int_equal(cl_response(&c, &r), 0);
	assert_true(wait_for(&T.done_calls, 2, 1000));
	assert_int_equal(atomic_load(&T.done_status), 200);
	resp_free(&r);
	cl_close(&c);
	usleep(50000);
	assert_int_equal(atomic_load(&T.done_calls), 2);
}

static void hostile_input_does_not_crash(void **state)
{
	enum { N = 64 };
	int fds[N];
	struct http_server_opts o;
	struct resp r;
	default_opts(&o);
	o.max_body_bytes = 4096;
	start_server(&o);
	static const char *prefixes[] = {
	    "",
	    "GET / HTTP/1.1\r\n",
	    "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n",
	    "GET /echo?",
	    "GET /%",
	    "POST /echo HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\nXX"};
	unsigned seed = 12345;
	for (int i = 0; i < N; i++) {
		char junk[3000];
		const char *pre = prefixes[i % (int)(sizeof prefixes / sizeof *prefixes)];
		size_t pl = strlen(pre), jl = 1 + (size_t)(rand_r(&seed) % 2000);
		memcpy(junk, pre, pl);
		for (size_t k = 0; k < jl; k++)
			junk[pl + k] =
			    (char)(i % 3 ? rand_r(&seed) : "GET /\r\n:%0a "[rand_r(&seed) % 12]);
		fds[i] = tcp_connect(T.port);
		assert_true(fds[i] >= 0);
		send(fds[i], junk, pl + jl, MSG_NOSIGNAL);
	}
	usleep(100000);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	get_once("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(get_returns_body_with_content_length, teardown),
	    cmocka_unit_test_teardown(keep_alive_serves_two_requests_on_one_socket, teardown),
	    cmocka_unit_test_teardown(pipelined_requests_are_answered_in_order, teardown),
	    cmocka_unit_test_teardown(request_split_into_single_bytes_is_reassembled, teardown),
	    cmocka_unit_test_teardown(oversized_headers_get_431_and_close, teardown),
	    cmocka_unit_test_teardown(headers_just_under_the_limit_are_accepted, teardown),
	    cmocka_unit_test_teardown(content_length_over_limit_gets_413, teardown),
	    cmocka_unit_test_teardown(chunked_body_over_limit_gets_413, teardown),
	    cmocka_unit_test_teardown(chunked_body_within_limit_is_received, teardown),
	    cmocka_unit_test_teardown(garbage_request_line_gets_400_and_close, teardown),
	    cmocka_unit_test_teardown(slowloris_is_closed_after_request_timeout, teardown),
	    cmocka_unit_test_teardown(idle_keep_alive_connection_is_closed, teardown),
	    cmocka_unit_test_teardown(query_parameters_are_decoded, teardown),
	    cmocka_unit_test_teardown(path_is_percent_decoded_and_nul_rejected, teardown),
	    cmocka_unit_test_teardown(absolute_form_target_is_understood, teardown),
	    cmocka_unit_test_teardown(header_lookup_is_case_insensitive, teardown),
	    cmocka_unit_test_teardown(head_request_gets_headers_only, teardown),
	    cmocka_unit_test_teardown(http10_closes_unless_keep_alive_asked, teardown),
	    cmocka_unit_test_teardown(expect_continue_gets_100_before_body, teardown),
	    cmocka_unit_test_teardown(response_headers_cannot_be_injected, teardown),
	    cmocka_unit_test_teardown(chunked_stream_is_readable, teardown),
	    cmocka_unit_test_teardown(on_close_fires_when_stream_client_disconnects, teardown),
	    cmocka_unit_test_teardown(large_response_arrives_intact, teardown),
	    cmocka_unit_test_teardown(tls_get_keep_alive_and_large_body_work, teardown_tls),
	    cmocka_unit_test_teardown(graceful_shutdown_waits_for_in_flight_request, teardown),
	    cmocka_unit_test_teardown(shutdown_ends_streams_through_on_close, teardown),
	    cmocka_unit_test_teardown(grace_expiry_force_closes_and_detaches, teardown),
	    cmocka_unit_test_teardown(connections_over_the_limit_are_closed, teardown),
	    cmocka_unit_test_teardown(done_callback_reports_each_request, teardown),
	    cmocka_unit_test_teardown(hostile_input_does_not_crash, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
