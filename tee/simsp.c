/* simsp: the sim secure processor.  Generates an AMD-shaped certificate
 * chain (ARK-cocod-sim -> SEV-cocod-sim -> SEV-VCEK), serialises and loads
 * it, and issues SNP version 3 reports signed with the sim VCEK.  Report
 * layout: shared/reference/evidence-formats.md section 1; what marks sim
 * evidence as sim: simsp.h. */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "simsp.h"

#define SIM_ORG      "cocod sim (no TEE protection)"
#define SIM_PRODUCT  "Milan-B0"
#define SIM_BL       3
#define SIM_TEE      0
#define SIM_SNP      8
#define SIM_UCODE    115
#define SIM_FW_MAJOR 1
#define SIM_FW_MINOR 55
#define SIM_FW_BUILD 21

struct simsp {
	EVP_PKEY *key; /* VCEK private key */
	X509 *vcek, *ask, *ark;
	uint8_t chip_id[64];
	uint8_t tcb[8]; /* Milan layout */
};

void simsp_free(struct simsp *sp)
{
	if (!sp)
		return;
	EVP_PKEY_free(sp->key);
	X509_free(sp->vcek);
	X509_free(sp->ask);
	X509_free(sp->ark);
	OPENSSL_cleanse(sp, sizeof *sp);
	free(sp);
}

static void sim_tcb(uint8_t tcb[8])
{
	memset(tcb, 0, 8);
	tcb[0] = SIM_BL;
	tcb[1] = SIM_TEE;
	tcb[6] = SIM_SNP;
	tcb[7] = SIM_UCODE;
}

/* ---- certificate issuing ---- */

static X509_NAME *sim_name(const char *cn)
{
	X509_NAME *n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC, (const unsigned char *)"cocod", -1, -1,
	                           0);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)SIM_ORG, -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	return n;
}

static int sign_pss(X509 *c, EVP_PKEY *key)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = md && EVP_DigestSignInit(md, &pctx, EVP_sha384(), NULL, key) == 1 &&
	         EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
	         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) > 0 &&
	         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) > 0 && X509_sign_ctx(c, md) > 0;
	EVP_MD_CTX_free(md);
	return ok;
}

static void add_conf_ext(X509 *c, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : c, c, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ex)
		X509_add_ext(c, ex, -1);
	X509_EXTENSION_free(ex);
}

/* A certificate for `pub` named `cn`, signed by `signer` as `issuer` (NULL:
 * self-signed), valid from a day ago for `days`. */
