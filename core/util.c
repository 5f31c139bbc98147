/* util: allocation, buffers, files, time, parsing helpers. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

static void oom(size_t n)
{
	log_error("util", "out of memory allocating %zu bytes", n);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return buf_steal(&b, NULL);
}

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = b->cap = 0;
}

void buf_fini(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reserve(struct buf *b, size_t extra)
{
	if (b->len + extra + 1 <= b->cap) {
		b->data[b->len] = '\0';
		return;
	}
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
	b->data[b->len] = '\0';
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	char small[256];
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	if (n < 0) {
		va_end(again);
		return;
	}
	if ((size_t)n < sizeof small) {
		buf_add(b, small, (size_t)n);
	} else {
		buf_reserve(b, (size_t)n);
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
		b->len += (size_t)n;
	}
	va_end(again);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

char *buf_steal(struct buf *b, size_t *len)
{
	buf_reserve(b, 0);
	char *p = b->data;
	if (len)
		*len = b->len;
	buf_init(b);
	return p;
}

int file_read(const char *path, size_t max, char **out, size_t *len, struct err *e)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO,
			       "open %s: %s", path, strerror(errno));
	struct buf b;
	buf_init(&b);
	for (;;) {
		buf_reserve(&b, 4096);
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_fini(&b);
			return err_set(e, ERR_IO, "read %s: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > max) {
			buf_fini(&b);
			return err_set(e, ERR_TOO_LARGE, "%s: larger than %zu bytes", path, max);
		}
	}
	*out = buf_steal(&b, len);
	return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
	cleanup_free char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return err_set(e, ERR_IO, "create %s: %s", tmp, strerror(errno));
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int saved = errno;
			close(fd);
			unlink(tmp);
			return err_set(e, ERR_IO, "write %s: %s", tmp, strerror(saved));
		}
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		int saved = errno;
		close(fd);
		unlink(tmp);
		return err_set(e, ERR_IO, "sync %s: %s", tmp, strerror(saved));
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int saved = errno;
		unlink(tmp);
		return err_set(e, ERR_IO, "rename %s: %s", path, strerror(saved));
	}
	return 0;
}

int mkdir_p(const char *path, mode_t mode, struct err *e)
{
	cleanup_free char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return err_set(e, ERR_IO, "mkdir %s: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return err_set(e, ERR_IO, "mkdir %s: %s", p, strerror(errno));
	return 0;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int ct_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* Splits "12.5MiB" into a number and a unit; rejects empty, negative,
 * trailing junk and overflow. */
static int split_number(const char *s, double *num, const char **unit)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	*num = strtod(s, &end);
	if (errno || end == s || *num < 0)
		return -1;
	*unit = end;
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		double mul;
	} units[] = {
		{"", 1},           {"B", 1},         {"k", 1e3},
		{"K", 1e3},        {"KB", 1e3},      {"M", 1e6},
		{"MB", 1e6},       {"G", 1e9},       {"GB", 1e9},
		{"Ki", 1024.0},    {"KiB", 1024.0},  {"Mi", 1048576.0},
		{"MiB", 1048576.0}, {"Gi", 1073741824.0}, {"GiB", 1073741824.0},
	};
	double num;
	const char *unit;
	if (split_number(s, &num, &unit) < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(unit, units[i].unit) == 0) {
			double v = num * units[i].mul;
			if (v > 9.0e18 || v != (double)(uint64_t)v)
				return -1;
			*out = (uint64_t)v;
			return 0;
		}
	return -1;
}

int parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct {
		const char *unit;
		double mul;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	double num;
	const char *unit;
	if (split_number(s, &num, &unit) < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(unit, units[i].unit) == 0) {
			double v = num * units[i].mul;
			if (v > 9.0e15 || v != (double)(uint64_t)v)
				return -1;
			*out = (uint64_t)v;
			return 0;
		}
	return -1;
}

/* --- strmap --- */

static const char strmap_gone_mark;
#define STRMAP_GONE (&strmap_gone_mark)

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

void strmap_init(struct strmap *m) { memset(m, 0, sizeof *m); }

void strmap_fini(struct strmap *m)
{
	free(m->slots);
	strmap_init(m);
}

/* The slot holding `key`, or the first free one on its probe path. */
static struct strmap_slot *probe(const struct strmap *m, const char *key, int for_insert)
{
	struct strmap_slot *tomb = NULL;
	size_t mask = m->cap - 1;
	for (size_t i = fnv1a(key) & mask;; i = (i + 1) & mask) {
		struct strmap_slot *sl = &m->slots[i];
		if (!sl->key)
			return for_insert && tomb ? tomb : sl;
		if (sl->key == STRMAP_GONE) {
			if (!tomb)
				tomb = sl;
		} else if (strcmp(sl->key, key) == 0) {
			return sl;
		}
	}
}

static void grow(struct strmap *m)
{
	struct strmap old = *m;
	m->cap = old.cap ? old.cap * 2 : 16;
	while (m->cap < 2 * (old.live + 1))
		m->cap *= 2;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	m->used = m->live = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key && old.slots[i].key != STRMAP_GONE)
			strmap_put(m, old.slots[i].key, old.slots[i].value);
	free(old.slots);
}

void *strmap_get(const struct strmap *m, const char *key)
{
	if (!m->cap || !key)
		return NULL;
	struct strmap_slot *sl = probe(m, key, 0);
	return sl->key ? sl->value : NULL;
}

void strmap_put(struct strmap *m, const char *key, void *value)
{
	if ((m->used + 1) * 4 > m->cap * 3)
		grow(m);
	struct strmap_slot *sl = probe(m, key, 1);
	if (!sl->key || sl->key == STRMAP_GONE) {
		if (!sl->key)
			m->used++;
		m->live++;
	}
	sl->key = key;
	sl->value = value;
}

void *strmap_del(struct strmap *m, const char *key)
{
	if (!m->cap || !key)
		return NULL;
	struct strmap_slot *sl = probe(m, key, 0);
	if (!sl->key)
		return NULL;
	void *v = sl->value;
	sl->key = STRMAP_GONE;
	sl->value = NULL;
	m->live--;
	return v;
}
