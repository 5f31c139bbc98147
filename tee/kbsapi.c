/* kbsapi: the HTTP side of the KBS (kbs.h): framing for the protocol
 * endpoints (JSON bodies, the kbs-session-id cookie, Bearer tokens,
 * Trustee's RFC 7807 error shape {"type": ".../errors/<Variant>",
 * "detail"}) and the admin endpoints, which api.c guards with cocod's
 * admin token:
 *
 *   POST|DELETE /kbs/v0/resource/<repo>/<type>/<tag>   raw bytes, sealed
 *   GET         /kbs/v0/resources                      names only
 *   POST|GET    /kbs/v0/resource-policy                {"policy": b64url Lua}
 *   POST|GET    /kbs/v0/attestation-policy             {"policy_id", "policy"}
 *   POST        /kbs/v0/reference-value                RVPS message
 *   GET         /kbs/v0/reference-value/<name>
 *   GET         /kbs/v0/.well-known/jwks.json          public: token key
 *
 * Resource bytes are never logged; errors name the path only. */
#include <string.h>
#include <time.h>

#include "b64.h"
#include "kbs.h"
#include "kbsdb.h"
#include "log.h"
#include "util.h"

#define ERR_TYPE_PREFIX "https://github.com/confidential-containers/kbs/errors/"
#define MAX_AUTH_BODY   (64u << 10)
#define MAX_ATTEST_BODY (1u << 20)
#define MAX_ADMIN_JSON  (1u << 20)

static void fail(http_req *r, int code, const char *variant, const char *detail)
{
	int status = err_http_status(code);
	if (status < 500 && status != 404 && status != 413 && status != 429)
		status = 401; /* Trustee answers 401 for every other failure */
	json_t *o = json_pack("{s:s+, s:s}", "type", ERR_TYPE_PREFIX, variant, "detail", detail);
	api_json(r, status, o);
}

