/* initdata: CoCo init-data, the TOML document a guest is started with
 * (version, algorithm, [data] of string values such as aa.toml, cdh.toml,
 * policy.rego).  The KBS hashes its exact bytes with `algorithm` (sha256,
 * sha384 or sha512) and compares the digest, truncated or zero-padded,
 * with SNP HOST_DATA (32 bytes) or TDX MRCONFIGID (48 bytes); the parsed
 * `data` becomes the token's init_data_claims.  The parser accepts the
 * subset init-data uses: comments, the tables [data] (and none other),
 * bare or quoted keys, and string values in all four TOML forms. */
#ifndef COCOD_INITDATA_H
#define COCOD_INITDATA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

#define INITDATA_MAX (256u << 10)

struct initdata {
	char version[16];
	char algorithm[8];  /* sha256 | sha384 | sha512 */
	uint8_t digest[64];
	size_t digest_len;
	json_t *data;       /* the [data] table as a JSON object (owned) */
};

/* Parses and hashes `toml`; ERR_BAD_REQUEST with the line on failure. */
int initdata_parse(const char *toml, size_t len, struct initdata *out, struct err *e);
void initdata_fini(struct initdata *d);

#endif
