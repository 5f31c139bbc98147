/* quantity: Kubernetes resource.Quantity ("100m", "0.5", "1Gi", "512M",
 * "1e3") parsed exactly, without floating point, into a fixed-point int64 —
 * thousandths (milli) for CPU, whole units for bytes — rounded away from zero
 * like the apiserver's ScaledValue; plus the short forms cocod prints back. */
#ifndef COCOD_QUANTITY_H
#define COCOD_QUANTITY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"

/* The apiserver's own wording for a malformed quantity. */
#define QUANTITY_FORMAT_MSG                                                                        \
	"quantities must match the regular expression "                                            \
	"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

/* Parses `s` (signed decimal number with optional fraction, then one suffix:
 * Ki..Ei, n u m k M G T P E, or an exponent e3/E-2) into its value times
 * 1000, rounded up in magnitude ("0.1m" gives 1).  Fails with ERR_INVALID on
 * any other text (spaces, "1.2.3", "1gi", "Mi", "0x10") and when the result
 * does not fit an int64.  `*milli` is written only on success. */
int quantity_parse(const char *s, int64_t *milli, struct err *e);

/* Same grammar, the value in whole units rounded up in magnitude (Kubernetes'
 * Value()): "1Gi" gives 1073741824, "0.5" gives 1.  Use for bytes. */
int quantity_parse_value(const char *s, int64_t *value, struct err *e);

/* A quantity as it appears in a JSON document: a string (surrounding
 * whitespace trimmed, as the apiserver does) or a number (Kubernetes accepts
 * `cpu: 2` and `cpu: 0.5`).  Anything else is ERR_INVALID. */
int quantity_parse_json(const json_t *v, int64_t *milli, struct err *e);
int quantity_parse_json_value(const json_t *v, int64_t *value, struct err *e);

/* "250m" for 250, "2" for 2000: the canonical CPU form.  Always
 * NUL-terminates `buf` (truncating when `n` is too small). */
void quantity_format_cpu(int64_t milli, char *buf, size_t n);

/* "512Mi", "1Gi" when `bytes` is an exact multiple of a binary suffix, else
 * plain bytes ("1000000000"). */
void quantity_format_bytes(int64_t bytes, char *buf, size_t n);

#endif
