/* Unit tests for snp (AMD SEV-SNP report parsing and verification) and the
 * `cocod evidence verify` command that fronts it.
 *
 * Cases:
 *   every_vector_verifies_with_its_recorded_values   7 real reports (Milan v2/v3,
 *                                                    Genoa v3, VLEK, Azure-wrapped)
 *   parse_exposes_recorded_fields                    policy, TCBs, versions, cpuid
 *   trustee_evidence_json_verifies_and_rebuilds_the_derived_report
 *   trustee_evidence_accepts_base64_certs_and_raw_report_form
 *   trustee_evidence_field_errors_name_the_field
 *   builtin_roots_carry_amds_published_fingerprints
 *   turin_vcek_extensions_and_chain
 *   fake_vceks_parse_both_hwid_encodings_but_fail_the_chain
 *   turin_tcb_layout_known_answer / cpuid_selects_the_generation
 *   flipped_signature_byte_fails_the_signature
 *   flipped_measurement_byte_fails_the_signature
 *   vcek_of_another_report_fails_the_signature
 *   genoa_ark_for_a_milan_vcek_is_rejected / genoa_ask_for_a_milan_vcek_is_rejected
 *   vcek_against_the_asvk_is_rejected
 *   reported_tcb_tamper_fails_the_binding_check / chip_id_tamper_fails_the_binding_check
 *   expired_vlek_fails_after_2025_12_10 / vcek_not_yet_valid
 *   truncated_report_is_rejected / wrong_versions_are_rejected
 *   signature_algo_other_than_1_is_rejected
 *   vlek_report_with_a_vcek_is_rejected / cpuid_generation_must_match_the_vcek
 *   no_certificate_is_an_error
 *   report_data_and_host_data_checks
 *   cached_chain_still_checks_time_signature_and_binding
 *                                                    a trust's VEK cache: a hit
 *                                                    skips only the chain's
 *                                                    signatures; failures are
 *                                                    not cached
 *   crls_revoke_the_ask_or_the_vcek_with_a_clear_reason
 *                                                    CRLs made here with OpenSSL
 *                                                    (no AMD CRL vector exists):
 *                                                    ARK's list revokes the ASK,
 *                                                    ASK's list the VCEK, also
 *                                                    on a cached chain; a forged
 *                                                    list fails, a foreign one
 *                                                    is ignored
 *   cli_* : exit codes 0/1/2, claims and reasons on stdout, --json, tdx
 *
 * Expected values come from shared/vectors/README.md and KAT.json (computed
 * with Python `cryptography` and the openssl CLI, not by this code).  The
 * vector files are copied into tests/data/snp/ so that a fresh clone can run
 * these tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <jansson.h>

#include "daemon.h"
#include "evidence.h"
#include "simsp.h"
#include "snp.h"
#include "snp_roots.h"
#include "store.h"
#include "testchain.h"
#include "util.h"

#define DATA          "tests/data/snp/"
#define AT_2025_06_20 ((time_t)1750377600)

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

static char *slurp(const char *path, size_t *len)
{
	struct err e = {0};
	char *data = NULL;
	if (file_read(path, 4u << 20, &data, len, &e))
		fail_msg("%s", e.msg);
	return data;
}

static void hex_of(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			fail_msg("bad hex in test: %s", hex);
		out[i] = (uint8_t)v;
	}
}

/* A report from a vector file (raw, ASCII hex, or a slice of a bigger file). */
static void load_report(const char *path, size_t off, uint8_t out[SNP_REPORT_SIZE])
{
	size_t len;
	cleanup_free char *d = slurp(path, &len);
	if (len == 2 * SNP_REPORT_SIZE || len == 2 * SNP_REPORT_SIZE + 1) {
		hex_of(d, out, SNP_REPORT_SIZE);
		return;
	}
	assert_true(len >= off + SNP_REPORT_SIZE);
	memcpy(out, d + off, SNP_REPORT_SIZE);
}

static const char *jstr(json_t *o, const char *path)
{
	json_t *cur = o;
	char buf[128];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, k);
	if (!json_is_string(cur))
		fail_msg("claim %s is not a string", path);
	return json_string_value(cur);
}

static json_int_t jint(json_t *o, const char *path)
{
	json_t *cur = o;
	char buf[128];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		cur = json_object_get(cur, k);
	if (json_is_boolean(cur))
		return json_is_true(cur);
	if (!json_is_integer(cur))
		fail_msg("claim %s is not an integer", path);
	return json_integer_value(cur);
}

/* ---- the vectors ---- */

struct vector {
	const char *report, *cert;
	size_t off;
	int version;
	const char *gen, *key, *product;
	int bl, tee, snp, ucode, vmpl, debug;
	const char *policy, *measurement, *report_data, *chip_id;
};

