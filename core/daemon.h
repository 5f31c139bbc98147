/* daemon: `cocod serve` — wires store, auth, TLS, HTTP server, API and
 * metrics around one libuv loop, runs until SIGTERM/SIGINT, then shuts
 * down gracefully.  This is the one place the daemon's modules meet. */
#ifndef COCOD_DAEMON_H
#define COCOD_DAEMON_H

#include "config.h"

/* Runs the daemon with a validated configuration whose data_dir is an
 * absolute path.  Returns the process exit status. */
int daemon_run(const struct config *cfg);

/* Opens the store of `data_dir` (creating the directory), for CLI commands
 * that work on the data directory directly. */
struct store;
int daemon_open_store(const char *data_dir, struct store **out, struct err *e);

#endif
