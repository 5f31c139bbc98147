/* objects: rows in `objects` (kind, namespace, name, uid, rv, created,
 * object JSON text) and `changes` (rv, kind, type, namespace, name, object
 * text).  See objects.h for the contract. */
#include "objects.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "log.h"
#include "util.h"

struct objects_watcher {
	objects *o;
	char *kind, *ns;
	objects_watch_fn fn;
	void *ud;
	int dead;
	objects_watcher *prev, *next;
};

/* A change made inside a batch, told to watchers after the commit.  It
 * keeps the stored text, not a copy of the object: the text is parsed back
 * only when a watcher of the kind is there to hear of it. */
struct pending {
	char *kind;
	const char *type; /* static string */
	char *text;
	uint64_t rv;
	struct pending *next;
};

/* A recently read object's stored text, so that a repeated GET skips the
 * database.  Keyed by kind, namespace and name ('\0'-separated).  Filled
 * only by reads outside a batch (committed state), emptied by every write
 * to the object when it is made, so that neither a batch's own reads nor a
 * rolled-back batch can see a stale text. */
#define TEXT_CACHE 64

struct cached_text {
	char *key;
	size_t klen;
	char *text;
	size_t len;
};

struct objects {
	store *store;
	struct cached_text cache[TEXT_CACHE];
	uint64_t rv;
	int batch;           /* nesting depth of objects_batch_begin */
	uint64_t batch_rv0;  /* rv before the batch, restored on failure */
	struct pending *queue, **tail;
	objects_watcher *watches;
	int notifying; /* >0 while callbacks run: unwatch only marks */
	unsigned writes; /* since the last change-log trim */
};

/* Kubernetes names resources in messages by their plural: pods "x". */
static const char *resource_of(const char *kind)
{
	return strcmp(kind, "Pod") == 0 ? "pods" : strcmp(kind, "Event") == 0 ? "events" : kind;
}

static int db_fail(struct err *e, objects *o, const char *what)
{
	return err_set(e, ERR_DB, "%s: %s", what, sqlite3_errmsg(store_db(o->store)));
}

static void watcher_free(objects_watcher *w)
{
	free(w->kind);
	free(w->ns);
	free(w);
}

/* Takes a linked watcher out of the list and frees it. */
static void unlink_free(objects *o, objects_watcher *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		o->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	watcher_free(w);
}

/* The cache key of an object (malloc'd) and its slot. */
static char *cache_key(const char *kind, const char *ns, const char *name, size_t *klen)
{
	size_t a = strlen(kind), b = strlen(ns), c = strlen(name);
	char *k = xmalloc(a + b + c + 3);
	memcpy(k, kind, a + 1);
	memcpy(k + a + 1, ns, b + 1);
	memcpy(k + a + b + 2, name, c + 1);
	*klen = a + b + c + 3;
	return k;
}

static struct cached_text *cache_slot(objects *o, const char *key, size_t klen)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return &o->cache[h % TEXT_CACHE];
}

static void cache_clear_slot(struct cached_text *c)
{
	free(c->key);
	free(c->text);
	*c = (struct cached_text){0};
}

/* Forgets the object's text (a write to it is being made). */
static void cache_drop(objects *o, const char *kind, const char *ns, const char *name)
{
	size_t klen;
	char *key = cache_key(kind, ns, name, &klen);
	struct cached_text *c = cache_slot(o, key, klen);
	if (c->key && c->klen == klen && memcmp(c->key, key, klen) == 0)
		cache_clear_slot(c);
	free(key);
}

static void cache_drop_kind(objects *o, const char *kind)
{
	size_t n = strlen(kind) + 1;
	for (size_t i = 0; i < TEXT_CACHE; i++)
		if (o->cache[i].key && o->cache[i].klen > n && memcmp(o->cache[i].key, kind, n) == 0)
			cache_clear_slot(&o->cache[i]);
}

static void pending_free(struct pending *p)
{
	free(p->kind);
	free(p->text);
	free(p);
}

