/* config: the option table and everything driven by it.  Each option is one
 * row (name, type, field offset, default as text, bounds, validator, help);
 * defaults, the file parser, command-line overrides, validation, printing
 * the effective configuration and printing the reference all walk that
 * table, so adding an option is adding a row.
 *
 * The file is a TOML subset, one `key = value` per line: "strings" with the
 * escapes \" \\ \n \t, integers, true/false, ["string", ...] arrays on one
 * line, `#` comments (whole-line or after a value).  Sizes and durations are
 * strings ("4MiB", "10s"); sizes may also be bare integers (bytes).  Setting
 * an option twice in one file is an error ("duplicate option"), since the
 * second line is almost always a forgotten edit.  Lines are limited to 4096
 * bytes and files to 1 MiB.  A failed load leaves the config untouched. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define MAX_FILE (1u << 20)
#define MAX_LINE 4096
#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define DAY_MS (24ull * 3600 * 1000)

enum type { T_STRING, T_BOOL, T_SIZE, T_DURATION, T_UINT, T_LIST, T_LEVEL, T_LISTEN };

static const char *const type_names[] = {
	"string", "bool", "size", "duration", "uint", "string-list", "log-level", "listen-address",
};

struct option {
	const char *name;
	enum type type;
	size_t off;                                 /* into struct config */
	const char *def;                            /* as config_set takes it */
	uint64_t min, max;                          /* sizes, durations, uints */
	int (*check)(const char *s, struct err *e); /* strings, list items */
	const char *help;
};

static int check_text(const char *s, struct err *e);
static int check_level(const char *s, struct err *e);
static int check_listen(const char *s, struct err *e);
static int check_name(const char *s, struct err *e);
static int check_class(const char *s, struct err *e);
static int check_runtime(const char *s, struct err *e);
static int check_accel(const char *s, struct err *e);
static int check_network(const char *s, struct err *e);

#define OFF(f) offsetof(struct config, f)

