/* launcher: the pod VMs' hypervisor side, through libvirt.  It opens
 * libvirt's embedded QEMU driver (`qemu:///embed?root=<data-dir>/libvirt`,
 * writing the qemu.conf that driver needs) or any other URI, runs libvirt's
 * event loop in its own thread, forwards domain lifecycle events to the
 * libuv loop, and runs every libvirt call on the libuv thread pool with the
 * completion back on the loop.  It picks the accelerator once at start
 * (KVM only when a guest really boots under it, else TCG), remembers the
 * `cocod-*` domains it found (re-adoption after a daemon crash), and builds
 * domain XML per TEE type behind one interface.  Loop thread only, except
 * where noted. */
#ifndef COCOD_LAUNCHER_H
#define COCOD_LAUNCHER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"
#include "util.h"

typedef struct launcher launcher;

/* Domains are named LAUNCHER_PREFIX + pod uid. */
#define LAUNCHER_PREFIX "cocod-"
/* Memory the guest kernel, agent and page cache need on top of the pod's
 * own limit: the kernel and initramfs (unpacked into RAM, ~18 MiB with
 * crun, used in place), the agent, and image layers unpacked into guest
 * memory. */
#define LAUNCHER_OVERHEAD_DEFAULT (160ull << 20)
#define LAUNCHER_MEMORY_DEFAULT   (256ull << 20)
#define LAUNCHER_MAX_VCPUS        64

/* ---- domain XML ---- */

/* What one pod VM looks like; all strings borrowed. */
struct launcher_vm {
	const char *uid;
	const char *kernel, *initrd, *cmdline;
	const char *console_path; /* serial console file (appended to) */
	const char *agent_socket; /* UNIX socket libvirt binds for io.cocod.agent */
	uint64_t mem_bytes;       /* guest RAM, rounded up to MiB */
	unsigned vcpus;
	int kvm;     /* 1: <domain type='kvm'>, 0: TCG */
	int network; /* 1: QEMU user-mode networking (virtio-net) */
	/* The pod's init-data digest, "sha384:<hex>" (tee/initdata.h), or
	 * NULL: kept in the domain's <metadata> as <cocod:init-data-digest>,
	 * where the launch binds it (SNP HOST_DATA, TDX MRCONFIGID). */
	const char *init_data_digest;
};

/* One XML builder per TEE type; appends a whole <domain> to `out`. */
typedef int (*launcher_xml_fn)(const struct launcher_vm *vm, struct buf *out, struct err *e);

/* The builder for `tee` ("sim", "snp", "tdx", "se"), or NULL when this
 * build cannot run that TEE (snp/tdx/se wait for the confidential issue). */
launcher_xml_fn launcher_xml_builder(const char *tee);

/* launcher_xml_builder + call; ERR_UNAVAILABLE naming the TEE when it is
 * not supported on this box, ERR_INVALID for a bad vm description. */
int launcher_build_xml(const char *tee, const struct launcher_vm *vm, struct buf *out,
                       struct err *e);

/* Guest size from the pod's limits (0 = unset): memory = limit (or
 * `default_mem`) + `overhead`, rounded up to MiB; vCPUs = ceil(cpu/1000),
 * at least 1, at most `max_vcpus` (0 = LAUNCHER_MAX_VCPUS). */
void launcher_vm_size(int64_t cpu_limit_milli, int64_t mem_limit_bytes, uint64_t default_mem,
                      uint64_t overhead, unsigned max_vcpus, uint64_t *mem_bytes, unsigned *vcpus);

/* Escapes `s` for XML text or a quoted attribute. */
void launcher_xml_escape(struct buf *out, const char *s);

/* ---- the connection ---- */

struct launcher_opts {
	const char *uri;           /* NULL/"": qemu:///embed?root=<data_dir>/libvirt */
	const char *data_dir;      /* required */
	const char *accel;         /* "auto" (default), "kvm" or "tcg" */
	const char *kernel;        /* guest kernel for the KVM probe (auto only) */
	uint64_t probe_timeout_ms; /* KVM probe bound; 0 = 10 s */
};

/* What happened to a domain (lifecycle events, forwarded to the loop). */
enum launcher_event {
	LAUNCHER_STARTED,
	LAUNCHER_STOPPED, /* shut down, destroyed, crashed, failed: gone */
};
typedef void (*launcher_event_fn)(void *ud, const char *uid, enum launcher_event ev,
                                  const char *reason);

/* Completion of an asynchronous call, on the loop; `e` NULL on success. */
typedef void (*launcher_done_fn)(void *arg, const struct err *e);

/* Works around libuv 1.44's fork handler, which in every forked child
 * closes the file descriptor numbers of libuv's internal signal pipe and
 * so breaks libvirt's fork-fork-exec of QEMU ("Unable to notify child
 * process: Bad file descriptor") when those numbers are low.  It makes
 * libuv create that pipe above LAUNCHER_HIGH_FD.  Call once at the very
 * start of main, before any uv_loop_init or uv_default_loop (later it
 * has no effect: libuv sets that pipe up once).  0, or -1 when no loop
 * could be made. */
#define LAUNCHER_HIGH_FD 256
int launcher_prepare_process(void);

/* A launcher on `loop` (nothing is opened yet). */
int launcher_new(uv_loop_t *loop, const struct launcher_opts *o, launcher **out, struct err *e);

/* Lifecycle events go to `fn` (events arriving before it is set are
 * dropped after updating the running set). */
void launcher_on_event(launcher *l, launcher_event_fn fn, void *ud);

/* Loads libvirt (dlopen: cocod does not link it), writes qemu.conf
 * (embedded URIs), starts libvirt's event thread, connects, lists the
 * existing cocod-* domains and probes the accelerator, all off the loop;
 * `cb` runs on the loop when everything is done (or failed).  After a
 * successful start, libvirt's probe of QEMU's capabilities runs in the
 * pool in the background (the first pod no longer pays for it). */
int launcher_start(launcher *l, launcher_done_fn cb, void *arg);

/* After start: "kvm" or "tcg". */
const char *launcher_accel(const launcher *l);

/* Synchronous, from what the launcher knows (the list read at start plus
 * creations and lifecycle events since): 1 when the pod's domain runs. */
int launcher_exists(const launcher *l, const char *uid);
/* The uids of the cocod-* domains found at start, NULL-terminated,
 * borrowed until launcher_free. */
const char *const *launcher_found(const launcher *l);

/* Creates (boots) a transient domain from `xml`. */
int launcher_create(launcher *l, const char *uid, const char *xml, launcher_done_fn cb, void *arg);
/* Destroys the pod's domain (hard power-off); a missing domain is success. */
int launcher_destroy(launcher *l, const char *uid, launcher_done_fn cb, void *arg);

/* Closes the connection once the calls in flight are done, then calls `cb`;
 * domains keep running (the next daemon adopts them).  Free afterwards. */
void launcher_close(launcher *l, void (*cb)(void *arg), void *arg);
void launcher_free(launcher *l);

#endif
