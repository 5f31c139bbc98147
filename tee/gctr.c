/* gctr: see gctr.h.  Containers are few (a pod's), so a list is enough. */
#include "gctr.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gproc.h"
#include "log.h"
#include "ocispec.h"
#include "util.h"

#define LOG_CHUNK 65536
#define MAX_MOUNTS 64

enum { C_CREATED, C_RUNNING, C_EXITED };

struct ctr {
	char *name, *dir, *rootfs;
	int state, overlay, announce, exited, status;
	pid_t pid;
	int fd[2]; /* stdout, stderr read ends; -1 when closed */
	struct ctr *next;
};

struct gctr_set {
	char *state_dir, *volumes_dir, *crun;
	char *hosts, *resolv; /* files bind-mounted as /etc/hosts, /etc/resolv.conf */
	gctr_emit_fn *emit;
	void *arg;
	struct ctr *list;
};

/* crun guards its binary against a container that would overwrite it
 * through /proc/self/exe (CVE-2019-5736): unless it already runs from a
 * fully sealed memfd, it copies itself into one (or a read-only bind
 * mount) and executes itself again, at every start.  Under TCG that second
 * exec and dynamic link of crun and its eleven libraries is ~50 ms of
 * every container start.  The agent makes the sealed copy once, at start,
 * and runs crun from it (/proc/self/fd/N): the same protection, one exec.
 * Falls back to `path` (crun then protects itself as usual). */
static char *sealed_copy(const char *path)
{
	struct stat st;
	int in = open(path, O_RDONLY | O_CLOEXEC);
	int fd = memfd_create("crun", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	off_t off = 0;
	if (in < 0 || fd < 0 || fstat(in, &st) < 0)
		goto fail;
	while (off < st.st_size)
		if (sendfile(fd, in, &off, (size_t)(st.st_size - off)) <= 0)
			goto fail;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		goto fail;
	close(in);
	return xasprintf("/proc/self/fd/%d", fd);
fail:
	log_warn("gctr", "sealed copy of %s: %s (crun makes its own)", path, strerror(errno));
	if (in >= 0)
		close(in);
	if (fd >= 0)
		close(fd);
	return xstrdup(path);
}

struct gctr_set *gctr_set_new(const char *state_dir, const char *volumes_dir, const char *crun,
			      gctr_emit_fn *emit, void *arg)
{
	struct gctr_set *s = xcalloc(1, sizeof *s);
	s->state_dir = xstrdup(state_dir);
	s->volumes_dir = xstrdup(volumes_dir);
	s->crun = access(crun, X_OK) == 0 ? sealed_copy(crun) : xstrdup(crun);
	s->emit = emit;
	s->arg = arg;
	return s;
}

static void ctr_free(struct ctr *c)
{
	for (int i = 0; i < 2; i++)
		if (c->fd[i] >= 0)
			close(c->fd[i]);
	free(c->name);
	free(c->dir);
	free(c->rootfs);
	free(c);
}

void gctr_set_etc(struct gctr_set *s, const char *hosts, const char *resolv)
{
	free(s->hosts);
	free(s->resolv);
	s->hosts = hosts ? xstrdup(hosts) : NULL;
	s->resolv = resolv ? xstrdup(resolv) : NULL;
}

void gctr_set_free(struct gctr_set *s)
{
	if (!s)
		return;
	while (s->list) {
		struct ctr *c = s->list;
		s->list = c->next;
		ctr_free(c);
	}
	free(s->state_dir);
	free(s->volumes_dir);
	free(s->hosts);
	free(s->resolv);
	free(s->crun);
	free(s);
}

static void rfc3339_now(char out[32])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static struct ctr *find(struct gctr_set *s, const char *name)
{
	for (struct ctr *c = s->list; c; c = c->next)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static int valid_name(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 63 || n[0] == '-' || n[len - 1] == '-')
		return 0;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '-'))
			return 0;
	return 1;
}

static void remove_tree(const char *path)
{
	const char *argv[] = {"/bin/busybox", "rm", "-rf", path, NULL};
	gproc_run(argv, -1, -1, 2);
}

