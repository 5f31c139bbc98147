/* Unit tests for sched: fitting by cpu, memory and pod count; ordering by
 * priority then creation; unschedulable messages with quantities, reported
 * once; freed capacity placing a waiting pod; TEE availability; quantity
 * formatting and /proc/meminfo parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched.h"

#define GI (1024ull * 1024 * 1024)
#define MI (1024ull * 1024)

/* Records every report of a run, in order. */
struct rec {
	int n;
	char uid[16][32];
	int bound[16];
	char msg[16][256];
};

static void record(void *ud, const char *uid, int bound, const char *message)
{
	struct rec *r = ud;
	assert_true(r->n < 16);
	snprintf(r->uid[r->n], sizeof r->uid[0], "%s", uid);
	r->bound[r->n] = bound;
	snprintf(r->msg[r->n], sizeof r->msg[0], "%s", message ? message : "");
	r->n++;
}

static sched *node(uint64_t cpu, uint64_t mem, uint32_t pods)
{
	struct sched_node n = {cpu, mem, pods, SCHED_TEE_SIM};
	return sched_new(&n);
}

static void add(sched *s, const char *uid, int32_t prio, int64_t created, uint64_t cpu,
		uint64_t mem)
{
	struct sched_pod p = {.uid = uid, .name = uid, .priority = prio, .created_ms = created,
			      .cpu_milli = cpu, .mem_bytes = mem};
	assert_int_equal(sched_add_pending(s, &p, NULL), 0);
}

static void pod_that_fits_is_bound_and_uses_capacity(void **state)
{
	sched *s = node(4000, 8 * GI, 110);
	struct rec r = {0};
	add(s, "a", 0, 1, 1500, 2 * GI);
	assert_int_equal(sched_run(s, record, &r), 1);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.uid[0], "a");
	assert_int_equal(r.bound[0], 1);
	uint64_t cpu, mem;
	uint32_t pods;
	sched_used(s, &cpu, &mem, &pods);
	assert_int_equal(cpu, 1500);
	assert_int_equal(mem, 2 * GI);
	assert_int_equal(pods, 1);
	assert_int_equal(sched_state(s, "a"), 1);
	sched_free(s);
}

static void insufficient_cpu_names_request_and_free(void **state)
{
	sched *s = node(4000, 8 * GI, 110);
	struct rec r = {0};
	add(s, "a", 0, 1, 2500, 1 * GI);
	add(s, "b", 0, 2, 4000, 1 * GI);
	assert_int_equal(sched_run(s, record, &r), 1);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.uid[1], "b");
	assert_int_equal(r.bound[1], 0);
	assert_string_equal(r.msg[1], "0/1 nodes are available: "
				      "1 Insufficient cpu (requested 4, free 1500m).");
	assert_int_equal(sched_state(s, "b"), 0);
	sched_free(s);
}

static void insufficient_memory_names_request_and_free(void **state)
{
	sched *s = node(8000, 8 * GI, 110);
	struct rec r = {0};
	add(s, "a", 0, 1, 100, 6 * GI);
	add(s, "b", 0, 2, 100, 8 * GI);
	sched_run(s, record, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.bound[1], 0);
	assert_string_equal(r.msg[1], "0/1 nodes are available: "
				      "1 Insufficient memory (requested 8Gi, free 2Gi).");
	sched_free(s);
}

static void both_short_resources_are_named(void **state)
{
	sched *s = node(1000, 1 * GI, 110);
	struct rec r = {0};
	add(s, "a", 0, 1, 2000, 1536 * MI);
	sched_run(s, record, &r);
	assert_string_equal(r.msg[0], "0/1 nodes are available: "
				      "1 Insufficient cpu (requested 2, free 1), "
				      "1 Insufficient memory (requested 1536Mi, free 1Gi).");
	sched_free(s);
}

static void pod_count_limit_is_enforced(void **state)
{
	sched *s = node(8000, 8 * GI, 2);
	struct rec r = {0};
	add(s, "a", 0, 1, 0, 0);
	add(s, "b", 0, 2, 0, 0);
	add(s, "c", 0, 3, 0, 0);
	assert_int_equal(sched_run(s, record, &r), 2);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.uid[2], "c");
	assert_int_equal(r.bound[2], 0);
	assert_string_equal(r.msg[2], "0/1 nodes are available: 1 Too many pods (max 2).");
	sched_free(s);
}

