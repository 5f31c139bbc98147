/* client: blocking sockets + OpenSSL + http-parser.  Certificate checks:
 * the chain must verify against the configured CA, and the certificate must
 * name the host (IP literal or DNS name) of the server URL. */
#include "client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct client {
	int tls;
	char host[256];
	char port[8];
	char *token;
	int timeout_ms;
	SSL_CTX *ctx;
};

/* Splits "https://host:port" / "http://[v6]:port" into parts. */
static int parse_url(client *c, const char *url, struct err *e)
{
	const char *p;
	if (strncmp(url, "https://", 8) == 0) {
		c->tls = 1;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
	} else {
		return err_set(e, ERR_CONFIG, "server URL %s: expected https://HOST:PORT", url);
	}
	const char *end;
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end)
			return err_set(e, ERR_CONFIG, "server URL %s: unterminated [", url);
		snprintf(c->host, sizeof c->host, "%.*s", (int)(end - p - 1), p + 1);
		p = end + 1;
	} else {
		size_t n = strcspn(p, ":/");
		snprintf(c->host, sizeof c->host, "%.*s", (int)n, p);
		p += n;
	}
	if (*p == ':') {
		size_t n = strcspn(p + 1, "/");
		snprintf(c->port, sizeof c->port, "%.*s", (int)n, p + 1);
	} else {
		snprintf(c->port, sizeof c->port, "%s", c->tls ? "443" : "80");
	}
	return c->host[0] ? 0 : err_set(e, ERR_CONFIG, "server URL %s: no host", url);
}

static int load_ca(SSL_CTX *ctx, const char *pem, struct err *e)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int n = 0;
	for (X509 *x; (x = PEM_read_bio_X509(b, NULL, NULL, NULL)); n++) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
	}
	BIO_free(b);
	ERR_clear_error();
	return n ? 0 : err_set(e, ERR_CONFIG, "the CA certificate data holds no PEM certificate");
}

int client_new(const struct client_opts *o, client **out, struct err *e)
{
	client *c = xcalloc(1, sizeof *c);
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
	c->token = o->token ? xstrdup(o->token) : NULL;
	if (parse_url(c, o->server, e)) {
		client_free(c);
		return e->code;
	}
	if (c->tls) {
		c->ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		if (o->ca_pem ? load_ca(c->ctx, o->ca_pem, e) : (SSL_CTX_set_default_verify_paths(c->ctx) != 1 &&
								   err_set(e, ERR_CRYPTO, "no system CA store"))) {
			client_free(c);
			return e->code;
		}
	}
	*out = c;
	return 0;
}

void client_free(client *c)
{
	if (!c)
		return;
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	SSL_CTX_free(c->ctx);
	free(c);
}

void client_response_fini(struct client_response *r)
{
	free(r->content_type);
	buf_fini(&r->body);
	memset(r, 0, sizeof *r);
}

/* --- connection --- */

struct conn {
	int fd;
	SSL *ssl;
	int timeout_ms;
};

static int wait_fd(struct conn *k, short events, struct err *e)
{
	struct pollfd p = {.fd = k->fd, .events = events};
	int r = poll(&p, 1, k->timeout_ms > 0 ? k->timeout_ms : -1);
	if (r == 0)
		return err_set(e, ERR_TIMEOUT, "timed out talking to the server");
	return r < 0 ? err_set(e, ERR_IO, "poll: %s", strerror(errno)) : 0;
}

static int dial(client *c, struct conn *k, struct err *e)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	int rc = getaddrinfo(c->host, c->port, &hints, &ai);
	if (rc)
		return err_set(e, ERR_IO, "resolve %s: %s", c->host, gai_strerror(rc));
	k->fd = -1;
	for (struct addrinfo *a = ai; a && k->fd < 0; a = a->ai_next) {
		k->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (k->fd >= 0 && connect(k->fd, a->ai_addr, a->ai_addrlen) < 0) {
			close(k->fd);
			k->fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (k->fd < 0)
		return err_set(e, ERR_UNAVAILABLE, "cannot connect to %s:%s: %s (is `cocod serve` running?)",
			       c->host, c->port, strerror(errno));
	if (!c->tls)
		return 0;
	k->ssl = SSL_new(c->ctx);
	SSL_set_fd(k->ssl, k->fd);
	unsigned char ip[16];
	if (inet_pton(AF_INET, c->host, ip) == 1 || inet_pton(AF_INET6, c->host, ip) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl), c->host);
	} else {
		SSL_set_tlsext_host_name(k->ssl, c->host);
		SSL_set1_host(k->ssl, c->host);
	}
	if (SSL_connect(k->ssl) != 1) {
		long v = SSL_get_verify_result(k->ssl);
		char msg[160];
		if (v != X509_V_OK)
			return err_set(e, ERR_CRYPTO, "TLS: server certificate: %s", X509_verify_cert_error_string(v));
		return err_set(e, ERR_CRYPTO, "TLS handshake with %s: %s", c->host, tls_error_string(msg, sizeof msg));
	}
	return 0;
}

static void hangup(struct conn *k)
{
	if (k->ssl) {
		SSL_shutdown(k->ssl);
		SSL_free(k->ssl);
	}
	if (k->fd >= 0)
		close(k->fd);
}

