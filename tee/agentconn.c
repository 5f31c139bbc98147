/* agentconn: see agentconn.h.  One uv_pipe_t (re-made for each connection
 * attempt) and one 100 ms timer that drives connection retries and request
 * timeouts.  Flood control counts every byte the guest sends in fixed
 * one-second windows (guest traffic is almost all log data; replies and
 * events are small).  Event fields are checked against the protocol before
 * any callback sees them: container names are DNS labels (they become file
 * names on the host), enums are closed sets, numbers are in range, strings
 * are bounded, log data is valid base64 of at most 64 KiB. */
#include "agentconn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "frame.h"
#include "log.h"
#include "util.h"

#define TICK_MS  100
#define RETRY_MS 100
#define READ_BUF (64 * 1024)
#define TEXT_MAX 4096

struct pending {
	struct pending *next;
	int64_t id;
	uint64_t deadline;
	agentconn_reply_fn cb;
	void *arg;
};

struct wreq {
	uv_write_t req;
	agentconn *c;
	size_t len;
	char data[];
};

struct agentconn {
	uv_loop_t *loop;
	uv_pipe_t *pipe;
	uv_connect_t creq;
	uv_timer_t timer;
	char *path;
	struct agentconn_handlers h;
	uint64_t connect_deadline, retry_at, flood_limit;
	uint64_t window_start, window_bytes;
	int connected, closing, handles;
	unsigned features; /* AGENTCONN_F_*, from the guest's `ready` */
	int64_t next_id;
	struct pending *pending;
	struct frame_reader rd;
	size_t wq;
	char *rbuf;
};

/* ---- lifetime ---- */

static void maybe_free(agentconn *c)
{
	if (!c->closing || c->handles > 0)
		return;
	frame_reader_fini(&c->rd);
	free(c->rbuf);
	free(c->path);
	free(c);
}

static void on_pipe_closed(uv_handle_t *h)
{
	agentconn *c = h->data;
	free(h);
	c->handles--;
	maybe_free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	agentconn *c = h->data;
	c->handles--;
	maybe_free(c);
}

static void drop_pending(agentconn *c)
{
	while (c->pending) {
		struct pending *p = c->pending;
		c->pending = p->next;
		free(p);
	}
}

