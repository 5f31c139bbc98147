#!/usr/bin/env bash
# HTTP benchmark: wrk over TLS with keep-alive against cocod's GET /version
# and against nginx (Debian, one worker) serving the same bytes as a static
# file with the same certificate, run side by side, alternating.  Prints
# both req/s, the ratio (target: cocod >= 0.7x nginx) and cocod's idle RSS
# (target <= 8 MiB).
#   bench/http.sh [seconds per run, default 10] [connections, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-50}
rounds=${ROUNDS:-2}
./build.sh deps bench >/dev/null
make -s -j"$(nproc)" >/dev/null

tmp=$(mktemp -d)
cleanup() {
	[ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null || true
	[ -n "${npid:-}" ] && kill "$npid" 2>/dev/null && wait "$npid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cport=$(port)
nport=$(port)

build/cocod serve --listen "127.0.0.1:$cport" --data-dir "$tmp/data" \
	>"$tmp/cocod.out" 2>"$tmp/cocod.log" &
cpid=$!
for _ in $(seq 100); do
	curl -sf --cacert "$tmp/data/tls/ca.crt" "https://127.0.0.1:$cport/healthz" >/dev/null && break
	sleep 0.1
done
sleep 1
rss_idle=$(awk '/VmRSS/ {print $2}' "/proc/$cpid/status")
anon_idle=$(awk '/RssAnon/ {print $2}' "/proc/$cpid/status")
file_idle=$(awk '/RssFile/ {print $2}' "/proc/$cpid/status")
pss_idle=$(awk '/^Pss:/ {print $2}' "/proc/$cpid/smaps_rollup")

mkdir -p "$tmp/www"
curl -sf --cacert "$tmp/data/tls/ca.crt" "https://127.0.0.1:$cport/version" >"$tmp/www/version"
cat >"$tmp/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log $tmp/nginx-access.log;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$nport ssl;
		ssl_certificate $tmp/data/tls/server.crt;
		ssl_certificate_key $tmp/data/tls/server.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		location = /version { root $tmp/www; default_type application/json; }
	}
}
NGINX
/usr/sbin/nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" &
npid=$!
for _ in $(seq 50); do
	curl -sfk "https://127.0.0.1:$nport/version" >/dev/null && break
	sleep 0.1
done

rps() { wrk -t1 -c"$conns" -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
c_best=0 n_best=0
for r in $(seq "$rounds"); do
	c=$(rps "https://127.0.0.1:$cport/version")
	n=$(rps "https://127.0.0.1:$nport/version")
	echo "round $r: cocod $c req/s, nginx $n req/s"
	c_best=$(awk -v a="$c" -v b="$c_best" 'BEGIN {print (a > b) ? a : b}')
	n_best=$(awk -v a="$n" -v b="$n_best" 'BEGIN {print (a > b) ? a : b}')
done
rss_after=$(awk '/VmRSS/ {print $2}' "/proc/$cpid/status")
echo "GET /version, TLS keep-alive, wrk -t1 -c$conns -d${secs}s, best of $rounds:"
echo "  cocod  $c_best req/s"
echo "  nginx  $n_best req/s (1 worker, static file, same bytes and certificate)"
awk -v a="$c_best" -v b="$n_best" 'BEGIN {printf "  ratio  %.2fx nginx (target >= 0.70)\n", a / b}'
awk -v k="$rss_idle" -v a="$anon_idle" -v f="$file_idle" -v p="$pss_idle" \
	'BEGIN {printf "cocod idle RSS: %.1f MiB (target <= 8 MiB): %.1f MiB anonymous + %.1f MiB shared library pages; PSS %.1f MiB\n", k / 1024, a / 1024, f / 1024, p / 1024}'
awk -v k="$rss_after" 'BEGIN {printf "cocod RSS after load: %.1f MiB\n", k / 1024}'
