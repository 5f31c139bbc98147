/* sched: the single-node scheduler.  Pods live in one array (tens to a few
 * hundred of them); each run sorts the pending ones by (priority desc,
 * creation asc, name asc), binds those whose requests fit in what the bound
 * pods leave free, and remembers, per pending pod, the last message it
 * reported so the same verdict is not reported twice.  Reports are collected
 * first and delivered after the run so the callback may change the set. */
#include "sched.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define MEMINFO_MAX (64 * 1024)

struct spod {
	char *uid, *name, *tee, *rclass;
	int32_t priority;
	int64_t created_ms;
	uint64_t cpu, mem;
	int bound;
	size_t idx;     /* position in sched.v */
	size_t pidx;    /* position in sched.pend while pending */
	char *last_msg; /* last unschedulable message reported, or NULL */
};

struct sched {
	struct sched_node node;
	struct spod **v;
	size_t n, cap;
	struct strmap index; /* uid → spod */
	struct spod **pend;  /* the pods not bound yet */
	size_t npend, cappend;
	uint64_t used_cpu, used_mem;
	uint32_t used_pods;
};

struct report {
	char *uid;
	char *msg; /* NULL when bound */
};

static const char *const tee_names[] = {"sim", "snp", "tdx", "se"};
#define NTEES (sizeof tee_names / sizeof tee_names[0])

unsigned sched_tee_bit(const char *name)
{
	for (size_t i = 0; name && i < NTEES; i++)
		if (strcmp(name, tee_names[i]) == 0)
			return 1u << i;
	return 0;
}

int sched_parse_meminfo(const char *text, uint64_t *bytes)
{
	const char *p = strstr(text, "MemTotal:");
	if (!p || (p != text && p[-1] != '\n'))
		return -1;
	unsigned long long kib;
	if (sscanf(p, "MemTotal: %llu kB", &kib) != 1 || kib > UINT64_MAX / 1024)
		return -1;
	*bytes = (uint64_t)kib * 1024;
	return 0;
}

int sched_detect_node(uint64_t reserve_cpu_milli, uint64_t reserve_mem_bytes, uint32_t max_pods,
		      struct sched_node *out, struct err *e)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		return err_set(e, ERR_IO, "sysconf(_SC_NPROCESSORS_ONLN): %s", strerror(errno));
	cleanup_free char *text = NULL;
	uint64_t mem;
	if (file_read("/proc/meminfo", MEMINFO_MAX, &text, NULL, e) < 0)
		return err_wrap(e, "detecting node memory");
	if (sched_parse_meminfo(text, &mem) < 0)
		return err_set(e, ERR_IO, "/proc/meminfo: no MemTotal line");
	uint64_t cpu = (uint64_t)ncpu * 1000;
	if (reserve_cpu_milli >= cpu)
		return err_set(e, ERR_CONFIG,
			       "CPU reservation %" PRIu64 "m leaves nothing of %" PRIu64 "m",
			       reserve_cpu_milli, cpu);
	if (reserve_mem_bytes >= mem)
		return err_set(e, ERR_CONFIG,
			       "memory reservation %" PRIu64 " B leaves nothing of %" PRIu64 " B",
			       reserve_mem_bytes, mem);
	out->cpu_milli = cpu - reserve_cpu_milli;
	out->mem_bytes = mem - reserve_mem_bytes;
	out->max_pods = max_pods;
	out->tees = SCHED_TEE_SIM;
	return 0;
}

void sched_format_cpu(uint64_t milli, char *out, size_t len)
{
	if (milli % 1000 == 0)
		snprintf(out, len, "%" PRIu64, milli / 1000);
	else
		snprintf(out, len, "%" PRIu64 "m", milli);
}

void sched_format_bytes(uint64_t bytes, char *out, size_t len)
{
	static const struct {
		const char *suffix;
		uint64_t mul;
	} exact[] = {
		{"Ti", 1ull << 40}, {"Gi", 1ull << 30}, {"Mi", 1ull << 20}, {"Ki", 1ull << 10},
		{"T", 1000000000000ull}, {"G", 1000000000ull}, {"M", 1000000ull}, {"k", 1000ull},
	};
	for (size_t i = 0; bytes && i < sizeof exact / sizeof exact[0]; i++)
		if (bytes % exact[i].mul == 0) {
			snprintf(out, len, "%" PRIu64 "%s", bytes / exact[i].mul, exact[i].suffix);
			return;
		}
	/* Inexact: the largest binary unit, rounded down to one decimal. */
	for (size_t i = 0; i < 4; i++)
		if (bytes >= exact[i].mul) {
			uint64_t whole = bytes / exact[i].mul;
			uint64_t tenth = bytes % exact[i].mul * 10 / exact[i].mul;
			snprintf(out, len, "%" PRIu64 ".%" PRIu64 "%s", whole, tenth,
				 exact[i].suffix);
			return;
		}
	snprintf(out, len, "%" PRIu64, bytes);
}

