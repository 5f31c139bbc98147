/* snp: parses AMD SEV-SNP attestation reports and verifies them offline:
 * the report's ECDSA P-384 signature with the VCEK or VLEK, the chain
 * VCEK -> ASK -> ARK (VLEK -> ASVK -> ARK) to AMD's pinned roots (or a sim
 * root from `struct snp_trust`), each certificate's validity at the
 * caller's time, and the VCEK's TCB and hwID extensions against the
 * report.  Offsets, layouts and rules: shared/reference/evidence-formats.md
 * section 1.  Trustee's JSON evidence is rebuilt into the raw report and
 * verified the same way. */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "snp.h"
#include "snp_roots.h"

#define AMD_OID_PREFIX "1.3.6.1.4.1.3704.1."
#define MAX_TRUST      8
#define VEK_CACHE      64

/* ---- little helpers ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void hex_short(const uint8_t *p, size_t n, char out[33])
{
	hex_encode(p, n < 16 ? n : 16, out);
}

static void x509_cn(X509_NAME *name, char *out, size_t n)
{
	out[0] = '\0';
	if (X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)n) < 0)
		snprintf(out, n, "(no CN)");
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return (time_t)-1;
	return timegm(&tm);
}

static void fmt_time(time_t t, char out[32])
{
	struct tm tm;
	if (t == (time_t)-1 || !gmtime_r(&t, &tm))
		snprintf(out, 32, "(unknown)");
	else
		strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- generations and TCB ---- */

const char *snp_gen_name(enum snp_gen gen)
{
	switch (gen) {
	case SNP_GEN_MILAN:
		return "Milan";
	case SNP_GEN_GENOA:
		return "Genoa";
	case SNP_GEN_TURIN:
		return "Turin";
	default:
		return "unknown";
	}
}

static enum snp_gen gen_from_cpuid(uint8_t fam, uint8_t mod)
{
	if (fam == 0x19 && mod <= 0x0f)
		return SNP_GEN_MILAN;
	if (fam == 0x19 && ((mod >= 0x10 && mod <= 0x1f) || (mod >= 0xa0 && mod <= 0xaf)))
		return SNP_GEN_GENOA;
	if (fam == 0x1a && mod <= 0x11)
		return SNP_GEN_TURIN;
	return SNP_GEN_UNKNOWN;
}

static enum snp_gen gen_from_product(const char *product)
{
	if (strncasecmp(product, "Milan", 5) == 0)
		return SNP_GEN_MILAN;
	if (strncasecmp(product, "Genoa", 5) == 0)
		return SNP_GEN_GENOA;
	if (strncasecmp(product, "Turin", 5) == 0)
		return SNP_GEN_TURIN;
	return SNP_GEN_UNKNOWN;
}

void snp_tcb_decode(const uint8_t in[8], enum snp_gen gen, struct snp_tcb *out)
{
	uint8_t raw[8];
	memcpy(raw, in, 8); /* `in` may be out->raw */
	memset(out, 0, sizeof *out);
	memcpy(out->raw, raw, 8);
	if (gen == SNP_GEN_TURIN) {
		out->has_fmc = 1;
		out->fmc = raw[0];
		out->bl = raw[1];
		out->tee = raw[2];
		out->snp = raw[3];
	} else {
		out->bl = raw[0];
		out->tee = raw[1];
		out->snp = raw[6];
	}
	out->ucode = raw[7];
}

static void decode_tcbs(struct snp_report *r, enum snp_gen gen, const char *src)
{
	r->gen = gen;
	r->gen_src = src;
	snp_tcb_decode(r->current_tcb.raw, gen, &r->current_tcb);
	snp_tcb_decode(r->reported_tcb.raw, gen, &r->reported_tcb);
	snp_tcb_decode(r->committed_tcb.raw, gen, &r->committed_tcb);
	snp_tcb_decode(r->launch_tcb.raw, gen, &r->launch_tcb);
}

/* v3+ reports name their CPU; v2 ones do not, and virtee's heuristic
 * applies: a Turin CHIP_ID uses only its first 8 bytes. */
static void guess_gen(struct snp_report *r)
{
	enum snp_gen g = SNP_GEN_UNKNOWN;
	if (r->version >= 3)
		g = gen_from_cpuid(r->cpuid_fam, r->cpuid_mod);
	if (g != SNP_GEN_UNKNOWN) {
		decode_tcbs(r, g, "cpuid");
		return;
	}
	if (!all_zero(r->chip_id, 8) && all_zero(r->chip_id + 8, 56)) {
		decode_tcbs(r, SNP_GEN_TURIN, "chip_id");
		return;
	}
	decode_tcbs(r, SNP_GEN_UNKNOWN, "default");
}

/* ---- parsing ---- */

static int check_size_version(const uint8_t *buf, size_t len, struct err *e)
{
	if (!buf || len < SNP_REPORT_SIZE)
		return err_set(e, ERR_INVALID, "SNP report truncated: %zu bytes, expected %d",
		               buf ? len : 0, SNP_REPORT_SIZE);
	if (len > SNP_REPORT_SIZE)
		return err_set(e, ERR_INVALID, "SNP report has %zu bytes, expected %d", len,
		               SNP_REPORT_SIZE);
	uint32_t v = le32(buf);
	if (v < 2 || v > 5)
		return err_set(e, ERR_INVALID,
		               "unsupported SNP report version %u (expected 2 to 5)", v);
	return 0;
}

int snp_parse(const uint8_t *b, size_t len, struct snp_report *r, struct err *e)
{
	int rc = check_size_version(b, len, e);
	if (rc)
		return rc;
	memset(r, 0, sizeof *r);
	r->version = le32(b);
	r->guest_svn = le32(b + 0x04);
	r->policy = le64(b + 0x08);
	memcpy(r->family_id, b + 0x10, 16);
	memcpy(r->image_id, b + 0x20, 16);
	r->vmpl = le32(b + 0x30);
	r->sig_algo = le32(b + 0x34);
	memcpy(r->current_tcb.raw, b + 0x38, 8);
	r->platform_info = le64(b + 0x40);
	r->key_info = le32(b + 0x48);
	memcpy(r->report_data, b + 0x50, 64);
	memcpy(r->measurement, b + 0x90, 48);
	memcpy(r->host_data, b + 0xC0, 32);
	memcpy(r->id_key_digest, b + 0xE0, 48);
	memcpy(r->author_key_digest, b + 0x110, 48);
	memcpy(r->report_id, b + 0x140, 32);
	memcpy(r->report_id_ma, b + 0x160, 32);
	memcpy(r->reported_tcb.raw, b + 0x180, 8);
	if (r->version >= 3) {
		r->cpuid_fam = b[0x188];
		r->cpuid_mod = b[0x189];
		r->cpuid_step = b[0x18A];
	}
	memcpy(r->chip_id, b + 0x1A0, 64);
	memcpy(r->committed_tcb.raw, b + 0x1E0, 8);
	r->current_build = b[0x1E8];
	r->current_minor = b[0x1E9];
	r->current_major = b[0x1EA];
	r->committed_build = b[0x1EC];
	r->committed_minor = b[0x1ED];
	r->committed_major = b[0x1EE];
	memcpy(r->launch_tcb.raw, b + 0x1F0, 8);
	if (r->version >= 5) {
		r->launch_mit_vector = le64(b + 0x1F8);
		r->current_mit_vector = le64(b + 0x200);
	}
	memcpy(r->sig_r, b + 0x2A0, 72);
	memcpy(r->sig_s, b + 0x2E8, 72);
	guess_gen(r);
	return 0;
}

int snp_host_data(const uint8_t *report, size_t len, uint8_t out[32], struct err *e)
{
	int rc = check_size_version(report, len, e);
	if (rc)
		return rc;
	memcpy(out, report + 0xC0, 32);
	return 0;
}

/* ---- claims ---- */

static void jset_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
	char s[2 * 72 + 1];
	hex_encode(p, n, s);
	json_object_set_new(o, key, json_string(s));
}

