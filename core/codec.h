/* codec: request and response bodies as JSON or YAML.  Decoding turns a body
 * (JSON via jansson, YAML via libyaml's event parser) into a json_t under
 * fixed bounds — nesting depth, node count, alias expansion — so that a
 * hostile body costs at most a bounded amount of memory and time and fails
 * with a message naming the line and column.  YAML is read with the YAML 1.2
 * core schema (yes/no/on/off stay strings, unlike Kubernetes' YAML 1.1
 * reader).  Encoding writes kubectl-like `-o yaml` and `-o json`. */
#ifndef COCOD_CODEC_H
#define COCOD_CODEC_H

#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "util.h"

#define CODEC_MAX_DEPTH 64          /* nested objects/arrays */
#define CODEC_MAX_NODES 200000      /* values, keys included, per call */
#define CODEC_MAX_BYTES (32u << 20) /* guard only: callers cap bodies lower */

/* Decodes one document that must be an object into `*out` (owned by the
 * caller on success).  `content_type` is the raw Content-Type header or NULL
 * to sniff ('{' or '[' first → JSON, else YAML).  Fails with ERR_BAD_REQUEST
 * ("invalid YAML at line 4, column 3: ..."), ERR_UNSUPPORTED_MEDIA for an
 * unknown type, ERR_TOO_LARGE past CODEC_MAX_BYTES. */
int codec_decode(const char *data, size_t len, const char *content_type, json_t **out,
                 struct err *e);

/* As codec_decode but any JSON value is accepted at the top level (a JSON
 * patch is an array). */
int codec_decode_any(const char *data, size_t len, const char *content_type, json_t **out,
                     struct err *e);

/* Decodes every document of a multi-document YAML stream (or a sequence of
 * concatenated JSON objects) into a new JSON array, for `apply -f`.  Empty
 * (and null) documents are skipped; every other document must be an
 * object.  The bounds apply to the input as a whole. */
int codec_decode_all(const char *data, size_t len, const char *content_type, json_t **out,
                     struct err *e);

/* Appends `v` as YAML in kubectl's `-o yaml` layout: block style, two-space
 * indentation, keys in the object's order, strings quoted only when they
 * would otherwise read back as something else.  Decoding the output gives
 * back `v` (strings containing NUL excepted: decoding rejects them). */
void codec_encode_yaml(const json_t *v, struct buf *out);

/* `v` as JSON, compact or indented by four spaces like `kubectl -o json`,
 * keys in order, no trailing newline.  The caller frees the result; `len`
 * may be NULL.  NULL only if jansson fails (nesting past 2048 levels). */
char *codec_encode_json(const json_t *v, int pretty, size_t *len);

/* Appends `v` (any JSON value) as compact JSON, byte for byte what
 * json_dumps writes with JSON_COMPACT | JSON_ENCODE_ANY (plus
 * JSON_SORT_KEYS when `sort_keys`), only faster.  -1 (and `out` as it was)
 * when jansson would fail too: a string that is not UTF-8, absurd
 * nesting. */
int codec_json_compact(const json_t *v, int sort_keys, struct buf *out);

/* The response type for an Accept header: "application/yaml" when YAML is
 * listed before JSON (application/yaml, application/x-yaml, text/yaml),
 * otherwise "application/json" — also for NULL, wildcards and anything
 * unrecognised.  Parameters (";as=Table") and q-values are ignored. */
const char *codec_media_type(const char *accept);

/* The strict form of codec_media_type: fails with ERR_NOT_ACCEPTABLE (406)
 * when the header names neither JSON, YAML nor a wildcard. */
int codec_negotiate(const char *accept, const char **type, struct err *e);

#endif
