#!/usr/bin/env bash
# Pod API benchmark, side by side with nginx (Debian, one worker) serving the
# same JSON bytes over TLS with the same certificate:
#   - pod creates per second (distinct names, keep-alive, wrk + Lua)
#   - GET of one pod vs nginx serving that pod's JSON as a static file
#   - RSS of cocod with 1,000 stored pods
# Prints req/s, p99 latency and ratios.  Targets: >= 2,000 creates/s;
# GET >= 0.7x nginx; RSS with 1,000 pods <= 32 MiB.
#   bench/api.sh [seconds per run, default 10]
# COCOD_BIN=path runs that binary as is (no build); BUILD=dir builds and runs
# dir/cocod (default build/cocod).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
./build.sh deps bench >/dev/null
if [ -n "${COCOD_BIN:-}" ]; then
	cocod=$COCOD_BIN
else
	build=${BUILD:-build}
	make -s -j"$(nproc)" BUILD="$build" "$build/cocod" >/dev/null
	cocod=$build/cocod
fi
[ -x "$cocod" ] || { echo "no cocod binary at $cocod" >&2; exit 1; }
echo "== cocod: $cocod"

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

# Plenty of node capacity so that scheduling is part of every create.
cat >"$tmp/cocod.toml" <<CONF
node_cpu = 1000000000
node_memory = "1000GiB"
max_pods = 100000
log_level = "warn"
# The API alone: a VM per benchmark pod would measure QEMU, not the API.
pod_runtime = "none"
CONF
"$cocod" serve --listen "127.0.0.1:$cport" --data-dir "$tmp/data" --config "$tmp/cocod.toml" \
	>"$tmp/cocod.out" 2>"$tmp/cocod.log" &
cpid=$!
for _ in $(seq 100); do
	curl -sf --cacert "$tmp/data/tls/ca.crt" "https://127.0.0.1:$cport/healthz" >/dev/null && break
	sleep 0.1
done
if ! kill -0 "$cpid" 2>/dev/null || [ ! -s "$tmp/data/admin.token" ]; then
	echo "cocod did not start:" >&2
	cat "$tmp/cocod.log" >&2
	exit 1
fi
export COCOD_TOKEN=$(cat "$tmp/data/admin.token")
base="https://127.0.0.1:$cport"

echo "== creates: wrk -t1 -c8 -d${secs}s POST /api/v1/namespaces/default/pods"
wrk -t1 -c8 -d"${secs}s" --latency -s bench/create-pods.lua "$base" >"$tmp/create.txt" 2>"$tmp/create.err" || true
creates=$(awk '/Requests\/sec/ {print $2}' "$tmp/create.txt")
c99=$(awk '$1 == "99%" {print $2}' "$tmp/create.txt")
bad=$(grep -c unexpected "$tmp/create.err" || true)
npods=$(curl -sf --cacert "$tmp/data/tls/ca.crt" -H "Authorization: Bearer $COCOD_TOKEN" \
	"$base/api/v1/namespaces/default/pods" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
echo "  $creates creates/s, p99 $c99, non-201 answers: $bad, pods stored: $npods"

# One pod to GET; nginx serves the very same bytes.
one=$(curl -sf --cacert "$tmp/data/tls/ca.crt" -H "Authorization: Bearer $COCOD_TOKEN" \
	"$base/api/v1/namespaces/default/pods?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["metadata"]["name"])')
path="/api/v1/namespaces/default/pods/$one"
mkdir -p "$tmp/www$(dirname "$path")"
curl -sf --cacert "$tmp/data/tls/ca.crt" -H "Authorization: Bearer $COCOD_TOKEN" "$base$path" >"$tmp/www$path"
cat >"$tmp/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$nport ssl;
		ssl_certificate $tmp/data/tls/server.crt;
		ssl_certificate_key $tmp/data/tls/server.key;
		location / { root $tmp/www; default_type application/json; }
	}
}
NGINX
/usr/sbin/nginx -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" &
npid=$!
for _ in $(seq 50); do curl -sfk "https://127.0.0.1:$nport$path" >/dev/null && break; sleep 0.1; done

echo "== GET $path: wrk -t1 -c50 -d${secs}s"
wrk -t1 -c50 -d"${secs}s" --latency -s bench/auth-get.lua "$base$path" >"$tmp/get.txt"
wrk -t1 -c50 -d"${secs}s" --latency "https://127.0.0.1:$nport$path" >"$tmp/nginx.txt"
g=$(awk '/Requests\/sec/ {print $2}' "$tmp/get.txt")
g99=$(awk '$1 == "99%" {print $2}' "$tmp/get.txt")
n=$(awk '/Requests\/sec/ {print $2}' "$tmp/nginx.txt")
n99=$(awk '$1 == "99%" {print $2}' "$tmp/nginx.txt")
echo "  cocod $g req/s (p99 $g99), nginx $n req/s (p99 $n99)"
awk -v a="$g" -v b="$n" 'BEGIN {printf "  GET ratio %.2fx nginx (target >= 0.70)\n", a / b}'
awk -v a="$creates" 'BEGIN {printf "  creates %.0f/s (target >= 2000)\n", a}'

# RSS with 1,000 stored pods: restart on the same data with exactly 1,000.
kill "$cpid"; wait "$cpid" 2>/dev/null || true
sqlite3 "$tmp/data/cocod.db" "DELETE FROM objects WHERE kind='Pod' AND name NOT IN (SELECT name FROM objects WHERE kind='Pod' ORDER BY name LIMIT 1000)"
"$cocod" serve --listen "127.0.0.1:$cport" --data-dir "$tmp/data" --config "$tmp/cocod.toml" \
	>"$tmp/cocod.out" 2>"$tmp/cocod.log" &
cpid=$!
for _ in $(seq 100); do
	curl -sf --cacert "$tmp/data/tls/ca.crt" "$base/healthz" >/dev/null && break
	sleep 0.1
done
stored=$(sqlite3 "$tmp/data/cocod.db" "SELECT COUNT(*) FROM objects WHERE kind='Pod'")
sleep 1
rss=$(awk '/VmRSS/ {print $2}' "/proc/$cpid/status")
anon=$(awk '/RssAnon/ {print $2}' "/proc/$cpid/status")
awk -v k="$rss" -v a="$anon" -v n="$stored" 'BEGIN {printf "RSS with %d stored pods: %.1f MiB (%.1f MiB anonymous; target <= 32 MiB)\n", n, k / 1024, a / 1024}'
