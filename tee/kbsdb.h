/* kbsdb: the KBS's tables (see kbs_schema_sql in kbs.c): resources, sealed
 * at rest under the master key with their path as AAD, and reference
 * values in Trustee's RVPS shape (name, value, expiration).  Resource
 * bytes never reach a log or an error message; listings give names only.
 * Loop thread only, like the store. */
#ifndef COCOD_KBSDB_H
#define COCOD_KBSDB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "seal.h"
#include "store.h"

/* Seals and upserts the resource at `path` ("repo/type/tag"). */
int kbsdb_resource_put(store *st, const seal *s, const char *path, const void *data, size_t len,
		       struct err *e);
/* Opens the resource; ERR_NOT_FOUND when absent.  Free with seal_wipe_free. */
int kbsdb_resource_get(store *st, const seal *s, const char *path, uint8_t **data, size_t *len,
		       struct err *e);
/* ERR_NOT_FOUND when absent. */
int kbsdb_resource_delete(store *st, const char *path, struct err *e);
/* ["repo/type/tag", ...] sorted (new reference). */
int kbsdb_resource_list(store *st, json_t **out, struct err *e);

/* Adds (or renews) `value` under reference-value `name`, valid until
 * `expires` (0: never). */
int kbsdb_refval_add(store *st, const char *name, const char *value, time_t expires, struct err *e);
/* Trustee's stored form [{version, name, expiration, value}] of one name
 * (empty array when unknown). */
int kbsdb_refval_get(store *st, const char *name, time_t now, json_t **out, struct err *e);
/* Every unexpired value grouped by name: {name: [value, ...]}. */
int kbsdb_refval_all(store *st, time_t now, json_t **out, struct err *e);

#endif
