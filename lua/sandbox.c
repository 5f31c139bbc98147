/* sandbox: the Lua policy host.  A compiled policy owns one lua_State whose
 * heap is capped by a byte-budget allocator.  Only base, table, string, math
 * and utf8 are opened, minus everything that reaches outside (load,
 * dofile, print, collectgarbage, string.dump, math.random).  After the main
 * chunk has run, every table reachable from the globals is frozen behind a
 * read-only proxy and every upvalue is recorded; each call then runs with a
 * fresh _ENV over those globals and the upvalues are put back afterwards, so
 * a call cannot leave state for the next.  A count hook enforces the
 * instruction and wall-clock budgets and, once one is exceeded, fires on
 * every instruction so that pcall cannot swallow the kill.  Lua patterns
 * run in C where the hook cannot fire, so the pattern functions refuse
 * subject/pattern pairs whose worst-case matching cost is over a budget.
 *
 * Sections: limits and accounting; frozen globals; base-library guards;
 * pattern guards; JSON <-> Lua; cocod.* helpers; building a state; calls;
 * tests tables; built-ins. */
#include "sandbox.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <openssl/evp.h>

#include "log.h"
#include "quantity.h"
#include "util.h"

#define HOOK_STEP      100 /* instructions between two budget checks */
#define CLOCK_EVERY    8   /* read the clock every 8th check */
#define MAX_LOGS       32   /* cocod.log lines kept per call */
#define LOG_MSG_MAX    512
#define DEPTH_CAP      200 /* max_depth is clamped to this (C recursion) */
#define PATTERN_BUDGET 4194304.0 /* worst-case matcher steps per pattern call */

/* Registry keys: the addresses are the keys. */
static const char K_ARRAY_MT; /* metatable marking JSON arrays */
static const char K_PROXY;    /* in a proxy's metatable: the original table */
static const char K_FROZEN;   /* original -> proxy (and proxy -> proxy) */
static const char K_BOX_MT;   /* metatable of C cleanup boxes */
static char K_NULL;           /* lightuserdata: cocod.null */

struct sandbox_policy {
	lua_State *L;
	char *chunkname, *hook, *src;
	size_t len;
	struct sandbox_limits lim;
	int step; /* count-hook interval */

	/* accounting, reset per call */
	size_t mem_used;
	int mem_hit; /* an allocation was refused */
	uint64_t count, deadline_ns, ticks;
	char kill[256]; /* "chunk:line: <limit> exceeded" once killed, else "" */
	int dirty;      /* rebuild the state before the next call */

	/* registry references into L */
	int ref_chunk, ref_hook, ref_envmt, ref_restore;
	int *restore_idx; /* upvalue index of each recorded (function, value) */
	int n_restore, cap_restore;

	json_t *logs; /* the current call's cocod.log lines */
	int nlogs, dropped;
};

static sandbox_policy *policy_of(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	return ud;
}

void sandbox_default_limits(struct sandbox_limits *l)
{
	l->mem_bytes = 8u << 20;
	l->instructions = 1000000;
	l->time_ms = 50;
	l->max_string = 64u << 10;
	l->max_depth = 32;
}

/* ---- limits and accounting ------------------------------------------- */

/* The allocator: frees and shrinks always succeed; growth beyond the budget
 * is refused (Lua raises LUA_ERRMEM) and remembered, so that a pcall in the
 * policy cannot hide that the limit was reached. */
static void *budget_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	sandbox_policy *p = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		p->mem_used -= old;
		return NULL;
	}
	if (nsize > old && nsize - old > p->lim.mem_bytes - p->mem_used) {
		p->mem_hit = 1;
		return NULL;
	}
	void *q = realloc(ptr, nsize);
	if (!q) {
		p->mem_hit = 1;
		return NULL;
	}
	p->mem_used = p->mem_used - old + nsize;
	return q;
}

/* The count hook: checks the instruction, time and memory budgets every
 * `step` instructions.  Once one is exceeded it re-arms itself for every
 * instruction and raises the same error each time, so the policy cannot
 * catch its way out. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
	sandbox_policy *p = policy_of(L);
	if (!p->kill[0]) {
		char what[96];
		if (ar->event == LUA_HOOKCOUNT)
			p->count += (uint64_t)p->step;
		if (p->count > p->lim.instructions)
			snprintf(what, sizeof what, "instruction limit of %" PRIu64 " exceeded",
				 p->lim.instructions);
		else if (++p->ticks % CLOCK_EVERY == 0 && now_ns() > p->deadline_ns)
			snprintf(what, sizeof what, "time limit of %" PRIu64 " ms exceeded",
				 p->lim.time_ms);
		else if (p->mem_hit)
			snprintf(what, sizeof what, "memory limit of %zu bytes exceeded",
				 p->lim.mem_bytes);
		else
			return;
		lua_getinfo(L, "Sl", ar);
		snprintf(p->kill, sizeof p->kill, "%s:%d: %s", ar->short_src, ar->currentline,
			 what);
		lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
	}
	lua_pushstring(L, p->kill);
	lua_error(L);
}

static void arm(sandbox_policy *p)
{
	p->mem_hit = 0;
	p->kill[0] = '\0';
	p->count = 0;
	p->ticks = 0;
	p->deadline_ns = now_ns() + p->lim.time_ms * 1000000u;
	lua_sethook(p->L, budget_hook, LUA_MASKCOUNT, p->step);
}

/* ---- frozen globals ---------------------------------------------------- */

/* [-0, +(0|1)] When the value at `idx` is a frozen proxy, pushes the table
 * it stands for and returns 1; else pushes nothing and returns 0. */
static int unproxy(lua_State *L, int idx)
{
	if (!lua_getmetatable(L, idx))
		return 0;
	if (lua_rawgetp(L, -1, &K_PROXY) == LUA_TTABLE) {
		lua_remove(L, -2);
		return 1;
	}
	lua_pop(L, 2);
	return 0;
}

/* __newindex of a proxy [-3, +0]: always raises. */
static int proxy_newindex(lua_State *L)
{
	return luaL_error(L, "attempt to modify a read-only table (policy globals are "
			     "frozen; keep per-call data in locals)");
}

/* __len of a proxy [-1, +1]: the length of the original. */
static int proxy_len(lua_State *L)
{
	unproxy(L, 1);
	lua_len(L, -1);
	return 1;
}

static int sb_next(lua_State *L);

