/* objects: persistence of Kubernetes-style objects (pods, events) in the
 * store, with one cluster-wide resourceVersion and a change log that
 * watches replay from.
 *
 * Every change is one transaction that writes the object row and a change
 * row carrying the new resourceVersion; the highest change row is the
 * current resourceVersion, so it survives restarts and never goes back.
 * The change log keeps the newest OBJECTS_CHANGES_KEPT entries; a watch
 * that asks to resume from before them gets ERR_GONE (HTTP 410).
 * Watchers are told of each change synchronously after its commit.
 * Loop thread only. */
#ifndef COCOD_OBJECTS_H
#define COCOD_OBJECTS_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

#define OBJECTS_CHANGES_KEPT 10000

typedef struct objects objects;
typedef struct objects_watcher objects_watcher;

int objects_new(store *s, objects **out, struct err *e);
/* Ends every watch (their callbacks get type "CLOSED") and frees. */
void objects_free(objects *o);

uint64_t objects_rv(const objects *o);

/* Groups the writes until the matching objects_batch_end into one
 * transaction (nestable).  Watchers hear of the changes only after the
 * commit, each as the object was when written; if it fails, none
 * happened. */
int objects_batch_begin(objects *o, struct err *e);
int objects_batch_end(objects *o, struct err *e);

/* Stores a new object of `kind`; metadata.{namespace,name,uid} must be set.
 * Sets metadata.resourceVersion in `obj`.  ERR_EXISTS when the name is taken. */
int objects_create(objects *o, const char *kind, json_t *obj, struct err *e);

/* Replaces the stored object with the same kind/namespace/name.  When
 * `expect_rv` is not 0 and the stored resourceVersion differs: ERR_CONFLICT.
 * The uid must match.  Sets metadata.resourceVersion in `obj` (left as it
 * was when the write fails). */
int objects_update(objects *o, const char *kind, json_t *obj, uint64_t expect_rv, struct err *e);

/* objects_create and objects_update that also hand out, on success, the
 * JSON text stored for `obj` (malloc'd; the caller frees it): a handler can
 * answer with those bytes instead of serialising the object again. */
int objects_create_text(objects *o, const char *kind, json_t *obj, char **text, struct err *e);
int objects_update_text(objects *o, const char *kind, json_t *obj, uint64_t expect_rv, char **text,
			struct err *e);

/* Removes an object; `last` (may be NULL) is the final state sent to
 * watchers with the DELETED event (defaults to the stored one). */
int objects_delete(objects *o, const char *kind, const char *ns, const char *name,
		   const json_t *last, struct err *e);

/* The stored object (new reference); ERR_NOT_FOUND when absent. */
int objects_get(objects *o, const char *kind, const char *ns, const char *name, json_t **out,
		struct err *e);
/* The stored object with this uid (new reference); ERR_NOT_FOUND. */
int objects_get_by_uid(objects *o, const char *kind, const char *uid, json_t **out, struct err *e);
/* The stored JSON text (malloc'd), for answering GET without a parse.
 * The texts of the last few dozen objects read are kept and
 * served again until the next write to the object. */
int objects_get_text(objects *o, const char *kind, const char *ns, const char *name, char **out,
		     size_t *len, struct err *e);

/* Calls fn for each object of `kind` in namespace `ns` (NULL: all) in
 * namespace/name order; fn returns non-zero to stop.  *rv receives the
 * resourceVersion the listing reflects. */
int objects_list(objects *o, const char *kind, const char *ns,
		 int (*fn)(json_t *obj, void *ud), void *ud, uint64_t *rv, struct err *e);

/* Number of objects of a kind. */
int objects_count(objects *o, const char *kind, int64_t *out, struct err *e);

/* Watch callback: type is "ADDED", "MODIFIED", "DELETED" or "CLOSED" (obj
 * NULL; the watch is gone after the call). */
typedef void (*objects_watch_fn)(const char *type, const json_t *obj, uint64_t rv, void *ud);

/* Starts a watch on `kind` (namespace `ns` or all) that first replays the
 * logged changes after `since_rv`, then follows live changes.  ERR_GONE
 * when since_rv is older than the kept log. */
int objects_watch(objects *o, const char *kind, const char *ns, uint64_t since_rv,
		  objects_watch_fn fn, void *ud, objects_watcher **out, struct err *e);
/* Stops a watch (no CLOSED callback). Safe inside a callback. */
void objects_unwatch(objects_watcher *w);

/* Deletes objects of `kind` beyond the `keep` most recently written and
 * those created more than `max_age_s` ago; no watch events.  Returns the
 * number removed. */
int objects_prune(objects *o, const char *kind, int64_t keep, int64_t max_age_s, struct err *e);

#endif