static void jset_x64(json_t *o, const char *key, uint64_t v)
{
	char s[24];
	snprintf(s, sizeof s, "0x%llx", (unsigned long long)v);
	json_object_set_new(o, key, json_string(s));
}

static void jset_bit(json_t *o, const char *key, uint64_t v, int bit)
{
	json_object_set_new(o, key, json_boolean((v >> bit) & 1));
}

static json_t *tcb_claims(const struct snp_tcb *t)
{
	json_t *o = json_object();
	jset_hex(o, "raw", t->raw, 8);
	if (t->has_fmc)
		json_object_set_new(o, "fmc", json_integer(t->fmc));
	json_object_set_new(o, "bootloader", json_integer(t->bl));
	json_object_set_new(o, "tee", json_integer(t->tee));
	json_object_set_new(o, "snp", json_integer(t->snp));
	json_object_set_new(o, "microcode", json_integer(t->ucode));
	return o;
}

static json_t *policy_claims(uint64_t p)
{
	json_t *o = json_object();
	jset_x64(o, "raw", p);
	json_object_set_new(o, "abi_major", json_integer((p >> 8) & 0xff));
	json_object_set_new(o, "abi_minor", json_integer(p & 0xff));
	jset_bit(o, "smt", p, 16);
	jset_bit(o, "reserved_1", p, 17);
	jset_bit(o, "migrate_ma", p, 18);
	jset_bit(o, "debug", p, 19);
	jset_bit(o, "single_socket", p, 20);
	jset_bit(o, "cxl_allow", p, 21);
	jset_bit(o, "mem_aes_256_xts", p, 22);
	jset_bit(o, "rapl_dis", p, 23);
	jset_bit(o, "ciphertext_hiding", p, 24);
	jset_bit(o, "page_swap_disable", p, 25);
	return o;
}

static json_t *platform_claims(uint64_t p)
{
	json_t *o = json_object();
	jset_x64(o, "raw", p);
	jset_bit(o, "smt_enabled", p, 0);
	jset_bit(o, "tsme_enabled", p, 1);
	jset_bit(o, "ecc_enabled", p, 2);
	jset_bit(o, "rapl_disabled", p, 3);
	jset_bit(o, "ciphertext_hiding_enabled", p, 4);
	jset_bit(o, "alias_check_complete", p, 5);
	jset_bit(o, "sev_tio_enabled", p, 7);
	return o;
}

static const char *signing_key_name(uint32_t key_info)
{
	switch ((key_info >> 2) & 7) {
	case SNP_KEY_VCEK:
		return "vcek";
	case SNP_KEY_VLEK:
		return "vlek";
	case SNP_KEY_NONE:
		return "none";
	default:
		return "reserved";
	}
}

static json_t *key_info_claims(uint32_t k)
{
	json_t *o = json_object();
	jset_x64(o, "raw", k);
	jset_bit(o, "author_key_en", k, 0);
	jset_bit(o, "mask_chip_key", k, 1);
	json_object_set_new(o, "signing_key", json_string(signing_key_name(k)));
	return o;
}

static json_t *fw_version(uint8_t major, uint8_t minor, uint8_t build)
{
	char s[16];
	snprintf(s, sizeof s, "%u.%u.%u", major, minor, build);
	return json_string(s);
}

static void digests_claims(json_t *o, const struct snp_report *r)
{
	jset_hex(o, "family_id", r->family_id, 16);
	jset_hex(o, "image_id", r->image_id, 16);
	jset_hex(o, "report_data", r->report_data, 64);
	jset_hex(o, "measurement", r->measurement, 48);
	jset_hex(o, "host_data", r->host_data, 32);
	jset_hex(o, "id_key_digest", r->id_key_digest, 48);
	jset_hex(o, "author_key_digest", r->author_key_digest, 48);
	jset_hex(o, "report_id", r->report_id, 32);
	jset_hex(o, "report_id_ma", r->report_id_ma, 32);
	jset_hex(o, "chip_id", r->chip_id, 64);
}

json_t *snp_claims(const struct snp_report *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(r->version));
	json_object_set_new(o, "generation", json_string(snp_gen_name(r->gen)));
	json_object_set_new(o, "guest_svn", json_integer(r->guest_svn));
	json_object_set_new(o, "policy", policy_claims(r->policy));
	json_object_set_new(o, "vmpl", json_integer(r->vmpl));
	json_object_set_new(o, "signature_algo", json_integer(r->sig_algo));
	json_object_set_new(o, "current_tcb", tcb_claims(&r->current_tcb));
	json_object_set_new(o, "reported_tcb", tcb_claims(&r->reported_tcb));
	json_object_set_new(o, "committed_tcb", tcb_claims(&r->committed_tcb));
	json_object_set_new(o, "launch_tcb", tcb_claims(&r->launch_tcb));
	json_object_set_new(o, "platform_info", platform_claims(r->platform_info));
	json_object_set_new(o, "key_info", key_info_claims(r->key_info));
	digests_claims(o, r);
	if (r->version >= 3) {
		json_object_set_new(o, "cpuid_fam_id", json_integer(r->cpuid_fam));
		json_object_set_new(o, "cpuid_mod_id", json_integer(r->cpuid_mod));
		json_object_set_new(o, "cpuid_step", json_integer(r->cpuid_step));
	}
	json_object_set_new(o, "current_version",
	                    fw_version(r->current_major, r->current_minor, r->current_build));
	json_object_set_new(o, "committed_version",
	                    fw_version(r->committed_major, r->committed_minor, r->committed_build));
	if (r->version >= 5) {
		jset_x64(o, "launch_mit_vector", r->launch_mit_vector);
		jset_x64(o, "current_mit_vector", r->current_mit_vector);
	}
	return o;
}

/* ---- report_data / host_data binding ---- */

static int check_field(const uint8_t *field, size_t flen, const char *name, const uint8_t *expected,
                       size_t len, struct err *e)
{
	uint8_t want[64] = {0};
	memcpy(want, expected, len < flen ? len : flen);
	if (ct_equal(field, want, flen))
		return 0;
	char got[33], exp[33];
	hex_short(field, flen, got);
	hex_short(want, flen, exp);
	return err_set(e, ERR_UNAUTHORIZED, "%s %s... does not match the expected %s...", name, got,
	               exp);
}

int snp_check_report_data(const struct snp_report *r, const uint8_t *expected, size_t len,
                          struct err *e)
{
	return check_field(r->report_data, 64, "REPORT_DATA", expected, len, e);
}

int snp_check_host_data(const struct snp_report *r, const uint8_t *expected, size_t len,
                        struct err *e)
{
	return check_field(r->host_data, 32, "HOST_DATA", expected, len, e);
}

/* ---- certificates ---- */

/* Parses every certificate of a PEM text or of concatenated DER. */
static int certs_load(const uint8_t *in, size_t len, STACK_OF(X509) * *out, struct err *e)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	if (len > 0 && memmem(in, len, "-----BEGIN", 10)) {
		BIO *bio = BIO_new_mem_buf(in, (int)len);
		X509 *c;
		while ((c = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
			sk_X509_push(sk, c);
		BIO_free(bio);
		ERR_clear_error();
	} else {
		const uint8_t *p = in, *end = in + len;
		while (p < end) {
			X509 *c = d2i_X509(NULL, &p, end - p);
			if (!c) {
				sk_X509_pop_free(sk, X509_free);
				ERR_clear_error();
				return err_set(e, ERR_INVALID,
				               "certificate data is neither PEM nor DER");
			}
			sk_X509_push(sk, c);
		}
	}
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return err_set(e, ERR_INVALID, "no certificate found in the given data");
	}
	*out = sk;
	return 0;
}

