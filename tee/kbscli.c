/* kbscli: see kbscli.h.  Secrets go through the daemon's admin endpoints
 * with core/cli.c's connection (kubeconfig -> server, CA, token). */
#include "kbscli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "b64.h"
#include "cli.h"
#include "client.h"
#include "codec.h"
#include "daemon.h"
#include "kbs.h"
#include "seal.h"
#include "simsp.h"
#include "util.h"

#define EXIT_FAIL  1
#define EXIT_USAGE 2
#define SECRET_MAX (16u << 20)

static const char secret_usage[] =
	"usage: cocod secret put REPO/TYPE/TAG FILE|-  [--data-dir DIR] [--server URL] [--token T]\n"
	"       cocod secret rm REPO/TYPE/TAG\n"
	"       cocod secret ls\n";

struct conn_opts {
	const char *data_dir, *server, *token;
};

/* One request; prints the server's detail on failure. */
static int call(client *cl, const char *method, const char *path, const void *body, size_t len, json_t **out)
{
	struct client_response r;
	struct err e = {0};
	if (client_request(cl, method, path, body ? "application/octet-stream" : NULL, body, len, &r, &e)) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		return EXIT_FAIL;
	}
	json_t *j = r.body.len ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
	int rc = 0;
	if (r.status >= 300) {
		const char *d = json_string_value(json_object_get(j, "detail"));
		if (!d)
			d = json_string_value(json_object_get(j, "message"));
		fprintf(stderr, "Error from server: HTTP %d: %s\n", r.status, d ? d : "(no detail)");
		rc = EXIT_FAIL;
	} else if (out) {
		*out = json_incref(j);
	}
	json_decref(j);
	client_response_fini(&r);
	return rc;
}

static int read_input(const char *file, char **data, size_t *len)
{
	struct err e = {0};
	if (strcmp(file, "-") != 0) {
		if (file_read(file, SECRET_MAX, data, len, &e)) {
			fprintf(stderr, "cocod secret: %s\n", e.msg);
			return EXIT_FAIL;
		}
		return 0;
	}
	struct buf b;
	char chunk[8192];
	size_t n;
	buf_init(&b);
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && b.len <= SECRET_MAX)
		buf_add(&b, chunk, n);
	OPENSSL_cleanse(chunk, sizeof chunk);
	*data = buf_steal(&b, len);
	if (!*data)
		*data = xstrdup("");
	return 0;
}

static int secret_run(client *cl, const char *action, int argc, char **argv)
{
	json_t *out = NULL;
	int rc;
	if (strcmp(action, "ls") == 0) {
		if ((rc = call(cl, "GET", "/kbs/v0/resources", NULL, 0, &out)) == 0) {
			size_t i;
			json_t *v;
			json_array_foreach(json_object_get(out, "resources"), i, v) puts(json_string_value(v));
		}
	} else if (argc < 1 || !kbs_path_valid(argv[0])) {
		fprintf(stderr, "cocod secret %s: need REPO/TYPE/TAG\n%s", action, secret_usage);
		return EXIT_USAGE;
	} else if (strcmp(action, "rm") == 0) {
		cleanup_free char *path = xasprintf("/kbs/v0/resource/%s", argv[0]);
		if ((rc = call(cl, "DELETE", path, NULL, 0, NULL)) == 0)
			printf("secret %s deleted\n", argv[0]);
	} else {
		char *data;
		size_t len;
		if (argc < 2) {
			fprintf(stderr, "cocod secret put: need FILE or -\n%s", secret_usage);
			return EXIT_USAGE;
		}
		if (read_input(argv[1], &data, &len))
			return EXIT_FAIL;
		cleanup_free char *path = xasprintf("/kbs/v0/resource/%s", argv[0]);
		rc = call(cl, "POST", path, data, len, NULL);
		OPENSSL_cleanse(data, len);
		free(data);
		if (rc == 0)
			printf("secret %s stored (%zu bytes)\n", argv[0], len);
	}
	json_decref(out);
	return rc;
}

