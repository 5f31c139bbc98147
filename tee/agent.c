/* agent: see agent.h.  One thread, one poll(2) loop over a signalfd
 * (SIGCHLD), the agent port and the containers' output pipes.  Outgoing
 * frames wait in a queue written as the port accepts them, so a host that
 * stops reading never blocks the agent; container output stops being read
 * while the queue is above OUT_HIGH (back-pressure instead of memory). */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "gctr.h"
#include "gimage.h"
#include "gnet.h"
#include "initdata.h"
#include "log.h"
#include "util.h"

#define PORT_NAME "io.cocod.agent"
#define RUN_DIR "/run/cocod"
#define INITDATA_DIR "/run/confidential-containers/initdata" /* CoCo's place for it */
#define OUT_HIGH (8u << 20)
#define GRACE_MS 2000
#define MAX_POLL 130

enum host_state { HOST_WAIT, HOST_ON, HOST_DRAIN };

struct outframe {
	struct buf b;
	struct outframe *next;
};

struct agent {
	int port, sigfd;
	enum host_state host;
	struct frame_reader rd;
	struct outframe *out;
	size_t out_off, out_bytes;
	struct gimage_store *images;
	struct gctr_set *ctrs;
	char *hostname; /* set by create_sandbox */
	pid_t warm_pid; /* the warm-up's crun, while it runs; -1 once done */
	uint64_t warm_at;
	int power_off;
	const struct frame_msg *msg; /* the request being handled (its payload) */
};

/* ---- outgoing frames ---- */

static void queue_frame(struct agent *a, int64_t id, const char *type, json_t *body, int front)
{
	struct outframe *f = xcalloc(1, sizeof *f);
	struct err e = {0};
	buf_init(&f->b);
	if (frame_encode(&f->b, id, type, body, &e) < 0) {
		log_error("agent", "dropping %s: %s", type, e.msg);
		buf_fini(&f->b);
		free(f);
		return;
	}
	a->out_bytes += f->b.len;
	struct outframe **pp = &a->out;
	if (front)
		f->next = a->out;
	else
		while (*pp)
			pp = &(*pp)->next;
	*pp = f;
}

static void emit(void *arg, const char *type, json_t *body)
{
	queue_frame(arg, 0, type, body, 0);
	json_decref(body);
}

static void pop_frame(struct agent *a)
{
	struct outframe *f = a->out;
	a->out = f->next;
	a->out_bytes -= f->b.len;
	a->out_off = 0;
	buf_fini(&f->b);
	free(f);
}

static void flush_some(struct agent *a)
{
	while (a->out) {
		ssize_t n = write(a->port, a->out->b.data + a->out_off, a->out->b.len - a->out_off);
		if (n <= 0)
			return;
		a->out_off += (size_t)n;
		if (a->out_off == a->out->b.len)
			pop_frame(a);
	}
}

/* Guest uptime in ms (the clock the kernel's own boot time is on). */
static int64_t uptime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_ready(struct agent *a)
{
	struct utsname u;
	int64_t up = uptime_ms();
	uname(&u);
	json_t *b = json_pack("{s:s, s:s, s:I, s:[s]}", "version", COCOD_VERSION, "kernel",
			      u.release, "boot_ms", (json_int_t)up, "features", "payload");
	queue_frame(a, 0, "ready", b, 1);
	json_decref(b);
	log_info("agent", "host connected, ready sent boot_ms=%lld", (long long)up);
}

/* ---- requests ---- */

typedef int handler_fn(struct agent *a, json_t *body, json_t *reply, struct err *e);

static int valid_label(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > 63)
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '-'))
			return 0;
	return 1;
}

/* Init-data from the host: parsed and hashed as the KBS will (the agent
 * trusts its own digest, not the host's), then written read-only where
 * CoCo's guest components read it.  *digest gets "<algorithm>:<hex>". */
