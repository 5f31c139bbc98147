/* Unit tests for config: defaults, the file format (every type, comments,
 * arrays, errors with file:line), command-line overrides, cross-option
 * validation, listen parsing, print → load round trips, the reference and
 * the packaged example file.  Files are written in a mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

/* Asserts that `call` (which fills `e`) succeeds, printing e.msg if not. */
#define assert_ok(call)                                             \
	do {                                                        \
		if ((call) != 0)                                    \
			fail_msg("%s failed: %s", #call, e.msg);    \
	} while (0)

struct fixture {
	char dir[64];
	char path[128]; /* dir/c.toml */
	struct config c;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/cocod-config-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/c.toml", f->dir);
	config_init(&f->c);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unlink(f->path);
	rmdir(f->dir);
	config_fini(&f->c);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	struct err e;
	assert_int_equal(file_write_atomic(path, text, strlen(text), 0600, &e), 0);
}

/* Loads `text` into f->c; returns the result, message in e. */
static int load(struct fixture *f, const char *text, struct err *e)
{
	write_text(f->path, text);
	return config_load_file(&f->c, f->path, e);
}

/* Asserts that loading `text` fails with exactly "path:<rest>". */
static void load_fails(struct fixture *f, const char *text, const char *rest)
{
	struct err e;
	char want[512];
	assert_int_equal(load(f, text, &e), ERR_CONFIG);
	snprintf(want, sizeof want, "%s:%s", f->path, rest);
	assert_string_equal(e.msg, want);
}

static char *print_config(const struct config *c)
{
	char *out = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&out, &len);
	config_print(c, fp);
	fclose(fp);
	return out;
}

static void defaults_are_the_documented_ones(void **state)
{
	struct config *c = &((struct fixture *)*state)->c;
	assert_string_equal(c->listen, "127.0.0.1:8443");
	assert_string_equal(c->data_dir, "");
	assert_string_equal(c->log_level, "info");
	assert_false(c->plain_http);
	assert_string_equal(c->tls_cert, "");
	assert_string_equal(c->tls_key, "");
	assert_non_null(c->tls_extra_names);
	assert_null(c->tls_extra_names[0]);
	assert_int_equal(c->max_body_bytes, 4 * 1024 * 1024);
	assert_int_equal(c->max_header_bytes, 16 * 1024);
	assert_int_equal(c->request_timeout_ms, 10000);
	assert_int_equal(c->idle_timeout_ms, 60000);
	assert_int_equal(c->shutdown_grace_ms, 10000);
	assert_int_equal(c->max_connections, 1024);
	assert_true(c->metrics_public);
	struct err e;
	assert_ok(config_validate(c, &e));
}

static void file_sets_every_type(void **state)
{
	struct fixture *f = *state;
	struct err e;
	int rc = load(f,
		      "listen = \"[::1]:9000\"\n"
		      "data_dir = \"/var/lib/co\\\"co\\\\d\\tx\\ny\"\n"
		      "log_level = \"debug\"\n"
		      "plain_http = true\n"
		      "tls_cert = \"/etc/c.pem\"\n"
		      "tls_key = \"/etc/k.pem\"\n"
		      "tls_extra_names = [\"a.example\", \"192.0.2.1\"]\n"
		      "max_body_bytes = \"2MiB\"\n"
		      "max_header_bytes = 8192\n"
		      "request_timeout = \"500ms\"\n"
		      "idle_timeout = \"2m\"\n"
		      "shutdown_grace = \"1h\"\n"
		      "max_connections = 10\n"
		      "metrics_public = false\n",
		      &e);
	assert_int_equal(rc, 0);
	struct config *c = &f->c;
	assert_string_equal(c->listen, "[::1]:9000");
	assert_string_equal(c->data_dir, "/var/lib/co\"co\\d\tx\ny");
	assert_string_equal(c->log_level, "debug");
	assert_true(c->plain_http);
	assert_string_equal(c->tls_cert, "/etc/c.pem");
	assert_string_equal(c->tls_key, "/etc/k.pem");
	assert_string_equal(c->tls_extra_names[0], "a.example");
	assert_string_equal(c->tls_extra_names[1], "192.0.2.1");
	assert_null(c->tls_extra_names[2]);
	assert_int_equal(c->max_body_bytes, 2 * 1024 * 1024);
	assert_int_equal(c->max_header_bytes, 8192);
	assert_int_equal(c->request_timeout_ms, 500);
	assert_int_equal(c->idle_timeout_ms, 120000);
	assert_int_equal(c->shutdown_grace_ms, 3600000);
	assert_int_equal(c->max_connections, 10);
	assert_false(c->metrics_public);
	assert_ok(config_validate(c, &e));
}