int objects_new(store *s, objects **out, struct err *e)
{
	objects *o = xcalloc(1, sizeof *o);
	o->store = s;
	sqlite3_stmt *st = store_stmt(s, "SELECT COALESCE(MAX(rv), 0) FROM changes", e);
	if (!st || sqlite3_step(st) != SQLITE_ROW) {
		int rc = st ? db_fail(e, o, "read resourceVersion") : e->code;
		free(o);
		return rc;
	}
	o->rv = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	*out = o;
	return 0;
}

void objects_free(objects *o)
{
	if (!o)
		return;
	if (o->batch) { /* an unfinished batch: its changes are dropped */
		o->batch = 1;
		store_rollback(o->store);
		o->batch = 0;
		for (struct pending *p = o->queue, *next; p; p = next) {
			next = p->next;
			pending_free(p);
		}
	}
	for (objects_watcher *w = o->watches, *next; w; w = next) {
		next = w->next;
		if (!w->dead)
			w->fn("CLOSED", NULL, o->rv, w->ud);
		watcher_free(w);
	}
	for (size_t i = 0; i < TEXT_CACHE; i++)
		cache_clear_slot(&o->cache[i]);
	free(o);
}

uint64_t objects_rv(const objects *o) { return o->rv; }

static const char *meta_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
	return s ? s : "";
}

/* Sets metadata.resourceVersion; returns the value it replaces (a new
 * reference, or NULL) so that a failed write can put it back. */
static json_t *set_rv(json_t *obj, uint64_t rv)
{
	char buf[24];
	snprintf(buf, sizeof buf, "%" PRIu64, rv);
	json_t *meta = json_object_get(obj, "metadata");
	if (!json_is_object(meta))
		return NULL;
	json_t *old = json_incref(json_object_get(meta, "resourceVersion"));
	json_object_set_new(meta, "resourceVersion", json_string(buf));
	return old;
}

static void restore_rv(json_t *obj, json_t *old)
{
	json_t *meta = json_object_get(obj, "metadata");
	if (!json_is_object(meta))
		return;
	if (old)
		json_object_set_new(meta, "resourceVersion", old);
	else
		json_object_del(meta, "resourceVersion");
}

static json_t *parse_stored(const char *text, size_t len)
{
	json_error_t jerr;
	json_t *obj = json_loadb(text, len, 0, &jerr);
	if (!obj)
		log_error("objects", "stored object does not parse: %s", jerr.text);
	return obj;
}

/* Whether a live watcher follows `kind` (then a change is worth parsing). */
static int watched(const objects *o, const char *kind)
{
	for (const objects_watcher *w = o->watches; w; w = w->next)
		if (!w->dead && strcmp(w->kind, kind) == 0)
			return 1;
	return 0;
}

static void notify(objects *o, const char *kind, const char *type, const json_t *obj, uint64_t rv)
{
	const char *ns = meta_str(obj, "namespace");
	o->notifying++;
	for (objects_watcher *w = o->watches; w; w = w->next)
		if (!w->dead && strcmp(w->kind, kind) == 0 && (!w->ns || strcmp(w->ns, ns) == 0))
			w->fn(type, obj, rv, w->ud);
	if (--o->notifying == 0) {
		for (objects_watcher *w = o->watches, *next; w; w = next) {
			next = w->next;
			if (!w->dead)
				continue;
			unlink_free(o, w);
		}
	}
}

/* Appends a change row; trims the log now and then. */
static int log_change(objects *o, uint64_t rv, const char *kind, const char *type,
		      const char *ns, const char *name, const char *text, struct err *e)
{
	sqlite3_stmt *st = store_stmt(o->store,
		"INSERT INTO changes(rv, kind, type, namespace, name, object) VALUES(?,?,?,?,?,?)", e);
	if (!st)
		return e->code;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)rv);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, text, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_fail(e, o, "log change");
	if (++o->writes % 256 == 0) {
		st = store_stmt(o->store, "DELETE FROM changes WHERE rv <= ?", e);
		if (!st)
			return e->code;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)rv - OBJECTS_CHANGES_KEPT);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return db_fail(e, o, "trim change log");
	}
	return 0;
}

/* One write: the object statement (already bound by the caller except for
 * the text, rv positions given) plus the change row, in a transaction.  The
 * object is serialised once: that text is the row, the change row and, when
 * `text_out` is not NULL, the caller's copy (malloc'd, on success only).
 * On failure `obj` keeps the resourceVersion it had. */
