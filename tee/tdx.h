/* tdx: offline verification of Intel TDX DCAP quotes (v4 and v5, TDX 1.0
 * and 1.5 bodies).  A quote is parsed into borrowed views of its bytes,
 * then checked end to end: quote signature with the attestation key, QE
 * report signature with the PCK leaf, the QE report_data binding of the
 * attestation key, the PCK chain to the pinned Intel SGX Root CA (validity
 * at a caller-given time, CRLs when supplied), and, with Intel PCS
 * collateral (TCB info v3, TD_QE identity, their signing chain), the TCB
 * status.  Verification never touches the network.  The verdict is a set of
 * lowercase-hex claims in a jansson object, or a specific failure reason. */
#ifndef COCOD_TDX_H
#define COCOD_TDX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "err.h"

#define TDX_MR_LEN             48
#define TDX_REPORT_DATA_LEN    64
#define TDX_ATT_KEY_ECDSA_P256 2
#define TDX_TEE_TYPE           0x81
#define TDX_BODY_TDX10         2 /* 584-byte TD report body */
#define TDX_BODY_TDX15         3 /* 648-byte TD report body */

/* The 48-byte quote header. */
struct tdx_header {
	uint16_t version;      /* 4 or 5 */
	uint16_t att_key_type; /* 2 = ECDSA P-256 */
	uint32_t tee_type;     /* 0x81 = TDX */
	uint8_t qe_vendor_id[16];
	uint8_t user_data[20];
};

/* The TD quote body; tee_tcb_svn2 and mrservicetd are zero for TDX 1.0. */
struct tdx_body {
	uint16_t type; /* TDX_BODY_TDX10 or TDX_BODY_TDX15 */
	uint8_t tee_tcb_svn[16];
	uint8_t mrseam[TDX_MR_LEN];
	uint8_t mrsignerseam[TDX_MR_LEN];
	uint8_t seam_attributes[8];
	uint8_t td_attributes[8];
	uint8_t xfam[8];
	uint8_t mrtd[TDX_MR_LEN];
	uint8_t mrconfigid[TDX_MR_LEN];
	uint8_t mrowner[TDX_MR_LEN];
	uint8_t mrownerconfig[TDX_MR_LEN];
	uint8_t rtmr[4][TDX_MR_LEN];
	uint8_t report_data[TDX_REPORT_DATA_LEN];
	uint8_t tee_tcb_svn2[16];
	uint8_t mrservicetd[TDX_MR_LEN];
};

/* The quoting enclave's SGX report (384 bytes on the wire). */
struct tdx_qe_report {
	uint8_t cpusvn[16];
	uint32_t miscselect;
	uint8_t attributes[16];
	uint8_t mrenclave[32];
	uint8_t mrsigner[32];
	uint16_t isvprodid;
	uint16_t isvsvn;
	uint8_t report_data[64];
};

/* A parsed quote.  Every pointer borrows from the buffer given to
 * tdx_parse, which must outlive this struct; nothing here is freed. */
struct tdx_quote {
	struct tdx_header header;
	struct tdx_body body;
	struct tdx_qe_report qe_report;
	const uint8_t *signed_data; /* header (+ body type/size) + body */
	size_t signed_len;
	const uint8_t *signature;     /* 64: r || s, big-endian */
	const uint8_t *att_key;       /* 64: X || Y */
	const uint8_t *qe_report_raw; /* 384 */
	const uint8_t *qe_report_sig; /* 64: r || s */
	const uint8_t *qe_auth_data;
	size_t qe_auth_len;
	const char *pck_pem; /* PCK leaf, intermediate, root (PEM) */
	size_t pck_pem_len;
};

/* TCB values from the PCK certificate's SGX extension. */
struct tdx_pck_info {
	uint8_t fmspc[6];
	uint8_t pceid[2];
	uint8_t ppid[16];
	uint8_t cpusvn[16];
	uint8_t sgx_tcb[16]; /* SGX TCB component SVNs 1..16 */
	uint16_t pcesvn;
	int sgx_type; /* 0 standard, 1 scalable, 2 scalable+integrity, -1 absent */
};

/* Intel PCS collateral: TCB info, QE identity, their signing chain and the
 * CRLs.  Opaque; filled piece by piece with tdx_collateral_add. */
struct tdx_collateral;

/* Parses a v4 or v5 ECDSA-P256 TDX quote (trailing bytes after the
 * signature data are tolerated).  `out` borrows from `q`.  Fails with a
 * reason naming the field for truncation, unsupported versions, key types,
 * TEE types or certification data types. */
int tdx_parse(const uint8_t *q, size_t len, struct tdx_quote *out, struct err *e);

/* Verifies a quote at time `at` against Intel's built-in root, with
 * collateral `col` (NULL: signatures and chain only, tcb_status "unknown").
 * On success returns 0 and, when `claims` is not NULL, hands the caller a
 * new object of claims.  On failure returns a negative code with a specific
 * reason in `e` and leaves *claims untouched. */