static void close_handles(agentconn *c)
{
	if (c->pipe && !uv_is_closing((uv_handle_t *)c->pipe))
		uv_close((uv_handle_t *)c->pipe, on_pipe_closed);
	c->pipe = NULL;
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void agentconn_close(agentconn *c)
{
	if (!c || c->closing)
		return;
	c->closing = 1;
	c->connected = 0;
	drop_pending(c);
	close_handles(c);
}

/* The channel failed: close it and tell the owner why (once). */
static void fail(agentconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(agentconn *c, const char *fmt, ...)
{
	if (c->closing)
		return;
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	log_write(strncmp(reason, "hostile", 7) == 0 ? LOG_WARN : LOG_INFO, "agentconn",
	          "closing agent channel path=%s: %s", c->path ? c->path : "(fd)", reason);
	agentconn_close(c);
	if (c->h.closed)
		c->h.closed(c->h.ud, reason);
}

/* ---- validation helpers ---- */

static int get_str(const json_t *body, const char *key, size_t max, int required, const char **out,
                   struct err *e)
{
	const json_t *v = json_object_get(body, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return required ? err_set(e, ERR_BAD_REQUEST, "missing %s", key) : 0;
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return err_set(e, ERR_BAD_REQUEST, "%s: not a string of at most %zu bytes", key,
		               max);
	*out = json_string_value(v);
	return 0;
}

static int get_int(const json_t *body, const char *key, int64_t min, int64_t max, int required,
                   int64_t *out, struct err *e)
{
	const json_t *v = json_object_get(body, key);
	*out = 0;
	if (!v || json_is_null(v))
		return required ? err_set(e, ERR_BAD_REQUEST, "missing %s", key) : 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return err_set(e, ERR_BAD_REQUEST, "%s: not an integer in %lld..%lld", key,
		               (long long)min, (long long)max);
	*out = json_integer_value(v);
	return 0;
}

/* Container names are DNS labels: they name host files. */
static int get_name(const json_t *body, const char **out, struct err *e)
{
	if (get_str(body, "name", 63, 1, out, e))
		return e->code;
	const char *s = *out;
	if (!s[0] || s[0] == '-')
		return err_set(e, ERR_BAD_REQUEST, "name: not a DNS label");
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return err_set(e, ERR_BAD_REQUEST, "name: not a DNS label");
	return 0;
}

static int one_of(const char *s, const char *const *set)
{
	for (; *set; set++)
		if (strcmp(s, *set) == 0)
			return 1;
	return 0;
}

/* An optional RFC 3339 time field. */
static int get_time(const json_t *body, const char *key, int64_t *out, struct err *e)
{
	const char *s;
	*out = 0;
	if (get_str(body, key, 64, 0, &s, e))
		return e->code;
	if (s && (*out = agentconn_parse_time(s)) < 0)
		return err_set(e, ERR_BAD_REQUEST, "%s: not an RFC 3339 time", key);
	return 0;
}

int64_t agentconn_parse_time(const char *s)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	int64_t ms = 0, scale = 100;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return -1;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ms += scale * (*p - '0');
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z')
		p++;
	else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
		off = (*p == '+' ? 1 : -1) * (int64_t)(hh * 3600 + mm * 60);
		p += 6;
	} else
		return -1;
	if (*p)
		return -1;
	time_t t = timegm(&tm);
	return t < 0 ? -1 : ((int64_t)t - off) * 1000 + ms;
}

/* ---- events ---- */

/* `features`: optional, at most 16 names of at most 64 bytes; the ones
 * this host knows become AGENTCONN_F_* bits, others are ignored (a newer
 * guest may offer more). */
static int ready_features(const json_t *b, unsigned *out, struct err *e)
{
	const json_t *f = json_object_get(b, "features"), *v;
	size_t i;
	*out = 0;
	if (!f)
		return 0;
	if (!json_is_array(f) || json_array_size(f) > 16)
		return err_set(e, ERR_INVALID,
		               "ready: features must be an array of at most 16 names");
	json_array_foreach(f, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) > 64)
			return err_set(e, ERR_INVALID, "ready: features[%zu] is not a short string",
			               i);
		if (!strcmp(json_string_value(v), "payload"))
			*out |= AGENTCONN_F_PAYLOAD;
	}
	return 0;
}

static int ev_ready(agentconn *c, const json_t *b, struct err *e)
{
	const char *version, *kernel;
	int64_t boot_ms;
	if (get_str(b, "version", 256, 0, &version, e) ||
	    get_str(b, "kernel", 256, 0, &kernel, e) ||
	    get_int(b, "boot_ms", 0, INT64_C(1) << 40, 0, &boot_ms, e) ||
	    ready_features(b, &c->features, e))
		return e->code;
	if (c->h.ready)
		c->h.ready(c->h.ud, version ? version : "", kernel ? kernel : "", boot_ms);
	return 0;
}

static int ev_started(agentconn *c, const json_t *b, struct err *e)
{
	const char *name;
	int64_t pid, at;
	if (get_name(b, &name, e) || get_int(b, "pid", 0, INT32_MAX, 0, &pid, e) ||
	    get_time(b, "started_at", &at, e))
		return e->code;
	if (c->h.container_started)
		c->h.container_started(c->h.ud, name, pid, at);
	return 0;
}