static void cleanup(struct gctr_set *s, struct ctr *c)
{
	const char *argv[] = {s->crun, "delete", "-f", c->name, NULL};
	if (c->state != C_CREATED || c->pid)
		gproc_run(argv, -1, -1, -1);
	if (c->overlay)
		umount2(c->rootfs, MNT_DETACH);
	remove_tree(c->dir);
	for (struct ctr **pp = &s->list; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ctr_free(c);
}

/* The root file system: an overlay on the image root, else a copy. */
static int make_rootfs(struct ctr *c, const char *image_rootfs, struct err *e)
{
	char *upper = xasprintf("%s/upper", c->dir), *work = xasprintf("%s/work", c->dir);
	char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s", image_rootfs, upper, work);
	int rc = 0;
	if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0 || mkdir(c->rootfs, 0755) < 0)
		rc = err_set(e, ERR_IO, "mkdir in %s: %s", c->dir, strerror(errno));
	else if (mount("overlay", c->rootfs, "overlay", 0, opts) == 0)
		c->overlay = 1;
	else {
		log_warn("gctr", "overlay for %s: %s; copying the image root", c->name,
			 strerror(errno));
		char *src = xasprintf("%s/.", image_rootfs);
		const char *argv[] = {"/bin/busybox", "cp", "-a", src, c->rootfs, NULL};
		int st = gproc_run(argv, -1, -1, 2);
		free(src);
		if (st != 0)
			rc = err_set(e, ERR_IO, "copying the image root for %s failed", c->name);
	}
	free(upper);
	free(work);
	free(opts);
	return rc;
}

/* mounts: [{"volume", "path", "read_only"}] -> bind mounts of volume dirs. */
static int parse_mounts(struct gctr_set *s, const json_t *arr, struct ocispec_mount *out,
			char **sources, size_t *n, struct err *e)
{
	size_t i;
	json_t *m;
	*n = 0;
	if (arr && (!json_is_array(arr) || json_array_size(arr) > MAX_MOUNTS))
		return err_set(e, ERR_INVALID, "mounts must be an array of at most %d", MAX_MOUNTS);
	json_array_foreach(arr, i, m)
	{
		const char *vol, *path;
		int ro = 0;
		struct stat st;
		if (json_unpack(m, "{s:s, s:s, s?b}", "volume", &vol, "path", &path, "read_only", &ro))
			return err_set(e, ERR_INVALID, "mounts[%zu] needs volume and path", i);
		sources[i] = xasprintf("%s/%s", s->volumes_dir, vol);
		*n = i + 1;
		if (!valid_name(vol) || stat(sources[i], &st) < 0)
			return err_set(e, ERR_NOT_FOUND, "mounts[%zu]: no volume %.64s", i, vol);
		out[i] = (struct ocispec_mount){sources[i], path, ro};
	}
	return 0;
}

struct create_req {
	const char *name, *image, *wd;
	json_t *command, *args, *env, *mounts, *user;
	int ro;
};

static int parse_create(const json_t *body, struct create_req *r, struct ocispec_in *in,
			struct err *e)
{
	json_error_t je;
	json_int_t uid = 0, gid = 0;
	memset(r, 0, sizeof *r);
	if (json_unpack_ex((json_t *)(uintptr_t)body, &je, 0,
			   "{s:s, s:s, s?o, s?o, s?o, s?s, s?b, s?o, s?o}", "name", &r->name,
			   "image", &r->image, "command", &r->command, "args", &r->args, "env",
			   &r->env, "working_dir", &r->wd, "read_only_root", &r->ro, "mounts",
			   &r->mounts, "user", &r->user))
		return err_set(e, ERR_INVALID, "create_container: %s", je.text);
	if (!valid_name(r->name))
		return err_set(e, ERR_INVALID, "create_container: bad name %.64s", r->name);
	if (r->user && !json_is_null(r->user) &&
	    (json_unpack(r->user, "{s:I, s:I}", "uid", &uid, "gid", &gid) || uid < 0 || gid < 0 ||
	     uid > UINT32_MAX || gid > UINT32_MAX))
		return err_set(e, ERR_INVALID, "create_container: user needs numeric uid and gid");
	in->command = r->command;
	in->args = r->args;
	in->env = r->env;
	in->working_dir = r->wd;
	in->read_only_root = r->ro;
	in->has_user = r->user && !json_is_null(r->user);
	in->uid = (uint32_t)uid;
	in->gid = (uint32_t)gid;
	return 0;
}

