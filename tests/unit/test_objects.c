/* Unit tests for objects: create/get/update/delete with resourceVersion,
 * conflicts, listing, watch replay and live events, 410 for a pruned log,
 * persistence of the resourceVersion across reopen, pruning, batched
 * changes told to watchers as written, the stored text handed out, reads
 * (served from a small cache) that see every write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "objects.h"
#include "util.h"

struct fixture {
	char dir[64];
	char path[128];
	store *s;
	objects *o;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	struct err e;
	strcpy(f->dir, "/tmp/cocod-objects-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/db", f->dir);
	assert_int_equal(store_open(f->path, &f->s, &e), 0);
	assert_int_equal(objects_new(f->s, &f->o, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	objects_free(f->o);
	store_close(f->s);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static json_t *pod(const char *ns, const char *name, const char *uid)
{
	return json_pack("{s:s, s:{s:s, s:s, s:s}, s:{}}", "kind", "Pod", "metadata", "namespace", ns,
			 "name", name, "uid", uid, "spec");
}

static const char *rv_of(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

static void create_sets_increasing_resource_versions(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1"), *b = pod("default", "b", "u2");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_create(f->o, "Pod", b, &e), 0);
	assert_string_equal(rv_of(a), "1");
	assert_string_equal(rv_of(b), "2");
	assert_int_equal(objects_rv(f->o), 2);
	json_t *got;
	assert_int_equal(objects_get(f->o, "Pod", "default", "a", &got, &e), 0);
	assert_string_equal(rv_of(got), "1");
	assert_true(json_equal(got, a));
	json_decref(got);
	json_decref(a);
	json_decref(b);
}

static void duplicate_name_is_already_exists(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1"), *a2 = pod("default", "a", "u9");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_create(f->o, "Pod", a2, &e), ERR_EXISTS);
	assert_non_null(strstr(e.msg, "already exists"));
	assert_int_equal(objects_rv(f->o), 1);
	json_t *other = pod("other", "a", "u3");
	assert_int_equal(objects_create(f->o, "Pod", other, &e), 0); /* other namespace is fine */
	json_decref(a);
	json_decref(a2);
	json_decref(other);
}

static void update_checks_resource_version_and_uid(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "x", "y"));
	assert_int_equal(objects_update(f->o, "Pod", a, 1, &e), 0);
	assert_string_equal(rv_of(a), "2");
	assert_int_equal(objects_update(f->o, "Pod", a, 1, &e), ERR_CONFLICT); /* stale */
	json_object_set_new(json_object_get(a, "metadata"), "uid", json_string("other"));
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), ERR_CONFLICT);
	json_t *missing = pod("default", "zz", "u5");
	assert_int_equal(objects_update(f->o, "Pod", missing, 0, &e), ERR_NOT_FOUND);
	json_decref(missing);
	json_decref(a);
}

static void delete_removes_and_reports_missing(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1"), *got = NULL;
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_delete(f->o, "Pod", "default", "a", NULL, &e), 0);
	assert_int_equal(objects_get(f->o, "Pod", "default", "a", &got, &e), ERR_NOT_FOUND);
	assert_int_equal(objects_delete(f->o, "Pod", "default", "a", NULL, &e), ERR_NOT_FOUND);
	assert_int_equal(objects_rv(f->o), 2);
	json_decref(a);
}

static int collect(json_t *obj, void *ud)
{
	json_array_append(ud, json_object_get(json_object_get(obj, "metadata"), "name"));
	return 0;
}

static void list_orders_by_namespace_and_name(void **state)
{
	struct fixture *f = *state;
	struct err e;
	const char *names[][2] = {{"b", "z"}, {"a", "y"}, {"b", "c"}};
	for (int i = 0; i < 3; i++) {
		char uid[8];
		snprintf(uid, sizeof uid, "u%d", i);
		json_t *p = pod(names[i][0], names[i][1], uid);
		assert_int_equal(objects_create(f->o, "Pod", p, &e), 0);
		json_decref(p);
	}
	json_t *all = json_array();
	uint64_t rv = 0;
	assert_int_equal(objects_list(f->o, "Pod", NULL, collect, all, &rv, &e), 0);
	assert_int_equal(rv, 3);
	char *text = json_dumps(all, JSON_COMPACT);
	assert_string_equal(text, "[\"y\",\"c\",\"z\"]");
	free(text);
	json_decref(all);
	json_t *inb = json_array();
	assert_int_equal(objects_list(f->o, "Pod", "b", collect, inb, NULL, &e), 0);
	assert_int_equal(json_array_size(inb), 2);
	json_decref(inb);
	int64_t n;
	assert_int_equal(objects_count(f->o, "Pod", &n, &e), 0);
	assert_int_equal(n, 3);
}

