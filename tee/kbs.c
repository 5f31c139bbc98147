/* kbs: see kbs.h.  This file holds the protocol's state machine (sessions,
 * nonces, the attestation pipeline, release decisions), audit and metrics;
 * HTTP framing and the admin endpoints are in kbsapi.c, the tables in
 * kbsdb.c, the crypto in jcs.c, jwe.c, ear.c and seal.c.
 *
 * Attestation pipeline, in three phases so that the expensive part can
 * leave the loop thread (DESIGN.md, Threads):
 *   1. attest_begin, loop thread: session and nonce (single use, consumed
 *      by the first attest call whatever its outcome; one attestation per
 *      session at a time), the guest key (validated JWK), the runtime-data
 *      digest, init-data, and everything the verifier needs from the store
 *      (imported VCEK/VLEKs and ARK CRLs, TDX collateral), into a job;
 *   2. attest_verify, the libuv thread pool (or inline for kbs_attest):
 *      the TEE verifier (chains, signatures, TCB) and the report_data and
 *      init-data bindings, touching only the job and the snp trust;
 *   3. attest_end, loop thread: appraisal (Lua), the token, the session,
 *      the audit record and metrics. */
#include "kbs.h"

#include <string.h>
#include <uv.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "b64.h"
#include "collateral.h"
#include "ear.h"
#include "initdata.h"
#include "jcs.h"
#include "jwe.h"
#include "kbsdb.h"
#include "log.h"
#include "snp.h"
#include "tdx.h"
#include "util.h"

#define SIM_KEY_NAME     "sim-chain"
#define MAX_SESSIONS     65536
#define DEFAULT_TTL      300
#define DEFAULT_MAX_RES  (1u << 20)
#define RVPS_LIFETIME    (365 * 86400)

struct session {
	char id[33];
	char nonce[48];
	char tee[16];
	time_t expires;
	int used, attested;
	int busy;        /* an attestation is in flight */
	json_t *claims;  /* the token's claims once attested */
	jwe_key *key;    /* the guest's key once attested */
	struct session *prev, *next; /* creation order = expiry order */
};

struct kbs {
	store *st;
	policy *pol;
	metrics *m;
	seal *seal;
	ear *ear;
	struct simsp *sim;
	struct snp_trust *trust;
	struct kbs_opts o;
	struct strmap sessions;
	struct session *head, *tail;
	size_t nsessions;
	unsigned inflight; /* attestations on the thread pool */
	int closing;       /* kbs_free called with some in flight */
};

store *kbs__store(struct kbs *k) { return k->st; }
policy *kbs__policy(struct kbs *k) { return k->pol; }
const seal *kbs__seal(struct kbs *k) { return k->seal; }
size_t kbs__max_resource(struct kbs *k) { return k->o.max_resource; }
int kbs__session_ttl(struct kbs *k) { return k->o.session_ttl_s; }
json_t *kbs__jwks(struct kbs *k) { return ear_jwks(k->ear); }

/* --- audit and metrics --- */