/* --data-dir, --server, --token and --help of the admin commands: -1 to go
 * on, else the exit status (0 after --help). */
static int parse_conn(int argc, char **argv, const char *cmd, const char *usage,
		      struct conn_opts *c)
{
	static const struct option opts[] = {
		{"data-dir", required_argument, NULL, 'd'}, {"server", required_argument, NULL, 's'},
		{"token", required_argument, NULL, 't'},    {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': c->data_dir = optarg; break;
		case 's': c->server = optarg; break;
		case 't': c->token = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fprintf(stderr, "cocod %s: bad option\n%s", cmd, usage); return EXIT_USAGE;
		}
	}
	return -1;
}

int kbscli_secret(int argc, char **argv)
{
	struct conn_opts c = {0};
	int done = parse_conn(argc, argv, "secret", secret_usage, &c);
	if (done >= 0)
		return done;
	if (optind >= argc || (strcmp(argv[optind], "put") && strcmp(argv[optind], "rm") && strcmp(argv[optind], "ls"))) {
		fputs(secret_usage, stderr);
		return EXIT_USAGE;
	}
	client *cl = NULL;
	if (cli_connect(c.data_dir, NULL, c.server, c.token, &cl))
		return EXIT_FAIL;
	int rc = secret_run(cl, argv[optind], argc - optind - 1, argv + optind + 1);
	client_free(cl);
	return rc;
}

/* --- reference-value --- */

static const char refval_usage[] =
	"usage: cocod reference-value add NAME VALUE...  [--data-dir DIR] [--server URL] [--token T]\n"
	"       cocod reference-value get NAME\n"
	"add  registers values under NAME (a Trustee RVPS \"sample\" message, valid 12 months),\n"
	"     e.g. measurement, host_data, init_data, tcb_min_microcode\n"
	"get  prints the stored values of NAME (Trustee's stored form)\n";

