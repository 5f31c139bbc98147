/* Unit tests for tee/collateral.c, the offline collateral cache, over the
 * real vectors in tests/data (copies of shared/vectors; expected values
 * from shared/vectors/README.md, computed independently of cocod).
 *
 * Cases:
 *   import_recognises_each_kind        AMD VCEK (Milan, Turin 8-byte hwID),
 *                                      VLEK, ASK/ARK, Intel bundle pieces,
 *                                      PCS TCB info / QE identity, CRLs, chains:
 *                                      kinds, lookups and TCBs as expected
 *   import_is_all_or_nothing           each bad file (fake VCEK, a non-AMD/
 *                                      Intel certificate, malformed JSON, junk,
 *                                      empty, oversized, bad signature hex,
 *                                      unknown JSON) fails naming the file and
 *                                      leaves the store empty
 *   newer_documents_replace_older      QE identity / CRL: newer replaces, older
 *                                      is skipped, re-import is unchanged
 *   snp_lookup_by_chip_id_and_tcb      no VCEK -> ERR_NOT_FOUND naming the KDS
 *                                      path; imported VCEK/VLEK found and the
 *                                      report verifies with it; another TCB or
 *                                      CHIP_ID finds nothing
 *   tdx_load_names_each_missing_piece  TCB info, TD_QE identity, TCB signing
 *                                      certificate, root CRL, PCK CRL in turn
 *   tdx_status_from_stored_collateral  dcap-qvl tdx_quote UpToDate; outdated
 *                                      quote: no TCB level; go-tdx-guest set:
 *                                      tdx_quote_4 UpToDate, SPR_E4 no level
 *   remove_by_prefix                   short, unknown and exact prefixes */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "collateral.h"
#include "snp.h"
#include "store.h"
#include "tdx.h"
#include "util.h"

#define SNP           "tests/data/snp/"
#define TDX           "tests/data/tdx/"
#define AT_2025_06_20 ((time_t)1750377600)
#define AT_2023_06_20 ((time_t)1687219200)
#define AT_2026_03_01 ((time_t)1772323200)

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