static const struct option options[] = {
	{"listen", T_LISTEN, OFF(listen), "127.0.0.1:8443", 0, 0, check_listen,
	 "Address to serve the API on: \"a.b.c.d:port\", \"[v6]:port\" or \"localhost:port\". "
	 "Port 0 picks a free port."},
	{"data_dir", T_STRING, OFF(data_dir), "", 0, 0, check_text,
	 "Directory holding the database and generated TLS material. "
	 "Empty means the daemon's built-in default."},
	{"log_level", T_LEVEL, OFF(log_level), "info", 0, 0, check_level,
	 "Least severe messages logged: error, warn, info or debug."},
	{"plain_http", T_BOOL, OFF(plain_http), "false", 0, 0, NULL,
	 "Serve plain HTTP instead of TLS, for debugging only. "
	 "Refused unless listen is a loopback address."},
	{"tls_cert", T_STRING, OFF(tls_cert), "", 0, 0, check_text,
	 "PEM certificate chain to serve. Empty generates a self-signed certificate "
	 "under data_dir/tls. Set together with tls_key."},
	{"tls_key", T_STRING, OFF(tls_key), "", 0, 0, check_text,
	 "PEM private key for tls_cert. Set together with tls_cert."},
	{"tls_extra_names", T_LIST, OFF(tls_extra_names), "", 0, 0, check_name,
	 "Extra DNS names or IP addresses for the generated certificate."},
	{"max_body_bytes", T_SIZE, OFF(max_body_bytes), "4MiB", KiB, GiB, NULL,
	 "Largest request body accepted."},
	{"max_header_bytes", T_SIZE, OFF(max_header_bytes), "16KiB", KiB, MiB, NULL,
	 "Largest request line plus headers accepted."},
	{"request_timeout", T_DURATION, OFF(request_timeout_ms), "10s", 1, DAY_MS, NULL,
	 "Time allowed to receive one complete request."},
	{"idle_timeout", T_DURATION, OFF(idle_timeout_ms), "60s", 1, DAY_MS, NULL,
	 "Time an idle keep-alive connection stays open."},
	{"shutdown_grace", T_DURATION, OFF(shutdown_grace_ms), "10s", 1, DAY_MS, NULL,
	 "On shutdown, time in-flight requests get to finish before connections close."},
	{"max_connections", T_UINT, OFF(max_connections), "1024", 1, 1048576, NULL,
	 "Most client connections open at once."},
	{"metrics_public", T_BOOL, OFF(metrics_public), "true", 0, 0, NULL,
	 "Serve /metrics without a token."},
	{"node_name", T_STRING, OFF(node_name), "", 0, 0, check_text,
	 "Name of this box as a Kubernetes node (spec.nodeName). Empty uses the host name."},
	{"default_runtime_class", T_STRING, OFF(default_runtime_class), "cocod-sim", 0, 0, check_class,
	 "Runtime class for pods that name none: cocod-sim, cocod-snp, cocod-tdx or cocod-se "
	 "(CoCo's kata-qemu-* names are accepted too)."},
	{"node_cpu", T_UINT, OFF(node_cpu_milli), "0", 0, 1000000000, NULL,
	 "Schedulable CPU in millicores (1000 = one CPU). 0 detects the CPUs of the box."},
	{"node_memory", T_SIZE, OFF(node_memory_bytes), "0", 0, 1ull << 50, NULL,
	 "Schedulable memory. 0 detects the memory of the box."},
	{"reserved_cpu", T_UINT, OFF(reserved_cpu_milli), "0", 0, 1000000000, NULL,
	 "Millicores kept back from pods for the host and cocod itself."},
	{"reserved_memory", T_SIZE, OFF(reserved_memory_bytes), "256MiB", 0, 1ull << 50, NULL,
	 "Memory kept back from pods for the host and cocod itself."},
	{"max_pods", T_UINT, OFF(max_pods), "110", 1, 100000, NULL,
	 "Most pods placed on the box at once."},
	{"events_kept", T_UINT, OFF(events_kept), "5000", 10, 10000000, NULL,
	 "Most Kubernetes events kept; older ones are pruned."},
	{"event_ttl", T_DURATION, OFF(event_ttl_ms), "1h", 1000, 365 * DAY_MS, NULL,
	 "Events older than this are pruned."},
	{"kbs_sim", T_BOOL, OFF(kbs_sim), "true", 0, 0, NULL,
	 "The KBS accepts sim evidence (SNP format, signed by this box's own sim chain; no TEE "
	 "protection, and every token issued for it says so)."},
	{"kbs_dev_mode", T_BOOL, OFF(kbs_dev_mode), "false", 0, 0, NULL,
	 "Tell the resource policy it runs in development mode (the default policy then releases "
	 "secrets to sim guests)."},
	{"kbs_token_ttl", T_DURATION, OFF(kbs_token_ttl_ms), "5m", 1000, DAY_MS, NULL,
	 "Lifetime of the attestation tokens the KBS issues."},
	{"kbs_session_ttl", T_DURATION, OFF(kbs_session_ttl_ms), "5m", 1000, DAY_MS, NULL,
	 "Lifetime of a KBS session (kbs-session-id cookie)."},
	{"kbs_master_key", T_STRING, OFF(kbs_master_key), "", 0, 0, check_text,
	 "File holding the 32-byte master key that seals KBS secrets at rest (mode 0600, outside "
	 "the database). Empty: <data_dir>/master.key."},
	{"policy_memory", T_SIZE, OFF(policy_memory_bytes), "8MiB", MiB, GiB, NULL,
	 "Memory one Lua policy may use; past it the decision is a denial."},
	{"policy_instructions", T_UINT, OFF(policy_instructions), "1000000", 1000, 1000000000, NULL,
	 "Lua instructions one policy decision may run; past it the decision is a denial."},
	{"policy_timeout", T_DURATION, OFF(policy_timeout_ms), "50ms", 1, 60000, NULL,
	 "Wall-clock time one policy decision may take; past it the decision is a denial."},
	{"pod_runtime", T_STRING, OFF(pod_runtime), "vm", 0, 0, check_runtime,
	 "How pods run: \"vm\" (each pod in its own VM through libvirt, the guest kit from "
	 "`make kit`) or \"none\" (the API only: pods are placed but wait, saying no runtime "
	 "is available)."},
	{"libvirt_uri", T_STRING, OFF(libvirt_uri), "", 0, 0, check_text,
	 "libvirt connection for pod VMs. Empty uses libvirt's embedded QEMU driver under "
	 "data_dir/libvirt (no libvirtd needed); \"qemu:///system\" uses the system daemon."},
	{"pod_network", T_STRING, OFF(pod_network), "none", 0, 0, check_network,
	 "Network of pod VMs: \"none\" (loopback only; containers of a pod still reach each "
	 "other on localhost) or \"user\" (QEMU user-mode NAT: the pod can open connections "
	 "out, and reaches the host's loopback at 10.0.2.2; nothing can connect in)."},
	{"kit_dir", T_STRING, OFF(kit_dir), "", 0, 0, check_text,
	 "Directory of the guest kit pod VMs boot (vmlinuz, initramfs.img, kit.json from `make "
	 "kit`). Empty: kit/ beside the cocod binary, else /usr/local/share/cocod/kit."},
	{"accel", T_STRING, OFF(accel), "auto", 0, 0, check_accel,
	 "Accelerator for pod VMs: auto (KVM when a test guest really boots under it within a "
	 "few seconds at start-up, else TCG), kvm or tcg."},
	{"vm_overhead_memory", T_SIZE, OFF(vm_overhead_memory_bytes), "160MiB", 16 * MiB, 64 * GiB,
	 NULL,
	 "Guest memory added to each pod's memory for the guest kernel, initramfs, agent and "
	 "unpacked image layers."},
	{"vm_pool", T_UINT, OFF(vm_pool), "1", 0, 16, NULL,
	 "Pod VMs booted ahead of their pods (the warm pool): a pod that one can serve starts "
	 "without waiting for a boot. Each idle one holds its memory (the size of the most "
	 "recent pod's VM). Used only for sim pods without init-data; 0 turns it off."},
	{"pod_default_memory", T_SIZE, OFF(pod_default_memory_bytes), "256MiB", 16 * MiB, 1024 * GiB,
	 NULL, "Memory a pod VM gets for its containers when the pod sets no memory limit."},
};

