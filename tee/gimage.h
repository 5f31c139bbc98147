/* gimage: the guest agent's image store.  The host sends an image's
 * manifest and config as text (image_begin) and its layers in chunks
 * (blob_chunk); the guest trusts none of it: the manifest must hash to the
 * manifest digest it was announced with, the config to the manifest's
 * config descriptor, every layer to its descriptor (size and sha256) and,
 * uncompressed, to the config's diff_id.  Only then are the layers applied
 * in order with tar_apply into a per-image root under the store directory
 * (mode 0700).  Blobs live in guest memory until their image is unpacked,
 * then they are freed (an image sharing a layer asks for it again). */
#ifndef COCOD_GIMAGE_H
#define COCOD_GIMAGE_H

#include <jansson.h>

#include "err.h"

struct gimage_store;

struct gimage_store *gimage_store_new(const char *dir);
void gimage_store_free(struct gimage_store *s);

/* image_begin: validates the body; *missing receives the array of layer
 * digests still needed (caller decrefs).  With none missing the image is
 * unpacked before this returns. */
int gimage_begin(struct gimage_store *s, const json_t *body, json_t **missing, struct err *e);

/* blob_chunk: appends one chunk, given either as the frame payload
 * (`data`, `len`; borrowed) or as the body's data_b64 (then `data` is
 * NULL); on `last` verifies the blob and unpacks every image that has all
 * its layers. */
int gimage_chunk(struct gimage_store *s, const json_t *body, const void *data, size_t len,
		 struct err *e);

/* Finds an unpacked image by ref or manifest digest; the root path and
 * config document are borrowed from the store. */
int gimage_find(struct gimage_store *s, const char *ref, const char **rootfs,
		const json_t **config, struct err *e);

/* Decompresses gzip data (one member or several back to back) with zlib,
 * in this process: a fork and a busybox exec cost more than the inflate
 * itself under TCG.  Refuses more than `cap` output bytes, truncated
 * streams and trailing bytes that are not another member.  The caller
 * frees *out. */
int gimage_gunzip(const void *in, size_t len, size_t cap, char **out, size_t *outlen,
		  struct err *e);

#endif
