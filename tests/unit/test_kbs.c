/* Unit tests for the KBS modules: jcs, jwe, ear, seal, initdata and the
 * protocol core of kbs (sessions, nonces, bindings) without HTTP.
 *
 * Cases:
 *   jcs_rfc8785_number_vectors           RFC 8785 Appendix B (IEEE-754 -> text,
 *                                        expected values re-checked with Node)
 *   jcs_rfc8785_main_example             §3.2.2 input -> canonical output
 *   jcs_rfc8785_utf16_key_order          §3.2.3 sorting example
 *   jcs_sha384_vector                    the AS unit test digest (reference §1)
 *   jwe_round_trips_each_alg             P-256, P-521 ECDH-ES+A256KW, RSA-OAEP-256,
 *                                        RSA1_5 (when enabled): jwe_decrypt opens
 *                                        each; libjose also opens the EC ones
 *   jwe_header_order_and_tamper          alg, enc, sorted rest; tag/AAD tamper fails
 *   jwe_rejects_bad_keys                 off-curve point, P-384, short RSA, RSA1_5
 *                                        by default, private members, wrong sizes
 *   ear_sign_verify_expiry_foreign_key   valid, expired, another key, tampered
 *   ear_key_persists_sealed              load-or-create returns the same key
 *   seal_round_trip_and_tamper           wrong name, flipped byte, other key
 *   seal_master_key_file_rules           created 0600, refused when 0644
 *   initdata_parses_the_subset           TOML strings of all four forms, digest
 *   kbs_session_and_nonce_rules          version, tee, single-use nonce, foreign
 *                                        nonce, expiry, report_data binding, full
 *                                        attest + resource with sim evidence
 *   kbs_attest_start_answers_from_the_thread_pool
 *                                        with a real uv loop: the answer comes
 *                                        later (never inline), a second attest
 *                                        on the busy session is refused, eight
 *                                        at once all succeed, a client gone
 *                                        mid-verification gets no token and
 *                                        leaves the session unattested (audit:
 *                                        abandoned), kbs_free with one in flight
 *                                        answers it 503 and frees afterwards
 *   kbs_applies_an_imported_ark_crl      an amd_crl row in the collateral table
 *                                        revoking the (test) ASK fails attest
 *                                        with the revocation reason */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <jose/jose.h>
#include <jose/openssl.h>
#include <openssl/evp.h>

#include "b64.h"
#include "ear.h"
#include "initdata.h"
#include "jcs.h"
#include "jwe.h"
#include "kbs.h"
#include "kbsdb.h"
#include "policy.h"
#include "seal.h"
#include "simsp.h"
#include "store.h"
#include "testchain.h"
#include "util.h"

#define assert_contains(hay, needle)                                                               \
	do {                                                                                       \
		if (!strstr((hay), (needle)))                                                      \
			fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));               \
	} while (0)

