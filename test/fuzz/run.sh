#!/usr/bin/env bash
# test/fuzz/run.sh BUILDDIR SECONDS [HARNESS...] — run each libFuzzer
# harness (built by test/fuzz/build.sh into BUILDDIR) for SECONDS, one
# after the other, starting from a copy of its seed corpus
# test/fuzz/corpus/HARNESS (the committed corpus is never written to).
#
# Fails when a harness crashes, hangs on one input (-timeout), runs out of
# memory, or a sanitizer reports anything: libFuzzer then stops and writes
# the input to BUILDDIR/artifacts/HARNESS/.  Prints one line per harness
# with the executions it reached.
#
# FUZZ_RUNS=N runs each harness for N executions instead of SECONDS
# (SECONDS then only bounds the time); extra libFuzzer flags in FUZZ_FLAGS.
set -uo pipefail

BUILD=${1:?usage: test/fuzz/run.sh BUILDDIR SECONDS [HARNESS...]}
SECONDS_EACH=${2:?usage: test/fuzz/run.sh BUILDDIR SECONDS [HARNESS...]}
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(journal snapshot uuid secretbox wrapped_key prisma)

# Every report is fatal; leaks too (each input's memory is freed by the shim).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

failed=0
for h in "${HARNESSES[@]}"; do
	work=$BUILD/run/$h
	artifacts=$BUILD/artifacts/$h
	rm -rf "$work"
	mkdir -p "$work/corpus" "$artifacts"
	cp "$HERE/corpus/$h/"* "$work/corpus/"
	runs=()
	[ -n "${FUZZ_RUNS:-}" ] && runs=(-runs="$FUZZ_RUNS")
	rc=0
	# shellcheck disable=SC2086
	"$BUILD/fuzz_$h" -max_total_time="$SECONDS_EACH" "${runs[@]}" \
		-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" ${FUZZ_FLAGS:-} \
		"$work/corpus" >"$work/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	found=$(find "$artifacts" -type f | wc -l)
	if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
		failed=1
		tail -n 60 "$work/log"
		echo "fuzz_$h: FAILED (exit $rc, ${execs:-?} executions, $found inputs in $artifacts)"
	else
		echo "fuzz_$h: ok, ${execs:-?} executions, 0 crashes, 0 sanitizer reports, 0 timeouts"
	fi
done
exit "$failed"