#define NOPTIONS (sizeof options / sizeof options[0])

/* One option's value while it is parsed and checked, before it is stored. */
union value {
	char *s;
	bool b;
	uint64_t u;
	char **l;
};

/* A user value made printable for an error message: quoted, control
 * characters escaped, cut short (messages are one line of 256 bytes). */
struct shown {
	char s[64];
};

static struct shown show(const char *v)
{
	struct shown r;
	size_t n = 0;
	r.s[n++] = '"';
	for (; *v && n < sizeof r.s - 8; v++) {
		unsigned char c = (unsigned char)*v;
		if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(r.s + n, sizeof r.s - n, "\\x%02x", c);
		else
			r.s[n++] = (char)c;
	}
	snprintf(r.s + n, sizeof r.s - n, "%s\"", *v ? "..." : "");
	return r;
}

static int check_class(const char *s, struct err *e)
{
	static const char *const known[] = {"cocod-sim", "cocod-snp", "cocod-tdx", "cocod-se",
					    "kata-qemu-coco-dev", "kata-qemu-snp", "kata-qemu-tdx",
					    "kata-qemu-se", NULL};
	for (size_t i = 0; known[i]; i++)
		if (strcmp(s, known[i]) == 0)
			return 0;
	return err_set(e, ERR_CONFIG, "unknown runtime class %s (use cocod-sim, cocod-snp, cocod-tdx or cocod-se)",
		       show(s).s);
}

static int check_accel(const char *s, struct err *e)
{
	if (strcmp(s, "auto") == 0 || strcmp(s, "kvm") == 0 || strcmp(s, "tcg") == 0)
		return 0;
	return err_set(e, ERR_CONFIG, "%s is not one of auto, kvm, tcg", show(s).s);
}

static int check_runtime(const char *s, struct err *e)
{
	if (strcmp(s, "vm") == 0 || strcmp(s, "none") == 0)
		return 0;
	return err_set(e, ERR_CONFIG, "unknown pod runtime %s (use \"vm\" or \"none\")", show(s).s);
}

static int check_network(const char *s, struct err *e)
{
	if (strcmp(s, "none") == 0 || strcmp(s, "user") == 0)
		return 0;
	return err_set(e, ERR_CONFIG, "unknown pod network %s (use \"none\" or \"user\")",
		       show(s).s);
}

static const struct option *find(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
			return &options[i];
	return NULL;
}

static void *field(struct config *c, const struct option *o) { return (char *)c + o->off; }

static const void *cfield(const struct config *c, const struct option *o)
{
	return (const char *)c + o->off;
}

static bool is_text(enum type t) { return t == T_STRING || t == T_LEVEL || t == T_LISTEN; }
static bool is_number(enum type t) { return t == T_SIZE || t == T_DURATION || t == T_UINT; }

static const char *skip_ws(const char *p) { return p + strspn(p, " \t"); }

/* ---- validators ---- */

/* Anything but control characters other than tab and newline, which the
 * file format could not write back. */
