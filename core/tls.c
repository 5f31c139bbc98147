/* tls: CA and server certificate generation with OpenSSL 3 (EC P-256,
 * SHA-256), checks of an existing certificate, and the server SSL_CTX.
 * Subject alternative names are built as GENERAL_NAME structures, never by
 * formatting a config string, so an odd extra name cannot inject
 * extensions. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "util.h"

#define CA_DAYS 3650
#define SERVER_DAYS 365
#define RENEW_DAYS 30

const char *tls_error_string(char *buf, size_t len)
{
	unsigned long code = ERR_get_error();
	if (!code) {
		snprintf(buf, len, "unknown OpenSSL error");
		return buf;
	}
	ERR_error_string_n(code, buf, len);
	ERR_clear_error();
	return buf;
}

static int ssl_fail(struct err *e, const char *what)
{
	char msg[200];
	return err_set(e, ERR_CRYPTO, "%s: %s", what, tls_error_string(msg, sizeof msg));
}

void tls_paths_fini(struct tls_paths *p)
{
	free(p->ca_cert);
	free(p->cert);
	free(p->key);
	memset(p, 0, sizeof *p);
}

/* The names the server certificate must cover, NULL-terminated; the array
 * is malloc'd, its strings borrowed except the host name (names[3]). */
static const char **wanted_names(char *const *extra, char *host, size_t hostlen)
{
	size_t n = 0;
	while (extra && extra[n])
		n++;
	const char **names = xcalloc(n + 5, sizeof *names);
	names[0] = "127.0.0.1";
	names[1] = "::1";
	names[2] = "localhost";
	size_t k = 3;
	if (gethostname(host, hostlen) == 0 && host[0] && strcmp(host, "localhost") != 0)
		names[k++] = host;
	for (size_t i = 0; i < n; i++)
		names[k++] = extra[i];
	names[k] = NULL;
	return names;
}

