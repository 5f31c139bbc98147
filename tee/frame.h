/* frame: the agent channel's framing (docs/agent-protocol.md): a 4-byte
 * big-endian length (1 .. FRAME_MAX) and one JSON object {id, type, body},
 * optionally followed by raw bytes (the payload) that the object announces
 * with a top-level "payload": <byte count>.  Payloads carry bulk data
 * (image layers) without base64 and without a JSON string the size of the
 * data, which the guest's parser takes ~0.2 µs per byte to read under TCG.
 * Used by the host (over libuv) and by the guest agent (blocking I/O):
 * frame_encode builds bytes to send; a frame_reader takes whatever bytes
 * arrive and yields whole, validated messages. */
#ifndef COCOD_FRAME_H
#define COCOD_FRAME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "util.h"

#define FRAME_MAX (1u << 20)

/* Appends the frame for {id, type, body} to `out` (body may be NULL: {}).
 * ERR_TOO_LARGE when the encoded message exceeds FRAME_MAX. */
int frame_encode(struct buf *out, int64_t id, const char *type, const json_t *body,
		 struct err *e);
/* frame_encode plus `len` raw payload bytes (announced in the message);
 * the JSON and the payload together must fit in FRAME_MAX. */
int frame_encode_payload(struct buf *out, int64_t id, const char *type, const json_t *body,
			 const void *payload, size_t len, struct err *e);

struct frame_msg {
	int64_t id;
	const char *type; /* borrowed from `doc` */
	json_t *body;     /* borrowed from `doc` */
	json_t *doc;      /* the whole message; frame_msg_fini releases it */
	/* The payload, or NULL (length 0) when the frame has none: borrowed
	 * from the reader, valid until the next frame_reader_feed. */
	const char *payload;
	size_t payload_len;
};
void frame_msg_fini(struct frame_msg *m);

struct frame_reader {
	struct buf in;
	size_t off;
	int broken; /* a framing error happened: drop the peer */
};
void frame_reader_init(struct frame_reader *r);
void frame_reader_fini(struct frame_reader *r);
void frame_reader_feed(struct frame_reader *r, const void *data, size_t len);

/* 1 and *m filled when a whole message is buffered, 0 when more bytes are
 * needed, or a negative code (and r->broken set) for a malformed or
 * oversized frame: the message names what is wrong. */
int frame_next(struct frame_reader *r, struct frame_msg *m, struct err *e);

#endif
