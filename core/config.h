/* config: cocod's configuration.  Every option is declared once in the
 * table in config.c (name, type, default, validator, help); the same table
 * parses the file, applies command-line overrides, prints the effective
 * configuration and prints the reference documentation.
 *
 * File format: a TOML subset, one `key = value` per line, `#` comments,
 * values as "strings", integers, true/false, or ["string", ...] arrays.
 * Sizes and durations are strings ("4MiB", "10s").  An unknown key or a bad
 * value is an error naming `file:line`. */
#ifndef COCOD_CONFIG_H
#define COCOD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

struct config {
	char *listen;            /* "127.0.0.1:8443", "[::1]:8443" */
	char *data_dir;          /* "" until resolved by the caller */
	char *log_level;         /* error|warn|info|debug */
	bool plain_http;         /* debugging only; refused off loopback */
	char *tls_cert;          /* PEM; "" = generate under data_dir/tls */
	char *tls_key;
	char **tls_extra_names;  /* NULL-terminated; extra DNS names / IPs */
	uint64_t max_body_bytes;
	uint64_t max_header_bytes;
	uint64_t request_timeout_ms;
	uint64_t idle_timeout_ms;
	uint64_t shutdown_grace_ms;
	uint64_t max_connections;
	bool metrics_public;     /* /metrics without a token */
	char *node_name;         /* "" = this host's name */
	char *default_runtime_class;
	uint64_t node_cpu_milli; /* 0 = detect */
	uint64_t node_memory_bytes; /* 0 = detect */
	uint64_t reserved_cpu_milli;
	uint64_t reserved_memory_bytes;
	uint64_t max_pods;
	uint64_t events_kept;
	uint64_t event_ttl_ms;
	uint64_t policy_memory_bytes;  /* per policy state */
	uint64_t policy_instructions;  /* per decision */
	uint64_t policy_timeout_ms;    /* per decision */
	char *pod_runtime;       /* "vm" | "none" */
	char *libvirt_uri;             /* "" = qemu:///embed?root=<data_dir>/libvirt */
	char *pod_network;             /* none|user */
	uint64_t vm_pool;              /* warm pod VMs */
	char *kit_dir;                 /* "" = kit_default_dir() */
	char *accel;                   /* auto|kvm|tcg */
	uint64_t vm_overhead_memory_bytes; /* guest RAM on top of the pod's limit */
	uint64_t pod_default_memory_bytes; /* pod memory when it sets no limit */
	bool kbs_sim;            /* the KBS accepts sim evidence */
	bool kbs_dev_mode;       /* resource policy may release to sim guests */
	uint64_t kbs_token_ttl_ms;
	uint64_t kbs_session_ttl_ms;
	char *kbs_master_key;    /* "" = <data_dir>/master.key */
};

/* Fills defaults; config_fini frees every string. */
void config_init(struct config *c);
void config_fini(struct config *c);

/* Reads `path` (a key given twice is an error); on error e->msg is
 * "path:line: message" and `c` is unchanged. */
int config_load_file(struct config *c, const char *path, struct err *e);

/* Sets one option from a string (a command-line flag): `name` is the key
 * ("listen", "log_level"...); arrays take comma-separated values. */
int config_set(struct config *c, const char *name, const char *value, struct err *e);

/* Cross-option checks after everything is applied (e.g. plain_http only on
 * loopback, cert and key both or neither). */
int config_validate(const struct config *c, struct err *e);

/* Writes the effective configuration in the file format (loadable again). */
void config_print(const struct config *c, FILE *out);
/* Writes the reference: every option, its type, default and help. */
void config_print_reference(FILE *out);

/* Splits "host:port" / "[v6]:port" into a numeric host and port. */
int config_parse_listen(const char *listen, char *host, size_t hostlen, int *port,
			struct err *e);

#endif
