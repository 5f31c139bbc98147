/* pod: Kubernetes pod semantics on the JSON document itself.
 *
 * Reading order: small typed accessors (a wrong JSON type becomes a field
 * error at its path), defaults (SetDefaults_Pod and friends, filling only
 * what is absent or null), validation (ValidatePodCreate's checks that
 * matter here, worded as Kubernetes words them, plus FieldValueForbidden for
 * host namespaces, privilege, host ports and non-emptyDir volumes, which would
 * mean something else inside a pod VM), then resources, QoS and updates.
 * Every loop is bounded by the POD_MAX_* limits and nothing recurses. */
#include "pod.h"

#include <inttypes.h>
#include <stdint.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "initdata.h"
#include "quantity.h"
#include "util.h"

#define NOT_IN_VM "is not supported by cocod: pods run in their own VM"

/* ---- typed access --------------------------------------------------------- */

enum jkind { J_STR, J_OBJ, J_ARR, J_INT, J_BOOL };

static const char *const kind_msg[] = {
    [J_STR] = "must be a string",   [J_OBJ] = "must be an object",  [J_ARR] = "must be an array",
    [J_INT] = "must be an integer", [J_BOOL] = "must be a boolean",
};

static bool has_kind(const json_t *v, enum jkind k)
{
	switch (k) {
	case J_STR:
		return json_is_string(v);
	case J_OBJ:
		return json_is_object(v);
	case J_ARR:
		return json_is_array(v);
	case J_INT:
		return json_is_integer(v);
	case J_BOOL:
		return json_is_boolean(v);
	}
	return false;
}

/* o[key] when it has kind `k`; NULL when absent, null, or of another kind
 * (then a FieldValueInvalid at "<base>.<key>").  Strings longer than
 * POD_MAX_STRING, or holding NUL bytes, are errors too. */
static json_t *get(struct k8s_field_errors *fe, const json_t *o, const char *key, const char *base,
                   enum jkind k)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return NULL;
	cleanup_free char *path = NULL;
	if (!has_kind(v, k)) {
		path = *base ? k8s_path("%s.%s", base, key) : xstrdup(key);
		k8s_fe_invalid(fe, path, v, kind_msg[k]);
		return NULL;
	}
	if (k == J_STR && json_string_length(v) > POD_MAX_STRING) {
		path = k8s_path("%s.%s", base, key);
		k8s_fe_too_long(fe, path, POD_MAX_STRING);
		return NULL;
	}
	if (k == J_STR && strlen(json_string_value(v)) != json_string_length(v)) {
		path = k8s_path("%s.%s", base, key);
		k8s_fe_invalid(fe, path, NULL, "must not contain NUL bytes");
		return NULL;
	}
	return v;
}

static const char *get_str(struct k8s_field_errors *fe, const json_t *o, const char *key,
                           const char *base)
{
	json_t *v = get(fe, o, key, base, J_STR);
	return v ? json_string_value(v) : NULL;
}

/* Reading without reporting, for code that runs on validated pods. */
static const char *str_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* ---- defaults --------------------------------------------------------------- */

/* Sets o[key] = v (stolen) unless o already has a non-null value there. */
static void set_default(json_t *o, const char *key, json_t *v)
{
	json_t *cur = json_object_get(o, key);
	if (cur && !json_is_null(cur))
		json_decref(v);
	else
		json_object_set_new(o, key, v);
}

/* Always for ":latest" or no tag (and no digest), else IfNotPresent. */
static const char *default_pull_policy(const char *image)
{
	if (strchr(image, '@'))
		return "IfNotPresent";
	const char *slash = strrchr(image, '/');
	const char *colon = strrchr(slash ? slash : image, ':');
	if (!colon || strcmp(colon + 1, "latest") == 0)
		return "Always";
	return "IfNotPresent";
}

/* resources.requests[r] = resources.limits[r] where only the limit is set. */
static void default_requests(json_t *ctr)
{
	json_t *res = json_object_get(ctr, "resources");
	json_t *lim = json_object_get(res, "limits");
	if (!json_is_object(res) || !json_is_object(lim) || json_object_size(lim) == 0)
		return;
	set_default(res, "requests", json_object());
	json_t *req = json_object_get(res, "requests");
	if (!json_is_object(req))
		return;
	const char *k;
	json_t *v;
	json_object_foreach(lim, k, v)
	{
		if (!json_object_get(req, k))
			json_object_set(req, k, v);
	}
}

static void default_container(json_t *ctr)
{
	if (!json_is_object(ctr))
		return;
	const char *image = json_string_value(json_object_get(ctr, "image"));
	if (image)
		set_default(ctr, "imagePullPolicy", json_string(default_pull_policy(image)));
	set_default(ctr, "terminationMessagePath", json_string("/dev/termination-log"));
	set_default(ctr, "terminationMessagePolicy", json_string("File"));
	set_default(ctr, "resources", json_object());
	default_requests(ctr);
	json_t *ports = json_object_get(ctr, "ports");
	size_t i;
	json_t *p;
	json_array_foreach(ports, i, p)
	{
		if (json_is_object(p))
			set_default(p, "protocol", json_string("TCP"));
	}
}

/* Every volume source Kubernetes knows; a volume naming none is emptyDir. */
static const char *const volume_types[] = {
    "emptyDir",
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
    NULL,
};

static void default_volume(json_t *vol)
{
	if (!json_is_object(vol))
		return;
	for (const char *const *t = volume_types; *t; t++) {
		json_t *src = json_object_get(vol, *t);
		if (src && !json_is_null(src))
			return;
	}
	json_object_set_new(vol, "emptyDir", json_object());
}

