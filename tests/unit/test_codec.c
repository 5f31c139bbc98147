/* Unit tests for codec: JSON and YAML bodies decode to the same json_t, the
 * YAML 1.2 core-schema type table, errors that name line and column, the
 * depth/node/alias bounds, tags, multi-document streams, content types, the
 * YAML emitter's layout and round trip, Accept negotiation, and the compact
 * JSON writer matching json_dumps byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "codec.h"

/* ---- helpers ---------------------------------------------------------- */

static json_t *parse_json(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fail_msg("bad expectation %s: %s", text, je.text);
	return v;
}

static void assert_json_eq(const json_t *got, const json_t *want)
{
	if (!json_equal(got, want)) {
		char *g = codec_encode_json(got, 0, NULL), *w = codec_encode_json(want, 0, NULL);
		print_error("got  %s\nwant %s\n", g ? g : "(null)", w ? w : "(null)");
		free(g);
		free(w);
		fail();
	}
}

/* Decodes `body` (any top-level value) and compares with JSON `want`. */
static void assert_decodes(const char *body, const char *ct, const char *want)
{
	struct err e = {0};
	json_t *v = NULL, *w = parse_json(want);
	int rc = codec_decode_any(body, strlen(body), ct, &v, &e);
	if (rc != 0)
		fail_msg("decoding %s failed: %s", body, e.msg);
	assert_json_eq(v, w);
	json_decref(v);
	json_decref(w);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* Decodes `body` as one object, expects ERR_BAD_REQUEST, returns the
 * message (static storage). */
static const char *decode_error(const char *body, size_t len, const char *ct)
{
	static struct err e;
	json_t *v = NULL;
	err_clear(&e);
	int rc = codec_decode(body, len, ct, &v, &e);
	if (rc == 0) {
		json_decref(v);
		fail_msg("decoding %.80s succeeded", body);
	}
	assert_int_equal(rc, ERR_BAD_REQUEST);
	assert_int_equal(e.code, rc);
	assert_null(v);
	return e.msg;
}

static const char *error_of(const char *body, const char *ct)
{
	return decode_error(body, strlen(body), ct);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static char *repeat(const char *unit, size_t times, const char *tail)
{
	size_t u = strlen(unit), t = strlen(tail);
	char *s = xmalloc(u * times + t + 1);
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * u, unit, u);
	memcpy(s + u * times, tail, t + 1);
	return s;
}

/* ---- decoding --------------------------------------------------------- */

static void json_and_yaml_pods_decode_to_equal_values(void **state)
{
	static const char json[] =
	    "{\"apiVersion\": \"v1\", \"kind\": \"Pod\",\n"
	    " \"metadata\": {\"name\": \"web\", \"labels\": {\"app\": \"web\"}},\n"
	    " \"spec\": {\"containers\": [{\"name\": \"nginx\", \"image\": \"nginx:1.25\",\n"
	    "   \"ports\": [{\"containerPort\": 80}], \"tty\": false,\n"
	    "   \"resources\": {\"limits\": {\"cpu\": \"500m\"}}}],\n"
	    "  \"nodeSelector\": null, \"ratio\": 0.5}}";
	static const char yaml[] = "apiVersion: v1\n"
	                           "kind: Pod\n"
	                           "metadata:\n"
	                           "  name: web\n"
	                           "  labels: {app: web}\n"
	                           "spec:\n"
	                           "  containers:\n"
	                           "  - name: nginx   # comment\n"
	                           "    image: \"nginx:1.25\"\n"
	                           "    ports:\n"
	                           "    - containerPort: 80\n"
	                           "    tty: false\n"
	                           "    resources:\n"
	                           "      limits:\n"
	                           "        cpu: 500m\n"
	                           "  nodeSelector:\n"
	                           "  ratio: 0.5\n";
	struct err e = {0};
	json_t *a = NULL, *b = NULL;
	assert_int_equal(codec_decode(json, strlen(json), "application/json", &a, &e), 0);
	assert_int_equal(codec_decode(yaml, strlen(yaml), "application/yaml", &b, &e), 0);
	assert_json_eq(a, b);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(a, "metadata"), "name")), "web");
	/* keys keep document order */
	assert_string_equal(json_object_iter_key(json_object_iter(a)), "apiVersion");
	json_decref(a);
	json_decref(b);
}

