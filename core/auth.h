/* auth: the admin bearer token.  On first start a random 256-bit token is
 * generated; the store keeps only its SHA-256, the token itself goes to
 * <data-dir>/admin.token (mode 0600) and into <data-dir>/kubeconfig.
 * Every check reads the hash from the store, so `cocod token rotate` (run
 * from another process) takes effect at once. */
#ifndef COCOD_AUTH_H
#define COCOD_AUTH_H

#include "err.h"
#include "store.h"

#define AUTH_TOKEN_LEN 64 /* hex characters */

/* Creates the token when the store has none; *created is set to 1 then.
 * The token file is (re)written only on creation. */
int auth_init(store *s, const char *data_dir, int *created, struct err *e);

/* The daemon's view of the admin token: the stored hash, cached, and read
 * again when <data-dir>/admin.token changes (rotation writes the store
 * first, then the file) or when a token does not match the cached hash. */
typedef struct auth auth;
auth *auth_new(store *s, const char *data_dir);
void auth_free(auth *a);

/* Checks an Authorization header value ("Bearer <token>", may be NULL):
 * 0 when it carries the admin token, ERR_UNAUTHORIZED otherwise (with a
 * message that never echoes the presented token). */
int auth_check(auth *a, const char *authorization, struct err *e);

/* Replaces the token: new hash in the store, new admin.token and, when it
 * exists, the token in the kubeconfig. */
int auth_rotate(store *s, const char *data_dir, struct err *e);

/* Writes <data-dir>/kubeconfig (mode 0600) for `server_url`, with the CA
 * certificate from `ca_path` (NULL: none; the system roots apply) and the
 * token read from <data-dir>/admin.token.  Remembers url and CA path in the
 * store so that auth_rotate can rewrite it. */
int auth_write_kubeconfig(store *s, const char *data_dir, const char *server_url,
			  const char *ca_path, struct err *e);

#endif
