/* Unit tests for sandbox: the Lua policy host.
 *
 * Cases:
 *   decision_fields_and_json_round_trip      allow/reason/result, [] and null survive
 *   compile_errors_name_chunk_and_line       syntax error, missing hook, bytecode refused
 *   runtime_errors_carry_line_numbers        error("x"), nil index, non-string error
 *   outside_world_is_unreachable             io, os, require, load, loadstring, dofile,
 *                                            loadfile, print, collectgarbage, coroutine
 *   string_dump_then_load_is_refused         no string.dump, no load
 *   memory_bombs_hit_the_memory_limit        string.rep, doubling, giant table, in pcall
 *   infinite_loops_are_killed                plain, in pcall, in xpcall handler, tail
 *   time_limit_is_enforced                   wall clock budget with a huge count budget
 *   deep_recursion_is_contained              Lua stack overflow, metamethod C recursion
 *   gc_metamethods_are_refused               setmetatable with __gc
 *   string_metatable_is_protected            getmetatable(""), string.upper = ...
 *   hostile_patterns_are_refused_fast        find/match/gmatch/gsub over long subjects
 *   benign_patterns_still_work               anchored and short patterns
 *   calls_cannot_keep_state                  globals, upvalues, frozen tables, rawset
 *   frozen_globals_read_normally             #, ipairs, pairs, next, rawget, metatables
 *   oversized_and_deep_inputs_are_refused    max_string names the path, max_depth
 *   wrong_return_values_fail_closed          string, nil, allow not boolean, bad reason
 *   unconvertible_results_are_refused        cycles, functions, NaN, mixed tables
 *   killed_call_leaves_next_call_working     rebuild after a limit
 *   helpers_give_known_answers               sha256/384, hex, base64, json, quantity, semver
 *   log_lines_are_kept_and_sanitised         cocod.log into decision.logs
 *   default_policies_pass_their_tests        every built-in's tests table
 *   failing_policy_tests_are_reported        run_tests reports a wrong expectation
 *   default_policies_decide_as_documented    a few decisions checked from C
 *   median_call_cost                         prints medians (no timing assertions)
 *
 * Expected digests and encodings are the published test vectors (FIPS 180
 * "abc", RFC 4648), the semver chain is the one from semver.org §11. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "sandbox.h"
#include "util.h"

static sandbox_policy *compile_lim(const char *src, const char *hook,
				   const struct sandbox_limits *lim)
{
	sandbox_policy *p = NULL;
	struct err e = {0};
	int rc = sandbox_compile("t.lua", src, strlen(src), hook, lim, &p, &e);
	if (rc != 0)
		fail_msg("compile failed: %s", e.msg);
	return p;
}

static sandbox_policy *compile(const char *src) { return compile_lim(src, "h", NULL); }

/* Calls `h` with the given JSON texts as arguments. */
static int call_json(sandbox_policy *p, struct sandbox_decision *d, int n, ...)
{
	json_t *args[8] = {0};
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		json_error_t je;
		args[i] = json_loads(va_arg(ap, const char *), JSON_DECODE_ANY, &je);
		assert_non_null(args[i]);
	}
	va_end(ap);
	int rc = sandbox_call(p, args, n, d);
	for (int i = 0; i < n; i++)
		json_decref(args[i]);
	return rc;
}

/* Compiles `src`, calls h() once, and checks the call failed with a reason
 * containing `want`. */