static void yaml_plain_scalars_follow_the_core_schema(void **state)
{
	static const struct {
		const char *yaml, *json;
	} table[] = {
	    {"true", "true"},
	    {"True", "true"},
	    {"TRUE", "true"},
	    {"false", "false"},
	    {"FALSE", "false"},
	    {"null", "null"},
	    {"Null", "null"},
	    {"~", "null"},
	    {"", "null"},
	    {"12", "12"},
	    {"-3", "-3"},
	    {"+7", "7"},
	    {"012", "12"},
	    {"0o17", "15"},
	    {"0x1F", "31"},
	    {"1.5", "1.5"},
	    {"-0.25", "-0.25"},
	    {".5", "0.5"},
	    {"1.", "1.0"},
	    {"1e3", "1000.0"},
	    {"2E-2", "0.02"},
	    {"yes", "\"yes\""},
	    {"no", "\"no\""},
	    {"on", "\"on\""},
	    {"off", "\"off\""},
	    {"y", "\"y\""},
	    {"tRue", "\"tRue\""},
	    {"0o8", "\"0o8\""},
	    {"0x", "\"0x\""},
	    {"1.2.3", "\"1.2.3\""},
	    {"1e", "\"1e\""},
	    {"500m", "\"500m\""},
	    {"1_000", "\"1_000\""},
	    {"'true'", "\"true\""},
	    {"\"12\"", "\"12\""},
	    {"'~'", "\"~\""},
	    {"\"\"", "\"\""},
	    {"a b", "\"a b\""},
	    {"é", "\"é\""},
	    {"9223372036854775807", "9223372036854775807"},
	    {"-9223372036854775808", "-9223372036854775808"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		char body[128], want[128];
		snprintf(body, sizeof body, "v: %s\n", table[i].yaml);
		snprintf(want, sizeof want, "{\"v\": %s}", table[i].json);
		assert_decodes(body, NULL, want);
	}
}

static void yaml_numbers_json_cannot_hold_are_rejected(void **state)
{
	assert_contains(error_of("v: .inf\n", NULL), "JSON cannot represent infinity or NaN");
	assert_contains(error_of("v: -.Inf\n", NULL), "JSON cannot represent infinity or NaN");
	assert_contains(error_of("v: .nan\n", NULL), "JSON cannot represent infinity or NaN");
	assert_string_equal(error_of("a: 1\nv: 9223372036854775808\n", NULL),
	                    "integer 9223372036854775808 out of the 64-bit range at line 2, "
	                    "column 4");
	assert_contains(error_of("v: 1e400\n", NULL), "out of range at line 1, column 4");
	/* quoted, they are just strings */
	assert_decodes("v: '.inf'\n", NULL, "{\"v\": \".inf\"}");
}

static void yaml_mapping_keys_become_strings(void **state)
{
	assert_decodes("1: a\ntrue: b\n~: c\n'x': d\n", NULL,
	               "{\"1\": \"a\", \"true\": \"b\", \"~\": \"c\", \"x\": \"d\"}");
	assert_string_equal(error_of("a: 1\n[x]: 2\n", NULL),
	                    "mapping keys must be strings, found a sequence at line 2, column 1");
	assert_string_equal(error_of("a:\n  ? {b: 1}\n  : 2\n", NULL),
	                    "mapping keys must be strings, found a mapping at line 2, column 5");
}

static void json_errors_name_line_and_column(void **state)
{
	assert_string_equal(error_of("{\n  \"a\": 1,\n  \"b\": {\"c\": 1\n  x\n}", NULL),
	                    "invalid JSON at line 4, column 3: '}' expected near 'x'");
	assert_string_equal(error_of("{\"a\": [1,\n   2 x\n}", "application/json"),
	                    "invalid JSON at line 2, column 6: ']' expected near 'x'");
	/* jansson points at the last character it read: the end of the token */
	assert_string_equal(error_of("{\"a\": tru}", NULL),
	                    "invalid JSON at line 1, column 9: invalid token near 'tru'");
	assert_contains(error_of("{\"a\": 1", NULL), "invalid JSON at line 1, column 7:");
	assert_contains(error_of("{\"a\": 1} x", NULL), "invalid JSON at line 1, column 10:");
	/* a YAML flow mapping sniffed as JSON is reported as JSON */
	assert_contains(error_of("{a: 1}", NULL), "invalid JSON at line 1, column 2:");
}

static void yaml_errors_name_line_and_column(void **state)
{
	assert_string_equal(error_of("a: 1\nb:\n  c: 2\n  d: e: f\n", NULL),
	                    "invalid YAML at line 4, column 7: mapping values are not allowed "
	                    "in this context");
	assert_string_equal(error_of("a: 1\nb:\n  c: 2\n d: 3\n", NULL),
	                    "invalid YAML at line 4, column 2: did not find expected key "
	                    "(while parsing a block mapping)");
	assert_contains(error_of("a: [1, 2\n", NULL), "invalid YAML at line 2, column 1:");
	assert_contains(error_of("a:\n\tb: 1\n", NULL), "invalid YAML at line 2, column 1:");
	assert_string_equal(error_of("a: 1\nb: \xff\n", "application/yaml"),
	                    "invalid YAML at line 2, column 4: invalid leading UTF-8 octet");
}

static void duplicate_keys_are_rejected_with_position(void **state)
{
	assert_string_equal(error_of("{\"a\": 1, \"a\": 2}", NULL),
	                    "invalid JSON at line 1, column 12: duplicate object key near '\"a\"'");
	assert_string_equal(error_of("a: 1\nb:\n  c: 1\n  c: 2\n", NULL),
	                    "duplicate key \"c\" at line 4, column 3");
	assert_string_equal(error_of("{x: 1, 'x': 2}", "text/yaml"),
	                    "duplicate key \"x\" at line 1, column 8");
	/* the same key in sibling objects is fine */
	assert_decodes("a: {k: 1}\nb: {k: 2}\n", NULL, "{\"a\": {\"k\": 1}, \"b\": {\"k\": 2}}");
}

/* `levels` nested arrays: "[[...]]". */
static char *nested_arrays(size_t levels)
{
	char *open = repeat("[", levels, ""), *close = repeat("]", levels, "");
	char *s = xasprintf("%s%s", open, close);
	free(open);
	free(close);
	return s;
}

/* `levels` nested block mappings, one per line: "a:\n  a:\n    a: 1\n". */
static char *nested_block_maps(size_t levels)
{
	struct buf b;
	buf_init(&b);
	for (size_t i = 0; i < levels; i++)
		buf_printf(&b, "%*sa:%s", (int)(2 * i), "", i + 1 < levels ? "\n" : " 1\n");
	return b.data;
}

static void nesting_of_64_levels_is_accepted_65_rejected(void **state)
{
	struct err e = {0};
	json_t *v = NULL;
	char *ok = nested_arrays(64), *bad = nested_arrays(65);
	assert_int_equal(codec_decode_any(ok, strlen(ok), NULL, &v, &e), 0);
	json_decref(v);
	assert_int_equal(codec_decode_any(ok, strlen(ok), "application/yaml", &v, &e), 0);
	json_decref(v);
	assert_int_equal(codec_decode_any(bad, strlen(bad), NULL, &v, &e), ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "nesting deeper than 64 levels at line 1, column 65");
	assert_int_equal(codec_decode_any(bad, strlen(bad), "application/yaml", &v, &e),
	                 ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "nesting deeper than 64 levels at line 1, column 65");
	free(ok);
	free(bad);

	char *objs = repeat("{\"a\":", 65, "1");
	assert_string_equal(error_of(objs, NULL),
	                    "nesting deeper than 64 levels at line 1, column 321");
	free(objs);
	/* brackets inside strings (escaped quotes included) do not count */
	char *brackets = repeat("[", 100, "\"{{");
	char *str = xasprintf("{\"s\": \"%.100s\\\"{{\"}", brackets);
	json_t *want = json_pack("{s:s}", "s", brackets);
	assert_int_equal(codec_decode(str, strlen(str), NULL, &v, &e), 0);
	assert_json_eq(v, want);
	json_decref(v);
	json_decref(want);
	free(str);
	free(brackets);

	char *block_ok = nested_block_maps(64), *block_bad = nested_block_maps(65);
	assert_int_equal(codec_decode(block_ok, strlen(block_ok), NULL, &v, &e), 0);
	json_decref(v);
	assert_string_equal(error_of(block_bad, NULL),
	                    "nesting deeper than 64 levels at line 65, column 129");
	free(block_ok);
	free(block_bad);
}

static void depth_bomb_is_rejected_quickly(void **state)
{
	static const char *const units[][2] = {
	    {"[", NULL},  {"[", "application/yaml"},    {"{\"a\":", NULL},
	    {"- ", NULL}, {"a: {", "application/yaml"},
	};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		struct timespec t0;
		struct err e = {0};
		json_t *v = NULL;
		char *bomb = repeat(units[i][0], 10000, "x");
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(codec_decode_any(bomb, strlen(bomb), units[i][1], &v, &e),
		                 ERR_BAD_REQUEST);
		assert_true(seconds_since(&t0) < 0.5);
		assert_contains(e.msg, "nesting deeper than 64 levels");
		assert_null(v);
		free(bomb);
	}
}

