/* evidence: `cocod evidence verify`.  Reads an evidence file and optional
 * certificates, picks the TEE's verifier from a table, and prints the
 * claims (as `path: value` lines or one JSON document) and the verdict.
 * SNP evidence may be a raw 1184-byte report, ASCII hex of one, an Azure
 * HCL report (the SNP report at offset 0x20 is verified; the vTPM part is
 * not), or Trustee's JSON ({"attestation_report", "cert_chain"}). */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "collateral.h"
#include "daemon.h"
#include "evidence.h"
#include "tdx.h"
#include "snp.h"
#include "util.h"

#define EXIT_VALID   0
#define EXIT_INVALID 1
#define EXIT_USAGE   2
#define MAX_FILE     (4u << 20)
#define MAX_CERTS    16

static const char usage_text[] =
    "usage: cocod evidence verify --tee snp|tdx --evidence FILE [--cert FILE]...\n"
    "                             [--collateral FILE]... [--sim-roots FILE]...\n"
    "                             [--data-dir DIR] [--at RFC3339] [--json]\n"
    "\n"
    "Verifies attestation evidence offline and prints every claim and the verdict.\n"
    "  --tee TEE          snp or tdx\n"
    "  --evidence FILE    SNP: raw 1184-byte report, ASCII hex of one, an Azure HCL\n"
    "                     report, or Trustee's JSON evidence\n"
    "  --cert FILE        VCEK/VLEK (and optionally ASK/ASVK, ARK), PEM or DER;\n"
    "                     AMD's ARKs and ASKs are built in\n"
    "  --collateral FILE  TDX: Intel TCB info, QE identity, their signing chain,\n"
    "                     CRLs, or a dcap-qvl collateral bundle (without it the\n"
    "                     signatures and chains are checked, TCB status unknown)\n"
    "  --sim-roots FILE   trust this sim ARK+ASK (PEM); its reports say sim: true\n"
    "  --data-dir DIR     use the collateral imported there (cocod collateral import)\n"
    "                     as the KBS does: the VCEK/VLEK when neither --cert nor the\n"
    "                     evidence gives one; the TDX collateral unless --collateral\n"
    "  --at TIME          check certificate validity at TIME (default: now)\n"
    "  --json             print one JSON document\n"
    "Exit status: 0 valid, 1 invalid, 2 usage.\n";

struct opts {
	const char *tee, *evidence, *at, *data_dir;
	const char *certs[MAX_CERTS], *sim_roots[MAX_CERTS], *collateral[MAX_CERTS];
	int ncerts, nsim, ncol, json;
};

/* What a verifier hands back: claims (even when invalid, if the evidence
 * parsed), the form it recognised, and the verdict in `e`. */
struct result {
	json_t *claims;
	const char *form;
};

typedef int (*verify_fn)(const struct opts *o, time_t at, struct result *res, struct err *e);

static int verify_snp(const struct opts *o, time_t at, struct result *res, struct err *e);

static const struct {
	const char *tee;
	verify_fn fn; /* NULL: not built yet */
	const char *missing;
} verifiers[] = {
    {"snp", verify_snp, NULL},
    {"tdx", NULL, "handled by tdx_cli_verify_files"},
};

/* ---- time ---- */

int evidence_parse_time(const char *s, time_t *out, struct err *e)
{
	struct tm tm = {0};
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	           &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n == 0)
		return err_set(e, ERR_INVALID, "bad time %s (expected RFC 3339)", s);
	const char *p = s + n;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	long off = 0;
	int oh, om, k = 0;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		off = 0;
	else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) == 2 &&
	         p[1 + k] == '\0')
		off = (*p == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
	else
		return err_set(e, ERR_INVALID, "bad time %s (expected Z or an offset)", s);
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return err_set(e, ERR_INVALID, "bad time %s (field out of range)", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm) - off;
	return 0;
}

/* ---- SNP ---- */

static int read_file(const char *path, char **data, size_t *len, struct err *e)
{
	return file_read(path, MAX_FILE, data, len, e);
}