void kbs__audit(struct kbs *k, const char *actor, const char *action, const char *object,
		const char *detail)
{
	struct err e = {0};
	sqlite3_stmt *q = store_stmt(k->st,
		"INSERT INTO audit(time, actor, action, object, detail) VALUES("
		"strftime('%Y-%m-%dT%H:%M:%fZ','now'), ?, ?, ?, ?)", &e);
	if (!q) {
		log_warn("kbs", "audit: %s", e.msg);
		return;
	}
	sqlite3_bind_text(q, 1, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, object, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, detail ? detail : "", -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		log_warn("kbs", "audit: %s", sqlite3_errmsg(store_db(k->st)));
	sqlite3_reset(q);
}

static void count(struct kbs *k, const char *name, const char *help, const char *l1, const char *v1,
		  const char *l2, const char *v2)
{
	char labels[256];
	if (!k->m || metrics_labels(labels, sizeof labels, l1, v1, l2, v2, NULL) < 0)
		return;
	metrics_counter_add(k->m, name, help, labels, 1);
}

/* --- construction --- */

int kbs_sim_load(const seal *s, store *st, int create, struct simsp **out, struct err *e)
{
	uint8_t *pem;
	size_t len;
	if (seal_store_get(s, st, SIM_KEY_NAME, &pem, &len, e) == 0) {
		int rc = simsp_load((const char *)pem, len, out, e);
		seal_wipe_free(pem, len);
		return rc;
	}
	if (e->code != ERR_NOT_FOUND || !create)
		return e->code;
	err_clear(e);
	char *text;
	if (simsp_generate(out, e) || simsp_save(*out, &text, &len, e))
		return e->code;
	int rc = seal_store_put(s, st, SIM_KEY_NAME, text, len, e);
	simsp_secret_free(text, len);
	if (rc) {
		simsp_free(*out);
		*out = NULL;
	}
	return rc;
}

int kbs_new(store *st, policy *pol, metrics *m, const char *data_dir, const struct kbs_opts *opts,
	    struct kbs **out, struct err *e)
{
	struct kbs *k = xcalloc(1, sizeof *k);
	k->st = st, k->pol = pol, k->m = m, k->o = *opts;
	k->o.master_key = NULL;
	if (!k->o.token_ttl_s)
		k->o.token_ttl_s = DEFAULT_TTL;
	if (!k->o.session_ttl_s)
		k->o.session_ttl_s = DEFAULT_TTL;
	if (!k->o.max_resource)
		k->o.max_resource = DEFAULT_MAX_RES;
	strmap_init(&k->sessions);
	cleanup_free char *key = opts->master_key ? xstrdup(opts->master_key)
						   : xasprintf("%s/master.key", data_dir);
	int rc = seal_open(key, &k->seal, e) || ear_load_or_create(k->seal, st, &k->ear, e);
	if (!rc) {
		ear_set_lifetime(k->ear, k->o.token_ttl_s);
		k->trust = snp_trust_new();
		if (k->o.sim)
			rc = kbs_sim_load(k->seal, st, 1, &k->sim, e) || simsp_trust(k->sim, k->trust, e);
	}
	if (rc) {
		kbs_free(k);
		return err_wrap(e, "KBS");
	}
	*out = k;
	return 0;
}

static void session_free(struct session *s)
{
	json_decref(s->claims);
	jwe_key_free(s->key);
	OPENSSL_cleanse(s->nonce, sizeof s->nonce);
	free(s);
}

static void session_drop(struct kbs *k, struct session *s)
{
	strmap_del(&k->sessions, s->id);
	if (s->prev)
		s->prev->next = s->next;
	else
		k->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		k->tail = s->prev;
	k->nsessions--;
	session_free(s);
}

void kbs_free(struct kbs *k)
{
	if (!k)
		return;
	if (k->inflight) { /* the last job frees it (on_verified) */
		log_warn("kbs", "freed with %u attestation(s) in flight; they will be refused", k->inflight);
		k->closing = 1;
		return;
	}
	while (k->head)
		session_drop(k, k->head);
	strmap_fini(&k->sessions);
	snp_trust_free(k->trust);
	simsp_free(k->sim);
	ear_free(k->ear);
	seal_free(k->seal);
	free(k);
}

int kbs_register_measurement(struct kbs *k, const char *hex, struct err *e)
{
	return kbsdb_refval_add(k->st, "measurement", hex, 0, e);
}

/* --- sessions and auth --- */

static void sweep(struct kbs *k, time_t now)
{
	while (k->head && k->head->expires <= now)
		session_drop(k, k->head);
}

static struct session *session_find(struct kbs *k, const char *sid, time_t now, struct err *e)
{
	if (!sid)
		return err_set(e, ERR_UNAUTHORIZED, "no %s cookie", KBS_COOKIE), NULL;
	struct session *s = strmap_get(&k->sessions, sid);
	if (!s)
		return err_set(e, ERR_UNAUTHORIZED, "unknown or expired session"), NULL;
	if (s->expires <= now) {
		session_drop(k, s);
		return err_set(e, ERR_UNAUTHORIZED, "session expired"), NULL;
	}
	return s;
}

static int tee_known(const char *tee)
{
	static const char *const tees[] = {"snp", "tdx", "se", "sample"};
	for (size_t i = 0; tee && i < sizeof tees / sizeof tees[0]; i++)
		if (strcmp(tee, tees[i]) == 0)
			return 1;
	return 0;
}

int kbs_auth(struct kbs *k, const json_t *req, time_t now, char sid[33], json_t **challenge,
	     const char **variant, struct err *e)
{
	const char *ver = json_string_value(json_object_get(req, "version"));
	const char *tee = json_string_value(json_object_get(req, "tee"));
	*variant = "RcarAuthFailed";
	if (!json_is_object(req))
		return err_set(e, ERR_UNAUTHORIZED, "auth request is not a JSON object");
	if (!ver || strcmp(ver, KBS_PROTOCOL_VERSION) != 0) {
		*variant = "ProtocolVersion";
		return err_set(e, ERR_UNAUTHORIZED, "KBS Client Protocol Version Mismatch: %.32s (expected %s)",
			       ver ? ver : "(none)", KBS_PROTOCOL_VERSION);
	}
	if (!tee_known(tee))
		return err_set(e, ERR_UNAUTHORIZED, "unsupported tee %.32s (snp, tdx, se, sample)", tee ? tee : "(none)");
	if (strcmp(tee, "se") == 0)
		return err_set(e, ERR_UNAUTHORIZED, "IBM SE attestation is not supported by this KBS");
	sweep(k, now);
	if (k->nsessions >= MAX_SESSIONS) {
		*variant = "TooManySessions";
		return err_set(e, ERR_TOO_MANY, "too many open KBS sessions");
	}
	uint8_t id[16], nonce[32];
	if (RAND_bytes(id, sizeof id) != 1 || RAND_bytes(nonce, sizeof nonce) != 1)
		return err_set(e, ERR_CRYPTO, "no randomness");
	struct session *s = xcalloc(1, sizeof *s);
	hex_encode(id, sizeof id, s->id);
	char *n64 = b64_encode(nonce, sizeof nonce);
	snprintf(s->nonce, sizeof s->nonce, "%s", n64);
	free(n64);
	snprintf(s->tee, sizeof s->tee, "%s", tee);
	s->expires = now + k->o.session_ttl_s;
	s->prev = k->tail;
	if (k->tail)
		k->tail->next = s;
	else
		k->head = s;
	k->tail = s;
	k->nsessions++;
	strmap_put(&k->sessions, s->id, s);
	memcpy(sid, s->id, 33);
	*challenge = json_pack("{s:s, s:s}", "nonce", s->nonce, "extra-params", "");
	return 0;
}

int kbs_runtime_digest(const char *nonce, const json_t *tee_pubkey, const char *additional,
		       int sha512, uint8_t out[64], size_t *len, struct err *e)
{
	json_t *rd = json_pack("{s:s, s:s, s:O}", "additional-evidence", additional ? additional : "",
			       "nonce", nonce, "tee-pubkey", tee_pubkey);
	char *text;
	size_t n;
	int rc = rd ? jcs_serialize(rd, &text, &n, e) : err_set(e, ERR_BAD_REQUEST, "runtime data incomplete");
	json_decref(rd);
	if (rc)
		return rc;
	unsigned int dl = 0;
	EVP_Digest(text, n, out, &dl, sha512 ? EVP_sha512() : EVP_sha384(), NULL);
	free(text);
	*len = dl;
	return 0;
}

int kbs_path_valid(const char *path)
{
	int segs = 0;
	const char *p = path;
	while (p && *p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || n > 128 || p[0] == '.')
			return 0;
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '_' || c == '-' || c == '.'))
				return 0;
		}
		segs++;
		p = end ? end + 1 : NULL;
		if (end && !*p)
			return 0;
	}
	return segs == 3;
}