#define Z32 "0000000000000000000000000000000000000000000000000000000000000000"
static const struct vector vectors[] = {
    {"go-sev-guest/attestation.bin", "go-sev-guest/vcek.testcer", 0, 2, "Milan", "VCEK", "Milan-B0",
     2, 0, 5, 68, 0, 1, "0xb0000",
     "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872"
     "b01",
     "0102030405000000000000000000000000000000000000000000000000000000" Z32,
     "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564"
     "ea464cdce40c05f63c9b610c5068b006b5d"},
    {"sev/report_milan.hex", "sev/vcek_milan.der", 0, 2, "Milan", "VCEK", "Milan-B0", 3, 0, 8, 115,
     0, 0, "0x30000",
     "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd818"
     "41f",
     "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a829"
     "3f0f3f8dae7b79fecb3d1cd82bd6a93ebfd",
     "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efacfd08"
     "e244324884738c72b082e2f87a44d541eb6"},
    {"trustee/snp/test-report.bin", "trustee/snp/test-vcek.der", 0, 2, "Milan", "VCEK", "Milan-B0",
     3, 0, 8, 115, 0, 0, "0x3001f",
     "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d"
     "38c",
     "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2" Z32,
     "c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4"
     "426205a3b9e4fea82301135a170e477524e"},
    {"trustee/snp/test-vlek-report.bin", "trustee/snp/test-vlek.der", 0, 3, "Milan", "VLEK",
     "Milan", 4, 0, 24, 217, 1, 0, "0x30000",
     "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7"
     "bf0",
     "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b"
     "8574fd9359e3a480d741a4478e8a7bc27ca",
     Z32 Z32},
    {"trustee/e2e/evidence-derived-report.bin", "trustee/e2e/evidence-derived-vcek.der", 0, 3,
     "Genoa", "VCEK", "Genoa", 10, 0, 23, 25, 0, 0, "0x30000",
     "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e"
     "73e",
     "7e7320889600c7ac133aea7b896c51f41026002982292a7369559796999c1bf929eef3ff23c46e858f0b1982f9a92"
     "b17c51b578d958cde6b0c92978f150cf9b0",
     "371c55d6d15cb50f16dc31d39a24e300caaabff4431e841111429b73ec45ad67ea6e687ffae7bf84b54a5d0e6d79b"
     "3ef6ff0bd8b4cff94c2163af5c5de8718e8"},
    {"trustee/az-snp-vtpm/hcl-report.bin", "trustee/az-snp-vtpm/vcek.pem", 0x20, 2, "Milan", "VCEK",
     "Milan-B0", 3, 0, 8, 115, 0, 0, "0x3001f",
     "9ac48fcac8a2d88aeeff8d427ad4f2be0e3917c748a18bdf52cc317e7fe20308b459d5ef1a12e0c22944eb386d17c"
     "315",
     "b3fbad6514c83caeb0380882145e49f794229ef37c421b91fc47ff93556bafac" Z32,
     "19752a447db501a32ade46428a46e92639bd3515dbb45e2e67bbcb0934ffcf1f3e3c004ccb4a99c9fa7e4ffb09da6"
     "b324ac58acedaf679f24ba7db5f838c6cca"},
    {"trustee/az-snp-vtpm/evidence-genoa.json", NULL, 0x20, 3, "Genoa", "VCEK", "Genoa", 10, 0, 23,
     84, 0, 0, "0x3001f",
     "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c8"
     "9ae",
     "b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f" Z32,
     "0506ffba875e939c2729d20c74eb72b4c5ba6bf7ea1faaa640141f12c6d64782fb487f68ce69dcd021e914cc0d924"
     "4327bc121f0242d6470903ad1d4aaea4ad1"},
};
#define NVECTORS (sizeof vectors / sizeof vectors[0])

/* The report and certificate bytes of vector `i` (the Azure Genoa JSON
 * holds the HCL report as a byte array and the VCEK as PEM). */
static void vector_load(size_t i, uint8_t rep[SNP_REPORT_SIZE], char **cert, size_t *clen)
{
	const struct vector *v = &vectors[i];
	char path[256];
	snprintf(path, sizeof path, DATA "%s", v->report);
	if (v->cert) {
		load_report(path, v->off, rep);
		snprintf(path, sizeof path, DATA "%s", v->cert);
		*cert = slurp(path, clen);
		return;
	}
	size_t len;
	cleanup_free char *d = slurp(path, &len);
	json_t *j = json_loadb(d, len, 0, NULL);
	assert_non_null(j);
	json_t *arr = json_object_get(j, "report");
	for (size_t k = 0; k < SNP_REPORT_SIZE; k++)
		rep[k] = (uint8_t)json_integer_value(json_array_get(arr, v->off + k));
	*cert = xstrdup(json_string_value(json_object_get(j, "vcek")));
	*clen = strlen(*cert);
	json_decref(j);
}

static json_t *verify_ok(const uint8_t *rep, const char *cert, size_t clen, time_t at)
{
	struct err e = {0};
	json_t *claims = NULL;
	int rc =
	    snp_verify(rep, SNP_REPORT_SIZE, (const uint8_t *)cert, clen, NULL, at, &claims, &e);
	if (rc)
		fail_msg("verification failed: %s", e.msg);
	assert_non_null(claims);
	return claims;
}

static void every_vector_verifies_with_its_recorded_values(void **state)
{
	for (size_t i = 0; i < NVECTORS; i++) {
		const struct vector *v = &vectors[i];
		uint8_t rep[SNP_REPORT_SIZE];
		size_t clen;
		cleanup_free char *cert = NULL;
		vector_load(i, rep, &cert, &clen);
		json_t *c = verify_ok(rep, cert, clen, AT_2025_06_20);
		print_message("vector %s\n", v->report);
		assert_int_equal(jint(c, "version"), v->version);
		assert_string_equal(jstr(c, "generation"), v->gen);
		assert_string_equal(jstr(c, "measurement"), v->measurement);
		assert_string_equal(jstr(c, "report_data"), v->report_data);
		assert_string_equal(jstr(c, "chip_id"), v->chip_id);
		assert_string_equal(jstr(c, "policy.raw"), v->policy);
		assert_int_equal(jint(c, "policy.debug"), v->debug);
		assert_int_equal(jint(c, "vmpl"), v->vmpl);
		assert_int_equal(jint(c, "reported_tcb.bootloader"), v->bl);
		assert_int_equal(jint(c, "reported_tcb.tee"), v->tee);
		assert_int_equal(jint(c, "reported_tcb.snp"), v->snp);
		assert_int_equal(jint(c, "reported_tcb.microcode"), v->ucode);
		assert_string_equal(jstr(c, "endorsement.key"), v->key);
		assert_string_equal(jstr(c, "endorsement.product"), v->product);
		assert_string_equal(jstr(c, "key_info.signing_key"),
		                    strcmp(v->key, "VLEK") == 0 ? "vlek" : "vcek");
		assert_int_equal(jint(c, "sim"), 0);
		json_decref(c);
	}
}