static int hexdigit(int c)
{
	if (isdigit(c))
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* ASCII hex (whitespace and a 0x prefix allowed) of exactly one report. */
static int decode_hex_report(const char *s, size_t len, uint8_t out[SNP_REPORT_SIZE])
{
	size_t n = 0;
	int hi = -1;
	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2, len -= 2;
	for (size_t i = 0; i < len; i++) {
		if (isspace((unsigned char)s[i]))
			continue;
		int d = hexdigit((unsigned char)s[i]);
		if (d < 0 || n >= SNP_REPORT_SIZE)
			return -1;
		if (hi < 0) {
			hi = d;
			continue;
		}
		out[n++] = (uint8_t)(hi << 4 | d);
		hi = -1;
	}
	return n == SNP_REPORT_SIZE && hi < 0 ? 0 : -1;
}

/* Sorts the evidence file into a raw report or Trustee JSON. */
static int snp_load(const char *data, size_t len, uint8_t raw[SNP_REPORT_SIZE], json_t **json,
                    const char **form, struct err *e)
{
	size_t i = 0;
	while (i < len && isspace((unsigned char)data[i]))
		i++;
	if (i < len && data[i] == '{') {
		json_error_t je;
		*json = json_loadb(data, len, 0, &je);
		*form = "trustee-json";
		if (!*json)
			return err_set(e, ERR_INVALID, "evidence JSON: %s (line %d)", je.text,
			               je.line);
		if (!json_object_get(*json, "attestation_report"))
			return err_set(e, ERR_INVALID, "evidence JSON has no attestation_report");
		return 0;
	}
	if (len >= 0x20 + SNP_REPORT_SIZE && memcmp(data, "HCLA", 4) == 0) {
		memcpy(raw, data + 0x20, SNP_REPORT_SIZE);
		*form = "azure-hcl";
		return 0;
	}
	if (len == SNP_REPORT_SIZE) {
		memcpy(raw, data, SNP_REPORT_SIZE);
		*form = "raw";
		return 0;
	}
	*form = "hex";
	if (decode_hex_report(data, len, raw) == 0)
		return 0;
	return err_set(e, ERR_INVALID,
	               "evidence (%zu bytes) is not a %d-byte SNP report, hex of one, an Azure "
	               "HCL report or Trustee SNP JSON",
	               len, SNP_REPORT_SIZE);
}

static int load_certs(const struct opts *o, struct buf *pem, struct err *e)
{
	for (int i = 0; i < o->ncerts; i++) {
		char *data;
		size_t len;
		int rc = read_file(o->certs[i], &data, &len, e);
		if (rc == 0)
			rc = snp_certs_to_pem((const uint8_t *)data, len, pem, e);
		free(data);
		if (rc)
			return err_wrap(e, "--cert %s", o->certs[i]);
	}
	return 0;
}

static int load_trust(const struct opts *o, struct snp_trust *t, struct err *e)
{
	for (int i = 0; i < o->nsim; i++) {
		char *data;
		size_t len;
		int rc = read_file(o->sim_roots[i], &data, &len, e);
		if (rc == 0)
			rc = snp_trust_add(t, data, len, e);
		free(data);
		if (rc)
			return err_wrap(e, "--sim-roots %s", o->sim_roots[i]);
	}
	return 0;
}

/* Claims of an invalid report, for the operator to look at. */
static json_t *parsed_claims(const uint8_t raw[SNP_REPORT_SIZE], const json_t *json)
{
	uint8_t tmp[SNP_REPORT_SIZE];
	struct snp_report r;
	struct err ignore;
	if (json) {
		if (snp_trustee_report(json_object_get(json, "attestation_report"), tmp, &ignore))
			return NULL;
		raw = tmp;
	}
	return snp_parse(raw, SNP_REPORT_SIZE, &r, &ignore) ? NULL : snp_claims(&r);
}

static int snp_run(const uint8_t *raw, const json_t *json, const struct buf *pem,
                   const struct snp_trust *t, const struct snp_crls *crls, time_t at,
                   struct result *res, struct err *e)
{
	const uint8_t *certs = (const uint8_t *)pem->data;
	uint8_t tmp[SNP_REPORT_SIZE];
	int rc = 0;
	if (json && !json_is_object(json))
		rc = err_set(e, ERR_INVALID, "SNP evidence: expected a JSON object");
	else if (json)
		rc = snp_trustee_report(json_object_get(json, "attestation_report"), tmp, e) ||
		     snp_verify_trustee_chain(tmp, json_object_get(json, "cert_chain"), certs, pem->len,
		                              t, crls, at, &res->claims, e);
	else
		rc = snp_verify_crls(raw, SNP_REPORT_SIZE, certs, pem->len, t, crls, at, &res->claims,
		                     e);
	if (rc)
		res->claims = parsed_claims(raw, json);
	return rc;
}

/* The store of `--data-dir`, opened only if it exists. */
static int open_store(const char *dir, store **st, struct err *e)
{
	cleanup_free char *db = xasprintf("%s/cocod.db", dir);
	if (access(db, R_OK) != 0)
		return err_set(e, ERR_NOT_FOUND, "--data-dir %s: no cocod store there", dir);
	return daemon_open_store(dir, st, e);
}

static int json_carries_vek(const json_t *ev)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(ev, "cert_chain"), i, c)
	{
		const char *t = json_string_value(json_object_get(c, "cert_type"));
		if (t && (strcasecmp(t, "VCEK") == 0 || strcasecmp(t, "VLEK") == 0))
			return 1;
	}
	return 0;
}