static void jcs_rfc8785_number_vectors(void **state)
{
	static const struct {
		uint64_t bits;
		const char *text;
	} v[] = {
		{0x0000000000000000, "0"}, {0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"}, {0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"},
		{0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"}, {0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"}, {0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"},
		{0x444b1ae4d6e2ef4f, "999999999999999900000"}, {0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"}, {0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"}, {0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"}, {0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		double d;
		char out[40];
		memcpy(&d, &v[i].bits, sizeof d);
		assert_int_equal(jcs_number(d, out, sizeof out), 0);
		assert_string_equal(out, v[i].text);
	}
	uint64_t nan = 0x7fffffffffffffff;
	double d;
	char out[40];
	memcpy(&d, &nan, sizeof d);
	assert_int_equal(jcs_number(d, out, sizeof out), -1);
}

static char *canon(const char *json)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
	assert_non_null(v);
	char *out;
	struct err e = {0};
	assert_int_equal(jcs_serialize(v, &out, NULL, &e), 0);
	json_decref(v);
	return out;
}

static void jcs_rfc8785_main_example(void **state)
{
	char *c = canon("{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n"
			"  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n"
			"  \"literals\": [null, true, false]\n}");
	assert_string_equal(c, "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
			       "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
	free(c);
}

static void jcs_rfc8785_utf16_key_order(void **state)
{
	char *c = canon("{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\","
			"\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\","
			"\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}");
	const char *order[] = {"Carriage Return", "One", "Control", "Latin Small", "Euro Sign", "Emoji", "Hebrew"};
	const char *prev = c;
	for (size_t i = 0; i < 7; i++) {
		const char *p = strstr(c, order[i]);
		assert_non_null(p);
		assert_true(p > prev);
		prev = p;
	}
	free(c);
}

static void jcs_sha384_vector(void **state)
{
	char *c = canon("{\"b\":1,\"a\":\"test\",\"c\":{\"d\":\"e\"}}");
	unsigned char d[48];
	char hex[97];
	EVP_Digest(c, strlen(c), d, NULL, EVP_sha384(), NULL);
	hex_encode(d, sizeof d, hex);
	assert_string_equal(hex, "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"
				 "4597480a186427c813ca941da78870c3");
	free(c);
}

static EVP_PKEY *keygen(const char *kind)
{
	EVP_PKEY *pk = strcmp(kind, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
						: EVP_PKEY_Q_keygen(NULL, NULL, "EC", kind);
	assert_non_null(pk);
	return pk;
}

static json_t *encrypt_to(EVP_PKEY *pk, const char *alg, int allow15, const char *msg)
{
	json_t *jwk = jwe_jwk_public(pk, alg), *out = NULL;
	jwe_key *k = NULL;
	struct err e = {0};
	if (jwe_key_from_jwk(jwk, allow15, &k, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(jwe_encrypt(k, msg, strlen(msg), &out, &e), 0);
	jwe_key_free(k);
	json_decref(jwk);
	return out;
}

static void jwe_round_trips_each_alg(void **state)
{
	static const struct {
		const char *kind, *alg;
		int libjose;
	} c[] = {{"P-256", "ECDH-ES+A256KW", 1}, {"P-521", "ECDH-ES+A256KW", 1},
		 {"RSA", "RSA-OAEP-256", 0}, {"RSA", "RSA1_5", 0}};
	/* libjose 11 cannot import an OpenSSL 3 RSA private key from EVP_PKEY here;
	 * RSA envelopes are cross-checked by the Node client instead. */
	const char *msg = "the resource bytes \x01\x02";
	for (size_t i = 0; i < 4; i++) {
		EVP_PKEY *pk = keygen(c[i].kind);
		json_t *jwe = encrypt_to(pk, c[i].alg, 1, msg);
		uint8_t *pt;
		size_t len;
		struct err e = {0};
		if (jwe_decrypt(pk, jwe, &pt, &len, &e))
			fail_msg("%s: %s", c[i].alg, e.msg);
		assert_int_equal(len, strlen(msg));
		assert_memory_equal(pt, msg, len);
		free(pt);
		if (c[i].libjose) { /* an independent implementation agrees */
			json_t *jwk = jose_openssl_jwk_from_EVP_PKEY(NULL, pk);
			json_object_set_new(jwk, "alg", json_string(c[i].alg));
			size_t n = 0;
			char *p = jose_jwe_dec(NULL, jwe, NULL, jwk, &n);
			if (!p)
				fail_msg("libjose cannot decrypt %s", c[i].alg);
			assert_int_equal(n, strlen(msg));
			assert_memory_equal(p, msg, n);
			free(p);
			json_decref(jwk);
		}
		json_decref(jwe);
		EVP_PKEY_free(pk);
	}
}

static void jwe_header_order_and_tamper(void **state)
{
	EVP_PKEY *pk = keygen("P-256");
	json_t *jwe = encrypt_to(pk, NULL, 0, "secret");
	uint8_t *h;
	size_t hl;
	assert_int_equal(b64url_decode(json_string_value(json_object_get(jwe, "protected")), (size_t)-1, &h, &hl), 0);
	assert_true(strncmp((char *)h, "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":", 75) == 0);
	free(h);
	json_t *hdr = json_pack("{s:s, s:s, s:s, s:{s:i, s:i}}", "zz", "1", "enc", "A256GCM", "alg", "X", "b", "y", 1, "a", 2);
	char *s = jwe_header_serialize(hdr);
	assert_string_equal(s, "{\"alg\":\"X\",\"enc\":\"A256GCM\",\"b\":{\"a\":2,\"y\":1},\"zz\":\"1\"}");
	free(s);
	json_decref(hdr);
	const char *fields[] = {"tag", "ciphertext", "protected", "encrypted_key"};
	for (size_t i = 0; i < 4; i++) {
		json_t *t = json_deep_copy(jwe);
		char *v = xstrdup(json_string_value(json_object_get(t, fields[i])));
		v[strlen(v) / 2] = v[strlen(v) / 2] == 'A' ? 'B' : 'A';
		json_object_set_new(t, fields[i], json_string(v));
		uint8_t *pt = NULL;
		size_t len;
		struct err e = {0};
		assert_int_not_equal(jwe_decrypt(pk, t, &pt, &len, &e), 0);
		assert_null(pt);
		free(v);
		json_decref(t);
	}
	json_decref(jwe);
	EVP_PKEY_free(pk);
}

static void expect_bad_jwk(const char *json, const char *why)
{
	json_t *j = json_loads(json, 0, NULL);
	jwe_key *k = NULL;
	struct err e = {0};
	assert_non_null(j);
	assert_int_equal(jwe_key_from_jwk(j, 0, &k, &e), ERR_BAD_REQUEST);
	assert_contains(e.msg, why);
	json_decref(j);
}

static void jwe_rejects_bad_keys(void **state)
{
	EVP_PKEY *pk = keygen("P-256");
	json_t *jwk = jwe_jwk_public(pk, NULL);
	json_t *off = json_deep_copy(jwk);
	json_object_set(off, "y", json_object_get(jwk, "x")); /* (x, x) is almost surely off the curve */
	char *s = json_dumps(off, 0);
	expect_bad_jwk(s, "not on curve");
	free(s);
	json_object_set_new(off, "d", json_string("AAAA"));
	s = json_dumps(off, 0);
	expect_bad_jwk(s, "private member d");
	free(s);
	json_decref(off);
	json_decref(jwk);
	EVP_PKEY_free(pk);
	pk = keygen("P-384");
	jwk = jwe_jwk_public(pk, NULL);
	s = json_dumps(jwk, 0);
	expect_bad_jwk(s, "not P-256 or P-521");
	free(s);
	json_decref(jwk);
	EVP_PKEY_free(pk);
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	jwk = jwe_jwk_public(pk, NULL);
	s = json_dumps(jwk, 0);
	expect_bad_jwk(s, "1024 bits");
	free(s);
	json_decref(jwk);
	EVP_PKEY_free(pk);
	pk = keygen("RSA");
	jwk = jwe_jwk_public(pk, "RSA1_5");
	s = json_dumps(jwk, 0);
	expect_bad_jwk(s, "refused");
	free(s);
	json_decref(jwk);
	EVP_PKEY_free(pk);
	expect_bad_jwk("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}", "x has 3 bytes");
	expect_bad_jwk("{\"kty\":\"oct\",\"k\":\"AAAA\"}", "private member k");
	expect_bad_jwk("{\"kty\":\"OKP\"}", "kty OKP");
	expect_bad_jwk("{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"A256KW\"}", "alg A256KW");
}

static json_t *ann_with_key(void)
{
	return json_pack("{s:{s:{s:s, s:s, s:s, s:s}}}", "runtime_data_claims", "tee-pubkey", "kty", "EC",
			 "crv", "P-256", "x", "AA", "y", "BB");
}

static void ear_sign_verify_expiry_foreign_key(void **state)
{
	ear *x, *other;
	struct err e = {0};
	assert_int_equal(ear_new(NULL, &x, &e), 0);
	assert_int_equal(ear_new(NULL, &other, &e), 0);
	json_t *tv = json_pack("{s:i}", "hardware", 32), *ann = ann_with_key(), *claims = NULL;
	struct ear_result r = {"warning", tv, "default_cpu", ann, 1};
	char *jwt;
	time_t now = 1800000000;
	assert_int_equal(ear_issue(x, &r, now, &jwt, NULL, &e), 0);
	assert_int_equal(ear_verify(x, jwt, now + 299, &claims, &e), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(claims, "submods"), "cpu0"), "ear.status")), "warning");
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")), now + 300);
	assert_true(json_is_true(json_object_get(claims, "sim")));
	assert_string_equal(json_string_value(json_object_get(ear_tee_pubkey(claims), "x")), "AA");
	json_decref(claims);
	assert_int_equal(ear_verify(x, jwt, now + 300, NULL, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "expired");
	assert_int_equal(ear_verify(other, jwt, now, NULL, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "signature");
	char *t = xstrdup(jwt), *dot = strchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A'; /* payload byte */
	assert_int_equal(ear_verify(x, t, now, NULL, &e), ERR_UNAUTHORIZED);
	assert_int_equal(ear_verify(x, "a.b", now, NULL, &e), ERR_UNAUTHORIZED);
	ear_set_lifetime(x, 10);
	free(jwt);
	assert_int_equal(ear_issue(x, &r, now, &jwt, NULL, &e), 0);
	assert_int_equal(ear_verify(x, jwt, now + 11, NULL, &e), ERR_UNAUTHORIZED);
	json_t *jwks = ear_jwks(x);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(jwks, "keys"), 0), "alg")), "ES256");
	json_decref(jwks);
	free(t), free(jwt);
	json_decref(tv), json_decref(ann);
	ear_free(x), ear_free(other);
}

static store *temp_store(char *dir)
{
	strcpy(dir, "/tmp/test_kbs.XXXXXX");
	assert_non_null(mkdtemp(dir));
	cleanup_free char *path = xasprintf("%s/cocod.db", dir);
	store *st;
	struct err e = {0};
	if (store_open(path, &st, &e))
		fail_msg("%s", e.msg);
	return st;
}

static void rm_dir(const char *dir)
{
	cleanup_free char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void ear_key_persists_sealed(void **state)
{
	char dir[64];
	store *st = temp_store(dir);
	uint8_t key[32] = {1, 2, 3};
	seal *s = seal_new_key(key);
	ear *a, *b;
	struct err e = {0};
	assert_int_equal(ear_load_or_create(s, st, &a, &e), 0);
	assert_int_equal(ear_load_or_create(s, st, &b, &e), 0);
	json_t *ja = ear_jwks(a), *jb = ear_jwks(b);
	assert_true(json_equal(ja, jb));
	uint8_t *blob;
	size_t n;
	assert_int_equal(seal_store_get(s, st, EAR_KEY_NAME, &blob, &n, &e), 0);
	assert_non_null(strstr((char *)blob, "PRIVATE KEY"));
	seal_wipe_free(blob, n);
	key[0] = 9;
	seal *wrong = seal_new_key(key);
	ear *c = NULL;
	assert_int_equal(ear_load_or_create(wrong, st, &c, &e), ERR_CRYPTO);
	json_decref(ja), json_decref(jb);
	ear_free(a), ear_free(b);
	seal_free(s), seal_free(wrong);
	store_close(st);
	rm_dir(dir);
}

static void seal_round_trip_and_tamper(void **state)
{
	uint8_t key[32] = {7}, *blob, *pt;
	size_t n, len;
	struct err e = {0};
	seal *s = seal_new_key(key);
	assert_int_equal(seal_seal(s, "resource:a", "hello", 5, &blob, &n, &e), 0);
	assert_int_equal(n, 5 + SEAL_OVERHEAD);
	assert_null(memmem(blob, n, "hello", 5));
	assert_int_equal(seal_open_blob(s, "resource:a", blob, n, &pt, &len, &e), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(pt, "hello", 5);
	seal_wipe_free(pt, len);
	assert_int_equal(seal_open_blob(s, "resource:b", blob, n, &pt, &len, &e), ERR_CRYPTO);
	for (size_t i = 1; i < n; i += 7) {
		blob[i] ^= 0x40;
		assert_int_equal(seal_open_blob(s, "resource:a", blob, n, &pt, &len, &e), ERR_CRYPTO);
		blob[i] ^= 0x40;
	}
	key[0] = 8;
	seal *other = seal_new_key(key);
	assert_int_equal(seal_open_blob(other, "resource:a", blob, n, &pt, &len, &e), ERR_CRYPTO);
	assert_int_equal(seal_open_blob(s, "resource:a", blob, 10, &pt, &len, &e), ERR_CRYPTO);
	free(blob);
	seal_free(s), seal_free(other);
}

static void seal_master_key_file_rules(void **state)
{
	char dir[] = "/tmp/test_seal.XXXXXX";
	assert_non_null(mkdtemp(dir));
	cleanup_free char *path = xasprintf("%s/master.key", dir);
	seal *s = NULL, *again = NULL;
	struct err e = {0};
	assert_int_equal(seal_open(path, &s, &e), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	uint8_t *blob, *pt;
	size_t n, len;
	assert_int_equal(seal_seal(s, "x", "v", 1, &blob, &n, &e), 0);
	assert_int_equal(seal_open(path, &again, &e), 0); /* the same key is reloaded */
	assert_int_equal(seal_open_blob(again, "x", blob, n, &pt, &len, &e), 0);
	seal_wipe_free(pt, len);
	free(blob);
	seal_free(again);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(seal_open(path, &again, &e), ERR_CONFIG);
	assert_contains(e.msg, "other users");
	seal_free(s);
	rm_dir(dir);
}

static void initdata_parses_the_subset(void **state)
{
	const char *t = "# init-data\nversion = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\n"
			"\"aa.toml\" = '''\n[token_configs]\nx = 1\n'''\n"
			"'cdh.toml' = \"\"\"\nline \\\n   joined\"\"\"\n"
			"plain = 'C:\\path'\nesc = \"tab\\tu\\u00e9\" # comment\n";
	struct initdata d;
	struct err e = {0};
	if (initdata_parse(t, strlen(t), &d, &e))
		fail_msg("%s", e.msg);
	assert_string_equal(d.algorithm, "sha384");
	assert_int_equal(d.digest_len, 48);
	unsigned char want[48];
	EVP_Digest(t, strlen(t), want, NULL, EVP_sha384(), NULL);
	assert_memory_equal(d.digest, want, 48);
	assert_string_equal(json_string_value(json_object_get(d.data, "aa.toml")), "[token_configs]\nx = 1\n");
	assert_string_equal(json_string_value(json_object_get(d.data, "cdh.toml")), "line joined");
	assert_string_equal(json_string_value(json_object_get(d.data, "plain")), "C:\\path");
	assert_string_equal(json_string_value(json_object_get(d.data, "esc")), "tab\tu\xc3\xa9");
	initdata_fini(&d);
	const char *bad[] = {"version = \"0.1.0\"\nalgorithm = \"md5\"\n", "version = 1\n",
			     "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[other]\n",
			     "version = \"0.1.0\"\nversion = \"0.1.0\"\n", "x = \"unterminated\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(initdata_parse(bad[i], strlen(bad[i]), &d, &e), ERR_BAD_REQUEST);
}

static json_t *sim_evidence(struct simsp *sp, const uint8_t *rd, size_t rdlen)
{
	uint8_t r64[64] = {0}, raw[SNP_REPORT_SIZE];
	struct err e = {0};
	memcpy(r64, rd, rdlen);
	assert_int_equal(simsp_report(sp, r64, NULL, NULL, 0x30000, raw, &e), 0);
	char *b = b64_encode(raw, sizeof raw), *vcek = simsp_vcek_pem(sp);
	json_t *ev = json_pack("{s:s, s:[{s:s, s:s}]}", "attestation_report", b, "cert_chain", "cert_type", "VCEK", "data", vcek);
	free(b), free(vcek);
	return ev;
}

static json_t *attest_req(const char *nonce, json_t *jwk, json_t *ev)
{
	return json_pack("{s:n, s:{s:s, s:O}, s:{s:o, s:s}}", "init-data", "runtime-data", "nonce", nonce,
			 "tee-pubkey", jwk, "tee-evidence", "primary_evidence", ev, "additional_evidence", "");
}

static void kbs_session_and_nonce_rules(void **state)
{
	char dir[64];
	store *st = temp_store(dir);
	struct sandbox_limits lim;
	sandbox_default_limits(&lim);
	policy *pol;
	struct kbs *k;
	struct err e = {0};
	struct kbs_opts o = {.sim = 1, .dev_mode = 1};
	if (policy_new(st, NULL, &lim, &pol, &e) || kbs_new(st, pol, NULL, dir, &o, &k, &e))
		fail_msg("%s", e.msg);
	cleanup_free char *mk = xasprintf("%s/master.key", dir);
	seal *s;
	struct simsp *sp;
	assert_int_equal(seal_open(mk, &s, &e), 0);
	assert_int_equal(kbs_sim_load(s, st, 0, &sp, &e), 0);
	const char *variant;
	char sid[33], sid2[33];
	json_t *ch, *req = json_pack("{s:s, s:s, s:{}}", "version", "0.3.0", "tee", "snp", "extra-params");
	time_t now = time(NULL);
	assert_int_equal(kbs_auth(k, req, now, sid, &ch, &variant, &e), ERR_UNAUTHORIZED);
	assert_string_equal(variant, "ProtocolVersion");
	json_object_set_new(req, "version", json_string("0.4.0"));
	json_object_set_new(req, "tee", json_string("sgx"));
	assert_int_equal(kbs_auth(k, req, now, sid, &ch, &variant, &e), ERR_UNAUTHORIZED);
	json_object_set_new(req, "tee", json_string("snp"));
	assert_int_equal(kbs_auth(k, req, now, sid, &ch, &variant, &e), 0);
	char *nonce = xstrdup(json_string_value(json_object_get(ch, "nonce")));
	json_decref(ch);
	assert_int_equal(strlen(nonce), 44);
	assert_int_equal(kbs_auth(k, req, now, sid2, &ch, &variant, &e), 0);
	assert_string_not_equal(json_string_value(json_object_get(ch, "nonce")), nonce);

	EVP_PKEY *pk = keygen("P-256");
	json_t *jwk = jwe_jwk_public(pk, "ECDH-ES+A256KW");
	uint8_t rd[64];
	size_t rdlen;
	assert_int_equal(kbs_runtime_digest(nonce, jwk, "", 0, rd, &rdlen, &e), 0);
	assert_int_equal(rdlen, 48);
	/* The digest is SHA-384 over the JCS bytes, computed independently here. */
	json_t *crd = json_pack("{s:O, s:s, s:s}", "tee-pubkey", jwk, "nonce", nonce, "additional-evidence", "");
	char *text = json_dumps(crd, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned char want[48];
	EVP_Digest(text, strlen(text), want, NULL, EVP_sha384(), NULL);
	assert_memory_equal(rd, want, 48);
	free(text);
	json_decref(crd);

	char *token = NULL;
	/* the other session's nonce: refused, and this session's nonce is spent */
	json_t *bad = attest_req(json_string_value(json_object_get(ch, "nonce")), jwk, sim_evidence(sp, rd, 48));
	json_decref(ch);
	assert_int_equal(kbs_attest(k, sid, bad, now, &token, &variant, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "nonce");
	json_t *good = attest_req(nonce, jwk, sim_evidence(sp, rd, 48));
	assert_int_equal(kbs_attest(k, sid, good, now, &token, &variant, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "already used");
	/* a fresh session with evidence bound to another nonce */
	assert_int_equal(kbs_auth(k, req, now, sid, &ch, &variant, &e), 0);
	json_t *wrong = attest_req(json_string_value(json_object_get(ch, "nonce")), jwk, sim_evidence(sp, rd, 48));
	assert_int_equal(kbs_attest(k, sid, wrong, now, &token, &variant, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "REPORT_DATA");
	json_decref(ch);
	/* expiry */
	assert_int_equal(kbs_auth(k, req, now, sid, &ch, &variant, &e), 0);
	json_decref(ch);
	assert_int_equal(kbs_attest(k, sid, good, now + 301, &token, &variant, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "expired");
	/* the successful path: auth, attest, resource */
	assert_int_equal(kbs_auth(k, req, now, sid, &ch, &variant, &e), 0);
	free(nonce);
	nonce = xstrdup(json_string_value(json_object_get(ch, "nonce")));
	json_decref(ch);
	assert_int_equal(kbs_runtime_digest(nonce, jwk, "", 0, rd, &rdlen, &e), 0);
	json_t *ok = attest_req(nonce, jwk, sim_evidence(sp, rd, 48));
	if (kbs_attest(k, sid, ok, now, &token, &variant, &e))
		fail_msg("%s", e.msg);
	json_t *jwe = NULL;
	assert_int_equal(kbs_resource(k, sid, NULL, "default/key/app", now, &jwe, &variant, &e), ERR_UNAUTHORIZED);
	assert_string_equal(variant, "PluginInternalError");
	assert_int_equal(kbsdb_resource_put(st, s, "default/key/app", "s3cret", 6, &e), 0);
	assert_int_equal(kbs_resource(k, NULL, token, "default/key/app", now, &jwe, &variant, &e), 0);
	uint8_t *pt;
	size_t len;
	assert_int_equal(jwe_decrypt(pk, jwe, &pt, &len, &e), 0);
	assert_memory_equal(pt, "s3cret", 6);
	free(pt);
	json_decref(jwe);
	assert_int_equal(kbs_resource(k, NULL, NULL, "default/key/app", now, &jwe, &variant, &e), ERR_UNAUTHORIZED);
	assert_string_equal(variant, "TokenNotFound");
	assert_int_equal(kbs_resource(k, NULL, token, "default/../app", now, &jwe, &variant, &e), ERR_NOT_FOUND);
	assert_int_equal(kbs_resource(k, NULL, token, "default/key/app", now + 301, &jwe, &variant, &e), ERR_UNAUTHORIZED);
	assert_string_equal(variant, "TokenVerifierError");
	free(token), free(nonce);
	json_decref(bad), json_decref(good), json_decref(wrong), json_decref(ok);
	json_decref(req), json_decref(jwk);
	EVP_PKEY_free(pk);
	simsp_free(sp);
	seal_free(s);
	kbs_free(k);
	policy_free(pol);
	store_close(st);
	rm_dir(dir);
}

/* A KBS on a fresh store whose sim chain is a testchain (fast: no
 * RSA-4096), attesting on `loop`'s pool (NULL: inline). */
struct bed {
	char dir[64];
	store *st;
	policy *pol;
	struct kbs *k;
	seal *s;
	struct simsp *sp;
	struct testchain tc;
	EVP_PKEY *pk;
	json_t *jwk;
};

static void bed_up(struct bed *b, uv_loop_t *loop)
{
	struct sandbox_limits lim;
	struct err e = {0};
	struct kbs_opts o = {.sim = 1, .dev_mode = 1, .loop = loop};
	b->st = temp_store(b->dir);
	sandbox_default_limits(&lim);
	testchain_make(&b->tc);
	cleanup_free char *mk = xasprintf("%s/master.key", b->dir);
	if (seal_open(mk, &b->s, &e) || seal_store_put(b->s, b->st, "sim-chain", b->tc.pem, b->tc.len, &e) ||
	    simsp_load(b->tc.pem, b->tc.len, &b->sp, &e) || policy_new(b->st, NULL, &lim, &b->pol, &e) ||
	    kbs_new(b->st, b->pol, NULL, b->dir, &o, &b->k, &e) ||
	    kbsdb_resource_put(b->st, b->s, "default/key/app", "s3cret", 6, &e))
		fail_msg("%s", e.msg);
	b->pk = keygen("P-256");
	b->jwk = jwe_jwk_public(b->pk, "ECDH-ES+A256KW");
}

static void bed_down(struct bed *b, int free_kbs)
{
	if (free_kbs)
		kbs_free(b->k);
	policy_free(b->pol);
	store_close(b->st);
	seal_free(b->s);
	simsp_free(b->sp);
	testchain_fini(&b->tc);
	json_decref(b->jwk);
	EVP_PKEY_free(b->pk);
	rm_dir(b->dir);
}

/* auth, then an attest request with sim evidence bound to its nonce. */
static json_t *bed_session(struct bed *b, char sid[33])
{
	const char *variant;
	struct err e = {0};
	json_t *ch, *areq = json_pack("{s:s, s:s, s:{}}", "version", "0.4.0", "tee", "snp", "extra-params");
	uint8_t rd[64];
	size_t rdlen;
	assert_int_equal(kbs_auth(b->k, areq, time(NULL), sid, &ch, &variant, &e), 0);
	const char *nonce = json_string_value(json_object_get(ch, "nonce"));
	assert_int_equal(kbs_runtime_digest(nonce, b->jwk, "", 0, rd, &rdlen, &e), 0);
	json_t *req = attest_req(nonce, b->jwk, sim_evidence(b->sp, rd, rdlen));
	json_decref(ch);
	json_decref(areq);
	return req;
}

struct answer {
	int calls, rc, gone;
	char *token;
	char msg[256];
};

static void on_answer(void *arg, int rc, char *token, const char *variant, const struct err *e)
{
	struct answer *a = arg;
	a->calls++;
	a->rc = rc;
	a->token = token;
	snprintf(a->msg, sizeof a->msg, "%s", rc ? e->msg : "");
}

static int answer_gone(void *arg)
{
	return ((struct answer *)arg)->gone;
}

static int audit_count(store *st, const char *like)
{
	sqlite3_stmt *q;
	int n = -1;
	sqlite3_prepare_v2(store_db(st), "SELECT count(*) FROM audit WHERE action = 'attest' AND detail LIKE ?1",
			   -1, &q, NULL);
	sqlite3_bind_text(q, 1, like, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return n;
}

static void kbs_attest_start_answers_from_the_thread_pool(void **state)
{
	uv_loop_t loop;
	struct bed b;
	struct err e = {0};
	const char *variant;
	char sid[33], sids[8][33];
	uv_loop_init(&loop);
	bed_up(&b, &loop);
	time_t now = time(NULL);
	struct answer a = {0}, dup = {0}, many[8] = {{0}}, gone = {.gone = 1}, late = {0};
	struct kbs_attest_cb cb = {answer_gone, on_answer, &a};
	json_t *req = bed_session(&b, sid);
	assert_int_equal(kbs_attest_start(b.k, sid, req, now, &cb, &variant, &e), 0);
	assert_int_equal(a.calls, 0); /* on the pool, not inline */
	cb.arg = &dup;
	assert_int_equal(kbs_attest_start(b.k, sid, req, now, &cb, &variant, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "already in progress");
	assert_int_equal(dup.calls, 0);
	json_t *jwe = NULL;
	assert_int_equal(kbs_resource(b.k, sid, NULL, "default/key/app", now, &jwe, &variant, &e), ERR_UNAUTHORIZED);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(a.calls, 1);
	if (a.rc)
		fail_msg("%s", a.msg);
	assert_non_null(a.token);
	assert_int_equal(kbs_resource(b.k, sid, NULL, "default/key/app", now, &jwe, &variant, &e), 0);
	json_decref(jwe);
	free(a.token);
	json_decref(req);

	/* eight at once, on several pool threads sharing the trust's cache */
	json_t *reqs[8];
	for (int i = 0; i < 8; i++) {
		reqs[i] = bed_session(&b, sids[i]);
		struct kbs_attest_cb c = {answer_gone, on_answer, &many[i]};
		assert_int_equal(kbs_attest_start(b.k, sids[i], reqs[i], now, &c, &variant, &e), 0);
	}
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(many[i].calls, 1);
		if (many[i].rc)
			fail_msg("%d: %s", i, many[i].msg);
		free(many[i].token);
		json_decref(reqs[i]);
	}

	/* the client leaves while its evidence is verified */
	req = bed_session(&b, sid);
	cb.arg = &gone;
	assert_int_equal(kbs_attest_start(b.k, sid, req, now, &cb, &variant, &e), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(gone.calls, 1);
	assert_int_equal(gone.rc, ERR_UNAVAILABLE);
	assert_null(gone.token);
	assert_contains(gone.msg, "went away");
	assert_int_equal(kbs_resource(b.k, sid, NULL, "default/key/app", now, &jwe, &variant, &e), ERR_UNAUTHORIZED);
	assert_string_equal(variant, "TokenNotFound");
	assert_int_equal(audit_count(b.st, "verdict=abandoned%"), 1);
	assert_int_equal(audit_count(b.st, "verdict=issued%"), 9);
	json_decref(req);

	/* freed with one in flight: answered 503 without the store, then freed */
	req = bed_session(&b, sid);
	cb.arg = &late;
	assert_int_equal(kbs_attest_start(b.k, sid, req, now, &cb, &variant, &e), 0);
	kbs_free(b.k);
	assert_int_equal(late.calls, 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(late.calls, 1);
	assert_int_equal(late.rc, ERR_UNAVAILABLE);
	assert_contains(late.msg, "shutting down");
	json_decref(req);
	bed_down(&b, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void kbs_applies_an_imported_ark_crl(void **state)
{
	struct bed b;
	struct err e = {0};
	const char *variant;
	char sid[33], *token = NULL;
	bed_up(&b, NULL);
	json_t *req = bed_session(&b, sid);
	if (kbs_attest(b.k, sid, req, time(NULL), &token, &variant, &e)) /* the chain is good */
		fail_msg("%s", e.msg);
	free(token);
	json_decref(req);
	size_t n;
	uint8_t *crl = testchain_crl(b.tc.ark, b.tc.ark_key, 2, &n);
	sqlite3_stmt *q;
	sqlite3_prepare_v2(store_db(b.st), "INSERT INTO collateral (sha256, kind, lookup, not_before, not_after, "
			   "summary, source, imported, data) VALUES ('x', 'amd_crl', 'cocod-sim', 0, 0, '', 'test', '', ?1)",
			   -1, &q, NULL);
	sqlite3_bind_blob(q, 1, crl, (int)n, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	OPENSSL_free(crl);
	req = bed_session(&b, sid);
	assert_int_equal(kbs_attest(b.k, sid, req, time(NULL), &token, &variant, &e), ERR_UNAUTHORIZED);
	assert_contains(e.msg, "SNP evidence: ASK certificate (serial 02) is revoked by the CRL of ARK-cocod-sim");
	json_decref(req);
	bed_down(&b, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jcs_rfc8785_number_vectors),
		cmocka_unit_test(jcs_rfc8785_main_example),
		cmocka_unit_test(jcs_rfc8785_utf16_key_order),
		cmocka_unit_test(jcs_sha384_vector),
		cmocka_unit_test(jwe_round_trips_each_alg),
		cmocka_unit_test(jwe_header_order_and_tamper),
		cmocka_unit_test(jwe_rejects_bad_keys),
		cmocka_unit_test(ear_sign_verify_expiry_foreign_key),
		cmocka_unit_test(ear_key_persists_sealed),
		cmocka_unit_test(seal_round_trip_and_tamper),
		cmocka_unit_test(seal_master_key_file_rules),
		cmocka_unit_test(initdata_parses_the_subset),
		cmocka_unit_test(kbs_session_and_nonce_rules),
		cmocka_unit_test(kbs_attest_start_answers_from_the_thread_pool),
		cmocka_unit_test(kbs_applies_an_imported_ark_crl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