static int ev_exited(agentconn *c, const json_t *b, struct err *e)
{
	static const char *const reasons[] = {"Completed", "Error", "OOMKilled", "StartError",
	                                      NULL};
	const char *name, *reason;
	int64_t code, at;
	if (get_name(b, &name, e) || get_int(b, "exit_code", 0, 255, 1, &code, e) ||
	    get_str(b, "reason", 32, 1, &reason, e) || get_time(b, "finished_at", &at, e))
		return e->code;
	if (!one_of(reason, reasons))
		return err_set(e, ERR_BAD_REQUEST, "reason: not a known exit reason");
	if (c->h.container_exited)
		c->h.container_exited(c->h.ud, name, (int)code, reason, at);
	return 0;
}

static int ev_log(agentconn *c, const json_t *b, struct err *e)
{
	static const char *const streams[] = {"stdout", "stderr", NULL};
	const char *name, *stream, *data;
	if (get_name(b, &name, e) || get_str(b, "stream", 16, 1, &stream, e) ||
	    get_str(b, "data_b64", (AGENTCONN_LOG_MAX / 3 + 1) * 4, 1, &data, e))
		return e->code;
	if (!one_of(stream, streams))
		return err_set(e, ERR_BAD_REQUEST, "stream: not stdout or stderr");
	uint8_t *raw = NULL;
	size_t n = 0;
	if (b64_decode(data, (size_t)-1, &raw, &n) < 0 || n > AGENTCONN_LOG_MAX) {
		free(raw);
		return err_set(e, ERR_BAD_REQUEST, "data_b64: not base64 of at most 64 KiB");
	}
	if (c->h.log)
		c->h.log(c->h.ud, name, stream, raw, n);
	free(raw);
	return 0;
}

static int ev_attestation(agentconn *c, const json_t *b, struct err *e)
{
	const char *stage, *detail;
	if (get_str(b, "stage", 256, 1, &stage, e) || get_str(b, "detail", TEXT_MAX, 0, &detail, e))
		return e->code;
	if (c->h.attestation)
		c->h.attestation(c->h.ud, stage, detail ? detail : "");
	return 0;
}

static const struct {
	const char *type;
	int (*fn)(agentconn *c, const json_t *body, struct err *e);
} events[] = {
    {"ready", ev_ready}, {"container_started", ev_started}, {"container_exited", ev_exited},
    {"log", ev_log},     {"attestation", ev_attestation},
};

static int on_reply(agentconn *c, const struct frame_msg *m, struct err *e)
{
	struct pending **pp = &c->pending;
	while (*pp && (*pp)->id != m->id)
		pp = &(*pp)->next;
	if (!*pp) {
		if (m->id > 0 && m->id < c->next_id)
			return 0; /* the answer to a request that timed out */
		return err_set(e, ERR_BAD_REQUEST, "reply to request %lld that was never sent",
		               (long long)m->id);
	}
	const json_t *ok = json_object_get(m->body, "ok");
	const char *msg;
	if (!json_is_boolean(ok) || get_str(m->body, "error", TEXT_MAX, 0, &msg, e))
		return err_set(e, ERR_BAD_REQUEST, "reply %lld: malformed body", (long long)m->id);
	struct pending *p = *pp;
	*pp = p->next;
	if (json_is_true(ok)) {
		p->cb(p->arg, m->body, NULL);
	} else {
		struct err re;
		err_set(&re, ERR_CONFLICT, "agent: %s", msg ? msg : "request refused");
		p->cb(p->arg, NULL, &re);
	}
	free(p);
	return 0;
}

static int dispatch(agentconn *c, const struct frame_msg *m, struct err *e)
{
	if (strcmp(m->type, "reply") == 0)
		return on_reply(c, m, e);
	if (m->id != 0)
		return err_set(e, ERR_BAD_REQUEST, "event %.32s with a non-zero id", m->type);
	for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
		if (strcmp(events[i].type, m->type) == 0) {
			if (events[i].fn(c, m->body, e))
				return err_wrap(e, "event %s", events[i].type);
			return 0;
		}
	return err_set(e, ERR_BAD_REQUEST, "unknown message type \"%.32s\"", m->type);
}

