/* images: see images.h.  The file reads top to bottom as the data flows:
 * a byte source (plain or gzip), the strict tar reader on top of it, the
 * import staging area (every regular file of the archive is streamed into
 * <data-dir>/images/tmp/import-<pid>-XXXXXX while its SHA-256 is computed),
 * the two archive formats (OCI layout, docker save) that turn staged files
 * into pending images, the commit (blobs renamed into place and rows
 * written inside one BEGIN IMMEDIATE transaction, then garbage collection
 * in the same transaction), the queries (list, inspect, resolve, remove),
 * reference parsing, and the reproducible default busybox image.
 *
 * Concurrency between processes: blob files are only created or deleted
 * while the store's write lock is held, so an import in one process can
 * never lose a blob to a garbage collection in another.  Blob files are
 * replaced by rename, so a reader that already opened one keeps its bytes. */
#include "images.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "util.h"

#define IO_CHUNK          65536
#define MAX_ARCHIVE_BYTES (64ull << 30) /* uncompressed archive */
#define MAX_ENTRIES       100000
#define MAX_JSON_BYTES    (8u << 20) /* index, manifest, config */
#define MAX_META_BYTES    (1u << 20) /* one pax or GNU long-name record */
#define MAX_NAME          4096
#define MAX_LINK_HOPS     8
#define MAX_INDEX_DEPTH   4
#define GZ_RATIO_FLOOR    (16ull << 20) /* ratio cap applies beyond this output */
#define GZ_MAX_RATIO      1000
#define DEFAULT_META_KEY  "images.default"
#define BUSYBOX_PATH      "/bin/busybox"

#define MT_OCI_INDEX        "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST     "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG       "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER        "application/vnd.oci.image.layer.v1.tar"
#define MT_DOCKER_LIST      "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST  "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG    "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER     "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define ANN_REF_NAME        "org.opencontainers.image.ref.name"
#define ANN_CONTAINERD_NAME "io.containerd.image.name"

struct images {
	store *st;
	char *root;    /* <data-dir>/images */
	char *blobdir; /* root/blobs/sha256 */
	char *tmpdir;  /* root/tmp */
};

const char *images_blob_dir(const images *im)
{
	return im->blobdir;
}

/* ------------------------------------------------------------------ */
/* SHA-256 helpers                                                     */

static EVP_MD_CTX *hash_new(void)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
		abort();
	return c;
}

/* Finishes `c` (and frees it) into 64 lowercase hex digits. */
static void hash_done(EVP_MD_CTX *c, char hex[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_DigestFinal_ex(c, md, &n);
	EVP_MD_CTX_free(c);
	hex_encode(md, 32, hex);
}

static void sha256_hex(const void *p, size_t n, char hex[65])
{
	EVP_MD_CTX *c = hash_new();
	EVP_DigestUpdate(c, p, n);
	hash_done(c, hex);
}

static int is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

/* "sha256:<64 lowercase hex>" → hex; 0 or -1. */
static int digest_hex(const char *digest, char hex[65])
{
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || !is_hex64(digest + 7))
		return -1;
	memcpy(hex, digest + 7, 65);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Byte source: a file, transparently gunzipped when it starts 1f 8b    */

struct src {
	int fd;
	int gz, zend;
	z_stream z;
	unsigned char in[IO_CHUNK];
	uint64_t out_total, in_total;
	const char *path;
};

static int src_open(struct src *s, const char *path, struct err *e)
{
	struct stat st;
	unsigned char magic[2] = {0, 0};
	memset(s, 0, sizeof *s);
	s->path = path;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0)
		return err_set(e, errno == ENOENT ? ERR_NOT_FOUND : ERR_IO, "open %s: %s", path,
		               strerror(errno));
	if (fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(s->fd);
		s->fd = -1;
		return err_set(e, ERR_INVALID, "%s is not a regular file", path);
	}
	if (pread(s->fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
		s->gz = 1;
		if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
			abort();
	}
	return 0;
}

static void src_close(struct src *s)
{
	if (s->gz)
		inflateEnd(&s->z);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->gz = 0;
}

static int read_some(int fd, void *buf, size_t n, size_t *got, const char *path, struct err *e)
{
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return err_set(e, ERR_IO, "read %s: %s", path, strerror(errno));
	*got = (size_t)r;
	return 0;
}

/* One inflate step into buf; *got may be 0 only at the end of the data. */
static int gz_read(struct src *s, unsigned char *buf, size_t n, size_t *got, struct err *e)
{
	*got = 0;
	while (*got == 0 && !s->zend) {
		if (s->z.avail_in == 0) {
			size_t r = 0;
			if (read_some(s->fd, s->in, sizeof s->in, &r, s->path, e))
				return e->code;
			if (r == 0)
				return err_set(e, ERR_INVALID, "%s: truncated gzip data", s->path);
			s->in_total += r;
			s->z.next_in = s->in;
			s->z.avail_in = (uInt)r;
		}
		s->z.next_out = buf;
		s->z.avail_out = (uInt)n;
		int rc = inflate(&s->z, Z_NO_FLUSH);
		*got = n - s->z.avail_out;
		if (rc == Z_STREAM_END)
			s->zend = 1; /* trailing bytes (padding, more members) are ignored */
		else if (rc != Z_OK && rc != Z_BUF_ERROR)
			return err_set(e, ERR_INVALID, "%s: corrupt gzip data (%s)", s->path,
			               s->z.msg ? s->z.msg : "inflate failed");
	}
	return 0;
}

/* Reads up to n bytes (fewer only at the end), enforcing the size and
 * decompression-ratio caps. */
static int src_read(struct src *s, void *buf, size_t n, size_t *got, struct err *e)
{
	size_t have = 0, r = 0;
	while (have < n) {
		size_t want = n - have > IO_CHUNK ? IO_CHUNK : n - have;
		if (s->gz ? gz_read(s, (unsigned char *)buf + have, want, &r, e)
		          : read_some(s->fd, (char *)buf + have, want, &r, s->path, e))
			return e->code;
		if (r == 0)
			break;
		have += r;
		s->out_total += r;
	}
	*got = have;
	if (s->out_total > MAX_ARCHIVE_BYTES)
		return err_set(e, ERR_TOO_LARGE, "%s: more than %llu bytes of archive data",
		               s->path, MAX_ARCHIVE_BYTES);
	if (s->gz && s->out_total > GZ_RATIO_FLOOR &&
	    s->out_total / (s->in_total + 1) > GZ_MAX_RATIO)
		return err_set(e, ERR_INVALID, "%s: gzip data expands more than %d:1", s->path,
		               GZ_MAX_RATIO);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Strict tar reader                                                   */

enum { T_FILE = 'f', T_DIR = 'd', T_SYMLINK = 's', T_HARDLINK = 'h' };

struct tar_entry {
	char *name; /* cleaned: no leading "./" or "/", no "." or ".." parts; "" = root */
	char *link; /* symlink target as written; hard link target cleaned */
	int type;
	uint64_t size;
};

struct tar {
	struct src *src;
	uint64_t left, pad, offset;
	unsigned entries;
};

static void tar_entry_fini(struct tar_entry *t)
{
	free(t->name);
	free(t->link);
	memset(t, 0, sizeof *t);
}

static int tar_read_full(struct tar *t, void *buf, size_t n, struct err *e)
{
	size_t got;
	if (src_read(t->src, buf, n, &got, e))
		return e->code;
	if (got != n)
		return err_set(e, ERR_INVALID, "truncated archive at offset %" PRIu64,
		               t->offset + got);
	t->offset += n;
	return 0;
}

static int tar_skip(struct tar *t, uint64_t n, struct err *e)
{
	unsigned char buf[8192];
	while (n > 0) {
		size_t k = n > sizeof buf ? sizeof buf : (size_t)n;
		if (tar_read_full(t, buf, k, e))
			return e->code;
		n -= k;
	}
	return 0;
}

/* A numeric field: octal (NUL/space terminated) or GNU base-256. */
static int tar_number(const unsigned char *f, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	if (f[0] & 0x80) {
		if (f[0] != 0x80)
			return -1; /* negative or absurdly large */
		for (i = 1; i < len; i++) {
			if (v >> 55)
				return -1;
			v = (v << 8) | f[i];
		}
		*out = v;
		return 0;
	}
	while (i < len && f[i] == ' ')
		i++;
	size_t start = i;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	if (i == start && i < len && f[i] != '\0')
		return -1;
	for (; i < len; i++)
		if (f[i] != '\0' && f[i] != ' ')
			return -1;
	*out = v;
	return 0;
}

static int tar_checksum_ok(const unsigned char *h)
{
	uint64_t want;
	unsigned long sum = 0;
	long ssum = 0;
	if (tar_number(h + 148, 8, &want) < 0)
		return 0;
	for (int i = 0; i < 512; i++) {
		unsigned char c = (i >= 148 && i < 156) ? ' ' : h[i];
		sum += c;
		ssum += (signed char)c;
	}
	return want == sum || (long)want == ssum;
}

/* Cleans an archive path; refuses absolute paths, "..", NULs and overlong
 * names.  "" is the root. */
static int clean_path(const char *raw, size_t len, char **out, struct err *e)
{
	if (len > MAX_NAME)
		return err_set(e, ERR_INVALID, "archive entry name longer than %d bytes", MAX_NAME);
	if (memchr(raw, '\0', len))
		return err_set(e, ERR_INVALID, "archive entry name contains a NUL byte");
	if (len > 0 && raw[0] == '/')
		return err_set(e, ERR_INVALID, "archive entry %.*s is an absolute path", (int)len,
		               raw);
	struct buf b;
	buf_init(&b);
	buf_adds(&b, "");
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && raw[j] != '/')
			j++;
		size_t n = j - i;
		if (n == 2 && raw[i] == '.' && raw[i + 1] == '.') {
			buf_fini(&b);
			return err_set(e, ERR_INVALID,
			               "archive entry %.*s escapes the archive (..)", (int)len,
			               raw);
		}
		if (n > 0 && !(n == 1 && raw[i] == '.')) {
			if (b.len)
				buf_add(&b, "/", 1);
			buf_add(&b, raw + i, n);
		}
		i = j + 1;
	}
	*out = buf_steal(&b, NULL);
	return 0;
}