static int check_text(const char *s, struct err *e)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') || *s == 0x7f)
			return err_set(e, ERR_CONFIG, "control characters are not allowed");
	return 0;
}

static int check_level(const char *s, struct err *e)
{
	enum log_level l;
	if (log_level_parse(s, &l) < 0)
		return err_set(e, ERR_CONFIG, "%s is not one of error, warn, info, debug",
			       show(s).s);
	return 0;
}

static int check_listen(const char *s, struct err *e)
{
	char host[64];
	int port;
	return config_parse_listen(s, host, sizeof host, &port, e);
}

/* A DNS name (wildcards allowed), IPv4 or IPv6 address: letters, digits and
 * . - : * _ only; enough to keep junk (and commas) out of certificates. */
static int check_name(const char *s, struct err *e)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || strspn(s, "abcdefghijklmnopqrstuvwxyz"
					   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:*_") != n)
		return err_set(e, ERR_CONFIG, "%s is not a DNS name or IP address", show(s).s);
	return 0;
}

/* ---- numbers ---- */

static void format_scaled(uint64_t n, const char *const *units, const uint64_t *mul, size_t k,
			  const char *base, char *out, size_t len)
{
	for (size_t i = 0; i < k; i++)
		if (n && n % mul[i] == 0) {
			snprintf(out, len, "%" PRIu64 "%s", n / mul[i], units[i]);
			return;
		}
	snprintf(out, len, "%" PRIu64 "%s", n, base);
}

/* Prints a number the way it is best written back: "4MiB", "10s", "1024". */
static void format_number(enum type t, uint64_t n, char *out, size_t len)
{
	static const char *const su[] = {"GiB", "MiB", "KiB"};
	static const uint64_t sm[] = {GiB, MiB, KiB};
	static const char *const du[] = {"h", "m", "s"};
	static const uint64_t dm[] = {3600000, 60000, 1000};
	if (t == T_SIZE)
		format_scaled(n, su, sm, 3, "", out, len);
	else if (t == T_DURATION)
		format_scaled(n, du, dm, 3, "ms", out, len);
	else
		snprintf(out, len, "%" PRIu64, n);
}

static int parse_uint(const char *s, uint64_t *out)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || s[n] || n > 19)
		return -1;
	*out = strtoull(s, NULL, 10);
	return 0;
}

static int parse_number(const struct option *o, const char *text, uint64_t *out, struct err *e)
{
	uint64_t n;
	if (o->type == T_SIZE && parse_size(text, &n) < 0)
		return err_set(e, ERR_CONFIG, "%s: invalid size %s (use e.g. \"4MiB\")", o->name,
			       show(text).s);
	if (o->type == T_DURATION && parse_duration_ms(text, &n) < 0)
		return err_set(e, ERR_CONFIG, "%s: invalid duration %s (use e.g. \"10s\" or \"500ms\")",
			       o->name, show(text).s);
	if (o->type == T_UINT && parse_uint(text, &n) < 0)
		return err_set(e, ERR_CONFIG, "%s: invalid integer %s", o->name, show(text).s);
	if (n < o->min || n > o->max) {
		char lo[32], hi[32];
		format_number(o->type, o->min, lo, sizeof lo);
		format_number(o->type, o->max, hi, sizeof hi);
		return err_set(e, ERR_CONFIG, "%s: %s is out of range (%s..%s)", o->name,
			       show(text).s, lo, hi);
	}
	*out = n;
	return 0;
}

/* ---- values ---- */