/* ---- I/O ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	agentconn *c = h->data;
	if (!c->rbuf)
		c->rbuf = xmalloc(READ_BUF);
	*b = uv_buf_init(c->rbuf, READ_BUF);
}

static void consume(agentconn *c)
{
	struct frame_msg m;
	struct err e = {0};
	for (;;) {
		int rc = frame_next(&c->rd, &m, &e);
		if (rc < 0) {
			fail(c, "hostile guest: %s", e.msg);
			return;
		}
		if (rc == 0)
			return;
		rc = m.payload
		         ? err_set(&e, ERR_INVALID, "%.64s: the guest sends no payloads", m.type)
		         : dispatch(c, &m, &e);
		frame_msg_fini(&m);
		if (rc < 0) {
			fail(c, "hostile guest: agent channel: %s", e.msg);
			return;
		}
		if (c->closing)
			return;
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	agentconn *c = s->data;
	if (c->closing || n == 0)
		return;
	if (n < 0) {
		fail(c, "agent channel: %s",
		     n == UV_EOF || n == UV_ECONNRESET ? "closed by the guest"
		                                       : uv_strerror((int)n));
		return;
	}
	uint64_t now = uv_now(c->loop);
	if (now - c->window_start >= 1000) {
		c->window_start = now;
		c->window_bytes = 0;
	}
	c->window_bytes += (uint64_t)n;
	if (c->window_bytes > c->flood_limit) {
		fail(c,
		     "hostile guest: more than %llu bytes in one second on the agent channel "
		     "(flood)",
		     (unsigned long long)c->flood_limit);
		return;
	}
	frame_reader_feed(&c->rd, b->base, (size_t)n);
	consume(c);
}

static void start_reading(agentconn *c)
{
	c->connected = 1;
	c->window_start = uv_now(c->loop);
	uv_read_start((uv_stream_t *)c->pipe, on_alloc, on_read);
}

static void on_connect(uv_connect_t *req, int status)
{
	agentconn *c = req->data;
	if (c->closing)
		return;
	if (status == 0) {
		log_debug("agentconn", "connected path=%s", c->path);
		start_reading(c);
		if (c->h.connected)
			c->h.connected(c->h.ud);
		return;
	}
	if (uv_now(c->loop) >= c->connect_deadline) {
		fail(c, "cannot connect to the agent socket %s: %s", c->path, uv_strerror(status));
		return;
	}
	uv_close((uv_handle_t *)c->pipe, on_pipe_closed);
	c->pipe = NULL;
	c->retry_at = uv_now(c->loop) + RETRY_MS;
}

static void try_connect(agentconn *c)
{
	c->pipe = xcalloc(1, sizeof *c->pipe);
	uv_pipe_init(c->loop, c->pipe, 0);
	c->pipe->data = c;
	c->handles++;
	c->creq.data = c;
	uv_pipe_connect(&c->creq, c->pipe, c->path, on_connect);
}

static void expire(agentconn *c, uint64_t now)
{
	for (struct pending **pp = &c->pending; *pp;) {
		struct pending *p = *pp;
		if (p->deadline > now) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		struct err e;
		err_set(&e, ERR_TIMEOUT, "agent: no reply to request %lld in time",
		        (long long)p->id);
		p->cb(p->arg, NULL, &e);
		free(p);
		if (c->closing)
			return;
		pp = &c->pending; /* the callback may have changed the list */
	}
}

static void on_tick(uv_timer_t *t)
{
	agentconn *c = t->data;
	uint64_t now = uv_now(c->loop);
	if (!c->connected && !c->pipe && c->retry_at && now >= c->retry_at) {
		c->retry_at = 0;
		try_connect(c);
	}
	expire(c, now);
}

static agentconn *conn_new(uv_loop_t *loop, const struct agentconn_opts *o,
                           const struct agentconn_handlers *h)
{
	agentconn *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->h = *h;
	c->next_id = 1;
	c->flood_limit = o && o->flood_bytes ? o->flood_bytes : (1u << 20);
	uint64_t ct = o && o->connect_timeout_ms ? o->connect_timeout_ms : 30000;
	c->connect_deadline = uv_now(loop) + ct;
	frame_reader_init(&c->rd);
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->handles++;
	uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
	return c;
}