/* The pending overrides of pax ('x') and GNU ('L', 'K') records. */
struct tar_ext {
	char *path, *link;
	size_t pathlen, linklen;
	int has_size;
	uint64_t size;
};

static void tar_ext_fini(struct tar_ext *x)
{
	free(x->path);
	free(x->link);
	memset(x, 0, sizeof *x);
}

static int tar_read_meta(struct tar *t, uint64_t size, char **out, struct err *e)
{
	if (size > MAX_META_BYTES)
		return err_set(e, ERR_INVALID, "archive extended header of %" PRIu64 " bytes",
		               size);
	char *p = xmalloc((size_t)size + 1);
	if (tar_read_full(t, p, (size_t)size, e) || tar_skip(t, (512 - size % 512) % 512, e)) {
		free(p);
		return e->code;
	}
	p[size] = '\0';
	*out = p;
	return 0;
}

static void set_str(char **dst, size_t *dstlen, const char *v, size_t n)
{
	free(*dst);
	*dst = xmalloc(n + 1);
	memcpy(*dst, v, n);
	(*dst)[n] = '\0';
	*dstlen = n;
}

/* pax records: "<len> <key>=<value>\n", len counting the whole record. */
static int pax_parse(const char *p, size_t n, struct tar_ext *x, struct err *e)
{
	size_t i = 0;
	while (i < n) {
		char *end;
		unsigned long rec = strtoul(p + i, &end, 10);
		if (end == p + i || *end != ' ' || rec == 0 || rec > n - i ||
		    p[i + rec - 1] != '\n')
			return err_set(e, ERR_INVALID, "malformed pax header record");
		const char *kv = end + 1, *stop = p + i + rec - 1;
		const char *eq = memchr(kv, '=', (size_t)(stop - kv));
		if (!eq)
			return err_set(e, ERR_INVALID, "malformed pax header record");
		size_t klen = (size_t)(eq - kv), vlen = (size_t)(stop - eq - 1);
		if (klen == 4 && memcmp(kv, "path", 4) == 0)
			set_str(&x->path, &x->pathlen, eq + 1, vlen);
		else if (klen == 8 && memcmp(kv, "linkpath", 8) == 0)
			set_str(&x->link, &x->linklen, eq + 1, vlen);
		else if (klen == 4 && memcmp(kv, "size", 4) == 0) {
			char num[32];
			if (vlen == 0 || vlen >= sizeof num)
				return err_set(e, ERR_INVALID, "malformed pax size");
			memcpy(num, eq + 1, vlen);
			num[vlen] = '\0';
			unsigned long long v = strtoull(num, &end, 10);
			if (*end || num[0] == '-')
				return err_set(e, ERR_INVALID, "malformed pax size");
			x->has_size = 1;
			x->size = v;
		}
		i += rec;
	}
	return 0;
}

/* Handles one 'x', 'g', 'L' or 'K' record into `x`. */
static int tar_extension(struct tar *t, int type, uint64_t size, struct tar_ext *x, struct err *e)
{
	char *p = NULL;
	if (tar_read_meta(t, size, &p, e))
		return e->code;
	int rc = 0;
	if (type == 'x')
		rc = pax_parse(p, (size_t)size, x, e);
	else if (type == 'L' || type == 'K')
		set_str(type == 'L' ? &x->path : &x->link, type == 'L' ? &x->pathlen : &x->linklen,
		        p, strnlen(p, (size_t)size));
	free(p); /* 'g' (global pax) carries nothing cocod uses */
	return rc;
}

static int tar_type(int flag, const char *name, struct err *e)
{
	switch (flag) {
	case '0':
	case '\0':
	case '7':
		return T_FILE;
	case '5':
		return T_DIR;
	case '2':
		return T_SYMLINK;
	case '1':
		return T_HARDLINK;
	default:
		return err_set(
		    e, ERR_INVALID,
		    "archive entry %s has type '%c': only files, directories and links are allowed",
		    name, flag >= 32 && flag < 127 ? flag : '?');
	}
}

/* A string field of at most `len` bytes, NUL-terminated or full. */
static size_t field_len(const unsigned char *f, size_t len)
{
	return strnlen((const char *)f, len);
}

/* Fills `ent` from header `h` and the pending extensions. */
static int tar_fill(const unsigned char *h, struct tar_ext *x, uint64_t size, struct tar_entry *ent,
                    struct err *e)
{
	char raw[256 + 2];
	const char *name = x->path;
	size_t nlen = x->pathlen;
	if (!name) {
		size_t pl = memcmp(h + 257, "ustar\0", 6) == 0 ? field_len(h + 345, 155) : 0;
		size_t bl = field_len(h, 100);
		nlen = 0;
		if (pl) {
			memcpy(raw, h + 345, pl);
			raw[pl] = '/';
			nlen = pl + 1;
		}
		memcpy(raw + nlen, h, bl);
		nlen += bl;
		name = raw;
	}
	if (clean_path(name, nlen, &ent->name, e))
		return e->code;
	int type = tar_type(h[156], ent->name, e);
	if (type < 0)
		return type;
	ent->type = type;
	ent->size = x->has_size ? x->size : size;
	if (type == T_SYMLINK || type == T_HARDLINK) {
		const char *l = x->link ? x->link : (const char *)h + 157;
		size_t ll = x->link ? x->linklen : field_len(h + 157, 100);
		if (ll == 0 || memchr(l, '\0', ll))
			return err_set(e, ERR_INVALID,
			               "archive link %s has an empty or invalid target", ent->name);
		if (type == T_HARDLINK)
			return clean_path(l, ll, &ent->link, e);
		ent->link = xstrndup(l, ll);
	}
	return 0;
}

static int all_zero(const unsigned char *h)
{
	for (int i = 0; i < 512; i++)
		if (h[i])
			return 0;
	return 1;
}

/* Reads one 512-byte header; *end = 1 at the end of the archive (zero
 * block, or a clean EOF at a header boundary). */
static int tar_header(struct tar *t, unsigned char *h, int *end, struct err *e)
{
	size_t got;
	*end = 0;
	if (src_read(t->src, h, 512, &got, e))
		return e->code;
	if (got == 0 || (got == 512 && all_zero(h))) {
		*end = 1;
		return 0;
	}
	if (got != 512)
		return err_set(e, ERR_INVALID, "truncated archive header at offset %" PRIu64,
		               t->offset);
	if (!tar_checksum_ok(h))
		return err_set(
		    e, ERR_INVALID,
		    "not a tar archive, or a corrupt header (bad checksum) at offset %" PRIu64,
		    t->offset);
	if (memcmp(h + 257, "ustar\0", 6) != 0 && memcmp(h + 257, "ustar  \0", 8) != 0)
		return err_set(e, ERR_INVALID,
		               "unsupported tar format at offset %" PRIu64
		               " (want ustar, pax or GNU)",
		               t->offset);
	t->offset += 512;
	return 0;
}

/* The next entry: 1, 0 at the end of the archive, or a negative error. */
static int tar_next(struct tar *t, struct tar_entry *ent, struct err *e)
{
	struct tar_ext x = {0};
	unsigned char h[512];
	int end, rc = 0;
	memset(ent, 0, sizeof *ent);
	if (tar_skip(t, t->left + t->pad, e))
		return e->code;
	t->left = t->pad = 0;
	for (int meta = 0;; meta++) {
		uint64_t size;
		if (meta > 8) {
			rc = err_set(e, ERR_INVALID, "too many extended headers in a row");
			break;
		}
		if ((rc = tar_header(t, h, &end, e)) || end)
			break;
		if (tar_number(h + 124, 12, &size) < 0) {
			rc = err_set(e, ERR_INVALID, "bad size field at offset %" PRIu64,
			             t->offset - 512);
			break;
		}
		if (strchr("xgLK", h[156]) && h[156]) {
			if ((rc = tar_extension(t, h[156], size, &x, e)))
				break;
			continue;
		}
		if (++t->entries > MAX_ENTRIES) {
			rc = err_set(e, ERR_INVALID, "more than %d archive entries", MAX_ENTRIES);
			break;
		}
		if ((rc = tar_fill(h, &x, size, ent, e)))
			break;
		/* Links and directories carry no data, whatever size says (as
		 * Go's archive/tar, which writes most image archives, reads it). */
		t->left = ent->type == T_FILE ? ent->size : 0;
		if (ent->type != T_FILE)
			ent->size = 0;
		t->pad = (512 - t->left % 512) % 512;
		tar_ext_fini(&x);
		return 1;
	}
	tar_ext_fini(&x);
	tar_entry_fini(ent);
	return rc;
}

/* Reads up to n bytes of the current entry's data. */
static int tar_data(struct tar *t, void *buf, size_t n, size_t *got, struct err *e)
{
	*got = n > t->left ? (size_t)t->left : n;
	if (*got && tar_read_full(t, buf, *got, e))
		return e->code;
	t->left -= *got;
	return 0;
}

static const char *type_name(int type)
{
	switch (type) {
	case T_FILE:
		return "file";
	case T_DIR:
		return "dir";
	case T_SYMLINK:
		return "symlink";
	default:
		return "hardlink";
	}
}

int images_tar_scan(const char *path, json_t **out, struct err *e)
{
	struct src s;
	struct tar t = {.src = &s};
	struct tar_entry ent;
	int rc;
	if (src_open(&s, path, e))
		return e->code;
	json_t *list = json_array();
	while ((rc = tar_next(&t, &ent, e)) > 0) {
		json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:s?}", "name", ent.name,
		                                      "type", type_name(ent.type), "size",
		                                      (json_int_t)ent.size, "link", ent.link));
		tar_entry_fini(&ent);
	}
	src_close(&s);
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Import staging                                                      */

struct staged {
	char *name; /* archive path; NULL for generated content */
	char *link;
	int type;
	int idx; /* staging file number, -1 for links */
	uint64_t size;
	char hex[65];
	int placed;
};