static void comments_blank_lines_and_crlf_are_ignored(void **state)
{
	struct fixture *f = *state;
	struct err e;
	assert_ok(load(f,
			      "# a comment\n"
			      "\n"
			      "   \t\n"
			      "  # indented comment\r\n"
			      "log_level = \"warn\"   # trailing comment\r\n"
			      "data_dir = \"/srv/#not-a-comment\" # but this is\n"
			      "max_connections = 7# tight comment\n"
			      "tls_extra_names = [\"x\"] # after an array\n",
			      &e));
	assert_string_equal(f->c.log_level, "warn");
	assert_string_equal(f->c.data_dir, "/srv/#not-a-comment");
	assert_int_equal(f->c.max_connections, 7);
	assert_string_equal(f->c.tls_extra_names[0], "x");
}

static void arrays_parse_empty_spaced_and_trailing_comma(void **state)
{
	struct fixture *f = *state;
	struct err e;
	assert_ok(load(f, "tls_extra_names = [ \"a\" ,\"b\", ]\n", &e));
	assert_string_equal(f->c.tls_extra_names[0], "a");
	assert_string_equal(f->c.tls_extra_names[1], "b");
	assert_null(f->c.tls_extra_names[2]);
	assert_ok(load(f, "tls_extra_names = []\n", &e));
	assert_null(f->c.tls_extra_names[0]);
	load_fails(f, "tls_extra_names = [\"a\", 3]\n",
		   "1: arrays hold only quoted strings");
	load_fails(f, "tls_extra_names = [\"a\" \"b\"]\n", "1: expected , or ] in array");
	load_fails(f, "tls_extra_names = [\"a\",\n\"b\"]\n",
		   "1: unterminated array (arrays must be on one line)");
	load_fails(f, "tls_extra_names = [\"a b\"]\n",
		   "1: tls_extra_names: \"a b\" is not a DNS name or IP address");
	load_fails(f, "tls_extra_names = \"a\"\n",
		   "1: tls_extra_names: expected an array like [\"a\", \"b\"], got \"a\"");
}

static void unknown_option_names_file_and_line(void **state)
{
	load_fails(*state, "# x\nlisten = \"127.0.0.1:1\"\nfoo = 1\n", "3: unknown option \"foo\"");
	/* The field name is not the option name. */
	load_fails(*state, "request_timeout_ms = \"1s\"\n",
		   "1: unknown option \"request_timeout_ms\"");
}

