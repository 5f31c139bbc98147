/* seal: see seal.h.  AES-256-GCM through OpenSSL's EVP interface; the key
 * sits in a locked-down heap buffer that is wiped when the context goes. */
#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util.h"

#define SEAL_VERSION 1
#define NONCE_LEN    12
#define TAG_LEN      16

struct seal {
	uint8_t key[SEAL_KEY_LEN];
};

seal *seal_new_key(const uint8_t key[SEAL_KEY_LEN])
{
	seal *s = xmalloc(sizeof *s);
	memcpy(s->key, key, SEAL_KEY_LEN);
	return s;
}

void seal_free(seal *s)
{
	if (!s)
		return;
	OPENSSL_cleanse(s->key, sizeof s->key);
	free(s);
}

void seal_wipe_free(void *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

static int create_key(const char *path, struct err *e)
{
	uint8_t key[SEAL_KEY_LEN];
	if (RAND_bytes(key, sizeof key) != 1)
		return err_set(e, ERR_CRYPTO, "no randomness for the master key");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(key, sizeof key);
		return errno == EEXIST ? 0 : err_set(e, ERR_IO, "create %s: %s", path, strerror(errno));
	}
	ssize_t n = write(fd, key, sizeof key);
	int rc = n == (ssize_t)sizeof key && fsync(fd) == 0 ? 0 : -1;
	OPENSSL_cleanse(key, sizeof key);
	close(fd);
	if (rc) {
		unlink(path);
		return err_set(e, ERR_IO, "write %s: %s", path, strerror(errno));
	}
	return 0;
}

int seal_open(const char *path, seal **out, struct err *e)
{
	if (create_key(path, e))
		return e->code;
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return err_set(e, ERR_IO, "open %s: %s", path, strerror(errno));
	if (st.st_mode & 077)
		return err_set(e, ERR_CONFIG, "master key %s is accessible to other users (mode %o)",
			       path, (unsigned)(st.st_mode & 0777));
	if (st.st_size != SEAL_KEY_LEN)
		return err_set(e, ERR_CONFIG, "master key %s: %lld bytes, expected %d", path,
			       (long long)st.st_size, SEAL_KEY_LEN);
	seal *s = xmalloc(sizeof *s);
	if (read(fd, s->key, SEAL_KEY_LEN) != SEAL_KEY_LEN) {
		seal_free(s);
		return err_set(e, ERR_IO, "read %s: %s", path, strerror(errno));
	}
	*out = s;
	return 0;
}

/* One AES-256-GCM pass; enc = 1 seals, 0 opens (tag checked). */
static int gcm(const uint8_t *key, int enc, const uint8_t *iv, const char *aad, const uint8_t *in,
	       size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok = c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1 &&
		    EVP_CipherUpdate(c, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)) == 1 &&
		    EVP_CipherUpdate(c, out, &n, in, (int)len) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
	ok = ok && EVP_CipherFinal_ex(c, out + len, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

int seal_seal(const seal *s, const char *name, const void *data, size_t len, uint8_t **out,
	      size_t *outlen, struct err *e)
{
	if (len > (1u << 30))
		return err_set(e, ERR_TOO_LARGE, "value too large to seal");
	uint8_t *b = xmalloc(SEAL_OVERHEAD + len + 16);
	b[0] = SEAL_VERSION;
	if (RAND_bytes(b + 1, NONCE_LEN) != 1 ||
	    gcm(s->key, 1, b + 1, name, data, len, b + 1 + NONCE_LEN, b + 1 + NONCE_LEN + len)) {
		free(b);
		return err_set(e, ERR_CRYPTO, "sealing %s failed", name);
	}
	*out = b;
	*outlen = SEAL_OVERHEAD + len;
	return 0;
}

int seal_open_blob(const seal *s, const char *name, const uint8_t *blob, size_t len, uint8_t **out,
		   size_t *outlen, struct err *e)
{
	if (len < SEAL_OVERHEAD || blob[0] != SEAL_VERSION)
		return err_set(e, ERR_CRYPTO, "sealed value %s is malformed", name);
	size_t n = len - SEAL_OVERHEAD;
	uint8_t tag[TAG_LEN], *p = xmalloc(n + 16);
	memcpy(tag, blob + 1 + NONCE_LEN + n, TAG_LEN);
	if (gcm(s->key, 0, blob + 1, name, blob + 1 + NONCE_LEN, n, p, tag)) {
		seal_wipe_free(p, n + 16);
		return err_set(e, ERR_CRYPTO,
			       "sealed value %s does not open (tampered, another master key, or moved)",
			       name);
	}
	p[n] = 0;
	*out = p;
	*outlen = n;
	return 0;
}

int seal_store_get(const seal *s, store *st, const char *name, uint8_t **out, size_t *len,
		   struct err *e)
{
	sqlite3_stmt *q = store_stmt(st, "SELECT sealed FROM kbs_keys WHERE name = ?", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE)
		rc = err_set(e, ERR_NOT_FOUND, "no stored key %s", name);
	else if (rc != SQLITE_ROW)
		rc = err_set(e, ERR_DB, "reading key %s: %s", name, sqlite3_errmsg(store_db(st)));
	else
		rc = seal_open_blob(s, name, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0),
				    out, len, e);
	sqlite3_reset(q);
	return rc;
}

int seal_store_put(const seal *s, store *st, const char *name, const void *data, size_t len,
		   struct err *e)
{
	uint8_t *blob;
	size_t n;
	if (seal_seal(s, name, data, len, &blob, &n, e))
		return e->code;
	sqlite3_stmt *q = store_stmt(st,
		"INSERT INTO kbs_keys(name, sealed, created) VALUES(?, ?, strftime('%s','now'))"
		" ON CONFLICT(name) DO UPDATE SET sealed = excluded.sealed", e);
	int rc = q ? 0 : e->code;
	if (q) {
		sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(q, 2, blob, (int)n, SQLITE_STATIC);
		if (sqlite3_step(q) != SQLITE_DONE)
			rc = err_set(e, ERR_DB, "storing key %s: %s", name, sqlite3_errmsg(store_db(st)));
		sqlite3_reset(q);
	}
	free(blob);
	return rc;
}
