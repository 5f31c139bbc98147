/* tdx: parse and verify Intel TDX DCAP quotes offline.  Layout and rules
 * follow shared/reference/evidence-formats.md §2 (Intel's sgx_quote_4.h /
 * sgx_quote_5.h layouts, the PCS v4 collateral formats and Intel's TCB
 * level algorithm).  Trust flows from the pinned Intel SGX Root CA: PCK
 * chain -> QE report signature (PCK leaf) -> QE report_data binding of the
 * attestation key -> quote signature over header and body; collateral is
 * trusted through the TCB Signing chain to the same root.  Every failure
 * names the check that failed. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tdx.h"
#include "util.h"

#define HDR_LEN        48
#define BODY10_LEN     584
#define BODY15_LEN     648
#define QE_REPORT_LEN  384
#define CERT_QE_REPORT 6
#define CERT_PCK_CHAIN 5
#define SGX_EXT_OID    "1.2.840.113741.1.13.1"
#define MAX_QUOTE      (1u << 20)

/* ---- little helpers ---------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void set_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
	char *s = xmalloc(2 * n + 1);
	hex_encode(p, n, s);
	json_object_set_new(o, key, json_string(s));
	free(s);
}

/* Decodes exactly `n` bytes of hex (either case); -1 on bad input. */
static int hex_decode(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char c = (char)tolower((unsigned char)s[2 * i + j]);
			if (c >= '0' && c <= '9')
				v = v * 16 + (c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (c - 'a' + 10);
			else
				return -1;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

/* Decodes a hex string of any even length into a new buffer. */
static uint8_t *hex_decode_alloc(const char *s, size_t slen, size_t *n)
{
	uint8_t *out;
	if (slen % 2)
		return NULL;
	out = xmalloc(slen / 2 + 1);
	if (hex_decode(s, slen, out, slen / 2) < 0) {
		free(out);
		return NULL;
	}
	*n = slen / 2;
	return out;
}

/* A JSON string member as bytes of exactly `n`, from hex. */
static int json_hex(const json_t *o, const char *key, uint8_t *out, size_t n)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return -1;
	return hex_decode(json_string_value(v), json_string_length(v), out, n);
}

static void fmt_time(time_t t, char *out, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (fractions ignored). */
static int parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return 0;
}

static void asn1_time_str(const ASN1_TIME *t, char *out, size_t n)
{
	struct tm tm;
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
		snprintf(out, n, "?");
		return;
	}
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void cert_cn(X509 *c, char *out, size_t n)
{
	out[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, out, (int)n) < 0)
		snprintf(out, n, "(no CN)");
}

/* ---- parsing ----------------------------------------------------------- */

static void parse_header(const uint8_t *q, struct tdx_header *h)
{
	h->version = rd16(q);
	h->att_key_type = rd16(q + 2);
	h->tee_type = rd32(q + 4);
	memcpy(h->qe_vendor_id, q + 12, 16);
	memcpy(h->user_data, q + 28, 20);
}

static void parse_body(const uint8_t *b, uint16_t type, struct tdx_body *o)
{
	o->type = type;
	memcpy(o->tee_tcb_svn, b, 16);
	memcpy(o->mrseam, b + 16, 48);
	memcpy(o->mrsignerseam, b + 64, 48);
	memcpy(o->seam_attributes, b + 112, 8);
	memcpy(o->td_attributes, b + 120, 8);
	memcpy(o->xfam, b + 128, 8);
	memcpy(o->mrtd, b + 136, 48);
	memcpy(o->mrconfigid, b + 184, 48);
	memcpy(o->mrowner, b + 232, 48);
	memcpy(o->mrownerconfig, b + 280, 48);
	for (int i = 0; i < 4; i++)
		memcpy(o->rtmr[i], b + 328 + 48 * i, 48);
	memcpy(o->report_data, b + 520, 64);
	if (type == TDX_BODY_TDX15) {
		memcpy(o->tee_tcb_svn2, b + 584, 16);
		memcpy(o->mrservicetd, b + 600, 48);
	}
}

static void parse_qe_report(const uint8_t *r, struct tdx_qe_report *o)
{
	memcpy(o->cpusvn, r, 16);
	o->miscselect = rd32(r + 16);
	memcpy(o->attributes, r + 48, 16);
	memcpy(o->mrenclave, r + 64, 32);
	memcpy(o->mrsigner, r + 128, 32);
	o->isvprodid = rd16(r + 256);
	o->isvsvn = rd16(r + 258);
	memcpy(o->report_data, r + 320, 64);
}

/* QE report certification data (type 6): QE report, its signature, QE
 * auth data, then the type-5 PCK chain. */
static int parse_qe_cert_data(const uint8_t *c, size_t n, struct tdx_quote *o, struct err *e)
{
	size_t auth, off;
	uint16_t itype;
	uint32_t isize;

	if (n < QE_REPORT_LEN + 64 + 2)
		return err_set(e, ERR_INVALID, "quote truncated: QE report certification data");
	o->qe_report_raw = c;
	o->qe_report_sig = c + QE_REPORT_LEN;
	auth = rd16(c + QE_REPORT_LEN + 64);
	off = QE_REPORT_LEN + 64 + 2;
	if (n - off < auth + 6)
		return err_set(e, ERR_INVALID, "quote truncated: QE auth data");
	o->qe_auth_data = c + off;
	o->qe_auth_len = auth;
	off += auth;
	itype = rd16(c + off);
	isize = rd32(c + off + 2);
	if (itype != CERT_PCK_CHAIN)
		return err_set(e, ERR_INVALID,
		               "unsupported inner certification data type %u (want 5, PCK chain)",
		               itype);
	off += 6;
	if (isize > n - off)
		return err_set(e, ERR_INVALID,
		               "quote truncated: PCK chain declares %u bytes, %zu present", isize,
		               n - off);
	o->pck_pem = (const char *)c + off;
	o->pck_pem_len = isize;
	while (o->pck_pem_len && o->pck_pem[o->pck_pem_len - 1] == '\0')
		o->pck_pem_len--;
	parse_qe_report(o->qe_report_raw, &o->qe_report);
	return 0;
}

static int parse_sig_data(const uint8_t *sd, size_t n, struct tdx_quote *o, struct err *e)
{
	uint16_t ctype;
	uint32_t csize;

	if (n < 134)
		return err_set(e, ERR_INVALID, "quote truncated: signature data is %zu bytes", n);
	o->signature = sd;
	o->att_key = sd + 64;
	ctype = rd16(sd + 128);
	csize = rd32(sd + 130);
	if (ctype != CERT_QE_REPORT)
		return err_set(e, ERR_INVALID,
		               "unsupported certification data type %u (want 6, QE report)", ctype);
	if (csize > n - 134)
		return err_set(e, ERR_INVALID,
		               "quote truncated: certification data declares %u bytes, %zu present",
		               csize, n - 134);
	return parse_qe_cert_data(sd + 134, csize, o, e);
}

/* Finds the body of a v4 or v5 quote: its type, offset and length. */
static int locate_body(const uint8_t *q, size_t len, uint16_t *type, size_t *off, size_t *blen,
                       struct err *e)
{
	uint32_t size;

	if (q[0] == 4 && q[1] == 0) {
		*type = TDX_BODY_TDX10, *off = HDR_LEN, *blen = BODY10_LEN;
		return 0;
	}
	if (len < HDR_LEN + 6)
		return err_set(e, ERR_INVALID, "quote truncated: v5 body descriptor");
	*type = rd16(q + HDR_LEN);
	size = rd32(q + HDR_LEN + 2);
	*off = HDR_LEN + 6;
	if (*type == TDX_BODY_TDX10)
		*blen = BODY10_LEN;
	else if (*type == TDX_BODY_TDX15)
		*blen = BODY15_LEN;
	else
		return err_set(e, ERR_INVALID, "unsupported v5 body type %u (want 2 or 3, TDX)",
		               *type);
	if (size != *blen)
		return err_set(e, ERR_INVALID, "v5 body type %u declares %u bytes, want %zu", *type,
		               size, *blen);
	return 0;
}

