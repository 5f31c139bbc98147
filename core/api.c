/* api: request dispatch, admin authorization, Status errors, access log and
 * request metrics, and the core endpoints.  See api.h. */
#include "api.h"

#include <stdarg.h>
#include <string.h>
#include <sys/utsname.h>

#include "auth.h"
#include "codec.h"
#include "log.h"
#include "util.h"

/* The Kubernetes release whose core/v1 subset cocod serves. */
#define KUBE_MAJOR "1"
#define KUBE_MINOR "32"

struct api {
	store *store;
	auth *auth;
	metrics *metrics;
	router *router;
	bool ready;
	struct entry **entries; /* owned; the router points at them */
	size_t nentries;
};

struct entry {
	api_handler fn;
};

api *api_new(store *s, auth *au, metrics *m)
{
	api *a = xcalloc(1, sizeof *a);
	a->store = s;
	a->auth = au;
	a->metrics = m;
	a->router = router_new();
	return a;
}

void api_free(api *a)
{
	if (!a)
		return;
	router_free(a->router);
	for (size_t i = 0; i < a->nentries; i++)
		free(a->entries[i]);
	free(a->entries);
	free(a);
}

int api_route(api *a, const char *method, const char *pattern, api_handler fn, void *ctx,
	      unsigned flags, struct err *e)
{
	/* The router stores handlers as data pointers; wrap the function
	 * pointer so no cast between function and object pointers is needed. */
	struct entry *ent = xmalloc(sizeof *ent);
	ent->fn = fn;
	struct route rt = {method, pattern, ent, ctx, flags};
	int rc = router_add(a->router, &rt, e);
	if (rc) {
		free(ent);
		return rc;
	}
	a->entries = xrealloc(a->entries, (a->nentries + 1) * sizeof *a->entries);
	a->entries[a->nentries++] = ent;
	return 0;
}

void api_set_ready(api *a, bool ready) { a->ready = ready; }

json_t *api_status(int code, const char *message)
{
	return json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
			 "metadata", "status", "Failure", "message", message, "reason",
			 err_reason(code), "code", err_http_status(code));
}

void api_json(http_req *r, int status, json_t *obj)
{
	struct buf b;
	buf_init(&b);
	int rc = codec_json_compact(obj, 0, &b);
	json_decref(obj);
	if (rc) {
		buf_fini(&b);
		http_respond_str(r, 500, "application/json",
				 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
				 "\"message\":\"cannot encode response\",\"reason\":\"InternalError\","
				 "\"code\":500}");
		return;
	}
	http_respond(r, status, "application/json", b.data, b.len);
	buf_fini(&b);
}

void api_error(http_req *r, const struct err *e)
{
	int code = e->code ? e->code : ERR_INTERNAL;
	api_json(r, err_http_status(code), api_status(code, e->msg));
}

void api_fail(http_req *r, int code, const char *fmt, ...)
{
	struct err e = {.code = code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.msg, sizeof e.msg, fmt, ap);
	va_end(ap);
	api_error(r, &e);
}

void api_handle(http_req *r, void *ud)
{
	api *a = ud;
	const struct route *rt = NULL;
	struct route_params p;
	char allow[64];
	struct err e = {0};
	enum router_result res =
		router_match(a->router, http_req_method(r), http_req_path(r), &rt, &p, allow, sizeof allow);
	http_req_set_label(r, res == ROUTER_FOUND ? rt->pattern : "unmatched");
	if (!(res == ROUTER_FOUND && (rt->flags & API_PUBLIC)) &&
	    auth_check(a->auth, http_req_header(r, "Authorization"), &e) != 0) {
		route_params_fini(&p);
		api_error(r, &e);
		return;
	}
	if (res == ROUTER_NO_PATH) {
		api_fail(r, ERR_NOT_FOUND, "the server could not find the requested resource");
		return;
	}
	if (res == ROUTER_NO_METHOD) {
		http_add_header(r, "Allow", allow);
		api_fail(r, ERR_METHOD, "method %s is not allowed here; allowed: %s", http_req_method(r),
			 allow);
		return;
	}
	const struct entry *ent = rt->handler;
	ent->fn(r, &p, rt->ctx);
	route_params_fini(&p);
}

