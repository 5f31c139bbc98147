/* Unit tests for pod (and the k8s helpers it stands on): defaults,
 * validation worded as Kubernetes words it, rejection of what a pod VM cannot
 * honour, hostile JSON types, the 422 Status, resources, QoS and updates.
 *
 * Cases:
 *   defaults_are_applied                     SetDefaults_Pod + configured runtime class
 *   pull_policy_follows_the_image_tag        Always for :latest/no tag, else IfNotPresent
 *   given_values_are_not_overridden          defaults fill only what is absent or null
 *   limits_become_requests_and_more          requests from limits, TCP, emptyDir
 *   unknown_fields_are_preserved             untouched, anywhere in the document
 *   generate_name_yields_a_valid_name        generateName + 5 random characters
 *   required_fields_are_reported             metadata.name, containers, name, image
 *   names_must_be_rfc1123                    exact apimachinery messages
 *   container_names_are_unique_across_lists  Duplicate at the later one, init too
 *   ports_are_checked                        range, protocol, hostPort forbidden, names
 *   env_is_checked                           names, required, valueFrom forbidden
 *   volumes_and_mounts_are_checked           emptyDir only, mounts name volumes
 *   resources_are_checked                    quantities, requests <= limits, names
 *   pod_policies_are_checked                 restartPolicy, deadlines, grace period
 *   runtime_classes_and_aliases              TEE mapping, unknown class rejected
 *   labels_and_annotations_are_checked       keys, values, total annotation size
 *   host_features_are_forbidden              hostNetwork/PID/IPC, privileged, caps
 *   hostile_types_are_field_errors           wrong JSON types never crash
 *   every_error_is_collected                 not just the first
 *   bounds_are_enforced                      containers, env, string length
 *   status_with_one_cause                    exact 422 JSON
 *   status_with_several_causes               brackets, duplicates once in message
 *   resources_as_the_scheduler_sees_them     sum vs init max, limit-only requests
 *   qos_classes                              BestEffort, Burstable, Guaranteed
 *   updates_may_change_only_labels_and_annotations
 *   init_data_is_validated_and_its_digest_recorded   422 causes, cocod owns the digest
 *   init_data_may_not_change                 both annotation names immutable
 *   k8s_helpers                              quoting, label keys, uid, timestamp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "b64.h"
#include "initdata.h"
#include "k8s.h"
#include "pod.h"
#include "util.h"
#include "testinit.h"

#define LABEL_ERR                                                                                  \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "   \
	"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "   \
	"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
#define SUBDOMAIN_ERR                                                                              \
	"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "  \
	"or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "      \
	"regex used for validation is "                                                            \
	"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

static json_t *parse(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	if (!j)
		fail_msg("bad test JSON: %s: %s", jerr.text, text);
	return j;
}

/* Normalizes `text`; the caller finalizes `fe` and decrefs the result. */
static json_t *normalize(const char *text, struct k8s_field_errors *fe)
{
	json_t *pod = parse(text);
	k8s_field_errors_init(fe);
	pod_normalize(pod, "cocod-sim", fe);
	return pod;
}

static void dump(const struct k8s_field_errors *fe)
{
	for (size_t i = 0; i < fe->n; i++)
		print_error("  %s [%s] %s\n", fe->v[i].field, k8s_field_type_reason(fe->v[i].type),
		            fe->v[i].message);
}

/* Asserts that `fe` holds an error at `field` of `type` whose message is
 * exactly `message` (or, with message NULL, any message). */
static void expect_cause(const struct k8s_field_errors *fe, const char *field,
                         enum k8s_field_type type, const char *message)
{
	for (size_t i = 0; i < fe->n; i++)
		if (strcmp(fe->v[i].field, field) == 0 && fe->v[i].type == type &&
		    (!message || strcmp(fe->v[i].message, message) == 0))
			return;
	dump(fe);
	fail_msg("no %s cause at %s: %s", k8s_field_type_reason(type), field,
	         message ? message : "(any)");
}

static void expect_no_cause_at(const struct k8s_field_errors *fe, const char *field)
{
	for (size_t i = 0; i < fe->n; i++)
		if (strcmp(fe->v[i].field, field) == 0) {
			dump(fe);
			fail_msg("unexpected cause at %s", field);
		}
}

static void expect_valid(const char *text)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(text, &fe);
	if (fe.n) {
		dump(&fe);
		fail_msg("expected a valid pod: %s", text);
	}
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static const char *sget(const json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const json_t *cur = o;
	for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok;
	     tok = strtok_r(NULL, ".", &save))
		cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(tok))
		                         : json_object_get(cur, tok);
	return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static const json_t *jget(const json_t *o, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	const json_t *cur = o;
	for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok;
	     tok = strtok_r(NULL, ".", &save))
		cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(tok))
		                         : json_object_get(cur, tok);
	return cur;
}

#define MINIMAL                                                                                    \
	"{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":"      \
	"\"busybox\"}]}}"

