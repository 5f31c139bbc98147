/* kapi: see kapi.h.  Handlers decode the request, call podsvc or the
 * object store, and answer through send_object(), which speaks JSON, YAML
 * or Table as the Accept header asks.  Watches are chunked streams of
 * `{"type":..., "object":...}` lines fed by objects_watch(). */
#include "kapi.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"
#include "runtime.h"
#include "selector.h"
#include "util.h"

#define WATCH_MAX_PENDING (4u << 20) /* a watcher that reads nothing is dropped */

struct watch;

struct kapi {
	uv_loop_t *loop;
	runtime *rt; /* NULL: no pod VMs on this box */
	objects *o;
	podsvc *svc;
	struct watch *watches;
};

struct watch {
	kapi *k;
	http_req *r;
	objects_watcher *w;
	selector *labels, *fields;
	const char *kind;
	int table, sent_columns, full_objects, ended, begun;
	uv_timer_t timer;
	int timer_started;
	struct watch *prev, *next;
};

static const char *const pod_fields[] = {
	"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
	"spec.schedulerName", "spec.serviceAccountName", "spec.runtimeClassName", "status.phase",
	"status.podIP", "status.nominatedNodeName", NULL,
};
static const char *const event_fields[] = {
	"metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.namespace",
	"involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion",
	"involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent",
	"source", "type", NULL,
};

kapi *kapi_new(uv_loop_t *loop, objects *o, podsvc *svc)
{
	kapi *k = xcalloc(1, sizeof *k);
	k->loop = loop;
	k->o = o;
	k->svc = svc;
	return k;
}

/* --- small helpers --- */

static const json_t *meta(const json_t *obj) { return json_object_get(obj, "metadata"); }

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *v = json_object_get(obj, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static int64_t parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return -1;
	return (int64_t)timegm(&tm);
}

void kapi_age(int64_t seconds, char *out, size_t len)
{
	int64_t s = seconds, m = s / 60, h = s / 3600, d = s / 86400, y = d / 365;
	if (s < -1)
		snprintf(out, len, "<invalid>");
	else if (s < 0)
		snprintf(out, len, "0s");
	else if (s < 120)
		snprintf(out, len, "%llds", (long long)s);
	else if (m < 10 && s % 60)
		snprintf(out, len, "%lldm%llds", (long long)m, (long long)(s % 60));
	else if (m < 180)
		snprintf(out, len, "%lldm", (long long)m);
	else if (h < 8 && m % 60)
		snprintf(out, len, "%lldh%lldm", (long long)h, (long long)(m % 60));
	else if (h < 48)
		snprintf(out, len, "%lldh", (long long)h);
	else if (h < 192 && h % 24)
		snprintf(out, len, "%lldd%lldh", (long long)d, (long long)(h % 24));
	else if (y < 2)
		snprintf(out, len, "%lldd", (long long)d);
	else if (y < 8 && d % 365)
		snprintf(out, len, "%lldy%lldd", (long long)y, (long long)(d % 365));
	else
		snprintf(out, len, "%lldy", (long long)y);
}

static void age_of(const char *timestamp, char *out, size_t len)
{
	int64_t t = parse_time(timestamp);
	if (t < 0)
		snprintf(out, len, "<unknown>");
	else
		kapi_age((int64_t)time(NULL) - t, out, len);
}

/* --- tables --- */

static json_t *column(const char *name, const char *type, const char *format, int priority,
		      const char *desc)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", name, "type", type, "format", format,
			 "description", desc, "priority", priority);
}