static void default_spec(json_t *spec, const char *default_runtime_class)
{
	set_default(spec, "restartPolicy", json_string("Always"));
	set_default(spec, "terminationGracePeriodSeconds", json_integer(30));
	set_default(spec, "dnsPolicy", json_string("ClusterFirst"));
	set_default(spec, "securityContext", json_object());
	set_default(spec, "schedulerName", json_string("default-scheduler"));
	set_default(spec, "enableServiceLinks", json_true());
	set_default(spec, "priority", json_integer(0));
	if (default_runtime_class)
		set_default(spec, "runtimeClassName", json_string(default_runtime_class));
	static const char *const lists[] = {"containers", "initContainers"};
	for (size_t l = 0; l < 2; l++) {
		json_t *a = json_object_get(spec, lists[l]);
		for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
			if (i < POD_MAX_CONTAINERS)
				default_container(json_array_get(a, i));
	}
	json_t *vols = json_object_get(spec, "volumes");
	for (size_t i = 0; json_is_array(vols) && i < json_array_size(vols); i++)
		if (i < POD_MAX_VOLUMES)
			default_volume(json_array_get(vols, i));
}

/* name = generateName (at most 58 bytes of it) + 5 random characters from
 * Kubernetes' alphabet, when the pod has a generateName but no name. */
static void generate_name(json_t *meta)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	const char *gen = json_string_value(json_object_get(meta, "generateName"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	json_t *cur = json_object_get(meta, "name");
	if (!gen || !*gen || (name && *name) || (cur && !json_is_null(cur) && !name))
		return;
	unsigned char rnd[5];
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return; /* the missing name is then reported as Required */
	size_t n = strnlen(gen, 58);
	char *out = xmalloc(n + 6);
	memcpy(out, gen, n);
	for (size_t i = 0; i < 5; i++)
		out[n + i] = alphabet[rnd[i] % (sizeof alphabet - 1)];
	out[n + 5] = '\0';
	json_object_set_new(meta, "name", json_string(out));
	free(out);
}

/* ---- metadata ------------------------------------------------------------- */

/* Kubernetes masks a trailing '-' of a generateName before checking it as a
 * subdomain, and reports the problems against the name as written. */
static void validate_generate_name(struct k8s_field_errors *fe, const char *gen)
{
	size_t n = strlen(gen);
	cleanup_free char *masked = xstrdup(gen);
	if (n > 1 && gen[n - 1] == '-') {
		masked[n - 2] = 'a';
		masked[n - 1] = '\0';
	}
	struct k8s_field_errors tmp;
	k8s_field_errors_init(&tmp);
	k8s_validate_dns1123_subdomain(&tmp, "metadata.generateName", masked);
	cleanup_free char *quoted = k8s_quote(masked);
	/* each message is "Invalid value: <quoted>: <detail>" */
	size_t skip = strlen("Invalid value: ") + strlen(quoted) + 2;
	for (size_t i = 0; i < tmp.n; i++)
		if (strlen(tmp.v[i].message) > skip)
			k8s_fe_invalid_str(fe, "metadata.generateName", gen,
			                   tmp.v[i].message + skip);
	k8s_field_errors_fini(&tmp);
}

/* Init-data (INITDATA_ANNOTATION): decoded, parsed and hashed as the KBS
 * will, and its digest recorded under INITDATA_DIGEST_ANNOTATION.  cocod
 * owns that one: a client's value is replaced, or dropped when the pod has
 * no init-data, so that it always describes the init-data stored beside it.
 * Values of the wrong type are left to k8s_validate_annotations. */
static void validate_init_data(json_t *meta, struct k8s_field_errors *fe)
{
	json_t *ann = json_object_get(meta, "annotations");
	if (!json_is_object(ann))
		return;
	const char *name;
	const json_t *v = initdata_annotation(ann, &name);
	json_object_del(ann, INITDATA_DIGEST_ANNOTATION);
	if (!json_is_string(v))
		return;
	struct err e = {0};
	struct initdata d;
	char *toml = NULL, digest[INITDATA_DIGEST_STR];
	size_t len = 0;
	int rc = initdata_decode(json_string_value(v), json_string_length(v), &toml, &len, &e);
	if (rc == 0)
		rc = initdata_parse(toml, len, &d, &e);
	free(toml);
	if (rc) {
		cleanup_free char *path = k8s_path("metadata.annotations[%s]", name);
		k8s_fe_invalid(fe, path, NULL, e.msg);
		return;
	}
	initdata_digest_str(&d, digest);
	initdata_fini(&d);
	json_object_set_new(ann, INITDATA_DIGEST_ANNOTATION, json_string(digest));
}

static void validate_metadata(json_t *pod, struct k8s_field_errors *fe)
{
	json_t *meta = json_object_get(pod, "metadata");
	if (!meta || json_is_null(meta)) {
		meta = json_object();
		json_object_set_new(pod, "metadata", meta);
	} else if (!get(fe, pod, "metadata", "", J_OBJ)) {
		return;
	}
	set_default(meta, "namespace", json_string("default"));
	generate_name(meta);
	const char *name = get_str(fe, meta, "name", "metadata");
	const char *gen = get_str(fe, meta, "generateName", "metadata");
	const char *ns = get_str(fe, meta, "namespace", "metadata");
	if (!name || !*name)
		k8s_fe_required(fe, "metadata.name", "name or generateName is required");
	else
		k8s_validate_dns1123_subdomain(fe, "metadata.name", name);
	if (gen && *gen)
		validate_generate_name(fe, gen);
	if (ns && !*ns)
		k8s_fe_required(fe, "metadata.namespace", "");
	else if (ns)
		k8s_validate_dns1123_label(fe, "metadata.namespace", ns);
	k8s_validate_labels(fe, "metadata.labels", json_object_get(meta, "labels"));
	validate_init_data(meta, fe); /* first: its digest counts towards the size limit */
	k8s_validate_annotations(fe, "metadata.annotations", json_object_get(meta, "annotations"));
	static const char *const strs[] = {"uid", "resourceVersion", "creationTimestamp",
	                                   "deletionTimestamp", NULL};
	for (const char *const *k = strs; *k; k++)
		get(fe, meta, *k, "metadata", J_STR);
	get(fe, meta, "generation", "metadata", J_INT);
	get(fe, meta, "deletionGracePeriodSeconds", "metadata", J_INT);
}

/* ---- containers ------------------------------------------------------------ */

/* Names seen so far, for uniqueness checks (borrowed from the document). */
struct names {
	const char *v[2 * POD_MAX_CONTAINERS + POD_MAX_ITEMS];
	size_t n;
};

static bool names_has(const struct names *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return true;
	return false;
}

static void names_add(struct names *s, const char *name)
{
	if (s->n < sizeof s->v / sizeof s->v[0])
		s->v[s->n++] = name;
}

/* An array member, with a TooMany error beyond `max`; NULL when absent. */
static json_t *get_list(struct k8s_field_errors *fe, const json_t *o, const char *key,
                        const char *base, size_t max)
{
	json_t *a = get(fe, o, key, base, J_ARR);
	if (a && json_array_size(a) > max) {
		cleanup_free char *path = k8s_path("%s.%s", base, key);
		k8s_fe_too_many(fe, path, json_array_size(a), max);
		return NULL;
	}
	return a;
}

/* Element i of `a` when it is an object; else an error at "<path>[i]". */
static json_t *element_obj(struct k8s_field_errors *fe, json_t *a, size_t i, const char *path)
{
	json_t *v = json_array_get(a, i);
	if (json_is_object(v))
		return v;
	cleanup_free char *p = k8s_path("%s[%zu]", path, i);
	k8s_fe_invalid(fe, p, v, "must be an object");
	return NULL;
}

static void validate_string_list(struct k8s_field_errors *fe, const json_t *ctr, const char *key,
                                 const char *base)
{
	json_t *a = get_list(fe, ctr, key, base, POD_MAX_ITEMS);
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		cleanup_free char *p = k8s_path("%s.%s[%zu]", base, key, i);
		if (!json_is_string(v))
			k8s_fe_invalid(fe, p, v, "must be a string");
		else if (json_string_length(v) > POD_MAX_STRING)
			k8s_fe_too_long(fe, p, POD_MAX_STRING);
	}
}

