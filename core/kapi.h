/* kapi: the Kubernetes-compatible REST surface — discovery (/api, /apis,
 * /api/v1, the OpenAPI v3 stub kubectl consults before creating), pods
 * (create, get, list, watch, update, patch, delete, /status, /log), events
 * (list, get, watch), in JSON, YAML or the server-side Table kubectl asks
 * for.  Pod semantics live in podsvc; this file is HTTP in and out. */
#ifndef COCOD_KAPI_H
#define COCOD_KAPI_H

#include "api.h"
#include "objects.h"
#include "podsvc.h"

typedef struct kapi kapi;

kapi *kapi_new(uv_loop_t *loop, objects *o, podsvc *svc);
/* Ends every watch stream (server shutdown). */
void kapi_close_watches(kapi *k);
void kapi_free(kapi *k);

int kapi_register(kapi *k, api *a, struct err *e);

/* Where `/log` reads container logs from (NULL: no runtime on this box). */
struct runtime;
void kapi_set_runtime(kapi *k, struct runtime *rt);

/* Human duration as kubectl prints ages: "5s", "3m2s", "2d". */
void kapi_age(int64_t seconds, char *out, size_t len);

/* The Table (meta.k8s.io/v1) for a list of pods or events. */
json_t *kapi_table(const char *kind, const json_t *items, int with_columns, int full_objects,
		   const char *resource_version);

#endif
