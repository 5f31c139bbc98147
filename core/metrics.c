/* metrics: a small registry.  Families keep their declaration order so the
 * exposition is stable; series are found by comparing label text, which
 * is fine for the bounded label sets cocod uses (route patterns, status
 * codes, hook names). */
#include "metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum kind { COUNTER, GAUGE, HISTOGRAM };

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				 0.05,   0.1,   0.25,   0.5,   1,    2.5,  5, 10};
#define NBUCKETS (sizeof buckets / sizeof buckets[0])

struct series {
	char *labels;
	double value; /* counter/gauge value, histogram sum */
	unsigned long long count, bucket[NBUCKETS];
};

struct family {
	char *name, *help;
	enum kind kind;
	struct series *s;
	size_t n, cap;
};

struct metrics {
	struct family *f;
	size_t n, cap;
	void (*on_render)(metrics *, void *);
	void *on_render_arg;
	char *version, *commit;
	double start_time;
};

metrics *metrics_new(const char *version, const char *commit)
{
	metrics *m = xcalloc(1, sizeof *m);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	m->version = xstrdup(version);
	m->commit = xstrdup(commit);
	return m;
}

void metrics_free(metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->f[i].n; j++)
			free(m->f[i].s[j].labels);
		free(m->f[i].s);
		free(m->f[i].name);
		free(m->f[i].help);
	}
	free(m->f);
	free(m->version);
	free(m->commit);
	free(m);
}

int metrics_labels(char *out, size_t len, ...)
{
	va_list ap;
	size_t n = 0;
	int ok = 1;
	va_start(ap, len);
	out[0] = '\0';
	for (const char *k; (k = va_arg(ap, const char *));) {
		const char *v = va_arg(ap, const char *);
		int w = snprintf(out + n, len - n, "%s%s=\"", n ? "," : "", k);
		if (w < 0 || (size_t)w >= len - n) {
			ok = 0;
			break;
		}
		n += (size_t)w;
		for (; v && *v && ok; v++) {
			const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
			size_t need = esc ? 2 : 1;
			if (n + need + 2 > len) {
				ok = 0;
				break;
			}
			if (esc)
				memcpy(out + n, esc, 2);
			else
				out[n] = *v;
			n += need;
		}
		if (!ok || n + 2 > len) {
			ok = 0;
			break;
		}
		out[n++] = '"';
		out[n] = '\0';
	}
	va_end(ap);
	if (!ok)
		out[len - 1] = '\0';
	return ok ? 0 : -1;
}

static struct series *series_of(metrics *m, const char *name, const char *help,
				enum kind kind, const char *labels)
{
	struct family *f = NULL;
	for (size_t i = 0; i < m->n && !f; i++)
		if (strcmp(m->f[i].name, name) == 0)
			f = &m->f[i];
	if (!f) {
		if (m->n == m->cap) {
			m->cap = m->cap ? 2 * m->cap : 16;
			m->f = xrealloc(m->f, m->cap * sizeof *m->f);
		}
		f = &m->f[m->n++];
		*f = (struct family){.name = xstrdup(name), .help = xstrdup(help), .kind = kind};
	}
	labels = labels ? labels : "";
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->s[i].labels, labels) == 0)
			return &f->s[i];
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 8;
		f->s = xrealloc(f->s, f->cap * sizeof *f->s);
	}
	f->s[f->n] = (struct series){.labels = xstrdup(labels)};
	return &f->s[f->n++];
}

void metrics_counter_add(metrics *m, const char *name, const char *help, const char *labels,
			 double delta)
{
	series_of(m, name, help, COUNTER, labels)->value += delta;
}

void metrics_gauge_set(metrics *m, const char *name, const char *help, const char *labels,
		       double value)
{
	series_of(m, name, help, GAUGE, labels)->value = value;
}

void metrics_observe(metrics *m, const char *name, const char *help, const char *labels,
		     double value)
{
	struct series *s = series_of(m, name, help, HISTOGRAM, labels);
	s->value += value;
	s->count++;
	for (size_t i = 0; i < NBUCKETS; i++)
		if (value <= buckets[i])
			s->bucket[i]++;
}

void metrics_on_render(metrics *m, void (*fn)(metrics *, void *), void *arg)
{
	m->on_render = fn;
	m->on_render_arg = arg;
}

static const char *type_name(enum kind k)
{
	return k == COUNTER ? "counter" : k == GAUGE ? "gauge" : "histogram";
}

static void render_histogram(struct buf *out, const struct family *f, const struct series *s)
{
	const char *sep = s->labels[0] ? "," : "";
	for (size_t i = 0; i < NBUCKETS; i++)
		buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep,
			   buckets[i], s->bucket[i]);
	buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep, s->count);
	const char *open = s->labels[0] ? "{" : "", *close = s->labels[0] ? "}" : "";
	buf_printf(out, "%s_sum%s%s%s %.9g\n", f->name, open, s->labels, close, s->value);
	buf_printf(out, "%s_count%s%s%s %llu\n", f->name, open, s->labels, close, s->count);
}

static void render_family(struct buf *out, const struct family *f)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, type_name(f->kind));
	for (size_t j = 0; j < f->n; j++) {
		const struct series *s = &f->s[j];
		if (f->kind == HISTOGRAM)
			render_histogram(out, f, s);
		else if (s->labels[0])
			buf_printf(out, "%s{%s} %.17g\n", f->name, s->labels, s->value);
		else
			buf_printf(out, "%s %.17g\n", f->name, s->value);
	}
}

static unsigned count_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d));)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0; /* minus the directory's own fd */
}

/* Reads resident and virtual size from /proc/self/statm. */
static void memory(double *rss, double *vsz)
{
	unsigned long pages_v = 0, pages_r = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	*rss = *vsz = 0;
	if (!f)
		return;
	if (fscanf(f, "%lu %lu", &pages_v, &pages_r) == 2) {
		double page = (double)sysconf(_SC_PAGESIZE);
		*vsz = (double)pages_v * page;
		*rss = (double)pages_r * page;
	}
	fclose(f);
}

static void collect_process(metrics *m)
{
	double rss, vsz;
	struct rusage ru;
	struct rlimit rl;
	memory(&rss, &vsz);
	metrics_gauge_set(m, "process_resident_memory_bytes", "Resident memory size in bytes.", NULL, rss);
	metrics_gauge_set(m, "process_virtual_memory_bytes", "Virtual memory size in bytes.", NULL, vsz);
	metrics_gauge_set(m, "process_open_fds", "Number of open file descriptors.", NULL, count_fds());
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		metrics_gauge_set(m, "process_max_fds", "Maximum number of open file descriptors.",
				  NULL, (double)rl.rlim_cur);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		struct series *s = series_of(m, "process_cpu_seconds_total",
					     "Total user and system CPU time spent in seconds.", COUNTER, "");
		s->value = cpu;
	}
	metrics_gauge_set(m, "process_start_time_seconds",
			  "Start time of the process since unix epoch in seconds.", NULL, m->start_time);
	char labels[256];
	metrics_labels(labels, sizeof labels, "version", m->version, "commit", m->commit, NULL);
	metrics_gauge_set(m, "cocod_build_info", "cocod build information (always 1).", labels, 1);
}

void metrics_render(metrics *m, struct buf *out)
{
	collect_process(m);
	if (m->on_render)
		m->on_render(m, m->on_render_arg);
	for (size_t i = 0; i < m->n; i++)
		render_family(out, &m->f[i]);
}
