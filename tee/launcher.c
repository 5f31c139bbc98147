/* launcher: see launcher.h.  Threads: libvirt's default event loop runs in
 * one process-wide thread (libvirt allows one event implementation per
 * process, registered before the first connection, so it is started once
 * and never stopped); every libvirt API call runs in a uv_queue_work job;
 * lifecycle callbacks, which libvirt makes on its event thread, are queued
 * under a mutex and handed to the loop with uv_async_send.  The loop thread
 * alone owns the set of running domains and the callbacks.
 *
 * The accelerator probe (accel = auto) first opens /dev/kvm, then boots the
 * kit's kernel without an initramfs under `qemu-system-x86_64 -accel kvm`
 * and waits (bounded) for it to reach its "Kernel panic ... VFS" line: a
 * kernel that gets that far decompressed and ran under KVM, which is what a
 * broken nested KVM fails to do.  Anything else — no /dev/kvm, no kernel to
 * probe with, a timeout, an error — means TCG.
 *
 * libvirt itself is loaded with dlopen(3) by the first start job, not
 * linked: the guest agent is this same binary, and a DT_NEEDED libvirt
 * would drag libvirt's ~60 MiB of dependencies (glib, gnutls, libxml2,
 * ICU data, ...) into every guest kit, where the kernel has to unpack them
 * on every boot.  The headers still give every call its checked type. */
#include "launcher.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "log.h"

extern char **environ;

#define EMBED_PREFIX     "qemu:///embed?root="
#define PROBE_MARK       "Kernel panic"
#define PROBE_MEMORY_MIB "128"

struct queued_event {
	char *uid, *reason;
	enum launcher_event ev;
};

struct launcher {
	uv_loop_t *loop;
	uv_async_t async;
	char *uri, *data_dir, *accel_opt, *kernel;
	uint64_t probe_timeout_ms;
	virConnectPtr conn; /* set by the start job, then read-only */
	int callback_id;
	int kvm;
	int started, closing, closed;
	unsigned inflight;
	struct strmap running; /* uid -> its own key copy */
	char **found;
	size_t nfound;
	launcher_event_fn on_event;
	void *event_ud;
	void (*close_cb)(void *);
	void *close_arg;
	pthread_mutex_t mu; /* guards events */
	struct queued_event *events;
	size_t nevents, capevents;
};

/* ---- domain XML ---- */

void launcher_xml_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			buf_adds(out, "&lt;");
			break;
		case '>':
			buf_adds(out, "&gt;");
			break;
		case '&':
			buf_adds(out, "&amp;");
			break;
		case '\'':
			buf_adds(out, "&apos;");
			break;
		case '"':
			buf_adds(out, "&quot;");
			break;
		default:
			buf_add(out, s, 1);
		}
	}
}

void launcher_vm_size(int64_t cpu_limit_milli, int64_t mem_limit_bytes, uint64_t default_mem,
                      uint64_t overhead, unsigned max_vcpus, uint64_t *mem_bytes, unsigned *vcpus)
{
	const uint64_t mib = 1ull << 20;
	uint64_t mem = mem_limit_bytes > 0 ? (uint64_t)mem_limit_bytes : default_mem;
	mem += overhead;
	*mem_bytes = (mem + mib - 1) / mib * mib;
	if (max_vcpus == 0 || max_vcpus > LAUNCHER_MAX_VCPUS)
		max_vcpus = LAUNCHER_MAX_VCPUS;
	uint64_t n = cpu_limit_milli > 0 ? ((uint64_t)cpu_limit_milli + 999) / 1000 : 1;
	*vcpus = n > max_vcpus ? max_vcpus : (unsigned)n;
}

/* An element with escaped text: <name>text</name>. */
static void xml_text(struct buf *out, const char *indent, const char *name, const char *text)
{
	buf_printf(out, "%s<%s>", indent, name);
	launcher_xml_escape(out, text);
	buf_printf(out, "</%s>\n", name);
}

