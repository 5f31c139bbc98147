/* jwe: see jwe.h.  The pieces: JWK <-> EVP_PKEY, the key-management
 * algorithms (ECDH-ES with the Concat KDF of RFC 7518 §4.6 then AES key
 * wrap; RSA-OAEP with SHA-256; RSA PKCS#1 v1.5), and AES-256-GCM over the
 * content with the ASCII of the encoded protected header as AAD. */
#include "jwe.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "util.h"

#define CEK_LEN 32
#define IV_LEN  12
#define TAG_LEN 16

struct jwe_key {
	enum jwe_alg alg;
	EVP_PKEY *pk;
	const char *crv; /* EC only: "P-256" or "P-521" */
};

static const struct {
	const char *jwk, *group;
	size_t len;
} curves[] = {{"P-256", "prime256v1", 32}, {"P-384", "secp384r1", 48}, {"P-521", "secp521r1", 66}};

const char *jwe_alg_name(enum jwe_alg a)
{
	return a == JWE_ECDH_ES_A256KW ? "ECDH-ES+A256KW" : a == JWE_RSA_OAEP_256 ? "RSA-OAEP-256" : "RSA1_5";
}

enum jwe_alg jwe_key_alg(const jwe_key *k) { return k->alg; }

jwe_key *jwe_key_dup(const jwe_key *k)
{
	jwe_key *d = xmalloc(sizeof *d);
	*d = *k;
	EVP_PKEY_up_ref(d->pk);
	return d;
}

void jwe_key_free(jwe_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pk);
	free(k);
}

/* Decodes base64url member `name` of `o` into exactly `want` bytes (0: any
 * length up to `max`). */
static int member_bytes(const json_t *o, const char *name, size_t want, size_t max, uint8_t **out,
			size_t *len, struct err *e)
{
	const char *s = json_string_value(json_object_get(o, name));
	if (!s)
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: member %s missing or not a string", name);
	if (b64url_decode(s, (size_t)-1, out, len))
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: %s is not base64url", name);
	if ((want && *len != want) || (!want && (*len == 0 || *len > max))) {
		free(*out);
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: %s has %zu bytes", name, *len);
	}
	return 0;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pk = NULL;
	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

/* The point is on the curve.  P-256 and P-521 have cofactor 1, so that is
 * also membership of the prime-order group: the full check's extra scalar
 * multiplication by the order (as costly as an ECDH) proves nothing more. */
static int public_ok(EVP_PKEY *pk)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	int ok = ctx && EVP_PKEY_public_check_quick(ctx) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static int ec_from_jwk(const json_t *jwk, jwe_key *k, struct err *e)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	size_t i, xl, yl;
	for (i = 0; i < 3 && !(crv && strcmp(crv, curves[i].jwk) == 0 && i != 1); i++)
		;
	if (i == 3)
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: curve %s is not P-256 or P-521", crv ? crv : "(none)");
	uint8_t *x = NULL, *y = NULL;
	if (member_bytes(jwk, "x", curves[i].len, 0, &x, &xl, e))
		return e->code;
	if (member_bytes(jwk, "y", curves[i].len, 0, &y, &yl, e)) {
		free(x);
		return e->code;
	}
	uint8_t pt[1 + 2 * 66];
	pt[0] = 4;
	memcpy(pt + 1, x, xl);
	memcpy(pt + 1 + xl, y, yl);
	free(x);
	free(y);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curves[i].group, 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + xl + yl);
	k->pk = pkey_fromdata("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	if (!k->pk || !public_ok(k->pk))
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: the point is not on curve %s", curves[i].jwk);
	k->crv = curves[i].jwk;
	return 0;
}

