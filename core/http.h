/* http: an HTTP/1.1 server on libuv with Debian's http-parser, plain or TLS
 * (OpenSSL through memory BIOs).
 *
 * One request per connection is handled at a time: while a request is with
 * its handler the connection stops parsing, so pipelined requests are
 * answered in order.  The handler gets an `http_req` it must finish exactly
 * once, now or later, with http_respond() or with a stream
 * (http_stream_begin/http_stream_write/http_stream_end).  If the peer goes
 * away first, the request stays valid until it is finished, writes become
 * no-ops and the close callback (http_req_on_close) tells long-lived
 * handlers (watches, log following) to stop.
 *
 * Limits: request line + headers ≤ max_header_bytes (else 431), body ≤
 * max_body_bytes (else 413), the whole request must arrive within
 * request_timeout_ms of its first byte (slowloris), an idle keep-alive
 * connection is closed after idle_timeout_ms, malformed input → 400 and
 * close.  These error replies are Kubernetes Status JSON like every other.
 *
 * All functions run on the loop thread. */
#ifndef COCOD_HTTP_H
#define COCOD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

typedef struct http_server http_server;
typedef struct http_req http_req;

/* Called once per complete request (headers and body read). */
typedef void (*http_handler_fn)(http_req *req, void *ud);

/* Called once per finished request (response fully queued, or connection
 * lost), for access logs and metrics.  `status` is what was sent (0 if
 * nothing was), `bytes` the body bytes sent. */
typedef void (*http_done_fn)(http_req *req, int status, uint64_t bytes,
			     uint64_t duration_ns, void *ud);

struct http_server_opts {
	const char *host;           /* numeric IPv4/IPv6 address to bind */
	int port;                   /* 0 = pick a free port */
	size_t max_header_bytes;    /* default 16 KiB */
	size_t max_body_bytes;      /* default 4 MiB */
	uint64_t request_timeout_ms; /* first byte → request complete; default 10 s */
	uint64_t idle_timeout_ms;   /* keep-alive idle; default 60 s */
	unsigned max_connections;   /* default 1024; extra connections are closed */
	void *tls_ctx;              /* SSL_CTX *, borrowed; NULL = plain HTTP */
	http_handler_fn handler;
	http_done_fn done;          /* may be NULL */
	void *ud;
};

/* Binds and listens.  On success *out owns the server. */
int http_server_start(uv_loop_t *loop, const struct http_server_opts *opts,
		      http_server **out, struct err *e);

/* The port actually bound (useful with port 0). */
int http_server_port(const http_server *s);

/* Graceful shutdown: stop accepting, close idle connections, end streams
 * (their close callbacks run), let in-flight requests finish for up to
 * `grace_ms`, then close everything.  `cb` runs once all handles are
 * closed; the server may then be freed. */
void http_server_shutdown(http_server *s, uint64_t grace_ms,
			  void (*cb)(void *arg), void *arg);
void http_server_free(http_server *s);

/* Number of open connections and of requests with their handler now. */
unsigned http_server_connections(const http_server *s);
unsigned http_server_requests(const http_server *s);

/* --- request accessors (valid until the request is finished) --- */
const char *http_req_method(const http_req *r);     /* "GET" */
const char *http_req_path(const http_req *r);       /* percent-decoded path, no query */
const char *http_req_raw_target(const http_req *r); /* request-target as sent */
const char *http_req_query_raw(const http_req *r);  /* after '?', or "" */
/* Decoded value of query parameter `name` (first occurrence), NULL if absent. */
const char *http_req_query(http_req *r, const char *name);
/* Header value by case-insensitive name (first occurrence), NULL if absent. */
const char *http_req_header(const http_req *r, const char *name);
const char *http_req_body(const http_req *r, size_t *len);
/* "ip:port" of the peer. */
const char *http_req_peer(const http_req *r);
uint64_t http_req_start_ns(const http_req *r);

/* Per-request slots for the application (route label for metrics, etc.). */
void http_req_set_data(http_req *r, void *data);
void *http_req_data(const http_req *r);
/* A label for logs/metrics (borrowed static string, e.g. the route pattern). */
void http_req_set_label(http_req *r, const char *label);
const char *http_req_label(const http_req *r);

/* Called at most once, when the peer disconnects or the server shuts down
 * before the request is finished. */
void http_req_on_close(http_req *r, void (*cb)(http_req *r, void *arg), void *arg);
/* True once the peer is gone (further writes are dropped). */
int http_req_closed(const http_req *r);

/* --- responses --- */
/* Adds a response header; call before http_respond/http_stream_begin. */
void http_add_header(http_req *r, const char *name, const char *value);
/* Sends a complete response with Content-Length and finishes the request. */
void http_respond(http_req *r, int status, const char *content_type,
		  const void *body, size_t len);
/* Convenience: a NUL-terminated body. */
void http_respond_str(http_req *r, int status, const char *content_type, const char *body);

/* Starts a chunked response. */
void http_stream_begin(http_req *r, int status, const char *content_type);
/* Sends one chunk; returns 0, or -1 when the peer is gone.  Bytes queued but
 * not yet written are bounded; http_stream_pending() says how many. */
int http_stream_write(http_req *r, const void *data, size_t len);
size_t http_stream_pending(const http_req *r);
/* Sends the last chunk and finishes the request. */
void http_stream_end(http_req *r);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