static void defaults_are_applied(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(MINIMAL, &fe);
	assert_int_equal(fe.n, 0);
	assert_string_equal(sget(pod, "kind"), "Pod");
	assert_string_equal(sget(pod, "apiVersion"), "v1");
	assert_string_equal(sget(pod, "metadata.namespace"), "default");
	assert_string_equal(pod_namespace(pod), "default");
	assert_string_equal(pod_name(pod), "p");
	assert_string_equal(sget(pod, "spec.restartPolicy"), "Always");
	assert_int_equal(json_integer_value(jget(pod, "spec.terminationGracePeriodSeconds")), 30);
	assert_string_equal(sget(pod, "spec.dnsPolicy"), "ClusterFirst");
	assert_string_equal(sget(pod, "spec.schedulerName"), "default-scheduler");
	assert_true(json_is_true(jget(pod, "spec.enableServiceLinks")));
	assert_true(json_is_integer(jget(pod, "spec.priority")));
	assert_int_equal(json_integer_value(jget(pod, "spec.priority")), 0);
	assert_string_equal(sget(pod, "spec.runtimeClassName"), "cocod-sim");
	assert_true(json_is_object(jget(pod, "spec.securityContext")));
	assert_string_equal(sget(pod, "spec.containers.0.imagePullPolicy"), "Always");
	assert_string_equal(sget(pod, "spec.containers.0.terminationMessagePath"),
	                    "/dev/termination-log");
	assert_string_equal(sget(pod, "spec.containers.0.terminationMessagePolicy"), "File");
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	/* no configured default: runtimeClassName stays absent, still valid */
	pod = parse(MINIMAL);
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_normalize(pod, NULL, &fe), 0);
	assert_null(jget(pod, "spec.runtimeClassName"));
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void pull_policy_follows_the_image_tag(void **state)
{
	static const struct {
		const char *image, *policy;
	} cases[] = {
	    {"nginx", "Always"},
	    {"nginx:latest", "Always"},
	    {"nginx:1.25", "IfNotPresent"},
	    {"registry.local:5000/nginx", "Always"},
	    {"registry.local:5000/nginx:1.0", "IfNotPresent"},
	    {"nginx@sha256:0123456789abcdef", "IfNotPresent"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[512];
		snprintf(text, sizeof text,
		         "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\","
		         "\"image\":\"%s\"}]}}",
		         cases[i].image);
		struct k8s_field_errors fe;
		json_t *pod = normalize(text, &fe);
		const char *got = sget(pod, "spec.containers.0.imagePullPolicy");
		if (!got || strcmp(got, cases[i].policy) != 0)
			fail_msg("%s: want %s, got %s", cases[i].image, cases[i].policy,
			         got ? got : "(none)");
		k8s_field_errors_fini(&fe);
		json_decref(pod);
	}
}

static void given_values_are_not_overridden(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"team-a\"},\"spec\":{\"restartPolicy\":"
	    "\"Never\",\"terminationGracePeriodSeconds\":5,\"runtimeClassName\":\"kata-qemu-snp\","
	    "\"priority\":null,\"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
	    "\"imagePullPolicy\":\"Never\"}]}}",
	    &fe);
	assert_int_equal(fe.n, 0);
	assert_string_equal(pod_namespace(pod), "team-a");
	assert_string_equal(sget(pod, "spec.restartPolicy"), "Never");
	assert_int_equal(json_integer_value(jget(pod, "spec.terminationGracePeriodSeconds")), 5);
	assert_string_equal(sget(pod, "spec.runtimeClassName"), "kata-qemu-snp");
	assert_true(json_is_integer(jget(pod, "spec.priority"))); /* null is absent */
	assert_string_equal(sget(pod, "spec.containers.0.imagePullPolicy"), "Never");
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void limits_become_requests_and_more(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"volumes\":[{\"name\":\"scratch\"}],"
	    "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"ports\":[{"
	    "\"containerPort\":80}],\"resources\":{\"limits\":{\"cpu\":\"1\",\"memory\":"
	    "\"1Gi\"},\"requests\":{\"cpu\":\"500m\"}}}]}}",
	    &fe);
	assert_int_equal(fe.n, 0);
	assert_string_equal(sget(pod, "spec.containers.0.resources.requests.cpu"), "500m");
	assert_string_equal(sget(pod, "spec.containers.0.resources.requests.memory"), "1Gi");
	assert_string_equal(sget(pod, "spec.containers.0.ports.0.protocol"), "TCP");
	assert_true(json_is_object(jget(pod, "spec.volumes.0.emptyDir")));
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void unknown_fields_are_preserved(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\",\"finalizers\":[\"x/y\"],\"zz\":{\"a\":[1,2,{}]}},"
	    "\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"},\"tolerations\":[{\"key\":\"k\"}],"
	    "\"futureField\":{\"deep\":[null,true,1.5]},\"containers\":[{\"name\":\"c\","
	    "\"image\":\"busybox\",\"livenessProbe\":{\"exec\":{\"command\":[\"true\"]}},"
	    "\"securityContext\":{\"seccompProfile\":{\"type\":\"RuntimeDefault\"}}}]},"
	    "\"status\":{\"phase\":\"Whatever\"},\"extra\":\"kept\"}",
	    &fe);
	assert_int_equal(fe.n, 0);
	json_t *want = parse("{\"deep\":[null,true,1.5]}");
	assert_true(json_equal(jget(pod, "spec.futureField"), want));
	json_decref(want);
	want = parse("{\"a\":[1,2,{}]}");
	assert_true(json_equal(jget(pod, "metadata.zz"), want));
	json_decref(want);
	assert_string_equal(sget(pod, "spec.nodeSelector.disk"), "ssd");
	assert_string_equal(sget(pod, "spec.tolerations.0.key"), "k");
	assert_string_equal(sget(pod, "spec.containers.0.livenessProbe.exec.command.0"), "true");
	assert_string_equal(sget(pod, "spec.containers.0.securityContext.seccompProfile.type"),
	                    "RuntimeDefault");
	assert_string_equal(sget(pod, "metadata.finalizers.0"), "x/y");
	assert_string_equal(sget(pod, "status.phase"), "Whatever");
	assert_string_equal(sget(pod, "extra"), "kept");
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void generate_name_yields_a_valid_name(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize("{\"metadata\":{\"generateName\":\"web-\"},\"spec\":{"
	                        "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
	                        &fe);
	assert_int_equal(fe.n, 0);
	const char *name = pod_name(pod);
	assert_int_equal(strlen(name), 9);
	assert_memory_equal(name, "web-", 4);
	assert_true(k8s_is_dns1123_subdomain(name));
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	pod = normalize("{\"metadata\":{\"generateName\":\"Web_\"},\"spec\":{"
	                "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
	                &fe);
	expect_cause(&fe, "metadata.generateName", K8S_FIELD_INVALID,
	             "Invalid value: \"Web_\": " SUBDOMAIN_ERR);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void required_fields_are_reported(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize("{\"metadata\":{},\"spec\":{\"containers\":[{}]}}", &fe);
	expect_cause(&fe, "metadata.name", K8S_FIELD_REQUIRED,
	             "Required value: name or generateName is required");
	expect_cause(&fe, "spec.containers[0].name", K8S_FIELD_REQUIRED, "Required value");
	expect_cause(&fe, "spec.containers[0].image", K8S_FIELD_REQUIRED, "Required value");
	assert_int_equal(fe.n, 3);
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	pod = normalize("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[]}}", &fe);
	expect_cause(&fe, "spec.containers", K8S_FIELD_REQUIRED, "Required value");
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	pod = normalize("{\"metadata\":{\"name\":\"p\"}}", &fe);
	expect_cause(&fe, "spec.containers", K8S_FIELD_REQUIRED, "Required value");
	assert_int_equal(fe.n, 1);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void names_must_be_rfc1123(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize("{\"metadata\":{\"name\":\"Bad_Pod\",\"namespace\":\"a.b\"},"
	                        "\"spec\":{\"containers\":[{\"name\":\"Web_1\",\"image\":\"x\"}]}}",
	                        &fe);
	expect_cause(&fe, "metadata.name", K8S_FIELD_INVALID,
	             "Invalid value: \"Bad_Pod\": " SUBDOMAIN_ERR);
	expect_cause(&fe, "metadata.namespace", K8S_FIELD_INVALID,
	             "Invalid value: \"a.b\": must not contain dots");
	expect_cause(&fe, "spec.containers[0].name", K8S_FIELD_INVALID,
	             "Invalid value: \"Web_1\": " LABEL_ERR);
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	char long_name[80];
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	char text[256];
	snprintf(text, sizeof text,
	         "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"%s\","
	         "\"image\":\"x\"}]}}",
	         long_name);
	pod = normalize(text, &fe);
	char want[200];
	snprintf(want, sizeof want, "Invalid value: \"%s\": must be no more than 63 characters",
	         long_name);
	expect_cause(&fe, "spec.containers[0].name", K8S_FIELD_INVALID, want);
	assert_int_equal(fe.n, 1);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void container_names_are_unique_across_lists(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod =
	    normalize("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":["
	              "{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"a\",\"image\":\"x\"}],"
	              "\"initContainers\":[{\"name\":\"a\",\"image\":\"x\"},"
	              "{\"name\":\"b\",\"image\":\"x\"}]}}",
	              &fe);
	expect_cause(&fe, "spec.containers[1].name", K8S_FIELD_DUPLICATE, "Duplicate value: \"a\"");
	expect_cause(&fe, "spec.initContainers[0].name", K8S_FIELD_DUPLICATE,
	             "Duplicate value: \"a\"");
	expect_no_cause_at(&fe, "spec.containers[0].name");
	expect_no_cause_at(&fe, "spec.initContainers[1].name");
	assert_int_equal(fe.n, 2);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void ports_are_checked(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\","
	    "\"image\":\"x\",\"ports\":[{\"containerPort\":0},{\"containerPort\":70000},"
	    "{\"containerPort\":80,\"protocol\":\"ICMP\"},{\"containerPort\":81,\"hostPort\":"
	    "8080},{\"containerPort\":82,\"name\":\"http\"},{\"containerPort\":83,\"name\":"
	    "\"http\"},{\"containerPort\":84,\"name\":\"8080\"},{\"containerPort\":85,"
	    "\"protocol\":\"UDP\",\"hostPort\":0}]}]}}",
	    &fe);
	expect_cause(&fe, "spec.containers[0].ports[0].containerPort", K8S_FIELD_REQUIRED,
	             "Required value");
	expect_cause(&fe, "spec.containers[0].ports[1].containerPort", K8S_FIELD_INVALID,
	             "Invalid value: 70000: must be between 1 and 65535, inclusive");
	expect_cause(&fe, "spec.containers[0].ports[2].protocol", K8S_FIELD_NOT_SUPPORTED,
	             "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"");
	expect_cause(&fe, "spec.containers[0].ports[3].hostPort", K8S_FIELD_FORBIDDEN,
	             "Forbidden: hostPort is not supported by cocod: pods run in their own VM");
	expect_cause(&fe, "spec.containers[0].ports[5].name", K8S_FIELD_DUPLICATE,
	             "Duplicate value: \"http\"");
	expect_cause(&fe, "spec.containers[0].ports[6].name", K8S_FIELD_INVALID,
	             "Invalid value: \"8080\": must contain at least one letter (a-z)");
	expect_no_cause_at(&fe, "spec.containers[0].ports[7].hostPort");
	expect_no_cause_at(&fe, "spec.containers[0].ports[7].protocol");
	assert_int_equal(fe.n, 6);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void env_is_checked(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\","
	    "\"image\":\"x\",\"env\":[{\"name\":\"GOOD_1\",\"value\":\"v\"},{\"name\":\"my.env-"
	    "name\"},{\"name\":\"1BAD\"},{\"value\":\"x\"},{\"name\":\"S\",\"valueFrom\":{"
	    "\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\"}}}],\"envFrom\":[{}]}]}}",
	    &fe);
	expect_cause(&fe, "spec.containers[0].env[2].name", K8S_FIELD_INVALID,
	             "Invalid value: \"1BAD\": a valid environment variable name must consist of "
	             "alphabetic characters, digits, '_', '-', or '.', and must not start with a "
	             "digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used "
	             "for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')");
	expect_cause(&fe, "spec.containers[0].env[3].name", K8S_FIELD_REQUIRED, "Required value");
	expect_cause(&fe, "spec.containers[0].env[4].valueFrom", K8S_FIELD_FORBIDDEN, NULL);
	expect_cause(&fe, "spec.containers[0].envFrom", K8S_FIELD_FORBIDDEN, NULL);
	assert_int_equal(fe.n, 4);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void volumes_and_mounts_are_checked(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"volumes\":[{\"name\":\"data\","
	    "\"emptyDir\":{\"medium\":\"Memory\",\"sizeLimit\":\"64Mi\"}},{\"name\":\"host\","
	    "\"hostPath\":{\"path\":\"/etc\"}},{\"name\":\"cfg\",\"configMap\":{\"name\":\"c\"}},"
	    "{\"name\":\"odd\",\"emptyDir\":{\"medium\":\"Disk\",\"sizeLimit\":\"lots\"}},"
	    "{\"name\":\"data\"}],\"containers\":[{\"name\":\"c\",\"image\":\"x\","
	    "\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"/data\"},{\"name\":\"nope\","
	    "\"mountPath\":\"/nope\"},{\"name\":\"odd\",\"mountPath\":\"/data\"},{\"name\":"
	    "\"odd\",\"mountPath\":\"/x\",\"subPath\":\"../etc\"},{\"name\":\"odd\"}]}]}}",
	    &fe);
	expect_cause(&fe, "spec.volumes[1].hostPath", K8S_FIELD_FORBIDDEN,
	             "Forbidden: hostPath volumes are not supported by cocod: only emptyDir "
	             "volumes are");
	expect_cause(&fe, "spec.volumes[2].configMap", K8S_FIELD_FORBIDDEN,
	             "Forbidden: configMap volumes are not supported by cocod: only emptyDir "
	             "volumes are");
	expect_cause(&fe, "spec.volumes[3].emptyDir.medium", K8S_FIELD_NOT_SUPPORTED,
	             "Unsupported value: \"Disk\": supported values: \"\", \"Memory\"");
	expect_cause(&fe, "spec.volumes[3].emptyDir.sizeLimit", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.volumes[4].name", K8S_FIELD_DUPLICATE, "Duplicate value: \"data\"");
	expect_cause(&fe, "spec.containers[0].volumeMounts[1].name", K8S_FIELD_NOT_FOUND,
	             "Not found: \"nope\"");
	expect_cause(&fe, "spec.containers[0].volumeMounts[2].mountPath", K8S_FIELD_INVALID,
	             "Invalid value: \"/data\": must be unique");
	expect_cause(&fe, "spec.containers[0].volumeMounts[3].subPath", K8S_FIELD_INVALID,
	             "Invalid value: \"../etc\": must not contain '..'");
	expect_cause(&fe, "spec.containers[0].volumeMounts[4].mountPath", K8S_FIELD_REQUIRED,
	             "Required value");
	expect_no_cause_at(&fe, "spec.volumes[0].emptyDir.medium");
	expect_no_cause_at(&fe, "spec.containers[0].volumeMounts[0].name");
	assert_int_equal(fe.n, 9);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void resources_are_checked(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\","
	    "\"image\":\"x\",\"resources\":{\"requests\":{\"cpu\":\"2\",\"memory\":\"2Gi\"},"
	    "\"limits\":{\"cpu\":1,\"memory\":\"1Gi\"}}},{\"name\":\"d\",\"image\":\"x\","
	    "\"resources\":{\"requests\":{\"cpu\":\"1 Gi\",\"memory\":\"-1\",\"gpu\":\"1\","
	    "\"nvidia.com/gpu\":\"1\"}}},{\"name\":\"e\",\"image\":\"x\",\"resources\":{"
	    "\"requests\":{\"cpu\":\"250m\",\"memory\":\"512Mi\"},\"limits\":{\"cpu\":0.5,"
	    "\"memory\":\"1Gi\"}}}]}}",
	    &fe);
	expect_cause(&fe, "spec.containers[0].resources.requests", K8S_FIELD_INVALID,
	             "Invalid value: \"2\": must be less than or equal to cpu limit of 1");
	expect_cause(&fe, "spec.containers[0].resources.requests", K8S_FIELD_INVALID,
	             "Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi");
	expect_cause(&fe, "spec.containers[1].resources.requests[cpu]", K8S_FIELD_INVALID,
	             "Invalid value: \"1 Gi\": quantities must match the regular expression "
	             "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
	expect_cause(&fe, "spec.containers[1].resources.requests[memory]", K8S_FIELD_INVALID,
	             "Invalid value: \"-1\": must be greater than or equal to 0");
	expect_cause(&fe, "spec.containers[1].resources.requests[gpu]", K8S_FIELD_INVALID,
	             "Invalid value: \"gpu\": must be a standard resource for containers");
	expect_cause(&fe, "spec.containers[1].resources.requests[nvidia.com/gpu]",
	             K8S_FIELD_FORBIDDEN, NULL);
	expect_no_cause_at(&fe, "spec.containers[2].resources.requests");
	assert_int_equal(fe.n, 6);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void pod_policies_are_checked(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"restartPolicy\":\"Sometimes\","
	    "\"activeDeadlineSeconds\":0,\"terminationGracePeriodSeconds\":-1,\"dnsPolicy\":"
	    "\"Random\",\"containers\":[{\"name\":\"c\",\"image\":\"x\",\"imagePullPolicy\":"
	    "\"Maybe\"}]}}",
	    &fe);
	expect_cause(&fe, "spec.restartPolicy", K8S_FIELD_NOT_SUPPORTED,
	             "Unsupported value: \"Sometimes\": supported values: \"Always\", "
	             "\"OnFailure\", \"Never\"");
	expect_cause(&fe, "spec.activeDeadlineSeconds", K8S_FIELD_INVALID,
	             "Invalid value: 0: must be between 1 and 2147483647, inclusive");
	expect_cause(&fe, "spec.terminationGracePeriodSeconds", K8S_FIELD_INVALID,
	             "Invalid value: -1: must be greater than or equal to 0");
	expect_cause(&fe, "spec.dnsPolicy", K8S_FIELD_NOT_SUPPORTED, NULL);
	expect_cause(&fe, "spec.containers[0].imagePullPolicy", K8S_FIELD_NOT_SUPPORTED,
	             "Unsupported value: \"Maybe\": supported values: \"Always\", "
	             "\"IfNotPresent\", \"Never\"");
	assert_int_equal(fe.n, 5);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
	expect_valid("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"restartPolicy\":\"OnFailure\","
	             "\"activeDeadlineSeconds\":1,\"terminationGracePeriodSeconds\":0,"
	             "\"nodeName\":\"n1\",\"nodeSelector\":{\"a\":\"b\"},\"containers\":[{\"name\":"
	             "\"c\",\"image\":\"x\"}]}}");
}

static void runtime_classes_and_aliases(void **state)
{
	assert_string_equal(pod_runtime_class_tee("cocod-sim"), "sim");
	assert_string_equal(pod_runtime_class_tee("cocod-snp"), "snp");
	assert_string_equal(pod_runtime_class_tee("cocod-tdx"), "tdx");
	assert_string_equal(pod_runtime_class_tee("cocod-se"), "se");
	assert_string_equal(pod_runtime_class_tee("kata-qemu-coco-dev"), "sim");
	assert_string_equal(pod_runtime_class_tee("kata-qemu-snp"), "snp");
	assert_string_equal(pod_runtime_class_tee("kata-qemu-tdx"), "tdx");
	assert_string_equal(pod_runtime_class_tee("kata-qemu-se"), "se");
	assert_null(pod_runtime_class_tee("kata-qemu"));
	assert_null(pod_runtime_class_tee("runc"));
	assert_null(pod_runtime_class_tee(""));
	assert_null(pod_runtime_class_tee(NULL));

	struct k8s_field_errors fe;
	json_t *pod = normalize("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"runtimeClassName\":"
	                        "\"runc\",\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}",
	                        &fe);
	expect_cause(&fe, "spec.runtimeClassName", K8S_FIELD_NOT_SUPPORTED,
	             "Unsupported value: \"runc\": supported values: \"cocod-sim\", \"cocod-snp\", "
	             "\"cocod-tdx\", \"cocod-se\", \"kata-qemu-coco-dev\", \"kata-qemu-snp\", "
	             "\"kata-qemu-tdx\", \"kata-qemu-se\"");
	assert_int_equal(fe.n, 1);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
	expect_valid("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"runtimeClassName\":"
	             "\"kata-qemu-tdx\",\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}");
}

static void labels_and_annotations_are_checked(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\",\"labels\":{\"app\":\"web\",\"example.com/tier\":"
	    "\"\",\"bad key\":\"v\",\"ok\":\"-bad-\",\"n\":7},\"annotations\":{\"Example.COM/"
	    "Mixed\":\"fine\",\"/x\":\"v\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
	    "\"image\":\"x\"}]}}",
	    &fe);
	expect_cause(&fe, "metadata.labels", K8S_FIELD_INVALID,
	             "Invalid value: \"bad key\": name part must consist of alphanumeric "
	             "characters, '-', '_' or '.', and must start and end with an alphanumeric "
	             "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
	             "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')");
	expect_cause(&fe, "metadata.labels", K8S_FIELD_INVALID,
	             "Invalid value: \"-bad-\": a valid label must be an empty string or consist "
	             "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
	             "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
	             "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')");
	expect_cause(&fe, "metadata.labels[n]", K8S_FIELD_INVALID,
	             "Invalid value: 7: must be a string");
	expect_cause(&fe, "metadata.annotations", K8S_FIELD_INVALID,
	             "Invalid value: \"/x\": prefix part must be non-empty");
	assert_int_equal(fe.n, 4);
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	/* 256 KiB of annotations in total */
	json_t *big = parse(MINIMAL);
	json_t *ann = json_object();
	char *val = malloc(200 * 1024);
	memset(val, 'v', 200 * 1024 - 1);
	val[200 * 1024 - 1] = '\0';
	json_object_set_new(ann, "a", json_string(val));
	json_object_set_new(ann, "b", json_string(val));
	free(val);
	json_object_set_new(json_object_get(big, "metadata"), "annotations", ann);
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_normalize(big, "cocod-sim", &fe), ERR_INVALID);
	expect_cause(&fe, "metadata.annotations", K8S_FIELD_TOO_LONG,
	             "Too long: may not be more than 262144 bytes");
	k8s_field_errors_fini(&fe);
	json_decref(big);
}

static void host_features_are_forbidden(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"hostNetwork\":true,\"hostPID\":true,"
	    "\"hostIPC\":true,\"containers\":[{\"name\":\"c\",\"image\":\"x\","
	    "\"securityContext\":{\"privileged\":true,\"allowPrivilegeEscalation\":true,"
	    "\"capabilities\":{\"add\":[\"NET_ADMIN\"],\"drop\":[\"ALL\"]}}}]}}",
	    &fe);
	expect_cause(&fe, "spec.hostNetwork", K8S_FIELD_FORBIDDEN,
	             "Forbidden: hostNetwork is not supported by cocod: pods run in their own VM");
	expect_cause(&fe, "spec.hostPID", K8S_FIELD_FORBIDDEN,
	             "Forbidden: hostPID is not supported by cocod: pods run in their own VM");
	expect_cause(&fe, "spec.hostIPC", K8S_FIELD_FORBIDDEN,
	             "Forbidden: hostIPC is not supported by cocod: pods run in their own VM");
	expect_cause(&fe, "spec.containers[0].securityContext.privileged", K8S_FIELD_FORBIDDEN,
	             "Forbidden: privileged is not supported by cocod: pods run in their own VM");
	expect_cause(&fe, "spec.containers[0].securityContext.capabilities.add",
	             K8S_FIELD_FORBIDDEN, NULL);
	assert_int_equal(fe.n, 5);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
	expect_valid("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"hostNetwork\":false,"
	             "\"containers\":[{\"name\":\"c\",\"image\":\"x\",\"securityContext\":{"
	             "\"privileged\":false,\"runAsUser\":1000,\"capabilities\":{\"drop\":[\"ALL\"]}"
	             "}}]}}");
}

static void hostile_types_are_field_errors(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":7,\"labels\":[\"a\"],\"annotations\":\"x\"},\"spec\":{"
	    "\"restartPolicy\":1,\"hostNetwork\":\"yes\",\"volumes\":{},\"containers\":["
	    "\"str\",{\"name\":[],\"image\":5,\"env\":{},\"ports\":[5],\"resources\":\"x\","
	    "\"command\":\"sh\",\"args\":[1],\"securityContext\":[],\"volumeMounts\":[null]},"
	    "{\"name\":\"c\",\"image\":\"x\",\"resources\":{\"limits\":[]},\"ports\":[{"
	    "\"containerPort\":\"80\"}],\"env\":[{\"name\":{}}]}],\"initContainers\":{}}}",
	    &fe);
	expect_cause(&fe, "metadata.name", K8S_FIELD_INVALID, "Invalid value: 7: must be a string");
	expect_cause(&fe, "metadata.labels", K8S_FIELD_INVALID,
	             "Invalid value: must be an object of strings");
	expect_cause(&fe, "metadata.annotations", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.restartPolicy", K8S_FIELD_INVALID,
	             "Invalid value: 1: must be a string");
	expect_cause(&fe, "spec.hostNetwork", K8S_FIELD_INVALID,
	             "Invalid value: \"yes\": must be a boolean");
	expect_cause(&fe, "spec.volumes", K8S_FIELD_INVALID, "Invalid value: must be an array");
	expect_cause(&fe, "spec.initContainers", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[0]", K8S_FIELD_INVALID,
	             "Invalid value: \"str\": must be an object");
	expect_cause(&fe, "spec.containers[1].name", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].image", K8S_FIELD_INVALID,
	             "Invalid value: 5: must be a string");
	expect_cause(&fe, "spec.containers[1].env", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].ports[0]", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].resources", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].command", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].args[0]", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].securityContext", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[1].volumeMounts[0]", K8S_FIELD_INVALID,
	             "Invalid value: null: must be an object");
	expect_cause(&fe, "spec.containers[2].resources.limits", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[2].ports[0].containerPort", K8S_FIELD_INVALID,
	             "Invalid value: \"80\": must be an integer");
	expect_cause(&fe, "spec.containers[2].env[0].name", K8S_FIELD_INVALID, NULL);
	/* a wrong type is one error, not also "Required" */
	expect_no_cause_at(&fe, "spec.containers");
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	static const char *const docs[] = {"[]",
	                                   "\"pod\"",
	                                   "{\"spec\":\"x\"}",
	                                   "{\"metadata\":[],\"spec\":[]}",
	                                   "{\"spec\":{\"containers\":{}}}",
	                                   "null",
	                                   NULL};
	for (const char *const *d = docs; *d; d++) {
		json_t *j = json_loads(*d, JSON_DECODE_ANY, NULL);
		k8s_field_errors_init(&fe);
		assert_int_equal(pod_normalize(j, "cocod-sim", &fe), ERR_INVALID);
		assert_true(fe.n > 0);
		k8s_field_errors_fini(&fe);
		json_decref(j);
	}
	pod = normalize("{\"spec\":\"x\"}", &fe);
	expect_cause(&fe, "spec", K8S_FIELD_INVALID, "Invalid value: \"x\": must be an object");
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void every_error_is_collected(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"-x\"},\"spec\":{\"restartPolicy\":\"No\",\"containers\":"
	    "[{\"name\":\"A\"},{\"name\":\"b\",\"image\":\"x\",\"ports\":[{\"containerPort\":"
	    "0}]}]}}",
	    &fe);
	expect_cause(&fe, "metadata.name", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.restartPolicy", K8S_FIELD_NOT_SUPPORTED, NULL);
	expect_cause(&fe, "spec.containers[0].name", K8S_FIELD_INVALID, NULL);
	expect_cause(&fe, "spec.containers[0].image", K8S_FIELD_REQUIRED, NULL);
	expect_cause(&fe, "spec.containers[1].ports[0].containerPort", K8S_FIELD_REQUIRED, NULL);
	assert_int_equal(fe.n, 5);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void bounds_are_enforced(void **state)
{
	json_t *pod = parse(MINIMAL);
	json_t *ctrs = json_object_get(json_object_get(pod, "spec"), "containers");
	for (int i = 1; i <= POD_MAX_CONTAINERS; i++) {
		char name[16];
		snprintf(name, sizeof name, "c%d", i);
		json_array_append_new(ctrs, json_pack("{s:s,s:s}", "name", name, "image", "x"));
	}
	struct k8s_field_errors fe;
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_normalize(pod, "cocod-sim", &fe), ERR_INVALID);
	expect_cause(&fe, "spec.containers", K8S_FIELD_TOO_MANY,
	             "Too many: 65: must have at most 64 items");
	assert_int_equal(fe.n, 1);
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	pod = parse(MINIMAL);
	json_t *ctr =
	    json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
	json_t *env = json_array();
	for (int i = 0; i <= POD_MAX_ENV; i++)
		json_array_append_new(env, json_pack("{s:s}", "name", "A"));
	json_object_set_new(ctr, "env", env);
	char *huge = malloc(POD_MAX_STRING + 2);
	memset(huge, 'i', POD_MAX_STRING + 1);
	huge[POD_MAX_STRING + 1] = '\0';
	json_object_set_new(ctr, "image", json_string(huge));
	free(huge);
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_normalize(pod, "cocod-sim", &fe), ERR_INVALID);
	expect_cause(&fe, "spec.containers[0].env", K8S_FIELD_TOO_MANY,
	             "Too many: 1025: must have at most 1024 items");
	expect_cause(&fe, "spec.containers[0].image", K8S_FIELD_TOO_LONG,
	             "Too long: may not be more than 65536 bytes");
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	/* the error list itself is bounded */
	k8s_field_errors_init(&fe);
	for (int i = 0; i < K8S_FIELD_ERRORS_MAX + 10; i++)
		k8s_fe_required(&fe, "x", "");
	assert_int_equal(fe.n, K8S_FIELD_ERRORS_MAX);
	assert_int_equal(fe.dropped, 10);
	k8s_field_errors_fini(&fe);
}