struct fixture {
	char dir[64];
	store *st;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct err e = {0};
	snprintf(f->dir, sizeof f->dir, "/tmp/cocod-collateral.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	cleanup_free char *db = xasprintf("%s/cocod.db", f->dir);
	if (store_open(db, &f->st, &e))
		fail_msg("%s", e.msg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->st);
	cleanup_free char *cmd = xasprintf("rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	free(f);
	return 0;
}

static void import_ok(store *st, const char *const *paths, size_t n)
{
	struct err e = {0};
	if (collateral_import(st, paths, n, NULL, &e))
		fail_msg("import: %s", e.msg);
}

static size_t count_kind(store *st, const char *kind, const char *lookup, const char *tcb)
{
	json_t *all = NULL, *v;
	struct err e = {0};
	size_t i, n = 0;
	if (collateral_list(st, &all, &e))
		fail_msg("%s", e.msg);
	json_array_foreach(all, i, v)
	{
		if (kind && strcmp(json_string_value(json_object_get(v, "kind")), kind))
			continue;
		if (lookup && strcmp(json_string_value(json_object_get(v, "lookup")), lookup))
			continue;
		if (tcb && strcmp(json_string_value(json_object_get(v, "tcb")), tcb))
			continue;
		n++;
	}
	json_decref(all);
	return n;
}

static void import_recognises_each_kind(void **state)
{
	struct fixture *f = *state;
	static const char *const files[] = {
	    SNP "go-sev-guest/vcek.testcer",    SNP "sev/vcek_turin.der",
	    SNP "trustee/snp/test-vlek.der",    SNP "go-sev-guest/ask_ark_milan.pem",
	    SNP "trustee/az-snp-vtpm/vcek.pem", TDX "dcap-qvl/sample/tdx_quote_collateral.json",
	    TDX "go-tdx-guest/sample_tcbInfo_response",
	};
	import_ok(f->st, files, sizeof files / sizeof files[0]);
	/* go-sev-guest VCEK: Milan-B0, bl 2 tee 0 snp 5 ucode 68 (README 1.3). */
	assert_int_equal(count_kind(f->st, "vcek",
	                            "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e5378618"
	                            "4ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d",
	                            "-1.2.0.5.68"),
	                 1);
	/* Turin: hwID is 8 raw bytes, fmc 0 bl 0 tee 0 snp 0 ucode 9. */
	assert_int_equal(count_kind(f->st, "vcek", "1e550a8ee5cf9f4d", "0.0.0.0.9"), 1);
	assert_int_equal(count_kind(f->st, "vlek", "Milan", "-1.4.0.24.217"), 1);
	/* ask_ark_milan.pem and the az vcek.pem both hold the Milan ASK/ARK:
	 * stored once. */
	assert_int_equal(count_kind(f->st, "ask", "Milan", NULL), 1);
	assert_int_equal(count_kind(f->st, "ark", "Milan", NULL), 1);
	assert_int_equal(count_kind(f->st, "vcek", NULL, NULL), 3);
	assert_int_equal(count_kind(f->st, "tcb_info", "TDX:b0c06f000000", NULL), 1);
	assert_int_equal(count_kind(f->st, "tcb_info", "TDX:50806f000000", NULL), 1);
	assert_int_equal(count_kind(f->st, "qe_identity", "TD_QE", NULL), 1);
	assert_int_equal(count_kind(f->st, "tcb_signing", "Intel SGX TCB Signing", NULL), 1);
	assert_int_equal(count_kind(f->st, "intel_crl", "Intel SGX Root CA", NULL), 1);
	assert_int_equal(count_kind(f->st, "intel_crl", "Intel SGX PCK Platform CA", NULL), 1);
	assert_int_equal(count_kind(f->st, "pck_ca", "Intel SGX PCK Platform CA", NULL), 1);
	assert_int_equal(count_kind(f->st, "intel_root", NULL, NULL), 1);
}

/* One bad file among good ones: the error names it, nothing is stored. */
static void expect_import_fails(store *st, const char *bad, const char *why)
{
	const char *files[] = {SNP "go-sev-guest/vcek.testcer", bad};
	struct err e = {0};
	assert_int_not_equal(collateral_import(st, files, 2, NULL, &e), 0);
	assert_contains(e.msg, bad);
	assert_contains(e.msg, why);
	assert_int_equal(count_kind(st, NULL, NULL, NULL), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

static void import_is_all_or_nothing(void **state)
{
	struct fixture *f = *state;
	char path[128];
	/* Fake VCEKs whose signature by the Milan ASK is invalid (both hwID
	 * encodings). */
	expect_import_fails(f->st, SNP "trustee/snp/test-vcek-invalid-legacy.der",
	                    "not certified by AMD");
	expect_import_fails(f->st, SNP "trustee/snp/test-vcek-invalid-new.der",
	                    "not certified by AMD");
	/* An SNP report is not collateral. */
	expect_import_fails(f->st, SNP "go-sev-guest/attestation.bin", "neither a certificate");
	snprintf(path, sizeof path, "%s/empty", f->dir);
	write_file(path, "", 0);
	expect_import_fails(f->st, path, "empty file");
	snprintf(path, sizeof path, "%s/big.pem", f->dir);
	char *big = xcalloc(1, COLLATERAL_MAX_FILE + 10);
	memset(big, 'A', COLLATERAL_MAX_FILE + 9);
	write_file(path, big, COLLATERAL_MAX_FILE + 9);
	free(big);
	expect_import_fails(f->st, path, "more than");
	snprintf(path, sizeof path, "%s/trunc.json", f->dir);
	write_file(path, "{\"tcbInfo\": {\"id\": \"TDX\"", 24);
	expect_import_fails(f->st, path, "malformed JSON");
	snprintf(path, sizeof path, "%s/other.json", f->dir);
	write_file(path, "{\"hello\": 1}", 12);
	expect_import_fails(f->st, path, "neither Intel TCB info");
	/* A TCB info whose signature is not 64 bytes of hex. */
	size_t len;
	char *ti = NULL;
	struct err e = {0};
	assert_int_equal(file_read(TDX "go-tdx-guest/sample_tcbInfo_response", 1u << 20, &ti, &len, &e),
	                 0);
	char *sig = strstr(ti, "\"signature\":\"");
	assert_non_null(sig);
	sig[13] = 'z';
	snprintf(path, sizeof path, "%s/badsig.json", f->dir);
	write_file(path, ti, len);
	free(ti);
	expect_import_fails(f->st, path, "signature");
	/* A certificate that is neither AMD's nor Intel's (the Intel SGX PCK
	 * CRL issuer chain holds only Intel certificates; use a PEM made up
	 * of one of them with its CN not recognised: the sim cannot be used
	 * here, so take the root CA renamed via a text edit-free path: a
	 * self-signed test certificate made by OpenSSL). */
	snprintf(path, sizeof path, "%s/self.pem", f->dir);
	cleanup_free char *cmd = xasprintf(
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=somebody "
	    "-keyout %s/self.key -out %s -days 1 2>/dev/null",
	    f->dir, path);
	if (system(cmd) == 0)
		expect_import_fails(f->st, path, "neither an AMD");
	/* A PEM that says it is a certificate but is not. */
	snprintf(path, sizeof path, "%s/junk.pem", f->dir);
	static const char junk[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
	write_file(path, junk, sizeof junk - 1);
	expect_import_fails(f->st, path, "malformed certificate");
}

static void newer_documents_replace_older(void **state)
{
	struct fixture *f = *state;
	const char *old_qe[] = {TDX "go-tdx-guest/sample_qeIdentity_response"};
	const char *new_qe[] = {TDX "trustee/tdx/enclaveIdentity.json"};
	const char *old_crl[] = {TDX "go-tdx-guest/pckcrl"};
	const char *bundle[] = {TDX "dcap-qvl/sample/tdx_quote_collateral.json"};
	json_t *all = NULL;
	struct err e = {0};
	import_ok(f->st, old_qe, 1);
	import_ok(f->st, old_crl, 1);
	import_ok(f->st, new_qe, 1);   /* 2025-10-28 replaces 2023-06-08 */
	import_ok(f->st, bundle, 1);   /* its QE identity (2025-06-19) is older: skipped */
	import_ok(f->st, old_qe, 1);   /* skipped */
	import_ok(f->st, old_crl, 1);  /* the bundle's 2025 PCK CRL stays */
	assert_int_equal(count_kind(f->st, "qe_identity", "TD_QE", NULL), 1);
	assert_int_equal(count_kind(f->st, "intel_crl", "Intel SGX PCK Platform CA", NULL), 1);
	assert_int_equal(collateral_list(f->st, &all, &e), 0);
	size_t i;
	json_t *v;
	json_array_foreach(all, i, v)
	{
		const char *kind = json_string_value(json_object_get(v, "kind"));
		const char *nb = json_string_value(json_object_get(v, "not_before"));
		if (!strcmp(kind, "qe_identity"))
			assert_string_equal(nb, "2025-10-28T06:45:09Z");
		if (!strcmp(kind, "intel_crl") &&
		    !strcmp(json_string_value(json_object_get(v, "lookup")), "Intel SGX PCK Platform CA"))
			assert_string_equal(nb, "2025-06-19T10:00:35Z");
	}
	json_decref(all);
}

static void load_raw(const char *path, uint8_t out[SNP_REPORT_SIZE])
{
	size_t len;
	struct err e = {0};
	cleanup_free char *d = NULL;
	assert_int_equal(file_read(path, 1u << 20, &d, &len, &e), 0);
	if (len >= 2 * SNP_REPORT_SIZE) {
		for (size_t i = 0; i < SNP_REPORT_SIZE; i++) {
			unsigned x;
			assert_int_equal(sscanf(d + 2 * i, "%2x", &x), 1);
			out[i] = (uint8_t)x;
		}
		return;
	}
	assert_int_equal(len, SNP_REPORT_SIZE);
	memcpy(out, d, SNP_REPORT_SIZE);
}

/* Looks up the VEK for `report` and verifies the report with it. */
static int lookup_and_verify(store *st, const uint8_t *raw, struct err *e)
{
	struct snp_report r;
	struct collateral_cert *c = NULL;
	size_t n = 0;
	assert_int_equal(snp_parse(raw, SNP_REPORT_SIZE, &r, e), 0);
	int rc = collateral_snp_veks(st, &r, &c, &n, e);
	if (rc == 0) {
		assert_int_equal(n, 1);
		rc = snp_verify(raw, SNP_REPORT_SIZE, c[0].der, c[0].len, NULL, AT_2025_06_20, NULL, e);
	}
	collateral_certs_free(c, n);
	return rc;
}

static void snp_lookup_by_chip_id_and_tcb(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *report, *cert;
	} v[] = {
	    {SNP "go-sev-guest/attestation.bin", SNP "go-sev-guest/vcek.testcer"},
	    {SNP "sev/report_milan.hex", SNP "sev/vcek_milan.der"},
	    {SNP "trustee/snp/test-report.bin", SNP "trustee/snp/test-vcek.der"},
	    {SNP "trustee/snp/test-vlek-report.bin", SNP "trustee/snp/test-vlek.der"},
	};
	uint8_t raw[SNP_REPORT_SIZE];
	struct err e = {0};
	load_raw(v[0].report, raw);
	assert_int_equal(lookup_and_verify(f->st, raw, &e), ERR_NOT_FOUND);
	assert_contains(e.msg, "no imported VCEK for CHIP_ID 3ac3fe21e13fb099");
	assert_contains(e.msg, "blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68");
	load_raw(v[3].report, raw);
	assert_int_equal(lookup_and_verify(f->st, raw, &e), ERR_NOT_FOUND);
	assert_contains(e.msg, "no imported VLEK matches REPORTED_TCB bl=4 tee=0 snp=24 ucode=217");
	for (size_t i = 0; i < 4; i++) {
		const char *one[] = {v[i].cert};
		import_ok(f->st, one, 1);
	}
	for (size_t i = 0; i < 4; i++) {
		load_raw(v[i].report, raw);
		if (lookup_and_verify(f->st, raw, &e))
			fail_msg("%s: %s", v[i].report, e.msg);
	}
	/* A different REPORTED_TCB (microcode) or CHIP_ID finds no VCEK. */
	load_raw(v[1].report, raw);
	raw[0x187] ^= 1;
	assert_int_equal(lookup_and_verify(f->st, raw, &e), ERR_NOT_FOUND);
	load_raw(v[1].report, raw);
	raw[0x1A0] ^= 1;
	assert_int_equal(lookup_and_verify(f->st, raw, &e), ERR_NOT_FOUND);
	assert_contains(e.msg, "no imported VCEK");
}

static uint8_t *load_quote(const char *path, size_t *len)
{
	struct err e = {0};
	char *d = NULL;
	assert_int_equal(file_read(path, 1u << 20, &d, len, &e), 0);
	return (uint8_t *)d;
}

static void tdx_load_names_each_missing_piece(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *file, *missing;
	} steps[] = {
	    {NULL, "no TDX TCB info for FMSPC b0c06f000000"},
	    /* another platform's TCB info does not do */
	    {TDX "go-tdx-guest/sample_tcbinfo_response_v5", "no TDX TCB info for FMSPC b0c06f000000"},
	};
	size_t len;
	cleanup_free uint8_t *q = load_quote(TDX "dcap-qvl/sample/tdx_quote", &len);
	struct tdx_collateral *c = NULL;
	struct err e = {0};
	for (size_t i = 0; i < 2; i++) {
		if (steps[i].file)
			import_ok(f->st, &steps[i].file, 1);
		assert_int_equal(collateral_tdx_load(f->st, q, len, AT_2025_06_20, &c, &e),
		                 ERR_NOT_FOUND);
		assert_contains(e.msg, steps[i].missing);
		assert_contains(e.msg, "tcb?fmspc=b0c06f000000");
	}
	/* Now piece by piece out of the dcap-qvl bundle: each load names the
	 * next missing piece. */
	cleanup_free char *bundle = NULL;
	assert_int_equal(
	    file_read(TDX "dcap-qvl/sample/tdx_quote_collateral.json", 1u << 20, &bundle, &len, &e), 0);
	json_t *b = json_loads(bundle, 0, NULL);
	assert_non_null(b);
	char *ti = xasprintf("{\"tcbInfo\":%s,\"signature\":\"%s\"}",
	                     json_string_value(json_object_get(b, "tcb_info")),
	                     json_string_value(json_object_get(b, "tcb_info_signature")));
	char *qi = xasprintf("{\"enclaveIdentity\":%s,\"signature\":\"%s\"}",
	                     json_string_value(json_object_get(b, "qe_identity")),
	                     json_string_value(json_object_get(b, "qe_identity_signature")));
	const char *chain = json_string_value(json_object_get(b, "tcb_info_issuer_chain"));
	const char *pck_chain = json_string_value(json_object_get(b, "pck_crl_issuer_chain"));
	struct {
		const char *name, *data, *next;
	} add[] = {
	    {"ti", ti, "no TD_QE identity imported"},
	    {"qi", qi, "no Intel SGX TCB Signing certificate"},
	    {"chain", chain, "no Intel SGX Root CA CRL"},
	    {"pck chain", pck_chain, "no Intel SGX Root CA CRL"},
	};
	size_t cq;
	cleanup_free uint8_t *q2 = load_quote(TDX "dcap-qvl/sample/tdx_quote", &cq);
	for (size_t i = 0; i < 4; i++) {
		if (collateral_import_data(f->st, add[i].name, (const uint8_t *)add[i].data,
		                           strlen(add[i].data), NULL, &e))
			fail_msg("%s: %s", add[i].name, e.msg);
		assert_int_equal(collateral_tdx_load(f->st, q2, cq, AT_2025_06_20, &c, &e),
		                 ERR_NOT_FOUND);
		assert_contains(e.msg, add[i].next);
	}
	/* The root CRL, then the PCK CRL: complete. */
	static const char *const crls[] = {"root_ca_crl", "pck_crl"};
	for (size_t i = 0; i < 2; i++) {
		const char *h = json_string_value(json_object_get(b, crls[i]));
		size_t n = strlen(h) / 2;
		uint8_t *der = xmalloc(n);
		for (size_t j = 0; j < n; j++) {
			unsigned x;
			assert_int_equal(sscanf(h + 2 * j, "%2x", &x), 1);
			der[j] = (uint8_t)x;
		}
		assert_int_equal(collateral_import_data(f->st, crls[i], der, n, NULL, &e), 0);
		free(der);
		int rc = collateral_tdx_load(f->st, q2, cq, AT_2025_06_20, &c, &e);
		if (i == 0) {
			assert_int_equal(rc, ERR_NOT_FOUND);
			assert_contains(e.msg, "no CRL of Intel SGX PCK Platform CA imported");
			assert_contains(e.msg, "pckcrl?ca=platform");
		} else {
			if (rc)
				fail_msg("%s", e.msg);
			tdx_collateral_free(c);
		}
	}
	free(ti);
	free(qi);
	json_decref(b);
}

/* Loads `quote`'s collateral from the store and verifies at `at`. */
static int verify_stored(store *st, const char *quote, time_t at, json_t **claims, struct err *e)
{
	size_t len;
	cleanup_free uint8_t *q = load_quote(quote, &len);
	struct tdx_collateral *c = NULL;
	int rc = collateral_tdx_load(st, q, len, at, &c, e);
	if (rc == 0)
		rc = tdx_verify(q, len, c, at, claims, e);
	tdx_collateral_free(c);
	return rc;
}

static store *another_store(struct fixture *f, const char *name)
{
	store *st = NULL;
	struct err e = {0};
	cleanup_free char *db = xasprintf("%s/%s.db", f->dir, name);
	if (store_open(db, &st, &e))
		fail_msg("%s", e.msg);
	return st;
}

static void tdx_status_from_stored_collateral(void **state)
{
	struct fixture *f = *state;
	json_t *claims = NULL;
	struct err e = {0};
	const char *dcap[] = {TDX "dcap-qvl/sample/tdx_quote_collateral.json"};
	import_ok(f->st, dcap, 1);
	if (verify_stored(f->st, TDX "dcap-qvl/sample/tdx_quote", AT_2025_06_20, &claims, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(json_string_value(json_object_get(claims, "tcb_status")), "UpToDate");
	json_decref(claims);
	claims = NULL;
	/* Each dcap-qvl set in its own store: the outdated quote's set has a
	 * newer CRL and QE identity, which would replace the first set's. */
	store *so = another_store(f, "outdated");
	const char *outdated[] = {TDX "dcap-qvl/sample/tdx_quote_outdated_collateral.json"};
	import_ok(so, outdated, 1);
	assert_int_not_equal(
	    verify_stored(so, TDX "dcap-qvl/sample/tdx_quote_outdated", AT_2026_03_01, &claims, &e), 0);
	assert_contains(e.msg, "no TCB level matches");
	store_close(so);

	/* The go-tdx-guest set (2023). */
	store *st2 = another_store(f, "second");
	const char *gtg[] = {TDX "go-tdx-guest/sample_tcbInfo_response",
	                     TDX "go-tdx-guest/sample_qeIdentity_response",
	                     TDX "go-tdx-guest/derived_tcb_signing_issuer_chain.pem",
	                     TDX "go-tdx-guest/pckcrl", TDX "go-tdx-guest/rootcrl.der"};
	import_ok(st2, gtg, 5);
	if (verify_stored(st2, TDX "trustee/tdx/tdx_quote_4.dat", AT_2023_06_20, &claims, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(json_string_value(json_object_get(claims, "tcb_status")), "UpToDate");
	json_decref(claims);
	claims = NULL;
	assert_int_not_equal(verify_stored(st2, TDX "go-tdx-guest/tdx_prod_quote_SPR_E4.dat",
	                                   AT_2023_06_20, &claims, &e),
	                     0);
	assert_contains(e.msg, "no TCB level matches");
	/* Out of the collateral's window: expired, not silently unknown. */
	assert_int_not_equal(
	    verify_stored(st2, TDX "trustee/tdx/tdx_quote_4.dat", AT_2025_06_20, &claims, &e), 0);
	assert_contains(e.msg, "expired");
	store_close(st2);
}

static void remove_by_prefix(void **state)
{
	struct fixture *f = *state;
	const char *files[] = {SNP "go-sev-guest/vcek.testcer"};
	json_t *all = NULL;
	char full[65];
	struct err e = {0};
	import_ok(f->st, files, 1);
	assert_int_equal(collateral_remove(f->st, "0d05", full, &e), ERR_BAD_REQUEST);
	assert_int_equal(collateral_remove(f->st, "ffffffffff", full, &e), ERR_NOT_FOUND);
	assert_int_equal(collateral_list(f->st, &all, &e), 0);
	const char *sha = json_string_value(json_object_get(json_array_get(all, 0), "sha256"));
	char prefix[13];
	snprintf(prefix, sizeof prefix, "%.12s", sha);
	assert_int_equal(collateral_remove(f->st, prefix, full, &e), 0);
	assert_string_equal(full, sha);
	json_decref(all);
	assert_int_equal(count_kind(f->st, NULL, NULL, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(import_recognises_each_kind, setup, teardown),
	    cmocka_unit_test_setup_teardown(import_is_all_or_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(newer_documents_replace_older, setup, teardown),
	    cmocka_unit_test_setup_teardown(snp_lookup_by_chip_id_and_tcb, setup, teardown),
	    cmocka_unit_test_setup_teardown(tdx_load_names_each_missing_piece, setup, teardown),
	    cmocka_unit_test_setup_teardown(tdx_status_from_stored_collateral, setup, teardown),
	    cmocka_unit_test_setup_teardown(remove_by_prefix, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
