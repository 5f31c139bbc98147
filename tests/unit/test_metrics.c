/* Unit tests for metrics: label escaping, counters, gauges, histogram
 * buckets and the exposition text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static char *render(metrics *m)
{
	struct buf b;
	buf_init(&b);
	metrics_render(m, &b);
	return buf_steal(&b, NULL);
}

static void labels_are_escaped(void **state)
{
	char out[128];
	assert_int_equal(metrics_labels(out, sizeof out, "route", "/a\"b\\c\nd", "code", "200", NULL), 0);
	assert_string_equal(out, "route=\"/a\\\"b\\\\c\\nd\",code=\"200\"");
}

static void labels_report_truncation(void **state)
{
	char out[16];
	assert_int_equal(metrics_labels(out, sizeof out, "route", "/a/very/long/path/indeed", NULL), -1);
	assert_true(strlen(out) < sizeof out);
}

static void counters_accumulate_per_label_set(void **state)
{
	metrics *m = metrics_new("1.2.3", "abc");
	metrics_counter_add(m, "x_total", "X.", "code=\"200\"", 1);
	metrics_counter_add(m, "x_total", "X.", "code=\"200\"", 2);
	metrics_counter_add(m, "x_total", "X.", "code=\"404\"", 1);
	char *text = render(m);
	assert_non_null(strstr(text, "# TYPE x_total counter\n"));
	assert_non_null(strstr(text, "x_total{code=\"200\"} 3\n"));
	assert_non_null(strstr(text, "x_total{code=\"404\"} 1\n"));
	assert_non_null(strstr(text, "cocod_build_info{version=\"1.2.3\",commit=\"abc\"} 1\n"));
	free(text);
	metrics_free(m);
}

static void histogram_buckets_are_cumulative(void **state)
{
	metrics *m = metrics_new("v", "c");
	metrics_observe(m, "lat_seconds", "L.", "r=\"a\"", 0.0001);
	metrics_observe(m, "lat_seconds", "L.", "r=\"a\"", 0.003);
	metrics_observe(m, "lat_seconds", "L.", "r=\"a\"", 20);
	char *text = render(m);
	assert_non_null(strstr(text, "# TYPE lat_seconds histogram\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{r=\"a\",le=\"0.0005\"} 1\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{r=\"a\",le=\"0.005\"} 2\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{r=\"a\",le=\"10\"} 2\n"));
	assert_non_null(strstr(text, "lat_seconds_bucket{r=\"a\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "lat_seconds_count{r=\"a\"} 3\n"));
	free(text);
	metrics_free(m);
}

static void process_metrics_are_present(void **state)
{
	metrics *m = metrics_new("v", "c");
	char *text = render(m);
	assert_non_null(strstr(text, "process_resident_memory_bytes "));
	assert_non_null(strstr(text, "process_open_fds "));
	assert_null(strstr(text, "process_resident_memory_bytes 0\n"));
	free(text);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(labels_are_escaped),
		cmocka_unit_test(labels_report_truncation),
		cmocka_unit_test(counters_accumulate_per_label_set),
		cmocka_unit_test(histogram_buckets_are_cumulative),
		cmocka_unit_test(process_metrics_are_present),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
