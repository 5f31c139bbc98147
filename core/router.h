/* router: a table of method + path pattern → handler.  Patterns are
 * '/'-separated segments, each a literal or a `{name}` capture that matches
 * one non-empty segment.  Routes are tried in the order they were added;
 * HEAD matches GET routes.  The router knows nothing about HTTP I/O: api.c
 * calls it with a method and a decoded path. */
#ifndef COCOD_ROUTER_H
#define COCOD_ROUTER_H

#include <stddef.h>

#include "err.h"

#define ROUTER_MAX_PARAMS 8

struct route_params {
	int n;
	const char *name[ROUTER_MAX_PARAMS];
	const char *value[ROUTER_MAX_PARAMS];
	char *scratch; /* owns the captured strings */
};

/* The value of capture `name`, or NULL. */
const char *route_param(const struct route_params *p, const char *name);
void route_params_fini(struct route_params *p);

typedef struct router router;

struct route {
	const char *method;  /* "GET", "POST", ... */
	const char *pattern; /* also the route's label in logs and metrics */
	void *handler;       /* opaque to the router */
	void *ctx;
	unsigned flags;
};

router *router_new(void);
void router_free(router *r);

/* Adds a route; the strings are borrowed (use literals).  ERR_INVALID for a
 * malformed pattern or more than ROUTER_MAX_PARAMS captures. */
int router_add(router *r, const struct route *route, struct err *e);

enum router_result { ROUTER_FOUND, ROUTER_NO_PATH, ROUTER_NO_METHOD };

/* Finds the first route matching `method` and `path`.  On ROUTER_FOUND
 * *out points at the route and `params` holds the captures (finish with
 * route_params_fini).  On ROUTER_NO_METHOD `allow` lists the methods the
 * path accepts ("GET, POST"). */
enum router_result router_match(const router *r, const char *method, const char *path,
				const struct route **out, struct route_params *params,
				char *allow, size_t allowlen);

#endif