static void higher_priority_goes_first_then_older(void **state)
{
	sched *s = node(1000, 8 * GI, 110);
	struct rec r = {0};
	/* Each wants the whole CPU: only the first in order gets it. */
	add(s, "young-low", 0, 5, 1000, 0);
	add(s, "old-low", 0, 1, 1000, 0);
	add(s, "young-high", 100, 9, 1000, 0);
	add(s, "old-high", 100, 2, 1000, 0);
	assert_int_equal(sched_run(s, record, &r), 1);
	assert_string_equal(r.uid[0], "old-high");
	assert_int_equal(r.bound[0], 1);
	/* The rest are reported unschedulable in the same order. */
	assert_string_equal(r.uid[1], "young-high");
	assert_string_equal(r.uid[2], "old-low");
	assert_string_equal(r.uid[3], "young-low");
	sched_remove(s, "old-high");
	memset(&r, 0, sizeof r);
	sched_run(s, record, &r);
	assert_string_equal(r.uid[0], "young-high");
	assert_int_equal(r.bound[0], 1);
	sched_free(s);
}

static void smaller_pod_behind_a_blocked_one_is_placed(void **state)
{
	sched *s = node(2000, 8 * GI, 110);
	struct rec r = {0};
	add(s, "big", 100, 1, 4000, 0);
	add(s, "small", 0, 2, 500, 0);
	assert_int_equal(sched_run(s, record, &r), 1);
	assert_int_equal(sched_state(s, "big"), 0);
	assert_int_equal(sched_state(s, "small"), 1);
	sched_free(s);
}

static void unschedulable_is_reported_once_until_message_changes(void **state)
{
	sched *s = node(2000, 8 * GI, 110);
	struct rec r = {0};
	add(s, "a", 0, 1, 1000, 0);
	add(s, "b", 0, 2, 2000, 0);
	sched_run(s, record, &r);
	assert_int_equal(r.n, 2);
	memset(&r, 0, sizeof r);
	sched_run(s, record, &r);
	assert_int_equal(r.n, 0);
	/* Another pod takes more CPU: b's message (free) changes. */
	add(s, "c", 0, 0, 500, 0);
	sched_run(s, record, &r);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.uid[0], "c");
	assert_string_equal(r.uid[1], "b");
	assert_string_equal(r.msg[1], "0/1 nodes are available: "
				      "1 Insufficient cpu (requested 2, free 500m).");
	sched_free(s);
}

static void freed_capacity_places_the_waiting_pod(void **state)
{
	sched *s = node(2000, 8 * GI, 110);
	struct rec r = {0};
	add(s, "a", 0, 1, 2000, 0);
	add(s, "b", 0, 2, 2000, 0);
	sched_run(s, record, &r);
	assert_int_equal(sched_state(s, "b"), 0);
	assert_int_equal(sched_remove(s, "b"), 0); /* pending: frees nothing */
	add(s, "b", 0, 2, 2000, 0);
	assert_int_equal(sched_remove(s, "a"), 1);
	memset(&r, 0, sizeof r);
	assert_int_equal(sched_run(s, record, &r), 1);
	assert_string_equal(r.uid[0], "b");
	assert_int_equal(r.bound[0], 1);
	assert_int_equal(sched_state(s, "a"), -1);
	sched_free(s);
}

static void missing_tee_makes_pod_unschedulable(void **state)
{
	sched *s = node(8000, 8 * GI, 110);
	struct rec r = {0};
	struct sched_pod p = {.uid = "t", .name = "default/t", .tee = "snp",
			      .runtime_class = "cocod-snp"};
	assert_int_equal(sched_add_pending(s, &p, NULL), 0);
	struct sched_pod q = {.uid = "u", .name = "default/u", .tee = "sim",
			      .runtime_class = "cocod-sim"};
	assert_int_equal(sched_add_pending(s, &q, NULL), 0);
	assert_int_equal(sched_run(s, record, &r), 1);
	assert_int_equal(sched_state(s, "u"), 1);
	assert_int_equal(sched_state(s, "t"), 0);
	int i = strcmp(r.uid[0], "t") == 0 ? 0 : 1;
	assert_string_equal(r.uid[i], "t");
	assert_string_equal(r.msg[i], "runtime class cocod-snp needs the snp TEE, which this box "
				      "lacks (available: sim)");
	sched_free(s);
}

