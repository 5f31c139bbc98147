/* evidence: the offline command `cocod evidence verify`, which verifies one
 * piece of attestation evidence with the same code as the KBS and prints
 * every claim and the verdict with its precise reason.  Operators use it to
 * debug failed attestations; tests use it for known-answer runs.
 *
 *   cocod evidence verify --tee snp --evidence FILE [--cert FILE]...
 *                         [--sim-roots FILE]... [--at RFC3339] [--json]
 *
 * Exit status: 0 valid, 1 invalid, 2 usage (or an unreadable file).  One
 * verifier per TEE sits in a table; `tdx` is listed but not built yet. */
#ifndef COCOD_EVIDENCE_H
#define COCOD_EVIDENCE_H

#include <time.h>

#include "err.h"

/* `argv[0]` is "evidence", `argv[1]` the subcommand ("verify"). */
int evidence_main(int argc, char **argv);

/* Parses an RFC 3339 time: "2025-06-20T00:00:00Z", fractions and
 * "+02:00"-style offsets allowed. */
int evidence_parse_time(const char *s, time_t *out, struct err *e);

#endif
