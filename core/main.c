/* main: cocod's command line.  One table maps each subcommand to its
 * function and one-line summary; `cocod help` prints it and every command
 * answers --help.  Exit status: 0 success, 1 failure at run time, 2 bad
 * usage or configuration. */
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "auth.h"
#include "cli.h"
#include "collateral.h"
#include "config.h"
#include "daemon.h"
#include "evidence.h"
#include "kbscli.h"
#include "kit.h"
#include "launcher.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define EXIT_USAGE 2

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage;
};

static int cmd_serve(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);
static int cmd_token(int argc, char **argv);

static const struct command commands[] = {
	{"serve", cmd_serve, "run the daemon",
	 "usage: cocod serve [--listen ADDR:PORT] [--data-dir DIR] [--config FILE]\n"
	 "                   [--log-level error|warn|info|debug] [--plain-http] [--print-config]\n"
	 "\n"
	 "Serves the Kubernetes-compatible API, the KBS and the dashboard over HTTPS.\n"
	 "Flags override the configuration file; `cocod help config` lists every option.\n"
	 "  --listen ADDR:PORT   address to listen on (default 127.0.0.1:8443)\n"
	 "  --data-dir DIR       state directory (default ./var beside a source checkout's\n"
	 "                       build/, else /var/lib/cocod)\n"
	 "  --config FILE        configuration file (TOML subset)\n"
	 "  --log-level LEVEL    error, warn, info or debug\n"
	 "  --plain-http         serve plain HTTP (debugging; loopback addresses only)\n"
	 "  --print-config       print the effective configuration and exit\n"},
	{"token", cmd_token, "manage the admin token",
	 "usage: cocod token rotate [--data-dir DIR] [--config FILE]\n"
	 "\n"
	 "rotate  replaces the admin token: writes a new <data-dir>/admin.token and\n"
	 "        kubeconfig; the old token stops working at once, even for a running daemon.\n"},
	{"apply", cli_apply, "create pods from a YAML/JSON file (or update their labels)",
	 "usage: cocod apply -f FILE|- [options]   (cocod apply --help)\n"},
	{"get", cli_get, "list pods or events", "usage: cocod get pods|events [NAME] [-o json|yaml|wide]\n"},
	{"describe", cli_describe, "show a pod with its events", "usage: cocod describe pod NAME\n"},
	{"delete", cli_delete, "delete a pod", "usage: cocod delete pod NAME [--grace-period N] [--force]\n"},
	{"logs", cli_logs, "print a container's logs", "usage: cocod logs NAME [-c CONTAINER] [-f]\n"},
	{"policy", cli_policy, "manage and test Lua policies (get|set|test|versions|rollback|decisions)",
	 "usage: cocod policy ACTION ... (cocod policy --help)\n"},
	{"image", cli_image, "import, list, inspect and remove local images",
	 "usage: cocod image import FILE [--name REPO] | ls [-o json] | inspect REF | rm REF... (cocod image --help)\n"},
	{"evidence", evidence_main, "verify attestation evidence offline",
	 "usage: cocod evidence verify --tee snp|tdx --evidence FILE [--cert FILE]...\n"
	 "                             [--collateral FILE]... [--sim-roots FILE]...\n"
	 "                             [--data-dir DIR] [--at RFC3339] [--json]\n"},
	{"collateral", collateral_main, "import, list and remove offline attestation collateral",
	 "usage: cocod collateral import FILE... | ls [-o json] | rm SHA256...  [--data-dir DIR]\n"},
	{"kit", kit_main, "show and verify the guest kit (kernel, initramfs, measurement)",
	 "usage: cocod kit show [--kit DIR] [--json]\n"},
	{"agent", agent_main, "run as the guest agent (PID 1 inside a pod VM)",
	 "usage: cocod agent [--port DEVICE]\n"},
	{"secret", kbscli_secret, "store, remove or list KBS secrets (sealed at rest)",
	 "usage: cocod secret put REPO/TYPE/TAG FILE|- | rm REPO/TYPE/TAG | ls  [--data-dir DIR]\n"},
	{"reference-value", kbscli_reference_value, "register or show KBS reference values",
	 "usage: cocod reference-value add NAME VALUE... | get NAME  [--data-dir DIR]\n"},
	{"sim-evidence", kbscli_sim_evidence, "print sim SNP evidence for KBS tests (no TEE protection)",
	 "usage: cocod sim-evidence --report-data HEX [--host-data HEX] [--measurement HEX] [--data-dir DIR]\n"},
	{"version", cmd_version, "print the version", "usage: cocod version\n"},
	{"help", cmd_help, "list commands, or `help COMMAND`, or `help config`",
	 "usage: cocod help [COMMAND|config]\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const char *usage_of(const char *name)
{
	const struct command *c = find_command(name);
	return c ? c->usage : "";
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cocod %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s", usage_of(cmd));
	return EXIT_USAGE;
}

/* Makes data_dir absolute (libvirt's embedded root and the kubeconfig need
 * absolute paths) and fills in the default. */
static int resolve_data_dir(struct config *c)
{
	char *dir = c->data_dir[0] ? xstrdup(c->data_dir) : cli_default_data_dir();
	if (dir[0] != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd)) {
			free(dir);
			return -1;
		}
		char *abs = xasprintf("%s/%s", cwd, dir);
		free(dir);
		dir = abs;
	}
	size_t len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		dir[--len] = '\0';
	free(c->data_dir);
	c->data_dir = dir;
	return 0;
}