/* The JSON body, or a Trustee-shaped error already sent (returns NULL). */
static json_t *body_json(http_req *r, size_t max)
{
	size_t len;
	const char *b = http_req_body(r, &len);
	if (len > max) {
		fail(r, ERR_TOO_LARGE, "PayloadTooLarge", "request body too large");
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(b ? b : "", len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		char msg[256];
		snprintf(msg, sizeof msg, "malformed JSON body: %s", j ? "not an object" : je.text);
		json_decref(j);
		fail(r, ERR_BAD_REQUEST, "InvalidRequest", msg);
		return NULL;
	}
	return j;
}

/* The kbs-session-id value (copied into `out`), or NULL. */
static const char *cookie(http_req *r, char out[40])
{
	const char *h = http_req_header(r, "Cookie");
	size_t n = strlen(KBS_COOKIE);
	while (h && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		size_t len = strcspn(h, ";");
		if (len > n && strncmp(h, KBS_COOKIE, n) == 0 && h[n] == '=' && len - n - 1 < 40) {
			snprintf(out, 40, "%.*s", (int)(len - n - 1), h + n + 1);
			return out;
		}
		h += len;
	}
	return NULL;
}

static void set_cookie(http_req *r, const char *sid, time_t expires)
{
	char date[64], hdr[160];
	struct tm tm;
	gmtime_r(&expires, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(hdr, sizeof hdr, "%s=%s; Expires=%s; Path=/kbs/v0; HttpOnly", KBS_COOKIE, sid, date);
	http_add_header(r, "Set-Cookie", hdr);
}

static void h_auth(http_req *r, const struct route_params *p, void *ctx)
{
	struct kbs *k = ctx;
	json_t *req = body_json(r, MAX_AUTH_BODY), *challenge = NULL;
	if (!req)
		return;
	char sid[33];
	const char *variant;
	struct err e = {0};
	time_t now = time(NULL);
	if (kbs_auth(k, req, now, sid, &challenge, &variant, &e)) {
		fail(r, e.code, variant, e.msg);
	} else {
		set_cookie(r, sid, now + kbs__session_ttl(k));
		api_json(r, 200, challenge);
	}
	json_decref(req);
}

/* The attestation's answer.  `arg` is the request, which http.c keeps
 * until it is finished even when its client left (the answer is then
 * dropped and the request freed). */
static void attest_done(void *arg, int rc, char *token, const char *variant, const struct err *e)
{
	http_req *r = arg;
	if (rc) {
		fail(r, rc, variant, e->msg);
		return;
	}
	api_json(r, 200, json_pack("{s:s}", "token", token));
	free(token);
}

static int attest_gone(void *arg)
{
	return http_req_closed(arg);
}

/* Answers later: the evidence is verified on the thread pool. */
static void h_attest(http_req *r, const struct route_params *p, void *ctx)
{
	struct kbs *k = ctx;
	char sid[40];
	const char *c = cookie(r, sid), *variant;
	json_t *req = body_json(r, MAX_ATTEST_BODY);
	if (!req)
		return;
	struct err e = {0};
	struct kbs_attest_cb cb = {attest_gone, attest_done, r};
	if (kbs_attest_start(k, c, req, time(NULL), &cb, &variant, &e))
		fail(r, e.code, variant, e.msg);
	json_decref(req);
}

static const char *bearer(http_req *r)
{
	const char *h = http_req_header(r, "Authorization");
	return h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
}

static void resource_path(const struct route_params *p, char *out, size_t len)
{
	snprintf(out, len, "%s/%s/%s", route_param(p, "repo"), route_param(p, "type"), route_param(p, "tag"));
}

static void h_resource_get(http_req *r, const struct route_params *p, void *ctx)
{
	struct kbs *k = ctx;
	char sid[40], path[512];
	const char *c = cookie(r, sid), *variant = "InvalidRequest";
	json_t *jwe = NULL;
	struct err e = {0};
	resource_path(p, path, sizeof path);
	if (kbs_resource(k, c, bearer(r), path, time(NULL), &jwe, &variant, &e))
		fail(r, e.code, variant, e.msg);
	else
		api_json(r, 200, jwe);
}

static void h_jwks(http_req *r, const struct route_params *p, void *ctx)
{
	api_json(r, 200, kbs__jwks(ctx));
}

/* --- admin --- */

static void h_resource_put(http_req *r, const struct route_params *p, void *ctx)
{
	struct kbs *k = ctx;
	char path[512];
	size_t len;
	const char *body = http_req_body(r, &len);
	struct err e = {0};
	resource_path(p, path, sizeof path);
	if (!kbs_path_valid(path))
		return fail(r, ERR_NOT_FOUND, "InvalidRequestPath", "invalid resource path");
	if (len > kbs__max_resource(k)) {
		char msg[128];
		snprintf(msg, sizeof msg, "resource of %zu bytes exceeds the limit of %zu", len, kbs__max_resource(k));
		return fail(r, ERR_TOO_LARGE, "PayloadTooLarge", msg);
	}
	if (kbsdb_resource_put(kbs__store(k), kbs__seal(k), path, body ? body : "", len, &e))
		return fail(r, e.code, "PluginInternalError", e.msg);
	char detail[64];
	snprintf(detail, sizeof detail, "bytes=%zu", len);
	kbs__audit(k, "admin", "resource.put", path, detail);
	log_info("kbs", "resource stored path=%s bytes=%zu", path, len);
	api_json(r, 200, json_pack("{s:s, s:I}", "path", path, "size", (json_int_t)len));
}

static void h_resource_delete(http_req *r, const struct route_params *p, void *ctx)
{
	struct kbs *k = ctx;
	char path[512];
	struct err e = {0};
	resource_path(p, path, sizeof path);
	if (!kbs_path_valid(path))
		return fail(r, ERR_NOT_FOUND, "InvalidRequestPath", "invalid resource path");
	if (kbsdb_resource_delete(kbs__store(k), path, &e)) {
		if (e.code == ERR_NOT_FOUND)
			return api_json(r, 404, json_pack("{s:s+, s:s}", "type", ERR_TYPE_PREFIX, "PluginInternalError",
							  "detail", e.msg));
		return fail(r, e.code, "PluginInternalError", e.msg);
	}
	kbs__audit(k, "admin", "resource.delete", path, "");
	api_json(r, 200, json_pack("{s:s}", "deleted", path));
}

static void h_resource_list(http_req *r, const struct route_params *p, void *ctx)
{
	json_t *list;
	struct err e = {0};
	if (kbsdb_resource_list(kbs__store(ctx), &list, &e))
		return fail(r, e.code, "PluginInternalError", e.msg);
	api_json(r, 200, json_pack("{s:o}", "resources", list));
}

/* POST {"policy": base64url Lua} (also standard base64 or plain text when
 * it does not decode) onto the policy engine's hook. */
static void set_policy(http_req *r, struct kbs *k, enum policy_hook hook, const char *what)
{
	json_t *req = body_json(r, MAX_ADMIN_JSON), *report = NULL;
	if (!req)
		return;
	const char *src = json_string_value(json_object_get(req, "policy"));
	uint8_t *text = NULL;
	size_t len = 0;
	int version = 0;
	struct err e = {0};
	if (!src) {
		fail(r, ERR_BAD_REQUEST, "InvalidRequest", "body must be {\"policy\": \"<base64url Lua>\"}");
	} else if (b64url_decode(src, (size_t)-1, &text, &len) && b64_decode(src, (size_t)-1, &text, &len)) {
		fail(r, ERR_BAD_REQUEST, "InvalidRequest", "policy is not base64url");
	} else if (policy_set(kbs__policy(k), hook, (const char *)text, len, "kbs-admin", &version, &report, &e)) {
		json_t *o = json_pack("{s:s+, s:s}", "type", ERR_TYPE_PREFIX, "PolicyInvalid", "detail", e.msg);
		if (report)
			json_object_set_new(o, "report", report);
		api_json(r, err_http_status(e.code), o);
	} else {
		char detail[64];
		snprintf(detail, sizeof detail, "version=%d", version);
		kbs__audit(k, "admin", what, policy_hook_name(hook), detail);
		api_json(r, 200, json_pack("{s:s, s:i}", "hook", policy_hook_name(hook), "version", version));
	}
	free(text);
	json_decref(req);
}

static void get_policy(http_req *r, struct kbs *k, enum policy_hook hook)
{
	char *src = NULL;
	int active = 0;
	struct err e = {0};
	if (policy_source(kbs__policy(k), hook, 0, &src, &active, &e))
		return fail(r, e.code, "PolicyNotFound", e.msg);
	char *b = b64url_encode(src, strlen(src));
	api_json(r, 200, json_pack("{s:s, s:s, s:i}", "policy", b, "hook", policy_hook_name(hook), "version", active));
	free(b);
	free(src);
}

static void h_rpolicy_set(http_req *r, const struct route_params *p, void *ctx)
{
	set_policy(r, ctx, POLICY_RESOURCE, "resource-policy.set");
}
static void h_apolicy_set(http_req *r, const struct route_params *p, void *ctx)
{
	set_policy(r, ctx, POLICY_ATTESTATION, "attestation-policy.set");
}
static void h_rpolicy_get(http_req *r, const struct route_params *p, void *ctx)
{
	get_policy(r, ctx, POLICY_RESOURCE);
}
static void h_apolicy_get(http_req *r, const struct route_params *p, void *ctx)
{
	get_policy(r, ctx, POLICY_ATTESTATION);
}

/* RVPS message {"version":"0.1.0","type":"sample","payload": base64 of
 * {"name": ["value", ...]}}; a JSON object payload is accepted too.  Each
 * value is kept 12 months, as Trustee's sample extractor does. */
static int refvals_from(struct kbs *k, const json_t *payload, int *n, struct err *e)
{
	const char *name;
	const json_t *vals, *v;
	size_t i;
	time_t exp = time(NULL) + 365 * 86400;
	json_object_foreach((json_t *)(uintptr_t)payload, name, vals) {
		if (!json_is_array(vals) || strlen(name) > 128)
			return err_set(e, ERR_BAD_REQUEST, "reference value %.64s: expected a list of strings", name);
		json_array_foreach(vals, i, v) {
			if (!json_is_string(v) || json_string_length(v) > 1024)
				return err_set(e, ERR_BAD_REQUEST, "reference value %.64s: expected strings", name);
			if (kbsdb_refval_add(kbs__store(k), name, json_string_value(v), exp, e))
				return e->code;
			(*n)++;
		}
	}
	return 0;
}

static void h_refval_set(http_req *r, const struct route_params *p, void *ctx)
{
	struct kbs *k = ctx;
	json_t *req = body_json(r, MAX_ADMIN_JSON), *payload = NULL;
	if (!req)
		return;
	const char *type = json_string_value(json_object_get(req, "type"));
	const json_t *pl = json_object_get(req, "payload");
	struct err e = {0};
	int n = 0;
	if (!type || strcmp(type, "sample") != 0) {
		fail(r, ERR_BAD_REQUEST, "InvalidRequest", "only RVPS messages of type \"sample\" are supported");
	} else {
		uint8_t *raw = NULL;
		size_t len;
		if (json_is_object(pl))
			payload = json_incref((json_t *)(uintptr_t)pl);
		else if (json_is_string(pl) && b64_decode(json_string_value(pl), (size_t)-1, &raw, &len) == 0)
			payload = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
		free(raw);
		if (!json_is_object(payload))
			fail(r, ERR_BAD_REQUEST, "InvalidRequest", "payload must be base64 of a JSON object of lists");
		else if (refvals_from(k, payload, &n, &e))
			fail(r, e.code, "InvalidRequest", e.msg);
		else {
			char detail[32];
			snprintf(detail, sizeof detail, "values=%d", n);
			kbs__audit(k, "admin", "reference-value.set", "sample", detail);
			api_json(r, 200, json_pack("{s:i}", "registered", n));
		}
	}
	json_decref(payload);
	json_decref(req);
}

static void h_refval_get(http_req *r, const struct route_params *p, void *ctx)
{
	json_t *out;
	struct err e = {0};
	if (kbsdb_refval_get(kbs__store(ctx), route_param(p, "name"), time(NULL), &out, &e))
		return fail(r, e.code, "InvalidRequest", e.msg);
	api_json(r, 200, out);
}

int kbs_register(api *a, struct kbs *k, struct err *e)
{
	static const struct {
		const char *method, *pattern;
		api_handler fn;
		unsigned flags;
	} routes[] = {
		{"POST", "/kbs/v0/auth", h_auth, API_PUBLIC},
		{"POST", "/kbs/v0/attest", h_attest, API_PUBLIC},
		{"GET", "/kbs/v0/resource/{repo}/{type}/{tag}", h_resource_get, API_PUBLIC},
		{"GET", "/kbs/v0/.well-known/jwks.json", h_jwks, API_PUBLIC},
		{"POST", "/kbs/v0/resource/{repo}/{type}/{tag}", h_resource_put, 0},
		{"PUT", "/kbs/v0/resource/{repo}/{type}/{tag}", h_resource_put, 0},
		{"DELETE", "/kbs/v0/resource/{repo}/{type}/{tag}", h_resource_delete, 0},
		{"GET", "/kbs/v0/resources", h_resource_list, 0},
		{"POST", "/kbs/v0/resource-policy", h_rpolicy_set, 0},
		{"GET", "/kbs/v0/resource-policy", h_rpolicy_get, 0},
		{"POST", "/kbs/v0/attestation-policy", h_apolicy_set, 0},
		{"GET", "/kbs/v0/attestation-policy", h_apolicy_get, 0},
		{"POST", "/kbs/v0/reference-value", h_refval_set, 0},
		{"GET", "/kbs/v0/reference-value/{name}", h_refval_get, 0},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (api_route(a, routes[i].method, routes[i].pattern, routes[i].fn, k, routes[i].flags, e))
			return err_wrap(e, "KBS route %s %s", routes[i].method, routes[i].pattern);
	return 0;
}
