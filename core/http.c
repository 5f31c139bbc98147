/* http: the HTTP/1.1 server.  A connection reads into one buffer shared by
 * the whole server (reads are handled synchronously on the loop thread),
 * feeds http-parser directly from it, and copies bytes aside only when a
 * pipelined request arrives while the previous one is still with its
 * handler.  TLS runs through two memory BIOs: ciphertext read from the
 * socket goes into the read BIO, plaintext from SSL_read into the parser,
 * and whatever OpenSSL writes is flushed to the socket after every SSL call.
 * Each connection owns one reusable `http_req`, one timer (TLS handshake and
 * first request, request, idle, lingering close) and one output buffer, so a
 * keep-alive request costs no allocation: responses are tried with
 * uv_try_write and only the unwritten remainder is copied into a uv_write.
 * A request that loses its connection while with its handler is detached:
 * it lives on until the handler finishes it, and writes to it are dropped. */
#include "http.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define MOD "http"

#define IO_CHUNK           (64 * 1024)  /* shared read, plaintext and ciphertext buffers */
#define PENDING_MAX        (256 * 1024) /* input kept while a handler runs; then stop reading */
#define STREAM_PENDING_MAX (8u << 20)   /* unsent stream bytes before the peer is dropped */
#define TLS_INLINE_BODY    (64 * 1024)  /* bodies up to this share the head's SSL_write */
#define KEEP_CAP           (64 * 1024)  /* per-connection buffers above this are released */
#define LINGER_MS          2000         /* how long to drain input after our FIN */
#define LINGER_BYTES       (1 << 20)    /* and how much of it */

enum conn_state { C_IDLE, C_READING, C_BUSY, C_ENDING, C_CLOSED };
enum part { P_NONE, P_URL, P_FIELD, P_VALUE };

struct hdr {
	size_t name_off, value_off;
	const char *name, *value;
};

struct http_req {
	http_server *srv;
	struct conn *c; /* NULL once detached from a lost connection */

	/* the parsed request; strings point into `store` once hdrs_done */
	struct buf store;
	struct hdr *hdrs;
	size_t nhdrs, hdrs_cap;
	enum part part;
	size_t url_off, url_len;
	const char *method, *target, *path, *query;
	struct buf body;
	struct buf qbuf; /* decoded query pairs "k\0v\0...", built on first lookup */
	int qready, hdrs_done, head, keep_alive, http_major, http_minor;
	uint64_t start_ns;

	/* the response side */
	int in_handler, finished, closed, close_notified, streaming, chunked;
	int status;
	uint64_t bytes;
	struct buf hout; /* "Name: value\r\n" lines from http_add_header */
	void (*on_close)(http_req *r, void *arg);
	void *on_close_arg;
	void *data;
	const char *label;
	char peer[64]; /* copied from the connection when detached */
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t sreq;
	http_server *srv;
	struct conn *prev, *next;
	http_parser parser;
	http_req *req;
	SSL *ssl;
	BIO *rbio, *wbio;
	enum conn_state state;
	int handles;     /* open uv handles; the conn is freed when 0 */
	int in_feed;     /* inside parse(): finishing must not re-enter it */
	int read_paused; /* uv_read_stop while too much input is pending */
	int dead;        /* fatal write error: close on the next timer tick */
	int close_after; /* close once the current response is out */
	int fail;        /* HTTP status a parser callback asked for */
	int shut_done, eof;
	unsigned nreq;
	struct buf pend; /* input not yet parsed (pipelining) */
	size_t pend_off;
	struct buf out; /* response head (and, over TLS, small bodies) */
	size_t wqueued; /* bytes in uv_write requests not yet completed */
	size_t linger_bytes;
	char peer[64];
};

struct wreq {
	uv_write_t w;
	struct conn *c;
	size_t len;
	char data[];
};

struct http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t grace;
	struct http_server_opts o;
	http_parser_settings ps;
	struct conn *conns;
	unsigned nconns, nrejects, active;
	int port, listening, grace_open, grace_closing, shutting_down;
	void (*shutdown_cb)(void *arg);
	void *shutdown_arg;
	time_t date_sec;
	char date[64];
	size_t date_len;
	char rbuf[IO_CHUNK], plain[IO_CHUNK], cipher[IO_CHUNK];
};

static void conn_close(struct conn *c);
static void conn_end(struct conn *c);
static void on_timer(uv_timer_t *t);
static void resume(struct conn *c);
static void check_done(http_server *s);

/* uv_buf_t wants a mutable pointer even for data it only reads. */
static char *unconst(const void *p)
{
	return (char *)(uintptr_t)p;
}

/* ---------------------------------------------------------------- */
/* requests                                                          */

static http_req *req_new(http_server *s, struct conn *c)
{
	http_req *r = xcalloc(1, sizeof *r);
	r->srv = s;
	r->c = c;
	return r;
}

/* Frees a request and everything it owns; NULL is a no-op. */
static void req_free(http_req *r)
{
	if (!r)
		return;
	buf_fini(&r->store);
	buf_fini(&r->body);
	buf_fini(&r->qbuf);
	buf_fini(&r->hout);
	free(r->hdrs);
	free(r);
}

/* Empties a buffer for reuse, giving back memory a large request grew. */
static void buf_recycle(struct buf *b)
{
	if (b->cap > KEEP_CAP)
		buf_fini(b);
	b->len = 0;
}

/* Readies the connection's request object for the next request, keeping
 * its buffers so steady-state keep-alive does not allocate. */