struct pending {
	struct images_ref ref;
	char manifest[IMAGES_DIGEST_LEN + 1];
	char config[IMAGES_DIGEST_LEN + 1];
	const char *manifest_type;
	uint64_t size;
	size_t *blobs; /* indexes into import.v: manifest, config, layers */
	size_t nblobs;
};

struct import {
	images *im;
	char *stage;
	struct staged *v;
	size_t n, cap;
	struct strmap byname;
	int next_idx;
	const char *default_name;
	struct pending *p;
	size_t np;
};

static int import_init(struct import *imp, images *im, struct err *e)
{
	memset(imp, 0, sizeof *imp);
	imp->im = im;
	strmap_init(&imp->byname);
	imp->stage = xasprintf("%s/import-%ld-XXXXXX", im->tmpdir, (long)getpid());
	if (!mkdtemp(imp->stage))
		return err_set(e, ERR_IO, "mkdtemp %s: %s", imp->stage, strerror(errno));
	return 0;
}

/* Removes a flat directory of staging files. */
static void remove_flat_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	rmdir(dir);
}

static void import_fini(struct import *imp)
{
	if (imp->stage)
		remove_flat_dir(imp->stage);
	free(imp->stage);
	for (size_t i = 0; i < imp->n; i++) {
		free(imp->v[i].name);
		free(imp->v[i].link);
	}
	free(imp->v);
	for (size_t i = 0; i < imp->np; i++)
		free(imp->p[i].blobs);
	free(imp->p);
	strmap_fini(&imp->byname);
}

static size_t staged_add(struct import *imp)
{
	if (imp->n == imp->cap) {
		imp->cap = imp->cap ? imp->cap * 2 : 64;
		imp->v = xrealloc(imp->v, imp->cap * sizeof *imp->v);
	}
	memset(&imp->v[imp->n], 0, sizeof imp->v[0]);
	imp->v[imp->n].idx = -1;
	return imp->n++;
}

static char *stage_path(const struct import *imp, const struct staged *s)
{
	return xasprintf("%s/%d", imp->stage, s->idx);
}

static int write_all(int fd, const void *p, size_t n, const char *path, struct err *e)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return err_set(e, ERR_IO, "write %s: %s", path, strerror(errno));
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* Creates the next staging file; the caller writes, fsyncs and closes. */
static int stage_create(struct import *imp, struct staged *s, int *fd, struct err *e)
{
	s->idx = imp->next_idx++;
	cleanup_free char *path = stage_path(imp, s);
	*fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*fd < 0)
		return err_set(e, ERR_IO, "create %s: %s", path, strerror(errno));
	return 0;
}

static int stage_finish(int fd, const char *what, struct err *e)
{
	int rc = fsync(fd) < 0 ? err_set(e, ERR_IO, "fsync %s: %s", what, strerror(errno)) : 0;
	close(fd);
	return rc;
}

/* Stages bytes produced by cocod itself (a converted manifest). */
static int stage_bytes(struct import *imp, const void *data, size_t len, size_t *out, struct err *e)
{
	size_t i = staged_add(imp);
	struct staged *s = &imp->v[i];
	int fd;
	s->type = T_FILE;
	s->size = len;
	sha256_hex(data, len, s->hex);
	if (stage_create(imp, s, &fd, e))
		return e->code;
	if (write_all(fd, data, len, "staged blob", e)) {
		close(fd);
		return e->code;
	}
	*out = i;
	return stage_finish(fd, "staged blob", e);
}

/* Streams the data of a regular file entry into a staging file. */
static int stage_file(struct import *imp, struct tar *t, struct staged *s, struct err *e)
{
	int fd;
	unsigned char *buf = xmalloc(IO_CHUNK);
	EVP_MD_CTX *h = hash_new();
	int rc = stage_create(imp, s, &fd, e);
	while (rc == 0) {
		size_t got;
		if ((rc = tar_data(t, buf, IO_CHUNK, &got, e)) || got == 0)
			break;
		EVP_DigestUpdate(h, buf, got);
		rc = write_all(fd, buf, got, s->name, e);
	}
	hash_done(h, s->hex);
	free(buf);
	if (fd >= 0)
		rc = rc ? (close(fd), rc) : stage_finish(fd, s->name, e);
	return rc;
}

/* Reads the whole archive into the staging area. */
static int stage_archive(struct import *imp, const char *path, struct err *e)
{
	struct src s;
	struct tar t = {.src = &s};
	struct tar_entry ent;
	int rc;
	if (src_open(&s, path, e))
		return e->code;
	while ((rc = tar_next(&t, &ent, e)) > 0) {
		if (ent.type == T_DIR) {
			tar_entry_fini(&ent);
			continue;
		}
		if (ent.name[0] == '\0' || strmap_get(&imp->byname, ent.name)) {
			rc = err_set(e, ERR_INVALID, "archive entry \"%s\" is %s", ent.name,
			             ent.name[0] ? "duplicated" : "the root but not a directory");
			tar_entry_fini(&ent);
			break;
		}
		size_t i = staged_add(imp);
		struct staged *st = &imp->v[i];
		st->name = ent.name;
		st->link = ent.link;
		st->type = ent.type;
		st->size = ent.size;
		ent.name = ent.link = NULL;
		strmap_put(&imp->byname, st->name, (void *)(uintptr_t)(i + 1));
		if (st->type == T_FILE && (rc = stage_file(imp, &t, st, e)))
			break;
	}
	src_close(&s);
	return rc < 0 ? err_wrap(e, "reading the archive") : 0;
}

/* Joins a symlink target to the directory of `from`, lexically. */
static int link_target(const struct staged *s, char **out, struct err *e)
{
	if (s->type == T_HARDLINK) {
		*out = xstrdup(s->link);
		return 0;
	}
	struct buf b;
	buf_init(&b);
	const char *slash = strrchr(s->name, '/');
	if (s->link[0] != '/' && slash)
		buf_add(&b, s->name, (size_t)(slash - s->name + 1));
	buf_adds(&b, s->link[0] == '/' ? s->link + 1 : s->link);
	/* Fold ".." by hand: clean_path refuses it outright. */
	char *parts[MAX_NAME / 2 + 1];
	size_t np = 0;
	for (char *save = NULL, *c = strtok_r(b.data, "/", &save); c;
	     c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			if (np == 0) {
				buf_fini(&b);
				return err_set(e, ERR_INVALID, "link %s points outside the archive",
				               s->name);
			}
			np--;
			continue;
		}
		if (np < sizeof parts / sizeof parts[0])
			parts[np++] = c;
	}
	struct buf r;
	buf_init(&r);
	buf_adds(&r, "");
	for (size_t i = 0; i < np; i++)
		buf_printf(&r, "%s%s", i ? "/" : "", parts[i]);
	buf_fini(&b);
	*out = buf_steal(&r, NULL);
	return 0;
}

/* The regular file an archive path names, following links inside the
 * archive only. */
static int lookup(struct import *imp, const char *name, size_t *out, struct err *e)
{
	cleanup_free char *cur = xstrdup(name);
	for (int hop = 0; hop <= MAX_LINK_HOPS; hop++) {
		uintptr_t v = (uintptr_t)strmap_get(&imp->byname, cur);
		if (!v)
			return err_set(e, ERR_INVALID, "the archive has no %s%s%s", cur,
			               hop ? " (a link target of " : "", hop ? name : "");
		struct staged *s = &imp->v[v - 1];
		if (s->type == T_FILE) {
			*out = v - 1;
			return 0;
		}
		char *next;
		if (link_target(s, &next, e))
			return e->code;
		free(cur);
		cur = next;
	}
	return err_set(e, ERR_INVALID, "too many links resolving %s in the archive", name);
}

static int read_staged(struct import *imp, size_t i, char **out, size_t *len, struct err *e)
{
	struct staged *s = &imp->v[i];
	if (s->size > MAX_JSON_BYTES)
		return err_set(e, ERR_INVALID, "%s is too large (%" PRIu64 " bytes)",
		               s->name ? s->name : "blob", s->size);
	cleanup_free char *path = stage_path(imp, s);
	return file_read(path, MAX_JSON_BYTES, out, len, e);
}

/* Parses a staged JSON file; `what` names it in errors. */
static int staged_json(struct import *imp, size_t i, const char *what, json_t **out, struct err *e)
{
	char *text;
	size_t len;
	json_error_t je;
	if (read_staged(imp, i, &text, &len, e))
		return e->code;
	*out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	if (!*out || (!json_is_object(*out) && !json_is_array(*out))) {
		json_decref(*out);
		*out = NULL;
		return err_set(e, ERR_INVALID, "%s is not valid JSON: %s", what, je.text);
	}
	return 0;
}

static struct pending *pending_add(struct import *imp, const struct images_ref *ref)
{
	for (size_t i = 0; i < imp->np; i++)
		if (!strcmp(imp->p[i].ref.name, ref->name) &&
		    !strcmp(imp->p[i].ref.tag, ref->tag)) {
			free(imp->p[i].blobs);
			memset(&imp->p[i], 0, sizeof imp->p[i]);
			imp->p[i].ref = *ref;
			return &imp->p[i];
		}
	imp->p = xrealloc(imp->p, (imp->np + 1) * sizeof *imp->p);
	struct pending *p = &imp->p[imp->np++];
	memset(p, 0, sizeof *p);
	p->ref = *ref;
	return p;
}

static void pending_blob(struct pending *p, struct import *imp, size_t i)
{
	p->blobs = xrealloc(p->blobs, (p->nblobs + 1) * sizeof *p->blobs);
	p->blobs[p->nblobs++] = i;
	p->size += imp->v[i].size;
}

/* ------------------------------------------------------------------ */
/* OCI image layout                                                    */

struct image_doc {
	size_t manifest, config; /* staged indexes */
	size_t *layers;
	size_t nlayers;
	const char *manifest_type;
	char manifest_digest[IMAGES_DIGEST_LEN + 1];
};

