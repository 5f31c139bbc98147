#!/usr/bin/env bash
# Policy decision cost: median and p99 of an admission decision and of an
# attestation appraisal with the default policies, next to an empty Lua
# function through the same path (policy_eval: sandbox call + decision log,
# committed in batches as the daemon does).  Targets: admission <= 20 us,
# appraisal <= 50 us median.
#   bench/policy.sh [iterations, default 20000]
set -euo pipefail
cd "$(dirname "$0")/.."
./build.sh deps run >/dev/null
make -s -j"$(nproc)" build/bench/policy-bench >/dev/null
build/bench/policy-bench "${1:-20000}"
