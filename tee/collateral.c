/* collateral: see collateral.h.  An import runs in two phases: every file
 * is read, recognised and checked into a batch of pieces in memory (any
 * failure stops here, naming the file), then the batch goes to the store
 * in one transaction.  Lookups for the verifiers are plain indexed SELECTs
 * on (kind, lookup); what they hand back is verified again by snp.c and
 * tdx.c at the verification time, so a stale or tampered row can only make
 * a verification fail, never pass. */
#include "collateral.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"
#include "daemon.h"
#include "evidence.h"
#include "snp_roots.h"
#include "util.h"

#define MAX_PIECES 256
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define PCK_LEAF_CN "Intel SGX PCK Certificate"
#define ROOT_CN     "Intel SGX Root CA"
#define SIGNING_CN  "Intel SGX TCB Signing"

/* One thing to store. */
struct piece {
	const char *kind; /* vcek vlek ask asvk ark amd_crl intel_root tcb_signing
	                     pck_ca pck tcb_info qe_identity intel_crl */
	char lookup[160];
	char tcb[32];
	int64_t not_before, not_after;
	char summary[200];
	char source[160];
	uint8_t *data;
	size_t len;
	char sha[65];
	int replace;         /* one per (kind, lookup): the newest is kept */
	X509 *cert;          /* certificates, for issuer checks in the batch */
	const char *outcome; /* filled when stored */
	const char *note;
};

struct batch {
	store *st;
	struct piece p[MAX_PIECES];
	size_t n;
};

static void batch_fini(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->p[i].data);
		X509_free(b->p[i].cert);
	}
	b->n = 0;
}

/* ---- small helpers ---- */

static void name_cn(const X509_NAME *n, char *out, size_t cap)
{
	out[0] = '\0';
	if (!n || X509_NAME_get_text_by_NID((X509_NAME *)(uintptr_t)n, NID_commonName, out,
	                                    (int)cap) < 0)
		snprintf(out, cap, "(no CN)");
}

static int64_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static void day(int64_t t, char out[16])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 16, "%Y-%m-%d", &tm);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int l = 0;
	EVP_Digest(p, n, md, &l, EVP_sha256(), NULL);
	hex_encode(md, 32, out);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Adds a piece (copying `data`); an identical piece already in the batch
 * is dropped.  Takes ownership of `cert` (may be NULL). */
static int piece_add(struct batch *b, const char *src, const char *kind, const char *lookup,
                     const void *data, size_t len, int64_t nb, int64_t na, X509 *cert,
                     const char *summary, struct err *e)
{
	char sha[65];
	sha256_hex(data, len, sha);
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->p[i].sha, sha) == 0) {
			X509_free(cert);
			return 0;
		}
	if (b->n >= MAX_PIECES) {
		X509_free(cert);
		return err_set(e, ERR_TOO_LARGE, "more than %d pieces of collateral in one import",
		               MAX_PIECES);
	}
	struct piece *p = &b->p[b->n++];
	memset(p, 0, sizeof *p);
	p->kind = kind;
	snprintf(p->lookup, sizeof p->lookup, "%s", lookup);
	snprintf(p->summary, sizeof p->summary, "%s", summary);
	snprintf(p->source, sizeof p->source, "%s", src);
	memcpy(p->sha, sha, sizeof sha);
	p->data = xmalloc(len ? len : 1);
	memcpy(p->data, data, len);
	p->len = len;
	p->not_before = nb;
	p->not_after = na;
	p->cert = cert;
	p->replace = cert == NULL;
	return 0;
}

/* ---- Intel's root and AMD's pinned certificates ---- */

static X509 *pem_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *c = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return c;
}

static void cert_sha256(X509 *c, char out[65], uint8_t raw[32])
{
	unsigned char md[32];
	unsigned int n = 0;
	X509_digest(c, EVP_sha256(), md, &n);
	hex_encode(md, 32, out);
	if (raw)
		memcpy(raw, md, 32);
}

/* The built-in Intel SGX Root CA, fingerprint-checked; NULL if corrupt. */
static X509 *intel_root(void)
{
	X509 *c = pem_cert(tdx__intel_root_pem);
	char hex[65];
	uint8_t raw[32];
	if (c) {
		cert_sha256(c, hex, raw);
		if (memcmp(raw, tdx__intel_root_sha256, 32) != 0) {
			X509_free(c);
			c = NULL;
		}
	}
	return c;
}

static const struct snp_root *amd_pinned(const char *fp)
{
	for (size_t i = 0; i < snp__nroots; i++)
		if (strcmp(snp__roots[i].sha256, fp) == 0)
			return &snp__roots[i];
	return NULL;
}

static const struct snp_root *amd_ark(const char *product)
{
	for (size_t i = 0; i < snp__nroots; i++)
		if (snp__roots[i].kind == SNP_ROOT_ARK && strcmp(snp__roots[i].product, product) == 0)
			return &snp__roots[i];
	return NULL;
}

/* ---- certificates ---- */

static int is_p384(X509 *c)
{
	EVP_PKEY *pk = X509_get0_pubkey(c);
	char grp[32];
	return pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
	       EVP_PKEY_get_group_name(pk, grp, sizeof grp, NULL) && strcmp(grp, "secp384r1") == 0;
}

static int signed_by(X509 *c, X509 *issuer)
{
	int ok = X509_NAME_cmp(X509_get_issuer_name(c), X509_get_subject_name(issuer)) == 0 &&
	         X509_verify(c, X509_get0_pubkey(issuer)) == 1;
	ERR_clear_error();
	return ok;
}

static void tcb_text(const struct snp_tcb *t, char *out, size_t cap)
{
	if (t->has_fmc)
		snprintf(out, cap, "fmc=%d bl=%d tee=%d snp=%d ucode=%d", t->fmc, t->bl, t->tee, t->snp,
		         t->ucode);
	else
		snprintf(out, cap, "bl=%d tee=%d snp=%d ucode=%d", t->bl, t->tee, t->snp, t->ucode);
}

/* A VCEK or VLEK: AMD's extensions, and its chain to the built-in ASK/ASVK
 * and ARK (checked inside its own validity window: expired ones may be
 * imported, the verifier checks the time). */
