/* err: the error table and the helpers that fill `struct err`. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_row {
	int code;
	int status;
	const char *name;
	const char *reason;
};

static const struct err_row rows[] = {
#define ERR_ROW_(name, status, reason) {ERR_##name, status, #name, reason},
	ERR_MAP(ERR_ROW_)
#undef ERR_ROW_
};

static const struct err_row *row_of(int code)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].code == code)
			return &rows[i];
	return &rows[0]; /* INTERNAL */
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		e->code = code;
		vsnprintf(e->msg, sizeof e->msg, fmt, ap);
		va_end(ap);
	}
	return code;
}

int err_wrap(struct err *e, const char *fmt, ...)
{
	if (!e)
		return ERR_INTERNAL;
	char prefix[sizeof e->msg];
	char old[sizeof e->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof old);
	size_t n = strlen(prefix);
	memcpy(e->msg, prefix, n);
	if (n + 2 < sizeof e->msg) {
		memcpy(e->msg + n, ": ", 2);
		n += 2;
	}
	size_t rest = strnlen(old, sizeof old - 1);
	if (rest > sizeof e->msg - 1 - n)
		rest = sizeof e->msg - 1 - n;
	memcpy(e->msg + n, old, rest);
	e->msg[n + rest] = '\0';
	if (e->code == 0)
		e->code = ERR_INTERNAL;
	return e->code;
}

void err_clear(struct err *e)
{
	if (e) {
		e->code = 0;
		e->msg[0] = '\0';
	}
}

const char *err_name(int code) { return row_of(code)->name; }
int err_http_status(int code) { return row_of(code)->status; }
const char *err_reason(int code) { return row_of(code)->reason; }

int err_from_http_status(int status)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (rows[i].status == status)
			return rows[i].code;
	return ERR_INTERNAL;
}
