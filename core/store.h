/* store: cocod's one SQLite database (WAL mode, foreign keys on, busy
 * timeout, file mode 0600), schema versioned with PRAGMA user_version and
 * forward-only migrations, each applied in its own transaction.  On open it
 * runs `PRAGMA integrity_check` and refuses a damaged file.
 *
 * Later modules add tables by appending migrations to the table in store.c;
 * they reach SQLite through store_db() and cached prepared statements
 * (store_stmt), and group every state change in one transaction
 * (store_begin/store_commit/store_rollback).
 *
 * A store belongs to the thread that uses it (the loop thread); a second
 * process (the CLI) may open the same file. */
#ifndef COCOD_STORE_H
#define COCOD_STORE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct store store;

/* Opens (creating with mode 0600 if needed) and migrates `path`. */
int store_open(const char *path, store **out, struct err *e);
void store_close(store *s);

sqlite3 *store_db(store *s);
/* Schema version now in the file, and the newest this build knows. */
int store_schema_version(store *s);
int store_schema_latest(void);

/* A prepared statement for `sql`, cached by the pointer value of `sql` (pass
 * string literals), reset and with bindings cleared.  Owned by the store. */
sqlite3_stmt *store_stmt(store *s, const char *sql, struct err *e);

/* Transactions (BEGIN IMMEDIATE).  Not nestable. */
int store_begin(store *s, struct err *e);
int store_commit(store *s, struct err *e);
void store_rollback(store *s);

/* Small key/value table for daemon metadata (admin token hash, server URL,
 * resourceVersion counter...).  store_meta_get: ERR_NOT_FOUND when absent;
 * *out is a malloc'd NUL-terminated copy. */
int store_meta_get(store *s, const char *key, char **out, struct err *e);
int store_meta_set(store *s, const char *key, const char *value, struct err *e);

/* Runs one SQL text (for tests and migrations); ERR_DB with SQLite's message
 * on failure. */
int store_exec(store *s, const char *sql, struct err *e);

/* For tests: migrate with a custom migration list (NULL-terminated array of
 * SQL scripts, index i takes the schema from version i to i+1). */
int store_open_with(const char *path, const char *const *migrations, store **out,
		    struct err *e);

#endif