static int add_vek(struct batch *b, const char *src, X509 *c, const uint8_t *der, size_t len,
                   struct err *e)
{
	struct snp_vek v;
	char hw[129], tcb[64], s[320], nb[16], na[16];
	if (snp_vek_parse(der, len, &v, e))
		return err_wrap(e, "AMD endorsement key");
	const char *what = v.kind == SNP_KEY_VLEK ? "VLEK" : "VCEK";
	if (snp_vek_verify(der, len, NULL, v.not_before + 60, &v, e))
		return err_wrap(e, "%s %s is not certified by AMD", what, v.product);
	tcb_text(&v.tcb, tcb, sizeof tcb);
	day(v.not_before, nb);
	day(v.not_after, na);
	hex_encode(v.hwid, v.hwid_len, hw);
	if (v.kind == SNP_KEY_VLEK)
		snprintf(s, sizeof s, "VLEK %s %.60s %s, valid %s..%s", v.product, v.csp_id, tcb, nb, na);
	else
		snprintf(s, sizeof s, "VCEK %s hwid %.16s... %s, valid %s..%s", v.product, hw, tcb, nb,
		         na);
	int rc = piece_add(b, src, v.kind == SNP_KEY_VLEK ? "vlek" : "vcek",
	                   v.kind == SNP_KEY_VLEK ? snp_gen_name(v.gen) : hw, der, len, v.not_before,
	                   v.not_after, X509_dup(c), s, e);
	if (rc == 0 && b->n)
		snprintf(b->p[b->n - 1].tcb, sizeof b->p[0].tcb, "%d.%d.%d.%d.%d",
		         v.tcb.has_fmc ? v.tcb.fmc : -1, v.tcb.bl, v.tcb.tee, v.tcb.snp, v.tcb.ucode);
	return rc;
}

/* The issuer of a PCK leaf: a PCK CA in this batch, else in the store. */
static X509 *find_pck_ca(struct batch *b, X509 *leaf)
{
	char cn[128];
	for (size_t i = 0; i < b->n; i++)
		if (b->p[i].cert && strcmp(b->p[i].kind, "pck_ca") == 0 &&
		    signed_by(leaf, b->p[i].cert)) {
			X509_up_ref(b->p[i].cert);
			return b->p[i].cert;
		}
	if (!b->st)
		return NULL;
	struct err e = {0};
	name_cn(X509_get_issuer_name(leaf), cn, sizeof cn);
	sqlite3_stmt *q = store_stmt(
	    b->st, "SELECT data FROM collateral WHERE kind = 'pck_ca' AND lookup = ?1", &e);
	X509 *found = NULL;
	if (!q)
		return NULL;
	sqlite3_bind_text(q, 1, cn, -1, SQLITE_TRANSIENT);
	while (!found && sqlite3_step(q) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_blob(q, 0);
		X509 *ca = d2i_X509(NULL, &p, sqlite3_column_bytes(q, 0));
		if (ca && signed_by(leaf, ca))
			found = ca;
		else
			X509_free(ca);
	}
	sqlite3_reset(q);
	ERR_clear_error();
	return found;
}

static int add_intel_cert(struct batch *b, const char *src, X509 *c, const char *cn,
                          const uint8_t *der, size_t len, struct err *e)
{
	char s[200], nb[16], na[16];
	int64_t t0 = asn1_time(X509_get0_notBefore(c)), t1 = asn1_time(X509_get0_notAfter(c));
	day(t0, nb);
	day(t1, na);
	if (strcmp(cn, PCK_LEAF_CN) == 0) {
		X509 *ca = find_pck_ca(b, c);
		if (!ca) {
			char icn[128];
			name_cn(X509_get_issuer_name(c), icn, sizeof icn);
			return err_set(e, ERR_INVALID,
			               "PCK certificate: its issuer \"%s\" is neither in this import "
			               "nor stored; import the whole PCK certificate chain",
			               icn);
		}
		X509_free(ca);
		BIO *bio = BIO_new(BIO_s_mem());
		char *pem, fm[13] = "";
		struct tdx_pck_info pi;
		PEM_write_bio_X509(bio, c);
		long pl = BIO_get_mem_data(bio, &pem);
		if (tdx_pck_info_from_pem(pem, (size_t)pl, &pi, e) == 0)
			hex_encode(pi.fmspc, 6, fm);
		BIO_free(bio);
		if (!fm[0])
			return err_wrap(e, "PCK certificate");
		snprintf(s, sizeof s, "PCK certificate fmspc %s pcesvn %u, valid %s..%s", fm, pi.pcesvn,
		         nb, na);
		return piece_add(b, src, "pck", fm, der, len, t0, t1, X509_dup(c), s, e);
	}
	X509 *root = intel_root();
	int ok = root && signed_by(c, root);
	X509_free(root);
	if (!ok)
		return err_set(e, ERR_INVALID, "\"%s\" is not signed by the pinned Intel SGX Root CA",
		               cn);
	snprintf(s, sizeof s, "%s, valid %s..%s", cn, nb, na);
	return piece_add(b, src, strcmp(cn, SIGNING_CN) == 0 ? "tcb_signing" : "pck_ca", cn, der,
	                 len, t0, t1, X509_dup(c), s, e);
}

/* One certificate, by what it is: AMD's pinned CAs, a VCEK/VLEK, Intel's
 * root, TCB signing, PCK CAs and PCK leaves.  Anything else is refused. */
static int add_cert(struct batch *b, const char *src, X509 *c, struct err *e)
{
	char cn[128], fp[65], s[200];
	uint8_t raw[32];
	unsigned char *der = NULL;
	int len = i2d_X509(c, &der);
	if (len <= 0)
		return err_set(e, ERR_INVALID, "unencodable certificate");
	name_cn(X509_get_subject_name(c), cn, sizeof cn);
	cert_sha256(c, fp, raw);
	const struct snp_root *amd = amd_pinned(fp);
	int rc;
	int64_t t0 = asn1_time(X509_get0_notBefore(c)), t1 = asn1_time(X509_get0_notAfter(c));
	if (amd) {
		static const char *const kinds[] = {"ark", "ask", "asvk"};
		snprintf(s, sizeof s, "%s (AMD %s %s, also built into cocod)", cn, amd->product,
		         kinds[amd->kind]);
		rc = piece_add(b, src, kinds[amd->kind], amd->product, der, (size_t)len, t0, t1,
		               X509_dup(c), s, e);
	} else if (is_p384(c)) {
		rc = add_vek(b, src, c, der, (size_t)len, e);
	} else if (memcmp(raw, tdx__intel_root_sha256, 32) == 0) {
		rc = piece_add(b, src, "intel_root", cn, der, (size_t)len, t0, t1, X509_dup(c),
		               "Intel SGX Root CA (pinned, also built into cocod)", e);
	} else if (strcmp(cn, SIGNING_CN) == 0 || strcmp(cn, PCK_LEAF_CN) == 0 ||
	           strcmp(cn, "Intel SGX PCK Platform CA") == 0 ||
	           strcmp(cn, "Intel SGX PCK Processor CA") == 0) {
		rc = add_intel_cert(b, src, c, cn, der, (size_t)len, e);
	} else if (strcmp(cn, ROOT_CN) == 0 || !strncmp(cn, "ARK-", 4) || !strncmp(cn, "SEV-", 4)) {
		rc = err_set(e, ERR_INVALID,
		             "certificate \"%s\" (sha256 %.16s...) is not the pinned %s one", cn, fp,
		             strcmp(cn, ROOT_CN) == 0 ? "Intel" : "AMD");
	} else {
		rc = err_set(e, ERR_INVALID,
		             "certificate \"%s\" is neither an AMD VCEK/VLEK/ASK/ASVK/ARK nor an "
		             "Intel SGX certificate",
		             cn);
	}
	OPENSSL_free(der);
	return rc;
}

