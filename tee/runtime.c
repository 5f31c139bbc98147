/* runtime: see runtime.h.  One record per pod VM (struct rpod) in a map by
 * uid, from sandbox_create (or re-adoption) until its domain is gone; the
 * record counts its asynchronous calls in flight (libvirt jobs, file reads)
 * and is freed only when none is left.  Agent requests need no count:
 * agentconn drops their callbacks when the channel closes.
 *
 * Pod life: BOOTING (domain created, waiting for the agent's `ready`, then
 * create_sandbox) → READY → DESTROYING (destroy_sandbox sent; the domain is
 * destroyed outright if it has not powered off within the grace) → GONE.
 * Anything wrong on the way (boot timeout, agent refusal, hostile guest, a
 * domain that stops by itself) destroys the domain and reports the pod's
 * sandbox failed (before ready) or gone (after), with the reason.
 *
 * Adoption: after a daemon crash podctl asks sandbox_exists for each stored
 * pod; a running domain gets a record at once (its pod.json reloaded) and
 * its agent channel reconnected; operations asked before the channel is
 * back wait in the record.  The agent queues its events while no host is
 * connected, so exits and output from that time arrive once the channel
 * is back (tests/integration/test_podvm.py kills cocod while a container
 * finishes).
 *
 * Image pulls run one at a time per pod: image_begin, then each layer the
 * guest says is missing, read from the blob file with uv_fs in 512 KiB
 * chunks and sent as blob_chunk (raw, as the frame payload, to guests that
 * offer it; else base64) — one chunk in flight at a time, so the channel
 * never holds more than one chunk (backpressure by reply).
 *
 * Bounded files: container logs rotate to .1 at log_max (10 MiB); the
 * serial console file is opened by QEMU in append mode, so the periodic
 * tick can copy it to console.log.1 and truncate it when it passes
 * RUNTIME_CONSOLE_MAX, keeping at most about twice that on disk. */
#include "runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "agentconn.h"
#include "b64.h"
#include "initdata.h"
#include "log.h"
#include "pod.h"
#include "util.h"

#define CHUNK_MAX         (512u * 1024)
#define POOL_PREFETCH_IMAGES 8
#define POOL_PREFETCH_MAX (64ull << 20) /* layer bytes of one image */
#define TICK_MS           200
#define CONSOLE_CHECK_MS  5000
#define REQ_TIMEOUT_MS    30000
#define UNPACK_TIMEOUT_MS 300000
#define LIVE_BUFFER_MAX   (1u << 20)

enum pstate { P_BOOTING, P_READY, P_DESTROYING, P_GONE };

struct rctr {
	char *name;
	char *image_digest; /* what the guest knows the pulled image by */
	int running;
	uint64_t kill_at; /* uv_now ms when SIGKILL is due; 0 = none */
};

struct job { /* waits for the agent channel of an adopted pod */
	struct job *next;
	int start; /* 1 container_start, 0 container_stop */
	char *ctr;
	int64_t grace_s;
};

struct pull;

/* What a pool VM must match to serve a pod: the VM's size and network. */
struct vm_shape {
	uint64_t mem_bytes;
	unsigned vcpus;
};

struct rpod {
	runtime *rt;
	char *uid, *dir;
	char *dom; /* the libvirt domain's id: the uid, or the pool VM's id it came from */
	json_t *pod;
	enum pstate st;
	int adopted, reported, destroying_domain;
	int pool, pool_ready, creating; /* an unclaimed warm VM; its agent said `ready`;
	                                 * its domain is being created */
	struct vm_shape shape;
	unsigned busy;
	agentconn *ac;
	uint64_t boot_deadline, destroy_deadline, console_at;
	struct rctr *c;
	size_t nc;
	struct job *jobs;
	struct pull *pulls; /* head is the active one */
	/* Init-data (none: NULL): the TOML text until create_sandbox carries
	 * it, and the digest recorded at admission, which the guest's must
	 * match. */
	char *init_toml, *init_digest;
	size_t init_len;
};

enum done_kind { D_READY, D_FAILED, D_GONE, D_PULLED, D_PULL_FAILED, D_STARTED, D_EXITED };

struct done {
	struct done *next;
	enum done_kind k;
	char *uid, *ctr, *s;
	int code;
	int64_t t;
};

struct runtime_log_reader {
	runtime_log_reader *next;
	runtime *rt;
	char *uid, *ctr;
	struct runtime_log_opts o;
	runtime_log_fn on_data;
	runtime_log_end_fn on_end;
	void *arg;
	int live, cancelled, ended, in_work;
	int fd1, fd0;
	off_t size1, size0;
	struct buf out, pending;
	uv_work_t work;
};

struct runtime {
	uv_loop_t *loop;
	/* The warm pool: VMs booted ahead of their pods (file comment). */
	struct rpod **pool;
	size_t npool;
	struct vm_shape pool_shape; /* of the most recent pod that could use one */
	uint64_t pool_next_at, pool_backoff_ms; /* uv_now ms */
	int restored; /* runtime_restored ran: orphans are gone, the pool may fill */
	char *prefetch[POOL_PREFETCH_IMAGES]; /* images of the most recent pod */
	size_t nprefetch;
	launcher *l;
	images *im;
	podctl *ctl;
	struct runtime_opts o;
	char *data_dir, *kernel, *initrd, *cmdline;
	struct runtime_ops ops;
	struct strmap pods;
	uv_async_t async;
	uv_timer_t timer;
	struct done *done_head, **done_tail;
	runtime_log_reader *readers;
	int closing, handles;
	void (*close_cb)(void *);
	void *close_arg;
};

static void pod_fail(struct rpod *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pool_drop(struct rpod *p, const char *why);
static void pod_destroy_domain(struct rpod *p);
static void readers_end(runtime *rt, const char *uid, const char *ctr);
static void readers_push(runtime *rt, const char *uid, const char *ctr, const char *lines,
                         size_t len);

/* ---- completions: queued, delivered from the loop ---- */

static void complete(runtime *rt, enum done_kind k, const char *uid, const char *ctr, const char *s,
                     int code, int64_t t)
{
	struct done *d = xcalloc(1, sizeof *d);
	*d = (struct done){NULL, k, xstrdup(uid), ctr ? xstrdup(ctr) : NULL, s ? xstrdup(s) : NULL,
	                   code, t};
	*rt->done_tail = d;
	rt->done_tail = &d->next;
	uv_async_send(&rt->async);
}

static int deliver(podctl *ctl, const struct done *d)
{
	switch (d->k) {
	case D_READY:
		return podctl_on_sandbox_ready(ctl, d->uid);
	case D_FAILED:
		return podctl_on_sandbox_failed(ctl, d->uid, d->s);
	case D_GONE:
		return podctl_on_sandbox_gone(ctl, d->uid, d->s);
	case D_PULLED:
		return podctl_on_pulled(ctl, d->uid, d->ctr, d->s);
	case D_PULL_FAILED:
		return podctl_on_pull_failed(ctl, d->uid, d->ctr, d->s);
	case D_STARTED:
		return podctl_on_container_started(ctl, d->uid, d->ctr, d->s, d->t);
	case D_EXITED:
		return podctl_on_container_exited(ctl, d->uid, d->ctr, d->code, d->s, d->t);
	}
	return 0;
}

static void on_async(uv_async_t *h)
{
	runtime *rt = h->data;
	struct done *d = rt->done_head;
	rt->done_head = NULL;
	rt->done_tail = &rt->done_head;
	while (d) {
		struct done *next = d->next;
		int rc = rt->ctl ? deliver(rt->ctl, d) : ERR_UNAVAILABLE;
		if (rc)
			log_debug("runtime", "completion %d for pod=%s container=%s not taken: %s",
			          (int)d->k, d->uid, d->ctr ? d->ctr : "-", err_name(rc));
		free(d->uid);
		free(d->ctr);
		free(d->s);
		free(d);
		d = next;
	}
}

/* ---- container log files ---- */

static void format_time(char out[40])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

/* CRI-style lines: "<time> <stream> F|P <text>\n". */
static void format_lines(struct buf *out, const char *stream, const char *data, size_t len)
{
	char ts[40];
	format_time(ts);
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;
		buf_printf(out, "%s %s %c ", ts, stream, nl ? 'F' : 'P');
		buf_add(out, data, n);
		buf_add(out, "\n", 1);
		n += nl ? 1 : 0;
		data += n;
		len -= n;
	}
}

static int rotate(const char *path, uint64_t max, size_t adding, struct err *e)
{
	struct stat st;
	if (stat(path, &st) != 0 || (uint64_t)st.st_size + adding <= max)
		return 0;
	cleanup_free char *old = xasprintf("%s.1", path);
	if (rename(path, old) != 0)
		return err_set(e, ERR_IO, "rotate %s: %s", path, strerror(errno));
	return 0;
}

static int append_bytes(const char *path, const char *data, size_t len, struct err *e)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, ERR_IO, "open %s: %s", path, strerror(errno));
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return err_set(e, ERR_IO, "write %s: %s", path, strerror(errno));
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

static int log_append_buf(const char *path, uint64_t max, const char *stream, const void *data,
                          size_t len, struct buf *lines, struct err *e)
{
	format_lines(lines, stream, data, len);
	if (rotate(path, max, lines->len, e))
		return e->code;
	return append_bytes(path, lines->data, lines->len, e);
}

int runtime_log_append(const char *path, uint64_t max, const char *stream, const void *data,
                       size_t len, struct err *e)
{
	struct buf lines;
	buf_init(&lines);
	int rc = log_append_buf(path, max, stream, data, len, &lines, e);
	buf_fini(&lines);
	return rc;
}

/* One stored line as the reader wants it: the text (a full line gets its
 * newline back), optionally after its time.  Malformed lines are skipped. */
static void render_line(struct buf *out, const char *line, size_t len, int timestamps)
{
	const char *sp1 = memchr(line, ' ', len);
	if (!sp1)
		return;
	const char *sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
	if (!sp2 || (size_t)(sp2 + 3 - line) > len || sp2[2] != ' ')
		return;
	const char *text = sp2 + 3;
	if (timestamps) {
		buf_add(out, line, (size_t)(sp1 - line));
		buf_add(out, " ", 1);
	}
	buf_add(out, text, len - (size_t)(text - line));
	if (sp2[1] == 'F')
		buf_add(out, "\n", 1);
}

