/* ocispec: see ocispec.h.  The config follows `crun spec` (1.8.1) for the
 * standard mounts and masked paths, with the changes a pod needs: no
 * network namespace, terminal off (stdio are the agent's pipes), optional
 * read-only root, and the seccomp deny-list below. */
#include "ocispec.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const ocispec_denied_syscalls[] = {
	"acct", "add_key", "bpf", "delete_module", "finit_module", "fsconfig", "fsmount",
	"fsopen", "fspick", "init_module", "iopl", "ioperm", "kexec_file_load", "kexec_load",
	"keyctl", "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
	"open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "quotactl", "reboot", "request_key", "setns",
	"swapoff", "swapon", "umount2", "userfaultfd", NULL,
};

static const char *const caps[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP",
	"CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_MKNOD", "CAP_NET_RAW", NULL,
};

#define CLONE_NEWUSER_ 0x10000000

static json_t *strings(const char *const *v)
{
	json_t *a = json_array();
	for (; *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* Rules: deny-list with EPERM; user namespaces through unshare/clone
 * refused; clone3 answers ENOSYS so libc falls back to clone. */
static json_t *seccomp(void)
{
	json_t *rules = json_array();
	json_array_append_new(rules, json_pack("{s:o, s:s, s:i}", "names",
					       strings(ocispec_denied_syscalls), "action",
					       "SCMP_ACT_ERRNO", "errnoRet", 1));
	const char *nsuser[] = {"unshare", "clone", NULL};
	for (int i = 0; nsuser[i]; i++)
		json_array_append_new(
			rules, json_pack("{s:[s], s:s, s:i, s:[{s:i, s:I, s:I, s:s}]}", "names",
					 nsuser[i], "action", "SCMP_ACT_ERRNO", "errnoRet", 1,
					 "args", "index", 0, "value", (json_int_t)CLONE_NEWUSER_,
					 "valueTwo", (json_int_t)CLONE_NEWUSER_, "op",
					 "SCMP_CMP_MASKED_EQ"));
	json_array_append_new(rules, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action",
					       "SCMP_ACT_ERRNO", "errnoRet", 38));
	return json_pack("{s:s, s:[s], s:o}", "defaultAction", "SCMP_ACT_ALLOW", "architectures",
			 "SCMP_ARCH_X86_64", "syscalls", rules);
}

static int append_strings(json_t *dst, const json_t *src)
{
	size_t i;
	json_t *v;
	if (!src || json_is_null(src))
		return 0;
	if (!json_is_array(src))
		return -1;
	json_array_foreach(src, i, v)
	{
		if (!json_is_string(v))
			return -1;
		json_array_append(dst, v);
	}
	return 0;
}

static const json_t *image_field(const struct ocispec_in *in, const char *key)
{
	json_t *c = json_object_get(in->image_config, "config");
	json_t *v = json_object_get(c, key);
	return json_is_null(v) ? NULL : v;
}

static int nonempty(const json_t *a) { return json_is_array(a) && json_array_size(a) > 0; }

/* Kubernetes: command replaces Entrypoint, args replaces Cmd; with a
 * command and no args, the image's Cmd is dropped. */
static json_t *build_args(const struct ocispec_in *in, struct err *e)
{
	json_t *args = json_array();
	int bad;
	if (nonempty(in->command))
		bad = append_strings(args, in->command) || append_strings(args, in->args);
	else
		bad = append_strings(args, image_field(in, "Entrypoint")) ||
		      append_strings(args, nonempty(in->args) ? in->args : image_field(in, "Cmd"));
	if (bad || json_array_size(args) == 0) {
		json_decref(args);
		err_set(e, ERR_INVALID, bad ? "command, args, Entrypoint and Cmd must be string arrays"
					    : "no command: neither the pod nor the image names one");
		return NULL;
	}
	return args;
}

static size_t name_len(const char *kv)
{
	const char *eq = strchr(kv, '=');
	return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Sets kv in env, replacing a variable of the same name. */
static void env_set(json_t *env, const char *kv)
{
	size_t i, n = name_len(kv);
	json_t *v;
	json_array_foreach(env, i, v)
	{
		const char *s = json_string_value(v);
		if (name_len(s) == n && !strncmp(s, kv, n)) {
			json_array_set_new(env, i, json_string(kv));
			return;
		}
	}
	json_array_append_new(env, json_string(kv));
}

static json_t *build_env(const struct ocispec_in *in, struct err *e)
{
	json_t *env = json_array(), *tmp = json_array();
	size_t i;
	json_t *v;
	int bad = append_strings(tmp, image_field(in, "Env")) || append_strings(tmp, in->env);
	json_array_foreach(tmp, i, v)
	{
		if (!strchr(json_string_value(v), '='))
			bad = 1;
		else
			env_set(env, json_string_value(v));
	}
	json_decref(tmp);
	if (bad) {
		json_decref(env);
		err_set(e, ERR_INVALID, "env entries must be \"NAME=value\" strings");
		return NULL;
	}
	int has_path = 0;
	json_array_foreach(env, i, v) has_path |= !strncmp(json_string_value(v), "PATH=", 5);
	if (!has_path)
		json_array_insert_new(env, 0,
				      json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
						  "/usr/bin:/sbin:/bin"));
	return env;
}

/* "uid" or "uid:gid", numeric only (no /etc/passwd lookup). */
static int image_user(const struct ocispec_in *in, uint32_t *uid, uint32_t *gid, struct err *e)
{
	const char *u = json_string_value(image_field(in, "User"));
	*uid = *gid = 0;
	if (!u || !u[0] || !strcmp(u, "root"))
		return 0;
	char *end;
	unsigned long a = strtoul(u, &end, 10), b = a;
	if (end != u && *end == ':')
		b = strtoul(end + 1, &end, 10);
	if (end == u || *end || a > UINT32_MAX || b > UINT32_MAX)
		return err_set(e, ERR_INVALID, "image user %.100s: only numeric uid[:gid] is supported",
			       u);
	*uid = (uint32_t)a;
	*gid = (uint32_t)b;
	return 0;
}

static json_t *build_process(const struct ocispec_in *in, struct err *e)
{
	uint32_t uid = in->uid, gid = in->gid;
	const char *cwd = in->working_dir && in->working_dir[0]
				  ? in->working_dir
				  : json_string_value(image_field(in, "WorkingDir"));
	if (!cwd || !cwd[0])
		cwd = "/";
	if (cwd[0] != '/') {
		err_set(e, ERR_INVALID, "working directory %.100s is not absolute", cwd);
		return NULL;
	}
	if (!in->has_user && image_user(in, &uid, &gid, e) < 0)
		return NULL;
	json_t *args = build_args(in, e), *env = args ? build_env(in, e) : NULL;
	if (!env) {
		json_decref(args);
		return NULL;
	}
	return json_pack("{s:b, s:{s:I, s:I}, s:o, s:o, s:s, s:b, s:{s:o, s:o, s:o, s:[], s:[]},"
			 " s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}",
			 "terminal", 0, "user", "uid", (json_int_t)uid, "gid", (json_int_t)gid,
			 "args", args, "env", env, "cwd", cwd, "noNewPrivileges", 1,
			 "capabilities", "bounding", strings(caps), "effective", strings(caps),
			 "permitted", strings(caps), "inheritable", "ambient", "rlimits", "type",
			 "RLIMIT_NOFILE", "soft", 1048576, "hard", 1048576, "type", "RLIMIT_NPROC",
			 "soft", 4096, "hard", 4096);
}

static json_t *mount_entry(const char *dst, const char *type, const char *src, const char *opts)
{
	json_t *o = json_array();
	char *copy = xstrdup(opts), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		json_array_append_new(o, json_string(t));
	free(copy);
	return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
			 "options", o);
}