/* Certificates of one file, CAs before PCK leaves (a chain file lists the
 * leaf first). */
static int add_certs(struct batch *b, const char *src, STACK_OF(X509) * sk, struct err *e)
{
	char cn[128];
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < sk_X509_num(sk); i++) {
			X509 *c = sk_X509_value(sk, i);
			name_cn(X509_get_subject_name(c), cn, sizeof cn);
			if ((strcmp(cn, PCK_LEAF_CN) == 0) != pass)
				continue;
			if (add_cert(b, src, c, e))
				return sk_X509_num(sk) > 1 ? err_wrap(e, "certificate %d", i + 1)
				                           : e->code;
		}
	return 0;
}

/* ---- CRLs ---- */

static int add_crl(struct batch *b, const char *src, X509_CRL *crl, struct err *e)
{
	char cn[128], s[200], nb[16], na[16];
	unsigned char *der = NULL;
	int len = i2d_X509_CRL(crl, &der), ok = 0;
	const char *kind = "intel_crl", *lookup = cn;
	X509 *issuer = NULL;
	if (len <= 0)
		return err_set(e, ERR_INVALID, "unencodable CRL");
	name_cn(X509_CRL_get_issuer(crl), cn, sizeof cn);
	int64_t t0 = asn1_time(X509_CRL_get0_lastUpdate(crl));
	int64_t t1 = asn1_time(X509_CRL_get0_nextUpdate(crl));
	day(t0, nb);
	day(t1, na);
	if (strcmp(cn, ROOT_CN) == 0) {
		issuer = intel_root();
	} else if (strncmp(cn, "ARK-", 4) == 0 && amd_ark(cn + 4)) {
		issuer = pem_cert(amd_ark(cn + 4)->pem);
		kind = "amd_crl";
		lookup = cn + 4;
	} else if (strcmp(cn, "Intel SGX PCK Platform CA") == 0 ||
	           strcmp(cn, "Intel SGX PCK Processor CA") == 0) {
		ok = 1; /* the quote's own PCK CA checks its signature at each use */
	} else {
		OPENSSL_free(der);
		return err_set(e, ERR_INVALID, "CRL issued by \"%s\" is neither Intel's nor AMD's",
		               cn);
	}
	if (issuer)
		ok = X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) == 0 &&
		     X509_CRL_verify(crl, X509_get0_pubkey(issuer)) == 1;
	X509_free(issuer);
	ERR_clear_error();
	int rc;
	if (!ok) {
		rc = err_set(e, ERR_INVALID, "CRL of \"%s\": signature does not verify", cn);
	} else {
		snprintf(s, sizeof s, "CRL of %s, %d revoked, issued %s, next update %s", cn,
		         X509_CRL_get_REVOKED(crl) ? sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)) : 0,
		         nb, na);
		rc = piece_add(b, src, kind, lookup, der, (size_t)len, t0, t1, NULL, s, e);
	}
	OPENSSL_free(der);
	return rc;
}

/* ---- the three encodings ---- */

static int add_pem(struct batch *b, const char *src, const uint8_t *d, size_t len, struct err *e)
{
	BIO *bio = BIO_new_mem_buf(d, (int)len);
	STACK_OF(X509) *certs = sk_X509_new_null();
	char *name = NULL, *hdr = NULL;
	unsigned char *data = NULL;
	long dl = 0;
	int rc = 0, objects = 0;
	while (rc == 0 && PEM_read_bio(bio, &name, &hdr, &data, &dl) == 1) {
		const unsigned char *p = data;
		objects++;
		if (strcmp(name, "CERTIFICATE") == 0) {
			X509 *c = d2i_X509(NULL, &p, dl);
			if (c)
				sk_X509_push(certs, c);
			else
				rc = err_set(e, ERR_INVALID, "PEM block %d: malformed certificate",
				             objects);
		} else if (strcmp(name, "X509 CRL") == 0) {
			X509_CRL *crl = d2i_X509_CRL(NULL, &p, dl);
			rc = crl ? add_crl(b, src, crl, e)
			         : err_set(e, ERR_INVALID, "PEM block %d: malformed CRL", objects);
			X509_CRL_free(crl);
		} else {
			rc = err_set(e, ERR_INVALID, "PEM block %d is a %.40s, not a certificate or CRL",
			             objects, name);
		}
		OPENSSL_free(name), OPENSSL_free(hdr), OPENSSL_free(data);
		name = hdr = NULL, data = NULL;
	}
	unsigned long last = ERR_peek_last_error();
	if (rc == 0 && objects == 0)
		rc = err_set(e, ERR_INVALID, "no PEM certificate or CRL found");
	else if (rc == 0 && last && ERR_GET_REASON(last) != PEM_R_NO_START_LINE)
		rc = err_set(e, ERR_INVALID, "malformed PEM after block %d", objects);
	ERR_clear_error();
	if (rc == 0)
		rc = add_certs(b, src, certs, e);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	return rc;
}

