/* imagesapi: see imagesapi.h.  Each handler is one call into images.c; the
 * reference comes from ?ref= or from the path segments after images/, so
 * both `images/busybox` and `images?ref=docker.io/library/busybox` work. */
#include "imagesapi.h"

#include <string.h>

#include "util.h"

#define BASE "/apis/cocod.io/v1/images"

/* The ref of a request: ?ref=, else the captured segments joined by '/'. */
static const char *ref_of(http_req *r, const struct route_params *p, char *buf, size_t len)
{
	static const char *const segs[] = {"a", "b", "c", "d"};
	const char *q = http_req_query(r, "ref");
	size_t n = 0;
	if (q && *q)
		return q;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof segs / sizeof segs[0]; i++) {
		const char *v = route_param(p, segs[i]);
		if (v && n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "/" : "", v);
	}
	if (!buf[0] || n >= len) {
		api_fail(r, ERR_BAD_REQUEST,
		         "name the image in the path or with ?ref=NAME[:TAG|@DIGEST]");
		return NULL;
	}
	return buf;
}

static void h_list(http_req *r, const struct route_params *p, void *ctx)
{
	json_t *items;
	struct err e = {0};
	if (images_list(ctx, &items, &e)) {
		api_error(r, &e);
		return;
	}
	api_json(r, 200,
	         json_pack("{s:s, s:s, s:o}", "kind", "ImageList", "apiVersion", "cocod.io/v1",
	                   "items", items));
}

static void h_get(http_req *r, const struct route_params *p, void *ctx)
{
	char buf[1024];
	const char *ref = ref_of(r, p, buf, sizeof buf);
	json_t *img;
	struct err e = {0};
	if (!ref)
		return;
	if (images_inspect(ctx, ref, &img, &e)) {
		api_error(r, &e);
		return;
	}
	json_object_set_new(img, "kind", json_string("Image"));
	json_object_set_new(img, "apiVersion", json_string("cocod.io/v1"));
	api_json(r, 200, img);
}

static void h_delete(http_req *r, const struct route_params *p, void *ctx)
{
	char buf[1024];
	const char *ref = ref_of(r, p, buf, sizeof buf);
	json_t *removed;
	struct err e = {0};
	if (!ref)
		return;
	if (images_remove(ctx, ref, &removed, &e)) {
		api_error(r, &e);
		return;
	}
	api_json(r, 200,
	         json_pack("{s:s, s:s, s:o}", "kind", "ImageRemoval", "apiVersion", "cocod.io/v1",
	                   "removed", removed));
}

static void h_import(http_req *r, const struct route_params *p, void *ctx)
{
	size_t n = 0;
	const char *body = http_req_body(r, &n);
	json_t *refs;
	struct err e = {0};
	if (!body || n == 0) {
		api_fail(r, ERR_BAD_REQUEST,
		         "send an image archive (OCI layout or docker save tar, "
		         "optionally gzip'd) as the request body");
		return;
	}
	if (images_import_buffer(ctx, body, n, http_req_query(r, "name"), &refs, &e)) {
		api_error(r, &e);
		return;
	}
	api_json(r, 201,
	         json_pack("{s:s, s:s, s:o}", "kind", "ImageImport", "apiVersion", "cocod.io/v1",
	                   "items", refs));
}

int imagesapi_register(api *a, images *im, struct err *e)
{
	static const struct {
		const char *method, *pattern;
		api_handler fn;
	} routes[] = {
	    {"GET", BASE, h_list},
	    {"POST", BASE, h_import},
	    {"DELETE", BASE, h_delete},
	    {"GET", BASE "/{a}", h_get},
	    {"GET", BASE "/{a}/{b}", h_get},
	    {"GET", BASE "/{a}/{b}/{c}", h_get},
	    {"GET", BASE "/{a}/{b}/{c}/{d}", h_get},
	    {"DELETE", BASE "/{a}", h_delete},
	    {"DELETE", BASE "/{a}/{b}", h_delete},
	    {"DELETE", BASE "/{a}/{b}/{c}", h_delete},
	    {"DELETE", BASE "/{a}/{b}/{c}/{d}", h_delete},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (api_route(a, routes[i].method, routes[i].pattern, routes[i].fn, im, 0, e))
			return e->code;
	return 0;
}
