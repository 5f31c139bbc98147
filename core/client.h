/* client: a small blocking HTTPS (or HTTP) client for cocod's own command
 * line, which talks to the local daemon the way kubectl does: the server
 * URL, CA and admin token come from <data-dir>/kubeconfig, with --server
 * and --token overrides.  One connection per request; responses are parsed
 * with http-parser, so chunked streams (logs -f, watches) work. */
#ifndef COCOD_CLIENT_H
#define COCOD_CLIENT_H

#include <stddef.h>

#include "err.h"
#include "util.h"

typedef struct client client;

struct client_opts {
	const char *server;  /* "https://127.0.0.1:8443" */
	const char *token;   /* NULL: no Authorization header */
	const char *ca_pem;  /* PEM text of the CA to trust; NULL: system roots */
	int timeout_ms;      /* connect and read timeout; 0: 30 s (streams: none) */
};

int client_new(const struct client_opts *o, client **out, struct err *e);
void client_free(client *c);

struct client_response {
	int status;
	char *content_type; /* malloc'd or NULL */
	struct buf body;
};
void client_response_fini(struct client_response *r);

/* Sends one request and reads the whole response. */
int client_request(client *c, const char *method, const char *path, const char *content_type,
		   const void *body, size_t len, struct client_response *out, struct err *e);

/* Sends a GET and passes body bytes to `fn` as they arrive (no timeout
 * while streaming); fn returns non-zero to stop.  Non-2xx responses are
 * collected whole into `out` instead. */
int client_stream(client *c, const char *path, int (*fn)(const char *data, size_t len, void *ud),
		  void *ud, struct client_response *out, struct err *e);

#endif