static void req_reset(http_req *r)
{
	buf_recycle(&r->store);
	buf_recycle(&r->body);
	buf_recycle(&r->qbuf);
	buf_recycle(&r->hout);
	r->nhdrs = 0;
	r->part = P_NONE;
	r->url_off = r->url_len = 0;
	r->method = r->target = r->path = r->query = NULL;
	r->qready = r->hdrs_done = r->head = r->keep_alive = 0;
	r->http_major = r->http_minor = 0;
	r->start_ns = 0;
	r->in_handler = r->finished = r->closed = r->close_notified = 0;
	r->streaming = r->chunked = r->status = 0;
	r->bytes = 0;
	r->on_close = NULL;
	r->on_close_arg = r->data = NULL;
	r->label = NULL;
}

/* Runs the application's close callback at most once. */
static void notify_close(http_req *r)
{
	if (!r->on_close || r->close_notified)
		return;
	r->close_notified = 1;
	r->on_close(r, r->on_close_arg);
}

/* ---------------------------------------------------------------- */
/* output                                                            */

static void on_written(uv_write_t *w, int status)
{
	struct wreq *q = (struct wreq *)w;
	struct conn *c = q->c;
	c->wqueued -= q->len;
	free(q);
	if (status < 0 && status != UV_ECANCELED && c->state != C_CLOSED) {
		log_debug(MOD, "write failed peer=%s: %s", c->peer, uv_strerror(status));
		conn_close(c);
	}
}