/* --- attestation --- */

struct attestation {
	const char *tee;
	int sim;
	uint8_t expected[64]; /* the runtime-data digest */
	size_t explen;
	struct initdata init;
	int has_init;
	json_t *claims;    /* the verifier's claims (owned) */
	json_t *appraise;  /* the appraisal policy's claims (owned) */
};

static void attestation_fini(struct attestation *a)
{
	initdata_fini(&a->init);
	json_decref(a->claims);
	json_decref(a->appraise);
}

/* One attestation between its three phases (see the file comment).
 * attest_begin fills the inputs on the loop thread (with a.expected and
 * a.init); attest_verify, on a pool thread, reads them, writes a.claims,
 * a.appraise, a.sim, `rc` and `e`, and touches nothing else but the snp
 * trust (which locks its cache);
 * attest_end reads the outcome back on the loop thread.  uv_queue_work
 * orders the hand-overs. */
struct attest_job {
	uv_work_t work;
	struct kbs *k;
	char sid[33], tee[16];
	time_t now;
	uint64_t t0;
	json_t *req;                  /* a reference: the verifier reads the evidence */
	const json_t *primary;        /* tee-evidence.primary_evidence, inside req */
	json_t *rt;                   /* the runtime data, for the token */
	jwe_key *key;                 /* the guest's key, validated */
	uint8_t raw[SNP_REPORT_SIZE]; /* SNP: the rebuilt report, parsed into r */
	struct snp_report r;
	struct collateral_cert *veks; /* SNP evidence without its VEK: the imported ones */
	size_t nveks;
	struct snp_crls *crls;        /* the imported ARK CRLs (NULL: none) */
	uint8_t *quote;               /* TDX: the raw quote */
	size_t qlen;
	struct collateral_tdx_rows *rows; /* the stored TDX collateral */
	struct kbs_attest_cb cb;
	struct attestation a;         /* the verifier's output from here on */
	int rc;
	struct err e;
};

static void job_free(struct attest_job *j)
{
	attestation_fini(&j->a);
	json_decref(j->req);
	json_decref(j->rt);
	jwe_key_free(j->key);
	collateral_certs_free(j->veks, j->nveks);
	snp_crls_free(j->crls);
	free(j->quote);
	collateral_tdx_rows_free(j->rows);
	free(j);
}

/* Whether Trustee's cert_chain carries the VCEK/VLEK itself. */
static int carries_vek(const json_t *ev)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(ev, "cert_chain"), i, c) {
		const char *t = json_string_value(json_object_get(c, "cert_type"));
		if (t && (strcasecmp(t, "VCEK") == 0 || strcasecmp(t, "VLEK") == 0))
			return 1;
	}
	return 0;
}

/* SNP, loop side: the report (rebuilt and parsed here: the store is
 * searched by its CHIP_ID and REPORTED_TCB), the imported VCEK/VLEKs when
 * the evidence carries none (CoCo's guest often sends none; VLEKs come
 * from the cloud) and the imported ARK CRLs. */