/* As the KBS does: each imported VCEK/VLEK matching the report, in turn. */
static int snp_run_store(const struct opts *o, const uint8_t *raw, const json_t *json,
                         const struct snp_trust *t, const struct snp_crls *crls, time_t at,
                         struct result *res, struct err *e)
{
	uint8_t tmp[SNP_REPORT_SIZE];
	struct snp_report r;
	struct collateral_cert *c = NULL;
	size_t n = 0;
	store *st = NULL;
	int rc;
	if (json && (rc = snp_trustee_report(json_object_get(json, "attestation_report"), tmp, e)))
		return rc;
	if ((rc = snp_parse(json ? tmp : raw, SNP_REPORT_SIZE, &r, e)))
		return rc;
	if ((rc = open_store(o->data_dir, &st, e)))
		return rc;
	rc = collateral_snp_veks(st, &r, &c, &n, e);
	store_close(st);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct buf der = {(char *)c[i].der, c[i].len, c[i].len};
		json_decref(res->claims);
		res->claims = NULL;
		rc = snp_run(raw, json, &der, t, crls, at, res, e);
		if (rc && i + 1 < n)
			rc = 0;
		else
			break;
	}
	collateral_certs_free(c, n);
	if (rc && !res->claims)
		res->claims = parsed_claims(raw, json);
	return rc;
}

/* The AMD ARK CRLs imported into the store of --data-dir (NULL: none). */
static int store_crls(const char *dir, struct snp_crls **out, struct err *e)
{
	store *st = NULL;
	int rc = open_store(dir, &st, e);
	if (rc == 0)
		rc = collateral_snp_crls(st, out, e);
	store_close(st);
	return rc;
}

static int verify_snp(const struct opts *o, time_t at, struct result *res, struct err *e)
{
	uint8_t raw[SNP_REPORT_SIZE];
	json_t *json = NULL;
	char *data = NULL;
	size_t len;
	struct buf pem;
	struct snp_trust *t = snp_trust_new();
	struct snp_crls *crls = NULL;
	buf_init(&pem);
	int rc = read_file(o->evidence, &data, &len, e);
	if (rc) {
		rc = EXIT_USAGE;
		goto out;
	}
	if ((rc = load_certs(o, &pem, e)) || (rc = load_trust(o, t, e))) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (o->data_dir && (rc = store_crls(o->data_dir, &crls, e))) {
		rc = EXIT_USAGE;
		goto out;
	}
	if (snp_load(data, len, raw, &json, &res->form, e))
		rc = EXIT_INVALID;
	else if (o->data_dir && o->ncerts == 0 && !(json && json_carries_vek(json)))
		rc = snp_run_store(o, raw, json, t, crls, at, res, e) ? EXIT_INVALID : 0;
	else if (snp_run(raw, json, &pem, t, crls, at, res, e))
		rc = EXIT_INVALID;
out:
	snp_crls_free(crls);
	json_decref(json);
	free(data);
	buf_fini(&pem);
	snp_trust_free(t);
	return rc;
}

/* TDX collateral from the store of --data-dir. */
static int store_loader(void *arg, const uint8_t *q, size_t qlen, time_t at,
                        struct tdx_collateral **out, struct err *e)
{
	const char *dir = arg;
	store *st = NULL;
	int rc = open_store(dir, &st, e);
	if (rc == 0)
		rc = collateral_tdx_load(st, q, qlen, at, out, e);
	store_close(st);
	return rc;
}

/* ---- output ---- */

static void print_flat(const char *prefix, json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			cleanup_free char *p =
			    prefix[0] ? xasprintf("%s.%s", prefix, k) : xstrdup(k);
			print_flat(p, x);
		}
		return;
	}
	if (json_is_string(v)) {
		printf("%s: %s\n", prefix, json_string_value(v));
		return;
	}
	cleanup_free char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	printf("%s: %s\n", prefix, s ? s : "?");
}