/* (Re)starts the connection's one timer; what it means depends on state. */
static void timer_arm(struct conn *c, uint64_t ms)
{
	if (!c->dead && c->state != C_CLOSED)
		uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Marks a connection unusable after a write error; it is closed from the
 * timer so that no application callback runs inside the failing call. */
static void conn_kill(struct conn *c)
{
	if (c->dead || c->state == C_CLOSED)
		return;
	c->dead = 1;
	uv_timer_start(&c->timer, on_timer, 0, 0);
}

/* Writes `bufs` in order: whatever the socket takes now is written directly,
 * the rest is copied into one queued uv_write. */
static void out_write(struct conn *c, const uv_buf_t *bufs, unsigned n)
{
	if (c->dead || c->state == C_CLOSED)
		return;
	size_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	if (!total)
		return;
	int r = c->wqueued ? UV_EAGAIN : uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
	if (r < 0 && r != UV_EAGAIN) {
		log_debug(MOD, "write failed peer=%s: %s", c->peer, uv_strerror(r));
		conn_kill(c);
		return;
	}
	size_t skip = r < 0 ? 0 : (size_t)r;
	if (skip == total)
		return;
	struct wreq *q = xmalloc(sizeof *q + total - skip);
	size_t at = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t len = bufs[i].len, from = 0;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		from = skip;
		skip = 0;
		memcpy(q->data + at, bufs[i].base + from, len - from);
		at += len - from;
	}
	q->c = c;
	q->len = at;
	uv_buf_t b = uv_buf_init(q->data, (unsigned)at);
	r = uv_write(&q->w, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (r < 0) {
		free(q);
		conn_kill(c);
		return;
	}
	c->wqueued += at;
}

/* Moves everything OpenSSL has produced to the socket. */
static void tls_flush(struct conn *c)
{
	char *tmp = c->srv->cipher;
	int n;
	while ((n = BIO_read(c->wbio, tmp, IO_CHUNK)) > 0) {
		uv_buf_t b = uv_buf_init(tmp, (unsigned)n);
		out_write(c, &b, 1);
	}
}

/* Encrypts `len` bytes and flushes them. */
static void tls_send(struct conn *c, const char *p, size_t len)
{
	ERR_clear_error();
	while (len && !c->dead && c->state != C_CLOSED) {
		int n = len > (1u << 30) ? (1 << 30) : (int)len;
		int r = SSL_write(c->ssl, p, n);
		if (r <= 0) {
			log_debug(MOD, "tls write failed peer=%s", c->peer);
			ERR_clear_error();
			conn_kill(c);
			return;
		}
		tls_flush(c);
		p += r;
		len -= (size_t)r;
	}
}

/* Sends the head in c->out followed by `body`: one socket write of two
 * buffers in plain text, one SSL_write for small bodies over TLS. */
static void send_head_body(struct conn *c, const void *body, size_t len)
{
	if (c->ssl) {
		if (len && len <= TLS_INLINE_BODY) {
			buf_add(&c->out, body, len);
			len = 0;
		}
		tls_send(c, c->out.data, c->out.len);
		tls_send(c, body, len);
		return;
	}
	uv_buf_t b[2] = {uv_buf_init(c->out.data, (unsigned)c->out.len),
	                 uv_buf_init(unconst(body), (unsigned)len)};
	out_write(c, b, len ? 2 : 1);
}

/* ---------------------------------------------------------------- */
/* response heads                                                    */

#define OUT_LIT(o, s) buf_add((o), (s), sizeof(s) - 1)

static void out_u64(struct buf *o, uint64_t v)
{
	char t[24];
	size_t i = sizeof t;
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_add(o, t + i, sizeof t - i);
}

/* The Date header line, formatted at most once per second. */
static void out_date(struct buf *o, http_server *s)
{
	time_t t = time(NULL);
	if (t != s->date_sec) {
		struct tm tm;
		gmtime_r(&t, &tm);
		s->date_len =
		    strftime(s->date, sizeof s->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
		s->date_sec = t;
	}
	buf_add(o, s->date, s->date_len);
}

static int no_body_status(int status)
{
	return status < 200 || status == 204 || status == 304;
}

/* Builds a response head in c->out.  `clen` < 0 means no Content-Length. */
static void build_head(struct conn *c, http_req *r, int status, const char *ctype, int64_t clen,
                       int chunked)
{
	struct buf *o = &c->out;
	o->len = 0;
	OUT_LIT(o, "HTTP/1.1 ");
	out_u64(o, (uint64_t)status);
	OUT_LIT(o, " ");
	buf_adds(o, http_status_text(status));
	OUT_LIT(o, "\r\n");
	out_date(o, c->srv);
	if (ctype && !strpbrk(ctype, "\r\n")) {
		OUT_LIT(o, "Content-Type: ");
		buf_adds(o, ctype);
		OUT_LIT(o, "\r\n");
	}
	if (clen >= 0) {
		OUT_LIT(o, "Content-Length: ");
		out_u64(o, (uint64_t)clen);
		OUT_LIT(o, "\r\n");
	}
	if (chunked)
		OUT_LIT(o, "Transfer-Encoding: chunked\r\n");
	if (c->close_after)
		OUT_LIT(o, "Connection: close\r\n");
	else if (r->http_major == 1 && r->http_minor == 0)
		OUT_LIT(o, "Connection: keep-alive\r\n");
	if (r->hout.len)
		buf_add(o, r->hout.data, r->hout.len);
	OUT_LIT(o, "\r\n");
}

/* Copies `s` into a JSON string body, dropping what would need escapes. */
static void json_text(char *out, size_t cap, const char *s)
{
	size_t n = 0;
	for (; *s && n + 1 < cap; s++)
		if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
			out[n++] = *s;
	out[n] = '\0';
}

/* Answers a request the server itself rejects with a Kubernetes Status and
 * ends the connection. */
static void send_error(struct conn *c, int status, const char *reason, const char *msg)
{
	http_req *r = c->req;
	http_server *s = c->srv;
	if (c->state >= C_ENDING || c->dead)
		return;
	char text[160], body[400];
	json_text(text, sizeof text, msg);
	int n = snprintf(body, sizeof body,
	                 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
	                 "\"status\":\"Failure\",\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
	                 text, reason, status);
	size_t len = n < 0 ? 0 : (size_t)n >= sizeof body ? sizeof body - 1 : (size_t)n;
	c->close_after = 1;
	r->hout.len = 0;
	build_head(c, r, status, "application/json", (int64_t)len, 0);
	send_head_body(c, body, len);
	r->status = status;
	r->bytes = len;
	if (!r->start_ns)
		r->start_ns = now_ns();
	if (s->o.done)
		s->o.done(r, status, len, now_ns() - r->start_ns, s->o.ud);
	conn_end(c);
}

/* ---------------------------------------------------------------- */
/* finishing a request                                               */

/* Called once per request when its handler is done with it: reports it,
 * then either frees a detached request or readies the connection for the
 * next one. */
static void finish(http_req *r)
{
	http_server *s = r->srv;
	struct conn *c = r->c;
	r->finished = 1;
	r->in_handler = 0;
	s->active--;
	if (s->o.done)
		s->o.done(r, r->status, r->bytes, now_ns() - r->start_ns, s->o.ud);
	if (!c) {
		req_free(r);
		check_done(s);
		return;
	}
	if (c->state != C_BUSY)
		return;
	c->state = C_IDLE;
	if (c->dead)
		return;
	if (c->close_after) {
		conn_end(c);
		return;
	}
	req_reset(r);
	buf_recycle(&c->out);
	timer_arm(c, s->o.idle_timeout_ms);
	if (!c->in_feed)
		resume(c);
}

/* Decides before a response head is built whether the connection ends. */
static void decide_close(struct conn *c, http_req *r)
{
	if (!r->keep_alive || c->srv->shutting_down)
		c->close_after = 1;
}

/* True while a request's writes can still reach its peer. */
static int usable(const http_req *r)
{
	return r->c && !r->c->dead && r->c->state != C_CLOSED;
}

/* Head and body go out in one write; HEAD, 1xx, 204 and 304 get no body.
 * On a detached request nothing is sent and the request is just freed. */
void http_respond(http_req *r, int status, const char *content_type, const void *body, size_t len)
{
	if (!r || r->finished || !r->in_handler) {
		log_error(MOD, "http_respond on a finished request");
		return;
	}
	if (r->streaming) {
		log_error(MOD, "http_respond after http_stream_begin");
		http_stream_end(r);
		return;
	}
	if (usable(r)) {
		struct conn *c = r->c;
		int nobody = no_body_status(status);
		decide_close(c, r);
		build_head(c, r, status, content_type, nobody ? -1 : (int64_t)len, 0);
		if (nobody || r->head)
			len = 0;
		send_head_body(c, body, len);
		r->status = status;
		r->bytes = len;
	}
	finish(r);
}

void http_respond_str(http_req *r, int status, const char *content_type, const char *body)
{
	http_respond(r, status, content_type, body, body ? strlen(body) : 0);
}

/* HTTP/1.0 clients cannot take chunks: their stream is the raw body and
 * ends when the connection closes. */
void http_stream_begin(http_req *r, int status, const char *content_type)
{
	if (!r || r->finished || r->streaming || !r->in_handler)
		return;
	r->streaming = 1;
	r->chunked = r->http_major > 1 || (r->http_major == 1 && r->http_minor >= 1);
	if (!r->chunked)
		r->keep_alive = 0; /* HTTP/1.0: the body ends when we close */
	if (!usable(r))
		return;
	decide_close(r->c, r);
	build_head(r->c, r, status, content_type, -1, r->chunked);
	send_head_body(r->c, NULL, 0);
	r->status = status;
}

/* One chunk per call.  A peer that lets more than STREAM_PENDING_MAX bytes
 * pile up is dropped (its close callback runs from the next loop turn). */
int http_stream_write(http_req *r, const void *data, size_t len)
{
	if (!r || !r->streaming || r->finished || !usable(r))
		return -1;
	struct conn *c = r->c;
	if (!len || r->head)
		return 0;
	if (c->wqueued && c->wqueued + len > STREAM_PENDING_MAX) {
		log_info(MOD, "dropping slow stream reader peer=%s pending=%zu", c->peer,
		         c->wqueued);
		conn_kill(c);
		return -1;
	}
	char line[24];
	int n = r->chunked ? snprintf(line, sizeof line, "%zx\r\n", len) : 0;
	if (c->ssl && len > TLS_INLINE_BODY) {
		tls_send(c, line, (size_t)n);
		tls_send(c, data, len);
		tls_send(c, "\r\n", r->chunked ? 2 : 0);
	} else if (c->ssl) {
		c->out.len = 0;
		buf_add(&c->out, line, (size_t)n);
		buf_add(&c->out, data, len);
		if (r->chunked)
			OUT_LIT(&c->out, "\r\n");
		tls_send(c, c->out.data, c->out.len);
	} else {
		uv_buf_t b[3] = {uv_buf_init(line, (unsigned)n),
		                 uv_buf_init(unconst(data), (unsigned)len),
		                 uv_buf_init(unconst("\r\n"), r->chunked ? 2 : 0)};
		out_write(c, b, 3);
	}
	r->bytes += len;
	return usable(r) ? 0 : -1;
}

size_t http_stream_pending(const http_req *r)
{
	return r && r->c ? r->c->wqueued : 0;
}

/* Sends the last chunk (if chunked) and finishes the request. */
void http_stream_end(http_req *r)
{
	if (!r || r->finished || !r->in_handler)
		return;
	if (!r->streaming) {
		log_error(MOD, "http_stream_end without http_stream_begin");
		http_respond(r, 500, NULL, NULL, 0);
		return;
	}
	if (usable(r) && r->chunked && !r->head) {
		static const char last[] = "0\r\n\r\n";
		struct conn *c = r->c;
		if (c->ssl) {
			tls_send(c, last, sizeof last - 1);
		} else {
			uv_buf_t b = uv_buf_init(unconst(last), sizeof last - 1);
			out_write(c, &b, 1);
		}
	}
	finish(r);
}

/* Header names and values with CR, LF (or, in names, ":" and spaces) are
 * dropped so that a handler cannot be tricked into response splitting. */
void http_add_header(http_req *r, const char *name, const char *value)
{
	if (!r || !name || !*name || !value || r->streaming || r->finished)
		return;
	if (strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n")) {
		log_warn(MOD, "dropping response header with forbidden characters");
		return;
	}
	buf_adds(&r->hout, name);
	OUT_LIT(&r->hout, ": ");
	buf_adds(&r->hout, value);
	OUT_LIT(&r->hout, "\r\n");
}

/* ---------------------------------------------------------------- */
/* parsing                                                           */

/* Terminates the string being collected. */
static void part_end(http_req *r)
{
	if (r->part == P_NONE)
		return;
	if (r->part == P_URL)
		r->url_len = r->store.len - r->url_off;
	buf_add(&r->store, "", 1);
	r->part = P_NONE;
}

/* Starts a new header entry in the index. */
static void hdr_push(http_req *r)
{
	if (r->nhdrs == r->hdrs_cap) {
		r->hdrs_cap = r->hdrs_cap ? r->hdrs_cap * 2 : 16;
		r->hdrs = xrealloc(r->hdrs, r->hdrs_cap * sizeof *r->hdrs);
	}
	r->hdrs[r->nhdrs].name_off = r->store.len;
	r->hdrs[r->nhdrs].value_off = SIZE_MAX;
	r->nhdrs++;
}

/* Appends a piece of the URL, a header name or a header value; pieces of
 * one string may arrive in several calls. */
static int store_add(struct conn *c, enum part part, const char *at, size_t len)
{
	http_req *r = c->req;
	if (r->hdrs_done)
		return 0; /* trailers: size-checked by http-parser, ignored */
	if (r->store.len + len + 1 > c->srv->o.max_header_bytes) {
		c->fail = 431;
		return -1;
	}
	if (part != r->part) {
		part_end(r);
		if (part == P_URL) {
			r->url_off = r->store.len;
		} else if (part == P_FIELD) {
			hdr_push(r);
		} else if (r->nhdrs) {
			r->hdrs[r->nhdrs - 1].value_off = r->store.len;
		} else {
			return -1;
		}
		r->part = part;
	}
	buf_add(&r->store, at, len);
	return 0;
}

/* http-parser callbacks; `p->data` is the connection.  Returning non-zero
 * stops the parser with an error, c->fail saying which status to send. */
static int on_url(http_parser *p, const char *at, size_t len)
{
	return store_add(p->data, P_URL, at, len);
}

/* RFC 9110 token characters: http-parser (as Debian builds it) lets some
 * others through in header names, such as spaces. */
static int is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	for (size_t i = 0; i < len; i++)
		if (!is_tchar((unsigned char)at[i])) {
			c->fail = 400;
			return -1;
		}
	return store_add(c, P_FIELD, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	return store_add(p->data, P_VALUE, at, len);
}

/* The first byte of a request starts its deadline. */
static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;
	http_req *r = c->req;
	r->start_ns = now_ns();
	if (c->state == C_IDLE) {
		c->state = C_READING;
		/* the first request shares the connection's initial deadline */
		if (c->nreq)
			timer_arm(c, c->srv->o.request_timeout_ms);
	}
	return 0;
}

/* The value of a hex digit, or -1. */
static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes a path into `out`; -1 on a bad escape or an encoded NUL. */
static int path_decode(char *out, const char *s, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[j++] = s[i];
			continue;
		}
		if (n - i < 3)
			return -1;
		int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
		if (h < 0 || l < 0 || (h == 0 && l == 0))
			return -1;
		out[j++] = (char)(h << 4 | l);
		i += 2;
	}
	out[j] = '\0';
	return (int)j;
}