int snp_certs_to_pem(const uint8_t *in, size_t len, struct buf *out, struct err *e)
{
	STACK_OF(X509) * sk;
	int rc = certs_load(in, len, &sk, e);
	if (rc)
		return rc;
	BIO *bio = BIO_new(BIO_s_mem());
	for (int i = 0; i < sk_X509_num(sk); i++)
		PEM_write_bio_X509(bio, sk_X509_value(sk, i));
	char *p;
	long n = BIO_get_mem_data(bio, &p);
	buf_add(out, p, (size_t)n);
	BIO_free(bio);
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

static int is_ec_p384(EVP_PKEY *pk)
{
	char grp[32];
	if (!pk || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC)
		return 0;
	if (!EVP_PKEY_get_group_name(pk, grp, sizeof grp, NULL))
		return 0;
	return strcmp(grp, "secp384r1") == 0;
}

static int ext_int(const uint8_t *d, int n, const char *name, int *out, struct err *e)
{
	const uint8_t *p = d;
	ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &p, n);
	int64_t v = -1;
	int ok = ai && ASN1_INTEGER_get_int64(&v, ai) && v >= 0 && v <= 255;
	ASN1_INTEGER_free(ai);
	if (!ok) {
		ERR_clear_error();
		return err_set(e, ERR_INVALID, "VCEK extension %s is not a small INTEGER", name);
	}
	*out = (int)v;
	return 0;
}

static void ext_string(const uint8_t *d, int n, char *out, size_t cap)
{
	const uint8_t *p = d;
	ASN1_TYPE *t = d2i_ASN1_TYPE(NULL, &p, n);
	out[0] = '\0';
	if (t && (t->type == V_ASN1_IA5STRING || t->type == V_ASN1_UTF8STRING ||
	          t->type == V_ASN1_PRINTABLESTRING)) {
		int l = ASN1_STRING_length(t->value.asn1_string);
		if ((size_t)l >= cap)
			l = (int)cap - 1;
		memcpy(out, ASN1_STRING_get0_data(t->value.asn1_string), (size_t)l);
		out[l] = '\0';
	}
	ASN1_TYPE_free(t);
	ERR_clear_error();
}

/* hwID is raw CHIP_ID bytes (64, or 8 on Turin) without a DER tag; some
 * certificates wrap it in an OCTET STRING: accept both. */
static int ext_hwid(const uint8_t *d, int n, struct snp_vek *v, struct err *e)
{
	if (n == 64 || n == 8) {
		memcpy(v->hwid, d, (size_t)n);
		v->hwid_len = (size_t)n;
		return 0;
	}
	if ((n == 66 || n == 10) && d[0] == 0x04 && d[1] == n - 2) {
		memcpy(v->hwid, d + 2, (size_t)n - 2);
		v->hwid_len = (size_t)n - 2;
		return 0;
	}
	return err_set(e, ERR_INVALID, "VCEK hwID extension has %d bytes", n);
}

static int tcb_ext(const char *sfx, const uint8_t *d, int n, struct snp_vek *v, struct err *e)
{
	static const struct {
		const char *sfx, *name;
		size_t off;
	} map[] = {
	    {"3.1", "blSPL", offsetof(struct snp_tcb, bl)},
	    {"3.2", "teeSPL", offsetof(struct snp_tcb, tee)},
	    {"3.3", "snpSPL", offsetof(struct snp_tcb, snp)},
	    {"3.8", "ucodeSPL", offsetof(struct snp_tcb, ucode)},
	    {"3.9", "fmcSPL", offsetof(struct snp_tcb, fmc)},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		if (strcmp(sfx, map[i].sfx) != 0)
			continue;
		int val;
		int rc = ext_int(d, n, map[i].name, &val, e);
		if (rc)
			return rc;
		((uint8_t *)&v->tcb)[map[i].off] = (uint8_t)val;
		if (strcmp(sfx, "3.9") == 0)
			v->tcb.has_fmc = 1;
		return 0;
	}
	return 0; /* spl_4..spl_7 and unknown: reserved */
}

static int amd_ext(X509_EXTENSION *ext, struct snp_vek *v, struct err *e)
{
	char oid[80];
	OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(ext), 1);
	if (strncmp(oid, AMD_OID_PREFIX, strlen(AMD_OID_PREFIX)) != 0)
		return 0;
	const char *sfx = oid + strlen(AMD_OID_PREFIX);
	const ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(ext);
	const uint8_t *d = ASN1_STRING_get0_data(os);
	int n = ASN1_STRING_length(os);
	if (strcmp(sfx, "1") == 0)
		return ext_int(d, n, "structVersion", &v->struct_version, e);
	if (strcmp(sfx, "2") == 0) {
		ext_string(d, n, v->product, sizeof v->product);
		return 0;
	}
	if (strcmp(sfx, "4") == 0)
		return ext_hwid(d, n, v, e);
	if (strcmp(sfx, "5") == 0) {
		ext_string(d, n, v->csp_id, sizeof v->csp_id);
		return 0;
	}
	if (strncmp(sfx, "3.", 2) == 0)
		return tcb_ext(sfx, d, n, v, e);
	return 0;
}

static int vek_from_x509(X509 *c, struct snp_vek *v, struct err *e)
{
	memset(v, 0, sizeof *v);
	x509_cn(X509_get_subject_name(c), v->subject, sizeof v->subject);
	x509_cn(X509_get_issuer_name(c), v->issuer, sizeof v->issuer);
	v->not_before = asn1_to_time(X509_get0_notBefore(c));
	v->not_after = asn1_to_time(X509_get0_notAfter(c));
	for (int i = 0; i < X509_get_ext_count(c); i++) {
		int rc = amd_ext(X509_get_ext(c, i), v, e);
		if (rc)
			return rc;
	}
	if (strcmp(v->subject, "SEV-VLEK") == 0 || (v->csp_id[0] && !v->hwid_len))
		v->kind = SNP_KEY_VLEK;
	else if (strcmp(v->subject, "SEV-VCEK") == 0 || v->hwid_len)
		v->kind = SNP_KEY_VCEK;
	else
		return err_set(e, ERR_INVALID, "certificate %s is neither a VCEK nor a VLEK",
		               v->subject);
	v->gen = gen_from_product(v->product);
	if (v->gen == SNP_GEN_TURIN)
		v->tcb.has_fmc = 1;
	return 0;
}

static const char *vek_name(const struct snp_vek *v)
{
	return v->kind == SNP_KEY_VLEK ? "VLEK" : "VCEK";
}

