/* store: cocod's SQLite database.  Opening a store creates the file with mode
 * 0600 (and keeps its -wal and -shm companions at 0600), refuses anything
 * that is not a healthy SQLite database (`PRAGMA integrity_check`), switches
 * to WAL with foreign keys on, and brings the schema up to date by running
 * the migrations below, each in its own BEGIN IMMEDIATE transaction that
 * also bumps `PRAGMA user_version`.  Prepared statements are cached per
 * store, keyed by the address of their SQL text. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000

/* The schema, one script per version: migrations[i] takes user_version i to
 * i + 1.  Append only: never edit or reorder an entry that has shipped. */
static const char *const migrations[] = {
	/* 1: daemon metadata and the audit log. */
	"CREATE TABLE meta (\n"
	"	key TEXT PRIMARY KEY,\n"
	"	value TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE audit (\n"
	"	id INTEGER PRIMARY KEY,\n"
	"	time TEXT NOT NULL,\n"
	"	actor TEXT NOT NULL,\n"
	"	action TEXT NOT NULL,\n"
	"	object TEXT NOT NULL,\n"
	"	detail TEXT NOT NULL DEFAULT ''\n"
	");\n",
	/* 2: Kubernetes-style objects and the change log watches replay. */
	"CREATE TABLE objects (\n"
	"	kind TEXT NOT NULL,\n"
	"	namespace TEXT NOT NULL,\n"
	"	name TEXT NOT NULL,\n"
	"	uid TEXT NOT NULL UNIQUE,\n"
	"	rv INTEGER NOT NULL,\n"
	"	created INTEGER NOT NULL,\n"
	"	object TEXT NOT NULL,\n"
	"	PRIMARY KEY (kind, namespace, name)\n"
	");\n"
	"CREATE INDEX objects_created ON objects (kind, created);\n"
	"CREATE INDEX objects_rv ON objects (kind, rv);\n"
	"CREATE TABLE changes (\n"
	"	rv INTEGER PRIMARY KEY,\n"
	"	kind TEXT NOT NULL,\n"
	"	type TEXT NOT NULL,\n"
	"	namespace TEXT NOT NULL,\n"
	"	name TEXT NOT NULL,\n"
	"	object TEXT NOT NULL\n"
	");\n",
	/* 3: policy versions and the decision log. */
	"CREATE TABLE policies (\n"
	"	hook TEXT NOT NULL,\n"
	"	version INTEGER NOT NULL,\n"
	"	source TEXT NOT NULL,\n"
	"	sha256 TEXT NOT NULL,\n"
	"	created TEXT NOT NULL,\n"
	"	origin TEXT NOT NULL,\n"
	"	PRIMARY KEY (hook, version)\n"
	");\n"
	"CREATE TABLE policy_active (\n"
	"	hook TEXT PRIMARY KEY,\n"
	"	version INTEGER NOT NULL,\n"
	"	FOREIGN KEY (hook, version) REFERENCES policies (hook, version)\n"
	");\n"
	"CREATE TABLE decisions (\n"
	"	id INTEGER PRIMARY KEY,\n"
	"	time TEXT NOT NULL,\n"
	"	unix INTEGER NOT NULL,\n"
	"	hook TEXT NOT NULL,\n"
	"	version INTEGER NOT NULL,\n"
	"	subject TEXT NOT NULL,\n"
	"	input_sha256 TEXT NOT NULL,\n"
	"	allow INTEGER NOT NULL,\n"
	"	reason TEXT NOT NULL,\n"
	"	duration_us INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX decisions_hook ON decisions (hook, id);\n",
	/* 4: the image store (images.c): tags, blobs, and which blobs each
	 * manifest uses (garbage collection deletes blobs no tag reaches). */
	"CREATE TABLE images (\n"
	"	name TEXT NOT NULL,\n"
	"	tag TEXT NOT NULL,\n"
	"	manifest_digest TEXT NOT NULL,\n"
	"	manifest_type TEXT NOT NULL,\n"
	"	config_digest TEXT NOT NULL,\n"
	"	size INTEGER NOT NULL,\n"
	"	created INTEGER NOT NULL,\n"
	"	PRIMARY KEY (name, tag)\n"
	");\n"
	"CREATE INDEX images_manifest ON images (manifest_digest);\n"
	"CREATE TABLE image_blobs (\n"
	"	digest TEXT PRIMARY KEY,\n"
	"	size INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE image_refs (\n"
	"	manifest TEXT NOT NULL,\n"
	"	blob TEXT NOT NULL REFERENCES image_blobs (digest),\n"
	"	PRIMARY KEY (manifest, blob)\n"
	");\n"
	"CREATE INDEX image_refs_blob ON image_refs (blob);\n",
	/* 5: the KBS: sealed keys and resources, reference values
	 * (tee/kbs.c documents them). */
	"CREATE TABLE kbs_keys (\n"
	"	name TEXT PRIMARY KEY,\n"
	"	sealed BLOB NOT NULL,\n"
	"	created INTEGER NOT NULL\n"
	");\n"
	"CREATE TABLE kbs_resources (\n"
	"	path TEXT PRIMARY KEY,\n"
	"	sealed BLOB NOT NULL,\n"
	"	size INTEGER NOT NULL,\n"
	"	updated TEXT NOT NULL\n"
	");\n"
	"CREATE TABLE kbs_reference_values (\n"
	"	name TEXT NOT NULL,\n"
	"	value TEXT NOT NULL,\n"
	"	expires INTEGER NOT NULL DEFAULT 0,\n"
	"	PRIMARY KEY (name, value)\n"
	");\n",
	/* 6: the attestation collateral cache (tee/collateral.c): AMD
	 * certificates and CRLs, Intel certificates, CRLs, TCB info and QE
	 * identities, each as imported (DER, or the exact signed JSON) and
	 * found by (kind, lookup). */
	"CREATE TABLE collateral (\n"
	"	sha256 TEXT PRIMARY KEY,\n"
	"	kind TEXT NOT NULL,\n"
	"	lookup TEXT NOT NULL,\n"
	"	tcb TEXT NOT NULL DEFAULT '',\n"
	"	not_before INTEGER NOT NULL,\n"
	"	not_after INTEGER NOT NULL,\n"
	"	summary TEXT NOT NULL,\n"
	"	source TEXT NOT NULL,\n"
	"	imported TEXT NOT NULL,\n"
	"	data BLOB NOT NULL\n"
	");\n"
	"CREATE INDEX collateral_lookup ON collateral (kind, lookup);\n",
	NULL,
};

