/* ear: see ear.h.  The JWT header is computed once per key (it only holds
 * public material), so issuing a token is one JSON dump and one ECDSA
 * signature; verification is one ECDSA verification and a JSON parse. */
#include "ear.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "b64.h"
#include "jwe.h"
#include "util.h"

#define CERT_DAYS 3650

struct ear {
	EVP_PKEY *key;
	X509 *cert;
	char *header_b64; /* base64url of the header JSON */
	json_t *jwk;      /* public JWK with kid */
	int ttl;
};

static X509 *self_signed(EVP_PKEY *key)
{
	X509 *c = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"cocod", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"cocod KBS attestation token signer", -1, -1, 0);
	BIGNUM *serial = BN_new();
	int ok = serial && BN_rand(serial, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
		 BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(c)) && X509_set_version(c, 2) == 1 &&
		 X509_set_subject_name(c, n) == 1 && X509_set_issuer_name(c, n) == 1 &&
		 X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
		 X509_gmtime_adj(X509_getm_notAfter(c), (long)CERT_DAYS * 86400) &&
		 X509_set_pubkey(c, key) == 1 && X509_sign(c, key, EVP_sha256()) > 0;
	BN_free(serial);
	X509_NAME_free(n);
	if (!ok) {
		X509_free(c);
		return NULL;
	}
	return c;
}

/* RFC 7638 thumbprint of the public JWK, the key's kid. */
static char *thumbprint(const json_t *jwk)
{
	json_t *t = json_pack("{s:O, s:O, s:O, s:O}", "crv", json_object_get(jwk, "crv"), "kty",
			      json_object_get(jwk, "kty"), "x", json_object_get(jwk, "x"), "y",
			      json_object_get(jwk, "y"));
	char *s = json_dumps(t, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char d[32];
	EVP_Digest(s, strlen(s), d, NULL, EVP_sha256(), NULL);
	free(s);
	json_decref(t);
	return b64url_encode(d, sizeof d);
}

static int finish(ear *x, struct err *e)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x->cert, &der);
	x->jwk = jwe_jwk_public(x->key, "ES256");
	if (n <= 0 || !x->jwk) {
		OPENSSL_free(der);
		return err_set(e, ERR_CRYPTO, "EAR signing key is not a P-256 key with a certificate");
	}
	char *cert = b64_encode(der, (size_t)n), *kid = thumbprint(x->jwk);
	OPENSSL_free(der);
	json_t *hdr = json_pack("{s:s, s:s, s:O, s:[s]}", "alg", "ES256", "typ", "JWT", "jwk", x->jwk,
				"x5c", cert);
	char *h = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	x->header_b64 = b64url_encode(h, strlen(h));
	json_object_set_new(x->jwk, "kid", json_string(kid));
	json_object_set_new(x->jwk, "use", json_string("sig"));
	free(h), free(cert), free(kid);
	json_decref(hdr);
	x->ttl = EAR_DEFAULT_TTL;
	return 0;
}

int ear_new(EVP_PKEY *key, ear **out, struct err *e)
{
	ear *x = xcalloc(1, sizeof *x);
	x->key = key ? key : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (key)
		EVP_PKEY_up_ref(key);
	if (!x->key || !(x->cert = self_signed(x->key))) {
		ear_free(x);
		return err_set(e, ERR_CRYPTO, "cannot create the EAR signing key");
	}
	if (finish(x, e)) {
		ear_free(x);
		return e->code;
	}
	*out = x;
	return 0;
}

void ear_free(ear *x)
{
	if (!x)
		return;
	EVP_PKEY_free(x->key);
	X509_free(x->cert);
	free(x->header_b64);
	json_decref(x->jwk);
	free(x);
}

void ear_set_lifetime(ear *x, int seconds) { x->ttl = seconds > 0 ? seconds : EAR_DEFAULT_TTL; }