/* __pairs of a proxy [-1, +3]: next over the original. */
static int proxy_pairs(lua_State *L)
{
	lua_pushcfunction(L, sb_next);
	if (!unproxy(L, 1))
		lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

struct freeze {
	sandbox_policy *p;
	int vis;       /* absolute index of the K_FROZEN table */
	int restore;   /* absolute index of the restore list */
	const void *env_id; /* the shared _ENV upvalue, swapped per call */
};

static void freeze_top(struct freeze *f, int depth);

/* [-0, +0] Freezes, in place, every table or function value of the table
 * at `t`. */
static void freeze_fields(struct freeze *f, int t, int depth)
{
	lua_State *L = f->p->L;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		int ty = lua_type(L, -1);
		if (ty == LUA_TTABLE || ty == LUA_TFUNCTION) {
			lua_pushvalue(L, -1);
			freeze_top(f, depth + 1);
			if (!lua_rawequal(L, -1, -2)) {
				lua_pushvalue(L, -3);
				lua_insert(L, -2);
				lua_rawset(L, t);
			} else {
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
	}
}

/* [-1, +1] The table on top becomes its proxy: an empty table whose
 * metatable reads through to the original and refuses writes. */
static void freeze_table(struct freeze *f, int depth)
{
	lua_State *L = f->p->L;
	int t = lua_gettop(L);
	lua_createtable(L, 0, 0);
	lua_createtable(L, 0, 6);
	lua_pushvalue(L, t);
	lua_setfield(L, -2, "__index");
	lua_pushvalue(L, t);
	lua_rawsetp(L, -2, &K_PROXY);
	lua_pushcfunction(L, proxy_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushcfunction(L, proxy_len);
	lua_setfield(L, -2, "__len");
	lua_pushcfunction(L, proxy_pairs);
	lua_setfield(L, -2, "__pairs");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, t); /* vis[t] = proxy, vis[proxy] = proxy */
	lua_pushvalue(L, -2);
	lua_rawset(L, f->vis);
	lua_pushvalue(L, -1);
	lua_pushvalue(L, -1);
	lua_rawset(L, f->vis);
	freeze_fields(f, t, depth);
	if (lua_getmetatable(L, t)) { /* freeze what the metatable holds */
		freeze_top(f, depth + 1);
		lua_pop(L, 1);
	}
	lua_replace(L, t);
}

/* [-1, +1] Freezes the upvalues of the Lua function on top and records them
 * (except the shared _ENV) so that they are put back after every call. */
static void freeze_function(struct freeze *f, int depth)
{
	sandbox_policy *p = f->p;
	lua_State *L = p->L;
	int fn = lua_gettop(L);
	lua_pushvalue(L, fn);
	lua_pushvalue(L, fn);
	lua_rawset(L, f->vis);
	if (lua_iscfunction(L, fn))
		return;
	for (int i = 1; lua_getupvalue(L, fn, i); i++) {
		void *id = lua_upvalueid(L, fn, i);
		lua_pushlightuserdata(L, id);
		if (id == f->env_id || lua_rawget(L, f->vis) != LUA_TNIL) {
			lua_pop(L, 2);
			continue;
		}
		lua_pop(L, 1);
		lua_pushlightuserdata(L, id);
		lua_pushboolean(L, 1);
		lua_rawset(L, f->vis);
		freeze_top(f, depth + 1);
		lua_pushvalue(L, -1);
		lua_setupvalue(L, fn, i);
		if (p->n_restore == p->cap_restore) {
			p->cap_restore = p->cap_restore ? 2 * p->cap_restore : 16;
			p->restore_idx = xrealloc(p->restore_idx,
						  (size_t)p->cap_restore * sizeof *p->restore_idx);
		}
		p->restore_idx[p->n_restore++] = i;
		lua_pushvalue(L, fn);
		lua_rawseti(L, f->restore, 2 * p->n_restore - 1);
		lua_rawseti(L, f->restore, 2 * p->n_restore);
	}
}

/* [-1, +1] Replaces the value on top by its frozen form. */
static void freeze_top(struct freeze *f, int depth)
{
	lua_State *L = f->p->L;
	int ty = lua_type(L, -1);
	if (ty != LUA_TTABLE && ty != LUA_TFUNCTION)
		return;
	if (depth > DEPTH_CAP)
		luaL_error(L, "%s: policy globals nest deeper than %d levels", f->p->chunkname,
			   DEPTH_CAP);
	luaL_checkstack(L, 10, "freezing policy globals");
	lua_pushvalue(L, -1);
	if (lua_rawget(L, f->vis) != LUA_TNIL) {
		lua_replace(L, -2);
		return;
	}
	lua_pop(L, 1);
	if (ty == LUA_TTABLE)
		freeze_table(f, depth);
	else
		freeze_function(f, depth);
}

/* ---- base-library guards ------------------------------------------------ */

/* getmetatable(v) [-1, +1]: as Lua's, but a frozen metatable comes back as
 * its read-only proxy. */
static int sb_getmetatable(lua_State *L)
{
	luaL_checkany(L, 1);
	if (!lua_getmetatable(L, 1)) {
		lua_pushnil(L);
		return 1;
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return 1;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &K_FROZEN);
	lua_pushvalue(L, -2);
	if (lua_rawget(L, -2) == LUA_TNIL)
		lua_pop(L, 2);
	return 1;
}

/* setmetatable(t, mt) [-2, +1]: as Lua's, but refuses a metatable with
 * __gc (finalizers run with hooks off, outside every budget) and accepts a
 * frozen metatable by using the table behind the proxy. */
static int sb_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (t == LUA_TTABLE) {
		if (unproxy(L, 2))
			lua_replace(L, 2);
		if (lua_getfield(L, 2, "__gc") != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not allowed in "
					     "policies");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* rawget(t, k) [-2, +1]: reads through a frozen proxy. */
static int sb_rawget(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	if (unproxy(L, 1))
		lua_replace(L, 1);
	lua_settop(L, 2);
	lua_rawget(L, 1);
	return 1;
}

/* rawset(t, k, v) [-3, +1]: refuses frozen proxies. */
static int sb_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	if (unproxy(L, 1))
		return proxy_newindex(L);
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

/* rawlen(v) [-1, +1]: the length of the table behind a proxy. */
static int sb_rawlen(lua_State *L)
{
	int t = lua_type(L, 1);
	luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
	if (t == LUA_TTABLE && unproxy(L, 1))
		lua_replace(L, 1);
	lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
	return 1;
}

/* next(t, k) [-2, +(1|2)]: iterates the table behind a proxy. */
static int sb_next(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	if (unproxy(L, 1))
		lua_replace(L, 1);
	lua_settop(L, 2);
	if (lua_next(L, 1))
		return 2;
	lua_pushnil(L);
	return 1;
}

/* xpcall(f, msgh, ...) [-(n+2), +r]: runs f protected and calls msgh on the
 * error *after* unwinding.  Lua's own xpcall runs the handler inside the
 * failing frame, where a kill raised by the count hook would run it with
 * hooks disabled — an unkillable loop. */
static int sb_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	luaL_checkstack(L, n + 2, NULL);
	for (int i = 1; i <= n; i++)
		if (i != 2)
			lua_pushvalue(L, i);
	if (lua_pcall(L, n - 2, LUA_MULTRET, 0) == LUA_OK) {
		lua_pushboolean(L, 1);
		lua_insert(L, n + 1);
		return lua_gettop(L) - n;
	}
	lua_pushvalue(L, 2);
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	lua_pushboolean(L, 0);
	lua_insert(L, -2);
	return 2;
}

/* ---- pattern guards ------------------------------------------------------ */

enum { PAT_FIND, PAT_MATCH, PAT_GMATCH, PAT_GSUB };
static const char *const pat_names[] = {"find", "match", "gmatch", "gsub"};

/* Counts the items of a Lua pattern that make the matcher backtrack: a
 * single-character class followed by * + - ?, and %b.  Over-counting is
 * harmless (the estimate only gets more conservative). */
static unsigned count_repetitions(const char *p, size_t n)
{
	unsigned q = 0;
	size_t i = (n > 0 && p[0] == '^') ? 1 : 0;
	while (i < n) {
		char c = p[i];
		if (c == '%' && i + 1 < n && p[i + 1] == 'b') {
			q++;
			i += 4;
			continue;
		}
		if (c == '%' && i + 1 < n && p[i + 1] == 'f') {
			i += 2;
			c = i < n ? p[i] : 0;
		}
		if (c == '[') {
			i++;
			if (i < n && p[i] == '^')
				i++;
			do
				i += (i < n && p[i] == '%') ? 2 : 1;
			while (i < n && p[i] != ']');
			i++;
		} else if (c == '%') {
			i += 2;
		} else if (c == '(' || c == ')') {
			i++;
			continue;
		} else {
			i++;
		}
		if (i < n && strchr("*+-?", p[i])) {
			q++;
			i++;
		}
	}
	return q;
}

static int has_specials(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strchr("^$*+?.([%-", p[i]))
			return 1;
	return 0;
}

/* string.find / match / gmatch / gsub (s, pattern, ...) [-n, +r]: refuses
 * a pair whose worst case exceeds PATTERN_BUDGET matcher steps, then calls
 * Lua's function (upvalue 1).  The estimate for a pattern with q
 * repetition items over an n-byte subject is (n+1)^(q+u) + m*(n+1), where
 * u is 1 when the match may start anywhere and m is the pattern length; a
 * plain search (memchr + memcmp) counts n*m/16. */
static int sb_pattern(lua_State *L)
{
	size_t sl, pl;
	int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
	luaL_checklstring(L, 1, &sl);
	const char *pat = luaL_checklstring(L, 2, &pl);
	double n1 = (double)sl + 1, cost;
	int plain = kind == PAT_FIND && (lua_toboolean(L, 4) || !has_specials(pat, pl));
	unsigned q = 0;
	if (plain) {
		cost = (double)sl * (double)pl / 16; /* memchr + memcmp: vectorised */
	} else {
		int unanchored = kind == PAT_GMATCH || pl == 0 || pat[0] != '^';
		q = count_repetitions(pat, pl);
		cost = pow(n1, (double)(q + (unsigned)unanchored)) + (double)pl * n1;
	}
	if (cost > PATTERN_BUDGET) {
		char msg[200];
		snprintf(msg, sizeof msg,
			 "string.%s: pattern of %zu bytes with %u repetition item(s) over a %zu-byte "
			 "subject exceeds the matching budget (see docs/policy.md)",
			 pat_names[kind], pl, q, sl);
		return luaL_error(L, "%s", msg);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* ---- JSON <-> Lua -------------------------------------------------------- */

struct seg {
	const char *key; /* NULL: an array element */
	size_t klen, idx;
};

/* A conversion in either direction: the path walked so far (for messages)
 * and the tables on it (for cycles). */
struct conv {
	const struct sandbox_limits *lim;
	int depth;
	int lua_paths; /* 1: "pod.spec[1]" (Lua, 1-based); 0: "$.spec[0]" (JSON) */
	struct seg path[DEPTH_CAP + 2];
	const void *tables[DEPTH_CAP + 2];
	char msg[320];
};

static void conv_path(const struct conv *c, struct buf *b)
{
	if (!c->lua_paths)
		buf_adds(b, "$");
	for (int i = 0; i < c->depth; i++) {
		const struct seg *s = &c->path[i];
		if (s->key)
			buf_printf(b, "%s%.*s", (i || !c->lua_paths) ? "." : "",
				   (int)(s->klen > 64 ? 64 : s->klen), s->key);
		else
			buf_printf(b, "[%zu]", s->idx);
	}
}

/* Records "<what> at <path>" in c->msg. */
static void conv_fail(struct conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conv_fail(struct conv *c, const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_adds(&b, " at ");
	conv_path(c, &b);
	if (c->lua_paths && c->depth == 0)
		buf_adds(&b, "(top)");
	snprintf(c->msg, sizeof c->msg, "%s", b.data);
	buf_fini(&b);
}

/* [-0, +1, m/e] Pushes `v` as Lua: objects become tables, arrays become
 * sequences marked with the array metatable, null becomes cocod.null.
 * Raises (with c->msg set) on a string over max_string or nesting over
 * max_depth. */
static void push_json(lua_State *L, struct conv *c, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY: {
		int is_arr = json_is_array(v);
		if (c->depth >= c->lim->max_depth) {
			conv_fail(c, "nesting deeper than %d levels", c->lim->max_depth);
			luaL_error(L, "%s", c->msg);
		}
		luaL_checkstack(L, 4, NULL);
		if (is_arr) {
			size_t n = json_array_size(v);
			lua_createtable(L, n > INT_MAX ? INT_MAX : (int)n, 0);
			for (size_t i = 0; i < n; i++) {
				c->path[c->depth++] = (struct seg){NULL, 0, i};
				push_json(L, c, json_array_get(v, i));
				c->depth--;
				lua_rawseti(L, -2, (lua_Integer)i + 1);
			}
			lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAY_MT);
			lua_setmetatable(L, -2);
			return;
		}
		size_t n = json_object_size(v);
		lua_createtable(L, 0, n > INT_MAX ? INT_MAX : (int)n);
		for (void *it = json_object_iter(v); it;
		     it = json_object_iter_next(v, it)) {
			const char *k = json_object_iter_key(it);
			size_t kl = json_object_iter_key_len(it);
			c->path[c->depth++] = (struct seg){k, kl, 0};
			if (kl > c->lim->max_string) {
				conv_fail(c, "key of %zu bytes (limit %zu)", kl, c->lim->max_string);
				luaL_error(L, "%s", c->msg);
			}
			lua_pushlstring(L, k, kl);
			push_json(L, c, json_object_iter_value(it));
			c->depth--;
			lua_rawset(L, -3);
		}
		return;
	}
	case JSON_STRING: {
		size_t n = json_string_length(v);
		if (n > c->lim->max_string) {
			conv_fail(c, "string of %zu bytes (limit %zu)", n, c->lim->max_string);
			luaL_error(L, "%s", c->msg);
		}
		lua_pushlstring(L, json_string_value(v), n);
		return;
	}
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(v));
		return;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(v));
		return;
	case JSON_TRUE:
	case JSON_FALSE:
		lua_pushboolean(L, json_is_true(v));
		return;
	case JSON_NULL:
		lua_pushlightuserdata(L, &K_NULL);
		return;
	}
}