int tdx_parse(const uint8_t *q, size_t len, struct tdx_quote *out, struct err *e)
{
	size_t off = 0, blen = 0;
	uint16_t type = 0;
	uint32_t slen;
	int rc;

	memset(out, 0, sizeof *out);
	if (len < HDR_LEN)
		return err_set(e, ERR_INVALID, "quote truncated: %zu bytes, the header needs 48",
		               len);
	parse_header(q, &out->header);
	if (out->header.version != 4 && out->header.version != 5)
		return err_set(e, ERR_INVALID, "unsupported quote version %u (want 4 or 5)",
		               out->header.version);
	if (out->header.att_key_type != TDX_ATT_KEY_ECDSA_P256)
		return err_set(e, ERR_INVALID,
		               "unsupported attestation key type %u (want 2, ECDSA P-256)",
		               out->header.att_key_type);
	if (out->header.tee_type != TDX_TEE_TYPE)
		return err_set(e, ERR_INVALID, "not a TDX quote: tee type 0x%x (want 0x81)",
		               out->header.tee_type);
	if ((rc = locate_body(q, len, &type, &off, &blen, e)))
		return rc;
	if (len < off + blen + 4)
		return err_set(e, ERR_INVALID, "quote truncated: %zu bytes, body ends at %zu", len,
		               off + blen + 4);
	parse_body(q + off, type, &out->body);
	out->signed_data = q;
	out->signed_len = off + blen;
	slen = rd32(q + off + blen);
	if (slen > len - (off + blen + 4))
		return err_set(e, ERR_INVALID,
		               "quote truncated: signature data declares %u bytes, %zu present",
		               slen, len - (off + blen + 4));
	return parse_sig_data(q + off + blen + 4, slen, out, e);
}

/* ---- crypto helpers ---------------------------------------------------- */

/* An EVP_PKEY for a raw P-256 point X || Y (SubjectPublicKeyInfo prefix). */
static EVP_PKEY *p256_key(const uint8_t xy[64])
{
	static const uint8_t prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
	                                 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
	                                 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
	uint8_t der[sizeof prefix + 64];
	const unsigned char *p = der;

	memcpy(der, prefix, sizeof prefix);
	memcpy(der + sizeof prefix, xy, 64);
	return d2i_PUBKEY(NULL, &p, sizeof der);
}

/* 1 when the raw r || s P-256 signature over `msg` verifies with `key`. */
static int ecdsa_raw_ok(EVP_PKEY *key, const void *msg, size_t n, const uint8_t rs[64])
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(rs, 32, NULL), *s = BN_bin2bn(rs + 32, 32, NULL);
	unsigned char *der = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int derlen, ok = 0;

	if (!sig || !r || !s || !md || ECDSA_SIG_set0(sig, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	derlen = i2d_ECDSA_SIG(sig, &der);
	if (derlen > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1)
		ok = EVP_DigestVerify(md, der, (size_t)derlen, msg, n) == 1;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

/* All PEM certificates in a buffer, in order. */
static STACK_OF(X509) * pem_certs(const char *pem, size_t len)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *c;

	while (b && (c = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		sk_X509_push(sk, c);
	BIO_free(b);
	ERR_clear_error();
	return sk;
}

/* The trust anchor: `root_pem`, or the built-in Intel root after checking
 * its fingerprint. */
static X509 *load_root(const char *root_pem, struct err *e)
{
	const char *pem = root_pem ? root_pem : tdx__intel_root_pem;
	STACK_OF(X509) *sk = pem_certs(pem, strlen(pem));
	X509 *root = sk_X509_num(sk) == 1 ? sk_X509_value(sk, 0) : NULL;
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (root)
		X509_up_ref(root);
	sk_X509_pop_free(sk, X509_free);
	if (!root) {
		err_set(e, ERR_CRYPTO, "trust anchor: not one PEM certificate");
		return NULL;
	}
	if (!root_pem && (X509_digest(root, EVP_sha256(), md, &mdlen) != 1 ||
	                  memcmp(md, tdx__intel_root_sha256, 32) != 0)) {
		X509_free(root);
		err_set(e, ERR_CRYPTO, "built-in Intel SGX Root CA fails its fingerprint check");
		return NULL;
	}
	return root;
}

/* Verifies `chain` (leaf first, root last) against `root` at `at`.  The last
 * certificate must be the pinned root itself, not merely chain to it. */
static int verify_chain(STACK_OF(X509) * chain, X509 *root, time_t at, const char *what,
                        struct err *e)
{
	int n = sk_X509_num(chain), rc = 0, code, depth;
	X509_STORE *st;
	X509_STORE_CTX *ctx;
	STACK_OF(X509) * mid;
	char cn[128] = "";

	if (n < 2)
		return err_set(e, ERR_INVALID, "%s: %d certificate(s), want leaf ... root", what,
		               n);
	if (X509_cmp(sk_X509_value(chain, n - 1), root) != 0) {
		cert_cn(sk_X509_value(chain, n - 1), cn, sizeof cn);
		return err_set(e, ERR_INVALID,
		               "%s: root certificate \"%s\" is not the pinned Intel SGX Root CA",
		               what, cn);
	}
	st = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	mid = sk_X509_new_null();
	for (int i = 1; i < n - 1; i++)
		sk_X509_push(mid, sk_X509_value(chain, i));
	X509_STORE_add_cert(st, root);
	if (!st || !ctx || X509_STORE_CTX_init(ctx, st, sk_X509_value(chain, 0), mid) != 1) {
		rc = err_set(e, ERR_CRYPTO, "%s: cannot set up verification", what);
		goto out;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), at);
	if (X509_verify_cert(ctx) != 1) {
		code = X509_STORE_CTX_get_error(ctx);
		depth = X509_STORE_CTX_get_error_depth(ctx);
		if (X509_STORE_CTX_get_current_cert(ctx))
			cert_cn(X509_STORE_CTX_get_current_cert(ctx), cn, sizeof cn);
		if (code == X509_V_ERR_CERT_HAS_EXPIRED)
			rc = err_set(e, ERR_INVALID, "%s: certificate expired (\"%s\")", what, cn);
		else if (code == X509_V_ERR_CERT_NOT_YET_VALID)
			rc = err_set(e, ERR_INVALID, "%s: certificate not yet valid (\"%s\")", what,
			             cn);
		else if (code == X509_V_ERR_CERT_SIGNATURE_FAILURE)
			rc = err_set(e, ERR_INVALID, "%s: signature of \"%s\" does not verify",
			             what, cn);
		else
			rc = err_set(e, ERR_INVALID, "%s: %s at depth %d (\"%s\")", what,
			             X509_verify_cert_error_string(code), depth, cn);
	}
out:
	sk_X509_free(mid);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	ERR_clear_error();
	return rc;
}

/* Checks that `crl` was issued by `issuer`, is current at `at`, and does not
 * list `subject`. */
static int check_crl(X509_CRL *crl, X509 *issuer, X509 *subject, time_t at, const char *what,
                     const char *subject_what, struct err *e)
{
	char a[128] = "", b[128] = "", t[40];
	X509_REVOKED *rev = NULL;
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);

	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
		X509_NAME_get_text_by_NID(X509_CRL_get_issuer(crl), NID_commonName, a, sizeof a);
		cert_cn(issuer, b, sizeof b);
		return err_set(e, ERR_INVALID, "%s is issued by \"%s\", not by \"%s\"", what, a, b);
	}
	if (X509_CRL_verify(crl, X509_get0_pubkey(issuer)) != 1) {
		ERR_clear_error();
		cert_cn(issuer, b, sizeof b);
		return err_set(e, ERR_INVALID, "%s signature does not verify with \"%s\"", what, b);
	}
	if (X509_cmp_time(X509_CRL_get0_lastUpdate(crl), &at) > 0)
		return err_set(e, ERR_INVALID, "%s is not yet valid", what);
	if (next && X509_cmp_time(next, &at) < 0) {
		asn1_time_str(next, t, sizeof t);
		return err_set(e, ERR_INVALID, "%s expired (nextUpdate %s)", what, t);
	}
	if (X509_CRL_get0_by_cert(crl, &rev, subject) == 1)
		return err_set(e, ERR_INVALID, "%s revoked by %s", subject_what, what);
	return 0;
}

/* ---- PCK certificate SGX extension ------------------------------------- */

/* The {OID, value} pairs of a DER SEQUENCE OF SEQUENCE. */
static STACK_OF(ASN1_TYPE) * der_seq(const ASN1_STRING *s)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	return d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(s));
}

/* Splits one {OID, value} element: the OID's last arc and the value. */
static int oid_pair(ASN1_TYPE *el, char *oid, size_t n, STACK_OF(ASN1_TYPE) * *pair)
{
	ASN1_TYPE *o;
	if (el->type != V_ASN1_SEQUENCE)
		return -1;
	*pair = der_seq(el->value.sequence);
	if (!*pair || sk_ASN1_TYPE_num(*pair) != 2)
		return -1;
	o = sk_ASN1_TYPE_value(*pair, 0);
	if (o->type != V_ASN1_OBJECT || OBJ_obj2txt(oid, (int)n, o->value.object, 1) <= 0)
		return -1;
	return 0;
}