int snp_vek_parse(const uint8_t *cert, size_t len, struct snp_vek *out, struct err *e)
{
	STACK_OF(X509) * sk;
	int rc = certs_load(cert, len, &sk, e);
	if (rc)
		return rc;
	if (sk_X509_num(sk) != 1)
		rc = err_set(e, ERR_INVALID, "expected one certificate, got %d", sk_X509_num(sk));
	else
		rc = vek_from_x509(sk_X509_value(sk, 0), out, e);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* ---- trust anchors ---- */

struct anchor {
	X509 *ark, *ask;
};

/* A VCEK/VLEK whose chain verified once: the certificates (referenced),
 * what its extensions say and the chain it verified against, keyed by the
 * SHA-256 of the certificate input it came in.  Only the chain's
 * signatures are remembered: validity at the caller's time, the report's
 * signature and its binding to the VEK are checked on every use. */
struct vek_entry {
	uint8_t key[32];
	X509 *vek, *ask, *ark;
	struct snp_vek v;
	int sim;
	const char *ask_role;
};

struct snp_trust {
	struct anchor a[MAX_TRUST];
	size_t n;
	pthread_mutex_t mu; /* guards the cache */
	struct vek_entry cache[VEK_CACHE];
	size_t ncache, next;
};

/* AMD's roots, parsed and fingerprint-checked once per process. */
static X509 *builtin[16];
static char builtin_err[160];
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static int fingerprint_ok(X509 *c, const char *want)
{
	unsigned char md[32];
	unsigned int n = 0;
	char hex[65];
	if (!X509_digest(c, EVP_sha256(), md, &n) || n != 32)
		return 0;
	hex_encode(md, 32, hex);
	return strcmp(hex, want) == 0;
}

static void builtin_load(void)
{
	for (size_t i = 0; i < snp__nroots && i < 16; i++) {
		const struct snp_root *r = &snp__roots[i];
		BIO *bio = BIO_new_mem_buf(r->pem, -1);
		X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
		if (!c || !fingerprint_ok(c, r->sha256)) {
			snprintf(builtin_err, sizeof builtin_err,
			         "built-in AMD certificate %zu (%s) fails its pinned fingerprint",
			         i, r->product);
			X509_free(c);
			continue;
		}
		builtin[i] = c;
	}
}

static X509 *builtin_get(enum snp_gen gen, enum snp_root_kind kind, struct err *e)
{
	pthread_once(&builtin_once, builtin_load);
	if (builtin_err[0]) {
		err_set(e, ERR_INTERNAL, "%s", builtin_err);
		return NULL;
	}
	for (size_t i = 0; i < snp__nroots && i < 16; i++)
		if (snp__roots[i].kind == kind && gen_from_product(snp__roots[i].product) == gen)
			return builtin[i];
	err_set(e, ERR_INVALID, "no built-in AMD root for %s", snp_gen_name(gen));
	return NULL;
}

struct snp_trust *snp_trust_new(void)
{
	struct snp_trust *t = xcalloc(1, sizeof(struct snp_trust));
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

static void entry_fini(struct vek_entry *v)
{
	X509_free(v->vek);
	X509_free(v->ask);
	X509_free(v->ark);
	memset(v, 0, sizeof *v);
}

void snp_trust_free(struct snp_trust *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		X509_free(t->a[i].ark);
		X509_free(t->a[i].ask);
	}
	for (size_t i = 0; i < t->ncache; i++)
		entry_fini(&t->cache[i]);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static int self_signed(X509 *c)
{
	return X509_check_issued(c, c) == X509_V_OK && X509_verify(c, X509_get0_pubkey(c)) == 1;
}

int snp_trust_add(struct snp_trust *t, const char *pem, size_t len, struct err *e)
{
	STACK_OF(X509) * sk;
	int rc = certs_load((const uint8_t *)pem, len, &sk, e);
	if (rc)
		return rc;
	X509 *ark = NULL, *ask = NULL;
	for (int i = 0; i < sk_X509_num(sk); i++) {
		X509 *c = sk_X509_value(sk, i);
		if (self_signed(c))
			ark = c;
		else if (!is_ec_p384(X509_get0_pubkey(c)))
			ask = c;
	}
	ERR_clear_error();
	if (!ark || !ask)
		rc = err_set(e, ERR_INVALID, "trust chain needs a self-signed ARK and an ASK");
	else if (X509_verify(ask, X509_get0_pubkey(ark)) != 1)
		rc = err_set(e, ERR_INVALID, "trust chain: ASK is not signed by the ARK");
	else if (t->n >= MAX_TRUST)
		rc = err_set(e, ERR_INVALID, "too many trust chains (at most %d)", MAX_TRUST);
	if (rc == 0) {
		X509_up_ref(ark);
		X509_up_ref(ask);
		t->a[t->n++] = (struct anchor){ark, ask};
	}
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* ---- chain verification ---- */

/* The certificates handed in with a report, sorted by role. */
struct bundle {
	X509 *vek, *ask, *ark;
};

static void bundle_fini(struct bundle *b)
{
	X509_free(b->vek);
	X509_free(b->ask);
	X509_free(b->ark);
}

static int bundle_put(X509 **slot, X509 *c, const char *role, struct err *e)
{
	if (*slot && X509_cmp(*slot, c) != 0)
		return err_set(e, ERR_INVALID, "two different %s certificates given", role);
	if (!*slot) {
		X509_up_ref(c);
		*slot = c;
	}
	return 0;
}

/* EC P-384 key: VCEK/VLEK; self-signed: ARK; otherwise ASK or ASVK. */
static int bundle_load(const uint8_t *in, size_t len, struct bundle *b, struct err *e)
{
	STACK_OF(X509) *sk = NULL;
	int rc = certs_load(in, len, &sk, e);
	if (rc)
		return rc;
	for (int i = 0; rc == 0 && i < sk_X509_num(sk); i++) {
		X509 *c = sk_X509_value(sk, i);
		if (is_ec_p384(X509_get0_pubkey(c)))
			rc = bundle_put(&b->vek, c, "VCEK/VLEK", e);
		else if (self_signed(c))
			rc = bundle_put(&b->ark, c, "ARK", e);
		else
			rc = bundle_put(&b->ask, c, "ASK/ASVK", e);
	}
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* The chain a VEK is checked against. */
struct chain {
	X509 *ask, *ark; /* borrowed */
	int sim;
	const char *ask_role; /* "ASK" or "ASVK" */
};

/* A sim anchor whose ASK is named as the VEK's issuer; when several are
 * (every box names its sim ASK alike), the one whose key signed the VEK. */
static int pick_sim(X509 *vek, const struct bundle *b, const struct snp_trust *t, struct chain *ch)
{
	int found = 0;
	for (size_t i = 0; t && i < t->n; i++) {
		if (X509_NAME_cmp(X509_get_issuer_name(vek), X509_get_subject_name(t->a[i].ask)))
			continue;
		if ((b->ask && X509_cmp(b->ask, t->a[i].ask)) ||
		    (b->ark && X509_cmp(b->ark, t->a[i].ark)))
			continue;
		if (!found)
			*ch = (struct chain){t->a[i].ask, t->a[i].ark, 1, "ASK"};
		found = 1;
		int ok = X509_verify(vek, X509_get0_pubkey(t->a[i].ask)) == 1;
		ERR_clear_error();
		if (ok) {
			*ch = (struct chain){t->a[i].ask, t->a[i].ark, 1, "ASK"};
			break;
		}
	}
	return found;
}

static int pick_chain(X509 *vek, const struct snp_vek *v, const struct bundle *b,
                      const struct snp_trust *t, struct chain *ch, struct err *e)
{
	if (pick_sim(vek, b, t, ch))
		return 0;
	if (strstr(v->issuer, "cocod-sim"))
		return err_set(
		    e, ERR_UNAUTHORIZED,
		    "%s issued by %s: sim evidence, and the sim root is not trusted here",
		    vek_name(v), v->issuer);
	if (v->gen == SNP_GEN_UNKNOWN)
		return err_set(e, ERR_INVALID, "%s productName \"%s\" is not Milan, Genoa or Turin",
		               vek_name(v), v->product);
	enum snp_root_kind kind = v->kind == SNP_KEY_VLEK ? SNP_ROOT_ASVK : SNP_ROOT_ASK;
	X509 *ark = builtin_get(v->gen, SNP_ROOT_ARK, e);
	X509 *ask = ark ? builtin_get(v->gen, kind, e) : NULL;
	if (!ask)
		return e ? e->code : ERR_INTERNAL;
	if (b->ark && X509_cmp(b->ark, ark) != 0) {
		char cn[64];
		x509_cn(X509_get_subject_name(b->ark), cn, sizeof cn);
		return err_set(e, ERR_UNAUTHORIZED,
		               "ARK %s is not AMD's pinned ARK-%s for this %s (product %s)", cn,
		               snp_gen_name(v->gen), vek_name(v), v->product);
	}
	*ch = (struct chain){b->ask ? b->ask : ask, ark, 0, kind == SNP_ROOT_ASVK ? "ASVK" : "ASK"};
	return 0;
}

static int check_validity(X509 *c, const char *what, time_t at, struct err *e)
{
	char when[32];
	if (X509_cmp_time(X509_get0_notBefore(c), &at) >= 0) {
		fmt_time(asn1_to_time(X509_get0_notBefore(c)), when);
		return err_set(e, ERR_UNAUTHORIZED, "%s certificate not valid before %s", what,
		               when);
	}
	if (X509_cmp_time(X509_get0_notAfter(c), &at) <= 0) {
		fmt_time(asn1_to_time(X509_get0_notAfter(c)), when);
		return err_set(e, ERR_UNAUTHORIZED, "%s certificate expired at %s", what, when);
	}
	return 0;
}

/* Every certificate of the chain valid at `at`, root first. */
static int chain_validity(X509 *vek, const struct snp_vek *v, X509 *ask, X509 *ark,
                          const char *ask_role, time_t at, struct err *e)
{
	int rc = check_validity(ark, "ARK", at, e);
	if (rc == 0)
		rc = check_validity(ask, ask_role, at, e);
	if (rc == 0)
		rc = check_validity(vek, vek_name(v), at, e);
	return rc;
}

static int verify_chain(X509 *vek, const struct snp_vek *v, const struct chain *ch, time_t at,
                        struct err *e)
{
	char ask_cn[64], ark_cn[64];
	x509_cn(X509_get_subject_name(ch->ask), ask_cn, sizeof ask_cn);
	x509_cn(X509_get_subject_name(ch->ark), ark_cn, sizeof ark_cn);
	int ok = X509_verify(ch->ask, X509_get0_pubkey(ch->ark)) == 1;
	ERR_clear_error();
	if (!ok)
		return err_set(e, ERR_UNAUTHORIZED, "%s %s not signed by ARK %s", ch->ask_role,
		               ask_cn, ark_cn);
	ok = X509_verify(vek, X509_get0_pubkey(ch->ask)) == 1;
	ERR_clear_error();
	if (!ok)
		return err_set(e, ERR_UNAUTHORIZED, "%s not signed by %s %s", vek_name(v),
		               ch->ask_role, ask_cn);
	return chain_validity(vek, v, ch->ask, ch->ark, ch->ask_role, at, e);
}

int snp_vek_verify(const uint8_t *certs, size_t len, const struct snp_trust *t, time_t at,
                   struct snp_vek *out, struct err *e)
{
	struct bundle b __attribute__((cleanup(bundle_fini))) = {0};
	struct chain ch = {0};
	int rc = bundle_load(certs, len, &b, e);
	if (rc)
		return rc;
	if (!b.vek)
		return err_set(e, ERR_INVALID, "no VCEK or VLEK (EC P-384 certificate) was given");
	if ((rc = vek_from_x509(b.vek, out, e)) || (rc = pick_chain(b.vek, out, &b, t, &ch, e)))
		return rc;
	return verify_chain(b.vek, out, &ch, at, e);
}

/* ---- revocation ---- */

struct snp_crls {
	STACK_OF(X509_CRL) * sk;
};

struct snp_crls *snp_crls_new(void)
{
	struct snp_crls *c = xcalloc(1, sizeof *c);
	c->sk = sk_X509_CRL_new_null();
	return c;
}

void snp_crls_free(struct snp_crls *c)
{
	if (!c)
		return;
	sk_X509_CRL_pop_free(c->sk, X509_CRL_free);
	free(c);
}

size_t snp_crls_count(const struct snp_crls *c)
{
	return c ? (size_t)sk_X509_CRL_num(c->sk) : 0;
}

int snp_crls_add(struct snp_crls *c, const uint8_t *data, size_t len, struct err *e)
{
	const unsigned char *p = data;
	X509_CRL *crl = NULL;
	if (len > 0 && data[0] == 0x30) {
		crl = d2i_X509_CRL(NULL, &p, (long)len);
	} else if (len > 0 && len < INT_MAX) {
		BIO *bio = BIO_new_mem_buf(data, (int)len);
		crl = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	}
	ERR_clear_error();
	if (!crl)
		return err_set(e, ERR_INVALID, "unreadable CRL (%zu bytes, neither DER nor PEM)",
		               len);
	sk_X509_CRL_push(c->sk, crl);
	return 0;
}

static void serial_hex(X509 *c, char *out, size_t cap)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
	char *h = bn ? BN_bn2hex(bn) : NULL;
	snprintf(out, cap, "%s", h ? h : "?");
	OPENSSL_free(h);
	BN_free(bn);
}

/* Fails when `cert` is on `crl` (issued by the certificate named `by`). */
static int not_revoked(X509_CRL *crl, X509 *cert, const char *what, const char *by, struct err *e)
{
	X509_REVOKED *rev = NULL;
	if (X509_CRL_get0_by_cert(crl, &rev, cert) != 1)
		return 0;
	char serial[80], when[32];
	serial_hex(cert, serial, sizeof serial);
	fmt_time(asn1_to_time(X509_REVOKED_get0_revocationDate(rev)), when);
	return err_set(e, ERR_UNAUTHORIZED,
	               "%s certificate (serial %s) is revoked by the CRL of %s since %s", what,
	               serial, by, when);
}

/* Every list issued by the chain's ARK or ASK/ASVK: signed by it, and
 * not listing a certificate it issued (see snp.h). */
static int check_revocation(const struct snp_crls *crls, X509 *vek, const struct snp_vek *v,
                            X509 *ask, const char *ask_role, X509 *ark, struct err *e)
{
	for (int i = 0; crls && i < sk_X509_CRL_num(crls->sk); i++) {
		X509_CRL *crl = sk_X509_CRL_value(crls->sk, i);
		const X509_NAME *iss = X509_CRL_get_issuer(crl);
		X509 *by = X509_NAME_cmp(iss, X509_get_subject_name(ark)) == 0   ? ark
		           : X509_NAME_cmp(iss, X509_get_subject_name(ask)) == 0 ? ask
		                                                                 : NULL;
		if (!by)
			continue;
		char cn[64];
		x509_cn(X509_get_subject_name(by), cn, sizeof cn);
		int ok = X509_CRL_verify(crl, X509_get0_pubkey(by)) == 1;
		ERR_clear_error();
		if (!ok)
			return err_set(e, ERR_UNAUTHORIZED,
			               "a CRL in the name of %s does not verify with its key", cn);
		if (by == ark &&
		    (not_revoked(crl, ask, ask_role, cn, e) || not_revoked(crl, ark, "ARK", cn, e)))
			return e->code;
		if (by == ask && not_revoked(crl, vek, vek_name(v), cn, e))
			return e->code;
	}
	return 0;
}

/* ---- report signature and binding ---- */

static int verify_report_sig(const uint8_t *rep, EVP_PKEY *pk, const char *what, struct err *e)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_lebin2bn(rep + 0x2A0, 72, NULL), *s = BN_lebin2bn(rep + 0x2E8, 72, NULL);
	unsigned char *der = NULL;
	int derlen = -1, ok = 0;
	if (sig && r && s && ECDSA_SIG_set0(sig, r, s)) {
		r = s = NULL;
		derlen = i2d_ECDSA_SIG(sig, &der);
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (derlen > 0 && md && EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pk) == 1)
		ok = EVP_DigestVerify(md, der, (size_t)derlen, rep, SNP_SIGNED_SIZE) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	ERR_clear_error();
	if (!ok)
		return err_set(e, ERR_UNAUTHORIZED, "report signature does not verify with the %s",
		               what);
	return 0;
}

static int cmp_tcb_field(const char *name, int rep, int ext, const char *what, struct err *e)
{
	if (rep == ext)
		return 0;
	return err_set(e, ERR_UNAUTHORIZED, "REPORTED_TCB %s=%d does not match %s extension %s=%d",
	               name, rep, what, name, ext);
}

static int check_tcb(const struct snp_tcb *t, const struct snp_vek *v, struct err *e)
{
	const char *w = vek_name(v);
	int rc = cmp_tcb_field("bl", t->bl, v->tcb.bl, w, e);
	if (rc == 0)
		rc = cmp_tcb_field("tee", t->tee, v->tcb.tee, w, e);
	if (rc == 0)
		rc = cmp_tcb_field("snp", t->snp, v->tcb.snp, w, e);
	if (rc == 0)
		rc = cmp_tcb_field("ucode", t->ucode, v->tcb.ucode, w, e);
	if (rc == 0 && t->has_fmc)
		rc = cmp_tcb_field("fmc", t->fmc, v->tcb.fmc, w, e);
	return rc;
}

static int check_hwid(const struct snp_report *r, const struct snp_vek *v, struct err *e)
{
	if (v->kind != SNP_KEY_VCEK || (r->key_info & 2))
		return 0; /* VLEK: no hwID; MASK_CHIP_KEY: CHIP_ID zeroed */
	size_t n = r->gen == SNP_GEN_TURIN ? 8 : 64;
	if (v->hwid_len == n && memcmp(r->chip_id, v->hwid, n) == 0)
		return 0;
	char a[33], b[33];
	hex_short(r->chip_id, n, a);
	hex_short(v->hwid, v->hwid_len, b);
	if (!v->hwid_len)
		return err_set(e, ERR_UNAUTHORIZED, "VCEK has no hwID extension");
	return err_set(e, ERR_UNAUTHORIZED, "CHIP_ID %s... does not match VCEK hwID %s...", a, b);
}

static int check_kind(const struct snp_report *r, const struct snp_vek *v, struct err *e)
{
	uint32_t sk = (r->key_info >> 2) & 7;
	if (sk != SNP_KEY_VCEK && sk != SNP_KEY_VLEK)
		return err_set(
		    e, ERR_UNAUTHORIZED,
		    "KEY_INFO says the report is signed by %s key (%u), not a VCEK or VLEK",
		    signing_key_name(r->key_info), sk);
	if ((sk == SNP_KEY_VLEK) != (v->kind == SNP_KEY_VLEK))
		return err_set(e, ERR_UNAUTHORIZED,
		               "KEY_INFO says the report is signed by a %s but a %s was given",
		               sk == SNP_KEY_VLEK ? "VLEK" : "VCEK", vek_name(v));
	return 0;
}

static int check_gen(const struct snp_report *r, const struct snp_vek *v, struct err *e)
{
	if (strcmp(r->gen_src, "cpuid") != 0 || v->gen == SNP_GEN_UNKNOWN || r->gen == v->gen)
		return 0;
	return err_set(e, ERR_UNAUTHORIZED,
	               "report CPUID (family 0x%x model 0x%x) is %s but the %s is for %s",
	               r->cpuid_fam, r->cpuid_mod, snp_gen_name(r->gen), vek_name(v), v->product);
}

int snp_check_vek_binding(const struct snp_report *rep, const struct snp_vek *v, struct err *e)
{
	struct snp_report r = *rep;
	int rc = check_kind(&r, v, e);
	if (rc == 0)
		rc = check_gen(&r, v, e);
	if (rc)
		return rc;
	if (strcmp(r.gen_src, "cpuid") != 0 && v->gen != SNP_GEN_UNKNOWN)
		decode_tcbs(&r, v->gen, "vek");
	rc = check_tcb(&r.reported_tcb, v, e);
	if (rc == 0)
		rc = check_hwid(&r, v, e);
	return rc;
}

/* ---- verification ---- */

static json_t *endorsement_claims(const struct snp_vek *v, X509 *ark)
{
	json_t *o = json_object();
	char s[64];
	json_object_set_new(o, "key", json_string(vek_name(v)));
	json_object_set_new(o, "product", json_string(v->product));
	json_object_set_new(o, "issuer", json_string(v->issuer));
	x509_cn(X509_get_subject_name(ark), s, sizeof s);
	json_object_set_new(o, "root", json_string(s));
	fmt_time(v->not_before, s);
	json_object_set_new(o, "not_before", json_string(s));
	fmt_time(v->not_after, s);
	json_object_set_new(o, "not_after", json_string(s));
	if (v->csp_id[0])
		json_object_set_new(o, "csp_id", json_string(v->csp_id));
	return o;
}

/* KEY_INFO and CPUID against the VEK, then the TCBs decoded for the VEK's
 * generation when the report does not name its own (v2). */
static int report_fits_vek(struct snp_report *r, const struct snp_vek *v, struct err *e)
{
	int rc = check_kind(r, v, e);
	if (rc == 0)
		rc = check_gen(r, v, e);
	if (rc == 0 && strcmp(r->gen_src, "cpuid") != 0 && v->gen != SNP_GEN_UNKNOWN)
		decode_tcbs(r, v->gen, "vek");
	return rc;
}

/* The report's own checks once its VEK is trusted: signature, TCB and
 * CHIP_ID binding, then the claims. */
static int verify_report(const uint8_t *report, struct snp_report *r, X509 *vek,
                         const struct snp_vek *v, X509 *ark, int sim, json_t **claims,
                         struct err *e)
{
	int rc;
	if ((rc = verify_report_sig(report, X509_get0_pubkey(vek), vek_name(v), e)) ||
	    (rc = snp_check_vek_binding(r, v, e)))
		return rc;
	if (claims) {
		json_t *c = snp_claims(r);
		json_object_set_new(c, "sim", json_boolean(sim));
		json_object_set_new(c, "endorsement", endorsement_claims(v, ark));
		*claims = c;
	}
	return 0;
}

/* A copy of the cached entry for `key` (references taken), or 0. */
static int cache_get(struct snp_trust *t, const uint8_t key[32], struct vek_entry *out)
{
	int found = 0;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->ncache && !found; i++) {
		if (memcmp(t->cache[i].key, key, 32) != 0)
			continue;
		*out = t->cache[i];
		X509_up_ref(out->vek);
		X509_up_ref(out->ask);
		X509_up_ref(out->ark);
		found = 1;
	}
	pthread_mutex_unlock(&t->mu);
	return found;
}

static void cache_put(struct snp_trust *t, const uint8_t key[32], X509 *vek,
                      const struct snp_vek *v, const struct chain *ch)
{
	pthread_mutex_lock(&t->mu);
	struct vek_entry *slot;
	if (t->ncache < VEK_CACHE) {
		slot = &t->cache[t->ncache++];
	} else { /* oldest first */
		slot = &t->cache[t->next];
		t->next = (t->next + 1) % VEK_CACHE;
	}
	entry_fini(slot);
	X509_up_ref(vek);
	X509_up_ref(ch->ask);
	X509_up_ref(ch->ark);
	*slot = (struct vek_entry){.vek = vek,
	                           .ask = ch->ask,
	                           .ark = ch->ark,
	                           .v = *v,
	                           .sim = ch->sim,
	                           .ask_role = ch->ask_role};
	memcpy(slot->key, key, 32);
	pthread_mutex_unlock(&t->mu);
}

/* Everything after parsing: the caller's certificates, chain, signature,
 * binding.  `r` may be re-decoded for the VEK's generation (v2).  With a
 * `key`, a chain that verifies is remembered in `t`. */
static int verify_parsed(const uint8_t *report, struct snp_report *r, struct bundle *b,
                         const struct snp_trust *t, const struct snp_crls *crls, const uint8_t *key,
                         time_t at, json_t **claims, struct err *e)
{
	struct snp_vek v;
	struct chain ch = {0};
	if (!b->vek)
		return err_set(e, ERR_INVALID, "no VCEK or VLEK (EC P-384 certificate) was given");
	int rc = vek_from_x509(b->vek, &v, e);
	if (rc == 0)
		rc = report_fits_vek(r, &v, e);
	if (rc || (rc = pick_chain(b->vek, &v, b, t, &ch, e)) ||
	    (rc = verify_chain(b->vek, &v, &ch, at, e)) ||
	    (rc = check_revocation(crls, b->vek, &v, ch.ask, ch.ask_role, ch.ark, e)))
		return rc;
	if (t && key)
		cache_put((struct snp_trust *)(uintptr_t)t, key, b->vek, &v, &ch);
	return verify_report(report, r, b->vek, &v, ch.ark, ch.sim, claims, e);
}

/* A report whose certificate input verified before: the chain's
 * signatures are not checked again, everything else (revocation too) is. */
static int verify_cached(const uint8_t *report, struct snp_report *r, struct vek_entry *c,
                         const struct snp_crls *crls, time_t at, json_t **claims, struct err *e)
{
	int rc = report_fits_vek(r, &c->v, e);
	if (rc == 0)
		rc = chain_validity(c->vek, &c->v, c->ask, c->ark, c->ask_role, at, e);
	if (rc == 0)
		rc = check_revocation(crls, c->vek, &c->v, c->ask, c->ask_role, c->ark, e);
	if (rc == 0)
		rc = verify_report(report, r, c->vek, &c->v, c->ark, c->sim, claims, e);
	return rc;
}

static int parse_for_verify(const uint8_t *report, size_t len, struct snp_report *r, struct err *e)
{
	int rc = snp_parse(report, len, r, e);
	if (rc == 0 && r->sig_algo != 1)
		rc = err_set(e, ERR_UNAUTHORIZED,
		             "signature_algo %u is not 1 (ECDSA P-384 with SHA-384)", r->sig_algo);
	return rc;
}

/* snp_verify with the cache key of the certificate input (NULL: none). */
static int verify_keyed(const uint8_t *report, size_t len, const uint8_t *certs, size_t certs_len,
                        const struct snp_trust *trust, const struct snp_crls *crls,
                        const uint8_t *key, time_t at, json_t **claims, struct err *e)
{
	struct snp_report r;
	struct vek_entry c;
	int rc = parse_for_verify(report, len, &r, e);
	if (rc)
		return rc;
	if (trust && key && cache_get((struct snp_trust *)(uintptr_t)trust, key, &c)) {
		rc = verify_cached(report, &r, &c, crls, at, claims, e);
		entry_fini(&c);
		return rc;
	}
	if (!certs || certs_len == 0)
		return err_set(e, ERR_INVALID, "no VCEK or VLEK certificate was given");
	struct bundle b __attribute__((cleanup(bundle_fini))) = {0};
	if ((rc = bundle_load(certs, certs_len, &b, e)))
		return rc;
	return verify_parsed(report, &r, &b, trust, crls, key, at, claims, e);
}

int snp_verify_crls(const uint8_t *report, size_t len, const uint8_t *certs, size_t certs_len,
                    const struct snp_trust *trust, const struct snp_crls *crls, time_t at,
                    json_t **claims, struct err *e)
{
	uint8_t key[32];
	unsigned int n = 0;
	if (trust && certs && certs_len)
		EVP_Digest(certs, certs_len, key, &n, EVP_sha256(), NULL);
	return verify_keyed(report, len, certs, certs_len, trust, crls, n ? key : NULL, at, claims,
	                    e);
}

int snp_verify(const uint8_t *report, size_t len, const uint8_t *certs, size_t certs_len,
               const struct snp_trust *trust, time_t at, json_t **claims, struct err *e)
{
	return snp_verify_crls(report, len, certs, certs_len, trust, NULL, at, claims, e);
}

/* ---- Trustee's JSON evidence ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes hex (optional 0x, no spaces) or standard/url base64 into `out`. */
static int decode_text(const char *s, struct buf *out)
{
	size_t n = strlen(s);
	const char *h = (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? s + 2 : s;
	size_t hn = strlen(h);
	int is_hex = hn > 0 && hn % 2 == 0;
	for (size_t i = 0; is_hex && i < hn; i++)
		is_hex = hexval((unsigned char)h[i]) >= 0;
	if (is_hex) {
		for (size_t i = 0; i < hn; i += 2) {
			uint8_t c = (uint8_t)(hexval((unsigned char)h[i]) << 4 |
			                      hexval((unsigned char)h[i + 1]));
			buf_add(out, &c, 1);
		}
		return 0;
	}
	struct buf clean;
	buf_init(&clean);
	for (size_t i = 0; i < n; i++) {
		char c = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
		if (!isspace((unsigned char)c))
			buf_add(&clean, &c, 1);
	}
	while (clean.len % 4)
		buf_add(&clean, "=", 1);
	size_t pad = 0;
	for (size_t i = clean.len; i > 0 && clean.data[i - 1] == '='; i--)
		pad++;
	buf_reserve(out, clean.len);
	int dn = EVP_DecodeBlock((unsigned char *)out->data + out->len,
	                         (const unsigned char *)clean.data, (int)clean.len);
	buf_fini(&clean);
	if (dn < 0 || pad > 2 || (size_t)dn < pad)
		return -1;
	out->len += (size_t)dn - pad;
	out->data[out->len] = '\0';
	return 0;
}

/* Bytes from a JSON array of 0..255 integers, or hex/base64 text. */
static int json_bytes(const json_t *j, struct buf *out)
{
	if (json_is_string(j))
		return decode_text(json_string_value(j), out);
	if (!json_is_array(j))
		return -1;
	size_t i;
	json_t *x;
	json_array_foreach(j, i, x)
	{
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 255)
			return -1;
		uint8_t c = (uint8_t)json_integer_value(x);
		buf_add(out, &c, 1);
	}
	return 0;
}

static int field_bytes(const json_t *o, const char *key, uint8_t *dst, size_t n, struct err *e)
{
	const json_t *j = json_object_get(o, key);
	struct buf b;
	buf_init(&b);
	int bad = !j || json_bytes(j, &b) || b.len != n;
	if (!bad)
		memcpy(dst, b.data, n);
	buf_fini(&b);
	if (bad)
		return err_set(e, ERR_INVALID, "attestation_report.%s: expected %zu bytes", key, n);
	return 0;
}

/* An integer field; `optional` ones may be absent or null (left 0). */
static int field_uint(const json_t *o, const char *key, uint64_t max, int optional, uint64_t *out,
                      struct err *e)
{
	const json_t *j = json_object_get(o, key);
	*out = 0;
	if ((!j || json_is_null(j)) && optional)
		return 0;
	if (!json_is_integer(j) || json_integer_value(j) < 0 ||
	    (uint64_t)json_integer_value(j) > max)
		return err_set(e, ERR_INVALID, "attestation_report.%s: expected an integer <= %llu",
		               key, (unsigned long long)max);
	*out = (uint64_t)json_integer_value(j);
	return 0;
}

/* TcbVersion {fmc (null before Turin), bootloader, tee, snp, microcode}. */
static int field_tcb(const json_t *o, const char *key, uint8_t dst[8], struct err *e)
{
	const json_t *t = json_object_get(o, key);
	if (json_is_integer(t)) {
		put_le64(dst, (uint64_t)json_integer_value(t));
		return 0;
	}
	if (!json_is_object(t))
		return err_set(e, ERR_INVALID, "attestation_report.%s: expected a TCB object", key);
	uint64_t fmc, bl, tee, snp, uc;
	int rc;
	if ((rc = field_uint(t, "fmc", 255, 1, &fmc, e)) ||
	    (rc = field_uint(t, "bootloader", 255, 0, &bl, e)) ||
	    (rc = field_uint(t, "tee", 255, 0, &tee, e)) ||
	    (rc = field_uint(t, "snp", 255, 0, &snp, e)) ||
	    (rc = field_uint(t, "microcode", 255, 0, &uc, e)))
		return err_wrap(e, "%s", key);
	memset(dst, 0, 8);
	const json_t *f = json_object_get(t, "fmc");
	if (f && !json_is_null(f)) {
		dst[0] = (uint8_t)fmc, dst[1] = (uint8_t)bl, dst[2] = (uint8_t)tee;
		dst[3] = (uint8_t)snp;
	} else {
		dst[0] = (uint8_t)bl, dst[1] = (uint8_t)tee, dst[6] = (uint8_t)snp;
	}
	dst[7] = (uint8_t)uc;
	return 0;
}

/* Version {major, minor, build} into build/minor/major bytes at `dst`. */
static int field_fw(const json_t *o, const char *key, uint8_t *dst, struct err *e)
{
	const json_t *v = json_object_get(o, key);
	uint64_t maj, min, bld;
	int rc;
	if (!json_is_object(v))
		return err_set(e, ERR_INVALID, "attestation_report.%s: expected an object", key);
	if ((rc = field_uint(v, "major", 255, 0, &maj, e)) ||
	    (rc = field_uint(v, "minor", 255, 0, &min, e)) ||
	    (rc = field_uint(v, "build", 255, 0, &bld, e)))
		return err_wrap(e, "%s", key);
	dst[0] = (uint8_t)bld, dst[1] = (uint8_t)min, dst[2] = (uint8_t)maj;
	return 0;
}

static int fields_ints(const json_t *o, uint8_t *out, struct err *e)
{
	static const struct {
		const char *key;
		size_t off, size;
		int optional;
	} ints[] = {
	    {"version", 0x00, 4, 0},
	    {"guest_svn", 0x04, 4, 0},
	    {"policy", 0x08, 8, 0},
	    {"vmpl", 0x30, 4, 0},
	    {"sig_algo", 0x34, 4, 0},
	    {"plat_info", 0x40, 8, 0},
	    {"key_info", 0x48, 4, 0},
	    {"cpuid_fam_id", 0x188, 1, 1},
	    {"cpuid_mod_id", 0x189, 1, 1},
	    {"cpuid_step", 0x18A, 1, 1},
	    {"launch_mit_vector", 0x1F8, 8, 1},
	    {"current_mit_vector", 0x200, 8, 1},
	};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		uint64_t v, max = ints[i].size == 8 ? (uint64_t)INT64_MAX
		                                    : (1ull << (8 * ints[i].size)) - 1;
		int rc = field_uint(o, ints[i].key, max, ints[i].optional, &v, e);
		if (rc)
			return rc;
		uint8_t le[8];
		put_le64(le, v);
		memcpy(out + ints[i].off, le, ints[i].size);
	}
	return 0;
}

