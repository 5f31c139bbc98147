/* daemon: start-up in dependency order (data dir and its lock, store,
 * admin token, TLS, HTTP listener, kubeconfig), the loop, and a graceful
 * shutdown on the first SIGTERM/SIGINT (a second one exits at once). */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "auth.h"
#include "http.h"
#include "images.h"
#include "imagesapi.h"
#include "kapi.h"
#include "kbs.h"
#include "kit.h"
#include "launcher.h"
#include "log.h"
#include "metrics.h"
#include "objects.h"
#include "podsvc.h"
#include "policy.h"
#include "policyapi.h"
#include "runtime.h"
#include "sched.h"
#include "store.h"
#include "tls.h"
#include "util.h"

struct daemon {
	const struct config *cfg;
	uv_loop_t *loop;
	uv_signal_t sigterm, sigint;
	store *store;
	auth *auth;
	objects *objects;
	podsvc *pods;
	kapi *kapi;
	policy *policy;
	images *images;
	struct kbs *kbs;
	launcher *launcher;
	runtime *runtime;
	struct kit kit;
	int have_kit, launcher_done, launcher_failed;
	metrics *metrics;
	api *api;
	http_server *http;
	SSL_CTX *tls;
	struct tls_paths tls_paths;
	int lock_fd;
	int stopping;
	char url[128];
};

int daemon_open_store(const char *data_dir, store **out, struct err *e)
{
	if (mkdir_p(data_dir, 0700, e))
		return e->code;
	cleanup_free char *path = xasprintf("%s/cocod.db", data_dir);
	return store_open(path, out, e);
}

/* One daemon per data directory: an exclusive flock on <dir>/cocod.lock,
 * held until exit, with the owner's pid inside for the error message. */
static int lock_data_dir(struct daemon *d, struct err *e)
{
	cleanup_free char *path = xasprintf("%s/cocod.lock", d->cfg->data_dir);
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0)
		return err_set(e, ERR_IO, "open %s: %s", path, strerror(errno));
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		char pid[32] = "";
		ssize_t n = pread(d->lock_fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		return err_set(e, ERR_CONFLICT, "another cocod (pid %s) is using data directory %s",
			       pid[0] ? pid : "?", d->cfg->data_dir);
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
		log_warn("daemon", "cannot record pid in %s: %s", path, strerror(errno));
	return 0;
}

static int setup_tls(struct daemon *d, struct err *e)
{
	const struct config *c = d->cfg;
	if (c->plain_http)
		return 0;
	if (c->tls_cert[0]) {
		d->tls_paths.cert = xstrdup(c->tls_cert);
		d->tls_paths.key = xstrdup(c->tls_key);
	} else {
		int issued;
		if (tls_ensure_pki(c->data_dir, c->tls_extra_names, &d->tls_paths, &issued, e))
			return err_wrap(e, "TLS");
	}
	if (tls_server_ctx(d->tls_paths.cert, d->tls_paths.key, &d->tls, e))
		return err_wrap(e, "TLS");
	return 0;
}

static void on_render(metrics *m, void *arg)
{
	struct daemon *d = arg;
	metrics_gauge_set(m, "cocod_http_connections", "Open HTTP connections.", NULL,
			  d->http ? http_server_connections(d->http) : 0);
	if (d->runtime) {
		unsigned ready, booting;
		runtime_pool_counts(d->runtime, &ready, &booting);
		metrics_gauge_set(m, "cocod_vm_pool_ready", "Warm pool VMs ready for a pod.", NULL,
				  ready);
		metrics_gauge_set(m, "cocod_vm_pool_booting", "Warm pool VMs booting.", NULL, booting);
	}
}

static int start_http(struct daemon *d, struct err *e)
{
	const struct config *c = d->cfg;
	char host[64];
	int port;
	if (config_parse_listen(c->listen, host, sizeof host, &port, e))
		return e->code;
	struct http_server_opts o = {
		.host = host,
		.port = port,
		.max_header_bytes = c->max_header_bytes,
		.max_body_bytes = c->max_body_bytes,
		.request_timeout_ms = c->request_timeout_ms,
		.idle_timeout_ms = c->idle_timeout_ms,
		.max_connections = (unsigned)c->max_connections,
		.tls_ctx = d->tls,
		.handler = api_handle,
		.done = api_done,
		.ud = d->api,
	};
	if (http_server_start(d->loop, &o, &d->http, e))
		return err_wrap(e, "listen on %s", c->listen);
	/* Clients reach a wildcard listener through loopback. */
	const char *chost = strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : strcmp(host, "::") == 0 ? "::1" : host;
	int v6 = strchr(chost, ':') != NULL;
	snprintf(d->url, sizeof d->url, "%s://%s%s%s:%d", c->plain_http ? "http" : "https",
		 v6 ? "[" : "", chost, v6 ? "]" : "", http_server_port(d->http));
	return 0;
}