static int add_der(struct batch *b, const char *src, const uint8_t *d, size_t len, struct err *e)
{
	const unsigned char *p = d, *end = d + len;
	X509 *c = d2i_X509(NULL, &p, (long)len);
	int rc;
	if (!c) {
		p = d;
		X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
		ERR_clear_error();
		if (!crl || p != end) {
			X509_CRL_free(crl);
			return err_set(e, ERR_INVALID,
			               "%zu bytes that are neither a certificate or CRL (PEM or DER) "
			               "nor Intel collateral JSON",
			               len);
		}
		rc = add_crl(b, src, crl, e);
		X509_CRL_free(crl);
		return rc;
	}
	STACK_OF(X509) *sk = sk_X509_new_null();
	sk_X509_push(sk, c);
	while (p < end && (c = d2i_X509(NULL, &p, end - p)))
		sk_X509_push(sk, c);
	ERR_clear_error();
	if (p < end)
		rc = err_set(e, ERR_INVALID, "%zu bytes after DER certificate %d are not a certificate",
		             (size_t)(end - p), sk_X509_num(sk));
	else
		rc = add_certs(b, src, sk, e);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* ---- Intel's JSON documents ---- */

static int doc_time(const json_t *o, const char *key, int64_t *out, struct err *e)
{
	struct err ignore;
	time_t t;
	const char *s = json_string_value(json_object_get(o, key));
	if (!s || evidence_parse_time(s, &t, &ignore))
		return err_set(e, ERR_INVALID, "%s is missing or not an RFC 3339 time", key);
	*out = (int64_t)t;
	return 0;
}

static int is_hex(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* A PCS response {"tcbInfo"|"enclaveIdentity": {...}, "signature": hex};
 * `text` is kept byte for byte (the signature covers the exact text). */
static int add_doc(struct batch *b, const char *src, const char *text, size_t len, json_t *top,
                   const char *key, struct err *e)
{
	struct tdx_collateral *c = tdx_collateral_new();
	int tcb = strcmp(key, "tcbInfo") == 0, rc = tdx_collateral_add(c, text, len, e);
	tdx_collateral_free(c);
	if (rc)
		return rc;
	const json_t *d = json_object_get(top, key), *levels = json_object_get(d, "tcbLevels");
	const char *id = json_string_value(json_object_get(d, "id"));
	const char *fmspc = json_string_value(json_object_get(d, "fmspc"));
	char lookup[64], s[200], nb[16], na[16];
	int64_t t0, t1;
	if ((rc = doc_time(d, "issueDate", &t0, e)) || (rc = doc_time(d, "nextUpdate", &t1, e)))
		return err_wrap(e, "%s", key);
	if (!json_is_integer(json_object_get(d, "version")) || !json_array_size(levels))
		return err_set(e, ERR_INVALID, "%s: no version or no tcbLevels", key);
	if (tcb && !is_hex(fmspc, 12))
		return err_set(e, ERR_INVALID, "tcbInfo.fmspc is not 6 bytes of hex");
	if (!tcb && !is_hex(json_string_value(json_object_get(d, "mrsigner")), 64))
		return err_set(e, ERR_INVALID, "enclaveIdentity.mrsigner is not 32 bytes of hex");
	if (!id)
		id = tcb ? "SGX" : "QE"; /* version 2 SGX documents carry no id */
	day(t0, nb);
	day(t1, na);
	json_int_t eval = json_integer_value(json_object_get(d, "tcbEvaluationDataNumber"));
	if (tcb) {
		snprintf(lookup, sizeof lookup, "%.8s:%s", id, fmspc);
		lower(lookup + strlen(id) + 1);
		snprintf(s, sizeof s, "%s TCB info fmspc %s, evaluation %lld, issued %s, next update %s",
		         id, lookup + strlen(id) + 1, (long long)eval, nb, na);
	} else {
		snprintf(lookup, sizeof lookup, "%.16s", id);
		snprintf(s, sizeof s, "%s identity, evaluation %lld, issued %s, next update %s", id,
		         (long long)eval, nb, na);
	}
	return piece_add(b, src, tcb ? "tcb_info" : "qe_identity", lookup, text, len, t0, t1, NULL,
	                 s, e);
}

static int add_file_data(struct batch *b, const char *src, const uint8_t *d, size_t len,
                         struct err *e);

/* A signed document inside a bundle, re-wrapped as the PCS response it
 * came from: the signed text is kept exactly. */
static int add_bundle_doc(struct batch *b, const char *src, const json_t *top, const char *doc,
                          const char *sig, const char *key, struct err *e)
{
	const json_t *d = json_object_get(top, doc), *s = json_object_get(top, sig);
	if (!json_is_string(d) || !json_is_string(s))
		return err_set(e, ERR_INVALID, "bundle: %s and %s must be strings", doc, sig);
	char *text = xasprintf("{\"%s\":%s,\"signature\":\"%s\"}", key, json_string_value(d),
	                       json_string_value(s));
	int rc = add_file_data(b, src, (const uint8_t *)text, strlen(text), e);
	free(text);
	return rc ? err_wrap(e, "bundle %s", doc) : 0;
}

/* dcap-qvl / QCNL: every piece of a quote's collateral in one object. */
static int add_bundle(struct batch *b, const char *src, const json_t *top, struct err *e)
{
	static const char *const chains[] = {"tcb_info_issuer_chain", "qe_identity_issuer_chain",
	                                     "pck_crl_issuer_chain"};
	static const char *const crls[] = {"root_ca_crl", "pck_crl"};
	int rc;
	if ((rc = add_bundle_doc(b, src, top, "tcb_info", "tcb_info_signature", "tcbInfo", e)) ||
	    (rc = add_bundle_doc(b, src, top, "qe_identity", "qe_identity_signature",
	                         "enclaveIdentity", e)))
		return rc;
	for (size_t i = 0; i < 3; i++) {
		const json_t *v = json_object_get(top, chains[i]);
		if (v && !json_is_string(v))
			return err_set(e, ERR_INVALID, "bundle: %s is not a PEM string", chains[i]);
		if (v && (rc = add_pem(b, src, (const uint8_t *)json_string_value(v),
		                       json_string_length(v), e)))
			return err_wrap(e, "bundle %s", chains[i]);
	}
	for (size_t i = 0; i < 2; i++) {
		const json_t *v = json_object_get(top, crls[i]);
		const char *h = json_string_value(v);
		size_t n = h ? strlen(h) : 0;
		if (!v)
			continue;
		if (!h || n % 2 || !is_hex(h, n))
			return err_set(e, ERR_INVALID, "bundle: %s is not hex DER", crls[i]);
		uint8_t *der = xmalloc(n / 2 + 1);
		for (size_t j = 0; j < n / 2; j++) {
			unsigned x;
			sscanf(h + 2 * j, "%2x", &x);
			der[j] = (uint8_t)x;
		}
		rc = add_der(b, src, der, n / 2, e);
		free(der);
		if (rc)
			return err_wrap(e, "bundle %s", crls[i]);
	}
	return 0;
}

static int add_json(struct batch *b, const char *src, const char *text, size_t len, struct err *e)
{
	json_error_t je;
	json_t *top = json_loadb(text, len, 0, &je);
	int rc;
	if (!json_is_object(top))
		rc = err_set(e, ERR_INVALID, "malformed JSON: %s (line %d)", je.text, je.line);
	else if (json_object_get(top, "tcb_info") && json_object_get(top, "qe_identity"))
		rc = add_bundle(b, src, top, e);
	else if (json_object_get(top, "tcbInfo"))
		rc = add_doc(b, src, text, len, top, "tcbInfo", e);
	else if (json_object_get(top, "enclaveIdentity"))
		rc = add_doc(b, src, text, len, top, "enclaveIdentity", e);
	else
		rc = err_set(e, ERR_INVALID,
		             "JSON is neither Intel TCB info, a QE identity nor a collateral bundle");
	json_decref(top);
	return rc;
}

static int add_file_data(struct batch *b, const char *src, const uint8_t *d, size_t len,
                         struct err *e)
{
	size_t i = 0;
	if (len == 0)
		return err_set(e, ERR_INVALID, "empty file");
	if (len > COLLATERAL_MAX_FILE)
		return err_set(e, ERR_TOO_LARGE, "%zu bytes, more than the %u allowed", len,
		               COLLATERAL_MAX_FILE);
	while (i < len && isspace(d[i]))
		i++;
	if (i < len && d[i] == '{')
		return add_json(b, src, (const char *)d, len, e);
	if (memmem(d, len, "-----BEGIN", 10))
		return add_pem(b, src, d, len, e);
	return add_der(b, src, d, len, e);
}

/* ---- storing ---- */

/* Documents and CRLs: the stored one with the same (kind, lookup) is
 * replaced unless it is newer. */
static int replace_older(store *st, struct piece *p, int *skip, struct err *e)
{
	sqlite3_stmt *q = store_stmt(
	    st, "SELECT sha256, not_before FROM collateral WHERE kind = ?1 AND lookup = ?2", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, p->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, p->lookup, -1, SQLITE_STATIC);
	int found = 0;
	*skip = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		found = 1;
		if (strcmp((const char *)sqlite3_column_text(q, 0), p->sha) == 0) {
			*skip = 1, p->outcome = "unchanged";
		} else if (sqlite3_column_int64(q, 1) > p->not_before && !*skip) {
			*skip = 1, p->outcome = "skipped", p->note = " - a newer one is stored";
		}
	}
	sqlite3_reset(q);
	if (*skip || !found)
		return 0;
	q = store_stmt(st, "DELETE FROM collateral WHERE kind = ?1 AND lookup = ?2", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, p->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, p->lookup, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : err_set(e, ERR_DB, "collateral: delete failed");
	sqlite3_reset(q);
	p->outcome = "replaced";
	return rc;
}

static int store_piece(store *st, struct piece *p, struct err *e)
{
	int skip = 0;
	p->outcome = "added";
	if (p->replace && (replace_older(st, p, &skip, e) || skip))
		return e->code;
	sqlite3_stmt *q = store_stmt(
	    st,
	    "INSERT INTO collateral (sha256, kind, lookup, tcb, not_before, not_after, summary, "
	    "source, imported, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
	    "strftime('%Y-%m-%dT%H:%M:%SZ','now'), ?9) ON CONFLICT (sha256) DO NOTHING",
	    e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, p->sha, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, p->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, p->lookup, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, p->tcb, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, p->not_before);
	sqlite3_bind_int64(q, 6, p->not_after);
	sqlite3_bind_text(q, 7, p->summary, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 8, p->source, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 9, p->data, (int)p->len, SQLITE_STATIC);
	int rc = sqlite3_step(q) == SQLITE_DONE ? 0
	                                        : err_set(e, ERR_DB, "collateral: insert: %s",
	                                                  sqlite3_errmsg(store_db(st)));
	if (rc == 0 && sqlite3_changes(store_db(st)) == 0 && strcmp(p->outcome, "added") == 0)
		p->outcome = "unchanged";
	sqlite3_reset(q);
	return rc;
}

static int batch_store(struct batch *b, FILE *out, struct err *e)
{
	if (store_begin(b->st, e))
		return e->code;
	for (size_t i = 0; i < b->n; i++)
		if (store_piece(b->st, &b->p[i], e)) {
			store_rollback(b->st);
			return err_wrap(e, "%s", b->p[i].source);
		}
	if (store_commit(b->st, e))
		return e->code;
	for (size_t i = 0; out && i < b->n; i++)
		fprintf(out, "%-10s %-12s %s  (%s)%s\n", b->p[i].outcome, b->p[i].kind,
		        b->p[i].summary, b->p[i].source, b->p[i].note ? b->p[i].note : "");
	return 0;
}

static int import_one(struct batch *b, const char *name, const uint8_t *d, size_t len,
                      struct err *e)
{
	const char *base = strrchr(name, '/');
	if (add_file_data(b, base ? base + 1 : name, d, len, e))
		return err_wrap(e, "%s", name);
	return 0;
}

int collateral_import_data(store *st, const char *name, const uint8_t *data, size_t len, FILE *out,
                           struct err *e)
{
	struct batch *b = xcalloc(1, sizeof *b);
	b->st = st;
	int rc = import_one(b, name, data, len, e);
	if (rc == 0)
		rc = batch_store(b, out, e);
	batch_fini(b);
	free(b);
	return rc;
}

int collateral_import(store *st, const char *const *paths, size_t n, FILE *out, struct err *e)
{
	struct batch *b = xcalloc(1, sizeof *b);
	int rc = 0;
	b->st = st;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char *data = NULL;
		size_t len = 0;
		rc = file_read(paths[i], COLLATERAL_MAX_FILE, &data, &len, e);
		if (rc == ERR_TOO_LARGE)
			rc = err_set(e, ERR_TOO_LARGE, "%s: more than %u bytes", paths[i],
			             COLLATERAL_MAX_FILE);
		if (rc == 0)
			rc = import_one(b, paths[i], (const uint8_t *)data, len, e);
		free(data);
	}
	if (rc == 0)
		rc = batch_store(b, out, e);
	batch_fini(b);
	free(b);
	return rc;
}

/* ---- listing and removal ---- */

static json_t *rfc3339(int64_t t)
{
	char s[32];
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

int collateral_list(store *st, json_t **out, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st,
	                             "SELECT sha256, kind, lookup, tcb, not_before, not_after, summary, "
	                             "source, imported FROM collateral "
	                             "ORDER BY kind, lookup, not_before DESC",
	                             e);
	if (!q)
		return e->code;
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *o = json_object();
		static const char *const text[] = {"sha256", "kind", "lookup", "tcb"};
		for (int i = 0; i < 4; i++)
			json_object_set_new(o, text[i],
			                    json_string((const char *)sqlite3_column_text(q, i)));
		json_object_set_new(o, "not_before", rfc3339(sqlite3_column_int64(q, 4)));
		json_object_set_new(o, "not_after", rfc3339(sqlite3_column_int64(q, 5)));
		json_object_set_new(o, "summary", json_string((const char *)sqlite3_column_text(q, 6)));
		json_object_set_new(o, "source", json_string((const char *)sqlite3_column_text(q, 7)));
		json_object_set_new(o, "imported",
		                    json_string((const char *)sqlite3_column_text(q, 8)));
		json_array_append_new(arr, o);
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return err_set(e, ERR_DB, "collateral: list: %s", sqlite3_errmsg(store_db(st)));
	}
	*out = arr;
	return 0;
}