sched *sched_new(const struct sched_node *node)
{
	sched *s = xcalloc(1, sizeof *s);
	s->node = *node;
	return s;
}

static void spod_free(struct spod *p)
{
	free(p->uid);
	free(p->name);
	free(p->tee);
	free(p->rclass);
	free(p->last_msg);
	free(p);
}

void sched_free(sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		spod_free(s->v[i]);
	free(s->v);
	free(s->pend);
	strmap_fini(&s->index);
	free(s);
}

const struct sched_node *sched_node_info(const sched *s) { return &s->node; }

static struct spod *find(const sched *s, const char *uid, size_t *idx)
{
	struct spod *p = strmap_get(&s->index, uid);
	if (p && idx)
		*idx = p->idx;
	return p;
}

static struct spod *spod_new(const struct sched_pod *in)
{
	struct spod *p = xcalloc(1, sizeof *p);
	p->uid = xstrdup(in->uid);
	p->name = xstrdup(in->name ? in->name : in->uid);
	p->tee = in->tee && *in->tee ? xstrdup(in->tee) : NULL;
	p->rclass = in->runtime_class ? xstrdup(in->runtime_class) : NULL;
	p->priority = in->priority;
	p->created_ms = in->created_ms;
	p->cpu = in->cpu_milli;
	p->mem = in->mem_bytes;
	return p;
}

static void pend_add(sched *s, struct spod *p)
{
	if (s->npend == s->cappend) {
		s->cappend = s->cappend ? s->cappend * 2 : 16;
		s->pend = xrealloc(s->pend, s->cappend * sizeof *s->pend);
	}
	p->pidx = s->npend;
	s->pend[s->npend++] = p;
}

static void pend_del(sched *s, struct spod *p)
{
	s->pend[p->pidx] = s->pend[--s->npend];
	s->pend[p->pidx]->pidx = p->pidx;
}

/* Adds a pod not bound yet (sched_mark_bound binds it right after). */
static void push(sched *s, struct spod *p)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof *s->v);
	}
	p->idx = s->n;
	s->v[s->n++] = p;
	strmap_put(&s->index, p->uid, p);
	pend_add(s, p);
}

static void bind(sched *s, struct spod *p)
{
	pend_del(s, p);
	p->bound = 1;
	s->used_cpu += p->cpu;
	s->used_mem += p->mem;
	s->used_pods++;
	free(p->last_msg);
	p->last_msg = NULL;
}

int sched_add_pending(sched *s, const struct sched_pod *pod, struct err *e)
{
	if (!pod->uid || !*pod->uid)
		return err_set(e, ERR_INVALID, "scheduler: pod without uid");
	if (find(s, pod->uid, NULL))
		return err_set(e, ERR_EXISTS, "scheduler: pod %s is already known", pod->uid);
	push(s, spod_new(pod));
	return 0;
}

int sched_mark_bound(sched *s, const struct sched_pod *pod, struct err *e)
{
	if (!pod->uid || !*pod->uid)
		return err_set(e, ERR_INVALID, "scheduler: pod without uid");
	struct spod *p = find(s, pod->uid, NULL);
	if (p && p->bound)
		return err_set(e, ERR_EXISTS, "scheduler: pod %s is already bound", pod->uid);
	if (!p) {
		p = spod_new(pod);
		push(s, p);
	}
	bind(s, p);
	return 0;
}

int sched_remove(sched *s, const char *uid)
{
	size_t i;
	struct spod *p = find(s, uid, &i);
	if (!p)
		return 0;
	int freed = p->bound;
	if (freed) {
		s->used_cpu -= p->cpu;
		s->used_mem -= p->mem;
		s->used_pods--;
	} else {
		pend_del(s, p);
	}
	strmap_del(&s->index, p->uid);
	s->v[i] = s->v[--s->n];
	s->v[i]->idx = i;
	spod_free(p);
	return freed;
}