static void on_launcher_closed(void *arg)
{
	struct daemon *d = arg;
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void on_runtime_closed(void *arg)
{
	struct daemon *d = arg;
	if (d->launcher)
		launcher_close(d->launcher, on_launcher_closed, d);
	else
		on_launcher_closed(d);
}

/* Shutdown after HTTP: the pod timers, the runtime (VMs keep running for
 * the next daemon to adopt), the launcher, then the signal handles. */
static void on_pods_closed(void *arg)
{
	struct daemon *d = arg;
	if (d->runtime)
		runtime_close(d->runtime, on_runtime_closed, d);
	else
		on_runtime_closed(d);
}

static void on_closed(void *arg)
{
	struct daemon *d = arg;
	podsvc_close(d->pods, on_pods_closed, d);
}

/* Node capacity: configured, or detected minus the reservations. */
static int node_capacity(const struct config *c, struct sched_node *node, struct err *e)
{
	if (sched_detect_node(c->reserved_cpu_milli, c->reserved_memory_bytes, (uint32_t)c->max_pods,
			      node, e))
		return e->code;
	if (c->node_cpu_milli)
		node->cpu_milli = c->node_cpu_milli > c->reserved_cpu_milli ? c->node_cpu_milli - c->reserved_cpu_milli : 0;
	if (c->node_memory_bytes)
		node->mem_bytes = c->node_memory_bytes > c->reserved_memory_bytes
					  ? c->node_memory_bytes - c->reserved_memory_bytes : 0;
	return 0;
}

/* Admission through the Lua policy: a denial carries the policy's reason
 * and version; a returned `pod` table is the pod to store instead. */
static int admit_with_policy(void *ud, const json_t *pod, const char *operation, json_t **mutated,
			     struct err *e)
{
	struct daemon *d = ud;
	const json_t *meta = json_object_get(pod, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	char subject[320];
	snprintf(subject, sizeof subject, "%s/%s", ns ? ns : "", name ? name : "");
	json_t *request = json_pack("{s:s, s:s, s:s, s:s}", "operation", operation, "namespace",
				    ns ? ns : "", "name", name ? name : "", "user", "admin");
	/* The sandbox only reads its arguments (it converts them to Lua). */
	json_t *args[2] = {(json_t *)(uintptr_t)pod, request};
	struct policy_verdict v;
	policy_eval(d->policy, POLICY_ADMISSION, subject, args, 2, &v);
	json_decref(request);
	int rc = 0;
	if (!v.allow)
		rc = err_set(e, ERR_FORBIDDEN, "admission denied by policy admission version %d: %s",
			     v.version, v.reason);
	else if (json_is_object(json_object_get(v.result, "pod")))
		*mutated = json_incref(json_object_get(v.result, "pod"));
	policy_verdict_fini(&v);
	return rc;
}

static void on_launcher_started(void *arg, const struct err *e)
{
	struct daemon *d = arg;
	d->launcher_done = 1;
	if (e) {
		d->launcher_failed = 1;
		log_error("daemon", "pod VMs unavailable: %s", e->msg);
	}
}

/* The guest kit, libvirt and the runtime that runs pods in VMs.  Without a
 * kit or a working libvirt the daemon still serves: pods then wait,
 * saying that no runtime is available. */
static int start_vms(struct daemon *d, struct err *e)
{
	const struct config *c = d->cfg;
	if (strcmp(c->pod_runtime, "none") == 0) {
		log_info("daemon", "pod_runtime=none: pods are placed but do not run");
		return 0;
	}
	cleanup_free char *kitdir = c->kit_dir[0] ? xstrdup(c->kit_dir) : kit_default_dir();
	struct err ke = {0};
	d->have_kit = kit_load(kitdir, &d->kit, &ke) == 0;
	if (!d->have_kit) {
		log_warn("daemon", "no guest kit in %s: %s (run `make kit`); pods cannot start", kitdir,
			 ke.msg);
		return 0;
	}
	struct launcher_opts lo = {.uri = c->libvirt_uri, .data_dir = c->data_dir, .accel = c->accel,
				   .kernel = d->kit.kernel_path};
	if (launcher_new(d->loop, &lo, &d->launcher, e))
		return err_wrap(e, "launcher");
	launcher_start(d->launcher, on_launcher_started, d);
	while (!d->launcher_done) /* before HTTP: nothing else is served yet */
		uv_run(d->loop, UV_RUN_ONCE);
	if (d->launcher_failed)
		return 0;
	struct runtime_opts ro = {
		.data_dir = c->data_dir,
		.kernel = d->kit.kernel_path,
		.initrd = d->kit.initramfs_path,
		.cmdline = d->kit.cmdline,
		.default_memory = c->pod_default_memory_bytes,
		.overhead_memory = c->vm_overhead_memory_bytes,
		.network = strcmp(c->pod_network, "user") == 0,
		.pool_size = (unsigned)c->vm_pool,
		.metrics = d->metrics,
	};
	return runtime_new(d->loop, d->launcher, d->images, &ro, &d->runtime, e);
}

/* The KBS, with the guest kit's launch measurement as a reference value. */
static int start_kbs(struct daemon *d, struct err *e)
{
	const struct config *c = d->cfg;
	struct kbs_opts ko = {
		.sim = c->kbs_sim,
		.dev_mode = c->kbs_dev_mode,
		.token_ttl_s = (int)(c->kbs_token_ttl_ms / 1000),
		.session_ttl_s = (int)(c->kbs_session_ttl_ms / 1000),
		.master_key = c->kbs_master_key[0] ? c->kbs_master_key : NULL,
		.loop = d->loop,
	};
	if (kbs_new(d->store, d->policy, d->metrics, c->data_dir, &ko, &d->kbs, e) ||
	    kbs_register(d->api, d->kbs, e))
		return err_wrap(e, "KBS");
	if (d->have_kit) {
		char hex[2 * KIT_HASH_LEN + 1];
		hex_encode(d->kit.measurement, KIT_HASH_LEN, hex);
		if (kbs_register_measurement(d->kbs, hex, e))
			return err_wrap(e, "KBS reference value");
	}
	return 0;
}

static int start_pods(struct daemon *d, struct err *e)
{
	const struct config *c = d->cfg;
	char host[256] = "cocod";
	struct podsvc_opts o = {
		.default_runtime_class = c->default_runtime_class,
		.events_kept = (int64_t)c->events_kept,
		.events_max_age_s = (int64_t)(c->event_ttl_ms / 1000),
		.runtime = d->runtime ? runtime_ops(d->runtime) : NULL,
	};
	if (c->node_name[0])
		snprintf(host, sizeof host, "%s", c->node_name);
	else if (gethostname(host, sizeof host) != 0 || !host[0])
		snprintf(host, sizeof host, "cocod");
	for (char *p = host; *p; p++) /* node names are DNS subdomains */
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
	o.node_name = host;
	if (node_capacity(c, &o.node, e) || objects_new(d->store, &d->objects, e) ||
	    podsvc_new(d->loop, d->objects, &o, &d->pods, e))
		return err_wrap(e, "pods");
	if (d->runtime) { /* completions raised during restore are queued */
		runtime_attach(d->runtime, podsvc_controller(d->pods));
		runtime_restored(d->runtime);
	}
	log_info("daemon", "node name=%s cpu_milli=%llu memory_bytes=%llu max_pods=%u", host,
		 (unsigned long long)o.node.cpu_milli, (unsigned long long)o.node.mem_bytes,
		 o.node.max_pods);
	d->kapi = kapi_new(d->loop, d->objects, d->pods);
	struct sandbox_limits lim;
	sandbox_default_limits(&lim);
	lim.mem_bytes = c->policy_memory_bytes;
	lim.instructions = c->policy_instructions;
	lim.time_ms = c->policy_timeout_ms;
	if (policy_new(d->store, d->metrics, &lim, &d->policy, e))
		return err_wrap(e, "policies");
	podsvc_set_admission(d->pods, admit_with_policy, d);
	kapi_set_runtime(d->kapi, d->runtime);
	if (start_kbs(d, e))
		return e->code;
	return kapi_register(d->kapi, d->api, e) || policyapi_register(d->api, d->policy, e) ? e->code : 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	if (d->stopping) {
		log_warn("daemon", "second %s: exiting now", strsignal(signum));
		_exit(1);
	}
	d->stopping = 1;
	log_info("daemon", "%s: shutting down grace_ms=%llu", strsignal(signum),
		 (unsigned long long)d->cfg->shutdown_grace_ms);
	api_set_ready(d->api, false);
	kapi_close_watches(d->kapi);
	http_server_shutdown(d->http, d->cfg->shutdown_grace_ms, on_closed, d);
}

static void print_banner(const struct daemon *d)
{
	const char *dir = d->cfg->data_dir;
	printf("cocod %s serving %s\n", COCOD_VERSION, d->url);
	printf("  admin token: %s/admin.token\n", dir);
	printf("  kubeconfig:  %s/kubeconfig\n", dir);
	if (d->tls_paths.ca_cert)
		printf("  CA:          %s\n", d->tls_paths.ca_cert);
	printf("try: kubectl --kubeconfig %s/kubeconfig version\n", dir);
	if (d->tls_paths.ca_cert)
		printf(" or: curl --cacert %s -H \"Authorization: Bearer $(cat %s/admin.token)\" %s/version\n",
		       d->tls_paths.ca_cert, dir, d->url);
	fflush(stdout);
}

/* The local image store (the default busybox image on first start) and
 * its REST. */
static int start_images(struct daemon *d, struct err *e)
{
	if (images_open(d->store, d->cfg->data_dir, &d->images, e))
		return err_wrap(e, "images");
	return imagesapi_register(d->api, d->images, e);
}

static int start(struct daemon *d, struct err *e)
{
	const struct config *c = d->cfg;
	int created;
	if (mkdir_p(c->data_dir, 0700, e) || lock_data_dir(d, e))
		return e->code;
	if (daemon_open_store(c->data_dir, &d->store, e))
		return err_wrap(e, "store");
	if (auth_init(d->store, c->data_dir, &created, e) || setup_tls(d, e))
		return e->code;
	d->metrics = metrics_new(COCOD_VERSION, COCOD_COMMIT);
	metrics_on_render(d->metrics, on_render, d);
	d->auth = auth_new(d->store, c->data_dir);
	d->api = api_new(d->store, d->auth, d->metrics);
	if (api_register_core(d->api, c->metrics_public, e) || start_images(d, e) ||
	    start_vms(d, e) || start_pods(d, e) || start_http(d, e))
		return e->code;
	if (auth_write_kubeconfig(d->store, c->data_dir, d->url, d->tls_paths.ca_cert, e))
		return err_wrap(e, "kubeconfig");
	uv_signal_init(d->loop, &d->sigterm);
	uv_signal_init(d->loop, &d->sigint);
	d->sigterm.data = d->sigint.data = d;
	uv_signal_start(&d->sigterm, on_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_signal, SIGINT);
	api_set_ready(d->api, true);
	log_info("daemon", "listening url=%s data_dir=%s tls=%s", d->url, c->data_dir,
		 c->plain_http ? "off" : "on");
	print_banner(d);
	return 0;
}

static void stop(struct daemon *d)
{
	http_server_free(d->http);
	kapi_free(d->kapi);
	podsvc_free(d->pods);
	kbs_free(d->kbs);
	policy_free(d->policy);
	runtime_free(d->runtime);
	launcher_free(d->launcher);
	if (d->have_kit)
		kit_fini(&d->kit);
	images_close(d->images);
	objects_free(d->objects);
	api_free(d->api);
	auth_free(d->auth);
	metrics_free(d->metrics);
	store_close(d->store);
	SSL_CTX_free(d->tls);
	tls_paths_fini(&d->tls_paths);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
}

int daemon_run(const struct config *cfg)
{
	struct daemon d = {.cfg = cfg, .lock_fd = -1};
	struct err e = {0};
	uv_loop_t loop;
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	d.loop = &loop;
	int rc = start(&d, &e);
	if (rc) {
		log_error("daemon", "cannot start: %s", e.msg);
		if (d.http)
			http_server_shutdown(d.http, 0, NULL, NULL);
		if (d.pods)
			podsvc_close(d.pods, NULL, NULL);
		if (d.runtime)
			runtime_close(d.runtime, NULL, NULL);
		if (d.launcher)
			launcher_close(d.launcher, NULL, NULL);
		uv_run(&loop, UV_RUN_DEFAULT);
	} else {
		uv_run(&loop, UV_RUN_DEFAULT);
		log_info("daemon", "stopped");
	}
	stop(&d);
	uv_loop_close(&loop);
	return rc ? 1 : 0;
}
