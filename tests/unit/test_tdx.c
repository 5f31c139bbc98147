/* Unit tests for tdx: known answers over every TDX quote in tests/data/tdx
 * (copied from shared/vectors; expected values in tests/data/tdx/kat.json,
 * computed independently with Python cryptography and openssl), collateral
 * evaluations pinned in time, and derived negative cases that must each
 * fail with their own reason.  Cases:
 *   parse:      every vector parses to its recorded header/body/QE/PCK
 *               values; SGX quotes, truncations, bad versions, key types,
 *               TEE types, body types and certification types are refused
 *   verify:     every vector verifies without collateral (tcb unknown);
 *               time outside the PCK validity is refused
 *   collateral: dcap-qvl UpToDate, outdated (no level) and CRL expiry;
 *               go-tdx-guest v4/v5 and Trustee OutOfDate evaluations
 *   tampering:  quote signature, MRTD, QE report, QE auth data, wrong root,
 *               self-made intermediate, TCB info / QE identity bytes,
 *               CRL not from Intel, CRLs revoking a PCK / PCK CA (forged
 *               chain under a test root)
 *   algorithm:  Intel's TCB level selection, status combination and the
 *               identity checks, over collateral signed under a test root
 *   helpers:    report_data / MRCONFIGID checks, evidence decoding, CC
 *               event log replay, the CLI worker */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tdx.h"
#include "util.h"

#define DATA "tests/data/tdx/"

/* ---- fixtures ---------------------------------------------------------- */

static json_t *kat;

static uint8_t *read_data(const char *rel, size_t *len)
{
	char path[256], *buf = NULL;
	struct err e = {0};
	snprintf(path, sizeof path, DATA "%s", rel);
	if (file_read(path, 16u << 20, &buf, len, &e) != 0)
		fail_msg("read %s: %s", path, e.msg);
	return (uint8_t *)buf;
}

/* A quote file in whatever encoding it is stored (raw or hex). */
static uint8_t *read_quote(const char *rel, size_t *len)
{
	size_t n;
	uint8_t *raw = read_data(rel, &n), *q = NULL;
	struct err e = {0};
	assert_int_equal(tdx_evidence_decode((char *)raw, n, &q, len, NULL, NULL, &e), 0);
	free(raw);
	return q;
}