static void print_result(const struct opts *o, const struct result *res, int rc,
                         const struct err *e)
{
	if (o->json) {
		json_t *doc = json_pack("{s:s, s:s?, s:s, s:s?, s:O?}", "tee", o->tee, "form",
		                        res->form, "verdict", rc ? "invalid" : "valid", "reason",
		                        rc ? e->msg : NULL, "claims", res->claims);
		cleanup_free char *s = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", s ? s : "{}");
		json_decref(doc);
		return;
	}
	printf("tee: %s\n", o->tee);
	if (res->form)
		printf("form: %s\n", res->form);
	if (res->claims)
		print_flat("", res->claims);
	if (rc)
		printf("verdict: invalid: %s\n", e->msg);
	else
		printf("verdict: valid\n");
}

/* ---- command line ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cocod evidence: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s", usage_text);
	return EXIT_USAGE;
}

static int add_path(const char **list, int *n, const char *path, const char *flag)
{
	if (*n >= MAX_CERTS)
		return usage_error("too many %s files", flag);
	list[(*n)++] = path;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_TEE = 1, O_EVIDENCE, O_CERT, O_SIM, O_AT, O_JSON, O_HELP, O_COLLATERAL, O_DATA };
	static const struct option longopts[] = {
	    {"tee", required_argument, NULL, O_TEE},
	    {"evidence", required_argument, NULL, O_EVIDENCE},
	    {"cert", required_argument, NULL, O_CERT},
	    {"sim-roots", required_argument, NULL, O_SIM},
	    {"collateral", required_argument, NULL, O_COLLATERAL},
	    {"data-dir", required_argument, NULL, O_DATA},
	    {"at", required_argument, NULL, O_AT},
	    {"json", no_argument, NULL, O_JSON},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	int c, rc = 0;
	optind = 0; /* callable more than once (tests) */
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_TEE:
			o->tee = optarg;
			break;
		case O_EVIDENCE:
			o->evidence = optarg;
			break;
		case O_CERT:
			rc = add_path(o->certs, &o->ncerts, optarg, "--cert");
			break;
		case O_SIM:
			rc = add_path(o->sim_roots, &o->nsim, optarg, "--sim-roots");
			break;
		case O_COLLATERAL:
			rc = add_path(o->collateral, &o->ncol, optarg, "--collateral");
			break;
		case O_AT:
			o->at = optarg;
			break;
		case O_DATA:
			o->data_dir = optarg;
			break;
		case O_JSON:
			o->json = 1;
			break;
		case O_HELP:
			fputs(usage_text, stdout);
			return -1;
		default:
			return usage_error("unknown or incomplete option %s", argv[optind - 1]);
		}
	}
	if (rc == 0 && optind < argc)
		return usage_error("unexpected argument %s", argv[optind]);
	if (rc == 0 && (!o->tee || !o->evidence))
		return usage_error("%s", "--tee and --evidence are required");
	return rc;
}

static int verify_main(int argc, char **argv)
{
	struct opts o = {0};
	int rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct err e = {0};
	time_t at = time(NULL);
	if (o.at && evidence_parse_time(o.at, &at, &e))
		return usage_error("%s", e.msg);
	if (strcmp(o.tee, "tdx") == 0 && o.data_dir && o.ncol == 0)
		return tdx_cli_verify_with(o.evidence, store_loader, (void *)(uintptr_t)o.data_dir, at,
		                           o.json, stdout);
	if (strcmp(o.tee, "tdx") == 0) /* the TDX module prints its own report */
		return tdx_cli_verify_files(o.evidence, o.collateral, (size_t)o.ncol, at, o.json, stdout);
	for (size_t i = 0; i < sizeof verifiers / sizeof verifiers[0]; i++) {
		if (strcmp(verifiers[i].tee, o.tee) != 0)
			continue;
		if (!verifiers[i].fn) {
			fprintf(stderr, "cocod evidence: %s\n", verifiers[i].missing);
			return EXIT_USAGE;
		}
		struct result res = {0};
		rc = verifiers[i].fn(&o, at, &res, &e);
		if (rc == EXIT_USAGE)
			fprintf(stderr, "cocod evidence: %s\n", e.msg);
		else
			print_result(&o, &res, rc, &e);
		json_decref(res.claims);
		fflush(stdout);
		return rc;
	}
	return usage_error("unknown TEE %s (snp, tdx)", o.tee);
}

int evidence_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return verify_main(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	return usage_error("%s", argc >= 2 ? "unknown subcommand (expected verify)"
	                                   : "missing subcommand (expected verify)");
}
