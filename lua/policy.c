/* policy: see policy.h.  Versions live in `policies` (hook, version,
 * source, sha256, created, origin) with the active one in `policy_active`;
 * decisions in `decisions`, trimmed to the newest DECISIONS_KEPT and to
 * DECISIONS_MAX_AGE. */
#include "policy.h"

#include <string.h>
#include <time.h>
#include <openssl/evp.h>

#include "codec.h"
#include "log.h"
#include "util.h"

#define DECISIONS_KEPT 20000
#define DECISIONS_MAX_AGE (7 * 24 * 3600)
#define INPUT_KEPT (64 * 1024)

static const char *const hook_names[POLICY__N] = {"admission", "attestation", "resource", "agent"};
static const char *const hook_functions[POLICY__N] = {"admit", "appraise", "release", "agent"};

struct policy {
	store *store;
	metrics *metrics;
	struct sandbox_limits limits;
	sandbox_policy *active[POLICY__N];
	int version[POLICY__N];
	unsigned logged;
	struct buf input; /* reused for the text of each input digest */
};

const char *policy_hook_name(enum policy_hook h) { return (unsigned)h < POLICY__N ? hook_names[h] : "?"; }
const char *policy_hook_function(enum policy_hook h)
{
	return (unsigned)h < POLICY__N ? hook_functions[h] : "?";
}

int policy_hook_parse(const char *name)
{
	for (int i = 0; name && i < POLICY__N; i++)
		if (strcmp(name, hook_names[i]) == 0 || strcmp(name, hook_functions[i]) == 0)
			return i;
	return -1;
}

void policy_verdict_fini(struct policy_verdict *v)
{
	json_decref(v->result);
	v->result = NULL;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	hex_encode(md, sizeof md, out);
}

static int db_fail(policy *p, struct err *e, const char *what)
{
	return err_set(e, ERR_DB, "%s: %s", what, sqlite3_errmsg(store_db(p->store)));
}

/* The built-in default source of a hook. */
static const struct sandbox_builtin *builtin(enum policy_hook h)
{
	return sandbox_builtin_find(hook_functions[h]);
}

int policy_test_source(enum policy_hook hook, const char *src, size_t len,
		       const struct sandbox_limits *lim, json_t **report, struct err *e)
{
	sandbox_policy *sp = NULL;
	char chunk[64];
	snprintf(chunk, sizeof chunk, "%s.lua", hook_names[hook]);
	if (report)
		*report = NULL;
	if (sandbox_compile(chunk, src, len, hook_functions[hook], lim, &sp, e))
		return e->code;
	json_t *r = NULL;
	int rc = sandbox_run_tests(sp, &r, e);
	sandbox_free(sp);
	if (report)
		*report = r;
	else
		json_decref(r);
	return rc;
}

