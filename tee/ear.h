/* ear: the KBS's attestation results, EAR (draft-fv-rats-ear) JWTs in
 * Trustee's shape, signed ES256 with the KBS's persistent P-256 key.  The
 * key is generated once and kept sealed in the store (kbs_keys, name
 * "ear-signing-key") with a self-signed certificate for `x5c`.
 *
 * Header: {"alg":"ES256","typ":"JWT","jwk":{public key},"x5c":[cert]}.
 * Claims: eat_profile, iat, exp (iat + lifetime, 5 minutes by default),
 * iss, ear.verifier-id, sim (simulated evidence), and
 * submods.cpu0.{ear.status, ear.trustworthiness-vector,
 * ear.appraisal-policy-id, ear.veraison.annotated-evidence}, the guest's
 * key at .../annotated-evidence/runtime_data_claims/tee-pubkey as Trustee
 * puts it.  Verification checks our signature and the expiry only; the
 * header's jwk is never trusted.  A context is read-only once created. */
#ifndef COCOD_EAR_H
#define COCOD_EAR_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "err.h"
#include "seal.h"
#include "store.h"

#define EAR_PROFILE     "tag:github.com,2024:confidential-containers/Trustee"
#define EAR_ISSUER      "cocod-kbs"
#define EAR_KEY_NAME    "ear-signing-key"
#define EAR_DEFAULT_TTL 300

typedef struct ear ear;

/* Loads the sealed signing key from `st`, or creates and stores it. */
int ear_load_or_create(const seal *s, store *st, ear **out, struct err *e);
/* A context over `key` (P-256; NULL: a fresh ephemeral key), for tests. */
int ear_new(EVP_PKEY *key, ear **out, struct err *e);
void ear_free(ear *x);
void ear_set_lifetime(ear *x, int seconds);

/* What one appraisal produced. */
struct ear_result {
	const char *status;            /* affirming | warning | contraindicated | none */
	const json_t *trust_vector;    /* AR4SI names with dashes, integers */
	const char *policy_id;         /* e.g. "default_cpu" */
	const json_t *annotated;       /* ear.veraison.annotated-evidence */
	int sim;
};

/* Signs a token for `r` at time `now`; *jwt is malloc'd, *claims (if not
 * NULL) receives the signed claims. */
int ear_issue(const ear *x, const struct ear_result *r, time_t now, char **jwt, json_t **claims,
	      struct err *e);

/* Verifies signature (ES256, our key) and expiry at `now`; on success
 * *claims (if not NULL) receives the claims.  ERR_UNAUTHORIZED otherwise. */
int ear_verify(const ear *x, const char *jwt, time_t now, json_t **claims, struct err *e);

/* {"keys":[public JWK with kid, use "sig", alg "ES256"]} (new reference). */
json_t *ear_jwks(const ear *x);

/* The tee-pubkey Trustee reads from verified claims, or NULL (borrowed). */
const json_t *ear_tee_pubkey(const json_t *claims);

#endif
