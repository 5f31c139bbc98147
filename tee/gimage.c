/* gimage: see gimage.h.  One list of blobs (by digest, with the size the
 * announcing manifest gave) and one of images; an image is "pending"
 * until every layer blob is complete and verified, then unpacked. */
#include "gimage.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "log.h"
#include "tar.h"
#include "util.h"

#define MAX_LAYERS 128
#define MAX_CHUNK (512u << 10)
#define MAX_UNPACKED (1ull << 30)

struct blob {
	char digest[80];
	uint64_t size;
	struct buf data;
	int complete;
	struct blob *next;
};

struct image {
	char *ref, *digest, *rootfs;
	json_t *config, *layers;
	int unpacked;
	struct image *next;
};

struct gimage_store {
	char *dir;
	struct blob *blobs;
	struct image *images;
};

struct gimage_store *gimage_store_new(const char *dir)
{
	struct gimage_store *s = xcalloc(1, sizeof *s);
	s->dir = xstrdup(dir);
	return s;
}

static void blob_free(struct blob *b)
{
	buf_fini(&b->data);
	free(b);
}

static void image_free(struct image *im)
{
	free(im->ref);
	free(im->digest);
	free(im->rootfs);
	json_decref(im->config);
	json_decref(im->layers);
	free(im);
}

void gimage_store_free(struct gimage_store *s)
{
	if (!s)
		return;
	while (s->blobs) {
		struct blob *b = s->blobs;
		s->blobs = b->next;
		blob_free(b);
	}
	while (s->images) {
		struct image *im = s->images;
		s->images = im->next;
		image_free(im);
	}
	free(s->dir);
	free(s);
}

static int valid_digest(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) || strlen(d) != 71)
		return 0;
	for (const char *p = d + 7; *p; p++)
		if (!strchr("0123456789abcdef", *p))
			return 0;
	return 1;
}

static void sha256_digest(const void *p, size_t n, char out[72])
{
	unsigned char md[32];
	unsigned int len = 0;
	EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
	memcpy(out, "sha256:", 7);
	hex_encode(md, 32, out + 7);
}

static int check_digest(const void *p, size_t n, const char *want, const char *what,
			struct err *e)
{
	char got[72];
	sha256_digest(p, n, got);
	if (strcmp(got, want) != 0)
		return err_set(e, ERR_INVALID, "%s: digest mismatch (announced %.71s, content is %s)",
			       what, want, got);
	return 0;
}

static struct blob *find_blob(struct gimage_store *s, const char *digest)
{
	for (struct blob *b = s->blobs; b; b = b->next)
		if (!strcmp(b->digest, digest))
			return b;
	return NULL;
}

static void drop_blob(struct gimage_store *s, struct blob *victim)
{
	for (struct blob **pp = &s->blobs; *pp; pp = &(*pp)->next)
		if (*pp == victim) {
			*pp = victim->next;
			blob_free(victim);
			return;
		}
}

static struct image *find_image(struct gimage_store *s, const char *key)
{
	for (struct image *im = s->images; im; im = im->next)
		if (!strcmp(im->digest, key) || !strcmp(im->ref, key))
			return im;
	return NULL;
}

/* A layer descriptor needs a digest and a size; the config descriptor too. */
static int check_descriptor(const json_t *d, const char *what, struct err *e)
{
	json_t *dg = json_object_get(d, "digest"), *sz = json_object_get(d, "size");
	if (!json_is_object(d) || !valid_digest(json_string_value(dg)) || !json_is_integer(sz) ||
	    json_integer_value(sz) < 0)
		return err_set(e, ERR_INVALID, "manifest: %s descriptor needs a sha256 digest and a size",
			       what);
	return 0;
}