static int rsa_from_jwk(const json_t *jwk, jwe_key *k, struct err *e)
{
	uint8_t *n = NULL, *ex = NULL;
	size_t nl, el;
	if (member_bytes(jwk, "n", 0, 2048, &n, &nl, e))
		return e->code;
	if (member_bytes(jwk, "e", 0, 8, &ex, &el, e)) {
		free(n);
		return e->code;
	}
	BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(ex, (int)el, NULL);
	free(n);
	free(ex);
	int bits = BN_num_bits(bn), rc = 0;
	if (bits < 2048 || bits > 16384)
		rc = err_set(e, ERR_BAD_REQUEST, "tee-pubkey: RSA modulus of %d bits (2048..16384 allowed)", bits);
	else if (!BN_is_odd(be) || BN_num_bits(be) < 2 || BN_num_bits(be) > 33)
		rc = err_set(e, ERR_BAD_REQUEST, "tee-pubkey: RSA exponent is not an odd number >= 3");
	if (!rc) {
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn);
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be);
		k->pk = pkey_fromdata("RSA", bld);
		OSSL_PARAM_BLD_free(bld);
		if (!k->pk)
			rc = err_set(e, ERR_BAD_REQUEST, "tee-pubkey: not a usable RSA key");
	}
	BN_free(bn);
	BN_free(be);
	return rc;
}

/* The alg the key asks for, checked against its type. */
static int pick_alg(const json_t *jwk, int is_ec, int allow_rsa1_5, enum jwe_alg *out, struct err *e)
{
	const json_t *a = json_object_get(jwk, "alg");
	const char *alg = json_string_value(a);
	if (a && !alg)
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: alg is not a string");
	if (is_ec) {
		*out = JWE_ECDH_ES_A256KW;
		if (alg && strcmp(alg, "ECDH-ES+A256KW") != 0)
			return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: alg %s is not supported for EC keys", alg);
		return 0;
	}
	*out = JWE_RSA_OAEP_256;
	if (!alg || strcmp(alg, "RSA-OAEP-256") == 0)
		return 0;
	if (strcmp(alg, "RSA1_5") == 0 && allow_rsa1_5) {
		*out = JWE_RSA1_5;
		return 0;
	}
	return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: alg %s is refused (RSA-OAEP-256 expected)", alg);
}

int jwe_key_from_jwk(const json_t *jwk, int allow_rsa1_5, jwe_key **out, struct err *e)
{
	if (!json_is_object(jwk))
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey is not a JWK object");
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	static const char *const priv[] = {"d", "p", "q", "dp", "dq", "qi", "k"};
	for (size_t i = 0; i < sizeof priv / sizeof priv[0]; i++)
		if (json_object_get(jwk, priv[i]))
			return err_set(e, ERR_BAD_REQUEST, "tee-pubkey carries private member %s", priv[i]);
	int is_ec = kty && strcmp(kty, "EC") == 0;
	if (!is_ec && !(kty && strcmp(kty, "RSA") == 0))
		return err_set(e, ERR_BAD_REQUEST, "tee-pubkey: kty %s is not EC or RSA", kty ? kty : "(none)");
	jwe_key *k = xcalloc(1, sizeof *k);
	if (pick_alg(jwk, is_ec, allow_rsa1_5, &k->alg, e) ||
	    (is_ec ? ec_from_jwk(jwk, k, e) : rsa_from_jwk(jwk, k, e))) {
		jwe_key_free(k);
		return e->code;
	}
	*out = k;
	return 0;
}

/* --- JWK export --- */

static char *bn_b64url(const BIGNUM *bn, size_t pad)
{
	size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
	uint8_t *buf = xmalloc(n ? n : 1);
	BN_bn2binpad(bn, buf, (int)n);
	char *s = b64url_encode(buf, n);
	free(buf);
	return s;
}

static json_t *param_b64(EVP_PKEY *pk, const char *name, size_t pad)
{
	BIGNUM *bn = NULL;
	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
		return NULL;
	char *s = bn_b64url(bn, pad);
	BN_free(bn);
	json_t *v = json_string(s);
	free(s);
	return v;
}