/* Stores a version row; the caller holds a transaction. */
static int insert_version(policy *p, enum policy_hook h, int version, const char *src, size_t len,
			  const char *origin, struct err *e)
{
	char sum[65], now[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
	sha256_hex(src, len, sum);
	sqlite3_stmt *st = store_stmt(p->store,
		"INSERT INTO policies(hook, version, source, sha256, created, origin) VALUES(?,?,?,?,?,?)", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, hook_names[h], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, version);
	sqlite3_bind_text(st, 3, src, (int)len, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, sum, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, origin, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(p, e, "store policy");
	sqlite3_reset(st);
	return rc;
}

static int activate_row(policy *p, enum policy_hook h, int version, struct err *e)
{
	sqlite3_stmt *st = store_stmt(p->store,
		"INSERT INTO policy_active(hook, version) VALUES(?1, ?2) "
		"ON CONFLICT(hook) DO UPDATE SET version = ?2", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, hook_names[h], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, version);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(p, e, "activate policy");
	sqlite3_reset(st);
	return rc;
}

/* Reads a version's source (0: the active one); *version receives it. */
static int read_source(policy *p, enum policy_hook h, int *version, char **src, size_t *len,
		       struct err *e)
{
	sqlite3_stmt *st = store_stmt(p->store,
		"SELECT p.version, p.source FROM policies p WHERE p.hook = ?1 AND p.version = "
		"CASE WHEN ?2 > 0 THEN ?2 ELSE (SELECT version FROM policy_active WHERE hook = ?1) END", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, hook_names[h], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, *version);
	int step = sqlite3_step(st), rc = 0;
	if (step == SQLITE_ROW) {
		*version = sqlite3_column_int(st, 0);
		*len = (size_t)sqlite3_column_bytes(st, 1);
		*src = xstrndup((const char *)sqlite3_column_text(st, 1), *len);
	} else if (step == SQLITE_DONE) {
		rc = *version > 0 ? err_set(e, ERR_NOT_FOUND, "%s policy version %d not found", hook_names[h], *version)
				  : err_set(e, ERR_NOT_FOUND, "no %s policy is stored", hook_names[h]);
	} else {
		rc = db_fail(p, e, "read policy");
	}
	sqlite3_reset(st);
	return rc;
}

/* Compiles the stored version and makes it the one evaluated. */
static int load(policy *p, enum policy_hook h, int version, struct err *e)
{
	char *src;
	size_t len;
	char chunk[64];
	if (read_source(p, h, &version, &src, &len, e))
		return e->code;
	snprintf(chunk, sizeof chunk, "%s.lua", hook_names[h]);
	sandbox_policy *sp = NULL;
	int rc = sandbox_compile(chunk, src, len, hook_functions[h], &p->limits, &sp, e);
	free(src);
	if (rc)
		return err_wrap(e, "%s policy version %d", hook_names[h], version);
	sandbox_free(p->active[h]);
	p->active[h] = sp;
	p->version[h] = version;
	return 0;
}

static int seed(policy *p, enum policy_hook h, struct err *e)
{
	const struct sandbox_builtin *b = builtin(h);
	if (!b)
		return err_set(e, ERR_INTERNAL, "no built-in %s policy", hook_names[h]);
	if (store_begin(p->store, e))
		return e->code;
	if (insert_version(p, h, 1, b->text, b->len, "built-in", e) || activate_row(p, h, 1, e)) {
		store_rollback(p->store);
		return e->code;
	}
	return store_commit(p->store, e);
}

int policy_new(store *s, metrics *m, const struct sandbox_limits *lim, policy **out, struct err *e)
{
	policy *p = xcalloc(1, sizeof *p);
	p->store = s;
	p->metrics = m;
	buf_init(&p->input);
	if (lim)
		p->limits = *lim;
	else
		sandbox_default_limits(&p->limits);
	for (int h = 0; h < POLICY__N; h++) {
		int rc = load(p, (enum policy_hook)h, 0, e);
		if (rc == ERR_NOT_FOUND)
			rc = seed(p, (enum policy_hook)h, e) || load(p, (enum policy_hook)h, 0, e);
		if (rc) {
			policy_free(p);
			return e->code ? e->code : ERR_INTERNAL;
		}
		log_info("policy", "loaded hook=%s version=%d", hook_names[h], p->version[h]);
	}
	*out = p;
	return 0;
}

void policy_free(policy *p)
{
	if (!p)
		return;
	for (int h = 0; h < POLICY__N; h++)
		sandbox_free(p->active[h]);
	buf_fini(&p->input);
	free(p);
}

/* --- evaluation and the decision log --- */

static void record(policy *p, enum policy_hook h, const char *subject, const char *digest,
		   const struct policy_verdict *v, uint64_t duration_ns)
{
	char now[32];
	struct err e;
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
	sqlite3_stmt *st = store_stmt(p->store,
		"INSERT INTO decisions(time, unix, hook, version, subject, input_sha256, allow, reason, "
		"duration_us) VALUES(?,?,?,?,?,?,?,?,?)", &e);
	if (!st) {
		log_error("policy", "decision log: %s", e.msg);
		return;
	}
	sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)t);
	sqlite3_bind_text(st, 3, hook_names[h], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, v->version);
	sqlite3_bind_text(st, 5, subject ? subject : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, digest, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, v->allow);
	sqlite3_bind_text(st, 8, v->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)(duration_ns / 1000));
	if (sqlite3_step(st) != SQLITE_DONE)
		log_error("policy", "decision log: %s", sqlite3_errmsg(store_db(p->store)));
	sqlite3_reset(st);
	if (++p->logged % 512 == 0) {
		st = store_stmt(p->store,
			"DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - ?1 OR unix < ?2", &e);
		if (st) {
			sqlite3_bind_int(st, 1, DECISIONS_KEPT);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)t - DECISIONS_MAX_AGE);
			sqlite3_step(st);
			sqlite3_reset(st);
		}
	}
}

