/* tls: cocod's own small PKI and the server's TLS context.  As k3s does, on
 * first start cocod creates a CA and a server certificate in
 * <data-dir>/tls/ (ca.crt, ca.key, server.crt, server.key; keys mode 0600)
 * and reuses them afterwards; the server certificate is reissued from the
 * same CA when its names no longer cover what is wanted (host name changed,
 * extra names added) or it expires within 30 days.  Operators may bring
 * their own certificate and key instead. */
#ifndef COCOD_TLS_H
#define COCOD_TLS_H

#include <openssl/ssl.h>

#include "err.h"

struct tls_paths {
	char *ca_cert; /* NULL when the operator brought their own certificate */
	char *cert;
	char *key;
};
void tls_paths_fini(struct tls_paths *p);

/* Makes sure <dir>/tls holds a CA and a server certificate whose
 * subjectAltName covers 127.0.0.1, ::1, localhost, this host's name and
 * `extra_names` (NULL-terminated, DNS names or IP literals).  Sets *issued
 * to 1 when it wrote a new server certificate. */
int tls_ensure_pki(const char *data_dir, char *const *extra_names, struct tls_paths *out,
		   int *issued, struct err *e);

/* A server SSL_CTX (TLS 1.2 minimum, ALPN http/1.1) from PEM files; the
 * certificate file may hold a chain. */
int tls_server_ctx(const char *cert, const char *key, SSL_CTX **out, struct err *e);

/* Formats OpenSSL's error queue (and clears it) into `buf`. */
const char *tls_error_string(char *buf, size_t len);

#endif