static void render(struct buf *out, const char *data, size_t len, int timestamps, int64_t tail)
{
	size_t start = 0;
	if (tail == 0)
		start = len;
	else if (tail > 0) { /* where the last `tail` stored lines begin */
		int64_t seen = 0;
		for (size_t i = len; i > 0; i--)
			if (data[i - 1] == '\n' && i < len && ++seen == tail) {
				start = i;
				break;
			}
	}
	while (start < len) {
		const char *nl = memchr(data + start, '\n', len - start);
		size_t n = nl ? (size_t)(nl - (data + start)) : len - start;
		render_line(out, data + start, n, timestamps);
		start += n + 1;
	}
}

/* ---- log readers ---- */

static char *log_path(runtime *rt, const char *uid, const char *ctr)
{
	return xasprintf("%s/pods/%s/%s.log", rt->data_dir, uid, ctr);
}

static void read_fd(int fd, off_t size, struct buf *b)
{
	if (fd < 0)
		return;
	buf_reserve(b, (size_t)size);
	off_t off = 0;
	while (off < size) {
		ssize_t r = pread(fd, b->data + b->len, (size_t)(size - off), off);
		if (r <= 0)
			break;
		off += r;
		b->len += (size_t)r;
	}
	b->data[b->len] = '\0';
}

static void reader_work(uv_work_t *w)
{
	runtime_log_reader *r = w->data;
	struct buf raw;
	buf_init(&raw);
	read_fd(r->fd1, r->size1, &raw);
	read_fd(r->fd0, r->size0, &raw);
	render(&r->out, raw.data, raw.len, r->o.timestamps, r->o.tail_lines);
	buf_fini(&raw);
}

static void reader_free(runtime_log_reader *r)
{
	for (runtime_log_reader **pp = &r->rt->readers; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->fd1 >= 0)
		close(r->fd1);
	if (r->fd0 >= 0)
		close(r->fd0);
	buf_fini(&r->out);
	buf_fini(&r->pending);
	free(r->uid);
	free(r->ctr);
	free(r);
}

/* Hands `len` bytes to the reader within its byte limit; 0 to go on. */
static int reader_emit(runtime_log_reader *r, const char *data, size_t len)
{
	if (r->o.limit_bytes >= 0 && (int64_t)len > r->o.limit_bytes)
		len = (size_t)r->o.limit_bytes;
	if (r->o.limit_bytes >= 0)
		r->o.limit_bytes -= (int64_t)len;
	int stop = len > 0 && r->on_data(r->arg, data, len) != 0;
	return stop || r->o.limit_bytes == 0;
}

static void reader_end(runtime_log_reader *r)
{
	if (r->ended || r->cancelled)
		return;
	r->ended = 1;
	if (r->on_end)
		r->on_end(r->arg, NULL);
	if (!r->in_work)
		reader_free(r);
}

static int ctr_running(runtime *rt, const char *uid, const char *ctr)
{
	struct rpod *p = strmap_get(&rt->pods, uid);
	for (size_t i = 0; p && p->st != P_GONE && i < p->nc; i++)
		if (strcmp(p->c[i].name, ctr) == 0)
			return p->c[i].running;
	return 0;
}

static void reader_done(uv_work_t *w, int status)
{
	runtime_log_reader *r = w->data;
	r->in_work = 0;
	if (r->cancelled) {
		reader_free(r);
		return;
	}
	if (reader_emit(r, r->out.data, r->out.len) || !r->o.follow ||
	    !ctr_running(r->rt, r->uid, r->ctr)) {
		reader_end(r);
		return;
	}
	r->live = 1;
	if (r->pending.len && reader_emit(r, r->pending.data, r->pending.len))
		reader_end(r);
	buf_fini(&r->pending);
}

static void readers_push(runtime *rt, const char *uid, const char *ctr, const char *lines,
                         size_t len)
{
	for (runtime_log_reader *r = rt->readers, *next; r; r = next) {
		next = r->next;
		if (r->ended || r->cancelled || strcmp(r->uid, uid) || strcmp(r->ctr, ctr))
			continue;
		if (!r->live) {
			if (r->pending.len + len <= LIVE_BUFFER_MAX)
				buf_add(&r->pending, lines, len);
			continue;
		}
		struct buf out;
		buf_init(&out);
		render(&out, lines, len, r->o.timestamps, -1);
		int stop = reader_emit(r, out.data, out.len);
		buf_fini(&out);
		if (stop)
			reader_end(r);
	}
}

/* Following ends for `ctr` (NULL: every container of the pod). */
static void readers_end(runtime *rt, const char *uid, const char *ctr)
{
	for (runtime_log_reader *r = rt->readers, *next; r; r = next) {
		next = r->next;
		if (r->live && strcmp(r->uid, uid) == 0 && (!ctr || strcmp(r->ctr, ctr) == 0))
			reader_end(r);
	}
}

static int open_snapshot(const char *path, off_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0) {
		*size = st.st_size;
		return fd;
	}
	if (fd >= 0)
		close(fd);
	*size = 0;
	return -1;
}

int runtime_logs(runtime *rt, const char *uid, const char *container,
                 const struct runtime_log_opts *o, runtime_log_fn on_data,
                 runtime_log_end_fn on_end, void *arg, runtime_log_reader **out, struct err *e)
{
	if (strchr(uid, '/') || strchr(container, '/') || uid[0] == '.' || container[0] == '.')
		return err_set(e, ERR_NOT_FOUND, "no logs for container \"%s\"", container);
	cleanup_free char *path = log_path(rt, uid, container);
	cleanup_free char *path1 = xasprintf("%s.1", path);
	runtime_log_reader *r = xcalloc(1, sizeof *r);
	r->fd0 = open_snapshot(path, &r->size0);
	r->fd1 = open_snapshot(path1, &r->size1);
	if (r->fd0 < 0 && r->fd1 < 0 && !ctr_running(rt, uid, container)) {
		free(r);
		return err_set(e, ERR_NOT_FOUND, "container \"%s\" has no logs yet", container);
	}
	r->rt = rt;
	r->uid = xstrdup(uid);
	r->ctr = xstrdup(container);
	r->o = *o;
	r->on_data = on_data;
	r->on_end = on_end;
	r->arg = arg;
	buf_init(&r->out);
	buf_init(&r->pending);
	r->next = rt->readers;
	rt->readers = r;
	r->in_work = 1;
	r->work.data = r;
	uv_queue_work(rt->loop, &r->work, reader_work, reader_done);
	if (out)
		*out = r;
	return 0;
}

void runtime_logs_cancel(runtime_log_reader *r)
{
	if (!r || r->cancelled)
		return;
	r->cancelled = 1;
	if (!r->in_work)
		reader_free(r);
}

/* ---- pod records ---- */

static struct rctr *find_ctr(struct rpod *p, const char *name)
{
	for (size_t i = 0; i < p->nc; i++)
		if (strcmp(p->c[i].name, name) == 0)
			return &p->c[i];
	return NULL;
}

static const json_t *spec_ctr(const struct rpod *p, const char *name)
{
	static const char *const lists[] = {"initContainers", "containers"};
	const json_t *spec = json_object_get(p->pod, "spec");
	for (size_t l = 0; l < 2; l++) {
		size_t i;
		const json_t *c;
		json_array_foreach(json_object_get(spec, lists[l]), i, c) {
			const char *n = json_string_value(json_object_get(c, "name"));
			if (n && strcmp(n, name) == 0)
				return c;
		}
	}
	return NULL;
}

static void set_pod_json(struct rpod *p, const json_t *pod)
{
	static const char *const lists[] = {"initContainers", "containers"};
	p->pod = json_deep_copy(pod);
	const json_t *spec = json_object_get(p->pod, "spec");
	p->c = xcalloc(2 * PODCTL_MAX_CONTAINERS, sizeof *p->c);
	for (size_t l = 0; l < 2; l++) {
		size_t i;
		const json_t *c;
		json_array_foreach(json_object_get(spec, lists[l]), i, c) {
			const char *n = json_string_value(json_object_get(c, "name"));
			if (n && p->nc < 2 * PODCTL_MAX_CONTAINERS && !find_ctr(p, n))
				p->c[p->nc++].name = xstrdup(n);
		}
	}
}

static struct rpod *pod_new(runtime *rt, const char *uid)
{
	struct rpod *p = xcalloc(1, sizeof *p);
	p->rt = rt;
	p->uid = xstrdup(uid);
	p->dom = xstrdup(uid);
	p->dir = xasprintf("%s/pods/%s", rt->data_dir, uid);
	strmap_put(&rt->pods, p->uid, p);
	return p;
}

static void pulls_free(struct rpod *p);

static void pod_free(struct rpod *p)
{
	agentconn_close(p->ac);
	for (size_t i = 0; i < p->nc; i++) {
		free(p->c[i].name);
		free(p->c[i].image_digest);
	}
	while (p->jobs) {
		struct job *j = p->jobs;
		p->jobs = j->next;
		free(j->ctr);
		free(j);
	}
	pulls_free(p);
	free(p->c);
	free(p->init_toml);
	free(p->init_digest);
	json_decref(p->pod);
	free(p->uid);
	free(p->dom);
	free(p->dir);
	free(p);
}

/* The record leaves the map at GONE and is freed once nothing is in flight. */
static void pool_release(struct rpod *p);

static void pod_release(struct rpod *p)
{
	if (p->pool) { /* a dropped pool VM whose image prefetch was in flight */
		pool_release(p);
		return;
	}
	if (p->st != P_GONE || p->busy > 0)
		return;
	pod_free(p);
}

static void pod_gone(struct rpod *p, const char *reason)
{
	if (p->st == P_GONE)
		return;
	runtime *rt = p->rt;
	int was_destroying = p->st == P_DESTROYING;
	p->st = P_GONE;
	agentconn_close(p->ac);
	p->ac = NULL;
	strmap_del(&rt->pods, p->uid);
	readers_end(rt, p->uid, NULL);
	if (!p->reported)
		complete(rt, D_FAILED, p->uid, NULL, reason, 0, 0);
	else
		complete(rt, D_GONE, p->uid, NULL, was_destroying ? "destroyed" : reason, 0, 0);
	log_info("runtime", "pod VM gone uid=%s reason=%s", p->uid, reason);
	pod_release(p);
}

struct domain_call {
	struct rpod *p;
	char reason[256];
};