static int gather_snp(struct kbs *k, struct attest_job *j, struct err *e)
{
	const json_t *ev = j->primary;
	if (!json_is_object(ev))
		return err_set(e, ERR_BAD_REQUEST, "SNP evidence: expected a JSON object");
	if (snp_trustee_report(json_object_get(ev, "attestation_report"), j->raw, e) ||
	    snp_parse(j->raw, sizeof j->raw, &j->r, e) ||
	    (!carries_vek(ev) && collateral_snp_veks(k->st, &j->r, &j->veks, &j->nveks, e)))
		return err_wrap(e, "SNP evidence");
	if (collateral_snp_crls(k->st, &j->crls, e))
		return err_wrap(e, "SNP collateral");
	return 0;
}

/* SNP, pool side: the chain (the evidence's VEK, or each imported one in
 * turn), revocation and signature, then the bindings. */
static int verify_snp(const struct snp_trust *trust, struct attest_job *j, struct err *e)
{
	struct attestation *a = &j->a;
	const json_t *chain = json_object_get(j->primary, "cert_chain");
	int rc = 0;
	if (!j->veks)
		rc = snp_verify_trustee_chain(j->raw, chain, NULL, 0, trust, j->crls, j->now, &a->claims, e);
	for (size_t i = 0; j->veks && i < j->nveks; i++) {
		rc = snp_verify_trustee_chain(j->raw, chain, j->veks[i].der, j->veks[i].len, trust, j->crls,
					      j->now, &a->claims, e);
		if (rc == 0 || i + 1 == j->nveks)
			break;
		err_clear(e);
	}
	if (rc)
		return err_wrap(e, "SNP evidence");
	if (snp_check_report_data(&j->r, a->expected, a->explen, e))
		return err_wrap(e, "SNP binding");
	if (a->has_init && snp_check_host_data(&j->r, a->init.digest, a->init.digest_len, e))
		return err_wrap(e, "init-data digest");
	a->sim = json_is_true(json_object_get(a->claims, "sim"));
	const json_t *c = a->claims, *pol = json_object_get(c, "policy");
	const json_t *tcb = json_object_get(c, "reported_tcb");
	a->appraise = json_pack("{s:s, s:b, s:O, s:O, s:O, s:{s:O, s:O, s:O}, s:{s:O, s:O, s:O, s:O}}",
		"tee", "snp", "sim", a->sim, "measurement", json_object_get(c, "measurement"),
		"host_data", json_object_get(c, "host_data"), "report_data", json_object_get(c, "report_data"),
		"policy", "debug", json_object_get(pol, "debug"), "migrate_ma", json_object_get(pol, "migrate_ma"),
		"smt", json_object_get(pol, "smt"), "tcb", "bootloader", json_object_get(tcb, "bootloader"),
		"tee", json_object_get(tcb, "tee"), "snp", json_object_get(tcb, "snp"), "microcode",
		json_object_get(tcb, "microcode"));
	return a->appraise ? 0 : err_set(e, ERR_INTERNAL, "SNP claims incomplete");
}

/* TDX, loop side: the quote and the stored collateral, unparsed (parsing
 * it takes about a millisecond: the pool does it). */
static int gather_tdx(struct kbs *k, struct attest_job *j, struct err *e)
{
	char *text = json_dumps(j->primary, JSON_COMPACT);
	int rc = text ? tdx_evidence_decode(text, strlen(text), &j->quote, &j->qlen, NULL, NULL, e)
		      : err_set(e, ERR_BAD_REQUEST, "TDX evidence is not JSON");
	free(text);
	if (rc)
		return rc;
	return collateral_tdx_fetch(k->st, &j->rows, e) ? err_wrap(e, "TDX collateral") : 0;
}

/* TDX, pool side: the quote's collateral, then quote, QE report, PCK
 * chain, CRLs and TCB status, then the bindings.  Without (complete)
 * imported collateral the quote's signatures and chains are still checked
 * and the TCB status is "unknown": the appraisal policy decides what that
 * means (the default: warning). */
static int verify_tdx(struct attest_job *j, struct err *e)
{
	struct attestation *a = &j->a;
	struct tdx_quote tq;
	struct tdx_collateral *col = NULL;
	int rc = collateral_tdx_build(j->rows, j->quote, j->qlen, j->now, &col, e);
	if (rc == ERR_NOT_FOUND) {
		log_info("kbs", "TDX TCB status unknown: %s", e->msg); /* one write(2): any thread */
		err_clear(e);
	} else if (rc) {
		return err_wrap(e, "TDX collateral");
	}
	rc = tdx_verify(j->quote, j->qlen, col, j->now, &a->claims, e) || tdx_parse(j->quote, j->qlen, &tq, e);
	tdx_collateral_free(col);
	if (rc)
		return err_wrap(e, "TDX evidence");
	if (tdx_check_report_data(&tq, a->expected, a->explen, e))
		return err_wrap(e, "TDX binding");
	if (a->has_init && tdx_check_mrconfigid(&tq, a->init.digest, a->init.digest_len, e))
		return err_wrap(e, "init-data digest");
	const json_t *c = a->claims;
	a->appraise = json_pack("{s:s, s:b, s:O, s:O, s:O, s:O, s:{s:O}}", "tee", "tdx", "sim", 0,
		"measurement", json_object_get(c, "mrtd"), "init_data", json_object_get(c, "mrconfigid"),
		"report_data", json_object_get(c, "report_data"), "tcb_status", json_object_get(c, "tcb_status"),
		"policy", "debug", json_object_get(c, "debug"));
	return a->appraise ? 0 : err_set(e, ERR_INTERNAL, "TDX claims incomplete");
}