static int write_init_data(const json_t *init, char digest[INITDATA_DIGEST_STR], struct err *e)
{
	struct initdata d;
	const char *toml = json_string_value(init);
	size_t len = json_string_length(init);
	if (initdata_parse(toml, len, &d, e) < 0)
		return err_wrap(e, "create_sandbox");
	initdata_digest_str(&d, digest);
	initdata_fini(&d);
	if (mkdir_p(INITDATA_DIR, 0755, e) < 0 ||
	    file_write_atomic(INITDATA_DIR "/initdata.toml", toml, len, 0444, e) < 0)
		return err_wrap(e, "create_sandbox: init-data");
	return 0;
}

/* The guest's clock starts from the emulated RTC, whole seconds: up to a
 * second off the host's, and containers' start and finish times, which
 * the host shows beside its own, with it.  The host's time in
 * create_sandbox sets it (only as PID 1, in a VM; the host is trusted for
 * time no more than the RTC it emulates). */
static void set_clock(json_int_t time_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(time_ns / 1000000000),
	                      .tv_nsec = (long)(time_ns % 1000000000)};
	if (time_ns <= 0 || getpid() != 1)
		return;
	struct timespec was;
	clock_gettime(CLOCK_REALTIME, &was);
	int64_t off = time_ns - ((int64_t)was.tv_sec * 1000000000 + was.tv_nsec);
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		log_warn("agent", "setting the clock: %s", strerror(errno));
	else
		log_info("agent", "clock set from the host, was off by %lld ms", (long long)(off / 1000000));
}

static int on_create_sandbox(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	const char *uid, *name, *ns, *host = NULL, *net = "none";
	json_t *init = NULL, *vols = NULL, *v;
	json_int_t time_ns = 0;
	json_error_t je;
	size_t i;
	char digest[INITDATA_DIGEST_STR];
	if (json_unpack_ex(body, &je, 0, "{s:s, s:s, s:s, s?s, s?o, s?o, s?s, s?I}", "uid", &uid,
			   "name", &name, "namespace", &ns, "hostname", &host, "init_data", &init,
			   "volumes", &vols, "network", &net, "time_ns", &time_ns))
		return err_set(e, ERR_INVALID, "create_sandbox: %s", je.text);
	if (time_ns < 0)
		return err_set(e, ERR_INVALID, "create_sandbox: time_ns must not be negative");
	if (strcmp(net, "none") != 0 && strcmp(net, "user") != 0)
		return err_set(e, ERR_INVALID, "create_sandbox: network must be \"none\" or \"user\"");
	if (init && !json_is_null(init) && !json_is_string(init))
		return err_set(e, ERR_INVALID, "create_sandbox: init_data must be text or null");
	if (vols && !json_is_array(vols))
		return err_set(e, ERR_INVALID, "create_sandbox: volumes must be an array");
	if (a->hostname)
		return err_set(e, ERR_EXISTS, "create_sandbox: the sandbox exists");
	json_array_foreach(vols, i, v)
	{
		const char *vn = json_string_value(json_object_get(v, "name"));
		json_t *medium = json_object_get(v, "medium");
		if (!valid_label(vn) || (medium && !json_is_string(medium) && !json_is_null(medium)))
			return err_set(e, ERR_INVALID, "create_sandbox: volumes[%zu] needs a DNS-label name",
				       i);
	}
	if (json_is_string(init) && write_init_data(init, digest, e) < 0)
		return e->code;
	set_clock(time_ns);
	json_array_foreach(vols, i, v)
	{
		char *dir = xasprintf(RUN_DIR "/volumes/%s", json_string_value(json_object_get(v, "name")));
		int rc = mkdir_p(dir, 0777, e);
		chmod(dir, 0777);
		free(dir);
		if (rc)
			return rc;
	}
	int user_net = strcmp(net, "user") == 0;
	if (user_net && gnet_user(e) < 0)
		return err_wrap(e, "create_sandbox: network");
	const char *hostname = host && host[0] ? host : name;
	if (mkdir_p(RUN_DIR "/etc", 0755, e) < 0 ||
	    gnet_write_files(RUN_DIR "/etc", hostname, user_net ? GNET_ADDRESS : NULL,
			     user_net ? GNET_DNS : NULL, e) < 0)
		return err_wrap(e, "create_sandbox");
	gctr_set_etc(a->ctrs, RUN_DIR "/etc/hosts", user_net ? RUN_DIR "/etc/resolv.conf" : NULL);
	a->hostname = xstrdup(hostname);
	if (getpid() == 1 && sethostname(a->hostname, strlen(a->hostname)) < 0)
		log_warn("agent", "sethostname: %s", strerror(errno));
	if (json_is_string(init))
		json_object_set_new(reply, "init_data_digest", json_string(digest));
	log_info("agent", "sandbox %s/%s uid=%s volumes=%zu init_data=%s", ns, name, uid,
		 json_array_size(vols), json_is_string(init) ? digest : "none");
	return 0;
}

