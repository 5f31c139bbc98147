/* jcs: RFC 8785 JSON Canonicalization Scheme for jansson values.  Trustee
 * binds the guest's nonce and key into the hardware report through
 * SHA-384(JCS({"additional-evidence", "nonce", "tee-pubkey"})), so the KBS
 * must reproduce the guest's bytes exactly: object members sorted by their
 * UTF-16 code units at every level, no whitespace, strings with the
 * minimal escapes of RFC 8785 §3.2.2.2, numbers in ECMAScript's shortest
 * round-trip form (integers beyond 2^53 are doubles, as in JavaScript). */
#ifndef COCOD_JCS_H
#define COCOD_JCS_H

#include <jansson.h>

#include "err.h"
#include "util.h"

/* Appends the canonical form of `v` to `out`.  ERR_INVALID for NaN,
 * infinities or strings that are not UTF-8 (jansson already refuses most). */
int jcs_append(const json_t *v, struct buf *out, struct err *e);

/* The canonical form as a malloc'd string (its length in *len if not NULL). */
int jcs_serialize(const json_t *v, char **out, size_t *len, struct err *e);

/* ECMAScript Number::toString of `d` into `out` (at least 32 bytes). */
int jcs_number(double d, char *out, size_t len);

#endif