/* Splits the request-target into path and query and decodes the path; all
 * results are appended to the store, which was reserved to never move. */
static int split_target(http_req *r, int is_connect, size_t *path_off, size_t *query_off)
{
	buf_reserve(&r->store, r->url_len * 2 + 8);
	const char *url = r->store.data + r->url_off;
	size_t plen = 0, qlen = 0;
	const char *path = "", *query = "";
	if (r->url_len == 1 && url[0] == '*') {
		path = url;
		plen = 1;
	} else {
		struct http_parser_url u;
		http_parser_url_init(&u);
		if (http_parser_parse_url(url, r->url_len, is_connect, &u))
			return -1;
		if (u.field_set & (1 << UF_PATH)) {
			path = url + u.field_data[UF_PATH].off;
			plen = u.field_data[UF_PATH].len;
		} else if (!is_connect) {
			path = "/";
			plen = 1;
		}
		if (u.field_set & (1 << UF_QUERY)) {
			query = url + u.field_data[UF_QUERY].off;
			qlen = u.field_data[UF_QUERY].len;
		}
	}
	*query_off = r->store.len;
	buf_add(&r->store, query, qlen);
	buf_add(&r->store, "", 1);
	*path_off = r->store.len;
	int n = path_decode(r->store.data + r->store.len, path, plen);
	if (n < 0)
		return -1;
	r->store.len += (size_t)n + 1;
	r->store.data[r->store.len] = '\0';
	return 0;
}

