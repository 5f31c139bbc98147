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

/* "sha384:<hex>": the algorithm and the whole digest (not truncated). */
#define INITDATA_DIGEST_STR 144 /* "sha512:" + 128 hex digits + NUL, rounded up */
void initdata_digest_str(const struct initdata *d, char out[INITDATA_DIGEST_STR]);

/* How a pod carries init-data (CoCo's annotation, read by Kata): standard
 * base64 of the gzip of the TOML text.  Kata renamed it from `runtime.` to
 * `hypervisor.`; both are read and `hypervisor.` wins when both are set
 * (the other one is then ignored).  cocod records the digest of the
 * init-data it admitted under INITDATA_DIGEST_ANNOTATION. */
#define INITDATA_ANNOTATION        "io.katacontainers.config.hypervisor.cc_init_data"
#define INITDATA_ANNOTATION_OLD    "io.katacontainers.config.runtime.cc_init_data"
#define INITDATA_DIGEST_ANNOTATION "cocod.io/init-data-digest"

/* The init-data annotation among `annotations` (a JSON object, or NULL):
 * the value (NULL when neither name is set; the JSON value, which may be of
 * any type) and, when `name` is not NULL, its name. */
const json_t *initdata_annotation(const json_t *annotations, const char **name);

/* Decodes an annotation value into the TOML text: standard base64 (with or
 * without padding; CR and LF are skipped, as Go's decoder does) of one or
 * more gzip members.  Inflating stops at INITDATA_MAX bytes of output, so a
 * gzip bomb costs no more than that.  The text must be UTF-8 without
 * control characters other than tab, CR and LF (TOML's rule; it also keeps
 * the text's JSON form within twice its size on the agent channel).  On
 * success *toml is a malloc'd NUL-terminated copy of *len bytes; on failure
 * ERR_INVALID saying what is wrong, without quoting the input. */
int initdata_decode(const char *b64, size_t b64_len, char **toml, size_t *len, struct err *e);

#endif