/* SHA-256 of the arguments as one compact JSON array with sorted keys,
 * written into a buffer kept from call to call. */
static void input_digest(policy *p, json_t *const *args, int nargs, char out[65])
{
	struct buf *b = &p->input;
	b->len = 0;
	buf_add(b, "[", 1);
	for (int i = 0; i < nargs; i++) {
		if (i)
			buf_add(b, ",", 1);
		codec_json_compact(args[i] ? args[i] : json_null(), 1, b);
	}
	buf_add(b, "]", 1);
	sha256_hex(b->data, b->len, out);
	if (b->cap > INPUT_KEPT) { /* keep a pod's worth, not the largest input ever */
		buf_fini(b);
		buf_init(b);
	}
}

static void count(policy *p, enum policy_hook h, const struct policy_verdict *v, uint64_t ns)
{
	if (!p->metrics)
		return;
	char labels[128];
	metrics_labels(labels, sizeof labels, "hook", hook_names[h], "verdict",
		       v->failed ? "error" : v->allow ? "allow" : "deny", NULL);
	metrics_counter_add(p->metrics, "cocod_policy_decisions_total",
			    "Policy decisions, by hook and verdict (error: the policy failed and denied).",
			    labels, 1);
	metrics_labels(labels, sizeof labels, "hook", hook_names[h], NULL);
	metrics_observe(p->metrics, "cocod_policy_decision_duration_seconds",
			"Time to evaluate one policy decision.", labels, (double)ns / 1e9);
}

void policy_eval(policy *p, enum policy_hook h, const char *subject, json_t *const *args, int nargs,
		 struct policy_verdict *out)
{
	struct sandbox_decision d;
	char digest[65];
	uint64_t t0 = now_ns();
	memset(out, 0, sizeof *out);
	out->version = p->version[h];
	/* The digest identifies the input in the log without storing it. */
	input_digest(p, args, nargs, digest);
	sandbox_call(p->active[h], args, nargs, &d);
	out->allow = d.allow && !d.failed;
	out->failed = d.failed;
	snprintf(out->reason, sizeof out->reason, "%s", d.reason);
	out->result = d.failed ? NULL : json_incref(d.result);
	sandbox_decision_fini(&d);
	uint64_t ns = now_ns() - t0;
	record(p, h, subject, digest, out, ns);
	count(p, h, out, ns);
	if (out->failed)
		log_warn("policy", "hook=%s version=%d subject=%s failed: %s", hook_names[h], out->version,
			 subject ? subject : "", out->reason);
}

/* --- management --- */

