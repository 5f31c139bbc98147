/* kbs: see kbs.h.  This file holds the protocol's state machine (sessions,
 * nonces, the attestation pipeline, release decisions), audit and metrics;
 * HTTP framing and the admin endpoints are in kbsapi.c, the tables in
 * kbsdb.c, the crypto in jcs.c, jwe.c, ear.c and seal.c.
 *
 * Attestation pipeline (attest_verify): session and nonce (single use,
 * consumed by the first attest call whatever its outcome), the guest key
 * (validated JWK), the runtime-data digest, init-data, the TEE verifier,
 * the report_data and init-data bindings, then appraisal and the token. */
#include "kbs.h"

#include <string.h>
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

/* Evidence without its VCEK/VLEK (CoCo's guest often sends none; VLEKs
 * come from the cloud): the imported ones matching the report's CHIP_ID
 * and REPORTED_TCB, tried in turn. */
static int verify_snp_imported(struct kbs *k, const json_t *ev, const uint8_t *raw,
			       const struct snp_report *r, struct attestation *a, time_t now, struct err *e)
{
	struct collateral_cert *c = NULL;
	size_t n = 0;
	int rc = collateral_snp_veks(k->st, r, &c, &n, e);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = snp_verify_trustee_chain(raw, json_object_get(ev, "cert_chain"), c[i].der, c[i].len,
					      k->trust, now, &a->claims, e);
		if (rc && i + 1 < n)
			rc = 0, err_clear(e);
		else
			break;
	}
	collateral_certs_free(c, n);
	return rc;
}