/* Serialises key and certificate as one PEM text for sealing. */
static int save(const ear *x, const seal *s, store *st, struct err *e)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *p;
	int rc = 0;
	if (!b || PEM_write_bio_PrivateKey(b, x->key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(b, x->cert) != 1)
		rc = err_set(e, ERR_CRYPTO, "cannot serialise the EAR signing key");
	long n = rc ? 0 : BIO_get_mem_data(b, &p);
	if (!rc)
		rc = seal_store_put(s, st, EAR_KEY_NAME, p, (size_t)n, e);
	BIO_free(b);
	return rc;
}

static int load(const uint8_t *pem, size_t len, ear **out, struct err *e)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	ear *x = xcalloc(1, sizeof *x);
	x->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	x->cert = x->key ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x->cert || X509_check_private_key(x->cert, x->key) != 1) {
		ear_free(x);
		return err_set(e, ERR_CRYPTO, "stored EAR signing key is unreadable");
	}
	if (finish(x, e)) {
		ear_free(x);
		return e->code;
	}
	*out = x;
	return 0;
}

int ear_load_or_create(const seal *s, store *st, ear **out, struct err *e)
{
	uint8_t *pem;
	size_t len;
	if (seal_store_get(s, st, EAR_KEY_NAME, &pem, &len, e) == 0) {
		int rc = load(pem, len, out, e);
		seal_wipe_free(pem, len);
		return rc;
	}
	if (e->code != ERR_NOT_FOUND)
		return e->code;
	err_clear(e);
	if (ear_new(NULL, out, e))
		return e->code;
	if (save(*out, s, st, e)) {
		ear_free(*out);
		*out = NULL;
		return e->code;
	}
	return 0;
}

#ifndef COCOD_VERSION
#define COCOD_VERSION "dev"
#endif

static json_t *claims_of(const ear *x, const struct ear_result *r, time_t now)
{
	json_t *cpu0 = json_pack("{s:s, s:O, s:s, s:O}", "ear.status", r->status,
				 "ear.trustworthiness-vector", r->trust_vector, "ear.appraisal-policy-id",
				 r->policy_id, "ear.veraison.annotated-evidence", r->annotated);
	if (!cpu0)
		return NULL;
	return json_pack("{s:s, s:I, s:I, s:s, s:{s:s, s:s}, s:b, s:{s:o}}", "eat_profile", EAR_PROFILE,
			 "iat", (json_int_t)now, "exp", (json_int_t)now + x->ttl, "iss", EAR_ISSUER,
			 "ear.verifier-id", "developer", "https://github.com/cocod", "build",
			 "cocod " COCOD_VERSION, "sim", r->sim, "submods", "cpu0", cpu0);
}

/* ES256 over `input`: raw r || s, 64 bytes. */
static int sign_es256(EVP_PKEY *key, const char *input, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t der[80];
	size_t dl = sizeof der;
	int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
		 EVP_DigestSign(md, der, &dl, (const uint8_t *)input, len) == 1;
	EVP_MD_CTX_free(md);
	const uint8_t *p = der;
	ECDSA_SIG *s = ok ? d2i_ECDSA_SIG(NULL, &p, (long)dl) : NULL;
	ok = s && BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, 32) == 32 &&
	     BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + 32, 32) == 32;
	ECDSA_SIG_free(s);
	return ok ? 0 : -1;
}

static int verify_es256(EVP_PKEY *key, const char *input, size_t len, const uint8_t *sig, size_t siglen)
{
	if (siglen != 64)
		return -1;
	ECDSA_SIG *s = ECDSA_SIG_new();
	ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	uint8_t *der = NULL;
	int dl = i2d_ECDSA_SIG(s, &der);
	ECDSA_SIG_free(s);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = dl > 0 && md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
		 EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)input, len) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return ok ? 0 : -1;
}