/* Trustee's unsigned sample evidence: {"svn", "report_data": base64 of
 * the raw digest}.  Parsed and bound, never trusted (the policy decides). */
static int verify_sample(const json_t *ev, struct attestation *a, struct err *e)
{
	const char *rd = json_string_value(json_object_get(ev, "report_data"));
	const char *svn = json_string_value(json_object_get(ev, "svn"));
	uint8_t *raw;
	size_t n;
	if (!rd || !svn || b64_decode(rd, (size_t)-1, &raw, &n))
		return err_set(e, ERR_BAD_REQUEST, "sample evidence needs svn and base64 report_data");
	int ok = n == a->explen && ct_equal(raw, a->expected, n);
	char hex[129];
	hex_encode(raw, n < 64 ? n : 64, hex);
	free(raw);
	if (!ok)
		return err_set(e, ERR_UNAUTHORIZED, "sample report_data does not match the runtime data");
	a->claims = json_pack("{s:s, s:s, s:s, s:b}", "svn", svn, "report_data", hex, "launch_digest",
			      "abcde", "debug", 0);
	a->appraise = json_pack("{s:s, s:b, s:s, s:s}", "tee", "sample", "sim", 0, "report_data", hex,
				"measurement", "abcde");
	return 0;
}

/* init-data: null or {"format":"toml","body":"..."}. */
static int parse_init(const json_t *init, struct attestation *a, struct err *e)
{
	if (!init || json_is_null(init))
		return 0;
	const char *fmt = json_string_value(json_object_get(init, "format"));
	const json_t *body = json_object_get(init, "body");
	if (!fmt || strcmp(fmt, "toml") != 0 || !json_is_string(body))
		return err_set(e, ERR_BAD_REQUEST, "init-data must be {\"format\":\"toml\",\"body\":\"...\"}");
	if (initdata_parse(json_string_value(body), json_string_length(body), &a->init, e))
		return e->code;
	a->has_init = 1;
	return 0;
}

/* Stored reference values in the shape appraise() expects.  RVPS names:
 * measurement (aliases snp_launch_measurement, mr_td), host_data,
 * init_data (alias mr_config_id), tcb_min_<bootloader|tee|snp|microcode>. */
static json_t *reference_values(struct kbs *k, time_t now)
{
	json_t *all = NULL, *out = json_object(), *tcb = json_object(), *v;
	struct err e = {0};
	const char *name;
	if (kbsdb_refval_all(k->st, now, &all, &e))
		log_warn("kbs", "reference values: %s", e.msg);
	json_object_foreach(all, name, v) {
		const char *key = strcmp(name, "snp_launch_measurement") == 0 || strcmp(name, "mr_td") == 0
					  ? "measurement" : strcmp(name, "mr_config_id") == 0 ? "init_data" : name;
		if (strncmp(name, "tcb_min_", 8) == 0) {
			json_object_set_new(tcb, name + 8, json_integer(strtoll(json_string_value(json_array_get(v, 0)), NULL, 10)));
			continue;
		}
		if (strcmp(key, "measurement") && strcmp(key, "host_data") && strcmp(key, "init_data"))
			continue;
		json_t *list = json_object_get(out, key);
		if (!list)
			json_object_set_new(out, key, list = json_array());
		json_array_extend(list, v);
	}
	if (json_object_size(tcb))
		json_object_set(out, "tcb_min", tcb);
	json_decref(tcb);
	json_decref(all);
	return out;
}

/* "instance_identity" -> "instance-identity", integers only. */
static json_t *dashed(const json_t *tv)
{
	json_t *o = json_object(), *v;
	const char *key;
	json_object_foreach((json_t *)(uintptr_t)tv, key, v) {
		char name[64];
		snprintf(name, sizeof name, "%s", key);
		for (char *p = name; *p; p++)
			if (*p == '_')
				*p = '-';
		if (json_is_integer(v))
			json_object_set(o, name, v);
	}
	return o;
}

static const char *cap_status(const char *status, int sim)
{
	static const char *const order[] = {"affirming", "warning", "none", "contraindicated"};
	for (size_t i = 0; i < 4; i++)
		if (status && strcmp(status, order[i]) == 0)
			return sim && i == 0 ? "warning" : order[i];
	return "none";
}