enum { OPT_LISTEN = 256, OPT_DATA_DIR, OPT_CONFIG, OPT_LOG_LEVEL, OPT_PLAIN, OPT_PRINT, OPT_HELP };

/* Parses the options shared by commands that work on a data directory.
 * Applies the config file first, then flags.  Returns 0, or an exit
 * status. */
static int load_config(const char *cmd, int argc, char **argv, struct config *c, int *print)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"data-dir", required_argument, NULL, OPT_DATA_DIR},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"plain-http", no_argument, NULL, OPT_PLAIN},
		{"print-config", no_argument, NULL, OPT_PRINT},
		{"help", no_argument, NULL, OPT_HELP},
		{NULL, 0, NULL, 0},
	};
	struct {
		const char *name, *value;
	} flags[8];
	int nflags = 0, opt;
	const char *file = NULL;
	struct err e = {0};
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LISTEN: flags[nflags].name = "listen"; break;
		case OPT_DATA_DIR: flags[nflags].name = "data_dir"; break;
		case OPT_LOG_LEVEL: flags[nflags].name = "log_level"; break;
		case OPT_PLAIN: flags[nflags].name = "plain_http"; break;
		case OPT_CONFIG: file = optarg; continue;
		case OPT_PRINT: *print = 1; continue;
		case 'h':
		case OPT_HELP: fputs(usage_of(cmd), stdout); return -1;
		default: return usage_error(cmd, "unknown or incomplete option %s", argv[optind - 1]);
		}
		flags[nflags++].value = opt == OPT_PLAIN ? "true" : optarg;
		if (nflags == (int)(sizeof flags / sizeof flags[0]))
			return usage_error(cmd, "%s", "too many options");
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument %s", argv[optind]);
	if (file && config_load_file(c, file, &e)) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		return EXIT_USAGE;
	}
	for (int i = 0; i < nflags; i++)
		if (config_set(c, flags[i].name, flags[i].value, &e)) {
			fprintf(stderr, "cocod %s: --%s: %s\n", cmd, flags[i].name, e.msg);
			return EXIT_USAGE;
		}
	if (config_validate(c, &e)) {
		fprintf(stderr, "cocod: %s\n", e.msg);
		return EXIT_USAGE;
	}
	enum log_level lvl = LOG_INFO;
	log_level_parse(c->log_level, &lvl);
	log_set_level(lvl);
	if (resolve_data_dir(c) < 0) {
		fprintf(stderr, "cocod: cannot resolve the data directory\n");
		return 1;
	}
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	struct config c;
	int print = 0;
	config_init(&c);
	int rc = load_config("serve", argc, argv, &c, &print);
	if (rc == 0 && print)
		config_print(&c, stdout);
	else if (rc == 0)
		rc = daemon_run(&c);
	config_fini(&c);
	return rc < 0 ? 0 : rc;
}

static int cmd_token(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_of("token"), argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "rotate") != 0)
		return usage_error("token", "unknown action %s", argv[1]);
	struct config c;
	int print = 0;
	config_init(&c);
	int rc = load_config("token", argc - 1, argv + 1, &c, &print);
	if (rc == 0) {
		struct store *s = NULL;
		struct err e = {0};
		if (daemon_open_store(c.data_dir, &s, &e) || auth_rotate(s, c.data_dir, &e)) {
			fprintf(stderr, "cocod token rotate: %s\n", e.msg);
			rc = 1;
		} else {
			printf("new admin token written to %s/admin.token (kubeconfig updated)\n",
			       c.data_dir);
		}
		store_close(s);
	}
	config_fini(&c);
	return rc < 0 ? 0 : rc;
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		fputs(usage_of("version"), stdout);
		return 0;
	}
	if (argc > 1)
		return usage_error("version", "unexpected argument %s", argv[1]);
	printf("cocod %s (commit %s)\n", COCOD_VERSION, COCOD_COMMIT);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "config") == 0) {
		config_print_reference(stdout);
		return 0;
	}
	if (argc > 1 && argv[1][0] != '-') {
		const struct command *c = find_command(argv[1]);
		if (!c)
			return usage_error("help", "unknown command %s", argv[1]);
		fputs(c->usage, stdout);
		return 0;
	}
	printf("usage: cocod COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		printf("  %-10s %s\n", commands[i].name, commands[i].summary);
	printf("\n`cocod COMMAND --help` describes a command.\n");
	return 0;
}

int main(int argc, char **argv)
{
	/* The guest kit's /init is a link to cocod: the kernel starts the
	 * agent directly, without a shell in between. */
	if (argc >= 1 && strcmp(argv[0], "/init") == 0)
		return agent_main(argc, argv);
	launcher_prepare_process(); /* before any libuv loop exists (launcher.h) */
	if (argc < 2) {
		cmd_help(1, argv);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(1, argv);
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv);
	const struct command *c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "cocod: unknown command %s (see `cocod help`)\n", argv[1]);
		return EXIT_USAGE;
	}
	return c->fn(argc - 1, argv + 1);
}