struct seen {
	char log[512];
	objects_watcher *self;
	int stop_after;
};

static void record(const char *type, const json_t *obj, uint64_t rv, void *ud)
{
	struct seen *s = ud;
	char line[64];
	snprintf(line, sizeof line, "%s:%s:%llu ", type,
		 obj ? json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")) : "-",
		 (unsigned long long)rv);
	strcat(s->log, line);
	if (s->stop_after && --s->stop_after == 0)
		objects_unwatch(s->self);
}

static void watch_replays_then_follows_live_changes(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1"), *b = pod("default", "b", "u2");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_create(f->o, "Pod", b, &e), 0);
	struct seen s = {.log = ""};
	objects_watcher *w;
	assert_int_equal(objects_watch(f->o, "Pod", "default", 1, record, &s, &w, &e), 0);
	assert_string_equal(s.log, "ADDED:b:2 ");
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), 0);
	assert_int_equal(objects_delete(f->o, "Pod", "default", "b", NULL, &e), 0);
	json_t *other = pod("other", "c", "u3");
	assert_int_equal(objects_create(f->o, "Pod", other, &e), 0); /* other namespace: not seen */
	assert_string_equal(s.log, "ADDED:b:2 MODIFIED:a:3 DELETED:b:4 ");
	objects_unwatch(w);
	assert_int_equal(objects_delete(f->o, "Pod", "default", "a", NULL, &e), 0);
	assert_string_equal(s.log, "ADDED:b:2 MODIFIED:a:3 DELETED:b:4 ");
	json_decref(a);
	json_decref(b);
	json_decref(other);
}

static void unwatch_inside_callback_is_safe(void **state)
{
	struct fixture *f = *state;
	struct err e;
	struct seen s = {.log = "", .stop_after = 1};
	assert_int_equal(objects_watch(f->o, "Pod", NULL, 0, record, &s, &s.self, &e), 0);
	json_t *a = pod("default", "a", "u1"), *b = pod("default", "b", "u2");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_create(f->o, "Pod", b, &e), 0);
	assert_string_equal(s.log, "ADDED:a:1 ");
	json_decref(a);
	json_decref(b);
}

/* Records "TYPE:name:rv:label " with the object's label "v". */
static void record_label(const char *type, const json_t *obj, uint64_t rv, void *ud)
{
	struct seen *s = ud;
	const json_t *m = json_object_get(obj, "metadata");
	const char *v = json_string_value(json_object_get(json_object_get(m, "labels"), "v"));
	char line[96];
	snprintf(line, sizeof line, "%s:%s:%llu:%s ", type, json_string_value(json_object_get(m, "name")),
		 (unsigned long long)rv, v ? v : "-");
	strcat(s->log, line);
}

static void batched_changes_reach_watchers_after_commit_as_written(void **state)
{
	struct fixture *f = *state;
	struct err e;
	struct seen s = {.log = ""};
	objects_watcher *w;
	assert_int_equal(objects_watch(f->o, "Pod", NULL, 0, record_label, &s, &w, &e), 0);
	json_t *a = pod("default", "a", "u1");
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "1"));
	assert_int_equal(objects_batch_begin(f->o, &e), 0);
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "2"));
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), 0);
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "3"));
	assert_string_equal(s.log, ""); /* nothing before the commit */
	assert_int_equal(objects_batch_end(f->o, &e), 0);
	assert_string_equal(s.log, "ADDED:a:1:1 MODIFIED:a:2:2 ");
	/* a batch of a kind nobody watches, then one of a watched kind */
	json_t *ev = pod("default", "e", "u2");
	assert_int_equal(objects_batch_begin(f->o, &e), 0);
	assert_int_equal(objects_create(f->o, "Event", ev, &e), 0);
	assert_int_equal(objects_delete(f->o, "Pod", "default", "a", NULL, &e), 0);
	assert_int_equal(objects_batch_end(f->o, &e), 0);
	assert_string_equal(s.log, "ADDED:a:1:1 MODIFIED:a:2:2 DELETED:a:4:2 ");
	objects_unwatch(w);
	json_decref(a);
	json_decref(ev);
}