static void bad_values_name_option_and_line(void **state)
{
	struct fixture *f = *state;
	load_fails(f, "\nmax_body_bytes = \"4XB\"\n",
		   "2: max_body_bytes: invalid size \"4XB\" (use e.g. \"4MiB\")");
	load_fails(f, "idle_timeout = \"10 s\"\n",
		   "1: idle_timeout: invalid duration \"10 s\" (use e.g. \"10s\" or \"500ms\")");
	load_fails(f, "idle_timeout = 10\n",
		   "1: idle_timeout: invalid duration \"10\" (use e.g. \"10s\" or \"500ms\")");
	load_fails(f, "\n\n\nplain_http = yes\n",
		   "4: plain_http: expected true or false, got \"yes\"");
	load_fails(f, "plain_http = \"true\"\n",
		   "1: plain_http: expected true or false, got \"true\"");
	load_fails(f, "listen = \"example.com:80\"\n",
		   "1: listen: \"example.com:80\": expected a.b.c.d:port, [v6]:port or "
		   "localhost:port");
	load_fails(f, "listen = \"0.0.0.0:65536\"\n",
		   "1: listen: \"0.0.0.0:65536\": invalid port (0-65535)");
	load_fails(f, "listen = 8443\n", "1: listen: expected a quoted string, got \"8443\"");
	load_fails(f, "log_level = \"verbose\"\n",
		   "1: log_level: \"verbose\" is not one of error, warn, info, debug");
	load_fails(f, "max_header_bytes = \"512\"\n",
		   "1: max_header_bytes: \"512\" is out of range (1KiB..1MiB)");
	load_fails(f, "max_body_bytes = \"2GiB\"\n",
		   "1: max_body_bytes: \"2GiB\" is out of range (1KiB..1GiB)");
	load_fails(f, "request_timeout = \"0s\"\n",
		   "1: request_timeout: \"0s\" is out of range (1ms..24h)");
	load_fails(f, "max_connections = \"10\"\n",
		   "1: max_connections: expected an integer, got \"10\"");
	load_fails(f, "max_connections = 0\n",
		   "1: max_connections: \"0\" is out of range (1..1048576)");
}

static void syntax_errors_name_the_line(void **state)
{
	struct fixture *f = *state;
	load_fails(f, "listen = \"127.0.0.1:1\n", "1: unterminated string");
	load_fails(f, "data_dir = \"abc\\\"\n", "1: unterminated string");
	load_fails(f, "data_dir = \"a\\qb\"\n",
		   "1: invalid escape \\q in string (use \\\" \\\\ \\n \\t)");
	load_fails(f, "\nlisten\n", "2: expected key = value");
	load_fails(f, "= 3\n", "1: expected key = value");
	load_fails(f, "listen =\n", "1: expected key = value (missing value)");
	load_fails(f, "listen = \"127.0.0.1:1\" x\n", "1: unexpected text after value: \"x\"");
	load_fails(f, "log_level = \"warn\"\nlog_level = \"error\"\n",
		   "2: duplicate option \"log_level\" (first set on line 1)");
}

static void oversized_line_and_file_are_refused(void **state)
{
	struct fixture *f = *state;
	struct err e;
	size_t n = 5000;
	char *text = xmalloc(n + 32);
	snprintf(text, n + 32, "# %*s\n", (int)n, "x");
	load_fails(f, text, "1: line longer than 4096 bytes");
	free(text);

	n = (1 << 20) + 10;
	text = xmalloc(n + 1);
	memset(text, '\n', n);
	text[n] = '\0';
	assert_int_equal(load(f, text, &e), ERR_CONFIG);
	char want[256];
	snprintf(want, sizeof want, "%s: file larger than 1 MiB", f->path);
	assert_string_equal(e.msg, want);
	free(text);
}

static void missing_file_is_not_found(void **state)
{
	struct fixture *f = *state;
	struct err e;
	assert_int_equal(config_load_file(&f->c, "/nonexistent/cocod.toml", &e), ERR_NOT_FOUND);
	assert_non_null(strstr(e.msg, "/nonexistent/cocod.toml"));
}

static void failed_load_leaves_config_unchanged(void **state)
{
	struct fixture *f = *state;
	struct err e;
	char *before = print_config(&f->c);
	assert_int_equal(load(f, "log_level = \"debug\"\ntls_extra_names = [\"a\"]\nbogus = 1\n", &e),
			 ERR_CONFIG);
	char *after = print_config(&f->c);
	assert_string_equal(after, before);
	free(before);
	free(after);
}