static int fields_bytes(const json_t *o, uint8_t *out, struct err *e)
{
	static const struct {
		const char *key;
		size_t off, size;
	} arrs[] = {
	    {"family_id", 0x10, 16},          {"image_id", 0x20, 16},   {"report_data", 0x50, 64},
	    {"measurement", 0x90, 48},        {"host_data", 0xC0, 32},  {"id_key_digest", 0xE0, 48},
	    {"author_key_digest", 0x110, 48}, {"report_id", 0x140, 32}, {"report_id_ma", 0x160, 32},
	    {"chip_id", 0x1A0, 64},
	};
	for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
		int rc = field_bytes(o, arrs[i].key, out + arrs[i].off, arrs[i].size, e);
		if (rc)
			return rc;
	}
	return 0;
}

static int fields_tcbs_sig(const json_t *o, uint8_t *out, struct err *e)
{
	int rc;
	const json_t *sig = json_object_get(o, "signature");
	if ((rc = field_tcb(o, "current_tcb", out + 0x38, e)) ||
	    (rc = field_tcb(o, "reported_tcb", out + 0x180, e)) ||
	    (rc = field_tcb(o, "committed_tcb", out + 0x1E0, e)) ||
	    (rc = field_tcb(o, "launch_tcb", out + 0x1F0, e)) ||
	    (rc = field_fw(o, "current", out + 0x1E8, e)) ||
	    (rc = field_fw(o, "committed", out + 0x1EC, e)))
		return rc;
	if (!json_is_object(sig))
		return err_set(e, ERR_INVALID, "attestation_report.signature: expected {r, s}");
	if ((rc = field_bytes(sig, "r", out + 0x2A0, 72, e)) ||
	    (rc = field_bytes(sig, "s", out + 0x2E8, 72, e)))
		return err_wrap(e, "signature");
	return 0;
}

