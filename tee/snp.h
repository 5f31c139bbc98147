/* snp: AMD SEV-SNP attestation reports, parsed and verified offline.
 *
 * A report (1184 bytes, versions 2 to 5) is signed with ECDSA P-384 by the
 * chip's VCEK or by a cloud's VLEK; the VCEK is certified by AMD's ASK and
 * the VLEK by the ASVK, both by the ARK of the product (Milan, Genoa,
 * Turin).  AMD's ARKs, ASKs and ASVKs are compiled in (snp_roots.c), so a
 * verifier needs only the VCEK/VLEK, which comes with the evidence or from
 * the local collateral cache.  Extra roots (the box's `sim` secure processor,
 * see simsp.h) can be added in a `struct snp_trust`; a report that chains
 * to one of them verifies with the claim `sim: true`.
 *
 * Verification order (Trustee's): version, generation, chain to a pinned
 * ARK with every certificate valid at the caller's time, report signature,
 * REPORTED_TCB and CHIP_ID against the VCEK's extensions.  Policy questions
 * (debug allowed, VMPL, measurement, TCB minimums, report_data binding,
 * HOST_DATA) are left to the caller: they are claims, plus the helper
 * snp_check_report_data / snp_check_host_data.  Every failure says what
 * failed, e.g. "REPORTED_TCB bl=3 does not match VCEK extension bl=2". */
#ifndef COCOD_SNP_H
#define COCOD_SNP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "util.h"

#define SNP_REPORT_SIZE 1184  /* 0x4A0 */
#define SNP_SIGNED_SIZE 0x2A0 /* the signature covers bytes 0..0x29F */

/* Policy bits (report offset 0x08). */
#define SNP_POLICY_SMT               (1ull << 16)
#define SNP_POLICY_RESERVED_1        (1ull << 17) /* must be 1 */
#define SNP_POLICY_MIGRATE_MA        (1ull << 18)
#define SNP_POLICY_DEBUG             (1ull << 19)
#define SNP_POLICY_SINGLE_SOCKET     (1ull << 20)
#define SNP_POLICY_CXL_ALLOW         (1ull << 21)
#define SNP_POLICY_MEM_AES_256_XTS   (1ull << 22)
#define SNP_POLICY_RAPL_DIS          (1ull << 23)
#define SNP_POLICY_CIPHERTEXT_HIDING (1ull << 24)
#define SNP_POLICY_PAGE_SWAP_DISABLE (1ull << 25)

enum snp_gen { SNP_GEN_UNKNOWN = 0, SNP_GEN_MILAN, SNP_GEN_GENOA, SNP_GEN_TURIN };

/* Which key signed the report (KEY_INFO bits 2-4). */
enum snp_signing_key { SNP_KEY_VCEK = 0, SNP_KEY_VLEK = 1, SNP_KEY_NONE = 7 };

/* A decoded TCB_VERSION.  `fmc` exists only on Turin and later. */
struct snp_tcb {
	uint8_t raw[8]; /* the 8 bytes as they appear in the report */
	int has_fmc;
	uint8_t fmc, bl, tee, snp, ucode;
};

/* Every field of a report, host-endian.  Byte arrays keep report order. */
struct snp_report {
	uint32_t version, guest_svn;
	uint64_t policy;
	uint8_t family_id[16], image_id[16];
	uint32_t vmpl, sig_algo;
	struct snp_tcb current_tcb, reported_tcb, committed_tcb, launch_tcb;
	uint64_t platform_info;
	uint32_t key_info;
	uint8_t report_data[64], measurement[48], host_data[32];
	uint8_t id_key_digest[48], author_key_digest[48];
	uint8_t report_id[32], report_id_ma[32];
	uint8_t cpuid_fam, cpuid_mod, cpuid_step; /* v3+, else 0 */
	uint8_t chip_id[64];
	uint8_t current_major, current_minor, current_build;
	uint8_t committed_major, committed_minor, committed_build;
	uint64_t launch_mit_vector, current_mit_vector; /* v5, else 0 */
	uint8_t sig_r[72], sig_s[72];                   /* little-endian */
	enum snp_gen gen;                               /* generation the TCBs were decoded for */
	const char *gen_src;                            /* "cpuid", "chip_id", "vek" or "default" */
};

