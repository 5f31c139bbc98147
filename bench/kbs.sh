#!/usr/bin/env bash
# KBS round trips per second on one core, beside `openssl speed` for the
# same primitive work.  A round trip is what the daemon does for one guest:
# auth (session + nonce), attest (sim SNP evidence: VCEK chain, P-384 report
# signature, JCS + SHA-384 binding, init-data digest, Lua appraisal, ES256
# token) and one resource (Lua release decision, unseal, ECDH-ES+A256KW +
# AES-256-GCM JWE).  The driver calls the protocol core in-process (kbs.h,
# no HTTP/TLS) and times only the server side: the guest's evidence (a sim
# P-384 signature) is produced outside the timed region.  The round trips
# use the synchronous core (kbs_attest: verification on the calling
# thread), so the figure is the CPU cost of the protocol.  A second pass
# runs attestations the daemon's way (kbs_attest_start on a libuv loop,
# verification on its thread pool) and prints the loop thread's CPU per
# attestation beside the whole process's: the part that still blocks the
# loop.
#   bench/kbs.sh [ROUNDS]      (default 2000)
# Builds into build/kbs-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2000}
B=build/kbs-bench
# The whole library, as the daemon links it (an explicit source list went
# stale as modules grew).
make -s BUILD=$B -j"$(nproc)" $B/libcocod.a >/dev/null
mkdir -p $B/bench
cat > $B/bench/kbs_bench.c <<'EOF'
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "b64.h"
#include "jwe.h"
#include "kbs.h"
#include "kbsdb.h"
#include "log.h"
#include "policy.h"
#include "seal.h"
#include "simsp.h"
#include "store.h"
#include "util.h"

/* CPU time of this thread: what one core spends, whatever else runs on
 * the box (openssl speed also divides by CPU time). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (the loop thread and the pool). */
static uint64_t proc_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_done(void *arg, int rc, char *token, const char *variant, const struct err *e)
{
	if (rc) {
		fprintf(stderr, "pooled attest: %s\n", e->msg);
		++*(int *)arg;
	}
	free(token);
}

