/* testchain: for unit tests, a sim-shaped ARK -> ASK -> VCEK chain whose
 * ARK and ASK keys the test keeps (simsp throws its own away), and CRLs
 * signed with them.  Serials: ARK 1, ASK 2, VCEK 3.  RSA-2048 instead of
 * AMD's 4096 keeps it fast; the verifier does not care.  The chain loads
 * with simsp_load(t.pem, t.len), which then issues reports signed by the
 * VCEK.  Header-only: included by test_snp.c and test_kbs.c. */
#ifndef COCOD_TESTCHAIN_H
#define COCOD_TESTCHAIN_H

#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "simsp.h"

struct testchain {
	EVP_PKEY *ark_key, *ask_key, *vcek_key;
	X509 *ark, *ask, *vcek;
	char *pem; /* simsp_load input: VCEK key, VCEK, ASK, ARK */
	size_t len;
};

static X509 *tc_issue(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, long serial,
                      int ca)
{
	X509 *c = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
	                           (const unsigned char *)"cocod sim (no TEE protection)", -1, -1,
	                           0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_set_subject_name(c, n);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
	X509_NAME_free(n);
	X509_gmtime_adj(X509_getm_notBefore(c), -86400);
	X509_time_adj_ex(X509_getm_notAfter(c), 365, 0, NULL);
	X509_set_pubkey(c, pub);
	if (ca) {
		X509V3_CTX ctx;
		X509V3_set_ctx(&ctx, issuer ? issuer : c, c, NULL, NULL, 0);
		X509_EXTENSION *ex =
		    X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(c, ex, -1);
		X509_EXTENSION_free(ex);
	}
	return c;
}

static void tc_amd_ext(X509 *c, const char *sfx, const uint8_t *der, size_t n)
{
	char oid[64];
	snprintf(oid, sizeof oid, "1.3.6.1.4.1.3704.1.%s", sfx);
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(os, der, (int)n);
	X509_EXTENSION *ex = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
	X509_add_ext(c, ex, -1);
	X509_EXTENSION_free(ex);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
}

/* AMD's VCEK extensions as the sim writes them (Milan-B0, bl=3 tee=0
 * snp=8 ucode=115, a "cocodsim" CHIP_ID). */
static void tc_vcek_exts(X509 *c)
{
	static const char *const spl[] = {"3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8"};
	static const uint8_t val[] = {3, 0, 8, 0, 0, 0, 0, 115};
	uint8_t ver[] = {0x02, 0x01, 0}, name[] = {0x16, 8, 'M', 'i', 'l', 'a', 'n', '-', 'B', '0'};
	uint8_t chip[64] = "cocodsim-testchain";
	tc_amd_ext(c, "1", ver, sizeof ver);
	tc_amd_ext(c, "2", name, sizeof name);
	for (int i = 0; i < 8; i++) {
		uint8_t der[] = {0x02, 0x01, val[i]};
		tc_amd_ext(c, spl[i], der, sizeof der);
	}
	tc_amd_ext(c, "4", chip, sizeof chip);
}

static void testchain_make(struct testchain *t)
{
	memset(t, 0, sizeof *t);
	t->ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	t->ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	t->vcek_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	t->ark = tc_issue("ARK-cocod-sim", t->ark_key, NULL, t->ark_key, 1, 1);
	X509_sign(t->ark, t->ark_key, EVP_sha384());
	t->ask = tc_issue("SEV-cocod-sim", t->ask_key, t->ark, t->ark_key, 2, 1);
	X509_sign(t->ask, t->ark_key, EVP_sha384());
	t->vcek = tc_issue("SEV-VCEK", t->vcek_key, t->ask, t->ask_key, 3, 0);
	tc_vcek_exts(t->vcek);
	X509_sign(t->vcek, t->ask_key, EVP_sha384());
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, t->vcek_key, NULL, NULL, 0, NULL, NULL);
	PEM_write_bio_X509(b, t->vcek);
	PEM_write_bio_X509(b, t->ask);
	PEM_write_bio_X509(b, t->ark);
	char *p;
	long n = BIO_get_mem_data(b, &p);
	t->pem = malloc((size_t)n + 1);
	memcpy(t->pem, p, (size_t)n);
	t->pem[n] = 0;
	t->len = (size_t)n;
	BIO_free(b);
}

static void testchain_fini(struct testchain *t)
{
	EVP_PKEY_free(t->ark_key), EVP_PKEY_free(t->ask_key), EVP_PKEY_free(t->vcek_key);
	X509_free(t->ark), X509_free(t->ask), X509_free(t->vcek);
	free(t->pem);
}

/* A DER CRL in the name of `issuer`, signed with `key`, revoking `serial`
 * since an hour ago; the caller frees it with OPENSSL_free. */
static uint8_t *testchain_crl(X509 *issuer, EVP_PKEY *key, long serial, size_t *len)
{
	X509_CRL *crl = X509_CRL_new();
	time_t now = time(NULL);
	ASN1_TIME *t = ASN1_TIME_adj(NULL, now, -1, 0);
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
	X509_CRL_set1_lastUpdate(crl, t);
	ASN1_TIME_adj(t, now, 30, 0);
	X509_CRL_set1_nextUpdate(crl, t);
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *s = ASN1_INTEGER_new();
	ASN1_INTEGER_set(s, serial);
	X509_REVOKED_set_serialNumber(r, s);
	ASN1_TIME_adj(t, now, 0, -3600);
	X509_REVOKED_set_revocationDate(r, t);
	X509_CRL_add0_revoked(crl, r);
	X509_CRL_sort(crl);
	X509_CRL_sign(crl, key, EVP_sha384());
	uint8_t *der = NULL;
	int n = i2d_X509_CRL(crl, &der);
	*len = n > 0 ? (size_t)n : 0;
	ASN1_INTEGER_free(s);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return der;
}

#endif
