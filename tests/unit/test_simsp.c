/* Unit tests for simsp, the sim secure processor, verified through snp.
 *
 * Cases:
 *   chain_looks_like_amds                 RSA-4096 ARK/ASK with RSA-PSS, EC P-384
 *                                         VCEK with TCB/hwID extensions, sim names
 *   report_verifies_with_the_sim_trust_and_says_sim
 *   report_is_rejected_without_the_sim_trust
 *   report_is_rejected_with_another_sim_trust
 *   report_data_host_data_measurement_round_trip
 *   reports_are_deterministic_in_their_fields
 *   debug_policy_is_a_claim_not_a_failure
 *   save_and_load_round_trip
 *   load_rejects_a_key_that_does_not_match_the_vcek / load_rejects_garbage
 *   well_signed_tcb_tamper_fails_with_the_tcb_reason
 *   well_signed_chip_id_tamper_fails_with_the_hwid_reason
 *   well_signed_bad_signature_algo_and_version_fail
 *   cli_verifies_sim_evidence_only_with_sim_roots
 *
 * The RSA-4096 chain is generated once per binary (group setup): key
 * generation takes seconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "evidence.h"
#include "simsp.h"
#include "snp.h"
#include "util.h"

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

static struct simsp *sp, *other;
static struct snp_trust *trust;
static char *vcek_pem;

static int setup(void **state)
{
	struct err e = {0};
	if (simsp_generate(&sp, &e) || simsp_generate(&other, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	trust = snp_trust_new();
	if (simsp_trust(sp, trust, &e))
		return -1;
	vcek_pem = simsp_vcek_pem(sp);
	return 0;
}

static int teardown(void **state)
{
	simsp_free(sp);
	simsp_free(other);
	snp_trust_free(trust);
	free(vcek_pem);
	return 0;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	if (!json_is_string(v))
		fail_msg("claim %s.%s is not a string", a, b ? b : "");
	return json_string_value(v);
}

static void make_report(uint8_t rep[SNP_REPORT_SIZE], uint8_t fill, uint64_t policy)
{
	uint8_t rd[64], hd[32], m[48];
	struct err e = {0};
	memset(rd, fill, sizeof rd);
	memset(hd, fill ^ 0x11, sizeof hd);
	memset(m, fill ^ 0x22, sizeof m);
	assert_int_equal(simsp_report(sp, rd, hd, m, policy, rep, &e), 0);
}

static int verify(const uint8_t *rep, const struct snp_trust *t, json_t **claims, struct err *e)
{
	return snp_verify(rep, SNP_REPORT_SIZE, (const uint8_t *)vcek_pem, strlen(vcek_pem), t,
	                  time(NULL), claims, e);
}

static void chain_looks_like_amds(void **state)
{
	cleanup_free char *roots = simsp_roots_pem(sp);
	BIO *bio = BIO_new_mem_buf(roots, -1);
	X509 *ask = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	X509 *ark = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(ask);
	assert_non_null(ark);
	char cn[64];
	X509_NAME_get_text_by_NID(X509_get_subject_name(ark), NID_commonName, cn, sizeof cn);
	assert_string_equal(cn, "ARK-cocod-sim");
	X509_NAME_get_text_by_NID(X509_get_subject_name(ask), NID_commonName, cn, sizeof cn);
	assert_string_equal(cn, "SEV-cocod-sim");
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(ark)), 4096);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(ask)), 4096);
	assert_int_equal(X509_get_signature_nid(ark), NID_rsassaPss);
	assert_int_equal(X509_get_signature_nid(ask), NID_rsassaPss);
	assert_int_equal(X509_verify(ask, X509_get0_pubkey(ark)), 1);
	X509_free(ask);
	X509_free(ark);

	struct snp_vek v;
	struct err e = {0};
	assert_int_equal(snp_vek_parse((const uint8_t *)vcek_pem, strlen(vcek_pem), &v, &e), 0);
	assert_int_equal(v.kind, SNP_KEY_VCEK);
	assert_string_equal(v.product, "Milan-B0");
	assert_string_equal(v.issuer, "SEV-cocod-sim");
	assert_int_equal(v.tcb.bl, 3);
	assert_int_equal(v.tcb.snp, 8);
	assert_int_equal(v.tcb.ucode, 115);
	assert_int_equal(v.hwid_len, 64);
	assert_memory_equal(v.hwid, SIMSP_CHIP_ID_PREFIX, 8);
	assert_int_equal(
	    snp_vek_verify((const uint8_t *)vcek_pem, strlen(vcek_pem), trust, time(NULL), &v, &e),
	    0);
}

static void report_verifies_with_the_sim_trust_and_says_sim(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	json_t *c = NULL;
	struct err e = {0};
	make_report(rep, 0xab, 0);
	if (verify(rep, trust, &c, &e))
		fail_msg("%s", e.msg);
	assert_true(json_is_true(json_object_get(c, "sim")));
	assert_string_equal(jstr(c, "endorsement", "root"), "ARK-cocod-sim");
	assert_int_equal(json_integer_value(json_object_get(c, "version")), 3);
	assert_string_equal(jstr(c, "generation", NULL), "Milan");
	assert_true(strncmp(jstr(c, "chip_id", NULL), "636f636f6473696d", 16) == 0);
	assert_string_equal(jstr(c, "policy", "raw"), "0x20000");
	json_decref(c);
}

static void report_is_rejected_without_the_sim_trust(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	json_t *c = NULL;
	struct err e = {0};
	make_report(rep, 1, 0);
	assert_int_not_equal(verify(rep, NULL, &c, &e), 0);
	assert_null(c);
	assert_string_equal(e.msg, "VCEK issued by SEV-cocod-sim: sim evidence, and the sim root "
	                           "is not trusted here");
}

static void report_is_rejected_with_another_sim_trust(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	struct err e = {0};
	struct snp_trust *t = snp_trust_new();
	assert_int_equal(simsp_trust(other, t, &e), 0);
	make_report(rep, 2, 0);
	/* Same names, different keys: the ASK signature check catches it. */
	assert_int_not_equal(verify(rep, t, NULL, &e), 0);
	assert_string_equal(e.msg, "VCEK not signed by ASK SEV-cocod-sim");
	snp_trust_free(t);
}