static char *status_text(const char *name, const struct k8s_field_errors *fe)
{
	json_t *st = k8s_invalid_status("Pod", name, fe);
	char *s = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	return s;
}

static void status_with_one_cause(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"containers\":[{"
	                        "\"name\":\"c\"}]}}",
	                        &fe);
	char *s = status_text(pod_name(pod), &fe);
	assert_string_equal(
	    s, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
	       "\"Failure\",\"message\":\"Pod \\\"x\\\" is invalid: spec.containers[0].image: "
	       "Required value\",\"reason\":\"Invalid\",\"details\":{\"name\":\"x\",\"kind\":"
	       "\"Pod\",\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":\"Required "
	       "value\",\"field\":\"spec.containers[0].image\"}]},\"code\":422}");
	free(s);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void status_with_several_causes(void **state)
{
	struct k8s_field_errors fe;
	k8s_field_errors_init(&fe);
	k8s_fe_required(&fe, "spec.containers[0].image", "");
	k8s_fe_invalid_str(&fe, "metadata.labels", "a b", "bad");
	k8s_fe_required(&fe, "spec.containers[0].image", ""); /* same text: once in message */
	json_t *st = k8s_invalid_status("Pod", "", &fe);
	assert_string_equal(json_string_value(json_object_get(st, "message")),
	                    "Pod \"\" is invalid: [spec.containers[0].image: Required value, "
	                    "metadata.labels: Invalid value: \"a b\": bad]");
	json_t *details = json_object_get(st, "details");
	assert_null(json_object_get(details, "name")); /* omitempty */
	json_t *causes = json_object_get(details, "causes");
	assert_int_equal(json_array_size(causes), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(causes, 1), "reason")),
	                    "FieldValueInvalid");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(causes, 1), "message")),
	    "Invalid value: \"a b\": bad");
	assert_int_equal(json_integer_value(json_object_get(st, "code")), 422);
	json_decref(st);
	k8s_field_errors_fini(&fe);
}