static json_t *to_json(lua_State *L, struct conv *c, int idx);

/* Classifies the keys of the table at `t`: 1 object (string keys or empty),
 * 2 array (keys 1..n), 0 neither (c->msg says why). */
static int table_shape(lua_State *L, struct conv *c, int t, int marked, size_t *n)
{
	size_t nstr = 0, nint = 0;
	lua_Integer max = 0;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TSTRING) {
			nstr++;
		} else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
			nint++;
			if (lua_tointeger(L, -1) > max)
				max = lua_tointeger(L, -1);
		} else {
			conv_fail(c, "table key of type %s (JSON keys are strings)",
				  luaL_typename(L, -1));
			lua_pop(L, 1);
			return 0;
		}
	}
	*n = nint;
	if (nstr && (nint || marked)) {
		conv_fail(c, "table mixing string keys with array elements");
		return 0;
	}
	if (nint && (lua_Integer)nint != max) {
		conv_fail(c, "array with holes (keys must be 1..n)");
		return 0;
	}
	return (nint || marked) ? 2 : 1;
}

/* Converts the table at `idx` (or the original behind a proxy). */
static json_t *table_to_json(lua_State *L, struct conv *c, int idx)
{
	if (c->depth >= c->lim->max_depth || !lua_checkstack(L, 8)) {
		conv_fail(c, "nesting deeper than %d levels", c->lim->max_depth);
		return NULL;
	}
	int pushed = unproxy(L, idx);
	int t = pushed ? lua_gettop(L) : idx;
	const void *self = lua_topointer(L, t);
	for (int i = 0; i < c->depth; i++)
		if (c->tables[i] == self) {
			conv_fail(c, "cycle (a table that contains itself)");
			lua_pop(L, pushed);
			return NULL;
		}
	c->tables[c->depth] = self;
	int marked = 0;
	if (lua_getmetatable(L, t)) {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAY_MT);
		marked = lua_rawequal(L, -1, -2);
		lua_pop(L, 2);
	}
	size_t n;
	int shape = table_shape(L, c, t, marked, &n);
	json_t *out = shape == 2 ? json_array() : json_object();
	if (shape == 2) {
		for (size_t i = 1; i <= n && out; i++) {
			c->path[c->depth++] = (struct seg){NULL, 0, i};
			lua_rawgeti(L, t, (lua_Integer)i);
			json_t *x = to_json(L, c, -1);
			lua_pop(L, 1);
			c->depth--;
			if (!x || json_array_append_new(out, x) < 0) {
				json_decref(out);
				out = NULL;
			}
		}
	} else if (shape == 1) {
		lua_pushnil(L);
		while (out && lua_next(L, t)) {
			size_t kl;
			const char *k = lua_tolstring(L, -2, &kl);
			c->path[c->depth++] = (struct seg){k, kl, 0};
			json_t *x = to_json(L, c, -1);
			if (x && json_object_setn_new(out, k, kl, x) < 0)
				conv_fail(c, "key that is not valid UTF-8");
			if (!x || c->msg[0]) {
				json_decref(out);
				out = NULL;
				lua_pop(L, 1);
			}
			c->depth--;
			lua_pop(L, 1);
		}
	} else {
		json_decref(out);
		out = NULL;
	}
	lua_pop(L, pushed);
	return out;
}