static void report_data_host_data_measurement_round_trip(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE], rd[64], hd[32], m[48];
	struct snp_report r;
	struct err e = {0};
	for (int i = 0; i < 64; i++)
		rd[i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < 32; i++)
		hd[i] = (uint8_t)(0xf0 ^ i);
	for (int i = 0; i < 48; i++)
		m[i] = (uint8_t)(i + 100);
	assert_int_equal(simsp_report(sp, rd, hd, m, SNP_POLICY_SMT, rep, &e), 0);
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	assert_memory_equal(r.report_data, rd, 64);
	assert_memory_equal(r.host_data, hd, 32);
	assert_memory_equal(r.measurement, m, 48);
	assert_int_equal(snp_check_report_data(&r, rd, 64, &e), 0);
	assert_int_equal(snp_check_host_data(&r, hd, 32, &e), 0);
	assert_int_equal(r.policy, SNP_POLICY_SMT | SNP_POLICY_RESERVED_1);
	assert_int_equal(r.vmpl, 0);
	assert_int_equal(r.sig_algo, 1);
	assert_int_equal(verify(rep, trust, NULL, &e), 0);

	/* NULL host_data and measurement mean zeros. */
	assert_int_equal(simsp_report(sp, rd, NULL, NULL, 0, rep, &e), 0);
	assert_int_equal(snp_parse(rep, sizeof rep, &r, &e), 0);
	uint8_t zero[48] = {0};
	assert_memory_equal(r.host_data, zero, 32);
	assert_memory_equal(r.measurement, zero, 48);
}

static void reports_are_deterministic_in_their_fields(void **state)
{
	uint8_t a[SNP_REPORT_SIZE], b[SNP_REPORT_SIZE], c[SNP_REPORT_SIZE];
	struct err e = {0};
	make_report(a, 0x42, SNP_POLICY_SMT);
	make_report(b, 0x42, SNP_POLICY_SMT);
	make_report(c, 0x43, SNP_POLICY_SMT);
	assert_memory_equal(a, b, SNP_SIGNED_SIZE);
	assert_memory_not_equal(a + 0x140, c + 0x140, 32); /* REPORT_ID follows the inputs */
	assert_int_equal(verify(a, trust, NULL, &e), 0);
	assert_int_equal(verify(b, trust, NULL, &e), 0);
}