int tdx_verify(const uint8_t *q, size_t len, const struct tdx_collateral *col, time_t at,
               json_t **claims, struct err *e);

/* Same as tdx_verify with a different trust anchor (PEM certificate) in
 * place of the Intel SGX Root CA; NULL means Intel's.  For tests and
 * private DCAP deployments, never for production Intel quotes. */
int tdx_verify_root(const uint8_t *q, size_t len, const struct tdx_collateral *col, time_t at,
                    const char *root_pem, json_t **claims, struct err *e);

/* Reads the SGX extension (OID 1.2.840.113741.1.13.1) of a PCK certificate
 * given as PEM (the first certificate in `pem` is used). */
int tdx_pck_info_from_pem(const char *pem, size_t len, struct tdx_pck_info *out, struct err *e);

/* An empty collateral set; tdx_collateral_free(NULL) is a no-op. */
struct tdx_collateral *tdx_collateral_new(void);
void tdx_collateral_free(struct tdx_collateral *c);

/* Adds one piece of collateral, recognised by its content: a dcap-qvl /
 * Intel QCNL collateral JSON (pck_crl, root_ca_crl, tcb_info, qe_identity,
 * issuer chains), a PCS TCB info response {"tcbInfo":...,"signature":...},
 * a PCS QE identity response {"enclaveIdentity":...}, a PEM issuer chain
 * (TCB signing chain; PCK CRL chains are ignored: the quote carries the PCK
 * CA), or a CRL in DER or PEM (root CA CRL or PCK CRL, told apart by the
 * issuer).  Signatures are checked later, by tdx_verify. */
int tdx_collateral_add(struct tdx_collateral *c, const char *data, size_t len, struct err *e);

/* Loads a collateral set from one document (see tdx_collateral_add); the
 * caller owns *out on success. */
int tdx_collateral_load(const char *json_text, size_t len, struct tdx_collateral **out,
                        struct err *e);

/* Compares the quote's report_data with `expected`, zero-padded (or
 * truncated) to 64 bytes as Trustee does. */
int tdx_check_report_data(const struct tdx_quote *q, const uint8_t *expected, size_t n,
                          struct err *e);

/* The 48-byte MRCONFIGID (Trustee/cocod put the init-data digest there). */
const uint8_t *tdx_mrconfigid(const struct tdx_quote *q);

/* Compares MRCONFIGID with `expected` zero-padded (or truncated) to 48. */
int tdx_check_mrconfigid(const struct tdx_quote *q, const uint8_t *expected, size_t n,
                         struct err *e);

/* Whether TD_ATTRIBUTES.DEBUG (bit 0) is set. */
int tdx_is_debug(const struct tdx_quote *q);

/* Decodes TDX evidence: Trustee's JSON {"quote": base64, "cc_eventlog":
 * base64|null}, ASCII hex (optional 0x), or a raw quote.  The caller frees
 * *quote and *eventlog (NULL when absent; `eventlog` may be NULL). */
int tdx_evidence_decode(const char *data, size_t len, uint8_t **quote, size_t *quote_len,
                        uint8_t **eventlog, size_t *eventlog_len, struct err *e);

/* Replays a CC event log (TCG2 crypto-agile, SHA-384; MR index 1..4 ->
 * RTMR0..3) into `rtmr`, starting from zeros.  Stops at the first empty
 * slot of a zero-padded log.  *events receives the count when not NULL. */
int tdx_eventlog_replay(const uint8_t *log, size_t len, uint8_t rtmr[4][TDX_MR_LEN], size_t *events,
                        struct err *e);

/* The `cocod evidence verify --tee tdx` worker: reads evidence and
 * optional collateral files, verifies at `at`, prints every claim and the
 * verdict with its reason (text or, with json_output, one JSON object) to
 * `out`.  Returns the exit status: 0 valid, 1 invalid or unreadable. */
int tdx_cli_verify(const char *evidence_path, const char *collateral_path, time_t at,
                   int json_output, FILE *out);

/* As tdx_cli_verify with several collateral files (n may be 0). */
int tdx_cli_verify_files(const char *evidence_path, const char *const *collateral_paths, size_t n,
                         time_t at, int json_output, FILE *out);

/* Supplies collateral for a decoded quote (`cocod evidence verify
 * --data-dir` passes the store's); *out may stay NULL. */
typedef int (*tdx_collateral_fn)(void *arg, const uint8_t *q, size_t qlen, time_t at,
                                 struct tdx_collateral **out, struct err *e);

/* As tdx_cli_verify_files with the collateral from `load` (may be NULL). */
int tdx_cli_verify_with(const char *evidence_path, tdx_collateral_fn load, void *arg, time_t at,
                        int json_output, FILE *out);

/* Internal (tdx_roots.c): the Intel SGX Root CA, PEM, and the SHA-256 of
 * its DER encoding. */
extern const char tdx__intel_root_pem[];
extern const unsigned char tdx__intel_root_sha256[32];

#endif