static void on_domain_destroyed(void *arg, const struct err *e)
{
	struct domain_call *c = arg;
	struct rpod *p = c->p;
	p->busy--;
	p->destroying_domain = 0;
	if (e)
		log_warn("runtime", "destroying VM uid=%s: %s", p->uid, e->msg);
	if (p->st == P_GONE)
		pod_release(p);
	else /* on a libvirt error too: the failure is logged, the pod moves on */
		pod_gone(p, c->reason);
	free(c);
}

/* Destroys the domain now; the pod is gone when that is done. */
static void pod_kill(struct rpod *p, const char *reason)
{
	if (p->st == P_GONE || p->destroying_domain)
		return;
	struct domain_call *c = xcalloc(1, sizeof *c);
	c->p = p;
	snprintf(c->reason, sizeof c->reason, "%s", reason);
	agentconn_close(p->ac);
	p->ac = NULL;
	p->destroying_domain = 1;
	p->busy++;
	if (launcher_destroy(p->rt->l, p->dom, on_domain_destroyed, c) != 0) {
		p->busy--;
		p->destroying_domain = 0;
		free(c);
		pod_gone(p, reason);
	}
}

static void pod_fail(struct rpod *p, const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (p->pool) {
		pool_drop(p, reason);
		return;
	}
	log_warn("runtime", "pod VM failed uid=%s: %s", p->uid, reason);
	if (p->st == P_DESTROYING) /* failing while tearing down is just teardown */
		snprintf(reason, sizeof reason, "destroyed");
	pod_kill(p, reason);
}

static void pod_destroy_domain(struct rpod *p)
{
	pod_kill(p, "destroyed");
}

/* ---- agent events ---- */

static void run_jobs(struct rpod *p);
static void pull_next(struct rpod *p);
static struct pull *pull_queue(struct rpod *p, const char *container, const char *image);

/* The guest's init-data digest (untrusted) against the one recorded at
 * admission; 0 when they agree (or neither side has init-data).  A guest
 * that disagrees fails the pod for good (PODCTL_HOSTILE): the agent hashes
 * the very text it was sent, so booting it again would only repeat that.
 * The reason shows the first 16 hex digits of each (the log has them
 * whole); the guest's value only when it looks like a digest. */
static int check_init_digest(struct rpod *p, const json_t *body)
{
	const json_t *got = json_object_get(body, "init_data_digest");
	const char *g = json_string_value(got), *want = p->init_digest;
	if (!want && (!got || json_is_null(got)))
		return 0;
	if (want && g && strcmp(g, want) == 0)
		return 0;
	if (want && (!got || json_is_null(got))) {
		pod_fail(p, PODCTL_HOSTILE ": the guest did not report the digest of the init-data "
		            "it was sent (a guest kit older than this cocod? `make kit`)");
		return -1;
	}
	int sane = g && strlen(g) < INITDATA_DIGEST_STR && g[strspn(g, "sha0123456789:bcdef")] == 0;
	const char *shown = sane ? g : "(malformed)";
	log_warn("runtime", "init-data digest mismatch uid=%s guest=%s recorded=%s", p->uid, shown,
	         want ? want : "none");
	pod_fail(p,
	         PODCTL_HOSTILE ": init-data digest mismatch: the guest computed %.23s%s, cocod "
	                        "recorded %.23s%s at admission",
	         shown, strlen(shown) > 23 ? "..." : "", want ? want : "none",
	         want && strlen(want) > 23 ? "..." : "");
	return -1;
}

static void on_sandbox_created(void *arg, const json_t *body, const struct err *e)
{
	struct rpod *p = arg;
	if (e) {
		pod_fail(p, "the guest refused the sandbox: %s", e->msg);
		return;
	}
	if (check_init_digest(p, body))
		return;
	p->st = P_READY;
	p->reported = 1;
	log_info("runtime", "pod VM ready uid=%s", p->uid);
	complete(p->rt, D_READY, p->uid, NULL, NULL, 0, 0);
	run_jobs(p);
	pull_next(p);
}

static json_t *sandbox_body(const struct rpod *p)
{
	const json_t *meta = json_object_get(p->pod, "metadata");
	const json_t *spec = json_object_get(p->pod, "spec");
	json_t *vols = json_array();
	size_t i;
	const json_t *v;
	json_array_foreach(json_object_get(spec, "volumes"), i, v) {
		const json_t *ed = json_object_get(v, "emptyDir");
		if (!json_is_object(ed))
			continue;
		const char *medium = json_string_value(json_object_get(ed, "medium"));
		json_array_append_new(vols, json_pack("{s:s?, s:s}", "name",
		                                      json_string_value(json_object_get(v, "name")),
		                                      "medium", medium ? medium : ""));
	}
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *host = json_string_value(json_object_get(spec, "hostname"));
	/* UTF-8 without control characters, checked by initdata_decode */
	json_t *init = p->init_toml ? json_stringn(p->init_toml, p->init_len) : json_null();
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:I}", "uid", p->uid, "name",
	                 name ? name : "", "namespace", pod_namespace(p->pod), "hostname",
	                 host ? host : (name ? name : ""), "init_data", init, "volumes", vols,
	                 "network", p->rt->o.network ? "user" : "none", "time_ns",
	                 (json_int_t)now.tv_sec * 1000000000 + now.tv_nsec);
}

static void h_connected(void *ud)
{
	struct rpod *p = ud;
	if (!p->adopted || p->st != P_BOOTING)
		return;
	p->st = P_READY; /* an adopted guest said `ready` to the previous daemon */
	p->reported = 1;
	log_info("runtime", "pod VM re-adopted uid=%s", p->uid);
	run_jobs(p);
	pull_next(p);
}

static void send_sandbox(struct rpod *p)
{
	struct err e;
	json_t *body = sandbox_body(p);
	int rc = body ? agentconn_request(p->ac, "create_sandbox", body, REQ_TIMEOUT_MS,
	                                  on_sandbox_created, p, &e)
	              : err_set(&e, ERR_INTERNAL, "the request could not be built");
	json_decref(body);
	free(p->init_toml); /* sent: only its digest is needed from now on */
	p->init_toml = NULL;
	if (rc)
		pod_fail(p, "create_sandbox: %s", e.msg);
}

static void on_warm_up_reply(void *arg, const json_t *body, const struct err *e)
{
	struct rpod *p = arg;
	if (e)
		log_warn("runtime", "warm-up in VM %s: %s", p->dom, e->msg);
}

/* The pool VM's first container run, done before its pod's (gctr.h). */
static void pool_warm_up(struct rpod *p)
{
	struct err e;
	if (agentconn_request(p->ac, "warm_up", NULL, REQ_TIMEOUT_MS, on_warm_up_reply, p, &e))
		log_warn("runtime", "warm-up in pool VM %s: %s", p->dom, e.msg);
}

static void h_ready(void *ud, const char *version, const char *kernel, int64_t boot_ms)
{
	struct rpod *p = ud;
	log_info("runtime", "agent ready %s=%s version=%s kernel=%s boot_ms=%lld",
	         p->pool ? "pool_vm" : "uid", p->uid, version, kernel, (long long)boot_ms);
	if (p->pool) {
		p->pool_ready = 1;
		p->rt->pool_backoff_ms = 0;
		for (size_t i = 0; i < p->rt->nprefetch; i++) /* the last pod's images */
			pull_queue(p, NULL, p->rt->prefetch[i]);
		if (p->pulls)
			pull_next(p); /* then the warm-up, from pull_end */
		else
			pool_warm_up(p);
		return;
	}
	if (p->st != P_BOOTING || p->adopted)
		return;
	send_sandbox(p);
}

static void h_started(void *ud, const char *name, int64_t pid, int64_t at)
{
	struct rpod *p = ud;
	struct rctr *c = find_ctr(p, name);
	if (!c) {
		log_warn("runtime", "agent reported unknown container uid=%s name=%s", p->uid,
		         name);
		return;
	}
	c->running = 1;
	cleanup_free char *id = xasprintf("cocod://%s/%s/%lld", p->uid, name, (long long)pid);
	complete(p->rt, D_STARTED, p->uid, name, id, 0, at);
}

static void h_exited(void *ud, const char *name, int code, const char *reason, int64_t at)
{
	struct rpod *p = ud;
	struct rctr *c = find_ctr(p, name);
	if (!c)
		return;
	c->running = 0;
	c->kill_at = 0;
	complete(p->rt, D_EXITED, p->uid, name, reason, code, at);
	readers_end(p->rt, p->uid, name);
}

static void h_log(void *ud, const char *name, const char *stream, const void *data, size_t len)
{
	struct rpod *p = ud;
	if (!find_ctr(p, name))
		return;
	cleanup_free char *path = log_path(p->rt, p->uid, name);
	struct buf lines;
	struct err e;
	buf_init(&lines);
	if (log_append_buf(path, p->rt->o.log_max, stream, data, len, &lines, &e))
		log_warn("runtime", "container log uid=%s: %s", p->uid, e.msg);
	readers_push(p->rt, p->uid, name, lines.data, lines.len);
	buf_fini(&lines);
}

static void h_attestation(void *ud, const char *stage, const char *detail)
{
	struct rpod *p = ud;
	log_info("runtime", "attestation uid=%s stage=%s detail=%s", p->uid, stage, detail);
}

static void h_closed(void *ud, const char *reason)
{
	struct rpod *p = ud;
	p->ac = NULL; /* agentconn frees itself */
	if (p->pool) {
		pool_drop(p, reason);
		return;
	}
	if (p->st == P_DESTROYING)
		return; /* the guest is powering off: the stop event or the grace ends it */
	pod_fail(p, "%s", reason);
}

static int connect_agent(struct rpod *p, struct err *e)
{
	struct agentconn_handlers h = {p,        h_connected, h_ready,       h_started,
	                               h_exited, h_log,       h_attestation, h_closed};
	struct agentconn_opts o = {.connect_timeout_ms = 30000,
	                           .flood_bytes = p->rt->o.flood_bytes};
	cleanup_free char *sock = xasprintf("%s/agent.sock", p->dir);
	return agentconn_connect(p->rt->loop, sock, &o, &h, &p->ac, e);
}

/* ---- sandbox ---- */