static int octets(ASN1_TYPE *v, uint8_t *out, size_t n)
{
	if (v->type != V_ASN1_OCTET_STRING ||
	    (size_t)ASN1_STRING_length(v->value.octet_string) != n)
		return -1;
	memcpy(out, ASN1_STRING_get0_data(v->value.octet_string), n);
	return 0;
}

/* The TCB sub-sequence: .2.1-.2.16 component SVNs, .2.17 PCESVN, .2.18
 * CPUSVN.  Returns a bit mask of what was found (bit 0..15 components, 16
 * pcesvn, 17 cpusvn). */
static long pck_tcb(ASN1_TYPE *v, struct tdx_pck_info *o)
{
	STACK_OF(ASN1_TYPE) * seq, *pair = NULL;
	char oid[80];
	long found = 0;
	int arc;

	if (v->type != V_ASN1_SEQUENCE || !(seq = der_seq(v->value.sequence)))
		return 0;
	for (int i = 0; i < sk_ASN1_TYPE_num(seq);
	     i++, sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free), pair = NULL) {
		ASN1_TYPE *val;
		if (oid_pair(sk_ASN1_TYPE_value(seq, i), oid, sizeof oid, &pair) < 0 ||
		    strncmp(oid, SGX_EXT_OID ".2.", strlen(SGX_EXT_OID) + 3) != 0)
			continue;
		arc = atoi(oid + strlen(SGX_EXT_OID) + 3);
		val = sk_ASN1_TYPE_value(pair, 1);
		if (arc >= 1 && arc <= 17 && val->type == V_ASN1_INTEGER) {
			long x = ASN1_INTEGER_get(val->value.integer);
			if (x < 0 || x > (arc == 17 ? 65535 : 255))
				continue;
			if (arc == 17)
				o->pcesvn = (uint16_t)x;
			else
				o->sgx_tcb[arc - 1] = (uint8_t)x;
			found |= 1L << (arc - 1);
		} else if (arc == 18 && octets(val, o->cpusvn, 16) == 0) {
			found |= 1L << 17;
		}
	}
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return found;
}

/* Walks the top-level SGX extension; returns a mask of found items (bit 0
 * ppid, 1 tcb, 2 pceid, 3 fmspc). */
static int pck_walk(STACK_OF(ASN1_TYPE) * top, struct tdx_pck_info *o)
{
	STACK_OF(ASN1_TYPE) *pair = NULL;
	char oid[80];
	int found = 0;
	const char *sub;

	for (int i = 0; i < sk_ASN1_TYPE_num(top);
	     i++, sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free), pair = NULL) {
		ASN1_TYPE *val;
		if (oid_pair(sk_ASN1_TYPE_value(top, i), oid, sizeof oid, &pair) < 0 ||
		    strncmp(oid, SGX_EXT_OID ".", strlen(SGX_EXT_OID) + 1) != 0)
			continue;
		sub = oid + strlen(SGX_EXT_OID) + 1;
		val = sk_ASN1_TYPE_value(pair, 1);
		if (!strcmp(sub, "1") && octets(val, o->ppid, 16) == 0)
			found |= 1;
		else if (!strcmp(sub, "2") && pck_tcb(val, o) == 0x3ffffL)
			found |= 2;
		else if (!strcmp(sub, "3") && octets(val, o->pceid, 2) == 0)
			found |= 4;
		else if (!strcmp(sub, "4") && octets(val, o->fmspc, 6) == 0)
			found |= 8;
		else if (!strcmp(sub, "5") && val->type == V_ASN1_ENUMERATED)
			o->sgx_type = (int)ASN1_ENUMERATED_get(val->value.enumerated);
	}
	return found;
}

static int pck_info(X509 *leaf, struct tdx_pck_info *o, struct err *e)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(SGX_EXT_OID, 1);
	int idx = obj ? X509_get_ext_by_OBJ(leaf, obj, -1) : -1;
	STACK_OF(ASN1_TYPE) * top;
	int found;

	ASN1_OBJECT_free(obj);
	memset(o, 0, sizeof *o);
	o->sgx_type = -1;
	if (idx < 0)
		return err_set(e, ERR_INVALID, "PCK certificate has no SGX extension (%s)",
		               SGX_EXT_OID);
	top = der_seq(X509_EXTENSION_get_data(X509_get_ext(leaf, idx)));
	if (!top)
		return err_set(e, ERR_INVALID, "PCK certificate: malformed SGX extension");
	found = pck_walk(top, o);
	sk_ASN1_TYPE_pop_free(top, ASN1_TYPE_free);
	ERR_clear_error();
	if (!(found & 2))
		return err_set(e, ERR_INVALID, "PCK certificate: SGX extension lacks complete TCB");
	if (!(found & 4))
		return err_set(e, ERR_INVALID, "PCK certificate: SGX extension lacks PCE-ID");
	if (!(found & 8))
		return err_set(e, ERR_INVALID, "PCK certificate: SGX extension lacks FMSPC");
	return 0;
}

int tdx_pck_info_from_pem(const char *pem, size_t len, struct tdx_pck_info *out, struct err *e)
{
	STACK_OF(X509) *sk = pem_certs(pem, len);
	int rc = sk_X509_num(sk) > 0 ? pck_info(sk_X509_value(sk, 0), out, e)
	                             : err_set(e, ERR_INVALID, "no PEM certificate");
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* ---- collateral -------------------------------------------------------- */

/* A signed PCS document: the exact signed bytes, their signature, and the
 * parse of those same bytes. */
struct signed_doc {
	char *raw;
	size_t len;
	uint8_t sig[64];
	json_t *doc;
};

struct tdx_collateral {
	struct signed_doc tcb_info, qe_identity;
	STACK_OF(X509) * tcb_chain, *qe_chain;
	STACK_OF(X509_CRL) * crls; /* root CA and PCK CA CRLs */
};

struct tdx_collateral *tdx_collateral_new(void)
{
	return xcalloc(1, sizeof(struct tdx_collateral));
}

static void doc_fini(struct signed_doc *d)
{
	free(d->raw);
	json_decref(d->doc);
	memset(d, 0, sizeof *d);
}

void tdx_collateral_free(struct tdx_collateral *c)
{
	if (!c)
		return;
	doc_fini(&c->tcb_info);
	doc_fini(&c->qe_identity);
	sk_X509_pop_free(c->tcb_chain, X509_free);
	sk_X509_pop_free(c->qe_chain, X509_free);
	sk_X509_CRL_pop_free(c->crls, X509_CRL_free);
	free(c);
}

static int doc_set(struct signed_doc *d, const char *raw, size_t len, const char *sighex,
                   const char *what, struct err *e)
{
	json_error_t je;
	json_t *doc = json_loadb(raw, len, 0, &je);

	if (!json_is_object(doc)) {
		json_decref(doc);
		return err_set(e, ERR_INVALID, "%s: not a JSON object: %s", what, je.text);
	}
	doc_fini(d);
	if (!sighex || hex_decode(sighex, strlen(sighex), d->sig, 64) < 0) {
		json_decref(doc);
		return err_set(e, ERR_INVALID, "%s: signature is not 64 bytes of hex", what);
	}
	d->raw = xstrndup(raw, len);
	d->len = len;
	d->doc = doc;
	return 0;
}

/* The exact text of the object value of top-level `key` in `text`: from its
 * '{' to the matching '}', honouring strings. */
static int raw_object(const char *text, size_t len, const char *key, const char **start, size_t *n)
{
	char pat[64];
	const char *p, *end = text + len;
	int depth = 0, in_str = 0;

	snprintf(pat, sizeof pat, "\"%s\"", key);
	p = memmem(text, len, pat, strlen(pat));
	if (!p)
		return -1;
	for (p += strlen(pat); p < end && (isspace((unsigned char)*p) || *p == ':'); p++)
		;
	if (p >= end || *p != '{')
		return -1;
	*start = p;
	for (; p < end; p++) {
		if (in_str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				in_str = 0;
		} else if (*p == '"') {
			in_str = 1;
		} else if (*p == '{') {
			depth++;
		} else if (*p == '}' && --depth == 0) {
			*n = (size_t)(p - *start) + 1;
			return 0;
		}
	}
	return -1;
}

static int add_pcs_response(struct signed_doc *d, const char *text, size_t len, json_t *top,
                            const char *key, const char *what, struct err *e)
{
	const char *start;
	size_t n;

	if (raw_object(text, len, key, &start, &n) < 0)
		return err_set(e, ERR_INVALID, "%s: cannot locate the \"%s\" object", what, key);
	return doc_set(d, start, n, json_string_value(json_object_get(top, "signature")), what, e);
}

static X509_CRL *crl_from_bytes(const uint8_t *p, size_t n)
{
	const unsigned char *q = p;
	X509_CRL *crl;
	BIO *b;

	if (n && p[0] == 0x30)
		return d2i_X509_CRL(NULL, &q, (long)n);
	b = BIO_new_mem_buf(p, (int)n);
	crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	return crl;
}

/* Keeps a CRL, replacing an earlier one from the same issuer.  Which CRL
 * applies (root CA or PCK CA) is decided at verification, by issuer. */
static int add_crl(struct tdx_collateral *c, X509_CRL *crl, struct err *e)
{
	if (!crl) {
		ERR_clear_error();
		return err_set(e, ERR_INVALID, "collateral: unreadable CRL");
	}
	if (!c->crls)
		c->crls = sk_X509_CRL_new_null();
	for (int i = 0; i < sk_X509_CRL_num(c->crls); i++) {
		X509_CRL *old = sk_X509_CRL_value(c->crls, i);
		if (X509_NAME_cmp(X509_CRL_get_issuer(old), X509_CRL_get_issuer(crl)) == 0) {
			sk_X509_CRL_set(c->crls, i, crl);
			X509_CRL_free(old);
			return 0;
		}
	}
	sk_X509_CRL_push(c->crls, crl);
	return 0;
}

static int add_crl_hex(struct tdx_collateral *c, const json_t *v, struct err *e)
{
	size_t n;
	uint8_t *der;
	int rc;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) ||
	    !(der = hex_decode_alloc(json_string_value(v), json_string_length(v), &n)))
		return err_set(e, ERR_INVALID, "collateral: CRL is not hex DER");
	rc = add_crl(c, crl_from_bytes(der, n), e);
	free(der);
	return rc;
}