/* Converts the Lua value at `idx` to JSON without raising a Lua error (safe
 * outside protected mode: it pushes only existing values).  Returns NULL
 * with c->msg set for functions, userdata, threads, non-finite numbers,
 * invalid UTF-8, cycles, mixed tables or nesting over max_depth. */
static json_t *to_json(lua_State *L, struct conv *c, int idx)
{
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return json_null();
	case LUA_TBOOLEAN:
		return json_boolean(lua_toboolean(L, idx));
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return json_integer((json_int_t)lua_tointeger(L, idx));
		if (!isfinite(lua_tonumber(L, idx))) {
			conv_fail(c, "non-finite number");
			return NULL;
		}
		return json_real(lua_tonumber(L, idx));
	case LUA_TSTRING: {
		size_t n;
		const char *s = lua_tolstring(L, idx, &n);
		json_t *j = json_stringn(s, n);
		if (!j)
			conv_fail(c, "string that is not valid UTF-8");
		return j;
	}
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == &K_NULL)
			return json_null();
		break;
	case LUA_TTABLE:
		return table_to_json(L, c, idx);
	default:
		break;
	}
	conv_fail(c, "%s value (not convertible to JSON)", luaL_typename(L, idx));
	return NULL;
}

static void conv_init(struct conv *c, const struct sandbox_limits *lim, int lua_paths)
{
	c->lim = lim;
	c->depth = 0;
	c->lua_paths = lua_paths;
	c->msg[0] = '\0';
}

/* ---- cocod.* helpers ------------------------------------------------------ */

/* A full userdata that owns C allocations across calls that may raise: its
 * __gc frees them if a Lua error unwinds past the helper. */
struct box {
	json_t *json;
	char *str;
};

static int box_gc(lua_State *L)
{
	struct box *b = lua_touserdata(L, 1);
	json_decref(b->json);
	free(b->str);
	b->json = NULL;
	b->str = NULL;
	return 0;
}

/* [-0, +1, m] */
static struct box *box_new(lua_State *L)
{
	struct box *b = lua_newuserdatauv(L, sizeof *b, 0);
	b->json = NULL;
	b->str = NULL;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &K_BOX_MT);
	lua_setmetatable(L, -2);
	return b;
}

/* cocod.log([level,] msg) [-(1|2), +0]: writes "policy <chunk>: msg" to the
 * daemon log and keeps the line in the decision (32 per call at most;
 * control characters become '?'). */
static int h_log(lua_State *L)
{
	sandbox_policy *p = policy_of(L);
	int mi = lua_gettop(L) >= 2 ? 2 : 1;
	const char *lvl = mi == 2 ? luaL_checkstring(L, 1) : "info";
	enum log_level level;
	if (log_level_parse(lvl, &level) < 0)
		return luaL_argerror(L, 1, "level must be error, warn, info or debug");
	size_t n;
	const char *s = luaL_tolstring(L, mi, &n);
	if (p->nlogs >= MAX_LOGS) {
		p->dropped++;
		return 0;
	}
	char msg[LOG_MSG_MAX + 1];
	n = n > LOG_MSG_MAX ? LOG_MSG_MAX : n;
	for (size_t i = 0; i < n; i++)
		msg[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	msg[n] = '\0';
	p->nlogs++;
	log_write(level, "policy", "%s: %s", p->chunkname, msg);
	if (p->logs) {
		json_t *m = json_stringn(msg, n);
		if (!m) /* not UTF-8: keep it readable */
			m = json_string("(log line is not valid UTF-8)");
		json_array_append_new(p->logs, json_pack("{s:s,s:o}", "level",
							 log_level_name(level), "msg", m));
	}
	return 0;
}

static int digest(lua_State *L, const EVP_MD *md)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	if (EVP_Digest(s, n, out, &len, md, NULL) != 1)
		return luaL_error(L, "digest failed");
	hex_encode(out, len, hex);
	lua_pushstring(L, hex);
	return 1;
}

/* cocod.sha256(s) / cocod.sha384(s) [-1, +1]: lowercase hex digest. */
static int h_sha256(lua_State *L) { return digest(L, EVP_sha256()); }
static int h_sha384(lua_State *L) { return digest(L, EVP_sha384()); }

/* cocod.hex_encode(s) [-1, +1]: lowercase hex. */
static int h_hex_encode(lua_State *L)
{
	size_t n;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
	static const char digits[] = "0123456789abcdef";
	luaL_Buffer b;
	char *o = luaL_buffinitsize(L, &b, 2 * n);
	for (size_t i = 0; i < n; i++) {
		o[2 * i] = digits[s[i] >> 4];
		o[2 * i + 1] = digits[s[i] & 15];
	}
	luaL_pushresultsize(&b, 2 * n);
	return 1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* cocod.hex_decode(s) [-1, +(1|2)]: the bytes, or nil and a message. */
static int h_hex_decode(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	if (n % 2) {
		luaL_pushfail(L);
		lua_pushstring(L, "hex_decode: odd number of digits");
		return 2;
	}
	luaL_Buffer b;
	char *o = luaL_buffinitsize(L, &b, n / 2);
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0) {
			luaL_pushfail(L);
			lua_pushfstring(L, "hex_decode: invalid digit at offset %d",
					(int)(hi < 0 ? i : i + 1));
			return 2;
		}
		o[i / 2] = (char)(hi << 4 | lo);
	}
	luaL_pushresultsize(&b, n / 2);
	return 1;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_encode(lua_State *L, const char *alpha, int pad)
{
	size_t n, o = 0;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		out[o++] = alpha[v >> 18 & 63];
		out[o++] = alpha[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = alpha[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (i + 2 < n)
			out[o++] = alpha[v & 63];
		else if (pad)
			out[o++] = '=';
	}
	luaL_pushresultsize(&b, o);
	return 1;
}

/* Decodes with `alpha`; '=' padding is optional but must be complete when
 * present; anything else (whitespace included) is an error. */
static int b64_decode(lua_State *L, const char *alpha)
{
	size_t n, o = 0;
	const char *s = luaL_checklstring(L, 1, &n);
	size_t end = n;
	while (end > 0 && s[end - 1] == '=' && n - end < 2)
		end--;
	if ((end != n && n % 4) || end % 4 == 1) {
		luaL_pushfail(L);
		lua_pushstring(L, "base64 decode: bad length or padding");
		return 2;
	}
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, end / 4 * 3 + 2);
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < end; i++) {
		const char *hit = s[i] ? strchr(alpha, s[i]) : NULL;
		if (!hit) {
			luaL_pushfail(L);
			lua_pushfstring(L, "base64 decode: invalid character at offset %d", (int)i);
			return 2;
		}
		acc = acc << 6 | (uint32_t)(hit - alpha);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	luaL_pushresultsize(&b, o);
	return 1;
}

