/* cli: cocod's client commands — apply, get, describe, delete, logs — which
 * talk to the local daemon over its REST API like kubectl does, with the
 * server, CA and admin token taken from <data-dir>/kubeconfig (or
 * --kubeconfig, --server, --token).  Each returns a process exit status:
 * 0 success, 1 the server or the connection failed (the server's message
 * is printed), 2 bad usage. */
#ifndef COCOD_CLI_H
#define COCOD_CLI_H

#include "client.h"

int cli_apply(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_describe(int argc, char **argv);
int cli_delete(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_policy(int argc, char **argv);
/* cocod image import|ls|inspect|rm: on the data directory (imagecli.c). */
int cli_image(int argc, char **argv);

/* A client for the daemon named by the kubeconfig (`kubeconfig`, or
 * <data_dir>/kubeconfig; NULLs take the defaults) with --server and
 * --token overrides.  Prints the reason and returns 1 on failure. */
int cli_connect(const char *data_dir, const char *kubeconfig, const char *server,
		const char *token, client **out);

/* The data directory a client command uses when none is given: the same
 * rule as `cocod serve` (./var beside a checkout's build/, else
 * /var/lib/cocod).  Malloc'd. */
char *cli_default_data_dir(void);

/* The data directory of a command that works on it directly: `data_dir`
 * (--data-dir) if given, else the data_dir of the `config` file
 * (--config), else cli_default_data_dir().  NULL after printing
 * "cocod CMD: <why>" when the config file does not load.  Malloc'd. */
char *cli_data_dir(const char *cmd, const char *data_dir, const char *config);

#endif
