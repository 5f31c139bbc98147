/* podsvc: see podsvc.h.  The controller's sink writes back through the
 * object store, so every status change is a stored MODIFIED with its own
 * resourceVersion, visible to watches. */
#include "podsvc.h"

#include <inttypes.h>
#include <malloc.h>
#include <string.h>
#include <time.h>

#include "k8s.h"
#include "log.h"
#include "pod.h"
#include "util.h"

#define EVENT_CACHE 256

struct event_key {
	char key[160]; /* uid + reason + message digest */
	char ns[64], name[320];
};

struct working {
	json_t *pod;
	int dirty;
};

struct podsvc {
	uv_loop_t *loop;
	objects *o;
	podctl *ctl;
	uv_timer_t timer;
	struct podsvc_opts opts;
	char *default_class, *node_name;
	podsvc_admit_fn admit;
	void *admit_ud;
	struct event_key events[EVENT_CACHE];
	unsigned next_event;
	unsigned events_since_prune;
	/* Pods read or changed during the current batch, written once at its
	 * end: a create's binding and status then cost one parse and one
	 * write, not one per controller effect. */
	int depth;
	struct strmap work;   /* uid → struct working */
	struct working **wv;  /* the same, in order */
	size_t nw, capw;
	void (*closed_cb)(void *);
	void *closed_arg;
};

static json_t *meta(const json_t *obj) { return json_object_get(obj, "metadata"); }

static const char *meta_str(const json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(meta(obj), key));
	return v ? v : "";
}

/* --- clock --- */

static int64_t now_ms(void *ud)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs controller work in one store transaction (see objects_batch_begin):
 * a create or a tick then costs one commit, not one per effect. */
static void batch_begin(podsvc *s)
{
	struct err e;
	s->depth++;
	if (objects_batch_begin(s->o, &e))
		log_error("podsvc", "begin: %s", e.msg);
}

static const char *meta_str(const json_t *obj, const char *key);

/* Writes the pods changed during the batch and forgets the working set. */
static void flush_work(podsvc *s)
{
	struct err e;
	for (size_t i = 0; i < s->nw; i++) {
		struct working *w = s->wv[i];
		if (w->dirty && objects_update(s->o, "Pod", w->pod, 0, &e))
			log_error("podsvc", "writing pod %s/%s: %s", meta_str(w->pod, "namespace"),
				  meta_str(w->pod, "name"), e.msg);
		json_decref(w->pod);
		free(w);
	}
	s->nw = 0;
	strmap_fini(&s->work);
}

static int batch_end(podsvc *s, struct err *e)
{
	struct err local;
	struct err *out = e ? e : &local;
	if (--s->depth == 0)
		flush_work(s);
	int rc = objects_batch_end(s->o, out);
	if (rc)
		log_error("podsvc", "commit: %s", out->msg);
	return rc;
}

/* Adds `pod` (a new reference is taken) to the working set. */
static struct working *work_add(podsvc *s, json_t *pod)
{
	struct working *w = xcalloc(1, sizeof *w);
	w->pod = json_incref(pod);
	if (s->nw == s->capw) {
		s->capw = s->capw ? 2 * s->capw : 8;
		s->wv = xrealloc(s->wv, s->capw * sizeof *s->wv);
	}
	s->wv[s->nw++] = w;
	strmap_put(&s->work, meta_str(pod, "uid"), w);
	return w;
}

static void on_timer(uv_timer_t *t)
{
	podsvc *s = t->data;
	batch_begin(s);
	podctl_tick(s->ctl);
	batch_end(s, NULL);
}