static int on_image_begin(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	json_t *missing = NULL;
	if (gimage_begin(a->images, body, &missing, e) < 0)
		return e->code;
	json_object_set_new(reply, "missing", missing);
	return 0;
}

static int on_blob_chunk(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	return gimage_chunk(a->images, body, a->msg->payload, a->msg->payload_len, e);
}

static int on_create_container(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	const char *image = json_string_value(json_object_get(body, "image")), *rootfs;
	const json_t *config;
	if (!a->hostname)
		return err_set(e, ERR_CONFLICT, "create_container: no sandbox yet");
	if (!image)
		return err_set(e, ERR_INVALID, "create_container: image must be a string");
	if (gimage_find(a->images, image, &rootfs, &config, e) < 0)
		return e->code;
	return gctr_create(a->ctrs, body, rootfs, config, a->hostname, e);
}

static int on_start_container(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	const char *name;
	pid_t pid;
	if (json_unpack(body, "{s:s}", "name", &name))
		return err_set(e, ERR_INVALID, "start_container: name must be a string");
	if (gctr_start(a->ctrs, name, &pid, e) < 0)
		return e->code;
	json_object_set_new(reply, "pid", json_integer(pid));
	return 0;
}

static int on_signal(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	const char *name;
	int sig;
	if (json_unpack(body, "{s:s, s:i}", "name", &name, "signal", &sig))
		return err_set(e, ERR_INVALID, "signal: needs name and signal");
	return gctr_signal(a->ctrs, name, sig, e);
}

static int on_destroy_sandbox(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	a->power_off = 1;
	return 0;
}

/* Before a sandbox, in a warm pool VM's idle time (gctr_warm_up); once. */
static int on_warm_up(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	if (a->hostname)
		return err_set(e, ERR_CONFLICT, "warm_up: only before create_sandbox");
	if (a->warm_pid)
		return 0; /* running or done */
	pid_t pid = gctr_warm_up(a->ctrs, e);
	if (pid < 0)
		return e->code;
	a->warm_pid = pid;
	a->warm_at = now_ns();
	return 0;
}

static int on_exec(struct agent *a, json_t *body, json_t *reply, struct err *e)
{
	return err_set(e, ERR_FORBIDDEN, "exec is not allowed by the agent policy");
}

static const struct {
	const char *type;
	handler_fn *fn;
	int payload; /* takes a frame payload */
} handlers[] = {
	{"create_sandbox", on_create_sandbox, 0},   {"image_begin", on_image_begin, 0},
	{"blob_chunk", on_blob_chunk, 1},           {"create_container", on_create_container, 0},
	{"start_container", on_start_container, 0}, {"signal", on_signal, 0},
	{"destroy_sandbox", on_destroy_sandbox, 0}, {"exec", on_exec, 0},
	{"warm_up", on_warm_up, 0},
};