/* Every option changed from its default, including escapes and a list. */
static void set_everything(struct config *c)
{
	static const char *const kv[][2] = {
		{"listen", "[::1]:0"},          {"data_dir", "/d \"q\" \\ \t\n#"},
		{"log_level", "error"},         {"plain_http", "true"},
		{"tls_cert", "/c.pem"},         {"tls_key", "/k.pem"},
		{"tls_extra_names", "a.b, *.c.d,::1"}, {"max_body_bytes", "1500"},
		{"max_header_bytes", "3KiB"},   {"request_timeout", "1500ms"},
		{"idle_timeout", "90s"},        {"shutdown_grace", "3m"},
		{"max_connections", "77"},      {"metrics_public", "false"},
	};
	struct err e;
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
		assert_ok(config_set(c, kv[i][0], kv[i][1], &e));
}

static void print_then_load_round_trips(void **state)
{
	struct fixture *f = *state;
	struct err e;
	struct config a;
	config_init(&a);
	set_everything(&a);
	char *text = print_config(&a);
	char *defaults = print_config(&f->c);
	assert_string_not_equal(text, defaults);
	assert_ok(load(f, text, &e));
	char *again = print_config(&f->c);
	assert_string_equal(again, text);

	struct config *b = &f->c;
	assert_string_equal(b->listen, a.listen);
	assert_string_equal(b->data_dir, "/d \"q\" \\ \t\n#");
	assert_string_equal(b->tls_extra_names[1], "*.c.d");
	assert_string_equal(b->tls_extra_names[2], "::1");
	assert_null(b->tls_extra_names[3]);
	assert_int_equal(b->max_body_bytes, 1500);
	assert_int_equal(b->max_header_bytes, 3072);
	assert_int_equal(b->request_timeout_ms, 1500);
	assert_int_equal(b->idle_timeout_ms, 90000);
	assert_int_equal(b->shutdown_grace_ms, 180000);
	assert_int_equal(b->max_connections, 77);
	assert_true(b->plain_http);
	assert_false(b->metrics_public);
	free(text);
	free(defaults);
	free(again);
	config_fini(&a);
}

static void defaults_round_trip_too(void **state)
{
	struct fixture *f = *state;
	struct err e;
	char *text = print_config(&f->c);
	assert_ok(load(f, text, &e));
	char *again = print_config(&f->c);
	assert_string_equal(again, text);
	assert_non_null(strstr(text, "max_body_bytes = \"4MiB\"\n"));
	assert_non_null(strstr(text, "request_timeout = \"10s\"\n"));
	assert_non_null(strstr(text, "tls_extra_names = []\n"));
	free(text);
	free(again);
}

static void set_overrides_and_rejects_bad_values(void **state)
{
	struct config *c = &((struct fixture *)*state)->c;
	struct err e;
	assert_ok(config_set(c, "listen", "localhost:9443", &e));
	assert_string_equal(c->listen, "localhost:9443");
	assert_ok(config_set(c, "plain_http", "true", &e));
	assert_true(c->plain_http);
	assert_ok(config_set(c, "max_body_bytes", "8MiB", &e));
	assert_int_equal(c->max_body_bytes, 8 * 1024 * 1024);
	assert_ok(config_set(c, "tls_extra_names", " a , b ", &e));
	assert_string_equal(c->tls_extra_names[0], "a");
	assert_string_equal(c->tls_extra_names[1], "b");
	assert_null(c->tls_extra_names[2]);
	assert_ok(config_set(c, "tls_extra_names", "", &e));
	assert_null(c->tls_extra_names[0]);

	assert_int_equal(config_set(c, "max_body_bytes", "lots", &e), ERR_CONFIG);
	assert_string_equal(e.msg, "max_body_bytes: invalid size \"lots\" (use e.g. \"4MiB\")");
	assert_int_equal(c->max_body_bytes, 8 * 1024 * 1024);
	assert_int_equal(config_set(c, "log_level", "loud", &e), ERR_CONFIG);
	assert_string_equal(c->log_level, "info");
	assert_int_equal(config_set(c, "tls_extra_names", "a,,b", &e), ERR_CONFIG);
	assert_string_equal(e.msg, "tls_extra_names: \"\" is not a DNS name or IP address");
	assert_int_equal(config_set(c, "nope", "1", &e), ERR_CONFIG);
	assert_string_equal(e.msg, "unknown option \"nope\"");
	assert_int_equal(config_set(c, "data_dir", "a\x01", &e), ERR_CONFIG);
	assert_string_equal(e.msg, "data_dir: control characters are not allowed");
}

