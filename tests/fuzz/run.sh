#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan + libFuzzer) in build-fuzz/ and runs each
# for SECONDS (default 60), one after the other, on one core, starting from the committed corpus.
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET ...]      TARGET: event, config (default: both)
#
# New interesting inputs go to a scratch directory, never into the repo corpus (look at them, and
# copy the useful ones into tests/fuzz/corpus/ by hand, minimized with -merge=1). Exits non-zero
# when a target finds a crash, a leak, a sanitizer report, a timeout or an out-of-memory; the
# reproducer is in the artifacts directory printed, and the log next to it.
# Environment: CCD_FUZZ_BUILD (build directory, default build-fuzz), CCD_FUZZ_SCRATCH (default
# $CCD_FUZZ_BUILD/scratch), CCD_FUZZ_NICE (niceness, default 10), CCD_FUZZ_ARGS (extra libFuzzer
# flags, e.g. "-seed=1").
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event config)
case $secs in '' | *[!0-9]*) echo "run.sh: SECONDS must be a number, not '$secs'" >&2; exit 2 ;; esac
for t in "${targets[@]}"; do
    [ -d "tests/fuzz/corpus/$t" ] || { echo "run.sh: unknown target '$t' (event, config)" >&2; exit 2; }
done
build=${CCD_FUZZ_BUILD:-build-fuzz}
scratch=${CCD_FUZZ_SCRATCH:-$build/scratch}
nice_level=${CCD_FUZZ_NICE:-10}
read -r -a extra <<<"${CCD_FUZZ_ARGS:-}"

command -v clang >/dev/null || { echo "run.sh: clang not found (bash docker/setup.sh --test installs it)" >&2; exit 1; }
echo "== fuzz build (clang, ASan + UBSan + libFuzzer) in $build"
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Sanitize -DBUILD_TESTING=OFF -DCCD_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}"

status=0
for t in "${targets[@]}"; do
    new="$scratch/$t"
    artifacts="$scratch/artifacts-$t"
    log="$scratch/$t.log"
    mkdir -p "$new" "$artifacts"
    echo "== fuzz_$t for ${secs}s (new inputs: $new, log: $log)"
    # The first corpus directory receives new inputs; the committed one is only read.
    if CCD_SCHEMA_DIR="$root/schemas" nice -n "$nice_level" "$build/tests/fuzz/fuzz_$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="tests/fuzz/$t.dict" -artifact_prefix="$artifacts/" "${extra[@]}" \
        "$new" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' "$log" | tr '\n' ' '
        echo
    else
        status=1
        echo "== fuzz_$t FAILED: a finding (see $log); reproducer:"
        ls -l "$artifacts"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_(event|config):)|runtime error' "$log" | head -20 || true
        echo "   replay it: CCD_SCHEMA_DIR=$root/schemas $build/tests/fuzz/fuzz_$t <reproducer>"
    fi
done
exit $status