static bool env_name_ok(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-._", *s)))
			return false;
	return true;
}

#define ENV_NAME_MSG                                                                               \
	"a valid environment variable name must consist of alphabetic characters, digits, '_', "   \
	"'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  "   \
	"or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"

static void validate_env(struct k8s_field_errors *fe, const json_t *ctr, const char *base)
{
	cleanup_free char *path = k8s_path("%s.env", base);
	json_t *env = get_list(fe, ctr, "env", base, POD_MAX_ENV);
	for (size_t i = 0; i < json_array_size(env); i++) {
		json_t *ev = element_obj(fe, env, i, path);
		if (!ev)
			continue;
		cleanup_free char *ip = k8s_path("%s[%zu]", path, i);
		cleanup_free char *np = k8s_path("%s.name", ip);
		const char *name = get_str(fe, ev, "name", ip);
		if (!name || !*name)
			k8s_fe_required(fe, np, "");
		else if (!env_name_ok(name))
			k8s_fe_invalid_str(fe, np, name, ENV_NAME_MSG);
		get(fe, ev, "value", ip, J_STR);
		if (json_object_get(ev, "valueFrom") &&
		    !json_is_null(json_object_get(ev, "valueFrom"))) {
			cleanup_free char *vp = k8s_path("%s.valueFrom", ip);
			k8s_fe_forbidden(fe, vp, "valueFrom is not supported by cocod: set value");
		}
	}
	json_t *from = json_object_get(ctr, "envFrom");
	if (json_is_array(from) ? json_array_size(from) > 0 : from && !json_is_null(from)) {
		cleanup_free char *fp = k8s_path("%s.envFrom", base);
		k8s_fe_forbidden(fe, fp, "envFrom is not supported by cocod");
	}
}