static void plain_http_only_on_loopback(void **state)
{
	struct config *c = &((struct fixture *)*state)->c;
	struct err e;
	static const char *const ok[] = {"127.0.0.1:80", "127.9.8.7:80", "[::1]:80",
					 "localhost:80"};
	assert_ok(config_set(c, "plain_http", "true", &e));
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_ok(config_set(c, "listen", ok[i], &e));
		assert_ok(config_validate(c, &e));
	}
	assert_ok(config_set(c, "listen", "0.0.0.0:8443", &e));
	assert_int_equal(config_validate(c, &e), ERR_CONFIG);
	assert_string_equal(e.msg, "plain_http is refused on non-loopback address 0.0.0.0; use TLS");
	assert_ok(config_set(c, "listen", "[::]:8443", &e));
	assert_int_equal(config_validate(c, &e), ERR_CONFIG);
	assert_string_equal(e.msg, "plain_http is refused on non-loopback address ::; use TLS");
	assert_ok(config_set(c, "plain_http", "false", &e));
	assert_ok(config_validate(c, &e));
}

static void cert_and_key_go_together(void **state)
{
	struct config *c = &((struct fixture *)*state)->c;
	struct err e;
	assert_ok(config_set(c, "tls_cert", "/c.pem", &e));
	assert_int_equal(config_validate(c, &e), ERR_CONFIG);
	assert_string_equal(e.msg, "tls_cert and tls_key must be set together (tls_key is empty)");
	assert_ok(config_set(c, "tls_key", "/k.pem", &e));
	assert_ok(config_validate(c, &e));
	assert_ok(config_set(c, "tls_cert", "", &e));
	assert_int_equal(config_validate(c, &e), ERR_CONFIG);
	assert_string_equal(e.msg, "tls_cert and tls_key must be set together (tls_cert is empty)");
}

static void validate_catches_fields_set_directly(void **state)
{
	struct config *c = &((struct fixture *)*state)->c;
	struct err e;
	c->max_header_bytes = 10;
	assert_int_equal(config_validate(c, &e), ERR_CONFIG);
	assert_non_null(strstr(e.msg, "max_header_bytes"));
}

static void parse_listen_forms(void **state)
{
	char host[64];
	int port = -1;
	struct err e;
	assert_ok(config_parse_listen("192.0.2.1:8443", host, sizeof host, &port, &e));
	assert_string_equal(host, "192.0.2.1");
	assert_int_equal(port, 8443);
	assert_ok(config_parse_listen("[::1]:0", host, sizeof host, &port, &e));
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_ok(config_parse_listen("[2001:DB8::0001]:65535", host, sizeof host, &port, &e));
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 65535);
	assert_ok(config_parse_listen("localhost:80", host, sizeof host, &port, &e));
	assert_string_equal(host, "127.0.0.1");

	static const char *const bad[] = {
		"", "8443", ":8443", "1.2.3.4", "1.2.3.4:", "1.2.3.4:x", "1.2.3.4:-1",
		"1.2.3.4:65536", "1.2.3:80", "::1:80", "[::1]", "[::1]80", "[1.2.3.4]:80",
		"example.com:80", "[::1:80", " 1.2.3.4:80",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (config_parse_listen(bad[i], host, sizeof host, &port, &e) == 0)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(e.code, ERR_CONFIG);
	}
	assert_int_equal(config_parse_listen("[::1]:1", host, 3, &port, &e), ERR_INTERNAL);
}

