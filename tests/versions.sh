#!/usr/bin/env bash
# Every tool with --version reports the one version CMake's project() declares (issue 16: the
# worker said 0.2.0 while CMake said 0.1.0 and ccd-replay 0.3.0).
# Usage: versions.sh BUILD_DIR VERSION
set -euo pipefail
bin=$1 want=$2
status=0
for t in ccd-worker ccd-offline ccd-replay ccd-train; do
    out=$("$bin/$t" --version)
    case "$out" in
    "$t $want" | "$t $want "*) echo "ok: $out" ;;
    *) echo "FAIL: $t --version says '$out', CMake says $want" >&2; status=1 ;;
    esac
done
exit $status