/* appraise() and the token.  Denials carry the policy's reason. */
static int appraise_and_sign(struct kbs *k, struct attestation *a, const json_t *rt, time_t now,
			     char **token, json_t **claims, const char **status, struct err *e)
{
	json_t *refs = reference_values(k, now);
	if (strcmp(a->tee, "snp") == 0)
		json_object_set_new(a->appraise, "tcb_status",
				    json_string(json_object_get(refs, "tcb_min") ? "UpToDate" : "unknown"));
	json_t *args[2] = {a->appraise, refs};
	struct policy_verdict v;
	policy_eval(k->pol, POLICY_ATTESTATION, a->tee, args, 2, &v);
	json_decref(refs);
	*status = cap_status(json_string_value(json_object_get(v.result, "status")), a->sim);
	int rc = 0;
	if (!v.allow) {
		rc = err_set(e, ERR_UNAUTHORIZED, "attestation denied by policy attestation version %d: %.160s",
			     v.version, v.reason);
		*status = v.failed ? "none" : *status;
	} else {
		json_t *ann = json_pack("{s:O, s:O, s:s}", a->tee, a->claims, "runtime_data_claims", rt,
					"report_data", json_string_value(json_object_get(a->appraise, "report_data")));
		if (a->has_init) {
			char hex[129];
			hex_encode(a->init.digest, a->init.digest_len, hex);
			json_object_set_new(ann, "init_data", json_string(hex));
			json_object_set(ann, "init_data_claims", a->init.data);
		}
		json_object_set_new(ann, "sim", json_boolean(a->sim));
		json_t *tv = dashed(json_object_get(v.result, "trust_vector"));
		struct ear_result r = {*status, tv, "default_cpu", ann, a->sim};
		rc = ear_issue(k->ear, &r, now, token, claims, e);
		json_decref(tv);
		json_decref(ann);
	}
	policy_verdict_fini(&v);
	return rc;
}

static void attest_record(struct kbs *k, const char *sid, const char *tee, const char *verdict,
			  const char *status, const char *reason, uint64_t t0)
{
	double secs = (double)(now_ns() - t0) / 1e9;
	char detail[512], labels[128];
	snprintf(detail, sizeof detail, "verdict=%s status=%s duration_ms=%.3f session=%.8s reason=%s",
		 verdict, status, secs * 1e3, sid ? sid : "-", reason);
	kbs__audit(k, "kbs", "attest", tee, detail);
	log_info("kbs", "attest tee=%s verdict=%s status=%s duration_ms=%.3f reason=\"%s\"", tee,
		 verdict, status, secs * 1e3, reason);
	count(k, "cocod_kbs_attestations_total", "KBS attestations, by TEE and verdict.", "tee", tee,
	      "verdict", verdict);
	if (k->m && metrics_labels(labels, sizeof labels, "tee", tee, NULL) >= 0)
		metrics_observe(k->m, "cocod_kbs_attestation_duration_seconds",
				"Time to verify and appraise one attestation.", labels, secs);
}

/* Trustee answers 401 for every refusal; only internal failures keep
 * their own code. */
static int refusal(struct err *e)
{
	int rc = e->code ? e->code : ERR_UNAUTHORIZED;
	e->code = err_http_status(rc) >= 500 ? rc : ERR_UNAUTHORIZED;
	return e->code;
}

/* The request's shape, the nonce, the guest key, the expected
 * report_data and init-data digest. */
static int prepare(struct kbs *k, const struct session *s, struct attest_job *j, struct err *e)
{
	const json_t *req = j->req, *rd = json_object_get(req, "runtime-data");
	const json_t *ev = json_object_get(req, "tee-evidence");
	const char *nonce = json_string_value(json_object_get(rd, "nonce"));
	const json_t *pk = json_object_get(rd, "tee-pubkey");
	const json_t *add = json_object_get(ev, "additional_evidence");
	j->primary = json_object_get(ev, "primary_evidence");
	if (!json_is_object(req) || !nonce || !json_is_object(ev) || !j->primary || (add && !json_is_string(add)))
		return err_set(e, ERR_BAD_REQUEST, "attest request must hold runtime-data {nonce, tee-pubkey} "
				   "and tee-evidence {primary_evidence, additional_evidence}");
	if (strlen(nonce) != strlen(s->nonce) || !ct_equal(nonce, s->nonce, strlen(s->nonce)))
		return err_set(e, ERR_UNAUTHORIZED, "runtime-data nonce is not this session's nonce");
	if (jwe_key_from_jwk(pk, k->o.allow_rsa1_5, &j->key, e))
		return e->code;
	const char *addstr = add ? json_string_value(add) : "";
	if (kbs_runtime_digest(nonce, pk, addstr, 0, j->a.expected, &j->a.explen, e) ||
	    parse_init(json_object_get(req, "init-data"), &j->a, e))
		return e->code;
	j->rt = json_pack("{s:s, s:O, s:s}", "nonce", nonce, "tee-pubkey", pk, "additional-evidence", addstr);
	if (strcmp(j->tee, "snp") == 0)
		return gather_snp(k, j, e);
	if (strcmp(j->tee, "tdx") == 0)
		return gather_tdx(k, j, e);
	return 0;
}

/* Phase one (loop thread): the session, whose nonce is spent here
 * whatever follows, and everything the verifier needs from the request
 * and the store.  A failure is recorded and leaves no job behind. */
