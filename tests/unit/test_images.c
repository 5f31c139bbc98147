/* Unit tests for images: reference parsing (a table), the strict tar reader
 * (traversal, absolute names, devices, truncation, checksums, links out of
 * the archive, pax and GNU long names), import of OCI layouts and docker
 * save archives built here byte by byte (plain and gzip'd), digest checks
 * (a corrupted blob is refused and nothing changes), removal with garbage
 * collection, and the default busybox image (present, reproducible across
 * two data directories, its layer a real tar holding bin/sh).
 *
 * The archives are written by this file's own little tar writer, and every
 * expected digest is computed here with OpenSSL from the bytes written, so
 * the code under test never produces its own expectations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "images.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct fixture {
	char dir[64];
	store *st;
	images *im;
};

static void rm_rf(const char *path)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", path);
}

static int open_in(struct fixture *f)
{
	struct err e = {0};
	char db[128];
	snprintf(db, sizeof db, "%s/cocod.db", f->dir);
	if (store_open(db, &f->st, &e) || images_open(f->st, f->dir, &f->im, &e)) {
		fprintf(stderr, "open: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/cocod-images-XXXXXX");
	if (!mkdtemp(f->dir) || open_in(f))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	images_close(f->im);
	store_close(f->st);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* --- independent helpers: sha256, tar writer, gzip --- */