/* Turns the collected offsets into the request's string pointers. */
static int finish_headers(struct conn *c, http_req *r)
{
	size_t path_off, query_off;
	part_end(r);
	if (r->url_len == 0 && r->store.len == 0)
		return -1;
	if (split_target(r, c->parser.method == HTTP_CONNECT, &path_off, &query_off) < 0)
		return -1;
	const char *base = r->store.data;
	r->method = http_method_str((enum http_method)c->parser.method);
	r->target = base + r->url_off;
	r->query = base + query_off;
	r->path = base + path_off;
	for (size_t i = 0; i < r->nhdrs; i++) {
		struct hdr *h = &r->hdrs[i];
		h->name = base + h->name_off;
		h->value = h->value_off == SIZE_MAX ? "" : base + h->value_off;
	}
	r->hdrs_done = 1;
	return 0;
}

/* Tells a client that announced "Expect: 100-continue" to send its body. */
static void maybe_continue(struct conn *c, http_req *r)
{
	const char *x = http_req_header(r, "Expect");
	if (!x || strcasecmp(x, "100-continue") || c->parser.http_minor < 1)
		return;
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	if (c->ssl) {
		tls_send(c, cont, sizeof cont - 1);
	} else {
		uv_buf_t b = uv_buf_init(unconst(cont), sizeof cont - 1);
		out_write(c, &b, 1);
	}
}

/* Rejects a declared body over the limit before reading it, then indexes
 * the headers and decodes the target. */
static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;
	http_req *r = c->req;
	size_t max = c->srv->o.max_body_bytes;
	if (p->content_length != ULLONG_MAX && p->content_length > max) {
		c->fail = 413;
		return -1;
	}
	if (finish_headers(c, r) < 0) {
		c->fail = 400;
		return -1;
	}
	r->head = p->method == HTTP_HEAD;
	if (p->content_length != ULLONG_MAX && p->content_length > 0) {
		buf_reserve(&r->body, (size_t)p->content_length);
		maybe_continue(c, r);
	} else if (p->flags & F_CHUNKED) {
		maybe_continue(c, r);
	}
	return 0;
}

/* Collects body bytes, enforcing the limit for chunked bodies too. */
static int on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;
	http_req *r = c->req;
	if (len > c->srv->o.max_body_bytes - r->body.len) {
		c->fail = 413;
		return -1;
	}
	buf_add(&r->body, at, len);
	return 0;
}

/* Pauses the parser so that parse() hands this request over before
 * looking at the next one. */
static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;
	http_req *r = c->req;
	r->http_major = p->http_major;
	r->http_minor = p->http_minor;
	r->keep_alive = http_should_keep_alive(p) && !p->upgrade && p->method != HTTP_CONNECT;
	http_parser_pause(p, 1); /* one request at a time */
	return 0;
}

/* Hands a complete request to the application. */
static void dispatch(struct conn *c)
{
	http_req *r = c->req;
	http_server *s = c->srv;
	uv_timer_stop(&c->timer);
	c->state = C_BUSY;
	c->nreq++;
	r->in_handler = 1;
	s->active++;
	s->o.handler(r, s->o.ud);
}

/* Maps a parser failure to the Status the client gets. */
static void parse_failed(struct conn *c, enum http_errno en)
{
	int status = c->fail ? c->fail : en == HPE_HEADER_OVERFLOW ? 431 : 400;
	log_debug(MOD, "bad request peer=%s status=%d: %s", c->peer, status,
	          http_errno_description(en));
	if (status == 431)
		send_error(c, 431, err_reason(ERR_HEADERS_TOO_LARGE),
		           "request header fields too large");
	else if (status == 413)
		send_error(c, 413, err_reason(ERR_TOO_LARGE), "request body too large");
	else
		send_error(c, 400, err_reason(ERR_BAD_REQUEST), http_errno_description(en));
}

/* Feeds bytes to the parser until they run out, a request goes to its
 * handler and stays there, or the connection ends.  Returns bytes used. */
static size_t parse(struct conn *c, const char *data, size_t len)
{
	size_t off = 0;
	c->in_feed = 1;
	while (off < len && c->state <= C_READING && !c->dead) {
		size_t n = http_parser_execute(&c->parser, &c->srv->ps, data + off, len - off);
		off += n;
		enum http_errno en = HTTP_PARSER_ERRNO(&c->parser);
		if (en == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			dispatch(c);
		} else if (en != HPE_OK) {
			parse_failed(c, en);
		} else if (n == 0) {
			break;
		}
	}
	c->in_feed = 0;
	return off;
}