static void list_free(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

static size_t list_len(char *const *l)
{
	size_t n = 0;
	while (l && l[n])
		n++;
	return n;
}

static void list_push(char ***l, size_t *n, char *item)
{
	*l = xrealloc(*l, (*n + 2) * sizeof **l);
	(*l)[(*n)++] = item;
	(*l)[*n] = NULL;
}

static char **list_dup(char *const *l)
{
	char **d = xcalloc(list_len(l) + 1, sizeof *d);
	for (size_t i = 0; l && l[i]; i++)
		d[i] = xstrdup(l[i]);
	return d;
}

static int check_items(const struct option *o, char *const *l, struct err *e)
{
	for (size_t i = 0; l && l[i]; i++)
		if (o->check(l[i], e) < 0)
			return err_wrap(e, "%s", o->name);
	return 0;
}

/* Splits a flag value on commas, trimming blanks around items; "" (or only
 * blanks) is the empty list, and an empty item is left for the check. */
static int parse_list(const struct option *o, const char *text, char ***out, struct err *e)
{
	char **l = xcalloc(1, sizeof *l);
	size_t n = 0;
	for (const char *p = *skip_ws(text) ? text : NULL; p;) {
		size_t len = strcspn(p, ",");
		const char *start = skip_ws(p);
		size_t end = len - (size_t)(start - p);
		while (end > 0 && (start[end - 1] == ' ' || start[end - 1] == '\t'))
			end--;
		list_push(&l, &n, xstrndup(start, end));
		p = p[len] ? p + len + 1 : NULL;
	}
	if (check_items(o, l, e) < 0) {
		list_free(l);
		return e->code;
	}
	*out = l;
	return 0;
}

static int parse_bool(const struct option *o, const char *text, bool *out, struct err *e)
{
	if (strcmp(text, "true") != 0 && strcmp(text, "false") != 0)
		return err_set(e, ERR_CONFIG, "%s: invalid boolean %s (use true or false)", o->name,
			       show(text).s);
	*out = text[0] == 't';
	return 0;
}

/* Parses and checks the text form of a value (a flag, a default, or a file
 * scalar once unquoted); errors name the option. */
static int parse_value(const struct option *o, const char *text, union value *v, struct err *e)
{
	if (o->type == T_BOOL)
		return parse_bool(o, text, &v->b, e);
	if (is_number(o->type))
		return parse_number(o, text, &v->u, e);
	if (o->type == T_LIST)
		return parse_list(o, text, &v->l, e);
	if (o->check && o->check(text, e) < 0)
		return err_wrap(e, "%s", o->name);
	v->s = xstrdup(text);
	return 0;
}

/* Moves `v` into the option's field, freeing what was there. */
static void store_value(struct config *c, const struct option *o, union value *v)
{
	void *f = field(c, o);
	if (is_text(o->type)) {
		free(*(char **)f);
		*(char **)f = v->s;
	} else if (o->type == T_LIST) {
		list_free(*(char ***)f);
		*(char ***)f = v->l;
	} else if (o->type == T_BOOL) {
		*(bool *)f = v->b;
	} else {
		*(uint64_t *)f = v->u;
	}
}

int config_set(struct config *c, const char *name, const char *value, struct err *e)
{
	const struct option *o = find(name, strlen(name));
	union value v;
	if (!o)
		return err_set(e, ERR_CONFIG, "unknown option %s", show(name).s);
	if (parse_value(o, value, &v, e) < 0)
		return e->code;
	store_value(c, o, &v);
	return 0;
}

/* The table's defaults must parse; a row that does not is a bug caught by
 * the first test run, not a runtime condition. */
void config_init(struct config *c)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < NOPTIONS; i++) {
		struct err e;
		if (config_set(c, options[i].name, options[i].def, &e) < 0) {
			log_error("config", "bad default: %s", e.msg);
			abort();
		}
	}
}

void config_fini(struct config *c)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option *o = &options[i];
		if (is_text(o->type))
			free(*(char **)field(c, o));
		else if (o->type == T_LIST)
			list_free(*(char ***)field(c, o));
	}
	memset(c, 0, sizeof *c);
}

/* Deep copy, so that a file can be applied to a scratch config first. */
static void config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option *o = &options[i];
		if (is_text(o->type)) {
			const char *s = *(char *const *)cfield(src, o);
			*(char **)field(dst, o) = s ? xstrdup(s) : NULL;
		} else if (o->type == T_LIST) {
			*(char ***)field(dst, o) = list_dup(*(char **const *)cfield(src, o));
		}
	}
}

/* ---- the file ---- */

enum kind { K_STRING, K_INT, K_BOOL, K_BARE, K_ARRAY };

/* A value as written in the file: a scalar (unescaped) or an array. */
struct token {
	enum kind kind;
	char *text;
	char **list;
};

/* Reads a "string" starting at the quote; *end is just past the closing
 * quote. */