static json_t *pod_columns(void)
{
	return json_pack("[o,o,o,o,o,o,o,o,o]",
			 column("Name", "string", "name", 0, "Name must be unique within a namespace."),
			 column("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
			 column("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
			 column("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted."),
			 column("Age", "string", "", 0, "Time since the pod was created."),
			 column("IP", "string", "", 1, "IP address allocated to the pod."),
			 column("Node", "string", "", 1, "Name of the node the pod is assigned to."),
			 column("Nominated Node", "string", "", 1, "Name of the node where the pod may be placed."),
			 column("Readiness Gates", "string", "", 1, "Pod readiness gates."));
}

static json_t *event_columns(void)
{
	return json_pack("[o,o,o,o,o,o,o,o,o,o]",
			 column("Last Seen", "string", "", 0, "Time since the event was last seen."),
			 column("Type", "string", "", 0, "Type of this event."),
			 column("Reason", "string", "", 0, "Why the event was recorded."),
			 column("Object", "string", "", 0, "The object this event is about."),
			 column("Subobject", "string", "", 1, "The part of the object this event is about."),
			 column("Source", "string", "", 1, "The component reporting this event."),
			 column("Message", "string", "", 0, "A human-readable description."),
			 column("First Seen", "string", "", 1, "Time since the event was first seen."),
			 column("Count", "string", "", 1, "How many times this event happened."),
			 column("Name", "string", "", 1, "The event's name."));
}

/* The STATUS column as kubectl computes it from container states. */
static void pod_reason(const json_t *pod, char *reason, size_t len, int *ready, int *restarts)
{
	const json_t *st = json_object_get(pod, "status"), *spec = json_object_get(pod, "spec");
	const char *r = str_at(st, "reason", NULL);
	snprintf(reason, len, "%s", r && r[0] ? r : (str_at(st, "phase", NULL) ? str_at(st, "phase", NULL) : "Pending"));
	size_t i, ninit = json_array_size(json_object_get(spec, "initContainers"));
	const json_t *cs;
	int initializing = 0;
	*ready = *restarts = 0;
	json_array_foreach(json_object_get(st, "initContainerStatuses"), i, cs) {
		const json_t *state = json_object_get(cs, "state");
		const json_t *term = json_object_get(state, "terminated");
		const char *wr = str_at(state, "waiting", "reason");
		*restarts += (int)json_integer_value(json_object_get(cs, "restartCount"));
		if (term && json_integer_value(json_object_get(term, "exitCode")) == 0)
			continue;
		initializing = 1;
		if (term) {
			const char *tr = str_at(term, "reason", NULL);
			if (tr && tr[0])
				snprintf(reason, len, "Init:%s", tr);
			else
				snprintf(reason, len, "Init:ExitCode:%lld",
					 (long long)json_integer_value(json_object_get(term, "exitCode")));
		} else if (wr && wr[0] && strcmp(wr, "PodInitializing") != 0) {
			snprintf(reason, len, "Init:%s", wr);
		} else {
			snprintf(reason, len, "Init:%zu/%zu", i, ninit);
		}
		break;
	}
	if (initializing)
		return;
	const json_t *list = json_object_get(st, "containerStatuses");
	int running = 0;
	*restarts = 0;
	for (size_t k = json_array_size(list); k-- > 0;) {
		cs = json_array_get(list, k);
		const json_t *state = json_object_get(cs, "state");
		const json_t *term = json_object_get(state, "terminated");
		const char *wr = str_at(state, "waiting", "reason");
		const char *tr = str_at(term, "reason", NULL);
		*restarts += (int)json_integer_value(json_object_get(cs, "restartCount"));
		if (wr && wr[0])
			snprintf(reason, len, "%s", wr);
		else if (tr && tr[0])
			snprintf(reason, len, "%s", tr);
		else if (term)
			snprintf(reason, len, "ExitCode:%lld",
				 (long long)json_integer_value(json_object_get(term, "exitCode")));
		else if (json_is_true(json_object_get(cs, "ready")) && json_object_get(state, "running")) {
			running = 1;
			(*ready)++;
		}
	}
	if (strcmp(reason, "Completed") == 0 && running)
		snprintf(reason, len, "Running");
	if (str_at(pod, "metadata", "deletionTimestamp"))
		snprintf(reason, len, "Terminating");
}

static json_t *pod_cells(const json_t *pod)
{
	char reason[128], age[32], ready[32], restarts[16];
	int nready, nrestarts;
	pod_reason(pod, reason, sizeof reason, &nready, &nrestarts);
	snprintf(ready, sizeof ready, "%d/%zu", nready,
		 json_array_size(json_object_get(json_object_get(pod, "spec"), "containers")));
	snprintf(restarts, sizeof restarts, "%d", nrestarts);
	age_of(str_at(pod, "metadata", "creationTimestamp"), age, sizeof age);
	const char *ip = str_at(pod, "status", "podIP"), *node = str_at(pod, "spec", "nodeName");
	return json_pack("[s,s,s,s,s,s,s,s,s]", str_at(pod, "metadata", "name"), ready, reason,
			 restarts, age, ip ? ip : "<none>", node ? node : "<none>", "<none>", "<none>");
}

static json_t *event_cells(const json_t *ev)
{
	char last[32], first[32], count[16], object[320];
	const char *lt = str_at(ev, "lastTimestamp", NULL);
	age_of(lt ? lt : str_at(ev, "metadata", "creationTimestamp"), last, sizeof last);
	age_of(str_at(ev, "firstTimestamp", NULL), first, sizeof first);
	snprintf(count, sizeof count, "%lld", (long long)json_integer_value(json_object_get(ev, "count")));
	const char *kind = str_at(ev, "involvedObject", "kind"), *name = str_at(ev, "involvedObject", "name");
	char lower[64];
	snprintf(lower, sizeof lower, "%s", kind ? kind : "");
	for (char *p = lower; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	snprintf(object, sizeof object, "%s/%s", lower, name ? name : "");
	const char *sub = str_at(ev, "involvedObject", "fieldPath"), *src = str_at(ev, "source", "component");
	const char *type = str_at(ev, "type", NULL), *reason = str_at(ev, "reason", NULL);
	const char *msg = str_at(ev, "message", NULL);
	return json_pack("[s,s,s,s,s,s,s,s,s,s]", last, type ? type : "", reason ? reason : "", object,
			 sub ? sub : "", src ? src : "", msg ? msg : "", first, count,
			 str_at(ev, "metadata", "name"));
}

static json_t *row(const char *kind, const json_t *obj, int full)
{
	json_t *o = full ? json_deep_copy(obj)
			 : json_pack("{s:s, s:s, s:O}", "kind", "PartialObjectMetadata", "apiVersion",
				     "meta.k8s.io/v1", "metadata", meta(obj));
	json_t *cells = strcmp(kind, "Pod") == 0 ? pod_cells(obj) : event_cells(obj);
	return json_pack("{s:o, s:o}", "cells", cells, "object", o);
}

json_t *kapi_table(const char *kind, const json_t *items, int with_columns, int full_objects,
		   const char *resource_version)
{
	json_t *rows = json_array(), *t;
	size_t i;
	const json_t *it;
	json_array_foreach(items, i, it)
		json_array_append_new(rows, row(kind, it, full_objects));
	t = json_pack("{s:s, s:s, s:{s:s}, s:o, s:o}", "kind", "Table", "apiVersion", "meta.k8s.io/v1",
		      "metadata", "resourceVersion", resource_version, "columnDefinitions",
		      with_columns ? (strcmp(kind, "Pod") == 0 ? pod_columns() : event_columns()) : json_array(),
		      "rows", rows);
	return t;
}

/* --- output --- */

static int wants_table(http_req *r)
{
	const char *accept = http_req_header(r, "Accept");
	return accept && strstr(accept, "as=Table") != NULL;
}

/* Sends `obj` (reference stolen) as JSON or YAML per the Accept header. */
static void send_json_or_yaml(http_req *r, int status, json_t *obj)
{
	const char *type;
	struct err e;
	if (codec_negotiate(http_req_header(r, "Accept"), &type, &e)) {
		json_decref(obj);
		api_error(r, &e);
		return;
	}
	if (strcmp(type, "application/yaml") == 0) {
		struct buf b;
		buf_init(&b);
		codec_encode_yaml(obj, &b);
		http_respond(r, status, "application/yaml", b.data, b.len);
		buf_fini(&b);
		json_decref(obj);
		return;
	}
	api_json(r, status, obj);
}

/* An object of `kind` (Pod, Event): as a one-row Table when asked. */
static void send_object(http_req *r, int status, const char *kind, json_t *obj)
{
	if (wants_table(r)) {
		json_t *items = json_pack("[O]", obj);
		const char *rv = str_at(obj, "metadata", "resourceVersion");
		json_t *t = kapi_table(kind, items, 1, 0, rv ? rv : "");
		json_decref(items);
		json_decref(obj);
		api_json(r, status, t);
		return;
	}
	send_json_or_yaml(r, status, obj);
}

static void send_problem(http_req *r, const struct err *e, json_t *problem)
{
	if (problem)
		api_json(r, err_http_status(e->code), problem);
	else
		api_error(r, e);
}

/* --- discovery --- */

static void h_api(http_req *r, const struct route_params *p, void *ctx)
{
	char addr[80];
	snprintf(addr, sizeof addr, "%s", http_req_header(r, "Host") ? http_req_header(r, "Host") : "127.0.0.1");
	api_json(r, 200, json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind", "APIVersions", "versions", "v1",
				   "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0", "serverAddress", addr));
}

static void h_apis(http_req *r, const struct route_params *p, void *ctx)
{
	api_json(r, 200, json_pack("{s:s, s:s, s:[]}", "kind", "APIGroupList", "apiVersion", "v1", "groups"));
}

static json_t *resource(const char *name, const char *singular, const char *kind, const char *verbs,
			const char *shortname)
{
	json_t *v = json_array();
	cleanup_free char *copy = xstrdup(verbs);
	for (char *save, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		json_array_append_new(v, json_string(tok));
	json_t *res = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", name, "singularName", singular,
				"namespaced", 1, "kind", kind, "verbs", v);
	if (shortname)
		json_object_set_new(res, "shortNames", json_pack("[s]", shortname));
	if (strcmp(name, "pods") == 0)
		json_object_set_new(res, "categories", json_pack("[s]", "all"));
	return res;
}

static void h_api_v1(http_req *r, const struct route_params *p, void *ctx)
{
	json_t *res = json_pack("[o,o,o,o]",
				resource("pods", "pod", "Pod", "create,delete,get,list,patch,update,watch", "po"),
				resource("pods/log", "", "Pod", "get", NULL),
				resource("pods/status", "", "Pod", "get", NULL),
				resource("events", "event", "Event", "get,list,watch", "ev"));
	api_json(r, 200, json_pack("{s:s, s:s, s:o}", "kind", "APIResourceList", "groupVersion", "v1",
				   "resources", res));
}

/* kubectl fetches OpenAPI v3 before create/apply.  It only needs to see
 * that pod writes take the fieldValidation parameter (then it validates on
 * the server instead of against a schema); no schemas are published, so
 * apply computes patches from its own built-in types. */
static const char openapi_root[] =
	"{\"paths\":{\"api/v1\":{\"serverRelativeURL\":\"/openapi/v3/api/v1?hash=cocod-1\"}}}";

static const char openapi_v1[] =
	"{\"openapi\":\"3.0.0\",\"info\":{\"title\":\"cocod\",\"version\":\"v1.32.0\"},\"paths\":{"
	"\"/api/v1/namespaces/{namespace}/pods\":{\"post\":{\"operationId\":\"createCoreV1NamespacedPod\","
	"\"parameters\":[{\"name\":\"fieldValidation\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"
	"{\"name\":\"dryRun\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],"
	"\"responses\":{\"201\":{\"description\":\"Created\"}},\"x-kubernetes-action\":\"post\","
	"\"x-kubernetes-group-version-kind\":{\"group\":\"\",\"kind\":\"Pod\",\"version\":\"v1\"}}},"
	"\"/api/v1/namespaces/{namespace}/pods/{name}\":{\"patch\":{\"operationId\":\"patchCoreV1NamespacedPod\","
	"\"parameters\":[{\"name\":\"fieldValidation\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}},"
	"{\"name\":\"dryRun\",\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],"
	"\"responses\":{\"200\":{\"description\":\"OK\"}},\"x-kubernetes-action\":\"patch\","
	"\"x-kubernetes-group-version-kind\":{\"group\":\"\",\"kind\":\"Pod\",\"version\":\"v1\"}},"
	"\"put\":{\"operationId\":\"replaceCoreV1NamespacedPod\",\"parameters\":[{\"name\":\"fieldValidation\","
	"\"in\":\"query\",\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"OK\"}},"
	"\"x-kubernetes-action\":\"put\",\"x-kubernetes-group-version-kind\":{\"group\":\"\",\"kind\":\"Pod\","
	"\"version\":\"v1\"}}}},\"components\":{\"schemas\":{}}}";

static void h_openapi_root(http_req *r, const struct route_params *p, void *ctx)
{
	http_respond(r, 200, "application/json", openapi_root, sizeof openapi_root - 1);
}

static void h_openapi_v1(http_req *r, const struct route_params *p, void *ctx)
{
	http_respond(r, 200, "application/json", openapi_v1, sizeof openapi_v1 - 1);
}

/* --- watches --- */

static void watch_unlink(struct watch *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else if (w->k->watches == w)
		w->k->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static void watch_free_cb(uv_handle_t *h)
{
	struct watch *w = h->data;
	selector_free(w->labels);
	selector_free(w->fields);
	free(w);
}

/* Ends the stream once: stop following, finish the response, free. */
static void watch_end(struct watch *w)
{
	if (w->ended)
		return;
	w->ended = 1;
	objects_unwatch(w->w);
	w->w = NULL;
	watch_unlink(w);
	if (!w->begun)
		http_stream_begin(w->r, 200, "application/json");
	http_stream_end(w->r);
	uv_close((uv_handle_t *)&w->timer, watch_free_cb);
}

static void watch_send(struct watch *w, const char *type, const json_t *obj)
{
	json_t *payload;
	if (w->table && obj) {
		json_t *items = json_pack("[O]", obj);
		const char *rv = str_at(obj, "metadata", "resourceVersion");
		payload = kapi_table(w->kind, items, !w->sent_columns, w->full_objects, rv ? rv : "");
		json_decref(items);
		w->sent_columns = 1;
	} else {
		payload = json_incref((json_t *)(uintptr_t)obj);
	}
	if (!w->begun) {
		/* Begun on the first event, so that a refused resume can still
		 * be answered with a plain error status. */
		http_stream_begin(w->r, 200, "application/json");
		w->begun = 1;
	}
	/* {"type":TYPE,"object":...} and a newline, written in one pass. */
	struct buf line;
	buf_init(&line);
	json_t *t = json_string(type);
	buf_adds(&line, "{\"type\":");
	int ok = codec_json_compact(t, 0, &line) == 0;
	json_decref(t);
	buf_adds(&line, ",\"object\":");
	int rc = 0;
	if (ok && codec_json_compact(payload, 0, &line) == 0) {
		buf_adds(&line, "}\n");
		rc = http_stream_write(w->r, line.data, line.len);
	}
	buf_fini(&line);
	json_decref(payload);
	if (rc < 0 || http_stream_pending(w->r) > WATCH_MAX_PENDING)
		watch_end(w);
}

static void on_change(const char *type, const json_t *obj, uint64_t rv, void *ud)
{
	struct watch *w = ud;
	if (strcmp(type, "CLOSED") == 0) {
		w->w = NULL; /* the store is going away */
		watch_end(w);
		return;
	}
	if (w->ended || !selector_matches(w->labels, obj) || !selector_matches(w->fields, obj))
		return;
	watch_send(w, type, obj);
}

static void on_watch_timeout(uv_timer_t *t) { watch_end(t->data); }

static void on_peer_gone(http_req *r, void *arg) { watch_end(arg); }

static int send_initial(json_t *obj, void *ud)
{
	struct watch *w = ud;
	if (selector_matches(w->labels, obj) && selector_matches(w->fields, obj))
		watch_send(w, "ADDED", obj);
	return w->ended;
}

/* Starts a watch stream: `since` empty or "0" first lists the current
 * objects as ADDED events, a number resumes after that version. */
static void start_watch(http_req *r, kapi *k, const char *kind, const char *ns, selector *labels,
			selector *fields)
{
	const char *since = http_req_query(r, "resourceVersion");
	const char *timeout = http_req_query(r, "timeoutSeconds");
	struct err e = {0};
	char *end = NULL;
	uint64_t from = since && since[0] ? strtoull(since, &end, 10) : 0;
	if (end && *end) {
		selector_free(labels);
		selector_free(fields);
		api_fail(r, ERR_BAD_REQUEST, "resourceVersion %s is not a number", since);
		return;
	}
	struct watch *w = xcalloc(1, sizeof *w);
	*w = (struct watch){.k = k, .r = r, .labels = labels, .fields = fields, .kind = kind,
			    .table = wants_table(r)};
	const char *inc = http_req_query(r, "includeObject");
	w->full_objects = inc && strcmp(inc, "Object") == 0;
	uv_timer_init(k->loop, &w->timer);
	w->timer.data = w;
	if (from != 0) {
		if (objects_watch(k->o, kind, ns, from, on_change, w, &w->w, &e)) {
			uv_close((uv_handle_t *)&w->timer, watch_free_cb);
			api_error(r, &e);
			return;
		}
	} else {
		uint64_t rv;
		if (objects_list(k->o, kind, ns, send_initial, w, &rv, &e) == 0 && !w->ended)
			objects_watch(k->o, kind, ns, rv, on_change, w, &w->w, &e);
	}
	if (w->ended)
		return;
	w->next = k->watches;
	if (k->watches)
		k->watches->prev = w;
	k->watches = w;
	if (!w->begun) {
		http_stream_begin(r, 200, "application/json");
		w->begun = 1;
	}
	http_req_on_close(r, on_peer_gone, w);
	long secs = timeout ? strtol(timeout, NULL, 10) : 0;
	if (secs > 0)
		uv_timer_start(&w->timer, on_watch_timeout, (uint64_t)secs * 1000, 0);
}

void kapi_close_watches(kapi *k)
{
	while (k->watches)
		watch_end(k->watches);
}

void kapi_free(kapi *k)
{
	if (!k)
		return;
	kapi_close_watches(k);
	free(k);
}

/* --- lists and gets --- */

struct collect {
	json_t *items;
	selector *labels, *fields;
};

static int collect(json_t *obj, void *ud)
{
	struct collect *c = ud;
	if (selector_matches(c->labels, obj) && selector_matches(c->fields, obj))
		json_array_append(c->items, obj);
	return 0;
}

static int parse_selectors(http_req *r, const char *kind, selector **labels, selector **fields,
			   struct err *e)
{
	*labels = *fields = NULL;
	if (selector_parse_labels(http_req_query(r, "labelSelector"), labels, e))
		return e->code;
	if (selector_parse_fields(http_req_query(r, "fieldSelector"),
				  strcmp(kind, "Pod") == 0 ? pod_fields : event_fields, fields, e)) {
		selector_free(*labels);
		*labels = NULL;
		return e->code;
	}
	return 0;
}

static int is_true(const char *v) { return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0); }

static void list_or_watch(http_req *r, kapi *k, const char *kind, const char *ns)
{
	selector *labels, *fields;
	struct err e = {0};
	if (parse_selectors(r, kind, &labels, &fields, &e)) {
		api_error(r, &e);
		return;
	}
	if (is_true(http_req_query(r, "watch"))) {
		start_watch(r, k, kind, ns, labels, fields);
		return;
	}
	struct collect c = {json_array(), labels, fields};
	uint64_t rv = 0;
	int rc = objects_list(k->o, kind, ns, collect, &c, &rv, &e);
	selector_free(labels);
	selector_free(fields);
	if (rc) {
		json_decref(c.items);
		api_error(r, &e);
		return;
	}
	char rvs[24];
	snprintf(rvs, sizeof rvs, "%" PRIu64, rv);
	if (wants_table(r)) {
		const char *inc = http_req_query(r, "includeObject");
		json_t *t = kapi_table(kind, c.items, 1, inc && strcmp(inc, "Object") == 0, rvs);
		json_decref(c.items);
		api_json(r, 200, t);
		return;
	}
	char list_kind[32];
	snprintf(list_kind, sizeof list_kind, "%sList", kind);
	send_json_or_yaml(r, 200, json_pack("{s:s, s:s, s:{s:s}, s:o}", "kind", list_kind, "apiVersion", "v1",
					    "metadata", "resourceVersion", rvs, "items", c.items));
}

static void h_pods_ns(http_req *r, const struct route_params *p, void *ctx)
{
	list_or_watch(r, ctx, "Pod", route_param(p, "ns"));
}

static void h_pods_all(http_req *r, const struct route_params *p, void *ctx)
{
	list_or_watch(r, ctx, "Pod", NULL);
}

static void h_events_ns(http_req *r, const struct route_params *p, void *ctx)
{
	list_or_watch(r, ctx, "Event", route_param(p, "ns"));
}

static void h_events_all(http_req *r, const struct route_params *p, void *ctx)
{
	list_or_watch(r, ctx, "Event", NULL);
}

static void get_one(http_req *r, kapi *k, const char *kind, const struct route_params *p)
{
	struct err e = {0};
	const char *ns = route_param(p, "ns"), *name = route_param(p, "name");
	const char *accept = http_req_header(r, "Accept");
	int plain_json = !wants_table(r) && (!accept || strcmp(codec_media_type(accept), "application/json") == 0);
	if (plain_json) {
		/* The common case answers with the stored bytes, no parse. */
		char *text;
		size_t len;
		if (objects_get_text(k->o, kind, ns, name, &text, &len, &e)) {
			api_error(r, &e);
			return;
		}
		http_respond(r, 200, "application/json", text, len);
		free(text);
		return;
	}
	json_t *obj;
	if (objects_get(k->o, kind, ns, name, &obj, &e)) {
		api_error(r, &e);
		return;
	}
	send_object(r, 200, kind, obj);
}

static void h_pod_get(http_req *r, const struct route_params *p, void *ctx)
{
	get_one(r, ctx, "Pod", p);
}

static void h_event_get(http_req *r, const struct route_params *p, void *ctx)
{
	get_one(r, ctx, "Event", p);
}

/* --- writes --- */

static int decode_body(http_req *r, int any, json_t **out, struct err *e)
{
	size_t len;
	const char *body = http_req_body(r, &len);
	if (!body || len == 0)
		return err_set(e, ERR_BAD_REQUEST, "the request has no body");
	const char *ct = http_req_header(r, "Content-Type");
	return any ? codec_decode_any(body, len, ct, out, e) : codec_decode(body, len, ct, out, e);
}

static int dry_run(http_req *r)
{
	const char *d = http_req_query(r, "dryRun");
	return d && strcmp(d, "All") == 0;
}

/* Whether send_object() would answer in plain JSON (no Table, no YAML). */
static int answers_json(http_req *r)
{
	const char *type;
	struct err e;
	return !wants_table(r) && codec_negotiate(http_req_header(r, "Accept"), &type, &e) == 0 &&
	       strcmp(type, "application/json") == 0;
}

static void h_pod_create(http_req *r, const struct route_params *p, void *ctx)
{
	kapi *k = ctx;
	json_t *pod = NULL, *out = NULL, *problem = NULL;
	char *text = NULL;
	struct err e = {0};
	if (decode_body(r, 0, &pod, &e) ||
	    podsvc_create(k->svc, route_param(p, "ns"), pod, dry_run(r), &out, &text, &problem, &e)) {
		json_decref(pod);
		send_problem(r, &e, problem);
		return;
	}
	json_decref(pod);
	if (text && answers_json(r)) {
		/* The bytes just stored are the answer: no second serialisation. */
		http_respond(r, 201, "application/json", text, strlen(text));
		json_decref(out);
	} else {
		send_object(r, 201, "Pod", out);
	}
	free(text);
}

static void h_pod_put(http_req *r, const struct route_params *p, void *ctx)
{
	kapi *k = ctx;
	json_t *pod = NULL, *out = NULL, *problem = NULL;
	struct err e = {0};
	if (decode_body(r, 0, &pod, &e) ||
	    podsvc_update(k->svc, route_param(p, "ns"), route_param(p, "name"), pod, &out, &problem, &e)) {
		json_decref(pod);
		send_problem(r, &e, problem);
		return;
	}
	json_decref(pod);
	send_object(r, 200, "Pod", out);
}

/* Merge patch and strategic merge patch (the same for the metadata maps
 * that may change); JSON patch is refused. */
static void h_pod_patch(http_req *r, const struct route_params *p, void *ctx)
{
	kapi *k = ctx;
	json_t *patch = NULL, *out = NULL, *problem = NULL;
	struct err e = {0};
	const char *ct = http_req_header(r, "Content-Type");
	if (!ct || (strncmp(ct, "application/merge-patch+json", 28) != 0 &&
		    strncmp(ct, "application/strategic-merge-patch+json", 38) != 0)) {
		api_fail(r, ERR_UNSUPPORTED_MEDIA,
			 "unsupported patch type %s; use application/merge-patch+json or "
			 "application/strategic-merge-patch+json", ct ? ct : "(none)");
		return;
	}
	if (decode_body(r, 1, &patch, &e) ||
	    podsvc_patch(k->svc, route_param(p, "ns"), route_param(p, "name"), patch, &out, &problem, &e)) {
		json_decref(patch);
		send_problem(r, &e, problem);
		return;
	}
	json_decref(patch);
	send_object(r, 200, "Pod", out);
}

/* gracePeriodSeconds from the query or a DeleteOptions body; -1 = default. */
static int grace_of(http_req *r, int64_t *grace, struct err *e)
{
	const char *q = http_req_query(r, "gracePeriodSeconds");
	size_t len;
	const char *body = http_req_body(r, &len);
	char *end;
	*grace = -1;
	if (q) {
		long long v = strtoll(q, &end, 10);
		if (*end || v < 0)
			return err_set(e, ERR_BAD_REQUEST, "gracePeriodSeconds %s is not a non-negative integer", q);
		*grace = v;
	}
	if (body && len) {
		json_t *opts;
		if (codec_decode(body, len, http_req_header(r, "Content-Type"), &opts, e))
			return e->code;
		json_t *g = json_object_get(opts, "gracePeriodSeconds");
		if (g && (!json_is_integer(g) || json_integer_value(g) < 0)) {
			json_decref(opts);
			return err_set(e, ERR_BAD_REQUEST, "gracePeriodSeconds must be a non-negative integer");
		}
		if (g)
			*grace = json_integer_value(g);
		json_decref(opts);
	}
	return 0;
}

static void h_pod_delete(http_req *r, const struct route_params *p, void *ctx)
{
	kapi *k = ctx;
	json_t *out = NULL;
	int64_t grace;
	struct err e = {0};
	if (grace_of(r, &grace, &e) ||
	    podsvc_delete(k->svc, route_param(p, "ns"), route_param(p, "name"), grace, &out, &e)) {
		api_error(r, &e);
		return;
	}
	send_object(r, 200, "Pod", out);
}

void kapi_set_runtime(kapi *k, runtime *rt) { k->rt = rt; }

/* A log stream in flight: the runtime reads, the HTTP response streams. */
struct logstream {
	http_req *r;
	runtime_log_reader *rd;
};

static int log_chunk(void *arg, const char *data, size_t len)
{
	struct logstream *s = arg;
	return http_stream_write(s->r, data, len) < 0;
}

static void log_done(void *arg, const struct err *e)
{
	struct logstream *s = arg;
	http_stream_end(s->r);
	free(s);
}

static void log_gone(http_req *r, void *arg)
{
	struct logstream *s = arg;
	runtime_logs_cancel(s->rd);
	http_stream_end(r);
	free(s);
}

static int64_t query_int(http_req *r, const char *name)
{
	const char *v = http_req_query(r, name);
	return v && *v ? strtoll(v, NULL, 10) : -1;
}

/* GET .../log?container=&follow=&timestamps=&tailLines=&limitBytes= */
static void h_pod_log(http_req *r, const struct route_params *p, void *ctx)
{
	kapi *k = ctx;
	json_t *pod;
	struct err e = {0};
	if (objects_get(k->o, "Pod", route_param(p, "ns"), route_param(p, "name"), &pod, &e)) {
		api_error(r, &e);
		return;
	}
	const char *container = http_req_query(r, "container");
	const json_t *spec = json_object_get(pod, "spec"), *c;
	const char *first = str_at(json_array_get(json_object_get(spec, "containers"), 0), "name", NULL);
	int known = 0;
	size_t i;
	const char *lists[] = {"containers", "initContainers"};
	for (int l = 0; l < 2 && container; l++)
		json_array_foreach(json_object_get(spec, lists[l]), i, c)
			known |= str_at(c, "name", NULL) && strcmp(str_at(c, "name", NULL), container) == 0;
	if (!container && json_array_size(json_object_get(spec, "containers")) > 1) {
		api_fail(r, ERR_BAD_REQUEST, "a container name must be specified for pod %s, choose one of: "
			 "the pod's containers", route_param(p, "name"));
	} else if (container && !known) {
		api_fail(r, ERR_BAD_REQUEST, "container %s is not valid for pod %s", container,
			 route_param(p, "name"));
	} else if (!k->rt) {
		api_fail(r, ERR_BAD_REQUEST,
			 "container \"%s\" in pod \"%s\" has no logs: no container runtime is available "
			 "on this box", container ? container : first ? first : "", route_param(p, "name"));
	} else {
		const char *f = http_req_query(r, "follow"), *ts = http_req_query(r, "timestamps");
		struct runtime_log_opts o = {
			.follow = f && strcmp(f, "true") == 0,
			.timestamps = ts && strcmp(ts, "true") == 0,
			.tail_lines = query_int(r, "tailLines"),
			.limit_bytes = query_int(r, "limitBytes"),
		};
		struct logstream *s = xcalloc(1, sizeof *s);
		s->r = r;
		http_stream_begin(r, 200, "text/plain; charset=utf-8");
		if (runtime_logs(k->rt, str_at(pod, "metadata", "uid"), container ? container : first, &o,
				 log_chunk, log_done, s, &s->rd, &e)) {
			/* No log yet (the container has not started): an empty log. */
			http_stream_end(r);
			free(s);
		} else {
			http_req_on_close(r, log_gone, s);
		}
	}
	json_decref(pod);
}

int kapi_register(kapi *k, api *a, struct err *e)
{
	static const struct {
		const char *method, *pattern;
		api_handler fn;
		unsigned flags;
	} routes[] = {
		{"GET", "/api", h_api, 0},
		{"GET", "/apis", h_apis, 0},
		{"GET", "/api/v1", h_api_v1, 0},
		{"GET", "/openapi/v3", h_openapi_root, 0},
		{"GET", "/openapi/v3/api/v1", h_openapi_v1, 0},
		{"GET", "/api/v1/pods", h_pods_all, 0},
		{"GET", "/api/v1/events", h_events_all, 0},
		{"GET", "/api/v1/namespaces/{ns}/pods", h_pods_ns, 0},
		{"POST", "/api/v1/namespaces/{ns}/pods", h_pod_create, 0},
		{"GET", "/api/v1/namespaces/{ns}/pods/{name}", h_pod_get, 0},
		{"PUT", "/api/v1/namespaces/{ns}/pods/{name}", h_pod_put, 0},
		{"PATCH", "/api/v1/namespaces/{ns}/pods/{name}", h_pod_patch, 0},
		{"DELETE", "/api/v1/namespaces/{ns}/pods/{name}", h_pod_delete, 0},
		{"GET", "/api/v1/namespaces/{ns}/pods/{name}/status", h_pod_get, 0},
		{"GET", "/api/v1/namespaces/{ns}/pods/{name}/log", h_pod_log, 0},
		{"GET", "/api/v1/namespaces/{ns}/events", h_events_ns, 0},
		{"GET", "/api/v1/namespaces/{ns}/events/{name}", h_event_get, 0},
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (api_route(a, routes[i].method, routes[i].pattern, routes[i].fn, k, routes[i].flags, e))
			return e->code;
	return 0;
}
