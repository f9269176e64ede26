#!/usr/bin/env bash
# Runs every test: installs what the tests need (docker/setup.sh --test), checks formatting and
# runs cppcheck (tests/lint.sh), fetches the Kafka broker jars, then builds and tests twice with
# CTest:
#   build/           Release: unit, data (real Yelp blocks) and integration tests
#                    (a real Kafka 3.9 broker and a real redis-server, started by the harness),
#                    and the Docker images built and the compose stack run (test_docker_compose)
#   build-sanitize/  ASan + UBSan: the same tests
#   build-valgrind/  without -march=native: the end-to-end path under valgrind memcheck
# then runs each fuzz target for 30 s (tests/fuzz/run.sh: clang, in build-fuzz/).
# Exits non-zero if anything fails. CI runs exactly this (.ci/run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
failed_dirs=()

# The end of each failed test's output, printed once more as the very last thing: CI keeps the
# head and the tail of a long log, and a second or third failure's reason would otherwise sit in
# the part it drops.
failure_digest() {
    local dir names name
    for dir in "$@"; do
        names=$(sed 's/^[0-9]*://' "$dir/Testing/Temporary/LastTestsFailed.log" 2>/dev/null) || continue
        for name in $names; do
            echo "== failed in $dir: $name (the end of its output)"
            # its first lines that name a failure, then its last 15 lines
            awk -v t="$name" '$0 ~ ("Testing: " t "$") { on = 1; n = 0; m = 0; next }
                on && /^<end of output>/ { on = 0 }
                on && m < 6 && /FAIL|[Ee]rror|did not|timed out|Timeout/ { hit[m++] = $0 }
                on { buf[n++ % 15] = $0 }
                END { for (i = 0; i < m; i++) print " ! " substr(hit[i], 1, 200)
                      for (i = (n > 15 ? n - 15 : 0); i < n; i++) print "   " substr(buf[i % 15], 1, 200) }' \
                "$dir/Testing/Temporary/LastTest.log"
        done
    done
}

bash docker/setup.sh --test
echo "== lint: formatting and cppcheck (tests/lint.sh)"
status=0
bash tests/lint.sh || status=1
echo "== fetching the Kafka broker (Maven Central)"
(cd tests/kafka && mvn -q -B dependency:copy-dependencies)
echo "== the test schema registry (Apicurio 2.4.2 from Maven Central, tests/registry; built once)"
(source tests/lib.sh && registry_jar >/dev/null)

for variant in Release:build Sanitize:build-sanitize; do
    type=${variant%%:*}
    dir=${variant#*:}
    echo "== $type build in $dir"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DBUILD_TESTING=ON >/dev/null
    cmake --build "$dir" -j "$jobs"
    echo "== $type tests"
    # ASan: report leaks too; UBSan aborts on the first error (-fno-sanitize-recover).
    # The Sanitize build skips the `heavy` label (whole-pipeline runs on real data that take
    # minutes in Release; test_engine covers the same code on a small stream under ASan/UBSan),
    # `release_only` (tests whose code paths other tests run under ASan/UBSan: most stall
    # phases, the crash-consistency loop, the Redis variant of the teacher jobs), for CI's time,
    # and `compose`: test_docker_compose builds and runs the Docker images, whose binaries are
    # the image's own Release build, not this build's.
    exclude=()
    [ "$type" = Sanitize ] && exclude=(-LE "heavy|release_only|compose")
    if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --test-dir "$dir" --output-on-failure "${exclude[@]}"; then
        status=1
        failed_dirs+=("$dir")
    fi
done
# valgrind cannot decode every -march=native instruction: a portable build of the three binaries
# the end-to-end valgrind test runs (test_valgrind_e2e, its services fixture included).
echo "== valgrind build in build-valgrind"
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCCD_NATIVE=OFF -DBUILD_TESTING=ON >/dev/null
cmake --build build-valgrind -j "$jobs" --target ccd-worker ccd-replay ccd-topk
if ! ctest --test-dir build-valgrind --output-on-failure -L valgrind; then
    status=1
    failed_dirs+=(build-valgrind)
fi
# A short fuzz run of each libFuzzer target (clang, ASan + UBSan): a crash, leak or hang fails CI.
echo "== fuzzing: 30 s per target (tests/fuzz/run.sh)"
if ! bash tests/fuzz/run.sh 30; then
    status=1
fi
[ ${#failed_dirs[@]} -eq 0 ] || failure_digest "${failed_dirs[@]}"
exit $status