/* The staged blob a descriptor names, with its digest and size checked. */
static int oci_blob(struct import *imp, const json_t *desc, const char *what, size_t *out,
                    struct err *e)
{
	const char *digest = json_string_value(json_object_get(desc, "digest"));
	const json_t *size = json_object_get(desc, "size");
	char hex[65];
	if (digest_hex(digest, hex) < 0)
		return err_set(e, ERR_INVALID, "%s: unsupported or malformed digest %s", what,
		               digest ? digest : "(missing)");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return err_set(e, ERR_INVALID, "%s %s: descriptor has no valid size", what, digest);
	cleanup_free char *name = xasprintf("blobs/sha256/%s", hex);
	if (lookup(imp, name, out, e))
		return err_wrap(e, "%s", what);
	const struct staged *s = &imp->v[*out];
	if (strcmp(s->hex, hex) != 0)
		return err_set(e, ERR_INVALID, "%s %s is corrupt: its content hashes to sha256:%s",
		               what, digest, s->hex);
	if (s->size != (uint64_t)json_integer_value(size))
		return err_set(e, ERR_INVALID,
		               "%s %s: %" PRIu64 " bytes, descriptor says %" JSON_INTEGER_FORMAT,
		               what, digest, s->size, json_integer_value(size));
	return 0;
}

static int is_index_type(const char *mt)
{
	return mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST));
}

static int layer_type_ok(const char *mt)
{
	static const char *const ok[] = {
	    MT_OCI_LAYER,
	    MT_OCI_LAYER "+gzip",
	    MT_OCI_LAYER "+zstd",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	    MT_DOCKER_LAYER,
	};
	for (size_t i = 0; mt && i < sizeof ok / sizeof ok[0]; i++)
		if (!strcmp(mt, ok[i]))
			return 1;
	return 0;
}

static const char *go_arch(void)
{
	static struct utsname u;
	static const char *const map[][2] = {
	    {"x86_64", "amd64"},    {"aarch64", "arm64"}, {"i686", "386"},       {"armv7l", "arm"},
	    {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
	if (uname(&u) == 0)
		for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
			if (!strcmp(u.machine, map[i][0]))
				return map[i][1];
	return "amd64";
}

/* Picks this host's platform from an index's manifests. */
static const json_t *pick_platform(const json_t *manifests, struct err *e)
{
	size_t i;
	const json_t *d;
	json_array_foreach(manifests, i, d)
	{
		const json_t *pl = json_object_get(d, "platform");
		const char *os = json_string_value(json_object_get(pl, "os"));
		const char *arch = json_string_value(json_object_get(pl, "architecture"));
		if (os && arch && !strcmp(os, "linux") && !strcmp(arch, go_arch()))
			return d;
	}
	if (json_array_size(manifests) == 1)
		return json_array_get(manifests, 0);
	err_set(e, ERR_INVALID, "the image index has no linux/%s manifest", go_arch());
	return NULL;
}

static int oci_manifest_doc(struct import *imp, const json_t *desc, const char *mt,
                            struct image_doc *out, struct err *e);

/* Follows a descriptor (nested indexes included) to one image manifest. */
static int oci_descend(struct import *imp, const json_t *desc, int depth, struct image_doc *out,
                       struct err *e)
{
	size_t i;
	json_t *doc;
	const char *mt = json_string_value(json_object_get(desc, "mediaType"));
	if (depth > MAX_INDEX_DEPTH)
		return err_set(e, ERR_INVALID, "image indexes nested too deeply");
	if (oci_blob(imp, desc, "manifest", &i, e) || staged_json(imp, i, "manifest", &doc, e))
		return e->code;
	if (!mt) /* umoci leaves media types out: look at the document */
		mt = json_is_array(json_object_get(doc, "manifests")) ? MT_OCI_INDEX
		                                                      : MT_OCI_MANIFEST;
	int rc;
	if (is_index_type(mt)) {
		const json_t *d = pick_platform(json_object_get(doc, "manifests"), e);
		rc = d ? oci_descend(imp, d, depth + 1, out, e) : e->code;
	} else {
		rc = oci_manifest_doc(imp, desc, mt, out, e);
	}
	json_decref(doc);
	return rc;
}

static int check_layers(struct import *imp, const json_t *layers, struct image_doc *out,
                        struct err *e)
{
	size_t i;
	const json_t *l;
	if (!json_is_array(layers))
		return err_set(e, ERR_INVALID, "manifest has no layers array");
	out->layers = xcalloc(json_array_size(layers) + 1, sizeof *out->layers);
	json_array_foreach(layers, i, l)
	{
		const char *lt = json_string_value(json_object_get(l, "mediaType"));
		if (!layer_type_ok(lt))
			return err_set(e, ERR_INVALID, "layer %zu has unsupported media type %s", i,
			               lt ? lt : "(missing)");
		if (oci_blob(imp, l, "layer", &out->layers[i], e))
			return e->code;
		out->nlayers++;
	}
	return 0;
}

static int oci_manifest_doc(struct import *imp, const json_t *desc, const char *mt,
                            struct image_doc *out, struct err *e)
{
	json_t *doc = NULL, *config = NULL;
	int rc = 0;
	if (strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST))
		return err_set(e, ERR_INVALID, "unsupported manifest media type %s", mt);
	if (oci_blob(imp, desc, "manifest", &out->manifest, e) ||
	    staged_json(imp, out->manifest, "manifest", &doc, e))
		return e->code;
	const char *inner = json_string_value(json_object_get(doc, "mediaType"));
	const json_t *cd = json_object_get(doc, "config");
	const char *ct = json_string_value(json_object_get(cd, "mediaType"));
	if (json_integer_value(json_object_get(doc, "schemaVersion")) != 2)
		rc = err_set(e, ERR_INVALID, "manifest schemaVersion is not 2");
	else if (inner && strcmp(inner, mt))
		rc = err_set(e, ERR_INVALID, "manifest says %s, its descriptor %s", inner, mt);
	else if (!ct || (strcmp(ct, MT_OCI_CONFIG) && strcmp(ct, MT_DOCKER_CONFIG)))
		rc = err_set(e, ERR_INVALID, "unsupported config media type %s",
		             ct ? ct : "(missing)");
	else if (oci_blob(imp, cd, "config", &out->config, e) ||
	         staged_json(imp, out->config, "config", &config, e) ||
	         check_layers(imp, json_object_get(doc, "layers"), out, e))
		rc = e->code;
	else if (json_array_size(json_object_get(json_object_get(config, "rootfs"), "diff_ids")) !=
	         out->nlayers)
		rc = err_set(
		    e, ERR_INVALID, "config lists %zu diff_ids for %zu layers",
		    json_array_size(json_object_get(json_object_get(config, "rootfs"), "diff_ids")),
		    out->nlayers);
	out->manifest_type = !strcmp(mt, MT_OCI_MANIFEST) ? MT_OCI_MANIFEST : MT_DOCKER_MANIFEST;
	snprintf(out->manifest_digest, sizeof out->manifest_digest, "sha256:%s",
	         imp->v[out->manifest].hex);
	json_decref(doc);
	json_decref(config);
	return rc;
}

static void add_image(struct import *imp, const struct images_ref *ref, const struct image_doc *d)
{
	struct pending *p = pending_add(imp, ref);
	snprintf(p->manifest, sizeof p->manifest, "%s", d->manifest_digest);
	snprintf(p->config, sizeof p->config, "sha256:%s", imp->v[d->config].hex);
	p->manifest_type = d->manifest_type;
	pending_blob(p, imp, d->manifest);
	pending_blob(p, imp, d->config);
	for (size_t i = 0; i < d->nlayers; i++)
		pending_blob(p, imp, d->layers[i]);
}

/* The reference an index.json entry is tagged with, or *none = 1. */
static int oci_ref(struct import *imp, const json_t *desc, struct images_ref *ref, int *none,
                   struct err *e)
{
	const json_t *ann = json_object_get(desc, "annotations");
	const char *full = json_string_value(json_object_get(ann, ANN_CONTAINERD_NAME));
	const char *rn = json_string_value(json_object_get(ann, ANN_REF_NAME));
	*none = 0;
	if (full)
		return images_ref_parse(full, ref, e);
	if (!rn) {
		*none = 1;
		return 0;
	}
	if (strpbrk(rn, "/:@"))
		return images_ref_parse(rn, ref, e);
	if (!imp->default_name)
		return err_set(
		    e, ERR_INVALID,
		    "the OCI layout tags an image only as \"%s\" with no repository name: "
		    "give one (cocod image import --name NAME, or ?name= over REST)",
		    rn);
	cleanup_free char *s = xasprintf("%s:%s", imp->default_name, rn);
	return images_ref_parse(s, ref, e);
}

static int import_oci(struct import *imp, struct err *e)
{
	size_t li, ii, i;
	json_t *layout = NULL, *index = NULL;
	const json_t *d;
	int rc = 0;
	if (lookup(imp, "oci-layout", &li, e) || staged_json(imp, li, "oci-layout", &layout, e) ||
	    lookup(imp, "index.json", &ii, e) || staged_json(imp, ii, "index.json", &index, e))
		rc = e->code;
	else if (!json_is_string(json_object_get(layout, "imageLayoutVersion")))
		rc = err_set(e, ERR_INVALID, "oci-layout has no imageLayoutVersion");
	else if (!json_is_array(json_object_get(index, "manifests")))
		rc = err_set(e, ERR_INVALID, "index.json has no manifests array");
	json_array_foreach(json_object_get(index, "manifests"), i, d)
	{
		struct images_ref ref;
		struct image_doc doc = {0};
		int none;
		if (rc || (rc = oci_ref(imp, d, &ref, &none, e)))
			break;
		if (!none && !(rc = oci_descend(imp, d, 0, &doc, e)))
			add_image(imp, &ref, &doc);
		free(doc.layers);
	}
	json_decref(layout);
	json_decref(index);
	if (rc == 0 && imp->np == 0)
		rc = err_set(e, ERR_INVALID, "index.json tags no image (no %s annotation)",
		             ANN_REF_NAME);
	return rc;
}

/* ------------------------------------------------------------------ */
/* docker save archives                                                 */

/* The first bytes of a staged file. */
static void staged_magic(struct import *imp, size_t i, unsigned char m[4])
{
	cleanup_free char *path = stage_path(imp, &imp->v[i]);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	memset(m, 0, 4);
	if (fd >= 0 && pread(fd, m, 4, 0) < 0)
		memset(m, 0, 4);
}

/* The diff ID (sha256 of the uncompressed tar) of a gzip'd staged layer. */
static int gunzip_hash(struct import *imp, size_t i, char hex[65], struct err *e)
{
	cleanup_free char *path = stage_path(imp, &imp->v[i]);
	struct src s;
	unsigned char *buf = xmalloc(IO_CHUNK);
	EVP_MD_CTX *h = hash_new();
	int rc = src_open(&s, path, e);
	while (rc == 0) {
		size_t got;
		if ((rc = src_read(&s, buf, IO_CHUNK, &got, e)) || got == 0)
			break;
		EVP_DigestUpdate(h, buf, got);
	}
	if (rc == 0)
		src_close(&s);
	hash_done(h, hex);
	free(buf);
	return rc;
}

/* Checks a layer against its diff ID and returns its OCI media type. */
static int docker_layer(struct import *imp, size_t i, const char *diff_id, const char **mt,
                        struct err *e)
{
	unsigned char m[4];
	char hex[65], want[65];
	const char *name = imp->v[i].name;
	if (digest_hex(diff_id, want) < 0)
		return err_set(e, ERR_INVALID, "config has a malformed diff_id %s",
		               diff_id ? diff_id : "(missing)");
	staged_magic(imp, i, m);
	if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		return err_set(e, ERR_INVALID,
		               "layer %s is zstd-compressed: not supported in docker-save archives",
		               name);
	if (m[0] == 0x1f && m[1] == 0x8b) {
		*mt = MT_OCI_LAYER "+gzip";
		if (gunzip_hash(imp, i, hex, e))
			return err_wrap(e, "layer %s", name);
	} else {
		*mt = MT_OCI_LAYER;
		memcpy(hex, imp->v[i].hex, 65);
	}
	if (strcmp(hex, want))
		return err_set(
		    e, ERR_INVALID,
		    "layer %s is corrupt: its content hashes to sha256:%s, the config says %s",
		    name, hex, diff_id);
	return 0;
}

/* Files named by digest (blobs/sha256/<hex>, <hex>.json) must match it. */
static int check_named_digest(const struct staged *s, struct err *e)
{
	const char *base = strrchr(s->name, '/');
	base = base ? base + 1 : s->name;
	char hex[65];
	if (strlen(base) < 64)
		return 0;
	memcpy(hex, base, 64);
	hex[64] = '\0';
	if (!is_hex64(hex) || (base[64] && strcmp(base + 64, ".json")))
		return 0;
	if (strcmp(hex, s->hex))
		return err_set(e, ERR_INVALID, "%s is corrupt: its content hashes to sha256:%s",
		               s->name, s->hex);
	return 0;
}

/* Builds the OCI manifest of one manifest.json entry; stages it. */
static int docker_image(struct import *imp, const json_t *ent, struct image_doc *out, struct err *e)
{
	const char *cfg = json_string_value(json_object_get(ent, "Config"));
	const json_t *layers = json_object_get(ent, "Layers"), *l;
	json_t *config = NULL;
	size_t i;
	if (!cfg || !json_is_array(layers))
		return err_set(e, ERR_INVALID, "manifest.json entry needs Config and Layers");
	if (lookup(imp, cfg, &out->config, e) || check_named_digest(&imp->v[out->config], e) ||
	    staged_json(imp, out->config, "config", &config, e))
		return e->code;
	const json_t *diff_ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	int rc = 0;
	if (json_array_size(diff_ids) != json_array_size(layers))
		rc = err_set(e, ERR_INVALID, "config lists %zu diff_ids for %zu layers",
		             json_array_size(diff_ids), json_array_size(layers));
	json_t *descs = json_array();
	out->layers = xcalloc(json_array_size(layers) + 1, sizeof *out->layers);
	json_array_foreach(layers, i, l)
	{
		const char *mt = NULL, *name = json_string_value(l);
		size_t k;
		if (rc || !name || (rc = lookup(imp, name, &k, e)) ||
		    (rc = check_named_digest(&imp->v[k], e)) ||
		    (rc = docker_layer(imp, k, json_string_value(json_array_get(diff_ids, i)), &mt,
		                       e)))
			break;
		out->layers[out->nlayers++] = k;
		json_array_append_new(descs, json_pack("{s:s, s:s+, s:I}", "mediaType", mt,
		                                       "digest", "sha256:", imp->v[k].hex, "size",
		                                       (json_int_t)imp->v[k].size));
	}
	json_decref(config);
	if (rc) {
		json_decref(descs);
		return rc;
	}
	json_t *m = json_pack("{s:i, s:s, s:{s:s, s:s+, s:I}, s:o}", "schemaVersion", 2,
	                      "mediaType", MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG,
	                      "digest", "sha256:", imp->v[out->config].hex, "size",
	                      (json_int_t)imp->v[out->config].size, "layers", descs);
	char *text = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(m);
	rc = stage_bytes(imp, text, strlen(text), &out->manifest, e);
	free(text);
	out->manifest_type = MT_OCI_MANIFEST;
	snprintf(out->manifest_digest, sizeof out->manifest_digest, "sha256:%s",
	         imp->v[out->manifest].hex);
	return rc;
}

static int import_docker(struct import *imp, struct err *e)
{
	size_t mi, i, k;
	json_t *list;
	const json_t *ent, *tag;
	int rc = 0;
	if (lookup(imp, "manifest.json", &mi, e) || staged_json(imp, mi, "manifest.json", &list, e))
		return e->code;
	if (!json_is_array(list))
		rc = err_set(e, ERR_INVALID, "manifest.json is not an array");
	json_array_foreach(list, i, ent)
	{
		struct image_doc doc = {0};
		if (rc || (rc = docker_image(imp, ent, &doc, e))) {
			free(doc.layers);
			break;
		}
		json_array_foreach(json_object_get(ent, "RepoTags"), k, tag)
		{
			struct images_ref ref;
			if ((rc = images_ref_parse(
			         json_string_value(tag) ? json_string_value(tag) : "", &ref, e))) {
				err_wrap(e, "manifest.json RepoTags");
				break;
			}
			add_image(imp, &ref, &doc);
		}
		free(doc.layers);
	}
	json_decref(list);
	if (rc == 0 && imp->np == 0)
		rc = err_set(e, ERR_INVALID, "manifest.json tags no image (RepoTags are empty)");
	return rc;
}

/* ------------------------------------------------------------------ */
/* Commit and garbage collection (inside the store's write lock)         */

static int step_done(images *im, sqlite3_stmt *st, const char *what, struct err *e)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return err_set(e, ERR_DB, "%s: %s", what, sqlite3_errmsg(store_db(im->st)));
	return 0;
}

