/* cli: see cli.h.  Human output follows kubectl: `get` prints the same
 * Table the daemon serves to kubectl (kapi_table computes the columns for
 * both, so the two tools agree), `-o json|yaml` the objects, `describe` a
 * kubectl-like summary with events. */
#include "cli.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "client.h"
#include "codec.h"
#include "config.h"
#include "initdata.h"
#include "kapi.h"
#include "policy.h"
#include "util.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

char *cli_default_data_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		for (int up = 0; up < 3; up++) {
			char *slash = strrchr(exe, '/');
			if (!slash || slash == exe)
				break;
			*slash = '\0';
			cleanup_free char *probe = xasprintf("%s/build.sh", exe);
			if (access(probe, F_OK) == 0)
				return xasprintf("%s/var", exe);
		}
	}
	return xstrdup("/var/lib/cocod");
}

char *cli_data_dir(const char *cmd, const char *data_dir, const char *config)
{
	if (data_dir)
		return xstrdup(data_dir);
	if (!config)
		return cli_default_data_dir();
	struct config c;
	struct err e = {0};
	char *dir = NULL;
	config_init(&c);
	if (config_load_file(&c, config, &e) == 0)
		dir = c.data_dir && c.data_dir[0] ? xstrdup(c.data_dir) : cli_default_data_dir();
	else
		fprintf(stderr, "cocod %s: %s\n", cmd, e.msg);
	config_fini(&c);
	return dir;
}

/* Options every client command shares. */
struct common {
	const char *data_dir, *kubeconfig, *server, *token, *ns, *output, *file, *container;
	int all_ns, follow, force, grace_set;
	long grace;
};

enum { O_DATA = 300, O_KUBECONFIG, O_SERVER, O_TOKEN, O_GRACE, O_FORCE, O_ALL };

static const char common_usage[] =
	"  -n, --namespace NS    namespace (default \"default\")\n"
	"      --data-dir DIR    where kubeconfig lives (default as for `cocod serve`)\n"
	"      --kubeconfig FILE server, CA and token (default <data-dir>/kubeconfig)\n"
	"      --server URL      override the server URL\n"
	"      --token TOKEN     override the admin token\n";

static int parse(const char *cmd, const char *usage, int argc, char **argv, struct common *c,
		 int *first_arg)
{
	static const struct option opts[] = {
		{"namespace", required_argument, NULL, 'n'},
		{"output", required_argument, NULL, 'o'},
		{"filename", required_argument, NULL, 'f'},
		{"container", required_argument, NULL, 'c'},
		{"follow", no_argument, NULL, 'F'},
		{"all-namespaces", no_argument, NULL, 'A'},
		{"data-dir", required_argument, NULL, O_DATA},
		{"kubeconfig", required_argument, NULL, O_KUBECONFIG},
		{"server", required_argument, NULL, O_SERVER},
		{"token", required_argument, NULL, O_TOKEN},
		{"grace-period", required_argument, NULL, O_GRACE},
		{"force", no_argument, NULL, O_FORCE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	char *end;
	memset(c, 0, sizeof *c);
	c->ns = "default";
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "n:o:f:c:Ah", opts, NULL)) != -1) {
		switch (opt) {
		case 'n': c->ns = optarg; break;
		case 'o': c->output = optarg; break;
		case 'f': c->file = optarg; break;
		case 'c': c->container = optarg; break;
		case 'F': c->follow = 1; break;
		case 'A': c->all_ns = 1; break;
		case O_DATA: c->data_dir = optarg; break;
		case O_KUBECONFIG: c->kubeconfig = optarg; break;
		case O_SERVER: c->server = optarg; break;
		case O_TOKEN: c->token = optarg; break;
		case O_FORCE: c->force = 1; break;
		case O_GRACE:
			c->grace = strtol(optarg, &end, 10);
			if (*end || c->grace < 0) {
				fprintf(stderr, "cocod %s: --grace-period takes a non-negative integer\n", cmd);
				return EXIT_USAGE;
			}
			c->grace_set = 1;
			break;
		case 'h': printf("%s%s", usage, common_usage); return -1;
		default:
			fprintf(stderr, "cocod %s: unknown or incomplete option %s\n%s%s", cmd,
				argv[optind - 1], usage, common_usage);
			return EXIT_USAGE;
		}
	}
	*first_arg = optind;
	return 0;
}