static int prepare_dir(struct rpod *p, const json_t *pod, struct err *e)
{
	if (mkdir_p(p->dir, 0700, e))
		return e->code;
	cleanup_free char *json = json_dumps(pod, JSON_COMPACT);
	cleanup_free char *pj = xasprintf("%s/pod.json", p->dir);
	cleanup_free char *sock = xasprintf("%s/agent.sock", p->dir);
	cleanup_free char *console = xasprintf("%s/console.log", p->dir);
	unlink(sock);
	int fd = open(console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	return file_write_atomic(pj, json, strlen(json), 0600, e);
}

static const char *pod_tee(const json_t *pod)
{
	const char *cls =
	    json_string_value(json_object_get(json_object_get(pod, "spec"), "runtimeClassName"));
	return cls ? pod_runtime_class_tee(cls) : "sim";
}

/* The size of the VM that `pod` gets. */
static void pod_shape(const runtime *rt, const json_t *pod, struct vm_shape *out)
{
	struct pod_resources res;
	pod_resources(pod, &res);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	launcher_vm_size(res.cpu_limit_milli, res.mem_limit_bytes, rt->o.default_memory,
	                 rt->o.overhead_memory, cpus > 0 ? (unsigned)cpus : 1, &out->mem_bytes,
	                 &out->vcpus);
}

/* The domain XML of VM `dom` whose files are in `dir`. */
static int vm_xml(runtime *rt, const char *dom, const char *dir, const char *tee,
                  const struct vm_shape *shape, const char *init_digest, struct buf *xml,
                  struct err *e)
{
	struct launcher_vm vm = {.uid = dom,
	                         .kernel = rt->kernel,
	                         .initrd = rt->initrd,
	                         .cmdline = rt->cmdline,
	                         .kvm = strcmp(launcher_accel(rt->l), "kvm") == 0,
	                         .network = rt->o.network,
	                         .mem_bytes = shape->mem_bytes,
	                         .vcpus = shape->vcpus};
	cleanup_free char *console = xasprintf("%s/console.log", dir);
	cleanup_free char *sock = xasprintf("%s/agent.sock", dir);
	vm.console_path = console;
	vm.agent_socket = sock;
	vm.init_data_digest = init_digest;
	return launcher_build_xml(tee, &vm, xml, e);
}

static int build_xml(runtime *rt, struct rpod *p, struct buf *xml, struct err *e)
{
	const char *cls =
	    json_string_value(json_object_get(json_object_get(p->pod, "spec"), "runtimeClassName"));
	pod_shape(rt, p->pod, &p->shape);
	if (vm_xml(rt, p->dom, p->dir, pod_tee(p->pod), &p->shape, p->init_digest, xml, e))
		return err_wrap(e, "runtime class %s", cls ? cls : "(default)");
	return 0;
}

static void on_domain_created(void *arg, const struct err *e)
{
	struct rpod *p = arg;
	struct err ce;
	p->busy--;
	if (p->st == P_GONE) {
		pod_release(p);
		return;
	}
	if (e) {
		pod_gone(p, e->msg);
		return;
	}
	p->boot_deadline = uv_now(p->rt->loop) + p->rt->o.boot_timeout_ms;
	if (p->st == P_DESTROYING) {
		pod_destroy_domain(p);
		return;
	}
	if (connect_agent(p, &ce))
		pod_fail(p, "%s", ce.msg);
}

/* ---- the warm pool ----
 *
 * Up to `pool_size` VMs are booted before any pod asks for one, kept
 * outside the pod map with their agent connected and `ready`.  A pod that
 * such a VM can serve takes it over: the VM's directory becomes the pod's
 * (rename: QEMU keeps its open console file and listening socket), the file
 * `domain` there names the VM's domain for re-adoption after a crash, and
 * create_sandbox goes out at once.  A pool VM serves one pod only and is
 * never given back.  What a pod needs to take one: the sim TEE (real TEEs
 * bind the pod's init-data into the launch measurement, so they always
 * boot for their pod), no init-data annotation, and the VM size the pod
 * would get (memory, vCPUs).  The pool follows the size of the most recent
 * pod that could have used it (the next pod probably looks like the last:
 * replicas); VMs of another size are dropped.  Once ready, a pool VM is
 * given that pod's images (image_begin and the missing layers, as for a
 * pod; the guest verifies them the same way), so that the next pod finds
 * them there, and then asked to warm up (one throwaway container: under
 * TCG the first `crun run` of a VM costs three times a later one).
 * Refills wait a second after
 * a take (the taken VM's pod is starting: its guest needs the CPU), boot
 * one VM at a time, and back off (doubling, up to 5 min) after a VM that
 * did not come up.  The daemon destroys its pool VMs when it stops;
 * after a crash, the next daemon destroys those no pod took. */

#define POOL_REFILL_DELAY_MS 1000
#define POOL_BACKOFF_MAX_MS  (5u * 60 * 1000)

static int pool_can_serve(const json_t *pod)
{
	const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
	const char *name;
	return !initdata_annotation(ann, &name) && strcmp(pod_tee(pod), "sim") == 0;
}

static void pool_remove(runtime *rt, struct rpod *p)
{
	for (size_t i = 0; i < rt->npool; i++)
		if (rt->pool[i] == p) {
			rt->pool[i] = rt->pool[--rt->npool];
			return;
		}
}

static void count_metric(runtime *rt, const char *name, const char *help)
{
	if (rt->o.metrics)
		metrics_counter_add(rt->o.metrics, name, help, NULL, 1);
}

void runtime_pool_counts(const runtime *rt, unsigned *ready, unsigned *booting)
{
	*ready = *booting = 0;
	for (size_t i = 0; i < rt->npool; i++)
		(*(rt->pool[i]->pool_ready ? ready : booting))++;
}

static void pool_backoff(runtime *rt)
{
	uint64_t b = rt->pool_backoff_ms ? rt->pool_backoff_ms * 2 : 2000;
	rt->pool_backoff_ms = b > POOL_BACKOFF_MAX_MS ? POOL_BACKOFF_MAX_MS : b;
	rt->pool_next_at = uv_now(rt->loop) + rt->pool_backoff_ms;
}

static void remove_dir(const char *dir);

static void on_pool_destroyed(void *arg, const struct err *e)
{
	struct rpod *p = arg;
	if (e)
		log_warn("runtime", "destroying pool VM %s: %s", p->dom, e->msg);
	else if (p->pool) /* still <data-dir>/pool/<id>: nobody's logs */
		remove_dir(p->dir);
	pod_free(p);
}

static void on_orphan_destroyed(void *arg, const struct err *e);
static void bound_console(struct rpod *p);

/* Takes `p` out of the pool and destroys its domain (freed when done). */
static void pool_drop(struct rpod *p, const char *why)
{
	runtime *rt = p->rt;
	pool_remove(rt, p);
	if (!p->pool_ready) /* it never came up: do not boot the next one at once */
		pool_backoff(rt);
	log_info("runtime", "pool VM dropped pool_vm=%s reason=%s", p->dom, why);
	count_metric(rt, "cocod_vm_pool_dropped_total",
	      "Warm pool VMs destroyed without serving a pod (wrong size, failed, stopped).");
	p->st = P_GONE;
	agentconn_close(p->ac);
	p->ac = NULL;
	pool_release(p);
}

/* A dropped pool VM's domain is destroyed once nothing is in flight (the
 * creation ends in on_pool_created, a prefetch file read in pool_release). */
static void pool_release(struct rpod *p)
{
	if (p->st != P_GONE || p->busy > 0)
		return;
	if (launcher_destroy(p->rt->l, p->dom, on_pool_destroyed, p))
		pod_free(p);
}

static void on_pool_created(void *arg, const struct err *e)
{
	struct rpod *p = arg;
	runtime *rt = p->rt;
	struct err ce;
	p->busy--;
	p->creating = 0;
	if (e) {
		log_warn("runtime", "pool VM %s: %s", p->dom, e->msg);
		if (p->st != P_GONE) {
			pool_remove(rt, p);
			pool_backoff(rt);
		}
		remove_dir(p->dir);
		pod_free(p);
		return;
	}
	if (p->st == P_GONE || rt->closing) {
		pool_remove(rt, p);
		if (launcher_destroy(rt->l, p->dom, on_pool_destroyed, p))
			pod_free(p);
		return;
	}
	p->boot_deadline = uv_now(rt->loop) + rt->o.boot_timeout_ms;
	if (connect_agent(p, &ce))
		pool_drop(p, ce.msg);
}

/* Boots one pool VM of the current shape. */
static void pool_fill_one(runtime *rt)
{
	unsigned char r[8];
	char id[32];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		pool_backoff(rt);
		return;
	}
	int n = snprintf(id, sizeof id, "pool-");
	for (size_t i = 0; i < sizeof r; i++)
		n += snprintf(id + n, sizeof id - (size_t)n, "%02x", r[i]);
	struct rpod *p = xcalloc(1, sizeof *p);
	p->rt = rt;
	p->uid = xstrdup(id);
	p->dom = xstrdup(id);
	p->dir = xasprintf("%s/pool/%s", rt->data_dir, id);
	p->pool = 1;
	p->shape = rt->pool_shape;
	struct buf xml;
	struct err e;
	buf_init(&xml);
	cleanup_free char *console = xasprintf("%s/console.log", p->dir);
	int fd = -1;
	if (mkdir_p(p->dir, 0700, &e) == 0 &&
	    (fd = open(console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0)
		close(fd);
	if (fd < 0 || vm_xml(rt, p->dom, p->dir, "sim", &p->shape, NULL, &xml, &e)) {
		log_warn("runtime", "pool VM %s: %s", id, fd < 0 ? "cannot create its directory" : e.msg);
		buf_fini(&xml);
		pod_free(p);
		pool_backoff(rt);
		return;
	}
	p->busy++;
	p->creating = 1;
	rt->pool[rt->npool++] = p;
	if (launcher_create(rt->l, p->dom, xml.data, on_pool_created, p)) {
		p->busy--;
		p->creating = 0;
		pool_remove(rt, p);
		pod_free(p);
		pool_backoff(rt);
	} else {
		log_info("runtime", "booting pool VM pool_vm=%s memory_mib=%llu vcpus=%u", id,
		         (unsigned long long)(p->shape.mem_bytes >> 20), p->shape.vcpus);
	}
	buf_fini(&xml);
}

static void pool_tick(runtime *rt, uint64_t now)
{
	int booting = 0;
	for (size_t i = 0; i < rt->npool; i++) {
		struct rpod *p = rt->pool[i];
		if (!p->pool_ready && !p->creating && p->boot_deadline && now >= p->boot_deadline) {
			pool_drop(p, "its agent did not report ready in time");
			return; /* the array changed */
		}
		if (!p->pool_ready)
			booting = 1;
		if (now >= p->console_at) {
			p->console_at = now + CONSOLE_CHECK_MS;
			bound_console(p);
		}
	}
	if (rt->npool < rt->o.pool_size && !booting && rt->restored && !rt->closing &&
	    now >= rt->pool_next_at && rt->kernel && rt->initrd)
		pool_fill_one(rt);
}

/* A pod of `shape` is starting: the pool follows it. */
static void pool_follow(runtime *rt, const struct vm_shape *shape)
{
	if (rt->pool_shape.mem_bytes == shape->mem_bytes && rt->pool_shape.vcpus == shape->vcpus)
		return;
	rt->pool_shape = *shape;
	for (size_t i = rt->npool; i-- > 0;)
		if (rt->pool[i]->shape.mem_bytes != shape->mem_bytes ||
		    rt->pool[i]->shape.vcpus != shape->vcpus)
			pool_drop(rt->pool[i], "pods now need another VM size");
	rt->pool_next_at = uv_now(rt->loop) + POOL_REFILL_DELAY_MS;
}

/* Pool VMs get the images of the most recent pod that could have used
 * one as soon as they are ready (the guest verifies them as always): the
 * next pod probably runs the same.  Images of more than POOL_PREFETCH_MAX
 * bytes are left to the pod. */
static void pool_follow_images(runtime *rt, const json_t *pod)
{
	static const char *const lists[] = {"initContainers", "containers"};
	const json_t *spec = json_object_get(pod, "spec");
	for (size_t i = 0; i < rt->nprefetch; i++)
		free(rt->prefetch[i]);
	rt->nprefetch = 0;
	for (size_t l = 0; l < 2; l++) {
		size_t i;
		const json_t *c;
		json_array_foreach(json_object_get(spec, lists[l]), i, c) {
			const char *img = json_string_value(json_object_get(c, "image"));
			size_t k = 0;
			while (img && k < rt->nprefetch && strcmp(rt->prefetch[k], img))
				k++;
			if (img && k == rt->nprefetch && rt->nprefetch < POOL_PREFETCH_IMAGES)
				rt->prefetch[rt->nprefetch++] = xstrdup(img);
		}
	}
}

/* A booted pool VM for `pod`, taken out of the pool, or NULL. */
static struct rpod *pool_take(runtime *rt, const struct vm_shape *shape)
{
	struct rpod *best = NULL;
	for (size_t i = 0; i < rt->npool; i++) {
		struct rpod *p = rt->pool[i];
		if (p->creating || p->st != P_BOOTING || p->shape.mem_bytes != shape->mem_bytes ||
		    p->shape.vcpus != shape->vcpus)
			continue;
		if (!best || (p->pool_ready && !best->pool_ready))
			best = p;
	}
	if (best)
		pool_remove(rt, best);
	return best;
}

/* `p`, just taken from the pool, becomes pod `uid`'s VM.  On failure the
 * VM is dropped and the caller boots one for the pod. */
static int pool_claim(runtime *rt, struct rpod *p, const char *uid, const json_t *pod,
                      struct err *e)
{
	cleanup_free char *pods = xasprintf("%s/pods", rt->data_dir);
	char *dir = xasprintf("%s/%s", pods, uid);
	cleanup_free char *domf = xasprintf("%s/domain", p->dir);
	cleanup_free char *pj = xasprintf("%s/pod.json", p->dir);
	cleanup_free char *json = json_dumps(pod, JSON_COMPACT);
	/* the files first, then one rename: a crash leaves the VM either in
	 * the pool (destroyed at the next start) or wholly the pod's */
	if (file_write_atomic(domf, p->dom, strlen(p->dom), 0600, e) ||
	    file_write_atomic(pj, json, strlen(json), 0600, e) || mkdir_p(pods, 0700, e) ||
	    (rename(p->dir, dir) != 0 &&
	     err_set(e, ERR_INTERNAL, "moving %s to %s: %s", p->dir, dir, strerror(errno)))) {
		log_warn("runtime", "pod %s on pool VM %s: %s (destroying it)", uid, p->dom, e->msg);
		free(dir);
		pool_drop(p, e->msg);
		return e->code;
	}
	free(p->dir);
	p->dir = dir;
	free(p->uid);
	p->uid = xstrdup(uid);
	p->pool = 0;
	set_pod_json(p, pod);
	strmap_put(&rt->pods, p->uid, p);
	p->boot_deadline = uv_now(rt->loop) + rt->o.boot_timeout_ms;
	rt->pool_next_at = uv_now(rt->loop) + POOL_REFILL_DELAY_MS;
	log_info("runtime", "pod VM from the warm pool uid=%s pool_vm=%s ready=%d", uid, p->dom,
	         p->pool_ready);
	count_metric(rt, "cocod_vm_pool_taken_total", "Pods that started on a VM from the warm pool.");
	if (p->pool_ready)
		send_sandbox(p);
	return 0;
}

/* The pod's init-data for create_sandbox: decoded from its annotation
 * again (admission validated it) and checked against the digest recorded
 * then, so that the VM is launched with, and the guest must report, the
 * digest users see on the pod. */
static int load_init_data(struct rpod *p, struct err *e)
{
	const json_t *ann = json_object_get(json_object_get(p->pod, "metadata"), "annotations");
	const char *name;
	const json_t *v = initdata_annotation(ann, &name);
	const char *recorded = json_string_value(json_object_get(ann, INITDATA_DIGEST_ANNOTATION));
	char digest[INITDATA_DIGEST_STR];
	struct initdata d;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return err_set(e, ERR_INVALID, "annotation %s is not a string", name);
	if (initdata_decode(json_string_value(v), json_string_length(v), &p->init_toml,
	                    &p->init_len, e) ||
	    initdata_parse(p->init_toml, p->init_len, &d, e))
		return err_wrap(e, "annotation %s", name);
	initdata_digest_str(&d, digest);
	initdata_fini(&d);
	if (!recorded || strcmp(recorded, digest) != 0)
		return err_set(e, ERR_INVALID,
		               "annotation %s hashes to %.23s..., not to the %.23s%s recorded at "
		               "admission in " INITDATA_DIGEST_ANNOTATION "; recreate the pod",
		               name, digest, recorded ? recorded : "none",
		               recorded && strlen(recorded) > 23 ? "..." : "");
	p->init_digest = xstrdup(digest);
	return 0;
}

static int rt_sandbox_create(void *ud, const char *uid, const json_t *pod, struct err *e)
{
	runtime *rt = ud;
	if (strmap_get(&rt->pods, uid))
		return err_set(e, ERR_CONFLICT, "a VM for pod %s is still being handled", uid);
	if (!rt->kernel || !rt->initrd)
		return err_set(e, ERR_UNAVAILABLE, "no guest kit: build it with `make kit`");
	cleanup_free char *dir = xasprintf("%s/pods/%s", rt->data_dir, uid);
	struct stat st;
	/* a pod's first VM only: a later one keeps the earlier one's logs */
	if (pool_can_serve(pod) && stat(dir, &st) != 0) {
		struct vm_shape shape;
		pod_shape(rt, pod, &shape);
		pool_follow(rt, &shape);
		pool_follow_images(rt, pod);
		struct rpod *w = pool_take(rt, &shape);
		struct err we;
		if (w && pool_claim(rt, w, uid, pod, &we) == 0)
			return 0;
	}
	struct rpod *p = pod_new(rt, uid);
	set_pod_json(p, pod);
	struct buf xml;
	buf_init(&xml);
	if (load_init_data(p, e) || prepare_dir(p, pod, e) || build_xml(rt, p, &xml, e)) {
		buf_fini(&xml);
		strmap_del(&rt->pods, uid);
		pod_free(p);
		return e->code;
	}
	p->busy++;
	int rc = launcher_create(rt->l, uid, xml.data, on_domain_created, p);
	buf_fini(&xml);
	if (rc) {
		strmap_del(&rt->pods, uid);
		pod_free(p);
		return err_set(e, ERR_UNAVAILABLE, "the VM launcher is not running");
	}
	log_info("runtime", "creating pod VM uid=%s accel=%s", uid, launcher_accel(rt->l));
	count_metric(rt, "cocod_pod_vms_booted_total",
	             "Pod VMs booted for their pod (not from the warm pool).");
	return 0;
}

/* The pod whose VM is domain `dom` (a pool VM's id once taken, else the uid). */
static struct rpod *find_dom(runtime *rt, const char *dom)
{
	struct rpod *p = strmap_get(&rt->pods, dom);
	if (p && strcmp(p->dom, dom) == 0)
		return p;
	for (size_t i = 0; i < rt->pods.cap; i++) {
		const struct strmap_slot *s = &rt->pods.slots[i];
		if (s->key && s->value && strcmp(((struct rpod *)s->value)->dom, dom) == 0)
			return s->value;
	}
	return NULL;
}

/* The domain of pod `uid`'s VM: named in pods/<uid>/domain when it came
 * from the pool, else cocod-<uid>.  Caller frees. */
static char *pod_domain(runtime *rt, const char *uid)
{
	cleanup_free char *path = xasprintf("%s/pods/%s/domain", rt->data_dir, uid);
	char *dom = NULL;
	size_t len;
	struct err e;
	if (file_read(path, 64, &dom, &len, &e) == 0 && len > 5 && strncmp(dom, "pool-", 5) == 0 &&
	    strspn(dom, "pool-0123456789abcdef") == len)
		return dom;
	free(dom);
	return xstrdup(uid);
}

static void on_destroy_reply(void *arg, const json_t *body, const struct err *e)
{
	struct rpod *p = arg;
	if (e)
		log_warn("runtime", "destroy_sandbox uid=%s: %s", p->uid, e->msg);
}

static int rt_sandbox_destroy(void *ud, const char *uid, struct err *e)
{
	runtime *rt = ud;
	struct rpod *p = strmap_get(&rt->pods, uid);
	if (!p) {
		cleanup_free char *dom = pod_domain(rt, uid);
		if (!launcher_exists(rt->l, dom)) {
			complete(rt, D_GONE, uid, NULL, "destroyed", 0, 0);
			return 0;
		}
		p = pod_new(rt, uid);
		free(p->dom);
		p->dom = xstrdup(dom);
		p->reported = 1;
	}
	if (p->st == P_DESTROYING)
		return 0;
	int was_ready = p->st == P_READY;
	p->st = P_DESTROYING;
	p->reported = 1; /* a destroy asked for always ends in sandbox_gone */
	if (p->busy > 0 && !p->destroying_domain && !p->ac)
		return 0; /* creation in flight: on_domain_created destroys it */
	struct err re;
	if (was_ready && agentconn_connected(p->ac) &&
	    agentconn_request(p->ac, "destroy_sandbox", NULL, rt->o.destroy_grace_ms,
	                      on_destroy_reply, p, &re) == 0) {
		p->destroy_deadline = uv_now(rt->loop) + rt->o.destroy_grace_ms;
		return 0;
	}
	pod_destroy_domain(p);
	return 0;
}

/* sandbox_exists, with re-adoption of a running domain (file comment). */
static int rt_sandbox_exists(void *ud, const char *uid)
{
	runtime *rt = ud;
	struct rpod *p = strmap_get(&rt->pods, uid);
	if (p)
		return p->st != P_GONE;
	cleanup_free char *dom = pod_domain(rt, uid);
	if (!launcher_exists(rt->l, dom))
		return 0;
	p = pod_new(rt, uid);
	free(p->dom);
	p->dom = xstrdup(dom);
	p->adopted = 1;
	cleanup_free char *pj = xasprintf("%s/pod.json", p->dir);
	json_t *pod = json_load_file(pj, 0, NULL);
	set_pod_json(p, pod ? pod : json_object());
	json_decref(pod);
	struct err e;
	if (connect_agent(p, &e))
		log_warn("runtime", "re-adopting uid=%s: %s", uid, e.msg);
	return 1;
}

/* Domain lifecycle events from the launcher. */
static void on_domain_event(void *ud, const char *uid, enum launcher_event ev, const char *reason)
{
	runtime *rt = ud;
	if (ev != LAUNCHER_STOPPED)
		return;
	for (size_t i = 0; i < rt->npool; i++)
		if (strcmp(rt->pool[i]->dom, uid) == 0) {
			if (!rt->pool[i]->creating)
				pool_drop(rt->pool[i], "its VM stopped");
			return;
		}
	struct rpod *p = find_dom(rt, uid);
	if (!p || p->destroying_domain)
		return; /* our own destroy reports with its reason when it completes */
	if (p->st == P_DESTROYING) {
		pod_gone(p, "destroyed");
		return;
	}
	char msg[128];
	snprintf(msg, sizeof msg, "the pod's VM stopped unexpectedly (%s)", reason);
	pod_gone(p, msg);
}

/* ---- image pulls ---- */

struct pull {
	struct pull *next;
	struct rpod *p;
	char *ctr, *image; /* ctr NULL: a prefetch into a pool VM (no pod to tell) */
	struct images_resolved res;
	int resolved;
	unsigned char *missing; /* per layer */
	size_t layer;
	uv_file fd;
	uint64_t off;
	uv_fs_t fs;
	char *chunk;
};

static void pull_free(struct pull *pl)
{
	if (pl->fd >= 0) /* a pod that went while its layer was being sent */
		close(pl->fd);
	if (pl->resolved)
		images_resolved_fini(&pl->res);
	free(pl->missing);
	free(pl->chunk);
	free(pl->ctr);
	free(pl->image);
	free(pl);
}

static void pulls_free(struct rpod *p)
{
	while (p->pulls) {
		struct pull *pl = p->pulls;
		p->pulls = pl->next;
		pull_free(pl);
	}
}

/* The active pull ended: report and start the next one. */
static void pull_end(struct pull *pl, const char *fail_msg)
{
	struct rpod *p = pl->p;
	if (!pl->ctr) {
		if (fail_msg)
			log_warn("runtime", "prefetch into pool VM %s: %s", p->dom, fail_msg);
		else
			log_info("runtime", "image prefetched pool_vm=%s image=%s", p->dom, pl->image);
	} else if (fail_msg) {
		complete(p->rt, D_PULL_FAILED, p->uid, pl->ctr, fail_msg, 0, 0);
	} else {
		struct rctr *c = find_ctr(p, pl->ctr);
		char id[600];
		snprintf(id, sizeof id, "%s@%s", pl->res.ref.name, pl->res.manifest_digest);
		if (c) {
			free(c->image_digest);
			c->image_digest = xstrdup(pl->res.manifest_digest);
		}
		complete(p->rt, D_PULLED, p->uid, pl->ctr, id, 0, 0);
	}
	p->pulls = pl->next;
	pull_free(pl);
	if (p->pool && !p->pulls && p->st != P_GONE)
		pool_warm_up(p);
	pull_next(p);
}

static void send_layer(struct pull *pl);

static void on_layer_closed(uv_fs_t *req)
{
	struct pull *pl = req->data;
	struct rpod *p = pl->p;
	uv_fs_req_cleanup(req);
	p->busy--;
	if (p->st == P_GONE) {
		pod_release(p);
		return;
	}
	pl->layer++;
	send_layer(pl);
}

static void close_layer(struct pull *pl)
{
	uv_file fd = pl->fd;
	pl->fd = -1;
	pl->p->busy++;
	pl->fs.data = pl;
	uv_fs_close(pl->p->rt->loop, &pl->fs, fd, on_layer_closed);
}

static void read_chunk(struct pull *pl);

static void on_chunk_reply(void *arg, const json_t *body, const struct err *e)
{
	struct pull *pl = arg;
	if (e) {
		char msg[400];
		snprintf(msg, sizeof msg, "sending layer %s: %s", pl->res.layers[pl->layer].digest,
		         e->msg);
		uv_fs_t req;
		uv_fs_close(NULL, &req, pl->fd, NULL); /* a local file: does not block */
		uv_fs_req_cleanup(&req);
		pl->fd = -1;
		pull_end(pl, msg);
		return;
	}
	if (pl->off >= pl->res.layers[pl->layer].size)
		close_layer(pl);
	else
		read_chunk(pl);
}

static void on_chunk_read(uv_fs_t *req)
{
	struct pull *pl = req->data;
	struct rpod *p = pl->p;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	p->busy--;
	if (p->st == P_GONE) {
		pod_release(p);
		return;
	}
	const struct images_layer *ly = &pl->res.layers[pl->layer];
	if (n < 0 || (n == 0 && pl->off < ly->size)) {
		uv_fs_t c;
		uv_fs_close(NULL, &c, pl->fd, NULL);
		uv_fs_req_cleanup(&c);
		pl->fd = -1;
		pull_end(pl, "reading a layer blob failed");
		return;
	}
	/* Raw bytes as the frame payload when the guest takes them (its JSON
	 * parser spends ~0.1 s under TCG on a 512 KiB chunk as base64). */
	int raw = n > 0 && agentconn_has(p->ac, AGENTCONN_F_PAYLOAD);
	int last = pl->off + (uint64_t)n >= ly->size;
	json_t *body = json_pack("{s:s, s:I, s:b}", "digest", ly->digest, "offset",
	                         (json_int_t)pl->off, "last", last);
	if (!raw) {
		cleanup_free char *b64 = b64_encode(pl->chunk, (size_t)n);
		json_object_set_new(body, "data_b64", json_string(b64));
	}
	pl->off += (uint64_t)n;
	struct err e;
	int rc = agentconn_request_payload(
	    p->ac, "blob_chunk", body, raw ? pl->chunk : NULL, raw ? (size_t)n : 0,
	    last ? UNPACK_TIMEOUT_MS : REQ_TIMEOUT_MS, on_chunk_reply, pl, &e);
	json_decref(body);
	if (rc)
		on_chunk_reply(pl, NULL, &e);
}

static void read_chunk(struct pull *pl)
{
	const struct images_layer *ly = &pl->res.layers[pl->layer];
	uint64_t left = ly->size - pl->off;
	size_t n = left < CHUNK_MAX ? (size_t)left : CHUNK_MAX;
	uv_buf_t b = uv_buf_init(pl->chunk, (unsigned)n);
	pl->p->busy++;
	pl->fs.data = pl;
	uv_fs_read(pl->p->rt->loop, &pl->fs, pl->fd, &b, 1, (int64_t)pl->off, on_chunk_read);
}

static void on_layer_open(uv_fs_t *req)
{
	struct pull *pl = req->data;
	struct rpod *p = pl->p;
	ssize_t fd = req->result;
	uv_fs_req_cleanup(req);
	p->busy--;
	if (p->st == P_GONE) {
		if (fd >= 0)
			close((int)fd);
		pod_release(p);
		return;
	}
	if (fd < 0) {
		pull_end(pl, "a layer blob is missing from the image store");
		return;
	}
	pl->fd = (uv_file)fd;
	pl->off = 0;
	read_chunk(pl);
}

/* Sends the next missing layer, or finishes the pull. */
static void send_layer(struct pull *pl)
{
	while (pl->layer < pl->res.nlayers && !pl->missing[pl->layer])
		pl->layer++;
	if (pl->layer == pl->res.nlayers) {
		pull_end(pl, NULL);
		return;
	}
	if (!pl->chunk)
		pl->chunk = xmalloc(CHUNK_MAX);
	pl->p->busy++;
	pl->fs.data = pl;
	uv_fs_open(pl->p->rt->loop, &pl->fs, pl->res.layers[pl->layer].path, O_RDONLY | O_CLOEXEC,
	           0, on_layer_open);
}

/* The guest's list of missing layers: each must be one of this image's. */
static int mark_missing(struct pull *pl, const json_t *body)
{
	const json_t *m = json_object_get(body, "missing");
	size_t i;
	const json_t *d;
	if (!json_is_array(m) || json_array_size(m) > pl->res.nlayers)
		return -1;
	json_array_foreach(m, i, d) {
		size_t k = 0;
		while (
		    k < pl->res.nlayers &&
		    (!json_is_string(d) || strcmp(pl->res.layers[k].digest, json_string_value(d))))
			k++;
		if (k == pl->res.nlayers)
			return -1;
		pl->missing[k] = 1;
	}
	return 0;
}

static void on_image_begin(void *arg, const json_t *body, const struct err *e)
{
	struct pull *pl = arg;
	char msg[300];
	if (e) {
		snprintf(msg, sizeof msg, "the guest refused image %s: %s", pl->image, e->msg);
		pull_end(pl, msg);
		return;
	}
	pl->missing = xcalloc(pl->res.nlayers + 1, 1);
	if (mark_missing(pl, body)) {
		pod_fail(pl->p,
		         "hostile guest: image_begin reply names layers that are not in the image");
		return;
	}
	pl->layer = 0;
	send_layer(pl);
}

static void pull_begin(struct pull *pl)
{
	struct rpod *p = pl->p;
	struct err e = {0};
	if (!p->rt->im) {
		pull_end(pl, "no image store on this box");
		return;
	}
	if (images_resolve(p->rt->im, pl->image, &pl->res, &e)) {
		char msg[400];
		if (e.code == ERR_NOT_FOUND)
			snprintf(msg, sizeof msg,
			         "image %s not found: import it with `cocod image import FILE`",
			         pl->image);
		else
			snprintf(msg, sizeof msg, "image %s: %s", pl->image, e.msg);
		pull_end(pl, msg);
		return;
	}
	pl->resolved = 1;
	uint64_t bytes = 0;
	for (size_t i = 0; i < pl->res.nlayers; i++)
		bytes += pl->res.layers[i].size;
	if (!pl->ctr && bytes > POOL_PREFETCH_MAX) {
		pull_end(pl, "too large to prefetch");
		return;
	}
	json_t *body =
	    json_pack("{s:s, s:s, s:s, s:s}", "ref", pl->image, "manifest", pl->res.manifest,
	              "config", pl->res.config, "manifest_digest", pl->res.manifest_digest);
	int rc = body ? agentconn_request(p->ac, "image_begin", body, REQ_TIMEOUT_MS,
	                                  on_image_begin, pl, &e)
	              : err_set(&e, ERR_INVALID, "image %s: manifest is not UTF-8", pl->image);
	json_decref(body);
	if (rc)
		pull_end(pl, e.msg);
}

static void pull_next(struct rpod *p)
{
	if ((p->st == P_READY || (p->pool && p->pool_ready)) && p->pulls && !p->pulls->resolved)
		pull_begin(p->pulls);
}

static struct pull *pull_queue(struct rpod *p, const char *container, const char *image)
{
	struct pull *pl = xcalloc(1, sizeof *pl), **tail = &p->pulls;
	pl->p = p;
	pl->ctr = container ? xstrdup(container) : NULL;
	pl->image = xstrdup(image);
	pl->fd = -1;
	while (*tail)
		tail = &(*tail)->next;
	*tail = pl;
	return pl;
}

static int rt_pull(void *ud, const char *uid, const char *container, const char *image,
                   struct err *e)
{
	runtime *rt = ud;
	struct rpod *p = strmap_get(&rt->pods, uid);
	if (!p || p->st == P_DESTROYING || p->st == P_GONE)
		return err_set(e, ERR_UNAVAILABLE, "the pod's VM is not running");
	struct pull *pl = pull_queue(p, container, image);
	if (p->pulls == pl && p->st == P_READY) /* start from the loop, not inside the call */
		uv_async_send(&rt->async);
	return 0;
}

/* ---- containers ---- */

static json_t *strings(const json_t *arr)
{
	json_t *out = json_array();
	size_t i;
	const json_t *v;
	json_array_foreach(arr, i, v) {
		if (json_is_string(v))
			json_array_append(out, (json_t *)(uintptr_t)v);
	}
	return out;
}

static json_t *env_list(const json_t *env)
{
	json_t *out = json_array();
	size_t i;
	const json_t *v;
	json_array_foreach(env, i, v) {
		const char *n = json_string_value(json_object_get(v, "name"));
		const char *val = json_string_value(json_object_get(v, "value"));
		if (n)
			json_array_append_new(out, json_sprintf("%s=%s", n, val ? val : ""));
	}
	return out;
}

static json_t *mount_list(const json_t *mounts)
{
	json_t *out = json_array();
	size_t i;
	const json_t *v;
	json_array_foreach(mounts, i, v) {
		json_array_append_new(
		    out, json_pack("{s:s?, s:s?, s:b}", "volume",
		                   json_string_value(json_object_get(v, "name")), "path",
		                   json_string_value(json_object_get(v, "mountPath")), "read_only",
		                   json_is_true(json_object_get(v, "readOnly"))));
	}
	return out;
}

static json_t *container_body(const struct rpod *p, const json_t *c, const struct rctr *rc)
{
	const json_t *sc = json_object_get(c, "securityContext");
	const json_t *psc = json_object_get(json_object_get(p->pod, "spec"), "securityContext");
	const json_t *uid = json_object_get(sc, "runAsUser"),
	             *gid = json_object_get(sc, "runAsGroup");
	uid = uid ? uid : json_object_get(psc, "runAsUser");
	gid = gid ? gid : json_object_get(psc, "runAsGroup");
	const char *wd = json_string_value(json_object_get(c, "workingDir"));
	const char *image =
	    rc->image_digest ? rc->image_digest : json_string_value(json_object_get(c, "image"));
	json_t *b =
	    json_pack("{s:s, s:s, s:o, s:o, s:o, s:s, s:b, s:o}", "name", rc->name, "image",
	              image ? image : "", "command", strings(json_object_get(c, "command")), "args",
	              strings(json_object_get(c, "args")), "env",
	              env_list(json_object_get(c, "env")), "working_dir", wd ? wd : "",
	              "read_only_root", json_is_true(json_object_get(sc, "readOnlyRootFilesystem")),
	              "mounts", mount_list(json_object_get(c, "volumeMounts")));
	if (json_is_integer(uid) || json_is_integer(gid))
		json_object_set_new(b, "user",
		                    json_pack("{s:I, s:I}", "uid",
		                              json_is_integer(uid) ? json_integer_value(uid) : 0,
		                              "gid",
		                              json_is_integer(gid) ? json_integer_value(gid) : 0));
	return b;
}

struct start_call {
	struct rpod *p;
	char *ctr;
};

static void start_failed(struct start_call *sc, const char *msg)
{
	struct rpod *p = sc->p;
	log_warn("runtime", "container start failed uid=%s container=%s: %s", p->uid, sc->ctr, msg);
	cleanup_free char *path = log_path(p->rt, p->uid, sc->ctr);
	cleanup_free char *line = xasprintf("cocod: cannot start container: %s\n", msg);
	runtime_log_append(path, p->rt->o.log_max, "stderr", line, strlen(line), NULL);
	complete(p->rt, D_EXITED, p->uid, sc->ctr, "StartError", 128, 0);
	free(sc->ctr);
	free(sc);
}

static void on_started_reply(void *arg, const json_t *body, const struct err *e)
{
	struct start_call *sc = arg;
	if (e) {
		start_failed(sc, e->msg);
		return;
	}
	free(sc->ctr);
	free(sc);
}

static void on_created_reply(void *arg, const json_t *body, const struct err *e)
{
	struct start_call *sc = arg;
	struct err se;
	if (e) {
		start_failed(sc, e->msg);
		return;
	}
	json_t *b = json_pack("{s:s}", "name", sc->ctr);
	int rc = agentconn_request(sc->p->ac, "start_container", b, REQ_TIMEOUT_MS,
	                           on_started_reply, sc, &se);
	json_decref(b);
	if (rc)
		start_failed(sc, se.msg);
}

static void do_start(struct rpod *p, const char *name)
{
	struct start_call *sc = xcalloc(1, sizeof *sc);
	sc->p = p;
	sc->ctr = xstrdup(name);
	const json_t *spec = spec_ctr(p, name);
	struct rctr *c = find_ctr(p, name);
	if (!spec || !c) {
		start_failed(sc, "no such container in the pod");
		return;
	}
	struct err e;
	json_t *b = container_body(p, spec, c);
	int rc = agentconn_request(p->ac, "create_container", b, REQ_TIMEOUT_MS, on_created_reply,
	                           sc, &e);
	json_decref(b);
	if (rc)
		start_failed(sc, e.msg);
}

static void on_signal_reply(void *arg, const json_t *body, const struct err *e)
{
	struct rpod *p = arg;
	if (e)
		log_warn("runtime", "signal uid=%s: %s", p->uid, e->msg);
}

static void send_signal(struct rpod *p, const char *name, int sig)
{
	struct err e;
	json_t *b = json_pack("{s:s, s:i}", "name", name, "signal", sig);
	if (agentconn_request(p->ac, "signal", b, REQ_TIMEOUT_MS, on_signal_reply, p, &e))
		log_warn("runtime", "signal uid=%s container=%s: %s", p->uid, name, e.msg);
	json_decref(b);
}

static void do_stop(struct rpod *p, const char *name, int64_t grace_s)
{
	struct rctr *c = find_ctr(p, name);
	if (!c)
		return;
	uint64_t due = uv_now(p->rt->loop) + (uint64_t)(grace_s > 0 ? grace_s : 0) * 1000;
	if (grace_s <= 0) {
		c->kill_at = 0;
		send_signal(p, name, 9);
		return;
	}
	send_signal(p, name, 15);
	if (!c->kill_at || due < c->kill_at)
		c->kill_at = due;
}

static void add_job(struct rpod *p, int start, const char *ctr, int64_t grace_s)
{
	struct job *j = xcalloc(1, sizeof *j), **tail = &p->jobs;
	*j = (struct job){NULL, start, xstrdup(ctr), grace_s};
	while (*tail)
		tail = &(*tail)->next;
	*tail = j;
	if (p->st == P_READY) /* run from the loop, not inside the runtime_ops call */
		uv_async_send(&p->rt->async);
}

static void run_jobs(struct rpod *p)
{
	while (p->jobs && p->st == P_READY) {
		struct job *j = p->jobs;
		p->jobs = j->next;
		if (j->start)
			do_start(p, j->ctr);
		else
			do_stop(p, j->ctr, j->grace_s);
		free(j->ctr);
		free(j);
	}
}

static int rt_container_start(void *ud, const char *uid, const char *container, struct err *e)
{
	runtime *rt = ud;
	struct rpod *p = strmap_get(&rt->pods, uid);
	if (!p || p->st == P_DESTROYING || p->st == P_GONE)
		return err_set(e, ERR_UNAVAILABLE, "the pod's VM is not running");
	if (!find_ctr(p, container))
		return err_set(e, ERR_NOT_FOUND, "no container \"%s\" in the pod", container);
	add_job(p, 1, container, 0);
	return 0;
}

static int rt_container_stop(void *ud, const char *uid, const char *container, int64_t grace_s,
                             struct err *e)
{
	runtime *rt = ud;
	struct rpod *p = strmap_get(&rt->pods, uid);
	if (!p || p->st == P_GONE)
		return err_set(e, ERR_UNAVAILABLE, "the pod's VM is not running");
	add_job(p, 0, container, grace_s);
	return 0;
}

/* ---- the tick: deadlines and the console bound ---- */

static void bound_console(struct rpod *p)
{
	cleanup_free char *path = xasprintf("%s/console.log", p->dir);
	struct stat st;
	if (stat(path, &st) != 0 || st.st_size <= RUNTIME_CONSOLE_MAX)
		return;
	char *data = NULL;
	size_t len = 0;
	cleanup_free char *old = xasprintf("%s.1", path);
	if (file_read(path, (size_t)st.st_size + 65536, &data, &len, NULL) == 0)
		file_write_atomic(old, data, len, 0600, NULL);
	free(data);
	if (truncate(path, 0) != 0)
		log_warn("runtime", "truncating %s: %s", path, strerror(errno));
}

static void tick_pod(struct rpod *p, uint64_t now)
{
	if (p->st == P_BOOTING && !p->adopted && p->boot_deadline && now >= p->boot_deadline)
		pod_fail(p,
		         "the guest agent did not report ready within %llu s (see %s/console.log)",
		         (unsigned long long)p->rt->o.boot_timeout_ms / 1000, p->dir);
	else if (p->st == P_DESTROYING && p->destroy_deadline && now >= p->destroy_deadline) {
		p->destroy_deadline = 0;
		pod_destroy_domain(p);
	}
	for (size_t i = 0; p->st == P_READY && i < p->nc; i++)
		if (p->c[i].kill_at && now >= p->c[i].kill_at) {
			p->c[i].kill_at = 0;
			send_signal(p, p->c[i].name, 9);
		}
	if (p->st != P_GONE && now >= p->console_at) {
		p->console_at = now + CONSOLE_CHECK_MS;
		bound_console(p);
	}
}

static void on_tick(uv_timer_t *t)
{
	runtime *rt = t->data;
	uint64_t now = uv_now(rt->loop);
	/* pod_fail may remove records: collect first */
	struct rpod **list = xcalloc(rt->pods.live + 1, sizeof *list);
	size_t n = 0;
	for (size_t i = 0; i < rt->pods.cap; i++) {
		const struct strmap_slot *s = &rt->pods.slots[i];
		if (s->key && s->value && s->key == ((struct rpod *)s->value)->uid &&
		    n < rt->pods.live)
			list[n++] = s->value;
	}
	for (size_t i = 0; i < n; i++)
		if (strmap_get(&rt->pods, list[i]->uid) == list[i])
			tick_pod(list[i], now);
	free(list);
	pool_tick(rt, now);
}

/* Runs jobs that waited for the loop (after runtime_ops calls). */
static void on_async_all(uv_async_t *h)
{
	runtime *rt = h->data;
	for (size_t i = 0; i < rt->pods.cap; i++) {
		const struct strmap_slot *s = &rt->pods.slots[i];
		if (s->key && s->value && s->key == ((struct rpod *)s->value)->uid) {
			struct rpod *p = s->value;
			if (p->st == P_READY) {
				run_jobs(p);
				pull_next(p);
			}
		}
	}
	on_async(h);
}

/* ---- setup ---- */

const struct runtime_ops *runtime_ops(runtime *rt)
{
	return &rt->ops;
}

void runtime_attach(runtime *rt, podctl *ctl)
{
	rt->ctl = ctl;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			cleanup_free char *f = xasprintf("%s/%s", dir, de->d_name);
			unlink(f);
		}
	if (d)
		closedir(d);
	rmdir(dir);
}

void runtime_forget(runtime *rt, const char *uid)
{
	if (strmap_get(&rt->pods, uid) || !uid[0] || strchr(uid, '/') || uid[0] == '.')
		return;
	readers_end(rt, uid, NULL);
	cleanup_free char *dir = xasprintf("%s/pods/%s", rt->data_dir, uid);
	remove_dir(dir);
}

static void on_orphan_destroyed(void *arg, const struct err *e)
{
	char *uid = arg;
	if (e)
		log_warn("runtime", "destroying orphan VM uid=%s: %s", uid, e->msg);
	free(uid);
}

void runtime_restored(runtime *rt)
{
	for (const char *const *u = launcher_found(rt->l); *u; u++)
		if (!find_dom(rt, *u) && (!rt->ctl || !podctl_status(rt->ctl, *u))) {
			log_info("runtime", "destroying a VM no pod claims uid=%s", *u);
			char *uid = xstrdup(*u);
			if (launcher_destroy(rt->l, uid, on_orphan_destroyed, uid))
				free(uid);
		}
	cleanup_free char *pods = xasprintf("%s/pods", rt->data_dir);
	DIR *d = opendir(pods);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && rt->ctl && !podctl_status(rt->ctl, de->d_name) &&
		    !strmap_get(&rt->pods, de->d_name)) {
			cleanup_free char *dir = xasprintf("%s/%s", pods, de->d_name);
			remove_dir(dir);
		}
	if (d)
		closedir(d);
	/* pool VMs of the previous daemon that no pod took: destroyed above */
	cleanup_free char *pool = xasprintf("%s/pool", rt->data_dir);
	d = opendir(pool);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.') {
			cleanup_free char *dir = xasprintf("%s/%s", pool, de->d_name);
			remove_dir(dir);
		}
	if (d)
		closedir(d);
	rt->restored = 1;
}