static int read_string(const char *p, char **out, const char **end, struct err *e)
{
	static const char from[] = "\"\\nt", to[] = "\"\\\n\t";
	struct buf b;
	buf_init(&b);
	buf_reserve(&b, 0);
	for (p++; *p != '"'; p++) {
		const char *esc = *p == '\\' && p[1] ? strchr(from, p[1]) : NULL;
		if (!*p || (*p == '\\' && !p[1])) {
			buf_fini(&b);
			return err_set(e, ERR_CONFIG, "unterminated string");
		}
		if (*p == '\\' && !esc) {
			buf_fini(&b);
			return err_set(e, ERR_CONFIG, "invalid escape \\%c in string (use \\\" \\\\ \\n \\t)",
				       isprint((unsigned char)p[1]) ? p[1] : '?');
		}
		if (esc)
			p++;
		buf_add(&b, esc ? &to[esc - from] : p, 1);
	}
	*end = p + 1;
	*out = buf_steal(&b, NULL);
	return 0;
}

/* Reads ["a", "b"] (one line, trailing comma allowed) starting at '['. */
static int read_array(const char *p, char ***out, const char **end, struct err *e)
{
	char **l = xcalloc(1, sizeof *l);
	size_t n = 0;
	bool need_comma = false;
	const char *why = NULL;
	for (p = skip_ws(p + 1); !why && *p != ']'; p = skip_ws(p)) {
		char *item;
		if (!*p || *p == '#') {
			why = "unterminated array (arrays must be on one line)";
		} else if (need_comma) {
			why = *p == ',' ? NULL : "expected , or ] in array";
			p++;
			need_comma = false;
		} else if (*p != '"') {
			why = "arrays hold only quoted strings";
		} else if (read_string(p, &item, &p, e) < 0) {
			why = e->msg;
		} else {
			list_push(&l, &n, item);
			need_comma = true;
		}
	}
	if (why) {
		list_free(l);
		return why == e->msg ? e->code : err_set(e, ERR_CONFIG, "%s", why);
	}
	*end = p + 1;
	*out = l;
	return 0;
}

/* Reads an unquoted value up to a blank or comment: true, false, an
 * integer, or something else (which no option accepts). */
static int read_bare(const char *p, struct token *t, const char **end, struct err *e)
{
	size_t n = strcspn(p, " \t#");
	if (n == 0)
		return err_set(e, ERR_CONFIG, "expected key = value (missing value)");
	t->text = xstrndup(p, n);
	if (strcmp(t->text, "true") == 0 || strcmp(t->text, "false") == 0)
		t->kind = K_BOOL;
	else if (strspn(t->text, "0123456789") == n)
		t->kind = K_INT;
	else
		t->kind = K_BARE;
	*end = p + n;
	return 0;
}

static void token_fini(struct token *t)
{
	free(t->text);
	list_free(t->list);
}

/* Reads the value at `p` and checks that only a comment follows it. */
static int read_value(const char *p, struct token *t, struct err *e)
{
	const char *end = p;
	int rc;
	memset(t, 0, sizeof *t);
	if (*p == '"') {
		t->kind = K_STRING;
		rc = read_string(p, &t->text, &end, e);
	} else if (*p == '[') {
		t->kind = K_ARRAY;
		rc = read_array(p, &t->list, &end, e);
	} else {
		rc = read_bare(p, t, &end, e);
	}
	if (rc < 0)
		return rc;
	end = skip_ws(end);
	if (*end && *end != '#') {
		token_fini(t);
		return err_set(e, ERR_CONFIG, "unexpected text after value: %s", show(end).s);
	}
	return 0;
}

/* Which kinds of written value each type takes. */
static bool accepts(enum type t, enum kind k)
{
	switch (t) {
	case T_BOOL:
		return k == K_BOOL;
	case T_SIZE:
	case T_DURATION:
		return k == K_STRING || k == K_INT;
	case T_UINT:
		return k == K_INT;
	case T_LIST:
		return k == K_ARRAY;
	default:
		return k == K_STRING;
	}
}

static const char *expected(enum type t)
{
	switch (t) {
	case T_BOOL:
		return "true or false";
	case T_SIZE:
		return "a size like \"4MiB\"";
	case T_DURATION:
		return "a duration like \"10s\"";
	case T_UINT:
		return "an integer";
	case T_LIST:
		return "an array like [\"a\", \"b\"]";
	default:
		return "a quoted string";
	}
}

static int apply_token(struct config *c, const struct option *o, struct token *t, struct err *e)
{
	union value v;
	if (!accepts(o->type, t->kind))
		return err_set(e, ERR_CONFIG, "%s: expected %s, got %s", o->name, expected(o->type),
			       t->kind == K_ARRAY ? "an array" : show(t->text).s);
	if (o->type == T_LIST) {
		if (check_items(o, t->list, e) < 0)
			return e->code;
		v.l = t->list;
		t->list = NULL;
	} else if (parse_value(o, t->text, &v, e) < 0) {
		return e->code;
	}
	store_value(c, o, &v);
	return 0;
}

