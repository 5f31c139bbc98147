/* sched: cocod's single-node scheduler.  Pure bookkeeping, no I/O except
 * sched_detect_node(): it knows the node's allocatable capacity (milli-CPU,
 * memory, a pod count and the TEEs the box offers), the pods already bound
 * to it and the pods waiting, and on sched_run() places every waiting pod
 * that fits, in order of priority (high first), then creation time (old
 * first), then name.  A pod that does not fit stays pending with a
 * Kubernetes-like message naming the short resource; the caller is told
 * about it only when that message changes, so it emits FailedScheduling once
 * rather than on every run.
 *
 * There is no head-of-line blocking and no preemption: when a high-priority
 * pod does not fit, lower-priority pods behind it that do fit are still
 * placed (the big pod waits until capacity is freed).
 *
 * Requests are plain numbers computed by the caller; the scheduler does not
 * read pod objects.  Loop thread only. */
#ifndef COCOD_SCHED_H
#define COCOD_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct sched sched;

/* TEE kinds, as a bit set in sched_node.tees. */
enum {
	SCHED_TEE_SIM = 1u << 0,
	SCHED_TEE_SNP = 1u << 1,
	SCHED_TEE_TDX = 1u << 2,
	SCHED_TEE_SE = 1u << 3,
};

/* What the node offers to pods (after reservations). */
struct sched_node {
	uint64_t cpu_milli;
	uint64_t mem_bytes;
	uint32_t max_pods;
	unsigned tees; /* SCHED_TEE_* bits */
};

/* A pod as the scheduler sees it.  Strings are borrowed by the calls that
 * take this struct and copied. */
struct sched_pod {
	const char *uid;
	const char *name;          /* "namespace/name", for messages */
	int32_t priority;          /* spec.priority; higher goes first */
	int64_t created_ms;        /* metadata.creationTimestamp, ms since the epoch */
	uint64_t cpu_milli;        /* summed requests */
	uint64_t mem_bytes;
	const char *tee;           /* "sim", "snp", "tdx", "se"; NULL or "" = none needed */
	const char *runtime_class; /* for the TEE message; may be NULL */
};

/* One placement decision, given to the sched_run() callback.  `message` is
 * NULL when bound. */
typedef void (*sched_report_fn)(void *ud, const char *uid, int bound, const char *message);

/* The bit for a TEE name ("sim", "snp", "tdx", "se"), 0 when unknown. */
unsigned sched_tee_bit(const char *name);

/* Fills `out` from the machine: online CPUs × 1000 and MemTotal from
 * /proc/meminfo, minus the reservations, with `max_pods` and only the sim
 * TEE (hardware TEEs are detected by tee/ and added by the caller).
 * ERR_CONFIG when a reservation takes everything, ERR_IO when the machine
 * cannot be read. */
int sched_detect_node(uint64_t reserve_cpu_milli, uint64_t reserve_mem_bytes, uint32_t max_pods,
		      struct sched_node *out, struct err *e);

/* MemTotal in bytes from the text of /proc/meminfo; -1 when absent. */
int sched_parse_meminfo(const char *text, uint64_t *bytes);

/* Quantities for messages: milli-CPU as "4" or "1500m"; bytes as "8Gi",
 * "512Mi", "1G", or rounded down to one decimal ("1.5Gi") when inexact.
 * Output is truncated to `len`. */
void sched_format_cpu(uint64_t milli, char *out, size_t len);
void sched_format_bytes(uint64_t bytes, char *out, size_t len);

/* A scheduler for `node` (copied).  sched_free(NULL) is a no-op. */
sched *sched_new(const struct sched_node *node);
void sched_free(sched *s);

/* The node this scheduler places onto. */
const struct sched_node *sched_node_info(const sched *s);

/* Queues a pod for placement at the next sched_run().  ERR_EXISTS when the
 * uid is already known. */
int sched_add_pending(sched *s, const struct sched_pod *pod, struct err *e);

/* Records a pod that is already running on the node (restored after a
 * restart): its requests count as used even if that overcommits the node.
 * A pending pod with the same uid is bound in place. */
int sched_mark_bound(sched *s, const struct sched_pod *pod, struct err *e);

/* Forgets a pod.  Returns 1 when it was bound (capacity was freed: run the
 * scheduler again), 0 when it was pending or unknown. */
int sched_remove(sched *s, const char *uid);

/* 1 when `uid` is bound, 0 when pending, -1 when unknown. */
int sched_state(const sched *s, const char *uid);

/* Capacity in use by bound pods. */
void sched_used(const sched *s, uint64_t *cpu_milli, uint64_t *mem_bytes, uint32_t *pods);

/* Places every pending pod that fits, in order, then calls `fn` once per
 * bound pod and once per pod whose unschedulable message changed.  Decisions
 * are complete before the first call, so `fn` may add or remove pods (but
 * should not call sched_run() itself).  Returns how many pods were bound. */
int sched_run(sched *s, sched_report_fn fn, void *ud);

#endif
