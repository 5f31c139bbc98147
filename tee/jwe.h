/* jwe: the KBS's resource envelope, RFC 7516 flattened JSON
 * {protected, encrypted_key, iv, ciphertext, tag} with enc A256GCM and the
 * key management Trustee's guest understands: ECDH-ES+A256KW for an EC
 * P-256 or P-521 tee-pubkey (the ephemeral key as `epk` in the protected
 * header), RSA-OAEP-256, and RSA1_5 only when explicitly enabled.  The
 * protected header is serialised compactly as `alg`, `enc`, then the other
 * members in sorted order (nested objects sorted too), because the Rust
 * guest re-serialises the decoded header that way to derive the AAD.
 *
 * Written on OpenSSL's EVP API rather than libjose: libjose puts `alg` and
 * `epk` in the per-recipient header, which the guest does not read.
 * Guest keys are validated strictly before use: curve, point on the curve,
 * coordinate lengths, RSA modulus of 2048..16384 bits, no private members. */
#ifndef COCOD_JWE_H
#define COCOD_JWE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "err.h"

enum jwe_alg { JWE_ECDH_ES_A256KW, JWE_RSA_OAEP_256, JWE_RSA1_5 };

/* A validated recipient key (the guest's tee-pubkey). */
typedef struct jwe_key jwe_key;

/* Parses and validates a JWK.  `alg` may be absent (EC: ECDH-ES+A256KW,
 * RSA: RSA-OAEP-256).  RSA1_5 is refused unless allow_rsa1_5.  Errors are
 * ERR_BAD_REQUEST with a reason naming the member. */
int jwe_key_from_jwk(const json_t *jwk, int allow_rsa1_5, jwe_key **out, struct err *e);
void jwe_key_free(jwe_key *k);
/* Another handle on the same validated key (the KBS keeps one per session). */
jwe_key *jwe_key_dup(const jwe_key *k);
enum jwe_alg jwe_key_alg(const jwe_key *k);
const char *jwe_alg_name(enum jwe_alg a);

/* Encrypts `len` bytes to `k`; *out is a new flattened JWE object. */
int jwe_encrypt(const jwe_key *k, const void *pt, size_t len, json_t **out, struct err *e);

/* Decrypts a flattened JWE with the recipient's private key (the guest's
 * side; the KBS uses it in tests).  *pt is malloc'd, NUL-terminated; wipe
 * it with OPENSSL_cleanse before freeing if it is a secret. */
int jwe_decrypt(EVP_PKEY *priv, const json_t *jwe, uint8_t **pt, size_t *len, struct err *e);

/* The public JWK of an EC (P-256/P-384/P-521) or RSA key, with `alg` when
 * not NULL; members in RFC 7638 order.  NULL for other key types. */
json_t *jwe_jwk_public(EVP_PKEY *pk, const char *alg);

/* The protected header serialised as the guest expects (see above);
 * malloc'd. */
char *jwe_header_serialize(const json_t *hdr);

#endif
