/* Unit tests for store: file creation and modes, integrity checking,
 * migrations (fresh, repeated, failing, too new), meta, transactions and the
 * prepared-statement cache.  Each case works in its own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "util.h"

struct fixture {
	char dir[64];
	char path[128]; /* dir/cocod.db */
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/cocod-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/cocod.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char p[512];
		snprintf(p, sizeof p, "%s/%s", f->dir, de->d_name);
		if (de->d_name[0] != '.')
			unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* The single integer result of `sql`. */
static long long query_int(store *s, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	long long v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int table_exists(store *s, const char *name)
{
	char sql[160];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'", name);
	return query_int(s, sql) == 1;
}

static void write_bytes(const char *path, const void *data, size_t len, mode_t mode)
{
	struct err e;
	assert_int_equal(file_write_atomic(path, data, len, mode, &e), 0);
}

static void fresh_database_gets_latest_schema_and_mode_0600(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(0); /* SQLite's own default would now be 0644 */
	store *s = NULL;
	struct err e;
	int rc = store_open(f->path, &s, &e);
	umask(old);
	assert_int_equal(rc, 0);
	assert_true(store_schema_latest() >= 1);
	assert_int_equal(store_schema_version(s), store_schema_latest());
	assert_true(table_exists(s, "meta"));
	assert_true(table_exists(s, "audit"));
	char wal[160], shm[160];
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	snprintf(shm, sizeof shm, "%s-shm", f->path);
	assert_int_equal(mode_of(f->path), 0600);
	assert_int_equal(mode_of(wal), 0600);
	assert_int_equal(mode_of(shm), 0600);
	store_close(s);
}

static void open_sets_wal_and_foreign_keys(void **state)
{
	struct fixture *f = *state;
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(query_int(s, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_int(s, "PRAGMA synchronous"), 1); /* NORMAL */
	sqlite3_stmt *st;
	sqlite3_prepare_v2(store_db(s), "PRAGMA journal_mode", -1, &st, NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	store_close(s);
}

static void existing_file_is_made_private(void **state)
{
	struct fixture *f = *state;
	write_bytes(f->path, "", 0, 0644);
	assert_int_equal(mode_of(f->path), 0644);
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(mode_of(f->path), 0600);
	store_close(s);
}

static void reopening_keeps_data_and_does_not_rerun_migrations(void **state)
{
	struct fixture *f = *state;
	/* Re-running this migration would fail (table exists) or add a row. */
	static const char *const list[] = {"CREATE TABLE t (x); INSERT INTO t VALUES (1);", NULL};
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open_with(f->path, list, &s, &e), 0);
	assert_int_equal(store_exec(s, "INSERT INTO t VALUES (2)", &e), 0);
	store_close(s);
	assert_int_equal(store_open_with(f->path, list, &s, &e), 0);
	assert_int_equal(store_schema_version(s), 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM t"), 2);
	assert_int_equal(query_int(s, "SELECT sum(x) FROM t"), 3);
	store_close(s);
}

static void reopening_builtin_schema_keeps_rows(void **state)
{
	struct fixture *f = *state;
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_exec(s, "INSERT INTO audit (time, actor, action, object) "
				       "VALUES ('t', 'admin', 'create', 'x')", &e), 0);
	store_close(s);
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_schema_version(s), store_schema_latest());
	assert_int_equal(query_int(s, "SELECT count(*) FROM audit WHERE detail = ''"), 1);
	store_close(s);
}

static void failing_migration_rolls_back_and_is_named(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"CREATE TABLE a (x);",
		"CREATE TABLE b (y); INSERT INTO missing VALUES (1);",
		NULL,
	};
	static const char *const good[] = {"CREATE TABLE a (x);", NULL};
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open_with(f->path, bad, &s, &e), ERR_DB);
	assert_null(s);
	assert_non_null(strstr(e.msg, "migration 2"));
	assert_non_null(strstr(e.msg, "no such table: missing"));
	assert_non_null(strstr(e.msg, f->path));
	assert_int_equal(store_open_with(f->path, good, &s, &e), 0);
	assert_int_equal(store_schema_version(s), 1);
	assert_true(table_exists(s, "a"));
	assert_false(table_exists(s, "b"));
	store_close(s);
}