static int attest_begin(struct kbs *k, const char *sid, const json_t *req, time_t now,
			struct attest_job **out, struct err *e)
{
	uint64_t t0 = now_ns();
	struct session *s = session_find(k, sid, now, e);
	if (!s) {
		attest_record(k, sid, "-", "rejected", "none", e->msg, t0);
		return e->code;
	}
	if (s->busy || s->used) {
		err_set(e, ERR_UNAUTHORIZED, s->busy ? "an attestation of this session is already in progress; "
				 "start again with /auth" : "the session's nonce was already used; start again with /auth");
		attest_record(k, sid, s->tee, "rejected", "none", e->msg, t0);
		return e->code;
	}
	s->used = 1;
	struct attest_job *j = xcalloc(1, sizeof *j);
	j->k = k, j->now = now, j->t0 = t0;
	memcpy(j->sid, s->id, sizeof j->sid);
	memcpy(j->tee, s->tee, sizeof j->tee);
	j->a.tee = j->tee;
	j->req = json_incref((json_t *)(uintptr_t)req);
	if (prepare(k, s, j, e)) {
		attest_record(k, sid, j->tee, "denied", "none", e->msg, t0);
		job_free(j);
		return refusal(e);
	}
	s->busy = 1;
	*out = j;
	return 0;
}

/* Phase two (any thread): the verifier and the bindings.  Reads the job
 * and the snp trust, writes only j->a. */
static int attest_verify(const struct snp_trust *trust, struct attest_job *j, struct err *e)
{
	if (strcmp(j->tee, "snp") == 0)
		return verify_snp(trust, j, e);
	if (strcmp(j->tee, "tdx") == 0)
		return verify_tdx(j, e);
	return verify_sample(j->primary, &j->a, e);
}

/* Phase three (loop thread): appraisal and the token when the evidence
 * verified and the client still waits, then the session and the record.
 * The session is looked up again: it may have expired meanwhile. */
static int attest_end(struct kbs *k, struct attest_job *j, char **token, struct err *e)
{
	struct session *s = strmap_get(&k->sessions, j->sid);
	const char *status = "none", *verdict = "denied";
	json_t *claims = NULL;
	int rc = j->rc;
	if (s)
		s->busy = 0;
	if (rc) {
		*e = j->e;
	} else if (j->cb.gone && j->cb.gone(j->cb.arg)) {
		verdict = "abandoned";
		rc = err_set(e, ERR_UNAVAILABLE, "the client went away during verification; no token issued");
	} else if (!s) {
		rc = err_set(e, ERR_UNAUTHORIZED, "the session expired during verification");
	} else {
		rc = appraise_and_sign(k, &j->a, j->rt, j->now, token, &claims, &status, e);
		verdict = rc ? "denied" : "issued";
	}
	attest_record(k, j->sid, j->tee, verdict, status, rc ? e->msg : "token issued", j->t0);
	if (rc)
		return refusal(e);
	s->attested = 1;
	s->claims = claims;
	s->key = j->key;
	j->key = NULL;
	return 0;
}

int kbs_attest(struct kbs *k, const char *sid, const json_t *req, time_t now, char **token,
	       const char **variant, struct err *e)
{
	struct attest_job *j;
	*variant = "RcarAttestFailed";
	if (attest_begin(k, sid, req, now, &j, e))
		return e->code;
	j->rc = attest_verify(k->trust, j, &j->e);
	int rc = attest_end(k, j, token, e);
	job_free(j);
	return rc;
}

/* Phase three and the caller's callback, then the job is gone. */
static void attest_finish(struct attest_job *j)
{
	struct err e = {0};
	char *token = NULL;
	int rc = attest_end(j->k, j, &token, &e);
	j->cb.done(j->cb.arg, rc, token, "RcarAttestFailed", &e);
	job_free(j);
}

static void on_verify(uv_work_t *w)
{
	struct attest_job *j = w->data;
	j->rc = attest_verify(j->k->trust, j, &j->e);
}

/* Back on the loop thread.  A KBS freed meanwhile (kbs_free waits for
 * its jobs) only answers: its store and policy may be gone. */
static void on_verified(uv_work_t *w, int status)
{
	struct attest_job *j = w->data;
	struct kbs *k = j->k;
	k->inflight--;
	if (status == UV_ECANCELED && !j->rc)
		j->rc = err_set(&j->e, ERR_UNAVAILABLE, "attestation cancelled");
	if (!k->closing) {
		attest_finish(j);
		return;
	}
	struct err e = {0};
	err_set(&e, ERR_UNAVAILABLE, "the KBS is shutting down");
	j->cb.done(j->cb.arg, e.code, NULL, "RcarAttestFailed", &e);
	job_free(j);
	if (!k->inflight)
		kbs_free(k);
}