/* cocod.base64_encode(s) / base64url_encode(s) [-1, +1]: standard alphabet
 * with padding; URL-safe alphabet without padding (as in JWS). */
static int h_b64_encode(lua_State *L) { return b64_encode(L, b64std, 1); }
static int h_b64url_encode(lua_State *L) { return b64_encode(L, b64url, 0); }
/* cocod.base64_decode(s) / base64url_decode(s) [-1, +(1|2)]: the bytes, or
 * nil and a message; padding optional. */
static int h_b64_decode(lua_State *L) { return b64_decode(L, b64std); }
static int h_b64url_decode(lua_State *L) { return b64_decode(L, b64url); }

/* cocod.json_encode(v) [-1, +1]: compact JSON with sorted keys; raises on
 * values JSON cannot hold (functions, cycles, NaN, mixed tables). */
static int h_json_encode(lua_State *L)
{
	sandbox_policy *p = policy_of(L);
	struct conv c;
	luaL_checkany(L, 1);
	lua_settop(L, 1);
	struct box *b = box_new(L);
	conv_init(&c, &p->lim, 1);
	b->json = to_json(L, &c, 1);
	if (!b->json)
		return luaL_error(L, "json_encode: %s", c.msg);
	b->str = json_dumps(b->json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	if (!b->str)
		return luaL_error(L, "json_encode: out of memory");
	lua_pushstring(L, b->str);
	json_decref(b->json); /* now rather than at the next collection */
	free(b->str);
	b->json = NULL;
	b->str = NULL;
	return 1;
}

/* cocod.json_decode(s) [-1, +(1|2)]: the value (objects and arrays as
 * tables, null as cocod.null), or nil and the parser's message; raises when
 * the document exceeds max_string or max_depth. */
static int h_json_decode(lua_State *L)
{
	sandbox_policy *p = policy_of(L);
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	json_error_t je;
	struct box *b = box_new(L);
	b->json = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!b->json) {
		luaL_pushfail(L);
		lua_pushfstring(L, "json_decode: %s at line %d column %d", je.text, je.line,
				je.column);
		return 2;
	}
	struct conv c;
	conv_init(&c, &p->lim, 0);
	push_json(L, &c, b->json);
	json_decref(b->json);
	b->json = NULL;
	return 1;
}

/* cocod.quantity(q) [-1, +(1|2)]: a Kubernetes quantity (string or number)
 * in milli-units ("100m" -> 100, "1Gi" -> 1073741824000), or nil and the
 * apiserver's message. */
static int h_quantity(lua_State *L)
{
	json_t *j = NULL;
	if (lua_type(L, 1) == LUA_TSTRING) {
		size_t n;
		const char *s = lua_tolstring(L, 1, &n);
		j = json_stringn(s, n);
	} else if (lua_isinteger(L, 1)) {
		j = json_integer((json_int_t)lua_tointeger(L, 1));
	} else if (lua_type(L, 1) == LUA_TNUMBER) {
		j = json_real(lua_tonumber(L, 1));
	} else {
		return luaL_typeerror(L, 1, "string or number");
	}
	int64_t milli = 0;
	struct err e;
	int rc = j ? quantity_parse_json(j, &milli, &e) : err_set(&e, ERR_INVALID, "%s",
								   QUANTITY_FORMAT_MSG);
	json_decref(j);
	if (rc < 0) {
		luaL_pushfail(L);
		lua_pushfstring(L, "quantity: %s", e.msg);
		return 2;
	}
	lua_pushinteger(L, (lua_Integer)milli);
	return 1;
}

/* A parsed semantic version; pre points into the caller's string. */
struct semver {
	uint64_t v[3];
	const char *pre;
	size_t prelen;
};

static int is_num_ident(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n > 0;
}

/* Parses dot-separated identifiers of [0-9A-Za-z-] from s[*i] up to `stop`
 * or the end; none may be empty, and with `strict` numeric ones may not
 * have leading zeros (pre-release rules). */
static int semver_idents(const char *s, size_t n, size_t *i, char stop, int strict)
{
	size_t id = *i;
	for (;; (*i)++) {
		if (*i == n || s[*i] == stop || s[*i] == '.') {
			size_t len = *i - id;
			if (len == 0 || (strict && len > 1 && s[id] == '0' && is_num_ident(s + id, len)))
				return -1;
			if (*i == n || s[*i] == stop)
				return 0;
			id = *i + 1;
			continue;
		}
		char c = s[*i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '-'))
			return -1;
	}
}

/* Parses "[v]MAJOR.MINOR.PATCH[-pre][+build]" per semver.org (numbers
 * without leading zeros). */
static int semver_parse(const char *s, size_t n, struct semver *out)
{
	size_t i = (n > 0 && s[0] == 'v') ? 1 : 0;
	for (int k = 0; k < 3; k++) {
		size_t st = i;
		out->v[k] = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (i - st >= 18)
				return -1;
			out->v[k] = out->v[k] * 10 + (uint64_t)(s[i++] - '0');
		}
		if (i == st || (s[st] == '0' && i - st > 1))
			return -1;
		if (k < 2 && (i >= n || s[i++] != '.'))
			return -1;
	}
	out->pre = NULL;
	out->prelen = 0;
	if (i < n && s[i] == '-') {
		size_t st = ++i;
		if (semver_idents(s, n, &i, '+', 1) < 0)
			return -1;
		out->pre = s + st;
		out->prelen = i - st;
	}
	if (i < n && s[i] == '+') {
		i++;
		if (semver_idents(s, n, &i, '\0', 0) < 0)
			return -1;
	}
	return i == n ? 0 : -1;
}

/* Precedence of two pre-release strings (both non-empty). */
static int prerelease_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, j = 0;
	while (i < an && j < bn) {
		size_t ie = i, je = j;
		while (ie < an && a[ie] != '.')
			ie++;
		while (je < bn && b[je] != '.')
			je++;
		int na = is_num_ident(a + i, ie - i), nb = is_num_ident(b + j, je - j);
		int r;
		if (na && nb)
			r = (ie - i != je - j) ? (ie - i < je - j ? -1 : 1)
					       : memcmp(a + i, b + j, ie - i);
		else if (na != nb)
			r = na ? -1 : 1;
		else {
			size_t m = ie - i < je - j ? ie - i : je - j;
			r = memcmp(a + i, b + j, m);
			if (!r && ie - i != je - j)
				r = ie - i < je - j ? -1 : 1;
		}
		if (r)
			return r < 0 ? -1 : 1;
		i = ie + 1;
		j = je + 1;
	}
	if (i >= an && j >= bn)
		return 0;
	return i >= an ? -1 : 1;
}

/* cocod.semver_compare(a, b) [-2, +(1|2)]: -1, 0 or 1 by semver.org
 * precedence (build metadata ignored, a leading "v" accepted), or nil and a
 * message naming the malformed version. */