static json_t *build_mounts(const struct ocispec_in *in, struct err *e)
{
	json_t *m = json_array();
	json_array_append_new(m, mount_entry("/proc", "proc", "proc", "nosuid,noexec,nodev"));
	json_array_append_new(m, mount_entry("/dev", "tmpfs", "tmpfs",
				       "nosuid,strictatime,mode=755,size=65536k"));
	json_array_append_new(m, mount_entry("/dev/pts", "devpts", "devpts",
				       "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
	json_array_append_new(m, mount_entry("/dev/shm", "tmpfs", "shm",
				       "nosuid,noexec,nodev,mode=1777,size=65536k"));
	json_array_append_new(m, mount_entry("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
	json_array_append_new(m, mount_entry("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
	json_array_append_new(m, mount_entry("/sys/fs/cgroup", "cgroup", "cgroup",
				       "nosuid,noexec,nodev,relatime,ro"));
	for (size_t i = 0; i < in->nmounts; i++) {
		const struct ocispec_mount *v = &in->mounts[i];
		if (v->destination[0] != '/' || strstr(v->destination, "..")) {
			json_decref(m);
			err_set(e, ERR_INVALID, "mount path %.100s must be absolute, without '..'",
				v->destination);
			return NULL;
		}
		json_array_append_new(m, mount_entry(v->destination, "bind", v->source,
					       v->read_only ? "rbind,ro,nosuid,nodev"
							    : "rbind,rw,nosuid,nodev"));
	}
	return m;
}

static json_t *build_linux(void)
{
	static const char *const masked[] = {
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
		"/proc/scsi", NULL};
	static const char *const ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
					 "/proc/sysrq-trigger", NULL};
	/* personality LINUX: crun sets it in the container's init before the
	 * exec, which clears ADDR_NO_RANDOMIZE (crun itself runs without
	 * randomization, gproc_run_fixed_layout): the workload's address space
	 * is randomized as usual. */
	return json_pack("{s:[{s:s}, {s:s}, {s:s}, {s:s}], s:o, s:o, s:o,"
			 " s:{s:[{s:b, s:s}]}, s:{s:s}}",
			 "namespaces", "type", "pid", "type", "ipc", "type", "uts", "type", "mount",
			 "maskedPaths", strings(masked), "readonlyPaths", strings(ro), "seccomp",
			 seccomp(), "resources", "devices", "allow", 0, "access", "rwm", "personality",
			 "domain", "LINUX");
}

json_t *ocispec_build(const struct ocispec_in *in, struct err *e)
{
	json_t *proc = build_process(in, e);
	json_t *mounts = proc ? build_mounts(in, e) : NULL;
	if (!mounts) {
		json_decref(proc);
		return NULL;
	}
	json_t *doc = json_pack("{s:s, s:o, s:{s:s, s:b}, s:o, s:o}", "ociVersion", "1.0.2",
				"process", proc, "root", "path", in->rootfs, "readonly",
				in->read_only_root, "mounts", mounts, "linux", build_linux());
	if (doc && in->hostname && in->hostname[0])
		json_object_set_new(doc, "hostname", json_string(in->hostname));
	if (!doc)
		err_set(e, ERR_INTERNAL, "cannot build config.json");
	return doc;
}