struct cached {
	const char *sql; /* the caller's pointer: the cache key */
	sqlite3_stmt *stmt;
};

struct store {
	sqlite3 *db;
	char *path;
	struct cached *cache; /* linear array: tens of statements, not thousands */
	size_t ncache, capcache;
};

static int count(const char *const *list)
{
	int n = 0;
	while (list[n])
		n++;
	return n;
}

int store_schema_latest(void) { return count(migrations); }
sqlite3 *store_db(store *s) { return s->db; }

/* Fills `e` with ERR_DB, `what` and SQLite's message for the last failure. */
static int dberr(store *s, struct err *e, const char *what)
{
	return err_set(e, ERR_DB, "%s: %s", what, sqlite3_errmsg(s->db));
}

/* Creates `path` if missing and forces mode 0600 on it, before SQLite (which
 * would create it 0644) gets to it. */
static int create_private(const char *path, struct err *e)
{
	cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(e, ERR_IO, "open %s: %s", path, strerror(errno));
	if (fchmod(fd, 0600) < 0)
		return err_set(e, ERR_IO, "chmod %s: %s", path, strerror(errno));
	return 0;
}

/* SQLite gives -wal and -shm the database file's mode; enforce it anyway, so
 * a file created by an older build or by hand cannot leak through them. */