static void parse_exposes_recorded_fields(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	struct snp_report r;
	struct err e = {0};
	load_report(DATA "trustee/snp/test-report.bin", 0, rep);
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	assert_int_equal(r.guest_svn, 4);
	assert_int_equal(r.policy, 0x3001f);
	assert_int_equal(r.platform_info, 0x1);
	assert_int_equal(r.current_tcb.ucode, 206); /* current differs from reported */
	assert_int_equal(r.reported_tcb.ucode, 115);
	assert_int_equal(r.current_major, 1);
	assert_int_equal(r.current_minor, 52);
	assert_int_equal(r.current_build, 4);

	load_report(DATA "trustee/snp/test-vlek-report.bin", 0, rep);
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	assert_int_equal(r.platform_info, 0x27);
	assert_int_equal(r.key_info, 0x4);
	assert_int_equal(r.cpuid_fam, 0x19);
	assert_int_equal(r.cpuid_mod, 0x1);
	assert_int_equal(r.cpuid_step, 0x1);
	assert_int_equal(r.committed_minor, 55);
	assert_int_equal(r.committed_build, 29);
	json_t *c = snp_claims(&r);
	assert_string_equal(jstr(c, "current_version"), "1.55.29");
	assert_int_equal(jint(c, "platform_info.alias_check_complete"), 1);
	assert_int_equal(jint(c, "platform_info.ecc_enabled"), 1);
	assert_int_equal(jint(c, "platform_info.tsme_enabled"), 1);
	assert_int_equal(jint(c, "cpuid_mod_id"), 1);
	assert_string_equal(jstr(c, "report_id_ma"),
	                    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
	assert_null(json_object_get(c, "launch_mit_vector")); /* v5 only */
	json_decref(c);

	load_report(DATA "go-sev-guest/attestation.bin", 0, rep);
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	c = snp_claims(&r);
	assert_string_equal(jstr(c, "current_tcb.raw"), "0200000000000544");
	assert_string_equal(jstr(c, "report_id"),
	                    "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a");
	assert_string_equal(jstr(c, "committed_version"), "1.49.3");
	assert_int_equal(jint(c, "policy.smt"), 1);
	assert_int_equal(jint(c, "policy.migrate_ma"), 0);
	json_decref(c);
}

/* ---- Trustee JSON ---- */

static json_t *load_json(const char *path)
{
	size_t len;
	cleanup_free char *d = slurp(path, &len);
	json_t *j = json_loadb(d, len, 0, NULL);
	assert_non_null(j);
	return j;
}

static void trustee_evidence_json_verifies_and_rebuilds_the_derived_report(void **state)
{
	json_t *ev = load_json(DATA "trustee/e2e/evidence.json");
	struct err e = {0};
	json_t *c = NULL;
	int rc = snp_verify_trustee_evidence(ev, NULL, 0, NULL, AT_2025_06_20, &c, &e);
	if (rc)
		fail_msg("%s", e.msg);
	assert_string_equal(jstr(c, "generation"), "Genoa");
	assert_string_equal(jstr(c, "endorsement.root"), "ARK-Genoa");
	json_decref(c);

	uint8_t rebuilt[SNP_REPORT_SIZE], derived[SNP_REPORT_SIZE];
	assert_int_equal(snp_trustee_report(json_object_get(ev, "attestation_report"), rebuilt, &e),
	                 0);
	load_report(DATA "trustee/e2e/evidence-derived-report.bin", 0, derived);
	assert_memory_equal(rebuilt, derived, SNP_REPORT_SIZE);
	json_decref(ev);
}

static char *b64(const uint8_t *p, size_t n)
{
	char *s = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

static void trustee_evidence_accepts_base64_certs_and_raw_report_form(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	load_report(DATA "sev/report_milan.hex", 0, rep);
	cleanup_free char *der = slurp(DATA "sev/vcek_milan.der", &clen);
	cleanup_free char *cb = b64((const uint8_t *)der, clen);
	cleanup_free char *rb = b64(rep, sizeof rep);
	json_t *ev = json_pack("{s:s, s:[{s:s, s:s}]}", "attestation_report", rb, "cert_chain",
	                       "cert_type", "VCEK", "data", cb);
	struct err e = {0};
	json_t *c = NULL;
	if (snp_verify_trustee_evidence(ev, NULL, 0, NULL, AT_2025_06_20, &c, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(jstr(c, "chip_id"), vectors[1].chip_id);
	json_decref(c);
	json_decref(ev);

	/* No cert_chain: the VCEK comes from the caller (collateral cache). */
	ev = json_pack("{s:s}", "attestation_report", rb);
	assert_int_equal(snp_verify_trustee_evidence(ev, (const uint8_t *)der, clen, NULL,
	                                             AT_2025_06_20, NULL, &e),
	                 0);
	json_decref(ev);
}

static void trustee_evidence_field_errors_name_the_field(void **state)
{
	json_t *ev = load_json(DATA "trustee/e2e/evidence.json");
	json_t *ar = json_object_get(ev, "attestation_report");
	struct err e = {0};

	json_array_set_new(json_object_get(ar, "measurement"), 0, json_integer(0x6b));
	assert_int_not_equal(
	    snp_verify_trustee_evidence(ev, NULL, 0, NULL, AT_2025_06_20, NULL, &e), 0);
	assert_string_equal(e.msg, "report signature does not verify with the VCEK");

	json_array_remove(json_object_get(ar, "measurement"), 0);
	assert_int_not_equal(
	    snp_verify_trustee_evidence(ev, NULL, 0, NULL, AT_2025_06_20, NULL, &e), 0);
	assert_string_equal(e.msg, "attestation_report.measurement: expected 48 bytes");

	json_object_del(ar, "reported_tcb");
	uint8_t raw[SNP_REPORT_SIZE];
	assert_int_not_equal(snp_trustee_report(ar, raw, &e), 0);
	json_decref(ev);
}

/* ---- certificates ---- */

static void builtin_roots_carry_amds_published_fingerprints(void **state)
{
	static const char *want[][3] = {
	    {"Milan", "ARK", "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"},
	    {"Milan", "ASK", "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b"},
	    {"Milan", "ASVK", "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5"},
	    {"Genoa", "ARK", "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"},
	    {"Genoa", "ASK", "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521"},
	    {"Genoa", "ASVK", "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372"},
	    {"Turin", "ARK", "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"},
	    {"Turin", "ASK", "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185"},
	    {"Turin", "ASVK", "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c"},
	};
	static const char *kinds[] = {"ARK", "ASK", "ASVK"};
	assert_int_equal(snp__nroots, 9);
	for (size_t i = 0; i < 9; i++) {
		int found = 0;
		for (size_t k = 0; k < snp__nroots; k++)
			if (strcmp(snp__roots[k].product, want[i][0]) == 0 &&
			    strcmp(kinds[snp__roots[k].kind], want[i][1]) == 0) {
				assert_string_equal(snp__roots[k].sha256, want[i][2]);
				found = 1;
			}
		assert_true(found);
	}
}

static void turin_vcek_extensions_and_chain(void **state)
{
	size_t len;
	cleanup_free char *der = slurp(DATA "sev/vcek_turin.der", &len);
	struct snp_vek v;
	struct err e = {0};
	if (snp_vek_verify((const uint8_t *)der, len, NULL, AT_2025_06_20, &v, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(v.kind, SNP_KEY_VCEK);
	assert_string_equal(v.product, "Turin");
	assert_int_equal(v.gen, SNP_GEN_TURIN);
	assert_int_equal(v.struct_version, 1);
	assert_int_equal(v.tcb.has_fmc, 1);
	assert_int_equal(v.tcb.fmc, 0);
	assert_int_equal(v.tcb.bl, 0);
	assert_int_equal(v.tcb.tee, 0);
	assert_int_equal(v.tcb.snp, 0);
	assert_int_equal(v.tcb.ucode, 9);
	assert_int_equal(v.hwid_len, 8);
	uint8_t hw[8];
	hex_of("1e550a8ee5cf9f4d", hw, 8);
	assert_memory_equal(v.hwid, hw, 8);
	assert_string_equal(v.issuer, "SEV-Turin");

	cleanup_free char *vlek = slurp(DATA "trustee/snp/test-vlek.der", &len);
	assert_int_equal(snp_vek_parse((const uint8_t *)vlek, len, &v, &e), 0);
	assert_int_equal(v.kind, SNP_KEY_VLEK);
	assert_string_equal(v.csp_id, "CN=cc-us-east-2.amazonaws.com");
	assert_int_equal(v.hwid_len, 0);
	assert_int_equal(v.tcb.ucode, 217);
}

static void fake_vceks_parse_both_hwid_encodings_but_fail_the_chain(void **state)
{
	static const char *files[] = {DATA "trustee/snp/test-vcek-invalid-legacy.der",
	                              DATA "trustee/snp/test-vcek-invalid-new.der"};
	uint8_t want[64];
	for (int i = 0; i < 64; i++)
		want[i] = (uint8_t)i;
	for (int f = 0; f < 2; f++) {
		size_t len;
		cleanup_free char *der = slurp(files[f], &len);
		struct snp_vek v;
		struct err e = {0};
		assert_int_equal(snp_vek_parse((const uint8_t *)der, len, &v, &e), 0);
		assert_int_equal(v.hwid_len, 64);
		assert_memory_equal(v.hwid, want, 64);
		assert_int_not_equal(
		    snp_vek_verify((const uint8_t *)der, len, NULL, AT_2025_06_20, &v, &e), 0);
		assert_string_equal(e.msg, "VCEK not signed by ASK SEV-Milan");
	}
}

static void turin_tcb_layout_known_answer(void **state)
{
	uint8_t raw[8];
	struct snp_tcb t;
	hex_of("0101010400000051", raw, 8);
	snp_tcb_decode(raw, SNP_GEN_TURIN, &t);
	assert_int_equal(t.fmc, 1);
	assert_int_equal(t.bl, 1);
	assert_int_equal(t.tee, 1);
	assert_int_equal(t.snp, 4);
	assert_int_equal(t.ucode, 81);
	snp_tcb_decode(raw, SNP_GEN_MILAN, &t); /* same bytes, Milan layout */
	assert_int_equal(t.bl, 1);
	assert_int_equal(t.tee, 1);
	assert_int_equal(t.snp, 0);
	assert_int_equal(t.has_fmc, 0);
}

static void cpuid_selects_the_generation(void **state)
{
	static const struct {
		uint8_t fam, mod;
		enum snp_gen gen;
	} cases[] = {
	    {0x19, 0x01, SNP_GEN_MILAN}, {0x19, 0x11, SNP_GEN_GENOA},   {0x19, 0xa0, SNP_GEN_GENOA},
	    {0x1a, 0x02, SNP_GEN_TURIN}, {0x17, 0x31, SNP_GEN_UNKNOWN},
	};
	uint8_t rep[SNP_REPORT_SIZE];
	load_report(DATA "trustee/snp/test-vlek-report.bin", 0, rep);
	rep[0x180] = 0x01, rep[0x181] = 0x02, rep[0x182] = 0x03, rep[0x183] = 0x04;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct snp_report r;
		struct err e = {0};
		rep[0x188] = cases[i].fam, rep[0x189] = cases[i].mod;
		assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
		assert_int_equal(r.gen, cases[i].gen);
		if (cases[i].gen == SNP_GEN_TURIN) {
			assert_int_equal(r.reported_tcb.fmc, 1);
			assert_int_equal(r.reported_tcb.snp, 4);
		} else {
			assert_int_equal(r.reported_tcb.bl, 1);
		}
	}
}

/* ---- negative cases ---- */

static void expect_fail(const uint8_t *rep, size_t len, const char *cert, size_t clen, time_t at,
                        const char *want)
{
	struct err e = {0};
	json_t *claims = NULL;
	int rc = snp_verify(rep, len, (const uint8_t *)cert, clen, NULL, at, &claims, &e);
	assert_true(rc < 0);
	assert_null(claims);
	assert_contains(e.msg, want);
}

static void with_vector(size_t i, void (*fn)(uint8_t *rep, char *cert, size_t clen))
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	cleanup_free char *cert = NULL;
	vector_load(i, rep, &cert, &clen);
	fn(rep, cert, clen);
}

static void flip_sig(uint8_t *rep, char *cert, size_t clen)
{
	rep[0x2A0] ^= 1;
	expect_fail(rep, SNP_REPORT_SIZE, cert, clen, AT_2025_06_20,
	            "report signature does not verify with the VCEK");
}

static void flipped_signature_byte_fails_the_signature(void **state)
{
	for (size_t i = 0; i < NVECTORS; i++)
		if (strcmp(vectors[i].key, "VCEK") == 0)
			with_vector(i, flip_sig);
}

static void flip_measurement(uint8_t *rep, char *cert, size_t clen)
{
	rep[0x90] ^= 0x80;
	expect_fail(rep, SNP_REPORT_SIZE, cert, clen, AT_2025_06_20,
	            "report signature does not verify with the");
}

static void flipped_measurement_byte_fails_the_signature(void **state)
{
	for (size_t i = 0; i < NVECTORS; i++)
		with_vector(i, flip_measurement);
}

static void vcek_of_another_report_fails_the_signature(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	load_report(DATA "go-sev-guest/attestation.bin", 0, rep);
	cleanup_free char *other = slurp(DATA "sev/vcek_milan.der", &clen);
	expect_fail(rep, sizeof rep, other, clen, AT_2025_06_20,
	            "report signature does not verify with the VCEK");
}

/* VCEK + extra certificates (PEM text) for go-sev-guest/attestation.bin. */
static void verify_with_extra(const char *extra, const char *want)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	struct err e = {0};
	load_report(DATA "go-sev-guest/attestation.bin", 0, rep);
	cleanup_free char *der = slurp(DATA "go-sev-guest/vcek.testcer", &clen);
	struct buf pem;
	buf_init(&pem);
	assert_int_equal(snp_certs_to_pem((const uint8_t *)der, clen, &pem, &e), 0);
	buf_adds(&pem, extra);
	expect_fail(rep, sizeof rep, pem.data, pem.len, AT_2025_06_20, want);
	buf_fini(&pem);
}

/* The first certificate of a PEM file. */
static char *first_pem(const char *path)
{
	size_t len;
	char *d = slurp(path, &len);
	char *end = strstr(d, "-----END CERTIFICATE-----");
	assert_non_null(end);
	end[strlen("-----END CERTIFICATE-----")] = '\0';
	return d;
}

static void genoa_ark_for_a_milan_vcek_is_rejected(void **state)
{
	size_t len;
	cleanup_free char *genoa = slurp(DATA "go-sev-guest/ask_ark_genoa.pem", &len);
	verify_with_extra(genoa, "ARK ARK-Genoa is not AMD's pinned ARK-Milan");
}

static void genoa_ask_for_a_milan_vcek_is_rejected(void **state)
{
	cleanup_free char *ask = first_pem(DATA "go-sev-guest/ask_ark_genoa.pem");
	verify_with_extra(ask, "ASK SEV-Genoa not signed by ARK ARK-Milan");
}

static void vcek_against_the_asvk_is_rejected(void **state)
{
	cleanup_free char *asvk = first_pem(DATA "go-sev-guest/ask_ark_milan_vlek.pem");
	verify_with_extra(asvk, "VCEK not signed by ASK SEV-VLEK-Milan");
}

static void binding_setup(uint8_t rep[SNP_REPORT_SIZE], struct snp_report *r, struct snp_vek *v)
{
	size_t clen;
	struct err e = {0};
	load_report(DATA "go-sev-guest/attestation.bin", 0, rep);
	cleanup_free char *der = slurp(DATA "go-sev-guest/vcek.testcer", &clen);
	assert_int_equal(snp_vek_parse((const uint8_t *)der, clen, v, &e), 0);
	assert_int_equal(snp_parse(rep, SNP_REPORT_SIZE, r, &e), 0);
	assert_int_equal(snp_check_vek_binding(r, v, &e), 0);
}

static void reported_tcb_tamper_fails_the_binding_check(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	struct snp_report r;
	struct snp_vek v;
	struct err e = {0};
	binding_setup(rep, &r, &v);
	rep[0x180] ^= 1; /* bl 2 -> 3 */
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	assert_int_not_equal(snp_check_vek_binding(&r, &v, &e), 0);
	assert_string_equal(e.msg, "REPORTED_TCB bl=3 does not match VCEK extension bl=2");
	rep[0x180] ^= 1;
	rep[0x187] = 0x45; /* ucode 68 -> 69 */
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	assert_int_not_equal(snp_check_vek_binding(&r, &v, &e), 0);
	assert_string_equal(e.msg, "REPORTED_TCB ucode=69 does not match VCEK extension ucode=68");
	/* The whole verifier refuses it too (the signature breaks first). */
	size_t clen;
	cleanup_free char *der = slurp(DATA "go-sev-guest/vcek.testcer", &clen);
	expect_fail(rep, sizeof rep, der, clen, AT_2025_06_20, "report signature does not verify");
}

static void chip_id_tamper_fails_the_binding_check(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	struct snp_report r;
	struct snp_vek v;
	struct err e = {0};
	binding_setup(rep, &r, &v);
	rep[0x1A0 + 63] ^= 1;
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	assert_int_not_equal(snp_check_vek_binding(&r, &v, &e), 0);
	assert_string_equal(e.msg, "CHIP_ID 3ac3fe21e13fb0990eb28a802e3fb6a2... does not match "
	                           "VCEK hwID 3ac3fe21e13fb0990eb28a802e3fb6a2...");
}

static void expired_vlek_fails_after_2025_12_10(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	time_t at;
	struct err e = {0};
	cleanup_free char *cert = NULL;
	vector_load(3, rep, &cert, &clen);
	assert_int_equal(evidence_parse_time("2025-12-11T00:00:00Z", &at, &e), 0);
	expect_fail(rep, sizeof rep, cert, clen, at,
	            "VLEK certificate expired at 2025-12-10T22:14:21Z");
	assert_int_equal(evidence_parse_time("2025-12-10T22:14:20Z", &at, &e), 0);
	json_decref(verify_ok(rep, cert, clen, at)); /* one second before: still valid */
}

static void vcek_not_yet_valid(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	time_t at;
	struct err e = {0};
	cleanup_free char *cert = NULL;
	vector_load(0, rep, &cert, &clen);
	assert_int_equal(evidence_parse_time("2021-06-01T00:00:00Z", &at, &e), 0);
	expect_fail(rep, sizeof rep, cert, clen, at,
	            "VCEK certificate not valid before 2022-09-24");
}

static void truncated_report_is_rejected(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE + 1];
	size_t clen;
	cleanup_free char *cert = NULL;
	vector_load(1, rep, &cert, &clen);
	expect_fail(rep, SNP_REPORT_SIZE - 1, cert, clen, AT_2025_06_20,
	            "SNP report truncated: 1183 bytes, expected 1184");
	expect_fail(rep, SNP_REPORT_SIZE + 1, cert, clen, AT_2025_06_20,
	            "SNP report has 1185 bytes, expected 1184");
	expect_fail(NULL, 0, cert, clen, AT_2025_06_20, "SNP report truncated: 0 bytes");
}

static void wrong_versions_are_rejected(void **state)
{
	static const uint8_t bad[] = {0, 1, 6, 0xff};
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	cleanup_free char *cert = NULL;
	vector_load(1, rep, &cert, &clen);
	for (size_t i = 0; i < sizeof bad; i++) {
		char want[64];
		rep[0] = bad[i];
		snprintf(want, sizeof want, "unsupported SNP report version %u", bad[i]);
		expect_fail(rep, sizeof rep, cert, clen, AT_2025_06_20, want);
	}
}

static void signature_algo_other_than_1_is_rejected(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	cleanup_free char *cert = NULL;
	vector_load(1, rep, &cert, &clen);
	rep[0x34] = 2;
	expect_fail(rep, sizeof rep, cert, clen, AT_2025_06_20,
	            "signature_algo 2 is not 1 (ECDSA P-384 with SHA-384)");
}

static void vlek_report_with_a_vcek_is_rejected(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	load_report(DATA "trustee/snp/test-vlek-report.bin", 0, rep);
	cleanup_free char *vcek = slurp(DATA "trustee/snp/test-vcek.der", &clen);
	expect_fail(rep, sizeof rep, vcek, clen, AT_2025_06_20,
	            "KEY_INFO says the report is signed by a VLEK but a VCEK was given");
}

static void cpuid_generation_must_match_the_vcek(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	size_t clen;
	load_report(DATA "trustee/e2e/evidence-derived-report.bin", 0, rep);
	cleanup_free char *milan = slurp(DATA "go-sev-guest/vcek.testcer", &clen);
	expect_fail(rep, sizeof rep, milan, clen, AT_2025_06_20,
	            "report CPUID (family 0x19 model 0xa0) is Genoa but the VCEK is for Milan-B0");
}

static void no_certificate_is_an_error(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	load_report(DATA "go-sev-guest/attestation.bin", 0, rep);
	expect_fail(rep, sizeof rep, NULL, 0, AT_2025_06_20, "no VCEK or VLEK certificate");
	cleanup_free char *ark = first_pem(DATA "go-sev-guest/ask_ark_milan.pem");
	expect_fail(rep, sizeof rep, ark, strlen(ark), AT_2025_06_20, "no VCEK or VLEK");
	expect_fail(rep, sizeof rep, "garbage", 7, AT_2025_06_20, "neither PEM nor DER");
}

static void report_data_and_host_data_checks(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE], want[32], hd[32];
	struct snp_report r;
	struct err e = {0};
	load_report(DATA "trustee/snp/test-report.bin", 0, rep);
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	hex_of("ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2", want, 32);
	assert_int_equal(snp_check_report_data(&r, want, 32, &e), 0); /* zero-padded */
	want[31] ^= 1;
	assert_int_equal(snp_check_report_data(&r, want, 32, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "REPORT_DATA ec6c52d7533cc2c4f45be7849cf112ab... does not match");

	memset(want, 0, sizeof want);
	assert_int_equal(snp_check_host_data(&r, want, 32, &e), 0);
	want[0] = 1;
	assert_int_equal(snp_check_host_data(&r, want, 1, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "HOST_DATA");
	rep[0xC0 + 5] = 0x5a;
	assert_int_equal(snp_host_data(rep, sizeof rep, hd, &e), 0);
	assert_int_equal(hd[5], 0x5a);
	assert_int_not_equal(snp_host_data(rep, 100, hd, &e), 0);
}

/* ---- the CLI ---- */

/* Runs evidence_main with stdout captured into `out` (caller frees). */
static int run_cli(char **out, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = xstrdup("evidence");
	argv[argc++] = xstrdup("verify");
	for (; *args && argc < 31; args++)
		argv[argc++] = xstrdup(*args);
	argv[argc] = NULL;
	char path[] = "/tmp/cocod-test-snp-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stdout);
	int saved = dup(1);
	dup2(fd, 1);
	int rc = evidence_main(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(fd);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	size_t len;
	*out = slurp(path, &len);
	unlink(path);
	return rc;
}

static void cli_prints_claims_and_valid_verdict(void **state)
{
	cleanup_free char *out = NULL;
	const char *args[] = {"--tee",      "snp",
	                      "--evidence", DATA "sev/report_milan.hex",
	                      "--cert",     DATA "sev/vcek_milan.der",
	                      "--at",       "2025-06-20T00:00:00Z",
	                      NULL};
	assert_int_equal(run_cli(&out, args), 0);
	assert_contains(out, "form: hex\n");
	assert_contains(out, "measurement: "
	                     "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0"
	                     "dc39b2c60bd95b9c480cd81841f\n");
	assert_contains(out, "reported_tcb.microcode: 115\n");
	assert_contains(out, "policy.debug: false\n");
	assert_contains(out, "\nverdict: valid\n");
}

static void cli_invalid_evidence_exits_1_with_the_reason(void **state)
{
	cleanup_free char *out = NULL;
	const char *args[] = {"--tee",      "snp",
	                      "--evidence", DATA "trustee/snp/test-vlek-report.bin",
	                      "--cert",     DATA "trustee/snp/test-vlek.der",
	                      "--at",       "2026-01-01T01:00:00+01:00",
	                      NULL};
	assert_int_equal(run_cli(&out, args), 1);
	assert_contains(out, "vmpl: 1\n"); /* claims still shown for debugging */
	assert_contains(out,
	                "verdict: invalid: VLEK certificate expired at 2025-12-10T22:14:21Z\n");
}

static void cli_json_output_for_trustee_evidence(void **state)
{
	cleanup_free char *out = NULL;
	const char *args[] = {
	    "--tee",  "snp",  "--evidence",           DATA "trustee/e2e/evidence.json",
	    "--json", "--at", "2025-06-20T00:00:00Z", NULL};
	assert_int_equal(run_cli(&out, args), 0);
	json_t *doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(jstr(doc, "verdict"), "valid");
	assert_string_equal(jstr(doc, "form"), "trustee-json");
	assert_string_equal(jstr(doc, "claims.measurement"), vectors[4].measurement);
	json_decref(doc);
}

static void cli_azure_hcl_report_verifies_its_snp_report(void **state)
{
	cleanup_free char *out = NULL;
	const char *args[] = {"--tee",      "snp",
	                      "--evidence", DATA "trustee/az-snp-vtpm/hcl-report.bin",
	                      "--cert",     DATA "trustee/az-snp-vtpm/vcek.pem",
	                      "--at",       "2025-06-20T00:00:00Z",
	                      NULL};
	assert_int_equal(run_cli(&out, args), 0);
	assert_contains(out, "form: azure-hcl\n");
	assert_contains(out, "verdict: valid\n");
}

static void cli_usage_errors_and_tdx_dispatch(void **state)
{
	cleanup_free char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *t = NULL;
	const char *tdx[] = {"--tee", "tdx", "--evidence", DATA "sev/report_milan.hex", NULL};
	const char *tdx_ok[] = {"--tee", "tdx", "--evidence", "tests/data/tdx/dcap-qvl/sample/tdx_quote",
				"--collateral", "tests/data/tdx/dcap-qvl/sample/tdx_quote_collateral.json",
				"--at", "2025-06-20T00:00:00Z", NULL};
	const char *missing[] = {"--tee", "snp", NULL};
	const char *bad_time[] = {"--tee", "snp",       "--evidence", DATA "sev/report_milan.hex",
	                          "--at",  "yesterday", NULL};
	const char *no_file[] = {"--tee", "snp", "--evidence", DATA "nonexistent", NULL};
	assert_int_equal(run_cli(&a, tdx), 1); /* an SNP report is no TDX quote */
	assert_contains(a, "verdict: invalid");
	assert_int_equal(run_cli(&t, tdx_ok), 0);
	assert_contains(t, "UpToDate");
	assert_contains(t, "verdict: valid");
	assert_int_equal(run_cli(&b, missing), 2);
	assert_int_equal(run_cli(&c, bad_time), 2);
	assert_int_equal(run_cli(&d, no_file), 2);
	assert_string_equal(b, ""); /* nothing on stdout: messages go to stderr */
}

static void rfc3339_times_parse(void **state)
{
	time_t t;
	struct err e = {0};
	assert_int_equal(evidence_parse_time("2025-06-20T00:00:00Z", &t, &e), 0);
	assert_int_equal(t, AT_2025_06_20);
	assert_int_equal(evidence_parse_time("2025-06-20T02:00:00.5+02:00", &t, &e), 0);
	assert_int_equal(t, AT_2025_06_20);
	assert_int_not_equal(evidence_parse_time("2025-06-20", &t, &e), 0);
	assert_int_not_equal(evidence_parse_time("2025-13-20T00:00:00Z", &t, &e), 0);
}

/* With a trust (as the KBS has), the first verification remembers the
 * VEK's chain; later ones with the same certificates must still fail on
 * the report's signature, its TCB/CHIP_ID binding and the time. */
static void cached_chain_still_checks_time_signature_and_binding(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE], bad[SNP_REPORT_SIZE];
	size_t clen;
	struct err e = {0};
	json_t *claims = NULL;
	struct snp_trust *t = snp_trust_new();
	cleanup_free char *cert = NULL;
	vector_load(1, rep, &cert, &clen); /* sev/report_milan.hex + vcek_milan.der */
	const uint8_t *c = (const uint8_t *)cert;
	for (int i = 0; i < 2; i++) {
		if (snp_verify(rep, SNP_REPORT_SIZE, c, clen, t, AT_2025_06_20, &claims, &e))
			fail_msg("pass %d: %s", i, e.msg);
		assert_string_equal(jstr(claims, "endorsement.root"), "ARK-Milan");
		json_decref(claims);
		claims = NULL;
	}
	memcpy(bad, rep, sizeof bad);
	bad[0x90] ^= 1; /* MEASUREMENT */
	assert_int_not_equal(snp_verify(bad, SNP_REPORT_SIZE, c, clen, t, AT_2025_06_20, NULL, &e), 0);
	assert_contains(e.msg, "report signature does not verify");
	memcpy(bad, rep, sizeof bad);
	bad[0x1A0] ^= 1; /* CHIP_ID (the signature fails first) */
	assert_int_not_equal(snp_verify(bad, SNP_REPORT_SIZE, c, clen, t, AT_2025_06_20, NULL, &e), 0);
	assert_int_not_equal(snp_verify(rep, SNP_REPORT_SIZE, c, clen, t, (time_t)1640995200, NULL, &e),
	                     0);
	assert_contains(e.msg, "VCEK certificate not valid before 2023-04-03");
	assert_int_not_equal(snp_verify(rep, SNP_REPORT_SIZE, c, clen, t, (time_t)2000000000, NULL, &e),
	                     0);
	assert_contains(e.msg, "VCEK certificate expired at 2030-04-03");
	/* A chain that failed is verified (and fails) again. */
	size_t flen;
	cleanup_free char *fake = slurp(DATA "trustee/snp/test-vcek-invalid-legacy.der", &flen);
	for (int i = 0; i < 2; i++) {
		assert_int_not_equal(snp_verify(rep, SNP_REPORT_SIZE, (const uint8_t *)fake, flen, t,
		                                AT_2025_06_20, NULL, &e),
		                     0);
		assert_contains(e.msg, "not signed by ASK");
	}
	snp_trust_free(t);
}

/* snp_verify_trustee_chain of `raw` with one CRL (NULL: none). */
static int verify_with_crl(const uint8_t *raw, const json_t *chain, const struct snp_trust *t,
                           const uint8_t *crl, size_t crl_len, struct err *e)
{
	struct snp_crls *c = snp_crls_new();
	if (crl && snp_crls_add(c, crl, crl_len, e))
		fail_msg("%s", e->msg);
	int rc = snp_verify_trustee_chain(raw, chain, NULL, 0, t, crl ? c : NULL, time(NULL), NULL, e);
	snp_crls_free(c);
	return rc;
}

static void crls_revoke_the_ask_or_the_vcek_with_a_clear_reason(void **state)
{
	struct testchain tc;
	struct simsp *sp;
	struct err e = {0};
	testchain_make(&tc);
	if (simsp_load(tc.pem, tc.len, &sp, &e))
		fail_msg("%s", e.msg);
	struct snp_trust *t = snp_trust_new();
	assert_int_equal(simsp_trust(sp, t, &e), 0);
	uint8_t rd[64] = {1}, raw[SNP_REPORT_SIZE];
	assert_int_equal(simsp_report(sp, rd, NULL, NULL, 0x30000, raw, &e), 0);
	char *vcek = simsp_vcek_pem(sp);
	json_t *chain = json_pack("[{s:s, s:s}]", "cert_type", "VCEK", "data", vcek);
	size_t n;
	uint8_t *other = testchain_crl(tc.ark, tc.ark_key, 99, &n); /* lists someone else */
	if (verify_with_crl(raw, chain, t, other, n, &e)) /* verified and now cached */
		fail_msg("%s", e.msg);
	OPENSSL_free(other);
	uint8_t *ask = testchain_crl(tc.ark, tc.ark_key, 2, &n);
	struct snp_trust *fresh = snp_trust_new(); /* nothing cached */
	assert_int_equal(simsp_trust(sp, fresh, &e), 0);
	for (int i = 0; i < 2; i++) { /* the cached chain, then an uncached one */
		assert_int_equal(verify_with_crl(raw, chain, i ? fresh : t, ask, n, &e), ERR_UNAUTHORIZED);
		assert_contains(e.msg, "ASK certificate (serial 02) is revoked by the CRL of ARK-cocod-sim since");
	}
	snp_trust_free(fresh);
	/* PEM is accepted too */
	X509_CRL *x = d2i_X509_CRL(NULL, &(const unsigned char *){ask}, (long)n);
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509_CRL(b, x);
	char *pem;
	long pl = BIO_get_mem_data(b, &pem);
	assert_int_equal(verify_with_crl(raw, chain, t, (const uint8_t *)pem, (size_t)pl, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "is revoked");
	BIO_free(b);
	X509_CRL_free(x);
	OPENSSL_free(ask);
	uint8_t *vc = testchain_crl(tc.ask, tc.ask_key, 3, &n);
	assert_int_equal(verify_with_crl(raw, chain, t, vc, n, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "VCEK certificate (serial 03) is revoked by the CRL of SEV-cocod-sim");
	OPENSSL_free(vc);
	/* in the ARK's name but signed by another key: refused, not ignored */
	uint8_t *forged = testchain_crl(tc.ark, tc.ask_key, 99, &n);
	assert_int_equal(verify_with_crl(raw, chain, t, forged, n, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "a CRL in the name of ARK-cocod-sim does not verify");
	OPENSSL_free(forged);
	/* another product's ARK: not this chain's business */
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *milan = tc_issue("ARK-Milan", k, NULL, k, 2, 1);
	uint8_t *foreign = testchain_crl(milan, k, 2, &n);
	if (verify_with_crl(raw, chain, t, foreign, n, &e))
		fail_msg("%s", e.msg);
	OPENSSL_free(foreign);
	X509_free(milan);
	EVP_PKEY_free(k);
	struct snp_crls *c = snp_crls_new();
	assert_int_equal(snp_crls_add(c, (const uint8_t *)"garbage", 7, &e), ERR_INVALID);
	assert_int_equal(snp_crls_count(c), 0);
	snp_crls_free(c);
	json_decref(chain);
	free(vcek);
	snp_trust_free(t);
	simsp_free(sp);
	testchain_fini(&tc);
}

static char *tmp_file(const void *data, size_t len)
{
	char *path = xstrdup("/tmp/cocod-test-snp-in-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

/* `cocod evidence verify --data-dir` applies the ARK CRLs imported there,
 * as the KBS does: the same report is valid before and revoked after. */
static void cli_applies_the_stored_ark_crls(void **state)
{
	struct testchain tc;
	struct simsp *sp;
	struct err e = {0};
	testchain_make(&tc);
	if (simsp_load(tc.pem, tc.len, &sp, &e))
		fail_msg("%s", e.msg);
	uint8_t rd[64] = {2}, raw[SNP_REPORT_SIZE];
	assert_int_equal(simsp_report(sp, rd, NULL, NULL, 0x30000, raw, &e), 0);
	cleanup_free char *vcek = simsp_vcek_pem(sp), *roots = simsp_roots_pem(sp);
	cleanup_free char *ev = tmp_file(raw, sizeof raw), *cert = tmp_file(vcek, strlen(vcek)),
			  *rp = tmp_file(roots, strlen(roots));
	char dir[] = "/tmp/cocod-test-snp-dd-XXXXXX";
	assert_non_null(mkdtemp(dir));
	store *st = NULL;
	assert_int_equal(daemon_open_store(dir, &st, &e), 0);
	const char *args[] = {"--tee", "snp", "--evidence", ev, "--cert", cert, "--sim-roots", rp,
			      "--data-dir", dir, NULL};
	char *out = NULL;
	assert_int_equal(run_cli(&out, args), 0);
	free(out);
	size_t n;
	uint8_t *crl = testchain_crl(tc.ark, tc.ark_key, 2, &n);
	sqlite3_stmt *q;
	sqlite3_prepare_v2(store_db(st),
			   "INSERT INTO collateral (sha256, kind, lookup, not_before, not_after, "
			   "summary, source, imported, data) VALUES ('x', 'amd_crl', 'cocod-sim', 0, "
			   "0, '', 'test', '', ?1)",
			   -1, &q, NULL);
	sqlite3_bind_blob(q, 1, crl, (int)n, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	OPENSSL_free(crl);
	store_close(st);
	assert_int_equal(run_cli(&out, args), 1);
	assert_contains(out, "ASK certificate (serial 02) is revoked by the CRL of ARK-cocod-sim");
	free(out);
	unlink(ev);
	unlink(cert);
	unlink(rp);
	cleanup_free char *rm = xasprintf("rm -rf %s", dir);
	assert_int_equal(system(rm), 0);
	simsp_free(sp);
	testchain_fini(&tc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_vector_verifies_with_its_recorded_values),
	    cmocka_unit_test(parse_exposes_recorded_fields),
	    cmocka_unit_test(trustee_evidence_json_verifies_and_rebuilds_the_derived_report),
	    cmocka_unit_test(trustee_evidence_accepts_base64_certs_and_raw_report_form),
	    cmocka_unit_test(trustee_evidence_field_errors_name_the_field),
	    cmocka_unit_test(builtin_roots_carry_amds_published_fingerprints),
	    cmocka_unit_test(turin_vcek_extensions_and_chain),
	    cmocka_unit_test(fake_vceks_parse_both_hwid_encodings_but_fail_the_chain),
	    cmocka_unit_test(turin_tcb_layout_known_answer),
	    cmocka_unit_test(cpuid_selects_the_generation),
	    cmocka_unit_test(flipped_signature_byte_fails_the_signature),
	    cmocka_unit_test(flipped_measurement_byte_fails_the_signature),
	    cmocka_unit_test(vcek_of_another_report_fails_the_signature),
	    cmocka_unit_test(genoa_ark_for_a_milan_vcek_is_rejected),
	    cmocka_unit_test(genoa_ask_for_a_milan_vcek_is_rejected),
	    cmocka_unit_test(vcek_against_the_asvk_is_rejected),
	    cmocka_unit_test(reported_tcb_tamper_fails_the_binding_check),
	    cmocka_unit_test(chip_id_tamper_fails_the_binding_check),
	    cmocka_unit_test(expired_vlek_fails_after_2025_12_10),
	    cmocka_unit_test(vcek_not_yet_valid),
	    cmocka_unit_test(truncated_report_is_rejected),
	    cmocka_unit_test(wrong_versions_are_rejected),
	    cmocka_unit_test(signature_algo_other_than_1_is_rejected),
	    cmocka_unit_test(vlek_report_with_a_vcek_is_rejected),
	    cmocka_unit_test(cpuid_generation_must_match_the_vcek),
	    cmocka_unit_test(no_certificate_is_an_error),
	    cmocka_unit_test(report_data_and_host_data_checks),
	    cmocka_unit_test(cli_prints_claims_and_valid_verdict),
	    cmocka_unit_test(cli_invalid_evidence_exits_1_with_the_reason),
	    cmocka_unit_test(cli_json_output_for_trustee_evidence),
	    cmocka_unit_test(cli_azure_hcl_report_verifies_its_snp_report),
	    cmocka_unit_test(cli_usage_errors_and_tdx_dispatch),
	    cmocka_unit_test(rfc3339_times_parse),
	    cmocka_unit_test(cached_chain_still_checks_time_signature_and_binding),
	    cmocka_unit_test(crls_revoke_the_ask_or_the_vcek_with_a_clear_reason),
	    cmocka_unit_test(cli_applies_the_stored_ark_crls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
