/* policyapi: see policyapi.h.  A policy's source travels as the raw body
 * (text/x-lua, text/plain) or as JSON {"source": "..."}; answers are JSON
 * unless the client asks for text (?format=raw or Accept: text/x-lua). */
#include "policyapi.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "util.h"

static int hook_of(http_req *r, const struct route_params *p)
{
	int h = policy_hook_parse(route_param(p, "hook"));
	if (h < 0)
		api_fail(r, ERR_NOT_FOUND,
			 "no policy hook %s (hooks: admission, attestation, resource, agent)",
			 route_param(p, "hook"));
	return h;
}

static int wants_raw(http_req *r)
{
	const char *f = http_req_query(r, "format"), *accept = http_req_header(r, "Accept");
	return (f && strcmp(f, "raw") == 0) || (accept && (strstr(accept, "text/x-lua") || strstr(accept, "text/plain")));
}

static void send_source(http_req *r, policy *pol, int h, int version)
{
	char *src;
	int active;
	struct err e = {0};
	if (policy_source(pol, (enum policy_hook)h, version, &src, &active, &e)) {
		api_error(r, &e);
		return;
	}
	if (wants_raw(r)) {
		http_respond_str(r, 200, "text/x-lua; charset=utf-8", src);
	} else {
		api_json(r, 200, json_pack("{s:s, s:s, s:s, s:i, s:i, s:s}", "kind", "Policy", "apiVersion",
					   "cocod.io/v1", "hook", policy_hook_name((enum policy_hook)h),
					   "version", version ? version : active, "activeVersion", active,
					   "source", src));
	}
	free(src);
}

static void h_get(http_req *r, const struct route_params *p, void *ctx)
{
	int h = hook_of(r, p);
	if (h >= 0)
		send_source(r, ctx, h, 0);
}

static void h_get_version(http_req *r, const struct route_params *p, void *ctx)
{
	int h = hook_of(r, p);
	char *end;
	long v = strtol(route_param(p, "version"), &end, 10);
	if (h < 0)
		return;
	if (*end || v <= 0) {
		api_fail(r, ERR_BAD_REQUEST, "version %s is not a positive number", route_param(p, "version"));
		return;
	}
	send_source(r, ctx, h, (int)v);
}

static void h_list(http_req *r, const struct route_params *p, void *ctx)
{
	json_t *items = json_array();
	struct err e = {0};
	for (int h = 0; h < POLICY__N; h++) {
		json_t *versions = NULL;
		if (policy_versions(ctx, (enum policy_hook)h, &versions, &e)) {
			json_decref(items);
			api_error(r, &e);
			return;
		}
		int active = 0;
		size_t i;
		json_t *v;
		json_array_foreach(versions, i, v)
			if (json_is_true(json_object_get(v, "active")))
				active = (int)json_integer_value(json_object_get(v, "version"));
		json_array_append_new(items, json_pack("{s:s, s:s, s:i, s:I}", "hook",
						       policy_hook_name((enum policy_hook)h), "function",
						       policy_hook_function((enum policy_hook)h), "activeVersion",
						       active, "versions", (json_int_t)json_array_size(versions)));
		json_decref(versions);
	}
	api_json(r, 200, json_pack("{s:s, s:s, s:o}", "kind", "PolicyList", "apiVersion", "cocod.io/v1", "items", items));
}

static void h_versions(http_req *r, const struct route_params *p, void *ctx)
{
	int h = hook_of(r, p);
	json_t *versions;
	struct err e = {0};
	if (h < 0)
		return;
	if (policy_versions(ctx, (enum policy_hook)h, &versions, &e)) {
		api_error(r, &e);
		return;
	}
	api_json(r, 200, json_pack("{s:s, s:s, s:o}", "kind", "PolicyVersionList", "hook",
				   policy_hook_name((enum policy_hook)h), "items", versions));
}

