/* util: allocation that aborts on OOM, cleanup attributes, small string and
 * file helpers shared by every module. */
#ifndef COCOD_UTIL_H
#define COCOD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void cleanup_freep(void *p) { free(*(void **)p); }
static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

/* Growable byte buffer; `data` is always NUL-terminated. */
struct buf {
	char *data;
	size_t len, cap;
};
void buf_init(struct buf *b);
void buf_fini(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hands the contents to the caller (who frees them) and resets `b`. */
char *buf_steal(struct buf *b, size_t *len);

/* A string-keyed index (open addressing, FNV-1a): maps a key to a value
 * pointer.  Keys are borrowed: they must live as long as their entry
 * (typically the key is a field of the value).  Loop-thread data only. */
struct strmap {
	struct strmap_slot {
		const char *key; /* NULL: empty; STRMAP_GONE: deleted */
		void *value;
	} *slots;
	size_t cap, used, live;
};
void strmap_init(struct strmap *m);
void strmap_fini(struct strmap *m);
void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces. */
void strmap_put(struct strmap *m, const char *key, void *value);
/* Removes; returns the value that was there, or NULL. */
void *strmap_del(struct strmap *m, const char *key);

/* Reads a whole file (at most `max` bytes) into a NUL-terminated buffer. */
int file_read(const char *path, size_t max, char **out, size_t *len, struct err *e);
/* Writes a file atomically (temp file + fsync + rename) with `mode`. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e);
/* mkdir -p with `mode` for the directories it creates. */
int mkdir_p(const char *path, mode_t mode, struct err *e);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Lowercase hex of `n` bytes into `out` (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Constant-time comparison of two equal-length buffers; 1 when equal. */
int ct_equal(const void *a, const void *b, size_t n);

/* Parses sizes like "4MiB", "16KiB", "512", "1G" (1000-based for k/M/G,
 * 1024-based for Ki/Mi/Gi) and durations like "10s", "500ms", "2m", "1h". */
int parse_size(const char *s, uint64_t *out);
int parse_duration_ms(const char *s, uint64_t *out);

#endif
