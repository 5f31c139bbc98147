/* tar: see tar.h.  One pass over 512-byte headers; GNU long names (L/K)
 * and PAX records (path, linkpath, size) modify the next entry.  Each
 * entry is split into a parent directory, opened inside the root with
 * openat2(RESOLVE_IN_ROOT), and a last component that is always handled
 * with *at() calls that do not follow it.  The set of paths this layer
 * created ("upper" paths, and their parents) keeps whiteouts from removing
 * them, so the position of a whiteout inside the tar does not matter. */
#include "tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

const struct tar_limits tar_default_limits = {100000, 1ull << 30, 512ull << 20};

#define NAME_CAP 4096
#define META_CAP 65536
#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

struct hdr {
	char name[NAME_CAP];
	char link[NAME_CAP];
	char type;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
};

struct apply {
	int rootfd;
	const struct tar_limits *lim;
	struct strmap upper; /* paths this layer created; keys owned */
	uint64_t entries, bytes;
	struct err *e;
};

int tar_clean_name(const char *in, char *out, size_t cap, struct err *e)
{
	size_t n = 0;
	if (in[0] == '/')
		return err_set(e, ERR_INVALID, "tar: absolute name %.200s", in);
	for (const char *p = in; *p;) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return err_set(e, ERR_INVALID, "tar: name with '..': %.200s", in);
		if (len > 0 && !(len == 1 && p[0] == '.')) {
			if (n + len + 2 > cap)
				return err_set(e, ERR_INVALID, "tar: name too long");
			if (n)
				out[n++] = '/';
			memcpy(out + n, p, len);
			n += len;
		}
		p = *end ? end + 1 : end;
	}
	out[n] = '\0';
	return 0;
}

/* Parses an octal field (or GNU base-256 for large values). */
static int parse_num(const char *f, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if ((unsigned char)f[0] & 0x80) {
		for (size_t i = 1; i < n; i++) {
			if (v >> 55)
				return -1;
			v = v << 8 | (unsigned char)f[i];
		}
		*out = v;
		return 0;
	}
	size_t i = 0;
	while (i < n && f[i] == ' ')
		i++;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	*out = v;
	return 0;
}

static int checksum_ok(const unsigned char *h)
{
	uint64_t want, sum = 0;
	if (parse_num((const char *)h + 148, 8, &want) < 0)
		return 0;
	for (int i = 0; i < 512; i++)
		sum += (i >= 148 && i < 156) ? ' ' : h[i];
	return sum == want;
}

static int all_zero(const unsigned char *h)
{
	for (int i = 0; i < 512; i++)
		if (h[i])
			return 0;
	return 1;
}

/* Fills `h` from a ustar/GNU header; the name may be overridden later. */
static int parse_header(const unsigned char *b, struct hdr *h, struct err *e)
{
	uint64_t mode, uid, gid, size;
	if (!checksum_ok(b))
		return err_set(e, ERR_INVALID, "tar: bad header checksum");
	if (parse_num((const char *)b + 100, 8, &mode) || parse_num((const char *)b + 108, 8, &uid) ||
	    parse_num((const char *)b + 116, 8, &gid) || parse_num((const char *)b + 124, 12, &size))
		return err_set(e, ERR_INVALID, "tar: bad numeric field");
	h->mode = (mode_t)(mode & 07777);
	h->uid = (uid_t)uid;
	h->gid = (gid_t)gid;
	h->size = size;
	h->type = (char)b[156];
	size_t n = 0;
	if (memcmp(b + 257, "ustar", 5) == 0 && b[345]) {
		n = strnlen((const char *)b + 345, 155);
		memcpy(h->name, b + 345, n);
		h->name[n++] = '/';
	}
	size_t m = strnlen((const char *)b, 100);
	memcpy(h->name + n, b, m);
	h->name[n + m] = '\0';
	m = strnlen((const char *)b + 157, 100);
	memcpy(h->link, b + 157, m);
	h->link[m] = '\0';
	return 0;
}