static void expect_failure(const char *src, const char *want)
{
	sandbox_policy *p = compile(src);
	struct sandbox_decision d;
	int rc = sandbox_call(p, NULL, 0, &d);
	if (!d.failed || !strstr(d.reason, want))
		fail_msg("src %s\n  want failure containing \"%s\"\n  got failed=%d allow=%d reason=\"%s\"",
			 src, want, d.failed, d.allow, d.reason);
	assert_int_equal(rc, ERR_FORBIDDEN);
	assert_int_equal(d.allow, 0);
	assert_null(d.result);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void expect_compile_error(const char *src, const char *hook, const char *want)
{
	sandbox_policy *p = NULL;
	struct err e = {0};
	int rc = sandbox_compile("t.lua", src, strlen(src), hook, NULL, &p, &e);
	if (rc == 0 || !strstr(e.msg, want))
		fail_msg("want compile error containing \"%s\", got rc=%d msg=\"%s\"", want, rc,
			 e.msg);
	assert_null(p);
}

static void decision_fields_and_json_round_trip(void **state)
{
	sandbox_policy *p = compile("function h(pod, req)\n"
				    "  assert(pod.spec.tags ~= nil and #pod.spec.tags == 0)\n"
				    "  assert(pod.spec.gone == cocod.null)\n"
				    "  pod.metadata.labels.x = req.user\n"
				    "  return {allow = true, reason = 'ok ' .. req.user, pod = pod,\n"
				    "          made = cocod.array(), n = 1.5, list = {1, 'two', true}}\n"
				    "end\n");
	struct sandbox_decision d;
	int rc = call_json(p, &d, 2,
			   "{\"metadata\":{\"labels\":{}},\"spec\":{\"tags\":[],\"gone\":null}}",
			   "{\"user\":\"alice\"}");
	assert_int_equal(rc, 0);
	assert_int_equal(d.failed, 0);
	assert_int_equal(d.allow, 1);
	assert_string_equal(d.reason, "ok alice");
	char *s = json_dumps(d.result, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"list\":[1,\"two\",true],\"made\":[],\"n\":1.5,"
			       "\"pod\":{\"metadata\":{\"labels\":{\"x\":\"alice\"}},"
			       "\"spec\":{\"gone\":null,\"tags\":[]}}}");
	free(s);
	assert_true(d.instructions > 0 && d.instructions % 100 == 0);
	assert_true(d.duration_ns > 0);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void compile_errors_name_chunk_and_line(void **state)
{
	expect_compile_error("function h()\n  x = = 1\nend\n", "h", "t.lua:2:");
	expect_compile_error("function g() end\n", "h", "does not define a global function 'h'");
	expect_compile_error("h = 5\n", "h", "does not define a global function 'h'");
	expect_compile_error("\x1bLuaT\x00\x19\x93\r\n\x1a\n", "h", "binary chunk");
	expect_compile_error("while true do end\n", "h", "t.lua:1: instruction limit of 1000000");
	expect_compile_error("local s = string.rep('x', 1 << 30)\n", "h", "memory limit");
}

static void runtime_errors_carry_line_numbers(void **state)
{
	expect_failure("function h()\n  local x = 1\n  error('boom')\nend\n", "t.lua:3: boom");
	expect_failure("function h()\n  local t = nil\n\n  return t.x\nend\n",
		       "t.lua:4: attempt to index a nil value (local 't')");
	expect_failure("function h() error({}) end\n", "raised an error object that is table");
}

static void outside_world_is_unreachable(void **state)
{
	expect_failure("function h() return io.open('/etc/passwd') end", "global 'io'");
	expect_failure("function h() return os.execute('id') end", "global 'os'");
	expect_failure("function h() return require('os') end", "global 'require'");
	expect_failure("function h() return load('return 1')() end", "global 'load'");
	expect_failure("function h() return loadstring('return 1')() end", "global 'loadstring'");
	expect_failure("function h() return dofile('/etc/passwd') end", "global 'dofile'");
	expect_failure("function h() return loadfile('/etc/passwd') end", "global 'loadfile'");
	expect_failure("function h() print('x') end", "global 'print'");
	expect_failure("function h() collectgarbage() end", "global 'collectgarbage'");
	expect_failure("function h() return debug.getregistry() end", "global 'debug'");
	expect_failure("function h() return package.loaded end", "global 'package'");
	expect_failure("function h() return math.random() end", "field 'random'");
	/* coroutine is not opened at all, so a loop in one cannot even start */
	expect_failure("function h()\n local co = coroutine.create(function() while true do end end)\n"
		       " coroutine.resume(co)\nend",
		       "t.lua:2: attempt to index a nil value (global 'coroutine')");
}

static void string_dump_then_load_is_refused(void **state)
{
	expect_failure("function h() local f = function() return 1 end\n"
		       "  return load(string.dump(f))() end",
		       "field 'dump'");
	expect_failure("function h() local b = ('').dump\n return b(h) end",
		       "t.lua:2: attempt to call a nil value (local 'b')");
}

static void memory_bombs_hit_the_memory_limit(void **state)
{
	expect_failure("function h() local s = string.rep('x', 1 << 30) end",
		       "memory limit of 8388608 bytes exceeded");
	expect_failure("function h() local s = 'x'\n while true do s = s .. s end end",
		       "memory limit of 8388608 bytes exceeded");
	expect_failure("function h() local t = {}\n for i = 1, 1e9 do t[i] = {i} end end",
		       "memory limit of 8388608 bytes exceeded");
	/* catching the memory error does not make the decision valid */
	expect_failure("function h() pcall(string.rep, 'x', 1 << 30)\n return {allow = true} end",
		       "memory limit of 8388608 bytes exceeded");
	/* a table of many keys dies of memory or instructions, either way denied */
	expect_failure("function h() local t = {}\n for i = 1, 1e9 do t['k' .. i] = i end end",
		       "limit of");
}

static void infinite_loops_are_killed(void **state)
{
	expect_failure("function h()\n  while true do end\nend",
		       "t.lua:2: instruction limit of 1000000 exceeded");
	expect_failure("function h()\n while true do pcall(function() while true do end end) end\nend",
		       "instruction limit of 1000000 exceeded");
	expect_failure("function h()\n for i = 1, 3 do pcall(function() while true do end end) end\n"
		       " return {allow = true}\nend",
		       "instruction limit of 1000000 exceeded");
	expect_failure("function h()\n xpcall(function() while true do end end,\n"
		       "        function(e) while true do end end)\n return {allow = true}\nend",
		       "instruction limit of 1000000 exceeded");
	expect_failure("function h()\n xpcall(error, function(e) while true do end end)\n"
		       " return {allow = true}\nend",
		       "instruction limit of 1000000 exceeded");
	expect_failure("function h()\n pcall(tostring, setmetatable({}, {__tostring ="
		       " function() while true do end end}))\n return {allow = true} end",
		       "instruction limit");
	expect_failure("local function spin() return spin() end\nfunction h() return spin() end",
		       "instruction limit of 1000000 exceeded");
}

static void time_limit_is_enforced(void **state)
{
	struct sandbox_limits lim;
	sandbox_default_limits(&lim);
	lim.instructions = UINT64_MAX / 2;
	lim.time_ms = 20;
	sandbox_policy *p = compile_lim("function h()\n  while true do end\nend", "h", &lim);
	struct sandbox_decision d;
	sandbox_call(p, NULL, 0, &d);
	assert_int_equal(d.failed, 1);
	assert_non_null(strstr(d.reason, "t.lua:2: time limit of 20 ms exceeded"));
	assert_true(d.duration_ns < 2000000000u);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void deep_recursion_is_contained(void **state)
{
	sandbox_policy *p = compile("local function f(n) return 1 + f(n + 1) end\n"
				    "function h() return {allow = f(1) > 0} end");
	struct sandbox_decision d;
	sandbox_call(p, NULL, 0, &d);
	assert_int_equal(d.failed, 1);
	if (!strstr(d.reason, "stack overflow") && !strstr(d.reason, "memory limit"))
		fail_msg("unexpected reason %s", d.reason);
	sandbox_decision_fini(&d);
	sandbox_free(p);
	expect_failure("function h() local t = setmetatable({}, {})\n"
		       " getmetatable(t).__index = function(s, k) return s[k] end\n"
		       " return t.x end",
		       "stack overflow");
}

static void gc_metamethods_are_refused(void **state)
{
	expect_failure("function h()\n  setmetatable({}, {__gc = function() while true do end end})\nend",
		       "t.lua:2: setmetatable: __gc metamethods are not allowed");
	/* __gc added after setmetatable never marks the object for finalization */
	sandbox_policy *p = compile("function h() local mt = {}\n local t = setmetatable({}, mt)\n"
				    " mt.__gc = function() while true do end end\n t = nil\n"
				    " return {allow = true} end");
	struct sandbox_decision d;
	for (int i = 0; i < 3; i++) {
		sandbox_call(p, NULL, 0, &d);
		assert_int_equal(d.allow, 1);
		sandbox_decision_fini(&d);
	}
	sandbox_free(p);
}

static void string_metatable_is_protected(void **state)
{
	expect_failure("function h() getmetatable('').__index = {upper = function() return 'x' end} end",
		       "attempt to index a boolean value");
	expect_failure("function h() string.upper = function() return 'pwned' end end",
		       "read-only table");
	expect_failure("function h() setmetatable('', {}) end", "bad argument #1 to 'setmetatable'");
	sandbox_policy *p = compile("function h() pcall(function() string.upper = nil end)\n"
				    " return {allow = ('abc'):upper() == 'ABC'} end");
	struct sandbox_decision d;
	sandbox_call(p, NULL, 0, &d);
	assert_int_equal(d.failed, 0);
	assert_int_equal(d.allow, 1);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void hostile_patterns_are_refused_fast(void **state)
{
	const char *srcs[] = {
	    "function h() return string.find(string.rep('a', 5000), string.rep('a*', 20) .. 'b') end",
	    "function h() local s = string.rep('a', 5000)\n return s:match('.-.-.-.-.-.-b') end",
	    "function h() for x in string.gmatch(string.rep('a', 2000), '(a-)a-a-b') do end end",
	    "function h() return string.gsub(string.rep('a', 60000), '%w+x', '') end",
	    "function h() return string.find(string.rep('a', 60000), string.rep('a', 3000) .. 'b',"
	    " 1, true) end",
	};
	for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
		uint64_t t0 = now_ns();
		expect_failure(srcs[i], "exceeds the matching budget");
		print_message("hostile pattern %zu refused in %.2f ms\n", i,
			      (double)(now_ns() - t0) / 1e6);
	}
	/* the largest pair the budget accepts still finishes inside the time limit */
	sandbox_policy *p = compile("function h() local s = string.rep('a', 2000)\n"
				    " return {allow = s:find('a-b') == nil} end");
	struct sandbox_decision d;
	sandbox_call(p, NULL, 0, &d);
	assert_int_equal(d.failed, 0);
	assert_int_equal(d.allow, 1);
	print_message("accepted worst case (2000 bytes, 1 repetition) took %.2f ms\n",
		      (double)d.duration_ns / 1e6);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void benign_patterns_still_work(void **state)
{
	sandbox_policy *p = compile(
	    "function h(img)\n"
	    " local name, tag = img:match('^([%w%./%-_]+):([%w%.%-_]+)$')\n"
	    " local n = 0\n for w in ('a,b,c'):gmatch('[^,]+') do n = n + 1 end\n"
	    " local g = ('x-y-z'):gsub('-', '+')\n"
	    " return {allow = name == 'registry.io/nginx' and tag == '1.25' and n == 3\n"
	    "   and g == 'x+y+z' and string.find(img, 'nginx', 1, true) == 13} end");
	struct sandbox_decision d;
	call_json(p, &d, 1, "\"registry.io/nginx:1.25\"");
	if (d.failed || !d.allow)
		fail_msg("failed=%d allow=%d reason=%s", d.failed, d.allow, d.reason);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void expect_allowed_twice(const char *src)
{
	sandbox_policy *p = compile(src);
	for (int i = 0; i < 2; i++) {
		struct sandbox_decision d;
		sandbox_call(p, NULL, 0, &d);
		if (d.failed || !d.allow)
			fail_msg("call %d of %s: failed=%d allow=%d reason=%s", i + 1, src,
				 d.failed, d.allow, d.reason);
		sandbox_decision_fini(&d);
	}
	sandbox_free(p);
}

static void calls_cannot_keep_state(void **state)
{
	expect_allowed_twice("function h() counter = (counter or 0) + 1\n"
			     " return {allow = counter == 1} end");
	expect_allowed_twice("local n = 0\nfunction h() n = n + 1\n return {allow = n == 1} end");
	expect_allowed_twice("local function f() return 1 end\n"
			     "function h() local first = f() == 1\n f = function() return 2 end\n"
			     " return {allow = first} end");
	expect_allowed_twice("function h() local first = type(helper) == 'nil'\n"
			     " helper = function() end\n _G.other = 1\n"
			     " return {allow = first and _G.other == 1} end");
	expect_allowed_twice("function h() local first = cocod.state == nil\n"
			     " pcall(function() cocod.state = 1 end)\n"
			     " return {allow = first} end");
	expect_failure("seen = {}\nfunction h() seen[#seen + 1] = 1 end", "t.lua:2: attempt to modify a read-only table");
	expect_failure("seen = {}\nfunction h() table.insert(seen, 1) end", "read-only table");
	expect_failure("seen = {}\nfunction h() rawset(seen, 1, 1) end", "read-only table");
	expect_failure("local mt = {}\nlocal t = setmetatable({}, mt)\n"
		       "function h() getmetatable(t).__index = {} end",
		       "attempt to index a boolean value");
	expect_failure("local mt = {}\n"
		       "function h() getmetatable(setmetatable({}, mt)).__index = {} end",
		       "read-only table");
	expect_failure("function h() setmetatable(string, {}) end", "protected metatable");
}

static void frozen_globals_read_normally(void **state)
{
	sandbox_policy *p = compile(
	    "LIST = {'a', 'b', 'c'}\nMAP = {x = 1, y = {z = 2}}\n"
	    "local Class = {}\nClass.__index = Class\n"
	    "function Class.new(v) return setmetatable({v = v}, Class) end\n"
	    "function Class:get() return self.v end\n"
	    "function h()\n"
	    " local n = 0\n for _, v in ipairs(LIST) do n = n + 1 end\n"
	    " local k = 0\n for _ in pairs(MAP) do k = k + 1 end\n"
	    " local obj = Class.new(7)\n"
	    " return {allow = #LIST == 3 and n == 3 and k == 2 and MAP.y.z == 2\n"
	    "   and rawget(MAP, 'x') == 1 and rawlen(LIST) == 3 and next(MAP) ~= nil\n"
	    "   and table.concat(LIST, ',') == 'a,b,c' and obj:get() == 7\n"
	    "   and getmetatable(obj) ~= nil, list = LIST} end");
	struct sandbox_decision d;
	for (int i = 0; i < 2; i++) {
		sandbox_call(p, NULL, 0, &d);
		if (d.failed || !d.allow)
			fail_msg("failed=%d allow=%d reason=%s", d.failed, d.allow, d.reason);
		char *s = json_dumps(json_object_get(d.result, "list"), JSON_COMPACT);
		assert_string_equal(s, "[\"a\",\"b\",\"c\"]");
		free(s);
		sandbox_decision_fini(&d);
	}
	sandbox_free(p);
}

static void oversized_and_deep_inputs_are_refused(void **state)
{
	sandbox_policy *p = compile("function h(pod) return {allow = true} end");
	json_t *pod = json_pack("{s:{s:[{s:s}]}}", "spec", "containers", "image", "x");
	char *big = xmalloc(70001);
	memset(big, 'a', 70000);
	big[70000] = '\0';
	json_object_set_new(json_array_get(json_object_get(json_object_get(pod, "spec"),
							   "containers"), 0),
			    "image", json_string(big));
	struct sandbox_decision d;
	sandbox_call(p, &pod, 1, &d);
	assert_int_equal(d.failed, 1);
	assert_string_equal(d.reason, "input argument 1: string of 70000 bytes (limit 65536) at "
				      "$.spec.containers[0].image");
	sandbox_decision_fini(&d);
	json_decref(pod);
	free(big);

	json_t *deep = json_array();
	for (int i = 0; i < 40; i++)
		deep = json_pack("[o]", deep);
	sandbox_call(p, &deep, 1, &d);
	assert_int_equal(d.failed, 1);
	assert_non_null(strstr(d.reason, "nesting deeper than 32 levels"));
	sandbox_decision_fini(&d);
	json_decref(deep);

	/* a 5 MB input fits max_string only if raised, and then hits memory */
	struct sandbox_limits lim;
	sandbox_default_limits(&lim);
	lim.max_string = 64u << 20;
	sandbox_policy *q = compile_lim("function h(s) return {allow = true} end", "h", &lim);
	char *huge = xcalloc(9u << 20, 1);
	memset(huge, 'b', (9u << 20) - 1);
	json_t *hs = json_string(huge);
	sandbox_call(q, &hs, 1, &d);
	assert_int_equal(d.failed, 1);
	assert_non_null(strstr(d.reason, "memory limit of 8388608 bytes exceeded while converting "
					 "argument 1"));
	sandbox_decision_fini(&d);
	json_decref(hs);
	free(huge);
	sandbox_free(q);
	sandbox_free(p);
}

static void wrong_return_values_fail_closed(void **state)
{
	expect_failure("function h() return 'yes' end", "t.lua:1: h returned string, not a decision");
	expect_failure("function h() end", "h returned nil");
	expect_failure("function h() return {reason = 'x'} end", "'allow' is nil, not a boolean");
	expect_failure("function h() return {allow = 'true'} end", "'allow' is string");
	expect_failure("function h() return {allow = 1} end", "'allow' is number");
	expect_failure("function h() return {allow = true, reason = 42} end",
		       "'reason' is number");
	expect_failure("function h() return {allow = true, [1] = 2} end", "number key");
}

static void unconvertible_results_are_refused(void **state)
{
	expect_failure("function h() local t = {}\n t.self = t\n return {allow = true, x = t} end",
		       "cycle (a table that contains itself) at x.self");
	expect_failure("function h() return {allow = true, f = {g = print or h}} end",
		       "function value (not convertible to JSON) at f.g");
	expect_failure("function h() return {allow = true, n = 0/0} end", "non-finite number at n");
	expect_failure("function h() return {allow = true, n = {1/0}} end",
		       "non-finite number at n[1]");
	expect_failure("function h() return {allow = true, m = {1, x = 2}} end",
		       "mixing string keys with array elements at m");
	expect_failure("function h() return {allow = true, m = {[1] = 1, [3] = 3}} end",
		       "array with holes");
	expect_failure("function h() return {allow = true, s = '\\xff'} end", "not valid UTF-8 at s");
	expect_failure("function h() local t = {}\n for i = 1, 40 do t = {t} end\n"
		       " return {allow = true, t = t} end",
		       "nesting deeper than 32 levels");
}

static void killed_call_leaves_next_call_working(void **state)
{
	sandbox_policy *p = compile("function h(req)\n if req.spin then while true do end end\n"
				    " if req.bomb then local s = string.rep('x', 1 << 30) end\n"
				    " return {allow = true, reason = 'fine'} end");
	const char *inputs[] = {"{\"spin\":true}", "{}", "{\"bomb\":true}", "{}"};
	const int want_failed[] = {1, 0, 1, 0};
	for (int i = 0; i < 4; i++) {
		struct sandbox_decision d;
		call_json(p, &d, 1, inputs[i]);
		if (d.failed != want_failed[i])
			fail_msg("call %d: failed=%d reason=%s", i, d.failed, d.reason);
		assert_int_equal(d.allow, !want_failed[i]);
		sandbox_decision_fini(&d);
	}
	sandbox_free(p);
}

static void helpers_give_known_answers(void **state)
{
	sandbox_policy *p = compile(
	    "function h()\n"
	    " local function chain(list)\n"
	    "  for i = 1, #list - 1 do\n"
	    "   if cocod.semver_compare(list[i], list[i + 1]) ~= -1 then return list[i] end\n"
	    "   if cocod.semver_compare(list[i + 1], list[i]) ~= 1 then return list[i + 1] end\n"
	    "  end\n  return 'ok'\n end\n"
	    " local bad, msg = cocod.hex_decode('zz')\n"
	    " local q = {cocod.quantity('100m'), cocod.quantity('1Gi'), cocod.quantity(2),\n"
	    "            cocod.quantity('0.5')}\n"
	    " local dec = cocod.json_decode('{\"a\":[1,2,{}],\"b\":null,\"c\":[]}')\n"
	    " return {allow = true,\n"
	    "  sha256 = cocod.sha256('abc'), sha384 = cocod.sha384('abc'),\n"
	    "  hex = cocod.hex_encode('\\0\\1\\254\\255'), unhex = cocod.hex_decode('48692E'),\n"
	    "  bad = bad == nil and msg, b64 = {cocod.base64_encode(''), cocod.base64_encode('f'),\n"
	    "   cocod.base64_encode('fo'), cocod.base64_encode('foo'), cocod.base64_encode('foobar')},\n"
	    "  unb64 = cocod.base64_decode('Zm9vYmE='), unb64nopad = cocod.base64_decode('Zm9vYg'),\n"
	    "  b64url = cocod.base64url_encode('\\251\\255\\254'), unb64url = cocod.base64url_decode('-__-') == '\\251\\255\\254',\n"
	    "  badb64 = cocod.base64_decode('Zm9v YmE=') == nil,\n"
	    "  json = cocod.json_encode({b = {1, 2}, a = cocod.null, c = cocod.array(), d = {}}),\n"
	    "  dec = {dec.b == cocod.null, #dec.a, cocod.is_array(dec.c), cocod.is_array(dec.a[3])},\n"
	    "  q = q, qbad = cocod.quantity('1gi') == nil,\n"
	    "  semver = chain({'1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta',\n"
	    "                  '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1',\n"
	    "                  '1.2.0', 'v1.10.0', '2.0.0'}),\n"
	    "  same = cocod.semver_compare('1.0.0+build.1', '1.0.0'),\n"
	    "  badsemver = cocod.semver_compare('1.0', '1.0.0') == nil\n"
	    "      and cocod.semver_compare('01.0.0', '1.0.0') == nil,\n"
	    " }\nend");
	struct sandbox_decision d;
	sandbox_call(p, NULL, 0, &d);
	if (d.failed)
		fail_msg("%s", d.reason);
	json_t *r = d.result;
#define STR(k) json_string_value(json_object_get(r, k))
	assert_string_equal(STR("sha256"),
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_string_equal(STR("sha384"),
			    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
			    "8086072ba1e7cc2358baeca134c825a7");
	assert_string_equal(STR("hex"), "0001feff");
	assert_string_equal(STR("unhex"), "Hi.");
	assert_string_equal(STR("bad"), "hex_decode: invalid digit at offset 0");
	char *b64 = json_dumps(json_object_get(r, "b64"), JSON_COMPACT);
	assert_string_equal(b64, "[\"\",\"Zg==\",\"Zm8=\",\"Zm9v\",\"Zm9vYmFy\"]");
	free(b64);
	assert_string_equal(STR("unb64"), "fooba");
	assert_string_equal(STR("unb64nopad"), "foob");
	assert_string_equal(STR("b64url"), "-__-");
	assert_true(json_is_true(json_object_get(r, "badb64")));
	assert_string_equal(STR("json"), "{\"a\":null,\"b\":[1,2],\"c\":[],\"d\":{}}");
	char *dec = json_dumps(json_object_get(r, "dec"), JSON_COMPACT);
	assert_string_equal(dec, "[true,3,true,false]");
	free(dec);
	char *q = json_dumps(json_object_get(r, "q"), JSON_COMPACT);
	assert_string_equal(q, "[100,1073741824000,2000,500]");
	free(q);
	assert_true(json_is_true(json_object_get(r, "qbad")));
	assert_string_equal(STR("semver"), "ok");
	assert_int_equal(json_integer_value(json_object_get(r, "same")), 0);
	assert_true(json_is_true(json_object_get(r, "badsemver")));
	assert_true(json_is_true(json_object_get(r, "unb64url")));
#undef STR
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static void log_lines_are_kept_and_sanitised(void **state)
{
	enum log_level old = log_get_level();
	log_set_level(LOG_ERROR);
	sandbox_policy *p = compile("function h()\n cocod.log('warn', 'line one\\nforged')\n"
				    " cocod.log('plain')\n for i = 1, 100 do cocod.log('debug', i) end\n"
				    " return {allow = true} end");
	struct sandbox_decision d;
	sandbox_call(p, NULL, 0, &d);
	assert_int_equal(d.failed, 0);
	assert_int_equal(json_array_size(d.logs), 32);
	json_t *l0 = json_array_get(d.logs, 0), *l1 = json_array_get(d.logs, 1);
	assert_string_equal(json_string_value(json_object_get(l0, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(l0, "msg")), "line one?forged");
	assert_string_equal(json_string_value(json_object_get(l1, "level")), "info");
	assert_string_equal(json_string_value(json_object_get(l1, "msg")), "plain");
	sandbox_decision_fini(&d);
	sandbox_free(p);
	expect_failure("function h() cocod.log('loud', 'x') end", "level must be error, warn");
	log_set_level(old);
}

static void default_policies_pass_their_tests(void **state)
{
	int n = 0;
	for (const struct sandbox_builtin *b = sandbox_builtins; b->hook; b++, n++) {
		sandbox_policy *p = NULL;
		struct err e = {0};
		char name[64];
		snprintf(name, sizeof name, "%s.lua", b->name);
		if (sandbox_compile(name, b->text, b->len, b->hook, NULL, &p, &e) != 0)
			fail_msg("%s: %s", name, e.msg);
		json_t *report = NULL;
		int rc = sandbox_run_tests(p, &report, &e);
		if (rc != 0) {
			char *s = json_dumps(report, JSON_INDENT(1));
			fail_msg("%s: %s\n%s", name, e.msg, s);
		}
		int passed = (int)json_integer_value(json_object_get(report, "passed"));
		print_message("%s (%s): %d tests passed\n", name, b->hook, passed);
		assert_true(passed >= 5);
		assert_int_equal(json_integer_value(json_object_get(report, "failed")), 0);
		json_decref(report);
		sandbox_free(p);
	}
	assert_int_equal(n, 4);
	assert_non_null(sandbox_builtin_find("admit"));
	assert_non_null(sandbox_builtin_find("appraise"));
	assert_non_null(sandbox_builtin_find("release"));
	assert_non_null(sandbox_builtin_find("agent"));
	assert_null(sandbox_builtin_find("nope"));
}

static void failing_policy_tests_are_reported(void **state)
{
	sandbox_policy *p = compile("function h(x) return {allow = x == 1, reason = 'x is ' .. x} end\n"
				    "tests = {\n"
				    " {name = 'one', input = {1}, expect = {allow = true, reason = 'x is 1'}},\n"
				    " {name = 'two', input = {2}, expect = {allow = true}},\n"
				    " {name = 'err', input = {}, expect = {allow = false}},\n"
				    "}\n");
	json_t *report = NULL;
	struct err e = {0};
	assert_int_equal(sandbox_run_tests(p, &report, &e), ERR_INVALID);
	if (!strstr(e.msg, "2 of 3 tests failed; first: two: allow differs"))
		fail_msg("%s", e.msg);
	assert_int_equal(json_integer_value(json_object_get(report, "passed")), 1);
	assert_int_equal(json_integer_value(json_object_get(report, "failed")), 2);
	json_t *c2 = json_array_get(json_object_get(report, "cases"), 2);
	assert_true(json_is_false(json_object_get(c2, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(c2, "reason")),
			       "the policy failed: t.lua:1: attempt to concatenate"));
	json_decref(report);
	sandbox_free(p);

	p = compile("function h() return {allow = true} end");
	assert_int_equal(sandbox_run_tests(p, &report, &e), 0);
	assert_int_equal(json_integer_value(json_object_get(report, "passed")), 0);
	json_decref(report);
	sandbox_free(p);
}

static sandbox_policy *builtin(const char *hook)
{
	const struct sandbox_builtin *b = sandbox_builtin_find(hook);
	sandbox_policy *p = NULL;
	struct err e = {0};
	assert_non_null(b);
	if (sandbox_compile(b->name, b->text, b->len, b->hook, NULL, &p, &e) != 0)
		fail_msg("%s", e.msg);
	return p;
}

static const char POD[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web\",\"namespace\":"
    "\"default\",\"uid\":\"0b7b4c1e-3f7e-4f55-9d1b-6f0e2b8c9a10\",\"labels\":{\"app\":\"web\"}},"
    "\"spec\":{\"runtimeClassName\":\"cocod-snp\",\"restartPolicy\":\"Always\","
    "\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\",\"schedulerName\":"
    "\"default-scheduler\",\"enableServiceLinks\":true,\"priority\":0,\"securityContext\":{},"
    "\"containers\":[{\"name\":\"app\",\"image\":\"nginx:1.25\",\"imagePullPolicy\":"
    "\"IfNotPresent\",\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}],\"env\":[{\"name\":"
    "\"MODE\",\"value\":\"prod\"}],\"resources\":{\"requests\":{\"cpu\":\"250m\"}},"
    "\"terminationMessagePath\":\"/dev/termination-log\",\"terminationMessagePolicy\":\"File\"}]}}";

static void default_policies_decide_as_documented(void **state)
{
	sandbox_policy *p = builtin("admit");
	struct sandbox_decision d;
	call_json(p, &d, 2, POD, "{\"operation\":\"CREATE\",\"namespace\":\"default\"}");
	assert_int_equal(d.failed, 0);
	assert_int_equal(d.allow, 1);
	json_t *pod = json_object_get(d.result, "pod");
	json_t *c0 = json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
	json_t *lim = json_object_get(json_object_get(c0, "resources"), "limits");
	assert_string_equal(json_string_value(json_object_get(lim, "cpu")), "1");
	assert_string_equal(json_string_value(json_object_get(lim, "memory")), "512Mi");
	assert_null(json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"),
				    "cocod.io/admitted-by"));
	assert_int_equal(json_integer_value(json_object_get(
			     json_array_get(json_object_get(c0, "ports"), 0), "containerPort")),
			 80);
	sandbox_decision_fini(&d);
	sandbox_free(p);

	p = builtin("release");
	call_json(p, &d, 2, "\"default/key/app\"", "{\"ear.status\":\"warning\",\"sim\":true}");
	assert_int_equal(d.allow, 0);
	assert_non_null(strstr(d.reason, "dev mode"));
	sandbox_decision_fini(&d);
	sandbox_free(p);

	p = builtin("agent");
	call_json(p, &d, 2, "{\"op\":\"exec\"}", "{}");
	assert_int_equal(d.allow, 0);
	sandbox_decision_fini(&d);
	call_json(p, &d, 2, "{\"op\":\"logs\"}", "{}");
	assert_int_equal(d.allow, 1);
	sandbox_decision_fini(&d);
	sandbox_free(p);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Times `n` calls of `p` with `args`; prints median and p99 (and checks
 * every call allowed). */
static void measure(const char *what, sandbox_policy *p, json_t **args, int nargs, int n)
{
	uint64_t *t = xcalloc((size_t)n, sizeof *t);
	uint64_t instr = 0;
	for (int i = 0; i < n; i++) {
		struct sandbox_decision d;
		uint64_t t0 = now_ns();
		sandbox_call(p, args, nargs, &d);
		t[i] = now_ns() - t0;
		if (d.failed || !d.allow)
			fail_msg("%s call %d: %s", what, i, d.reason);
		instr = d.instructions;
		sandbox_decision_fini(&d);
	}
	qsort(t, (size_t)n, sizeof *t, cmp_u64);
	print_message("%-34s median %6.2f us  p99 %6.2f us  (~%llu instructions)\n", what,
		      (double)t[n / 2] / 1e3, (double)t[n * 99 / 100] / 1e3,
		      (unsigned long long)instr);
	free(t);
}

static void median_call_cost(void **state)
{
	json_error_t je;
	json_t *args[2] = {json_loads(POD, 0, &je),
			   json_pack("{s:s,s:s,s:s,s:b}", "operation", "CREATE", "namespace",
				     "default", "user", "admin", "dry_run", 0)};
	sandbox_policy *p = builtin("admit");
	measure("admission (default policy)", p, args, 2, 10000);
	sandbox_free(p);
	p = compile("function h() return {allow = true} end");
	measure("empty hook, same path, no args", p, NULL, 0, 10000);
	measure("empty hook, same path, pod args", p, args, 2, 10000);
	sandbox_free(p);
	json_decref(args[0]);
	json_decref(args[1]);

	const char *m = "8f6c1bd2c5a3c8e9d0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b";
	const char *h = "aa11bb22cc33dd44ee55ff6600778899aa11bb22cc33dd44ee55ff6600778899";
	json_t *ap[2] = {
	    json_pack("{s:s,s:b,s:s,s:s,s:s,s:{s:b,s:b,s:b},s:s,s:{s:i,s:i,s:i,s:i}}", "tee", "snp",
		      "sim", 0, "measurement", m, "host_data", h, "report_data", "00", "policy",
		      "debug", 0, "migrate_ma", 0, "smt", 1, "tcb_status", "UpToDate", "tcb",
		      "bootloader", 3, "tee", 0, "snp", 8, "microcode", 115),
	    json_pack("{s:[s],s:[s],s:{s:i,s:i,s:i,s:i}}", "measurement", m, "host_data", h,
		      "tcb_min", "bootloader", 3, "tee", 0, "snp", 8, "microcode", 115)};
	p = builtin("appraise");
	measure("appraisal (default policy)", p, ap, 2, 10000);
	sandbox_free(p);
	json_decref(ap[0]);
	json_decref(ap[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decision_fields_and_json_round_trip),
	    cmocka_unit_test(compile_errors_name_chunk_and_line),
	    cmocka_unit_test(runtime_errors_carry_line_numbers),
	    cmocka_unit_test(outside_world_is_unreachable),
	    cmocka_unit_test(string_dump_then_load_is_refused),
	    cmocka_unit_test(memory_bombs_hit_the_memory_limit),
	    cmocka_unit_test(infinite_loops_are_killed),
	    cmocka_unit_test(time_limit_is_enforced),
	    cmocka_unit_test(deep_recursion_is_contained),
	    cmocka_unit_test(gc_metamethods_are_refused),
	    cmocka_unit_test(string_metatable_is_protected),
	    cmocka_unit_test(hostile_patterns_are_refused_fast),
	    cmocka_unit_test(benign_patterns_still_work),
	    cmocka_unit_test(calls_cannot_keep_state),
	    cmocka_unit_test(frozen_globals_read_normally),
	    cmocka_unit_test(oversized_and_deep_inputs_are_refused),
	    cmocka_unit_test(wrong_return_values_fail_closed),
	    cmocka_unit_test(unconvertible_results_are_refused),
	    cmocka_unit_test(killed_call_leaves_next_call_working),
	    cmocka_unit_test(helpers_give_known_answers),
	    cmocka_unit_test(log_lines_are_kept_and_sanitised),
	    cmocka_unit_test(default_policies_pass_their_tests),
	    cmocka_unit_test(failing_policy_tests_are_reported),
	    cmocka_unit_test(default_policies_decide_as_documented),
	    cmocka_unit_test(median_call_cost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