/* Files a PEM chain led by an "Intel SGX TCB Signing" certificate; other
 * chains (e.g. the PCK CRL issuer chain) are ignored: the quote carries its
 * own PCK CA. */
static int add_chain(STACK_OF(X509) * *slot, const char *pem, size_t len, struct err *e)
{
	STACK_OF(X509) *sk = pem_certs(pem, len);
	char cn[128] = "";

	if (sk_X509_num(sk) < 1) {
		sk_X509_free(sk);
		return err_set(e, ERR_INVALID, "collateral: no PEM certificate in issuer chain");
	}
	cert_cn(sk_X509_value(sk, 0), cn, sizeof cn);
	if (strcmp(cn, "Intel SGX TCB Signing") != 0) {
		sk_X509_pop_free(sk, X509_free);
		return 0;
	}
	sk_X509_pop_free(*slot, X509_free);
	*slot = sk;
	return 0;
}

static int add_chain_json(STACK_OF(X509) * *slot, const json_t *v, struct err *e)
{
	if (!json_is_string(v))
		return 0;
	return add_chain(slot, json_string_value(v), json_string_length(v), e);
}

/* dcap-qvl / QCNL shape: every piece in one object, TCB info and QE
 * identity as the exact signed text. */
static int add_bundle(struct tdx_collateral *c, json_t *top, struct err *e)
{
	const json_t *ti = json_object_get(top, "tcb_info");
	const json_t *qi = json_object_get(top, "qe_identity");
	int rc;

	if (!json_is_string(ti) || !json_is_string(qi))
		return err_set(e, ERR_INVALID,
		               "collateral: tcb_info and qe_identity must be strings");
	if ((rc = doc_set(&c->tcb_info, json_string_value(ti), json_string_length(ti),
	                  json_string_value(json_object_get(top, "tcb_info_signature")), "TCB info",
	                  e)) ||
	    (rc = doc_set(&c->qe_identity, json_string_value(qi), json_string_length(qi),
	                  json_string_value(json_object_get(top, "qe_identity_signature")),
	                  "QE identity", e)))
		return rc;
	if ((rc =
	         add_chain_json(&c->tcb_chain, json_object_get(top, "tcb_info_issuer_chain"), e)) ||
	    (rc =
	         add_chain_json(&c->qe_chain, json_object_get(top, "qe_identity_issuer_chain"), e)))
		return rc;
	if ((rc = add_crl_hex(c, json_object_get(top, "root_ca_crl"), e)))
		return rc;
	return add_crl_hex(c, json_object_get(top, "pck_crl"), e);
}

static int add_json(struct tdx_collateral *c, const char *data, size_t len, struct err *e)
{
	json_error_t je;
	json_t *top = json_loadb(data, len, 0, &je);
	int rc;

	if (!json_is_object(top))
		rc = err_set(e, ERR_INVALID, "collateral: bad JSON: %s", je.text);
	else if (json_object_get(top, "tcb_info"))
		rc = add_bundle(c, top, e);
	else if (json_object_get(top, "tcbInfo"))
		rc = add_pcs_response(&c->tcb_info, data, len, top, "tcbInfo", "TCB info", e);
	else if (json_object_get(top, "enclaveIdentity"))
		rc = add_pcs_response(&c->qe_identity, data, len, top, "enclaveIdentity",
		                      "QE identity", e);
	else
		rc = err_set(e, ERR_INVALID, "collateral: unrecognised JSON document");
	json_decref(top);
	return rc;
}

int tdx_collateral_add(struct tdx_collateral *c, const char *data, size_t len, struct err *e)
{
	size_t i = 0;
	int rc;

	while (i < len && isspace((unsigned char)data[i]))
		i++;
	if (i < len && data[i] == '{')
		return add_json(c, data, len, e);
	if (memmem(data, len, "-----BEGIN CERTIFICATE", 22)) {
		if ((rc = add_chain(&c->tcb_chain, data, len, e)))
			return rc;
		return add_chain(&c->qe_chain, data, len, e);
	}
	return add_crl(c, crl_from_bytes((const uint8_t *)data, len), e);
}

int tdx_collateral_load(const char *json_text, size_t len, struct tdx_collateral **out,
                        struct err *e)
{
	struct tdx_collateral *c = tdx_collateral_new();
	int rc = tdx_collateral_add(c, json_text, len, e);