/* ---------------------------------------------------------------- */
/* input                                                             */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *c = h->data;
	*b = uv_buf_init(c->srv->rbuf, IO_CHUNK);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* Stops reading while too much input waits for a busy handler. */
static void read_pause(struct conn *c)
{
	if (!c->read_paused && c->state != C_CLOSED) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->read_paused = 1;
	}
}

static void read_resume(struct conn *c)
{
	if (c->read_paused && c->state != C_CLOSED) {
		c->read_paused = 0;
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	}
}

/* Bytes kept for parsing later. */
static size_t pending(const struct conn *c)
{
	return c->pend.len - c->pend_off;
}

/* Keeps input for later, compacting what was already parsed. */
static void pend_add(struct conn *c, const char *data, size_t n)
{
	if (c->pend_off) {
		memmove(c->pend.data, c->pend.data + c->pend_off, pending(c));
		c->pend.len -= c->pend_off;
		c->pend_off = 0;
	}
	buf_add(&c->pend, data, n);
}

/* Parses kept input after a response, then reads again. */
static void resume(struct conn *c)
{
	if (pending(c)) {
		size_t n = parse(c, c->pend.data + c->pend_off, pending(c));
		c->pend_off += n;
	}
	if (!pending(c)) {
		buf_recycle(&c->pend);
		c->pend_off = 0;
	}
	if (c->state <= C_READING)
		read_resume(c);
}

/* Plaintext from the peer: parsed at once when possible, else kept. */
static void input(struct conn *c, const char *data, size_t n)
{
	if (pending(c) || c->state == C_BUSY) {
		pend_add(c, data, n);
		if (c->state != C_BUSY)
			resume(c);
	} else {
		size_t used = parse(c, data, n);
		if (used < n && c->state == C_BUSY && !c->dead)
			pend_add(c, data + used, n - used);
	}
	if (c->state == C_BUSY && pending(c) > PENDING_MAX)
		read_pause(c);
}

/* Decrypts what the read BIO holds, driving the handshake first. */
static void tls_input(struct conn *c, const char *data, size_t n)
{
	ERR_clear_error();
	if (BIO_write(c->rbio, data, (int)n) != (int)n) {
		conn_close(c);
		return;
	}
	if (!SSL_is_init_finished(c->ssl)) {
		int r = SSL_do_handshake(c->ssl);
		tls_flush(c);
		if (r <= 0) {
			if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
				return;
			unsigned long e = ERR_peek_error();
			log_debug(MOD, "tls handshake failed peer=%s: %s", c->peer,
			          e ? ERR_reason_error_string(e) : "eof");
			ERR_clear_error();
			conn_close(c);
			return;
		}
	}
	while (c->state <= C_BUSY && !c->dead) {
		int r = SSL_read(c->ssl, c->srv->plain, IO_CHUNK);
		if (r > 0) {
			input(c, c->srv->plain, (size_t)r);
			continue;
		}
		int e = SSL_get_error(c->ssl, r);
		tls_flush(c);
		if (e == SSL_ERROR_WANT_READ)
			break;
		log_debug(MOD, "tls read ended peer=%s err=%d", c->peer, e);
		ERR_clear_error();
		conn_close(c);
		break;
	}
}

/* EOF or an error closes the connection (a busy request is detached); a
 * closing connection only drains what the peer still sends. */
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = st->data;
	if (n == 0 || c->state == C_CLOSED)
		return;
	if (n < 0) {
		if (n != UV_EOF)
			log_debug(MOD, "read failed peer=%s: %s", c->peer, uv_strerror((int)n));
		c->eof = 1;
		if (c->state != C_ENDING || c->shut_done || n != UV_EOF)
			conn_close(c);
		else
			read_pause(c);
		return;
	}
	if (c->state == C_ENDING) {
		c->linger_bytes += (size_t)n;
		if (c->linger_bytes > LINGER_BYTES)
			conn_close(c);
		return;
	}
	if (c->ssl)
		tls_input(c, b->base, (size_t)n);
	else
		input(c, b->base, (size_t)n);
}

/* ---------------------------------------------------------------- */
/* connection lifetime                                               */

static void conn_free(struct conn *c)
{
	http_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	if (c->ssl)
		SSL_free(c->ssl);
	req_free(c->req);
	buf_fini(&c->pend);
	buf_fini(&c->out);
	free(c);
	check_done(s);
}

/* The connection is freed after both of its handles are closed. */
static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->handles == 0)
		conn_free(c);
}

/* Closes at once.  A request with its handler is detached and told. */
static void conn_close(struct conn *c)
{
	if (c->state == C_CLOSED)
		return;
	c->state = C_CLOSED;
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	http_req *r = c->req;
	if (r && r->in_handler) {
		c->req = NULL;
		r->c = NULL;
		r->closed = 1;
		memcpy(r->peer, c->peer, sizeof r->peer);
		notify_close(r);
	}
}

/* Our FIN is out: wait briefly for the peer's before closing. */
static void on_shutdown(uv_shutdown_t *sr, int status)
{
	struct conn *c = sr->data;
	if (c->state == C_CLOSED)
		return;
	c->shut_done = 1;
	if (status < 0 || c->eof) {
		conn_close(c);
		return;
	}
	timer_arm(c, LINGER_MS);
}

/* Closes politely: flush, send FIN, then drain the peer's input for a
 * moment so that a reply is not destroyed by a reset. */
static void conn_end(struct conn *c)
{
	if (c->state >= C_ENDING)
		return;
	c->state = C_ENDING;
	if (c->ssl && SSL_is_init_finished(c->ssl) && !c->dead) {
		SSL_shutdown(c->ssl);
		ERR_clear_error();
		tls_flush(c);
	}
	if (c->dead)
		return;
	c->sreq.data = c;
	if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		conn_close(c);
		return;
	}
	timer_arm(c, c->srv->o.idle_timeout_ms);
	read_resume(c);
}