static void node_count_is_bounded(void **state)
{
	struct err e = {0};
	json_t *v = NULL;
	/* the array plus 199999 elements is exactly the budget */
	char *ok = repeat("0,", 199998, "0]"), *bad = repeat("0,", 199999, "0]");
	char *okb = xasprintf("[%s", ok), *badb = xasprintf("[%s", bad);
	assert_int_equal(codec_decode_any(okb, strlen(okb), NULL, &v, &e), 0);
	assert_int_equal(json_array_size(v), 199999);
	json_decref(v);
	assert_int_equal(codec_decode_any(badb, strlen(badb), NULL, &v, &e), ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "more than 200000 values at line 1, column 400000");
	assert_int_equal(codec_decode_any(badb, strlen(badb), "application/yaml", &v, &e),
	                 ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "more than 200000 values at line 1, column 400000");
	free(ok);
	free(bad);
	free(okb);
	free(badb);
}

static void yaml_billion_laughs_is_rejected(void **state)
{
	static const char bomb[] = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
	                           "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	                           "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	                           "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	                           "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
	                           "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	                           "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
	                           "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
	                           "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* lines a..e hold 74737 nodes (keys included): an alias to e costs 66430,
	 * so the second *e of line f passes 200000 */
	assert_string_equal(error_of(bomb, NULL), "more than 200000 values at line 6, column 12");
	assert_true(seconds_since(&t0) < 0.5);
}