static void debug_policy_is_a_claim_not_a_failure(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	json_t *c = NULL;
	struct err e = {0};
	make_report(rep, 3, SNP_POLICY_DEBUG | SNP_POLICY_MIGRATE_MA);
	assert_int_equal(verify(rep, trust, &c, &e), 0);
	json_t *pol = json_object_get(c, "policy");
	assert_true(json_is_true(json_object_get(pol, "debug")));
	assert_true(json_is_true(json_object_get(pol, "migrate_ma")));
	assert_true(json_is_false(json_object_get(pol, "single_socket")));
	json_decref(c);
}

static void save_and_load_round_trip(void **state)
{
	char *pem = NULL;
	size_t len = 0;
	struct simsp *back = NULL;
	struct err e = {0};
	assert_int_equal(simsp_save(sp, &pem, &len, &e), 0);
	assert_non_null(strstr(pem, "PRIVATE KEY"));
	if (simsp_load(pem, len, &back, &e))
		fail_msg("%s", e.msg);
	simsp_secret_free(pem, len);

	uint8_t rd[64] = {9}, rep[SNP_REPORT_SIZE], orig[SNP_REPORT_SIZE];
	assert_int_equal(simsp_report(back, rd, NULL, NULL, 0, rep, &e), 0);
	assert_int_equal(simsp_report(sp, rd, NULL, NULL, 0, orig, &e), 0);
	assert_memory_equal(rep, orig, SNP_SIGNED_SIZE); /* same chip, TCB, fields */
	assert_int_equal(verify(rep, trust, NULL, &e), 0);
	cleanup_free char *v2 = simsp_vcek_pem(back);
	assert_string_equal(v2, vcek_pem);
	simsp_free(back);
}

static void load_rejects_a_key_that_does_not_match_the_vcek(void **state)
{
	char *mine = NULL, *theirs = NULL;
	size_t ml, tl;
	struct simsp *back = NULL;
	struct err e = {0};
	assert_int_equal(simsp_save(sp, &mine, &ml, &e), 0);
	assert_int_equal(simsp_save(other, &theirs, &tl, &e), 0);
	/* other's key followed by sp's certificates */
	const char *key_end = "-----END PRIVATE KEY-----\n";
	char *k = strstr(theirs, key_end), *certs = strstr(mine, key_end);
	assert_non_null(k);
	assert_non_null(certs);
	struct buf b;
	buf_init(&b);
	buf_add(&b, theirs, (size_t)(k - theirs) + strlen(key_end));
	buf_adds(&b, certs + strlen(key_end));
	assert_int_not_equal(simsp_load(b.data, b.len, &back, &e), 0);
	assert_null(back);
	assert_string_equal(e.msg, "sim chain: the key does not match the VCEK");
	OPENSSL_cleanse(b.data, b.len);
	buf_fini(&b);
	simsp_secret_free(mine, ml);
	simsp_secret_free(theirs, tl);
}

static void load_rejects_garbage(void **state)
{
	struct simsp *back = NULL;
	struct err e = {0};
	assert_int_not_equal(simsp_load("nope", 4, &back, &e), 0);
	assert_null(back);
	assert_contains(e.msg, "no EC private key");
	char *pem;
	size_t len;
	assert_int_equal(simsp_save(sp, &pem, &len, &e), 0);
	char *ask = strstr(pem, "-----END CERTIFICATE-----");
	assert_non_null(ask);
	ask[strlen("-----END CERTIFICATE-----\n")] = '\0'; /* key + VCEK only */
	assert_int_not_equal(simsp_load(pem, strlen(pem), &back, &e), 0);
	assert_contains(e.msg, "needs the VCEK, ASK and ARK");
	simsp_secret_free(pem, len);
}

static void resign_and_expect(uint8_t *rep, const char *want)
{
	struct err e = {0};
	assert_int_equal(simsp_sign(sp, rep, &e), 0);
	assert_int_not_equal(verify(rep, trust, NULL, &e), 0);
	assert_contains(e.msg, want);
}

static void well_signed_tcb_tamper_fails_with_the_tcb_reason(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	make_report(rep, 4, 0);
	rep[0x180] = 4; /* REPORTED_TCB bl */
	resign_and_expect(rep, "REPORTED_TCB bl=4 does not match VCEK extension bl=3");
	make_report(rep, 4, 0);
	rep[0x186] = 9; /* REPORTED_TCB snp */
	resign_and_expect(rep, "REPORTED_TCB snp=9 does not match VCEK extension snp=8");
	make_report(rep, 4, 0);
	rep[0x38] = 9; /* CURRENT_TCB is not what the VCEK certifies: still valid */
	struct err e = {0};
	assert_int_equal(simsp_sign(sp, rep, &e), 0);
	assert_int_equal(verify(rep, trust, NULL, &e), 0);
}

