/* kbsdb: see kbsdb.h.  Plain SQL through the store's cached statements;
 * each write is a single statement, hence atomic on its own. */
#include "kbsdb.h"

#include <string.h>

#include "util.h"

#define AAD_PREFIX "kbs-resource:"

static int step_done(store *st, sqlite3_stmt *q, const char *what, struct err *e)
{
	int rc = sqlite3_step(q) == SQLITE_DONE ? 0
		 : err_set(e, ERR_DB, "%s: %s", what, sqlite3_errmsg(store_db(st)));
	sqlite3_reset(q);
	return rc;
}

int kbsdb_resource_put(store *st, const seal *s, const char *path, const void *data, size_t len,
		       struct err *e)
{
	cleanup_free char *aad = xasprintf(AAD_PREFIX "%s", path);
	uint8_t *blob;
	size_t n;
	if (seal_seal(s, aad, data, len, &blob, &n, e))
		return e->code;
	sqlite3_stmt *q = store_stmt(st,
		"INSERT INTO kbs_resources(path, sealed, size, updated) VALUES(?, ?, ?, "
		"strftime('%Y-%m-%dT%H:%M:%SZ','now')) ON CONFLICT(path) DO UPDATE SET "
		"sealed = excluded.sealed, size = excluded.size, updated = excluded.updated", e);
	int rc = q ? 0 : e->code;
	if (q) {
		sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
		sqlite3_bind_blob(q, 2, blob, (int)n, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, (sqlite3_int64)len);
		rc = step_done(st, q, "storing resource", e);
	}
	free(blob);
	return rc;
}

int kbsdb_resource_get(store *st, const seal *s, const char *path, uint8_t **data, size_t *len,
		       struct err *e)
{
	sqlite3_stmt *q = store_stmt(st, "SELECT sealed FROM kbs_resources WHERE path = ?", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		cleanup_free char *aad = xasprintf(AAD_PREFIX "%s", path);
		rc = seal_open_blob(s, aad, sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0),
				    data, len, e);
	} else {
		rc = rc == SQLITE_DONE ? err_set(e, ERR_NOT_FOUND, "no resource %s", path)
				       : err_set(e, ERR_DB, "reading resource: %s", sqlite3_errmsg(store_db(st)));
	}
	sqlite3_reset(q);
	return rc;
}

int kbsdb_resource_delete(store *st, const char *path, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st, "DELETE FROM kbs_resources WHERE path = ?", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	if (step_done(st, q, "deleting resource", e))
		return e->code;
	return sqlite3_changes(store_db(st)) ? 0 : err_set(e, ERR_NOT_FOUND, "no resource %s", path);
}

int kbsdb_resource_list(store *st, json_t **out, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st, "SELECT path FROM kbs_resources ORDER BY path", e);
	if (!q)
		return e->code;
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		json_array_append_new(a, json_string((const char *)sqlite3_column_text(q, 0)));
	sqlite3_reset(q);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return err_set(e, ERR_DB, "listing resources: %s", sqlite3_errmsg(store_db(st)));
	}
	*out = a;
	return 0;
}

int kbsdb_refval_add(store *st, const char *name, const char *value, time_t expires, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st,
		"INSERT INTO kbs_reference_values(name, value, expires) VALUES(?, ?, ?) "
		"ON CONFLICT(name, value) DO UPDATE SET expires = excluded.expires", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)expires);
	return step_done(st, q, "storing reference value", e);
}

static json_t *rfc3339(time_t t)
{
	char s[32];
	struct tm tm;
	if (!t)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

int kbsdb_refval_get(store *st, const char *name, time_t now, json_t **out, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st,
		"SELECT value, expires FROM kbs_reference_values WHERE name = ? "
		"AND (expires = 0 OR expires > ?) ORDER BY value", e);
	if (!q)
		return e->code;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)now);
	json_t *a = json_array();
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:s}", "version", "0.1.0", "name", name,
						   "expiration", rfc3339((time_t)sqlite3_column_int64(q, 1)),
						   "value", (const char *)sqlite3_column_text(q, 0)));
	sqlite3_reset(q);
	*out = a;
	return 0;
}

int kbsdb_refval_all(store *st, time_t now, json_t **out, struct err *e)
{
	sqlite3_stmt *q = store_stmt(st,
		"SELECT name, value FROM kbs_reference_values WHERE expires = 0 OR expires > ? "
		"ORDER BY name, value", e);
	if (!q)
		return e->code;
	sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
	json_t *o = json_object();
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		json_t *list = json_object_get(o, name);
		if (!list) {
			list = json_array();
			json_object_set_new(o, name, list);
		}
		json_array_append_new(list, json_string((const char *)sqlite3_column_text(q, 1)));
	}
	sqlite3_reset(q);
	*out = o;
	return 0;
}