static time_t at(const char *iso)
{
	struct tm tm = {0};
	if (sscanf(iso, "%d-%d-%d%*c%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec) != 6)
		fail_msg("bad time %s", iso);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

/* A collateral set from files under tests/data/tdx (NULL-terminated). */
static struct tdx_collateral *collateral(const char *first, ...)
{
	struct tdx_collateral *c = tdx_collateral_new();
	struct err e = {0};
	va_list ap;
	size_t n;

	va_start(ap, first);
	for (const char *f = first; f; f = va_arg(ap, const char *)) {
		char *d = (char *)read_data(f, &n);
		if (tdx_collateral_add(c, d, n, &e) != 0)
			fail_msg("collateral %s: %s", f, e.msg);
		free(d);
	}
	va_end(ap);
	return c;
}

static json_t *kat_quote(const char *file)
{
	size_t i;
	json_t *q;
	json_array_foreach(
	    json_object_get(kat, "tdx_sgx_quotes"), i,
	    q) if (!strcmp(json_string_value(json_object_get(q, "file")), file)) return q;
	fail_msg("no KAT entry for %s", file);
	return NULL;
}

static const char *kstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	if (!s)
		fail_msg("KAT/claims lacks string %s", key);
	return s;
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
	char *s = xmalloc(2 * n + 1);
	hex_encode(p, n, s);
	assert_string_equal(s, want);
	free(s);
}

static int is_tdx(const json_t *k)
{
	return !strcmp(kstr(k, "tee"), "Intel TDX");
}

/* A time just inside the PCK leaf's recorded validity. */
static time_t pck_time(const json_t *k)
{
	const json_t *v = json_object_get(json_object_get(k, "expect"), "pck_leaf_validity");
	return at(json_string_value(json_array_get(v, 0))) + 86400;
}

static int group_setup(void **state)
{
	json_error_t je;
	kat = json_load_file(DATA "kat.json", 0, &je);
	return kat ? 0 : -1;
}

static int group_teardown(void **state)
{
	json_decref(kat);
	return 0;
}

/* ---- known answers: parsing -------------------------------------------- */

static void check_body(const struct tdx_quote *q, const json_t *b)
{
	assert_hex(q->body.tee_tcb_svn, 16, kstr(b, "tee_tcb_svn"));
	assert_hex(q->body.mrseam, 48, kstr(b, "mrseam"));
	assert_hex(q->body.mrsignerseam, 48, kstr(b, "mrsignerseam"));
	assert_hex(q->body.seam_attributes, 8, kstr(b, "seam_attributes"));
	assert_hex(q->body.td_attributes, 8, kstr(b, "td_attributes"));
	assert_hex(q->body.xfam, 8, kstr(b, "xfam"));
	assert_hex(q->body.mrtd, 48, kstr(b, "mrtd"));
	assert_hex(q->body.mrconfigid, 48, kstr(b, "mrconfigid"));
	assert_hex(q->body.mrowner, 48, kstr(b, "mrowner"));
	assert_hex(q->body.mrownerconfig, 48, kstr(b, "mrownerconfig"));
	assert_hex(q->body.rtmr[0], 48, kstr(b, "rtmr0"));
	assert_hex(q->body.rtmr[1], 48, kstr(b, "rtmr1"));
	assert_hex(q->body.rtmr[2], 48, kstr(b, "rtmr2"));
	assert_hex(q->body.rtmr[3], 48, kstr(b, "rtmr3"));
	assert_hex(q->body.report_data, 64, kstr(b, "report_data"));
	if (q->body.type == TDX_BODY_TDX15) {
		assert_hex(q->body.tee_tcb_svn2, 16, kstr(b, "tee_tcb_svn2"));
		assert_hex(q->body.mrservicetd, 48, kstr(b, "mrservicetd"));
	}
}

static void check_qe(const struct tdx_quote *q, const json_t *k)
{
	const json_t *r = json_object_get(k, "qe_report");
	assert_hex(q->qe_report.mrenclave, 32, kstr(r, "mrenclave"));
	assert_hex(q->qe_report.mrsigner, 32, kstr(r, "mrsigner"));
	assert_hex(q->qe_report.cpusvn, 16, kstr(r, "cpusvn"));
	assert_hex(q->qe_report.attributes, 16, kstr(r, "attributes"));
	assert_hex(q->qe_report.report_data, 64, kstr(r, "report_data"));
	assert_int_equal(q->qe_report.isvprodid,
	                 json_integer_value(json_object_get(r, "isvprodid")));
	assert_int_equal(q->qe_report.isvsvn, json_integer_value(json_object_get(r, "isvsvn")));
	assert_hex(q->qe_auth_data, q->qe_auth_len, kstr(k, "qe_auth_data"));
	assert_hex(q->att_key, 64, kstr(k, "attestation_key"));
}

static void check_pck(const struct tdx_quote *q, const json_t *k)
{
	const json_t *p = json_object_get(k, "pck"), *v;
	struct tdx_pck_info pi;
	struct err e = {0};
	size_t i;

	assert_int_equal(tdx_pck_info_from_pem(q->pck_pem, q->pck_pem_len, &pi, &e), 0);
	assert_hex(pi.fmspc, 6, kstr(p, "fmspc"));
	assert_hex(pi.pceid, 2, kstr(p, "pceid"));
	assert_hex(pi.ppid, 16, kstr(p, "ppid"));
	assert_hex(pi.cpusvn, 16, kstr(p, "cpusvn"));
	assert_int_equal(pi.pcesvn, json_integer_value(json_object_get(p, "pcesvn")));
	assert_int_equal(pi.sgx_type, json_integer_value(json_object_get(p, "sgx_type")));
	json_array_foreach(json_object_get(p, "cpusvn_components"), i, v)
	    assert_int_equal(pi.sgx_tcb[i], json_integer_value(v));
}

static void every_tdx_vector_parses_to_its_recorded_values(void **state)
{
	size_t i, len, checked = 0;
	json_t *k;

	json_array_foreach(json_object_get(kat, "tdx_sgx_quotes"), i, k)
	{
		struct tdx_quote q;
		struct err e = {0};
		uint8_t *raw, md[32];
		const json_t *h = json_object_get(k, "header");

		if (!is_tdx(k))
			continue;
		raw = read_quote(kstr(k, "file"), &len);
		assert_int_equal(len, json_integer_value(json_object_get(k, "quote_len")));
		if (tdx_parse(raw, len, &q, &e) != 0)
			fail_msg("%s: %s", kstr(k, "file"), e.msg);
		assert_int_equal(q.header.version,
		                 json_integer_value(json_object_get(h, "version")));
		assert_int_equal(q.header.att_key_type, TDX_ATT_KEY_ECDSA_P256);
		assert_int_equal(q.header.tee_type, 0x81);
		assert_hex(q.header.qe_vendor_id, 16, kstr(h, "qe_vendor_id"));
		assert_hex(q.header.user_data, 20, kstr(h, "user_data"));
		if (q.header.version == 5)
			assert_int_equal(q.body.type,
			                 json_integer_value(json_object_get(k, "body_type")));
		SHA256(q.signed_data, q.signed_len, md);
		assert_hex(md, 32, kstr(k, "signed_region_sha256"));
		check_body(&q, json_object_get(k, "body"));
		check_qe(&q, k);
		check_pck(&q, k);
		free(raw);
		checked++;
	}
	assert_int_equal(checked, 11);
}

static void sgx_quotes_are_refused_as_unsupported_version(void **state)
{
	const char *files[] = {"trustee/tdx/occlum_quote.dat", "dcap-qvl/sample/sgx_quote"};
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		uint8_t *q = read_quote(files[i], &len);
		struct tdx_quote tq;
		struct err e = {0};
		assert_true(tdx_parse(q, len, &tq, &e) < 0);
		assert_string_equal(e.msg, "unsupported quote version 3 (want 4 or 5)");
		free(q);
	}
}

/* ---- known answers: verification --------------------------------------- */

static void every_tdx_vector_verifies_without_collateral(void **state)
{
	size_t i, len, checked = 0;
	json_t *k;

	json_array_foreach(json_object_get(kat, "tdx_sgx_quotes"), i, k)
	{
		struct err e = {0};
		json_t *c = NULL, *b = json_object_get(k, "body");
		uint8_t *q;

		if (!is_tdx(k))
			continue;
		q = read_quote(kstr(k, "file"), &len);
		if (tdx_verify(q, len, NULL, pck_time(k), &c, &e) != 0)
			fail_msg("%s: %s", kstr(k, "file"), e.msg);
		assert_string_equal(kstr(c, "tcb_status"), "unknown");
		assert_string_equal(kstr(c, "mrtd"), kstr(b, "mrtd"));
		assert_string_equal(kstr(c, "mrconfigid"), kstr(b, "mrconfigid"));
		assert_string_equal(kstr(c, "report_data"), kstr(b, "report_data"));
		assert_string_equal(kstr(c, "rtmr0"), kstr(b, "rtmr0"));
		assert_string_equal(kstr(c, "rtmr3"), kstr(b, "rtmr3"));
		assert_string_equal(kstr(c, "xfam"), kstr(b, "xfam"));
		assert_string_equal(kstr(json_object_get(c, "pck"), "fmspc"),
		                    kstr(json_object_get(k, "pck"), "fmspc"));
		assert_string_equal(kstr(json_object_get(c, "pck"), "issuer"),
		                    kstr(json_object_get(k, "expect"), "pck_intermediate"));
		json_decref(c);
		free(q);
		checked++;
	}
	assert_int_equal(checked, 11);
}

static void debug_bit_is_decoded_from_td_attributes(void **state)
{
	size_t len;
	uint8_t *q = read_quote("trustee/tdx/tdx_quote_4.dat", &len);
	json_t *c = NULL;
	struct err e = {0};
	struct tdx_quote tq;

	assert_int_equal(tdx_verify(q, len, NULL, at("2024-01-01T00:00:00Z"), &c, &e), 0);
	assert_true(json_is_true(json_object_get(c, "debug")));
	assert_true(json_is_true(
	    json_object_get(json_object_get(c, "td_attributes_decoded"), "septve_disable")));
	assert_int_equal(tdx_parse(q, len, &tq, &e), 0);
	assert_true(tdx_is_debug(&tq));
	json_decref(c);
	free(q);
	q = read_quote("dcap-qvl/sample/tdx_quote", &len);
	assert_int_equal(tdx_parse(q, len, &tq, &e), 0);
	assert_false(tdx_is_debug(&tq));
	free(q);
}

static void expect_fail(const uint8_t *q, size_t len, const struct tdx_collateral *c, time_t t,
                        const char *reason)
{
	struct err e = {0};
	json_t *claims = NULL;
	int rc = tdx_verify(q, len, c, t, &claims, &e);
	if (rc == 0)
		fail_msg("verified, expected failure \"%s\"", reason);
	assert_null(claims);
	if (!strstr(e.msg, reason))
		fail_msg("reason \"%s\" lacks \"%s\"", e.msg, reason);
}

static void pck_chain_outside_validity_is_refused(void **state)
{
	size_t len;
	uint8_t *q = read_quote("dcap-qvl/sample/tdx_quote", &len);
	expect_fail(q, len, NULL, at("2040-01-01T00:00:00Z"), "PCK chain: certificate expired");
	expect_fail(q, len, NULL, at("2024-01-01T00:00:00Z"),
	            "PCK chain: certificate not yet valid");
	free(q);
}

/* ---- known answers: collateral ---------------------------------------- */

static json_t *verify_ok(const char *file, struct tdx_collateral *c, time_t t)
{
	size_t len;
	uint8_t *q = read_quote(file, &len);
	json_t *claims = NULL;
	struct err e = {0};
	if (tdx_verify(q, len, c, t, &claims, &e) != 0)
		fail_msg("%s: %s", file, e.msg);
	free(q);
	return claims;
}

static void dcap_qvl_tdx_quote_is_up_to_date(void **state)
{
	struct tdx_collateral *c = collateral("dcap-qvl/sample/tdx_quote_collateral.json", NULL);
	json_t *cl = verify_ok("dcap-qvl/sample/tdx_quote", c, at("2025-06-20T00:00:00Z"));

	assert_string_equal(kstr(cl, "tcb_status"), "UpToDate");
	assert_int_equal(json_array_size(json_object_get(cl, "advisory_ids")), 0);
	assert_string_equal(kstr(json_object_get(cl, "platform_tcb"), "date"),
	                    "2024-03-13T00:00:00Z");
	assert_string_equal(kstr(json_object_get(cl, "tdx_module"), "id"), "TDX_01");
	assert_string_equal(kstr(json_object_get(cl, "tdx_module"), "status"), "UpToDate");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(cl, "qe_tcb"), "isvsvn")), 6);
	assert_string_equal(kstr(json_object_get(cl, "pck"), "fmspc"), "b0c06f000000");
	json_decref(cl);
	tdx_collateral_free(c);
}

