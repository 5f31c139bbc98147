/* podctl: the pod controller.  One state machine per pod, fed by three
 * inputs — the API/store layer (add, restore, delete), the container runtime
 * (completions of the operations it was asked to start) and a clock (time
 * passing) — and acting only through interfaces: runtime operations, a sink
 * that persists status and records Kubernetes events, and a request to be
 * woken at a given time.  That makes every transition unit-testable with a
 * scripted runtime and a hand-driven clock.
 *
 * It owns the scheduler: adding or removing a pod, or a pod's VM going away,
 * runs scheduling at once.  Semantics follow the kubelet: init containers
 * one by one to completion, then all app containers; restartPolicy
 * Always/OnFailure/Never with a 10 s back-off doubling to 5 min
 * (CrashLoopBackOff, reset after 10 minutes of running); image pulls with
 * ErrImagePull/ImagePullBackOff; graceful deletion (stop with the grace
 * period, kill at its end, destroy the VM, then `removed`);
 * activeDeadlineSeconds; phases and conditions computed like the kubelet's.
 * Sandbox (VM) creation failures are retried with the same back-off; a VM
 * that disappears under a running pod fails the pod (reason "Lost"): there
 * is no re-creation of a sandbox once containers ran.
 *
 * Calling rules: runtime operations and sink callbacks are called
 * synchronously from inside podctl functions and must not call back into
 * the controller; the runtime completes operations later, from the loop,
 * through the podctl_on_* functions.  Times are milliseconds since the Unix
 * epoch (the clock's wall time).  Loop thread only. */
#ifndef COCOD_PODCTL_H
#define COCOD_PODCTL_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "sched.h"

typedef struct podctl podctl;

/* At most this many containers (init + app) per pod. */
#define PODCTL_MAX_CONTAINERS 64
/* Event messages are truncated to this many bytes (including the NUL). */
#define PODCTL_EVENT_MAX 1024

/* The container runtime (the VM launcher implements it).  Each asynchronous
 * operation returns 0 when started (and completes later through the named
 * podctl_on_* call) or a negative ERR_* code with `e` filled when it could
 * not be started.  Strings are borrowed for the duration of the call. */
struct runtime_ops {
	void *ud;
	/* Boot the pod's VM → podctl_on_sandbox_ready / _failed. */
	int (*sandbox_create)(void *ud, const char *uid, const json_t *pod, struct err *e);
	/* Make the image of `container` available in the VM →
	 * podctl_on_pulled / podctl_on_pull_failed. */
	int (*pull)(void *ud, const char *uid, const char *container, const char *image,
		    struct err *e);
	/* Create and start `container` → podctl_on_container_started, and later
	 * podctl_on_container_exited (also when it fails to start: exit code
	 * 128, reason "StartError"). */
	int (*container_start)(void *ud, const char *uid, const char *container, struct err *e);
	/* SIGTERM, or SIGKILL when grace_s is 0 → podctl_on_container_exited. */
	int (*container_stop)(void *ud, const char *uid, const char *container, int64_t grace_s,
			      struct err *e);
	/* Tear the VM down → podctl_on_sandbox_gone. */
	int (*sandbox_destroy)(void *ud, const char *uid, struct err *e);
	/* Synchronous: 1 when the VM of `uid` exists (used by restore; answer
	 * from a list fetched before restoring, never block). */
	int (*sandbox_exists)(void *ud, const char *uid);
};

/* Where effects go (the API/store layer).  `status` is the full new
 * `status` object of the pod, borrowed for the call; it is given only when
 * it changed.  `type` is "Normal" or "Warning". */
struct podctl_sink {
	void *ud;
	void (*status_changed)(void *ud, const char *uid, const json_t *status);
	void (*event)(void *ud, const char *uid, const char *type, const char *reason,
		      const char *message);
	/* The pod was placed: persist spec.nodeName. */
	void (*bound)(void *ud, const char *uid, const char *node_name);
	/* Graceful deletion finished: delete the object. */
	void (*removed)(void *ud, const char *uid);
};

/* Time.  now_ms: wall clock, ms since the epoch.  wake_at: call
 * podctl_tick() at `at_ms` (replacing any earlier request); -1 cancels. */