/* What a VCEK/VLEK certificate says about itself (AMD's extensions). */
struct snp_vek {
	enum snp_signing_key kind; /* SNP_KEY_VCEK or SNP_KEY_VLEK */
	char product[32];          /* productName, e.g. "Milan-B0" */
	enum snp_gen gen;
	int struct_version;
	struct snp_tcb tcb; /* blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL */
	uint8_t hwid[64];   /* VCEK: CHIP_ID (8 bytes on Turin) */
	size_t hwid_len;
	char csp_id[128]; /* VLEK: cspID */
	char issuer[64], subject[64];
	time_t not_before, not_after;
};

/* Extra trust anchors beyond AMD's built-in ones (the sim root), and the
 * cache of VEK chains that verified.  Anchors are added once, before the
 * trust is shared; the cache has its own lock: safe to share between
 * verifier threads. */
struct snp_trust;

/* Certificate revocation lists: AMD's ARK CRLs (KDS vcek/v1/{product}/crl,
 * imported with `cocod collateral import`), or any list issued by an ASK.
 * A list applies when its issuer is the ARK or the ASK/ASVK of the chain
 * being verified: it must then be signed by that certificate, and none of
 * the certificates that certificate issued may be on it (an ARK's list
 * covers the ASK/ASVK and, as go-sev-guest checks, the ARK itself; an
 * ASK's list covers the VCEK/VLEK).  Lists of other issuers (another
 * product's ARK) are ignored.  A revoked certificate fails with the
 * reason "ASK ... (serial ...) is revoked by the CRL of ARK-Milan since
 * ...".  Revocations are applied whatever the list's nextUpdate: an entry
 * never becomes valid again.  Filled on one thread, then read-only. */
struct snp_crls;
struct snp_crls *snp_crls_new(void);
void snp_crls_free(struct snp_crls *c);
/* Adds one CRL (DER or PEM). */
int snp_crls_add(struct snp_crls *c, const uint8_t *data, size_t len, struct err *e);
/* Number of lists held. */
size_t snp_crls_count(const struct snp_crls *c);

/* Parses a report of versions 2..5 into `out`, decoding the TCBs for the
 * generation given by CPUID (v3+), else guessed from CHIP_ID (Turin uses
 * only 8 bytes), else the Milan/Genoa layout.  Checks size and version
 * only: the signature is snp_verify's job. */
int snp_parse(const uint8_t *buf, size_t len, struct snp_report *out, struct err *e);

/* Decodes an 8-byte TCB_VERSION for generation `gen` (Turin: fmc first). */
void snp_tcb_decode(const uint8_t raw[8], enum snp_gen gen, struct snp_tcb *out);

/* "Milan", "Genoa", "Turin" or "unknown". */
const char *snp_gen_name(enum snp_gen gen);

/* The claims of a parsed report as a new JSON object (caller owns it):
 * every field, hex strings in lowercase, policy/platform/key bits decoded. */
json_t *snp_claims(const struct snp_report *r);

/* Parses a VCEK or VLEK (DER or PEM) and its AMD extensions. */
int snp_vek_parse(const uint8_t *cert, size_t len, struct snp_vek *out, struct err *e);

/* Parses a VCEK/VLEK (optionally with its ASK/ASVK and ARK, as for
 * snp_verify) and verifies its chain at time `at`: for checking collateral
 * before it is cached. */
int snp_vek_verify(const uint8_t *certs, size_t len, const struct snp_trust *trust, time_t at,
                   struct snp_vek *out, struct err *e);