static void failed_update_leaves_the_object_alone(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_update(f->o, "Pod", a, 7, &e), ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "the object has been modified"));
	assert_string_equal(rv_of(a), "1");
	json_object_set_new(json_object_get(a, "metadata"), "uid", json_string("u9"));
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), ERR_CONFLICT);
	assert_non_null(strstr(e.msg, "uid does not match"));
	assert_string_equal(rv_of(a), "1");
	json_t *missing = pod("default", "zz", "u5");
	assert_int_equal(objects_update(f->o, "Pod", missing, 0, &e), ERR_NOT_FOUND);
	assert_null(rv_of(missing));
	assert_int_equal(objects_rv(f->o), 1);
	json_decref(missing);
	json_decref(a);
}

static void writes_hand_out_the_stored_text(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1");
	char *text = NULL, *stored = NULL;
	assert_int_equal(objects_create_text(f->o, "Pod", a, &text, &e), 0);
	assert_int_equal(objects_get_text(f->o, "Pod", "default", "a", &stored, NULL, &e), 0);
	assert_string_equal(text, stored);
	free(text);
	free(stored);
	assert_int_equal(objects_batch_begin(f->o, &e), 0);
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "x", "y"));
	assert_int_equal(objects_update_text(f->o, "Pod", a, 1, &text, &e), 0);
	assert_int_equal(objects_batch_end(f->o, &e), 0);
	assert_int_equal(objects_get_text(f->o, "Pod", "default", "a", &stored, NULL, &e), 0);
	assert_string_equal(text, stored);
	assert_non_null(strstr(text, "\"resourceVersion\":\"2\""));
	free(text);
	free(stored);
	text = NULL;
	assert_int_equal(objects_update_text(f->o, "Pod", a, 1, &text, &e), ERR_CONFLICT);
	assert_null(text);
	json_decref(a);
}

/* The label "v" in the stored text of default/a, or "-" when absent. */
static const char *stored_label(struct fixture *f, const char *kind, const char *name, char *out)
{
	struct err e;
	char *text = NULL;
	strcpy(out, "-");
	if (objects_get_text(f->o, kind, "default", name, &text, NULL, &e) == 0) {
		json_t *v = json_loads(text, 0, NULL);
		const json_t *m = json_object_get(v, "metadata");
		const char *l = json_string_value(json_object_get(json_object_get(m, "labels"), "v"));
		strcpy(out, l ? l : "?");
		json_decref(v);
	}
	free(text);
	return out;
}

static void repeated_reads_see_every_write(void **state)
{
	struct fixture *f = *state;
	struct err e;
	char got[16];
	json_t *a = pod("default", "a", "u1");
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "1"));
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "1");
	assert_string_equal(stored_label(f, "Pod", "a", got), "1"); /* a second read */
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "2"));
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "2");
	/* inside a batch a read sees the batch's own write, and after it too */
	assert_int_equal(objects_batch_begin(f->o, &e), 0);
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "3"));
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "3");
	assert_int_equal(objects_batch_end(f->o, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "3");
	/* a deletion, given a last state that names the object */
	assert_int_equal(objects_delete(f->o, "Pod", "default", "a", a, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "-");
	/* pruned events are gone for readers too */
	json_t *ev = pod("default", "e", "u2");
	json_object_set_new(json_object_get(ev, "metadata"), "labels", json_pack("{s:s}", "v", "e"));
	assert_int_equal(objects_create(f->o, "Event", ev, &e), 0);
	assert_string_equal(stored_label(f, "Event", "e", got), "e");
	assert_int_equal(objects_prune(f->o, "Event", 0, 3600, &e), 1);
	assert_string_equal(stored_label(f, "Event", "e", got), "-");
	json_decref(a);
	json_decref(ev);
}

/* An unfinished batch is rolled back when the store closes; reopened, the
 * reads give what was committed. */
static void rolled_back_writes_are_not_read(void **state)
{
	struct fixture *f = *state;
	struct err e;
	char got[16];
	json_t *a = pod("default", "a", "u1");
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "1"));
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "1");
	assert_int_equal(objects_batch_begin(f->o, &e), 0);
	json_object_set_new(json_object_get(a, "metadata"), "labels", json_pack("{s:s}", "v", "2"));
	assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "2");
	objects_free(f->o); /* drops the batch */
	assert_int_equal(objects_new(f->s, &f->o, &e), 0);
	assert_string_equal(stored_label(f, "Pod", "a", got), "1");
	json_decref(a);
}

