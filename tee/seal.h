/* seal: secrets at rest.  Every sealed value is AES-256-GCM under one
 * 32-byte master key that lives in its own 0600 file outside the database
 * (default <data-dir>/master.key), so a copy of cocod.db alone reveals
 * nothing.  A sealed blob is version(1) || nonce(12) || ciphertext || tag(16);
 * the nonce is random per seal and the value's name is the AAD, so a blob
 * moved to another name (another resource, another key) fails to open.
 * Plaintext buffers handed out are wiped with seal_wipe_free. */
#ifndef COCOD_SEAL_H
#define COCOD_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

#define SEAL_KEY_LEN   32
#define SEAL_OVERHEAD  (1 + 12 + 16)

typedef struct seal seal;

/* Loads the master key from `path`, creating it (random, mode 0600) when
 * absent.  Refuses a key file of the wrong size or readable by others. */
int seal_open(const char *path, seal **out, struct err *e);
/* A seal context over a caller-given key (tests). */
seal *seal_new_key(const uint8_t key[SEAL_KEY_LEN]);
void seal_free(seal *s);

/* Seals `len` bytes for `name`; *out (malloc'd, SEAL_OVERHEAD + len bytes)
 * belongs to the caller. */
int seal_seal(const seal *s, const char *name, const void *data, size_t len, uint8_t **out,
	      size_t *outlen, struct err *e);
/* Opens a blob sealed for `name`; ERR_CRYPTO when it was tampered with,
 * sealed under another key or for another name.  Free *out with
 * seal_wipe_free (it is NUL-terminated for convenience). */
int seal_open_blob(const seal *s, const char *name, const uint8_t *blob, size_t len, uint8_t **out,
		   size_t *outlen, struct err *e);

/* Sealed values kept in the store's kbs_keys table (kbs_schema_sql):
 * seal_store_get opens the value stored under `name` (ERR_NOT_FOUND when
 * absent; free with seal_wipe_free), seal_store_put seals and upserts it. */
int seal_store_get(const seal *s, store *st, const char *name, uint8_t **out, size_t *len,
		   struct err *e);
int seal_store_put(const seal *s, store *st, const char *name, const void *data, size_t len,
		   struct err *e);

/* Wipes `len` bytes of `p` and frees it (NULL is a no-op). */
void seal_wipe_free(void *p, size_t len);

#endif