static void dcap_qvl_outdated_quote_matches_no_tcb_level(void **state)
{
	struct tdx_collateral *c =
	    collateral("dcap-qvl/sample/tdx_quote_outdated_collateral.json", NULL);
	size_t len;
	uint8_t *q = read_quote("dcap-qvl/sample/tdx_quote_outdated", &len);

	expect_fail(q, len, c, at("2026-03-01T00:00:00Z"),
	            "no TCB level matches (platform below every level)");
	/* Without collateral the same quote's signatures and chain hold. */
	json_decref(
	    verify_ok("dcap-qvl/sample/tdx_quote_outdated", NULL, at("2026-03-01T00:00:00Z")));
	free(q);
	tdx_collateral_free(c);
}

static void go_tdx_guest_v4_collateral_gives_up_to_date_or_no_level(void **state)
{
	struct tdx_collateral *c = collateral(
	    "go-tdx-guest/sample_tcbInfo_response", "go-tdx-guest/sample_qeIdentity_response",
	    "go-tdx-guest/derived_tcb_signing_issuer_chain.pem", "go-tdx-guest/pckcrl",
	    "go-tdx-guest/rootcrl.der", NULL);
	json_t *cl = verify_ok("trustee/tdx/tdx_quote_4.dat", c, at("2023-06-20T00:00:00Z"));
	size_t len;
	uint8_t *q;

	assert_string_equal(kstr(cl, "tcb_status"), "UpToDate");
	assert_string_equal(kstr(json_object_get(cl, "platform_tcb"), "date"),
	                    "2023-02-15T00:00:00Z");
	assert_string_equal(kstr(json_object_get(cl, "qe_tcb"), "date"), "2023-02-15T00:00:00Z");
	json_decref(cl);
	q = read_quote("go-tdx-guest/tdx_prod_quote_SPR_E4.dat", &len);
	expect_fail(q, len, c, at("2023-06-20T00:00:00Z"),
	            "no TCB level matches (platform below every level)");
	free(q);
	tdx_collateral_free(c);
}

static void go_tdx_guest_v5_quote_is_up_to_date_with_module_identity(void **state)
{
	/* QE identity, signing chain and CRLs of the same period from the
	 * dcap-qvl set; TCB info from go-tdx-guest's v5 response. */
	struct tdx_collateral *c = collateral("dcap-qvl/sample/tdx_quote_outdated_collateral.json",
	                                      "go-tdx-guest/sample_tcbinfo_response_v5", NULL);
	json_t *cl = verify_ok("go-tdx-guest/quote_v5_sample.dat", c, at("2026-02-20T00:00:00Z"));

	assert_string_equal(kstr(cl, "tcb_status"), "UpToDate");
	assert_string_equal(kstr(json_object_get(cl, "platform_tcb"), "date"),
	                    "2024-11-13T00:00:00Z");
	assert_string_equal(kstr(json_object_get(cl, "tdx_module"), "id"), "TDX_01");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(cl, "qe_tcb"), "isvsvn")), 7);
	assert_int_equal(json_integer_value(json_object_get(cl, "tcb_evaluation_data_number")), 18);
	json_decref(cl);
	tdx_collateral_free(c);
}

static void trustee_quote_6_is_out_of_date(void **state)
{
	struct tdx_collateral *c =
	    collateral("trustee/tdx/tcbInfo.json", "trustee/tdx/enclaveIdentity.json",
	               "dcap-qvl/derived-tcb_info_issuer_chain.pem", NULL);
	json_t *cl = verify_ok("trustee/tdx/tdx_quote_6.dat", c, at("2025-11-01T00:00:00Z"));

	assert_string_equal(kstr(cl, "tcb_status"), "OutOfDate");
	assert_string_equal(kstr(json_object_get(cl, "platform_tcb"), "status"), "OutOfDate");
	assert_string_equal(kstr(json_object_get(cl, "platform_tcb"), "date"),
	                    "2018-01-04T00:00:00Z");
	assert_string_equal(kstr(json_object_get(cl, "tdx_module"), "id"), "TDX_03");
	assert_string_equal(kstr(json_object_get(cl, "tdx_module"), "status"), "UpToDate");
	assert_string_equal(kstr(json_object_get(cl, "qe_tcb"), "status"), "UpToDate");
	json_decref(cl);
	tdx_collateral_free(c);
}

static void expired_collateral_is_refused(void **state)
{
	struct tdx_collateral *c = collateral("dcap-qvl/sample/tdx_quote_collateral.json", NULL);
	struct tdx_collateral *nocrl;
	size_t len;
	uint8_t *q = read_quote("dcap-qvl/sample/tdx_quote", &len);
	char *text;
	json_t *doc;

	expect_fail(q, len, c, at("2025-07-25T00:00:00Z"), "PCK CRL expired");
	text = (char *)read_data("dcap-qvl/sample/tdx_quote_collateral.json", &len);
	doc = json_loads(text, 0, NULL);
	json_object_del(doc, "pck_crl");
	json_object_del(doc, "root_ca_crl");
	free(text);
	text = json_dumps(doc, 0);
	nocrl = tdx_collateral_new();
	assert_int_equal(tdx_collateral_add(nocrl, text, strlen(text), NULL), 0);
	free(q);
	q = read_quote("dcap-qvl/sample/tdx_quote", &len);
	expect_fail(q, len, nocrl, at("2025-07-25T00:00:00Z"), "TCB info expired");
	expect_fail(q, len, nocrl, at("2025-06-19T10:20:00Z"), "QE identity is not yet valid");
	free(text);
	json_decref(doc);
	free(q);
	tdx_collateral_free(c);
	tdx_collateral_free(nocrl);
}

/* ---- tampering --------------------------------------------------------- */

struct sample {
	uint8_t *q;
	size_t len;
	struct tdx_quote tq;
	struct tdx_collateral *col;
	time_t t;
};

static void sample_load(struct sample *s)
{
	struct err e = {0};
	s->q = read_quote("dcap-qvl/sample/tdx_quote", &s->len);
	assert_int_equal(tdx_parse(s->q, s->len, &s->tq, &e), 0);
	s->col = collateral("dcap-qvl/sample/tdx_quote_collateral.json", NULL);
	s->t = at("2025-06-20T00:00:00Z");
}

static void sample_free(struct sample *s)
{
	free(s->q);
	tdx_collateral_free(s->col);
}

static size_t off_of(const struct sample *s, const void *p)
{
	return (size_t)((const uint8_t *)p - s->q);
}

/* Flips one byte at `off` and expects `reason`, with and without
 * collateral. */