int sched_state(const sched *s, const char *uid)
{
	const struct spod *p = find(s, uid, NULL);
	return p ? p->bound : -1;
}

void sched_used(const sched *s, uint64_t *cpu_milli, uint64_t *mem_bytes, uint32_t *pods)
{
	if (cpu_milli)
		*cpu_milli = s->used_cpu;
	if (mem_bytes)
		*mem_bytes = s->used_mem;
	if (pods)
		*pods = s->used_pods;
}

/* Priority desc, then creation asc, then name, then uid (a total order). */
static int order(const void *a, const void *b)
{
	const struct spod *x = *(struct spod *const *)a, *y = *(struct spod *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->uid, y->uid);
}

static void tee_list(unsigned tees, struct buf *b)
{
	size_t start = b->len;
	for (size_t i = 0; i < NTEES; i++)
		if (tees & (1u << i))
			buf_printf(b, "%s%s", b->len > start ? ", " : "", tee_names[i]);
	if (b->len == start)
		buf_adds(b, "none");
}

static uint64_t free_of(uint64_t cap, uint64_t used) { return used >= cap ? 0 : cap - used; }

/* Why `p` cannot be placed now, as a malloc'd message, or NULL if it fits. */
static char *misfit(const sched *s, const struct spod *p)
{
	struct buf b;
	buf_init(&b);
	if (p->tee && !(sched_tee_bit(p->tee) & s->node.tees)) {
		buf_printf(&b, "runtime class %s needs the %s TEE, which this box lacks",
			   p->rclass ? p->rclass : "(default)", p->tee);
		buf_adds(&b, " (available: ");
		tee_list(s->node.tees, &b);
		buf_adds(&b, ")");
		return buf_steal(&b, NULL);
	}
	char req[32], avail[32];
	buf_adds(&b, "0/1 nodes are available: ");
	size_t head = b.len;
	if (s->used_pods >= s->node.max_pods)
		buf_printf(&b, "1 Too many pods (max %" PRIu32 ")", s->node.max_pods);
	uint64_t fcpu = free_of(s->node.cpu_milli, s->used_cpu);
	if (p->cpu > fcpu) {
		sched_format_cpu(p->cpu, req, sizeof req);
		sched_format_cpu(fcpu, avail, sizeof avail);
		buf_printf(&b, "%s1 Insufficient cpu (requested %s, free %s)",
			   b.len > head ? ", " : "", req, avail);
	}
	uint64_t fmem = free_of(s->node.mem_bytes, s->used_mem);
	if (p->mem > fmem) {
		sched_format_bytes(p->mem, req, sizeof req);
		sched_format_bytes(fmem, avail, sizeof avail);
		buf_printf(&b, "%s1 Insufficient memory (requested %s, free %s)",
			   b.len > head ? ", " : "", req, avail);
	}
	if (b.len == head) {
		buf_fini(&b);
		return NULL;
	}
	buf_adds(&b, ".");
	return buf_steal(&b, NULL);
}

/* Decides for one pending pod; appends a report when there is news. */
static void place(sched *s, struct spod *p, struct report *out, size_t *nout)
{
	char *msg = misfit(s, p);
	if (!msg) {
		bind(s, p);
		out[(*nout)++] = (struct report){xstrdup(p->uid), NULL};
		return;
	}
	if (p->last_msg && strcmp(p->last_msg, msg) == 0) {
		free(msg);
		return;
	}
	free(p->last_msg);
	p->last_msg = msg;
	out[(*nout)++] = (struct report){xstrdup(p->uid), xstrdup(msg)};
}

int sched_run(sched *s, sched_report_fn fn, void *ud)
{
	if (s->npend == 0)
		return 0;
	size_t np = s->npend, nr = 0;
	struct spod **pending = xmalloc(np * sizeof *pending);
	struct report *reports = xcalloc(np, sizeof *reports);
	int bound = 0;
	memcpy(pending, s->pend, np * sizeof *pending);
	qsort(pending, np, sizeof *pending, order);
	for (size_t i = 0; i < np; i++)
		place(s, pending[i], reports, &nr);
	free(pending);
	for (size_t i = 0; i < nr; i++) {
		bound += reports[i].msg == NULL;
		if (fn)
			fn(ud, reports[i].uid, reports[i].msg == NULL, reports[i].msg);
		free(reports[i].uid);
		free(reports[i].msg);
	}
	free(reports);
	return bound;
}