int policy_set(policy *p, enum policy_hook h, const char *src, size_t len, const char *origin,
	       int *version, json_t **report, struct err *e)
{
	if (policy_test_source(h, src, len, &p->limits, report, e))
		return e->code;
	sqlite3_stmt *st = store_stmt(p->store, "SELECT COALESCE(MAX(version), 0) FROM policies WHERE hook = ?", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, hook_names[h], -1, SQLITE_STATIC);
	int next = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) + 1 : 0;
	sqlite3_reset(st);
	if (next == 0)
		return db_fail(p, e, "read policy versions");
	if (store_begin(p->store, e))
		return e->code;
	if (insert_version(p, h, next, src, len, origin ? origin : "api", e) ||
	    activate_row(p, h, next, e)) {
		store_rollback(p->store);
		return e->code;
	}
	if (store_commit(p->store, e))
		return e->code;
	if (load(p, h, next, e))
		return e->code;
	log_info("policy", "activated hook=%s version=%d origin=%s", hook_names[h], next, origin ? origin : "api");
	*version = next;
	return 0;
}

int policy_rollback(policy *p, enum policy_hook h, int version, struct err *e)
{
	char *src;
	size_t len;
	int v = version;
	if (version <= 0)
		return err_set(e, ERR_BAD_REQUEST, "rollback needs a version number");
	if (read_source(p, h, &v, &src, &len, e))
		return e->code;
	free(src);
	if (store_begin(p->store, e))
		return e->code;
	if (activate_row(p, h, version, e)) {
		store_rollback(p->store);
		return e->code;
	}
	if (store_commit(p->store, e) || load(p, h, version, e))
		return e->code;
	log_info("policy", "rolled back hook=%s version=%d", hook_names[h], version);
	return 0;
}

int policy_source(policy *p, enum policy_hook h, int version, char **src, int *active,
		  struct err *e)
{
	size_t len;
	int v = version;
	if (read_source(p, h, &v, src, &len, e))
		return e->code;
	*active = p->version[h];
	return 0;
}

int policy_versions(policy *p, enum policy_hook h, json_t **out, struct err *e)
{
	sqlite3_stmt *st = store_stmt(p->store,
		"SELECT version, sha256, created, origin FROM policies WHERE hook = ? ORDER BY version DESC", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, hook_names[h], -1, SQLITE_STATIC);
	json_t *a = json_array();
	while (sqlite3_step(st) == SQLITE_ROW) {
		int v = sqlite3_column_int(st, 0);
		json_array_append_new(a, json_pack("{s:i, s:s, s:s, s:s, s:b}", "version", v, "sha256",
						   sqlite3_column_text(st, 1), "created",
						   sqlite3_column_text(st, 2), "origin",
						   sqlite3_column_text(st, 3), "active", v == p->version[h]));
	}
	sqlite3_reset(st);
	*out = a;
	return 0;
}

int policy_decisions(policy *p, const char *hook, const char *subject, int limit, json_t **out,
		     struct err *e)
{
	sqlite3_stmt *st = store_stmt(p->store,
		"SELECT time, hook, version, subject, input_sha256, allow, reason, duration_us "
		"FROM decisions WHERE (?1 IS NULL OR hook = ?1) AND (?2 IS NULL OR subject = ?2) "
		"ORDER BY id DESC LIMIT ?3", e);
	if (!st)
		return e->code;
	if (hook)
		sqlite3_bind_text(st, 1, hook, -1, SQLITE_STATIC);
	if (subject)
		sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, limit > 0 && limit <= 1000 ? limit : 100);
	json_t *a = json_array();
	while (sqlite3_step(st) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:I}",
						   "time", sqlite3_column_text(st, 0),
						   "hook", sqlite3_column_text(st, 1),
						   "policyVersion", sqlite3_column_int(st, 2),
						   "subject", sqlite3_column_text(st, 3),
						   "inputSha256", sqlite3_column_text(st, 4),
						   "verdict", sqlite3_column_int(st, 5) ? "allow" : "deny",
						   "reason", sqlite3_column_text(st, 6),
						   "durationMicroseconds", (json_int_t)sqlite3_column_int64(st, 7)));
	sqlite3_reset(st);
	*out = a;
	return 0;
}