	if (rc) {
		tdx_collateral_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* ---- TCB evaluation ---------------------------------------------------- */

/* Statuses as flags so that combining is OR; the name is derived back. */
enum { ST_SWH = 1, ST_CONF = 2, ST_OOD = 4, ST_REVOKED = 8 };

static int status_parse(const char *s)
{
	static const struct {
		const char *name;
		int flags;
	} tab[] = {
	    {"UpToDate", 0},
	    {"SWHardeningNeeded", ST_SWH},
	    {"ConfigurationNeeded", ST_CONF},
	    {"ConfigurationAndSWHardeningNeeded", ST_CONF | ST_SWH},
	    {"OutOfDate", ST_OOD},
	    {"OutOfDateConfigurationNeeded", ST_OOD | ST_CONF},
	    {"Revoked", ST_REVOKED},
	};
	for (size_t i = 0; s && i < sizeof tab / sizeof tab[0]; i++)
		if (!strcmp(s, tab[i].name))
			return tab[i].flags;
	return -1;
}

static const char *status_name(int f)
{
	if (f & ST_REVOKED)
		return "Revoked";
	if ((f & ST_OOD) && (f & ST_CONF))
		return "OutOfDateConfigurationNeeded";
	if (f & ST_OOD)
		return "OutOfDate";
	if ((f & ST_CONF) && (f & ST_SWH))
		return "ConfigurationAndSWHardeningNeeded";
	if (f & ST_CONF)
		return "ConfigurationNeeded";
	if (f & ST_SWH)
		return "SWHardeningNeeded";
	return "UpToDate";
}

/* The evaluation's running state. */
struct tcb_eval {
	int status;
	json_t *advisories; /* array of unique strings */
	json_t *claims;     /* borrowed */
};

static void add_advisories(struct tcb_eval *t, const json_t *level)
{
	json_t *a = json_object_get(level, "advisoryIDs"), *v, *w;
	size_t i, j;

	json_array_foreach(a, i, v)
	{
		int dup = 0;
		json_array_foreach(t->advisories, j, w) dup |= json_equal(v, w);
		if (json_is_string(v) && !dup)
			json_array_append(t->advisories, v);
	}
}

/* Applies one level's status; -1 on an unknown status string. */
static int apply_level(struct tcb_eval *t, const json_t *level, const char *what, struct err *e)
{
	const char *s = json_string_value(json_object_get(level, "tcbStatus"));
	int f = status_parse(s);

	if (f < 0)
		return err_set(e, ERR_INVALID, "%s: unknown tcbStatus \"%s\"", what, s ? s : "");
	t->status |= f;
	add_advisories(t, level);
	return 0;
}

/* Checks a signed document: signing chain to the root, signature over the
 * raw bytes, id and validity window at `at`. */
static int check_doc(const struct signed_doc *d, STACK_OF(X509) * chain, X509 *root, time_t at,
                     const char *what, const char *want_id, struct err *e)
{
	char chainwhat[80], t[40];
	const char *id = json_string_value(json_object_get(d->doc, "id"));
	time_t issue, next;
	int rc;

	if (!chain)
		return err_set(e, ERR_INVALID, "collateral: %s issuer chain missing", what);
	snprintf(chainwhat, sizeof chainwhat, "%s signing chain", what);
	if ((rc = verify_chain(chain, root, at, chainwhat, e)))
		return rc;
	if (!ecdsa_raw_ok(X509_get0_pubkey(sk_X509_value(chain, 0)), d->raw, d->len, d->sig))
		return err_set(e, ERR_INVALID, "%s signature does not verify", what);
	if (!id || strcmp(id, want_id) != 0)
		return err_set(e, ERR_INVALID, "%s id is \"%s\", want \"%s\"", what, id ? id : "",
		               want_id);
	if (parse_time(json_string_value(json_object_get(d->doc, "issueDate")), &issue) < 0 ||
	    parse_time(json_string_value(json_object_get(d->doc, "nextUpdate")), &next) < 0)
		return err_set(e, ERR_INVALID, "%s: bad issueDate/nextUpdate", what);
	if (at < issue)
		return err_set(e, ERR_INVALID, "%s is not yet valid (issueDate %s)", what,
		               json_string_value(json_object_get(d->doc, "issueDate")));
	if (at > next) {
		fmt_time(next, t, sizeof t);
		return err_set(e, ERR_INVALID, "%s expired (nextUpdate %s)", what, t);
	}
	return 0;
}

/* The module identity or tdxModule: MRSIGNERSEAM and SEAM attributes. */
static int check_module_signer(const json_t *m, const struct tdx_body *b, const char *what,
                               struct err *e)
{
	uint8_t mrsigner[48], attr[8], mask[8];

	if (json_hex(m, "mrsigner", mrsigner, 48) || json_hex(m, "attributes", attr, 8) ||
	    json_hex(m, "attributesMask", mask, 8))
		return err_set(e, ERR_INVALID, "TCB info: malformed %s", what);
	if (memcmp(mrsigner, b->mrsignerseam, 48) != 0)
		return err_set(e, ERR_INVALID, "MRSIGNERSEAM does not match the %s mrsigner", what);
	for (int i = 0; i < 8; i++)
		if ((b->seam_attributes[i] & mask[i]) != attr[i])
			return err_set(e, ERR_INVALID, "SEAM attributes do not match the %s", what);
	return 0;
}

/* TDX 1.5+ modules (tee_tcb_svn[1] > 0): the identity "TDX_%02X" and its
 * first level with isvsvn <= tee_tcb_svn[0]. */
static int eval_module(struct tcb_eval *t, const json_t *ti, const struct tdx_body *b,
                       struct err *e)
{
	const json_t *ids = json_object_get(ti, "tdxModuleIdentities"), *m, *lv, *l;
	char want[16];
	size_t i, j;
	int rc;

	if (b->tee_tcb_svn[1] == 0 || !ids)
		return check_module_signer(json_object_get(ti, "tdxModule"), b, "tdxModule", e);
	snprintf(want, sizeof want, "TDX_%02X", b->tee_tcb_svn[1]);
	json_array_foreach(ids, i, m)
	{
		if (!json_is_string(json_object_get(m, "id")) ||
		    strcmp(json_string_value(json_object_get(m, "id")), want) != 0)
			continue;
		if ((rc = check_module_signer(m, b, want, e)))
			return rc;
		lv = json_object_get(m, "tcbLevels");
		json_array_foreach(lv, j, l)
		{
			json_int_t svn = json_integer_value(
			    json_object_get(json_object_get(l, "tcb"), "isvsvn"));
			if (b->tee_tcb_svn[0] < svn)
				continue;
			json_object_set_new(t->claims, "tdx_module",
			                    json_pack("{s:s,s:O?}", "id", want, "status",
			                              json_object_get(l, "tcbStatus")));
			return apply_level(t, l, want, e);
		}
		return err_set(e, ERR_INVALID,
		               "no TDX module TCB level matches (%s isvsvn %u below every level)",
		               want, b->tee_tcb_svn[0]);
	}
	return err_set(e, ERR_INVALID, "TCB info has no TDX module identity %s", want);
}

/* Reads one level's 16 {svn} components into `out`; -1 if malformed. */
static int level_svns(const json_t *arr, int out[16])
{
	if (json_array_size(arr) != 16)
		return -1;
	for (size_t i = 0; i < 16; i++) {
		const json_t *svn = json_object_get(json_array_get(arr, i), "svn");
		if (!json_is_integer(svn))
			return -1;
		out[i] = (int)json_integer_value(svn);
	}
	return 0;
}

/* 1 when the platform (PCK SGX components and PCESVN, TD tee_tcb_svn) is
 * at or above `level`; 0 when not; -1 when the level is malformed. */
static int level_matches(const json_t *level, const struct tdx_pck_info *pck,
                         const struct tdx_body *b)
{
	const json_t *tcb = json_object_get(level, "tcb");
	int sgx[16], tdx[16];
	int from = b->tee_tcb_svn[1] > 0 ? 2 : 0;

	if (level_svns(json_object_get(tcb, "sgxtcbcomponents"), sgx) < 0 ||
	    level_svns(json_object_get(tcb, "tdxtcbcomponents"), tdx) < 0 ||
	    !json_is_integer(json_object_get(tcb, "pcesvn")))
		return -1;
	for (int i = 0; i < 16; i++)
		if (pck->sgx_tcb[i] < sgx[i])
			return 0;
	if (pck->pcesvn < json_integer_value(json_object_get(tcb, "pcesvn")))
		return 0;
	for (int i = from; i < 16; i++)
		if (b->tee_tcb_svn[i] < tdx[i])
			return 0;
	return 1;
}

static int eval_platform(struct tcb_eval *t, const json_t *ti, const struct tdx_pck_info *pck,
                         const struct tdx_body *b, struct err *e)
{
	const json_t *levels = json_object_get(ti, "tcbLevels"), *l;
	size_t i;
	int m;

	json_array_foreach(levels, i, l)
	{
		if ((m = level_matches(l, pck, b)) < 0)
			return err_set(e, ERR_INVALID, "TCB info: malformed tcbLevels[%zu]", i);
		if (!m)
			continue;
		json_object_set_new(t->claims, "platform_tcb",
		                    json_pack("{s:O?,s:O?}", "status",
		                              json_object_get(l, "tcbStatus"), "date",
		                              json_object_get(l, "tcbDate")));
		return apply_level(t, l, "TCB info", e);
	}
	return err_set(e, ERR_INVALID, "no TCB level matches (platform below every level)");
}

static int check_tcb_info(struct tcb_eval *t, const json_t *ti, const struct tdx_pck_info *pck,
                          const struct tdx_body *b, struct err *e)
{
	uint8_t fmspc[6], pceid[2];
	char h[16];
	int rc;

	if (json_integer_value(json_object_get(ti, "version")) != 3)
		return err_set(e, ERR_INVALID, "TCB info version %lld unsupported (want 3)",
		               (long long)json_integer_value(json_object_get(ti, "version")));
	if (json_hex(ti, "fmspc", fmspc, 6) || memcmp(fmspc, pck->fmspc, 6) != 0) {
		hex_encode(pck->fmspc, 6, h);
		return err_set(e, ERR_INVALID, "TCB info FMSPC does not match the PCK's (%s)", h);
	}
	if (json_hex(ti, "pceId", pceid, 2) || memcmp(pceid, pck->pceid, 2) != 0)
		return err_set(e, ERR_INVALID, "TCB info PCE-ID does not match the PCK's");
	if ((rc = eval_module(t, ti, b, e)))
		return rc;
	return eval_platform(t, ti, pck, b, e);
}

/* The QE report against the TD_QE identity, then its TCB level. */
static int check_qe_identity(struct tcb_eval *t, const json_t *qi, const struct tdx_qe_report *r,
                             struct err *e)
{
	uint8_t mrsigner[32], attr[16], amask[16], misc[4], mmask[4];
	uint32_t ms, mm;
	const json_t *l;
	size_t i;

	if (json_hex(qi, "mrsigner", mrsigner, 32) || json_hex(qi, "attributes", attr, 16) ||
	    json_hex(qi, "attributesMask", amask, 16) || json_hex(qi, "miscselect", misc, 4) ||
	    json_hex(qi, "miscselectMask", mmask, 4))
		return err_set(e, ERR_INVALID, "QE identity: malformed");
	if (memcmp(mrsigner, r->mrsigner, 32) != 0)
		return err_set(e, ERR_INVALID, "QE report MRSIGNER does not match the QE identity");
	if (json_integer_value(json_object_get(qi, "isvprodid")) != r->isvprodid)
		return err_set(e, ERR_INVALID,
		               "QE report ISVPRODID %u does not match the QE identity",
		               r->isvprodid);
	/* miscselect is shown big-endian in the JSON. */
	ms = (uint32_t)misc[0] << 24 | misc[1] << 16 | misc[2] << 8 | misc[3];
	mm = (uint32_t)mmask[0] << 24 | mmask[1] << 16 | mmask[2] << 8 | mmask[3];
	if ((r->miscselect & mm) != ms)
		return err_set(e, ERR_INVALID,
		               "QE report MISCSELECT does not match the QE identity");
	for (int k = 0; k < 16; k++)
		if ((r->attributes[k] & amask[k]) != attr[k])
			return err_set(e, ERR_INVALID,
			               "QE report attributes do not match the QE identity");
	json_array_foreach(json_object_get(qi, "tcbLevels"), i, l)
	{
		json_int_t svn =
		    json_integer_value(json_object_get(json_object_get(l, "tcb"), "isvsvn"));
		if (r->isvsvn < svn)
			continue;
		json_object_set_new(t->claims, "qe_tcb",
		                    json_pack("{s:i,s:O?,s:O?}", "isvsvn", r->isvsvn, "status",
		                              json_object_get(l, "tcbStatus"), "date",
		                              json_object_get(l, "tcbDate")));
		return apply_level(t, l, "QE identity", e);
	}
	return err_set(e, ERR_INVALID, "no QE TCB level matches (QE isvsvn %u below every level)",
	               r->isvsvn);
}

/* Verifies the TCB info and QE identity and computes the TCB status into
 * `claims`.  Revoked is a rejection. */
static int eval_collateral(const struct tdx_collateral *c, X509 *root, time_t at,
                           const struct tdx_quote *q, const struct tdx_pck_info *pck,
                           json_t *claims, struct err *e)
{
	struct tcb_eval t = {0, json_array(), claims};
	int rc;

	if (!c->qe_identity.doc)
		rc = err_set(e, ERR_INVALID,
		             "collateral: QE identity missing (import TD_QE identity)");
	else if (!(rc = check_doc(&c->tcb_info, c->tcb_chain, root, at, "TCB info", "TDX", e)) &&
	         !(rc = check_doc(&c->qe_identity, c->qe_chain ? c->qe_chain : c->tcb_chain, root,
	                          at, "QE identity", "TD_QE", e)) &&
	         !(rc = check_tcb_info(&t, c->tcb_info.doc, pck, &q->body, e)) &&
	         !(rc = check_qe_identity(&t, c->qe_identity.doc, &q->qe_report, e))) {
		json_object_set_new(claims, "tcb_status", json_string(status_name(t.status)));
		json_object_set(claims, "advisory_ids", t.advisories);
		json_object_set(claims, "tcb_evaluation_data_number",
		                json_object_get(c->tcb_info.doc, "tcbEvaluationDataNumber"));
		json_object_set(claims, "tcb_info_next_update",
		                json_object_get(c->tcb_info.doc, "nextUpdate"));
		if (t.status & ST_REVOKED)
			rc = err_set(e, ERR_INVALID, "TCB status is Revoked");
	}
	json_decref(t.advisories);
	return rc;
}

/* ---- claims ------------------------------------------------------------ */

static json_t *td_attributes_claims(const uint8_t a[8])
{
	return json_pack("{s:b,s:b,s:b,s:b,s:b}", "debug", a[0] & 1, "septve_disable",
	                 (a[3] >> 4) & 1, "pks", (a[3] >> 6) & 1, "key_locker", (a[3] >> 7) & 1,
	                 "perfmon", (a[7] >> 7) & 1);
}

static json_t *qe_claims(const struct tdx_qe_report *r)
{
	json_t *o = json_object();
	set_hex(o, "cpusvn", r->cpusvn, 16);
	json_object_set_new(o, "miscselect", json_integer(r->miscselect));
	set_hex(o, "attributes", r->attributes, 16);
	set_hex(o, "mrenclave", r->mrenclave, 32);
	set_hex(o, "mrsigner", r->mrsigner, 32);
	json_object_set_new(o, "isvprodid", json_integer(r->isvprodid));
	json_object_set_new(o, "isvsvn", json_integer(r->isvsvn));
	return o;
}

/* Header and body claims of a parsed quote. */
static json_t *quote_claims(const struct tdx_quote *q)
{
	const struct tdx_body *b = &q->body;
	json_t *o = json_object();
	char name[8];

	json_object_set_new(o, "tee", json_string("tdx"));
	json_object_set_new(o, "quote_version", json_integer(q->header.version));
	json_object_set_new(o, "att_key_type", json_integer(q->header.att_key_type));
	json_object_set_new(o, "tee_type", json_integer(q->header.tee_type));
	set_hex(o, "qe_vendor_id", q->header.qe_vendor_id, 16);
	set_hex(o, "user_data", q->header.user_data, 20);
	json_object_set_new(o, "body_type", json_integer(b->type));
	set_hex(o, "tee_tcb_svn", b->tee_tcb_svn, 16);
	set_hex(o, "mrseam", b->mrseam, 48);
	set_hex(o, "mrsignerseam", b->mrsignerseam, 48);
	set_hex(o, "seam_attributes", b->seam_attributes, 8);
	set_hex(o, "td_attributes", b->td_attributes, 8);
	json_object_set_new(o, "td_attributes_decoded", td_attributes_claims(b->td_attributes));
	json_object_set_new(o, "debug", json_boolean(b->td_attributes[0] & 1));
	set_hex(o, "xfam", b->xfam, 8);
	set_hex(o, "mrtd", b->mrtd, 48);
	set_hex(o, "mrconfigid", b->mrconfigid, 48);
	set_hex(o, "mrowner", b->mrowner, 48);
	set_hex(o, "mrownerconfig", b->mrownerconfig, 48);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "rtmr%d", i);
		set_hex(o, name, b->rtmr[i], 48);
	}
	set_hex(o, "report_data", b->report_data, 64);
	if (b->type == TDX_BODY_TDX15) {
		set_hex(o, "tee_tcb_svn2", b->tee_tcb_svn2, 16);
		set_hex(o, "mrservicetd", b->mrservicetd, 48);
	}
	json_object_set_new(o, "qe", qe_claims(&q->qe_report));
	json_object_set_new(o, "tcb_status", json_string("unknown"));
	return o;
}