#define CHECK(x) do { if (x) { fprintf(stderr, "%s: %s\n", #x, e.msg); return 1; } } while (0)

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2000;
	char dir[] = "/tmp/kbs-bench.XXXXXX";
	struct err e = {0};
	store *st; policy *pol; struct kbs *k; seal *s; struct simsp *sp;
	struct sandbox_limits lim;
	log_set_level(LOG_ERROR);
	if (!mkdtemp(dir)) return 1;
	char *db = xasprintf("%s/cocod.db", dir), *mk = xasprintf("%s/master.key", dir);
	struct kbs_opts o = {.sim = 1, .dev_mode = 1};
	sandbox_default_limits(&lim);
	CHECK(store_open(db, &st, &e)); /* migration 5 holds the KBS tables */
	CHECK(policy_new(st, NULL, &lim, &pol, &e) || kbs_new(st, pol, NULL, dir, &o, &k, &e));
	CHECK(seal_open(mk, &s, &e) || kbs_sim_load(s, st, 0, &sp, &e));
	CHECK(kbsdb_resource_put(st, s, "default/key/app", "0123456789abcdef0123456789abcdef", 32, &e));
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	json_t *jwk = jwe_jwk_public(pk, "ECDH-ES+A256KW");
	json_t *areq = json_pack("{s:s, s:s, s:{}}", "version", "0.4.0", "tee", "snp", "extra-params");
	char *vcek = simsp_vcek_pem(sp);
	uint64_t server = 0, cpu = 0;
	const char *variant;
	for (int i = 0; i < rounds + 20; i++) {
		char sid[33], *token;
		json_t *ch, *jwe;
		uint8_t rd[64] = {0}, raw[SNP_REPORT_SIZE];
		size_t rdlen;
		uint64_t t0 = now_ns(), c0 = cpu_ns();
		CHECK(kbs_auth(k, areq, time(NULL), sid, &ch, &variant, &e));
		uint64_t t1 = now_ns(), c1 = cpu_ns();
		/* the guest: binding and sim evidence (untimed) */
		const char *nonce = json_string_value(json_object_get(ch, "nonce"));
		CHECK(kbs_runtime_digest(nonce, jwk, "", 0, rd, &rdlen, &e));
		CHECK(simsp_report(sp, rd, NULL, NULL, 0x30000, raw, &e));
		char *r64 = b64_encode(raw, sizeof raw);
		json_t *req = json_pack("{s:n, s:{s:s, s:O}, s:{s:{s:s, s:[{s:s, s:s}]}, s:s}}", "init-data",
			"runtime-data", "nonce", nonce, "tee-pubkey", jwk, "tee-evidence", "primary_evidence",
			"attestation_report", r64, "cert_chain", "cert_type", "VCEK", "data", vcek,
			"additional_evidence", "");
		uint64_t t2 = now_ns(), c2 = cpu_ns();
		CHECK(kbs_attest(k, sid, req, time(NULL), &token, &variant, &e));
		CHECK(kbs_resource(k, sid, NULL, "default/key/app", time(NULL), &jwe, &variant, &e));
		uint64_t t3 = now_ns(), c3 = cpu_ns();
		if (i >= 20) { /* warm-up excluded */
			server += (t1 - t0) + (t3 - t2);
			cpu += (c1 - c0) + (c3 - c2);
		}
		free(r64); free(token);
		json_decref(ch); json_decref(req); json_decref(jwe);
	}
	double per = (double)cpu / rounds / 1e3, wall = (double)server / rounds / 1e3;
	printf("kbs: %d round trips, %.1f us each, %.0f round trips/s on one core (CPU time; wall %.1f us)\n",
	       rounds, per, 1e6 / per, wall);
	/* The daemon's way: the same attestations through the thread pool. */
	uv_loop_t loop;
	struct kbs *ka;
	uv_loop_init(&loop);
	o.loop = &loop;
	CHECK(kbs_new(st, pol, NULL, dir, &o, &ka, &e));
	uint64_t lcpu = 0, pcpu = 0;
	int n = rounds / 2 > 200 ? rounds / 2 : 200, failed = 0;
	for (int i = 0; i < n + 20; i++) {
		char sid[33];
		json_t *ch;
		uint8_t rd[64] = {0}, raw[SNP_REPORT_SIZE];
		size_t rdlen;
		CHECK(kbs_auth(ka, areq, time(NULL), sid, &ch, &variant, &e));
		const char *nonce = json_string_value(json_object_get(ch, "nonce"));
		CHECK(kbs_runtime_digest(nonce, jwk, "", 0, rd, &rdlen, &e));
		CHECK(simsp_report(sp, rd, NULL, NULL, 0x30000, raw, &e));
		char *r64 = b64_encode(raw, sizeof raw);
		json_t *req = json_pack("{s:n, s:{s:s, s:O}, s:{s:{s:s, s:[{s:s, s:s}]}, s:s}}", "init-data",
			"runtime-data", "nonce", nonce, "tee-pubkey", jwk, "tee-evidence", "primary_evidence",
			"attestation_report", r64, "cert_chain", "cert_type", "VCEK", "data", vcek,
			"additional_evidence", "");
		struct kbs_attest_cb cb = {NULL, on_done, &failed};
		uint64_t c0 = cpu_ns(), p0 = proc_ns();
		CHECK(kbs_attest_start(ka, sid, req, time(NULL), &cb, &variant, &e));
		uv_run(&loop, UV_RUN_DEFAULT);
		uint64_t c1 = cpu_ns(), p1 = proc_ns();
		if (i >= 20)
			lcpu += c1 - c0, pcpu += p1 - p0;
		free(r64);
		json_decref(ch); json_decref(req);
	}
	if (failed) { fprintf(stderr, "%d pooled attestations failed\n", failed); return 1; }
	printf("kbs: attest via the thread pool: loop thread %.1f us, whole process %.1f us CPU per attestation (%d)\n",
	       (double)lcpu / n / 1e3, (double)pcpu / n / 1e3, n);
	char *cmd = xasprintf("rm -rf '%s'", dir);
	if (system(cmd)) {}
	return 0;
}
EOF
# Always relink the driver: make has no rule for it, and a stale binary
# would silently measure old code.
cc -std=gnu11 -O2 -g -D_GNU_SOURCE -iquote core -iquote tee -iquote lua \
   $(pkg-config --cflags libuv openssl sqlite3 lua5.4 jansson) \
   -o $B/bench/kbs_bench $B/bench/kbs_bench.c $B/libcocod.a \
   $(pkg-config --libs libuv openssl sqlite3 lua5.4 libvirt jansson jose yaml-0.1 zlib) -lhttp_parser -lm
out=$(taskset -c 0 $B/bench/kbs_bench "$rounds" 2>/dev/null || $B/bench/kbs_bench "$rounds")
echo "$out"
us=$(sed -n 's/.* \([0-9.]*\) us each.*/\1/p' <<<"$out" | head -1)

# openssl speed: per-op microseconds for the same primitives.
speed() { taskset -c 0 openssl speed -seconds 1 "$@" 2>/dev/null || openssl speed -seconds 1 "$@" 2>/dev/null; }
sp=$(speed ecdsap384 ecdsap256 ecdhp256)
v384=$(awk '/nistp384/ && /ecdsa/ {print 1e6/$NF}' <<<"$sp")
s256=$(awk '/nistp256/ && /ecdsa/ {print 1e6/$(NF-1)}' <<<"$sp")
dh256=$(awk '/ecdh \(nistp256\)/ {print 1e6/$NF}' <<<"$sp")
gcm=$(speed -evp aes-256-gcm -bytes 64 | awk 'tolower($1) ~ /^aes-256-gcm/ {gsub("k","",$2); print 64/($2*1000)*1e6}')
raw=$(awk -v a="$v384" -v b="$s256" -v c="$dh256" -v d="$gcm" 'BEGIN {print a+b+c+d}')
printf 'openssl speed (one core): P-384 verify %.1f us, ES256 sign %.1f us, P-256 ECDH %.1f us, AES-256-GCM(64 B) %.3f us\n' "$v384" "$s256" "$dh256" "$gcm"
printf 'raw crypto per round trip: %.1f us (%.0f/s)\n' "$raw" "$(awk -v r="$raw" 'BEGIN {print 1e6/r}')"
awk -v p="$us" -v r="$raw" 'BEGIN {printf "protocol/raw ratio: %.2fx (target <= 2x); round trips/s: %.0f (target >= 500)\n", p/r, 1e6/p}'