static int send_all(struct conn *k, const char *p, size_t n, struct err *e)
{
	while (n > 0) {
		ssize_t w = k->ssl ? SSL_write(k->ssl, p, (int)n) : write(k->fd, p, n);
		if (w <= 0)
			return err_set(e, ERR_IO, "send to server failed");
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t recv_some(struct conn *k, char *p, size_t n, struct err *e)
{
	if (!(k->ssl && SSL_pending(k->ssl)) && wait_fd(k, POLLIN, e))
		return -1;
	ssize_t r = k->ssl ? SSL_read(k->ssl, p, (int)n) : read(k->fd, p, n);
	if (r < 0 || (r == 0 && k->ssl && SSL_get_error(k->ssl, 0) != SSL_ERROR_ZERO_RETURN &&
		      SSL_get_error(k->ssl, 0) != SSL_ERROR_SYSCALL))
		return err_set(e, ERR_IO, "receive from server failed"), -1;
	return r;
}

/* --- response parsing --- */

struct reader {
	struct client_response *resp;
	int (*fn)(const char *, size_t, void *);
	void *ud;
	int streaming, stopped, done, in_value;
	struct buf field, value;
};

/* http-parser may split names and values across calls: collect both and
 * act on a header when the next name (or the end of headers) arrives. */
static void header_done(struct reader *r)
{
	if (r->in_value && strcasecmp(r->field.data, "content-type") == 0 && !r->resp->content_type)
		r->resp->content_type = xstrdup(r->value.data);
	buf_fini(&r->field);
	buf_fini(&r->value);
	buf_reserve(&r->field, 0);
	buf_reserve(&r->value, 0);
	r->in_value = 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;
	if (r->in_value)
		header_done(r);
	buf_add(&r->field, at, n);
	return r->field.len > 8192;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;
	r->in_value = 1;
	buf_add(&r->value, at, n);
	return r->value.len > 65536;
}

static int on_headers_complete(http_parser *p)
{
	struct reader *r = p->data;
	header_done(r);
	r->resp->status = p->status_code;
	r->streaming = r->fn && p->status_code >= 200 && p->status_code < 300;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct reader *r = p->data;
	if (r->streaming) {
		if (r->fn(at, n, r->ud)) {
			r->stopped = 1;
			return 1;
		}
		return 0;
	}
	if (r->resp->body.len + n > (64u << 20))
		return 1; /* refuse absurd bodies */
	buf_add(&r->resp->body, at, n);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	((struct reader *)p->data)->done = 1;
	return 0;
}

static int read_response(struct conn *k, struct reader *r, struct err *e)
{
	static const http_parser_settings settings = {
		.on_header_field = on_header_field,
		.on_header_value = on_header_value,
		.on_headers_complete = on_headers_complete,
		.on_body = on_body,
		.on_message_complete = on_message_complete,
	};
	http_parser p;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = r;
	char buf[16384];
	while (!r->done && !r->stopped) {
		ssize_t n = recv_some(k, buf, sizeof buf, e);
		if (n < 0)
			return e->code;
		size_t used = http_parser_execute(&p, &settings, buf, (size_t)n);
		if (r->stopped)
			return 0;
		if (n == 0 && !r->done)
			return err_set(e, ERR_IO, "the server closed the connection early");
		if (used != (size_t)n || HTTP_PARSER_ERRNO(&p) != HPE_OK)
			return err_set(e, ERR_IO, "malformed response from the server: %s",
				       http_errno_description(HTTP_PARSER_ERRNO(&p)));
	}
	return 0;
}

static int exchange(client *c, const char *method, const char *path, const char *ctype,
		    const void *body, size_t len, struct reader *r, int stream, struct err *e)
{
	struct conn k = {.fd = -1, .timeout_ms = c->timeout_ms};
	int rc = dial(c, &k, e);
	if (rc == 0) {
		struct buf req;
		buf_init(&req);
		buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: cocod/%s\r\n"
			   "Accept: application/json\r\nConnection: close\r\n",
			   method, path, c->host, c->port, COCOD_VERSION);
		if (c->token)
			buf_printf(&req, "Authorization: Bearer %s\r\n", c->token);
		if (body)
			buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n",
				   ctype ? ctype : "application/json", len);
		buf_adds(&req, "\r\n");
		rc = send_all(&k, req.data, req.len, e);
		OPENSSL_cleanse(req.data, req.len);
		buf_fini(&req);
		if (rc == 0 && body && len)
			rc = send_all(&k, body, len, e);
		if (rc == 0 && stream)
			k.timeout_ms = 0;
		if (rc == 0)
			rc = read_response(&k, r, e);
	}
	hangup(&k);
	return rc;
}

int client_request(client *c, const char *method, const char *path, const char *content_type,
		   const void *body, size_t len, struct client_response *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	struct reader r = {.resp = out};
	int rc = exchange(c, method, path, content_type, body, len, &r, 0, e);
	buf_fini(&r.field);
	buf_fini(&r.value);
	if (rc)
		client_response_fini(out);
	return rc;
}

int client_stream(client *c, const char *path, int (*fn)(const char *data, size_t len, void *ud),
		  void *ud, struct client_response *out, struct err *e)
{
	memset(out, 0, sizeof *out);
	struct reader r = {.resp = out, .fn = fn, .ud = ud};
	int rc = exchange(c, "GET", path, NULL, NULL, 0, &r, 1, e);
	buf_fini(&r.field);
	buf_fini(&r.value);
	if (rc)
		client_response_fini(out);
	return rc;
}