static void wake_at(void *ud, int64_t at_ms)
{
	podsvc *s = ud;
	if (at_ms < 0) {
		uv_timer_stop(&s->timer);
		return;
	}
	int64_t delay = at_ms - now_ms(NULL);
	uv_timer_start(&s->timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* --- events --- */

static void prune_events(podsvc *s)
{
	struct err e;
	if (++s->events_since_prune < 64)
		return;
	s->events_since_prune = 0;
	int n = objects_prune(s->o, "Event", s->opts.events_kept, s->opts.events_max_age_s, &e);
	if (n < 0)
		log_warn("podsvc", "pruning events: %s", e.msg);
	else if (n > 0)
		log_debug("podsvc", "pruned events count=%d", n);
}

/* Bumps count and lastTimestamp of a recent identical event; 1 if found. */
static int aggregate(podsvc *s, const char *key, const char *now)
{
	struct err e;
	for (unsigned i = 0; i < EVENT_CACHE; i++) {
		struct event_key *k = &s->events[i];
		if (strcmp(k->key, key) != 0)
			continue;
		json_t *ev = NULL;
		if (objects_get(s->o, "Event", k->ns, k->name, &ev, &e) != 0)
			return 0;
		json_int_t count = json_integer_value(json_object_get(ev, "count"));
		json_object_set_new(ev, "count", json_integer(count + 1));
		json_object_set_new(ev, "lastTimestamp", json_string(now));
		int rc = objects_update(s->o, "Event", ev, 0, &e);
		json_decref(ev);
		return rc == 0;
	}
	return 0;
}

void podsvc_event(podsvc *s, const json_t *obj, const char *type, const char *reason,
		  const char *message)
{
	char now[32], uid[37], key[160], name[320];
	struct err e;
	k8s_now_rfc3339(now);
	snprintf(key, sizeof key, "%s/%s/%.100s", meta_str(obj, "uid"), reason, message);
	if (aggregate(s, key, now))
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, sizeof name, "%.253s.%" PRIx64, meta_str(obj, "name"),
		 (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	if (k8s_new_uid(uid) != 0)
		return;
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *ev = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:s, "
		"s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:n, s:s, s:s}",
		"kind", "Event", "apiVersion", "v1", "metadata", "name", name, "namespace",
		meta_str(obj, "namespace"), "uid", uid, "creationTimestamp", now, "involvedObject",
		"kind", kind ? kind : "Pod", "namespace", meta_str(obj, "namespace"), "name",
		meta_str(obj, "name"), "uid", meta_str(obj, "uid"), "apiVersion", "v1",
		"resourceVersion", meta_str(obj, "resourceVersion"), "reason", reason, "message",
		message, "source", "component", "cocod", "host", s->node_name, "firstTimestamp", now,
		"lastTimestamp", now, "count", 1, "type", type, "eventTime", "reportingComponent",
		"cocod", "reportingInstance", s->node_name);
	if (!ev)
		return;
	if (objects_create(s->o, "Event", ev, &e) != 0) {
		log_warn("podsvc", "recording event %s: %s", reason, e.msg);
	} else {
		struct event_key *k = &s->events[s->next_event++ % EVENT_CACHE];
		snprintf(k->key, sizeof k->key, "%s", key);
		snprintf(k->ns, sizeof k->ns, "%s", meta_str(obj, "namespace"));
		snprintf(k->name, sizeof k->name, "%s", name);
	}
	json_decref(ev);
	prune_events(s);
}

/* --- controller sink --- */

/* The pod with `uid` (new reference): from the working set inside a
 * batch, else from the store. */
static json_t *pod_by_uid(podsvc *s, const char *uid)
{
	struct working *w = strmap_get(&s->work, uid);
	if (w)
		return json_incref(w->pod);
	json_t *pod = NULL;
	struct err e;
	if (objects_get_by_uid(s->o, "Pod", uid, &pod, &e) != 0)
		log_debug("podsvc", "pod uid=%s: %s", uid, e.msg);
	if (pod && s->depth > 0)
		work_add(s, pod);
	return pod;
}

/* Records a change to `pod`: written at the end of the batch, or now. */
static void store_pod(podsvc *s, json_t *pod, const char *what)
{
	struct err e;
	struct working *w = strmap_get(&s->work, meta_str(pod, "uid"));
	if (w && w->pod == pod) {
		w->dirty = 1;
		return;
	}
	if (objects_update(s->o, "Pod", pod, 0, &e) != 0)
		log_error("podsvc", "%s of pod %s/%s: %s", what, meta_str(pod, "namespace"),
			  meta_str(pod, "name"), e.msg);
}

static void sink_status(void *ud, const char *uid, const json_t *status)
{
	podsvc *s = ud;
	json_t *pod = pod_by_uid(s, uid);
	if (!pod)
		return;
	if (!json_equal(json_object_get(pod, "status"), status)) {
		/* Shared, not copied: the controller builds a fresh status for
		 * every call and drops its reference right after. */
		json_object_set(pod, "status", (json_t *)(uintptr_t)status);
		store_pod(s, pod, "status update");
	}
	json_decref(pod);
}

static void sink_event(void *ud, const char *uid, const char *type, const char *reason,
		       const char *message)
{
	podsvc *s = ud;
	json_t *pod = pod_by_uid(s, uid);
	if (pod)
		podsvc_event(s, pod, type, reason, message);
	json_decref(pod);
}

static void sink_bound(void *ud, const char *uid, const char *node)
{
	podsvc *s = ud;
	json_t *pod = pod_by_uid(s, uid);
	if (!pod)
		return;
	json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string(node));
	store_pod(s, pod, "binding");
	json_decref(pod);
}

static void sink_removed(void *ud, const char *uid)
{
	podsvc *s = ud;
	struct err e;
	json_t *pod = pod_by_uid(s, uid);
	if (!pod)
		return;
	struct working *w = strmap_del(&s->work, uid);
	if (w)
		w->dirty = 0; /* deleted: nothing left to write */
	if (objects_delete(s->o, "Pod", meta_str(pod, "namespace"), meta_str(pod, "name"), pod, &e))
		log_error("podsvc", "removing pod uid=%s: %s", uid, e.msg);
	else
		log_info("podsvc", "pod removed pod=%s/%s", meta_str(pod, "namespace"), meta_str(pod, "name"));
	json_decref(pod);
}

/* --- create / restore --- */

static void fill_req(const json_t *pod, struct podctl_req *req)
{
	struct pod_resources r;
	pod_resources(pod, &r);
	const char *cls = json_string_value(json_object_get(json_object_get(pod, "spec"), "runtimeClassName"));
	*req = (struct podctl_req){
		.cpu_milli = r.cpu_request_milli > 0 ? (uint64_t)r.cpu_request_milli : 0,
		.mem_bytes = r.mem_request_bytes > 0 ? (uint64_t)r.mem_request_bytes : 0,
		.tee = cls ? pod_runtime_class_tee(cls) : NULL,
		.runtime_class = cls,
		.qos_class = pod_qos_class(pod),
	};
}

static int collect_uid(json_t *pod, void *ud)
{
	json_array_append_new(ud, json_string(meta_str(pod, "uid")));
	return 0;
}

static int restore_one(json_t *pod, void *ud)
{
	podsvc *s = ud;
	struct podctl_req req;
	struct err e;
	fill_req(pod, &req);
	if (podctl_restore(s->ctl, pod, &req, &e) != 0) {
		log_error("podsvc", "restoring pod %s/%s: %s", meta_str(pod, "namespace"),
			  meta_str(pod, "name"), e.msg);
		return 0;
	}
	const char *deleting = meta_str(pod, "deletionTimestamp");
	if (deleting[0]) {
		json_t *g = json_object_get(meta(pod), "deletionGracePeriodSeconds");
		podctl_delete(s->ctl, meta_str(pod, "uid"), json_is_integer(g) ? json_integer_value(g) : 0, &e);
	}
	return 0;
}

int podsvc_new(uv_loop_t *loop, objects *o, const struct podsvc_opts *opts, podsvc **out,
	       struct err *e)
{
	podsvc *s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->o = o;
	s->opts = *opts;
	s->default_class = xstrdup(opts->default_runtime_class ? opts->default_runtime_class : "cocod-sim");
	s->node_name = xstrdup(opts->node_name ? opts->node_name : "cocod");
	if (s->opts.events_kept <= 0)
		s->opts.events_kept = 5000;
	if (s->opts.events_max_age_s <= 0)
		s->opts.events_max_age_s = 3600;
	strmap_init(&s->work);
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	struct podctl_config cfg = {.node_name = s->node_name, .host_ip = "127.0.0.1"};
	struct podctl_sink sink = {s, sink_status, sink_event, sink_bound, sink_removed};
	struct podctl_clock clock = {s, now_ms, wake_at};
	s->ctl = podctl_new(&cfg, &opts->node, opts->runtime, &sink, &clock);
	/* Restoring may write (lost pods, resumed deletions): collect the uids
	 * first, then restore one pod at a time inside one batch. */
	json_t *uids = json_array();
	if (objects_list(o, "Pod", NULL, collect_uid, uids, NULL, e)) {
		json_decref(uids);
		podsvc_free(s);
		return err_wrap(e, "restoring pods");
	}
	batch_begin(s);
	size_t i;
	json_t *uid;
	json_array_foreach(uids, i, uid) {
		json_t *pod = pod_by_uid(s, json_string_value(uid));
		if (pod)
			restore_one(pod, s);
		json_decref(pod);
		flush_work(s); /* keep the working set to one pod at a time */
	}
	batch_end(s, NULL);
	json_decref(uids);
	batch_begin(s);
	podctl_schedule(s->ctl);
	batch_end(s, NULL);
	malloc_trim(0); /* hand the parse garbage of a big restore back to the system */
	log_info("podsvc", "restored pods count=%zu", podctl_count(s->ctl));
	*out = s;
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	podsvc *s = h->data;
	if (s->closed_cb)
		s->closed_cb(s->closed_arg);
}

void podsvc_close(podsvc *s, void (*cb)(void *arg), void *arg)
{
	s->closed_cb = cb;
	s->closed_arg = arg;
	uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void podsvc_free(podsvc *s)
{
	if (!s)
		return;
	podctl_free(s->ctl);
	flush_work(s);
	free(s->wv);
	free(s->default_class);
	free(s->node_name);
	free(s);
}

void podsvc_set_admission(podsvc *s, podsvc_admit_fn fn, void *ud)
{
	s->admit = fn;
	s->admit_ud = ud;
}

podctl *podsvc_controller(podsvc *s) { return s->ctl; }

/* Fails with a 422 document when `fe` holds errors. */
static int invalid(const json_t *pod, struct k8s_field_errors *fe, json_t **problem, struct err *e)
{
	if (fe->n == 0)
		return 0;
	*problem = k8s_invalid_status("Pod", pod_name(pod), fe);
	return err_set(e, ERR_INVALID, "Pod \"%s\" is invalid", pod_name(pod));
}

static int check_identity(const json_t *pod, const char *ns, struct err *e)
{
	const char *kind = json_string_value(json_object_get(pod, "kind"));
	const char *ver = json_string_value(json_object_get(pod, "apiVersion"));
	if (kind && strcmp(kind, "Pod") != 0)
		return err_set(e, ERR_BAD_REQUEST, "the body is a %s; this endpoint takes a Pod", kind);
	if (ver && strcmp(ver, "v1") != 0)
		return err_set(e, ERR_BAD_REQUEST, "apiVersion %s is not served here; use v1", ver);
	const char *bns = json_string_value(json_object_get(meta(pod), "namespace"));
	if (bns && bns[0] && strcmp(bns, ns) != 0)
		return err_set(e, ERR_BAD_REQUEST,
			       "the namespace of the provided object does not match the namespace "
			       "sent on the request");
	return 0;
}

/* Server-owned fields of a new pod: identity, times, a fresh status. */
static int stamp_new(json_t *pod, const char *ns, struct err *e)
{
	char uid[37], now[32];
	if (k8s_new_uid(uid) != 0)
		return err_set(e, ERR_CRYPTO, "no randomness for a uid");
	k8s_now_rfc3339(now);
	json_t *m = meta(pod);
	json_object_set_new(m, "namespace", json_string(ns));
	json_object_set_new(m, "uid", json_string(uid));
	json_object_set_new(m, "creationTimestamp", json_string(now));
	json_object_set_new(m, "generation", json_integer(1));
	json_object_del(m, "resourceVersion");
	json_object_del(m, "deletionTimestamp");
	json_object_del(m, "deletionGracePeriodSeconds");
	json_object_set_new(pod, "status",
			    json_pack("{s:s, s:s}", "phase", "Pending", "qosClass", pod_qos_class(pod)));
	return 0;
}

/* Runs admission on `pod` (the stored `old` for updates, else NULL) and
 * applies a mutation the policy returned. */
static int admit(podsvc *s, json_t *pod, const json_t *old, const char *op, json_t **problem,
		 struct err *e)
{
	static const char *const kept[] = {"name", "namespace", "uid", "creationTimestamp",
					   "generation", "resourceVersion", "deletionTimestamp",
					   "deletionGracePeriodSeconds", NULL};
	json_t *mutated = NULL;
	if (!s->admit)
		return 0;
	if (s->admit(s->admit_ud, pod, op, &mutated, e)) {
		if (old)
			podsvc_event(s, old, "Warning", "FailedAdmission", e->msg);
		return e->code ? e->code : err_set(e, ERR_FORBIDDEN, "admission denied");
	}
	if (!json_is_object(mutated) || json_equal(mutated, pod)) {
		json_decref(mutated);
		return 0;
	}
	if (!json_is_object(meta(mutated)))
		json_object_set_new(mutated, "metadata", json_object());
	for (size_t i = 0; kept[i]; i++) {
		json_t *v = json_object_get(meta(pod), kept[i]);
		if (v)
			json_object_set(meta(mutated), kept[i], v);
		else
			json_object_del(meta(mutated), kept[i]);
	}
	json_object_set(mutated, "status", json_object_get(pod, "status"));
	struct k8s_field_errors fe;
	k8s_field_errors_init(&fe);
	pod_normalize(mutated, s->default_class, &fe);
	if (fe.n == 0 && old)
		pod_validate_update(old, mutated, &fe);
	int rc = invalid(mutated, &fe, problem, e);
	k8s_field_errors_fini(&fe);
	if (rc == 0) {
		json_object_clear(pod);
		json_object_update(pod, mutated);
	} else {
		err_wrap(e, "the admission policy's changes make the pod invalid");
	}
	json_decref(mutated);
	return rc;
}

int podsvc_create(podsvc *s, const char *ns, json_t *pod, int dry_run, json_t **out, char **text,
		  json_t **problem, struct err *e)
{
	struct k8s_field_errors fe;
	char *stored = NULL;
	*problem = NULL;
	if (text)
		*text = NULL;
	if (!json_is_object(pod))
		return err_set(e, ERR_BAD_REQUEST, "the body must be a Pod object");
	if (check_identity(pod, ns, e))
		return e->code;
	if (!json_is_object(meta(pod)))
		json_object_set_new(pod, "metadata", json_object());
	k8s_field_errors_init(&fe);
	pod_normalize(pod, s->default_class, &fe);
	int rc = invalid(pod, &fe, problem, e);
	k8s_field_errors_fini(&fe);
	if (rc || stamp_new(pod, ns, e))
		return e->code;
	/* One transaction from admission on: the decision log entry commits
	 * with the pod. */
	batch_begin(s);
	if (admit(s, pod, NULL, "CREATE", problem, e)) {
		batch_end(s, NULL);
		return e->code;
	}
	if (dry_run) {
		batch_end(s, NULL);
		*out = json_incref(pod);
		return 0;
	}
	if (objects_create_text(s->o, "Pod", pod, &stored, e)) {
		batch_end(s, NULL);
		return e->code;
	}
	struct podctl_req req;
	struct err ce;
	fill_req(pod, &req);
	struct working *w = work_add(s, pod);
	int added = podctl_add(s->ctl, pod, &req, &ce) == 0;
	if (!added)
		log_error("podsvc", "controller refused pod %s/%s: %s", ns, pod_name(pod), ce.msg);
	/* Answer with the pod as the controller left it (bound, with status).
	 * Its write is the first of the batch's working set, so it is made
	 * here instead of in flush_work, in the same order, and the stored
	 * text doubles as the answer. */
	if (w->dirty) {
		w->dirty = 0;
		free(stored);
		stored = NULL;
		if (objects_update_text(s->o, "Pod", pod, 0, &stored, &ce))
			log_error("podsvc", "writing pod %s/%s: %s", ns, pod_name(pod), ce.msg);
	}
	*out = json_incref(pod);
	if (batch_end(s, e)) {
		if (added) /* not stored after all: the controller forgets it */
			podctl_delete(s->ctl, meta_str(pod, "uid"), 0, &ce);
		json_decref(*out);
		*out = NULL;
		free(stored);
		return e->code;
	}
	log_info("podsvc", "pod created pod=%s/%s uid=%s", ns, pod_name(pod), meta_str(pod, "uid"));
	if (text)
		*text = stored;
	else
		free(stored);
	return 0;
}

/* Shared tail of PUT and PATCH: `next` is the desired object. */
static int update(podsvc *s, json_t *old, json_t *next, json_t **out, json_t **problem,
		  struct err *e)
{
	struct k8s_field_errors fe;
	const char *rv = json_string_value(json_object_get(meta(next), "resourceVersion"));
	uint64_t expect = rv && rv[0] ? strtoull(rv, NULL, 10) : 0;
	k8s_field_errors_init(&fe);
	json_object_set(next, "status", json_object_get(old, "status"));
	pod_normalize(next, s->default_class, &fe);
	if (fe.n == 0)
		pod_validate_update(old, next, &fe);
	int rc = invalid(next, &fe, problem, e);
	k8s_field_errors_fini(&fe);
	if (rc)
		return rc;
	if (json_equal(old, next)) {
		*out = json_incref(old); /* a no-op update writes nothing */
		return 0;
	}
	if (admit(s, next, old, "UPDATE", problem, e))
		return e->code;
	json_t *m = meta(next);
	json_object_set(m, "uid", json_object_get(meta(old), "uid"));
	json_object_set(m, "creationTimestamp", json_object_get(meta(old), "creationTimestamp"));
	json_object_set(m, "generation", json_object_get(meta(old), "generation"));
	if (objects_update(s->o, "Pod", next, expect, e))
		return e->code;
	*out = json_incref(next);
	return 0;
}

/* update() in its own transaction; a failed commit undoes the answer. */
static int update_batched(podsvc *s, json_t *old, json_t *next, json_t **out, json_t **problem,
			  struct err *e)
{
	batch_begin(s);
	int rc = update(s, old, next, out, problem, e);
	if (batch_end(s, rc ? NULL : e) && rc == 0) {
		json_decref(*out);
		*out = NULL;
		rc = e->code;
	}
	return rc;
}

int podsvc_update(podsvc *s, const char *ns, const char *name, json_t *pod, json_t **out,
		  json_t **problem, struct err *e)
{
	json_t *old = NULL;
	*problem = NULL;
	if (!json_is_object(pod) || check_identity(pod, ns, e))
		return e->code ? e->code : err_set(e, ERR_BAD_REQUEST, "the body must be a Pod object");
	const char *bname = json_string_value(json_object_get(meta(pod), "name"));
	if (!bname || strcmp(bname, name) != 0)
		return err_set(e, ERR_BAD_REQUEST, "the name of the object (%s) does not match the name on the URL (%s)",
			       bname ? bname : "", name);
	if (objects_get(s->o, "Pod", ns, name, &old, e))
		return e->code;
	json_t *next = json_deep_copy(pod);
	json_object_set_new(meta(next), "namespace", json_string(ns));
	int rc = update_batched(s, old, next, out, problem, e);
	json_decref(next);
	json_decref(old);
	return rc;
}

/* RFC 7386: objects merge recursively, null deletes, anything else replaces. */
static json_t *merge_patch(const json_t *target, const json_t *patch)
{
	if (!json_is_object(patch))
		return json_deep_copy(patch);
	json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
	for (void *it = json_object_iter((json_t *)(uintptr_t)patch); it;
	     it = json_object_iter_next((json_t *)(uintptr_t)patch, it)) {
		const char *k = json_object_iter_key(it);
		const json_t *v = json_object_iter_value(it);
		if (json_is_null(v))
			json_object_del(out, k);
		else
			json_object_set_new(out, k, merge_patch(json_object_get(out, k), v));
	}
	return out;
}

int podsvc_patch(podsvc *s, const char *ns, const char *name, const json_t *patch, json_t **out,
		 json_t **problem, struct err *e)
{
	json_t *old = NULL;
	*problem = NULL;
	if (!json_is_object(patch))
		return err_set(e, ERR_BAD_REQUEST, "a merge patch must be a JSON object");
	if (objects_get(s->o, "Pod", ns, name, &old, e))
		return e->code;
	json_t *next = merge_patch(old, patch);
	const char *pname = json_string_value(json_object_get(meta(next), "name"));
	int rc;
	if (!pname || strcmp(pname, name) != 0 || strcmp(meta_str(next, "namespace"), ns) != 0)
		rc = err_set(e, ERR_BAD_REQUEST, "a patch may not change metadata.name or metadata.namespace");
	else {
		rc = update_batched(s, old, next, out, problem, e);
	}
	json_decref(next);
	json_decref(old);
	return rc;
}

static int delete_pod(podsvc *s, const char *ns, const char *name, int64_t grace_s, json_t **out,
		      struct err *e);

int podsvc_delete(podsvc *s, const char *ns, const char *name, int64_t grace_s, json_t **out,
		  struct err *e)
{
	batch_begin(s);
	int rc = delete_pod(s, ns, name, grace_s, out, e);
	if (batch_end(s, rc ? NULL : e) && rc == 0) {
		json_decref(*out);
		*out = NULL;
		rc = e->code;
	}
	return rc;
}

static int delete_pod(podsvc *s, const char *ns, const char *name, int64_t grace_s, json_t **out,
		      struct err *e)
{
	json_t *pod = NULL;
	if (objects_get(s->o, "Pod", ns, name, &pod, e))
		return e->code;
	json_t *spec_grace = json_object_get(json_object_get(pod, "spec"), "terminationGracePeriodSeconds");
	if (grace_s < 0)
		grace_s = json_is_integer(spec_grace) ? json_integer_value(spec_grace) : 30;
	const char *uid = meta_str(pod, "uid");
	const json_t *st = podctl_status(s->ctl, uid);
	int bound = st != NULL && sched_state(podctl_sched(s->ctl), uid) == 1;
	if (!meta_str(pod, "deletionTimestamp")[0] || grace_s == 0) {
		char when[32];
		time_t t = time(NULL) + (time_t)grace_s;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(meta(pod), "deletionTimestamp", json_string(when));
		json_object_set_new(meta(pod), "deletionGracePeriodSeconds", json_integer(grace_s));
		if (!bound || grace_s == 0) {
			/* Nothing runs (or force): the object goes now; the
			 * controller still tears down whatever exists. */
			if (objects_delete(s->o, "Pod", ns, name, pod, e)) {
				json_decref(pod);
				return e->code;
			}
		} else if (objects_update(s->o, "Pod", pod, 0, e)) {
			json_decref(pod);
			return e->code;
		}
	}
	struct err ce;
	if (podctl_delete(s->ctl, uid, grace_s, &ce) && ce.code != ERR_NOT_FOUND)
		log_warn("podsvc", "deleting pod %s/%s: %s", ns, name, ce.msg);
	log_info("podsvc", "pod deletion requested pod=%s/%s grace_s=%lld", ns, name, (long long)grace_s);
	*out = pod;
	return 0;
}
