/* sandbox: runs one policy hook (a Lua 5.4 function) against JSON inputs
 * under hard limits and turns what it returns into a decision.  One
 * compiled policy version owns one lua_State; every call runs in a fresh
 * global environment over a frozen snapshot of the policy's globals, so no
 * call sees another's writes.  Anything that goes wrong — a Lua error, a
 * limit, a malformed return value — is a denial with `failed` set and a
 * reason naming the line or the limit ("fail closed").  docs/policy.md
 * describes the contracts, helpers and limits for policy authors.
 *
 * Not thread-safe: a policy is used by one thread at a time. */
#ifndef COCOD_SANDBOX_H
#define COCOD_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

struct sandbox_limits {
	size_t mem_bytes;      /* whole Lua heap of the policy, code included */
	uint64_t instructions; /* VM instructions per call (checked every 100) */
	uint64_t time_ms;      /* wall clock per call */
	size_t max_string;     /* longest string accepted from an input or for a pattern */
	int max_depth;         /* deepest table/JSON nesting converted either way */
};

/* 8 MiB, 10^6 instructions, 50 ms, 64 KiB strings, depth 32. */
void sandbox_default_limits(struct sandbox_limits *l);

/* One compiled policy version (opaque). */
typedef struct sandbox_policy sandbox_policy;

/* Compiles `src` (Lua text; bytecode is refused), runs its main chunk under
 * `lim` (NULL: defaults) and checks that it defines the global function
 * `hook`.  `chunkname` appears in every message ("admission.lua:12: ...").
 * The source is copied.  On failure returns ERR_INVALID (or ERR_INTERNAL)
 * with e->msg "chunk:line: message". */
int sandbox_compile(const char *chunkname, const char *src, size_t len, const char *hook,
		    const struct sandbox_limits *lim, sandbox_policy **out, struct err *e);

/* Frees the policy and its Lua state; NULL is a no-op. */
void sandbox_free(sandbox_policy *p);

struct sandbox_decision {
	int allow;           /* the returned `allow`; 0 whenever failed */
	int failed;          /* 1: no valid decision (error, limit, bad input or return) */
	char reason[512];    /* the returned `reason`, or what failed and where */
	json_t *result;      /* owned: the other fields of the returned table (an
			      * object, e.g. {"pod": {...}}); NULL when failed */
	json_t *logs;        /* owned: [{"level":..,"msg":..}] from cocod.log, at most 32 */
	uint64_t instructions; /* VM instructions used, rounded up to a multiple of 100 */
	uint64_t duration_ns;  /* wall clock of the call, conversions included */
};

/* Calls the hook with `args` (borrowed JSON values, converted to Lua tables)
 * and fills `out` (which the caller later passes to sandbox_decision_fini).
 * Returns 0 when the hook produced a decision (allow or deny), ERR_FORBIDDEN
 * when it failed; either way `out` is filled and a failure denies.  After a
 * call killed by a limit the state is rebuilt from the source, so the next
 * call starts clean. */
int sandbox_call(sandbox_policy *p, json_t *const *args, int nargs, struct sandbox_decision *out);

void sandbox_decision_fini(struct sandbox_decision *d);

/* Runs the policy's optional global `tests` table: a list of cases
 * {name=, input={arg1, ...}, expect={allow=..., reason=..., ...}} each run
 * through sandbox_call.  `*report` (owned) receives
 * {"passed":n, "failed":n, "cases":[{"name","ok","got","expected","reason"}]}.
 * Returns 0 when every case passed (also when there are none), ERR_INVALID
 * when one failed or the table is malformed (then e->msg says which). */
int sandbox_run_tests(sandbox_policy *p, json_t **report, struct err *e);

/* The hook name and chunk name the policy was compiled with (borrowed). */
const char *sandbox_hook(const sandbox_policy *p);
const char *sandbox_chunkname(const sandbox_policy *p);

/* The default policies, compiled into the binary from lua/policies/NAME.lua by
 * the Makefile (build/gen/policies.c).  The list ends with a NULL hook. */
struct sandbox_builtin {
	const char *hook; /* "admit", "appraise", "release", "agent" */
	const char *name; /* file name without .lua: "admission" */
	const char *text; /* Lua source, NUL-terminated */
	size_t len;
};
extern const struct sandbox_builtin sandbox_builtins[];

/* The built-in policy for `hook`, or NULL. */
const struct sandbox_builtin *sandbox_builtin_find(const char *hook);

#endif