/* Applies PAX records "LEN key=value\n" (path, linkpath, size). */
static int parse_pax(const char *p, size_t n, char *path, char *link, uint64_t *size,
		     struct err *e)
{
	while (n > 0) {
		char *end;
		unsigned long len = strtoul(p, &end, 10);
		if (end == p || *end != ' ' || len == 0 || len > n || p[len - 1] != '\n')
			return err_set(e, ERR_INVALID, "tar: bad PAX record");
		const char *kv = end + 1, *eq = memchr(kv, '=', (size_t)(p + len - 1 - kv));
		if (!eq)
			return err_set(e, ERR_INVALID, "tar: bad PAX record");
		size_t klen = (size_t)(eq - kv), vlen = (size_t)(p + len - 1 - eq - 1);
		char *dst = klen == 4 && !memcmp(kv, "path", 4)       ? path
			    : klen == 8 && !memcmp(kv, "linkpath", 8) ? link
								      : NULL;
		if (dst && vlen >= NAME_CAP)
			return err_set(e, ERR_INVALID, "tar: PAX name too long");
		if (dst) {
			memcpy(dst, eq + 1, vlen);
			dst[vlen] = '\0';
		} else if (klen == 4 && !memcmp(kv, "size", 4)) {
			char tmp[32];
			if (vlen == 0 || vlen >= sizeof tmp)
				return err_set(e, ERR_INVALID, "tar: bad PAX size");
			memcpy(tmp, eq + 1, vlen);
			tmp[vlen] = '\0';
			char *z;
			*size = strtoull(tmp, &z, 10);
			if (*z)
				return err_set(e, ERR_INVALID, "tar: bad PAX size");
		}
		p += len;
		n -= len;
	}
	return 0;
}

static long openat2_(int dirfd, const char *path, int flags)
{
	struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC,
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
	return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* Opens directory `dir` (a clean name, "" = root) inside the root as an
 * O_PATH fd, creating missing components with mode 0755. */
static int open_dir(struct apply *a, const char *dir)
{
	if (!dir[0])
		return (int)openat2_(a->rootfd, ".", O_PATH | O_DIRECTORY);
	char prefix[NAME_CAP];
	int cur = (int)openat2_(a->rootfd, ".", O_PATH | O_DIRECTORY);
	for (const char *p = dir; cur >= 0;) {
		const char *end = strchrnul(p, '/');
		memcpy(prefix, dir, (size_t)(end - dir));
		prefix[end - dir] = '\0';
		int fd = (int)openat2_(a->rootfd, prefix, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			char comp[NAME_CAP];
			memcpy(comp, p, (size_t)(end - p));
			comp[end - p] = '\0';
			if (mkdirat(cur, comp, 0755) == 0 || errno == EEXIST)
				fd = (int)openat2_(a->rootfd, prefix, O_PATH | O_DIRECTORY);
		}
		close(cur);
		cur = fd;
		if (!*end)
			break;
		p = end + 1;
	}
	if (cur < 0)
		err_set(a->e, ERR_IO, "tar: directory %.200s: %s", dir, strerror(errno));
	return cur;
}

/* Removes `name` in `dirfd` whatever it is (a directory recursively),
 * never following symlinks.  Missing is fine. */
static int remove_at(int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0);
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rc = remove_at(dirfd(d), de->d_name);
	closedir(d);
	return rc ? rc : unlinkat(dfd, name, AT_REMOVEDIR);
}

static void mark_upper(struct apply *a, const char *path)
{
	char tmp[NAME_CAP];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (;;) {
		if (!strmap_get(&a->upper, tmp)) {
			char *k = xstrdup(tmp);
			strmap_put(&a->upper, k, k);
		}
		char *slash = strrchr(tmp, '/');
		if (!slash)
			return;
		*slash = '\0';
	}
}

static const char *join(char *out, size_t cap, const char *dir, const char *base)
{
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "%s%s%s", dir, dir[0] ? "/" : "", base);
	size_t n = b.len < cap - 1 ? b.len : cap - 1;
	memcpy(out, b.data, n);
	out[n] = '\0';
	buf_fini(&b);
	return out;
}

/* Removes the children of `dir` that this layer did not create. */
static int apply_opaque(struct apply *a, int dfd, const char *dir)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d)
		return err_set(a->e, ERR_IO, "tar: opaque %.200s: %s", dir, strerror(errno));
	struct dirent *de;
	char path[NAME_CAP];
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strmap_get(&a->upper, join(path, sizeof path, dir, de->d_name)))
			continue;
		if (remove_at(dirfd(d), de->d_name) < 0)
			rc = err_set(a->e, ERR_IO, "tar: opaque %.200s: %s", path, strerror(errno));
	}
	closedir(d);
	return rc;
}

static int apply_whiteout(struct apply *a, int dirfd, const char *dir, const char *base)
{
	char path[NAME_CAP];
	if (!strcmp(base, WH_OPAQUE))
		return apply_opaque(a, dirfd, dir);
	const char *victim = base + strlen(WH_PREFIX);
	if (!victim[0] || !strcmp(victim, ".") || !strcmp(victim, ".."))
		return err_set(a->e, ERR_INVALID, "tar: bad whiteout %.200s", base);
	if (!strncmp(victim, WH_PREFIX, strlen(WH_PREFIX)))
		return 0; /* AUFS metadata (.wh..wh.plnk and friends) */
	if (strmap_get(&a->upper, join(path, sizeof path, dir, victim)))
		return 0;
	if (remove_at(dirfd, victim) < 0)
		return err_set(a->e, ERR_IO, "tar: whiteout %.200s: %s", path, strerror(errno));
	return 0;
}

