/* runtime: the pod controller's container runtime (struct runtime_ops in
 * core/podctl.h) on real VMs: launcher (libvirt domains), agentconn (the
 * agent channel) and images (blobs streamed into the guest).  It owns the
 * per-pod directory <data-dir>/pods/<uid>/ — console.log, agent.sock,
 * pod.json (for re-adoption after a daemon crash) and one bounded,
 * timestamped log file per container — and serves those logs, following
 * new lines, to the HTTP layer.  Every podctl completion is queued and
 * delivered from the loop, never from inside a runtime_ops call.  Loop
 * thread only. */
#ifndef COCOD_RUNTIME_H
#define COCOD_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "images.h"
#include "launcher.h"
#include "metrics.h"
#include "podctl.h"

typedef struct runtime runtime;

/* Container log files rotate to NAME.log.1 past this size. */
#define RUNTIME_LOG_MAX (10u << 20)
/* The serial console file is cut to its last half past this size. */
#define RUNTIME_CONSOLE_MAX (1u << 20)

struct runtime_opts {
	const char *data_dir; /* required, absolute */
	const char *kernel;   /* the guest kit */
	const char *initrd;
	const char *cmdline;
	uint64_t default_memory;   /* 0 = LAUNCHER_MEMORY_DEFAULT */
	uint64_t overhead_memory;  /* 0 = LAUNCHER_OVERHEAD_DEFAULT */
	uint64_t boot_timeout_ms;  /* VM created → agent ready; 0 = 120 s */
	uint64_t destroy_grace_ms; /* destroy_sandbox → powered off; 0 = 10 s */
	uint64_t flood_bytes;      /* agent channel bytes/s; 0 = agentconn default */
	uint64_t log_max;          /* per container file; 0 = RUNTIME_LOG_MAX */
	int network;               /* user-mode networking in the VMs */
	unsigned pool_size;        /* warm VMs booted ahead of pods (runtime.c) */
	metrics *metrics;          /* NULL: none kept */
};

/* A runtime on `l` (started by the caller: launcher_start must have
 * completed before podctl restores pods) and `im` (may be NULL: every pull
 * fails saying so).  Both are borrowed. */
int runtime_new(uv_loop_t *loop, launcher *l, images *im, const struct runtime_opts *o,
                runtime **out, struct err *e);

/* The operations to hand to podctl_new (ud = rt). */
const struct runtime_ops *runtime_ops(runtime *rt);
/* The controller that receives completions (after podctl_new). */
void runtime_attach(runtime *rt, podctl *ctl);
/* After every stored pod was restored: destroys cocod-* domains that no
 * pod claimed, and forgets adoption records nobody used. */
void runtime_restored(runtime *rt);

/* Warm pool VMs ready for a pod, and booting (for /metrics). */
void runtime_pool_counts(const runtime *rt, unsigned *ready, unsigned *booting);

/* The pod object is gone for good (podsvc's `removed`): deletes
 * <data-dir>/pods/<uid>/ with its logs.  Its VM must be gone already. */
void runtime_forget(runtime *rt, const char *uid);

/* Logs of one container.  `on_data` gets whole lines (with their trailing
 * newline) — prefixed with their RFC 3339 time when `timestamps` — in
 * file order: the rotated file, then the current one; with `follow`, then
 * every new line as the container writes it.  It returns 0 to go on, or
 * non-zero to stop (e.g. the HTTP peer has too much queued).  `on_end`
 * runs once: after the backlog (no follow), when following ends (the
 * container exits or the pod goes away), or on runtime_logs_cancel
 * (not called then).  ERR_NOT_FOUND when the pod has no such log. */
struct runtime_log_opts {
	int follow;
	int timestamps;
	int64_t tail_lines;  /* -1 = all */
	int64_t limit_bytes; /* -1 = no limit */
};
typedef int (*runtime_log_fn)(void *arg, const char *data, size_t len);
typedef void (*runtime_log_end_fn)(void *arg, const struct err *e);
typedef struct runtime_log_reader runtime_log_reader;
int runtime_logs(runtime *rt, const char *uid, const char *container,
                 const struct runtime_log_opts *o, runtime_log_fn on_data,
                 runtime_log_end_fn on_end, void *arg, runtime_log_reader **out, struct err *e);
/* Stops a reader early (the HTTP peer went away); no callback runs after. */
void runtime_logs_cancel(runtime_log_reader *r);

/* Log file plumbing, exposed for unit tests: appends `len` bytes of
 * `stream` output as lines "<RFC 3339 nano> <stream> F <text>\n" (a chunk
 * not ending in a newline is a partial line "P"), rotating `path` to
 * `path`.1 when it would pass `max`. */
int runtime_log_append(const char *path, uint64_t max, const char *stream, const void *data,
                       size_t len, struct err *e);

/* Closes agent channels and timers; `cb` runs when the handles are closed.
 * VMs keep running (the next daemon adopts them).  Free afterwards. */
void runtime_close(runtime *rt, void (*cb)(void *arg), void *arg);
void runtime_free(runtime *rt);

#endif