/* The kubeconfig's server, CA and token, then the overrides. */
int cli_connect(const char *data_dir, const char *kubeconfig, const char *server,
		const char *token, client **out)
{
	struct err e = {0};
	cleanup_free char *dir = data_dir ? xstrdup(data_dir) : cli_default_data_dir();
	cleanup_free char *path = kubeconfig ? xstrdup(kubeconfig) : xasprintf("%s/kubeconfig", dir);
	char *text = NULL;
	size_t len = 0;
	json_t *kc = NULL;
	/* The kubeconfig also brings the CA, so it is read even when --server
	 * and --token are both given; only then may it be missing. */
	if (file_read(path, 1 << 20, &text, &len, &e) || codec_decode(text, len, "application/yaml", &kc, &e)) {
		if (!(server && token)) {
			fprintf(stderr, "cocod: %s (is this the right --data-dir? `cocod serve` writes it)\n", e.msg);
			free(text);
			return EXIT_FAIL;
		}
	}
	const json_t *cluster = json_object_get(json_array_get(json_object_get(kc, "clusters"), 0), "cluster");
	const json_t *user = json_object_get(json_array_get(json_object_get(kc, "users"), 0), "user");
	const char *ca64 = json_string_value(json_object_get(cluster, "certificate-authority-data"));
	char *ca = NULL;
	if (ca64) {
		size_t n = strlen(ca64);
		ca = xcalloc(1, n + 1);
		if (EVP_DecodeBlock((unsigned char *)ca, (const unsigned char *)ca64, (int)n) < 0)
			ca[0] = '\0';
	}
	struct client_opts o = {
		.server = server ? server : json_string_value(json_object_get(cluster, "server")),
		.token = token ? token : json_string_value(json_object_get(user, "token")),
		.ca_pem = ca && ca[0] ? ca : NULL,
	};
	int rc = 0;
	if (!o.server) {
		fprintf(stderr, "cocod: %s names no server; use --server\n", path);
		rc = EXIT_FAIL;
	} else if (client_new(&o, out, &e)) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		rc = EXIT_FAIL;
	}
	free(ca);
	json_decref(kc);
	if (text) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	return rc;
}

static int connect_daemon(const struct common *c, client **out)
{
	return cli_connect(c->data_dir, c->kubeconfig, c->server, c->token, out);
}

/* Prints the server's Status message (or the raw body) for a failed call. */
static int server_error(const struct client_response *r)
{
	json_t *st = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
	const char *msg = json_string_value(json_object_get(st, "message"));
	const char *reason = json_string_value(json_object_get(st, "reason"));
	if (msg)
		fprintf(stderr, "Error from server (%s): %s\n", reason ? reason : "Unknown", msg);
	else
		fprintf(stderr, "Error from server: HTTP %d %.*s\n", r->status, (int)r->body.len,
			r->body.data ? r->body.data : "");
	json_t *causes = json_object_get(json_object_get(st, "details"), "causes");
	size_t i;
	json_t *cause;
	if (json_array_size(causes) > 1)
		json_array_foreach(causes, i, cause)
			fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(cause, "field")),
				json_string_value(json_object_get(cause, "message")));
	json_decref(st);
	return EXIT_FAIL;
}

/* One request; on success *out is the decoded JSON body (may be NULL). */
static int call(client *cl, const char *method, const char *path, const char *ctype,
		const json_t *body, json_t **out)
{
	struct client_response r;
	struct err e = {0};
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int rc = client_request(cl, method, path, ctype, text, text ? strlen(text) : 0, &r, &e);
	free(text);
	if (rc) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		return EXIT_FAIL;
	}
	if (r.status >= 300) {
		rc = server_error(&r);
		client_response_fini(&r);
		return rc;
	}
	if (out)
		*out = r.body.len ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
	client_response_fini(&r);
	return 0;
}

static void print_value(const json_t *v, const char *output)
{
	if (strcmp(output, "yaml") == 0) {
		struct buf b;
		buf_init(&b);
		codec_encode_yaml(v, &b);
		fwrite(b.data, 1, b.len, stdout);
		buf_fini(&b);
	} else {
		char *text = codec_encode_json(v, 1, NULL);
		puts(text ? text : "null");
		free(text);
	}
}

/* --- apply --- */