static void flip_expect(struct sample *s, size_t off, const char *reason)
{
	s->q[off] ^= 0x01;
	expect_fail(s->q, s->len, s->col, s->t, reason);
	expect_fail(s->q, s->len, NULL, s->t, reason);
	s->q[off] ^= 0x01;
}

static void tampered_quotes_fail_with_their_reason(void **state)
{
	struct sample s;
	json_t *cl = NULL;

	sample_load(&s);
	assert_int_equal(tdx_verify(s.q, s.len, s.col, s.t, &cl, NULL), 0);
	json_decref(cl);
	flip_expect(&s, off_of(&s, s.tq.signature) + 5,
	            "quote signature does not verify with the attestation key");
	flip_expect(&s, off_of(&s, s.tq.signature) + 40,
	            "quote signature does not verify with the attestation key");
	flip_expect(&s, 48 + 136 + 7, "quote signature does not verify with the attestation key");
	flip_expect(&s, 48 + 520, "quote signature does not verify with the attestation key");
	flip_expect(&s, 20, "quote signature does not verify with the attestation key");
	flip_expect(&s, off_of(&s, s.tq.qe_report_raw) + 64,
	            "QE report signature does not verify with the PCK key");
	flip_expect(&s, off_of(&s, s.tq.qe_report_sig) + 3,
	            "QE report signature does not verify with the PCK key");
	flip_expect(&s, off_of(&s, s.tq.qe_auth_data) + 0,
	            "QE report data does not bind the attestation key");
	flip_expect(&s, off_of(&s, s.tq.att_key) + 10,
	            "QE report data does not bind the attestation key");
	sample_free(&s);
}

static void truncated_quote_is_refused_at_every_length(void **state)
{
	struct sample s;
	size_t end;

	sample_load(&s);
	end = off_of(&s, s.tq.pck_pem) + s.tq.pck_pem_len;
	for (size_t n = 0; n < end; n++) {
		struct tdx_quote tq;
		struct err e = {0};
		if (tdx_parse(s.q, n, &tq, &e) == 0)
			fail_msg("a %zu-byte prefix parsed", n);
		if (!strstr(e.msg, "truncated"))
			fail_msg("length %zu: %s", n, e.msg);
	}
	expect_fail(s.q, 631, NULL, s.t, "quote truncated");
	sample_free(&s);
}

static void parse_fail(uint8_t *q, size_t len, size_t off, uint8_t val, const char *reason)
{
	struct tdx_quote tq;
	struct err e = {0};
	uint8_t old = q[off];
	q[off] = val;
	assert_true(tdx_parse(q, len, &tq, &e) < 0);
	assert_string_equal(e.msg, reason);
	q[off] = old;
}

static void unsupported_header_values_are_refused(void **state)
{
	struct sample s;
	size_t len5;
	uint8_t *q5 = read_quote("go-tdx-guest/quote_v5_sample.dat", &len5);

	sample_load(&s);
	parse_fail(s.q, s.len, 0, 3, "unsupported quote version 3 (want 4 or 5)");
	parse_fail(s.q, s.len, 0, 6, "unsupported quote version 6 (want 4 or 5)");
	parse_fail(s.q, s.len, 2, 3, "unsupported attestation key type 3 (want 2, ECDSA P-256)");
	parse_fail(s.q, s.len, 4, 0, "not a TDX quote: tee type 0x0 (want 0x81)");
	parse_fail(s.q, s.len, off_of(&s, s.tq.signature) + 128, 4,
	           "unsupported certification data type 4 (want 6, QE report)");
	parse_fail(s.q, s.len, off_of(&s, s.tq.pck_pem) - 6, 3,
	           "unsupported inner certification data type 3 (want 5, PCK chain)");
	parse_fail(q5, len5, 48, 1, "unsupported v5 body type 1 (want 2 or 3, TDX)");
	parse_fail(q5, len5, 48, 2, "v5 body type 2 declares 648 bytes, want 584");
	free(q5);
	sample_free(&s);
}

static void tampered_collateral_fails_its_signature(void **state)
{
	struct sample s;
	size_t n;
	char *text = NULL;
	json_t *doc, *sub;
	const char *keys[] = {"tcb_info", "qe_identity"};
	const char *reasons[] = {"TCB info signature does not verify",
	                         "QE identity signature does not verify"};

	sample_load(&s);
	for (int i = 0; i < 2; i++) {
		struct tdx_collateral *c = tdx_collateral_new();
		char *raw = (char *)read_data("dcap-qvl/sample/tdx_quote_collateral.json", &n), *p;
		doc = json_loads(raw, 0, NULL);
		free(raw);
		sub = json_object_get(doc, keys[i]);
		p = xstrdup(json_string_value(sub));
		strstr(p, "\"tcbDate\":\"")[11] = '1'; /* a tcbDate year 2xxx -> 1xxx */
		json_object_set_new(doc, keys[i], json_string(p));
		free(p);
		text = json_dumps(doc, 0);
		assert_int_equal(tdx_collateral_add(c, text, strlen(text), NULL), 0);
		expect_fail(s.q, s.len, c, s.t, reasons[i]);
		free(text);
		json_decref(doc);
		tdx_collateral_free(c);
	}
	sample_free(&s);
}

/* ---- forged chains (self-made keys and certificates) ------------------- */

static EVP_PKEY *p256_new(void)
{
	return EVP_EC_gen("P-256");
}

static X509 *make_cert(X509_NAME *subject, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, int ca,
                       long serial)
{
	X509 *c = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509_set_version(c, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_set_subject_name(c, subject);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : subject);
	ASN1_TIME_set(X509_getm_notBefore(c), at("2020-01-01T00:00:00Z"));
	ASN1_TIME_set(X509_getm_notAfter(c), at("2045-01-01T00:00:00Z"));
	X509_set_pubkey(c, key);
	X509V3_set_ctx(&v3, issuer ? issuer : c, c, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	                          ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	if (ca) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(c, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(c, ikey, EVP_sha256());
	return c;
}

static X509_NAME *cn_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	return n;
}

static void pem_append(struct buf *b, X509 *c)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;
	PEM_write_bio_X509(bio, c);
	n = BIO_get_mem_data(bio, &p);
	buf_add(b, p, (size_t)n);
	BIO_free(bio);
}

static X509 *pem_cert(const char *pem, size_t len, int index)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *c = NULL;
	for (int i = 0; i <= index; i++) {
		X509_free(c);
		c = PEM_read_bio_X509(b, NULL, NULL, NULL);
	}
	BIO_free(b);
	return c;
}

static void sign_raw(EVP_PKEY *k, const void *msg, size_t n, uint8_t out[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	const unsigned char *p = der;
	size_t dl = sizeof der;
	ECDSA_SIG *sig;

	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestSign(md, der, &dl, msg, n), 1);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)dl);
	BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32);
	BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
}