/* Option names, as listed by config_print (one "name = value" per line). */
static size_t option_names(const struct config *c, char names[][64], size_t max)
{
	char *text = print_config(c);
	size_t n = 0;
	for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n"))
		snprintf(names[n++], 64, "%.*s", (int)strcspn(line, " "), line);
	free(text);
	return n;
}

static void reference_documents_every_option(void **state)
{
	struct config *c = &((struct fixture *)*state)->c;
	char names[64][64];
	size_t n = option_names(c, names, 64);
	assert_true(n >= 23); /* every row of the table */
	char *ref = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&ref, &len);
	config_print_reference(fp);
	fclose(fp);
	for (size_t i = 0; i < n; i++) {
		char head[80];
		snprintf(head, sizeof head, "%s (", names[i]);
		if (!strstr(ref, head))
			fail_msg("reference lacks %s", names[i]);
	}
	assert_non_null(strstr(ref, "listen (listen-address, default \"127.0.0.1:8443\")\n    "));
	assert_non_null(strstr(ref, "max_body_bytes (size, default \"4MiB\", range 1KiB..1GiB)"));
	assert_non_null(strstr(ref, "tls_extra_names (string-list, default [])"));
	assert_non_null(strstr(ref, "log_level (log-level, default \"info\")"));
	free(ref);
}

/* Uncomments every "# name = value" line of an option in `text`. */
static char *uncomment_options(const char *text, char names[][64], size_t n)
{
	struct buf b;
	buf_init(&b);
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		bool hit = false;
		for (size_t i = 0; i < n && !hit; i++) {
			size_t k = strlen(names[i]);
			hit = strncmp(p, "# ", 2) == 0 && strncmp(p + 2, names[i], k) == 0 &&
			      strncmp(p + 2 + k, " = ", 3) == 0;
		}
		buf_add(&b, p + (hit ? 2 : 0), len - (hit ? 2 : 0));
		buf_adds(&b, "\n");
		p += len + (p[len] == '\n');
	}
	return buf_steal(&b, NULL);
}

static void packaged_example_loads_and_shows_the_defaults(void **state)
{
	struct fixture *f = *state;
	struct err e;
	assert_ok(config_load_file(&f->c, "packaging/cocod.toml", &e));
	assert_ok(config_validate(&f->c, &e));

	char names[64][64];
	size_t n = option_names(&f->c, names, 64);
	char *text, *uncommented, *defaults = print_config(&f->c);
	size_t len;
	assert_ok(file_read("packaging/cocod.toml", 1 << 20, &text, &len, &e));
	text[len] = '\0'; /* file_read leaves room for the NUL but may not write it */
	uncommented = uncomment_options(text, names, n);
	for (size_t i = 0; i < n; i++) {
		char line[80];
		snprintf(line, sizeof line, "\n%s = ", names[i]);
		if (!strstr(uncommented, line))
			fail_msg("packaging/cocod.toml does not show option %s", names[i]);
	}
	/* Every commented value loads and equals the built-in default. */
	assert_ok(load(f, uncommented, &e));
	char *shown = print_config(&f->c);
	assert_string_equal(shown, defaults);
	free(text);
	free(uncommented);
	free(defaults);
	free(shown);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(defaults_are_the_documented_ones),
		T(file_sets_every_type),
		T(comments_blank_lines_and_crlf_are_ignored),
		T(arrays_parse_empty_spaced_and_trailing_comma),
		T(unknown_option_names_file_and_line),
		T(bad_values_name_option_and_line),
		T(syntax_errors_name_the_line),
		T(oversized_line_and_file_are_refused),
		T(missing_file_is_not_found),
		T(failed_load_leaves_config_unchanged),
		T(print_then_load_round_trips),
		T(defaults_round_trip_too),
		T(set_overrides_and_rejects_bad_values),
		T(plain_http_only_on_loopback),
		T(cert_and_key_go_together),
		T(validate_catches_fields_set_directly),
		T(parse_listen_forms),
		T(reference_documents_every_option),
		T(packaged_example_loads_and_shows_the_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