int collateral_remove(store *st, const char *prefix, char removed[65], struct err *e)
{
	size_t n = strlen(prefix);
	char like[70];
	if (n < 8 || n > 64 || !is_hex(prefix, n))
		return err_set(e, ERR_BAD_REQUEST, "%.70s: give at least 8 hex digits of a SHA-256",
		               prefix);
	snprintf(like, sizeof like, "%s%%", prefix);
	lower(like);
	sqlite3_stmt *q = store_stmt(st, "SELECT sha256 FROM collateral WHERE sha256 LIKE ?1", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, like, -1, SQLITE_STATIC);
	int count = 0;
	while (sqlite3_step(q) == SQLITE_ROW)
		if (count++ == 0)
			snprintf(removed, 65, "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_reset(q);
	if (count == 0)
		return err_set(e, ERR_NOT_FOUND, "no collateral %s", prefix);
	if (count > 1)
		return err_set(e, ERR_CONFLICT, "%s matches %d pieces of collateral; give more digits",
		               prefix, count);
	q = store_stmt(st, "DELETE FROM collateral WHERE sha256 = ?1", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, removed, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : err_set(e, ERR_DB, "collateral: delete failed");
	sqlite3_reset(q);
	return rc;
}

/* ---- lookups for the verifiers ---- */

void collateral_certs_free(struct collateral_cert *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++)
		free(c[i].der);
	free(c);
}

/* The KDS query of a report's REPORTED_TCB, as AMD's VCEK URL wants it. */
static void kds_query(const struct snp_tcb *t, char *out, size_t cap)
{
	if (t->has_fmc)
		snprintf(out, cap, "fmcSPL=%d&blSPL=%d&teeSPL=%d&snpSPL=%d&ucodeSPL=%d", t->fmc, t->bl,
		         t->tee, t->snp, t->ucode);
	else
		snprintf(out, cap, "blSPL=%d&teeSPL=%d&snpSPL=%d&ucodeSPL=%d", t->bl, t->tee, t->snp,
		         t->ucode);
}

int collateral_snp_veks(store *st, const struct snp_report *r, struct collateral_cert **out,
                        size_t *n, struct err *e)
{
	int vlek = ((r->key_info >> 2) & 7) == SNP_KEY_VLEK, masked = (r->key_info & 2) != 0;
	char h64[129], h8[17], qs[96];
	hex_encode(r->chip_id, 64, h64);
	hex_encode(r->chip_id, 8, h8);
	sqlite3_stmt *q =
	    vlek || masked
	        ? store_stmt(st,
	                     "SELECT data FROM collateral WHERE kind = ?1 "
	                     "ORDER BY not_after DESC LIMIT 64",
	                     e)
	        : store_stmt(st,
	                     "SELECT data FROM collateral WHERE kind = ?1 AND lookup IN (?2, ?3) "
	                     "ORDER BY not_after DESC",
	                     e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, vlek ? "vlek" : "vcek", -1, SQLITE_STATIC);
	if (!(vlek || masked)) {
		sqlite3_bind_text(q, 2, h64, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, h8, -1, SQLITE_STATIC);
	}
	struct collateral_cert *list = NULL;
	size_t count = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const uint8_t *d = sqlite3_column_blob(q, 0);
		size_t len = (size_t)sqlite3_column_bytes(q, 0);
		struct snp_vek v;
		struct err ignore;
		if (snp_vek_parse(d, len, &v, &ignore) || snp_check_vek_binding(r, &v, &ignore))
			continue;
		list = xrealloc(list, (count + 1) * sizeof *list);
		list[count].der = xmalloc(len ? len : 1);
		memcpy(list[count].der, d, len);
		list[count++].len = len;
	}
	sqlite3_reset(q);
	if (count == 0) {
		char tcb[64];
		tcb_text(&r->reported_tcb, tcb, sizeof tcb);
		kds_query(&r->reported_tcb, qs, sizeof qs);
		if (vlek)
			return err_set(e, ERR_NOT_FOUND,
			               "no imported VLEK matches REPORTED_TCB %s; import the VLEK from "
			               "the cloud's certificate table (cocod collateral import)",
			               tcb);
		return err_set(e, ERR_NOT_FOUND,
		               "no imported VCEK for CHIP_ID %.16s... at REPORTED_TCB %s; import it "
		               "(cocod collateral import) from KDS vcek/v1/%s/<CHIP_ID>?%s",
		               h64, tcb, r->gen == SNP_GEN_UNKNOWN ? "{Milan|Genoa}" : snp_gen_name(r->gen),
		               qs);
	}
	*out = list;
	*n = count;
	return 0;
}