int snp_trustee_report(const json_t *ar, uint8_t out[SNP_REPORT_SIZE], struct err *e)
{
	if (!json_is_object(ar)) {
		struct buf b;
		buf_init(&b);
		int bad = json_bytes(ar, &b) || b.len != SNP_REPORT_SIZE;
		if (!bad)
			memcpy(out, b.data, SNP_REPORT_SIZE);
		buf_fini(&b);
		if (bad)
			return err_set(e, ERR_INVALID,
			               "attestation_report: expected an object or %d raw bytes",
			               SNP_REPORT_SIZE);
		return 0;
	}
	memset(out, 0, SNP_REPORT_SIZE);
	int rc;
	if ((rc = fields_ints(ar, out, e)) || (rc = fields_bytes(ar, out, e)) ||
	    (rc = fields_tcbs_sig(ar, out, e)))
		return rc;
	return 0;
}

static int trustee_certs(const json_t *chain, struct buf *pem, struct err *e)
{
	size_t i;
	json_t *c;
	if (chain && !json_is_null(chain) && !json_is_array(chain))
		return err_set(e, ERR_INVALID, "cert_chain: expected an array");
	json_array_foreach(chain, i, c)
	{
		const char *type = json_string_value(json_object_get(c, "cert_type"));
		if (!type)
			return err_set(e, ERR_INVALID, "cert_chain[%zu]: no cert_type", i);
		if (strcasecmp(type, "CRL") == 0)
			continue;
		struct buf der;
		buf_init(&der);
		const json_t *d = json_object_get(c, "data");
		int rc = 0;
		if (json_is_string(d) && strstr(json_string_value(d), "-----BEGIN"))
			buf_adds(&der, json_string_value(d));
		else if (!d || json_bytes(d, &der))
			rc = err_set(e, ERR_INVALID, "bad data");
		if (rc == 0)
			rc = snp_certs_to_pem((const uint8_t *)der.data, der.len, pem, e);
		buf_fini(&der);
		if (rc)
			return err_wrap(e, "cert_chain[%zu] (%s)", i, type);
	}
	return 0;
}