/* QEMU runs elsewhere: kit paths must be absolute. */
static char *absolute(const char *path)
{
	if (!path)
		return NULL;
	char *r = realpath(path, NULL);
	return r ? r : xstrdup(path);
}

int runtime_new(uv_loop_t *loop, launcher *l, images *im, const struct runtime_opts *o,
                runtime **out, struct err *e)
{
	if (!o->data_dir || o->data_dir[0] != '/')
		return err_set(e, ERR_CONFIG, "runtime: data_dir must be absolute");
	runtime *rt = xcalloc(1, sizeof *rt);
	rt->loop = loop;
	rt->l = l;
	rt->im = im;
	rt->o = *o;
	rt->data_dir = xstrdup(o->data_dir);
	rt->kernel = absolute(o->kernel);
	rt->initrd = absolute(o->initrd);
	rt->cmdline = xstrdup(o->cmdline ? o->cmdline : "console=ttyS0");
	rt->o.default_memory = o->default_memory ? o->default_memory : LAUNCHER_MEMORY_DEFAULT;
	rt->o.overhead_memory = o->overhead_memory ? o->overhead_memory : LAUNCHER_OVERHEAD_DEFAULT;
	rt->o.boot_timeout_ms = o->boot_timeout_ms ? o->boot_timeout_ms : 120000;
	rt->o.destroy_grace_ms = o->destroy_grace_ms ? o->destroy_grace_ms : 10000;
	rt->o.log_max = o->log_max ? o->log_max : RUNTIME_LOG_MAX;
	rt->ops = (struct runtime_ops){rt,
	                               rt_sandbox_create,
	                               rt_pull,
	                               rt_container_start,
	                               rt_container_stop,
	                               rt_sandbox_destroy,
	                               rt_sandbox_exists};
	strmap_init(&rt->pods);
	rt->pool = xcalloc(rt->o.pool_size + 1, sizeof *rt->pool);
	pod_shape(rt, NULL, &rt->pool_shape); /* a pod without limits, until one comes */
	rt->done_tail = &rt->done_head;
	uv_async_init(loop, &rt->async, on_async_all);
	rt->async.data = rt;
	uv_timer_init(loop, &rt->timer);
	rt->timer.data = rt;
	uv_timer_start(&rt->timer, on_tick, TICK_MS, TICK_MS);
	rt->handles = 2;
	launcher_on_event(l, on_domain_event, rt);
	*out = rt;
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	runtime *rt = h->data;
	if (--rt->handles == 0 && rt->close_cb)
		rt->close_cb(rt->close_arg);
}