json_t *jwe_jwk_public(EVP_PKEY *pk, const char *alg)
{
	json_t *o = json_object();
	if (EVP_PKEY_is_a(pk, "EC")) {
		char group[32];
		size_t i;
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL) != 1)
			goto fail;
		for (i = 0; i < 3 && strcmp(group, curves[i].group) != 0; i++)
			;
		if (i == 3)
			goto fail;
		json_object_set_new(o, "crv", json_string(curves[i].jwk));
		json_object_set_new(o, "kty", json_string("EC"));
		json_object_set_new(o, "x", param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_X, curves[i].len));
		json_object_set_new(o, "y", param_b64(pk, OSSL_PKEY_PARAM_EC_PUB_Y, curves[i].len));
	} else if (EVP_PKEY_is_a(pk, "RSA")) {
		json_object_set_new(o, "e", param_b64(pk, OSSL_PKEY_PARAM_RSA_E, 0));
		json_object_set_new(o, "kty", json_string("RSA"));
		json_object_set_new(o, "n", param_b64(pk, OSSL_PKEY_PARAM_RSA_N, 0));
	} else {
		goto fail;
	}
	if (alg)
		json_object_set_new(o, "alg", json_string(alg));
	return o;
fail:
	json_decref(o);
	return NULL;
}

char *jwe_header_serialize(const json_t *hdr)
{
	struct buf b;
	const char *first[] = {"alg", "enc"};
	buf_init(&b);
	buf_adds(&b, "{");
	for (int i = 0; i < 2; i++) {
		char *v = json_dumps(json_object_get(hdr, first[i]), JSON_COMPACT | JSON_ENCODE_ANY);
		buf_printf(&b, "%s\"%s\":%s", i ? "," : "", first[i], v ? v : "null");
		free(v);
	}
	json_t *rest = json_copy((json_t *)(uintptr_t)hdr);
	json_object_del(rest, "alg");
	json_object_del(rest, "enc");
	char *r = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
	if (r && strlen(r) > 2)
		buf_printf(&b, ",%.*s", (int)strlen(r) - 2, r + 1);
	buf_adds(&b, "}");
	free(r);
	json_decref(rest);
	return buf_steal(&b, NULL);
}

/* --- key management --- */

/* RFC 7518 §4.6.2: one SHA-256 round of the Concat KDF gives the 256-bit
 * wrapping key; AlgorithmID is the alg name, PartyUInfo/PartyVInfo empty. */
static void concat_kdf(const uint8_t *z, size_t zlen, const char *alg, uint8_t out[32])
{
	uint8_t be[4];
	size_t al = strlen(alg);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, "\0\0\0\1", 4);
	EVP_DigestUpdate(md, z, zlen);
	be[0] = (uint8_t)(al >> 24), be[1] = (uint8_t)(al >> 16), be[2] = (uint8_t)(al >> 8), be[3] = (uint8_t)al;
	EVP_DigestUpdate(md, be, 4);
	EVP_DigestUpdate(md, alg, al);
	EVP_DigestUpdate(md, "\0\0\0\0\0\0\0\0", 8); /* PartyUInfo, PartyVInfo */
	EVP_DigestUpdate(md, "\0\0\1\0", 4);         /* keydatalen = 256 */
	EVP_DigestFinal_ex(md, out, NULL);
	EVP_MD_CTX_free(md);
}

/* AES-256 key wrap (RFC 3394); enc = 0 unwraps.  Returns the output length or -1. */
static int aes_kw(int enc, const uint8_t kek[32], const uint8_t *in, int len, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, m = 0, ok;
	EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	ok = EVP_CipherInit_ex(c, EVP_aes_256_wrap(), NULL, kek, NULL, enc) == 1 &&
	     EVP_CipherUpdate(c, out, &n, in, len) == 1 && EVP_CipherFinal_ex(c, out + n, &m) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? n + m : -1;
}

