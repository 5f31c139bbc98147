/* Unit tests for initdata's annotation path: the value a pod carries
 * (standard base64 of gzip'd TOML) decoded back to the exact TOML bytes,
 * the digest string, which annotation name wins, and hostile values — bad
 * base64, data that is not gzip, truncated or corrupted gzip, gzip bombs
 * and text past the limit, trailing bytes, text that is not UTF-8 or holds
 * control characters.  The parser itself is covered in test_kbs.c.
 * Expected digests come from OpenSSL here, not from the code under test.
 *
 * Cases:
 *   round_trip_gives_the_exact_toml      bytes, digest "sha384:<hex>" per algorithm
 *   wrapped_base64_is_accepted           CR/LF skipped (base64 without -w0), no padding
 *   concatenated_members_are_read        gzip(a) + gzip(b) = a + b
 *   bad_base64_is_named                  character and position, padding, empty
 *   not_gzip_is_refused                  plain text, zlib instead of gzip
 *   truncated_gzip_is_refused            every cut of the stream, corrupt CRC
 *   trailing_bytes_are_refused           junk or zeros after the member
 *   gzip_bomb_stops_at_the_limit         64 MiB of zeros in 64 KiB: refused
 *   size_limit_is_exact                  INITDATA_MAX passes, one more byte fails
 *   text_must_be_utf8_toml               control characters, bad UTF-8 forms
 *   hypervisor_annotation_wins           both names, only the old one, none */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "b64.h"
#include "initdata.h"
#include "util.h"

#define TOML                                                                                       \
	"version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"aa.toml\" = '''\n"                 \
	"[token_configs.kbs]\nurl = \"http://10.0.2.2:8443\"\n'''\n"                               \
	"\"policy.rego\" = '''\npackage agent_policy\ndefault ExecProcessRequest := false\n'''\n"

#define assert_contains(s, sub)                                                                    \
	do {                                                                                       \
		if (!strstr((s), (sub)))                                                           \
			fail_msg("\"%s\" does not contain \"%s\"", (s), (sub));                    \
	} while (0)

/* gzip (one member, as gzip -c makes it) of `n` bytes, appended to `out`. */
static void gzip_into(struct buf *out, const void *in, size_t n)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
	                 Z_OK);
	size_t cap = deflateBound(&z, (uLong)n);
	buf_reserve(out, cap);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = (Bytef *)out->data + out->len;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	out->len += cap - z.avail_out;
	deflateEnd(&z);
}

/* The annotation value for `text`: base64 of its gzip. */
static char *annotation(const char *text, size_t n)
{
	struct buf gz;
	buf_init(&gz);
	gzip_into(&gz, text, n);
	char *b = b64_encode(gz.data, gz.len);
	buf_fini(&gz);
	return b;
}

/* Decodes `b64` expecting failure; returns the message (static). */
static const char *refused(const char *b64, size_t len)
{
	static struct err e;
	char *toml = NULL;
	size_t n = 0;
	memset(&e, 0, sizeof e);
	int rc = initdata_decode(b64, len, &toml, &n, &e);
	if (rc == 0)
		fail_msg("decoded %zu bytes, expected a refusal", n);
	assert_int_equal(rc, ERR_INVALID);
	assert_null(toml);
	return e.msg;
}

static void decoded(const char *b64, const char *want, size_t want_len)
{
	char *toml = NULL;
	size_t n = 0;
	struct err e = {0};
	if (initdata_decode(b64, strlen(b64), &toml, &n, &e))
		fail_msg("%s", e.msg);
	assert_int_equal(n, want_len);
	assert_memory_equal(toml, want, n);
	assert_int_equal(toml[n], '\0');
	free(toml);
}

static void round_trip_gives_the_exact_toml(void **state)
{
	static const struct {
		const char *alg;
		const EVP_MD *(*md)(void);
	} algs[] = {{"sha256", EVP_sha256}, {"sha384", EVP_sha384}, {"sha512", EVP_sha512}};
	for (size_t i = 0; i < 3; i++) {
		cleanup_free char *text = xasprintf("# leading comment, kept in the digest\r\n"
		                                    "version = \"0.1.0\"\nalgorithm = \"%s\"\n"
		                                    "[data]\nk = \"caf\xc3\xa9\"\n",
		                                    algs[i].alg);
		cleanup_free char *b64 = annotation(text, strlen(text));
		decoded(b64, text, strlen(text));
		char *toml;
		size_t n;
		struct err e = {0};
		struct initdata d;
		assert_int_equal(initdata_decode(b64, strlen(b64), &toml, &n, &e), 0);
		assert_int_equal(initdata_parse(toml, n, &d, &e), 0);
		char got[INITDATA_DIGEST_STR], hex[129];
		unsigned char md[64];
		unsigned int mdlen = 0;
		initdata_digest_str(&d, got);
		EVP_Digest(text, strlen(text), md, &mdlen, algs[i].md(), NULL);
		hex_encode(md, mdlen, hex);
		cleanup_free char *want = xasprintf("%s:%s", algs[i].alg, hex);
		assert_string_equal(got, want);
		initdata_fini(&d);
		free(toml);
	}
}