static int apply_one(client *cl, json_t *doc, const char *default_ns)
{
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	json_t *meta = json_object_get(doc, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	ns = ns ? ns : default_ns;
	if (!kind || strcmp(kind, "Pod") != 0) {
		fprintf(stderr, "cocod apply: kind %s is not supported (cocod manages Pods)\n", kind ? kind : "(none)");
		return EXIT_FAIL;
	}
	if (!name) {
		fprintf(stderr, "cocod apply: a Pod needs metadata.name\n");
		return EXIT_FAIL;
	}
	cleanup_free char *coll = xasprintf("/api/v1/namespaces/%s/pods", ns);
	cleanup_free char *one = xasprintf("%s/%s", coll, name);
	struct client_response r;
	struct err e = {0};
	if (client_request(cl, "GET", one, NULL, NULL, 0, &r, &e)) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		return EXIT_FAIL;
	}
	int status = r.status;
	json_t *cur = status == 200 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
	client_response_fini(&r);
	if (status == 404) {
		int rc = call(cl, "POST", coll, "application/json", doc, NULL);
		if (rc == 0)
			printf("pod/%s created\n", name);
		return rc;
	}
	if (status != 200) {
		json_decref(cur);
		fprintf(stderr, "cocod apply: reading pod/%s: HTTP %d\n", name, status);
		return EXIT_FAIL;
	}
	/* Only labels and annotations of a pod may change; the init-data
	 * digest is cocod's annotation, not the file's. */
	json_t *patch = json_pack("{s:{s:O?, s:O?}}", "metadata", "labels", json_object_get(meta, "labels"),
				  "annotations", json_object_get(meta, "annotations"));
	json_t *cur_meta = json_object_get(cur, "metadata");
	json_t *cur_ann = json_deep_copy(json_object_get(cur_meta, "annotations"));
	json_object_del(cur_ann, INITDATA_DIGEST_ANNOTATION);
	int same = json_equal(json_object_get(cur_meta, "labels") ? json_object_get(cur_meta, "labels") : json_null(),
			      json_object_get(meta, "labels") ? json_object_get(meta, "labels") : json_null()) &&
		   json_equal(cur_ann ? cur_ann : json_null(),
			      json_object_get(meta, "annotations") ? json_object_get(meta, "annotations") : json_null());
	json_decref(cur_ann);
	int rc = 0;
	if (same)
		printf("pod/%s unchanged\n", name);
	else if ((rc = call(cl, "PATCH", one, "application/merge-patch+json", patch, NULL)) == 0)
		printf("pod/%s configured\n", name);
	json_decref(patch);
	json_decref(cur);
	return rc;
}

int cli_apply(int argc, char **argv)
{
	static const char usage[] = "usage: cocod apply -f FILE|- [options]\n"
				    "Creates the pods in FILE (YAML or JSON, several documents allowed),\n"
				    "or updates their labels and annotations when they exist.\n";
	struct common c;
	int first, rc = parse("apply", usage, argc, argv, &c, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (!c.file || first < argc) {
		fprintf(stderr, "cocod apply: -f FILE is required\n%s", usage);
		return EXIT_USAGE;
	}
	char *text = NULL;
	size_t len = 0;
	struct err e = {0};
	struct buf in;
	buf_init(&in);
	if (strcmp(c.file, "-") == 0) {
		char chunk[65536];
		size_t n;
		while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && in.len < (64u << 20))
			buf_add(&in, chunk, n);
		text = buf_steal(&in, &len);
	} else if (file_read(c.file, 64u << 20, &text, &len, &e)) {
		fprintf(stderr, "cocod apply: %s\n", e.msg);
		return EXIT_FAIL;
	}
	json_t *docs = NULL;
	rc = codec_decode_all(text, len, NULL, &docs, &e);
	free(text);
	if (rc) {
		fprintf(stderr, "cocod apply: %s: %s\n", c.file, e.msg);
		return EXIT_FAIL;
	}
	client *cl = NULL;
	rc = connect_daemon(&c, &cl);
	size_t i;
	json_t *doc;
	json_array_foreach(docs, i, doc) {
		if (rc)
			break;
		rc = apply_one(cl, doc, c.ns);
	}
	client_free(cl);
	json_decref(docs);
	return rc;
}

/* --- get --- */