static int write_bundle(struct gctr_set *s, struct ctr *c, struct ocispec_in *in,
			const struct create_req *r, const char *image_rootfs, struct err *e)
{
	struct ocispec_mount mounts[MAX_MOUNTS + 2];
	char *sources[MAX_MOUNTS] = {0};
	size_t n = 0;
	int rc = parse_mounts(s, r->mounts, mounts, sources, &n, e);
	json_t *doc = NULL;
	in->mounts = mounts;
	in->nmounts = n;
	if (s->hosts)
		mounts[in->nmounts++] = (struct ocispec_mount){s->hosts, "/etc/hosts", 1};
	if (s->resolv)
		mounts[in->nmounts++] = (struct ocispec_mount){s->resolv, "/etc/resolv.conf", 1};
	in->rootfs = c->rootfs;
	if (rc == 0 && !(doc = ocispec_build(in, e)))
		rc = e->code;
	if (rc == 0 && mkdir_p(c->dir, 0700, e) == 0 && (rc = make_rootfs(c, image_rootfs, e)) == 0) {
		char *path = xasprintf("%s/config.json", c->dir);
		if (json_dump_file(doc, path, JSON_COMPACT) < 0)
			rc = err_set(e, ERR_IO, "write %s", path);
		free(path);
	} else if (rc == 0) {
		rc = e->code;
	}
	json_decref(doc);
	for (size_t i = 0; i < n; i++)
		free(sources[i]);
	return rc;
}

int gctr_create(struct gctr_set *s, const json_t *body, const char *image_rootfs,
		const json_t *image_config, const char *hostname, struct err *e)
{
	struct create_req r;
	struct ocispec_in in = {.image_config = image_config, .hostname = hostname};
	if (parse_create(body, &r, &in, e) < 0)
		return e->code;
	struct ctr *old = find(s, r.name);
	if (old && old->state != C_EXITED)
		return err_set(e, ERR_EXISTS, "container \"%s\" exists", r.name);
	if (old)
		cleanup(s, old);
	struct ctr *c = xcalloc(1, sizeof *c);
	c->name = xstrdup(r.name);
	c->dir = xasprintf("%s/%s", s->state_dir, r.name);
	c->rootfs = xasprintf("%s/rootfs", c->dir);
	c->fd[0] = c->fd[1] = -1;
	c->next = s->list;
	s->list = c;
	if (write_bundle(s, c, &in, &r, image_rootfs, e) < 0) {
		int rc = e->code;
		cleanup(s, c);
		return rc;
	}
	return 0;
}

static void emit_exited(struct gctr_set *s, struct ctr *c, int code, const char *reason)
{
	char ts[32];
	rfc3339_now(ts);
	s->emit(s->arg, "container_exited",
		json_pack("{s:s, s:i, s:s, s:s}", "name", c->name, "exit_code", code, "reason",
			  reason, "finished_at", ts));
}

static int start_error(struct gctr_set *s, struct ctr *c, const char *what, struct err *e)
{
	char msg[200] = "";
	if (c->fd[1] >= 0) {
		fcntl(c->fd[1], F_SETFL, O_NONBLOCK);
		ssize_t n = read(c->fd[1], msg, sizeof msg - 1);
		msg[n > 0 ? n : 0] = '\0';
		msg[strcspn(msg, "\n")] = '\0';
	}
	for (int i = 0; i < 2; i++)
		if (c->fd[i] >= 0) {
			close(c->fd[i]);
			c->fd[i] = -1;
		}
	c->state = C_EXITED;
	emit_exited(s, c, 128, "StartError");
	return err_set(e, ERR_INTERNAL, "crun %s %s failed: %s", what, c->name, msg);
}