/* 1 when `d` reads "<sha256|sha384|sha512>:<hex of that length>". */
static int digest_shape(const char *d)
{
	static const struct {
		const char *prefix;
		size_t hex;
	} algs[] = {{"sha256:", 64}, {"sha384:", 96}, {"sha512:", 128}};
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
		size_t n = strlen(algs[i].prefix);
		if (strncmp(d, algs[i].prefix, n) != 0)
			continue;
		const char *h = d + n;
		return strlen(h) == algs[i].hex && strspn(h, "0123456789abcdef") == algs[i].hex;
	}
	return 0;
}

static int check_vm(const struct launcher_vm *vm, struct err *e)
{
	if (!vm->uid || !vm->uid[0] || !vm->kernel || !vm->initrd || !vm->console_path ||
	    !vm->agent_socket)
		return err_set(e, ERR_INVALID,
		               "vm: uid, kernel, initrd, console and agent socket are required");
	for (const char *p = vm->uid; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return err_set(e, ERR_INVALID,
			               "vm: pod uid must be lowercase letters, digits and '-'");
	if (vm->kernel[0] != '/' || vm->initrd[0] != '/' || vm->console_path[0] != '/' ||
	    vm->agent_socket[0] != '/')
		return err_set(e, ERR_INVALID,
		               "vm: kernel, initrd, console and socket paths must be absolute");
	if (strlen(vm->agent_socket) >= 108)
		return err_set(e, ERR_INVALID, "vm: agent socket path longer than 107 bytes: %s",
		               vm->agent_socket);
	if (vm->mem_bytes < (64ull << 20) || vm->vcpus < 1)
		return err_set(e, ERR_INVALID, "vm: needs at least 64 MiB and one vCPU");
	if (vm->init_data_digest && !digest_shape(vm->init_data_digest))
		return err_set(e, ERR_INVALID,
		               "vm: init-data digest must be sha256, sha384 or sha512, ':' and "
		               "lowercase hex");
	return 0;
}

static void sim_os(const struct launcher_vm *vm, struct buf *out)
{
	buf_adds(out, "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n");
	xml_text(out, "    ", "kernel", vm->kernel);
	xml_text(out, "    ", "initrd", vm->initrd);
	xml_text(out, "    ", "cmdline", vm->cmdline ? vm->cmdline : "");
	buf_adds(out, "  </os>\n");
}

static void sim_devices(const struct launcher_vm *vm, struct buf *out)
{
	buf_adds(out, "  <devices>\n    <serial type='file'>\n      <source path='");
	launcher_xml_escape(out, vm->console_path);
	buf_adds(out, "' append='on'/>\n      <target port='0'/>\n    </serial>\n");
	buf_adds(out, "    <channel type='unix'>\n      <source mode='bind' path='");
	launcher_xml_escape(out, vm->agent_socket);
	buf_adds(out, "'/>\n      <target type='virtio' name='io.cocod.agent'/>\n    </channel>\n");
	if (vm->network)
		buf_adds(out, "    <interface type='user'>\n      <model type='virtio'/>\n"
		              "    </interface>\n");
	buf_adds(out, "    <controller type='usb' model='none'/>\n"
	              "    <memballoon model='none'/>\n  </devices>\n");
}

/* The sim TEE: a plain VM, direct kernel boot of the kit. */
static int xml_sim(const struct launcher_vm *vm, struct buf *out, struct err *e)
{
	if (check_vm(vm, e))
		return e->code;
	buf_printf(out, "<domain type='%s'>\n", vm->kvm ? "kvm" : "qemu");
	buf_printf(out, "  <name>" LAUNCHER_PREFIX "%s</name>\n", vm->uid);
	buf_printf(out,
	           "  <metadata>\n    <cocod:pod xmlns:cocod='https://cocod.io/xmlns/pod/1'>\n"
	           "      <cocod:uid>%s</cocod:uid>\n      <cocod:tee>sim</cocod:tee>\n",
	           vm->uid);
	if (vm->init_data_digest)
		xml_text(out, "      ", "cocod:init-data-digest", vm->init_data_digest);
	buf_adds(out, "    </cocod:pod>\n  </metadata>\n");
	buf_printf(out, "  <memory unit='KiB'>%llu</memory>\n",
	           (unsigned long long)(vm->mem_bytes / 1024));
	buf_printf(out, "  <vcpu>%u</vcpu>\n", vm->vcpus);
	sim_os(vm, out);
	buf_adds(out, "  <features>\n    <acpi/>\n  </features>\n");
	if (vm->kvm)
		buf_adds(out, "  <cpu mode='host-passthrough'/>\n");
	buf_adds(out, "  <clock offset='utc'/>\n  <on_poweroff>destroy</on_poweroff>\n"
	              "  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n");
	sim_devices(vm, out);
	buf_adds(out, "</domain>\n");
	return 0;
}

static const struct {
	const char *tee;
	launcher_xml_fn fn;
} builders[] = {
    {"sim", xml_sim},
    {"snp", NULL}, /* the confidential issue: <launchSecurity type='sev-snp'> */
    {"tdx", NULL}, /* the confidential issue: <launchSecurity type='tdx'> */
    {"se", NULL},  /* the confidential issue: <launchSecurity type='s390-pv'> */
};

launcher_xml_fn launcher_xml_builder(const char *tee)
{
	for (size_t i = 0; tee && i < sizeof builders / sizeof builders[0]; i++)
		if (strcmp(builders[i].tee, tee) == 0)
			return builders[i].fn;
	return NULL;
}

int launcher_build_xml(const char *tee, const struct launcher_vm *vm, struct buf *out,
                       struct err *e)
{
	launcher_xml_fn fn = launcher_xml_builder(tee);
	if (!fn)
		return err_set(
		    e, ERR_UNAVAILABLE,
		    "TEE \"%s\" is not supported on this box (only sim VMs can run here)",
		    tee ? tee : "");
	return fn(vm, out, e);
}

/* ---- process preparation ---- */

int launcher_prepare_process(void)
{
	int fill[LAUNCHER_HIGH_FD];
	size_t n = 0;
	int fd;
	/* occupy every free descriptor below LAUNCHER_HIGH_FD */
	while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && fd < LAUNCHER_HIGH_FD)
		fill[n++] = fd;
	if (fd >= LAUNCHER_HIGH_FD)
		close(fd);
	uv_loop_t probe; /* the first loop creates libuv's signal pipe */
	int rc = uv_loop_init(&probe);
	if (rc == 0)
		uv_loop_close(&probe);
	while (n > 0)
		close(fill[--n]);
	return rc == 0 ? 0 : -1;
}