static void newer_schema_is_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const two[] = {"CREATE TABLE a (x);", "CREATE TABLE b (y);", NULL};
	static const char *const one[] = {"CREATE TABLE a (x);", NULL};
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open_with(f->path, two, &s, &e), 0);
	store_close(s);
	s = NULL;
	assert_int_equal(store_open_with(f->path, one, &s, &e), ERR_DB);
	assert_null(s);
	char want[256];
	snprintf(want, sizeof want, "%s: schema version 2 is newer than this cocod (1); upgrade cocod",
		 f->path);
	assert_string_equal(e.msg, want);
}

static void garbage_file_is_refused_and_left_alone(void **state)
{
	struct fixture *f = *state;
	char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = "this is not a database\n"[i % 23];
	write_bytes(f->path, junk, sizeof junk, 0600);
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), ERR_DB);
	assert_null(s);
	char want[256];
	snprintf(want, sizeof want, "%s is not a cocod database: file is not a database", f->path);
	assert_string_equal(e.msg, want);
	char *back;
	size_t len;
	assert_int_equal(file_read(f->path, 1 << 20, &back, &len, &e), 0);
	assert_int_equal(len, sizeof junk);
	assert_memory_equal(back, junk, sizeof junk);
	free(back);
}

/* Changes one byte of a text value inside the table's own b-tree page while
 * leaving the index untouched: the page stays well-formed, so only
 * integrity_check (table row without matching index entry) can notice. */
static void corrupt_page_is_caught_by_integrity_check(void **state)
{
	struct fixture *f = *state;
	static const char marker[] = "cocod-integrity-marker-0123456789";
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_exec(s, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
				       "CREATE INDEX t_v ON t (v);"
				       "INSERT INTO t (v) VALUES ('cocod-integrity-marker-0123456789');",
				    &e), 0);
	long long root = query_int(s, "SELECT rootpage FROM sqlite_schema WHERE name = 't'");
	long long psize = query_int(s, "PRAGMA page_size");
	store_close(s);
	char wal[160];
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	assert_false(file_exists(wal)); /* checkpointed into the main file */

	char *data;
	size_t len;
	assert_int_equal(file_read(f->path, 1 << 24, &data, &len, &e), 0);
	assert_true((size_t)(root * psize) <= len);
	char *page = data + (root - 1) * psize;
	char *hit = memmem(page, (size_t)psize, marker, sizeof marker - 1);
	assert_non_null(hit);
	hit[sizeof marker - 2] = 'X';
	write_bytes(f->path, data, len, 0600);
	free(data);

	s = NULL;
	assert_int_equal(store_open(f->path, &s, &e), ERR_DB);
	assert_null(s);
	assert_non_null(strstr(e.msg, "integrity check failed: "));
	assert_non_null(strstr(e.msg, "t_v"));
}

/* A table page overwritten with junk: open fails whether SQLite reports it
 * as an integrity_check row or as SQLITE_CORRUPT while checking. */
static void smashed_page_is_refused(void **state)
{
	struct fixture *f = *state;
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_exec(s, "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x');", &e),
			 0);
	long long root = query_int(s, "SELECT rootpage FROM sqlite_schema WHERE name = 't'");
	long long psize = query_int(s, "PRAGMA page_size");
	store_close(s);
	char *data;
	size_t len;
	assert_int_equal(file_read(f->path, 1 << 24, &data, &len, &e), 0);
	assert_true((size_t)(root * psize) <= len);
	memset(data + (root - 1) * psize, 0xff, (size_t)psize);
	write_bytes(f->path, data, len, 0600);
	free(data);
	s = NULL;
	assert_int_equal(store_open(f->path, &s, &e), ERR_DB);
	assert_null(s);
	assert_non_null(strstr(e.msg, "integrity check failed: "));
}

static void meta_set_get_overwrite_and_missing(void **state)
{
	struct fixture *f = *state;
	store *s = NULL;
	struct err e;
	char *v = NULL;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_meta_get(s, "url", &v, &e), ERR_NOT_FOUND);
	assert_null(v);
	assert_int_equal(store_meta_set(s, "url", "https://a", &e), 0);
	assert_int_equal(store_meta_get(s, "url", &v, &e), 0);
	assert_string_equal(v, "https://a");
	free(v);
	assert_int_equal(store_meta_set(s, "url", "https://b", &e), 0);
	assert_int_equal(store_meta_get(s, "url", &v, &e), 0);
	assert_string_equal(v, "https://b");
	free(v);
	assert_int_equal(query_int(s, "SELECT count(*) FROM meta"), 1);
	store_close(s);
}