static void raw_point(EVP_PKEY *k, uint8_t xy[64])
{
	uint8_t pt[65];
	size_t n = 0;
	EVP_PKEY_get_octet_string_param(k, "encoded-pub-key", pt, sizeof pt, &n);
	assert_int_equal(n, 65);
	memcpy(xy, pt + 1, 64);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Re-assembles quote `s` with a new PEM chain; with `pck` and `att` keys it
 * also re-binds a fresh attestation key and re-signs QE report and quote. */
static uint8_t *rebuild(const struct sample *s, const char *pem, size_t pemlen, EVP_PKEY *pck,
                        EVP_PKEY *att, size_t *outlen)
{
	const struct tdx_quote *t = &s->tq;
	size_t cert = 384 + 64 + 2 + t->qe_auth_len + 6 + pemlen;
	size_t sig = 134 + cert, n = t->signed_len + 4 + sig;
	uint8_t *q = xcalloc(1, n), *sd = q + t->signed_len + 4, *c = sd + 134;

	memcpy(q, s->q, t->signed_len);
	put32(q + t->signed_len, (uint32_t)sig);
	memcpy(sd, t->signature, 128);
	put16(sd + 128, 6);
	put32(sd + 130, (uint32_t)cert);
	memcpy(c, t->qe_report_raw, 384 + 64);
	put16(c + 448, (uint16_t)t->qe_auth_len);
	memcpy(c + 450, t->qe_auth_data, t->qe_auth_len);
	put16(c + 450 + t->qe_auth_len, 5);
	put32(c + 452 + t->qe_auth_len, (uint32_t)pemlen);
	memcpy(c + 456 + t->qe_auth_len, pem, pemlen);
	if (att) {
		uint8_t *buf = xmalloc(64 + t->qe_auth_len);
		raw_point(att, sd + 64);
		memcpy(buf, sd + 64, 64);
		memcpy(buf + 64, t->qe_auth_data, t->qe_auth_len);
		memset(c + 320, 0, 64);
		SHA256(buf, 64 + t->qe_auth_len, c + 320);
		free(buf);
		sign_raw(pck, c, 384, c + 384);
		sign_raw(att, q, t->signed_len, sd);
	}
	*outlen = n;
	return q;
}

struct forge {
	EVP_PKEY *root_k, *ca_k, *pck_k, *att_k;
	X509 *root, *ca, *pck;
	char *root_pem;
	uint8_t *q;
	size_t len;
};

/* A complete chain under a self-made root, the PCK carrying the real PCK's
 * SGX extension, and the sample quote re-signed through it. */
static void forge_make(struct forge *f, const struct sample *s)
{
	X509 *real = pem_cert(s->tq.pck_pem, s->tq.pck_pem_len, 0);
	ASN1_OBJECT *oid = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
	int idx = X509_get_ext_by_OBJ(real, oid, -1);
	X509_NAME *n;
	struct buf b;

	f->root_k = p256_new(), f->ca_k = p256_new(), f->pck_k = p256_new(), f->att_k = p256_new();
	n = cn_name("Test DCAP Root");
	f->root = make_cert(n, f->root_k, NULL, f->root_k, 1, 1);
	X509_NAME_free(n);
	n = cn_name("Test PCK CA");
	f->ca = make_cert(n, f->ca_k, f->root, f->root_k, 1, 2);
	X509_NAME_free(n);
	n = cn_name("Test PCK Certificate");
	f->pck = make_cert(n, f->pck_k, f->ca, f->ca_k, 0, 3);
	X509_NAME_free(n);
	assert_true(idx >= 0);
	X509_add_ext(f->pck, X509_get_ext(real, idx), -1);
	X509_sign(f->pck, f->ca_k, EVP_sha256());
	X509_free(real);
	ASN1_OBJECT_free(oid);
	buf_init(&b);
	pem_append(&b, f->root);
	f->root_pem = buf_steal(&b, NULL);
	pem_append(&b, f->pck);
	pem_append(&b, f->ca);
	pem_append(&b, f->root);
	f->q = rebuild(s, b.data, b.len, f->pck_k, f->att_k, &f->len);
	buf_fini(&b);
}

static void forge_free(struct forge *f)
{
	EVP_PKEY_free(f->root_k), EVP_PKEY_free(f->ca_k);
	EVP_PKEY_free(f->pck_k), EVP_PKEY_free(f->att_k);
	X509_free(f->root), X509_free(f->ca), X509_free(f->pck);
	free(f->root_pem);
	free(f->q);
}

/* A DER CRL by `issuer` (signed with `key`) revoking `victim`. */
static char *make_crl(X509_NAME *issuer, EVP_PKEY *key, X509 *victim, size_t *len)
{
	X509_CRL *crl = X509_CRL_new();
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_TIME *t = ASN1_TIME_new();
	unsigned char *der = NULL;
	int n;

	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, issuer);
	ASN1_TIME_set(t, at("2025-06-01T00:00:00Z"));
	X509_CRL_set1_lastUpdate(crl, t);
	ASN1_TIME_set(t, at("2025-07-01T00:00:00Z"));
	X509_CRL_set1_nextUpdate(crl, t);
	X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(victim));
	X509_REVOKED_set_revocationDate(r, t);
	X509_CRL_add0_revoked(crl, r);
	X509_CRL_sign(crl, key, EVP_sha256());
	n = i2d_X509_CRL(crl, &der);
	*len = (size_t)n;
	X509_CRL_free(crl);
	ASN1_TIME_free(t);
	return (char *)der;
}

static void wrong_root_in_pck_chain_is_refused(void **state)
{
	struct sample s;
	struct forge f;
	struct buf b;
	X509 *leaf, *ca;
	uint8_t *q;
	size_t len;

	sample_load(&s);
	forge_make(&f, &s);
	leaf = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 0);
	ca = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 1);
	buf_init(&b);
	pem_append(&b, leaf);
	pem_append(&b, ca);
	pem_append(&b, f.root);
	q = rebuild(&s, b.data, b.len, NULL, NULL, &len);
	expect_fail(
	    q, len, NULL, s.t,
	    "PCK chain: root certificate \"Test DCAP Root\" is not the pinned Intel SGX Root CA");
	free(q);
	/* The whole forged chain: sound under its own root, refused under Intel's. */
	assert_int_equal(tdx_verify_root(f.q, f.len, NULL, s.t, f.root_pem, NULL, NULL), 0);
	expect_fail(f.q, f.len, NULL, s.t, "is not the pinned Intel SGX Root CA");
	X509_free(leaf);
	X509_free(ca);
	buf_fini(&b);
	forge_free(&f);
	sample_free(&s);
}

static void self_made_intermediate_is_refused(void **state)
{
	struct sample s;
	struct buf b;
	X509 *leaf, *ca, *root, *fake;
	EVP_PKEY *k = p256_new();
	uint8_t *q;
	size_t len;

	sample_load(&s);
	leaf = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 0);
	ca = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 1);
	root = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 2);
	/* Same names as Intel's CA, self-made key, "signed" by itself. */
	fake = make_cert(X509_get_subject_name(ca), k, root, k, 1, 77);
	buf_init(&b);
	pem_append(&b, leaf);
	pem_append(&b, fake);
	pem_append(&b, root);
	q = rebuild(&s, b.data, b.len, NULL, NULL, &len);
	expect_fail(q, len, NULL, s.t, "PCK chain: ");
	expect_fail(q, len, NULL, s.t, "does not verify");
	free(q);
	X509_free(leaf), X509_free(ca), X509_free(root), X509_free(fake);
	EVP_PKEY_free(k);
	buf_fini(&b);
	sample_free(&s);
}

