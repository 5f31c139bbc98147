/* imagesapi: REST for the image store under /apis/cocod.io/v1/images, all
 * admin-only:
 *   GET    images                   list (kind ImageList)
 *   GET    images/{ref}             one image with config and layers; a ref
 *                                   with slashes may span path segments
 *                                   (images/docker.io/library/busybox:latest)
 *                                   or go in ?ref=
 *   DELETE images/{ref} | images?ref=REF   remove a tag (or name@digest)
 *   POST   images[?name=REPO]       import the body: an OCI layout or
 *                                   docker save tar, optionally gzip'd
 * The request body is bounded by the server's max_body_bytes (4 MiB by
 * default): larger archives go through `cocod image import FILE`, which
 * writes into the data directory directly.  Imports run on the loop thread
 * (hashing a body of at most max_body_bytes). */
#ifndef COCOD_IMAGESAPI_H
#define COCOD_IMAGESAPI_H

#include "api.h"
#include "images.h"

int imagesapi_register(api *a, images *im, struct err *e);

#endif