static void yaml_aliases_expand_to_independent_copies(void **state)
{
	static const char doc[] = "base: &b {cpu: 1, tags: [x]}\nother: *b\nname: &n web\n"
	                          "again: *n\n*n : keyed\n";
	struct err e = {0};
	json_t *v = NULL,
	       *want = parse_json(
	           "{\"base\": {\"cpu\": 1, \"tags\": [\"x\"]}, \"other\": {\"cpu\": 1, \"tags\": "
	           "[\"x\"]}, \"name\": \"web\", \"again\": \"web\", \"web\": \"keyed\"}");
	assert_int_equal(codec_decode(doc, strlen(doc), NULL, &v, &e), 0);
	assert_json_eq(v, want);
	json_object_set_new(json_object_get(v, "other"), "cpu", json_integer(2));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "base"), "cpu")), 1);
	json_decref(v);
	json_decref(want);
}

static void many_anchors_and_aliases_decode_quickly(void **state)
{
	struct buf b;
	struct err e = {0};
	struct timespec t0;
	json_t *v = NULL;
	buf_init(&b);
	for (int i = 0; i < 90000; i++)
		buf_printf(&b, "- &a%d x%d\n", i, i);
	for (int i = 0; i < 90000; i++)
		buf_adds(&b, "- *a0\n");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(codec_decode_any(b.data, b.len, NULL, &v, &e), 0);
	assert_true(seconds_since(&t0) < 2.0);
	assert_int_equal(json_array_size(v), 180000);
	assert_string_equal(json_string_value(json_array_get(v, 179999)), "x0");
	assert_string_equal(json_string_value(json_array_get(v, 89999)), "x89999");
	json_decref(v);
	buf_fini(&b);
}

static void yaml_bad_aliases_are_rejected(void **state)
{
	assert_string_equal(error_of("a: *nope\n", NULL),
	                    "alias *nope at line 1, column 4 names no earlier, complete anchor");
	assert_contains(error_of("a: &x [1, *x]\n", NULL), "alias *x at line 1, column 11");
	assert_string_equal(error_of("a: &m {k: 1}\n*m : 2\n", NULL),
	                    "mapping keys must be strings; alias *m at line 2, column 1 is not "
	                    "a string");
	/* an alias may not smuggle nesting past the limit */
	char *deep = nested_arrays(40), *wrap = repeat("[", 30, "*d"), *close = repeat("]", 30, "");
	char *doc = xasprintf("a: &d %s\nb: %s%s\n", deep, wrap, close);
	assert_string_equal(error_of(doc, NULL),
	                    "nesting deeper than 64 levels at line 2, column 34");
	free(deep);
	free(wrap);
	free(close);
	free(doc);
}

static void yaml_merge_keys_are_rejected(void **state)
{
	assert_string_equal(error_of("base: &b {a: 1}\nx:\n  <<: *b\n", NULL),
	                    "merge keys (<<) are not supported at line 3, column 3; write the "
	                    "keys out");
	/* quoted, "<<" is an ordinary key */
	assert_decodes("'<<': 1\n", NULL, "{\"<<\": 1}");
}

static void yaml_tags_are_honoured_or_rejected(void **state)
{
	assert_decodes("a: !!str 1\nb: !!str true\nc: !!int \"7\"\nd: !!float 3\n"
	               "e: !!bool 'false'\nf: !!null ''\ng: ! 12\nh: !!map {k: !!seq [1]}\n",
	               NULL,
	               "{\"a\": \"1\", \"b\": \"true\", \"c\": 7, \"d\": 3.0, \"e\": false, "
	               "\"f\": null, \"g\": \"12\", \"h\": {\"k\": [1]}}");
	assert_string_equal(error_of("a: !!int abc\n", NULL),
	                    "\"abc\" is not a valid tag:yaml.org,2002:int at line 1, column 4");
	assert_string_equal(error_of("a: !custom x\n", NULL),
	                    "unsupported tag !custom at line 1, column 4");
	assert_contains(error_of("a: !!binary aGk=\n", NULL),
	                "unsupported tag tag:yaml.org,2002:binary");
	assert_contains(error_of("a: !!map [1]\n", NULL), "unsupported tag tag:yaml.org,2002:map");
	assert_contains(error_of("a: !!seq x\n", NULL), "unsupported tag tag:yaml.org,2002:seq");
}

static void strings_with_nul_are_rejected(void **state)
{
	assert_string_equal(error_of("a: 1\nb: \"x\\0y\"\n", NULL),
	                    "string contains a NUL character at line 2, column 4");
	assert_contains(error_of("{\"a\": \"x\\u0000\"}", NULL), "invalid JSON at line 1");
}

static void one_document_is_accepted_where_one_is_expected(void **state)
{
	assert_string_equal(error_of("a: 1\n---\nb: 2\n", NULL),
	                    "a second YAML document starts at line 2; only one document is "
	                    "accepted here");
	/* empty documents around the one are harmless */
	assert_decodes("---\na: 1\n---\n", NULL, "{\"a\": 1}");
	assert_decodes("---\n---\na: 1\n...\n", NULL, "{\"a\": 1}");
	assert_string_equal(error_of("# only a comment\n", NULL),
	                    "request body holds no YAML document");
	assert_string_equal(error_of(" \n\t", NULL), "request body is empty");
}

