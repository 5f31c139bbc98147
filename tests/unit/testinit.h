/* testinit: for unit tests, CoCo's init-data annotation value for a TOML
 * text: standard base64 of its gzip (one member, as `gzip -c | base64 -w0`
 * makes it).  Header-only: included by test_pod.c and test_runtime.c.  The
 * caller frees the result. */
#ifndef COCOD_TESTINIT_H
#define COCOD_TESTINIT_H

#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "b64.h"

static char *init_annotation(const char *text)
{
	unsigned char gz[4096];
	z_stream z;
	memset(&z, 0, sizeof z);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
	                 Z_OK);
	z.next_in = (Bytef *)(uintptr_t)text;
	z.avail_in = (uInt)strlen(text);
	z.next_out = gz;
	z.avail_out = sizeof gz;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	char *b = b64_encode(gz, sizeof gz - z.avail_out);
	deflateEnd(&z);
	return b;
}

#endif