static pid_t read_pid(const char *dir)
{
	char *path = xasprintf("%s/pid", dir), *text = NULL;
	size_t len;
	struct err e;
	pid_t pid = 0;
	if (file_read(path, 64, &text, &len, &e) == 0)
		pid = (pid_t)atoi(text);
	free(text);
	free(path);
	return pid;
}

int gctr_start(struct gctr_set *s, const char *name, pid_t *pid, struct err *e)
{
	struct ctr *c = find(s, name);
	if (!c)
		return err_set(e, ERR_NOT_FOUND, "no container \"%.64s\"", name);
	if (c->state != C_CREATED)
		return err_set(e, ERR_CONFLICT, "container \"%s\" was already started", name);
	int out[2], errp[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		return err_set(e, ERR_IO, "pipe: %s", strerror(errno));
	/* `crun run --detach` is `crun create` plus `crun start` in one
	 * process: one exec of crun less (~0.1 s under TCG).  crun runs with a
	 * fixed layout (gproc.h: TCG translates it once); the container's
	 * process gets randomization back from the config's personality. */
	char *pidfile = xasprintf("%s/pid", c->dir);
	const char *run[] = {s->crun, "run", "--detach", "--bundle", c->dir, "--pid-file", pidfile,
			     name, NULL};
	int st = gproc_run_fixed_layout(run, -1, out[1], errp[1]);
	free(pidfile);
	close(out[1]);
	close(errp[1]);
	c->fd[0] = out[0];
	c->fd[1] = errp[0];
	if (st != 0 || (c->pid = read_pid(c->dir)) <= 0)
		return start_error(s, c, "run", e);
	fcntl(c->fd[0], F_SETFL, O_NONBLOCK);
	fcntl(c->fd[1], F_SETFL, O_NONBLOCK);
	c->state = C_RUNNING;
	c->announce = 1;
	*pid = c->pid;
	return 0;
}

int gctr_signal(struct gctr_set *s, const char *name, int sig, struct err *e)
{
	struct ctr *c = find(s, name);
	if (!c)
		return err_set(e, ERR_NOT_FOUND, "no container \"%.64s\"", name);
	if (sig < 1 || sig > 64)
		return err_set(e, ERR_INVALID, "signal %d out of range", sig);
	if (c->state != C_RUNNING || c->exited)
		return err_set(e, ERR_CONFLICT, "container \"%s\" is not running", name);
	if (kill(c->pid, sig) < 0)
		return err_set(e, ERR_IO, "kill %d: %s", (int)c->pid, strerror(errno));
	return 0;
}

/* Sends container_exited once the process is gone and its output read. */
static void maybe_finish(struct gctr_set *s, struct ctr *c)
{
	if (c->state != C_RUNNING || !c->exited || c->fd[0] >= 0 || c->fd[1] >= 0)
		return;
	int code = WIFEXITED(c->status) ? WEXITSTATUS(c->status) : 128 + WTERMSIG(c->status);
	c->state = C_EXITED;
	emit_exited(s, c, code, code == 0 ? "Completed" : "Error");
	const char *argv[] = {s->crun, "delete", "-f", c->name, NULL};
	gproc_run(argv, -1, -1, -1);
}

static void announce(struct gctr_set *s, struct ctr *c)
{
	char ts[32];
	rfc3339_now(ts);
	c->announce = 0;
	s->emit(s->arg, "container_started",
		json_pack("{s:s, s:i, s:s}", "name", c->name, "pid", (int)c->pid, "started_at", ts));
}

size_t gctr_pollfds(struct gctr_set *s, struct pollfd *fds, size_t max)
{
	size_t n = 0;
	for (struct ctr *c = s->list; c; c = c->next) {
		if (c->announce)
			announce(s, c);
		for (int i = 0; i < 2 && n < max; i++)
			if (c->fd[i] >= 0)
				fds[n++] = (struct pollfd){.fd = c->fd[i], .events = POLLIN};
	}
	return n;
}

static void forward(struct gctr_set *s, struct ctr *c, int i)
{
	static char data[LOG_CHUNK];
	static unsigned char b64[LOG_CHUNK / 3 * 4 + 8];
	ssize_t n = read(c->fd[i], data, sizeof data);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(c->fd[i]);
		c->fd[i] = -1;
		maybe_finish(s, c);
		return;
	}
	EVP_EncodeBlock(b64, (const unsigned char *)data, (int)n);
	s->emit(s->arg, "log",
		json_pack("{s:s, s:s, s:s}", "name", c->name, "stream", i ? "stderr" : "stdout",
			  "data_b64", (const char *)b64));
}

