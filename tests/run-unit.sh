#!/usr/bin/env bash
# Runs every unit test binary under BUILD_DIR/tests (default build), each in
# its own process with a timeout, with cmocka's TAP output; prints one line
# per failing case and a summary line "unit: N passed, N failed".
# Exit status is non-zero when anything failed.
set -u
build=${1:-build}
timeout_s=${UNIT_TIMEOUT:-120}
pass=0 fail=0
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	out=$(CMOCKA_MESSAGE_OUTPUT=TAP timeout "$timeout_s" "$t" 2>&1)
	rc=$?
	p=$(grep -c '^ok ' <<<"$out")
	f=$(grep -c '^not ok ' <<<"$out")
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$f" -gt 0 ] || [ "$rc" -ne 0 ]; then
		echo "FAIL $(basename "$t") (exit $rc)"
		grep -E '^not ok |^#|ERROR|error|Assert|sanitizer' <<<"$out" | head -40 | sed 's/^/    /'
		[ "$f" -eq 0 ] && fail=$((fail + 1))
	else
		echo "ok   $(basename "$t"): $p cases"
	fi
done
echo "unit($build): $pass passed, $fail failed"
[ "$fail" -eq 0 ]