/* The timer means: handshake/first request or idle deadline (C_IDLE),
 * request deadline (C_READING, answered with 408), flush or linger
 * deadline (C_ENDING), or a deferred close after a write error. */
static void on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->dead || c->state == C_CLOSED) {
		conn_close(c);
		return;
	}
	switch (c->state) {
	case C_READING:
		log_debug(MOD, "request timeout peer=%s", c->peer);
		send_error(c, 408, "Timeout", "request timed out");
		break;
	case C_BUSY:
		break;
	default:
		conn_close(c);
		break;
	}
}

/* Formats the peer as "ip:port" ("[ip]:port" for IPv6). */
static void peer_name(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "?";
	snprintf(c->peer, sizeof c->peer, "?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, ip, sizeof ip);
		snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		uv_ip4_name(a, ip, sizeof ip);
		snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(a->sin_port));
	}
}

/* Allocates a connection with its reusable request and links it in. */
static struct conn *conn_new(http_server *s)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->srv = s;
	c->req = req_new(s, c);
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return c;
}

/* Sets up TLS for a new connection; -1 if OpenSSL refuses. */
static int conn_tls(struct conn *c)
{
	c->ssl = SSL_new(c->srv->o.tls_ctx);
	if (!c->ssl)
		return -1;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		return -1;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_accept_state(c->ssl);
	return 0;
}

/* Frees a rejected connection's handle. */
static void on_reject_closed(uv_handle_t *h)
{
	http_server *s = h->data;
	free(h);
	s->nrejects--;
	check_done(s);
}

/* Accepts and immediately closes a connection over the limit. */
static void reject(http_server *s)
{
	uv_tcp_t *t = xmalloc(sizeof *t);
	uv_tcp_init(s->loop, t);
	t->data = s;
	s->nrejects++;
	if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t) == 0)
		log_debug(MOD, "connection limit reached, closing new connection");
	uv_close((uv_handle_t *)t, on_reject_closed);
}

/* Accepts a connection; its first deadline covers the TLS handshake and
 * the whole first request. */
static void on_connection(uv_stream_t *l, int status)
{
	http_server *s = l->data;
	if (status < 0) {
		log_warn(MOD, "accept failed: %s", uv_strerror(status));
		return;
	}
	if (s->shutting_down || s->nconns >= s->o.max_connections) {
		reject(s);
		return;
	}
	struct conn *c = conn_new(s);
	if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || (s->o.tls_ctx && conn_tls(c) < 0)) {
		ERR_clear_error();
		conn_close(c);
		return;
	}
	peer_name(c);
	uv_tcp_nodelay(&c->tcp, 1);
	uv_timer_start(&c->timer, on_timer, s->o.request_timeout_ms, 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---------------------------------------------------------------- */
/* the server                                                        */

static void apply_defaults(struct http_server_opts *o)
{
	if (!o->max_header_bytes)
		o->max_header_bytes = 16 * 1024;
	if (!o->max_body_bytes)
		o->max_body_bytes = 4 * 1024 * 1024;
	if (!o->request_timeout_ms)
		o->request_timeout_ms = 10000;
	if (!o->idle_timeout_ms)
		o->idle_timeout_ms = 60000;
	if (!o->max_connections)
		o->max_connections = 1024;
	if (o->max_header_bytes > UINT32_MAX)
		o->max_header_bytes = UINT32_MAX;
}

/* Frees a server whose listener could not be set up. */
static void on_start_failed_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Binds the listener; fills `e` on failure. */
static int listen_on(http_server *s, const char *host, int port, struct err *e)
{
	struct sockaddr_storage ss;
	int r = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss)
	                          : uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
	if (r < 0)
		return err_set(e, ERR_CONFIG, "http: bad listen address %s", host);
	r = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
	if (r < 0)
		return err_set(e, ERR_IO, "http: listen on %s:%d: %s", host, port, uv_strerror(r));
	struct sockaddr_storage got;
	int len = sizeof got;
	if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len) == 0)
		s->port =
		    ntohs(got.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&got)->sin6_port
		                                    : ((const struct sockaddr_in *)&got)->sin_port);
	return 0;
}

int http_server_start(uv_loop_t *loop, const struct http_server_opts *opts, http_server **out,
                      struct err *e)
{
	if (!opts || !opts->handler)
		return err_set(e, ERR_CONFIG, "http: no handler");
	http_server *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->o = *opts;
	apply_defaults(&s->o);
	s->o.host = NULL; /* borrowed; only needed to bind */
	s->ps.on_message_begin = on_message_begin;
	s->ps.on_url = on_url;
	s->ps.on_header_field = on_header_field;
	s->ps.on_header_value = on_header_value;
	s->ps.on_headers_complete = on_headers_complete;
	s->ps.on_body = on_body;
	s->ps.on_message_complete = on_message_complete;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	int r = listen_on(s, opts->host ? opts->host : "127.0.0.1", opts->port, e);
	if (r < 0) {
		uv_close((uv_handle_t *)&s->listener, on_start_failed_closed);
		return r;
	}
	s->listening = 1;
	uv_timer_init(loop, &s->grace);
	s->grace.data = s;
	s->grace_open = 1;
	/* http-parser's own header limit is process-wide; it makes ours exact */
	http_parser_set_max_header_size((uint32_t)s->o.max_header_bytes);
	*out = s;
	return 0;
}

int http_server_port(const http_server *s)
{
	return s->port;
}

unsigned http_server_connections(const http_server *s)
{
	return s->nconns;
}

unsigned http_server_requests(const http_server *s)
{
	return s->active;
}