static int fsync_dir(const char *dir, struct err *e)
{
	cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return err_set(e, ERR_IO, "fsync %s: %s", dir, strerror(errno));
	return 0;
}

/* Renames a staged file into the blob directory.  An existing blob of the
 * same digest is replaced: same bytes, and a damaged copy heals. */
static int place_blob(struct import *imp, size_t i, struct err *e)
{
	struct staged *s = &imp->v[i];
	if (s->placed)
		return 0;
	cleanup_free char *from = stage_path(imp, s);
	cleanup_free char *to = xasprintf("%s/%s", imp->im->blobdir, s->hex);
	if (rename(from, to) < 0)
		return err_set(e, ERR_IO, "rename %s to %s: %s", from, to, strerror(errno));
	s->placed = 1;
	return 0;
}

static int record_blob(struct import *imp, const struct pending *p, size_t i, struct err *e)
{
	images *im = imp->im;
	char digest[IMAGES_DIGEST_LEN + 1];
	snprintf(digest, sizeof digest, "sha256:%s", imp->v[i].hex);
	sqlite3_stmt *a = store_stmt(
	    im->st, "INSERT OR IGNORE INTO image_blobs (digest, size) VALUES (?1, ?2)", e);
	if (!a || place_blob(imp, i, e))
		return e->code;
	sqlite3_bind_text(a, 1, digest, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(a, 2, (sqlite3_int64)imp->v[i].size);
	if (step_done(im, a, "insert blob", e))
		return e->code;
	sqlite3_stmt *b = store_stmt(
	    im->st, "INSERT OR IGNORE INTO image_refs (manifest, blob) VALUES (?1, ?2)", e);
	if (!b)
		return e->code;
	sqlite3_bind_text(b, 1, p->manifest, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(b, 2, digest, -1, SQLITE_TRANSIENT);
	return step_done(im, b, "insert blob reference", e);
}

static int record_image(struct import *imp, const struct pending *p, int64_t now, struct err *e)
{
	for (size_t i = 0; i < p->nblobs; i++)
		if (record_blob(imp, p, p->blobs[i], e))
			return e->code;
	sqlite3_stmt *st =
	    store_stmt(imp->im->st,
	               "INSERT OR REPLACE INTO images (name, tag, manifest_digest, manifest_type, "
	               "config_digest, size, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	               e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, p->ref.name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, p->ref.tag, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, p->manifest, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, p->manifest_type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, p->config, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)p->size);
	sqlite3_bind_int64(st, 7, now);
	return step_done(imp->im, st, "insert image", e);
}

static int blob_known(images *im, const char *hex, int *known, struct err *e)
{
	sqlite3_stmt *st =
	    store_stmt(im->st, "SELECT 1 FROM image_blobs WHERE digest = 'sha256:' || ?1", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return err_set(e, ERR_DB, "blob lookup: %s", sqlite3_errmsg(store_db(im->st)));
	*known = rc == SQLITE_ROW;
	return 0;
}

/* Drops references of manifests no tag names, then blobs nothing
 * references, then any file in the blob directory without a row (left by
 * an import that failed after placing blobs).  Caller holds the lock. */
static int gc_locked(images *im, struct err *e)
{
	if (store_exec(
	        im->st,
	        "DELETE FROM image_refs WHERE manifest NOT IN (SELECT manifest_digest FROM images);"
	        "DELETE FROM image_blobs WHERE digest NOT IN (SELECT blob FROM image_refs);",
	        e))
		return err_wrap(e, "image gc");
	DIR *d = opendir(im->blobdir);
	struct dirent *de;
	int rc = 0, removed = 0;
	if (!d)
		return err_set(e, ERR_IO, "opendir %s: %s", im->blobdir, strerror(errno));
	while (rc == 0 && (de = readdir(d))) {
		int known = 0;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (is_hex64(de->d_name) && (rc = blob_known(im, de->d_name, &known, e)))
			break;
		if (!known && unlinkat(dirfd(d), de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed)
		log_info("images", "gc removed_blobs=%d", removed);
	return rc ? rc : fsync_dir(im->blobdir, e);
}

static void refs_append(json_t *refs, const struct images_ref *r, const char *digest)
{
	char s[512];
	images_ref_format(r, s, sizeof s);
	json_array_append_new(refs, json_pack("{s:s, s:s, s:s, s:s}", "ref", s, "name", r->name,
	                                      "tag", r->tag, "digest", digest));
}

static int import_commit(struct import *imp, json_t *refs, struct err *e)
{
	store *st = imp->im->st;
	int64_t now = (int64_t)time(NULL);
	if (store_begin(st, e))
		return e->code;
	for (size_t i = 0; i < imp->np; i++)
		if (record_image(imp, &imp->p[i], now, e)) {
			store_rollback(st);
			return e->code;
		}
	if (fsync_dir(imp->im->blobdir, e) || gc_locked(imp->im, e) || store_commit(st, e)) {
		store_rollback(st);
		return e->code;
	}
	for (size_t i = 0; i < imp->np; i++) {
		refs_append(refs, &imp->p[i].ref, imp->p[i].manifest);
		log_info("images", "imported ref=%s:%s digest=%s", imp->p[i].ref.name,
		         imp->p[i].ref.tag, imp->p[i].manifest);
	}
	return 0;
}

static int import_run(struct import *imp, const char *path, json_t *refs, struct err *e)
{
	if (stage_archive(imp, path, e))
		return e->code;
	int rc;
	if (strmap_get(&imp->byname, "index.json"))
		rc = import_oci(imp, e);
	else if (strmap_get(&imp->byname, "manifest.json"))
		rc = import_docker(imp, e);
	else
		rc = err_set(e, ERR_INVALID,
		             "neither an OCI image layout (no index.json) nor a docker "
		             "save archive (no manifest.json)");
	return rc ? rc : import_commit(imp, refs, e);
}

/* images_import without the "import PATH" context on errors. */
static int import_path(images *im, const char *path, const char *default_name, json_t **refs_out,
                       struct err *e)
{
	struct import imp;
	struct images_ref dn;
	if (default_name && images_ref_parse(default_name, &dn, e))
		return err_wrap(e, "image name");
	if (import_init(&imp, im, e)) {
		import_fini(&imp);
		return e->code;
	}
	imp.default_name = default_name ? dn.name : NULL;
	json_t *refs = json_array();
	int rc = import_run(&imp, path, refs, e);
	import_fini(&imp);
	if (rc) {
		json_decref(refs);
		return rc;
	}
	if (refs_out)
		*refs_out = refs;
	else
		json_decref(refs);
	return 0;
}

int images_import(images *im, const char *path, const char *default_name, json_t **refs_out,
                  struct err *e)
{
	if (import_path(im, path, default_name, refs_out, e))
		return err_wrap(e, "import %s", path);
	return 0;
}

int images_import_file(images *im, const char *path, json_t **refs_out, struct err *e)
{
	return images_import(im, path, NULL, refs_out, e);
}

int images_import_buffer(images *im, const void *data, size_t len, const char *default_name,
                         json_t **refs_out, struct err *e)
{
	cleanup_free char *path = xasprintf("%s/upload-%ld-XXXXXX", im->tmpdir, (long)getpid());
	int fd = mkstemp(path);
	if (fd < 0)
		return err_set(e, ERR_IO, "mkstemp %s: %s", path, strerror(errno));
	int rc = write_all(fd, data, len, path, e);
	close(fd);
	if (rc == 0 && (rc = import_path(im, path, default_name, refs_out, e)))
		err_wrap(e, "import");
	unlink(path);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Queries                                                             */

static void rfc3339(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

/* A list item from a row of (name, tag, manifest_digest, config_digest,
 * size, created). */
static json_t *row_json(sqlite3_stmt *st)
{
	struct images_ref r = {0};
	char ref[512], when[32];
	snprintf(r.name, sizeof r.name, "%s", col(st, 0));
	snprintf(r.tag, sizeof r.tag, "%s", col(st, 1));
	images_ref_format(&r, ref, sizeof ref);
	rfc3339(sqlite3_column_int64(st, 5), when);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "ref", ref, "name", r.name, "tag",
	                 r.tag, "digest", col(st, 2), "configDigest", col(st, 3), "size",
	                 (json_int_t)sqlite3_column_int64(st, 4), "created", when);
}

int images_list(images *im, json_t **out, struct err *e)
{
	sqlite3_stmt *st =
	    store_stmt(im->st,
	               "SELECT name, tag, manifest_digest, config_digest, size, created "
	               "FROM images ORDER BY name, tag",
	               e);
	if (!st)
		return e->code;
	json_t *items = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(items, row_json(st));
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		json_decref(items);
		return err_set(e, ERR_DB, "list images: %s", sqlite3_errmsg(store_db(im->st)));
	}
	*out = items;
	return 0;
}

static int not_found(const struct images_ref *r, struct err *e)
{
	char s[512];
	images_ref_format(r, s, sizeof s);
	return err_set(
	    e, ERR_NOT_FOUND,
	    "image %s is not in the local image store: import it with `cocod image import FILE` "
	    "(an OCI image layout or docker save archive)",
	    s);
}

/* The row a parsed ref names (the digest wins over a tag); *item may be
 * NULL.  Fills tag (the stored one), manifest digest/type and config. */
static int find_row(images *im, struct images_ref *r, char *mtype, size_t mtlen, json_t **item,
                    struct err *e)
{
	sqlite3_stmt *st = store_stmt(
	    im->st,
	    r->digest[0] ? "SELECT name, tag, manifest_digest, config_digest, size, created, "
	                   "manifest_type FROM images "
	                   "WHERE name = ?1 AND manifest_digest = ?2 ORDER BY tag LIMIT 1"
	                 : "SELECT name, tag, manifest_digest, config_digest, size, created, "
	                   "manifest_type FROM images "
	                   "WHERE name = ?1 AND tag = ?2",
	    e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, r->digest[0] ? r->digest : r->tag, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (!r->digest[0])
			snprintf(r->digest, sizeof r->digest, "%s", col(st, 2));
		snprintf(mtype, mtlen, "%s", col(st, 6));
		if (item)
			*item = row_json(st);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return not_found(r, e);
	if (rc != SQLITE_ROW)
		return err_set(e, ERR_DB, "find image: %s", sqlite3_errmsg(store_db(im->st)));
	return 0;
}

/* Reads a small blob and checks it against its digest. */
static int read_blob(images *im, const char *digest, char **text, size_t *len, char **path,
                     struct err *e)
{
	char hex[65], got[65];
	if (digest_hex(digest, hex) < 0)
		return err_set(e, ERR_IO, "stored digest %s is malformed", digest);
	*path = xasprintf("%s/%s", im->blobdir, hex);
	if (file_read(*path, MAX_JSON_BYTES, text, len, e))
		return err_set(e, ERR_IO, "blob %s: %s", digest, e->msg);
	sha256_hex(*text, *len, got);
	if (strcmp(got, hex))
		return err_set(e, ERR_IO, "blob %s is corrupt on disk (hashes to sha256:%s)",
		               digest, got);
	return 0;
}

static int resolve_layers(images *im, const json_t *layers, struct images_resolved *out,
                          struct err *e)
{
	size_t i;
	const json_t *l;
	out->layers = xcalloc(json_array_size(layers) + 1, sizeof *out->layers);
	json_array_foreach(layers, i, l)
	{
		struct images_layer *dst = &out->layers[i];
		const char *d = json_string_value(json_object_get(l, "digest"));
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		char hex[65];
		struct stat st;
		if (digest_hex(d, hex) < 0 || !mt)
			return err_set(e, ERR_IO, "stored manifest %s has a bad layer %zu",
			               out->manifest_digest, i);
		out->nlayers++;
		snprintf(dst->digest, sizeof dst->digest, "%s", d);
		dst->media_type = xstrdup(mt);
		dst->size = (uint64_t)json_integer_value(json_object_get(l, "size"));
		dst->path = xasprintf("%s/%s", im->blobdir, hex);
		if (stat(dst->path, &st) < 0 || (uint64_t)st.st_size != dst->size)
			return err_set(e, ERR_IO, "layer blob %s is missing or has the wrong size",
			               d);
	}
	return 0;
}

static int resolve_parsed(images *im, struct images_resolved *out, struct err *e)
{
	char mtype[128];
	json_t *m = NULL;
	if (find_row(im, &out->ref, mtype, sizeof mtype, NULL, e))
		return e->code;
	snprintf(out->manifest_digest, sizeof out->manifest_digest, "%s", out->ref.digest);
	out->manifest_media_type = xstrdup(mtype);
	if (read_blob(im, out->manifest_digest, &out->manifest, &out->manifest_len,
	              &out->manifest_path, e))
		return e->code;
	m = json_loadb(out->manifest, out->manifest_len, 0, NULL);
	const char *cd = json_string_value(json_object_get(json_object_get(m, "config"), "digest"));
	int rc = 0;
	if (!cd)
		rc = err_set(e, ERR_IO, "stored manifest %s has no config", out->manifest_digest);
	else {
		snprintf(out->config_digest, sizeof out->config_digest, "%s", cd);
		rc = read_blob(im, cd, &out->config, &out->config_len, &out->config_path, e) ||
		             resolve_layers(im, json_object_get(m, "layers"), out, e)
		         ? e->code
		         : 0;
	}
	json_decref(m);
	return rc;
}

int images_resolve(images *im, const char *ref, struct images_resolved *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	if (images_ref_parse(ref, &out->ref, e))
		return e->code;
	int had_digest = out->ref.digest[0] != '\0';
	int rc = resolve_parsed(im, out, e);
	if (had_digest)
		out->ref.tag[0] = '\0';
	if (rc)
		images_resolved_fini(out);
	return rc;
}

void images_resolved_fini(struct images_resolved *r)
{
	free(r->manifest_media_type);
	free(r->manifest);
	free(r->manifest_path);
	free(r->config);
	free(r->config_path);
	for (size_t i = 0; i < r->nlayers; i++) {
		free(r->layers[i].media_type);
		free(r->layers[i].path);
	}
	free(r->layers);
	memset(r, 0, sizeof *r);
}

/* Every ref naming `digest`. */
static json_t *tags_of(images *im, const char *digest, struct err *e)
{
	sqlite3_stmt *st = store_stmt(
	    im->st, "SELECT name, tag FROM images WHERE manifest_digest = ?1 ORDER BY name, tag",
	    e);
	json_t *tags = json_array();
	if (!st)
		return tags;
	sqlite3_bind_text(st, 1, digest, -1, SQLITE_TRANSIENT);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct images_ref r = {0};
		char s[512];
		snprintf(r.name, sizeof r.name, "%s", col(st, 0));
		snprintf(r.tag, sizeof r.tag, "%s", col(st, 1));
		images_ref_format(&r, s, sizeof s);
		json_array_append_new(tags, json_string(s));
	}
	sqlite3_reset(st);
	return tags;
}

int images_inspect(images *im, const char *ref, json_t **out, struct err *e)
{
	struct images_resolved r;
	json_t *item = NULL;
	char mtype[128];
	if (images_resolve(im, ref, &r, e))
		return e->code;
	struct images_ref pr;
	if (images_ref_parse(ref, &pr, e) || find_row(im, &pr, mtype, sizeof mtype, &item, e)) {
		images_resolved_fini(&r);
		return e->code;
	}
	json_t *layers = json_array();
	for (size_t i = 0; i < r.nlayers; i++)
		json_array_append_new(layers,
		                      json_pack("{s:s, s:s, s:I}", "digest", r.layers[i].digest,
		                                "mediaType", r.layers[i].media_type, "size",
		                                (json_int_t)r.layers[i].size));
	json_object_set_new(item, "mediaType", json_string(r.manifest_media_type));
	json_object_set_new(item, "config", json_loadb(r.config, r.config_len, 0, NULL));
	json_object_set_new(item, "layers", layers);
	json_object_set_new(item, "tags", tags_of(im, r.manifest_digest, e));
	images_resolved_fini(&r);
	*out = item;
	return 0;
}

static int remove_locked(images *im, const struct images_ref *r, json_t *removed, struct err *e)
{
	char digest[IMAGES_DIGEST_LEN + 1] = "";
	struct images_ref q = *r;
	char mtype[128];
	json_t *tags;
	if (find_row(im, &q, mtype, sizeof mtype, NULL, e))
		return e->code;
	snprintf(digest, sizeof digest, "%s", q.digest);
	sqlite3_stmt *st =
	    store_stmt(im->st,
	               r->digest[0] ? "DELETE FROM images WHERE name = ?1 AND manifest_digest = ?2"
	                            : "DELETE FROM images WHERE name = ?1 AND tag = ?2",
	               e);
	if (!st)
		return e->code;
	tags = tags_of(im, digest, e);
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, r->digest[0] ? r->digest : r->tag, -1, SQLITE_TRANSIENT);
	int rc = step_done(im, st, "delete image", e);
	size_t i;
	json_t *t;
	json_array_foreach(tags, i, t)
	{
		struct images_ref tr;
		struct err ignored;
		if (images_ref_parse(json_string_value(t), &tr, &ignored) == 0 &&
		    !strcmp(tr.name, r->name) && (r->digest[0] || !strcmp(tr.tag, r->tag)))
			json_array_append_new(removed,
			                      json_pack("{s:O, s:s}", "ref", t, "digest", digest));
	}
	json_decref(tags);
	return rc ? rc : gc_locked(im, e);
}

int images_remove(images *im, const char *ref, json_t **removed, struct err *e)
{
	struct images_ref r;
	if (images_ref_parse(ref, &r, e))
		return e->code;
	json_t *list = json_array();
	if (store_begin(im->st, e) || remove_locked(im, &r, list, e) || store_commit(im->st, e)) {
		store_rollback(im->st);
		json_decref(list);
		return e->code;
	}
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	    log_info("images", "removed ref=%s", json_string_value(json_object_get(v, "ref")));
	if (removed)
		*removed = list;
	else
		json_decref(list);
	return 0;
}

/* ------------------------------------------------------------------ */
/* References                                                          */

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int path_component_ok(const char *s, size_t n)
{
	size_t i = 0;
	for (;;) {
		size_t start = i;
		while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			i++;
		if (i == start)
			return 0;
		if (i == n)
			return 1;
		if (s[i] == '.')
			i++;
		else if (s[i] == '_')
			i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		else if (s[i] == '-')
			while (i < n && s[i] == '-')
				i++;
		else
			return 0;
	}
}

/* host[:port]: labels of letters, digits and '-', separated by dots. */
static int domain_ok(const char *s)
{
	const char *colon = strchr(s, ':');
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	if (hl == 0 || s[0] == '.' || s[0] == '-' || s[hl - 1] == '.' || s[hl - 1] == '-')
		return 0;
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
			return 0;
	if (colon) {
		size_t pl = strlen(colon + 1);
		if (pl == 0 || pl > 5 || strspn(colon + 1, "0123456789") != pl)
			return 0;
	}
	return 1;
}

static int tag_ok(const char *t)
{
	size_t n = strlen(t);
	if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && !strchr("._-", t[i]))
			return 0;
	return 1;
}

static int is_domain(const char *first, size_t n)
{
	if (n == 9 && !memcmp(first, "localhost", 9))
		return 1;
	for (size_t i = 0; i < n; i++)
		if (first[i] == '.' || first[i] == ':' || (first[i] >= 'A' && first[i] <= 'Z'))
			return 1;
	return 0;
}

/* Splits "name[:tag]" (digest already removed) into out->tag and buf. */
static int split_tag(char *buf, const char *s, struct images_ref *out, struct err *e)
{
	char *slash = strrchr(buf, '/');
	char *colon = strrchr(slash ? slash : buf, ':');
	if (!colon)
		return 0;
	*colon = '\0';
	if (!tag_ok(colon + 1))
		return err_set(e, ERR_INVALID, "image reference %s: invalid tag \"%s\"", s,
		               colon + 1);
	snprintf(out->tag, sizeof out->tag, "%s", colon + 1);
	return 0;
}

static int check_path(const char *path, const char *s, struct err *e)
{
	for (const char *p = path; *p;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		for (size_t i = 0; i < n; i++)
			if (p[i] >= 'A' && p[i] <= 'Z')
				return err_set(
				    e, ERR_INVALID,
				    "image reference %s: repository name must be lowercase", s);
		if (!path_component_ok(p, n))
			return err_set(
			    e, ERR_INVALID,
			    "image reference %s: invalid repository name component \"%.*s\"", s,
			    (int)n, p);
		p = end ? end + 1 : p + n;
		if (end && !*p)
			return err_set(e, ERR_INVALID, "image reference %s: trailing '/'", s);
	}
	return 0;
}

int images_ref_parse(const char *s, struct images_ref *out, struct err *e)
{
	char buf[512];
	memset(out, 0, sizeof *out);
	if (!s || !*s)
		return err_set(e, ERR_INVALID, "empty image reference");
	if (strlen(s) >= sizeof buf)
		return err_set(e, ERR_INVALID, "image reference too long");
	snprintf(buf, sizeof buf, "%s", s);
	char *at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		if (strncmp(at + 1, "sha256:", 7) || !is_hex64(at + 8))
			return err_set(
			    e, ERR_INVALID,
			    "image reference %s: digest must be sha256:<64 lowercase hex>", s);
		snprintf(out->digest, sizeof out->digest, "%s", at + 1);
	}
	if (split_tag(buf, s, out, e))
		return e->code;
	if (!buf[0])
		return err_set(e, ERR_INVALID, "image reference %s has no repository name", s);
	if (is_hex64(buf))
		return err_set(
		    e, ERR_INVALID,
		    "image reference %s: a bare 64-hex id is not a name (use NAME@sha256:<hex>)",
		    s);
	const char *slash = strchr(buf, '/'), *domain = "docker.io", *path = buf;
	char dom[256];
	if (slash && is_domain(buf, (size_t)(slash - buf))) {
		snprintf(dom, sizeof dom, "%.*s", (int)(slash - buf), buf);
		if (!domain_ok(dom))
			return err_set(e, ERR_INVALID,
			               "image reference %s: invalid registry host \"%s\"", s, dom);
		domain = strcmp(dom, "index.docker.io") ? dom : "docker.io";
		path = slash + 1;
	}
	if (check_path(path, s, e))
		return e->code;
	int lib = !strcmp(domain, "docker.io") && !strchr(path, '/');
	int n =
	    snprintf(out->name, sizeof out->name, "%s/%s%s", domain, lib ? "library/" : "", path);
	if (n < 0 || (size_t)n >= sizeof out->name)
		return err_set(e, ERR_INVALID,
		               "image reference %s: name longer than 255 characters", s);
	if (!out->tag[0] && !out->digest[0])
		snprintf(out->tag, sizeof out->tag, "latest");
	return 0;
}

void images_ref_format(const struct images_ref *r, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s%s%s", r->name, r->tag[0] ? ":" : "", r->tag,
	         r->digest[0] ? "@" : "", r->digest);
}

/* ------------------------------------------------------------------ */
/* The default image: busybox from the host, built reproducibly         */

static const char *const busybox_applets[] = {
    "busybox", "cat",   "date", "echo", "env", "false", "grep",  "head", "hostname", "id",   "kill",
    "ls",      "mkdir", "ps",   "rm",   "sed", "sh",    "sleep", "tail", "touch",    "true", "wc",
};
#define BUSYBOX_ENV_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define EPOCH            "1970-01-01T00:00:00Z"

/* One ustar header: owner root, mtime 0, so the bytes depend only on the
 * arguments. */
static void tar_put_header(struct buf *b, const char *name, char type, unsigned mode, uint64_t size,
                           const char *link)
{
	unsigned char h[512] = {0};
	unsigned long sum = 0;
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
	snprintf((char *)h + 136, 12, "%011o", 0);
	memset(h + 148, ' ', 8);
	h[156] = (unsigned char)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	snprintf((char *)h + 265, 32, "root");
	snprintf((char *)h + 297, 32, "root");
	snprintf((char *)h + 329, 8, "%07o", 0);
	snprintf((char *)h + 337, 8, "%07o", 0);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06lo", sum);
	buf_add(b, h, 512);
}

static void tar_put_file(struct buf *b, const char *name, unsigned mode, const void *data, size_t n)
{
	static const char zeros[512];
	tar_put_header(b, name, '0', mode, n, NULL);
	buf_add(b, data, n);
	buf_add(b, zeros, (512 - n % 512) % 512);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The layer tar: bin/ with busybox and its applet links, a minimal etc/
 * and tmp/, sorted, then the two zero blocks of the end. */
static void busybox_tar(const char *bin, size_t binlen, struct buf *t)
{
	static const char zeros[1024];
	const char *names[sizeof busybox_applets / sizeof busybox_applets[0]];
	size_t n = sizeof names / sizeof names[0];
	memcpy(names, busybox_applets, sizeof names);
	qsort(names, n, sizeof names[0], cmp_str);
	tar_put_header(t, "bin/", '5', 0755, 0, NULL);
	for (size_t i = 0; i < n; i++) {
		char path[64];
		snprintf(path, sizeof path, "bin/%s", names[i]);
		if (!strcmp(names[i], "busybox"))
			tar_put_file(t, path, 0755, bin, binlen);
		else
			tar_put_header(t, path, '2', 0777, 0, "busybox");
	}
	tar_put_header(t, "etc/", '5', 0755, 0, NULL);
	tar_put_file(t, "etc/group", 0644, "root:x:0:\n", 10);
	tar_put_file(t, "etc/passwd", 0644, "root:x:0:0:root:/root:/bin/sh\n", 30);
	tar_put_header(t, "tmp/", '5', 01777, 0, NULL);
	buf_add(t, zeros, sizeof zeros);
}

/* gzip with a fixed header (mtime 0, no name, OS unix): like `gzip -n`. */
static int gzip_buf(const struct buf *in, struct buf *out, struct err *e)
{
	z_stream z = {0};
	if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return err_set(e, ERR_INTERNAL, "deflateInit2 failed");
	buf_reserve(out, deflateBound(&z, in->len) + 1);
	z.next_in = (unsigned char *)in->data;
	z.avail_in = (uInt)in->len;
	z.next_out = (unsigned char *)out->data;
	z.avail_out = (uInt)(out->cap - 1);
	int rc = deflate(&z, Z_FINISH);
	out->len = z.total_out;
	out->data[out->len] = '\0';
	deflateEnd(&z);
	return rc == Z_STREAM_END ? 0 : err_set(e, ERR_INTERNAL, "deflate failed");
}

/* 1 when an ELF file has no PT_INTERP (static), 0 when it has one, -1
 * when it is not a 64-bit little-endian ELF file. */
static int elf_static(const unsigned char *p, size_t n)
{
	if (n < 64 || memcmp(p, "\177ELF", 4) || p[4] != 2 || p[5] != 1)
		return -1;
	uint64_t phoff;
	uint16_t phentsize, phnum;
	memcpy(&phoff, p + 32, 8);
	memcpy(&phentsize, p + 54, 2);
	memcpy(&phnum, p + 56, 2);
	for (uint16_t i = 0; i < phnum; i++) {
		uint64_t off = phoff + (uint64_t)i * phentsize;
		uint32_t type;
		if (phentsize < 4 || off > n - 4)
			return -1;
		memcpy(&type, p + off, 4);
		if (type == 3) /* PT_INTERP */
			return 0;
	}
	return 1;
}

/* Stages layer, config and manifest of the busybox image and records the
 * image as `busybox:latest`. */
static int stage_busybox(struct import *imp, const struct buf *tar, const struct buf *gz,
                         struct err *e)
{
	size_t li, ci, mi;
	char diff[65];
	struct images_ref ref;
	sha256_hex(tar->data, tar->len, diff);
	if (stage_bytes(imp, gz->data, gz->len, &li, e))
		return e->code;
	json_t *cfg = json_pack(
	    "{s:s, s:s, s:s, s:{s:[s], s:[s], s:s}, s:{s:s, s:[s+]}, s:[{s:s, s:s}]}", "created",
	    EPOCH, "architecture", go_arch(), "os", "linux", "config", "Env", BUSYBOX_ENV_PATH,
	    "Cmd", "sh", "WorkingDir", "/", "rootfs", "type", "layers", "diff_ids", "sha256:", diff,
	    "history", "created", EPOCH, "created_by", "cocod: /bin/busybox from busybox-static");
	char *ctext = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	int rc = stage_bytes(imp, ctext, strlen(ctext), &ci, e);
	free(ctext);
	if (rc)
		return rc;
	json_t *m =
	    json_pack("{s:i, s:s, s:{s:s, s:s+, s:I}, s:[{s:s, s:s+, s:I}]}", "schemaVersion", 2,
	              "mediaType", MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest",
	              "sha256:", imp->v[ci].hex, "size", (json_int_t)imp->v[ci].size, "layers",
	              "mediaType", MT_OCI_LAYER "+gzip", "digest", "sha256:", imp->v[li].hex,
	              "size", (json_int_t)imp->v[li].size);
	char *mtext = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(m);
	rc = stage_bytes(imp, mtext, strlen(mtext), &mi, e);
	free(mtext);
	if (rc || images_ref_parse("busybox:latest", &ref, e))
		return e->code;
	struct image_doc d = {.manifest = mi,
	                      .config = ci,
	                      .layers = &li,
	                      .nlayers = 1,
	                      .manifest_type = MT_OCI_MANIFEST};
	snprintf(d.manifest_digest, sizeof d.manifest_digest, "sha256:%s", imp->v[mi].hex);
	add_image(imp, &ref, &d);
	return 0;
}

static int build_busybox(images *im, const char *path, struct err *e)
{
	char *bin = NULL;
	size_t binlen = 0;
	struct buf tar, gz;
	struct import imp = {0};
	if (file_read(path, 64u << 20, &bin, &binlen, e))
		return e->code;
	if (elf_static((const unsigned char *)bin, binlen) != 1) {
		free(bin);
		return err_set(e, ERR_NOT_FOUND,
		               "%s is not a static 64-bit ELF binary (install busybox-static)",
		               path);
	}
	buf_init(&tar);
	buf_init(&gz);
	busybox_tar(bin, binlen, &tar);
	free(bin);
	int rc = gzip_buf(&tar, &gz, e);
	json_t *refs = json_array();
	if (rc == 0 && (rc = import_init(&imp, im, e)) == 0 &&
	    (rc = stage_busybox(&imp, &tar, &gz, e)) == 0)
		rc = import_commit(&imp, refs, e);
	if (imp.im == im)
		import_fini(&imp);
	json_decref(refs);
	buf_fini(&tar);
	buf_fini(&gz);
	return rc;
}

/* On the first open of a data directory, imports busybox:latest (unless an
 * image of that name is there already); a missing or dynamic busybox only
 * logs a warning, and is tried again on the next open. */
static int ensure_default(images *im, struct err *e)
{
	char *v = NULL, mt[128];
	struct err e2 = {0};
	struct images_ref ref;
	if (store_meta_get(im->st, DEFAULT_META_KEY, &v, &e2) == 0) {
		free(v);
		return 0;
	}
	if (e2.code != ERR_NOT_FOUND)
		return err_set(e, e2.code, "%s", e2.msg);
	images_ref_parse("busybox:latest", &ref, &e2);
	if (find_row(im, &ref, mt, sizeof mt, NULL, &e2)) {
		memset(&e2, 0, sizeof e2);
		if (build_busybox(im, BUSYBOX_PATH, &e2)) {
			log_warn("images", "no default busybox image: %s", e2.msg);
			return 0;
		}
		log_info("images", "default image built ref=busybox:latest from=%s", BUSYBOX_PATH);
	}
	return store_meta_set(im->st, DEFAULT_META_KEY, "busybox:latest", e);
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */

/* Removes staging files and directories whose process is gone. */
static void sweep_tmp(images *im)
{
	DIR *d = opendir(im->tmpdir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		long pid = 0;
		if (sscanf(de->d_name, "import-%ld-", &pid) != 1 &&
		    sscanf(de->d_name, "upload-%ld-", &pid) != 1)
			continue;
		if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		cleanup_free char *p = xasprintf("%s/%s", im->tmpdir, de->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			remove_flat_dir(p);
		else
			unlink(p);
	}
	if (d)
		closedir(d);
}

static int private_dir(const char *path, struct err *e)
{
	if (mkdir_p(path, 0700, e))
		return e->code;
	if (chmod(path, 0700) < 0)
		return err_set(e, ERR_IO, "chmod %s: %s", path, strerror(errno));
	return 0;
}

int images_open(store *s, const char *data_dir, images **out, struct err *e)
{
	images *im = xcalloc(1, sizeof *im);
	im->st = s;
	im->root = xasprintf("%s/images", data_dir);
	im->blobdir = xasprintf("%s/blobs/sha256", im->root);
	im->tmpdir = xasprintf("%s/tmp", im->root);
	cleanup_free char *blobs = xasprintf("%s/blobs", im->root);
	if (store_schema_version(s) < 4) {
		images_close(im);
		return err_set(e, ERR_DB, "the store has no image tables (schema %d)",
		               store_schema_version(s));
	}
	if (private_dir(im->blobdir, e) || private_dir(im->tmpdir, e) || private_dir(blobs, e) ||
	    private_dir(im->root, e)) {
		images_close(im);
		return err_wrap(e, "image store");
	}
	sweep_tmp(im);
	if (ensure_default(im, e)) {
		images_close(im);
		return err_wrap(e, "default image");
	}
	*out = im;
	return 0;
}

void images_close(images *im)
{
	if (!im)
		return;
	free(im->root);
	free(im->blobdir);
	free(im->tmpdir);
	free(im);
}
