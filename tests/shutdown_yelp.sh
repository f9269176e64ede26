#!/usr/bin/env bash
# Bounded shutdown on a Yelp-sized bootstrap (by hand, not in CI; the CI test is shutdown.sh):
# Yelp block 0 (ccd-replay --data, 1 block) into its own broker; a worker with
# configs/yelp-replay.ini (5 LightGCN teachers d=128, the default worker.shutdown_timeout_ms of
# 25 s; one base epoch and two distillation epochs so that every phase of the bootstrap comes
# within minutes) is SIGTERMed, once per POINT, in one consumer group; POINT = LINE:DELAY sends
# the signal DELAY seconds after the first log line containing LINE. The exit is timed from the
# signal. Then one worker runs the bootstrap to the end: its block 0 must count exactly the
# events produced (nothing lost, nothing twice); its log's stage lines give the phases.
# Usage: tests/shutdown_yelp.sh BUILD_DIR [POINT...]   (default: two points in the base teachers'
# side-by-side epoch, one in the last teacher's, two in the ensemble's ranking, two in the
# distillation)
set -euo pipefail
bin=$(cd "$1" && pwd)
shift
points=("$@")
[ ${#points[@]} -gt 0 ] || points=("events (:5" "events (:20" "base teacher 3:3" "base teacher 4:1"
    "base teacher 4:6" "distilling D_0:5" "distilling D_0:40")
src=$(cd "$(dirname "$0")/.." && pwd)
data=${CCD_DATA_DIR:-$src/../shared/data/yelp}
cd "$src"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
out=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    bash "$src/tests/services.sh" stop "$out/services" > /dev/null 2>&1 || true
    [ -n "${CCD_KEEP:-}" ] && echo "kept $out" >&2 || rm -rf "$out"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
bash "$src/tests/services.sh" start "$out/services" > "$out/services.log" 2>&1 || fail "services"
# shellcheck disable=SC1091
source "$out/services/services.env"
topic=yelp-shutdown-$$
"$bin/ccd-replay" --data "$data" --blocks 1 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --create-topic 1 --model yelp > "$out/replay.txt" 2>&1 || fail "replay"
produced=$(sed -nE 's/.*block 0: ([0-9]+) events.*/\1/p' "$out/replay.txt" | head -n 1)
worker() { # LOG [ARGS...]: exec, so that $! of `worker ... &` is the worker itself
    local log=$1
    shift
    exec "$bin/ccd-worker" -c configs/yelp-replay.ini -X "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" \
        -X "kafka.group.id=yelp-shutdown-$$" -X "input.topics=$topic" -X input.dead_letter_topic= \
        -X window.idle_ms=2000 -X "redis.host=$REDIS_HOST" -X "redis.port=$REDIS_PORT" \
        -X "redis.prefix=yelp-shutdown-$$" -X "checkpoint.dir=$out/ckpt" -X log.level=debug \
        -X worker.threads=2 -X ccd.base.epochs=1 -X ccd.kd.epochs=2 "$@" 2> "$log"
}
started='block 0: [0-9]+ events [(]'
echo "point exit_s status"
n=0
for point in "${points[@]}"; do
    n=$((n + 1))
    line=${point%:*} d=${point##*:} log="$out/term-$n.log"
    worker "$log" &
    pid=$!
    pids+=("$pid")
    wait_until 6000 grep -qF "$line" "$log" || fail "no '$line' line"
    sleep "$d"
    t0=$(date +%s.%N)
    kill -TERM "$pid"
    for _ in $(seq 1 3000); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
    t1=$(date +%s.%N)
    status=0
    wait "$pid" || status=$?
    echo "'$point' $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $status"
    grep -q "done in" "$log" && fail "block 0 finished before the SIGTERM at '$point'"
done
(worker "$out/final.log" --exit-when-idle 10000) || fail "the final run failed"
counted=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" HGET \
    "yelp-shutdown-$$:{yelp}:v$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" GET "yelp-shutdown-$$:{yelp}:current"):meta" events)
echo "final run: block 0 counted $counted events, produced $produced"
[ "$counted" = "$produced" ] || fail "counted $counted, produced $produced"
echo "the final run's stages, seconds from the start of block 0's training:"
awk -v pat="$started" '
    function secs(ts) { split(substr(ts, 12, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
    $0 ~ pat && !t0 { t0 = secs($1) }
    t0 && /base teacher|ensemble|student|done in/ { printf "  %7.1f  %s\n", secs($1) - t0, substr($0, 32, 110) }
' "$out/final.log"