static void decode_all_returns_every_nonempty_document(void **state)
{
	static const char yaml[] = "# header\n---\n---\na: 1\n---\n# nothing\n---\nb: [2]\n...\n";
	struct err e = {0};
	json_t *v = NULL, *want = parse_json("[{\"a\": 1}, {\"b\": [2]}]");
	assert_int_equal(codec_decode_all(yaml, strlen(yaml), NULL, &v, &e), 0);
	assert_json_eq(v, want);
	json_decref(v);
	json_decref(want);

	static const char json[] = "{\"a\": 1}\n{\"b\": 2} {\"c\": 3}\n";
	want = parse_json("[{\"a\": 1}, {\"b\": 2}, {\"c\": 3}]");
	assert_int_equal(codec_decode_all(json, strlen(json), NULL, &v, &e), 0);
	assert_json_eq(v, want);
	json_decref(v);
	json_decref(want);

	assert_int_equal(codec_decode_all("", 0, NULL, &v, &e), 0);
	assert_int_equal(json_array_size(v), 0);
	json_decref(v);
}

static void decode_all_reports_the_failing_document(void **state)
{
	struct err e = {0};
	json_t *v = NULL;
	static const char yaml[] = "a: 1\n--- [1]\n";
	assert_int_equal(codec_decode_all(yaml, strlen(yaml), NULL, &v, &e), ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "document 2 (line 2): expected an object, got array");
	static const char json[] = "{\"a\": 1}\n{\"b\": 2}\n{\"c\" 3}";
	assert_int_equal(codec_decode_all(json, strlen(json), NULL, &v, &e), ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "invalid JSON at line 3, column 6: ':' expected near '3'");
	static const char same_line[] = "{\"a\": 1} {\"b\" 2}";
	assert_int_equal(codec_decode_all(same_line, strlen(same_line), NULL, &v, &e),
	                 ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "invalid JSON at line 1, column 15: ':' expected near '2'");
	assert_int_equal(codec_decode_all("{} 5", 4, NULL, &v, &e), ERR_BAD_REQUEST);
	assert_string_equal(e.msg, "document 2: expected an object, got number");
	assert_null(v);
}

static void content_types_select_the_decoder(void **state)
{
	static const char *const json_types[] = {
	    "application/json",
	    "application/json; charset=utf-8",
	    "Application/JSON",
	    "application/merge-patch+json",
	    "application/strategic-merge-patch+json",
	};
	static const char *const yaml_types[] = {
	    "application/yaml",         "application/x-yaml",
	    "text/yaml; charset=UTF-8", "application/apply-patch+yaml",
	    " APPLICATION/YAML ",
	};
	for (size_t i = 0; i < sizeof json_types / sizeof json_types[0]; i++) {
		assert_decodes("{\"a\": 1}", json_types[i], "{\"a\": 1}");
		assert_contains(error_of("a: 1\n", json_types[i]), "invalid JSON");
	}
	for (size_t i = 0; i < sizeof yaml_types / sizeof yaml_types[0]; i++) {
		assert_decodes("a: 1\n", yaml_types[i], "{\"a\": 1}");
		assert_decodes("{\"a\": [1, 2.5]}", yaml_types[i], "{\"a\": [1, 2.5]}");
	}
	/* no type, or an empty one: sniffed */
	assert_decodes("  \n{\"a\": 1}", NULL, "{\"a\": 1}");
	assert_decodes("a: 1", "", "{\"a\": 1}");
}

static void unknown_content_type_is_415(void **state)
{
	struct err e = {0};
	json_t *v = NULL;
	int rc = codec_decode("a: 1", 4, "text/html; charset=utf-8", &v, &e);
	assert_int_equal(rc, ERR_UNSUPPORTED_MEDIA);
	assert_int_equal(err_http_status(rc), 415);
	assert_string_equal(e.msg, "unsupported media type \"text/html\"; use application/json "
	                           "or application/yaml");
	assert_null(v);
}

static void decode_requires_an_object_decode_any_does_not(void **state)
{
	assert_string_equal(error_of("[1, 2]", NULL),
	                    "expected an object at the top level, got array");
	assert_string_equal(error_of("- 1\n", NULL),
	                    "expected an object at the top level, got array");
	assert_string_equal(error_of("hello\n", NULL),
	                    "expected an object at the top level, got string");
	assert_decodes("[{\"op\": \"remove\", \"path\": \"/a\"}]", "application/json-patch+json",
	               "[{\"op\": \"remove\", \"path\": \"/a\"}]");
	assert_decodes("42", "application/yaml", "42");
	assert_decodes("\"x\"", "application/json", "\"x\"");
}

/* ---- encoding --------------------------------------------------------- */

static char *yaml_of(const json_t *v)
{
	struct buf b;
	buf_init(&b);
	codec_encode_yaml(v, &b);
	return b.data;
}