static json_t *pck_claims(const struct tdx_pck_info *p, X509 *leaf, X509 *ca)
{
	json_t *o = json_object(), *comps = json_array();
	char t[40], cn[128];

	set_hex(o, "fmspc", p->fmspc, 6);
	set_hex(o, "pceid", p->pceid, 2);
	set_hex(o, "ppid", p->ppid, 16);
	set_hex(o, "cpusvn", p->cpusvn, 16);
	json_object_set_new(o, "pcesvn", json_integer(p->pcesvn));
	for (int i = 0; i < 16; i++)
		json_array_append_new(comps, json_integer(p->sgx_tcb[i]));
	json_object_set_new(o, "sgx_tcb_components", comps);
	json_object_set_new(o, "sgx_type", json_integer(p->sgx_type));
	cert_cn(ca, cn, sizeof cn);
	json_object_set_new(o, "issuer", json_string(cn));
	asn1_time_str(X509_get0_notBefore(leaf), t, sizeof t);
	json_object_set_new(o, "not_before", json_string(t));
	asn1_time_str(X509_get0_notAfter(leaf), t, sizeof t);
	json_object_set_new(o, "not_after", json_string(t));
	return o;
}

/* ---- verification ------------------------------------------------------ */

/* Per-verification resources, freed in one place. */
struct vstate {
	struct tdx_quote q;
	X509 *root;
	STACK_OF(X509) * chain;
	EVP_PKEY *att;
	struct tdx_pck_info pck;
};