static int h_semver_compare(lua_State *L)
{
	size_t an, bn;
	const char *a = luaL_checklstring(L, 1, &an), *b = luaL_checklstring(L, 2, &bn);
	struct semver x, y;
	if (semver_parse(a, an, &x) < 0 || semver_parse(b, bn, &y) < 0) {
		luaL_pushfail(L);
		lua_pushfstring(L, "semver_compare: not a semantic version: %s",
				semver_parse(a, an, &x) < 0 ? a : b);
		return 2;
	}
	int r = 0;
	for (int k = 0; k < 3 && !r; k++)
		if (x.v[k] != y.v[k])
			r = x.v[k] < y.v[k] ? -1 : 1;
	if (!r && (x.pre || y.pre))
		r = !x.pre ? 1 : !y.pre ? -1 : prerelease_cmp(x.pre, x.prelen, y.pre, y.prelen);
	lua_pushinteger(L, r);
	return 1;
}

/* cocod.array([t]) [-(0|1), +1]: marks `t` (or a new table) as a JSON array,
 * so that it converts to [] even when empty. */
static int h_array(lua_State *L)
{
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	if (lua_getmetatable(L, 1))
		return luaL_argerror(L, 1, "table already has a metatable");
	lua_settop(L, 1);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAY_MT);
	lua_setmetatable(L, 1);
	return 1;
}

/* cocod.is_array(v) [-1, +1]: true for tables that came from a JSON array
 * or were passed to cocod.array. */
static int h_is_array(lua_State *L)
{
	int r = 0;
	if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &K_ARRAY_MT);
		r = lua_rawequal(L, -1, -2);
	}
	lua_pushboolean(L, r);
	return 1;
}

static const luaL_Reg helpers[] = {
    {"log", h_log},
    {"sha256", h_sha256},
    {"sha384", h_sha384},
    {"hex_encode", h_hex_encode},
    {"hex_decode", h_hex_decode},
    {"base64_encode", h_b64_encode},
    {"base64_decode", h_b64_decode},
    {"base64url_encode", h_b64url_encode},
    {"base64url_decode", h_b64url_decode},
    {"json_encode", h_json_encode},
    {"json_decode", h_json_decode},
    {"quantity", h_quantity},
    {"semver_compare", h_semver_compare},
    {"array", h_array},
    {"is_array", h_is_array},
    {NULL, NULL},
};

/* ---- building a state ---------------------------------------------------- */

/* Opens the allowed libraries and puts the guards in place, on the global
 * table (which becomes the policy's globals). */
static void open_libs(lua_State *L)
{
	static const luaL_Reg libs[] = {
	    {LUA_GNAME, luaopen_base},        {LUA_TABLIBNAME, luaopen_table},
	    {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
	    {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL},
	};
	static const char *const drop[] = {"load",  "loadfile", "dofile", "require",
					   "print", "warn",     "collectgarbage", "_G", NULL};
	static const luaL_Reg guards[] = {
	    {"getmetatable", sb_getmetatable}, {"setmetatable", sb_setmetatable},
	    {"rawget", sb_rawget},             {"rawset", sb_rawset},
	    {"rawlen", sb_rawlen},             {"next", sb_next},
	    {"xpcall", sb_xpcall},             {NULL, NULL},
	};
	for (const luaL_Reg *l = libs; l->name; l++) {
		luaL_requiref(L, l->name, l->func, 1);
		lua_pop(L, 1);
	}
	lua_pushglobaltable(L);
	for (int i = 0; drop[i]; i++) {
		lua_pushnil(L);
		lua_setfield(L, -2, drop[i]);
	}
	luaL_setfuncs(L, guards, 0);

	lua_getfield(L, -1, LUA_MATHLIBNAME); /* decisions are deterministic */
	lua_pushnil(L);
	lua_setfield(L, -2, "random");
	lua_pushnil(L);
	lua_setfield(L, -2, "randomseed");
	lua_pop(L, 1);

	lua_getfield(L, -1, LUA_STRLIBNAME); /* the table strings index, too */
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	for (int k = PAT_FIND; k <= PAT_GSUB; k++) {
		lua_getfield(L, -1, pat_names[k]);
		lua_pushinteger(L, k);
		lua_pushcclosure(L, sb_pattern, 2);
		lua_setfield(L, -2, pat_names[k]);
	}
	lua_pop(L, 1);
	lua_pushliteral(L, ""); /* getmetatable("") gives false */
	lua_getmetatable(L, -1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 2);

	luaL_newlib(L, helpers);
	lua_pushlightuserdata(L, &K_NULL);
	lua_setfield(L, -2, "null");
	lua_setfield(L, -2, "cocod");
	lua_pop(L, 1);

	lua_createtable(L, 0, 2);
	lua_pushliteral(L, "cocod.array");
	lua_setfield(L, -2, "__name");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &K_ARRAY_MT);
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, box_gc);
	lua_setfield(L, -2, "__gc");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &K_BOX_MT);
}

/* [-1, +0] Protected body of build_state (the policy is the light userdata
 * argument): libraries, the main chunk under the budgets, the hook check,
 * then freezing. */