static void yaml_output_looks_like_kubectl(void **state)
{
	json_t *v = parse_json(
	    "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"web\", "
	    "\"labels\": {\"app\": \"web\"}}, \"spec\": {\"containers\": [{\"name\": \"c\", "
	    "\"args\": [\"yes\", \"8080\", \"a: b\", \"\"], \"env\": [], \"port\": 80, "
	    "\"ratio\": 0.1, \"big\": 1e300, \"whole\": 2.0, \"tty\": true, \"x\": null}], "
	    "\"script\": \"echo a\\necho b\", \"nodeSelector\": {}}}");
	char *y = yaml_of(v);
	assert_string_equal(y, "apiVersion: v1\n"
	                       "kind: Pod\n"
	                       "metadata:\n"
	                       "  name: web\n"
	                       "  labels:\n"
	                       "    app: web\n"
	                       "spec:\n"
	                       "  containers:\n"
	                       "  - name: c\n"
	                       "    args:\n"
	                       "    - \"yes\"\n"
	                       "    - \"8080\"\n"
	                       "    - 'a: b'\n"
	                       "    - \"\"\n"
	                       "    env: []\n"
	                       "    port: 80\n"
	                       "    ratio: 0.1\n"
	                       "    big: 1e+300\n"
	                       "    whole: 2.0\n"
	                       "    tty: true\n"
	                       "    x: null\n"
	                       "  script: |-\n"
	                       "    echo a\n"
	                       "    echo b\n"
	                       "  nodeSelector: {}\n");
	free(y);
	json_decref(v);
	v = json_object();
	y = yaml_of(v);
	assert_string_equal(y, "{}\n");
	free(y);
	json_decref(v);
}

static void assert_round_trip(const json_t *v)
{
	struct err e = {0};
	json_t *back = NULL;
	char *y = yaml_of(v);
	if (codec_decode_any(y, strlen(y), "application/yaml", &back, &e) != 0)
		fail_msg("YAML\n%s\ndoes not decode: %s", y, e.msg);
	if (!json_equal(v, back)) {
		char *j = codec_encode_json(v, 0, NULL);
		print_error("value %s\nencoded as\n%s", j, y);
		free(j);
		fail();
	}
	json_decref(back);
	free(y);
	size_t n;
	char *j = codec_encode_json(v, 1, &n);
	assert_int_equal(codec_decode_any(j, n, "application/json", &back, &e), 0);
	assert_true(json_equal(v, back));
	json_decref(back);
	free(j);
}

/* `s` as a document, a value, a key and a list item all round-trip. */
static void assert_string_round_trips(const char *s, size_t n)
{
	json_t *str = json_stringn(s, n), *obj = json_object(), *arr = json_array();
	assert_non_null(str);
	json_object_set(obj, "k", str);
	json_object_set_new(obj, json_string_value(str), json_integer(1));
	json_array_append(arr, str);
	json_array_append_new(arr, json_pack("{s:[O]}", "v", str));
	assert_round_trip(str);
	assert_round_trip(obj);
	assert_round_trip(arr);
	json_decref(str);
	json_decref(obj);
	json_decref(arr);
}

static void tricky_strings_round_trip_through_yaml(void **state)
{
	static const char *const strings[] = {
	    "yes",
	    "no",
	    "on",
	    "off",
	    "y",
	    "n",
	    "true",
	    "False",
	    "null",
	    "~",
	    "",
	    "1e3",
	    "1",
	    "-1",
	    "+1",
	    "012",
	    "0o7",
	    "0x1f",
	    ".5",
	    "1.",
	    ".inf",
	    "-.Inf",
	    ".NaN",
	    "1_000",
	    "12:30",
	    "2024-01-02",
	    "- a",
	    "-",
	    "--",
	    "---",
	    "...",
	    "a: b",
	    "a:",
	    ":a",
	    "#x",
	    "a #b",
	    "a#b",
	    " lead",
	    "trail ",
	    " ",
	    "\t",
	    "a\tb",
	    "? x",
	    "?",
	    "!tag",
	    "&a",
	    "*a",
	    "%x",
	    "@x",
	    "`x",
	    "|",
	    ">",
	    "'",
	    "\"",
	    "\\",
	    "{",
	    "}",
	    "[a]",
	    "{a: 1}",
	    "a,b",
	    "<<",
	    "=",
	    "é",
	    "日本語",
	    "emoji \xF0\x9F\x98\x80",
	    "\x01",
	    "\x7f",
	    "\x1b[0m",
	    "a\nb",
	    "a\n",
	    "\n",
	    "\n\n",
	    " a\nb",
	    "a\n b",
	    "a \nb",
	    "a\n\n",
	    "a\r\nb",
	    "\xC2\x85",
	    "\xE2\x80\xA8",
	    "\xEF\xBB\xBF"
	    "bom",
	    "line1\nline2\n  indented\n",
	    "0.1",
	    "1e+300",
	    "500m",
	    "10Gi",
	};
	for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
		assert_string_round_trips(strings[i], strlen(strings[i]));
	/* a key past libyaml's 128-character simple-key limit */
	char *long_key = repeat("k", 300, "");
	assert_string_round_trips(long_key, strlen(long_key));
	free(long_key);
}