/* Verifies a report against its endorsement certificates at time `at`.
 * `certs` holds the VCEK or VLEK alone, or with its ASK/ASVK and ARK, as
 * PEM or DER (several DER certificates may be concatenated); a supplied
 * ARK must be the pinned one and a supplied ASK must chain to it.
 * `trust` adds sim roots (may be NULL).  On success returns 0 and, when
 * `claims` is not NULL, gives the caller the claims (snp_claims plus `sim`
 * and `endorsement`).  On failure returns a negative code, e->msg saying
 * precisely what failed. */
int snp_verify(const uint8_t *report, size_t len, const uint8_t *certs, size_t certs_len,
               const struct snp_trust *trust, time_t at, json_t **claims, struct err *e);

/* snp_verify, also checking the chain's revocation against `crls` (may be
 * NULL), as snp_verify_trustee_chain does. */
int snp_verify_crls(const uint8_t *report, size_t len, const uint8_t *certs, size_t certs_len,
                    const struct snp_trust *trust, const struct snp_crls *crls, time_t at,
                    json_t **claims, struct err *e);

/* Verifies Trustee's SNP evidence JSON: {"attestation_report": {fields} or
 * raw bytes (array, base64 or hex), "cert_chain": [{"cert_type": "VCEK"|
 * "VLEK"|"ASK"|"ASVK"|"ARK", "data": [bytes] | "base64" | "PEM"}]}.
 * `extra_certs` (may be NULL) is used as with snp_verify, for a VCEK that
 * the evidence does not carry (e.g. from the collateral cache). */
int snp_verify_trustee_evidence(const json_t *evidence, const uint8_t *extra_certs,
                                size_t extra_len, const struct snp_trust *trust, time_t at,
                                json_t **claims, struct err *e);

/* The same for a report already rebuilt from `attestation_report` (the
 * KBS parses it once): `chain` is the evidence's `cert_chain`.  With a
 * `trust`, a VEK chain that verified is remembered (keyed by the SHA-256
 * of the certificate input) and later reports signed by it skip only the
 * chain's signatures: validity at `at`, revocation (`crls`, may be NULL),
 * the report signature and the TCB/CHIP_ID binding are checked every
 * time.  Safe to call from several threads with one `trust`. */
int snp_verify_trustee_chain(const uint8_t raw[SNP_REPORT_SIZE], const json_t *chain,
                             const uint8_t *extra, size_t extra_len, const struct snp_trust *trust,
                             const struct snp_crls *crls, time_t at, json_t **claims,
                             struct err *e);

/* Rebuilds the raw report from Trustee's `attestation_report` value (the
 * object-of-fields form, or raw bytes). */
int snp_trustee_report(const json_t *attestation_report, uint8_t out[SNP_REPORT_SIZE],
                       struct err *e);

/* Compares REPORT_DATA with `expected` zero-padded (or truncated) to 64
 * bytes, in constant time.  ERR_UNAUTHORIZED on mismatch. */
int snp_check_report_data(const struct snp_report *r, const uint8_t *expected, size_t len,
                          struct err *e);

/* Same for HOST_DATA (32 bytes; Trustee puts the init-data digest there). */
int snp_check_host_data(const struct snp_report *r, const uint8_t *expected, size_t len,
                        struct err *e);

/* Copies HOST_DATA out of a raw report (checks size and version). */
int snp_host_data(const uint8_t *report, size_t len, uint8_t out[32], struct err *e);

/* Compares the report's REPORTED_TCB and CHIP_ID with the VCEK/VLEK
 * extensions (exported so that the check can be tested on its own). */
int snp_check_vek_binding(const struct snp_report *r, const struct snp_vek *v, struct err *e);

/* Appends every certificate of `in` (PEM, or one or more DER) to `out` as
 * PEM text. */
int snp_certs_to_pem(const uint8_t *in, size_t len, struct buf *out, struct err *e);

struct snp_trust *snp_trust_new(void);
void snp_trust_free(struct snp_trust *t);

/* Adds a root chain (ARK + ASK, PEM, any order) whose reports are marked
 * `sim: true`.  The ARK must be self-signed and the ASK signed by it. */
int snp_trust_add(struct snp_trust *t, const char *pem, size_t len, struct err *e);

#endif