static void set_owner(int dirfd, const char *base, const struct hdr *h)
{
	if (geteuid() == 0 && fchownat(dirfd, base, h->uid, h->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return; /* best effort: ownership inside the guest's own tmpfs */
}

static int write_file(struct apply *a, int dirfd, const char *base, const struct hdr *h,
		      const unsigned char *data)
{
	int fd = openat(dirfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(a->e, ERR_IO, "tar: create %.200s: %s", h->name, strerror(errno));
	for (uint64_t off = 0; off < h->size;) {
		ssize_t n = write(fd, data + off, (size_t)(h->size - off));
		if (n <= 0) {
			close(fd);
			return err_set(a->e, ERR_IO, "tar: write %.200s: %s", h->name,
				       strerror(errno));
		}
		off += (uint64_t)n;
	}
	if (geteuid() == 0)
		(void)!fchown(fd, h->uid, h->gid);
	int rc = fchmod(fd, h->mode);
	close(fd);
	return rc < 0 ? err_set(a->e, ERR_IO, "tar: chmod %.200s", h->name) : 0;
}

static int make_dir(struct apply *a, int dirfd, const char *base, const struct hdr *h)
{
	struct stat st;
	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
		if (remove_at(dirfd, base) < 0 || mkdirat(dirfd, base, 0700) < 0)
			return err_set(a->e, ERR_IO, "tar: mkdir %.200s: %s", h->name,
				       strerror(errno));
	}
	set_owner(dirfd, base, h);
	int fd = openat(dirfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = fd >= 0 ? fchmod(fd, h->mode) : -1;
	if (fd >= 0)
		close(fd);
	return rc < 0 ? err_set(a->e, ERR_IO, "tar: chmod %.200s", h->name) : 0;
}

/* A hard link: the target (relative to the root) must exist inside the
 * root and must not be a directory. */
static int make_hardlink(struct apply *a, int dirfd, const char *base, const struct hdr *h)
{
	char target[NAME_CAP];
	if (tar_clean_name(h->link, target, sizeof target, a->e) < 0)
		return err_wrap(a->e, "hard link %.200s", h->name);
	char *slash = strrchr(target, '/');
	const char *tbase = slash ? slash + 1 : target;
	if (slash)
		*slash = '\0';
	if (!tbase[0])
		return err_set(a->e, ERR_INVALID, "tar: hard link %.200s to the root", h->name);
	int tdir = open_dir(a, slash ? target : "");
	if (tdir < 0)
		return err_wrap(a->e, "hard link %.200s", h->name);
	struct stat st;
	int rc = 0;
	if (fstatat(tdir, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0)
		rc = err_set(a->e, ERR_INVALID, "tar: hard link %.200s: target %.200s missing",
			     h->name, h->link);
	else if (S_ISDIR(st.st_mode))
		rc = err_set(a->e, ERR_INVALID, "tar: hard link %.200s to a directory", h->name);
	else if (remove_at(dirfd, base) < 0 || linkat(tdir, tbase, dirfd, base, 0) < 0)
		rc = err_set(a->e, ERR_IO, "tar: link %.200s: %s", h->name, strerror(errno));
	close(tdir);
	return rc;
}

/* Creates one entry whose name is clean and not a whiteout. */
static int make_entry(struct apply *a, int dirfd, const char *base, const struct hdr *h,
		      const unsigned char *data)
{
	switch (h->type) {
	case '5': return make_dir(a, dirfd, base, h);
	case '1': return make_hardlink(a, dirfd, base, h);
	case '3':
	case '4': return 0; /* device nodes: not created (see tar.h) */
	default: break;
	}
	if (remove_at(dirfd, base) < 0)
		return err_set(a->e, ERR_IO, "tar: replace %.200s: %s", h->name, strerror(errno));
	if (h->type == '2') {
		if (symlinkat(h->link, dirfd, base) < 0)
			return err_set(a->e, ERR_IO, "tar: symlink %.200s: %s", h->name,
				       strerror(errno));
		set_owner(dirfd, base, h);
		return 0;
	}
	if (h->type == '6') {
		if (mkfifoat(dirfd, base, h->mode) < 0)
			return err_set(a->e, ERR_IO, "tar: fifo %.200s", h->name);
		return 0;
	}
	return write_file(a, dirfd, base, h, data);
}

static int apply_entry(struct apply *a, struct hdr *h, const unsigned char *data)
{
	char clean[NAME_CAP];
	if (tar_clean_name(h->name, clean, sizeof clean, a->e) < 0)
		return -1;
	if (!clean[0]) {
		if (h->type != '5')
			return err_set(a->e, ERR_INVALID, "tar: refusing to change the root's type");
		return 0;
	}
	snprintf(h->name, sizeof h->name, "%s", clean);
	char *slash = strrchr(clean, '/');
	const char *base = slash ? slash + 1 : clean;
	if (slash)
		*slash = '\0';
	const char *dir = slash ? clean : "";
	int dirfd = open_dir(a, dir);
	if (dirfd < 0)
		return -1;
	int rc;
	if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX))) {
		rc = apply_whiteout(a, dirfd, dir, base);
	} else {
		rc = make_entry(a, dirfd, base, h, data);
		if (rc == 0)
			mark_upper(a, h->name);
	}
	close(dirfd);
	return rc;
}

static int check_limits(struct apply *a, const struct hdr *h)
{
	if (++a->entries > a->lim->max_entries)
		return err_set(a->e, ERR_TOO_LARGE, "tar: more than %llu entries",
			       (unsigned long long)a->lim->max_entries);
	int regular = h->type == '0' || h->type == '\0' || h->type == '7';
	if (!regular)
		return 0;
	if (h->size > a->lim->max_entry)
		return err_set(a->e, ERR_TOO_LARGE, "tar: %.200s is larger than %llu bytes",
			       h->name, (unsigned long long)a->lim->max_entry);
	a->bytes += h->size;
	if (a->bytes > a->lim->max_bytes)
		return err_set(a->e, ERR_TOO_LARGE, "tar: layer holds more than %llu bytes",
			       (unsigned long long)a->lim->max_bytes);
	return 0;
}

static int known_type(char t)
{
	return t && strchr("01234567", t) != NULL;
}

/* Walks the headers; long names and PAX records apply to the next entry. */
static int walk(struct apply *a, const unsigned char *p, size_t len)
{
	struct hdr h;
	char xname[NAME_CAP] = "", xlink[NAME_CAP] = "";
	uint64_t xsize = UINT64_MAX;
	size_t off = 0;
	while (off + 512 <= len) {
		const unsigned char *b = p + off;
		if (all_zero(b))
			return 0;
		if (parse_header(b, &h, a->e) < 0)
			return -1;
		if (xsize != UINT64_MAX)
			h.size = xsize;
		off += 512;
		if (h.size > len - off)
			return err_set(a->e, ERR_INVALID, "tar: entry %.200s truncated", h.name);
		const unsigned char *data = p + off;
		size_t padded = (size_t)((h.size + 511) & ~(uint64_t)511);
		if (padded > len - off)
			padded = len - off;
		off += padded;
		if (h.type == 'L' || h.type == 'K' || h.type == 'x' || h.type == 'g') {
			if (++a->entries > a->lim->max_entries || h.size > META_CAP)
				return err_set(a->e, ERR_TOO_LARGE, "tar: metadata entry too large");
			if (h.type == 'g')
				continue;
			if (h.type == 'x') {
				if (parse_pax((const char *)data, (size_t)h.size, xname, xlink, &xsize,
					      a->e) < 0)
					return -1;
				continue;
			}
			char *dst = h.type == 'L' ? xname : xlink;
			size_t n = strnlen((const char *)data, (size_t)h.size);
			if (n >= NAME_CAP)
				return err_set(a->e, ERR_INVALID, "tar: long name too long");
			memcpy(dst, data, n);
			dst[n] = '\0';
			continue;
		}
		if (h.type == '\0')
			h.type = '0';
		if (!known_type(h.type))
			return err_set(a->e, ERR_INVALID, "tar: entry type '%c' not supported",
				       h.type);
		if (xname[0])
			memcpy(h.name, xname, sizeof xname);
		if (xlink[0])
			memcpy(h.link, xlink, sizeof xlink);
		xname[0] = xlink[0] = '\0';
		xsize = UINT64_MAX;
		if (h.type != '0' && h.type != '7')
			h.size = 0;
		if (check_limits(a, &h) < 0 || apply_entry(a, &h, data) < 0)
			return -1;
	}
	if (off != len)
		return err_set(a->e, ERR_INVALID, "tar: trailing partial block");
	return 0; /* EOF at a header boundary (see oci-images.md on umoci) */
}

int tar_apply(int rootfd, const void *data, size_t len, const struct tar_limits *lim,
	      struct err *e)
{
	struct apply a = {.rootfd = rootfd, .lim = lim ? lim : &tar_default_limits, .e = e};
	strmap_init(&a.upper);
	int rc = walk(&a, data, len);
	for (size_t i = 0; i < a.upper.cap; i++)
		if (a.upper.slots[i].value)
			free(a.upper.slots[i].value);
	strmap_fini(&a.upper);
	return rc < 0 ? (e && e->code ? e->code : ERR_INVALID) : 0;
}