static void wrapped_base64_is_accepted(void **state)
{
	cleanup_free char *b64 = annotation(TOML, strlen(TOML));
	struct buf w;
	buf_init(&w);
	for (size_t i = 0; i < strlen(b64); i += 76) { /* base64(1) without -w0 */
		buf_add(&w, b64 + i, strlen(b64 + i) < 76 ? strlen(b64 + i) : 76);
		buf_adds(&w, i % 152 ? "\r\n" : "\n");
	}
	decoded(w.data, TOML, strlen(TOML));
	buf_fini(&w);
	size_t n = strlen(b64);
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = '\0';
	decoded(b64, TOML, strlen(TOML));
}

static void concatenated_members_are_read(void **state)
{
	const char *a = "version = \"0.1.0\"\n", *b = "algorithm = \"sha256\"\n";
	struct buf gz;
	buf_init(&gz);
	gzip_into(&gz, a, strlen(a));
	gzip_into(&gz, b, strlen(b));
	cleanup_free char *b64 = b64_encode(gz.data, gz.len);
	cleanup_free char *both = xasprintf("%s%s", a, b);
	decoded(b64, both, strlen(both));
	buf_fini(&gz);
}

static void bad_base64_is_named(void **state)
{
	cleanup_free char *good = annotation(TOML, strlen(TOML));
	cleanup_free char *bad = xstrdup(good);
	bad[4] = '*';
	assert_contains(refused(bad, strlen(bad)), "not standard base64: character 5 is '*'");
	bad[4] = '-'; /* the URL-safe alphabet is not the standard one */
	assert_contains(refused(bad, strlen(bad)), "character 5 is '-'");
	bad[4] = ' ';
	assert_contains(refused(bad, strlen(bad)), "character 5 is byte 0x20");
	bad[4] = '\0'; /* a NUL inside the value */
	assert_contains(refused(bad, strlen(good)), "character 5 is byte 0x00");
	assert_contains(refused("H4sI=AAA", 8), "length, padding or last character");
	assert_contains(refused("H4sIA", 5), "length, padding or last character");
	assert_contains(refused("", 0), "init-data is empty");
	assert_contains(refused("\r\n", 2), "init-data is empty");
}

static void not_gzip_is_refused(void **state)
{
	cleanup_free char *plain = b64_encode(TOML, strlen(TOML));
	assert_contains(refused(plain, strlen(plain)), "not valid gzip data");
	/* zlib's own format is not gzip */
	unsigned char z[256];
	uLongf zn = sizeof z;
	assert_int_equal(compress(z, &zn, (const Bytef *)"version = 1", 11), Z_OK);
	cleanup_free char *zb = b64_encode(z, zn);
	assert_contains(refused(zb, strlen(zb)), "not valid gzip data");
}

static void truncated_gzip_is_refused(void **state)
{
	struct buf gz;
	buf_init(&gz);
	gzip_into(&gz, TOML, strlen(TOML));
	for (size_t cut = 1; cut < gz.len; cut++) {
		cleanup_free char *b64 = b64_encode(gz.data, cut);
		const char *msg = refused(b64, strlen(b64));
		if (!strstr(msg, "truncated") && !strstr(msg, "not valid gzip data"))
			fail_msg("cut at %zu of %zu: %s", cut, gz.len, msg);
	}
	cleanup_free char *b64 = b64_encode(gz.data, gz.len - 1);
	assert_contains(refused(b64, strlen(b64)), "the gzip data is truncated");
	gz.data[gz.len - 6] ^= 1; /* the CRC-32 of the text */
	cleanup_free char *crc = b64_encode(gz.data, gz.len);
	assert_contains(refused(crc, strlen(crc)), "incorrect data check");
	buf_fini(&gz);
}

static void trailing_bytes_are_refused(void **state)
{
	struct buf gz;
	buf_init(&gz);
	gzip_into(&gz, TOML, strlen(TOML));
	buf_add(&gz, "junk", 4);
	cleanup_free char *junk = b64_encode(gz.data, gz.len);
	assert_contains(refused(junk, strlen(junk)), "bytes after the gzip data");
	gz.len -= 4;
	buf_add(&gz, "\0\0\0\0\0\0\0\0\0\0\0\0", 12); /* padding, as in Kata's disk image */
	cleanup_free char *zeros = b64_encode(gz.data, gz.len);
	assert_contains(refused(zeros, strlen(zeros)), "bytes after the gzip data");
	buf_fini(&gz);
}