static void handle(struct agent *a, struct frame_msg *m)
{
	struct err e = {0};
	json_t *reply = json_pack("{s:b}", "ok", 1);
	handler_fn *fn = NULL;
	int payload_ok = 0;
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
		if (!strcmp(handlers[i].type, m->type)) {
			fn = handlers[i].fn;
			payload_ok = handlers[i].payload;
		}
	a->msg = m;
	int rc = m->id == 0 ? err_set(&e, ERR_INVALID, "requests need a non-zero id")
		 : !fn      ? err_set(&e, ERR_INVALID, "unknown request type %.64s", m->type)
		 : m->payload && !payload_ok
			? err_set(&e, ERR_INVALID, "%s takes no payload", m->type)
			: fn(a, m->body, reply, &e);
	a->msg = NULL;
	if (rc < 0) {
		json_decref(reply);
		reply = json_pack("{s:b, s:s}", "ok", 0, "error", e.msg);
		log_warn("agent", "%s id=%lld: %s", m->type, (long long)m->id, e.msg);
	}
	queue_frame(a, m->id, "reply", reply, 0);
	json_decref(reply);
}

/* ---- the port ---- */

static void host_gone(struct agent *a)
{
	log_info("agent", "host closed the channel; waiting for it to come back");
	a->host = HOST_WAIT;
	frame_reader_fini(&a->rd);
	frame_reader_init(&a->rd);
}

/* Polls the port without blocking: a virtio port reports POLLHUP while
 * no host is connected. */
static void check_host(struct agent *a)
{
	struct pollfd p = {.fd = a->port, .events = POLLIN};
	if (poll(&p, 1, 0) < 0 || (p.revents & POLLHUP))
		return;
	if (a->out && a->out_off > 0)
		pop_frame(a); /* the old host saw part of it: never send the rest */
	a->host = HOST_ON;
	send_ready(a);
}

static void on_input(struct agent *a, const char *data, size_t n)
{
	struct frame_msg m;
	struct err e = {0};
	int rc;
	if (a->host == HOST_DRAIN)
		return;
	frame_reader_feed(&a->rd, data, n);
	while (!a->power_off && (rc = frame_next(&a->rd, &m, &e)) == 1) {
		handle(a, &m);
		frame_msg_fini(&m);
	}
	if (a->rd.broken) {
		log_error("agent", "%s: refusing the rest of this connection", e.msg);
		json_t *b = json_pack("{s:b, s:s}", "ok", 0, "error", e.msg);
		queue_frame(a, 0, "reply", b, 0);
		json_decref(b);
		a->host = HOST_DRAIN;
	}
}

static void port_io(struct agent *a, short revents)
{
	static char buf[65536];
	if (revents & POLLOUT)
		flush_some(a);
	if (revents & POLLIN) {
		ssize_t n = read(a->port, buf, sizeof buf);
		if (n > 0)
			on_input(a, buf, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			host_gone(a);
	} else if (revents & (POLLHUP | POLLERR)) {
		host_gone(a);
	}
}

/* ---- children and power ---- */

static void reap(struct agent *a)
{
	struct signalfd_siginfo si;
	while (read(a->sigfd, &si, sizeof si) == sizeof si)
		;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == a->warm_pid) {
			log_info("agent", "warm-up done ms=%llu status=%d",
				 (unsigned long long)((now_ns() - a->warm_at) / 1000000), status);
			a->warm_pid = -1;
			gctr_warm_up_done(a->ctrs);
		}
		gctr_reaped(a->ctrs, pid, status);
	}
}

static void wait_until(struct agent *a, uint64_t ms, int (*done)(struct agent *))
{
	uint64_t end = now_ns() + ms * 1000000ull;
	while (!done(a) && now_ns() < end) {
		struct pollfd p[2] = {{.fd = a->sigfd, .events = POLLIN},
				      {.fd = a->port, .events = a->out ? POLLOUT : 0}};
		poll(p, a->host == HOST_WAIT ? 1 : 2, 20);
		reap(a);
		if (a->host != HOST_WAIT && (p[1].revents & POLLOUT))
			flush_some(a);
	}
}

static int out_empty(struct agent *a) { return a->out == NULL; }
static int all_stopped(struct agent *a) { return gctr_kill_all(a->ctrs, 0) == 0; }

