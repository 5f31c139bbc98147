/* images: the local, content-addressed image store.  Blobs live under
 * <data-dir>/images/blobs/sha256/<hex> (files 0600, directories 0700), each
 * placed by rename after its SHA-256 was checked; the index (tags, which
 * blobs each manifest uses) lives in the SQLite store (migration 4).
 *
 * Images arrive as archives: an OCI image layout tar (index.json + blobs,
 * tags from `org.opencontainers.image.ref.name`) or a `docker save` tar
 * (manifest.json + config + layer tars, converted to an OCI manifest), each
 * optionally gzip-compressed.  Archives are read by a strict tar reader of
 * our own (ustar, pax, GNU long names; no path escapes, no devices, size and
 * entry caps, links resolved inside the archive only).  Unreferenced blobs
 * are removed when an image is removed or retagged.
 *
 * References are normalised like docker and Kubernetes do: `busybox`,
 * `busybox:latest` and `docker.io/library/busybox:latest` are the same
 * image; `name@sha256:<64 hex>` names one by manifest digest.
 *
 * On the first open of a data directory the store builds `busybox:latest`
 * from the host's static /bin/busybox (one reproducible gzip layer, no
 * downloads).  Every mutation runs in one store transaction, so the daemon
 * and a CLI process may share a data directory. */
#ifndef COCOD_IMAGES_H
#define COCOD_IMAGES_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

typedef struct images images;

#define IMAGES_DIGEST_LEN 71 /* "sha256:" + 64 hex */

/* A parsed, normalised reference: name "docker.io/library/busybox", tag
 * "latest" (or "" when only a digest was given), digest "" or
 * "sha256:<hex>". */
struct images_ref {
	char name[256];
	char tag[129];
	char digest[IMAGES_DIGEST_LEN + 1];
};

/* Parses `s`; ERR_INVALID with a message naming the problem otherwise. */
int images_ref_parse(const char *s, struct images_ref *out, struct err *e);
/* "name:tag", "name@digest" or "name:tag@digest" into `out`. */
void images_ref_format(const struct images_ref *r, char *out, size_t len);

/* Opens the store under <data_dir>/images (creating it), sweeps staging
 * leftovers, and on the first open of this data directory imports the
 * default busybox image (a missing or dynamic /bin/busybox only logs a
 * warning).  `s` is borrowed and must outlive the images. */
int images_open(store *s, const char *data_dir, images **out, struct err *e);
void images_close(images *im);

/* Imports an archive file.  On success *refs_out (may be NULL) receives an
 * array of {"ref", "name", "tag", "digest"} for every tag written.
 * `default_name` (may be NULL) is the repository for OCI layouts whose
 * ref.name annotation is a bare tag ("latest"); without it such an archive
 * is refused with a message saying so.  Nothing changes on failure. */
int images_import(images *im, const char *path, const char *default_name, json_t **refs_out,
                  struct err *e);
/* images_import with no default name. */
int images_import_file(images *im, const char *path, json_t **refs_out, struct err *e);
/* The same from memory (the REST body): staged to a temporary file first. */
int images_import_buffer(images *im, const void *data, size_t len, const char *default_name,
                         json_t **refs_out, struct err *e);

/* Every tag, sorted: an array of {"ref", "name", "tag", "digest",
 * "configDigest", "size", "created"} (created = import time, RFC 3339). */
int images_list(images *im, json_t **out, struct err *e);

/* One image: the list fields plus "mediaType", "config" (the image config
 * JSON), "layers" [{digest, mediaType, size}] and "tags" (every ref that
 * names the same manifest).  ERR_NOT_FOUND for an unknown ref. */
int images_inspect(images *im, const char *ref, json_t **out, struct err *e);

/* Removes a tag (or, for name@digest, every tag of that name on that
 * manifest) and deletes blobs nothing references any more.  *removed (may
 * be NULL) receives the refs removed.  ERR_NOT_FOUND for an unknown ref. */
int images_remove(images *im, const char *ref, json_t **removed, struct err *e);

/* What the runtime needs to send an image into a guest.  Every string is
 * owned by the struct (images_resolved_fini frees them).  The manifest and
 * config texts are the exact stored bytes (their digests were re-checked by
 * images_resolve); layer files are not re-hashed here: the guest verifies
 * them while unpacking. */
struct images_layer {
	char digest[IMAGES_DIGEST_LEN + 1];
	char *media_type;
	uint64_t size;
	char *path; /* absolute blob path on the host */
};
struct images_resolved {
	struct images_ref ref; /* normalised; tag "" when resolved by digest */
	char manifest_digest[IMAGES_DIGEST_LEN + 1];
	char *manifest_media_type;
	char *manifest; /* NUL-terminated, manifest_len bytes */
	size_t manifest_len;
	char *manifest_path;
	char config_digest[IMAGES_DIGEST_LEN + 1];
	char *config;
	size_t config_len;
	char *config_path;
	size_t nlayers;
	struct images_layer *layers; /* base first */
};

/* Resolves `ref` to its manifest, config and layers.  ERR_NOT_FOUND (the
 * message says how to import the image) when it is not in the store;
 * ERR_INVALID for a malformed ref; ERR_IO when a stored blob is missing or
 * does not match its digest. */
int images_resolve(images *im, const char *ref, struct images_resolved *out, struct err *e);
void images_resolved_fini(struct images_resolved *r);

/* Reads an archive (tar or gzip'd tar) with the same strict reader import
 * uses and lists its entries as [{"name", "type" ("file", "dir", "symlink",
 * "hardlink"), "size", "link"}].  For tests and diagnostics. */
int images_tar_scan(const char *path, json_t **out, struct err *e);

/* The blob directory (<data-dir>/images/blobs/sha256). */
const char *images_blob_dir(const images *im);

#endif