/* SNP (and sim) evidence: the chain and signature, then the bindings. */
static int verify_snp(struct kbs *k, const json_t *ev, struct attestation *a, time_t now, struct err *e)
{
	uint8_t raw[SNP_REPORT_SIZE];
	struct snp_report r;
	if (!json_is_object(ev) || snp_trustee_report(json_object_get(ev, "attestation_report"), raw, e) ||
	    snp_parse(raw, sizeof raw, &r, e))
		return json_is_object(ev) ? err_wrap(e, "SNP evidence")
					  : err_set(e, ERR_BAD_REQUEST, "SNP evidence: expected a JSON object");
	if (carries_vek(ev) ? snp_verify_trustee_chain(raw, json_object_get(ev, "cert_chain"), NULL, 0,
						       k->trust, now, &a->claims, e)
			    : verify_snp_imported(k, ev, raw, &r, a, now, e))
		return err_wrap(e, "SNP evidence");
	if (snp_check_report_data(&r, a->expected, a->explen, e))
		return err_wrap(e, "SNP binding");
	if (a->has_init && snp_check_host_data(&r, a->init.digest, a->init.digest_len, e))
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

static int verify_tdx(struct kbs *k, const json_t *ev, struct attestation *a, time_t now, struct err *e)
{
	char *text = json_dumps(ev, JSON_COMPACT);
	uint8_t *q = NULL;
	size_t qlen = 0;
	struct tdx_quote tq;
	int rc = text ? tdx_evidence_decode(text, strlen(text), &q, &qlen, NULL, NULL, e)
		      : err_set(e, ERR_BAD_REQUEST, "TDX evidence is not JSON");
	free(text);
	/* Without (complete) imported collateral the quote's signatures and
	 * chains are still checked and the TCB status is "unknown": the
	 * appraisal policy decides what that means (the default: warning). */
	struct tdx_collateral *col = NULL;
	if (!rc && (rc = collateral_tdx_load(k->st, q, qlen, now, &col, e)) == ERR_NOT_FOUND) {
		log_info("kbs", "TDX TCB status unknown: %s", e->msg);
		err_clear(e);
		rc = 0;
	} else if (rc) {
		rc = err_wrap(e, "TDX collateral");
	}
	if (!rc && (tdx_verify(q, qlen, col, now, &a->claims, e) || tdx_parse(q, qlen, &tq, e)))
		rc = err_wrap(e, "TDX evidence");
	tdx_collateral_free(col);
	if (!rc && tdx_check_report_data(&tq, a->expected, a->explen, e))
		rc = err_wrap(e, "TDX binding");
	if (!rc && a->has_init && tdx_check_mrconfigid(&tq, a->init.digest, a->init.digest_len, e))
		rc = err_wrap(e, "init-data digest");
	free(q);
	if (rc)
		return rc;
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

static int verify_evidence(struct kbs *k, struct session *s, const json_t *req, struct attestation *a,
			   json_t **rt, time_t now, jwe_key **key, struct err *e)
{
	const json_t *rd = json_object_get(req, "runtime-data"), *ev = json_object_get(req, "tee-evidence");
	const char *nonce = json_string_value(json_object_get(rd, "nonce"));
	const json_t *pk = json_object_get(rd, "tee-pubkey");
	const json_t *add = json_object_get(ev, "additional_evidence");
	const json_t *primary = json_object_get(ev, "primary_evidence");
	if (!json_is_object(req) || !nonce || !json_is_object(ev) || !primary || (add && !json_is_string(add)))
		return err_set(e, ERR_BAD_REQUEST, "attest request must hold runtime-data {nonce, tee-pubkey} "
				   "and tee-evidence {primary_evidence, additional_evidence}");
	if (strlen(nonce) != strlen(s->nonce) || !ct_equal(nonce, s->nonce, strlen(s->nonce)))
		return err_set(e, ERR_UNAUTHORIZED, "runtime-data nonce is not this session's nonce");
	if (jwe_key_from_jwk(pk, k->o.allow_rsa1_5, key, e))
		return e->code;
	const char *addstr = add ? json_string_value(add) : "";
	if (kbs_runtime_digest(nonce, pk, addstr, 0, a->expected, &a->explen, e) ||
	    parse_init(json_object_get(req, "init-data"), a, e))
		return e->code;
	*rt = json_pack("{s:s, s:O, s:s}", "nonce", nonce, "tee-pubkey", pk, "additional-evidence", addstr);
	a->tee = s->tee;
	if (strcmp(s->tee, "snp") == 0)
		return verify_snp(k, primary, a, now, e);
	if (strcmp(s->tee, "tdx") == 0)
		return verify_tdx(k, primary, a, now, e);
	return verify_sample(primary, a, e);
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

int kbs_attest(struct kbs *k, const char *sid, const json_t *req, time_t now, char **token,
	       const char **variant, struct err *e)
{
	uint64_t t0 = now_ns();
	*variant = "RcarAttestFailed";
	struct session *s = session_find(k, sid, now, e);
	if (!s) {
		attest_record(k, sid, "-", "rejected", "none", e->msg, t0);
		return e->code;
	}
	if (s->used) {
		err_set(e, ERR_UNAUTHORIZED, "the session's nonce was already used; start again with /auth");
		attest_record(k, sid, s->tee, "rejected", "none", e->msg, t0);
		return e->code;
	}
	s->used = 1;
	struct attestation a = {0};
	json_t *rt = NULL, *claims = NULL;
	jwe_key *key = NULL;
	const char *status = "none";
	int rc = verify_evidence(k, s, req, &a, &rt, now, &key, e) ||
		 appraise_and_sign(k, &a, rt, now, token, &claims, &status, e);
	attest_record(k, sid, s->tee, rc ? "denied" : "issued", status, rc ? e->msg : "token issued", t0);
	if (rc) {
		jwe_key_free(key);
		rc = e->code ? e->code : ERR_UNAUTHORIZED;
		e->code = err_http_status(rc) >= 500 ? rc : ERR_UNAUTHORIZED;
	} else {
		s->attested = 1;
		s->claims = claims;
		s->key = key;
	}
	json_decref(rt);
	attestation_fini(&a);
	return rc ? e->code : 0;
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
