/* auth: admin token generation, verification and rotation, and the
 * kubeconfig that carries it.  The token exists only in the token file and
 * the kubeconfig (both 0600); buffers that held it are wiped. */
#include "auth.h"

#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "util.h"

#define META_HASH "admin_token_sha256"
#define META_URL "kubeconfig_server"
#define META_CA "kubeconfig_ca"

static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	hex_encode(md, sizeof md, out);
}

static char *token_path(const char *data_dir) { return xasprintf("%s/admin.token", data_dir); }

/* Generates a token, stores its hash, then writes the file: a running
 * daemon re-reads the hash when it sees the file change, so the old token
 * stops working at once.  A crash in between leaves a hash without its
 * file; running `cocod token rotate` again recovers. */
static int new_token(store *s, const char *data_dir, struct err *e)
{
	unsigned char raw[32];
	char tok[AUTH_TOKEN_LEN + 2], hash[65];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return err_set(e, ERR_CRYPTO, "no randomness for the admin token");
	hex_encode(raw, sizeof raw, tok);
	OPENSSL_cleanse(raw, sizeof raw);
	sha256_hex(tok, AUTH_TOKEN_LEN, hash);
	tok[AUTH_TOKEN_LEN] = '\n';
	cleanup_free char *path = token_path(data_dir);
	int rc = store_meta_set(s, META_HASH, hash, e);
	if (rc == 0)
		rc = file_write_atomic(path, tok, AUTH_TOKEN_LEN + 1, 0600, e);
	OPENSSL_cleanse(tok, sizeof tok);
	return rc;
}

int auth_init(store *s, const char *data_dir, int *created, struct err *e)
{
	char *hash = NULL;
	struct err ignored;
	*created = 0;
	if (store_meta_get(s, META_HASH, &hash, &ignored) == 0) {
		free(hash);
		return 0;
	}
	int rc = new_token(s, data_dir, e);
	if (rc == 0) {
		*created = 1;
		log_info("auth", "created admin token file=%s/admin.token", data_dir);
	}
	return rc;
}

struct auth {
	store *store;
	char *token_path;
	char hash[65]; /* "" when not cached */
	struct stat seen; /* of the token file when the hash was read */
};

auth *auth_new(store *s, const char *data_dir)
{
	auth *a = xcalloc(1, sizeof *a);
	a->store = s;
	a->token_path = token_path(data_dir);
	return a;
}

void auth_free(auth *a)
{
	if (!a)
		return;
	free(a->token_path);
	free(a);
}

static int same_file(const struct stat *x, const struct stat *y)
{
	return x->st_ino == y->st_ino && x->st_dev == y->st_dev &&
	       x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

/* Reads the stored hash into the cache; 0 or -1 when there is none. */
static int reload(auth *a)
{
	char *stored = NULL;
	struct err ignored;
	a->hash[0] = '\0';
	if (stat(a->token_path, &a->seen) != 0)
		memset(&a->seen, 0, sizeof a->seen);
	if (store_meta_get(a->store, META_HASH, &stored, &ignored) != 0)
		return -1;
	if (strlen(stored) == 64)
		memcpy(a->hash, stored, 65);
	free(stored);
	return a->hash[0] ? 0 : -1;
}

int auth_check(auth *a, const char *authorization, struct err *e)
{
	static const char prefix[] = "Bearer ";
	if (!authorization)
		return err_set(e, ERR_UNAUTHORIZED, "Unauthorized: an admin bearer token is required");
	if (strncasecmp(authorization, prefix, sizeof prefix - 1) != 0)
		return err_set(e, ERR_UNAUTHORIZED, "Unauthorized: expected an Authorization: Bearer token");
	const char *tok = authorization + sizeof prefix - 1;
	while (*tok == ' ')
		tok++;
	char presented[65];
	struct stat now;
	sha256_hex(tok, strlen(tok), presented);
	int file_ok = stat(a->token_path, &now) == 0;
	if (!a->hash[0] || !file_ok || !same_file(&now, &a->seen))
		reload(a);
	if (a->hash[0] && ct_equal(presented, a->hash, 64))
		return 0;
	/* A token newer than the cache (rotation seen before its file): one
	 * more look at the store decides. */
	if (reload(a) == 0 && ct_equal(presented, a->hash, 64))
		return 0;
	return err_set(e, ERR_UNAUTHORIZED, a->hash[0] ? "Unauthorized: invalid bearer token"
						      : "Unauthorized: no admin token is configured");
}

/* Base64 of a whole file (the CA certificate for the kubeconfig). */
static int file_base64(const char *path, char **out, struct err *e)
{
	char *data;
	size_t len;
	int rc = file_read(path, 1 << 20, &data, &len, e);
	if (rc)
		return rc;
	char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)len);
	free(data);
	*out = b64;
	return 0;
}

static int write_kubeconfig(const char *data_dir, const char *url, const char *ca_path,
			    struct err *e)
{
	cleanup_free char *tpath = token_path(data_dir);
	cleanup_free char *kpath = xasprintf("%s/kubeconfig", data_dir);
	cleanup_free char *ca_b64 = NULL;
	char *tok = NULL;
	size_t toklen;
	if (ca_path && ca_path[0] && file_base64(ca_path, &ca_b64, e))
		return err_wrap(e, "kubeconfig");
	int rc = file_read(tpath, 4096, &tok, &toklen, e);
	if (rc)
		return err_wrap(e, "kubeconfig");
	while (toklen > 0 && (tok[toklen - 1] == '\n' || tok[toklen - 1] == '\r'))
		tok[--toklen] = '\0';
	struct buf b;
	buf_init(&b);
	buf_printf(&b,
		   "# Written by cocod; regenerated at every start and on token rotation.\n"
		   "apiVersion: v1\nkind: Config\nclusters:\n- name: cocod\n  cluster:\n"
		   "    server: %s\n",
		   url);
	if (ca_b64)
		buf_printf(&b, "    certificate-authority-data: %s\n", ca_b64);
	buf_printf(&b,
		   "users:\n- name: cocod-admin\n  user:\n    token: %s\n"
		   "contexts:\n- name: cocod\n  context:\n    cluster: cocod\n    user: cocod-admin\n"
		   "    namespace: default\ncurrent-context: cocod\npreferences: {}\n",
		   tok);
	OPENSSL_cleanse(tok, toklen);
	free(tok);
	rc = file_write_atomic(kpath, b.data, b.len, 0600, e);
	OPENSSL_cleanse(b.data, b.len);
	buf_fini(&b);
	return rc;
}

int auth_write_kubeconfig(store *s, const char *data_dir, const char *server_url,
			  const char *ca_path, struct err *e)
{
	int rc = write_kubeconfig(data_dir, server_url, ca_path, e);
	if (rc == 0)
		rc = store_meta_set(s, META_URL, server_url, e);
	if (rc == 0)
		rc = store_meta_set(s, META_CA, ca_path ? ca_path : "", e);
	return rc;
}

int auth_rotate(store *s, const char *data_dir, struct err *e)
{
	int rc = new_token(s, data_dir, e);
	if (rc)
		return rc;
	log_info("auth", "rotated admin token file=%s/admin.token", data_dir);
	char *url = NULL, *ca = NULL;
	struct err ignored;
	if (store_meta_get(s, META_URL, &url, &ignored) == 0) {
		store_meta_get(s, META_CA, &ca, &ignored);
		rc = write_kubeconfig(data_dir, url, ca, e);
	}
	free(url);
	free(ca);
	return rc;
}