static int write_change(objects *o, const char *kind, const char *type, json_t *obj,
			sqlite3_stmt *st, int text_col, int rv_col, char **text_out, struct err *e)
{
	uint64_t rv = o->rv + 1;
	cache_drop(o, kind, meta_str(obj, "namespace"), meta_str(obj, "name"));
	json_t *old_rv = set_rv(obj, rv);
	struct buf b;
	size_t len = 0;
	buf_init(&b);
	buf_reserve(&b, 2048); /* a pod's worth in one allocation */
	char *text = codec_json_compact(obj, 0, &b) == 0 ? buf_steal(&b, &len) : NULL;
	buf_fini(&b);
	if (text) /* trimmed: a batch may hold many of these until it ends */
		text = xrealloc(text, len + 1);
	int rc = 0;
	if (!text)
		rc = err_set(e, ERR_INTERNAL, "cannot encode %s", kind);
	else if (!o->batch && store_begin(o->store, e))
		rc = e->code;
	if (rc) {
		free(text);
		sqlite3_reset(st);
		restore_rv(obj, old_rv);
		return rc;
	}
	if (text_col)
		sqlite3_bind_text(st, text_col, text, -1, SQLITE_STATIC);
	if (rv_col)
		sqlite3_bind_int64(st, rv_col, (sqlite3_int64)rv);
	int step = sqlite3_step(st);
	int changed = sqlite3_changes(store_db(o->store));
	sqlite3_reset(st);
	if ((step & 0xff) == SQLITE_CONSTRAINT)
		rc = err_set(e, ERR_EXISTS, "%s \"%s\" already exists", resource_of(kind), meta_str(obj, "name"));
	else if (step != SQLITE_DONE)
		rc = db_fail(e, o, "write object");
	else if (changed == 0)
		rc = err_set(e, ERR_NOT_FOUND, "%s \"%s\" not found", resource_of(kind), meta_str(obj, "name"));
	if (rc == 0)
		rc = log_change(o, rv, kind, type, meta_str(obj, "namespace"), meta_str(obj, "name"),
				text, e);
	if (rc == 0 && !o->batch)
		rc = store_commit(o->store, e);
	if (rc) {
		free(text);
		if (!o->batch)
			store_rollback(o->store);
		restore_rv(obj, old_rv);
		return rc;
	}
	json_decref(old_rv);
	o->rv = rv;
	if (!o->batch) {
		notify(o, kind, type, obj, rv);
		if (text_out)
			*text_out = text;
		else
			free(text);
		return 0;
	}
	struct pending *p = xcalloc(1, sizeof *p);
	*p = (struct pending){.kind = xstrdup(kind), .type = type, .text = text, .rv = rv};
	*o->tail = p;
	o->tail = &p->next;
	if (text_out)
		*text_out = xstrdup(text);
	return 0;
}

int objects_batch_begin(objects *o, struct err *e)
{
	if (o->batch++ > 0)
		return 0;
	if (store_begin(o->store, e)) {
		o->batch = 0;
		return e->code;
	}
	o->batch_rv0 = o->rv;
	o->queue = NULL;
	o->tail = &o->queue;
	return 0;
}

int objects_batch_end(objects *o, struct err *e)
{
	if (o->batch == 0 || --o->batch > 0)
		return 0;
	int rc = store_commit(o->store, e);
	if (rc)
		o->rv = o->batch_rv0;
	for (struct pending *p = o->queue, *next; p; p = next) {
		next = p->next;
		if (rc == 0 && watched(o, p->kind)) {
			json_t *obj = parse_stored(p->text, strlen(p->text));
			if (obj)
				notify(o, p->kind, p->type, obj, p->rv);
			json_decref(obj);
		}
		pending_free(p);
	}
	o->queue = NULL;
	o->tail = &o->queue;
	return rc;
}