/* One `key = value` line; seen[i] is the line option i was set on. */
static int parse_line(struct config *c, const char *p, int *seen, int lineno, struct err *e)
{
	size_t klen = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
	const char *eq = skip_ws(p + klen);
	if (klen == 0 || *eq != '=')
		return err_set(e, ERR_CONFIG, "expected key = value");
	const struct option *o = find(p, klen);
	if (!o)
		return err_set(e, ERR_CONFIG, "unknown option \"%.*s\"", (int)klen, p);
	size_t i = (size_t)(o - options);
	if (seen[i])
		return err_set(e, ERR_CONFIG, "duplicate option \"%s\" (first set on line %d)",
			       o->name, seen[i]);
	seen[i] = lineno;
	struct token t;
	if (read_value(skip_ws(eq + 1), &t, e) < 0)
		return e->code;
	int rc = apply_token(c, o, &t, e);
	token_fini(&t);
	return rc;
}

static int load_line(struct config *c, char *line, int *seen, int lineno, struct err *e)
{
	size_t len = strlen(line);
	if (len > MAX_LINE)
		return err_set(e, ERR_CONFIG, "line longer than %d bytes", MAX_LINE);
	if (len > 0 && line[len - 1] == '\r')
		line[len - 1] = '\0';
	const char *p = skip_ws(line);
	if (!*p || *p == '#')
		return 0;
	return parse_line(c, p, seen, lineno, e);
}

static int parse_file(struct config *c, const char *path, char *data, size_t len, struct err *e)
{
	int seen[NOPTIONS] = {0}, lineno = 0;
	if (memchr(data, '\0', len))
		return err_set(e, ERR_CONFIG, "%s: contains a NUL byte", path);
	if (strncmp(data, "\xef\xbb\xbf", 3) == 0)
		data += 3; /* UTF-8 byte order mark */
	for (char *line = data; line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (load_line(c, line, seen, ++lineno, e) < 0)
			return err_wrap(e, "%s:%d", path, lineno);
		line = nl ? nl + 1 : NULL;
	}
	return 0;
}

int config_load_file(struct config *c, const char *path, struct err *e)
{
	char *data;
	size_t len;
	int rc = file_read(path, MAX_FILE, &data, &len, e);
	if (rc == ERR_TOO_LARGE)
		return err_set(e, ERR_CONFIG, "%s: file larger than 1 MiB", path);
	if (rc < 0)
		return rc;
	data[len] = '\0'; /* file_read leaves room for it but may not write it */
	struct config tmp;
	config_copy(&tmp, c);
	rc = parse_file(&tmp, path, data, len, e);
	free(data);
	if (rc < 0) {
		config_fini(&tmp);
		return rc;
	}
	config_fini(c);
	*c = tmp;
	return 0;
}

/* ---- checks ---- */

/* Re-checks one option as stored: the struct is public, so callers may
 * have filled it without config_set. */
static int recheck(const struct config *c, const struct option *o, struct err *e)
{
	const void *f = cfield(c, o);
	if (is_text(o->type) && !*(char *const *)f)
		return err_set(e, ERR_CONFIG, "%s: not set", o->name);
	if (is_text(o->type) && o->check && o->check(*(char *const *)f, e) < 0)
		return err_wrap(e, "%s", o->name);
	if (o->type == T_LIST)
		return check_items(o, *(char **const *)f, e);
	if (is_number(o->type) && (*(const uint64_t *)f < o->min || *(const uint64_t *)f > o->max))
		return err_set(e, ERR_CONFIG, "%s: %" PRIu64 " is out of range", o->name,
			       *(const uint64_t *)f);
	return 0;
}

static bool is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

int config_validate(const struct config *c, struct err *e)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (recheck(c, &options[i], e) < 0)
			return e->code;
	if (!*c->tls_cert != !*c->tls_key)
		return err_set(e, ERR_CONFIG, "tls_cert and tls_key must be set together (%s is empty)",
			       *c->tls_cert ? "tls_key" : "tls_cert");
	char host[64];
	int port;
	if (config_parse_listen(c->listen, host, sizeof host, &port, e) < 0)
		return err_wrap(e, "listen");
	if (c->plain_http && !is_loopback(host))
		return err_set(e, ERR_CONFIG,
			       "plain_http is refused on non-loopback address %s; use TLS", host);
	return 0;
}