static void power_off(struct agent *a)
{
	log_info("agent", "destroy_sandbox: stopping containers, powering off");
	wait_until(a, 1000, out_empty);
	if (gctr_kill_all(a->ctrs, SIGTERM) > 0)
		wait_until(a, GRACE_MS, all_stopped);
	gctr_kill_all(a->ctrs, SIGKILL);
	wait_until(a, 500, all_stopped);
	sync();
	if (getpid() == 1)
		reboot(RB_POWER_OFF);
	exit(0);
}

static void serve(struct agent *a)
{
	for (;;) {
		struct pollfd fds[MAX_POLL];
		size_t n = 0, port_idx = 0, first;
		if (a->host == HOST_WAIT)
			check_host(a);
		fds[n++] = (struct pollfd){.fd = a->sigfd, .events = POLLIN};
		if (a->host != HOST_WAIT) {
			port_idx = n;
			fds[n++] = (struct pollfd){.fd = a->port,
						   .events = POLLIN | (a->out ? POLLOUT : 0)};
		}
		first = n;
		if (a->out_bytes < OUT_HIGH)
			n += gctr_pollfds(a->ctrs, fds + n, MAX_POLL - n);
		if (a->host != HOST_WAIT && a->out)
			fds[port_idx].events |= POLLOUT;
		if (poll(fds, n, a->host == HOST_WAIT ? 50 : -1) < 0 && errno != EINTR)
			log_error("agent", "poll: %s", strerror(errno));
		if (fds[0].revents)
			reap(a);
		if (port_idx)
			port_io(a, fds[port_idx].revents);
		gctr_on_poll(a->ctrs, fds + first, n - first);
		if (a->power_off)
			power_off(a);
	}
}

/* ---- guest bring-up (PID 1) ---- */

static void console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		dup2(fd, i);
	if (fd > 2)
		close(fd);
}

static void mnt(const char *src, const char *dst, const char *type, const char *opts)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, MS_NOSUID, opts) < 0)
		log_error("agent", "mount %s on %s: %s", type, dst, strerror(errno));
}

/* Stage 1: the initramfs (rootfs) is the root of the mount tree, and
 * pivot_root(2) refuses to move that (EINVAL), so crun could not pivot into
 * a container's root.  switch_root's way out without its copy of every
 * file: bind-mount rootfs onto a directory of itself, move that mount over
 * "/" and chroot into it.  Our root is then an ordinary mount whose parent
 * is rootfs, which pivot_root accepts in the containers' mount namespaces,
 * exactly as after `switch_root` into a tmpfs copy; the files stay where
 * the kernel unpacked them (no second copy in guest memory, no time spent
 * copying).  Returns 0, or -1 with `why` set (logged once the console is
 * up: the kernel gives /init no descriptors when the initramfs has no
 * /dev/console). */
static int stage1(const char **why)
{
	mkdir("/newroot", 0755);
	if (mount("/", "/newroot", NULL, MS_BIND, NULL) < 0)
		return *why = "bind-mounting / on /newroot", -1;
	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return *why = "moving /newroot over /", -1;
	if (chroot(".") < 0 || chdir("/") < 0)
		return *why = "chroot into the moved root", -1;
	rmdir("/newroot"); /* the mount point, now an empty directory again */
	return 0;
}