static int setup_state(lua_State *L)
{
	sandbox_policy *p = lua_touserdata(L, 1);
	open_libs(L);
	char name[256];
	snprintf(name, sizeof name, "=%s", p->chunkname);
	if (luaL_loadbufferx(L, p->src, p->len, name, "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, -1);
	p->ref_chunk = luaL_ref(L, LUA_REGISTRYINDEX);
	arm(p);
	lua_call(L, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (lua_getglobal(L, p->hook) != LUA_TFUNCTION)
		return luaL_error(L, "%s: the policy does not define a global function '%s'",
				  p->chunkname, p->hook);
	p->ref_hook = luaL_ref(L, LUA_REGISTRYINDEX);

	struct freeze f = {.p = p};
	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &K_FROZEN);
	f.vis = lua_gettop(L);
	lua_newtable(L);
	lua_pushvalue(L, -1);
	p->ref_restore = luaL_ref(L, LUA_REGISTRYINDEX);
	f.restore = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_chunk);
	f.env_id = lua_upvalueid(L, -1, 1);
	lua_pop(L, 1);
	lua_pushglobaltable(L);
	freeze_fields(&f, lua_gettop(L), 0);

	lua_createtable(L, 0, 2); /* the metatable of every per-call _ENV */
	lua_pushvalue(L, -2);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	p->ref_envmt = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* Creates p->L from p->src.  On failure p->L is NULL and `e` holds the
 * message ("chunk:line: ..."). */
static int build_state(sandbox_policy *p, struct err *e)
{
	p->mem_used = 0;
	p->n_restore = 0;
	p->mem_hit = 0;
	p->kill[0] = '\0';
	p->L = lua_newstate(budget_alloc, p);
	if (!p->L)
		return err_set(e, ERR_INVALID, "%s: cannot create a Lua state within %zu bytes",
			       p->chunkname, p->lim.mem_bytes);
	lua_State *L = p->L;
	lua_pushcfunction(L, setup_state);
	lua_pushlightuserdata(L, p);
	int st = lua_pcall(L, 1, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (st != LUA_OK || p->kill[0] || p->mem_hit) {
		const char *m = lua_tostring(L, -1);
		if (p->kill[0])
			err_set(e, ERR_INVALID, "%s", p->kill);
		else if (p->mem_hit || st == LUA_ERRMEM)
			err_set(e, ERR_INVALID, "%s: memory limit of %zu bytes exceeded",
				p->chunkname, p->lim.mem_bytes);
		else
			err_set(e, ERR_INVALID, "%s", m ? m : "error object is not a string");
		lua_close(L);
		p->L = NULL;
		return e ? e->code : ERR_INVALID;
	}
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);
	lua_gc(L, LUA_GCGEN, 0, 0); /* per-call garbage dies young */
	p->dirty = 0;
	return 0;
}

int sandbox_compile(const char *chunkname, const char *src, size_t len, const char *hook,
		    const struct sandbox_limits *lim, sandbox_policy **out, struct err *e)
{
	sandbox_policy *p = xcalloc(1, sizeof *p);
	if (lim)
		p->lim = *lim;
	else
		sandbox_default_limits(&p->lim);
	if (p->lim.max_depth < 1)
		p->lim.max_depth = 1;
	if (p->lim.max_depth > DEPTH_CAP)
		p->lim.max_depth = DEPTH_CAP;
	p->step = p->lim.instructions < HOOK_STEP ? (int)p->lim.instructions + 1 : HOOK_STEP;
	p->chunkname = xstrdup(chunkname);
	p->hook = xstrdup(hook);
	p->src = xmalloc(len + 1);
	memcpy(p->src, src, len);
	p->src[len] = '\0';
	p->len = len;
	int rc = build_state(p, e);
	if (rc < 0) {
		sandbox_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

void sandbox_free(sandbox_policy *p)
{
	if (!p)
		return;
	if (p->L)
		lua_close(p->L);
	free(p->restore_idx);
	free(p->chunkname);
	free(p->hook);
	free(p->src);
	free(p);
}

const char *sandbox_hook(const sandbox_policy *p) { return p->hook; }
const char *sandbox_chunkname(const sandbox_policy *p) { return p->chunkname; }

/* ---- calls ------------------------------------------------------------------ */

struct call {
	sandbox_policy *p;
	json_t *const *args;
	int nargs;
	int converting; /* 1 while inputs are converted: errors are about input */
	int arg;        /* the argument being converted (1-based) */
	struct conv conv;
};

/* [-1, +1] Protected: fresh _ENV, arguments converted, hook called; leaves
 * the hook's first result. */
static int call_body(lua_State *L)
{
	struct call *c = lua_touserdata(L, 1);
	sandbox_policy *p = c->p;
	lua_settop(L, 0);
	luaL_checkstack(L, c->nargs + 8, "too many arguments");
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_hook);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_chunk);
	lua_createtable(L, 0, 4);
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_envmt);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");
	lua_setupvalue(L, -2, 1);
	lua_pop(L, 1);
	c->converting = 1;
	for (c->arg = 1; c->arg <= c->nargs; c->arg++) {
		conv_init(&c->conv, &p->lim, 0);
		if (c->args[c->arg - 1])
			push_json(L, &c->conv, c->args[c->arg - 1]);
		else
			lua_pushnil(L);
	}
	c->converting = 0;
	arm(p);
	lua_call(L, c->nargs, 1);
	return 1;
}

static void restore_upvalues(sandbox_policy *p)
{
	lua_State *L = p->L;
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_restore);
	for (int k = 0; k < p->n_restore; k++) {
		lua_rawgeti(L, -1, 2 * k + 1);
		lua_rawgeti(L, -2, 2 * k + 2);
		lua_setupvalue(L, -2, p->restore_idx[k]);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static int fail(struct sandbox_decision *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct sandbox_decision *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof d->reason, fmt, ap);
	va_end(ap);
	d->failed = 1;
	d->allow = 0;
	json_decref(d->result);
	d->result = NULL;
	return ERR_FORBIDDEN;
}

/* Reads the decision table at the top of the stack into `d`; 0 or
 * ERR_FORBIDDEN (d->failed set). */
static int read_decision(sandbox_policy *p, struct sandbox_decision *d)
{
	lua_State *L = p->L;
	lua_Debug ar;
	lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_hook);
	lua_getinfo(L, ">S", &ar);
	char where[300];
	snprintf(where, sizeof where, "%s:%d: %s", p->chunkname, ar.linedefined, p->hook);
	if (!lua_checkstack(L, 8))
		return fail(d, "%s: out of stack", where);
	if (lua_type(L, -1) != LUA_TTABLE)
		return fail(d, "%s returned %s, not a decision table {allow=boolean, reason=string}",
			    where, luaL_typename(L, -1));
	int pushed = unproxy(L, -1);
	int t = lua_gettop(L);
	if (lua_getfield(L, t, "allow") != LUA_TBOOLEAN)
		return fail(d, "%s returned a decision whose 'allow' is %s, not a boolean", where,
			    luaL_typename(L, -1));
	int allow = lua_toboolean(L, -1);
	lua_pop(L, 1);
	int rt = lua_getfield(L, t, "reason");
	if (rt != LUA_TNIL && rt != LUA_TSTRING)
		return fail(d, "%s returned a decision whose 'reason' is %s, not a string", where,
			    luaL_typename(L, -1));
	if (rt == LUA_TSTRING)
		snprintf(d->reason, sizeof d->reason, "%s", lua_tostring(L, -1));
	lua_pop(L, 1);
	struct conv c;
	conv_init(&c, &p->lim, 1);
	d->result = json_object();
	lua_pushnil(L);
	while (lua_next(L, t)) {
		if (lua_type(L, -2) != LUA_TSTRING)
			return fail(d, "%s returned a decision with a %s key (keys are strings)",
				    where, luaL_typename(L, -2));
		size_t kl;
		const char *k = lua_tolstring(L, -2, &kl);
		if (strcmp(k, "allow") && strcmp(k, "reason")) {
			c.path[0] = (struct seg){k, kl, 0};
			c.depth = 1;
			json_t *x = to_json(L, &c, -1);
			if (!x || json_object_setn_new(d->result, k, kl, x) < 0)
				return fail(d, "%s returned a decision with a %s", where,
					    c.msg[0] ? c.msg : "key that is not UTF-8");
		}
		lua_pop(L, 1);
	}
	lua_pop(L, pushed);
	d->allow = allow;
	return 0;
}

/* Throws away a state that a limit interrupted and builds it again from the
 * source, so the next call starts from the compiled snapshot. */
static int rebuild(sandbox_policy *p, struct err *e)
{
	if (p->L)
		lua_close(p->L);
	p->L = NULL;
	return build_state(p, e);
}

int sandbox_call(sandbox_policy *p, json_t *const *args, int nargs, struct sandbox_decision *out)
{
	uint64_t start = now_ns();
	struct err e;
	memset(out, 0, sizeof *out);
	out->logs = json_array();
	if (p->dirty && rebuild(p, &e) < 0) {
		fail(out, "policy state could not be rebuilt: %s", e.msg);
		out->duration_ns = now_ns() - start;
		return ERR_FORBIDDEN;
	}
	lua_State *L = p->L;
	struct call c = {.p = p, .args = args, .nargs = nargs < 0 ? 0 : nargs};
	p->logs = out->logs;
	p->nlogs = p->dropped = 0;
	p->mem_hit = 0;
	p->kill[0] = '\0';
	p->count = 0;
	lua_settop(L, 0);
	lua_pushcfunction(L, call_body);
	lua_pushlightuserdata(L, &c);
	int st = lua_pcall(L, 1, 1, 0);
	lua_sethook(L, NULL, 0, 0);
	out->instructions = p->count + (uint64_t)p->step; /* an upper bound */
	if (p->kill[0]) {
		fail(out, "%s", p->kill);
	} else if (p->mem_hit || st == LUA_ERRMEM) {
		if (c.converting)
			fail(out, "%s: memory limit of %zu bytes exceeded while converting "
				  "argument %d",
			     p->chunkname, p->lim.mem_bytes, c.arg);
		else
			fail(out, "%s: memory limit of %zu bytes exceeded", p->chunkname,
			     p->lim.mem_bytes);
	} else if (st != LUA_OK && c.converting && c.conv.msg[0]) {
		fail(out, "input argument %d: %s", c.arg, c.conv.msg);
	} else if (st != LUA_OK) {
		if (lua_type(L, -1) == LUA_TSTRING)
			fail(out, "%s", lua_tostring(L, -1));
		else
			fail(out, "%s: %s raised an error object that is %s, not a string",
			     p->chunkname, p->hook, luaL_typename(L, -1));
	} else {
		read_decision(p, out);
	}
	if (p->kill[0] || p->mem_hit || st == LUA_ERRMEM) {
		p->dirty = 1;
	} else {
		restore_upvalues(p);
		lua_settop(L, 0);
	}
	if (p->dropped)
		log_warn("policy", "%s: %d more log lines dropped", p->chunkname, p->dropped);
	p->logs = NULL;
	out->duration_ns = now_ns() - start;
	return out->failed ? ERR_FORBIDDEN : 0;
}

