/* err: cocod's one error type.  A fallible function takes `struct err *e`
 * last, returns 0 on success or a negative ERR_* code, and on failure fills
 * `e` with the code and a one-line message (never a secret).  Each code maps
 * to one HTTP status and one Kubernetes Status reason in the table below. */
#ifndef COCOD_ERR_H
#define COCOD_ERR_H

#include <stddef.h>

/* X(name, http status, Kubernetes reason) */
#define ERR_MAP(X)                                                     \
	X(INTERNAL, 500, "InternalError")                              \
	X(IO, 500, "InternalError")                                    \
	X(DB, 500, "InternalError")                                    \
	X(CRYPTO, 500, "InternalError")                                \
	X(CONFIG, 500, "InternalError")                                \
	X(BAD_REQUEST, 400, "BadRequest")                              \
	X(UNAUTHORIZED, 401, "Unauthorized")                           \
	X(FORBIDDEN, 403, "Forbidden")                                 \
	X(NOT_FOUND, 404, "NotFound")                                  \
	X(METHOD, 405, "MethodNotAllowed")                             \
	X(NOT_ACCEPTABLE, 406, "NotAcceptable")                        \
	X(CONFLICT, 409, "Conflict")                                   \
	X(EXISTS, 409, "AlreadyExists")                                \
	X(GONE, 410, "Expired")                                        \
	X(TOO_LARGE, 413, "RequestEntityTooLarge")                     \
	X(UNSUPPORTED_MEDIA, 415, "UnsupportedMediaType")              \
	X(INVALID, 422, "Invalid")                                     \
	X(TOO_MANY, 429, "TooManyRequests")                            \
	X(HEADERS_TOO_LARGE, 431, "RequestHeaderFieldsTooLarge")       \
	X(UNAVAILABLE, 503, "ServiceUnavailable")                      \
	X(TIMEOUT, 504, "Timeout")

enum err_code {
	ERR_OK = 0,
#define ERR_ENUM_(name, status, reason) ERR_##name,
	ERR__FIRST = -1000,
	ERR_MAP(ERR_ENUM_)
#undef ERR_ENUM_
	ERR__LAST
};

struct err {
	int code;      /* 0 or an ERR_* value */
	char msg[256]; /* one line, no trailing newline */
};

/* Fills `e` (which may be NULL) and returns `code`, so that failures are one
 * line: `return err_set(e, ERR_IO, "open %s: %s", path, strerror(errno));` */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes context to an existing message: "loading x: <old message>".
 * Returns e->code. */
int err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void err_clear(struct err *e);

/* The symbolic name ("NOT_FOUND"), the HTTP status and the Kubernetes Status
 * reason of a code; unknown codes map to INTERNAL. */
const char *err_name(int code);
int err_http_status(int code);
const char *err_reason(int code);

/* The code whose HTTP status is `status` (first match), ERR_INTERNAL for an
 * unknown status. */
int err_from_http_status(int status);

#endif
