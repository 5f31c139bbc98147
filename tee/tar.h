/* tar: a strict reader that applies one OCI image layer (an uncompressed
 * tar held in memory) onto a root directory.  It is written for hostile
 * input: names are cleaned lexically (no absolute paths, no `..`), every
 * parent directory is resolved inside the root with openat2(RESOLVE_IN_ROOT)
 * so a symlink planted by an earlier entry cannot lead outside, the last
 * component is created with O_EXCL|O_NOFOLLOW after the old one is
 * removed, hard links must point at a non-directory inside the root, and
 * entry count and sizes are capped.  OCI whiteouts (`.wh.NAME`) and opaque
 * directories (`.wh..wh..opq`) remove only what lower layers created.
 * Device nodes are skipped; uid/gid are applied only when running as root. */
#ifndef COCOD_TAR_H
#define COCOD_TAR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct tar_limits {
	uint64_t max_entries; /* headers of all kinds */
	uint64_t max_bytes;   /* sum of regular file sizes */
	uint64_t max_entry;   /* one regular file */
};

/* 100 000 entries, 1 GiB in all, 512 MiB per file. */
extern const struct tar_limits tar_default_limits;

/* Applies the tar in data[0..len) to the directory `rootfd` (lim NULL: the
 * defaults).  On failure the root may hold part of the layer. */
int tar_apply(int rootfd, const void *data, size_t len, const struct tar_limits *lim,
	      struct err *e);

/* Cleans an entry name: strips leading "./", drops "." and empty
 * components; refuses absolute names and `..`.  "" means the root itself.
 * Returns 0 or ERR_INVALID. */
int tar_clean_name(const char *in, char *out, size_t cap, struct err *e);

#endif