static void sha(const void *p, size_t n, char out[72])
{
	unsigned char md[32];
	unsigned int len;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	strcpy(out, "sha256:");
	for (int i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static void hdr(struct buf *b, const char *name, char type, size_t size, const char *link, int gnu)
{
	unsigned char h[512] = {0};
	unsigned sum = 0;
	strncpy((char *)h, name, 100);
	sprintf((char *)h + 100, "%07o", 0644);
	sprintf((char *)h + 108, "%07o", 0);
	sprintf((char *)h + 116, "%07o", 0);
	sprintf((char *)h + 124, "%011zo", size);
	sprintf((char *)h + 136, "%011o", 0);
	h[156] = (unsigned char)type;
	if (link)
		strncpy((char *)h + 157, link, 100);
	memcpy(h + 257,
	       gnu ? "ustar  \0"
	           : "ustar\0"
	             "00",
	       8);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	sprintf((char *)h + 148, "%06o", sum);
	buf_add(b, h, 512);
}

static void pad(struct buf *b, size_t n)
{
	static const char z[512];
	buf_add(b, z, (512 - n % 512) % 512);
}

static void tfile(struct buf *b, const char *name, const void *data, size_t n)
{
	hdr(b, name, '0', n, NULL, 0);
	buf_add(b, data, n);
	pad(b, n);
}

static void tstr(struct buf *b, const char *name, const char *s)
{
	tfile(b, name, s, strlen(s));
}

static void tend(struct buf *b)
{
	static const char z[1024];
	buf_add(b, z, sizeof z);
}

static void gz(const struct buf *in, struct buf *out)
{
	uLongf n = compressBound(in->len) + 64;
	z_stream z = {0};
	buf_reserve(out, n);
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (unsigned char *)in->data;
	z.avail_in = (uInt)in->len;
	z.next_out = (unsigned char *)out->data;
	z.avail_out = (uInt)n;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	out->len = z.total_out;
	deflateEnd(&z);
}

static char *write_tmp(struct fixture *f, const char *name, const struct buf *b)
{
	char *path = xasprintf("%s/%s", f->dir, name);
	struct err e = {0};
	assert_int_equal(file_write_atomic(path, b->data, b->len, 0600, &e), 0);
	return path;
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static size_t count_images(struct fixture *f)
{
	json_t *l;
	struct err e = {0};
	assert_int_equal(images_list(f->im, &l, &e), 0);
	size_t n = json_array_size(l);
	json_decref(l);
	return n;
}

/* An image: one layer tar holding "hello", its config and manifest. */
struct img {
	struct buf layer, layergz, config, manifest;
	char layer_d[72], diff_d[72], config_d[72], manifest_d[72];
};

static void img_build(struct img *m, const char *greeting, int gzipped)
{
	memset(m, 0, sizeof *m);
	buf_init(&m->layer);
	buf_init(&m->layergz);
	buf_init(&m->config);
	buf_init(&m->manifest);
	hdr(&m->layer, "etc/", '5', 0, NULL, 0);
	tstr(&m->layer, "etc/hello", greeting);
	tend(&m->layer);
	sha(m->layer.data, m->layer.len, m->diff_d);
	const struct buf *blob = &m->layer;
	if (gzipped) {
		gz(&m->layer, &m->layergz);
		blob = &m->layergz;
	}
	sha(blob->data, blob->len, m->layer_d);
	buf_printf(&m->config,
	           "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"cat\",\"/"
	           "etc/hello\"]},"
	           "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
	           m->diff_d);
	sha(m->config.data, m->config.len, m->config_d);
	buf_printf(
	    &m->manifest,
	    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"config\":{\"mediaType\":\"application/"
	    "vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
	    "\"layers\":[{\"mediaType\":\"application/"
	    "vnd.oci.image.layer.v1.tar%s\",\"digest\":\"%s\",\"size\":%zu}]}",
	    m->config_d, m->config.len, gzipped ? "+gzip" : "", m->layer_d, blob->len);
	sha(m->manifest.data, m->manifest.len, m->manifest_d);
}

static void img_fini(struct img *m)
{
	buf_fini(&m->layer);
	buf_fini(&m->layergz);
	buf_fini(&m->config);
	buf_fini(&m->manifest);
}

static void blob_entry(struct buf *t, const char *digest, const struct buf *b)
{
	char name[128];
	snprintf(name, sizeof name, "./blobs/sha256/%s", digest + 7);
	tfile(t, name, b->data, b->len);
}

/* An OCI layout tar: `refs` are the ref.name annotations, all on `m`. */
static void oci_tar(struct buf *t, const struct img *m, const char *const *refs, int nrefs,
                    const struct buf *layer_override)
{
	struct buf idx;
	buf_init(&idx);
	buf_adds(&idx, "{\"schemaVersion\":2,\"manifests\":[");
	for (int i = 0; i < nrefs; i++)
		buf_printf(
		    &idx,
		    "%s{\"mediaType\":\"application/"
		    "vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
		    "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":\"%s\"}}",
		    i ? "," : "", m->manifest_d, m->manifest.len, refs[i]);
	buf_adds(&idx, "]}");
	hdr(t, "./", '5', 0, NULL, 0);
	hdr(t, "./blobs/", '5', 0, NULL, 0);
	hdr(t, "./blobs/sha256/", '5', 0, NULL, 0);
	blob_entry(t, m->layer_d,
	           layer_override   ? layer_override
	           : m->layergz.len ? &m->layergz
	                            : &m->layer);
	blob_entry(t, m->config_d, &m->config);
	blob_entry(t, m->manifest_d, &m->manifest);
	tstr(t, "./oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	tfile(t, "./index.json", idx.data, idx.len);
	tend(t);
	buf_fini(&idx);
}

/* A legacy docker save tar: layer.tar in a v1 directory is a symlink to
 * <diffid>.tar, as skopeo writes it. */
static void docker_tar(struct buf *t, const struct img *m, const char *repotag, const char *diff_id)
{
	char cfgname[80], layername[80], j[512];
	snprintf(cfgname, sizeof cfgname, "%s.json", m->config_d + 7);
	snprintf(layername, sizeof layername, "%s.tar", m->diff_d + 7);
	tfile(t, layername, m->layer.data, m->layer.len);
	hdr(t, "abc123/", '5', 0, NULL, 0);
	char target[100];
	snprintf(target, sizeof target, "../%s", layername);
	hdr(t, "abc123/layer.tar", '2', 0, target, 0);
	struct buf cfg;
	buf_init(&cfg);
	if (diff_id) {
		buf_printf(&cfg,
		           "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
		           "\"layers\",\"diff_ids\":[\"%s\"]}}",
		           diff_id);
		char d[72];
		sha(cfg.data, cfg.len, d);
		snprintf(cfgname, sizeof cfgname, "%s.json", d + 7);
		tfile(t, cfgname, cfg.data, cfg.len);
	} else {
		tfile(t, cfgname, m->config.data, m->config.len);
	}
	buf_fini(&cfg);
	snprintf(j, sizeof j,
	         "[{\"Config\":\"%s\",\"RepoTags\":[\"%s\"],\"Layers\":[\"abc123/layer.tar\"]}]",
	         cfgname, repotag);
	tstr(t, "manifest.json", j);
	tstr(t, "repositories", "{}");
	tend(t);
}

/* --- reference parsing --- */

static void ref_parse_table(void **state)
{
	static const char *const h =
	    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const struct {
		const char *in, *name, *tag;
		int digest;
	} ok[] = {
	    {"busybox", "docker.io/library/busybox", "latest", 0},
	    {"busybox:1.36", "docker.io/library/busybox", "1.36", 0},
	    {"library/busybox", "docker.io/library/busybox", "latest", 0},
	    {"docker.io/library/busybox:latest", "docker.io/library/busybox", "latest", 0},
	    {"docker.io/busybox", "docker.io/library/busybox", "latest", 0},
	    {"index.docker.io/busybox", "docker.io/library/busybox", "latest", 0},
	    {"local/demo:1.0", "docker.io/local/demo", "1.0", 0},
	    {"localhost/demo", "localhost/demo", "latest", 0},
	    {"localhost:5000/a/b:v_1.2-x", "localhost:5000/a/b", "v_1.2-x", 0},
	    {"quay.io/org/app-x__y.z:Tag", "quay.io/org/app-x__y.z", "Tag", 0},
	    {"busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	     "docker.io/library/busybox", "", 1},
	    {"busybox:1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	     "docker.io/library/busybox", "1.0", 1},
	};
	static const char *const bad[] = {
	    "",
	    "Busybox",
	    "busybox:",
	    "busybox:-x",
	    "busybox@sha256:abc",
	    "busybox@md5:00",
	    "/busybox",
	    "busybox/",
	    "a//b",
	    "ex ample",
	    "-x",
	    "busybox:a/b",
	    ":tag",
	    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	    "busybox@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	    "bad_host.io:99999999/x",
	};
	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct images_ref r;
		struct err e = {0};
		if (images_ref_parse(ok[i].in, &r, &e) != 0)
			fail_msg("%s: %s", ok[i].in, e.msg);
		assert_string_equal(r.name, ok[i].name);
		assert_string_equal(r.tag, ok[i].tag);
		assert_string_equal(r.digest, ok[i].digest ? h : "");
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct images_ref r;
		struct err e = {0};
		if (images_ref_parse(bad[i], &r, &e) == 0)
			fail_msg("\"%s\" parsed as %s:%s", bad[i], r.name, r.tag);
		assert_int_equal(e.code, ERR_INVALID);
		assert_true(strstr(e.msg, "image reference") || strstr(e.msg, "empty"));
	}
	/* A 129-character tag is one too many. */
	char longtag[160];
	memset(longtag, 'a', sizeof longtag);
	memcpy(longtag, "busybox:", 8);
	longtag[8 + 129] = '\0';
	struct images_ref r;
	struct err e = {0};
	assert_int_equal(images_ref_parse(longtag, &r, &e), ERR_INVALID);
	longtag[8 + 128] = '\0';
	assert_int_equal(images_ref_parse(longtag, &r, &e), 0);
}

/* --- tar reader --- */

static void expect_scan_error(struct fixture *f, const struct buf *t, const char *needle)
{
	cleanup_free char *p = write_tmp(f, "bad.tar", t);
	json_t *l = NULL;
	struct err e = {0};
	if (images_tar_scan(p, &l, &e) == 0) {
		json_decref(l);
		fail_msg("archive accepted, expected \"%s\"", needle);
	}
	if (!strstr(e.msg, needle))
		fail_msg("error \"%s\" lacks \"%s\"", e.msg, needle);
}

static void tar_rejects_unsafe_entries(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *name;
		char type;
		const char *needle;
	} cases[] = {
	    {"../evil", '0', "escapes"},      {"a/../../evil", '0', "escapes"},
	    {"/etc/passwd", '0', "absolute"}, {"dev/sda", '3', "type"},
	    {"dev/fifo", '6', "type"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct buf t;
		buf_init(&t);
		hdr(&t, cases[i].name, cases[i].type, cases[i].type == '0' ? 3 : 0, NULL, 0);
		if (cases[i].type == '0') {
			buf_add(&t, "abc", 3);
			pad(&t, 3);
		}
		tend(&t);
		expect_scan_error(f, &t, cases[i].needle);
		buf_fini(&t);
	}
}

static void tar_rejects_damage(void **state)
{
	struct fixture *f = *state;
	struct buf t;
	buf_init(&t);
	tstr(&t, "a", "0123456789");
	tend(&t);
	/* Truncated inside the data of "a". */
	struct buf cut = {0};
	buf_init(&cut);
	buf_add(&cut, t.data, 512 + 5);
	expect_scan_error(f, &cut, "truncated");
	/* A flipped byte in the header breaks the checksum. */
	t.data[3] ^= 1;
	expect_scan_error(f, &t, "checksum");
	t.data[3] ^= 1;
	/* No ustar magic: not a tar format we read. */
	struct buf v7;
	buf_init(&v7);
	buf_add(&v7, t.data, t.len);
	memset(v7.data + 257, 0, 8);
	unsigned sum = 0;
	memset(v7.data + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)v7.data[i];
	sprintf(v7.data + 148, "%06o", sum);
	expect_scan_error(f, &v7, "format");
	/* A size that runs past the end of the file. */
	struct buf big;
	buf_init(&big);
	hdr(&big, "huge", '0', (size_t)1 << 30, NULL, 0);
	buf_add(&big, "xx", 2);
	expect_scan_error(f, &big, "truncated");
	buf_fini(&t);
	buf_fini(&cut);
	buf_fini(&v7);
	buf_fini(&big);
}

static void tar_reads_pax_and_gnu_long_names(void **state)
{
	struct fixture *f = *state;
	char longname[300], rec[400];
	struct buf t;
	buf_init(&t);
	memset(longname, 'p', sizeof longname);
	memcpy(longname, "dir/", 4);
	longname[250] = '\0';
	/* pax: "<len> path=<name>\n" where len counts itself. */
	size_t body = strlen(" path=") + strlen(longname) + 1;
	size_t len = body + 3;
	snprintf(rec, sizeof rec, "%zu path=%s\n", len, longname);
	assert_int_equal(strlen(rec), len);
	hdr(&t, "PaxHeaders/x", 'x', len, NULL, 0);
	buf_add(&t, rec, len);
	pad(&t, len);
	tstr(&t, "short-pax-name", "pax");
	/* GNU: an 'L' record carries the name of the next entry. */
	longname[0] = 'g';
	hdr(&t, "././@LongLink", 'L', strlen(longname) + 1, NULL, 1);
	buf_add(&t, longname, strlen(longname) + 1);
	pad(&t, strlen(longname) + 1);
	hdr(&t, "short-gnu-name", '0', 3, NULL, 1);
	buf_add(&t, "gnu", 3);
	pad(&t, 3);
	tend(&t);
	cleanup_free char *p = write_tmp(f, "long.tar", &t);
	json_t *l = NULL;
	struct err e = {0};
	if (images_tar_scan(p, &l, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(json_array_size(l), 2);
	const char *n0 = json_string_value(json_object_get(json_array_get(l, 0), "name"));
	const char *n1 = json_string_value(json_object_get(json_array_get(l, 1), "name"));
	assert_int_equal(strlen(n0), 250);
	assert_memory_equal(n0, "dir/ppp", 7);
	assert_int_equal(strlen(n1), 250);
	assert_memory_equal(n1, "gir/ppp", 7);
	json_decref(l);
	buf_fini(&t);
}

/* Links inside an archive may not lead out of it, and a link where a
 * regular file is needed resolves inside the archive only. */
static void import_refuses_links_out_of_the_archive(void **state)
{
	struct fixture *f = *state;
	struct buf t;
	buf_init(&t);
	tstr(&t, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	hdr(&t, "index.json", '2', 0, "../../../../etc/passwd", 0);
	tend(&t);
	cleanup_free char *p = write_tmp(f, "link.tar", &t);
	struct err e = {0};
	size_t before = count_images(f);
	assert_int_not_equal(images_import_file(f->im, p, NULL, &e), 0);
	assert_non_null(strstr(e.msg, "outside the archive"));
	buf_fini(&t);
	buf_init(&t);
	tstr(&t, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	hdr(&t, "index.json", '2', 0, "/etc/passwd", 0);
	tstr(&t, "dup", "1");
	tend(&t);
	cleanup_free char *p2 = write_tmp(f, "link2.tar", &t);
	assert_int_not_equal(images_import_file(f->im, p2, NULL, &e), 0);
	assert_non_null(strstr(e.msg, "has no etc/passwd"));
	buf_fini(&t);
	buf_init(&t);
	tstr(&t, "dup", "1");
	tstr(&t, "./dup", "2");
	tend(&t);
	cleanup_free char *p3 = write_tmp(f, "dup.tar", &t);
	assert_int_not_equal(images_import_file(f->im, p3, NULL, &e), 0);
	assert_non_null(strstr(e.msg, "duplicated"));
	assert_int_equal(count_images(f), before);
	buf_fini(&t);
}

/* --- import --- */

static void check_resolved(struct fixture *f, const char *ref, const struct img *m,
                           const char *layer_type)
{
	struct images_resolved r;
	struct err e = {0};
	if (images_resolve(f->im, ref, &r, &e))
		fail_msg("resolve %s: %s", ref, e.msg);
	assert_string_equal(r.manifest_digest, m->manifest_d);
	assert_string_equal(r.config_digest, m->config_d);
	assert_int_equal(r.nlayers, 1);
	assert_string_equal(r.layers[0].digest, m->layer_d);
	assert_string_equal(r.layers[0].media_type, layer_type);
	char *blob;
	size_t n;
	assert_int_equal(file_read(r.layers[0].path, 1 << 20, &blob, &n, &e), 0);
	char d[72];
	sha(blob, n, d);
	assert_string_equal(d, m->layer_d);
	assert_int_equal(n, r.layers[0].size);
	free(blob);
	sha(r.config, r.config_len, d);
	assert_string_equal(d, m->config_d);
	struct stat st;
	assert_int_equal(stat(r.layers[0].path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(images_blob_dir(f->im), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	images_resolved_fini(&r);
}

static void import_oci_layout(void **state)
{
	struct fixture *f = *state;
	struct img m;
	struct buf t, tgz;
	static const char *const refs[] = {"local/demo:1.0", "2.0"};
	img_build(&m, "hello oci\n", 1);
	buf_init(&t);
	buf_init(&tgz);
	oci_tar(&t, &m, refs, 2, NULL);
	cleanup_free char *p = write_tmp(f, "oci.tar", &t);
	json_t *out = NULL;
	struct err e = {0};
	/* "2.0" is a bare tag: without a name the archive is refused whole. */
	assert_int_equal(images_import_file(f->im, p, &out, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "--name"));
	assert_int_equal(count_images(f), 1); /* busybox only */
	if (images_import(f->im, p, "local/other", &out, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(json_array_size(out), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "ref")),
	                    "docker.io/local/demo:1.0");
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 1), "ref")),
	                    "docker.io/local/other:2.0");
	json_decref(out);
	check_resolved(f, "local/demo:1.0", &m, "application/vnd.oci.image.layer.v1.tar+gzip");
	check_resolved(f, "docker.io/local/other:2.0", &m,
	               "application/vnd.oci.image.layer.v1.tar+gzip");
	/* By digest, too. */
	char byd[200];
	snprintf(byd, sizeof byd, "local/demo@%s", m.manifest_d);
	check_resolved(f, byd, &m, "application/vnd.oci.image.layer.v1.tar+gzip");
	/* The same layout gzip'd imports to the same digests. */
	assert_int_equal(images_remove(f->im, "local/demo:1.0", NULL, &e), 0);
	gz(&t, &tgz);
	cleanup_free char *pgz = write_tmp(f, "oci.tar.gz", &tgz);
	if (images_import(f->im, pgz, "local/other", NULL, &e))
		fail_msg("%s", e.msg);
	check_resolved(f, "local/demo:1.0", &m, "application/vnd.oci.image.layer.v1.tar+gzip");
	json_t *info;
	assert_int_equal(images_inspect(f->im, "local/demo:1.0", &info, &e), 0);
	assert_int_equal(json_array_size(json_object_get(info, "tags")), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(info, "config"), "os")), "linux");
	json_decref(info);
	img_fini(&m);
	buf_fini(&t);
	buf_fini(&tgz);
}

static void import_docker_save(void **state)
{
	struct fixture *f = *state;
	struct img m;
	struct buf t;
	img_build(&m, "hello docker\n", 0);
	buf_init(&t);
	docker_tar(&t, &m, "demo:1.0", NULL);
	cleanup_free char *p = write_tmp(f, "docker.tar", &t);
	json_t *out = NULL;
	struct err e = {0};
	if (images_import_file(f->im, p, &out, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(json_string_value(json_object_get(json_array_get(out, 0), "ref")),
	                    "docker.io/library/demo:1.0");
	json_decref(out);
	struct images_resolved r;
	assert_int_equal(images_resolve(f->im, "demo:1.0", &r, &e), 0);
	assert_string_equal(r.manifest_media_type, "application/vnd.oci.image.manifest.v1+json");
	assert_string_equal(r.config_digest, m.config_d);
	assert_string_equal(r.layers[0].digest, m.diff_d); /* uncompressed: digest = diff_id */
	assert_string_equal(r.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar");
	char d[72];
	sha(r.manifest, r.manifest_len, d);
	assert_string_equal(d, r.manifest_digest);
	json_t *mj = json_loads(r.manifest, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(mj, "schemaVersion")), 2);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(mj, "config"), "mediaType")),
	    "application/vnd.oci.image.config.v1+json");
	json_decref(mj);
	images_resolved_fini(&r);
	img_fini(&m);
	buf_fini(&t);
}

static void corrupted_blobs_are_refused(void **state)
{
	struct fixture *f = *state;
	struct img m;
	struct buf t, bad;
	static const char *const refs[] = {"local/x:1"};
	img_build(&m, "hello\n", 1);
	buf_init(&t);
	buf_init(&bad);
	buf_add(&bad, m.layergz.data, m.layergz.len);
	bad.data[bad.len / 2] ^= 0x55;
	oci_tar(&t, &m, refs, 1, &bad);
	cleanup_free char *p = write_tmp(f, "corrupt.tar", &t);
	struct err e = {0};
	int blobs = count_files(images_blob_dir(f->im));
	size_t before = count_images(f);
	assert_int_equal(images_import_file(f->im, p, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "corrupt"));
	assert_int_equal(count_images(f), before);
	assert_int_equal(count_files(images_blob_dir(f->im)), blobs);
	/* docker save: a layer that does not match the config's diff_id. */
	buf_fini(&t);
	buf_init(&t);
	docker_tar(&t, &m, "demo:bad",
	           "sha256:1111111111111111111111111111111111111111111111111111111111111111");
	cleanup_free char *p2 = write_tmp(f, "corrupt-docker.tar", &t);
	assert_int_equal(images_import_file(f->im, p2, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "corrupt"));
	assert_int_equal(count_images(f), before);
	assert_int_equal(count_files(images_blob_dir(f->im)), blobs);
	/* A blob damaged on disk after import is caught by resolve. */
	buf_fini(&t);
	buf_init(&t);
	oci_tar(&t, &m, refs, 1, NULL);
	cleanup_free char *p3 = write_tmp(f, "good.tar", &t);
	assert_int_equal(images_import_file(f->im, p3, NULL, &e), 0);
	cleanup_free char *cfg = xasprintf("%s/%s", images_blob_dir(f->im), m.config_d + 7);
	struct buf junk;
	buf_init(&junk);
	buf_adds(&junk, "{}");
	assert_int_equal(file_write_atomic(cfg, junk.data, junk.len, 0600, &e), 0);
	struct images_resolved r;
	assert_int_equal(images_resolve(f->im, "local/x:1", &r, &e), ERR_IO);
	assert_non_null(strstr(e.msg, "corrupt"));
	buf_fini(&junk);
	img_fini(&m);
	buf_fini(&t);
	buf_fini(&bad);
}

static void not_an_archive_is_refused(void **state)
{
	struct fixture *f = *state;
	struct buf t;
	struct err e = {0};
	buf_init(&t);
	buf_adds(&t, "this is not a tar archive at all");
	for (int i = 0; i < 40; i++)
		buf_adds(&t, " padding padding padding");
	cleanup_free char *p = write_tmp(f, "junk.tar", &t);
	assert_int_equal(images_import_file(f->im, p, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "not a tar archive"));
	buf_fini(&t);
	buf_init(&t);
	tstr(&t, "README", "hi");
	tend(&t);
	cleanup_free char *p2 = write_tmp(f, "other.tar", &t);
	assert_int_equal(images_import_file(f->im, p2, NULL, &e), ERR_INVALID);
	assert_non_null(strstr(e.msg, "neither an OCI image layout"));
	buf_fini(&t);
}

static void remove_collects_unreferenced_blobs(void **state)
{
	struct fixture *f = *state;
	struct img m;
	struct buf t;
	static const char *const refs[] = {"local/gc:1", "local/gc:2"};
	img_build(&m, "gc me\n", 1);
	buf_init(&t);
	oci_tar(&t, &m, refs, 2, NULL);
	cleanup_free char *p = write_tmp(f, "gc.tar", &t);
	struct err e = {0};
	int base = count_files(images_blob_dir(f->im));
	assert_int_equal(images_import_file(f->im, p, NULL, &e), 0);
	assert_int_equal(count_files(images_blob_dir(f->im)), base + 3);
	cleanup_free char *layer = xasprintf("%s/%s", images_blob_dir(f->im), m.layer_d + 7);
	json_t *removed = NULL;
	assert_int_equal(images_remove(f->im, "local/gc:1", &removed, &e), 0);
	assert_int_equal(json_array_size(removed), 1);
	json_decref(removed);
	assert_int_equal(access(layer, F_OK), 0); /* local/gc:2 still uses it */
	assert_int_equal(images_remove(f->im, "local/gc:1", NULL, &e), ERR_NOT_FOUND);
	char byd[200];
	snprintf(byd, sizeof byd, "local/gc@%s", m.manifest_d);
	assert_int_equal(images_remove(f->im, byd, NULL, &e), 0);
	assert_int_not_equal(access(layer, F_OK), 0);
	assert_int_equal(count_files(images_blob_dir(f->im)), base);
	struct images_resolved r;
	assert_int_equal(images_resolve(f->im, "local/gc:2", &r, &e), ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "cocod image import"));
	/* busybox survives it all. */
	assert_int_equal(images_resolve(f->im, "busybox", &r, &e), 0);
	images_resolved_fini(&r);
	img_fini(&m);
	buf_fini(&t);
}

/* --- default image --- */

static void default_busybox_is_present_and_reproducible(void **state)
{
	struct fixture *f = *state;
	if (access("/bin/busybox", R_OK) != 0)
		skip();
	struct images_resolved a, b;
	struct err e = {0};
	if (images_resolve(f->im, "busybox", &a, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(a.nlayers, 1);
	assert_string_equal(a.layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
	json_t *cfg = json_loadb(a.config, a.config_len, 0, NULL);
	json_t *cmd = json_object_get(json_object_get(cfg, "config"), "Cmd");
	assert_string_equal(json_string_value(json_array_get(cmd, 0)), "sh");
	assert_non_null(strstr(json_string_value(json_array_get(
	                           json_object_get(json_object_get(cfg, "config"), "Env"), 0)),
	                       "PATH="));
	json_decref(cfg);
	/* The layer is a real gzip'd tar with bin/sh -> busybox (system tar). */
	char cmdline[512];
	snprintf(cmdline, sizeof cmdline, "tar -tvzf '%s' | grep -q 'bin/sh -> busybox'",
	         a.layers[0].path);
	assert_int_equal(system(cmdline), 0);
	snprintf(cmdline, sizeof cmdline, "tar -xzOf '%s' bin/busybox | cmp -s - /bin/busybox",
	         a.layers[0].path);
	assert_int_equal(system(cmdline), 0);
	/* A second data directory builds the same bytes. */
	struct fixture g = {0};
	snprintf(g.dir, sizeof g.dir, "/tmp/cocod-images-XXXXXX");
	assert_non_null(mkdtemp(g.dir));
	assert_int_equal(open_in(&g), 0);
	assert_int_equal(images_resolve(g.im, "docker.io/library/busybox:latest", &b, &e), 0);
	assert_string_equal(a.layers[0].digest, b.layers[0].digest);
	assert_string_equal(a.manifest_digest, b.manifest_digest);
	/* Removed by the user, it stays removed on the next open. */
	assert_int_equal(images_remove(g.im, "busybox", NULL, &e), 0);
	images_close(g.im);
	assert_int_equal(images_open(g.st, g.dir, &g.im, &e), 0);
	struct images_resolved c;
	assert_int_equal(images_resolve(g.im, "busybox", &c, &e), ERR_NOT_FOUND);
	images_close(g.im);
	store_close(g.st);
	rm_rf(g.dir);
	images_resolved_fini(&a);
	images_resolved_fini(&b);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ref_parse_table),
	    cmocka_unit_test_setup_teardown(tar_rejects_unsafe_entries, setup, teardown),
	    cmocka_unit_test_setup_teardown(tar_rejects_damage, setup, teardown),
	    cmocka_unit_test_setup_teardown(tar_reads_pax_and_gnu_long_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(import_refuses_links_out_of_the_archive, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(import_oci_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(import_docker_save, setup, teardown),
	    cmocka_unit_test_setup_teardown(corrupted_blobs_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(not_an_archive_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(remove_collects_unreferenced_blobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(default_busybox_is_present_and_reproducible, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