/* The last handle is closed: the shutdown is complete. */
static void on_grace_closed(uv_handle_t *h)
{
	http_server *s = h->data;
	s->grace_open = 0;
	if (s->shutdown_cb)
		s->shutdown_cb(s->shutdown_arg);
}

/* Completes a shutdown once nothing is left: no handle and no request. */
static void check_done(http_server *s)
{
	if (!s->shutting_down || s->listening || s->nconns || s->nrejects || s->active)
		return;
	if (!s->grace_open || s->grace_closing)
		return;
	s->grace_closing = 1;
	uv_close((uv_handle_t *)&s->grace, on_grace_closed);
}

/* The listener is gone; the shutdown may be complete. */
static void on_listener_closed(uv_handle_t *h)
{
	http_server *s = h->data;
	s->listening = 0;
	check_done(s);
}

/* After the grace period everything still open is closed. */
static void on_grace(uv_timer_t *t)
{
	http_server *s = t->data;
	for (struct conn *c = s->conns; c; c = c->next)
		conn_close(c);
	check_done(s);
}

/* Idle connections close now; busy requests with a close callback (streams,
 * watches) are told to end; partial requests may still complete. */
void http_server_shutdown(http_server *s, uint64_t grace_ms, void (*cb)(void *arg), void *arg)
{
	if (s->shutting_down)
		return;
	s->shutting_down = 1;
	s->shutdown_cb = cb;
	s->shutdown_arg = arg;
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
	uv_timer_start(&s->grace, on_grace, grace_ms, 0);
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->state == C_IDLE)
			conn_close(c);
		else if (c->state == C_BUSY && c->req)
			notify_close(c->req);
	}
	check_done(s);
}

/* Only valid once the shutdown callback ran (or if start failed). */
void http_server_free(http_server *s)
{
	if (!s)
		return;
	if (s->listening || s->grace_open) {
		log_error(MOD, "http_server_free before shutdown completed; leaking it");
		return;
	}
	free(s);
}

/* ---------------------------------------------------------------- */
/* request accessors                                                 */

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

const char *http_req_method(const http_req *r)
{
	return or_empty(r->method);
}
const char *http_req_path(const http_req *r)
{
	return or_empty(r->path);
}
const char *http_req_raw_target(const http_req *r)
{
	return or_empty(r->target);
}
const char *http_req_query_raw(const http_req *r)
{
	return or_empty(r->query);
}
uint64_t http_req_start_ns(const http_req *r)
{
	return r->start_ns;
}
void http_req_set_data(http_req *r, void *data)
{
	r->data = data;
}
void *http_req_data(const http_req *r)
{
	return r->data;
}
void http_req_set_label(http_req *r, const char *label)
{
	r->label = label;
}
const char *http_req_label(const http_req *r)
{
	return r->label;
}
int http_req_closed(const http_req *r)
{
	return r->closed || !usable(r);
}

/* A detached request keeps a copy of its peer. */
const char *http_req_peer(const http_req *r)
{
	return r->c ? r->c->peer : r->peer;
}

const char *http_req_header(const http_req *r, const char *name)
{
	if (!r->hdrs_done)
		return NULL;
	for (size_t i = 0; i < r->nhdrs; i++)
		if (!strcasecmp(r->hdrs[i].name, name))
			return r->hdrs[i].value;
	return NULL;
}

const char *http_req_body(const http_req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return or_empty(r->body.data);
}

/* A callback registered after the peer already left runs at once. */
void http_req_on_close(http_req *r, void (*cb)(http_req *r, void *arg), void *arg)
{
	r->on_close = cb;
	r->on_close_arg = arg;
	if (r->closed)
		notify_close(r);
}

/* The byte a "%XY" escape at s[i] stands for, or -1 when it is not a
 * valid escape or encodes NUL. */
static int escape_at(const char *s, size_t i, size_t n)
{
	if (s[i] != '%' || n - i < 3)
		return -1;
	int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
	if (h < 0 || l < 0 || (h == 0 && l == 0))
		return -1;
	return h << 4 | l;
}

/* Form-decodes n bytes ('+' is a space); bad escapes and %00 stay as
 * written.  Returns the bytes written, no terminator. */
static size_t form_decode(char *out, const char *s, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		int v = escape_at(s, i, n);
		if (v >= 0) {
			out[j++] = (char)v;
			i += 2;
		} else {
			out[j++] = s[i] == '+' ? ' ' : s[i];
		}
	}
	return j;
}

/* Decodes every "k=v" pair of the query once, into one buffer that is
 * sized up front so the returned pointers never move. */
static void query_index(http_req *r)
{
	const char *q = http_req_query_raw(r);
	size_t n = strlen(q);
	r->qbuf.len = 0;
	buf_reserve(&r->qbuf, 2 * n + 2);
	char *out = r->qbuf.data;
	size_t j = 0;
	while (*q) {
		size_t seg = strcspn(q, "&");
		const char *eq = memchr(q, '=', seg);
		size_t klen = eq ? (size_t)(eq - q) : seg;
		if (seg) {
			j += form_decode(out + j, q, klen);
			out[j++] = '\0';
			if (eq)
				j += form_decode(out + j, eq + 1, seg - klen - 1);
			out[j++] = '\0';
		}
		q += seg;
		if (*q == '&')
			q++;
	}
	r->qbuf.len = j;
	r->qready = 1;
}

/* Decodes the whole query on first use; later lookups are scans. */
const char *http_req_query(http_req *r, const char *name)
{
	if (!r->qready)
		query_index(r);
	const char *p = r->qbuf.data, *end = p + r->qbuf.len;
	while (p && p < end) {
		const char *k = p;
		const char *v = k + strlen(k) + 1;
		if (!strcmp(k, name))
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Range Not Satisfiable";
	case 422:
		return "Unprocessable Entity";
	case 426:
		return "Upgrade Required";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default:
		return "Unknown";
	}
}