static void gzip_bomb_stops_at_the_limit(void **state)
{
	/* 64 MiB of zeros in about 64 KiB of gzip, fed to deflate in steps */
	const size_t step = 1u << 20, total = 64u << 20;
	char *zeros = xcalloc(1, step);
	struct buf gz;
	z_stream z;
	buf_init(&gz);
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
	                 Z_OK);
	for (size_t done = 0; done < total; done += step) {
		z.next_in = (Bytef *)zeros;
		z.avail_in = (uInt)step;
		int flush = done + step == total ? Z_FINISH : Z_NO_FLUSH;
		do {
			buf_reserve(&gz, 65536);
			z.next_out = (Bytef *)gz.data + gz.len;
			z.avail_out = 65536;
			deflate(&z, flush);
			gz.len += 65536 - z.avail_out;
		} while (z.avail_out == 0);
	}
	deflateEnd(&z);
	free(zeros);
	assert_true(gz.len < 256u << 10);
	cleanup_free char *b64 = b64_encode(gz.data, gz.len);
	buf_fini(&gz);
	assert_contains(refused(b64, strlen(b64)), "decompresses to more than 262144 bytes");
}

static void size_limit_is_exact(void **state)
{
	char *text = xmalloc(INITDATA_MAX + 2);
	memset(text, '#', INITDATA_MAX + 1); /* one long comment */
	text[INITDATA_MAX + 1] = '\0';
	cleanup_free char *at = annotation(text, INITDATA_MAX);
	decoded(at, text, INITDATA_MAX);
	cleanup_free char *over = annotation(text, INITDATA_MAX + 1);
	assert_contains(refused(over, strlen(over)), "more than 262144 bytes");
	free(text);
}

static void text_must_be_utf8_toml(void **state)
{
	static const struct {
		const char *text;
		size_t len;
		const char *msg;
	} bad[] = {
	    {"version = \"0.1.0\"\x01\n", 19, "control character 0x01 at byte 17"},
	    {"a\0b", 3, "control character 0x00 at byte 1"},
	    {"x = \"\x1b[31m\"", 11, "control character 0x1b at byte 5"},
	    {"x\x7f", 2, "control character 0x7f at byte 1"},
	    {"x = \"\xff\"", 7, "not UTF-8 text (byte 5)"},
	    {"x = \"\xc0\x80\"", 8, "not UTF-8 text (byte 5)"},          /* overlong NUL */
	    {"x = \"\xed\xa0\x80\"", 9, "not UTF-8 text (byte 5)"},      /* a surrogate */
	    {"x = \"\xf4\x90\x80\x80\"", 10, "not UTF-8 text (byte 5)"}, /* past U+10FFFF */
	    {"x = \"\xe2\x82", 7, "not UTF-8 text (byte 5)"},            /* cut short */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cleanup_free char *b64 = annotation(bad[i].text, bad[i].len);
		assert_contains(refused(b64, strlen(b64)), bad[i].msg);
	}
	const char *fine = "x = \"\t\xe2\x82\xac \xf0\x9f\x94\x92\"\r\n";
	cleanup_free char *b64 = annotation(fine, strlen(fine));
	decoded(b64, fine, strlen(fine));
}

static void hypervisor_annotation_wins(void **state)
{
	json_t *a =
	    json_pack("{s:s, s:s}", INITDATA_ANNOTATION_OLD, "old", INITDATA_ANNOTATION, "new");
	const char *name = NULL;
	assert_string_equal(json_string_value(initdata_annotation(a, &name)), "new");
	assert_string_equal(name, "io.katacontainers.config.hypervisor.cc_init_data");
	json_object_del(a, INITDATA_ANNOTATION);
	assert_string_equal(json_string_value(initdata_annotation(a, &name)), "old");
	assert_string_equal(name, "io.katacontainers.config.runtime.cc_init_data");
	json_object_del(a, INITDATA_ANNOTATION_OLD);
	assert_null(initdata_annotation(a, &name));
	assert_null(name);
	assert_null(initdata_annotation(NULL, NULL));
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_gives_the_exact_toml),
	    cmocka_unit_test(wrapped_base64_is_accepted),
	    cmocka_unit_test(concatenated_members_are_read),
	    cmocka_unit_test(bad_base64_is_named),
	    cmocka_unit_test(not_gzip_is_refused),
	    cmocka_unit_test(truncated_gzip_is_refused),
	    cmocka_unit_test(trailing_bytes_are_refused),
	    cmocka_unit_test(gzip_bomb_stops_at_the_limit),
	    cmocka_unit_test(size_limit_is_exact),
	    cmocka_unit_test(text_must_be_utf8_toml),
	    cmocka_unit_test(hypervisor_annotation_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
