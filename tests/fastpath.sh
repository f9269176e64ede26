#!/usr/bin/env bash
# Fast path (worker/fastpath.h, docs/fastpath.md) against the real broker and Redis (`services`):
# a synthetic stream is produced before the worker starts, so windows 1-3 close within a second,
# while the bootstrap block (base teachers, distillation) is still training; the fast path serves the
# bootstrap window from scratch (or folds it into the next windows' job, if they closed before it
# started), then folds the windows queued behind into one job for the newest (window 3). Checked: (1) a provisional version of some window k >= 1 went
# live before block k-1 was done (its slow path still running), and the bootstrap window got one;
# (2) provisional versions carry meta provisional=1, and the final live version is exact
# (provisional=0) and of the last closed block; (3) every exact version equals, bit for bit, the one
# of a reference run with fastpath.enabled = false (tests/compare_versions.py skips provisional
# versions), each block counted exactly the events produced for it.
# Usage: fastpath.sh BUILD_DIR SOURCE_DIR   (CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
cd "$src"
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
test_scratch 30
m=fast topic=fastpath-$$-$RANDOM
# blocks 0-3 close (block k at the first event of block k+1), block 4 stays open
replay() { # TOPIC
    "$bin/ccd-replay" --synthetic --seed 5 --brokers "$KAFKA_BOOTSTRAP" --topic "$1" --create-topic 1 \
        --model "$m" --synth-users 500 --synth-items 300 --synth-events 5000 --synth-block-events 1500 \
        --synth-new-users 40 --synth-new-items 20 --blocks 5
}
config() { # NAME FASTPATH
    cat > "$out/$1.ini" <<INI
$(worker_ini "fastpath-$1-$$" "$topic-$1" "fastpath-$1-$$")
$(engine_ini "lightgcn:32:0, mf:32:1" 8 60 3 2 4)
[checkpoint]
dir = $out/ckpt-$1
[fastpath]
enabled = $2
epochs = 2
bootstrap_epochs = 5
[worker]
threads = 2
INI
}
config ref false
config run true
t0=$(date +%s)
replay "$topic-ref" > "$out/replay-$m.txt" 2>&1 || fail "replay (reference)"
"$bin/ccd-worker" -c "$out/ref.ini" --exit-when-idle 4000 2> "$out/ref.log" || fail "reference run failed"
t1=$(date +%s)
replay "$topic-run" > "$out/replay-run.txt" 2>&1 || fail "replay (run)"
"$bin/ccd-worker" -c "$out/run.ini" --exit-when-idle 4000 2> "$out/run.log" || fail "the run failed"
t2=$(date +%s)
! grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out"/*.log || fail "sanitizer report"

# (1) provisional versions went live while the previous block was still in the trainer
grep -E "provisional student v[0-9]+ live|block [0-9]+: (done in|student v)" "$out/run.log" |
    sed -E 's/^.*model /model /' | cut -c1-110
python3 - "$out/run.log" "$m" <<'PY' || fail "no provisional version went live during the previous block's training"
import re, sys
log, m = open(sys.argv[1]).read().splitlines(), sys.argv[2]
prov, done = {}, {}
for n, line in enumerate(log):
    a = re.search(r"model %s block (\d+): provisional student v\d+ live" % m, line)
    b = re.search(r"model %s block (\d+): done in" % m, line)
    if a: prov.setdefault(int(a.group(1)), n)
    if b: done.setdefault(int(b.group(1)), n)
early = [k for k in prov if k >= 1 and k - 1 in done and prov[k] < done[k - 1]]
# the same windows arrive at once: block 0's job is folded when window 1 closes before it starts
print("provisional versions live for blocks %s; before block k-1 was done: %s" % (sorted(prov), early))
# the bootstrap window is served from scratch, alone or folded with the next windows
if not prov or 0 not in done or min(prov.values()) > done[0]:
    sys.exit("no provisional version was live before block 0 was done")
sys.exit(0 if early else 1)
PY
# (2) meta and the final live version
nprov=0
for v in $(rc ZRANGE "fastpath-run-$$:{$m}:versions" 0 -1); do
    p=$(rc HGET "fastpath-run-$$:{$m}:v$v:meta" provisional)
    case $p in 1) nprov=$((nprov + 1)) ;; 0) ;; *) fail "v$v: meta provisional is '$p'" ;; esac
done
[ "$nprov" -ge 2 ] || fail "only $nprov provisional versions listed"
cur=$(rc GET "fastpath-run-$$:{$m}:current")
[ "$(rc HGET "fastpath-run-$$:{$m}:v$cur:meta" provisional)" = 0 ] || fail "live v$cur is provisional"
[ "$(rc HGET "fastpath-run-$$:{$m}:v$cur:meta" block)" = 3 ] || fail "live v$cur is not block 3"
# (3) exact versions bit for bit as the reference's
python3 "$src/tests/compare_versions.py" "$REDIS_HOST" "$REDIS_PORT" "fastpath-ref-$$" "fastpath-run-$$" \
    "$out" "$m" || fail "exact versions differ from the reference run's"
echo "fastpath ok: $nprov provisional versions, exact versions identical (reference $((t1 - t0)) s, run $((t2 - t1)) s)"