static void well_signed_chip_id_tamper_fails_with_the_hwid_reason(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	make_report(rep, 5, 0);
	rep[0x1A0] = 'C';
	resign_and_expect(rep, "CHIP_ID 436f636f6473696d");
	make_report(rep, 5, 0);
	rep[0x48] = 1 << 2; /* KEY_INFO: VLEK */
	resign_and_expect(rep, "KEY_INFO says the report is signed by a VLEK but a VCEK was given");
}

static void well_signed_bad_signature_algo_and_version_fail(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	make_report(rep, 6, 0);
	rep[0x34] = 2;
	resign_and_expect(rep, "signature_algo 2 is not 1");
	make_report(rep, 6, 0);
	rep[0] = 6;
	resign_and_expect(rep, "unsupported SNP report version 6");
	make_report(rep, 6, 0);
	rep[0x188] = 0x1a, rep[0x189] = 0x02; /* claims Turin, VCEK is Milan */
	resign_and_expect(rep, "is Turin but the VCEK is for Milan-B0");
}

static char *write_tmp(const void *data, size_t len)
{
	char *path = xstrdup("/tmp/cocod-test-simsp-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static int run_cli(const char *ev, const char *cert, const char *roots, char **out)
{
	char *argv[16];
	int argc = 0;
	const char *fixed[] = {"evidence", "verify", "--tee", "snp",   "--evidence",
	                       ev,         "--cert", cert,    "--json"};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		argv[argc++] = xstrdup(fixed[i]);
	if (roots) {
		argv[argc++] = xstrdup("--sim-roots");
		argv[argc++] = xstrdup(roots);
	}
	argv[argc] = NULL;
	char path[] = "/tmp/cocod-test-simsp-out-XXXXXX";
	int fd = mkstemp(path);
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
	struct err e = {0};
	size_t len;
	assert_int_equal(file_read(path, 1 << 20, out, &len, &e), 0);
	unlink(path);
	return rc;
}

static void cli_verifies_sim_evidence_only_with_sim_roots(void **state)
{
	uint8_t rep[SNP_REPORT_SIZE];
	make_report(rep, 7, 0);
	cleanup_free char *roots = simsp_roots_pem(sp);
	cleanup_free char *ev = write_tmp(rep, sizeof rep);
	cleanup_free char *cert = write_tmp(vcek_pem, strlen(vcek_pem));
	cleanup_free char *rp = write_tmp(roots, strlen(roots));
	cleanup_free char *ok = NULL, *bad = NULL;
	assert_int_equal(run_cli(ev, cert, rp, &ok), 0);
	json_t *doc = json_loads(ok, 0, NULL);
	assert_non_null(doc);
	assert_true(json_is_true(json_object_get(json_object_get(doc, "claims"), "sim")));
	json_decref(doc);
	assert_int_equal(run_cli(ev, cert, NULL, &bad), 1);
	assert_contains(bad, "sim root is not trusted here");
	unlink(ev);
	unlink(cert);
	unlink(rp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(chain_looks_like_amds),
	    cmocka_unit_test(report_verifies_with_the_sim_trust_and_says_sim),
	    cmocka_unit_test(report_is_rejected_without_the_sim_trust),
	    cmocka_unit_test(report_is_rejected_with_another_sim_trust),
	    cmocka_unit_test(report_data_host_data_measurement_round_trip),
	    cmocka_unit_test(reports_are_deterministic_in_their_fields),
	    cmocka_unit_test(debug_policy_is_a_claim_not_a_failure),
	    cmocka_unit_test(save_and_load_round_trip),
	    cmocka_unit_test(load_rejects_a_key_that_does_not_match_the_vcek),
	    cmocka_unit_test(load_rejects_garbage),
	    cmocka_unit_test(well_signed_tcb_tamper_fails_with_the_tcb_reason),
	    cmocka_unit_test(well_signed_chip_id_tamper_fails_with_the_hwid_reason),
	    cmocka_unit_test(well_signed_bad_signature_algo_and_version_fail),
	    cmocka_unit_test(cli_verifies_sim_evidence_only_with_sim_roots),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
