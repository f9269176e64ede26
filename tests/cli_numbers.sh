#!/usr/bin/env bash
# Every tool refuses a malformed or out-of-range number option with exit status 2 and a message
# naming the option (worker/cli.h), where atoi used to read a typo as 0.
#
#   tests/cli_numbers.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: cli_numbers.sh BUILD_DIR}
failed=0
check() { # tool option value [more args]
    local tool=$1 opt=$2 val=$3
    shift 3
    local out rc
    out=$("$build/$tool" "--$opt" "$val" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -ne 2 ] || ! grep -q -- "--$opt: expected an integer" <<<"$out"; then
        echo "FAIL: $tool --$opt $val: exit $rc, said: $out"
        failed=1
    else
        echo "ok: $tool --$opt $val"
    fi
}
check ccd-offline blocks 2x --data /nonexistent
check ccd-offline threads 0 --data /nonexistent
check ccd-offline eval-users -1 --data /nonexistent
check ccd-replay blocks 1.5
check ccd-replay from-block x
check ccd-replay block-ms 10s
check ccd-replay schema-id 99999999999
check ccd-topk k abc
check ccd-topk version 0
check ccd-eval version -3
check ccd-worker embedded-kafka 0
check ccd-worker exit-when-idle 5m
check ccd-train epochs 2x
exit $failed