static int private_companions(store *s, struct err *e)
{
	static const char *const suffixes[] = {"-wal", "-shm"};
	for (size_t i = 0; i < 2; i++) {
		cleanup_free char *p = xasprintf("%s%s", s->path, suffixes[i]);
		if (chmod(p, 0600) < 0 && errno != ENOENT)
			return err_set(e, ERR_IO, "chmod %s: %s", p, strerror(errno));
	}
	return 0;
}

static int connect_db(store *s, struct err *e)
{
	if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return dberr(s, e, "open");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	return 0;
}

/* Runs `PRAGMA integrity_check(1)`: its one row is "ok" or the first
 * problem found.  This is also the first read of the file, so a file that is
 * not a database at all fails here with SQLITE_NOTADB. */
static int check_integrity(store *s, struct err *e)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check(1)", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	const char *res = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if ((rc & 0xff) == SQLITE_NOTADB)
		err_set(e, ERR_DB, "%s is not a cocod database: %s", s->path,
			sqlite3_errmsg(s->db));
	else if (rc != SQLITE_ROW)
		dberr(s, e, "integrity check failed");
	else if (!res || strcmp(res, "ok") != 0)
		err_set(e, ERR_DB, "integrity check failed: %s", res ? res : "no result");
	else
		rc = SQLITE_OK;
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : ERR_DB;
}

/* Returns the single text value of `sql` (a PRAGMA) in `out`. */
static int pragma_text(store *s, const char *sql, char *out, size_t n, struct err *e)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return dberr(s, e, sql);
	if (sqlite3_step(st) != SQLITE_ROW) {
		dberr(s, e, sql);
		sqlite3_finalize(st);
		return ERR_DB;
	}
	const char *v = (const char *)sqlite3_column_text(st, 0);
	snprintf(out, n, "%s", v ? v : "");
	sqlite3_finalize(st);
	return 0;
}

static int configure(store *s, struct err *e)
{
	char mode[32];
	if (pragma_text(s, "PRAGMA journal_mode = WAL", mode, sizeof mode, e) < 0)
		return e->code;
	if (strcasecmp(mode, "wal") != 0)
		return err_set(e, ERR_DB, "cannot enable WAL: journal mode is %s", mode);
	return store_exec(s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -4096", e);
}

static int read_version(store *s, int *v, struct err *e)
{
	char text[32];
	if (pragma_text(s, "PRAGMA user_version", text, sizeof text, e) < 0)
		return e->code;
	*v = atoi(text);
	return 0;
}

/* Applies the migration after the current version in one transaction.  The
 * version is read again under the write lock: another process may have
 * migrated while we waited for it. */
static int migrate_step(store *s, const char *const *list, int latest, int *v, struct err *e)
{
	if (store_begin(s, e) < 0 || read_version(s, v, e) < 0)
		goto fail;
	if (*v >= latest) {
		store_rollback(s);
		return 0;
	}
	char bump[48];
	snprintf(bump, sizeof bump, "PRAGMA user_version = %d", *v + 1);
	if (store_exec(s, list[*v], e) < 0 || store_exec(s, bump, e) < 0 ||
	    store_commit(s, e) < 0)
		goto fail;
	log_info("store", "migrated schema version=%d path=%s", *v + 1, s->path);
	(*v)++;
	return 0;
fail:
	store_rollback(s);
	return err_wrap(e, "migration %d", *v + 1);
}

static int migrate(store *s, const char *const *list, struct err *e)
{
	int latest = count(list), v = 0;
	if (read_version(s, &v, e) < 0)
		return e->code;
	while (v < latest)
		if (migrate_step(s, list, latest, &v, e) < 0)
			return e->code;
	if (v > latest)
		return err_set(e, ERR_DB, "schema version %d is newer than this cocod (%d); "
			       "upgrade cocod", v, latest);
	return 0;
}

int store_open_with(const char *path, const char *const *list, store **out, struct err *e)
{
	if (create_private(path, e) < 0)
		return e->code;
	store *s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	if (connect_db(s, e) < 0 || check_integrity(s, e) < 0 || configure(s, e) < 0 ||
	    migrate(s, list, e) < 0 || private_companions(s, e) < 0) {
		if (strncmp(e->msg, path, strlen(path)) != 0)
			err_wrap(e, "%s", path);
		store_close(s);
		return e->code;
	}
	*out = s;
	return 0;
}

int store_open(const char *path, store **out, struct err *e)
{
	return store_open_with(path, migrations, out, e);
}

void store_close(store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ncache; i++)
		sqlite3_finalize(s->cache[i].stmt);
	free(s->cache);
	if (s->db && sqlite3_close(s->db) != SQLITE_OK) {
		log_warn("store", "close %s: %s (statements still open)", s->path,
			 sqlite3_errmsg(s->db));
		sqlite3_close_v2(s->db);
	}
	free(s->path);
	free(s);
}