static X509 *issue(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, long serial,
                   int ca, int days)
{
	X509 *c = X509_new();
	X509_NAME *subj = sim_name(cn);
	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	X509_set_subject_name(c, subj);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : subj);
	X509_NAME_free(subj);
	X509_gmtime_adj(X509_getm_notBefore(c), -86400);
	X509_time_adj_ex(X509_getm_notAfter(c), days, 0, NULL);
	X509_set_pubkey(c, pub);
	if (ca) {
		add_conf_ext(c, issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_conf_ext(c, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	}
	return c;
}

static void add_amd_ext(X509 *c, const char *sfx, const uint8_t *der, size_t n)
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

static void add_amd_int(X509 *c, const char *sfx, unsigned v)
{
	uint8_t der[4] = {0x02, 0x01, (uint8_t)v};
	if (v >= 0x80) { /* positive INTEGER needs a leading zero */
		der[1] = 2, der[2] = 0, der[3] = (uint8_t)v;
		add_amd_ext(c, sfx, der, 4);
		return;
	}
	add_amd_ext(c, sfx, der, 3);
}

/* AMD's VCEK extensions: structVersion, productName, the SPLs, hwID. */
static void add_vcek_exts(X509 *c, const uint8_t chip_id[64])
{
	uint8_t name[2 + sizeof SIM_PRODUCT] = {0x16, (uint8_t)(sizeof SIM_PRODUCT - 1)};
	memcpy(name + 2, SIM_PRODUCT, sizeof SIM_PRODUCT - 1);
	add_amd_int(c, "1", 0);
	add_amd_ext(c, "2", name, sizeof name - 1);
	add_amd_int(c, "3.1", SIM_BL);
	add_amd_int(c, "3.2", SIM_TEE);
	add_amd_int(c, "3.3", SIM_SNP);
	for (int i = 4; i <= 7; i++) {
		char sfx[8];
		snprintf(sfx, sizeof sfx, "3.%d", i);
		add_amd_int(c, sfx, 0);
	}
	add_amd_int(c, "3.8", SIM_UCODE);
	add_amd_ext(c, "4", chip_id, 64);
}

static int make_chain(struct simsp *sp, EVP_PKEY *ark_key, EVP_PKEY *ask_key)
{
	sp->ark = issue("ARK-cocod-sim", ark_key, NULL, ark_key, 1, 1, 25 * 365);
	if (!sign_pss(sp->ark, ark_key))
		return -1;
	sp->ask = issue("SEV-cocod-sim", ask_key, sp->ark, ark_key, 2, 1, 25 * 365);
	if (!sign_pss(sp->ask, ark_key))
		return -1;
	sp->vcek = issue("SEV-VCEK", sp->key, sp->ask, ask_key, 0, 0, 7 * 365);
	add_vcek_exts(sp->vcek, sp->chip_id);
	return sign_pss(sp->vcek, ask_key) ? 0 : -1;
}

int simsp_generate(struct simsp **out, struct err *e)
{
	struct simsp *sp = xcalloc(1, sizeof *sp);
	EVP_PKEY *ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	EVP_PKEY *ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	sp->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	memcpy(sp->chip_id, SIMSP_CHIP_ID_PREFIX, 8);
	int rc = -1;
	if (ark_key && ask_key && sp->key && RAND_bytes(sp->chip_id + 8, 56) == 1)
		rc = make_chain(sp, ark_key, ask_key);
	EVP_PKEY_free(ark_key);
	EVP_PKEY_free(ask_key);
	ERR_clear_error();
	if (rc) {
		simsp_free(sp);
		return err_set(e, ERR_CRYPTO, "generating the sim ARK/ASK/VCEK chain failed");
	}
	sim_tcb(sp->tcb);
	*out = sp;
	return 0;
}

/* ---- serialisation ---- */

static char *bio_text(BIO *bio, size_t *len)
{
	char *p;
	long n = BIO_get_mem_data(bio, &p);
	char *s = xmalloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	if (len)
		*len = (size_t)n;
	return s;
}

int simsp_save(const struct simsp *sp, char **pem, size_t *len, struct err *e)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	int ok = bio && PEM_write_bio_PrivateKey(bio, sp->key, NULL, NULL, 0, NULL, NULL) &&
	         PEM_write_bio_X509(bio, sp->vcek) && PEM_write_bio_X509(bio, sp->ask) &&
	         PEM_write_bio_X509(bio, sp->ark);
	if (ok)
		*pem = bio_text(bio, len);
	BIO_free(bio);
	ERR_clear_error();
	return ok ? 0 : err_set(e, ERR_CRYPTO, "serialising the sim chain failed");
}

void simsp_secret_free(char *pem, size_t len)
{
	if (!pem)
		return;
	OPENSSL_cleanse(pem, len);
	free(pem);
}

static char *certs_pem(X509 *a, X509 *b)
{
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(bio, a);
	if (b)
		PEM_write_bio_X509(bio, b);
	char *s = bio_text(bio, NULL);
	BIO_free(bio);
	return s;
}

char *simsp_vcek_pem(const struct simsp *sp)
{
	return certs_pem(sp->vcek, NULL);
}

char *simsp_roots_pem(const struct simsp *sp)
{
	return certs_pem(sp->ask, sp->ark);
}

int simsp_trust(const struct simsp *sp, struct snp_trust *t, struct err *e)
{
	cleanup_free char *pem = simsp_roots_pem(sp);
	return snp_trust_add(t, pem, strlen(pem), e);
}

/* Sorts the loaded certificates: EC = VCEK, self-issued = ARK, else ASK. */
static int load_certs(struct simsp *sp, BIO *bio, struct err *e)
{
	X509 *c;
	while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		X509 **slot = EVP_PKEY_get_base_id(X509_get0_pubkey(c)) == EVP_PKEY_EC ? &sp->vcek
		              : X509_check_issued(c, c) == X509_V_OK                   ? &sp->ark
		                                                                       : &sp->ask;
		X509_free(*slot);
		*slot = c;
	}
	ERR_clear_error();
	if (!sp->vcek || !sp->ask || !sp->ark)
		return err_set(e, ERR_INVALID,
		               "sim chain: needs the VCEK, ASK and ARK certificates");
	if (EVP_PKEY_eq(X509_get0_pubkey(sp->vcek), sp->key) != 1)
		return err_set(e, ERR_INVALID, "sim chain: the key does not match the VCEK");
	return 0;
}

/* Checks the loaded chain with the verifier itself and takes CHIP_ID and
 * the TCB from the VCEK's extensions. */
