/* router: linear matching over a small route table.  A path is split into
 * segments once per match; each route's pattern is pre-split when added, so
 * matching is a comparison of segment arrays.  With a few dozen routes this
 * costs well under a microsecond and keeps the table readable. */
#include "router.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

#define MAX_SEGMENTS 32

struct compiled {
	struct route route;
	int nseg;
	const char *seg[MAX_SEGMENTS]; /* into `text` */
	unsigned char is_capture[MAX_SEGMENTS];
	char *text;
};

struct router {
	struct compiled *routes;
	size_t n, cap;
};

router *router_new(void) { return xcalloc(1, sizeof(router)); }

void router_free(router *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->routes[i].text);
	free(r->routes);
	free(r);
}

/* Splits `s` (modified in place) at '/' into at most `max` segments; a
 * leading '/' is required, empty segments other than a trailing one are an
 * error.  Returns the count or -1. */
static int split(char *s, const char **seg, int max)
{
	if (*s != '/')
		return -1;
	int n = 0;
	s++;
	if (*s == '\0')
		return 0; /* "/" */
	for (;;) {
		char *slash = strchr(s, '/');
		if (slash)
			*slash = '\0';
		if (*s == '\0')
			return slash ? -1 : n; /* "//" is an error, trailing "/" is ignored */
		if (n == max)
			return -1;
		seg[n++] = s;
		if (!slash)
			return n;
		s = slash + 1;
	}
}

int router_add(router *r, const struct route *route, struct err *e)
{
	struct compiled c = {.route = *route, .text = xstrdup(route->pattern)};
	c.nseg = split(c.text, c.seg, MAX_SEGMENTS);
	if (c.nseg < 0) {
		free(c.text);
		return err_set(e, ERR_INVALID, "route pattern %s: malformed", route->pattern);
	}
	int captures = 0;
	for (int i = 0; i < c.nseg; i++) {
		size_t len = strlen(c.seg[i]);
		if (c.seg[i][0] == '{') {
			if (len < 3 || c.seg[i][len - 1] != '}' || ++captures > ROUTER_MAX_PARAMS) {
				err_set(e, ERR_INVALID, "route pattern %s: bad capture %s", route->pattern,
					c.seg[i]);
				free(c.text);
				return ERR_INVALID;
			}
			c.is_capture[i] = 1;
			c.text[c.seg[i] - c.text + (long)len - 1] = '\0';
			c.seg[i]++;
		}
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->routes = xrealloc(r->routes, r->cap * sizeof *r->routes);
	}
	r->routes[r->n++] = c;
	return 0;
}

static int segments_match(const struct compiled *c, const char *const *seg, int nseg)
{
	if (c->nseg != nseg)
		return 0;
	for (int i = 0; i < nseg; i++)
		if (!c->is_capture[i] && strcmp(c->seg[i], seg[i]) != 0)
			return 0;
	return 1;
}

static int method_matches(const char *route_method, const char *method)
{
	return strcmp(route_method, method) == 0 ||
	       (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

static void add_allow(char *allow, size_t allowlen, const char *method)
{
	if (!allow || allowlen == 0 || strstr(allow, method))
		return;
	size_t used = strlen(allow);
	snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "", method);
}

enum router_result router_match(const router *r, const char *method, const char *path,
				const struct route **out, struct route_params *params,
				char *allow, size_t allowlen)
{
	const char *seg[MAX_SEGMENTS];
	char *copy = xstrdup(path);
	enum router_result res = ROUTER_NO_PATH;
	memset(params, 0, sizeof *params);
	if (allow && allowlen)
		allow[0] = '\0';
	int nseg = split(copy, seg, MAX_SEGMENTS);
	for (size_t i = 0; nseg >= 0 && i < r->n; i++) {
		const struct compiled *c = &r->routes[i];
		if (!segments_match(c, seg, nseg))
			continue;
		if (!method_matches(c->route.method, method)) {
			res = ROUTER_NO_METHOD;
			add_allow(allow, allowlen, c->route.method);
			continue;
		}
		for (int k = 0; k < nseg; k++)
			if (c->is_capture[k]) {
				params->name[params->n] = c->seg[k];
				params->value[params->n++] = seg[k];
			}
		params->scratch = copy;
		*out = &c->route;
		return ROUTER_FOUND;
	}
	free(copy);
	return res;
}

const char *route_param(const struct route_params *p, const char *name)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->name[i], name) == 0)
			return p->value[i];
	return NULL;
}

void route_params_fini(struct route_params *p)
{
	free(p->scratch);
	memset(p, 0, sizeof *p);
}