int store_schema_version(store *s)
{
	int v = 0;
	struct err e;
	return read_version(s, &v, &e) < 0 ? -1 : v;
}

static sqlite3_stmt *cache_find(store *s, const char *sql)
{
	for (size_t i = 0; i < s->ncache; i++)
		if (s->cache[i].sql == sql)
			return s->cache[i].stmt;
	return NULL;
}

/* Compiles one statement; a text holding a second statement is refused,
 * since only the first would ever run. */
static sqlite3_stmt *prepare(store *s, const char *sql, struct err *e)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail) != SQLITE_OK) {
		dberr(s, e, "prepare");
		return NULL;
	}
	while (tail && (*tail == ' ' || *tail == '\t' || *tail == '\n' || *tail == ';'))
		tail++;
	if (!st || (tail && *tail)) {
		sqlite3_finalize(st);
		err_set(e, ERR_DB, "prepare: expected exactly one statement");
		return NULL;
	}
	return st;
}

sqlite3_stmt *store_stmt(store *s, const char *sql, struct err *e)
{
	sqlite3_stmt *st = cache_find(s, sql);
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	if (!(st = prepare(s, sql, e)))
		return NULL;
	if (s->ncache == s->capcache) {
		s->capcache = s->capcache ? 2 * s->capcache : 16;
		s->cache = xrealloc(s->cache, s->capcache * sizeof *s->cache);
	}
	s->cache[s->ncache++] = (struct cached){sql, st};
	return st;
}

/* Resets a cached statement after use so it holds no read lock. */
static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int store_exec(store *s, const char *sql, struct err *e)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	err_set(e, ERR_DB, "%s", msg ? msg : sqlite3_errmsg(s->db));
	sqlite3_free(msg);
	return ERR_DB;
}

int store_begin(store *s, struct err *e)
{
	if (store_exec(s, "BEGIN IMMEDIATE", e) < 0)
		return err_wrap(e, "begin");
	return 0;
}

/* A failed COMMIT (e.g. SQLITE_BUSY) leaves the transaction open; roll it
 * back so the caller's only duty on error is to report it. */
int store_commit(store *s, struct err *e)
{
	if (store_exec(s, "COMMIT", e) == 0)
		return 0;
	store_rollback(s);
	return err_wrap(e, "commit");
}

void store_rollback(store *s)
{
	struct err e;
	if (sqlite3_get_autocommit(s->db))
		return;
	if (store_exec(s, "ROLLBACK", &e) < 0)
		log_warn("store", "rollback: %s", e.msg);
}

int store_meta_get(store *s, const char *key, char **out, struct err *e)
{
	sqlite3_stmt *st = store_stmt(s, "SELECT value FROM meta WHERE key = ?1", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		*out = xstrdup(v ? v : "");
	} else if (rc == SQLITE_DONE) {
		err_set(e, ERR_NOT_FOUND, "meta key %s not found", key);
	} else {
		dberr(s, e, "meta get");
	}
	done(st);
	return rc == SQLITE_ROW ? 0 : e->code;
}

int store_meta_set(store *s, const char *key, const char *value, struct err *e)
{
	sqlite3_stmt *st = store_stmt(s,
				      "INSERT INTO meta (key, value) VALUES (?1, ?2) "
				      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
				      e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		dberr(s, e, "meta set");
	done(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}
