/* policy: cocod's policy engine — one active, compiled version of each
 * hook's Lua policy, kept in the store with every earlier version, and a
 * decision log.  Hooks (DESIGN.md "Policy hooks"):
 *
 *   name         Lua function                      used by
 *   admission    admit(pod, request)               pod admission
 *   attestation  appraise(claims, reference_values) the KBS appraisal
 *   resource     release(resource_path, token_claims) KBS resource release
 *   agent        agent(request, pod)               the guest agent
 *
 * A new version is compiled, must define its function and pass the `tests`
 * table it carries before it is stored and activated (atomically, without
 * a restart).  A hook with no stored version starts from the default
 * policy built into the binary (stored as version 1).  Every evaluation is
 * recorded (time, hook, version, subject, input digest, verdict, reason,
 * duration) and counted in /metrics; a policy that fails denies.
 * Loop thread only. */
#ifndef COCOD_POLICY_H
#define COCOD_POLICY_H

#include <jansson.h>

#include "err.h"
#include "metrics.h"
#include "sandbox.h"
#include "store.h"

enum policy_hook { POLICY_ADMISSION, POLICY_ATTESTATION, POLICY_RESOURCE, POLICY_AGENT, POLICY__N };

/* "admission" ... and the Lua function it calls ("admit" ...). */
const char *policy_hook_name(enum policy_hook h);
const char *policy_hook_function(enum policy_hook h);
/* Accepts the hook name or its function name; -1 when unknown. */
int policy_hook_parse(const char *name);

typedef struct policy policy;

/* Loads (or seeds) the active version of every hook.  `m` may be NULL. */
int policy_new(store *s, metrics *m, const struct sandbox_limits *lim, policy **out,
	       struct err *e);
void policy_free(policy *p);

struct policy_verdict {
	int allow;
	int failed;  /* the policy errored or hit a limit (then allow = 0) */
	int version; /* the policy version that decided */
	char reason[512];
	json_t *result; /* the returned table as JSON (NULL if failed) */
};
void policy_verdict_fini(struct policy_verdict *v);

/* Evaluates `hook` on `args` and records the decision about `subject`
 * ("default/web", a resource path...).  Never fails: errors deny. */
void policy_eval(policy *p, enum policy_hook hook, const char *subject, json_t *const *args,
		 int nargs, struct policy_verdict *out);

/* Validates `src` (compile, function defined, its tests pass) and makes it
 * the active version.  On ERR_INVALID, *report (if given) holds the test
 * report or the compile error; on success the new version number. */
int policy_set(policy *p, enum policy_hook hook, const char *src, size_t len, const char *origin,
	       int *version, json_t **report, struct err *e);
/* Re-activates an earlier stored version. */
int policy_rollback(policy *p, enum policy_hook hook, int version, struct err *e);
/* The source of `version` (0: the active one) and the active version. */
int policy_source(policy *p, enum policy_hook hook, int version, char **src, int *active,
		  struct err *e);
/* [{version, sha256, created, origin, active}] newest first. */
int policy_versions(policy *p, enum policy_hook hook, json_t **out, struct err *e);
/* Newest decisions first, filtered by hook and subject (NULL: any). */
int policy_decisions(policy *p, const char *hook, const char *subject, int limit, json_t **out,
		     struct err *e);

/* Compiles `src` for `hook` and runs its tests without storing anything
 * (cocod policy test, and validation before activation). */
int policy_test_source(enum policy_hook hook, const char *src, size_t len,
		       const struct sandbox_limits *lim, json_t **report, struct err *e);

#endif