static void vstate_fini(struct vstate *v)
{
	X509_free(v->root);
	sk_X509_pop_free(v->chain, X509_free);
	EVP_PKEY_free(v->att);
}

/* SHA-256(attestation key || QE auth data), the first half of the QE
 * report_data that binds the attestation key to the QE. */
static void binding_hash(const struct tdx_quote *q, uint8_t out[32])
{
	uint8_t *buf = xmalloc(64 + q->qe_auth_len);

	memcpy(buf, q->att_key, 64);
	memcpy(buf + 64, q->qe_auth_data, q->qe_auth_len);
	SHA256(buf, 64 + q->qe_auth_len, out);
	free(buf);
}

/* PCK chain, QE report signature, binding, quote signature. */
static int verify_signatures(struct vstate *v, time_t at, struct err *e)
{
	struct tdx_quote *q = &v->q;
	uint8_t bind[64] = {0};
	int rc;

	v->chain = pem_certs(q->pck_pem, q->pck_pem_len);
	if (sk_X509_num(v->chain) != 3)
		return err_set(e, ERR_INVALID, "PCK chain: %d certificate(s), want leaf, CA, root",
		               sk_X509_num(v->chain));
	if ((rc = verify_chain(v->chain, v->root, at, "PCK chain", e)))
		return rc;
	if (!ecdsa_raw_ok(X509_get0_pubkey(sk_X509_value(v->chain, 0)), q->qe_report_raw,
	                  QE_REPORT_LEN, q->qe_report_sig))
		return err_set(e, ERR_INVALID,
		               "QE report signature does not verify with the PCK key");
	binding_hash(q, bind);
	if (memcmp(bind, q->qe_report.report_data, 64) != 0)
		return err_set(e, ERR_INVALID, "QE report data does not bind the attestation key");
	if (!(v->att = p256_key(q->att_key))) {
		ERR_clear_error();
		return err_set(e, ERR_INVALID, "attestation key is not a P-256 point");
	}
	if (!ecdsa_raw_ok(v->att, q->signed_data, q->signed_len, q->signature))
		return err_set(e, ERR_INVALID,
		               "quote signature does not verify with the attestation key");
	return 0;
}

/* Applies each CRL issued by the root (to the PCK CA) or by the PCK CA (to
 * the leaf); CRLs of other CAs (e.g. the Processor CA's) do not apply. */
static int verify_crls(const struct vstate *v, const struct tdx_collateral *c, time_t at,
                       struct err *e)
{
	X509 *leaf = sk_X509_value(v->chain, 0), *ca = sk_X509_value(v->chain, 1);
	int rc = 0;

	for (int i = 0; !rc && i < sk_X509_CRL_num(c->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(c->crls, i);
		const X509_NAME *iss = X509_CRL_get_issuer(crl);
		if (!X509_NAME_cmp(iss, X509_get_subject_name(v->root)))
			rc =
			    check_crl(crl, v->root, ca, at, "root CA CRL", "PCK CA certificate", e);
		else if (!X509_NAME_cmp(iss, X509_get_subject_name(ca)))
			rc = check_crl(crl, ca, leaf, at, "PCK CRL", "PCK certificate", e);
	}
	return rc;
}

int tdx_verify_root(const uint8_t *q, size_t len, const struct tdx_collateral *col, time_t at,
                    const char *root_pem, json_t **claims, struct err *e)
{
	struct vstate v = {0};
	json_t *o = NULL;
	int rc;

	if ((rc = tdx_parse(q, len, &v.q, e)))
		return rc;
	if (!(v.root = load_root(root_pem, e)))
		return e ? e->code : ERR_CRYPTO;
	if ((rc = verify_signatures(&v, at, e)) ||
	    (rc = pck_info(sk_X509_value(v.chain, 0), &v.pck, e)))
		goto out;
	o = quote_claims(&v.q);
	json_object_set_new(
	    o, "pck", pck_claims(&v.pck, sk_X509_value(v.chain, 0), sk_X509_value(v.chain, 1)));
	if (col && (rc = verify_crls(&v, col, at, e)))
		goto out;
	if (col && col->tcb_info.doc && (rc = eval_collateral(col, v.root, at, &v.q, &v.pck, o, e)))
		goto out;
	if (col && !col->tcb_info.doc && col->qe_identity.doc)
		rc = err_set(e, ERR_INVALID,
		             "collateral: TCB info missing (import the TDX TCB info)");
out:
	if (!rc && claims) {
		*claims = o;
		o = NULL;
	}
	json_decref(o);
	vstate_fini(&v);
	return rc;
}

int tdx_verify(const uint8_t *q, size_t len, const struct tdx_collateral *col, time_t at,
               json_t **claims, struct err *e)
{
	return tdx_verify_root(q, len, col, at, NULL, claims, e);
}

/* ---- report data, MRCONFIGID ------------------------------------------ */

static int check_padded(const uint8_t *field, size_t flen, const uint8_t *expected, size_t n,
                        const char *what, struct err *e)
{
	uint8_t want[64] = {0};

	memcpy(want, expected, n < flen ? n : flen);
	if (!ct_equal(want, field, flen))
		return err_set(e, ERR_INVALID, "%s does not match the expected value", what);
	return 0;
}

int tdx_check_report_data(const struct tdx_quote *q, const uint8_t *expected, size_t n,
                          struct err *e)
{
	return check_padded(q->body.report_data, 64, expected, n, "report_data", e);
}

const uint8_t *tdx_mrconfigid(const struct tdx_quote *q)
{
	return q->body.mrconfigid;
}

int tdx_check_mrconfigid(const struct tdx_quote *q, const uint8_t *expected, size_t n,
                         struct err *e)
{
	return check_padded(q->body.mrconfigid, 48, expected, n, "MRCONFIGID", e);
}

int tdx_is_debug(const struct tdx_quote *q)
{
	return q->body.td_attributes[0] & 1;
}

/* ---- evidence encodings ------------------------------------------------ */

/* Standard base64 (padding optional, whitespace ignored). */
static uint8_t *b64_decode(const char *s, size_t n, size_t *out_len)
{
	char *clean = xmalloc(n + 4);
	size_t m = 0, pad = 0;
	uint8_t *out;
	int r;

	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			clean[m++] = s[i];
	while (m % 4)
		clean[m++] = '=';
	for (size_t i = m; i > 0 && clean[i - 1] == '='; i--)
		pad++;
	out = xmalloc(m / 4 * 3 + 1);
	r = EVP_DecodeBlock(out, (const unsigned char *)clean, (int)m);
	free(clean);
	if (r < 0 || (size_t)r < pad) {
		free(out);
		return NULL;
	}
	*out_len = (size_t)r - pad;
	return out;
}

static int decode_json_evidence(const char *data, size_t len, uint8_t **quote, size_t *qlen,
                                uint8_t **log, size_t *loglen, struct err *e)
{
	json_error_t je;
	json_t *o = json_loadb(data, len, 0, &je);
	const json_t *qv = json_object_get(o, "quote"), *lv = json_object_get(o, "cc_eventlog");
	int rc = 0;

	if (!json_is_string(qv))
		rc = err_set(e, ERR_INVALID, "TDX evidence: no base64 \"quote\" member");
	else if (!(*quote = b64_decode(json_string_value(qv), json_string_length(qv), qlen)))
		rc = err_set(e, ERR_INVALID, "TDX evidence: \"quote\" is not base64");
	else if (log && json_is_string(lv) &&
	         !(*log = b64_decode(json_string_value(lv), json_string_length(lv), loglen)))
		rc = err_set(e, ERR_INVALID, "TDX evidence: \"cc_eventlog\" is not base64");
	if (rc) {
		free(*quote);
		*quote = NULL;
	}
	json_decref(o);
	return rc;
}

/* ASCII hex (optional 0x, surrounding whitespace) when the whole text is. */
static uint8_t *maybe_hex(const char *data, size_t len, size_t *n)
{
	while (len && isspace((unsigned char)data[len - 1]))
		len--;
	while (len && isspace((unsigned char)*data))
		data++, len--;
	if (len >= 2 && data[0] == '0' && (data[1] == 'x' || data[1] == 'X'))
		data += 2, len -= 2;
	return len >= 2 * HDR_LEN ? hex_decode_alloc(data, len, n) : NULL;
}

int tdx_evidence_decode(const char *data, size_t len, uint8_t **quote, size_t *quote_len,
                        uint8_t **eventlog, size_t *eventlog_len, struct err *e)
{
	size_t i = 0;

	*quote = NULL;
	if (eventlog)
		*eventlog = NULL;
	while (i < len && isspace((unsigned char)data[i]))
		i++;
	if (i < len && data[i] == '{')
		return decode_json_evidence(data, len, quote, quote_len, eventlog, eventlog_len, e);
	if ((*quote = maybe_hex(data, len, quote_len)))
		return 0;
	if (len > MAX_QUOTE)
		return err_set(e, ERR_TOO_LARGE, "TDX evidence: %zu bytes is too large", len);
	*quote = xmalloc(len ? len : 1);
	memcpy(*quote, data, len);
	*quote_len = len;
	return 0;
}

/* ---- CC event log ------------------------------------------------------ */

/* Reads the Spec ID event (TCG_PCClientPCREvent format): the digest size
 * per algorithm; returns the offset of the first crypto-agile event. */
static int spec_id(const uint8_t *p, size_t len, uint16_t algs[8], uint16_t sizes[8], int *nalg,
                   size_t *next, struct err *e)
{
	uint32_t esz, n;
	const uint8_t *ev;

	if (len < 32 || (esz = rd32(p + 28)) > len - 32 || esz < 28 ||
	    memcmp(p + 32, "Spec ID Event03", 15) != 0)
		return err_set(e, ERR_INVALID, "event log: no Spec ID Event03 header");
	ev = p + 32;
	n = rd32(ev + 24);
	if (n == 0 || n > 8 || 28 + 4 * (size_t)n > esz)
		return err_set(e, ERR_INVALID, "event log: bad algorithm count %u", n);
	for (uint32_t i = 0; i < n; i++) {
		algs[i] = rd16(ev + 28 + 4 * i);
		sizes[i] = rd16(ev + 30 + 4 * i);
	}
	*nalg = (int)n;
	*next = 32 + esz;
	return 0;
}

static void extend(uint8_t mr[TDX_MR_LEN], const uint8_t *digest)
{
	uint8_t buf[2 * TDX_MR_LEN];
	memcpy(buf, mr, TDX_MR_LEN);
	memcpy(buf + TDX_MR_LEN, digest, TDX_MR_LEN);
	SHA384(buf, sizeof buf, mr);
}

/* Walks one TCG_PCR_EVENT2 at `p`; extends the RTMR for SHA-384 digests.
 * Returns its length, 0 at the end of the log, -1 when malformed. */
static long one_event(const uint8_t *p, size_t len, const uint16_t *algs, const uint16_t *sizes,
                      int nalg, uint8_t rtmr[4][TDX_MR_LEN])
{
	uint32_t mr, type, count, esz;
	size_t off = 12;

	if (len < 12 || rd32(p) == 0xffffffff || (rd32(p) == 0 && rd32(p + 4) == 0))
		return 0;
	mr = rd32(p), type = rd32(p + 4), count = rd32(p + 8);
	for (uint32_t i = 0; i < count; i++) {
		int k;
		if (len - off < 2)
			return -1;
		for (k = 0; k < nalg && algs[k] != rd16(p + off); k++)
			;
		if (k == nalg || len - off - 2 < sizes[k])
			return -1;
		if (algs[k] == 0x000c && sizes[k] == TDX_MR_LEN && mr >= 1 && mr <= 4 && type != 3)
			extend(rtmr[mr - 1], p + off + 2);
		off += 2 + sizes[k];
	}
	if (len - off < 4 || (esz = rd32(p + off)) > len - off - 4)
		return -1;
	return (long)(off + 4 + esz);
}

int tdx_eventlog_replay(const uint8_t *log, size_t len, uint8_t rtmr[4][TDX_MR_LEN], size_t *events,
                        struct err *e)
{
	uint16_t algs[8], sizes[8];
	int nalg = 0, rc;
	size_t off = 0, count = 0;
	long n;