int agentconn_connect(uv_loop_t *loop, const char *path, const struct agentconn_opts *o,
                      const struct agentconn_handlers *h, agentconn **out, struct err *e)
{
	if (strlen(path) >= 108)
		return err_set(e, ERR_INVALID, "agent socket path too long: %s", path);
	agentconn *c = conn_new(loop, o, h);
	c->path = xstrdup(path);
	try_connect(c);
	*out = c;
	return 0;
}

int agentconn_open_fd(uv_loop_t *loop, int fd, const struct agentconn_opts *o,
                      const struct agentconn_handlers *h, agentconn **out, struct err *e)
{
	agentconn *c = conn_new(loop, o, h);
	c->pipe = xcalloc(1, sizeof *c->pipe);
	uv_pipe_init(loop, c->pipe, 0);
	c->pipe->data = c;
	c->handles++;
	int rc = uv_pipe_open(c->pipe, fd);
	if (rc < 0) {
		agentconn_close(c);
		return err_set(e, ERR_IO, "agent channel fd: %s", uv_strerror(rc));
	}
	start_reading(c);
	*out = c;
	return 0;
}

static void on_written(uv_write_t *w, int status)
{
	struct wreq *r = (struct wreq *)w;
	agentconn *c = r->c;
	c->wq -= r->len;
	free(r);
	if (status < 0 && status != UV_ECANCELED)
		fail(c, "agent channel write: %s", uv_strerror(status));
}

int agentconn_request(agentconn *c, const char *type, const json_t *body, uint64_t timeout_ms,
                      agentconn_reply_fn cb, void *arg, struct err *e)
{
	return agentconn_request_payload(c, type, body, NULL, 0, timeout_ms, cb, arg, e);
}

int agentconn_request_payload(agentconn *c, const char *type, const json_t *body,
                              const void *payload, size_t len, uint64_t timeout_ms,
                              agentconn_reply_fn cb, void *arg, struct err *e)
{
	if (!agentconn_connected(c))
		return err_set(e, ERR_UNAVAILABLE, "agent channel not connected");
	if (payload && !(c->features & AGENTCONN_F_PAYLOAD))
		return err_set(e, ERR_UNAVAILABLE, "%s: this guest takes no frame payloads", type);
	struct buf b;
	buf_init(&b);
	int64_t id = c->next_id;
	json_t *empty = body ? NULL : json_object(); /* frame_encode(NULL) leaks its {} */
	int rc = frame_encode_payload(&b, id, type, body ? body : empty, payload, len, e);
	json_decref(empty);
	if (rc) {
		buf_fini(&b);
		return e->code;
	}
	c->next_id++;
	struct wreq *r = xmalloc(sizeof *r + b.len);
	r->c = c;
	r->len = b.len;
	memcpy(r->data, b.data, b.len);
	buf_fini(&b);
	uv_buf_t ub = uv_buf_init(r->data, (unsigned)r->len);
	rc = uv_write(&r->req, (uv_stream_t *)c->pipe, &ub, 1, on_written);
	if (rc < 0) {
		free(r);
		return err_set(e, ERR_UNAVAILABLE, "agent channel write: %s", uv_strerror(rc));
	}
	c->wq += r->len;
	struct pending *p = xcalloc(1, sizeof *p);
	*p = (struct pending){c->pending, id, uv_now(c->loop) + timeout_ms, cb, arg};
	c->pending = p;
	return 0;
}

int agentconn_connected(const agentconn *c)
{
	return c && c->connected && !c->closing;
}

int agentconn_has(const agentconn *c, unsigned feature)
{
	return agentconn_connected(c) && (c->features & feature) == feature;
}

size_t agentconn_write_queue(const agentconn *c)
{
	return c->wq;
}