static void validate_port_name(struct k8s_field_errors *fe, const char *path, const char *s,
                               struct names *seen)
{
	size_t n = strlen(s);
	bool letter = false, charset = n > 0, bad = false;
	for (size_t i = 0; i < n; i++) {
		letter |= s[i] >= 'a' && s[i] <= 'z';
		charset &=
		    (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-';
	}
	if (n > 15)
		k8s_fe_invalid_str(fe, path, s, "must be no more than 15 characters"), bad = true;
	if (!charset)
		k8s_fe_invalid_str(fe, path, s,
		                   "must contain only alpha-numeric characters (a-z, 0-9), and "
		                   "hyphens (-)"),
		    bad = true;
	if (!letter)
		k8s_fe_invalid_str(fe, path, s, "must contain at least one letter (a-z)"),
		    bad = true;
	if (strstr(s, "--"))
		k8s_fe_invalid_str(fe, path, s, "must not contain consecutive hyphens"), bad = true;
	if (n > 0 && (s[0] == '-' || s[n - 1] == '-'))
		k8s_fe_invalid_str(fe, path, s, "must not begin or end with a hyphen"), bad = true;
	if (bad)
		return;
	if (names_has(seen, s))
		k8s_fe_duplicate_str(fe, path, s);
	else
		names_add(seen, s);
}

static void validate_port(struct k8s_field_errors *fe, const json_t *p, const char *ip,
                          struct names *seen)
{
	static const char *const protocols[] = {"SCTP", "TCP", "UDP", NULL};
	const char *range = "must be between 1 and 65535, inclusive";
	const char *name = get_str(fe, p, "name", ip);
	if (name && *name) {
		cleanup_free char *np = k8s_path("%s.name", ip);
		validate_port_name(fe, np, name, seen);
	}
	json_t *cp = get(fe, p, "containerPort", ip, J_INT);
	cleanup_free char *cpp = k8s_path("%s.containerPort", ip);
	if (!cp || json_integer_value(cp) == 0)
		k8s_fe_required(fe, cpp, "");
	else if (json_integer_value(cp) < 1 || json_integer_value(cp) > 65535)
		k8s_fe_invalid(fe, cpp, cp, range);
	json_t *hp = get(fe, p, "hostPort", ip, J_INT);
	if (hp && json_integer_value(hp) != 0) {
		cleanup_free char *hpp = k8s_path("%s.hostPort", ip);
		k8s_fe_forbidden(fe, hpp, "hostPort " NOT_IN_VM);
	}
	const char *proto = get_str(fe, p, "protocol", ip);
	cleanup_free char *pp = k8s_path("%s.protocol", ip);
	if (!proto || !*proto)
		k8s_fe_required(fe, pp, "");
	else if (!in_list(proto, protocols))
		k8s_fe_not_supported_str(fe, pp, proto, protocols);
}

static void validate_ports(struct k8s_field_errors *fe, const json_t *ctr, const char *base)
{
	cleanup_free char *path = k8s_path("%s.ports", base);
	json_t *ports = get_list(fe, ctr, "ports", base, POD_MAX_ITEMS);
	struct names seen = {.n = 0};
	for (size_t i = 0; i < json_array_size(ports); i++) {
		json_t *p = element_obj(fe, ports, i, path);
		if (!p)
			continue;
		cleanup_free char *ip = k8s_path("%s[%zu]", path, i);
		validate_port(fe, p, ip, &seen);
	}
}

/* A relative path without "..": Kubernetes' validateLocalDescendingPath. */
static void validate_sub_path(struct k8s_field_errors *fe, const char *path, const char *s)
{
	if (s[0] == '/')
		k8s_fe_invalid_str(fe, path, s, "must be a relative path");
	const char *p = s;
	while ((p = strstr(p, "..")) != NULL) {
		bool start = p == s || p[-1] == '/', end = p[2] == '\0' || p[2] == '/';
		if (start && end) {
			k8s_fe_invalid_str(fe, path, s, "must not contain '..'");
			break;
		}
		p += 2;
	}
}

static void validate_mount(struct k8s_field_errors *fe, const json_t *m, const char *ip,
                           const struct names *volumes, struct names *paths)
{
	cleanup_free char *np = k8s_path("%s.name", ip);
	cleanup_free char *mp = k8s_path("%s.mountPath", ip);
	const char *name = get_str(fe, m, "name", ip);
	if (!name || !*name)
		k8s_fe_required(fe, np, "");
	else if (!names_has(volumes, name))
		k8s_fe_not_found_str(fe, np, name);
	const char *mount = get_str(fe, m, "mountPath", ip);
	if (!mount || !*mount) {
		k8s_fe_required(fe, mp, "");
	} else if (names_has(paths, mount)) {
		k8s_fe_invalid_str(fe, mp, mount, "must be unique");
	} else {
		names_add(paths, mount);
	}
	get(fe, m, "readOnly", ip, J_BOOL);
	const char *sub = get_str(fe, m, "subPath", ip);
	if (sub && *sub) {
		cleanup_free char *sp = k8s_path("%s.subPath", ip);
		validate_sub_path(fe, sp, sub);
	}
}

static void validate_mounts(struct k8s_field_errors *fe, const json_t *ctr, const char *base,
                            const struct names *volumes)
{
	cleanup_free char *path = k8s_path("%s.volumeMounts", base);
	json_t *mounts = get_list(fe, ctr, "volumeMounts", base, POD_MAX_ITEMS);
	struct names paths = {.n = 0};
	for (size_t i = 0; i < json_array_size(mounts); i++) {
		json_t *m = element_obj(fe, mounts, i, path);
		if (!m)
			continue;
		cleanup_free char *ip = k8s_path("%s[%zu]", path, i);
		validate_mount(fe, m, ip, volumes, &paths);
	}
	json_t *dev = json_object_get(ctr, "volumeDevices");
	if (json_is_array(dev) ? json_array_size(dev) > 0 : dev && !json_is_null(dev)) {
		cleanup_free char *dp = k8s_path("%s.volumeDevices", base);
		k8s_fe_forbidden(fe, dp, "volumeDevices are not supported by cocod");
	}
}

/* ---- resources -------------------------------------------------------------- */

static bool is_cpu(const char *res)
{
	return strcmp(res, "cpu") == 0;
}

/* cpu in milli, everything else in whole units. */
static int parse_amount(const char *res, const json_t *v, int64_t *out, struct err *e)
{
	return is_cpu(res) ? quantity_parse_json(v, out, e) : quantity_parse_json_value(v, out, e);
}

static void format_amount(const char *res, int64_t v, char *buf, size_t n)
{
	if (is_cpu(res))
		quantity_format_cpu(v, buf, n);
	else
		quantity_format_bytes(v, buf, n);
}

static void validate_resource_name(struct k8s_field_errors *fe, const char *path, const char *r)
{
	if (strchr(r, '/')) {
		k8s_fe_forbidden(fe, path, "extended resources are not supported by cocod");
		return;
	}
	if (strncmp(r, "hugepages-", 10) == 0) {
		k8s_fe_forbidden(fe, path, "hugepages are not supported by cocod");
		return;
	}
	if (strcmp(r, "cpu") != 0 && strcmp(r, "memory") != 0 &&
	    strcmp(r, "ephemeral-storage") != 0)
		k8s_fe_invalid_str(fe, path, r, "must be a standard resource for containers");
}

/* Validates one resource list ("requests" or "limits"); returns it when it
 * is an object. */
static json_t *validate_resource_list(struct k8s_field_errors *fe, const json_t *res,
                                      const char *key, const char *base)
{
	json_t *list = get(fe, res, key, base, J_OBJ);
	cleanup_free char *lp = k8s_path("%s.%s", base, key);
	if (list && json_object_size(list) > POD_MAX_ITEMS) {
		k8s_fe_too_many(fe, lp, json_object_size(list), POD_MAX_ITEMS);
		return NULL;
	}
	const char *r;
	json_t *v;
	json_object_foreach(list, r, v)
	{
		cleanup_free char *p = k8s_path("%s[%s]", lp, r);
		struct err e;
		int64_t amount;
		validate_resource_name(fe, p, r);
		if (parse_amount(r, v, &amount, &e) < 0)
			k8s_fe_invalid(fe, p, v, e.msg);
		else if (amount < 0)
			k8s_fe_invalid(fe, p, v, "must be greater than or equal to 0");
	}
	return list;
}

/* The request of one resource must not exceed its limit. */
static void check_request_limit(struct k8s_field_errors *fe, const char *base, const char *r,
                                const json_t *req, const json_t *lim)
{
	int64_t q, l, qm, lm;
	bool milli =
	    quantity_parse_json(req, &qm, NULL) == 0 && quantity_parse_json(lim, &lm, NULL) == 0;
	if (parse_amount(r, req, &q, NULL) < 0 || parse_amount(r, lim, &l, NULL) < 0)
		return;
	if (milli ? qm <= lm : q <= l)
		return;
	char qs[32], ls[32], detail[96];
	format_amount(r, q, qs, sizeof qs);
	format_amount(r, l, ls, sizeof ls);
	snprintf(detail, sizeof detail, "must be less than or equal to %s limit of %s", r, ls);
	cleanup_free char *p = k8s_path("%s.requests", base);
	k8s_fe_invalid_str(fe, p, qs, detail);
}

static void validate_resources(struct k8s_field_errors *fe, const json_t *ctr, const char *base)
{
	json_t *res = get(fe, ctr, "resources", base, J_OBJ);
	if (!res)
		return;
	cleanup_free char *rp = k8s_path("%s.resources", base);
	json_t *req = validate_resource_list(fe, res, "requests", rp);
	json_t *lim = validate_resource_list(fe, res, "limits", rp);
	const char *r;
	json_t *v;
	json_object_foreach(req, r, v)
	{
		json_t *l = json_object_get(lim, r);
		if (l && strlen(r) <= 253)
			check_request_limit(fe, rp, r, v, l);
	}
}

/* ---- security context --------------------------------------------------- */

static void validate_security_context(struct k8s_field_errors *fe, const json_t *ctr,
                                      const char *base)
{
	json_t *sc = get(fe, ctr, "securityContext", base, J_OBJ);
	if (!sc)
		return;
	cleanup_free char *sp = k8s_path("%s.securityContext", base);
	json_t *priv = get(fe, sc, "privileged", sp, J_BOOL);
	if (json_is_true(priv)) {
		cleanup_free char *p = k8s_path("%s.privileged", sp);
		k8s_fe_forbidden(fe, p, "privileged " NOT_IN_VM);
	}
	static const char *const bools[] = {"allowPrivilegeEscalation", "runAsNonRoot",
	                                    "readOnlyRootFilesystem", NULL};
	for (const char *const *b = bools; *b; b++)
		get(fe, sc, *b, sp, J_BOOL);
	static const char *const ids[] = {"runAsUser", "runAsGroup", NULL};
	for (const char *const *k = ids; *k; k++) {
		json_t *id = get(fe, sc, *k, sp, J_INT);
		if (id && (json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX)) {
			cleanup_free char *p = k8s_path("%s.%s", sp, *k);
			k8s_fe_invalid(fe, p, id, "must be between 0 and 2147483647, inclusive");
		}
	}
	json_t *caps = get(fe, sc, "capabilities", sp, J_OBJ);
	cleanup_free char *cp = k8s_path("%s.capabilities", sp);
	json_t *add = caps ? get(fe, caps, "add", cp, J_ARR) : NULL;
	get(fe, caps, "drop", cp, J_ARR);
	if (add && json_array_size(add) > 0) {
		cleanup_free char *p = k8s_path("%s.add", cp);
		k8s_fe_forbidden(fe, p, "adding capabilities is not supported by cocod");
	}
}

/* ---- one container ------------------------------------------------------- */

static void validate_image(struct k8s_field_errors *fe, const json_t *ctr, const char *base)
{
	cleanup_free char *ip = k8s_path("%s.image", base);
	const char *image = get_str(fe, ctr, "image", base);
	size_t n = image ? strlen(image) : 0;
	if (n == 0) {
		if (!json_object_get(ctr, "image") || json_is_string(json_object_get(ctr, "image")))
			k8s_fe_required(fe, ip, "");
		return;
	}
	if (strchr(" \t\n\r\v\f", image[0]) || strchr(" \t\n\r\v\f", image[n - 1]))
		k8s_fe_invalid_str(fe, ip, image, "must not have leading or trailing whitespace");
}

static void validate_container_enums(struct k8s_field_errors *fe, const json_t *ctr,
                                     const char *base)
{
	static const char *const pulls[] = {"Always", "IfNotPresent", "Never", NULL};
	static const char *const tmps[] = {"File", "FallbackToLogsOnError", NULL};
	const char *pull = get_str(fe, ctr, "imagePullPolicy", base);
	if (pull && !in_list(pull, pulls)) {
		cleanup_free char *p = k8s_path("%s.imagePullPolicy", base);
		k8s_fe_not_supported_str(fe, p, pull, pulls);
	}
	const char *tmp = get_str(fe, ctr, "terminationMessagePolicy", base);
	if (tmp && !in_list(tmp, tmps)) {
		cleanup_free char *p = k8s_path("%s.terminationMessagePolicy", base);
		k8s_fe_not_supported_str(fe, p, tmp, tmps);
	}
	get(fe, ctr, "terminationMessagePath", base, J_STR);
	get(fe, ctr, "workingDir", base, J_STR);
	json_t *rp = json_object_get(ctr, "restartPolicy");
	if (rp && !json_is_null(rp)) {
		cleanup_free char *p = k8s_path("%s.restartPolicy", base);
		k8s_fe_forbidden(fe, p,
		                 "container restartPolicy (sidecar containers) is not supported "
		                 "by cocod");
	}
}

/* Validates container i of list `list` ("spec.containers"); `names` holds the
 * container names seen so far across both lists. */
static void validate_container(struct k8s_field_errors *fe, json_t *arr, size_t i, const char *list,
                               struct names *names, const struct names *volumes)
{
	json_t *ctr = element_obj(fe, arr, i, list);
	if (!ctr)
		return;
	cleanup_free char *base = k8s_path("%s[%zu]", list, i);
	cleanup_free char *np = k8s_path("%s.name", base);
	const char *name = get_str(fe, ctr, "name", base);
	if (!name || !*name) {
		if (!json_object_get(ctr, "name") || json_is_string(json_object_get(ctr, "name")))
			k8s_fe_required(fe, np, "");
	} else {
		k8s_validate_dns1123_label(fe, np, name);
		if (names_has(names, name))
			k8s_fe_duplicate_str(fe, np, name);
		else
			names_add(names, name);
	}
	validate_image(fe, ctr, base);
	validate_container_enums(fe, ctr, base);
	validate_string_list(fe, ctr, "command", base);
	validate_string_list(fe, ctr, "args", base);
	validate_env(fe, ctr, base);
	validate_ports(fe, ctr, base);
	validate_mounts(fe, ctr, base, volumes);
	validate_resources(fe, ctr, base);
	validate_security_context(fe, ctr, base);
}

/* ---- volumes -------------------------------------------------------------- */

static void validate_empty_dir(struct k8s_field_errors *fe, const json_t *vol, const char *vp)
{
	static const char *const media[] = {"", "Memory", NULL};
	json_t *ed = get(fe, vol, "emptyDir", vp, J_OBJ);
	if (!ed)
		return;
	cleanup_free char *ep = k8s_path("%s.emptyDir", vp);
	const char *medium = get_str(fe, ed, "medium", ep);
	if (medium && !in_list(medium, media)) {
		cleanup_free char *p = k8s_path("%s.medium", ep);
		k8s_fe_not_supported_str(fe, p, medium, media);
	}
	json_t *size = json_object_get(ed, "sizeLimit");
	int64_t bytes;
	struct err e;
	if (!size || json_is_null(size))
		return;
	cleanup_free char *sp = k8s_path("%s.sizeLimit", ep);
	if (quantity_parse_json_value(size, &bytes, &e) < 0)
		k8s_fe_invalid(fe, sp, size, e.msg);
	else if (bytes < 0)
		k8s_fe_forbidden(fe, sp, "SizeLimit field must be a valid resource quantity");
}

static void validate_volume(struct k8s_field_errors *fe, const json_t *vol, const char *vp,
                            struct names *names)
{
	cleanup_free char *np = k8s_path("%s.name", vp);
	const char *name = get_str(fe, vol, "name", vp);
	if (!name || !*name) {
		k8s_fe_required(fe, np, "");
	} else {
		k8s_validate_dns1123_label(fe, np, name);
		if (names_has(names, name))
			k8s_fe_duplicate_str(fe, np, name);
		else
			names_add(names, name);
	}
	for (const char *const *t = volume_types + 1; *t; t++) {
		json_t *src = json_object_get(vol, *t);
		if (!src || json_is_null(src))
			continue;
		cleanup_free char *p = k8s_path("%s.%s", vp, *t);
		cleanup_free char *msg = xasprintf("%s volumes are not supported by cocod: only "
		                                   "emptyDir volumes are",
		                                   *t);
		k8s_fe_forbidden(fe, p, msg);
	}
	validate_empty_dir(fe, vol, vp);
}

static void validate_volumes(struct k8s_field_errors *fe, const json_t *spec, struct names *names)
{
	json_t *vols = get_list(fe, spec, "volumes", "spec", POD_MAX_VOLUMES);
	for (size_t i = 0; i < json_array_size(vols); i++) {
		json_t *vol = element_obj(fe, vols, i, "spec.volumes");
		if (!vol)
			continue;
		cleanup_free char *vp = k8s_path("spec.volumes[%zu]", i);
		validate_volume(fe, vol, vp, names);
	}
}

/* ---- pod spec ------------------------------------------------------------- */

static const struct {
	const char *name, *tee;
} runtime_classes[] = {
    {"cocod-sim", "sim"},     {"cocod-snp", "snp"},          {"cocod-tdx", "tdx"},
    {"cocod-se", "se"},       {"kata-qemu-coco-dev", "sim"}, {"kata-qemu-snp", "snp"},
    {"kata-qemu-tdx", "tdx"}, {"kata-qemu-se", "se"},
};

const char *pod_runtime_class_tee(const char *class_name)
{
	for (size_t i = 0; class_name && i < sizeof runtime_classes / sizeof runtime_classes[0];
	     i++)
		if (strcmp(class_name, runtime_classes[i].name) == 0)
			return runtime_classes[i].tee;
	return NULL;
}

static void validate_runtime_class(struct k8s_field_errors *fe, const json_t *spec)
{
	const char *rc = get_str(fe, spec, "runtimeClassName", "spec");
	if (!rc)
		return;
	size_t before = fe->n;
	k8s_validate_dns1123_subdomain(fe, "spec.runtimeClassName", rc);
	if (fe->n != before || pod_runtime_class_tee(rc))
		return;
	const char *names[sizeof runtime_classes / sizeof runtime_classes[0] + 1];
	for (size_t i = 0; i < sizeof runtime_classes / sizeof runtime_classes[0]; i++)
		names[i] = runtime_classes[i].name;
	names[sizeof runtime_classes / sizeof runtime_classes[0]] = NULL;
	k8s_fe_not_supported_str(fe, "spec.runtimeClassName", rc, names);
}

static void validate_host_namespaces(struct k8s_field_errors *fe, const json_t *spec)
{
	static const char *const keys[] = {"hostNetwork", "hostPID", "hostIPC", NULL};
	for (const char *const *k = keys; *k; k++) {
		json_t *v = get(fe, spec, *k, "spec", J_BOOL);
		if (!json_is_true(v))
			continue;
		cleanup_free char *p = k8s_path("spec.%s", *k);
		cleanup_free char *msg = xasprintf("%s " NOT_IN_VM, *k);
		k8s_fe_forbidden(fe, p, msg);
	}
}

static void validate_policies(struct k8s_field_errors *fe, const json_t *spec)
{
	static const char *const restart[] = {"Always", "OnFailure", "Never", NULL};
	static const char *const dns[] = {"ClusterFirstWithHostNet", "ClusterFirst", "Default",
	                                  "None", NULL};
	const char *rp = get_str(fe, spec, "restartPolicy", "spec");
	if (rp && !*rp)
		k8s_fe_required(fe, "spec.restartPolicy", "");
	else if (rp && !in_list(rp, restart))
		k8s_fe_not_supported_str(fe, "spec.restartPolicy", rp, restart);
	const char *dp = get_str(fe, spec, "dnsPolicy", "spec");
	if (dp && !in_list(dp, dns))
		k8s_fe_not_supported_str(fe, "spec.dnsPolicy", dp, dns);
	json_t *grace = get(fe, spec, "terminationGracePeriodSeconds", "spec", J_INT);
	if (grace && json_integer_value(grace) < 0)
		k8s_fe_invalid(fe, "spec.terminationGracePeriodSeconds", grace,
		               "must be greater than or equal to 0");
	json_t *ads = get(fe, spec, "activeDeadlineSeconds", "spec", J_INT);
	if (ads && (json_integer_value(ads) < 1 || json_integer_value(ads) > INT32_MAX))
		k8s_fe_invalid(fe, "spec.activeDeadlineSeconds", ads,
		               "must be between 1 and 2147483647, inclusive");
	json_t *prio = get(fe, spec, "priority", "spec", J_INT);
	if (prio && (json_integer_value(prio) < INT32_MIN || json_integer_value(prio) > INT32_MAX))
		k8s_fe_invalid(fe, "spec.priority", prio,
		               "must be between -2147483648 and 2147483647, inclusive");
	get(fe, spec, "schedulerName", "spec", J_STR);
	get(fe, spec, "enableServiceLinks", "spec", J_BOOL);
	get(fe, spec, "securityContext", "spec", J_OBJ);
	get(fe, spec, "nodeName", "spec", J_STR);
	json_t *eph = json_object_get(spec, "ephemeralContainers");
	if (json_is_array(eph) ? json_array_size(eph) > 0 : eph && !json_is_null(eph))
		k8s_fe_forbidden(fe, "spec.ephemeralContainers", "cannot be set on create");
}

static void validate_containers(struct k8s_field_errors *fe, const json_t *spec,
                                const struct names *volumes)
{
	struct names names = {.n = 0};
	json_t *ctrs = get_list(fe, spec, "containers", "spec", POD_MAX_CONTAINERS);
	bool wrong = ctrs == NULL && json_object_get(spec, "containers") &&
	             !json_is_null(json_object_get(spec, "containers"));
	if (!wrong && json_array_size(ctrs) == 0)
		k8s_fe_required(fe, "spec.containers", "");
	for (size_t i = 0; i < json_array_size(ctrs); i++)
		validate_container(fe, ctrs, i, "spec.containers", &names, volumes);
	json_t *init = get_list(fe, spec, "initContainers", "spec", POD_MAX_CONTAINERS);
	for (size_t i = 0; i < json_array_size(init); i++)
		validate_container(fe, init, i, "spec.initContainers", &names, volumes);
}

static void validate_spec(const json_t *spec, struct k8s_field_errors *fe)
{
	struct names volumes = {.n = 0};
	validate_volumes(fe, spec, &volumes);
	validate_containers(fe, spec, &volumes);
	validate_policies(fe, spec);
	validate_host_namespaces(fe, spec);
	validate_runtime_class(fe, spec);
}

int pod_normalize(json_t *pod, const char *default_runtime_class, struct k8s_field_errors *fe)
{
	size_t before = fe->n + fe->dropped;
	if (!json_is_object(pod)) {
		k8s_fe_invalid(fe, "", pod, "a Pod must be a JSON object");
		return ERR_INVALID;
	}
	set_default(pod, "kind", json_string("Pod"));
	set_default(pod, "apiVersion", json_string("v1"));
	validate_metadata(pod, fe);
	json_t *spec = json_object_get(pod, "spec");
	if (!spec || json_is_null(spec)) {
		spec = json_object();
		json_object_set_new(pod, "spec", spec);
	}
	if (get(fe, pod, "spec", "", J_OBJ)) {
		default_spec(spec, default_runtime_class);
		validate_spec(spec, fe);
	}
	return fe->n + fe->dropped != before ? ERR_INVALID : 0;
}

const char *pod_namespace(const json_t *pod)
{
	const char *ns =
	    json_string_value(json_object_get(json_object_get(pod, "metadata"), "namespace"));
	return ns ? ns : "default";
}

const char *pod_name(const json_t *pod)
{
	return str_of(json_object_get(pod, "metadata"), "name");
}

/* ---- resources and QoS ---------------------------------------------------- */

/* One container's cpu (milli) or memory (bytes) from `list`; false when
 * absent or malformed. */
static bool amount_of(const json_t *ctr, const char *list, const char *res, int64_t *out)
{
	json_t *v = json_object_get(json_object_get(json_object_get(ctr, "resources"), list), res);
	return v && parse_amount(res, v, out, NULL) == 0;
}

/* The request, or the limit when only the limit is set. */
static bool request_of(const json_t *ctr, const char *res, int64_t *out)
{
	return amount_of(ctr, "requests", res, out) || amount_of(ctr, "limits", res, out);
}

static int64_t sat_add(int64_t a, int64_t b)
{
	return b > 0 && a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* Scheduler arithmetic for one resource: max(sum(regular), max(init)). */
static void effective(const json_t *spec, const char *res, int64_t *req, int64_t *lim)
{
	int64_t sum_r = 0, sum_l = 0, init_r = 0, init_l = 0, v;
	bool unlimited = false;
	json_t *ctrs = json_object_get(spec, "containers");
	json_t *init = json_object_get(spec, "initContainers");
	for (size_t i = 0; i < json_array_size(ctrs) && i < POD_MAX_CONTAINERS; i++) {
		json_t *c = json_array_get(ctrs, i);
		if (request_of(c, res, &v) && v > 0)
			sum_r = sat_add(sum_r, v);
		if (amount_of(c, "limits", res, &v) && v > 0)
			sum_l = sat_add(sum_l, v);
		else
			unlimited = true;
	}
	for (size_t i = 0; i < json_array_size(init) && i < POD_MAX_CONTAINERS; i++) {
		json_t *c = json_array_get(init, i);
		if (request_of(c, res, &v) && v > init_r)
			init_r = v;
		if (amount_of(c, "limits", res, &v) && v > 0)
			init_l = v > init_l ? v : init_l;
		else
			unlimited = true;
	}
	*req = sum_r > init_r ? sum_r : init_r;
	*lim = unlimited ? 0 : sum_l > init_l ? sum_l : init_l;
}

void pod_resources(const json_t *pod, struct pod_resources *out)
{
	json_t *spec = json_object_get(pod, "spec");
	effective(spec, "cpu", &out->cpu_request_milli, &out->cpu_limit_milli);
	effective(spec, "memory", &out->mem_request_bytes, &out->mem_limit_bytes);
}

struct qos_sums {
	int64_t req[2], lim[2];
	bool has_req[2], has_lim[2];
	bool guaranteed;
};

static void qos_add(const json_t *c, struct qos_sums *s)
{
	static const char *const res[] = {"cpu", "memory"};
	bool lim_here[2] = {false, false};
	int64_t v;
	for (int r = 0; r < 2; r++) {
		if (request_of(c, res[r], &v) && v > 0) {
			s->req[r] = sat_add(s->req[r], v);
			s->has_req[r] = true;
		}
		if (amount_of(c, "limits", res[r], &v) && v > 0) {
			s->lim[r] = sat_add(s->lim[r], v);
			s->has_lim[r] = lim_here[r] = true;
		}
	}
	if (!lim_here[0] || !lim_here[1])
		s->guaranteed = false;
}

const char *pod_qos_class(const json_t *pod)
{
	static const char *const lists[] = {"containers", "initContainers"};
	json_t *spec = json_object_get(pod, "spec");
	struct qos_sums s = {.guaranteed = true};
	for (int l = 0; l < 2; l++) {
		json_t *a = json_object_get(spec, lists[l]);
		for (size_t i = 0; i < json_array_size(a) && i < POD_MAX_CONTAINERS; i++)
			qos_add(json_array_get(a, i), &s);
	}
	if (!s.has_req[0] && !s.has_req[1] && !s.has_lim[0] && !s.has_lim[1])
		return "BestEffort";
	for (int r = 0; r < 2 && s.guaranteed; r++)
		if (s.has_req[r] && (!s.has_lim[r] || s.lim[r] != s.req[r]))
			s.guaranteed = false;
	if (s.guaranteed && s.has_req[0] + s.has_req[1] == s.has_lim[0] + s.has_lim[1])
		return "Guaranteed";
	return "Burstable";
}

/* ---- updates ---------------------------------------------------------------- */

static bool same(const json_t *a, const json_t *b)
{
	if (json_is_null(a))
		a = NULL;
	if (json_is_null(b))
		b = NULL;
	return (!a && !b) || (a && b && json_equal(a, b));
}

/* "`spec.x`, `spec.y`": the top-level spec fields that differ (first few). */
static char *changed_fields(const json_t *old, const json_t *new)
{
	struct buf b;
	size_t shown = 0;
	const char *k;
	json_t *v;
	buf_init(&b);
	for (int pass = 0; pass < 2; pass++) {
		const json_t *from = pass ? new : old, *to = pass ? old : new;
		json_object_foreach((json_t *)(uintptr_t)from, k, v)
		{ /* read only */
			if (same(v, json_object_get(to, k)) || (pass && json_object_get(to, k)))
				continue;
			if (shown++ < 8)
				buf_printf(&b, "%s`spec.%.64s`", shown > 1 ? ", " : "", k);
		}
	}
	if (shown > 8)
		buf_adds(&b, ", ...");
	return buf_steal(&b, NULL);
}

static void immutable(struct k8s_field_errors *fe, const json_t *om, const json_t *nm,
                      const char *key, bool only_if_set)
{
	json_t *nv = json_object_get(nm, key);
	if (only_if_set && (!nv || json_is_null(nv)))
		return;
	if (same(json_object_get(om, key), nv))
		return;
	cleanup_free char *p = k8s_path("metadata.%s", key);
	k8s_fe_invalid(fe, p, nv, "field is immutable");
}

int pod_validate_update(const json_t *old, const json_t *new, struct k8s_field_errors *fe)
{
	size_t before = fe->n + fe->dropped;
	json_t *om = json_object_get(old, "metadata"), *nm = json_object_get(new, "metadata");
	immutable(fe, om, nm, "name", false);
	immutable(fe, om, nm, "namespace", false);
	static const char *const set_by_server[] = {"uid", "creationTimestamp", "deletionTimestamp",
	                                            "deletionGracePeriodSeconds", NULL};
	for (const char *const *k = set_by_server; *k; k++)
		immutable(fe, om, nm, *k, true);
	/* Init-data is measured into the pod VM when it starts (and its digest
	 * follows it, see validate_init_data). */
	static const char *const fixed[] = {INITDATA_ANNOTATION, INITDATA_ANNOTATION_OLD, NULL};
	json_t *oa = json_object_get(om, "annotations"), *na = json_object_get(nm, "annotations");
	for (const char *const *k = fixed; *k; k++)
		if (!same(json_object_get(oa, *k), json_object_get(na, *k))) {
			cleanup_free char *p = k8s_path("metadata.annotations[%s]", *k);
			k8s_fe_invalid(
			    fe, p, NULL,
			    "field is immutable: init-data is fixed when the pod is created "
			    "(it is measured into the pod VM); delete and recreate the pod "
			    "to change it");
		}
	json_t *os = json_object_get(old, "spec"), *ns = json_object_get(new, "spec");
	if (!same(os, ns)) {
		cleanup_free char *changed = json_is_object(os) && json_is_object(ns)
		                                 ? changed_fields(os, ns)
		                                 : xstrdup("`spec`");
		cleanup_free char *msg =
		    xasprintf("pod updates may not change fields other than `metadata.labels` or "
		              "`metadata.annotations`: cocod pods are immutable, not even "
		              "`spec.containers[*].image` may change; delete and recreate the pod "
		              "(changed: %s)",
		              changed);
		k8s_fe_forbidden(fe, "spec", msg);
	}
	return fe->n + fe->dropped != before ? ERR_INVALID : 0;
}