static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z, size_t *zlen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
	int ok = ctx && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
		 EVP_PKEY_derive(ctx, z, zlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* ECDH-ES+A256KW: ephemeral key on the recipient's curve, `epk` into the
 * header, the CEK wrapped under the derived key. */
static int wrap_ecdh(const jwe_key *k, json_t *hdr, const uint8_t cek[CEK_LEN], uint8_t *ek, int *eklen)
{
	/* The ephemeral key on the recipient key's group: generated from the
	 * key as template, which saves building the curve from its name. */
	EVP_PKEY *eph = NULL;
	EVP_PKEY_CTX *gen = EVP_PKEY_CTX_new_from_pkey(NULL, k->pk, NULL);
	if (!gen || EVP_PKEY_keygen_init(gen) != 1 || EVP_PKEY_keygen(gen, &eph) != 1)
		eph = NULL;
	EVP_PKEY_CTX_free(gen);
	uint8_t z[66], kek[32];
	size_t zlen = sizeof z;
	if (!eph || ecdh(eph, k->pk, z, &zlen)) {
		EVP_PKEY_free(eph);
		return -1;
	}
	json_t *epk = jwe_jwk_public(eph, NULL);
	json_object_set_new(hdr, "epk", epk);
	concat_kdf(z, zlen, "ECDH-ES+A256KW", kek);
	*eklen = aes_kw(1, kek, cek, CEK_LEN, ek);
	OPENSSL_cleanse(z, sizeof z);
	OPENSSL_cleanse(kek, sizeof kek);
	EVP_PKEY_free(eph);
	return *eklen == 40 && epk ? 0 : -1;
}

static int rsa_crypt(EVP_PKEY *pk, int enc, enum jwe_alg alg, const uint8_t *in, size_t len,
		     uint8_t *out, size_t *outlen)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	int ok = ctx && (enc ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1;
	if (ok && alg == JWE_RSA_OAEP_256)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1;
	else if (ok)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
	ok = ok && (enc ? EVP_PKEY_encrypt(ctx, out, outlen, in, len)
			: EVP_PKEY_decrypt(ctx, out, outlen, in, len)) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int gcm(int enc, const uint8_t cek[CEK_LEN], const uint8_t iv[IV_LEN], const char *aad,
	       const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[TAG_LEN])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok = c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, cek, iv, enc) == 1 &&
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

static void set_b64(json_t *o, const char *name, const void *p, size_t n)
{
	char *s = b64url_encode(p, n);
	json_object_set_new(o, name, json_string(s));
	free(s);
}

int jwe_encrypt(const jwe_key *k, const void *pt, size_t len, json_t **out, struct err *e)
{
	if (len > (64u << 20))
		return err_set(e, ERR_TOO_LARGE, "resource too large to encrypt");
	uint8_t cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN], ek[2048];
	size_t eklen = sizeof ek;
	int kwlen = 0, rc = -1;
	json_t *hdr = json_pack("{s:s, s:s}", "alg", jwe_alg_name(k->alg), "enc", "A256GCM");
	if (RAND_bytes(cek, sizeof cek) == 1 && RAND_bytes(iv, sizeof iv) == 1) {
		if (k->alg == JWE_ECDH_ES_A256KW) {
			rc = wrap_ecdh(k, hdr, cek, ek, &kwlen);
			eklen = (size_t)kwlen;
		} else {
			rc = rsa_crypt(k->pk, 1, k->alg, cek, CEK_LEN, ek, &eklen);
		}
	}
	char *h = rc ? NULL : jwe_header_serialize(hdr), *prot = h ? b64url_encode(h, strlen(h)) : NULL;
	uint8_t *ct = xmalloc(len + 16);
	if (rc || gcm(1, cek, iv, prot, pt, len, ct, tag)) {
		rc = err_set(e, ERR_CRYPTO, "JWE encryption (%s) failed", jwe_alg_name(k->alg));
	} else {
		json_t *j = json_pack("{s:s}", "protected", prot);
		set_b64(j, "encrypted_key", ek, eklen);
		set_b64(j, "iv", iv, IV_LEN);
		set_b64(j, "ciphertext", ct, len);
		set_b64(j, "tag", tag, TAG_LEN);
		*out = j;
	}
	OPENSSL_cleanse(cek, sizeof cek);
	free(ct);
	free(h);
	free(prot);
	json_decref(hdr);
	return rc;
}

/* --- decryption (the guest's side) --- */

static int field(const json_t *jwe, const char *name, uint8_t **out, size_t *len, struct err *e)
{
	const char *s = json_string_value(json_object_get(jwe, name));
	if (!s || b64url_decode(s, (size_t)-1, out, len))
		return err_set(e, ERR_BAD_REQUEST, "JWE: %s missing or not base64url", name);
	return 0;
}