static void rollback_leaves_no_change_and_commit_persists(void **state)
{
	struct fixture *f = *state;
	store *s = NULL;
	struct err e;
	char *v = NULL;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_begin(s, &e), 0);
	assert_int_equal(store_meta_set(s, "k", "1", &e), 0);
	store_rollback(s);
	assert_int_equal(store_meta_get(s, "k", &v, &e), ERR_NOT_FOUND);

	assert_int_equal(store_begin(s, &e), 0);
	assert_int_equal(store_begin(s, &e), ERR_DB); /* not nestable */
	assert_int_equal(store_meta_set(s, "k", "2", &e), 0);
	assert_int_equal(store_commit(s, &e), 0);
	store_close(s);
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_meta_get(s, "k", &v, &e), 0);
	assert_string_equal(v, "2");
	free(v);
	store_rollback(s); /* no transaction: a no-op */
	store_close(s);
}

static void second_connection_sees_committed_writes(void **state)
{
	struct fixture *f = *state;
	store *a = NULL, *b = NULL;
	struct err e;
	char *v = NULL;
	assert_int_equal(store_open(f->path, &a, &e), 0);
	assert_int_equal(store_open(f->path, &b, &e), 0);
	assert_int_equal(store_meta_set(a, "k", "from-a", &e), 0);
	assert_int_equal(store_meta_get(b, "k", &v, &e), 0);
	assert_string_equal(v, "from-a");
	free(v);
	store_close(a);
	store_close(b);
}

static void stmt_cache_returns_same_statement_for_same_sql_pointer(void **state)
{
	struct fixture *f = *state;
	static const char *const sql = "SELECT ?1";
	char copy[16];
	snprintf(copy, sizeof copy, "%s", sql);
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	sqlite3_stmt *a = store_stmt(s, sql, &e);
	assert_non_null(a);
	sqlite3_bind_int(a, 1, 7);
	assert_int_equal(sqlite3_step(a), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(a, 0), 7);

	sqlite3_stmt *b = store_stmt(s, sql, &e);
	assert_ptr_equal(a, b);
	/* Reset and cleared: it runs again, with ?1 back to NULL. */
	assert_int_equal(sqlite3_step(b), SQLITE_ROW);
	assert_int_equal(sqlite3_column_type(b, 0), SQLITE_NULL);

	sqlite3_stmt *c = store_stmt(s, copy, &e);
	assert_non_null(c);
	assert_ptr_not_equal(a, c);
	store_close(s); /* finalizes both; ASan/valgrind would see a leak otherwise */
}

static void bad_sql_reports_sqlite_message(void **state)
{
	struct fixture *f = *state;
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open(f->path, &s, &e), 0);
	assert_int_equal(store_exec(s, "SELEC 1", &e), ERR_DB);
	assert_non_null(strstr(e.msg, "syntax error"));
	assert_null(store_stmt(s, "SELECT * FROM nowhere", &e));
	assert_int_equal(e.code, ERR_DB);
	assert_non_null(strstr(e.msg, "no such table: nowhere"));
	assert_null(store_stmt(s, "SELECT 1; SELECT 2", &e));
	assert_non_null(strstr(e.msg, "one statement"));
	store_close(s);
}

static void unreachable_path_is_io_error(void **state)
{
	store *s = NULL;
	struct err e;
	assert_int_equal(store_open("/nonexistent-cocod-dir/x.db", &s, &e), ERR_IO);
	assert_null(s);
	assert_non_null(strstr(e.msg, "/nonexistent-cocod-dir/x.db"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(fresh_database_gets_latest_schema_and_mode_0600),
		T(open_sets_wal_and_foreign_keys),
		T(existing_file_is_made_private),
		T(reopening_keeps_data_and_does_not_rerun_migrations),
		T(reopening_builtin_schema_keeps_rows),
		T(failing_migration_rolls_back_and_is_named),
		T(newer_schema_is_refused),
		T(garbage_file_is_refused_and_left_alone),
		T(corrupt_page_is_caught_by_integrity_check),
		T(smashed_page_is_refused),
		T(meta_set_get_overwrite_and_missing),
		T(rollback_leaves_no_change_and_commit_persists),
		T(second_connection_sees_committed_writes),
		T(stmt_cache_returns_same_statement_for_same_sql_pointer),
		T(bad_sql_reports_sqlite_message),
		T(unreachable_path_is_io_error),
	};
	log_set_level(LOG_WARN); /* keep "migrated schema" lines out of the output */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