int kbs_attest_start(struct kbs *k, const char *sid, const json_t *req, time_t now,
		     const struct kbs_attest_cb *cb, const char **variant, struct err *e)
{
	struct attest_job *j;
	*variant = "RcarAttestFailed";
	if (attest_begin(k, sid, req, now, &j, e))
		return e->code;
	j->cb = *cb;
	j->work.data = j;
	if (!k->o.loop || uv_queue_work(k->o.loop, &j->work, on_verify, on_verified) != 0) {
		j->rc = attest_verify(k->trust, j, &j->e);
		attest_finish(j);
		return 0;
	}
	k->inflight++;
	return 0;
}

/* --- resources --- */

/* The TEE named in the token: the key of the annotated evidence. */
static const char *token_tee(const json_t *claims)
{
	const json_t *a = json_object_get(json_object_get(json_object_get(claims, "submods"), "cpu0"),
					  "ear.veraison.annotated-evidence");
	static const char *const tees[] = {"snp", "tdx", "sample"};
	for (size_t i = 0; i < 3; i++)
		if (json_object_get(a, tees[i]))
			return tees[i];
	return "unknown";
}

/* The token's claims and the guest key, from the session or the bearer
 * token (re-verified).  *claims and *key are new references. */
static int authenticate(struct kbs *k, const char *sid, const char *bearer, time_t now,
			json_t **claims, jwe_key **key, const char **variant, struct err *e)
{
	struct session *s = sid ? strmap_get(&k->sessions, sid) : NULL;
	if (s && s->attested && s->expires > now &&
	    json_integer_value(json_object_get(s->claims, "exp")) > (json_int_t)now) {
		*claims = json_incref(s->claims);
		*key = jwe_key_dup(s->key); /* validated at attest */
		return 0;
	}
	if (!bearer) {
		*variant = "TokenNotFound";
		return err_set(e, ERR_UNAUTHORIZED, "no attested session cookie and no bearer token");
	}
	*variant = "TokenVerifierError";
	if (ear_verify(k->ear, bearer, now, claims, e))
		return e->code;
	if (jwe_key_from_jwk(ear_tee_pubkey(*claims), k->o.allow_rsa1_5, key, e)) {
		json_decref(*claims);
		return err_wrap(e, "token");
	}
	return 0;
}

static void release_record(struct kbs *k, const char *path, const char *tee, int ok, const char *reason)
{
	char detail[400];
	snprintf(detail, sizeof detail, "tee=%s reason=%s", tee, reason);
	kbs__audit(k, "kbs", ok ? "release" : "deny", path, detail);
	log_info("kbs", "resource path=%s tee=%s %s reason=\"%s\"", path, tee, ok ? "released" : "denied", reason);
	count(k, "cocod_kbs_resource_requests_total", "KBS resource requests, by outcome.", "result",
	      ok ? "released" : "denied", NULL, NULL);
}

/* release(path, token_claims): the token's claims plus tee, sim and the
 * daemon's dev_mode (never taken from the guest). */
static int release_decision(struct kbs *k, const char *path, const json_t *claims, const char *tee,
			    struct err *e)
{
	json_t *tc = json_deep_copy(claims), *p = json_string(path);
	json_object_set_new(tc, "tee", json_string(tee));
	json_object_set_new(tc, "sim", json_boolean(json_is_true(json_object_get(claims, "sim"))));
	json_object_set_new(tc, "dev_mode", json_boolean(k->o.dev_mode));
	json_t *args[2] = {p, tc};
	struct policy_verdict v;
	policy_eval(k->pol, POLICY_RESOURCE, path, args, 2, &v);
	int rc = v.allow ? 0 : err_set(e, ERR_UNAUTHORIZED, "release denied by policy resource version %d: %.160s",
				       v.version, v.reason);
	policy_verdict_fini(&v);
	json_decref(tc);
	json_decref(p);
	return rc;
}

int kbs_resource(struct kbs *k, const char *sid, const char *bearer, const char *path, time_t now,
		 json_t **jwe, const char **variant, struct err *e)
{
	json_t *claims = NULL;
	jwe_key *key = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	if (!kbs_path_valid(path)) {
		*variant = "InvalidRequestPath";
		return err_set(e, ERR_NOT_FOUND, "invalid resource path");
	}
	if (authenticate(k, sid, bearer, now, &claims, &key, variant, e)) {
		release_record(k, path, "-", 0, e->msg);
		return ERR_UNAUTHORIZED;
	}
	const char *tee = token_tee(claims);
	int rc = 0;
	*variant = "PolicyDeny";
	if (release_decision(k, path, claims, tee, e)) {
		rc = e->code;
	} else if (kbsdb_resource_get(k->st, k->seal, path, &data, &len, e)) {
		*variant = "PluginInternalError";
		rc = e->code == ERR_NOT_FOUND ? err_set(e, ERR_UNAUTHORIZED, "resource not found") : e->code;
	} else if (jwe_encrypt(key, data, len, jwe, e)) {
		*variant = "JweError";
		rc = e->code;
	}
	release_record(k, path, tee, rc == 0, rc ? e->msg : "released");
	seal_wipe_free(data, len);
	jwe_key_free(key);
	json_decref(claims);
	return rc;
}