/* ---- libvirt, loaded at run time ---- */

#define VIRT_FUNCS(X)                                                                              \
	X(virConnectClose)                                                                         \
	X(virConnectDomainEventDeregisterAny)                                                      \
	X(virConnectDomainEventRegisterAny)                                                        \
	X(virConnectGetDomainCapabilities)                                                         \
	X(virConnectListAllDomains)                                                                \
	X(virConnectOpen)                                                                          \
	X(virDomainCreateXML)                                                                      \
	X(virDomainDestroy)                                                                        \
	X(virDomainFree)                                                                           \
	X(virDomainGetName)                                                                        \
	X(virDomainIsActive)                                                                       \
	X(virDomainLookupByName)                                                                   \
	X(virEventRegisterDefaultImpl)                                                             \
	X(virEventRunDefaultImpl)                                                                  \
	X(virGetLastError)                                                                         \
	X(virSetErrorFunc)

/* The libvirt entry points cocod uses, each with the type its header
 * declares: `virt.virConnectOpen(...)`. */
static struct {
#define X(name) __typeof__(name) *name;
	VIRT_FUNCS(X)
#undef X
} virt;

static char virt_load_error[256];
static void virt_load_once(void)
{
	void *h = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(virt_load_error, sizeof virt_load_error, "%s (install libvirt0)",
		         dlerror());
		return;
	}