int objects_create_text(objects *o, const char *kind, json_t *obj, char **text, struct err *e)
{
	sqlite3_stmt *st = store_stmt(o->store,
		"INSERT INTO objects(kind, namespace, name, uid, created, object, rv) "
		"VALUES(?,?,?,?,?,?,?)", e);
	if (!st)
		return e->code;
	/* Borrowed: write_change changes only the resourceVersion of `obj`. */
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, meta_str(obj, "namespace"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, meta_str(obj, "name"), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, meta_str(obj, "uid"), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
	return write_change(o, kind, "ADDED", obj, st, 6, 7, text, e);
}

int objects_create(objects *o, const char *kind, json_t *obj, struct err *e)
{
	return objects_create_text(o, kind, obj, NULL, e);
}

static int stored_rv(objects *o, const char *kind, const char *ns, const char *name,
		     uint64_t *rv, char **uid, struct err *e)
{
	sqlite3_stmt *st = store_stmt(o->store,
		"SELECT rv, uid FROM objects WHERE kind=? AND namespace=? AND name=?", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ns, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
	int step = sqlite3_step(st);
	int rc = 0;
	if (step == SQLITE_ROW) {
		*rv = (uint64_t)sqlite3_column_int64(st, 0);
		*uid = xstrdup((const char *)sqlite3_column_text(st, 1));
	} else if (step == SQLITE_DONE) {
		rc = err_set(e, ERR_NOT_FOUND, "%s \"%s\" not found", resource_of(kind), name);
	} else {
		rc = db_fail(e, o, "read object");
	}
	sqlite3_reset(st);
	return rc;
}

/* Says why an UPDATE matched no row: the object is gone, was modified
 * since `expect_rv`, or is another object with the same name. */
static int update_missed(objects *o, const char *kind, const char *ns, const char *name,
			 const char *uid, uint64_t expect_rv, struct err *e)
{
	uint64_t cur = 0;
	cleanup_free char *stored_uid = NULL;
	if (stored_rv(o, kind, ns, name, &cur, &stored_uid, e))
		return e->code;
	if (expect_rv && expect_rv != cur)
		return err_set(e, ERR_CONFLICT,
			       "Operation cannot be fulfilled on %s \"%s\": the object has been modified; "
			       "please apply your changes to the latest version and try again", kind, name);
	if (strcmp(stored_uid, uid) != 0)
		return err_set(e, ERR_CONFLICT, "%s \"%s\": uid does not match the stored object", kind, name);
	return err_set(e, ERR_NOT_FOUND, "%s \"%s\" not found", resource_of(kind), name);
}

int objects_update_text(objects *o, const char *kind, json_t *obj, uint64_t expect_rv, char **text,
			struct err *e)
{
	const char *ns = meta_str(obj, "namespace"), *name = meta_str(obj, "name");
	const char *uid = meta_str(obj, "uid");
	/* The uid and version checks ride on the UPDATE itself; only a miss
	 * reads the row to say which check failed. */
	sqlite3_stmt *st = store_stmt(o->store,
		"UPDATE objects SET object=?1, rv=?2 WHERE kind=?3 AND namespace=?4 AND name=?5 "
		"AND uid=?6 AND (?7 = 0 OR rv = ?7)", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, uid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)expect_rv);
	int rc = write_change(o, kind, "MODIFIED", obj, st, 1, 2, text, e);
	if (rc == ERR_NOT_FOUND)
		rc = update_missed(o, kind, ns, name, uid, expect_rv, e);
	return rc;
}

int objects_update(objects *o, const char *kind, json_t *obj, uint64_t expect_rv, struct err *e)
{
	return objects_update_text(o, kind, obj, expect_rv, NULL, e);
}

int objects_delete(objects *o, const char *kind, const char *ns, const char *name,
		   const json_t *last, struct err *e)
{
	json_t *obj = NULL;
	if (last)
		obj = json_deep_copy(last);
	else if (objects_get(o, kind, ns, name, &obj, e))
		return e->code;
	cache_drop(o, kind, ns, name); /* `last` may name it otherwise */
	sqlite3_stmt *st = store_stmt(o->store,
		"DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", e);
	if (!st) {
		json_decref(obj);
		return e->code;
	}
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	int rc = write_change(o, kind, "DELETED", obj, st, 0, 0, NULL, e);
	json_decref(obj);
	return rc;
}

static int read_text(objects *o, sqlite3_stmt *st, char **out, size_t *len, const char *kind,
		     const char *name, struct err *e)
{
	int step = sqlite3_step(st);
	int rc = 0;
	if (step == SQLITE_ROW) {
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		*out = xstrndup((const char *)sqlite3_column_text(st, 0), n);
		if (len)
			*len = n;
	} else if (step == SQLITE_DONE) {
		rc = err_set(e, ERR_NOT_FOUND, "%s \"%s\" not found", resource_of(kind), name);
	} else {
		rc = db_fail(e, o, "read object");
	}
	sqlite3_reset(st);
	return rc;
}

int objects_get_text(objects *o, const char *kind, const char *ns, const char *name, char **out,
		     size_t *len, struct err *e)
{
	size_t klen, n;
	char *key = cache_key(kind, ns, name, &klen);
	struct cached_text *c = cache_slot(o, key, klen);
	if (c->key && c->klen == klen && memcmp(c->key, key, klen) == 0) {
		free(key);
		*out = xstrndup(c->text, c->len);
		if (len)
			*len = c->len;
		return 0;
	}
	sqlite3_stmt *st = store_stmt(o->store,
		"SELECT object FROM objects WHERE kind=? AND namespace=? AND name=?", e);
	if (!st) {
		free(key);
		return e->code;
	}
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ns, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	int rc = read_text(o, st, out, &n, kind, name, e);
	if (rc == 0 && o->batch == 0) { /* committed: worth keeping */
		cache_clear_slot(c);
		*c = (struct cached_text){key, klen, xstrndup(*out, n), n};
		key = NULL;
	}
	free(key);
	if (rc == 0 && len)
		*len = n;
	return rc;
}

int objects_get(objects *o, const char *kind, const char *ns, const char *name, json_t **out,
		struct err *e)
{
	char *text;
	size_t len;
	if (objects_get_text(o, kind, ns, name, &text, &len, e))
		return e->code;
	*out = parse_stored(text, len);
	free(text);
	return *out ? 0 : err_set(e, ERR_DB, "%s \"%s\": stored object is damaged", kind, name);
}

int objects_get_by_uid(objects *o, const char *kind, const char *uid, json_t **out, struct err *e)
{
	sqlite3_stmt *st = store_stmt(o->store, "SELECT object FROM objects WHERE uid=? AND kind=?", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, uid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
	char *text;
	size_t len;
	if (read_text(o, st, &text, &len, kind, uid, e))
		return e->code;
	*out = parse_stored(text, len);
	free(text);
	return *out ? 0 : err_set(e, ERR_DB, "%s %s: stored object is damaged", kind, uid);
}

int objects_list(objects *o, const char *kind, const char *ns,
		 int (*fn)(json_t *obj, void *ud), void *ud, uint64_t *rv, struct err *e)
{
	/* Not a cached statement: a callback may read the store meanwhile. */
	sqlite3_stmt *st;
	const char *sql = ns ? "SELECT object FROM objects WHERE kind=? AND namespace=? ORDER BY namespace, name"
			     : "SELECT object FROM objects WHERE kind=? ORDER BY namespace, name";
	if (sqlite3_prepare_v2(store_db(o->store), sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(e, o, "list objects");
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	if (ns)
		sqlite3_bind_text(st, 2, ns, -1, SQLITE_TRANSIENT);
	if (rv)
		*rv = o->rv;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *obj = parse_stored((const char *)sqlite3_column_text(st, 0),
					   (size_t)sqlite3_column_bytes(st, 0));
		if (!obj)
			continue;
		int stop = fn(obj, ud);
		json_decref(obj);
		if (stop)
			break;
	}
	int rc = (step == SQLITE_ROW || step == SQLITE_DONE) ? 0 : db_fail(e, o, "list objects");
	sqlite3_finalize(st);
	return rc;
}

int objects_count(objects *o, const char *kind, int64_t *out, struct err *e)
{
	sqlite3_stmt *st = store_stmt(o->store, "SELECT COUNT(*) FROM objects WHERE kind=?", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : db_fail(e, o, "count objects");
	if (rc == 0)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

/* Replays logged changes after `since` to one watch. */
static int replay(objects *o, objects_watcher *w, uint64_t since, struct err *e)
{
	sqlite3_stmt *st;
	const char *sql = "SELECT rv, type, object FROM changes WHERE rv > ? AND kind = ? ORDER BY rv";
	if (sqlite3_prepare_v2(store_db(o->store), sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(e, o, "replay changes");
	sqlite3_stmt *mn;
	if (sqlite3_prepare_v2(store_db(o->store), "SELECT MIN(rv) FROM changes", -1, &mn, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return db_fail(e, o, "replay changes");
	}
	uint64_t oldest = sqlite3_step(mn) == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(mn, 0) : 0;
	sqlite3_finalize(mn);
	if (since < o->rv && oldest > 0 && since + 1 < oldest) {
		sqlite3_finalize(st);
		return err_set(e, ERR_GONE, "too old resource version: %llu (%llu)",
			       (unsigned long long)since, (unsigned long long)(oldest - 1));
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
	sqlite3_bind_text(st, 2, w->kind, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW && !w->dead) {
		json_t *obj = parse_stored((const char *)sqlite3_column_text(st, 2),
					   (size_t)sqlite3_column_bytes(st, 2));
		if (!obj)
			continue;
		if (!w->ns || strcmp(w->ns, meta_str(obj, "namespace")) == 0)
			w->fn((const char *)sqlite3_column_text(st, 1), obj,
			      (uint64_t)sqlite3_column_int64(st, 0), w->ud);
		json_decref(obj);
	}
	sqlite3_finalize(st);
	return 0;
}

int objects_watch(objects *o, const char *kind, const char *ns, uint64_t since_rv,
		  objects_watch_fn fn, void *ud, objects_watcher **out, struct err *e)
{
	if (since_rv > o->rv)
		since_rv = o->rv; /* a future version: start from now */
	objects_watcher *w = xcalloc(1, sizeof *w);
	*w = (objects_watcher){.o = o, .kind = xstrdup(kind), .ns = ns ? xstrdup(ns) : NULL,
			     .fn = fn, .ud = ud};
	o->notifying++; /* an unwatch inside a replayed callback only marks */
	int rc = replay(o, w, since_rv, e);
	o->notifying--;
	if (rc || w->dead) {
		watcher_free(w);
		if (rc == 0)
			*out = NULL;
		return rc;
	}
	w->next = o->watches;
	if (o->watches)
		o->watches->prev = w;
	o->watches = w;
	*out = w;
	return 0;
}

void objects_unwatch(objects_watcher *w)
{
	if (!w)
		return;
	objects *o = w->o;
	w->dead = 1;
	if (o->notifying)
		return;
	int linked = o->watches == w || w->prev;
	if (!linked)
		return; /* still replaying: objects_watch frees it */
	unlink_free(o, w);
}

/* Runs one bound DELETE; returns rows removed or -1. */
static int prune_step(objects *o, const char *sql, const char *kind, int64_t arg, struct err *e)
{
	sqlite3_stmt *st = store_stmt(o->store, sql, e);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, arg);
	int step = sqlite3_step(st);
	int n = sqlite3_changes(store_db(o->store));
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		db_fail(e, o, "prune objects");
		return -1;
	}
	return n;
}

int objects_prune(objects *o, const char *kind, int64_t keep, int64_t max_age_s, struct err *e)
{
	cache_drop_kind(o, kind); /* rows go without a write_change */
	/* Both cut-offs come from indexes, (kind, rv) and (kind, created), so
	 * pruning never reads the objects themselves. */
	sqlite3_stmt *st = store_stmt(o->store,
		"SELECT rv FROM objects WHERE kind=?1 ORDER BY rv DESC LIMIT 1 OFFSET ?2", e);
	if (!st)
		return e->code;
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, keep);
	int step = sqlite3_step(st);
	int64_t cut_rv = step == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_reset(st);
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		return db_fail(e, o, "prune objects");
	int n = 0, m;
	if (cut_rv >= 0) {
		n = prune_step(o, "DELETE FROM objects WHERE kind=?1 AND rv <= ?2", kind, cut_rv, e);
		if (n < 0)
			return e->code;
	}
	m = prune_step(o, "DELETE FROM objects WHERE kind=?1 AND created < ?2", kind,
		       (int64_t)time(NULL) - max_age_s, e);
	return m < 0 ? e->code : n + m;
}