static void resources_as_the_scheduler_sees_them(void **state)
{
	struct k8s_field_errors fe;
	json_t *pod = normalize(
	    "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"a\","
	    "\"image\":\"x\",\"resources\":{\"requests\":{\"cpu\":\"250m\",\"memory\":"
	    "\"64Mi\"},\"limits\":{\"cpu\":\"1\",\"memory\":\"128Mi\"}}},{\"name\":\"b\","
	    "\"image\":\"x\",\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"1Gi\"}}}],"
	    "\"initContainers\":[{\"name\":\"i\",\"image\":\"x\",\"resources\":{\"requests\":{"
	    "\"cpu\":\"2\"},\"limits\":{\"cpu\":\"2\",\"memory\":\"10Mi\"}}}]}}",
	    &fe);
	assert_int_equal(fe.n, 0);
	struct pod_resources r;
	pod_resources(pod, &r);
	assert_int_equal(r.cpu_request_milli, 2000);               /* init 2 > 250m + 500m */
	assert_int_equal(r.mem_request_bytes, 1088LL << 20);       /* 64Mi + 1Gi > 10Mi */
	assert_int_equal(r.cpu_limit_milli, 2000);                 /* max(1.5, 2) */
	assert_int_equal(r.mem_limit_bytes, (128LL + 1024) << 20); /* max(1152Mi, 10Mi) */
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	/* not normalized: a limit alone still counts as the request; one
	 * container without a limit makes the pod unlimited */
	pod = parse("{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"cpu\":\"1\"}}},"
	            "{\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"1G\"}}}]}}");
	pod_resources(pod, &r);
	assert_int_equal(r.cpu_request_milli, 1100);
	assert_int_equal(r.mem_request_bytes, 1000000000);
	assert_int_equal(r.cpu_limit_milli, 0);
	assert_int_equal(r.mem_limit_bytes, 0);
	json_decref(pod);
}