/* ---- listen addresses ---- */

static int bad_listen(const char *listen, const char *why, struct err *e)
{
	return err_set(e, ERR_CONFIG, "%s: %s", show(listen).s, why);
}

/* "0".."65535", digits only. */
static int parse_port(const char *s, int *port)
{
	size_t n = strspn(s, "0123456789");
	if (n == 0 || n > 5 || s[n])
		return -1;
	long v = strtol(s, NULL, 10);
	if (v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

int config_parse_listen(const char *listen, char *host, size_t hostlen, int *port,
			struct err *e)
{
	static const char *const form = "expected a.b.c.d:port, [v6]:port or localhost:port";
	const char *h = listen, *colon = strrchr(listen, ':');
	bool v6 = listen[0] == '[';
	if (v6) {
		const char *close = strchr(listen, ']');
		colon = close && close[1] == ':' ? close + 1 : NULL;
		h = listen + 1;
	}
	if (!colon)
		return bad_listen(listen, form, e);
	size_t hlen = (size_t)(colon - h) - v6;
	char name[INET6_ADDRSTRLEN], canon[INET6_ADDRSTRLEN];
	unsigned char addr[sizeof(struct in6_addr)];
	if (hlen >= sizeof name)
		return bad_listen(listen, form, e);
	memcpy(name, h, hlen);
	name[hlen] = '\0';
	if (!v6 && strcmp(name, "localhost") == 0)
		snprintf(name, sizeof name, "127.0.0.1");
	int af = v6 ? AF_INET6 : AF_INET;
	if (inet_pton(af, name, addr) != 1 || !inet_ntop(af, addr, canon, sizeof canon))
		return bad_listen(listen, form, e);
	if (parse_port(colon + 1, port) < 0)
		return bad_listen(listen, "invalid port (0-65535)", e);
	if (strlen(canon) >= hostlen)
		return err_set(e, ERR_INTERNAL, "listen: host buffer too small");
	memcpy(host, canon, strlen(canon) + 1);
	return 0;
}

/* ---- printing ---- */

static void print_quoted(const char *s, FILE *out)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else if (*s == '\t')
			fputs("\\t", out);
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

/* Writes one option's value in file syntax. */
static void print_value(const struct config *c, const struct option *o, FILE *out)
{
	const void *f = cfield(c, o);
	char num[32];
	if (is_text(o->type)) {
		print_quoted(*(char *const *)f ? *(char *const *)f : "", out);
	} else if (o->type == T_BOOL) {
		fputs(*(const bool *)f ? "true" : "false", out);
	} else if (o->type == T_LIST) {
		char *const *l = *(char **const *)f;
		fputc('[', out);
		for (size_t i = 0; l && l[i]; i++) {
			fputs(i ? ", " : "", out);
			print_quoted(l[i], out);
		}
		fputc(']', out);
	} else {
		format_number(o->type, *(const uint64_t *)f, num, sizeof num);
		if (o->type == T_UINT)
			fputs(num, out);
		else
			print_quoted(num, out);
	}
}

void config_print(const struct config *c, FILE *out)
{
	for (size_t i = 0; i < NOPTIONS; i++) {
		fprintf(out, "%s = ", options[i].name);
		print_value(c, &options[i], out);
		fputc('\n', out);
	}
}

/* Prints `text` as indented lines of at most 76 columns. */
static void print_wrapped(const char *text, FILE *out)
{
	size_t col = 0;
	while (*text) {
		size_t n = strcspn(text, " ");
		if (col && col + 1 + n > 76) {
			fputc('\n', out);
			col = 0;
		}
		col += (size_t)fprintf(out, "%s%.*s", col ? " " : "    ", (int)n, text);
		text += n + strspn(text + n, " ");
	}
	fputc('\n', out);
}

void config_print_reference(FILE *out)
{
	struct config d;
	config_init(&d);
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option *o = &options[i];
		char lo[32], hi[32];
		fprintf(out, "%s (%s, default ", o->name, type_names[o->type]);
		print_value(&d, o, out);
		if (is_number(o->type)) {
			format_number(o->type, o->min, lo, sizeof lo);
			format_number(o->type, o->max, hi, sizeof hi);
			fprintf(out, ", range %s..%s", lo, hi);
		}
		fputs(")\n", out);
		print_wrapped(o->help, out);
		if (i + 1 < NOPTIONS)
			fputc('\n', out);
	}
	config_fini(&d);
}