	memset(rtmr, 0, 4 * TDX_MR_LEN);
	if ((rc = spec_id(log, len, algs, sizes, &nalg, &off, e)))
		return rc;
	while ((n = one_event(log + off, len - off, algs, sizes, nalg, rtmr)) > 0) {
		off += (size_t)n;
		count++;
	}
	if (n < 0)
		return err_set(e, ERR_INVALID, "event log: malformed event %zu at offset %zu",
		               count + 1, off);
	if (events)
		*events = count;
	return 0;
}

/* ---- CLI --------------------------------------------------------------- */

static int load_collateral(const char *const *paths, size_t n, struct tdx_collateral **out,
                           struct err *e)
{
	struct tdx_collateral *c = n ? tdx_collateral_new() : NULL;
	char *data = NULL;
	size_t len;

	for (size_t i = 0; i < n; i++, free(data), data = NULL) {
		if (file_read(paths[i], 16u << 20, &data, &len, e) ||
		    tdx_collateral_add(c, data, len, e)) {
			err_wrap(e, "%s", paths[i]);
			free(data);
			tdx_collateral_free(c);
			return e ? e->code : ERR_INVALID;
		}
	}
	*out = c;
	return 0;
}

/* Replays the event log and compares with the quote's RTMRs. */
static int check_eventlog(const uint8_t *log, size_t loglen, const uint8_t *q, size_t qlen,
                          json_t *claims, struct err *e)
{
	uint8_t rtmr[4][TDX_MR_LEN];
	struct tdx_quote tq;
	size_t events;
	int rc;

	if ((rc = tdx_parse(q, qlen, &tq, e)) ||
	    (rc = tdx_eventlog_replay(log, loglen, rtmr, &events, e)))
		return rc;
	for (int i = 0; i < 4; i++)
		if (memcmp(rtmr[i], tq.body.rtmr[i], TDX_MR_LEN) != 0)
			return err_set(e, ERR_INVALID,
			               "cc_eventlog replay does not reproduce RTMR%d", i);
	json_object_set_new(claims, "cc_eventlog_events", json_integer((json_int_t)events));
	return 0;
}

static void print_text(FILE *out, json_t *claims, int ok, const struct err *e)
{
	const char *k;
	json_t *v;

	json_object_foreach(claims, k, v)
	{
		char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		fprintf(out, "%-28s %s\n", k, s ? s : json_string_value(v));
		free(s);
	}
	fprintf(out, "verdict: %s%s%s\n", ok ? "valid" : "invalid", ok ? "" : ": ",
	        ok ? "" : e->msg);
}

int tdx_cli_verify_with(const char *evidence_path, tdx_collateral_fn load, void *arg, time_t at,
                        int json_output, FILE *out)
{
	struct err e = {0};
	struct tdx_collateral *col = NULL;
	char *data = NULL;
	uint8_t *q = NULL, *log = NULL;
	size_t len = 0, qlen = 0, loglen = 0;
	json_t *claims = NULL;
	struct tdx_quote tq;
	int rc;

	rc = file_read(evidence_path, 16u << 20, &data, &len, &e);
	if (!rc)
		rc = tdx_evidence_decode(data, len, &q, &qlen, &log, &loglen, &e);
	if (!rc && load)
		rc = load(arg, q, qlen, at, &col, &e);
	if (!rc)
		rc = tdx_verify(q, qlen, col, at, &claims, &e);
	if (!rc && log)
		rc = check_eventlog(log, loglen, q, qlen, claims, &e);
	if (rc && !claims && q && tdx_parse(q, qlen, &tq, NULL) == 0)
		claims = quote_claims(&tq);
	if (!claims)
		claims = json_object();
	if (json_output) {
		json_object_set_new(claims, "verdict", json_string(rc ? "invalid" : "valid"));
		if (rc)
			json_object_set_new(claims, "reason", json_string(e.msg));
		json_dumpf(claims, out, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', out);
	} else {
		print_text(out, claims, rc == 0, &e);
	}
	json_decref(claims);
	tdx_collateral_free(col);
	free(data);
	free(q);
	free(log);
	return rc ? 1 : 0;
}

struct files {
	const char *const *paths;
	size_t n;
};

static int files_loader(void *arg, const uint8_t *q, size_t qlen, time_t at,
                        struct tdx_collateral **out, struct err *e)
{
	const struct files *f = arg;
	return load_collateral(f->paths, f->n, out, e);
}

int tdx_cli_verify_files(const char *evidence_path, const char *const *collateral_paths, size_t n,
                         time_t at, int json_output, FILE *out)
{
	struct files f = {collateral_paths, n};
	return tdx_cli_verify_with(evidence_path, files_loader, &f, at, json_output, out);
}

int tdx_cli_verify(const char *evidence_path, const char *collateral_path, time_t at,
                   int json_output, FILE *out)
{
	const char *paths[1] = {collateral_path};
	return tdx_cli_verify_files(evidence_path, paths, collateral_path ? 1 : 0, at, json_output,
	                            out);
}