static int check_loaded(struct simsp *sp, struct err *e)
{
	unsigned char *der = NULL;
	int n = i2d_X509(sp->vcek, &der);
	struct snp_vek v;
	int rc = n > 0 ? snp_vek_parse(der, (size_t)n, &v, e)
	               : err_set(e, ERR_INVALID, "sim chain: bad VCEK");
	OPENSSL_free(der);
	if (rc)
		return err_wrap(e, "sim chain");
	if (v.hwid_len != 64 || memcmp(v.hwid, SIMSP_CHIP_ID_PREFIX, 8) != 0)
		return err_set(e, ERR_INVALID, "sim chain: the VCEK's hwID is not a sim CHIP_ID");
	memcpy(sp->chip_id, v.hwid, 64);
	memset(sp->tcb, 0, 8);
	sp->tcb[0] = v.tcb.bl, sp->tcb[1] = v.tcb.tee, sp->tcb[6] = v.tcb.snp;
	sp->tcb[7] = v.tcb.ucode;
	struct snp_trust *t = snp_trust_new();
	rc = simsp_trust(sp, t, e);
	snp_trust_free(t);
	return rc ? err_wrap(e, "sim chain") : 0;
}

int simsp_load(const char *pem, size_t len, struct simsp **out, struct err *e)
{
	struct simsp *sp = xcalloc(1, sizeof *sp);
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	sp->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	int rc = 0;
	if (!sp->key || EVP_PKEY_get_base_id(sp->key) != EVP_PKEY_EC)
		rc = err_set(e, ERR_INVALID, "sim chain: no EC private key first");
	if (rc == 0)
		rc = load_certs(sp, bio, e);
	BIO_free(bio);
	ERR_clear_error();
	if (rc == 0)
		rc = check_loaded(sp, e);
	if (rc) {
		simsp_free(sp);
		return rc;
	}
	*out = sp;
	return 0;
}

/* ---- reports ---- */

static void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int simsp_sign(const struct simsp *sp, uint8_t rep[SNP_REPORT_SIZE], struct err *e)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[160];
	size_t dlen = sizeof der;
	ECDSA_SIG *sig = NULL;
	int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, sp->key) == 1 &&
	         EVP_DigestSign(md, der, &dlen, rep, SNP_SIGNED_SIZE) == 1;
	const unsigned char *p = der;
	if (ok)
		sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	memset(rep + 0x2A0, 0, 144);
	ok = sig && BN_bn2lebinpad(ECDSA_SIG_get0_r(sig), rep + 0x2A0, 72) == 72 &&
	     BN_bn2lebinpad(ECDSA_SIG_get0_s(sig), rep + 0x2E8, 72) == 72;
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok ? 0 : err_set(e, ERR_CRYPTO, "signing the sim report failed");
}

/* REPORT_ID: a per-guest value; derived here so that equal inputs give
 * equal reports. */
static void report_id(const struct simsp *sp, const uint8_t *rep, uint8_t out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[64];
	unsigned int n = 0;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, "cocod-sim report_id", 19);
	EVP_DigestUpdate(md, sp->chip_id, 64);
	EVP_DigestUpdate(md, rep + 0x90, 48 + 32); /* measurement, host_data */
	EVP_DigestFinal_ex(md, d, &n);
	EVP_MD_CTX_free(md);
	memcpy(out, d, 32);
}

int simsp_report(const struct simsp *sp, const uint8_t report_data[64], const uint8_t host_data[32],
                 const uint8_t measurement[48], uint64_t policy, uint8_t rep[SNP_REPORT_SIZE],
                 struct err *e)
{
	memset(rep, 0, SNP_REPORT_SIZE);
	le32_put(rep, 3);
	policy |= SNP_POLICY_RESERVED_1;
	le32_put(rep + 0x08, (uint32_t)policy);
	le32_put(rep + 0x0C, (uint32_t)(policy >> 32));
	le32_put(rep + 0x34, 1); /* ECDSA P-384 SHA-384; VMPL 0 */
	memcpy(rep + 0x38, sp->tcb, 8);
	rep[0x40] = 0x21; /* platform: SMT enabled, alias check complete */
	memcpy(rep + 0x50, report_data, 64);
	if (measurement)
		memcpy(rep + 0x90, measurement, 48);
	if (host_data)
		memcpy(rep + 0xC0, host_data, 32);
	report_id(sp, rep, rep + 0x140);
	memset(rep + 0x160, 0xff, 32); /* no migration agent */
	memcpy(rep + 0x180, sp->tcb, 8);
	rep[0x188] = 0x19, rep[0x189] = 0x01, rep[0x18A] = 0x01;
	memcpy(rep + 0x1A0, sp->chip_id, 64);
	memcpy(rep + 0x1E0, sp->tcb, 8);
	rep[0x1E8] = SIM_FW_BUILD, rep[0x1E9] = SIM_FW_MINOR, rep[0x1EA] = SIM_FW_MAJOR;
	rep[0x1EC] = SIM_FW_BUILD, rep[0x1ED] = SIM_FW_MINOR, rep[0x1EE] = SIM_FW_MAJOR;
	memcpy(rep + 0x1F0, sp->tcb, 8);
	return simsp_sign(sp, rep, e);
}