#define X(name)                                                                                    \
	if (!virt_load_error[0] && !(*(void **)&virt.name = dlsym(h, #name)))                      \
		snprintf(virt_load_error, sizeof virt_load_error, "libvirt.so.0 lacks %s", #name);
	VIRT_FUNCS(X)
#undef X
}

/* Loads libvirt once per process (never unloaded: its threads stay). */
static int virt_load(struct err *e)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, virt_load_once);
	return virt_load_error[0] ? err_set(e, ERR_UNAVAILABLE, "%s", virt_load_error) : 0;
}

/* ---- libvirt plumbing (pool threads) ---- */

static void virt_error(struct err *e, int code, const char *what)
{
	const virError *ve = virt.virGetLastError();
	err_set(e, code, "%s: %s", what, ve && ve->message ? ve->message : "unknown libvirt error");
}

static void *event_thread(void *arg)
{
	for (;;)
		if (virt.virEventRunDefaultImpl() < 0)
			log_warn("launcher", "libvirt event loop iteration failed");
	return NULL;
}

/* libvirt prints every error to stderr by default; ours go through err. */
static void quiet(void *ud, virErrorPtr err) {}

static int event_loop_rc;
static void event_loop_once(void)
{
	pthread_t t;
	virt.virSetErrorFunc(NULL, quiet);
	event_loop_rc = virt.virEventRegisterDefaultImpl();
	if (event_loop_rc == 0 && pthread_create(&t, NULL, event_thread, NULL) != 0)
		event_loop_rc = -1;
	if (event_loop_rc == 0)
		pthread_detach(t);
}

/* libvirt's event loop: registered and started once per process. */
static int ensure_event_loop(struct err *e)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, event_loop_once);
	return event_loop_rc ? err_set(e, ERR_INTERNAL, "cannot start libvirt's event loop") : 0;
}

/* The embedded driver's root, or NULL for other URIs (caller frees). */
static char *embed_root(const char *uri)
{
	if (strncmp(uri, EMBED_PREFIX, strlen(EMBED_PREFIX)) != 0)
		return NULL;
	const char *p = uri + strlen(EMBED_PREFIX);
	return xstrndup(p, strcspn(p, "&"));
}

/* The settings the embedded driver needs (ENVIRONMENT.md). */
static int write_qemu_conf(const char *root, struct err *e)
{
	static const char conf[] = "# written by cocod at every start: edits are lost\n"
	                           "user = \"root\"\n"
	                           "group = \"root\"\n"
	                           "remember_owner = 0\n"
	                           "stdio_handler = \"file\"\n"
	                           "security_driver = \"none\"\n";
	cleanup_free char *etc = xasprintf("%s/etc", root);
	cleanup_free char *path = xasprintf("%s/qemu.conf", etc);
	if (root[0] != '/')
		return err_set(e, ERR_CONFIG, "libvirt embed root must be absolute: %s", root);
	if (mkdir_p(etc, 0700, e))
		return e->code;
	return file_write_atomic(path, conf, sizeof conf - 1, 0600, e);
}

/* As root, libvirt's QEMU driver resolves its built-in default account
 * (Debian: user and group "libvirt-qemu") before it reads qemu.conf, and
 * fails with an obscure message when either is missing. */
static int check_accounts(struct err *e)
{
	if (geteuid() != 0)
		return 0;
	if (!getpwnam("libvirt-qemu"))
		return err_set(e, ERR_CONFIG,
		               "libvirt needs a system user libvirt-qemu: "
		               "useradd -r -g libvirt-qemu -d /var/lib/libvirt libvirt-qemu");
	if (!getgrnam("libvirt-qemu"))
		return err_set(e, ERR_CONFIG,
		               "libvirt needs a system group libvirt-qemu: "
		               "groupadd -r libvirt-qemu");
	return 0;
}

static void queue_event(launcher *l, const char *name, enum launcher_event ev, const char *reason)
{
	if (strncmp(name, LAUNCHER_PREFIX, strlen(LAUNCHER_PREFIX)) != 0)
		return;
	pthread_mutex_lock(&l->mu);
	if (l->nevents == l->capevents) {
		l->capevents = l->capevents ? 2 * l->capevents : 8;
		l->events = xrealloc(l->events, l->capevents * sizeof *l->events);
	}
	l->events[l->nevents++] =
	    (struct queued_event){xstrdup(name + strlen(LAUNCHER_PREFIX)), xstrdup(reason), ev};
	pthread_mutex_unlock(&l->mu);
	uv_async_send(&l->async);
}

static const char *stop_reason(int detail)
{
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return "shutdown";
	case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:
		return "destroyed";
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
		return "crashed";
	case VIR_DOMAIN_EVENT_STOPPED_FAILED:
		return "failed";
	default:
		return "stopped";
	}
}

