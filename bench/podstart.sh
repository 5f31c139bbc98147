#!/usr/bin/env bash
# Pod start benchmark: submit -> first container running through cocod
# (POST, admission, scheduling, libvirt, guest kit boot, agent, image,
# crun), side by side with a bare `qemu-system-x86_64` boot of the same
# kernel and initramfs to the initramfs' init, with the same accelerator,
# machine type, memory and vCPUs, alternating, several rounds.  Prints the
# per-round figures, medians, the ratio (target <= 1.15x the bare boot), the
# phase breakdown (admit, schedule, define, boot, agent ready, image unpack,
# container start) and the host RSS of one idle pod VM.
#   bench/podstart.sh [rounds, default 3]
#   BUILD=build/x bench/podstart.sh   (benchmarks build/x/cocod and build/x/kit)
# The measuring is done by bench/podstart.py (standard library only).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
build=${BUILD:-build}
make -s -j2 BUILD="$build" all >/dev/null
make -s BUILD="$build" kit >/dev/null
exec python3 bench/podstart.py --rounds "$rounds" --build "$build"