static int parse_manifest(const char *text, const char *config_text, json_t **layers,
			  json_t **config, struct err *e)
{
	json_error_t je;
	json_t *m = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	json_t *cd = json_object_get(m, "config"), *ls = json_object_get(m, "layers");
	int rc = 0;
	size_t i;
	json_t *d;
	if (!json_is_object(m) || json_integer_value(json_object_get(m, "schemaVersion")) != 2 ||
	    !json_is_array(ls) || json_array_size(ls) > MAX_LAYERS)
		rc = err_set(e, ERR_INVALID, "manifest: not an image manifest (schemaVersion 2, "
					     "at most %d layers)", MAX_LAYERS);
	else if (check_descriptor(cd, "config", e) < 0)
		rc = e->code;
	else if (json_integer_value(json_object_get(cd, "size")) != (json_int_t)strlen(config_text))
		rc = err_set(e, ERR_INVALID, "config: size differs from the manifest's descriptor");
	else if (check_digest(config_text, strlen(config_text),
			      json_string_value(json_object_get(cd, "digest")), "config", e) < 0)
		rc = e->code;
	json_array_foreach(ls, i, d) if (rc == 0 && check_descriptor(d, "layer", e) < 0) rc = e->code;
	if (rc == 0) {
		*config = json_loads(config_text, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(*config)) {
			json_decref(*config);
			rc = err_set(e, ERR_INVALID, "config: not a JSON object");
		}
	}
	if (rc == 0)
		*layers = json_incref(ls);
	json_decref(m);
	return rc;
}

static int layer_complete(struct gimage_store *s, const json_t *d)
{
	struct blob *b = find_blob(s, json_string_value(json_object_get(d, "digest")));
	return b && b->complete;
}

static json_t *missing_layers(struct gimage_store *s, const struct image *im)
{
	json_t *out = json_array(), *d;
	size_t i;
	json_array_foreach(im->layers, i, d) if (!layer_complete(s, d))
		json_array_append(out, json_object_get(d, "digest"));
	return out;
}

int gimage_gunzip(const void *in, size_t len, size_t cap, char **out, size_t *outlen,
		  struct err *e)
{
	enum { STEP = 256 << 10 };
	if (len > UINT32_MAX)
		return err_set(e, ERR_TOO_LARGE, "layer: more than 4 GiB compressed");
	z_stream z = {.next_in = (Bytef *)(uintptr_t)in, .avail_in = (uInt)len};
	if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) /* 16 + : the gzip wrapper */
		return err_set(e, ERR_INTERNAL, "layer: zlib: %s", z.msg ? z.msg : "init failed");
	struct buf b;
	buf_init(&b);
	int rc = Z_OK;
	while (rc == Z_OK && b.len <= cap) {
		buf_reserve(&b, STEP);
		z.next_out = (Bytef *)b.data + b.len;
		z.avail_out = STEP;
		rc = inflate(&z, Z_NO_FLUSH);
		b.len += STEP - z.avail_out;
		/* gzip allows members back to back (RFC 1952 2.2), as gzip -d does */
		if (rc == Z_STREAM_END && z.avail_in >= 2 && z.next_in[0] == 0x1f &&
		    z.next_in[1] == 0x8b && inflateReset(&z) == Z_OK)
			rc = Z_OK;
	}
	int over = b.len > cap, ended = rc == Z_STREAM_END && z.avail_in == 0;
	inflateEnd(&z);
	if (over || !ended) {
		buf_fini(&b);
		return over ? err_set(e, ERR_TOO_LARGE, "layer: more than %zu bytes uncompressed", cap)
			    : err_set(e, ERR_INVALID, "layer: not valid gzip");
	}
	*out = buf_steal(&b, outlen);
	return 0;
}

