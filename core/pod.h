/* pod: what a core/v1 Pod means to cocod, on the pod's own JSON document —
 * Kubernetes' defaults, Kubernetes' validation (plus rejection of what would
 * silently change meaning inside a confidential VM), the runtime class → TEE
 * mapping, effective resources, QoS class, and the update rules.  Unknown
 * fields are never touched. */
#ifndef COCOD_POD_H
#define COCOD_POD_H

#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "k8s.h"

/* Bounds on the work one pod can cause; beyond them validation reports a
 * FieldValueTooMany / FieldValueTooLong. */
#define POD_MAX_CONTAINERS 64 /* per list: containers, initContainers */
#define POD_MAX_VOLUMES    64
#define POD_MAX_ENV        1024        /* per container */
#define POD_MAX_ITEMS      256         /* ports, volumeMounts, command, args per container */
#define POD_MAX_STRING     (64 * 1024) /* any string field cocod reads */

/* Applies Kubernetes' defaults to `pod` in place (restartPolicy Always,
 * terminationGracePeriodSeconds 30, dnsPolicy ClusterFirst, schedulerName
 * default-scheduler, enableServiceLinks true, priority 0, securityContext {},
 * runtimeClassName `default_runtime_class` (no default when NULL), namespace
 * "default"; per container imagePullPolicy from the image tag, termination
 * message path/policy, port protocol TCP, requests copied from limits; volumes
 * without a source become emptyDir), gives the pod a name from generateName
 * when it has none, then validates everything cocod reads, init-data
 * included: the annotation INITDATA_ANNOTATION (tee/initdata.h) must decode
 * to init-data the KBS accepts, and its digest ("sha384:<hex>") is recorded
 * under INITDATA_DIGEST_ANNOTATION, replacing any value given.  Every problem is
 * added to `fe` (which the caller initialised); a value of the wrong JSON type
 * is a field error, never a crash.  Returns 0, or ERR_INVALID when this call
 * added errors.  Does not set uid, resourceVersion or timestamps: the API
 * layer owns those, and checks that a body namespace matches the URL. */
int pod_normalize(json_t *pod, const char *default_runtime_class, struct k8s_field_errors *fe);

/* metadata.namespace, or "default" when absent.  Borrowed from `pod`. */
const char *pod_namespace(const json_t *pod);
/* metadata.name, or "" when absent.  Borrowed from `pod`. */
const char *pod_name(const json_t *pod);

/* The TEE a runtime class runs on: "sim", "snp", "tdx", "se" for cocod-sim,
 * cocod-snp, cocod-tdx, cocod-se and CoCo's kata-qemu-coco-dev (sim),
 * kata-qemu-snp, kata-qemu-tdx, kata-qemu-se; NULL for anything else. */
const char *pod_runtime_class_tee(const char *class_name);

/* The pod's effective resources as the scheduler computes them: per resource
 * the larger of the sum over containers and the largest init container; a
 * container's request is its limit when only the limit is set.  A limit is 0
 * (unlimited) when any container, init or regular, sets none.  Malformed
 * quantities count as absent: call on a validated pod. */
struct pod_resources {
	int64_t cpu_request_milli, mem_request_bytes;
	int64_t cpu_limit_milli, mem_limit_bytes;
};
void pod_resources(const json_t *pod, struct pod_resources *out);

/* "Guaranteed", "Burstable" or "BestEffort", as Kubernetes' GetPodQOS decides
 * from cpu and memory across all containers. */
const char *pod_qos_class(const json_t *pod);

/* Checks replacing `old` by `new` (both normalized): metadata.labels and
 * metadata.annotations may change, except the init-data annotations (both
 * names; "field is immutable"); name, namespace, uid, creationTimestamp
 * and deletion fields may not ("field is immutable"); any spec change is a
 * FieldValueForbidden on "spec" — cocod does not even allow image changes.
 * status is not compared (it has its own endpoint).  Returns 0 or
 * ERR_INVALID when errors were added. */
int pod_validate_update(const json_t *old, const json_t *new, struct k8s_field_errors *fe);

#endif