static void crl_not_signed_by_intel_is_refused(void **state)
{
	struct sample s;
	EVP_PKEY *k = p256_new();
	X509 *leaf, *ca;
	char *der;
	size_t n;
	struct tdx_collateral *c = tdx_collateral_new();

	sample_load(&s);
	leaf = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 0);
	ca = pem_cert(s.tq.pck_pem, s.tq.pck_pem_len, 1);
	der = make_crl(X509_get_subject_name(ca), k, leaf, &n);
	assert_int_equal(tdx_collateral_add(c, der, n, NULL), 0);
	expect_fail(s.q, s.len, c, s.t,
	            "PCK CRL signature does not verify with \"Intel SGX PCK Platform CA\"");
	OPENSSL_free(der);
	X509_free(leaf), X509_free(ca);
	EVP_PKEY_free(k);
	tdx_collateral_free(c);
	sample_free(&s);
}

static void revoking_crls_reject_pck_and_pck_ca(void **state)
{
	struct sample s;
	struct forge f;
	struct err e = {0};
	struct tdx_collateral *c = tdx_collateral_new(), *rc = tdx_collateral_new();
	char *der;
	size_t n;

	sample_load(&s);
	forge_make(&f, &s);
	der = make_crl(X509_get_subject_name(f.ca), f.ca_k, f.pck, &n);
	assert_int_equal(tdx_collateral_add(c, der, n, NULL), 0);
	OPENSSL_free(der);
	assert_true(tdx_verify_root(f.q, f.len, c, s.t, f.root_pem, NULL, &e) < 0);
	assert_string_equal(e.msg, "PCK certificate revoked by PCK CRL");
	/* A CRL whose window has passed is refused before revocation matters. */
	assert_true(
	    tdx_verify_root(f.q, f.len, c, at("2025-08-01T00:00:00Z"), f.root_pem, NULL, &e) < 0);
	assert_string_equal(e.msg, "PCK CRL expired (nextUpdate 2025-07-01T00:00:00Z)");
	der = make_crl(X509_get_subject_name(f.root), f.root_k, f.ca, &n);
	assert_int_equal(tdx_collateral_add(rc, der, n, NULL), 0);
	OPENSSL_free(der);
	assert_true(tdx_verify_root(f.q, f.len, rc, s.t, f.root_pem, NULL, &e) < 0);
	assert_string_equal(e.msg, "PCK CA certificate revoked by root CA CRL");
	forge_free(&f);
	tdx_collateral_free(c);
	tdx_collateral_free(rc);
	sample_free(&s);
}

/* ---- TCB algorithm over self-signed collateral ------------------------- */

/* The dcap-qvl TCB info and QE identity as editable JSON. */
static void real_docs(json_t **tcb, json_t **qe)
{
	size_t n;
	char *raw = (char *)read_data("dcap-qvl/sample/tdx_quote_collateral.json", &n);
	json_t *doc = json_loads(raw, 0, NULL);
	*tcb = json_loads(json_string_value(json_object_get(doc, "tcb_info")), 0, NULL);
	*qe = json_loads(json_string_value(json_object_get(doc, "qe_identity")), 0, NULL);
	assert_non_null(*tcb);
	assert_non_null(*qe);
	json_decref(doc);
	free(raw);
}

static char *sign_doc(EVP_PKEY *k, const json_t *doc, char **sighex)
{
	char *text = json_dumps(doc, JSON_COMPACT);
	uint8_t sig[64];
	sign_raw(k, text, strlen(text), sig);
	*sighex = xmalloc(129);
	hex_encode(sig, 64, *sighex);
	return text;
}

/* Verifies the forged quote with `tcb` and `qe` signed by a TCB Signing
 * certificate under the forged root. */
static int synth_verify(const struct forge *f, const json_t *tcb, const json_t *qe, json_t **claims,
                        struct err *e)
{
	EVP_PKEY *k = p256_new();
	X509_NAME *n = cn_name("Intel SGX TCB Signing");
	X509 *signer = make_cert(n, k, f->root, f->root_k, 0, 9);
	struct tdx_collateral *c = tdx_collateral_new();
	char *ts, *qs, *tt, *qt, *bundle;
	struct buf b;
	json_t *j;
	int rc;

	buf_init(&b);
	pem_append(&b, signer);
	pem_append(&b, f->root);
	tt = sign_doc(k, tcb, &ts);
	qt = sign_doc(k, qe, &qs);
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "tcb_info", tt, "tcb_info_signature", ts,
	              "qe_identity", qt, "qe_identity_signature", qs, "tcb_info_issuer_chain",
	              b.data, "qe_identity_issuer_chain", b.data);
	bundle = json_dumps(j, 0);
	assert_int_equal(tdx_collateral_add(c, bundle, strlen(bundle), NULL), 0);
	rc = tdx_verify_root(f->q, f->len, c, at("2025-06-20T00:00:00Z"), f->root_pem, claims, e);
	free(ts), free(qs), free(tt), free(qt), free(bundle);
	json_decref(j);
	buf_fini(&b);
	tdx_collateral_free(c);
	X509_free(signer);
	X509_NAME_free(n);
	EVP_PKEY_free(k);
	return rc;
}

static const char *synth_status(const struct forge *f, const json_t *tcb, const json_t *qe,
                                json_t **claims)
{
	static char status[64];
	struct err e = {0};
	json_t *c = NULL;
	if (synth_verify(f, tcb, qe, &c, &e) != 0)
		fail_msg("synthetic collateral refused: %s", e.msg);
	snprintf(status, sizeof status, "%s", kstr(c, "tcb_status"));
	if (claims)
		*claims = c;
	else
		json_decref(c);
	return status;
}

static json_t *level(json_t *tcb, size_t i)
{
	return json_array_get(json_object_get(tcb, "tcbLevels"), i);
}

static json_t *tdx_comp(json_t *tcb, size_t lvl, size_t i)
{
	return json_object_get(
	    json_array_get(
	        json_object_get(json_object_get(level(tcb, lvl), "tcb"), "tdxtcbcomponents"), i),
	    "svn");
}