/* The cache key of Trustee's cert_chain plus `extra`: SHA-256 over each
 * entry's type and data as sent (text, or the bytes of an array). */
static int chain_key(const json_t *chain, const uint8_t *extra, size_t extra_len, uint8_t key[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t i;
	json_t *c;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	         (!chain || json_is_null(chain) || json_is_array(chain));
	json_array_foreach(chain, i, c)
	{
		const char *type = json_string_value(json_object_get(c, "cert_type"));
		const json_t *d = json_object_get(c, "data");
		struct buf b;
		buf_init(&b);
		if (!type || (!json_is_string(d) && json_bytes(d, &b)))
			ok = 0;
		if (ok) {
			EVP_DigestUpdate(md, type, strlen(type) + 1);
			if (json_is_string(d))
				EVP_DigestUpdate(md, json_string_value(d), json_string_length(d));
			else
				EVP_DigestUpdate(md, b.data, b.len);
			EVP_DigestUpdate(md, "\n", 1);
		}
		buf_fini(&b);
	}
	if (ok && extra && extra_len)
		EVP_DigestUpdate(md, extra, extra_len);
	ok = ok && EVP_DigestFinal_ex(md, key, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

int snp_verify_trustee_chain(const uint8_t raw[SNP_REPORT_SIZE], const json_t *chain,
                             const uint8_t *extra, size_t extra_len, const struct snp_trust *trust,
                             const struct snp_crls *crls, time_t at, json_t **claims, struct err *e)
{
	uint8_t key[32];
	int keyed = trust && chain_key(chain, extra, extra_len, key), rc;
	struct snp_report r;
	struct vek_entry c;
	if (keyed && cache_get((struct snp_trust *)(uintptr_t)trust, key, &c)) {
		rc = parse_for_verify(raw, SNP_REPORT_SIZE, &r, e);
		if (rc == 0)
			rc = verify_cached(raw, &r, &c, crls, at, claims, e);
		entry_fini(&c);
		return rc;
	}
	struct buf pem;
	buf_init(&pem);
	rc = trustee_certs(chain, &pem, e);
	if (rc == 0 && extra && extra_len)
		rc = snp_certs_to_pem(extra, extra_len, &pem, e);
	if (rc == 0)
		rc = verify_keyed(raw, SNP_REPORT_SIZE, (const uint8_t *)pem.data, pem.len, trust,
		                  crls, keyed ? key : NULL, at, claims, e);
	buf_fini(&pem);
	return rc;
}

int snp_verify_trustee_evidence(const json_t *ev, const uint8_t *extra, size_t extra_len,
                                const struct snp_trust *trust, time_t at, json_t **claims,
                                struct err *e)
{
	uint8_t raw[SNP_REPORT_SIZE];
	if (!json_is_object(ev))
		return err_set(e, ERR_INVALID, "SNP evidence: expected a JSON object");
	int rc = snp_trustee_report(json_object_get(ev, "attestation_report"), raw, e);
	if (rc)
		return rc;
	return snp_verify_trustee_chain(raw, json_object_get(ev, "cert_chain"), extra, extra_len,
	                                trust, NULL, at, claims, e);
}
