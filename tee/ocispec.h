/* ocispec: builds the OCI runtime config.json that the guest agent hands
 * to crun for one container, from the host's create_container request and
 * the image's config (image-spec conversion rules, Kubernetes semantics
 * for command/args).  Pure: no file system access, so it is unit-tested on
 * the host.  The container gets pid/ipc/uts/mount namespaces (the network
 * is the VM's), no new privileges, a Docker-like capability set, rlimits,
 * and a seccomp profile that allows by default and denies the syscalls a
 * workload has no business making (module loading, kexec, mount, bpf,
 * keyrings, ptrace, user namespaces, ...). */
#ifndef COCOD_OCISPEC_H
#define COCOD_OCISPEC_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"

struct ocispec_mount {
	const char *source;      /* a directory in the guest */
	const char *destination; /* absolute path in the container */
	int read_only;
};

struct ocispec_in {
	const json_t *command;      /* array of strings or NULL */
	const json_t *args;         /* array of strings or NULL */
	const json_t *env;          /* array of "K=V" or NULL */
	const char *working_dir;    /* NULL or "": the image's, else "/" */
	int has_user;               /* else the image's User (numeric) or 0:0 */
	uint32_t uid, gid;
	int read_only_root;
	const char *hostname;       /* NULL: none set */
	const char *rootfs;         /* absolute path of the root file system */
	const struct ocispec_mount *mounts;
	size_t nmounts;
	const json_t *image_config; /* the image config document, or NULL */
};

/* Returns a new config.json document (caller decrefs), or NULL with `e`
 * set (no program to run, a user name that is not numeric, a relative
 * working directory or mount path). */
json_t *ocispec_build(const struct ocispec_in *in, struct err *e);

/* The names the default seccomp profile denies (NULL-terminated). */
extern const char *const ocispec_denied_syscalls[];

#endif