void runtime_close(runtime *rt, void (*cb)(void *arg), void *arg)
{
	rt->closing = 1;
	rt->close_cb = cb;
	rt->close_arg = arg;
	launcher_on_event(rt->l, NULL, NULL);
	for (size_t i = 0; i < rt->pods.cap; i++) {
		const struct strmap_slot *s = &rt->pods.slots[i];
		if (s->key && s->value && s->key == ((struct rpod *)s->value)->uid) {
			struct rpod *p = s->value;
			agentconn_close(p->ac);
			p->ac = NULL;
		}
	}
	/* Pool VMs serve no pod: they go with the daemon (those being created
	 * are destroyed by on_pool_created, or by the next daemon). */
	for (size_t i = 0; i < rt->npool; i++) {
		struct rpod *p = rt->pool[i];
		agentconn_close(p->ac);
		p->ac = NULL;
		if (!p->creating) {
			char *dom = xstrdup(p->dom);
			if (launcher_destroy(rt->l, dom, on_orphan_destroyed, dom))
				free(dom);
		}
	}
	uv_close((uv_handle_t *)&rt->async, on_handle_closed);
	uv_close((uv_handle_t *)&rt->timer, on_handle_closed);
}

void runtime_free(runtime *rt)
{
	if (!rt)
		return;
	for (size_t i = 0; i < rt->pods.cap; i++) {
		const struct strmap_slot *s = &rt->pods.slots[i];
		if (s->key && s->value && s->key == ((struct rpod *)s->value)->uid)
			pod_free(s->value);
	}
	strmap_fini(&rt->pods);
	for (size_t i = 0; i < rt->npool; i++)
		if (!rt->pool[i]->busy)
			pod_free(rt->pool[i]);
	free(rt->pool);
	for (size_t i = 0; i < rt->nprefetch; i++)
		free(rt->prefetch[i]);
	while (rt->readers) {
		runtime_log_reader *r = rt->readers;
		rt->readers = r->next;
		r->next = NULL;
		r->rt = rt;
		if (r->fd0 >= 0)
			close(r->fd0);
		if (r->fd1 >= 0)
			close(r->fd1);
		buf_fini(&r->out);
		buf_fini(&r->pending);
		free(r->uid);
		free(r->ctr);
		free(r);
	}
	for (struct done *d = rt->done_head, *n; d; d = n) {
		n = d->next;
		free(d->uid);
		free(d->ctr);
		free(d->s);
		free(d);
	}
	free(rt->data_dir);
	free(rt->kernel);
	free(rt->initrd);
	free(rt->cmdline);
	free(rt);
}