/* Recovers the CEK for the header's alg with `priv`. */
static int unwrap_cek(EVP_PKEY *priv, const json_t *hdr, const uint8_t *ek, size_t eklen,
		      uint8_t cek[CEK_LEN], struct err *e)
{
	const char *alg = json_string_value(json_object_get(hdr, "alg"));
	if (alg && strcmp(alg, "ECDH-ES+A256KW") == 0) {
		jwe_key *epk = NULL;
		uint8_t z[66], kek[32];
		size_t zlen = sizeof z;
		if (jwe_key_from_jwk(json_object_get(hdr, "epk"), 0, &epk, e))
			return err_wrap(e, "JWE epk");
		int ok = ecdh(priv, epk->pk, z, &zlen) == 0;
		jwe_key_free(epk);
		if (ok)
			concat_kdf(z, zlen, alg, kek);
		uint8_t tmp[CEK_LEN + 16];
		ok = ok && eklen == 40 && aes_kw(0, kek, ek, 40, tmp) == CEK_LEN;
		if (ok)
			memcpy(cek, tmp, CEK_LEN);
		OPENSSL_cleanse(tmp, sizeof tmp);
		OPENSSL_cleanse(kek, sizeof kek);
		OPENSSL_cleanse(z, sizeof z);
		return ok ? 0 : err_set(e, ERR_CRYPTO, "JWE: key unwrap failed");
	}
	enum jwe_alg a = alg && strcmp(alg, "RSA-OAEP-256") == 0 ? JWE_RSA_OAEP_256 : JWE_RSA1_5;
	if (!alg || (a == JWE_RSA1_5 && strcmp(alg, "RSA1_5") != 0))
		return err_set(e, ERR_BAD_REQUEST, "JWE: unsupported alg %s", alg ? alg : "(none)");
	uint8_t buf[2048];
	size_t n = sizeof buf;
	int ok = rsa_crypt(priv, 0, a, ek, eklen, buf, &n) == 0 && n == CEK_LEN;
	if (ok)
		memcpy(cek, buf, CEK_LEN);
	OPENSSL_cleanse(buf, sizeof buf);
	return ok ? 0 : err_set(e, ERR_CRYPTO, "JWE: RSA key decryption failed");
}

int jwe_decrypt(EVP_PKEY *priv, const json_t *jwe, uint8_t **pt, size_t *len, struct err *e)
{
	const char *prot = json_string_value(json_object_get(jwe, "protected"));
	uint8_t *h = NULL, *ek = NULL, *iv = NULL, *ct = NULL, *tag = NULL, cek[CEK_LEN];
	size_t hl, ekl, ivl, ctl, tagl;
	json_t *hdr = NULL;
	int rc = -1;
	if (!prot || field(jwe, "protected", &h, &hl, e) || field(jwe, "encrypted_key", &ek, &ekl, e) ||
	    field(jwe, "iv", &iv, &ivl, e) || field(jwe, "ciphertext", &ct, &ctl, e) ||
	    field(jwe, "tag", &tag, &tagl, e))
		goto out;
	hdr = json_loadb((const char *)h, hl, 0, NULL);
	const char *enc = json_string_value(json_object_get(hdr, "enc"));
	if (!enc || strcmp(enc, "A256GCM") != 0 || ivl != IV_LEN || tagl != TAG_LEN) {
		err_set(e, ERR_BAD_REQUEST, "JWE: not A256GCM with a 12-byte IV and 16-byte tag");
		goto out;
	}
	if (unwrap_cek(priv, hdr, ek, ekl, cek, e))
		goto out;
	uint8_t *p = xmalloc(ctl + 17);
	if (gcm(0, cek, iv, prot, ct, ctl, p, tag)) {
		free(p);
		err_set(e, ERR_CRYPTO, "JWE: content decryption failed (tag mismatch)");
	} else {
		p[ctl] = 0;
		*pt = p;
		*len = ctl;
		rc = 0;
	}
	OPENSSL_cleanse(cek, sizeof cek);
out:
	json_decref(hdr);
	free(h), free(ek), free(iv), free(ct), free(tag);
	return rc ? (e->code ? e->code : ERR_CRYPTO) : 0;
}
