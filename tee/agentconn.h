/* agentconn: the host end of one pod's agent channel (docs/agent-protocol.md)
 * on a libuv pipe: connects to the channel's UNIX socket (retrying until the
 * VM has bound it, bounded), sends requests with fresh ids and routes each
 * reply to its callback (or times it out), and dispatches the guest's
 * events after validating every field.  The guest is not trusted: a
 * malformed or oversized frame, an invalid event, a reply to a request never
 * made, or more guest → host bytes per second than allowed closes the
 * channel and reports why.  Loop thread only. */
#ifndef COCOD_AGENTCONN_H
#define COCOD_AGENTCONN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

typedef struct agentconn agentconn;

/* Largest raw log chunk the guest may send (the protocol's bound). */
#define AGENTCONN_LOG_MAX (64u * 1024)

/* Guest → host events, already validated.  Strings are borrowed for the
 * call; times are ms since the epoch (0 when the guest gave none).  After
 * `closed`, or after agentconn_close, no callback runs again. */
struct agentconn_handlers {
	void *ud;
	/* The socket connected (the VM is up; the agent may not be yet). */
	void (*connected)(void *ud);
	void (*ready)(void *ud, const char *version, const char *kernel, int64_t boot_ms);
	void (*container_started)(void *ud, const char *name, int64_t pid, int64_t started_at_ms);
	void (*container_exited)(void *ud, const char *name, int exit_code, const char *reason,
	                         int64_t finished_at_ms);
	void (*log)(void *ud, const char *name, const char *stream, const void *data, size_t len);
	void (*attestation)(void *ud, const char *stage, const char *detail);
	/* The channel failed on its own (peer closed, could not connect,
	 * hostile input); `reason` is one line for a pod status message.
	 * Pending requests are dropped without their callbacks. */
	void (*closed)(void *ud, const char *reason);
};

struct agentconn_opts {
	uint64_t connect_timeout_ms; /* keep retrying the socket this long; 0 = 30 s */
	uint64_t flood_bytes;        /* most guest → host bytes per second; 0 = 1 MiB */
};

/* Connects to the socket at `path` (retrying while it is missing or
 * refuses).  The handlers are copied. */
int agentconn_connect(uv_loop_t *loop, const char *path, const struct agentconn_opts *o,
                      const struct agentconn_handlers *h, agentconn **out, struct err *e);
/* The same over an already connected stream socket (tests: a socketpair);
 * takes ownership of `fd`. */
int agentconn_open_fd(uv_loop_t *loop, int fd, const struct agentconn_opts *o,
                      const struct agentconn_handlers *h, agentconn **out, struct err *e);

/* A reply: `body` (borrowed for the call) when the guest answered ok;
 * otherwise `e` says why: the guest's refusal (ERR_CONFLICT with its
 * message) or a timeout (ERR_TIMEOUT). */
typedef void (*agentconn_reply_fn)(void *arg, const json_t *body, const struct err *e);

/* Sends `type` with `body` (borrowed; NULL = {}) and calls `cb` exactly once
 * with the reply or a timeout after `timeout_ms` — unless the channel closes
 * first.  ERR_UNAVAILABLE when the channel is not connected, ERR_TOO_LARGE
 * for a body over the frame limit. */
int agentconn_request(agentconn *c, const char *type, const json_t *body, uint64_t timeout_ms,
                      agentconn_reply_fn cb, void *arg, struct err *e);

/* Sends `type` with `body` and `len` raw payload bytes after it (frame
 * payload, docs/agent-protocol.md).  ERR_UNAVAILABLE also when the guest's
 * `ready` did not offer the "payload" feature (see agentconn_has). */
int agentconn_request_payload(agentconn *c, const char *type, const json_t *body,
                              const void *payload, size_t len, uint64_t timeout_ms,
                              agentconn_reply_fn cb, void *arg, struct err *e);

/* 1 once connected (and not closed). */
int agentconn_connected(const agentconn *c);

/* Features a guest offers in its `ready` (unknown names are ignored). */
#define AGENTCONN_F_PAYLOAD 1u /* "payload": requests may carry frame payloads */
/* 1 when connected and the guest's last `ready` offered every `feature`. */
int agentconn_has(const agentconn *c, unsigned feature);
/* Bytes queued for the guest and not yet written (backpressure). */
size_t agentconn_write_queue(const agentconn *c);

/* Closes the channel; no callback runs after this.  Memory is released
 * once libuv has closed the handles. */
void agentconn_close(agentconn *c);

/* Parses an RFC 3339 time ("2024-05-01T10:00:00.123Z", offsets allowed)
 * into ms since the epoch; -1 when malformed. */
int64_t agentconn_parse_time(const char *s);

#endif