static int add_name(GENERAL_NAMES *gens, const char *name)
{
	unsigned char ip[16];
	GENERAL_NAME *g = GENERAL_NAME_new();
	int iplen = inet_pton(AF_INET, name, ip) == 1 ? 4 : inet_pton(AF_INET6, name, ip) == 1 ? 16 : 0;
	if (iplen) {
		ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
		ASN1_OCTET_STRING_set(os, ip, iplen);
		GENERAL_NAME_set0_value(g, GEN_IPADD, os);
	} else {
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		ASN1_STRING_set(s, name, (int)strlen(name));
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
	}
	return sk_GENERAL_NAME_push(gens, g) > 0 ? 0 : -1;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* A new certificate for `key`, signed by `issuer_key` (self-signed when
 * issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, int days, X509 *issuer,
		       EVP_PKEY *issuer_key, const char **names)
{
	unsigned char serial[16];
	X509 *x = X509_new();
	RAND_bytes(serial, sizeof serial);
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_NAME *subj = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_UTF8, (const unsigned char *)"cocod", -1, -1, 0);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subj);
	X509_set_pubkey(x, key);
	X509 *iss = issuer ? issuer : x;
	int bad = add_ext(x, iss, NID_subject_key_identifier, "hash") ||
		  add_ext(x, iss, NID_authority_key_identifier, "keyid:always");
	if (!issuer) {
		bad = bad || add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
		      add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
	} else {
		bad = bad || add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") ||
		      add_ext(x, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
		      add_ext(x, iss, NID_ext_key_usage, "serverAuth");
		GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
		for (size_t i = 0; names[i]; i++)
			bad = bad || add_name(gens, names[i]);
		bad = bad || !X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0);
		GENERAL_NAMES_free(gens);
	}
	if (bad || !X509_sign(x, issuer_key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key, struct err *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	int ok = cert ? PEM_write_bio_X509(b, cert)
		      : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	char *data;
	long len = BIO_get_mem_data(b, &data);
	int rc = ok ? file_write_atomic(path, data, (size_t)len, cert ? 0644 : 0600, e)
		    : ssl_fail(e, "PEM encode");
	if (len > 0)
		OPENSSL_cleanse(data, (size_t)len);
	BIO_free(b);
	return rc;
}

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static EVP_PKEY *load_key(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return NULL;
	EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

/* Loads the CA or creates it. */
static int ensure_ca(const char *crt_path, const char *key_path, X509 **ca, EVP_PKEY **key,
		     struct err *e)
{
	*ca = load_cert(crt_path);
	*key = load_key(key_path);
	if (*ca && *key && X509_check_private_key(*ca, *key) == 1)
		return 0;
	if (*ca || *key) {
		X509_free(*ca);
		EVP_PKEY_free(*key);
		ERR_clear_error();
		return err_set(e, ERR_CRYPTO,
			       "%s and %s do not form a usable CA; move them away to create a new one",
			       crt_path, key_path);
	}
	ERR_clear_error();
	*key = EVP_EC_gen("P-256");
	if (!*key)
		return ssl_fail(e, "generate CA key");
	*ca = make_cert(*key, "cocod CA", CA_DAYS, NULL, *key, NULL);
	if (!*ca)
		return ssl_fail(e, "create CA certificate");
	if (write_pem(key_path, NULL, *key, e) || write_pem(crt_path, *ca, NULL, e))
		return e->code;
	log_info("tls", "created CA path=%s", crt_path);
	return 0;
}

/* True when `cert` was issued by `ca`, covers every wanted name and stays
 * valid for RENEW_DAYS more days. */
static int server_cert_ok(X509 *cert, X509 *ca, EVP_PKEY *key, const char **names)
{
	if (!cert || !key || X509_check_private_key(cert, key) != 1)
		return 0;
	EVP_PKEY *capub = X509_get0_pubkey(ca);
	if (X509_verify(cert, capub) != 1)
		return 0;
	time_t soon = time(NULL) + (time_t)RENEW_DAYS * 86400;
	if (X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0)
		return 0;
	for (size_t i = 0; names[i]; i++) {
		int r = X509_check_ip_asc(cert, names[i], 0);
		if (r < 0)
			r = X509_check_host(cert, names[i], 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL);
		if (r != 1)
			return 0;
	}
	return 1;
}

int tls_ensure_pki(const char *data_dir, char *const *extra_names, struct tls_paths *out,
		   int *issued, struct err *e)
{
	cleanup_free char *dir = xasprintf("%s/tls", data_dir);
	cleanup_free char *ca_key = xasprintf("%s/ca.key", dir);
	struct tls_paths p = {xasprintf("%s/ca.crt", dir), xasprintf("%s/server.crt", dir),
			      xasprintf("%s/server.key", dir)};
	char host[256] = "";
	const char **names = wanted_names(extra_names, host, sizeof host);
	X509 *ca = NULL, *cert = NULL;
	EVP_PKEY *cakey = NULL, *key = NULL;
	int rc = mkdir_p(dir, 0700, e);
	if (rc == 0)
		rc = ensure_ca(p.ca_cert, ca_key, &ca, &cakey, e);
	*issued = 0;
	if (rc == 0) {
		cert = load_cert(p.cert);
		key = load_key(p.key);
		ERR_clear_error();
		if (!server_cert_ok(cert, ca, key, names)) {
			X509_free(cert);
			EVP_PKEY_free(key);
			key = EVP_EC_gen("P-256");
			cert = key ? make_cert(key, "cocod", SERVER_DAYS, ca, cakey, names) : NULL;
			if (!cert)
				rc = ssl_fail(e, "create server certificate");
			else if ((rc = write_pem(p.key, NULL, key, e)) == 0 &&
				 (rc = write_pem(p.cert, cert, NULL, e)) == 0) {
				*issued = 1;
				log_info("tls", "issued server certificate path=%s", p.cert);
			}
		}
	}
	X509_free(ca);
	X509_free(cert);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);
	free(names);
	if (rc)
		tls_paths_fini(&p);
	else
		*out = p;
	return rc;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

int tls_server_ctx(const char *cert, const char *key, SSL_CTX **out, struct err *e)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return ssl_fail(e, "SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		SSL_CTX_free(ctx);
		return ssl_fail(e, cert);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return ssl_fail(e, key);
	}
	*out = ctx;
	return 0;
}