static const char *qos_of(const char *text)
{
	json_t *pod = parse(text);
	const char *q = pod_qos_class(pod);
	json_decref(pod);
	return q;
}

static void qos_classes(void **state)
{
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{}]}}"), "BestEffort");
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{"
	                           "\"cpu\":\"0\"}}}]}}"),
	                    "BestEffort");
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{"
	                           "\"cpu\":\"100m\"}}}]}}"),
	                    "Burstable");
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{"
	                           "\"cpu\":\"1\",\"memory\":\"1Gi\"}}}]}}"),
	                    "Guaranteed");
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{"
	                           "\"cpu\":\"1\",\"memory\":\"1Gi\"},\"requests\":{\"cpu\":"
	                           "\"500m\"}}}]}}"),
	                    "Burstable");
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{"
	                           "\"cpu\":\"1\"}}}]}}"),
	                    "Burstable");
	/* every container, init ones included, needs both limits */
	assert_string_equal(
	    qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{"
	           "\"cpu\":\"1\",\"memory\":\"1Gi\"}}}],\"initContainers\":[{}]}}"),
	    "Burstable");
	assert_string_equal(qos_of("{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{"
	                           "\"cpu\":\"1\",\"memory\":\"1Gi\"}}},{\"resources\":{\"limits\":"
	                           "{\"cpu\":\"2\",\"memory\":\"1M\"},\"requests\":{\"cpu\":\"2\","
	                           "\"memory\":\"1M\"}}}]}}"),
	                    "Guaranteed");
}

