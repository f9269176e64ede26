#!/usr/bin/env bash
# Static checks of the C sources, run first by tests/run.sh (CI):
#   1. formatting: every tracked .c/.h file is as clang-format (Debian's clang-format 14, the
#      repository's .clang-format) would write it; `clang-format -i FILE` fixes a file.
#   2. cppcheck (Debian's) on models/ and worker/ with the checks below; a finding fails.
#      Checks: warning (likely bugs), performance, portability; not `style`. One check is off:
#      arrayIndexThenCheck reads the ranking order `s[a] > s[b] || (s[a] == s[b] && a < b)`
#      (ties broken by the smaller id) as "index used before its limit check". Any other finding
#      that is wrong is suppressed in place (`// cppcheck-suppress ID`) with the reason beside it.
# Exits non-zero on the first failing step, after printing what failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mapfile -t sources < <(git ls-files '*.c' '*.h')
echo "== clang-format --dry-run --Werror (${#sources[@]} files)"
clang-format --version
if ! clang-format --dry-run --Werror "${sources[@]}"; then
    echo "lint: the files above are not formatted; run: clang-format -i FILE" >&2
    exit 1
fi

echo "== cppcheck (warning, performance, portability) on models/ and worker/"
cppcheck --version
cppcheck --quiet --error-exitcode=1 --std=c11 --inline-suppr \
    --enable=warning,performance,portability --suppress=arrayIndexThenCheck \
    -I models -I worker models worker
echo "lint: clean"