int collateral_snp_crls(store *st, struct snp_crls **out, struct err *e)
{
	*out = NULL;
	sqlite3_stmt *q = store_stmt(st, "SELECT data, lookup FROM collateral WHERE kind = 'amd_crl'", e);
	if (!q)
		return e->code;
	int rc = 0;
	while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
		if (!*out)
			*out = snp_crls_new();
		rc = snp_crls_add(*out, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), e);
		if (rc)
			err_wrap(e, "stored CRL of ARK-%s", (const char *)sqlite3_column_text(q, 1));
	}
	sqlite3_reset(q);
	if (rc) {
		snp_crls_free(*out);
		*out = NULL;
	}
	return rc;
}

/* ---- TDX: read on the loop thread, built anywhere ---- */

/* One stored document, certificate or CRL a TDX quote may need. */
struct tdx_row {
	char kind[16];
	char lookup[160];
	int64_t not_before, not_after;
	uint8_t *data;
	size_t len;
};

struct collateral_tdx_rows {
	struct tdx_row *v;
	size_t n;
};

void collateral_tdx_rows_free(struct collateral_tdx_rows *r)
{
	for (size_t i = 0; r && i < r->n; i++)
		free(r->v[i].data);
	if (r)
		free(r->v);
	free(r);
}

int collateral_tdx_fetch(store *st, struct collateral_tdx_rows **out, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st,
	                             "SELECT kind, lookup, not_before, not_after, data FROM collateral "
	                             "WHERE kind IN ('tcb_info', 'qe_identity', 'tcb_signing', "
	                             "'intel_crl') ORDER BY not_after DESC LIMIT 512",
	                             e);
	if (!q)
		return e->code;
	struct collateral_tdx_rows *r = xcalloc(1, sizeof *r);
	while (sqlite3_step(q) == SQLITE_ROW) {
		r->v = xrealloc(r->v, (r->n + 1) * sizeof *r->v);
		struct tdx_row *w = &r->v[r->n++];
		snprintf(w->kind, sizeof w->kind, "%s", (const char *)sqlite3_column_text(q, 0));
		snprintf(w->lookup, sizeof w->lookup, "%s", (const char *)sqlite3_column_text(q, 1));
		w->not_before = sqlite3_column_int64(q, 2);
		w->not_after = sqlite3_column_int64(q, 3);
		w->len = (size_t)sqlite3_column_bytes(q, 4);
		w->data = xmalloc(w->len + 1);
		memcpy(w->data, sqlite3_column_blob(q, 4), w->len);
		w->data[w->len] = 0;
	}
	sqlite3_reset(q);
	*out = r;
	return 0;
}