static void updates_may_change_only_labels_and_annotations(void **state)
{
	struct k8s_field_errors fe;
	json_t *old = normalize("{\"metadata\":{\"name\":\"p\",\"uid\":\"u1\",\"labels\":{"
	                        "\"a\":\"1\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
	                        "\"image\":\"busybox:1\"}]}}",
	                        &fe);
	assert_int_equal(fe.n, 0);
	k8s_field_errors_fini(&fe);

	json_t *new = json_deep_copy(old);
	json_object_set_new(json_object_get(json_object_get(new, "metadata"), "labels"), "b",
	                    json_string("2"));
	json_object_set_new(json_object_get(new, "metadata"), "annotations",
	                    json_pack("{s:s}", "note", "x"));
	json_object_set_new(new, "status", json_pack("{s:s}", "phase", "Running"));
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_validate_update(old, new, &fe), 0);
	assert_int_equal(fe.n, 0);
	k8s_field_errors_fini(&fe);
	json_decref(new);

	new = json_deep_copy(old);
	json_object_set_new(
	    json_array_get(json_object_get(json_object_get(new, "spec"), "containers"), 0), "image",
	    json_string("busybox:2"));
	json_object_set_new(json_object_get(new, "spec"), "restartPolicy", json_string("Never"));
	json_object_set_new(json_object_get(new, "metadata"), "name", json_string("q"));
	json_object_set_new(json_object_get(new, "metadata"), "uid", json_string("u2"));
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_validate_update(old, new, &fe), ERR_INVALID);
	expect_cause(&fe, "spec", K8S_FIELD_FORBIDDEN,
	             "Forbidden: pod updates may not change fields other than `metadata.labels` "
	             "or `metadata.annotations`: cocod pods are immutable, not even "
	             "`spec.containers[*].image` may change; delete and recreate the pod "
	             "(changed: `spec.containers`, `spec.restartPolicy`)");
	expect_cause(&fe, "metadata.name", K8S_FIELD_INVALID,
	             "Invalid value: \"q\": field is immutable");
	expect_cause(&fe, "metadata.uid", K8S_FIELD_INVALID,
	             "Invalid value: \"u2\": field is immutable");
	assert_int_equal(fe.n, 3);
	k8s_field_errors_fini(&fe);
	json_decref(new);

	/* a field added to the spec is a change too; uid left out is not */
	new = json_deep_copy(old);
	json_object_set_new(json_object_get(new, "spec"), "activeDeadlineSeconds", json_integer(5));
	json_object_del(json_object_get(new, "metadata"), "uid");
	k8s_field_errors_init(&fe);
	assert_int_equal(pod_validate_update(old, new, &fe), ERR_INVALID);
	expect_cause(&fe, "spec", K8S_FIELD_FORBIDDEN, NULL);
	assert_non_null(strstr(fe.v[0].message, "`spec.activeDeadlineSeconds`"));
	assert_int_equal(fe.n, 1);
	k8s_field_errors_fini(&fe);
	json_decref(new);
	json_decref(old);
}