int ear_issue(const ear *x, const struct ear_result *r, time_t now, char **jwt, json_t **claims,
	      struct err *e)
{
	json_t *c = claims_of(x, r, now);
	char *payload = c ? json_dumps(c, JSON_COMPACT) : NULL;
	if (claims && payload)
		*claims = json_incref(c);
	json_decref(c);
	if (!payload)
		return err_set(e, ERR_INTERNAL, "cannot build the EAR claims");
	char *p64 = b64url_encode(payload, strlen(payload));
	free(payload);
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "%s.%s", x->header_b64, p64);
	free(p64);
	uint8_t sig[64];
	if (sign_es256(x->key, b.data, b.len, sig)) {
		buf_fini(&b);
		if (claims)
			json_decref(*claims);
		return err_set(e, ERR_CRYPTO, "signing the EAR token failed");
	}
	char *s64 = b64url_encode(sig, sizeof sig);
	buf_printf(&b, ".%s", s64);
	free(s64);
	*jwt = buf_steal(&b, NULL);
	return 0;
}

/* Splits and checks the header: three parts, {"alg":"ES256"}. */
static int split(const char *jwt, const char **dot1, const char **dot2, struct err *e)
{
	*dot1 = strchr(jwt, '.');
	*dot2 = *dot1 ? strchr(*dot1 + 1, '.') : NULL;
	if (!*dot2 || strchr(*dot2 + 1, '.'))
		return err_set(e, ERR_UNAUTHORIZED, "token is not a JWS compact serialisation");
	uint8_t *h;
	size_t hl;
	if (b64url_decode(jwt, (size_t)(*dot1 - jwt), &h, &hl))
		return err_set(e, ERR_UNAUTHORIZED, "token header is not base64url");
	json_t *hdr = json_loadb((const char *)h, hl, 0, NULL);
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	int ok = alg && strcmp(alg, "ES256") == 0;
	json_decref(hdr);
	free(h);
	return ok ? 0 : err_set(e, ERR_UNAUTHORIZED, "token alg is not ES256");
}

int ear_verify(const ear *x, const char *jwt, time_t now, json_t **claims, struct err *e)
{
	const char *d1, *d2;
	uint8_t *sig = NULL, *pl = NULL;
	size_t sl, pll;
	if (!jwt || strlen(jwt) > (256u << 10))
		return err_set(e, ERR_UNAUTHORIZED, "token missing or too large");
	if (split(jwt, &d1, &d2, e))
		return e->code;
	if (b64url_decode(d2 + 1, (size_t)-1, &sig, &sl) ||
	    verify_es256(x->key, jwt, (size_t)(d2 - jwt), sig, sl)) {
		free(sig);
		return err_set(e, ERR_UNAUTHORIZED, "token signature does not verify with this KBS's key");
	}
	free(sig);
	if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pl, &pll))
		return err_set(e, ERR_UNAUTHORIZED, "token payload is not base64url");
	json_t *c = json_loadb((const char *)pl, pll, 0, NULL);
	free(pl);
	json_t *exp = json_object_get(c, "exp");
	int rc = 0;
	if (!json_is_object(c) || !json_is_integer(exp))
		rc = err_set(e, ERR_UNAUTHORIZED, "token claims lack exp");
	else if (json_integer_value(exp) <= (json_int_t)now)
		rc = err_set(e, ERR_UNAUTHORIZED, "token expired %lld s ago",
			     (long long)((json_int_t)now - json_integer_value(exp)));
	if (!rc && claims)
		*claims = json_incref(c);
	json_decref(c);
	return rc;
}

json_t *ear_jwks(const ear *x) { return json_pack("{s:[O]}", "keys", x->jwk); }

const json_t *ear_tee_pubkey(const json_t *claims)
{
	const json_t *a = json_object_get(json_object_get(json_object_get(claims, "submods"), "cpu0"),
					  "ear.veraison.annotated-evidence");
	return json_object_get(json_object_get(a, "runtime_data_claims"), "tee-pubkey");
}