/* libvirt's event thread. */
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	const char *name = virt.virDomainGetName(dom);
	if (!name)
		return 0;
	if (event == VIR_DOMAIN_EVENT_STARTED)
		queue_event(opaque, name, LAUNCHER_STARTED, "started");
	else if (event == VIR_DOMAIN_EVENT_STOPPED)
		queue_event(opaque, name, LAUNCHER_STOPPED, stop_reason(detail));
	return 0;
}

/* ---- asynchronous operations ---- */

enum op_kind { OP_START, OP_PROBE, OP_WARM, OP_CREATE, OP_DESTROY, OP_CLOSE };

struct op {
	uv_work_t req;
	launcher *l;
	enum op_kind kind;
	char *uid, *xml;
	launcher_done_fn cb;
	void *arg;
	int rc;
	struct err e;
	char **names; /* OP_START: uids found */
	size_t nnames;
	int kvm; /* OP_PROBE */
};

static void start_work(struct op *op)
{
	launcher *l = op->l;
	cleanup_free char *root = embed_root(l->uri);
	if (virt_load(&op->e) ||
	    (root && (check_accounts(&op->e) || write_qemu_conf(root, &op->e))) ||
	    ensure_event_loop(&op->e)) {
		op->rc = op->e.code;
		return;
	}
	l->conn = virt.virConnectOpen(l->uri);
	if (!l->conn) {
		virt_error(&op->e, ERR_UNAVAILABLE, l->uri);
		op->rc = op->e.code;
		return;
	}
	l->callback_id =
	    virt.virConnectDomainEventRegisterAny(l->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
	                                          VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), l, NULL);
	virDomainPtr *doms = NULL;
	int n = virt.virConnectListAllDomains(l->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	for (int i = 0; i < n; i++) {
		const char *name = virt.virDomainGetName(doms[i]);
		if (name && strncmp(name, LAUNCHER_PREFIX, strlen(LAUNCHER_PREFIX)) == 0) {
			op->names = xrealloc(op->names, (op->nnames + 2) * sizeof *op->names);
			op->names[op->nnames++] = xstrdup(name + strlen(LAUNCHER_PREFIX));
		}
		virt.virDomainFree(doms[i]);
	}
	free(doms);
	if (n < 0) {
		virt_error(&op->e, ERR_UNAVAILABLE, "listing domains");
		op->rc = op->e.code;
	}
}

/* Waits for PROBE_MARK on `fd` until `deadline_ns`: 1 when seen, 0 on a
 * timeout, -1 when QEMU exited first (`last` then holds its last line). */
static int probe_wait(int fd, uint64_t deadline_ns, char *last, size_t lastlen)
{
	char win[4096 + 64];
	size_t have = 0;
	for (uint64_t now = now_ns(); now < deadline_ns; now = now_ns()) {
		struct pollfd p = {fd, POLLIN, 0};
		int ms = (int)((deadline_ns - now) / 1000000) + 1;
		if (poll(&p, 1, ms) <= 0)
			continue;
		ssize_t r = read(fd, win + have, sizeof win - 1 - have);
		if (r <= 0) {
			while (have > 0 && (win[have - 1] == '\n' || win[have - 1] == '\r'))
				have--;
			win[have] = '\0';
			const char *nl = strrchr(win, '\n');
			snprintf(last, lastlen, "%.150s", nl ? nl + 1 : win);
			return -1;
		}
		have += (size_t)r;
		win[have] = '\0';
		if (strstr(win, PROBE_MARK))
			return 1;
		if (have > 4096) { /* keep a tail that can hold a split mark */
			memmove(win, win + have - 256, 256);
			have = 256;
		}
	}
	return 0;
}

/* Boots the kernel under KVM (see the file comment); 1 when it works,
 * else 0 with `why` filled. */
