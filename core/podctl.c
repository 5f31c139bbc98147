/* podctl: the pod controller.  Each pod is a `struct pod` holding what was
 * extracted from its object, a sandbox (VM) state, per-container state
 * machines and a few deadlines.  Every entry point mutates pods, marks them
 * dirty, and ends in finish(): scheduling re-runs if capacity was freed,
 * dirty pods get their status rebuilt and handed to the sink when it
 * changed, removed pods are freed, and the clock is asked to wake us at the
 * earliest deadline.  Status is derived from the state machines (phase and
 * conditions computed like the kubelet's getPhase), so it is never edited in
 * place and restoring a pod means restoring the machines from its status. */
#include "podctl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define BACKOFF_FIRST_MS 10000
#define BACKOFF_MAX_MS 300000
#define BACKOFF_RESET_MS 600000 /* a container that ran this long starts over */
#define PULL_ERR_SHOW_MS 5000   /* ErrImagePull shows this long before ImagePullBackOff */
#define DESTROY_RETRY_MS 10000
#define DEFAULT_GRACE_S 30
#define NO_RUNTIME_MSG "no container runtime is available on this box yet"
#define LOST_MSG "the pod's VM is gone"

enum cst { C_WAITING, C_PULLING, C_STARTING, C_RUNNING, C_TERMINATED };
enum act { A_NONE, A_RESTART, A_SHOW_PULL_BACKOFF, A_PULL_RETRY };
enum sbst { SB_NONE, SB_CREATING, SB_READY, SB_DESTROYING };
enum policy { RP_ALWAYS, RP_ONFAILURE, RP_NEVER };
enum { K_INITIALIZED, K_READY, K_CONTAINERS_READY, K_SCHEDULED, NCOND };

static const char *const cond_types[NCOND] = {"Initialized", "Ready", "ContainersReady",
					      "PodScheduled"};

/* A terminated state (state.terminated or lastState.terminated). */
struct term {
	int set;
	int exit_code;
	char *reason, *id;
	int64_t started, finished;
};

struct ctr {
	char *name, *image, *image_id, *id;
	int init;
	enum cst st;
	char *wreason, *wmsg; /* explicit waiting reason, else a default */
	int64_t started;      /* of the current run */
	struct term term, last;
	int restarts, pulled;
	int64_t stop_grace; /* grace of the last stop sent, -1 = none */
	int64_t backoff_ms, pull_backoff_ms, pull_retry_at;
	enum act act;
	int64_t due;
};

struct cond {
	int status; /* -1 never set, 0 False, 1 True */
	int64_t t;
};

struct pod {
	char *uid, *ns, *name, *key; /* key: "ns/name" */
	char *obj; /* the pod without status, compact JSON: text costs far less memory than a tree */
	enum policy policy;
	int64_t grace_s, deadline_s;
	int32_t priority;
	int64_t created_ms;
	uint64_t cpu, mem;
	char *tee, *rclass, *qos;
	struct ctr *c;
	size_t nc, ninit; /* init containers first */
	int scheduled;
	char *sched_msg;
	enum sbst sb;
	int64_t sb_backoff_ms, sb_retry_at, destroy_retry_at;
	int64_t start_time;
	const char *final_phase; /* set once terminal */
	char *reason, *message;
	int tearing, deleting;
	int64_t kill_at;
	struct cond cond[NCOND];
	char *status; /* last published, compact JSON */
	int touched;  /* on ctl->touched */
	int dirty, dead;
	int frozen; /* restored terminal pod: its stored status stays as it is */
};

struct podctl {
	char *node_name, *host_ip;
	sched *s;
	struct runtime_ops rt;
	int has_rt;
	struct podctl_sink sink;
	struct podctl_clock clock;
	struct pod **v;
	size_t n, cap;
	struct strmap index; /* uid → live pod */
	struct pod **touched; /* pods changed since the last finish() */
	size_t ntouched, captouched;
	int any_dead;
	int resched;
	int64_t armed;
	json_t *status_view; /* podctl_status's answer, valid until the next call */
};

/* ---- small helpers ---- */

static int64_t now(const podctl *ctl) { return ctl->clock.now_ms(ctl->clock.ud); }

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = dup_or_null(s);
}

static int64_t min_due(int64_t a, int64_t b)
{
	if (a <= 0)
		return b;
	return b <= 0 || a < b ? a : b;
}

static void fmt_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* RFC 3339 ("2024-05-01T10:00:00Z", fraction and offset tolerated as Z) to
 * ms since the epoch; 0 when absent or malformed. */
static int64_t parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm) * 1000;
}

