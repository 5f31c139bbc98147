/* kbs: cocod's embedded Key Broker Service, Trustee's RCAR protocol 0.4.0
 * (see ../shared/reference/kbs-protocol.md):
 *
 *   POST /kbs/v0/auth    {version "0.4.0", tee, extra-params} -> cookie
 *                        kbs-session-id + {nonce, extra-params: ""}
 *   POST /kbs/v0/attest  {init-data, runtime-data {nonce, tee-pubkey},
 *                        tee-evidence {primary_evidence, additional_evidence}}
 *                        -> {token} (EAR, see ear.h)
 *   GET  /kbs/v0/resource/<repo>/<type>/<tag>  (cookie or Bearer token)
 *                        -> flattened JWE to the tee-pubkey (jwe.h)
 *
 * plus the admin endpoints (kbsapi.c).  Binding: report_data must be
 * SHA-384 (SHA-512 for se) of JCS({"additional-evidence", "nonce",
 * "tee-pubkey"}), zero-padded to 64 bytes; init-data's digest must equal
 * SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48 bytes).  Verification:
 * snp.h (and the box's sim chain when sim is enabled: claims say sim,
 * ear.status is at most warning), tdx.h; evidence without its VCEK/VLEK
 * uses the imported one, and TDX needs its imported TCB info, TD_QE
 * identity, TCB signing certificate and CRLs (collateral.h: a missing
 * piece is an error naming what to import); `sample` is parsed and left to
 * the appraisal policy, which denies it by default.  Then the Lua hooks:
 * appraise(claims, reference_values) and release(path, token_claims).
 *
 * Sessions live in memory (5 minutes), each nonce is good for one attest
 * call.  Every attestation and every release or denial is written to the
 * audit table and counted in /metrics.  Every function runs on the loop
 * thread; only the evidence's verification inside an attestation moves to
 * the loop's thread pool (kbs_attest_start). */
#ifndef COCOD_KBS_H
#define COCOD_KBS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "api.h"
#include "err.h"
#include "metrics.h"
#include "policy.h"
#include "seal.h"
#include "simsp.h"
#include "store.h"

#define KBS_PROTOCOL_VERSION "0.4.0"
#define KBS_COOKIE           "kbs-session-id"

/* The KBS's tables (kbs_keys, kbs_resources, kbs_reference_values) are
 * created by store migration 5, the collateral cache by migration 6
 * (core/store.c). */

struct kbs_opts {
	int sim;                 /* accept sim evidence (SNP format, the box's sim chain) */
	int dev_mode;            /* handed to the release policy as token_claims.dev_mode */
	int allow_rsa1_5;        /* accept RSA1_5 tee-pubkeys (deprecated) */
	int token_ttl_s;         /* EAR lifetime; 0: 300 */
	int session_ttl_s;       /* session cookie lifetime; 0: 300 */
	size_t max_resource;     /* bytes per resource; 0: 1 MiB */
	const char *master_key;  /* NULL: <data-dir>/master.key */
	uv_loop_t *loop;         /* attestations verify on its thread pool; NULL: inline */
};

struct kbs;

/* Opens the master key, loads or creates the EAR signing key and (when
 * opts->sim) the sim chain.  `st`, `pol` and `m` (may be NULL) are
 * borrowed and must outlive the KBS. */
int kbs_new(store *st, policy *pol, metrics *m, const char *data_dir, const struct kbs_opts *opts,
	    struct kbs **out, struct err *e);
void kbs_free(struct kbs *k);

/* Registers the protocol endpoints (public), the JWKS
 * (/kbs/v0/.well-known/jwks.json, public) and the admin endpoints. */
int kbs_register(api *a, struct kbs *k, struct err *e);

/* Registers a launch measurement (hex) as reference value "measurement",
 * without expiry: the daemon calls it with the guest kit's measurement. */
int kbs_register_measurement(struct kbs *k, const char *hex, struct err *e);

/* --- the protocol without HTTP (the handlers call these; so do tests).
 * On failure *variant names Trustee's error type ("PolicyDeny" ...). --- */

/* Starts a session: *sid (33 bytes) and *challenge (new reference). */
int kbs_auth(struct kbs *k, const json_t *req, time_t now, char sid[33], json_t **challenge,
	     const char **variant, struct err *e);
/* Verifies and appraises, all on the caller's thread (tests, the
 * benchmark); *token is malloc'd. */
int kbs_attest(struct kbs *k, const char *sid, const json_t *req, time_t now, char **token,
	       const char **variant, struct err *e);

/* How kbs_attest_start reports back, on the loop thread. */
struct kbs_attest_cb {
	/* Asked once the evidence is verified: nonzero when the client went
	 * away.  The attestation is then abandoned (no appraisal, no token,
	 * the session stays unattested) and recorded as such; `done` still
	 * runs.  May be NULL. */
	int (*gone)(void *arg);
	/* Runs exactly once: rc 0 and the token (the callee frees it), or
	 * an error code with Trustee's variant and the message. */
	void (*done)(void *arg, int rc, char *token, const char *variant, const struct err *e);
	void *arg;
};

/* kbs_attest for the HTTP handler, without blocking the loop: the
 * session, the request and the store lookups are checked now (a failure
 * returns its code and `done` is not called); on 0 the evidence is
 * verified on the thread pool of kbs_opts.loop and `done` runs later with
 * the outcome (without a loop: before this returns).  A second attest
 * call on a session whose attestation is in flight is refused.  kbs_free
 * with attestations in flight defers the free to the last one, which is
 * answered 503 without touching the store. */
int kbs_attest_start(struct kbs *k, const char *sid, const json_t *req, time_t now,
		     const struct kbs_attest_cb *cb, const char **variant, struct err *e);
/* Releases a resource; `sid` or `bearer` (either may be NULL). */
int kbs_resource(struct kbs *k, const char *sid, const char *bearer, const char *path, time_t now,
		 json_t **jwe, const char **variant, struct err *e);

/* The expected report_data for the runtime data: SHA-384 (SHA-512 when
 * `sha512`) of the JCS form; *len is 48 or 64. */
int kbs_runtime_digest(const char *nonce, const json_t *tee_pubkey, const char *additional,
		       int sha512, uint8_t out[64], size_t *len, struct err *e);

/* Validates a resource path "repo/type/tag" (Trustee's segment rule). */
int kbs_path_valid(const char *path);

/* The box's sim chain, sealed in kbs_keys ("sim-chain"): loads it or,
 * when `create`, generates and stores it. */
int kbs_sim_load(const seal *s, store *st, int create, struct simsp **out, struct err *e);

/* For the admin handlers (kbsapi.c). */
store *kbs__store(struct kbs *k);
policy *kbs__policy(struct kbs *k);
const seal *kbs__seal(struct kbs *k);
size_t kbs__max_resource(struct kbs *k);
int kbs__session_ttl(struct kbs *k);
json_t *kbs__jwks(struct kbs *k);
void kbs__audit(struct kbs *k, const char *actor, const char *action, const char *object,
		const char *detail);

#endif