void sandbox_decision_fini(struct sandbox_decision *d)
{
	json_decref(d->result);
	json_decref(d->logs);
	d->result = NULL;
	d->logs = NULL;
}

/* ---- tests tables -------------------------------------------------------- */

/* [-1, +1] Protected: the `tests` global converted to JSON into *(json_t **)
 * of the light userdata argument (NULL when absent). */
static int tests_to_json(lua_State *L)
{
	void **slot = lua_touserdata(L, 1);
	sandbox_policy *p = policy_of(L);
	struct conv c;
	lua_settop(L, 0);
	lua_getglobal(L, "tests");
	if (lua_isnil(L, -1))
		return 0;
	conv_init(&c, &p->lim, 1);
	json_t *j = to_json(L, &c, -1);
	if (!j)
		return luaL_error(L, "%s: tests: %s", p->chunkname, c.msg);
	*slot = j;
	return 0;
}

/* Does `got` satisfy `exp`?  Objects: every expected key matches (a
 * subset); arrays: same length, elementwise; numbers by value; the rest by
 * equality.  Appends the first mismatch's path to `why`. */
static int matches(json_t *exp, json_t *got, struct buf *path)
{
	if (json_is_number(exp) && json_is_number(got))
		return json_number_value(exp) == json_number_value(got);
	if (json_is_object(exp) && json_is_object(got)) {
		const char *k;
		json_t *v;
		json_object_foreach(exp, k, v)
		{
			size_t mark = path->len;
			buf_printf(path, ".%s", k);
			if (!matches(v, json_object_get(got, k), path))
				return 0;
			path->len = mark;
			path->data[mark] = '\0';
		}
		return 1;
	}
	if (json_is_array(exp) && json_is_array(got)) {
		if (json_array_size(exp) != json_array_size(got))
			return 0;
		for (size_t i = 0; i < json_array_size(exp); i++) {
			size_t mark = path->len;
			buf_printf(path, "[%zu]", i + 1);
			if (!matches(json_array_get(exp, i), json_array_get(got, i), path))
				return 0;
			path->len = mark;
			path->data[mark] = '\0';
		}
		return 1;
	}
	return got && json_equal(exp, got);
}

/* Runs one case; returns its report entry and sets *ok. */
static json_t *run_case(sandbox_policy *p, json_t *tc, size_t i, int *ok)
{
	json_t *name = json_object_get(tc, "name"), *input = json_object_get(tc, "input");
	json_t *expect = json_object_get(tc, "expect");
	char dflt[32];
	snprintf(dflt, sizeof dflt, "case %zu", i + 1);
	const char *nm = json_is_string(name) ? json_string_value(name) : dflt;
	json_t *entry = json_pack("{s:s}", "name", nm);
	struct buf why;
	buf_init(&why);
	*ok = 0;
	if (!json_is_object(expect) || !(json_is_array(input) || json_is_object(input))) {
		buf_adds(&why, "a case needs input={args...} and expect={allow=...}");
	} else {
		json_t *args[16];
		int n = 0;
		for (size_t k = 0; json_is_array(input) && k < json_array_size(input) && n < 16; k++)
			args[n++] = json_is_null(json_array_get(input, k)) ? NULL
									    : json_array_get(input, k);
		struct sandbox_decision d;
		sandbox_call(p, args, n, &d);
		json_t *got = d.result ? json_deep_copy(d.result) : json_object();
		json_object_set_new(got, "allow", json_boolean(d.allow));
		json_object_set_new(got, "failed", json_boolean(d.failed));
		json_object_set_new(got, "reason", json_string(d.reason));
		if (!json_object_get(expect, "failed") && d.failed) {
			buf_printf(&why, "the policy failed: %s", d.reason);
		} else {
			const char *k;
			json_t *v;
			json_object_foreach(expect, k, v)
			{
				struct buf path;
				buf_init(&path);
				buf_adds(&path, k);
				int good;
				if (!strcmp(k, "reason") && json_is_string(v))
					good = strstr(d.reason, json_string_value(v)) != NULL;
				else
					good = matches(v, json_object_get(got, k), &path);
				if (!good && !why.len)
					buf_printf(&why, "%s differs from the expectation (reason: %s)",
						   path.data, d.reason);
				buf_fini(&path);
			}
			if (!why.len) {
				*ok = 1;
				buf_adds(&why, d.reason);
			}
		}
		json_object_set_new(entry, "got", got);
		sandbox_decision_fini(&d);
	}
	json_object_set_new(entry, "ok", json_boolean(*ok));
	json_object_set(entry, "expected", expect ? expect : json_null());
	json_object_set_new(entry, "reason", json_string(why.data));
	buf_fini(&why);
	return entry;
}

int sandbox_run_tests(sandbox_policy *p, json_t **report, struct err *e)
{
	struct err be;
	*report = NULL;
	if (p->dirty && rebuild(p, &be) < 0)
		return err_set(e, ERR_INVALID, "%s", be.msg);
	json_t *tests = NULL;
	lua_settop(p->L, 0);
	lua_pushcfunction(p->L, tests_to_json);
	lua_pushlightuserdata(p->L, &tests);
	if (lua_pcall(p->L, 1, 0, 0) != LUA_OK) {
		const char *m = lua_tostring(p->L, -1);
		err_set(e, ERR_INVALID, "%s", m ? m : "tests: conversion failed");
		lua_settop(p->L, 0);
		json_decref(tests);
		return e ? e->code : ERR_INVALID;
	}
	lua_settop(p->L, 0);
	if (tests && json_is_object(tests) && json_object_size(tests) == 0) {
		json_decref(tests);
		tests = json_array();
	}
	if (tests && !json_is_array(tests)) {
		json_decref(tests);
		return err_set(e, ERR_INVALID, "%s: tests must be a list of cases", p->chunkname);
	}
	json_t *cases = json_array();
	int passed = 0, failed = 0;
	char first[300] = "";
	for (size_t i = 0; tests && i < json_array_size(tests); i++) {
		int ok;
		json_t *entry = run_case(p, json_array_get(tests, i), i, &ok);
		if (ok) {
			passed++;
		} else if (!failed++) {
			snprintf(first, sizeof first, "%s: %s",
				 json_string_value(json_object_get(entry, "name")),
				 json_string_value(json_object_get(entry, "reason")));
		}
		json_array_append_new(cases, entry);
	}
	json_decref(tests);
	*report = json_pack("{s:i,s:i,s:o}", "passed", passed, "failed", failed, "cases", cases);
	if (failed)
		return err_set(e, ERR_INVALID, "%s: %d of %d tests failed; first: %s",
			       p->chunkname, failed, passed + failed, first);
	return 0;
}

/* ---- built-ins ------------------------------------------------------------ */

const struct sandbox_builtin *sandbox_builtin_find(const char *hook)
{
	for (const struct sandbox_builtin *b = sandbox_builtins; b->hook; b++)
		if (!strcmp(b->hook, hook))
			return b;
	return NULL;
}
