#!/usr/bin/env bash
# cocod's two entry points on a fresh Debian 12 machine:
#   ./build.sh run    install what is missing, build, run `cocod serve` (sim TEE,
#                     HTTPS on 127.0.0.1:8443, data directory ./var)
#   ./build.sh test   install what tests need, build with -Werror, run every
#                     test (unit, sanitizer unit, integration); last line is
#                     "N passed, N failed"; exit status non-zero on any failure
# Also: ./build.sh deps [run|test|bench], ./build.sh build.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages, by purpose.  Only the missing ones are installed.
RUN_PKGS=(build-essential pkg-config openssl libuv1-dev libssl-dev libsqlite3-dev
	liblua5.4-dev libvirt-dev libjansson-dev libjose-dev libyaml-dev libhttp-parser-dev zlib1g-dev
	qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu busybox-static crun
	cpio)
TEST_PKGS=(libcmocka-dev python3 sqlite3 curl prometheus skopeo umoci)
BENCH_PKGS=(wrk nginx-light hyperfine)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "build.sh: installing ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >/dev/null
}

# libvirt's embedded QEMU driver reads its default user and group before its
# configuration (ENVIRONMENT.md): they must exist even though cocod runs
# QEMU as root.
vm_users() {
	getent group kvm >/dev/null || as_root groupadd -r kvm
	getent group libvirt-qemu >/dev/null || as_root groupadd -r libvirt-qemu
	getent passwd libvirt-qemu >/dev/null ||
		as_root useradd -r -g kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
}

deps() {
	case "${1:-run}" in
	run) install_missing "${RUN_PKGS[@]}"; vm_users ;;
	test) install_missing "${RUN_PKGS[@]}" "${TEST_PKGS[@]}"; vm_users ;;
	bench) install_missing "${RUN_PKGS[@]}" "${BENCH_PKGS[@]}" ;;
	*) echo "build.sh deps: run, test or bench" >&2; exit 2 ;;
	esac
}

jobs() { nproc 2>/dev/null || echo 2; }

cmd_run() {
	deps run
	make -s -j"$(jobs)"
	make -s kit
	exec build/cocod serve --data-dir "${COCOD_DATA_DIR:-$PWD/var}" "$@"
}

# Pulls "N passed, N failed" out of a runner's last summary line.
count() {
	local line
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 || true)
	if [ -z "$line" ]; then
		echo "0 1" # a runner that printed no summary counts as one failure
	else
		sed -E 's/.* ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' <<<"$line"
	fi
}

cmd_test() {
	deps test
	local pass=0 fail=0 p f
	log=$(mktemp -d)
	trap 'rm -rf "$log"' EXIT
	run_stage() { # name, command...
		local name=$1
		shift
		echo "== $name"
		"$@" 2>&1 | tee "$log/$name" || true
		read -r p f < <(count "$log/$name")
		pass=$((pass + p))
		fail=$((fail + f))
	}
	if ! make -s -j"$(jobs)" WERROR=1 all unit >"$log/build" 2>&1; then
		cat "$log/build"
		echo "build failed"
		echo "0 passed, 1 failed"
		exit 1
	fi
	if ! make -s -j"$(jobs)" WERROR=1 SAN=1 unit >"$log/build-san" 2>&1; then
		cat "$log/build-san"
		echo "sanitizer build failed"
		echo "0 passed, 1 failed"
		exit 1
	fi
	if ! make -s kit >"$log/kit" 2>&1; then
		cat "$log/kit"
		echo "guest kit build failed"
		echo "0 passed, 1 failed"
		exit 1
	fi
	run_stage unit tests/run-unit.sh build
	run_stage unit-san env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		tests/run-unit.sh build/san
	run_stage integration python3 tests/integration/run.py --cocod build/cocod
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

case "${1:-}" in
run) shift; cmd_run "$@" ;;
test) shift; cmd_test "$@" ;;
deps) shift; deps "$@" ;;
build) deps run; make -j"$(jobs)" ;;
*)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