/* The piece of (kind, lookup) to use at `at`: one valid then first, then
 * the latest to expire (rows come latest-expiring first). */
static const struct tdx_row *newest(const struct collateral_tdx_rows *r, const char *kind,
                                    const char *lookup, time_t at)
{
	const struct tdx_row *best = NULL;
	for (size_t i = 0; i < r->n; i++) {
		const struct tdx_row *w = &r->v[i];
		if (strcmp(w->kind, kind) != 0 || strcmp(w->lookup, lookup) != 0)
			continue;
		if (w->not_before <= (int64_t)at && w->not_after >= (int64_t)at)
			return w;
		if (!best)
			best = w;
	}
	return best;
}

/* Adds stored piece (kind, lookup) to `c`, or fails naming `hint`. */
static int load_piece(const struct collateral_tdx_rows *rows, struct tdx_collateral *c,
                      const char *kind, const char *lookup, time_t at, const char *hint,
                      struct err *e)
{
	const struct tdx_row *w = newest(rows, kind, lookup, at);
	int rc;
	if (!w)
		return err_set(e, ERR_NOT_FOUND, "%s", hint);
	if (strcmp(kind, "tcb_signing") == 0) {
		/* The chain a TCB info names: signing certificate, pinned root. */
		const unsigned char *p = w->data;
		X509 *cert = d2i_X509(NULL, &p, (long)w->len);
		BIO *bio = BIO_new(BIO_s_mem());
		char *pem;
		if (cert)
			PEM_write_bio_X509(bio, cert);
		BIO_puts(bio, tdx__intel_root_pem);
		long pl = BIO_get_mem_data(bio, &pem);
		rc = cert ? tdx_collateral_add(c, pem, (size_t)pl, e)
		          : err_set(e, ERR_INVALID, "stored TCB signing certificate is unreadable");
		X509_free(cert);
		BIO_free(bio);
	} else {
		rc = tdx_collateral_add(c, (const char *)w->data, w->len, e);
	}
	return rc ? err_wrap(e, "stored %s %s", kind, lookup) : 0;
}

/* The subject CN of the second certificate of the quote's PCK chain. */
static void pck_ca_cn(const struct tdx_quote *tq, char *out, size_t cap)
{
	BIO *bio = BIO_new_mem_buf(tq->pck_pem, (int)tq->pck_pem_len);
	X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	name_cn(leaf ? X509_get_issuer_name(leaf) : NULL, out, cap);
	X509_free(leaf);
	BIO_free(bio);
	ERR_clear_error();
}