/* Prints a Table: the priority-0 columns (all of them for -o wide). */
static void print_table(const json_t *t, int wide, int with_ns)
{
	const json_t *cols = json_object_get(t, "columnDefinitions"), *rows = json_object_get(t, "rows");
	size_t ncol = json_array_size(cols), nrow = json_array_size(rows);
	if (nrow == 0) {
		fprintf(stderr, "No resources found\n");
		return;
	}
	size_t width[32] = {0}, nsw = 9;
	int show[32];
	for (size_t j = 0; j < ncol && j < 32; j++) {
		show[j] = wide || json_integer_value(json_object_get(json_array_get(cols, j), "priority")) == 0;
		width[j] = strlen(json_string_value(json_object_get(json_array_get(cols, j), "name")));
	}
	for (size_t i = 0; i < nrow; i++) {
		const json_t *r = json_array_get(rows, i);
		for (size_t j = 0; j < ncol && j < 32; j++) {
			const char *s = json_string_value(json_array_get(json_object_get(r, "cells"), j));
			if (s && strlen(s) > width[j])
				width[j] = strlen(s);
		}
		const char *ns = json_string_value(json_object_get(json_object_get(json_object_get(r, "object"), "metadata"), "namespace"));
		if (ns && strlen(ns) > nsw)
			nsw = strlen(ns);
	}
	size_t last = 0;
	for (size_t j = 0; j < ncol && j < 32; j++)
		if (show[j])
			last = j;
	if (with_ns)
		printf("%-*s   ", (int)nsw, "NAMESPACE");
	for (size_t j = 0; j < ncol && j < 32; j++) {
		if (!show[j])
			continue;
		char upper[64];
		snprintf(upper, sizeof upper, "%s", json_string_value(json_object_get(json_array_get(cols, j), "name")));
		for (char *p = upper; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		printf("%-*s%s", j == last ? 0 : (int)width[j], upper, j == last ? "" : "   ");
	}
	printf("\n");
	for (size_t i = 0; i < nrow; i++) {
		const json_t *r = json_array_get(rows, i);
		if (with_ns)
			printf("%-*s   ", (int)nsw, json_string_value(json_object_get(json_object_get(json_object_get(r, "object"), "metadata"), "namespace")));
		for (size_t j = 0; j < ncol && j < 32; j++) {
			if (!show[j])
				continue;
			const char *s = json_string_value(json_array_get(json_object_get(r, "cells"), j));
			printf("%-*s%s", j == last ? 0 : (int)width[j], s ? s : "", j == last ? "" : "   ");
		}
		printf("\n");
	}
}

int cli_get(int argc, char **argv)
{
	static const char usage[] = "usage: cocod get pods|events [NAME] [-o json|yaml|wide] [-A] [options]\n";
	struct common c;
	int first, rc = parse("get", usage, argc, argv, &c, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first >= argc) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	const char *what = argv[first], *name = first + 1 < argc ? argv[first + 1] : NULL;
	const char *res = strcmp(what, "pods") == 0 || strcmp(what, "pod") == 0 || strcmp(what, "po") == 0 ? "pods"
			  : strcmp(what, "events") == 0 || strcmp(what, "event") == 0 || strcmp(what, "ev") == 0 ? "events"
			  : NULL;
	const char *out = c.output ? c.output : "";
	if (!res || (out[0] && strcmp(out, "json") && strcmp(out, "yaml") && strcmp(out, "wide"))) {
		fprintf(stderr, "cocod get: %s\n%s", !res ? "only pods and events can be listed" : "-o takes json, yaml or wide", usage);
		return EXIT_USAGE;
	}
	client *cl;
	if ((rc = connect_daemon(&c, &cl)))
		return rc;
	cleanup_free char *path = name ? xasprintf("/api/v1/namespaces/%s/%s/%s", c.ns, res, name)
				 : c.all_ns ? xasprintf("/api/v1/%s", res)
					    : xasprintf("/api/v1/namespaces/%s/%s", c.ns, res);
	json_t *body = NULL;
	int table = !out[0] || strcmp(out, "wide") == 0;
	if (table) {
		rc = call(cl, "GET", path, NULL, NULL, &body);
		if (rc == 0) {
			json_t *items = name ? json_pack("[O]", body) : json_incref(json_object_get(body, "items"));
			json_t *t = kapi_table(strcmp(res, "pods") == 0 ? "Pod" : "Event", items, 1, 0, "");
			print_table(t, strcmp(out, "wide") == 0, c.all_ns && !name);
			json_decref(t);
			json_decref(items);
		}
	} else if ((rc = call(cl, "GET", path, NULL, NULL, &body)) == 0) {
		print_value(body, out);
	}
	json_decref(body);
	client_free(cl);
	return rc;
}

/* --- describe --- */

static const char *jstr(const json_t *o, const char *path)
{
	char part[64];
	for (const char *p = path; o && *p;) {
		size_t n = strcspn(p, ".");
		snprintf(part, sizeof part, "%.*s", (int)n, p);
		o = json_object_get(o, part);
		p += n + (p[n] == '.');
	}
	return json_is_string(o) ? json_string_value(o) : NULL;
}

static void print_map(const char *title, const json_t *m)
{
	const char *k;
	json_t *v;
	int first = 1;
	printf("%-20s", title);
	json_object_foreach((json_t *)(uintptr_t)m, k, v) {
		printf("%s%s=%s\n", first ? "" : "                    ", k, json_string_value(v) ? json_string_value(v) : "");
		first = 0;
	}
	if (first)
		printf("<none>\n");
}

static void describe_container(const json_t *c, const json_t *st)
{
	printf("  %s:\n", jstr(c, "name"));
	printf("    Image:          %s\n", jstr(c, "image") ? jstr(c, "image") : "");
	const json_t *state = json_object_get(st, "state");
	if (json_object_get(state, "running")) {
		printf("    State:          Running\n      Started:      %s\n", jstr(state, "running.startedAt"));
	} else if (json_object_get(state, "terminated")) {
		printf("    State:          Terminated\n      Reason:       %s\n      Exit Code:    %lld\n",
		       jstr(state, "terminated.reason") ? jstr(state, "terminated.reason") : "",
		       (long long)json_integer_value(json_object_get(json_object_get(state, "terminated"), "exitCode")));
	} else if (json_object_get(state, "waiting")) {
		printf("    State:          Waiting\n      Reason:       %s\n",
		       jstr(state, "waiting.reason") ? jstr(state, "waiting.reason") : "");
		if (jstr(state, "waiting.message"))
			printf("      Message:      %s\n", jstr(state, "waiting.message"));
	}
	printf("    Ready:          %s\n", json_is_true(json_object_get(st, "ready")) ? "True" : "False");
	printf("    Restart Count:  %lld\n", (long long)json_integer_value(json_object_get(st, "restartCount")));
}

static void describe_pod(const json_t *pod, const json_t *events)
{
	const json_t *spec = json_object_get(pod, "spec"), *st = json_object_get(pod, "status");
	printf("Name:               %s\n", jstr(pod, "metadata.name"));
	printf("Namespace:          %s\n", jstr(pod, "metadata.namespace"));
	printf("Runtime Class Name: %s\n", jstr(spec, "runtimeClassName") ? jstr(spec, "runtimeClassName") : "<none>");
	printf("Node:               %s\n", jstr(spec, "nodeName") ? jstr(spec, "nodeName") : "<none>");
	printf("Start Time:         %s\n", jstr(st, "startTime") ? jstr(st, "startTime") : "<none>");
	print_map("Labels:", json_object_get(json_object_get(pod, "metadata"), "labels"));
	print_map("Annotations:", json_object_get(json_object_get(pod, "metadata"), "annotations"));
	printf("Status:             %s\n", jstr(pod, "metadata.deletionTimestamp") ? "Terminating" : jstr(st, "phase") ? jstr(st, "phase") : "Unknown");
	if (jstr(st, "reason"))
		printf("Reason:             %s\n", jstr(st, "reason"));
	if (jstr(st, "message"))
		printf("Message:            %s\n", jstr(st, "message"));
	const char *lists[][2] = {{"initContainers", "initContainerStatuses"}, {"containers", "containerStatuses"}};
	for (int l = 0; l < 2; l++) {
		const json_t *cs = json_object_get(spec, lists[l][0]);
		if (!json_array_size(cs))
			continue;
		printf("%s:\n", l ? "Containers" : "Init Containers");
		size_t i;
		json_t *c;
		json_array_foreach(cs, i, c)
			describe_container(c, json_array_get(json_object_get(st, lists[l][1]), i));
	}
	printf("Conditions:\n  Type              Status\n");
	size_t i;
	json_t *cond;
	json_array_foreach(json_object_get(st, "conditions"), i, cond)
		printf("  %-17s %s\n", jstr(cond, "type"), jstr(cond, "status"));
	printf("QoS Class:          %s\n", jstr(st, "qosClass") ? jstr(st, "qosClass") : "");
	printf("Events:\n");
	if (!json_array_size(events)) {
		printf("  <none>\n");
		return;
	}
	printf("  %-8s %-24s %-8s %s\n", "Type", "Reason", "Count", "Message");
	json_t *ev;
	json_array_foreach(events, i, ev)
		printf("  %-8s %-24s %-8lld %s\n", jstr(ev, "type"), jstr(ev, "reason"),
		       (long long)json_integer_value(json_object_get(ev, "count")), jstr(ev, "message"));
}

int cli_describe(int argc, char **argv)
{
	static const char usage[] = "usage: cocod describe pod NAME [options]\n";
	struct common c;
	int first, rc = parse("describe", usage, argc, argv, &c, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (argc - first != 2 || (strcmp(argv[first], "pod") && strcmp(argv[first], "pods") && strcmp(argv[first], "po"))) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	client *cl;
	if ((rc = connect_daemon(&c, &cl)))
		return rc;
	cleanup_free char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", c.ns, argv[first + 1]);
	json_t *pod = NULL, *events = NULL;
	rc = call(cl, "GET", path, NULL, NULL, &pod);
	if (rc == 0) {
		cleanup_free char *epath = xasprintf("/api/v1/namespaces/%s/events?fieldSelector=involvedObject.uid%%3D%s",
						     c.ns, jstr(pod, "metadata.uid") ? jstr(pod, "metadata.uid") : "");
		rc = call(cl, "GET", epath, NULL, NULL, &events);
		if (rc == 0)
			describe_pod(pod, json_object_get(events, "items"));
	}
	json_decref(pod);
	json_decref(events);
	client_free(cl);
	return rc;
}

/* --- delete --- */

int cli_delete(int argc, char **argv)
{
	static const char usage[] = "usage: cocod delete pod NAME [--grace-period N] [--force] [options]\n";
	struct common c;
	int first, rc = parse("delete", usage, argc, argv, &c, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (argc - first != 2 || (strcmp(argv[first], "pod") && strcmp(argv[first], "pods") && strcmp(argv[first], "po"))) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	client *cl;
	if ((rc = connect_daemon(&c, &cl)))
		return rc;
	long grace = c.force ? 0 : c.grace;
	cleanup_free char *path = c.force || c.grace_set
		? xasprintf("/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=%ld", c.ns, argv[first + 1], grace)
		: xasprintf("/api/v1/namespaces/%s/pods/%s", c.ns, argv[first + 1]);
	rc = call(cl, "DELETE", path, NULL, NULL, NULL);
	if (rc == 0)
		printf("pod \"%s\" deleted\n", argv[first + 1]);
	client_free(cl);
	return rc;
}

/* --- logs --- */

static int to_stdout(const char *data, size_t len, void *ud)
{
	fwrite(data, 1, len, stdout);
	fflush(stdout);
	return ferror(stdout) ? 1 : 0;
}

int cli_logs(int argc, char **argv)
{
	static const char usage[] = "usage: cocod logs NAME [-c CONTAINER] [-f] [options]\n";
	struct common c;
	int first, rc = parse("logs", usage, argc, argv, &c, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (argc - first != 1) {
		fprintf(stderr, "%s", usage);
		return EXIT_USAGE;
	}
	client *cl;
	if ((rc = connect_daemon(&c, &cl)))
		return rc;
	struct buf q;
	buf_init(&q);
	buf_printf(&q, "/api/v1/namespaces/%s/pods/%s/log?follow=%s", c.ns, argv[first], c.follow ? "true" : "false");
	if (c.container)
		buf_printf(&q, "&container=%s", c.container);
	struct client_response r;
	struct err e = {0};
	if (client_stream(cl, q.data, to_stdout, NULL, &r, &e)) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		rc = EXIT_FAIL;
	} else if (r.status >= 300) {
		rc = server_error(&r);
	}
	client_response_fini(&r);
	buf_fini(&q);
	client_free(cl);
	return rc;
}

/* --- policy --- */

static int print_test_report(const json_t *report)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(report, "cases"), i, c) {
		int ok = json_is_true(json_object_get(c, "ok"));
		printf("%s %s", ok ? "ok  " : "FAIL", json_string_value(json_object_get(c, "name")) ? json_string_value(json_object_get(c, "name")) : "?");
		if (!ok) {
			char *got = json_dumps(json_object_get(c, "got"), JSON_COMPACT | JSON_ENCODE_ANY);
			char *want = json_dumps(json_object_get(c, "expected"), JSON_COMPACT | JSON_ENCODE_ANY);
			printf(": got %s, expected %s", got ? got : "null", want ? want : "null");
			free(got);
			free(want);
		}
		printf("\n");
	}
	printf("%lld passed, %lld failed\n", (long long)json_integer_value(json_object_get(report, "passed")),
	       (long long)json_integer_value(json_object_get(report, "failed")));
	return json_integer_value(json_object_get(report, "failed")) == 0 ? 0 : EXIT_FAIL;
}

static int read_input(const char *file, char **text, size_t *len)
{
	struct err e = {0};
	if (strcmp(file, "-") == 0) {
		struct buf in;
		char chunk[65536];
		size_t n;
		buf_init(&in);
		while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && in.len < (16u << 20))
			buf_add(&in, chunk, n);
		*text = buf_steal(&in, len);
		return 0;
	}
	if (file_read(file, 16u << 20, text, len, &e)) {
		fprintf(stderr, "cocod policy: %s\n", e.msg);
		return EXIT_FAIL;
	}
	return 0;
}