static void load_modules(void)
{
	static const char *const mods[] = {"virtio_ring", "virtio", "virtio_pci_modern_dev",
					   "virtio_pci_legacy_dev", "virtio_pci", "virtio_console",
					   "overlay", NULL};
	for (int i = 0; mods[i]; i++) {
		char path[128];
		snprintf(path, sizeof path, "/lib/modules/%s.ko", mods[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* built in, or not in this kit */
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			log_error("agent", "insmod %s: %s", mods[i], strerror(errno));
		close(fd);
	}
}

/* Stage 2: the file systems, the console and the modules; *mods_ms gets
 * the guest uptime when the modules are loaded. */
static void stage2(int64_t *mods_at)
{
	mnt("proc", "/proc", "proc", NULL);
	mnt("sysfs", "/sys", "sysfs", NULL);
	mnt("devtmpfs", "/dev", "devtmpfs", NULL);
	console();
	mnt("tmpfs", "/run", "tmpfs", "mode=0755");
	mnt("cgroup2", "/sys/fs/cgroup", "cgroup2", NULL);
	mnt("devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666");
	mkdir("/tmp", 01777);
	setenv("PATH", "/bin", 1);
	load_modules();
	*mods_at = uptime_ms();
	struct err e = {0};
	if (gnet_loopback(&e) < 0)
		log_error("agent", "loopback: %s", e.msg);
}

/* Finds /dev/vportNpM whose name is io.cocod.agent (device nodes appear
 * asynchronously, a few ms after the module: retries every 2 ms for up to
 * 10 s). */
static int open_port(void)
{
	for (int tries = 0; tries < 5000; tries++, usleep(2000)) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[300], name[64] = "";
			snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", de->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			if (!fgets(name, sizeof name, f))
				name[0] = '\0';
			fclose(f);
			name[strcspn(name, "\n")] = '\0';
			snprintf(path, sizeof path, "/dev/%s", de->d_name);
			int fd = strcmp(name, PORT_NAME) ? -1
							 : open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0) {
				closedir(d);
				return fd;
			}
		}
		if (d)
			closedir(d);
	}
	return -1;
}

/* jansson seeds its hash function on first use from /dev/urandom.  Early
 * in a VM's life the kernel's CRNG is not initialised yet, and Linux 6.x
 * then runs its jitter-entropy generator inside that read: about a second
 * under TCG, before the agent could say `ready`.  A hash seed only needs
 * to be unpredictable enough to keep colliding keys from degrading lookups
 * (and only a host that can kill this VM anyway sends us JSON), so it is
 * taken from getrandom(GRND_INSECURE), which never waits.  Must run before
 * the first json_t is made. */
static void seed_json(void)
{
	uint32_t seed = 0;
	if (getrandom(&seed, sizeof seed, GRND_INSECURE) != (ssize_t)sizeof seed &&
	    getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
		seed = (uint32_t)now_ns() ^ ((uint32_t)getpid() << 16);
	json_object_seed(seed ? seed : 1); /* 0 would mean "read /dev/urandom" */
}

static int setup_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int agent_main(int argc, char **argv)
{
	const char *port_path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port_path = argv[++i];
		else if (getpid() != 1) { /* as PID 1, the kernel's leftover words are no error */
			fprintf(stderr, "usage: cocod agent [--port DEVICE]\n");
			return 2;
		}
	}
	int64_t start = uptime_ms(), mods = start;
	seed_json();
	if (getpid() == 1) {
		const char *why = NULL;
		int err1 = stage1(&why) < 0 ? errno : 0;
		stage2(&mods);
		if (why)
			log_error("agent", "%s: %s (containers cannot pivot_root)", why, strerror(err1));
	}
	struct agent a = {.host = HOST_WAIT};
	a.sigfd = setup_signals();
	a.port = port_path ? open(port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC) : open_port();
	/* where the guest's first second goes (bench/podstart.sh reads it) */
	log_info("agent", "started uptime_ms=%lld mounts_modules_ms=%lld port_ms=%lld",
	         (long long)start, (long long)(mods - start), (long long)(uptime_ms() - mods));
	if (a.port < 0) {
		log_error("agent", "no virtio port named %s", PORT_NAME);
		if (getpid() == 1)
			reboot(RB_POWER_OFF);
		return 1;
	}
	struct err e = {0};
	if (mkdir_p(RUN_DIR "/images", 0700, &e) || mkdir_p(RUN_DIR "/containers", 0700, &e) ||
	    mkdir_p(RUN_DIR "/volumes", 0755, &e))
		log_error("agent", "%s", e.msg);
	frame_reader_init(&a.rd);
	a.images = gimage_store_new(RUN_DIR "/images");
	a.ctrs = gctr_set_new(RUN_DIR "/containers", RUN_DIR "/volumes", "/bin/crun", emit, &a);
	serve(&a);
	return 0;
}
