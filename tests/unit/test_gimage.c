/* Unit tests for gimage's layer decompression (gimage_gunzip): gzip data
 * made here with zlib's deflate (the other direction of the library the
 * code under test uses) must come back byte for byte, also as two members
 * back to back; truncated streams, trailing bytes, data that is not gzip
 * and output beyond the cap are refused with the documented codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "err.h"
#include "gimage.h"
#include "util.h"

/* Appends one gzip member holding `in` to `out`. */
static void gz_member(struct buf *out, const void *in, size_t len)
{
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
	                 Z_OK);
	size_t bound = deflateBound(&z, len) + 64;
	buf_reserve(out, bound);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out->data + out->len;
	z.avail_out = (uInt)bound;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	out->len += bound - z.avail_out;
	deflateEnd(&z);
}

/* Pseudo-random but compressible bytes (a few MiB make zlib loop). */
static char *sample(size_t n)
{
	char *p = xmalloc(n);
	uint32_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = "abcdefgh"[(x >> 16) & 7];
	}
	return p;
}

static void round_trip_many_steps(void **state)
{
	size_t n = 3u << 20; /* output larger than one inflate step */
	char *plain = sample(n), *out = NULL;
	size_t outlen = 0;
	struct buf gz;
	struct err e = {0};
	buf_init(&gz);
	gz_member(&gz, plain, n);
	assert_int_equal(gimage_gunzip(gz.data, gz.len, 1u << 30, &out, &outlen, &e), 0);
	assert_int_equal(outlen, n);
	assert_memory_equal(out, plain, n);
	free(out);
	free(plain);
	buf_fini(&gz);
}

static void two_members_are_concatenated(void **state)
{
	struct buf gz;
	struct err e = {0};
	char *out = NULL;
	size_t outlen = 0;
	buf_init(&gz);
	gz_member(&gz, "hello, ", 7);
	gz_member(&gz, "world", 5);
	assert_int_equal(gimage_gunzip(gz.data, gz.len, 100, &out, &outlen, &e), 0);
	assert_int_equal(outlen, 12);
	assert_memory_equal(out, "hello, world", 12);
	free(out);
	buf_fini(&gz);
}

static void truncated_stream_is_refused(void **state)
{
	char *plain = sample(100000), *out = NULL;
	size_t outlen = 0;
	struct buf gz;
	struct err e = {0};
	buf_init(&gz);
	gz_member(&gz, plain, 100000);
	assert_int_equal(gimage_gunzip(gz.data, gz.len - 9, 1u << 20, &out, &outlen, &e),
	                 ERR_INVALID);
	assert_null(out);
	assert_non_null(strstr(e.msg, "not valid gzip"));
	free(plain);
	buf_fini(&gz);
}

static void trailing_bytes_are_refused(void **state)
{
	struct buf gz;
	struct err e = {0};
	char *out = NULL;
	size_t outlen = 0;
	buf_init(&gz);
	gz_member(&gz, "data", 4);
	buf_add(&gz, "junk", 4);
	assert_int_equal(gimage_gunzip(gz.data, gz.len, 100, &out, &outlen, &e), ERR_INVALID);
	assert_null(out);
	buf_fini(&gz);
}

static void not_gzip_is_refused(void **state)
{
	static const char tar_like[512] = "bin/busybox";
	struct err e = {0};
	char *out = NULL;
	size_t outlen = 0;
	assert_int_equal(gimage_gunzip(tar_like, sizeof tar_like, 1u << 20, &out, &outlen, &e),
	                 ERR_INVALID);
	assert_null(out);
}

static void output_beyond_the_cap_is_refused(void **state)
{
	size_t n = 2u << 20;
	char *plain = sample(n), *out = NULL;
	size_t outlen = 0;
	struct buf gz;
	struct err e = {0};
	buf_init(&gz);
	gz_member(&gz, plain, n);
	assert_int_equal(gimage_gunzip(gz.data, gz.len, n - 1, &out, &outlen, &e), ERR_TOO_LARGE);
	assert_null(out);
	/* exactly at the cap is fine */
	assert_int_equal(gimage_gunzip(gz.data, gz.len, n, &out, &outlen, &e), 0);
	assert_int_equal(outlen, n);
	free(out);
	free(plain);
	buf_fini(&gz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_many_steps),
	    cmocka_unit_test(two_members_are_concatenated),
	    cmocka_unit_test(truncated_stream_is_refused),
	    cmocka_unit_test(trailing_bytes_are_refused),
	    cmocka_unit_test(not_gzip_is_refused),
	    cmocka_unit_test(output_beyond_the_cap_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