int cli_policy(int argc, char **argv)
{
	static const char usage[] =
		"usage: cocod policy get HOOK [--version N] | set HOOK FILE | test HOOK FILE |\n"
		"                    versions HOOK | rollback HOOK VERSION | decisions [HOOK] [--limit N]\n"
		"HOOK: admission, attestation, resource or agent.  `test` runs the file's tests\n"
		"table locally, without a daemon; `set` validates the same way, then activates.\n";
	static const struct option opts[] = {
		{"version", required_argument, NULL, 'V'},
		{"limit", required_argument, NULL, 'l'},
		{"subject", required_argument, NULL, 's'},
		{"data-dir", required_argument, NULL, O_DATA},
		{"kubeconfig", required_argument, NULL, O_KUBECONFIG},
		{"server", required_argument, NULL, O_SERVER},
		{"token", required_argument, NULL, O_TOKEN},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct common c;
	const char *version = NULL, *limit = NULL, *subject = NULL;
	int opt;
	memset(&c, 0, sizeof c);
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'V': version = optarg; break;
		case 'l': limit = optarg; break;
		case 's': subject = optarg; break;
		case O_DATA: c.data_dir = optarg; break;
		case O_KUBECONFIG: c.kubeconfig = optarg; break;
		case O_SERVER: c.server = optarg; break;
		case O_TOKEN: c.token = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fprintf(stderr, "cocod policy: unknown option %s\n%s", argv[optind - 1], usage); return EXIT_USAGE;
		}
	}
	int n = argc - optind;
	char **a = argv + optind;
	if (n < 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *act = a[0];
	int need = strcmp(act, "set") == 0 || strcmp(act, "test") == 0 || strcmp(act, "rollback") == 0 ? 3
		   : strcmp(act, "decisions") == 0 ? 1 : 2;
	if (n < need || n > (strcmp(act, "decisions") == 0 ? 2 : need) ||
	    (need > 1 && policy_hook_parse(a[1]) < 0) ||
	    (strcmp(act, "decisions") == 0 && n == 2 && policy_hook_parse(a[1]) < 0)) {
		fprintf(stderr, "cocod policy: bad arguments\n%s", usage);
		return EXIT_USAGE;
	}
	if (strcmp(act, "test") == 0) {
		char *text;
		size_t len;
		json_t *report = NULL;
		struct err e = {0};
		struct sandbox_limits lim;
		if (read_input(a[2], &text, &len))
			return EXIT_FAIL;
		sandbox_default_limits(&lim);
		int rc = policy_test_source((enum policy_hook)policy_hook_parse(a[1]), text, len, &lim, &report, &e);
		free(text);
		if (report)
			rc = print_test_report(report) || rc;
		else if (rc)
			fprintf(stderr, "cocod policy test: %s\n", e.msg);
		json_decref(report);
		return rc ? EXIT_FAIL : 0;
	}
	client *cl;
	int rc = connect_daemon(&c, &cl);
	if (rc)
		return rc;
	const char *hook = need > 1 || n == 2 ? policy_hook_name((enum policy_hook)policy_hook_parse(a[1])) : NULL;
	json_t *out = NULL;
	if (strcmp(act, "get") == 0) {
		cleanup_free char *path = version ? xasprintf("/apis/cocod.io/v1/policies/%s/versions/%s", hook, version)
						  : xasprintf("/apis/cocod.io/v1/policies/%s", hook);
		if ((rc = call(cl, "GET", path, NULL, NULL, &out)) == 0)
			fputs(json_string_value(json_object_get(out, "source")) ? json_string_value(json_object_get(out, "source")) : "", stdout);
	} else if (strcmp(act, "set") == 0) {
		char *text;
		size_t len;
		if ((rc = read_input(a[2], &text, &len)) == 0) {
			json_t *body = json_pack("{s:s%}", "source", text, len);
			cleanup_free char *path = xasprintf("/apis/cocod.io/v1/policies/%s", hook);
			struct client_response r;
			struct err e = {0};
			char *t = json_dumps(body, JSON_COMPACT);
			rc = client_request(cl, "PUT", path, "application/json", t, strlen(t), &r, &e);
			free(t);
			json_decref(body);
			free(text);
			if (rc) {
				fprintf(stderr, "cocod: %s\n", e.msg);
				rc = EXIT_FAIL;
			} else {
				json_t *doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
				json_t *tests = r.status < 300 ? json_object_get(doc, "tests")
							       : json_object_get(json_object_get(doc, "details"), "tests");
				if (r.status >= 300) {
					if (tests)
						print_test_report(tests);
					rc = server_error(&r);
				} else {
					printf("%s policy version %lld is active\n", hook,
					       (long long)json_integer_value(json_object_get(doc, "version")));
				}
				json_decref(doc);
				client_response_fini(&r);
			}
		}
	} else if (strcmp(act, "versions") == 0) {
		cleanup_free char *path = xasprintf("/apis/cocod.io/v1/policies/%s/versions", hook);
		if ((rc = call(cl, "GET", path, NULL, NULL, &out)) == 0) {
			size_t i;
			json_t *v;
			printf("%-8s %-7s %-21s %-10s %s\n", "VERSION", "ACTIVE", "CREATED", "ORIGIN", "SHA256");
			json_array_foreach(json_object_get(out, "items"), i, v)
				printf("%-8lld %-7s %-21s %-10s %s\n", (long long)json_integer_value(json_object_get(v, "version")),
				       json_is_true(json_object_get(v, "active")) ? "*" : "",
				       json_string_value(json_object_get(v, "created")),
				       json_string_value(json_object_get(v, "origin")),
				       json_string_value(json_object_get(v, "sha256")));
		}
	} else if (strcmp(act, "rollback") == 0) {
		cleanup_free char *path = xasprintf("/apis/cocod.io/v1/policies/%s/rollback?version=%s", hook, a[2]);
		if ((rc = call(cl, "POST", path, NULL, NULL, &out)) == 0)
			printf("%s policy version %lld is active\n", hook,
			       (long long)json_integer_value(json_object_get(out, "activeVersion")));
	} else if (strcmp(act, "decisions") == 0) {
		struct buf q;
		buf_init(&q);
		buf_printf(&q, "/apis/cocod.io/v1/decisions?limit=%s", limit ? limit : "50");
		if (hook)
			buf_printf(&q, "&hook=%s", hook);
		if (subject)
			buf_printf(&q, "&subject=%s", subject);
		if ((rc = call(cl, "GET", q.data, NULL, NULL, &out)) == 0) {
			size_t i;
			json_t *d;
			printf("%-21s %-12s %-4s %-7s %-30s %s\n", "TIME", "HOOK", "VER", "VERDICT", "SUBJECT", "REASON");
			json_array_foreach(json_object_get(out, "items"), i, d)
				printf("%-21s %-12s %-4lld %-7s %-30s %s\n", json_string_value(json_object_get(d, "time")),
				       json_string_value(json_object_get(d, "hook")),
				       (long long)json_integer_value(json_object_get(d, "policyVersion")),
				       json_string_value(json_object_get(d, "verdict")),
				       json_string_value(json_object_get(d, "subject")),
				       json_string_value(json_object_get(d, "reason")));
		}
		buf_fini(&q);
	} else {
		fprintf(stderr, "cocod policy: unknown action %s\n%s", act, usage);
		rc = EXIT_USAGE;
	}
	json_decref(out);
	client_free(cl);
	return rc;
}