void gctr_on_poll(struct gctr_set *s, const struct pollfd *fds, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (!fds[k].revents)
			continue;
		for (struct ctr *c = s->list; c; c = c->next)
			for (int i = 0; i < 2; i++)
				if (c->fd[i] == fds[k].fd) {
					forward(s, c, i);
					goto next;
				}
	next:;
	}
}

/* Not a DNS label: no pod container can have this name. */
#define WARM_UP "warm_up"

/* A warm pool VM's idle time, spent on the first `crun run` of the VM:
 * under TCG that one translates crun, its libraries and the kernel paths
 * it takes (namespaces, mounts, seccomp, pivot_root) for the first time,
 * and later runs at the same addresses reuse it (gproc.h), so the pod's
 * first container starts sooner.  The container's root is the agent's own
 * (a read-only bind of /); it runs busybox `true`, and crun removes it when
 * it exits. */
pid_t gctr_warm_up(struct gctr_set *s, struct err *e)
{
	cleanup_free char *dir = xasprintf("%s/" WARM_UP, s->state_dir);
	cleanup_free char *rootfs = xasprintf("%s/rootfs", dir);
	cleanup_free char *path = xasprintf("%s/config.json", dir);
	if (mkdir_p(rootfs, 0755, e) < 0)
		return -1;
	if (mount("/", rootfs, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, rootfs, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
		err_set(e, ERR_IO, "warm-up: binding / read-only: %s", strerror(errno));
		umount2(rootfs, MNT_DETACH);
		return -1;
	}
	json_t *cmd = json_pack("[s, s]", "/bin/busybox", "true");
	struct ocispec_in in = {
	    .command = cmd, .rootfs = rootfs, .read_only_root = 1, .hostname = "warm-up"};
	json_t *doc = ocispec_build(&in, e);
	json_decref(cmd);
	int rc = doc ? json_dump_file(doc, path, JSON_COMPACT) : -1;
	json_decref(doc);
	if (doc && rc < 0)
		err_set(e, ERR_IO, "warm-up: writing %s", path);
	const char *argv[] = {s->crun, "run", "--bundle", dir, WARM_UP, NULL};
	pid_t pid = rc < 0 ? -1 : gproc_spawn_fixed_layout(argv, -1, -1, -1);
	if (rc == 0 && pid < 0)
		err_set(e, ERR_IO, "warm-up: starting crun: %s", strerror(errno));
	if (pid < 0)
		umount2(rootfs, MNT_DETACH);
	return pid;
}

void gctr_warm_up_done(struct gctr_set *s)
{
	cleanup_free char *rootfs = xasprintf("%s/" WARM_UP "/rootfs", s->state_dir);
	umount2(rootfs, MNT_DETACH);
}

void gctr_reaped(struct gctr_set *s, pid_t pid, int status)
{
	for (struct ctr *c = s->list; c; c = c->next)
		if (c->pid == pid && c->state == C_RUNNING && !c->exited) {
			c->exited = 1;
			c->status = status;
			maybe_finish(s, c);
			return;
		}
}

int gctr_kill_all(struct gctr_set *s, int sig)
{
	int running = 0;
	for (struct ctr *c = s->list; c; c = c->next)
		if (c->state == C_RUNNING && !c->exited) {
			running++;
			kill(c->pid, sig);
		}
	return running;
}