struct podctl_clock {
	void *ud;
	int64_t (*now_ms)(void *ud);
	void (*wake_at)(void *ud, int64_t at_ms);
};

struct podctl_config {
	const char *node_name; /* for Scheduled events and bound(); default "cocod" */
	const char *host_ip;   /* status.hostIP; default "127.0.0.1" */
};

/* What the caller computed from the pod (core/pod.h): summed requests, the
 * TEE its runtime class needs ("sim", "snp"...; NULL = none), the runtime
 * class name (for messages) and status.qosClass. */
struct podctl_req {
	uint64_t cpu_milli;
	uint64_t mem_bytes;
	const char *tee;
	const char *runtime_class;
	const char *qos_class;
};

/* A controller placing onto `node`.  `rt` NULL means no runtime on this box:
 * pods stay Pending saying so.  The structs are copied; their `ud` pointers
 * are borrowed and must outlive the controller. */
podctl *podctl_new(const struct podctl_config *cfg, const struct sched_node *node,
		   const struct runtime_ops *rt, const struct podctl_sink *sink,
		   const struct podctl_clock *clock);
/* Frees the controller without touching the runtime (VMs keep running). */
void podctl_free(podctl *ctl);

/* A new pod from the store (spec without status); scheduling runs at once.
 * ERR_INVALID for a pod without uid/name/containers, with too many
 * containers or a container without name or image; ERR_EXISTS for a uid
 * already known. */
int podctl_add(podctl *ctl, const json_t *pod, const struct podctl_req *req, struct err *e);

/* A stored pod (with its status) after a daemon restart.  Terminal pods keep
 * their status (a leftover VM is destroyed); scheduled pods are re-adopted
 * when the runtime still has their VM, re-created when they had not started
 * yet, and otherwise marked Failed with reason "Lost"; unscheduled pods wait
 * for podctl_schedule().  Restore every pod before calling it. */
int podctl_restore(podctl *ctl, const json_t *pod, const struct podctl_req *req, struct err *e);

/* Runs the scheduler (after restoring; add/delete do it themselves). */
void podctl_schedule(podctl *ctl);

/* Deletes a pod: stop its containers with `grace_s` seconds of grace (-1 =
 * the pod's terminationGracePeriodSeconds, 0 = kill now), kill what is left
 * when the grace period ends, destroy the VM, then sink->removed.  Calling
 * again with a shorter grace shortens the wait.  ERR_NOT_FOUND if unknown. */
int podctl_delete(podctl *ctl, const char *uid, int64_t grace_s, struct err *e);

/* Acts on everything due by now (back-offs, grace periods, deadlines). */
void podctl_tick(podctl *ctl);

/* Runtime completions.  Calls for unknown pods or containers, or that do
 * not match what was asked, are ignored (return ERR_NOT_FOUND / ERR_CONFLICT
 * so the runtime can log them).  A time of 0 means "now".
 * A sandbox failure whose message starts with PODCTL_HOSTILE is final: the
 * guest broke the agent protocol, booting it again would only repeat that,
 * so the pod fails (reason HostileGuest) instead of retrying with back-off. */
#define PODCTL_HOSTILE "hostile guest"
int podctl_on_sandbox_ready(podctl *ctl, const char *uid);
int podctl_on_sandbox_failed(podctl *ctl, const char *uid, const char *message);
int podctl_on_sandbox_gone(podctl *ctl, const char *uid, const char *reason);
int podctl_on_pulled(podctl *ctl, const char *uid, const char *container, const char *image_id);
int podctl_on_pull_failed(podctl *ctl, const char *uid, const char *container,
			  const char *message);
int podctl_on_container_started(podctl *ctl, const char *uid, const char *container,
				const char *container_id, int64_t started_at_ms);
int podctl_on_container_exited(podctl *ctl, const char *uid, const char *container,
			       int exit_code, const char *reason, int64_t finished_at_ms);

/* Lookups for describe/get: the last status built for `uid` (borrowed,
 * valid until the next podctl call) or NULL; the number of pods held. */
const json_t *podctl_status(podctl *ctl, const char *uid);
size_t podctl_count(const podctl *ctl);
/* The scheduler, for node capacity and usage queries. */
const sched *podctl_sched(const podctl *ctl);

#endif