static void resource_version_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	assert_int_equal(objects_delete(f->o, "Pod", "default", "a", NULL, &e), 0);
	objects_free(f->o);
	store_close(f->s);
	assert_int_equal(store_open(f->path, &f->s, &e), 0);
	assert_int_equal(objects_new(f->s, &f->o, &e), 0);
	assert_int_equal(objects_rv(f->o), 2);
	json_t *b = pod("default", "b", "u2");
	assert_int_equal(objects_create(f->o, "Pod", b, &e), 0);
	assert_string_equal(rv_of(b), "3");
	json_decref(a);
	json_decref(b);
}

static void watch_from_pruned_version_is_gone(void **state)
{
	struct fixture *f = *state;
	struct err e;
	json_t *a = pod("default", "a", "u1");
	assert_int_equal(objects_create(f->o, "Pod", a, &e), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(objects_update(f->o, "Pod", a, 0, &e), 0);
	/* simulate a long history trimmed away */
	assert_int_equal(store_exec(f->s, "DELETE FROM changes WHERE rv < 250", &e), 0);
	struct seen s = {.log = ""};
	objects_watcher *w = NULL;
	assert_int_equal(objects_watch(f->o, "Pod", NULL, 10, record, &s, &w, &e), ERR_GONE);
	assert_non_null(strstr(e.msg, "too old resource version"));
	assert_int_equal(objects_watch(f->o, "Pod", NULL, 299, record, &s, &w, &e), 0);
	assert_string_equal(s.log, "MODIFIED:a:300 MODIFIED:a:301 ");
	objects_unwatch(w);
	json_decref(a);
}

static void prune_keeps_newest(void **state)
{
	struct fixture *f = *state;
	struct err e;
	for (int i = 0; i < 10; i++) {
		char name[8], uid[8];
		snprintf(name, sizeof name, "e%d", i);
		snprintf(uid, sizeof uid, "v%d", i);
		json_t *ev = pod("default", name, uid);
		assert_int_equal(objects_create(f->o, "Event", ev, &e), 0);
		json_decref(ev);
	}
	assert_int_equal(objects_prune(f->o, "Event", 4, 3600, &e), 6);
	int64_t n;
	assert_int_equal(objects_count(f->o, "Event", &n, &e), 0);
	assert_int_equal(n, 4);
	json_t *got;
	assert_int_equal(objects_get(f->o, "Event", "default", "e9", &got, &e), 0);
	json_decref(got);
	assert_int_equal(objects_get(f->o, "Event", "default", "e0", &got, &e), ERR_NOT_FOUND);
	assert_int_equal(objects_prune(f->o, "Event", 100, -10, &e), 4); /* all older than "future" */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(create_sets_increasing_resource_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(duplicate_name_is_already_exists, setup, teardown),
		cmocka_unit_test_setup_teardown(update_checks_resource_version_and_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(delete_removes_and_reports_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(list_orders_by_namespace_and_name, setup, teardown),
		cmocka_unit_test_setup_teardown(watch_replays_then_follows_live_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(unwatch_inside_callback_is_safe, setup, teardown),
		cmocka_unit_test_setup_teardown(batched_changes_reach_watchers_after_commit_as_written, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_update_leaves_the_object_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(writes_hand_out_the_stored_text, setup, teardown),
		cmocka_unit_test_setup_teardown(repeated_reads_see_every_write, setup, teardown),
		cmocka_unit_test_setup_teardown(rolled_back_writes_are_not_read, setup, teardown),
		cmocka_unit_test_setup_teardown(resource_version_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(watch_from_pruned_version_is_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(prune_keeps_newest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