static void random_strings_round_trip_through_yaml(void **state)
{
	static const char *const alphabet[] = {
	    " ",    "\n",
	    ":",    "#",
	    "-",    "?",
	    "a",    "1",
	    ".",    "'",
	    "\"",   "\\",
	    "\t",   "{",
	    "[",    ",",
	    "!",    "&",
	    "*",    "|",
	    ">",    "%",
	    "@",    "~",
	    "e",    "0",
	    "x",    "\r",
	    "\x01", "é",
	    "y",    "n",
	    "u",    "l",
	    "t",    "r",
	    "+",    "\xE2\x80\xA8",
	};
	const size_t na = sizeof alphabet / sizeof alphabet[0];
	uint32_t seed = 12345;
	for (int i = 0; i < 3000; i++) {
		char s[128] = "";
		seed = seed * 1103515245u + 12345u;
		int len = (int)((seed >> 16) % 10);
		for (int j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			strcat(s, alphabet[(seed >> 16) % na]);
		}
		assert_string_round_trips(s, strlen(s));
	}
}

static void scalars_and_containers_round_trip_through_yaml(void **state)
{
	static const char *const values[] = {
	    "null",
	    "true",
	    "false",
	    "0",
	    "-1",
	    "9223372036854775807",
	    "-9223372036854775808",
	    "0.1",
	    "1.0",
	    "-0.0",
	    "1e300",
	    "-2.5e-8",
	    "5e-324",
	    "1.7976931348623157e308",
	    "123456789.125",
	    "{}",
	    "[]",
	    "[[]]",
	    "[{}]",
	    "{\"a\": {}}",
	    "[[1, [2]], {\"a\": [{\"b\": 1}]}]",
	    "{\"a\": [[], {}], \"b\": null}",
	    "{\"z\": 1, \"a\": 2, \"m\": 3}",
	};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		json_t *v = parse_json(values[i]);
		assert_round_trip(v);
		json_decref(v);
	}
}

static void json_output_is_compact_or_indented_in_key_order(void **state)
{
	json_t *v = json_object();
	json_object_set_new(v, "b", json_integer(1));
	json_object_set_new(v, "a", json_pack("[bns]", 1, "é/x"));
	size_t n;
	char *s = codec_encode_json(v, 0, &n);
	assert_string_equal(s, "{\"b\":1,\"a\":[true,null,\"é/x\"]}");
	assert_int_equal(n, strlen(s));
	free(s);
	s = codec_encode_json(v, 1, NULL);
	assert_string_equal(s, "{\n"
	                       "    \"b\": 1,\n"
	                       "    \"a\": [\n"
	                       "        true,\n"
	                       "        null,\n"
	                       "        \"é/x\"\n"
	                       "    ]\n"
	                       "}");
	free(s);
	json_decref(v);
}

/* codec_json_compact(v, sort) must equal json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY [| JSON_SORT_KEYS]), failures included. */
static void assert_compact_like_jansson(const json_t *v)
{
	for (int sort = 0; sort < 2; sort++) {
		char *want =
		    json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | (sort ? JSON_SORT_KEYS : 0));
		struct buf b;
		buf_init(&b);
		buf_adds(&b, "x"); /* appends after what is there */
		int rc = codec_json_compact(v, sort, &b);
		if (!want) {
			assert_int_equal(rc, -1);
			assert_string_equal(b.data, "x");
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(b.data + 1, want);
			assert_int_equal(b.len, strlen(want) + 1);
		}
		buf_fini(&b);
		free(want);
	}
}

static void compact_json_is_byte_for_byte_jansson(void **state)
{
	static const char *const docs[] = {
	    "null",
	    "true",
	    "false",
	    "0",
	    "-1",
	    "9223372036854775807",
	    "-9223372036854775808",
	    "0.5",
	    "-2.5e-10",
	    "1e300",
	    "100.0",
	    "3.141592653589793",
	    "\"\"",
	    "[]",
	    "{}",
	    "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u0000e\"",
	    "\"\\u00e9\\u20ac\\ud83d\\ude00\\u2028\"",
	    "{\"b\":1,\"a\":{\"d\":[1,2,{\"z\":null,\"y\":true}],\"c\":\"x\"},\"ab\":[],\"\":0}",
	    "{\"ab\":1,\"a\":2,\"a0\":3,\"\\u00e9\":4,\"z\":5,\"A\":6}",
	    "[[[[[[[[[[\"deep\"]]]]]]]]]]",
	    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"labels\":"
	    "{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
	    "\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}]}}",
	};
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		assert_non_null(v);
		assert_compact_like_jansson(v);
		json_decref(v);
	}
	/* more keys than fit the writer's stack array, in reverse order */
	json_t *big = json_object();
	for (int i = 99; i >= 0; i--) {
		char k[8];
		snprintf(k, sizeof k, "k%02d", i);
		json_object_set_new(big, k, json_integer(i));
	}
	assert_compact_like_jansson(big);
	json_decref(big);
	/* keys with NUL bytes (the parser refuses them; json_object_setn not) */
	json_t *nul = json_object();
	json_object_setn_new(nul, "a\0b", 3, json_integer(1));
	json_object_setn_new(nul, "a", 1, json_integer(2));
	json_object_setn_new(nul, "a\0", 2, json_integer(3));
	assert_compact_like_jansson(nul);
	json_decref(nul);
	/* strings jansson refuses to write: not UTF-8 (overlong, surrogate,
	 * past U+10FFFF, truncated, stray continuation) */
	static const char *const bad[] = {"\xc0\xaf",   "\xed\xa0\x80", "\xf4\x90\x80\x80",
	                                  "ok\xe2\x82", "\x80",         "\xf8\x88\x80\x80\x80"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *v = json_pack("{s:o}", "k", json_stringn_nocheck(bad[i], strlen(bad[i])));
		assert_compact_like_jansson(v);
		json_decref(v);
	}
	/* random strings over escapes and multi-byte characters */
	static const char *const alphabet[] = {"a",
	                                       "\"",
	                                       "\\",
	                                       "/",
	                                       "\n",
	                                       "\x01",
	                                       "\x7f",
	                                       "\xc3\xa9",
	                                       "\xe2\x80\xa8",
	                                       "\xf0\x9f\x98\x80",
	                                       " ",
	                                       "\t"};
	uint32_t seed = 777;
	for (int i = 0; i < 2000; i++) {
		char str[128] = "";
		seed = seed * 1103515245u + 12345u;
		int len = (int)((seed >> 16) % 12);
		for (int j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			strcat(str,
			       alphabet[(seed >> 16) % (sizeof alphabet / sizeof alphabet[0])]);
		}
		json_t *v = json_pack("{s:s, s:[s]}", str, str, "x", str);
		assert_compact_like_jansson(v);
		json_decref(v);
	}
}

