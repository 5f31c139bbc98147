/* metrics: counters, gauges and histograms rendered in the Prometheus text
 * exposition format (version 0.0.4).  A family is declared on first use by
 * name; a series inside it is identified by its pre-rendered label text,
 * built with metrics_labels() so values are escaped.  Process metrics
 * (memory, fds, CPU, start time) and build info are added at render time.
 * Loop thread only. */
#ifndef COCOD_METRICS_H
#define COCOD_METRICS_H

#include <stddef.h>

#include "util.h"

typedef struct metrics metrics;

metrics *metrics_new(const char *version, const char *commit);
void metrics_free(metrics *m);

/* Renders `k1="v1",k2="v2"` into `out` (size `len`) from a NULL-terminated
 * list of name, value pairs, escaping \, " and newlines.  Truncation is
 * reported as -1. */
int metrics_labels(char *out, size_t len, ...) __attribute__((sentinel));

void metrics_counter_add(metrics *m, const char *name, const char *help, const char *labels,
			 double delta);
void metrics_gauge_set(metrics *m, const char *name, const char *help, const char *labels,
		       double value);
/* Observes into a histogram with the default latency buckets (seconds). */
void metrics_observe(metrics *m, const char *name, const char *help, const char *labels,
		     double value);

/* A callback run at render time to refresh gauges (e.g. open connections). */
void metrics_on_render(metrics *m, void (*fn)(metrics *m, void *arg), void *arg);

/* Appends the whole exposition to `out`. */
void metrics_render(metrics *m, struct buf *out);

#endif