static void k8s_helpers(void **state)
{
	char *q = k8s_quote("a\"b\\c\n\x01\xff\xc3\xa9");
	assert_string_equal(q, "\"a\\\"b\\\\c\\n\\x01\\xff\xc3\xa9\"");
	free(q);

	assert_true(k8s_is_dns1123_label("my-name"));
	assert_true(k8s_is_dns1123_label("123-abc"));
	assert_false(k8s_is_dns1123_label("a.b"));
	assert_false(k8s_is_dns1123_label("-a"));
	assert_false(k8s_is_dns1123_label(""));
	assert_true(k8s_is_dns1123_subdomain("example.com"));
	assert_false(k8s_is_dns1123_subdomain("example..com"));
	assert_false(k8s_is_dns1123_subdomain("Example.com"));

	struct k8s_field_errors fe;
	k8s_field_errors_init(&fe);
	k8s_validate_qualified_name(&fe, "k", "example.com/My_Name.1");
	k8s_validate_qualified_name(&fe, "k", "a/b/c");
	k8s_validate_qualified_name(&fe, "k", "Bad.Prefix/x");
	k8s_validate_label_value(&fe, "v", "");
	assert_int_equal(fe.n, 2);
	assert_non_null(strstr(fe.v[0].message, "a qualified name must consist of"));
	assert_non_null(strstr(fe.v[1].message, "prefix part a lowercase RFC 1123 subdomain"));
	k8s_field_errors_fini(&fe);

	char uid[37], uid2[37];
	assert_int_equal(k8s_new_uid(uid), 0);
	assert_int_equal(k8s_new_uid(uid2), 0);
	assert_int_equal(strlen(uid), 36);
	assert_string_not_equal(uid, uid2);
	assert_true(uid[8] == '-' && uid[13] == '-' && uid[18] == '-' && uid[23] == '-');
	assert_int_equal(uid[14], '7'); /* RFC 9562 version 7: time-ordered */
	assert_non_null(strchr("89ab", uid[19]));
	/* the first 48 bits are the Unix time in milliseconds */
	char ms_hex[13];
	memcpy(ms_hex, uid, 8);
	memcpy(ms_hex + 8, uid + 9, 4);
	ms_hex[12] = '\0';
	long long ms = strtoll(ms_hex, NULL, 16), now_ms = (long long)time(NULL) * 1000;
	assert_true(ms > now_ms - 5000 && ms < now_ms + 5000);
	/* a uid made later sorts after, whatever the random bits; many are distinct */
	struct timespec pause = {0, 2000000};
	nanosleep(&pause, NULL);
	assert_int_equal(k8s_new_uid(uid2), 0);
	assert_true(strcmp(uid, uid2) < 0);
	char seen[100][37];
	for (int i = 0; i < 100; i++) {
		assert_int_equal(k8s_new_uid(seen[i]), 0);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}

	char ts[32];
	k8s_now_rfc3339(ts);
	assert_int_equal(strlen(ts), 20);
	assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == 'Z');
	assert_true(strncmp(ts, "20", 2) == 0);
}

/* ---- init-data ---- */

#define INIT_PATH "metadata.annotations[io.katacontainers.config.hypervisor.cc_init_data]"
#define INIT_TOML "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\nk = \"v\"\n"

/* A pod whose annotations are `annotations` (a new reference is taken),
 * normalized. */
static json_t *pod_with(json_t *annotations, struct k8s_field_errors *fe)
{
	json_t *pod = parse("{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{"
	                    "\"name\":\"c\",\"image\":\"busybox\"}]}}");
	json_object_set_new(json_object_get(pod, "metadata"), "annotations", annotations);
	k8s_field_errors_init(fe);
	pod_normalize(pod, "cocod-sim", fe);
	return pod;
}

static const char *digest_of(const json_t *pod)
{
	return json_string_value(
	    json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"),
	                    INITDATA_DIGEST_ANNOTATION));
}