static int probe_kvm_boot(const char *kernel, uint64_t timeout_ms, char *why, size_t whylen)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return snprintf(why, whylen, "pipe: %s", strerror(errno)), 0;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	const char *argv[] = {"qemu-system-x86_64",
	                      "-accel",
	                      "kvm",
	                      "-cpu",
	                      "host",
	                      "-m",
	                      PROBE_MEMORY_MIB,
	                      "-nodefaults",
	                      "-nographic",
	                      "-no-reboot",
	                      "-serial",
	                      "stdio",
	                      "-kernel",
	                      kernel,
	                      "-append",
	                      "console=ttyS0 panic=-1 loglevel=4",
	                      NULL};
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)(uintptr_t)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	char last[160] = "";
	int ok = rc == 0 ? probe_wait(fds[0], now_ns() + timeout_ms * 1000000ull, last, sizeof last)
	                 : -2;
	close(fds[0]);
	if (rc == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (ok == 0)
		snprintf(why, whylen, "a guest kernel did not boot under KVM within %llu ms",
		         (unsigned long long)timeout_ms);
	else if (ok == -1)
		snprintf(why, whylen, "QEMU failed under KVM: %s", last);
	else if (ok == -2)
		snprintf(why, whylen, "cannot run qemu-system-x86_64: %s", strerror(rc));
	return ok == 1;
}

static void probe_work(struct op *op)
{
	launcher *l = op->l;
	if (strcmp(l->accel_opt, "tcg") == 0)
		return;
	if (strcmp(l->accel_opt, "kvm") == 0) {
		op->kvm = 1;
		return;
	}
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err_set(&op->e, 0, "/dev/kvm: %s", strerror(errno));
		return;
	}
	close(fd);
	if (!l->kernel || access(l->kernel, R_OK) != 0) {
		err_set(&op->e, 0, "no guest kernel to probe with");
		return;
	}
	char why[200];
	op->kvm = probe_kvm_boot(l->kernel, l->probe_timeout_ms, why, sizeof why);
	if (!op->kvm)
		err_set(&op->e, 0, "%s", why);
}

/* The embedded driver probes QEMU's capabilities (3-4 s under TCG: it
 * starts QEMU and queries it over QMP) the first time a domain needs them,
 * and caches the answer under its root.  Asking for the domain
 * capabilities of the one emulator and machine cocod uses makes that
 * happen right after start, in the pool, instead of inside the first pod's
 * virDomainCreateXML (which then waits for it if it is still running).
 * Failing is harmless: the first domain then probes as before. */
static void warm_work(struct op *op)
{
	uint64_t t0 = now_ns();
	char *caps = virt.virConnectGetDomainCapabilities(op->l->conn, NULL, "x86_64", "q35",
	                                                  op->l->kvm ? "kvm" : "qemu", 0);
	if (!caps) {
		virt_error(&op->e, ERR_UNAVAILABLE, "domain capabilities");
		log_debug("launcher", "capabilities not warmed: %s", op->e.msg);
		return;
	}
	free(caps);
	log_info("launcher", "QEMU capabilities ready duration_ms=%llu",
	         (unsigned long long)((now_ns() - t0) / 1000000));
}

static void create_work(struct op *op)
{
	virDomainPtr d = virt.virDomainCreateXML(op->l->conn, op->xml, 0);
	if (!d) {
		virt_error(&op->e, ERR_UNAVAILABLE, "creating the VM");
		op->rc = op->e.code;
		return;
	}
	virt.virDomainFree(d);
}

static void destroy_work(struct op *op)
{
	cleanup_free char *name = xasprintf(LAUNCHER_PREFIX "%s", op->uid);
	virDomainPtr d = virt.virDomainLookupByName(op->l->conn, name);
	if (!d)
		return; /* already gone */
	if (virt.virDomainDestroy(d) < 0 && virt.virDomainIsActive(d) == 1) {
		virt_error(&op->e, ERR_UNAVAILABLE, "destroying the VM");
		op->rc = op->e.code;
	}
	virt.virDomainFree(d);
}

static void close_work(struct op *op)
{
	launcher *l = op->l;
	if (!l->conn)
		return;
	if (l->callback_id >= 0)
		virt.virConnectDomainEventDeregisterAny(l->conn, l->callback_id);
	virt.virConnectClose(l->conn);
	l->conn = NULL;
}

static void op_work(uv_work_t *req)
{
	struct op *op = req->data;
	switch (op->kind) {
	case OP_START:
		start_work(op);
		break;
	case OP_PROBE:
		probe_work(op);
		break;
	case OP_WARM:
		warm_work(op);
		break;
	case OP_CREATE:
		create_work(op);
		break;
	case OP_DESTROY:
		destroy_work(op);
		break;
	case OP_CLOSE:
		close_work(op);
		break;
	}
}