int collateral_tdx_build(const struct collateral_tdx_rows *rows, const uint8_t *q, size_t len,
                         time_t at, struct tdx_collateral **out, struct err *e)
{
	struct tdx_quote tq;
	struct tdx_pck_info pck;
	char fmspc[13], ca[128], key[32], hint[240];
	if (tdx_parse(q, len, &tq, e) || tdx_pck_info_from_pem(tq.pck_pem, tq.pck_pem_len, &pck, e))
		return e->code;
	hex_encode(pck.fmspc, 6, fmspc);
	pck_ca_cn(&tq, ca, sizeof ca);
	struct tdx_collateral *c = tdx_collateral_new();
	const char *tee = tq.header.tee_type == TDX_TEE_TYPE ? "TDX" : "SGX";
	const char *qe = tq.header.tee_type == TDX_TEE_TYPE ? "TD_QE" : "QE";
	snprintf(key, sizeof key, "%s:%s", tee, fmspc);
	snprintf(hint, sizeof hint,
	         "no %s TCB info for FMSPC %s imported (cocod collateral import the PCS "
	         "response of %s/certification/v4/tcb?fmspc=%s)",
	         tee, fmspc, tee[0] == 'T' ? "tdx" : "sgx", fmspc);
	int rc = load_piece(rows, c, "tcb_info", key, at, hint, e);
	if (rc == 0) {
		snprintf(hint, sizeof hint,
		         "no %s identity imported (cocod collateral import the PCS response of "
		         "%s/certification/v4/qe/identity)",
		         qe, tee[0] == 'T' ? "tdx" : "sgx");
		rc = load_piece(rows, c, "qe_identity", qe, at, hint, e);
	}
	if (rc == 0)
		rc = load_piece(rows, c, "tcb_signing", SIGNING_CN, at,
		                "no Intel SGX TCB Signing certificate imported (cocod collateral "
		                "import the TCB-Info-Issuer-Chain PEM)",
		                e);
	if (rc == 0)
		rc = load_piece(rows, c, "intel_crl", ROOT_CN, at,
		                "no Intel SGX Root CA CRL imported (cocod collateral import "
		                "IntelSGXRootCA.der)",
		                e);
	if (rc == 0) {
		snprintf(hint, sizeof hint,
		         "no CRL of %s imported (cocod collateral import the PCS response of "
		         "sgx/certification/v4/pckcrl?ca=%s)",
		         ca, strstr(ca, "Processor") ? "processor" : "platform");
		rc = load_piece(rows, c, "intel_crl", ca, at, hint, e);
	}
	if (rc) {
		tdx_collateral_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int collateral_tdx_load(store *st, const uint8_t *q, size_t len, time_t at,
                        struct tdx_collateral **out, struct err *e)
{
	struct collateral_tdx_rows *rows;
	if (collateral_tdx_fetch(st, &rows, e))
		return e->code;
	int rc = collateral_tdx_build(rows, q, len, at, out, e);
	collateral_tdx_rows_free(rows);
	return rc;
}

/* ---- the command ---- */

static const char usage[] =
    "usage: cocod collateral import FILE...\n"
    "       cocod collateral ls [-o json]\n"
    "       cocod collateral rm SHA256...\n"
    "options: --data-dir DIR, --config FILE\n"
    "\n"
    "import  stores attestation collateral for offline verification, each file\n"
    "        recognised by its content: AMD VCEK/VLEK/ASK/ASVK/ARK certificates and\n"
    "        ARK CRLs (PEM or DER); Intel PCK certificate chains, the TCB signing\n"
    "        chain, root CA and PCK CRLs, PCS TCB info and QE identity responses, and\n"
    "        dcap-qvl collateral bundles.  All files or none: a bad file stops the\n"
    "        import with a message naming it.  Newer TCB info, QE identities and\n"
    "        CRLs replace older ones.  The KBS checks every SNP chain against the\n"
    "        imported ARK CRLs (a revoked ASK/ASVK fails the attestation).\n"
    "ls      lists what is stored\n"
    "rm      removes pieces by (a prefix of at least 8 digits of) their SHA-256\n"
    "\n"
    "These commands work on the data directory directly; a running daemon uses\n"
    "the new collateral at its next attestation.\n";

struct opts {
	const char *data_dir, *config, *output;
	int first;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
	    {"data-dir", required_argument, NULL, 'd'}, {"config", required_argument, NULL, 'c'},
	    {"output", required_argument, NULL, 'o'},   {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	opterr = 0;
	optind = 2; /* argv[0] "collateral", argv[1] the action */
	while ((c = getopt_long(argc, argv, "o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->data_dir = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'o':
			o->output = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return -1;
		default:
			fprintf(stderr, "cocod collateral: unknown or incomplete option %s\n%s",
			        argv[optind - 1], usage);
			return EXIT_USAGE;
		}
	}
	o->first = optind;
	return 0;
}

static char *data_dir_of(const struct opts *o)
{
	return cli_data_dir("collateral", o->data_dir, o->config);
}

static int print_list(store *st, int json)
{
	json_t *arr = NULL, *v;
	struct err e = {0};
	size_t i;
	if (collateral_list(st, &arr, &e)) {
		fprintf(stderr, "cocod collateral: %s\n", e.msg);
		return EXIT_FAIL;
	}
	if (json) {
		char *s = json_dumps(arr, JSON_INDENT(2));
		puts(s ? s : "[]");
		free(s);
	} else {
		printf("%-12s  %-12s  %-10s  %s\n", "SHA256", "KIND", "UNTIL", "SUMMARY");
		json_array_foreach(arr, i, v) printf(
		    "%-12.12s  %-12s  %-10.10s  %s\n", json_string_value(json_object_get(v, "sha256")),
		    json_string_value(json_object_get(v, "kind")),
		    json_string_value(json_object_get(v, "not_after")),
		    json_string_value(json_object_get(v, "summary")));
	}
	json_decref(arr);
	return 0;
}

static int run(store *st, const char *action, const struct opts *o, int argc, char **argv)
{
	struct err e = {0};
	int n = argc - o->first;
	if (strcmp(action, "ls") == 0) {
		if (n) {
			fprintf(stderr, "cocod collateral ls: unexpected %s\n", argv[o->first]);
			return EXIT_USAGE;
		}
		return print_list(st, o->output && strcmp(o->output, "json") == 0);
	}
	if (n < 1) {
		fprintf(stderr, "cocod collateral %s: nothing given\n%s", action, usage);
		return EXIT_USAGE;
	}
	if (strcmp(action, "import") == 0) {
		if (collateral_import(st, (const char *const *)argv + o->first, (size_t)n, stdout,
		                      &e)) {
			fprintf(stderr, "cocod collateral import: %s (nothing was imported)\n", e.msg);
			return EXIT_FAIL;
		}
		return 0;
	}
	for (int i = o->first; i < argc; i++) {
		char full[65];
		if (collateral_remove(st, argv[i], full, &e)) {
			fprintf(stderr, "cocod collateral rm: %s\n", e.msg);
			return e.code == ERR_BAD_REQUEST ? EXIT_USAGE : EXIT_FAIL;
		}
		printf("removed %s\n", full);
	}
	return 0;
}

int collateral_main(int argc, char **argv)
{
	struct opts o = {0};
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	const char *action = argv[1];
	if (strcmp(action, "import") && strcmp(action, "ls") && strcmp(action, "rm")) {
		fprintf(stderr, "cocod collateral: unknown action %s\n%s", action, usage);
		return EXIT_USAGE;
	}
	int rc = parse(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	cleanup_free char *dir = data_dir_of(&o);
	store *st = NULL;
	struct err e = {0};
	if (!dir)
		return EXIT_USAGE;
	if (daemon_open_store(dir, &st, &e)) {
		fprintf(stderr, "cocod collateral: %s\n", e.msg);
		return EXIT_FAIL;
	}
	rc = run(st, action, &o, argc, argv);
	store_close(st);
	return rc;
}