void api_done(http_req *r, int status, uint64_t bytes, uint64_t duration_ns, void *ud)
{
	api *a = ud;
	const char *label = http_req_label(r) ? http_req_label(r) : "none";
	const char *method = http_req_method(r) ? http_req_method(r) : "-";
	const char *path = http_req_path(r) ? http_req_path(r) : "-";
	char code[8], labels[512];
	double seconds = (double)duration_ns / 1e9;
	snprintf(code, sizeof code, "%d", status);
	log_info("http", "method=%s path=%s status=%d bytes=%llu duration_ms=%.3f peer=%s", method,
		 path, status, (unsigned long long)bytes, seconds * 1e3, http_req_peer(r));
	metrics_labels(labels, sizeof labels, "route", label, "method", method, "code", code, NULL);
	metrics_counter_add(a->metrics, "cocod_http_requests_total",
			    "HTTP requests answered, by route pattern, method and status code.",
			    labels, 1);
	metrics_labels(labels, sizeof labels, "route", label, NULL);
	metrics_observe(a->metrics, "cocod_http_request_duration_seconds",
			"Time from a request's first byte to its last response byte queued.",
			labels, seconds);
}

/* --- core endpoints --- */

static void h_healthz(http_req *r, const struct route_params *p, void *ctx)
{
	http_respond_str(r, 200, "text/plain; charset=utf-8", "ok");
}

static void h_readyz(http_req *r, const struct route_params *p, void *ctx)
{
	api *a = ctx;
	int db_ok = store_schema_version(a->store) == store_schema_latest();
	int ok = a->ready && db_ok;
	if (http_req_query(r, "verbose")) {
		char *text = xasprintf("[%c]store %s\n[%c]accepting %s\nreadyz check %s\n",
				       db_ok ? '+' : '-', db_ok ? "ok" : "failed",
				       a->ready ? '+' : '-', a->ready ? "ok" : "shutting down",
				       ok ? "passed" : "failed");
		http_respond_str(r, ok ? 200 : 503, "text/plain; charset=utf-8", text);
		free(text);
		return;
	}
	http_respond_str(r, ok ? 200 : 503, "text/plain; charset=utf-8", ok ? "ok" : "not ready");
}

static void h_version(http_req *r, const struct route_params *p, void *ctx)
{
	struct utsname u;
	const char *machine = uname(&u) == 0 ? u.machine : "unknown";
	char platform[80];
	snprintf(platform, sizeof platform, "linux/%s",
		 strcmp(machine, "x86_64") == 0 ? "amd64" : strcmp(machine, "aarch64") == 0 ? "arm64" : machine);
	json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}",
			      "major", KUBE_MAJOR, "minor", KUBE_MINOR, "gitVersion",
			      "v" KUBE_MAJOR "." KUBE_MINOR ".0+cocod-" COCOD_VERSION, "gitCommit",
			      COCOD_COMMIT, "gitTreeState", "clean", "buildDate", __DATE__ " " __TIME__,
			      "goVersion", "n/a (C, " __VERSION__ ")", "compiler", "gcc", "platform",
			      platform, "cocod", "version", COCOD_VERSION, "commit", COCOD_COMMIT);
	api_json(r, 200, v);
}

static void h_metrics(http_req *r, const struct route_params *p, void *ctx)
{
	api *a = ctx;
	struct buf b;
	buf_init(&b);
	metrics_render(a->metrics, &b);
	http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
	buf_fini(&b);
}

int api_register_core(api *a, bool metrics_public, struct err *e)
{
	if (api_route(a, "GET", "/healthz", h_healthz, a, API_PUBLIC, e) ||
	    api_route(a, "GET", "/livez", h_healthz, a, API_PUBLIC, e) ||
	    api_route(a, "GET", "/readyz", h_readyz, a, API_PUBLIC, e) ||
	    api_route(a, "GET", "/version", h_version, a, API_PUBLIC, e) ||
	    api_route(a, "GET", "/metrics", h_metrics, a, metrics_public ? API_PUBLIC : 0, e))
		return e->code;
	return 0;
}