static void on_async_closed(uv_handle_t *h)
{
	launcher *l = h->data;
	l->closed = 1;
	if (l->close_cb)
		l->close_cb(l->close_arg);
}

static void submit(launcher *l, struct op *op);

static void maybe_close(launcher *l)
{
	if (!l->closing || l->inflight > 0 || uv_is_closing((uv_handle_t *)&l->async))
		return;
	if (l->conn) {
		struct op *op = xcalloc(1, sizeof *op);
		op->kind = OP_CLOSE;
		submit(l, op);
		return;
	}
	uv_close((uv_handle_t *)&l->async, on_async_closed);
}

/* The running set owns its keys (key == value). */
static void running_add(launcher *l, const char *uid)
{
	if (strmap_get(&l->running, uid))
		return;
	char *k = xstrdup(uid);
	strmap_put(&l->running, k, k);
}

static void finish_start(launcher *l, struct op *op);
static void finish_probe(launcher *l, struct op *op);

static void op_done(uv_work_t *req, int status)
{
	struct op *op = req->data;
	launcher *l = op->l;
	l->inflight--;
	if (op->kind == OP_START)
		finish_start(l, op);
	else if (op->kind == OP_PROBE)
		finish_probe(l, op);
	else if (op->kind == OP_CREATE && op->rc == 0)
		running_add(l, op->uid);
	if (op->kind != OP_START && op->kind != OP_PROBE && op->kind != OP_WARM && op->cb)
		op->cb(op->arg, op->rc ? &op->e : NULL);
	free(op->uid);
	free(op->xml);
	free(op);
	maybe_close(l);
}

static void submit(launcher *l, struct op *op)
{
	op->l = l;
	op->req.data = op;
	l->inflight++;
	uv_queue_work(l->loop, &op->req, op_work, op_done);
}

/* ---- loop side ---- */

static void on_async(uv_async_t *h)
{
	launcher *l = h->data;
	pthread_mutex_lock(&l->mu);
	struct queued_event *evs = l->events;
	size_t n = l->nevents;
	l->events = NULL;
	l->nevents = l->capevents = 0;
	pthread_mutex_unlock(&l->mu);
	for (size_t i = 0; i < n; i++) {
		struct queued_event *q = &evs[i];
		if (q->ev == LAUNCHER_STOPPED)
			free(strmap_del(&l->running, q->uid));
		else
			running_add(l, q->uid);
		log_debug("launcher", "domain event uid=%s event=%s reason=%s", q->uid,
		          q->ev == LAUNCHER_STOPPED ? "stopped" : "started", q->reason);
		if (l->on_event && !l->closing)
			l->on_event(l->event_ud, q->uid, q->ev, q->reason);
		free(q->uid);
		free(q->reason);
	}
	free(evs);
}

int launcher_new(uv_loop_t *loop, const struct launcher_opts *o, launcher **out, struct err *e)
{
	const char *accel = o->accel && o->accel[0] ? o->accel : "auto";
	if (!o->data_dir || o->data_dir[0] != '/')
		return err_set(e, ERR_CONFIG, "launcher: data_dir must be an absolute path");
	if (strcmp(accel, "auto") && strcmp(accel, "kvm") && strcmp(accel, "tcg"))
		return err_set(e, ERR_CONFIG, "launcher: accel must be auto, kvm or tcg");
	launcher *l = xcalloc(1, sizeof *l);
	l->loop = loop;
	l->data_dir = xstrdup(o->data_dir);
	l->uri = o->uri && o->uri[0] ? xstrdup(o->uri)
	                             : xasprintf(EMBED_PREFIX "%s/libvirt", o->data_dir);
	l->accel_opt = xstrdup(accel);
	l->kernel = o->kernel ? xstrdup(o->kernel) : NULL;
	l->probe_timeout_ms = o->probe_timeout_ms ? o->probe_timeout_ms : 10000;
	l->callback_id = -1;
	strmap_init(&l->running);
	pthread_mutex_init(&l->mu, NULL);
	uv_async_init(loop, &l->async, on_async);
	l->async.data = l;
	*out = l;
	return 0;
}

void launcher_on_event(launcher *l, launcher_event_fn fn, void *ud)
{
	l->on_event = fn;
	l->event_ud = ud;
}