static void restored_pod_counts_even_when_overcommitted(void **state)
{
	sched *s = node(1000, 1 * GI, 110);
	struct sched_pod p = {.uid = "r", .name = "r", .cpu_milli = 1500, .mem_bytes = GI};
	assert_int_equal(sched_mark_bound(s, &p, NULL), 0);
	assert_int_equal(sched_state(s, "r"), 1);
	struct rec r = {0};
	add(s, "n", 0, 1, 100, 0);
	sched_run(s, record, &r);
	assert_string_equal(r.msg[0], "0/1 nodes are available: "
				      "1 Insufficient cpu (requested 100m, free 0).");
	struct err e;
	assert_int_equal(sched_add_pending(s, &p, &e), ERR_EXISTS);
	sched_free(s);
}

static void quantities_format_like_kubernetes(void **state)
{
	char b[32];
	sched_format_cpu(4000, b, sizeof b);
	assert_string_equal(b, "4");
	sched_format_cpu(1500, b, sizeof b);
	assert_string_equal(b, "1500m");
	sched_format_bytes(8 * GI, b, sizeof b);
	assert_string_equal(b, "8Gi");
	sched_format_bytes(512 * MI, b, sizeof b);
	assert_string_equal(b, "512Mi");
	sched_format_bytes(1000000000, b, sizeof b);
	assert_string_equal(b, "1G");
	sched_format_bytes(GI + GI / 2 + 1, b, sizeof b);
	assert_string_equal(b, "1.5Gi");
	sched_format_bytes(0, b, sizeof b);
	assert_string_equal(b, "0");
	sched_format_bytes(999, b, sizeof b);
	assert_string_equal(b, "999");
}

static void meminfo_total_is_parsed(void **state)
{
	uint64_t v = 0;
	const char *meminfo = "MemTotal:       16303412 kB\nMemFree: 1 kB\n";
	assert_int_equal(sched_parse_meminfo(meminfo, &v), 0);
	assert_int_equal(v, 16303412ull * 1024);
	assert_int_equal(sched_parse_meminfo("MemFree: 1 kB\n", &v), -1);
	assert_int_equal(sched_parse_meminfo("XMemTotal: 5 kB\n", &v), -1);
	assert_int_equal(sched_tee_bit("tdx"), SCHED_TEE_TDX);
	assert_int_equal(sched_tee_bit("sgx"), 0);
}

static void detected_node_subtracts_reservations(void **state)
{
	struct sched_node a, b;
	struct err e;
	assert_int_equal(sched_detect_node(0, 0, 110, &a, &e), 0);
	assert_true(a.cpu_milli >= 1000);
	assert_true(a.mem_bytes > 0);
	assert_int_equal(sched_detect_node(500, 64 * MI, 50, &b, &e), 0);
	assert_int_equal(b.cpu_milli, a.cpu_milli - 500);
	assert_int_equal(b.mem_bytes, a.mem_bytes - 64 * MI);
	assert_int_equal(b.max_pods, 50);
	assert_int_equal(b.tees, SCHED_TEE_SIM);
	assert_int_equal(sched_detect_node(a.cpu_milli, 0, 1, &b, &e), ERR_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pod_that_fits_is_bound_and_uses_capacity),
		cmocka_unit_test(insufficient_cpu_names_request_and_free),
		cmocka_unit_test(insufficient_memory_names_request_and_free),
		cmocka_unit_test(both_short_resources_are_named),
		cmocka_unit_test(pod_count_limit_is_enforced),
		cmocka_unit_test(higher_priority_goes_first_then_older),
		cmocka_unit_test(smaller_pod_behind_a_blocked_one_is_placed),
		cmocka_unit_test(unschedulable_is_reported_once_until_message_changes),
		cmocka_unit_test(freed_capacity_places_the_waiting_pod),
		cmocka_unit_test(missing_tee_makes_pod_unschedulable),
		cmocka_unit_test(restored_pod_counts_even_when_overcommitted),
		cmocka_unit_test(quantities_format_like_kubernetes),
		cmocka_unit_test(meminfo_total_is_parsed),
		cmocka_unit_test(detected_node_subtracts_reservations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