static void expect_init_error(const char *value, const char *message)
{
	struct k8s_field_errors fe;
	json_t *pod = pod_with(json_pack("{s:s}", INITDATA_ANNOTATION, value), &fe);
	cleanup_free char *want = xasprintf("Invalid value: %s", message);
	expect_cause(&fe, INIT_PATH, K8S_FIELD_INVALID, want);
	assert_int_equal(fe.n, 1);
	assert_null(digest_of(pod));
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void init_data_is_validated_and_its_digest_recorded(void **state)
{
	struct k8s_field_errors fe;
	unsigned char md[32];
	char hex[65];
	EVP_Digest(INIT_TOML, strlen(INIT_TOML), md, NULL, EVP_sha256(), NULL);
	hex_encode(md, sizeof md, hex);
	cleanup_free char *want = xasprintf("sha256:%s", hex);
	cleanup_free char *good = init_annotation(INIT_TOML);

	/* recorded; a client's digest is replaced */
	json_t *pod = pod_with(json_pack("{s:s, s:s}", INITDATA_ANNOTATION, good,
	                                 INITDATA_DIGEST_ANNOTATION, "sha256:forged"),
	                       &fe);
	assert_int_equal(fe.n, 0);
	assert_string_equal(digest_of(pod), want);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
	/* the old name works; with both, the hypervisor. one wins */
	pod = pod_with(json_pack("{s:s}", INITDATA_ANNOTATION_OLD, good), &fe);
	assert_int_equal(fe.n, 0);
	assert_string_equal(digest_of(pod), want);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
	pod = pod_with(json_pack("{s:s, s:s}", INITDATA_ANNOTATION, good, INITDATA_ANNOTATION_OLD,
	                         "not even base64!"),
	               &fe);
	assert_int_equal(fe.n, 0);
	assert_string_equal(digest_of(pod), want);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
	/* without init-data there is no digest, whatever the client says */
	pod = pod_with(json_pack("{s:s}", INITDATA_DIGEST_ANNOTATION, "sha256:forged"), &fe);
	assert_int_equal(fe.n, 0);
	assert_null(digest_of(pod));
	assert_non_null(json_object_get(json_object_get(pod, "metadata"), "annotations"));
	k8s_field_errors_fini(&fe);
	json_decref(pod);

	/* each problem is one cause at the annotation, saying what is wrong */
	expect_init_error("H4sI!AAA", "init-data is not standard base64: character 5 is '!'");
	cleanup_free char *plain = b64_encode(INIT_TOML, strlen(INIT_TOML));
	expect_init_error(plain, "init-data is not valid gzip data: incorrect header check");
	cleanup_free char *cut = xstrndup(good, strlen(good) - 8);
	expect_init_error(cut, "init-data: the gzip data is truncated");
	cleanup_free char *toml = init_annotation("version = \"0.1.0\"\nalgorithm = \"sha256\"\n"
	                                          "[other]\n");
	expect_init_error(toml, "init-data: TOML not understood at line 3");
	cleanup_free char *md5 = init_annotation("version = \"0.1.0\"\nalgorithm = \"md5\"\n");
	expect_init_error(md5, "init-data: algorithm md5 is not sha256, sha384 or sha512");
	cleanup_free char *nover = init_annotation("algorithm = \"sha384\"\n");
	expect_init_error(nover, "init-data: version missing");
	/* the wrong JSON type is the annotation check's to report, once */
	pod = pod_with(json_pack("{s:i}", INITDATA_ANNOTATION, 1), &fe);
	expect_cause(&fe, INIT_PATH, K8S_FIELD_INVALID, "Invalid value: 1: must be a string");
	assert_int_equal(fe.n, 1);
	k8s_field_errors_fini(&fe);
	json_decref(pod);
}

static void init_data_may_not_change(void **state)
{
	struct k8s_field_errors fe;
	cleanup_free char *a = init_annotation(INIT_TOML);
	cleanup_free char *b = init_annotation("version = \"0.1.0\"\nalgorithm = \"sha384\"\n");
	json_t *old = pod_with(json_pack("{s:s, s:s}", INITDATA_ANNOTATION, a, "note", "1"), &fe);
	assert_int_equal(fe.n, 0);
	k8s_field_errors_fini(&fe);
	const char *immutable =
	    "Invalid value: field is immutable: init-data is fixed when the pod "
	    "is created (it is measured into the pod VM); delete and recreate "
	    "the pod to change it";

	/* other annotations may change, and a body without the digest gets it back */
	json_t *next = pod_with(json_pack("{s:s, s:s}", INITDATA_ANNOTATION, a, "note", "2"), &fe);
	assert_int_equal(fe.n, 0);
	assert_int_equal(pod_validate_update(old, next, &fe), 0);
	assert_string_equal(digest_of(next), digest_of(old));
	k8s_field_errors_fini(&fe);
	json_decref(next);
	/* changed, removed, or added under the old name: immutable */
	json_t *changes[] = {
	    json_pack("{s:s, s:s}", INITDATA_ANNOTATION, b, "note", "1"),
	    json_pack("{s:s}", "note", "1"),
	    json_pack("{s:s, s:s}", INITDATA_ANNOTATION, a, INITDATA_ANNOTATION_OLD, b),
	};
	const char *fields[] = {
	    INIT_PATH, INIT_PATH,
	    "metadata.annotations[io.katacontainers.config.runtime.cc_init_data]"};
	for (size_t i = 0; i < 3; i++) {
		next = pod_with(changes[i], &fe);
		assert_int_equal(fe.n, 0);
		assert_int_equal(pod_validate_update(old, next, &fe), ERR_INVALID);
		expect_cause(&fe, fields[i], K8S_FIELD_INVALID, immutable);
		assert_int_equal(fe.n, 1);
		k8s_field_errors_fini(&fe);
		json_decref(next);
	}
	json_decref(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_are_applied),
	    cmocka_unit_test(pull_policy_follows_the_image_tag),
	    cmocka_unit_test(given_values_are_not_overridden),
	    cmocka_unit_test(limits_become_requests_and_more),
	    cmocka_unit_test(unknown_fields_are_preserved),
	    cmocka_unit_test(generate_name_yields_a_valid_name),
	    cmocka_unit_test(required_fields_are_reported),
	    cmocka_unit_test(names_must_be_rfc1123),
	    cmocka_unit_test(container_names_are_unique_across_lists),
	    cmocka_unit_test(ports_are_checked),
	    cmocka_unit_test(env_is_checked),
	    cmocka_unit_test(volumes_and_mounts_are_checked),
	    cmocka_unit_test(resources_are_checked),
	    cmocka_unit_test(pod_policies_are_checked),
	    cmocka_unit_test(runtime_classes_and_aliases),
	    cmocka_unit_test(labels_and_annotations_are_checked),
	    cmocka_unit_test(host_features_are_forbidden),
	    cmocka_unit_test(hostile_types_are_field_errors),
	    cmocka_unit_test(every_error_is_collected),
	    cmocka_unit_test(bounds_are_enforced),
	    cmocka_unit_test(status_with_one_cause),
	    cmocka_unit_test(status_with_several_causes),
	    cmocka_unit_test(resources_as_the_scheduler_sees_them),
	    cmocka_unit_test(qos_classes),
	    cmocka_unit_test(updates_may_change_only_labels_and_annotations),
	    cmocka_unit_test(init_data_is_validated_and_its_digest_recorded),
	    cmocka_unit_test(init_data_may_not_change),
	    cmocka_unit_test(k8s_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