/* Go's time.Duration formatting for whole seconds: "10s", "1m20s", "5m0s". */
static void fmt_duration(int64_t ms, char out[32])
{
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(out, 32, "%" PRId64 "s", s);
	else
		snprintf(out, 32, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
}

static void set_time(json_t *o, const char *key, int64_t ms)
{
	char b[32];
	fmt_time(ms, b);
	json_object_set_new(o, key, json_string(b));
}

static void set_opt_str(json_t *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_set_new(o, key, json_string(v));
}

__attribute__((format(printf, 5, 6))) static void emit(podctl *ctl, struct pod *p,
							const char *type, const char *reason,
							const char *fmt, ...)
{
	char msg[PODCTL_EVENT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (ctl->sink.event)
		ctl->sink.event(ctl->sink.ud, p->uid, type, reason, msg);
}

static struct pod *find_pod(const podctl *ctl, const char *uid)
{
	struct pod *p = strmap_get(&ctl->index, uid);
	return p && !p->dead ? p : NULL;
}

/* Notes that `p` changed: finish() then publishes it and accounts for its
 * timers without walking every pod. */
static void touch(podctl *ctl, struct pod *p)
{
	p->dirty = 1;
	if (p->touched)
		return;
	p->touched = 1;
	if (ctl->ntouched == ctl->captouched) {
		ctl->captouched = ctl->captouched ? 2 * ctl->captouched : 16;
		ctl->touched = xrealloc(ctl->touched, ctl->captouched * sizeof *ctl->touched);
	}
	ctl->touched[ctl->ntouched++] = p;
}

/* find_pod for the entry points that act on a pod. */
static struct pod *find_touch(podctl *ctl, const char *uid)
{
	struct pod *p = find_pod(ctl, uid);
	if (p)
		touch(ctl, p);
	return p;
}

static struct ctr *find_ctr(struct pod *p, const char *name)
{
	for (size_t i = 0; name && i < p->nc; i++)
		if (strcmp(p->c[i].name, name) == 0)
			return &p->c[i];
	return NULL;
}

static void term_clear(struct term *t)
{
	free(t->reason);
	free(t->id);
	memset(t, 0, sizeof *t);
}

static void ctr_fini(struct ctr *c)
{
	free(c->name);
	free(c->image);
	free(c->image_id);
	free(c->id);
	free(c->wreason);
	free(c->wmsg);
	term_clear(&c->term);
	term_clear(&c->last);
}

static void pod_free(struct pod *p)
{
	for (size_t i = 0; i < p->nc; i++)
		ctr_fini(&p->c[i]);
	free(p->c);
	free(p->uid);
	free(p->ns);
	free(p->name);
	free(p->key);
	free(p->tee);
	free(p->rclass);
	free(p->qos);
	free(p->sched_msg);
	free(p->reason);
	free(p->message);
	free(p->obj);
	free(p->status);
	free(p);
}

static int live(const struct ctr *c) { return c->st == C_RUNNING || c->st == C_STARTING; }

static int init_done(const struct pod *p)
{
	for (size_t i = 0; i < p->ninit; i++)
		if (p->c[i].st != C_TERMINATED || p->c[i].term.exit_code != 0)
			return 0;
	return 1;
}

/* ---- parsing a pod object ---- */

static const char *jstr(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static int64_t jint(const json_t *o, const char *a, const char *b, int64_t dflt)
{
	const json_t *v = json_object_get(json_object_get(o, a), b);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static int parse_ctrs(struct pod *p, const json_t *arr, int init, struct err *e)
{
	size_t i;
	const json_t *c;
	json_array_foreach(arr, i, c) {
		const char *name = jstr(c, "name", NULL), *image = jstr(c, "image", NULL);
		if (!name || !*name || !image || !*image)
			return err_set(e, ERR_INVALID, "spec.%s[%zu]: name and image are required",
				       init ? "initContainers" : "containers", i);
		if (find_ctr(p, name))
			return err_set(e, ERR_INVALID, "spec: duplicate container name %s", name);
		struct ctr *x = &p->c[p->nc++];
		x->name = xstrdup(name);
		x->image = xstrdup(image);
		x->init = init;
		x->stop_grace = -1;
	}
	return 0;
}

static enum policy parse_policy(const char *s)
{
	if (s && strcmp(s, "OnFailure") == 0)
		return RP_ONFAILURE;
	if (s && strcmp(s, "Never") == 0)
		return RP_NEVER;
	return RP_ALWAYS;
}

static int parse_containers(struct pod *p, const json_t *spec, struct err *e)
{
	const json_t *init = json_object_get(spec, "initContainers");
	const json_t *app = json_object_get(spec, "containers");
	size_t n = json_array_size(init) + json_array_size(app);
	if (json_array_size(app) == 0)
		return err_set(e, ERR_INVALID, "spec.containers: Required value");
	if (n > PODCTL_MAX_CONTAINERS)
		return err_set(e, ERR_INVALID, "spec: %zu containers, at most %d", n,
			       PODCTL_MAX_CONTAINERS);
	p->c = xcalloc(n, sizeof *p->c);
	int rc = parse_ctrs(p, init, 1, e);
	if (rc < 0)
		return rc;
	p->ninit = p->nc;
	return parse_ctrs(p, app, 0, e);
}

/* Extracts what the controller needs from `obj`; *out only on success. */
static int pod_parse(const json_t *obj, const struct podctl_req *req, struct pod **out,
		     struct err *e)
{
	const json_t *spec = json_object_get(obj, "spec");
	const char *uid = jstr(obj, "metadata", "uid"), *name = jstr(obj, "metadata", "name");
	const char *ns = jstr(obj, "metadata", "namespace");
	if (!uid || !*uid || !name || !*name)
		return err_set(e, ERR_INVALID, "metadata.uid and metadata.name are required");
	struct pod *p = xcalloc(1, sizeof *p);
	p->uid = xstrdup(uid);
	p->name = xstrdup(name);
	p->ns = xstrdup(ns && *ns ? ns : "default");
	p->key = xasprintf("%s/%s", p->ns, p->name);
	p->policy = parse_policy(jstr(spec, "restartPolicy", NULL));
	p->grace_s = jint(obj, "spec", "terminationGracePeriodSeconds", DEFAULT_GRACE_S);
	p->grace_s = p->grace_s < 0 ? 0 : p->grace_s;
	p->deadline_s = jint(obj, "spec", "activeDeadlineSeconds", 0);
	p->priority = (int32_t)jint(obj, "spec", "priority", 0);
	p->created_ms = parse_time(jstr(obj, "metadata", "creationTimestamp"));
	p->cpu = req ? req->cpu_milli : 0;
	p->mem = req ? req->mem_bytes : 0;
	p->tee = req ? dup_or_null(req->tee) : NULL;
	p->rclass = req ? dup_or_null(req->runtime_class) : NULL;
	p->qos = req ? dup_or_null(req->qos_class) : NULL;
	for (int i = 0; i < NCOND; i++)
		p->cond[i].status = -1;
	int rc = parse_containers(p, spec, e);
	if (rc < 0) {
		pod_free(p);
		return rc;
	}
	json_t *copy = json_copy((json_t *)(uintptr_t)obj);
	json_object_del(copy, "status");
	p->obj = json_dumps(copy, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(copy);
	*out = p;
	return 0;
}

static void sched_view(const struct pod *p, struct sched_pod *sp)
{
	*sp = (struct sched_pod){.uid = p->uid,
				 .name = p->key,
				 .priority = p->priority,
				 .created_ms = p->created_ms,
				 .cpu_milli = p->cpu,
				 .mem_bytes = p->mem,
				 .tee = p->tee,
				 .runtime_class = p->rclass};
}

/* ---- status ---- */

static const char *compute_phase(const struct pod *p)
{
	if (p->final_phase)
		return p->final_phase;
	if (!p->scheduled)
		return "Pending";
	for (size_t i = 0; i < p->ninit; i++)
		if (p->c[i].st == C_TERMINATED && p->c[i].term.exit_code != 0)
			return "Failed"; /* only left terminated when it will not restart */
	if (!init_done(p))
		return "Pending";
	int waiting = 0, running = 0, stopped = 0, succeeded = 0;
	for (size_t i = p->ninit; i < p->nc; i++) {
		const struct ctr *c = &p->c[i];
		if (c->st == C_RUNNING)
			running++;
		else if (c->st == C_TERMINATED) {
			stopped++;
			succeeded += c->term.exit_code == 0;
		} else if (c->last.set)
			stopped++; /* restarting */
		else
			waiting++;
	}
	if (waiting > 0)
		return "Pending";
	if (running > 0)
		return "Running";
	if (p->policy == RP_ALWAYS)
		return "Running";
	if (stopped == succeeded)
		return "Succeeded";
	return p->policy == RP_NEVER ? "Failed" : "Running";
}

/* "containers with unready status: [a b]" over containers [from, to). */
static char *names_where(const struct pod *p, size_t from, size_t to, int want_init,
			 const char *what)
{
	struct buf b;
	buf_init(&b);
	buf_printf(&b, "containers with %s status: [", what);
	size_t head = b.len;
	for (size_t i = from; i < to; i++) {
		const struct ctr *c = &p->c[i];
		int ok = want_init ? c->st == C_TERMINATED && c->term.exit_code == 0
				   : c->st == C_RUNNING;
		if (!ok)
			buf_printf(&b, "%s%s", b.len > head ? " " : "", c->name);
	}
	buf_adds(&b, "]");
	return buf_steal(&b, NULL);
}

static json_t *cond_json(struct pod *p, int k, int status, int64_t t, const char *reason,
			 const char *msg)
{
	struct cond *c = &p->cond[k];
	if (c->status != status) {
		c->status = status;
		c->t = t;
	}
	json_t *o = json_object();
	json_object_set_new(o, "type", json_string(cond_types[k]));
	json_object_set_new(o, "status", json_string(status ? "True" : "False"));
	json_object_set_new(o, "lastProbeTime", json_null());
	set_time(o, "lastTransitionTime", c->t);
	if (!status) {
		set_opt_str(o, "reason", reason);
		set_opt_str(o, "message", msg);
	}
	return o;
}

static json_t *conditions(struct pod *p, int64_t t)
{
	json_t *a = json_array();
	if (p->scheduled) {
		int inited = init_done(p);
		cleanup_free char *inc = names_where(p, 0, p->ninit, 1, "incomplete");
		cleanup_free char *unready = names_where(p, p->ninit, p->nc, 0, "unready");
		int ready = 1;
		for (size_t i = p->ninit; i < p->nc; i++)
			ready &= p->c[i].st == C_RUNNING;
		const char *why = p->final_phase && strcmp(p->final_phase, "Succeeded") == 0
					  ? "PodCompleted"
					  : "ContainersNotReady";
		json_array_append_new(a, cond_json(p, K_INITIALIZED, inited, t,
						   "ContainersNotInitialized", inc));
		json_array_append_new(a, cond_json(p, K_READY, ready, t, why, unready));
		json_array_append_new(a, cond_json(p, K_CONTAINERS_READY, ready, t, why, unready));
	}
	json_array_append_new(a, cond_json(p, K_SCHEDULED, p->scheduled, t, "Unschedulable",
					   p->sched_msg));
	return a;
}

static json_t *term_json(const struct term *t)
{
	json_t *o = json_object();
	json_object_set_new(o, "exitCode", json_integer(t->exit_code));
	set_opt_str(o, "reason", t->reason);
	if (t->started)
		set_time(o, "startedAt", t->started);
	set_time(o, "finishedAt", t->finished);
	set_opt_str(o, "containerID", t->id);
	return o;
}

static const char *default_wait(const struct pod *p, const struct ctr *c)
{
	if (c->st == C_PULLING || c->st == C_STARTING)
		return "ContainerCreating";
	return c->init || !init_done(p) ? "PodInitializing" : "ContainerCreating";
}

static json_t *state_json(const struct pod *p, const struct ctr *c)
{
	json_t *inner = json_object();
	const char *kind = "waiting";
	if (c->st == C_RUNNING) {
		kind = "running";
		set_time(inner, "startedAt", c->started);
	} else if (c->st == C_TERMINATED) {
		json_decref(inner);
		kind = "terminated";
		inner = term_json(&c->term);
	} else {
		json_object_set_new(inner, "reason",
				    json_string(c->wreason ? c->wreason : default_wait(p, c)));
		set_opt_str(inner, "message", c->wmsg);
	}
	json_t *o = json_object();
	json_object_set_new(o, kind, inner);
	return o;
}

static json_t *ctr_json(const struct pod *p, const struct ctr *c)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(c->name));
	json_object_set_new(o, "state", state_json(p, c));
	json_t *last = json_object();
	if (c->last.set)
		json_object_set_new(last, "terminated", term_json(&c->last));
	json_object_set_new(o, "lastState", last);
	json_object_set_new(o, "ready", json_boolean(c->st == C_RUNNING));
	json_object_set_new(o, "restartCount", json_integer(c->restarts));
	json_object_set_new(o, "image", json_string(c->image));
	json_object_set_new(o, "imageID", json_string(c->image_id ? c->image_id : ""));
	set_opt_str(o, "containerID", c->id);
	json_object_set_new(o, "started", json_boolean(c->st == C_RUNNING));
	return o;
}

static json_t *build_status(podctl *ctl, struct pod *p)
{
	json_t *st = json_object();
	json_object_set_new(st, "phase", json_string(compute_phase(p)));
	json_object_set_new(st, "conditions", conditions(p, now(ctl)));
	set_opt_str(st, "reason", p->reason);
	set_opt_str(st, "message", p->message);
	if (p->scheduled) {
		json_object_set_new(st, "hostIP", json_string(ctl->host_ip));
		if (p->start_time)
			set_time(st, "startTime", p->start_time);
	}
	set_opt_str(st, "qosClass", p->qos);
	if (!p->scheduled)
		return st;
	json_t *init = json_array(), *app = json_array();
	for (size_t i = 0; i < p->nc; i++)
		json_array_append_new(i < p->ninit ? init : app, ctr_json(p, &p->c[i]));
	if (p->ninit)
		json_object_set_new(st, "initContainerStatuses", init);
	else
		json_decref(init);
	json_object_set_new(st, "containerStatuses", app);
	return st;
}

static void publish(podctl *ctl, struct pod *p)
{
	p->dirty = 0;
	if (p->frozen)
		return;
	json_t *st = build_status(ctl, p);
	char *text = json_dumps(st, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text && p->status && strcmp(p->status, text) == 0) {
		free(text);
		json_decref(st);
		return;
	}
	free(p->status);
	p->status = text;
	if (ctl->sink.status_changed)
		ctl->sink.status_changed(ctl->sink.ud, p->uid, st);
	json_decref(st);
}

/* ---- the state machines ---- */

static void schedule(podctl *ctl);
static void teardown(podctl *ctl, struct pod *p, int64_t grace_s);
static void ctr_exited(podctl *ctl, struct pod *p, struct ctr *c, int code, const char *reason,
		       int64_t at);

static void release(podctl *ctl, struct pod *p)
{
	if (sched_remove(ctl->s, p->uid))
		ctl->resched = 1;
}

/* The current back-off delay (10 s first), doubling `*cur` up to 5 min. */
static int64_t next_backoff(int64_t *cur)
{
	int64_t delay = *cur ? *cur : BACKOFF_FIRST_MS;
	*cur = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
	return delay;
}

static void make_terminal(podctl *ctl, struct pod *p, const char *phase, const char *reason,
			  const char *message);
static void ctrs_lost(podctl *ctl, struct pod *p, const char *reason);

static int hostile(const char *why)
{
	return why && strncmp(why, PODCTL_HOSTILE, strlen(PODCTL_HOSTILE)) == 0;
}

static void sandbox_failed(podctl *ctl, struct pod *p, const char *msg)
{
	p->sb = SB_NONE;
	touch(ctl, p);
	emit(ctl, p, "Warning", "FailedCreatePodSandBox", "Failed to create pod sandbox: %s", msg);
	if (p->tearing) {
		teardown(ctl, p, 0);
		return;
	}
	if (hostile(msg)) {
		ctrs_lost(ctl, p, "ContainerStatusUnknown");
		make_terminal(ctl, p, "Failed", "HostileGuest", msg);
		return;
	}
	p->sb_retry_at = now(ctl) + next_backoff(&p->sb_backoff_ms);
}

/* Without a runtime a placed pod waits: every container shows
 * ContainerCreating with the reason, and nothing is retried. */
static void park_without_runtime(podctl *ctl, struct pod *p)
{
	p->sb = SB_NONE;
	p->sb_retry_at = 0;
	touch(ctl, p);
	for (size_t i = 0; i < p->nc; i++)
		set_str(&p->c[i].wmsg, NO_RUNTIME_MSG);
	emit(ctl, p, "Warning", "FailedCreatePodSandBox", "%s", NO_RUNTIME_MSG);
}

static void create_sandbox(podctl *ctl, struct pod *p)
{
	struct err e = {0};
	if (!ctl->has_rt) {
		park_without_runtime(ctl, p);
		return;
	}
	p->sb = SB_CREATING;
	p->sb_retry_at = 0;
	touch(ctl, p);
	json_t *pod = json_loads(p->obj ? p->obj : "{}", 0, NULL);
	int rc = ctl->rt.sandbox_create(ctl->rt.ud, p->uid, pod, &e);
	json_decref(pod);
	if (rc < 0)
		sandbox_failed(ctl, p, e.msg);
}

static void destroy(podctl *ctl, struct pod *p)
{
	struct err e = {0};
	p->sb = SB_DESTROYING;
	p->destroy_retry_at = 0;
	if (ctl->rt.sandbox_destroy(ctl->rt.ud, p->uid, &e) < 0) {
		emit(ctl, p, "Warning", "FailedKillPod", "error killing pod: %s", e.msg);
		p->destroy_retry_at = now(ctl) + DESTROY_RETRY_MS;
	}
}

/* ErrImagePull now, ImagePullBackOff a little later, a new pull after the
 * back-off. */
static void pull_failed(podctl *ctl, struct pod *p, struct ctr *c, const char *msg)
{
	c->st = C_WAITING;
	set_str(&c->wreason, "ErrImagePull");
	set_str(&c->wmsg, msg);
	emit(ctl, p, "Warning", "Failed", "Failed to pull image \"%s\": %s", c->image, msg);
	emit(ctl, p, "Warning", "Failed", "Error: ErrImagePull");
	int64_t delay = next_backoff(&c->pull_backoff_ms), t = now(ctl);
	c->pull_retry_at = t + delay;
	c->act = p->tearing || p->final_phase ? A_NONE : A_SHOW_PULL_BACKOFF;
	c->due = t + (delay < PULL_ERR_SHOW_MS ? delay : PULL_ERR_SHOW_MS);
	touch(ctl, p);
}

static void pull(podctl *ctl, struct pod *p, struct ctr *c)
{
	struct err e = {0};
	c->st = C_PULLING;
	touch(ctl, p);
	emit(ctl, p, "Normal", "Pulling", "Pulling image \"%s\"", c->image);
	if (ctl->rt.pull(ctl->rt.ud, p->uid, c->name, c->image, &e) < 0)
		pull_failed(ctl, p, c, e.msg);
}

static void start(podctl *ctl, struct pod *p, struct ctr *c)
{
	struct err e = {0};
	c->st = C_STARTING;
	touch(ctl, p);
	if (ctl->rt.container_start(ctl->rt.ud, p->uid, c->name, &e) < 0) {
		emit(ctl, p, "Warning", "Failed", "Error: %s", e.msg);
		ctr_exited(ctl, p, c, 128, "StartError", now(ctl));
	}
}

static void begin(podctl *ctl, struct pod *p, struct ctr *c)
{
	if (c->pulled)
		start(ctl, p, c);
	else
		pull(ctl, p, c);
}

/* Starts whatever is next: the first unfinished init container, or (once
 * they all succeeded) every app container that is idle. */
static void advance(podctl *ctl, struct pod *p)
{
	if (p->final_phase || p->tearing || p->sb != SB_READY)
		return;
	for (size_t i = 0; i < p->ninit; i++) {
		struct ctr *c = &p->c[i];
		if (c->st == C_TERMINATED && c->term.exit_code == 0)
			continue;
		if (c->st == C_WAITING && c->act == A_NONE)
			begin(ctl, p, c);
		return;
	}
	/* A synchronous start failure may end the pod half-way through. */
	for (size_t i = p->ninit; i < p->nc && !p->final_phase && !p->tearing; i++)
		if (p->c[i].st == C_WAITING && p->c[i].act == A_NONE)
			begin(ctl, p, &p->c[i]);
}

static void stop(podctl *ctl, struct pod *p, struct ctr *c, int64_t grace_s)
{
	if (c->st != C_RUNNING || (c->stop_grace >= 0 && c->stop_grace <= grace_s))
		return;
	struct err e = {0};
	if (c->stop_grace < 0)
		emit(ctl, p, "Normal", "Killing", "Stopping container %s", c->name);
	c->stop_grace = grace_s;
	if (ctl->rt.container_stop(ctl->rt.ud, p->uid, c->name, grace_s, &e) < 0)
		log_warn("podctl", "stop failed pod=%s container=%s: %s", p->key, c->name, e.msg);
}

/* Moves teardown on: waits for containers until the grace period ends, then
 * kills what is left and destroys the VM; once the VM is gone the pod's
 * capacity is released and a deleted pod is removed. */
static void teardown_progress(podctl *ctl, struct pod *p)
{
	int any = 0;
	for (size_t i = 0; i < p->nc; i++)
		any |= live(&p->c[i]);
	if (p->sb == SB_CREATING || p->sb == SB_DESTROYING)
		return;
	if (p->sb == SB_READY) {
		if (any && now(ctl) < p->kill_at)
			return;
		for (size_t i = 0; i < p->nc; i++)
			stop(ctl, p, &p->c[i], 0);
		destroy(ctl, p);
		return;
	}
	release(ctl, p);
	if (p->deleting && !p->dead) {
		p->dead = 1;
		ctl->any_dead = 1;
		if (ctl->sink.removed)
			ctl->sink.removed(ctl->sink.ud, p->uid);
	}
}

static void teardown(podctl *ctl, struct pod *p, int64_t grace_s)
{
	int64_t at = now(ctl) + grace_s * 1000;
	touch(ctl, p);
	if (!p->tearing || at < p->kill_at) {
		p->tearing = 1;
		p->kill_at = at;
		for (size_t i = 0; i < p->nc; i++) {
			p->c[i].act = A_NONE;
			stop(ctl, p, &p->c[i], grace_s);
		}
	}
	teardown_progress(ctl, p);
}

static void make_terminal(podctl *ctl, struct pod *p, const char *phase, const char *reason,
			  const char *msg)
{
	p->final_phase = phase;
	set_str(&p->reason, reason);
	set_str(&p->message, msg);
	touch(ctl, p);
	teardown(ctl, p, p->grace_s);
}

static void check_terminal(podctl *ctl, struct pod *p)
{
	const char *ph = compute_phase(p);
	if (!p->final_phase && !p->tearing &&
	    (strcmp(ph, "Succeeded") == 0 || strcmp(ph, "Failed") == 0))
		make_terminal(ctl, p, strcmp(ph, "Failed") == 0 ? "Failed" : "Succeeded", NULL,
			      NULL);
}

/* The container will be restarted after a back-off: its terminated state
 * becomes lastState and it waits in CrashLoopBackOff. */
static void crash_loop(podctl *ctl, struct pod *p, struct ctr *c)
{
	if (c->term.finished - c->term.started >= BACKOFF_RESET_MS)
		c->backoff_ms = 0;
	int64_t delay = next_backoff(&c->backoff_ms);
	char d[32];
	fmt_duration(delay, d);
	term_clear(&c->last);
	c->last = c->term;
	memset(&c->term, 0, sizeof c->term);
	c->st = C_WAITING;
	set_str(&c->wreason, "CrashLoopBackOff");
	free(c->wmsg);
	c->wmsg = xasprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", d, c->name,
			    p->name, p->ns, p->uid);
	emit(ctl, p, "Warning", "BackOff",
	     "Back-off restarting failed container %s in pod %s_%s(%s)", c->name, p->name, p->ns,
	     p->uid);
	c->act = A_RESTART;
	c->due = now(ctl) + delay;
}

static int wants_restart(const struct pod *p, const struct ctr *c, int code)
{
	if (c->init)
		return code != 0 && p->policy != RP_NEVER;
	return p->policy == RP_ALWAYS || (p->policy == RP_ONFAILURE && code != 0);
}

static void set_terminated(struct ctr *c, int code, const char *reason, int64_t at)
{
	term_clear(&c->term);
	c->term = (struct term){1, code, xstrdup(reason ? reason : code ? "Error" : "Completed"),
				dup_or_null(c->id), c->started, at};
	c->st = C_TERMINATED;
	c->stop_grace = -1;
	c->act = A_NONE;
}

static void ctr_exited(podctl *ctl, struct pod *p, struct ctr *c, int code, const char *reason,
		       int64_t at)
{
	set_terminated(c, code, reason, at);
	touch(ctl, p);
	if (p->tearing || p->final_phase) {
		teardown_progress(ctl, p);
		return;
	}
	if (wants_restart(p, c, code))
		crash_loop(ctl, p, c);
	else if (c->init && code == 0)
		advance(ctl, p);
	check_terminal(ctl, p);
}

/* Marks containers that were live when the VM vanished. */
static void ctrs_lost(podctl *ctl, struct pod *p, const char *reason)
{
	for (size_t i = 0; i < p->nc; i++)
		if (live(&p->c[i]))
			set_terminated(&p->c[i], 137, reason, now(ctl));
}

static void lost(podctl *ctl, struct pod *p, const char *why)
{
	emit(ctl, p, "Warning", "Lost", "%s: %s", LOST_MSG, why);
	char msg[PODCTL_EVENT_MAX];
	snprintf(msg, sizeof msg, "%s: %s", LOST_MSG, why);
	ctrs_lost(ctl, p, "ContainerStatusUnknown");
	make_terminal(ctl, p, "Failed", "Lost", msg);
}

/* ---- scheduling ---- */

static void bind_pod(podctl *ctl, struct pod *p)
{
	p->scheduled = 1;
	set_str(&p->sched_msg, NULL);
	p->start_time = now(ctl);
	touch(ctl, p);
	emit(ctl, p, "Normal", "Scheduled", "Successfully assigned %s to %s", p->key,
	     ctl->node_name);
	if (ctl->sink.bound)
		ctl->sink.bound(ctl->sink.ud, p->uid, ctl->node_name);
	create_sandbox(ctl, p);
}

static void on_sched(void *ud, const char *uid, int bound, const char *message)
{
	podctl *ctl = ud;
	struct pod *p = find_pod(ctl, uid);
	if (!p)
		return;
	if (bound) {
		bind_pod(ctl, p);
		return;
	}
	if (p->sched_msg && strcmp(p->sched_msg, message) == 0)
		return; /* already said before a restart */
	set_str(&p->sched_msg, message);
	touch(ctl, p);
	emit(ctl, p, "Warning", "FailedScheduling", "%s", message);
}

static void schedule(podctl *ctl) { sched_run(ctl->s, on_sched, ctl); }

/* ---- bookkeeping shared by every entry point ---- */

static int64_t pod_due(const struct pod *p)
{
	int64_t due = 0;
	if (p->sb == SB_NONE && p->scheduled && !p->tearing)
		due = min_due(due, p->sb_retry_at);
	if (p->sb == SB_READY && p->tearing)
		due = min_due(due, p->kill_at);
	if (p->sb == SB_DESTROYING)
		due = min_due(due, p->destroy_retry_at);
	if (p->start_time && p->deadline_s > 0 && !p->final_phase && !p->tearing)
		due = min_due(due, p->start_time + p->deadline_s * 1000);
	for (size_t i = 0; i < p->nc; i++)
		if (p->c[i].act != A_NONE)
			due = min_due(due, p->c[i].due);
	return due;
}

static void rearm(podctl *ctl)
{
	int64_t due = 0;
	for (size_t i = 0; i < ctl->n; i++)
		due = min_due(due, pod_due(ctl->v[i]));
	if (due <= 0)
		due = -1;
	if (due == ctl->armed)
		return;
	ctl->armed = due;
	if (ctl->clock.wake_at)
		ctl->clock.wake_at(ctl->clock.ud, due);
}

static void sweep(podctl *ctl)
{
	size_t j = 0;
	for (size_t i = 0; i < ctl->n; i++) {
		if (ctl->v[i]->dead) {
			if (strmap_get(&ctl->index, ctl->v[i]->uid) == ctl->v[i])
				strmap_del(&ctl->index, ctl->v[i]->uid);
			pod_free(ctl->v[i]);
		} else
			ctl->v[j++] = ctl->v[i];
	}
	ctl->n = j;
}

/* The end of every entry point: place pods, publish what changed, drop the
 * dead, and re-arm the clock.  Only touched pods are visited, except after
 * a tick, which re-arms from a walk over every pod. */
static void finish(podctl *ctl)
{
	while (ctl->resched) {
		ctl->resched = 0;
		schedule(ctl);
	}
	int full = ctl->armed == INT64_MIN;
	int64_t due = ctl->armed > 0 ? ctl->armed : 0;
	for (size_t i = 0; i < ctl->ntouched; i++) {
		struct pod *p = ctl->touched[i];
		p->touched = 0;
		if (p->dead)
			continue;
		if (p->dirty)
			publish(ctl, p);
		due = min_due(due, pod_due(p));
	}
	ctl->ntouched = 0;
	if (ctl->any_dead) {
		sweep(ctl);
		ctl->any_dead = 0;
	}
	if (full) {
		rearm(ctl);
		return;
	}
	/* A pod whose timer moved later leaves the clock early: the tick
	 * that follows walks every pod and sets it right. */
	due = due > 0 ? due : -1;
	if (due != ctl->armed) {
		ctl->armed = due;
		if (ctl->clock.wake_at)
			ctl->clock.wake_at(ctl->clock.ud, due);
	}
}

static void push(podctl *ctl, struct pod *p)
{
	if (ctl->n == ctl->cap) {
		ctl->cap = ctl->cap ? ctl->cap * 2 : 16;
		ctl->v = xrealloc(ctl->v, ctl->cap * sizeof *ctl->v);
	}
	ctl->v[ctl->n++] = p;
	strmap_put(&ctl->index, p->uid, p);
}

/* ---- public API ---- */

podctl *podctl_new(const struct podctl_config *cfg, const struct sched_node *node,
		   const struct runtime_ops *rt, const struct podctl_sink *sink,
		   const struct podctl_clock *clock)
{
	podctl *ctl = xcalloc(1, sizeof *ctl);
	ctl->node_name = xstrdup(cfg && cfg->node_name ? cfg->node_name : "cocod");
	ctl->host_ip = xstrdup(cfg && cfg->host_ip ? cfg->host_ip : "127.0.0.1");
	ctl->s = sched_new(node);
	if (rt) {
		ctl->rt = *rt;
		ctl->has_rt = 1;
	}
	if (sink)
		ctl->sink = *sink;
	ctl->clock = *clock;
	ctl->armed = -1;
	return ctl;
}

void podctl_free(podctl *ctl)
{
	if (!ctl)
		return;
	for (size_t i = 0; i < ctl->n; i++)
		pod_free(ctl->v[i]);
	free(ctl->v);
	sched_free(ctl->s);
	strmap_fini(&ctl->index);
	free(ctl->touched);
	json_decref(ctl->status_view);
	free(ctl->node_name);
	free(ctl->host_ip);
	free(ctl);
}

/* Queues `p` for scheduling (with or without a runtime: placement and
 * capacity work the same; a placed pod then waits for a runtime). */
static int enqueue(podctl *ctl, struct pod *p, struct err *e)
{
	struct sched_pod sp;
	sched_view(p, &sp);
	return sched_add_pending(ctl->s, &sp, e);
}

int podctl_add(podctl *ctl, const json_t *pod, const struct podctl_req *req, struct err *e)
{
	struct pod *p;
	int rc = pod_parse(pod, req, &p, e);
	if (rc < 0)
		return rc;
	if (find_pod(ctl, p->uid)) {
		rc = err_set(e, ERR_EXISTS, "pod %s (%s) is already known", p->key, p->uid);
		pod_free(p);
		return rc;
	}
	push(ctl, p);
	touch(ctl, p);
	rc = enqueue(ctl, p, e);
	if (rc < 0) {
		p->dead = 1;
		ctl->any_dead = 1;
		finish(ctl);
		return rc;
	}
	ctl->resched = 1;
	finish(ctl);
	return 0;
}

void podctl_schedule(podctl *ctl)
{
	ctl->resched = 1;
	finish(ctl);
}

int podctl_delete(podctl *ctl, const char *uid, int64_t grace_s, struct err *e)
{
	struct pod *p = find_touch(ctl, uid);
	if (!p)
		return err_set(e, ERR_NOT_FOUND, "pod %s not found", uid);
	p->deleting = 1;
	teardown(ctl, p, grace_s < 0 ? p->grace_s : grace_s);
	finish(ctl);
	return 0;
}

static void deadline_exceeded(podctl *ctl, struct pod *p)
{
	static const char msg[] = "Pod was active on the node longer than the specified deadline";
	emit(ctl, p, "Normal", "DeadlineExceeded", "%s", msg);
	make_terminal(ctl, p, "Failed", "DeadlineExceeded", msg);
}

static void ctr_due(podctl *ctl, struct pod *p, struct ctr *c, int64_t t)
{
	if (c->act == A_NONE || c->due > t)
		return;
	enum act a = c->act;
	c->act = A_NONE;
	touch(ctl, p);
	if (a == A_RESTART) {
		c->restarts++;
		set_str(&c->wreason, NULL);
		set_str(&c->wmsg, NULL);
		begin(ctl, p, c);
	} else if (a == A_SHOW_PULL_BACKOFF) {
		set_str(&c->wreason, "ImagePullBackOff");
		free(c->wmsg);
		c->wmsg = xasprintf("Back-off pulling image \"%s\"", c->image);
		emit(ctl, p, "Normal", "BackOff", "%s", c->wmsg);
		emit(ctl, p, "Warning", "Failed", "Error: ImagePullBackOff");
		c->act = A_PULL_RETRY;
		c->due = c->pull_retry_at;
	} else {
		pull(ctl, p, c);
	}
}

static void pod_tick(podctl *ctl, struct pod *p, int64_t t)
{
	if (p->start_time && p->deadline_s > 0 && !p->final_phase && !p->tearing &&
	    t >= p->start_time + p->deadline_s * 1000)
		deadline_exceeded(ctl, p);
	if (p->tearing && p->sb == SB_READY && t >= p->kill_at)
		teardown_progress(ctl, p);
	if (p->sb == SB_DESTROYING && p->destroy_retry_at && t >= p->destroy_retry_at)
		destroy(ctl, p);
	if (p->sb == SB_NONE && p->scheduled && !p->tearing && p->sb_retry_at &&
	    t >= p->sb_retry_at)
		create_sandbox(ctl, p);
	for (size_t i = 0; i < p->nc && !p->tearing; i++)
		ctr_due(ctl, p, &p->c[i], t);
}

void podctl_tick(podctl *ctl)
{
	int64_t t = now(ctl);
	ctl->armed = INT64_MIN; /* the timer fired: re-arm (or cancel) in any case */
	for (size_t i = 0; i < ctl->n; i++)
		if (!ctl->v[i]->dead)
			pod_tick(ctl, ctl->v[i], t);
	finish(ctl);
}

/* ---- runtime completions ---- */

static int lookup(podctl *ctl, const char *uid, const char *name, struct pod **p, struct ctr **c)
{
	*p = find_touch(ctl, uid);
	*c = *p ? find_ctr(*p, name) : NULL;
	return *c ? 0 : ERR_NOT_FOUND;
}

int podctl_on_sandbox_ready(podctl *ctl, const char *uid)
{
	struct pod *p = find_touch(ctl, uid);
	if (!p)
		return ERR_NOT_FOUND;
	if (p->sb != SB_CREATING)
		return ERR_CONFLICT;
	p->sb = SB_READY;
	p->sb_backoff_ms = 0;
	touch(ctl, p);
	if (p->tearing)
		teardown_progress(ctl, p);
	else
		advance(ctl, p);
	finish(ctl);
	return 0;
}

int podctl_on_sandbox_failed(podctl *ctl, const char *uid, const char *message)
{
	struct pod *p = find_touch(ctl, uid);
	if (!p)
		return ERR_NOT_FOUND;
	if (p->sb != SB_CREATING)
		return ERR_CONFLICT;
	sandbox_failed(ctl, p, message ? message : "unknown error");
	finish(ctl);
	return 0;
}

int podctl_on_sandbox_gone(podctl *ctl, const char *uid, const char *reason)
{
	struct pod *p = find_touch(ctl, uid);
	if (!p)
		return ERR_NOT_FOUND;
	if (p->sb == SB_NONE)
		return ERR_CONFLICT;
	if (p->sb == SB_CREATING) {
		sandbox_failed(ctl, p, reason ? reason : "VM exited");
	} else if (p->tearing || p->final_phase) {
		p->sb = SB_NONE;
		ctrs_lost(ctl, p, "Error");
		teardown_progress(ctl, p);
	} else if (hostile(reason)) {
		p->sb = SB_NONE;
		emit(ctl, p, "Warning", "HostileGuest", "%s", reason);
		ctrs_lost(ctl, p, "ContainerStatusUnknown");
		make_terminal(ctl, p, "Failed", "HostileGuest", reason);
	} else {
		p->sb = SB_NONE;
		lost(ctl, p, reason ? reason : "it exited unexpectedly");
	}
	touch(ctl, p);
	finish(ctl);
	return 0;
}

int podctl_on_pulled(podctl *ctl, const char *uid, const char *container, const char *image_id)
{
	struct pod *p = NULL;
	struct ctr *c = NULL;
	if (lookup(ctl, uid, container, &p, &c) < 0)
		return ERR_NOT_FOUND;
	if (c->st != C_PULLING)
		return ERR_CONFLICT;
	c->pulled = 1;
	c->pull_backoff_ms = 0;
	set_str(&c->image_id, image_id);
	set_str(&c->wreason, NULL);
	set_str(&c->wmsg, NULL);
	emit(ctl, p, "Normal", "Pulled", "Successfully pulled image \"%s\"", c->image);
	c->st = C_WAITING;
	touch(ctl, p);
	if (!p->tearing && !p->final_phase && p->sb == SB_READY)
		start(ctl, p, c);
	finish(ctl);
	return 0;
}

int podctl_on_pull_failed(podctl *ctl, const char *uid, const char *container,
			  const char *message)
{
	struct pod *p = NULL;
	struct ctr *c = NULL;
	if (lookup(ctl, uid, container, &p, &c) < 0)
		return ERR_NOT_FOUND;
	if (c->st != C_PULLING)
		return ERR_CONFLICT;
	pull_failed(ctl, p, c, message ? message : "unknown error");
	finish(ctl);
	return 0;
}

int podctl_on_container_started(podctl *ctl, const char *uid, const char *container,
				const char *container_id, int64_t started_at_ms)
{
	struct pod *p = NULL;
	struct ctr *c = NULL;
	if (lookup(ctl, uid, container, &p, &c) < 0)
		return ERR_NOT_FOUND;
	if (c->st != C_STARTING)
		return ERR_CONFLICT;
	c->st = C_RUNNING;
	c->started = started_at_ms ? started_at_ms : now(ctl);
	set_str(&c->id, container_id);
	set_str(&c->wreason, NULL);
	set_str(&c->wmsg, NULL);
	emit(ctl, p, "Normal", "Created", "Created container %s", c->name);
	emit(ctl, p, "Normal", "Started", "Started container %s", c->name);
	touch(ctl, p);
	if (p->tearing) {
		int64_t left = (p->kill_at - now(ctl)) / 1000;
		stop(ctl, p, c, left > 0 ? left : 0);
		teardown_progress(ctl, p);
	}
	finish(ctl);
	return 0;
}

int podctl_on_container_exited(podctl *ctl, const char *uid, const char *container,
			       int exit_code, const char *reason, int64_t finished_at_ms)
{
	struct pod *p = NULL;
	struct ctr *c = NULL;
	if (lookup(ctl, uid, container, &p, &c) < 0)
		return ERR_NOT_FOUND;
	if (!live(c))
		return ERR_CONFLICT;
	ctr_exited(ctl, p, c, exit_code, reason, finished_at_ms ? finished_at_ms : now(ctl));
	finish(ctl);
	return 0;
}

/* ---- restore after a restart ---- */

static void term_restore(struct term *t, const json_t *o)
{
	if (!json_is_object(o))
		return;
	t->set = 1;
	t->exit_code = (int)json_integer_value(json_object_get(o, "exitCode"));
	t->reason = dup_or_null(jstr(o, "reason", NULL));
	t->id = dup_or_null(jstr(o, "containerID", NULL));
	t->started = parse_time(jstr(o, "startedAt", NULL));
	t->finished = parse_time(jstr(o, "finishedAt", NULL));
}

/* Fills one container's machine from its stored status; 1 if it ever ran. */
static int ctr_restore(struct ctr *c, const json_t *cs)
{
	const json_t *state = json_object_get(cs, "state");
	c->restarts = (int)json_integer_value(json_object_get(cs, "restartCount"));
	c->id = dup_or_null(jstr(cs, "containerID", NULL));
	const char *iid = jstr(cs, "imageID", NULL);
	c->image_id = iid && *iid ? xstrdup(iid) : NULL;
	term_restore(&c->last, json_object_get(json_object_get(cs, "lastState"), "terminated"));
	if (json_object_get(state, "running")) {
		c->st = C_RUNNING;
		c->started = parse_time(jstr(state, "running", "startedAt"));
	} else if (json_object_get(state, "terminated")) {
		c->st = C_TERMINATED;
		term_restore(&c->term, json_object_get(state, "terminated"));
	}
	int ran = c->st != C_WAITING || c->last.set;
	c->pulled = ran || c->image_id;
	return ran;
}

static int restore_ctrs(struct pod *p, const json_t *status)
{
	static const char *const keys[] = {"initContainerStatuses", "containerStatuses"};
	int ran = 0;
	for (int k = 0; k < 2; k++) {
		size_t i;
		const json_t *cs;
		json_array_foreach(json_object_get(status, keys[k]), i, cs) {
			struct ctr *c = find_ctr(p, jstr(cs, "name", NULL));
			if (c && c->init == (k == 0))
				ran |= ctr_restore(c, cs);
		}
	}
	return ran;
}

static void restore_conds(struct pod *p, const json_t *status)
{
	size_t i;
	const json_t *o;
	json_array_foreach(json_object_get(status, "conditions"), i, o) {
		const char *type = jstr(o, "type", NULL), *st = jstr(o, "status", NULL);
		for (int k = 0; k < NCOND; k++)
			if (type && st && strcmp(type, cond_types[k]) == 0) {
				p->cond[k].status = strcmp(st, "True") == 0;
				p->cond[k].t = parse_time(jstr(o, "lastTransitionTime", NULL));
				if (k == K_SCHEDULED && !p->cond[k].status)
					set_str(&p->sched_msg, jstr(o, "message", NULL));
			}
	}
}

static void restore_terminal(podctl *ctl, struct pod *p, const char *phase, const json_t *status)
{
	p->final_phase = strcmp(phase, "Succeeded") == 0 ? "Succeeded" : "Failed";
	p->reason = dup_or_null(jstr(status, "reason", NULL));
	p->message = dup_or_null(jstr(status, "message", NULL));
	p->tearing = 1;
	p->frozen = 1;
	if (ctl->has_rt && ctl->rt.sandbox_exists(ctl->rt.ud, p->uid))
		destroy(ctl, p); /* a leftover VM: nothing runs in a terminal pod */
}

/* Scheduled, not terminal: adopt the VM, re-create it if nothing ran, or
 * declare the pod lost. */
static int restore_bound(podctl *ctl, struct pod *p, const char *phase, int ran, struct err *e)
{
	struct sched_pod sp;
	int exists = ctl->has_rt && ctl->rt.sandbox_exists(ctl->rt.ud, p->uid);
	sched_view(p, &sp);
	if (!exists && (ran || strcmp(phase, "Pending") != 0)) {
		lost(ctl, p, "it no longer existed when cocod restarted");
		return 0;
	}
	if (sched_mark_bound(ctl->s, &sp, e) < 0)
		return e ? e->code : ERR_INTERNAL;
	if (!exists) {
		create_sandbox(ctl, p);
		return 0;
	}
	p->sb = SB_READY;
	for (size_t i = 0; i < p->nc; i++)
		if (p->c[i].st == C_WAITING && p->c[i].last.set) {
			p->c[i].act = A_RESTART;
			p->c[i].due = now(ctl);
		}
	advance(ctl, p);
	check_terminal(ctl, p);
	return 0;
}

static int restore_pod(podctl *ctl, struct pod *p, const json_t *pod, struct err *e)
{
	const json_t *status = json_object_get(pod, "status");
	const char *phase = jstr(status, "phase", NULL);
	const char *node = jstr(pod, "spec", "nodeName");
	phase = phase ? phase : "Pending";
	p->status = json_is_object(status) ? json_dumps(status, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	restore_conds(p, status);
	p->start_time = parse_time(jstr(status, "startTime", NULL));
	p->scheduled = (node && *node) || p->cond[K_SCHEDULED].status == 1;
	int ran = p->scheduled ? restore_ctrs(p, status) : 0;
	if (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0) {
		restore_terminal(ctl, p, phase, status);
		return 0;
	}
	if (p->scheduled)
		return restore_bound(ctl, p, phase, ran, e);
	return enqueue(ctl, p, e);
}

int podctl_restore(podctl *ctl, const json_t *pod, const struct podctl_req *req, struct err *e)
{
	struct pod *p;
	int rc = pod_parse(pod, req, &p, e);
	if (rc < 0)
		return rc;
	if (find_pod(ctl, p->uid)) {
		rc = err_set(e, ERR_EXISTS, "pod %s (%s) is already known", p->key, p->uid);
		pod_free(p);
		return rc;
	}
	push(ctl, p);
	touch(ctl, p);
	rc = restore_pod(ctl, p, pod, e);
	if (rc < 0) {
		sched_remove(ctl->s, p->uid);
		p->dead = 1;
		ctl->any_dead = 1;
	}
	ctl->resched = 0; /* podctl_schedule() runs it once everything is back */
	finish(ctl);
	return rc;
}

/* ---- lookups ---- */

const json_t *podctl_status(podctl *ctl, const char *uid)
{
	const struct pod *p = find_pod(ctl, uid);
	json_decref(ctl->status_view);
	ctl->status_view = p && p->status ? json_loads(p->status, 0, NULL) : NULL;
	return ctl->status_view;
}

size_t podctl_count(const podctl *ctl)
{
	size_t n = 0;
	for (size_t i = 0; i < ctl->n; i++)
		n += !ctl->v[i]->dead;
	return n;
}

const sched *podctl_sched(const podctl *ctl) { return ctl->s; }
