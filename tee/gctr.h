/* gctr: the containers of one pod inside the guest, run with crun.  Each
 * container gets a bundle under the state directory: config.json from
 * ocispec_build and a root file system that is an overlay (upper layer in
 * guest memory) on the image's unpacked root, or a copy when overlayfs is
 * missing.  `crun run --detach` (create and start in one crun process)
 * runs with stdout/stderr on pipes the agent owns; the container's init is
 * then re-parented to the agent (PID 1), which reaps it and reads its exit
 * status.  Output is
 * forwarded as `log` events (at most 64 KiB each) and `container_exited`
 * is sent once the process has exited and both pipes are drained. */
#ifndef COCOD_GCTR_H
#define COCOD_GCTR_H

#include <jansson.h>
#include <poll.h>
#include <sys/types.h>

#include "err.h"

/* Receives an event (ownership of body passes). */
typedef void gctr_emit_fn(void *arg, const char *type, json_t *body);

struct gctr_set;

struct gctr_set *gctr_set_new(const char *state_dir, const char *volumes_dir, const char *crun,
			      gctr_emit_fn *emit, void *arg);
void gctr_set_free(struct gctr_set *s);

/* Files every container created from now on sees (read-only) as
 * /etc/hosts and /etc/resolv.conf; NULL for none. */
void gctr_set_etc(struct gctr_set *s, const char *hosts, const char *resolv);

/* create_container (body as in docs/agent-protocol.md) with the image's
 * root and config already looked up by the caller. */
int gctr_create(struct gctr_set *s, const json_t *body, const char *image_rootfs,
		const json_t *image_config, const char *hostname, struct err *e);
int gctr_start(struct gctr_set *s, const char *name, pid_t *pid, struct err *e);
int gctr_signal(struct gctr_set *s, const char *name, int sig, struct err *e);

/* poll(2) integration: fills at most `max` entries with the open output
 * pipes, then handles their revents. */
size_t gctr_pollfds(struct gctr_set *s, struct pollfd *fds, size_t max);
void gctr_on_poll(struct gctr_set *s, const struct pollfd *fds, size_t n);

/* A child was reaped: records the exit if it is a container's. */
void gctr_reaped(struct gctr_set *s, pid_t pid, int status);

/* Starts a throwaway container (gctr.c), before any of the pod's; returns
 * crun's pid, or -1 with `e` set.  gctr_warm_up_done once it was reaped. */
pid_t gctr_warm_up(struct gctr_set *s, struct err *e);
void gctr_warm_up_done(struct gctr_set *s);

/* Signals every running container; returns how many still run. */
int gctr_kill_all(struct gctr_set *s, int sig);

#endif