/* The start job and the probe job run side by side; `cb` runs when both
 * are done.  They share one heap record. */
struct start_state {
	int pending;
	struct err e;
	int failed;
	launcher_done_fn cb;
	void *arg;
};

static void start_step_done(launcher *l, struct start_state *s)
{
	if (--s->pending > 0)
		return;
	l->started = !s->failed;
	if (l->started && !l->closing) { /* off the critical path of the first pod */
		struct op *w = xcalloc(1, sizeof *w);
		w->kind = OP_WARM;
		submit(l, w);
	}
	if (s->cb)
		s->cb(s->arg, s->failed ? &s->e : NULL);
	free(s);
}

static void finish_start(launcher *l, struct op *op)
{
	struct start_state *s = op->arg;
	for (size_t i = 0; i < op->nnames; i++)
		running_add(l, op->names[i]);
	l->found = op->names ? op->names : xcalloc(1, sizeof *l->found);
	l->found[op->nnames] = NULL;
	l->nfound = op->nnames;
	if (op->rc) {
		s->failed = 1;
		s->e = op->e;
	} else {
		log_info("launcher", "connected uri=%s domains_found=%zu", l->uri, op->nnames);
	}
	start_step_done(l, s);
}

static void finish_probe(launcher *l, struct op *op)
{
	l->kvm = op->kvm;
	log_info("launcher", "accelerator=%s setting=%s%s%s", l->kvm ? "kvm" : "tcg", l->accel_opt,
	         op->e.msg[0] ? " why=" : "", op->e.msg);
	start_step_done(l, op->arg);
}

int launcher_start(launcher *l, launcher_done_fn cb, void *arg)
{
	struct start_state *s = xcalloc(1, sizeof *s);
	s->pending = 2;
	s->cb = cb;
	s->arg = arg;
	struct op *a = xcalloc(1, sizeof *a), *b = xcalloc(1, sizeof *b);
	a->kind = OP_START;
	a->arg = s;
	b->kind = OP_PROBE;
	b->arg = s;
	submit(l, a);
	submit(l, b);
	return 0;
}

const char *launcher_accel(const launcher *l)
{
	return l->kvm ? "kvm" : "tcg";
}

int launcher_exists(const launcher *l, const char *uid)
{
	return strmap_get(&l->running, uid) != NULL;
}

const char *const *launcher_found(const launcher *l)
{
	static const char *const none[] = {NULL};
	return l->found ? (const char *const *)l->found : none;
}

static int op_submit(launcher *l, enum op_kind kind, const char *uid, const char *xml,
                     launcher_done_fn cb, void *arg)
{
	struct err e;
	if (!l->started || l->closing)
		return err_set(&e, ERR_UNAVAILABLE, "launcher not running");
	struct op *op = xcalloc(1, sizeof *op);
	op->kind = kind;
	op->uid = xstrdup(uid);
	op->xml = xml ? xstrdup(xml) : NULL;
	op->cb = cb;
	op->arg = arg;
	submit(l, op);
	return 0;
}

int launcher_create(launcher *l, const char *uid, const char *xml, launcher_done_fn cb, void *arg)
{
	return op_submit(l, OP_CREATE, uid, xml, cb, arg);
}

int launcher_destroy(launcher *l, const char *uid, launcher_done_fn cb, void *arg)
{
	return op_submit(l, OP_DESTROY, uid, NULL, cb, arg);
}

void launcher_close(launcher *l, void (*cb)(void *arg), void *arg)
{
	l->closing = 1;
	l->close_cb = cb;
	l->close_arg = arg;
	maybe_close(l);
}

void launcher_free(launcher *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->running.cap; i++) {
		struct strmap_slot *s = &l->running.slots[i];
		if (s->key && s->value && s->key == s->value)
			free(s->value);
	}
	strmap_fini(&l->running);
	for (size_t i = 0; i < l->nfound; i++)
		free(l->found[i]);
	free(l->found);
	for (size_t i = 0; i < l->nevents; i++) {
		free(l->events[i].uid);
		free(l->events[i].reason);
	}
	free(l->events);
	pthread_mutex_destroy(&l->mu);
	free(l->uri);
	free(l->data_dir);
	free(l->accel_opt);
	free(l->kernel);
	free(l);
}