/* Applies one layer blob (gzip or plain tar) and checks its diff_id. */
static int apply_layer(int rootfd, const struct blob *b, const char *diff_id, struct err *e)
{
	const unsigned char *p = (const unsigned char *)b->data.data;
	char *plain = NULL;
	size_t plen = b->data.len;
	if (plen >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
		return err_set(e, ERR_INVALID, "layer %s: zstd is not supported", b->digest);
	if (plen >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
		if (gimage_gunzip(p, plen, MAX_UNPACKED, &plain, &plen, e) < 0)
			return err_wrap(e, "layer %s", b->digest);
		p = (const unsigned char *)plain;
	}
	int rc = diff_id ? check_digest(p, plen, diff_id, "layer diff_id", e) : 0;
	if (rc == 0 && (rc = tar_apply(rootfd, p, plen, NULL, e)) < 0)
		err_wrap(e, "layer %s", b->digest);
	free(plain);
	return rc;
}

static int unpack(struct gimage_store *s, struct image *im, struct err *e)
{
	char *top = xasprintf("%s/%s", s->dir, im->digest + 7);
	im->rootfs = xasprintf("%s/rootfs", top);
	int rc = mkdir_p(top, 0700, e);
	free(top);
	if (rc == 0 && mkdir(im->rootfs, 0755) < 0 && errno != EEXIST)
		rc = err_set(e, ERR_IO, "mkdir %s: %s", im->rootfs, strerror(errno));
	int rootfd = rc ? -1 : open(im->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rc == 0 && rootfd < 0)
		rc = err_set(e, ERR_IO, "open %s: %s", im->rootfs, strerror(errno));
	json_t *diff_ids = json_object_get(json_object_get(im->config, "rootfs"), "diff_ids"), *d;
	size_t i;
	uint64_t t0 = now_ns();
	json_array_foreach(im->layers, i, d)
	{
		if (rc)
			break;
		struct blob *b = find_blob(s, json_string_value(json_object_get(d, "digest")));
		if (!b) {
			rc = err_set(e, ERR_INTERNAL, "layer %zu vanished", i);
			break;
		}
		rc = apply_layer(rootfd, b, json_string_value(json_array_get(diff_ids, i)), e);
	}
	if (rootfd >= 0)
		close(rootfd);
	if (rc == 0) {
		im->unpacked = 1;
		log_info("gimage", "unpacked ref=%s layers=%zu ms=%llu", im->ref,
			 json_array_size(im->layers), (unsigned long long)((now_ns() - t0) / 1000000));
	}
	return rc;
}

static int needed_by_pending(struct gimage_store *s, const char *digest)
{
	for (struct image *im = s->images; im; im = im->next) {
		size_t i;
		json_t *d;
		json_array_foreach(im->layers, i, d) if (!im->unpacked &&
							 !strcmp(json_string_value(json_object_get(d, "digest")),
								 digest)) return 1;
	}
	return 0;
}

static void remove_image(struct gimage_store *s, struct image *victim)
{
	for (struct image **pp = &s->images; *pp; pp = &(*pp)->next)
		if (*pp == victim) {
			*pp = victim->next;
			image_free(victim);
			return;
		}
}

/* Unpacks every pending image whose layers are all here, then frees the
 * blobs no pending image needs. */
static int unpack_ready(struct gimage_store *s, struct err *e)
{
	int rc = 0;
	for (struct image *im = s->images, *next; im; im = next) {
		next = im->next;
		json_t *miss = im->unpacked ? NULL : missing_layers(s, im);
		if (miss && json_array_size(miss) == 0 && unpack(s, im, e) < 0) {
			rc = e->code;
			log_error("gimage", "unpack ref=%s: %s", im->ref, e->msg);
			remove_image(s, im);
		}
		json_decref(miss);
	}
	for (struct blob *b = s->blobs, *next; b; b = next) {
		next = b->next;
		if (b->complete && !needed_by_pending(s, b->digest))
			drop_blob(s, b);
	}
	return rc;
}

int gimage_begin(struct gimage_store *s, const json_t *body, json_t **missing, struct err *e)
{
	const char *ref, *manifest, *config, *digest;
	json_error_t je;
	if (json_unpack_ex((json_t *)(uintptr_t)body, &je, 0, "{s:s, s:s, s:s, s:s}", "ref", &ref,
			   "manifest", &manifest, "config", &config, "manifest_digest", &digest))
		return err_set(e, ERR_INVALID, "image_begin: %s", je.text);
	if (!valid_digest(digest))
		return err_set(e, ERR_INVALID, "image_begin: manifest_digest is not sha256:<64 hex>");
	if (check_digest(manifest, strlen(manifest), digest, "manifest", e) < 0)
		return e->code;
	struct image *im = find_image(s, digest);
	if (!im) {
		im = xcalloc(1, sizeof *im);
		if (parse_manifest(manifest, config, &im->layers, &im->config, e) < 0) {
			free(im);
			return e->code;
		}
		im->digest = xstrdup(digest);
		im->ref = xstrdup(ref);
		im->next = s->images;
		s->images = im;
	} else if (strcmp(im->ref, ref)) {
		free(im->ref);
		im->ref = xstrdup(ref);
	}
	*missing = im->unpacked ? json_array() : missing_layers(s, im);
	if (json_array_size(*missing) == 0 && unpack_ready(s, e) < 0) {
		json_decref(*missing);
		*missing = NULL;
		return e->code;
	}
	return 0;
}

/* The size a pending image announced for `digest`, or -1. */
static int64_t announced_size(struct gimage_store *s, const char *digest)
{
	for (struct image *im = s->images; im; im = im->next) {
		size_t i;
		json_t *d;
		json_array_foreach(im->layers, i, d)
		{
			if (!im->unpacked &&
			    !strcmp(json_string_value(json_object_get(d, "digest")), digest))
				return json_integer_value(json_object_get(d, "size"));
		}
	}
	return -1;
}

static int decode_b64(const char *in, struct buf *out, struct err *e)
{
	size_t n = strlen(in);
	size_t pad = (n && in[n - 1] == '=') + (n > 1 && in[n - 2] == '=');
	if (n % 4 || n / 4 * 3 - pad > MAX_CHUNK)
		return err_set(e, ERR_INVALID, "blob_chunk: data_b64 is not base64 of at most 512 KiB");
	buf_reserve(out, n / 4 * 3);
	int got = n ? EVP_DecodeBlock((unsigned char *)out->data + out->len,
				      (const unsigned char *)in, (int)n)
		    : 0;
	if (got < 0)
		return err_set(e, ERR_INVALID, "blob_chunk: data_b64 is not base64");
	got -= (int)pad;
	out->len += (size_t)got;
	out->data[out->len] = '\0';
	return 0;
}

static int finish_blob(struct gimage_store *s, struct blob *b, struct err *e)
{
	if (b->data.len != b->size || check_digest(b->data.data, b->data.len, b->digest,
						   "layer", e) < 0) {
		if (b->data.len != b->size)
			err_set(e, ERR_INVALID, "layer %s: %zu bytes, the manifest says %llu", b->digest,
				b->data.len, (unsigned long long)b->size);
		log_warn("gimage", "refused blob %s: %s", b->digest, e->msg);
		drop_blob(s, b);
		return e->code;
	}
	b->complete = 1;
	return unpack_ready(s, e);
}

int gimage_chunk(struct gimage_store *s, const json_t *body, const void *raw, size_t rawlen,
		 struct err *e)
{
	const char *digest, *data = NULL;
	json_int_t offset;
	int last = 0;
	json_error_t je;
	if (json_unpack_ex((json_t *)(uintptr_t)body, &je, 0, "{s:s, s:I, s?s, s?b}", "digest",
			   &digest, "offset", &offset, "data_b64", &data, "last", &last))
		return err_set(e, ERR_INVALID, "blob_chunk: %s", je.text);
	if (!data == !raw)
		return err_set(e, ERR_INVALID, "blob_chunk: needs data_b64 or a payload (not both)");
	if (raw && rawlen > MAX_CHUNK)
		return err_set(e, ERR_INVALID, "blob_chunk: payload larger than 512 KiB");
	int64_t size = valid_digest(digest) ? announced_size(s, digest) : -1;
	if (size < 0)
		return err_set(e, ERR_INVALID, "blob_chunk: %.80s was not announced by image_begin",
			       digest);
	struct blob *b = find_blob(s, digest);
	if (b && b->complete)
		return err_set(e, ERR_CONFLICT, "blob_chunk: %s is already complete", digest);
	if (!b) {
		b = xcalloc(1, sizeof *b);
		snprintf(b->digest, sizeof b->digest, "%s", digest);
		b->size = (uint64_t)size;
		buf_init(&b->data);
		b->next = s->blobs;
		s->blobs = b;
	}
	if ((uint64_t)offset != b->data.len)
		return err_set(e, ERR_INVALID, "blob_chunk: offset %lld, expected %zu",
			       (long long)offset, b->data.len);
	if (raw)
		buf_add(&b->data, raw, rawlen);
	if ((data && decode_b64(data, &b->data, e) < 0) || b->data.len > b->size) {
		if (b->data.len > b->size)
			err_set(e, ERR_INVALID, "blob_chunk: %s is larger than announced", digest);
		drop_blob(s, b);
		return e->code;
	}
	return last ? finish_blob(s, b, e) : 0;
}

int gimage_find(struct gimage_store *s, const char *ref, const char **rootfs,
		const json_t **config, struct err *e)
{
	struct image *im = find_image(s, ref);
	if (!im || !im->unpacked)
		return err_set(e, ERR_NOT_FOUND, "image %.100s is not in the guest", ref);
	*rootfs = im->rootfs;
	*config = im->config;
	return 0;
}