static int refval_run(client *cl, const char *action, int argc, char **argv)
{
	json_t *out = NULL;
	int rc;
	if (argc < 1 || (strcmp(action, "add") == 0 && argc < 2)) {
		fprintf(stderr, "cocod reference-value %s: missing arguments\n%s", action, refval_usage);
		return EXIT_USAGE;
	}
	size_t nl = strspn(argv[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
	if (nl == 0 || nl > 128 || argv[0][nl]) {
		fprintf(stderr, "cocod reference-value: bad name %.64s\n", argv[0]);
		return EXIT_USAGE;
	}
	if (strcmp(action, "get") == 0) {
		cleanup_free char *path = xasprintf("/kbs/v0/reference-value/%s", argv[0]);
		if ((rc = call(cl, "GET", path, NULL, 0, &out)) == 0) {
			char *text = json_dumps(out, JSON_INDENT(2));
			puts(text ? text : "[]");
			free(text);
		}
		json_decref(out);
		return rc;
	}
	json_t *vals = json_array();
	for (int i = 1; i < argc; i++)
		json_array_append_new(vals, json_string(argv[i]));
	json_t *payload = json_pack("{s:o}", argv[0], vals);
	char *ptext = json_dumps(payload, JSON_COMPACT), *p64 = b64_encode(ptext, strlen(ptext));
	json_t *msg = json_pack("{s:s, s:s, s:s}", "version", "0.1.0", "type", "sample", "payload", p64);
	char *body = json_dumps(msg, JSON_COMPACT);
	rc = call(cl, "POST", "/kbs/v0/reference-value", body, strlen(body), &out);
	if (rc == 0)
		printf("reference value %s: %d value(s) registered\n", argv[0],
		       (int)json_integer_value(json_object_get(out, "registered")));
	free(body), free(ptext), free(p64);
	json_decref(msg);
	json_decref(payload);
	json_decref(out);
	return rc;
}

int kbscli_reference_value(int argc, char **argv)
{
	struct conn_opts c = {0};
	int done = parse_conn(argc, argv, "reference-value", refval_usage, &c);
	if (done >= 0)
		return done;
	if (optind >= argc || (strcmp(argv[optind], "add") && strcmp(argv[optind], "get"))) {
		fputs(refval_usage, stderr);
		return EXIT_USAGE;
	}
	client *cl = NULL;
	if (cli_connect(c.data_dir, NULL, c.server, c.token, &cl))
		return EXIT_FAIL;
	int rc = refval_run(cl, argv[optind], argc - optind - 1, argv + optind + 1);
	client_free(cl);
	return rc;
}

/* --- sim-evidence --- */

static const char sim_usage[] =
	"usage: cocod sim-evidence --report-data HEX [--host-data HEX] [--measurement HEX]\n"
	"                          [--policy HEX] [--data-dir DIR]\n"
	"Prints Trustee-shaped SNP evidence signed by this box's sim chain (no TEE protection).\n";

/* Hex (optional 0x) into at most `max` bytes, zero-padded. */
static int hex_arg(const char *s, uint8_t *out, size_t max)
{
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	size_t n = strlen(s);
	if (n % 2 || n / 2 > max)
		return -1;
	memset(out, 0, max);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int sim_print(const char *dir, const uint8_t rd[64], const uint8_t *hd, const uint8_t *ms,
		     uint64_t guest_policy)
{
	struct err e = {0};
	store *st = NULL;
	seal *s = NULL;
	struct simsp *sp = NULL;
	uint8_t report[SNP_REPORT_SIZE];
	cleanup_free char *key = xasprintf("%s/master.key", dir);
	int rc = daemon_open_store(dir, &st, &e) || seal_open(key, &s, &e) ||
		 kbs_sim_load(s, st, 1, &sp, &e) || simsp_report(sp, rd, hd, ms, guest_policy, report, &e);
	if (rc) {
		fprintf(stderr, "cocod sim-evidence: %s\n", e.msg);
	} else {
		char *r64 = b64_encode(report, sizeof report), *vcek = simsp_vcek_pem(sp);
		json_t *ev = json_pack("{s:s, s:[{s:s, s:s}]}", "attestation_report", r64, "cert_chain",
				       "cert_type", "VCEK", "data", vcek);
		char *text = json_dumps(ev, JSON_COMPACT);
		puts(text);
		free(text), free(r64), free(vcek);
		json_decref(ev);
	}
	simsp_free(sp);
	seal_free(s);
	store_close(st);
	return rc ? EXIT_FAIL : 0;
}

int kbscli_sim_evidence(int argc, char **argv)
{
	static const struct option opts[] = {
		{"report-data", required_argument, NULL, 'r'}, {"host-data", required_argument, NULL, 'H'},
		{"measurement", required_argument, NULL, 'm'}, {"policy", required_argument, NULL, 'p'},
		{"data-dir", required_argument, NULL, 'd'},    {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint8_t rd[64], hd[32], ms[48];
	int have_rd = 0, have_hd = 0, have_ms = 0, opt;
	uint64_t gpol = 0x30000; /* SMT allowed, reserved bit 17 */
	cleanup_free char *dir = NULL;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int bad = 0;
		switch (opt) {
		case 'r': bad = hex_arg(optarg, rd, 64), have_rd = 1; break;
		case 'H': bad = hex_arg(optarg, hd, 32), have_hd = 1; break;
		case 'm': bad = hex_arg(optarg, ms, 48), have_ms = 1; break;
		case 'p': gpol = strtoull(optarg, NULL, 16); break;
		case 'd': free(dir), dir = xstrdup(optarg); break;
		case 'h': fputs(sim_usage, stdout); return 0;
		default: bad = 1;
		}
		if (bad) {
			fprintf(stderr, "cocod sim-evidence: bad option or hex value\n%s", sim_usage);
			return EXIT_USAGE;
		}
	}
	if (!have_rd || optind < argc) {
		fputs(sim_usage, stderr);
		return EXIT_USAGE;
	}
	if (!dir)
		dir = cli_default_data_dir();
	return sim_print(dir, rd, have_hd ? hd : NULL, have_ms ? ms : NULL, gpol);
}
