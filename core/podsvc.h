/* podsvc: what happens to pods, independent of HTTP — create (defaults,
 * validation, admission, storage, hand-off to the controller), update of
 * labels and annotations, graceful deletion, Kubernetes Events, and the
 * controller's effects written back to the store (status, binding,
 * removal).  kapi.c calls it from HTTP handlers; the pod controller calls
 * it back through its sink.  Loop thread only. */
#ifndef COCOD_PODSVC_H
#define COCOD_PODSVC_H

#include <jansson.h>
#include <uv.h>

#include "err.h"
#include "objects.h"
#include "podctl.h"
#include "sched.h"

typedef struct podsvc podsvc;

struct podsvc_opts {
	const char *default_runtime_class; /* for pods without one */
	const char *node_name;
	struct sched_node node;
	const struct runtime_ops *runtime; /* NULL: no runtime on this box */
	int64_t events_kept;               /* prune beyond this many events */
	int64_t events_max_age_s;          /* and those older than this */
};

/* Creates the service and restores every stored pod into the controller
 * (re-adopting, marking lost, resuming deletions). */
int podsvc_new(uv_loop_t *loop, objects *o, const struct podsvc_opts *opts, podsvc **out,
	       struct err *e);
/* Stops timers; `cb` runs once the handles are closed. */
void podsvc_close(podsvc *s, void (*cb)(void *arg), void *arg);
void podsvc_free(podsvc *s);

/* Admission: called after defaults and validation, before storage, with
 * the pod as it would be stored; `operation` is "CREATE" or "UPDATE".
 * Returns 0 to admit (optionally with *mutated, a new reference to the pod
 * the policy wants stored instead) or an error (ERR_FORBIDDEN with the
 * reason) to deny.  podsvc keeps the pod's identity and server-owned
 * fields, validates a mutated pod again, and records a FailedAdmission
 * event when the denied pod already exists. */
typedef int (*podsvc_admit_fn)(void *ud, const json_t *pod, const char *operation,
			       json_t **mutated, struct err *e);
void podsvc_set_admission(podsvc *s, podsvc_admit_fn fn, void *ud);

/* Each operation returns 0 with *out (new reference) the resulting object,
 * or an error; for validation failures *problem receives the Kubernetes
 * Status document (422 with causes) to send instead of e->msg.  A create
 * also gives *text (when `text` is not NULL): the JSON stored for *out,
 * malloc'd, or NULL when nothing was stored (dry run). */
int podsvc_create(podsvc *s, const char *ns, json_t *pod, int dry_run, json_t **out, char **text,
		  json_t **problem, struct err *e);
/* Replaces labels and annotations (PUT semantics; other changes are 422). */
int podsvc_update(podsvc *s, const char *ns, const char *name, json_t *pod, json_t **out,
		  json_t **problem, struct err *e);
/* Applies a JSON merge patch (RFC 7386) and then the update rules. */
int podsvc_patch(podsvc *s, const char *ns, const char *name, const json_t *patch, json_t **out,
		 json_t **problem, struct err *e);
/* Graceful deletion; grace_s -1 = the pod's own period, 0 = at once.  *out
 * is the pod as it stands after the request (with deletionTimestamp while
 * it terminates). */
int podsvc_delete(podsvc *s, const char *ns, const char *name, int64_t grace_s, json_t **out,
		  struct err *e);

/* Records a Kubernetes Event about a stored object (aggregating repeats). */
void podsvc_event(podsvc *s, const json_t *obj, const char *type, const char *reason,
		  const char *message);

/* The controller, for node capacity and usage queries. */
podctl *podsvc_controller(podsvc *s);

#endif
