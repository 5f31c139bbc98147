/* api: the HTTP request pipeline of the daemon, one straight line per
 * request: route → authorize → handler → respond → log and count once (at
 * the single exit, api_done).  Handlers of every module are registered here
 * with their own context; errors leave as Kubernetes `Status` objects whose
 * HTTP code comes from the err table.  Also serves the core endpoints
 * (/healthz, /readyz, /version, /metrics). */
#ifndef COCOD_API_H
#define COCOD_API_H

#include <jansson.h>
#include <stdbool.h>

#include "auth.h"
#include "err.h"
#include "http.h"
#include "metrics.h"
#include "router.h"
#include "store.h"

typedef struct api api;

/* A handler finishes `r` exactly once (now or later) with api_json,
 * api_error, http_respond or a stream.  `p` is valid only during the call. */
typedef void (*api_handler)(http_req *r, const struct route_params *p, void *ctx);

enum api_flags {
	API_PUBLIC = 1, /* no admin token needed */
};

/* `au` and `m` are borrowed. */
api *api_new(store *s, auth *au, metrics *m);
void api_free(api *a);

/* Registers a route; pattern and method are borrowed (use literals). */
int api_route(api *a, const char *method, const char *pattern, api_handler fn, void *ctx,
	      unsigned flags, struct err *e);

/* Registers /healthz, /readyz, /version and /metrics (public or not). */
int api_register_core(api *a, bool metrics_public, struct err *e);

/* Readiness as reported by /readyz (false during start-up and shutdown). */
void api_set_ready(api *a, bool ready);

/* The http_server callbacks; `ud` is the api. */
void api_handle(http_req *r, void *ud);
void api_done(http_req *r, int status, uint64_t bytes, uint64_t duration_ns, void *ud);

/* --- helpers for handlers --- */
/* Sends `obj` (reference stolen) as application/json. */
void api_json(http_req *r, int status, json_t *obj);
/* Sends a Status object for `e` with the HTTP code of e->code. */
void api_error(http_req *r, const struct err *e);
/* Shortcut: api_error with a formatted message. */
void api_fail(http_req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Builds a Kubernetes Status object (new reference). */
json_t *api_status(int code, const char *message);

#endif