static void tcb_levels_follow_intels_algorithm(void **state)
{
	struct sample s;
	struct forge f;
	struct err e = {0};
	json_t *tcb, *qe, *cl = NULL, *mod;

	sample_load(&s);
	forge_make(&f, &s);
	real_docs(&tcb, &qe);
	assert_string_equal(synth_status(&f, tcb, qe, NULL), "UpToDate");
	/* With a TDX 1.5 module (tee_tcb_svn[1] = 1) components 0 and 1 belong
	 * to the module identity, not to the platform level. */
	json_integer_set(tdx_comp(tcb, 0, 0), 7);
	json_integer_set(tdx_comp(tcb, 0, 1), 9);
	assert_string_equal(synth_status(&f, tcb, qe, NULL), "UpToDate");
	/* Component 2 above tee_tcb_svn[2] = 3: the first level no longer
	 * applies; the next one (OutOfDate, with advisories) does. */
	json_integer_set(tdx_comp(tcb, 0, 2), 4);
	assert_string_equal(synth_status(&f, tcb, qe, &cl), "OutOfDate");
	assert_int_equal(json_array_size(json_object_get(cl, "advisory_ids")), 14);
	json_decref(cl);
	/* The QE's isvsvn 6 is below a new isvsvn-7 level: the next applies. */
	json_object_set_new(qe, "tcbLevels",
	                    json_pack("[{s:{s:i},s:s,s:s},{s:{s:i},s:s,s:s,s:[s]}]", "tcb",
	                              "isvsvn", 7, "tcbDate", "2025-01-01T00:00:00Z", "tcbStatus",
	                              "UpToDate", "tcb", "isvsvn", 4, "tcbDate",
	                              "2024-01-01T00:00:00Z", "tcbStatus", "SWHardeningNeeded",
	                              "advisoryIDs", "INTEL-SA-TEST"));
	json_integer_set(tdx_comp(tcb, 0, 2), 2);
	assert_string_equal(synth_status(&f, tcb, qe, &cl), "SWHardeningNeeded");
	assert_string_equal(
	    json_string_value(json_array_get(json_object_get(cl, "advisory_ids"), 0)),
	    "INTEL-SA-TEST");
	json_decref(cl);
	json_decref(tcb), json_decref(qe);
	/* The module's isvsvn (tee_tcb_svn[0] = 6) picks the TDX_01 level. */
	real_docs(&tcb, &qe);
	mod = json_object_get(json_array_get(json_object_get(tcb, "tdxModuleIdentities"), 1),
	                      "tcbLevels");
	json_integer_set(json_object_get(json_object_get(json_array_get(mod, 0), "tcb"), "isvsvn"),
	                 7);
	assert_string_equal(synth_status(&f, tcb, qe, &cl), "OutOfDate");
	assert_string_equal(kstr(json_object_get(cl, "tdx_module"), "status"), "OutOfDate");
	json_decref(cl);
	json_integer_set(json_object_get(json_object_get(json_array_get(mod, 1), "tcb"), "isvsvn"),
	                 7);
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg,
	                    "no TDX module TCB level matches (TDX_01 isvsvn 6 below every level)");
	json_decref(tcb), json_decref(qe);
	forge_free(&f);
	sample_free(&s);
}

static void statuses_combine_to_the_worst_and_advisories_unite(void **state)
{
	struct sample s;
	struct forge f;
	json_t *tcb, *qe, *cl = NULL, *mod;
	struct err e = {0};

	sample_load(&s);
	forge_make(&f, &s);
	real_docs(&tcb, &qe);
	json_object_set_new(level(tcb, 0), "tcbStatus",
	                    json_string("ConfigurationAndSWHardeningNeeded"));
	json_object_set_new(level(tcb, 0), "advisoryIDs", json_pack("[s,s]", "SA-1", "SA-2"));
	mod = json_array_get(json_object_get(tcb, "tdxModuleIdentities"), 1); /* TDX_01 */
	assert_string_equal(kstr(mod, "id"), "TDX_01");
	json_object_set_new(json_array_get(json_object_get(mod, "tcbLevels"), 0), "tcbStatus",
	                    json_string("OutOfDate"));
	json_object_set_new(json_array_get(json_object_get(mod, "tcbLevels"), 0), "advisoryIDs",
	                    json_pack("[s,s]", "SA-2", "SA-3"));
	assert_string_equal(synth_status(&f, tcb, qe, &cl), "OutOfDateConfigurationNeeded");
	assert_int_equal(json_array_size(json_object_get(cl, "advisory_ids")), 3);
	assert_string_equal(kstr(json_object_get(cl, "platform_tcb"), "status"),
	                    "ConfigurationAndSWHardeningNeeded");
	json_decref(cl);
	json_object_set_new(level(tcb, 0), "tcbStatus", json_string("Revoked"));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "TCB status is Revoked");
	json_decref(tcb), json_decref(qe);
	forge_free(&f);
	sample_free(&s);
}

static void collateral_for_another_platform_or_qe_is_refused(void **state)
{
	struct sample s;
	struct forge f;
	json_t *tcb, *qe;
	struct err e = {0};
	char zeros[65];

	sample_load(&s);
	forge_make(&f, &s);
	memset(zeros, '0', 64), zeros[64] = '\0';
	real_docs(&tcb, &qe);
	json_object_set_new(tcb, "fmspc", json_string("B0C06F000001"));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "TCB info FMSPC does not match the PCK's (b0c06f000000)");
	json_decref(tcb), json_decref(qe);
	real_docs(&tcb, &qe);
	json_object_set_new(json_array_get(json_object_get(tcb, "tdxModuleIdentities"), 1), "id",
	                    json_string("TDX_02"));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "TCB info has no TDX module identity TDX_01");
	json_decref(tcb), json_decref(qe);
	real_docs(&tcb, &qe);
	json_object_set_new(qe, "mrsigner", json_string(zeros));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "QE report MRSIGNER does not match the QE identity");
	json_object_set_new(
	    qe, "mrsigner",
	    json_string(kstr(json_object_get(kat_quote("dcap-qvl/sample/tdx_quote"), "qe_report"),
	                     "mrsigner")));
	json_object_set_new(qe, "isvprodid", json_integer(1));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "QE report ISVPRODID 2 does not match the QE identity");
	json_object_set_new(qe, "isvprodid", json_integer(2));
	json_object_set_new(qe, "id", json_string("QE"));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "QE identity id is \"QE\", want \"TD_QE\"");
	json_object_set_new(qe, "id", json_string("TD_QE"));
	json_object_set_new(
	    qe, "tcbLevels",
	    json_pack("[{s:{s:i},s:s}]", "tcb", "isvsvn", 9, "tcbStatus", "UpToDate"));
	assert_true(synth_verify(&f, tcb, qe, NULL, &e) < 0);
	assert_string_equal(e.msg, "no QE TCB level matches (QE isvsvn 6 below every level)");
	json_decref(tcb), json_decref(qe);
	forge_free(&f);
	sample_free(&s);
}

/* ---- helpers ----------------------------------------------------------- */

static void report_data_and_mrconfigid_compare_padded(void **state)
{
	size_t len;
	uint8_t *q = read_quote("trustee/tdx/tdx_quote_6.dat", &len), want[64];
	const json_t *b = json_object_get(kat_quote("trustee/tdx/tdx_quote_6.dat"), "body");
	struct tdx_quote tq;
	struct err e = {0};
	uint8_t cfg[48];

	assert_int_equal(tdx_parse(q, len, &tq, &e), 0);
	memcpy(want, tq.body.report_data, 64);
	assert_hex(want, 64, kstr(b, "report_data"));
	assert_int_equal(tdx_check_report_data(&tq, want, 48, &e), 0); /* SHA-384 size */
	want[47] ^= 1;
	assert_true(tdx_check_report_data(&tq, want, 48, &e) < 0);
	assert_string_equal(e.msg, "report_data does not match the expected value");
	assert_hex(tdx_mrconfigid(&tq), 48, kstr(b, "mrconfigid"));
	memcpy(cfg, tdx_mrconfigid(&tq), 48);
	assert_int_equal(tdx_check_mrconfigid(&tq, cfg, 48, &e), 0);
	assert_true(tdx_check_mrconfigid(&tq, cfg, 32, &e) < 0); /* tail is not zero */
	assert_string_equal(e.msg, "MRCONFIGID does not match the expected value");
	free(q);
}