static void accept_header_chooses_json_or_yaml(void **state)
{
	static const struct {
		const char *accept, *type;
	} table[] = {
	    {NULL, "application/json"},
	    {"", "application/json"},
	    {"*/*", "application/json"},
	    {"application/json", "application/json"},
	    {"application/yaml", "application/yaml"},
	    {"application/x-yaml", "application/yaml"},
	    {"text/yaml;q=0.9", "application/yaml"},
	    {"APPLICATION/YAML", "application/yaml"},
	    {"application/json;as=Table;v=v1;g=meta.k8s.io,application/json", "application/json"},
	    {"application/vnd.kubernetes.protobuf, application/yaml", "application/yaml"},
	    {"application/yaml, application/json", "application/yaml"},
	    {"application/json, application/yaml", "application/json"},
	    {"text/html", "application/json"},
	};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		assert_string_equal(codec_media_type(table[i].accept), table[i].type);

	struct err e = {0};
	const char *type = NULL;
	assert_int_equal(codec_negotiate("text/html, image/png", &type, &e), ERR_NOT_ACCEPTABLE);
	assert_int_equal(err_http_status(e.code), 406);
	assert_int_equal(codec_negotiate("text/html, */*;q=0.1", &type, &e), 0);
	assert_string_equal(type, "application/json");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(json_and_yaml_pods_decode_to_equal_values),
	    cmocka_unit_test(yaml_plain_scalars_follow_the_core_schema),
	    cmocka_unit_test(yaml_numbers_json_cannot_hold_are_rejected),
	    cmocka_unit_test(yaml_mapping_keys_become_strings),
	    cmocka_unit_test(json_errors_name_line_and_column),
	    cmocka_unit_test(yaml_errors_name_line_and_column),
	    cmocka_unit_test(duplicate_keys_are_rejected_with_position),
	    cmocka_unit_test(nesting_of_64_levels_is_accepted_65_rejected),
	    cmocka_unit_test(depth_bomb_is_rejected_quickly),
	    cmocka_unit_test(node_count_is_bounded),
	    cmocka_unit_test(yaml_billion_laughs_is_rejected),
	    cmocka_unit_test(yaml_aliases_expand_to_independent_copies),
	    cmocka_unit_test(many_anchors_and_aliases_decode_quickly),
	    cmocka_unit_test(yaml_bad_aliases_are_rejected),
	    cmocka_unit_test(yaml_merge_keys_are_rejected),
	    cmocka_unit_test(yaml_tags_are_honoured_or_rejected),
	    cmocka_unit_test(strings_with_nul_are_rejected),
	    cmocka_unit_test(one_document_is_accepted_where_one_is_expected),
	    cmocka_unit_test(decode_all_returns_every_nonempty_document),
	    cmocka_unit_test(decode_all_reports_the_failing_document),
	    cmocka_unit_test(content_types_select_the_decoder),
	    cmocka_unit_test(unknown_content_type_is_415),
	    cmocka_unit_test(decode_requires_an_object_decode_any_does_not),
	    cmocka_unit_test(yaml_output_looks_like_kubectl),
	    cmocka_unit_test(tricky_strings_round_trip_through_yaml),
	    cmocka_unit_test(random_strings_round_trip_through_yaml),
	    cmocka_unit_test(scalars_and_containers_round_trip_through_yaml),
	    cmocka_unit_test(json_output_is_compact_or_indented_in_key_order),
	    cmocka_unit_test(accept_header_chooses_json_or_yaml),
	    cmocka_unit_test(compact_json_is_byte_for_byte_jansson),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
