/* collateral: the box's local cache of attestation collateral, so that
 * verification never needs AMD's KDS or Intel's PCS (edge boxes are often
 * air-gapped).  `cocod collateral import FILE...` recognises each file by
 * its content:
 *
 *   AMD    VCEK, VLEK (chain checked against the built-in ASK/ASVK and ARK),
 *          ASK, ASVK, ARK (must be AMD's pinned ones), the ARK's CRL;
 *          PEM or DER, several certificates per file allowed
 *   Intel  PCK certificate chains (leaf, Platform/Processor CA, root), the
 *          TCB signing chain, the root CA CRL and PCK CRLs (DER or PEM),
 *          PCS TCB info {"tcbInfo", "signature"} and QE identity
 *          {"enclaveIdentity", "signature"} responses, and dcap-qvl/QCNL
 *          bundles holding all of them
 *
 * and stores each piece in table `collateral` (store migration 6), all
 * files in one transaction: a malformed, oversized or untrusted file fails
 * the whole import with a message naming the file and what is wrong.
 * Certificates are kept side by side (unique by SHA-256); for TCB info, QE
 * identities and CRLs only the newest per FMSPC / id / issuer is kept.
 * Signatures of Intel's JSON documents, every validity window and
 * revocation are checked again at each use, at the verification time.
 *
 * The verifiers ask: collateral_snp_veks for a report whose evidence
 * carries no VCEK/VLEK (by CHIP_ID and REPORTED_TCB), collateral_snp_crls
 * for the ARK CRLs applied to every SNP chain, collateral_tdx_load
 * for a quote's TCB info (its FMSPC), TD_QE identity, TCB signing chain
 * and CRLs.  A missing piece is an ERR_NOT_FOUND whose message names what
 * to import.  Loop thread (or one CLI process) only, like the store,
 * except collateral_tdx_build, which touches no store. */
#ifndef COCOD_COLLATERAL_H
#define COCOD_COLLATERAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "snp.h"
#include "store.h"
#include "tdx.h"

#define COLLATERAL_MAX_FILE (1u << 20) /* bytes per imported file */

/* Reads, checks and stores every file in one transaction.  On failure
 * nothing is stored and e->msg starts with the file's name.  One line per
 * piece (added, already present, replaced, kept-older) goes to `out` (may
 * be NULL). */
int collateral_import(store *st, const char *const *paths, size_t n, FILE *out, struct err *e);

/* The same for one document already in memory; `name` stands for the file
 * name in messages. */
int collateral_import_data(store *st, const char *name, const uint8_t *data, size_t len, FILE *out,
                           struct err *e);

/* Every stored piece, newest first within a kind: [{sha256, kind, lookup,
 * tcb, not_before, not_after (RFC 3339), summary, source, imported}]. */
int collateral_list(store *st, json_t **out, struct err *e);

/* Removes the piece whose SHA-256 starts with `prefix` (at least 8 hex
 * digits); ERR_NOT_FOUND, or ERR_CONFLICT when the prefix is ambiguous.
 * `removed` receives the full hash. */
int collateral_remove(store *st, const char *prefix, char removed[65], struct err *e);

/* A certificate handed out by the cache (DER). */
struct collateral_cert {
	uint8_t *der;
	size_t len;
};
void collateral_certs_free(struct collateral_cert *c, size_t n);

/* The stored VCEKs (by CHIP_ID) or VLEKs whose TCB and hwID extensions
 * match report `r` (snp_check_vek_binding), best first; the caller tries
 * each.  ERR_NOT_FOUND names the VCEK/VLEK to import (with its KDS path). */
int collateral_snp_veks(store *st, const struct snp_report *r, struct collateral_cert **out,
                        size_t *n, struct err *e);

/* The imported AMD ARK CRLs (one per product at most), for snp's
 * revocation check; *out stays NULL when none is stored.  The caller
 * frees *out (snp_crls_free). */
int collateral_snp_crls(store *st, struct snp_crls **out, struct err *e);

/* The collateral for TDX quote `q` (raw bytes): TCB info for its PCK's
 * FMSPC, the TD_QE identity, the Intel SGX TCB Signing certificate (newest
 * valid at `at`), the root CA CRL and the CRL of its PCK CA.  The caller
 * frees *out.  ERR_NOT_FOUND names the first missing piece. */
int collateral_tdx_load(store *st, const uint8_t *q, size_t len, time_t at,
                        struct tdx_collateral **out, struct err *e);

/* collateral_tdx_load in two steps, so that the parsing (about a
 * millisecond) can leave the loop thread: the store's TDX pieces (TCB
 * infos, QE identities, TCB signing certificates, Intel CRLs; a few kB
 * each) are copied out on the loop thread, then the set for quote `q` is
 * chosen and parsed on any thread.  Errors as collateral_tdx_load. */
struct collateral_tdx_rows;
int collateral_tdx_fetch(store *st, struct collateral_tdx_rows **out, struct err *e);
void collateral_tdx_rows_free(struct collateral_tdx_rows *r);
int collateral_tdx_build(const struct collateral_tdx_rows *rows, const uint8_t *q, size_t len,
                         time_t at, struct tdx_collateral **out, struct err *e);

/* `cocod collateral import|ls|rm`; argv[0] is "collateral". */
int collateral_main(int argc, char **argv);

#endif