static char *b64(const uint8_t *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static void trustee_json_evidence_decodes_to_the_raw_quote(void **state)
{
	size_t len, qlen = 0, loglen = 0;
	uint8_t *raw = read_quote("trustee/tdx/tdx_quote_4.dat", &len), *q = NULL, *log = NULL;
	char *enc = b64(raw, len);
	char *json = xasprintf("{\"cc_eventlog\":null,\"quote\":\"%s\"}", enc);
	struct err e = {0};

	assert_int_equal(tdx_evidence_decode(json, strlen(json), &q, &qlen, &log, &loglen, &e), 0);
	assert_int_equal(qlen, len);
	assert_memory_equal(q, raw, len);
	assert_null(log);
	free(q);
	free(json);
	json = xasprintf("{\"quote\":42}");
	assert_true(tdx_evidence_decode(json, strlen(json), &q, &qlen, &log, &loglen, &e) < 0);
	assert_string_equal(e.msg, "TDX evidence: no base64 \"quote\" member");
	free(json);
	free(enc);
	free(raw);
}

static void cc_eventlog_replay_reproduces_rtmrs(void **state)
{
	size_t len, qlen, events = 0;
	uint8_t *log = read_data("go-tdx-guest/ccel/ccel_data.dat", &len), rtmr[4][48];
	uint8_t *q = read_quote("go-tdx-guest/ccel/cos-113-tdx-quote.dat", &qlen);
	const json_t *k = json_array_get(json_object_get(kat, "eventlogs"), 0);
	struct tdx_quote tq;
	struct err e = {0};

	assert_int_equal(tdx_eventlog_replay(log, len, rtmr, &events, &e), 0);
	assert_int_equal(events, json_integer_value(json_object_get(k, "events")));
	for (int i = 0; i < 4; i++)
		assert_hex(rtmr[i], 48,
		           json_string_value(
		               json_array_get(json_object_get(k, "replayed_rtmr"), (size_t)i)));
	assert_int_equal(tdx_parse(q, qlen, &tq, &e), 0);
	assert_memory_equal(rtmr, tq.body.rtmr, sizeof rtmr);
	free(log);
	free(q);
}

static char *tmp_write(const char *dir, const char *name, const void *p, size_t n)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fwrite(p, 1, n, f);
	fclose(f);
	return path;
}

static char *cli_run(const char *ev, const char *col, time_t t, int json_out, int *status)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	*status = tdx_cli_verify(ev, col, t, json_out, f);
	fclose(f);
	return out;
}

static void cli_prints_claims_and_verdict(void **state)
{
	char dir[] = "/tmp/cocod-tdx-XXXXXX";
	size_t qlen, loglen;
	uint8_t *q, *log;
	char *qb, *lb, *json, *ev, *bad, *out;
	json_t *doc;
	int status;

	assert_non_null(mkdtemp(dir));
	q = read_quote("go-tdx-guest/ccel/cos-113-tdx-quote.dat", &qlen);
	log = read_data("go-tdx-guest/ccel/ccel_data.dat", &loglen);
	qb = b64(q, qlen), lb = b64(log, loglen);
	json = xasprintf("{\"quote\":\"%s\",\"cc_eventlog\":\"%s\"}", qb, lb);
	ev = tmp_write(dir, "evidence.json", json, strlen(json));
	out = cli_run(ev, NULL, at("2025-01-01T00:00:00Z"), 0, &status);
	assert_int_equal(status, 0);
	assert_non_null(
	    strstr(out, "dae67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89734a45d8954db"));
	assert_non_null(strstr(out, "cc_eventlog_events"));
	assert_non_null(strstr(out, "verdict: valid\n"));
	free(out);
	q[48 + 136] ^= 1;
	bad = tmp_write(dir, "bad.dat", q, qlen);
	out = cli_run(bad, NULL, at("2025-01-01T00:00:00Z"), 1, &status);
	assert_int_equal(status, 1);
	doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(kstr(doc, "verdict"), "invalid");
	assert_string_equal(kstr(doc, "reason"),
	                    "quote signature does not verify with the attestation key");
	assert_string_equal(kstr(doc, "mrtd"), "dbe67181d3d65e073ad8f95b7907d5e927bfe9761c9ff3e9b89"
	                                       "734a45d8954dba41394c7717cb2735396c1d04231f94a");
	json_decref(doc);
	free(out);
	out = cli_run(ev, DATA "dcap-qvl/sample/tdx_quote_collateral.json",
	              at("2025-06-20T00:00:00Z"), 0, &status);
	assert_int_equal(status, 1); /* another platform's FMSPC */
	assert_non_null(strstr(out, "verdict: invalid: TCB info FMSPC does not match the PCK's"));
	free(out);
	unlink(ev), unlink(bad), rmdir(dir);
	free(ev), free(bad), free(json), free(qb), free(lb), free(q), free(log);
}

static void malformed_collateral_is_refused(void **state)
{
	struct tdx_collateral *c = NULL;
	struct err e = {0};
	const char *docs[] = {"{\"x\":1}", "{\"tcbInfo\":{\"id\":\"TDX\"},\"signature\":\"zz\"}",
	                      "not a crl"};
	const char *reasons[] = {"collateral: unrecognised JSON document",
	                         "TCB info: signature is not 64 bytes of hex",
	                         "collateral: unreadable CRL"};

	for (int i = 0; i < 3; i++) {
		assert_true(tdx_collateral_load(docs[i], strlen(docs[i]), &c, &e) < 0);
		assert_null(c);
		assert_string_equal(e.msg, reasons[i]);
	}
	tdx_collateral_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_tdx_vector_parses_to_its_recorded_values),
	    cmocka_unit_test(sgx_quotes_are_refused_as_unsupported_version),
	    cmocka_unit_test(every_tdx_vector_verifies_without_collateral),
	    cmocka_unit_test(debug_bit_is_decoded_from_td_attributes),
	    cmocka_unit_test(pck_chain_outside_validity_is_refused),
	    cmocka_unit_test(dcap_qvl_tdx_quote_is_up_to_date),
	    cmocka_unit_test(dcap_qvl_outdated_quote_matches_no_tcb_level),
	    cmocka_unit_test(go_tdx_guest_v4_collateral_gives_up_to_date_or_no_level),
	    cmocka_unit_test(go_tdx_guest_v5_quote_is_up_to_date_with_module_identity),
	    cmocka_unit_test(trustee_quote_6_is_out_of_date),
	    cmocka_unit_test(expired_collateral_is_refused),
	    cmocka_unit_test(tampered_quotes_fail_with_their_reason),
	    cmocka_unit_test(truncated_quote_is_refused_at_every_length),
	    cmocka_unit_test(unsupported_header_values_are_refused),
	    cmocka_unit_test(tampered_collateral_fails_its_signature),
	    cmocka_unit_test(wrong_root_in_pck_chain_is_refused),
	    cmocka_unit_test(self_made_intermediate_is_refused),
	    cmocka_unit_test(crl_not_signed_by_intel_is_refused),
	    cmocka_unit_test(revoking_crls_reject_pck_and_pck_ca),
	    cmocka_unit_test(tcb_levels_follow_intels_algorithm),
	    cmocka_unit_test(statuses_combine_to_the_worst_and_advisories_unite),
	    cmocka_unit_test(collateral_for_another_platform_or_qe_is_refused),
	    cmocka_unit_test(report_data_and_mrconfigid_compare_padded),
	    cmocka_unit_test(trustee_json_evidence_decodes_to_the_raw_quote),
	    cmocka_unit_test(cc_eventlog_replay_reproduces_rtmrs),
	    cmocka_unit_test(cli_prints_claims_and_verdict),
	    cmocka_unit_test(malformed_collateral_is_refused),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
