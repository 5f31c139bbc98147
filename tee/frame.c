/* frame: see frame.h.  The reader keeps unconsumed bytes in one buffer and
 * compacts it when more than half is consumed, so a stream of small frames
 * costs no per-frame allocation beyond the JSON tree. */
#include "frame.h"

#include <string.h>

int frame_encode_payload(struct buf *out, int64_t id, const char *type, const json_t *body,
			 const void *payload, size_t plen, struct err *e)
{
	json_t *msg = body ? json_pack("{s:I, s:s, s:O}", "id", (json_int_t)id, "type", type, "body",
				       (json_t *)(uintptr_t)body)
			   : json_pack("{s:I, s:s, s:{}}", "id", (json_int_t)id, "type", type, "body");
	if (msg && payload)
		json_object_set_new(msg, "payload", json_integer((json_int_t)plen));
	if (!msg)
		return err_set(e, ERR_INVALID, "frame %s: cannot encode", type);
	size_t jlen = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	size_t len = jlen + (payload ? plen : 0);
	if (jlen == 0 || len > FRAME_MAX) {
		json_decref(msg);
		return err_set(e, ERR_TOO_LARGE, "frame %s: %zu bytes exceeds the %u-byte limit", type,
			       len, FRAME_MAX);
	}
	unsigned char hdr[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
				(unsigned char)(len >> 8), (unsigned char)len};
	buf_add(out, hdr, 4);
	buf_reserve(out, len);
	json_dumpb(msg, out->data + out->len, jlen, JSON_COMPACT);
	out->len += jlen;
	if (payload)
		buf_add(out, payload, plen);
	out->data[out->len] = '\0';
	json_decref(msg);
	return 0;
}

int frame_encode(struct buf *out, int64_t id, const char *type, const json_t *body,
		 struct err *e)
{
	return frame_encode_payload(out, id, type, body, NULL, 0, e);
}

void frame_msg_fini(struct frame_msg *m)
{
	json_decref(m->doc);
	memset(m, 0, sizeof *m);
}

void frame_reader_init(struct frame_reader *r)
{
	buf_init(&r->in);
	r->off = 0;
	r->broken = 0;
}

void frame_reader_fini(struct frame_reader *r) { buf_fini(&r->in); }

void frame_reader_feed(struct frame_reader *r, const void *data, size_t len)
{
	if (r->off > 0 && r->off * 2 >= r->in.len) {
		memmove(r->in.data, r->in.data + r->off, r->in.len - r->off);
		r->in.len -= r->off;
		r->off = 0;
	}
	buf_add(&r->in, data, len);
}

static int broken(struct frame_reader *r, struct err *e, const char *what)
{
	r->broken = 1;
	return err_set(e, ERR_BAD_REQUEST, "agent channel: %s", what);
}

int frame_next(struct frame_reader *r, struct frame_msg *m, struct err *e)
{
	memset(m, 0, sizeof *m);
	if (r->broken)
		return err_set(e, ERR_BAD_REQUEST, "agent channel: already broken");
	size_t avail = r->in.len - r->off;
	if (avail < 4)
		return 0;
	const unsigned char *p = (const unsigned char *)r->in.data + r->off;
	uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (len == 0)
		return broken(r, e, "empty frame");
	if (len > FRAME_MAX)
		return broken(r, e, "frame larger than 1 MiB");
	if (avail < 4 + (size_t)len)
		return 0;
	/* The JSON object ends where the parser stops; what follows must be
	 * exactly the payload it announces (or, without one, whitespace). */
	json_error_t jerr;
	const char *text = (const char *)p + 4;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &jerr);
	r->off += 4 + (size_t)len;
	if (!doc)
		return broken(r, e, "frame is not JSON");
	size_t end = jerr.position > 0 ? (size_t)jerr.position : 0;
	json_t *id = json_object_get(doc, "id"), *type = json_object_get(doc, "type");
	json_t *body = json_object_get(doc, "body"), *pl = json_object_get(doc, "payload");
	if (!json_is_object(doc) || !json_is_integer(id) || json_integer_value(id) < 0 ||
	    !json_is_string(type) || (body && !json_is_object(body))) {
		json_decref(doc);
		return broken(r, e, "frame is not {id, type, body}");
	}
	if (pl && (!json_is_integer(pl) || json_integer_value(pl) < 0 || end > len ||
		   (json_int_t)(len - end) != json_integer_value(pl))) {
		json_decref(doc);
		return broken(r, e, "frame payload differs from its announced size");
	}
	while (!pl && end < len && text[end] && strchr(" \t\r\n", text[end]))
		end++;
	if (!pl && end != len) {
		json_decref(doc);
		return broken(r, e, "frame is not JSON");
	}
	if (pl && end < len) {
		m->payload = text + end;
		m->payload_len = len - end;
	}
	if (!body) {
		body = json_object();
		json_object_set_new(doc, "body", body);
	}
	m->id = json_integer_value(id);
	m->type = json_string_value(type);
	m->body = body;
	m->doc = doc;
	return 1;
}