/* The Lua text of a PUT: raw body, or JSON {"source": "..."}. */
static int body_source(http_req *r, char **src, size_t *len, struct err *e)
{
	size_t n;
	const char *body = http_req_body(r, &n);
	const char *ct = http_req_header(r, "Content-Type");
	if (!body || n == 0)
		return err_set(e, ERR_BAD_REQUEST, "the request has no body: send the policy's Lua source");
	if (ct && strncmp(ct, "application/json", 16) == 0) {
		json_t *doc;
		if (codec_decode(body, n, ct, &doc, e))
			return e->code;
		const char *s = json_string_value(json_object_get(doc, "source"));
		if (!s) {
			json_decref(doc);
			return err_set(e, ERR_BAD_REQUEST, "a JSON body needs a \"source\" string");
		}
		*len = json_string_length(json_object_get(doc, "source"));
		*src = xstrndup(s, *len);
		json_decref(doc);
		return 0;
	}
	*src = xstrndup(body, n);
	*len = n;
	if (memchr(body, '\0', n))
		return err_set(e, ERR_BAD_REQUEST, "the policy source contains a NUL byte");
	return 0;
}

static void h_put(http_req *r, const struct route_params *p, void *ctx)
{
	int h = hook_of(r, p), version = 0;
	char *src = NULL;
	size_t len = 0;
	json_t *report = NULL;
	struct err e = {0};
	if (h < 0)
		return;
	if (body_source(r, &src, &len, &e)) {
		free(src);
		api_error(r, &e);
		return;
	}
	int rc = policy_set(ctx, (enum policy_hook)h, src, len, "api", &version, &report, &e);
	free(src);
	if (rc) {
		json_t *st = api_status(rc, e.msg);
		if (report)
			json_object_set_new(st, "details", json_pack("{s:s, s:o}", "kind", "policy", "tests", report));
		api_json(r, err_http_status(rc), st);
		return;
	}
	api_json(r, 200, json_pack("{s:s, s:s, s:s, s:i, s:o}", "kind", "Policy", "apiVersion", "cocod.io/v1",
				   "hook", policy_hook_name((enum policy_hook)h), "version", version, "tests",
				   report ? report : json_null()));
}

static void h_rollback(http_req *r, const struct route_params *p, void *ctx)
{
	int h = hook_of(r, p);
	struct err e = {0};
	if (h < 0)
		return;
	long v = 0;
	const char *q = http_req_query(r, "version");
	size_t n;
	const char *body = http_req_body(r, &n);
	if (q) {
		v = strtol(q, NULL, 10);
	} else if (body && n) {
		json_t *doc;
		if (codec_decode(body, n, http_req_header(r, "Content-Type"), &doc, &e)) {
			api_error(r, &e);
			return;
		}
		v = json_is_integer(json_object_get(doc, "version")) ? (long)json_integer_value(json_object_get(doc, "version")) : 0;
		json_decref(doc);
	}
	if (policy_rollback(ctx, (enum policy_hook)h, (int)v, &e)) {
		api_error(r, &e);
		return;
	}
	send_source(r, ctx, h, 0);
}

static void h_decisions(http_req *r, const struct route_params *p, void *ctx)
{
	const char *hook = http_req_query(r, "hook"), *subject = http_req_query(r, "subject");
	const char *limit = http_req_query(r, "limit");
	json_t *items;
	struct err e = {0};
	if (hook && policy_hook_parse(hook) < 0) {
		api_fail(r, ERR_BAD_REQUEST, "unknown hook %s", hook);
		return;
	}
	if (hook)
		hook = policy_hook_name((enum policy_hook)policy_hook_parse(hook));
	if (policy_decisions(ctx, hook, subject, limit ? atoi(limit) : 100, &items, &e)) {
		api_error(r, &e);
		return;
	}
	api_json(r, 200, json_pack("{s:s, s:s, s:o}", "kind", "DecisionList", "apiVersion", "cocod.io/v1", "items", items));
}

int policyapi_register(api *a, policy *p, struct err *e)
{
	static const struct {
		const char *method, *pattern;
		api_handler fn;
	} routes[] = {
		{"GET", "/apis/cocod.io/v1/policies", h_list},
		{"GET", "/apis/cocod.io/v1/policies/{hook}", h_get},
		{"PUT", "/apis/cocod.io/v1/policies/{hook}", h_put},
		{"GET", "/apis/cocod.io/v1/policies/{hook}/versions", h_versions},
		{"GET", "/apis/cocod.io/v1/policies/{hook}/versions/{version}", h_get_version},
		{"POST", "/apis/cocod.io/v1/policies/{hook}/rollback", h_rollback},
		{"GET", "/apis/cocod.io/v1/decisions", h_decisions},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (api_route(a, routes[i].method, routes[i].pattern, routes[i].fn, p, 0, e))
			return e->code;
	return 0;
}
