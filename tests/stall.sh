#!/usr/bin/env bash
# Stall test (issue 17, docs/design-fencing.md §4): a worker frozen past its session timeout at one
# phase of a block, while a second worker of its group takes its partitions over, must not undo or
# corrupt what the second one publishes when it wakes up. Real Kafka and redis-server (`services`).
#   reference  one worker, never disturbed, its own prefix and checkpoints (as crash_consistency.sh);
#   stall      worker A with CCD_TEST_PAUSE=<phase>:north:<K> (worker/testhook.c: raise(SIGSTOP) at
#              that point of model north's block K); once it is stopped, worker B joins the group,
#              takes both partitions over when A's session expires and publishes past block K; then
#              A is resumed (SIGCONT) and both run until the stream is done.
# Checks: (1) the live block of each model never decreases (tests/stall_watch.py polls `current`
# and listens to the announcements); (2) every version either worker logged live is still complete
# and listed; (3) every version equals the reference's version of its block bit for bit, the final
# live versions are the same blocks, each block counted exactly the events produced for it
# (tests/compare_versions.py, shared with crash_consistency.sh); (4) A says its publication was
# fenced (publish phases) or that it was fenced or lost its assignment (the other phases, where the
# consumer thread can learn of the lost session before the trainer's next write).
# Usage: stall.sh BUILD_DIR SOURCE_DIR PHASE [K [STORE]]   (STORE: dir (default) or redis, the
# checkpoint store; CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd) phase=$3 K=${4:-2} store=${5:-dir}
cd "$src"
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
test_scratch
fail_context=$phase

topic=stall-$phase-$$-$RANDOM
models=(north south)
# small blocks: the test is about ordering, not quality (blocks 0-5 close, 6 stays open)
"$bin/ccd-replay" --synthetic --seed 3 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --create-topic 2 \
    --model north --synth-users 300 --synth-items 200 --synth-events 3000 --synth-block-events 800 \
    --synth-new-users 20 --synth-new-items 10 --blocks 7 > "$out/replay-north.txt" 2>&1 || fail "replay north"
"$bin/ccd-replay" --synthetic --seed 4 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --model south --synth-users 250 --synth-items 250 --synth-events 2500 --synth-block-events 700 \
    --synth-new-users 20 --synth-new-items 20 --blocks 7 > "$out/replay-south.txt" 2>&1 || fail "replay south"

config() { # NAME GROUP -> a worker config; the two stall workers share group, prefix and checkpoints
    cat > "$out/$1.ini" <<INI
$(worker_ini "stall-$2-$$" "$topic" "stall-$2-$$")
$(engine_ini "mf:16:0, mf:16:1" 8 3 2 2 2)
[checkpoint]
store = $store
dir = $out/ckpt-$2
keep = 2
[worker]
threads = 2
INI
}
config ref ref
config a run
config b run

"$bin/ccd-worker" -c "$out/ref.ini" --exit-when-idle 5000 2> "$out/ref.log" || fail "reference run failed"

python3 "$src/tests/stall_watch.py" "$REDIS_HOST" "$REDIS_PORT" "stall-run-$$" "$out/watch.stop" \
    "${models[@]}" > "$out/watch.txt" 2>&1 &
watcher=$!
pids+=("$watcher")

CCD_TEST_PAUSE="$phase:north:$K" "$bin/ccd-worker" -c "$out/a.ini" --exit-when-idle 8000 2> "$out/a.log" &
a=$!
pids+=("$a")
stopped() { grep -q "test pause: $phase model north block $K" "$out/a.log" &&
    [ "$(awk '{print $3}' "/proc/$a/stat" 2>/dev/null)" = T ]; }
wait_for 300 "$a" stopped || fail "A never paused at $phase of north block $K"
echo "A (pid $a) stopped at $phase, north block $K"

# B's idle exit is longer than A's: A, resumed, may rejoin and hold a partition for a moment
# before its own idle exit gives it back, and B must still be there to finish the stream
"$bin/ccd-worker" -c "$out/b.ini" --exit-when-idle 15000 2> "$out/b.log" &
b=$!
pids+=("$b")
# B takes over once A's session (6 s) expires, resumes from the shared checkpoints and publishes
# past block K; 3x the session timeout after it was assigned is enough on any host
b_past() { grep -E "model north block ([0-9]+): student v[0-9]+ live" "$out/b.log" |
    sed -E 's/.*block ([0-9]+):.*/\1/' | awk -v k="$K" '$1 > k { f = 1 } END { exit !f }'; }
wait_for 120 "$b" grep -q "assigned $topic" "$out/b.log" || fail "B was never assigned"
wait_for 180 "$b" b_past || echo "B did not publish past block $K in time; resuming A anyway"
echo "B publishes north past block $K; resuming A"
kill -CONT "$a"

wait "$b" || fail "B exited with an error"
kill -TERM "$a" 2>/dev/null || true
set +e
wait "$a"
a_rc=$?
set -e
echo "A exited with status $a_rc"
[ "$a_rc" -lt 128 ] || fail "A died of signal $((a_rc - 128))"
# a sanitizer build reports and still exits with a plain status: its reports fail the test
! grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out"/*.log || fail "sanitizer report"
touch "$out/watch.stop"
wait "$watcher" || { cat "$out/watch.txt" >&2; fail "current moved back"; }
cat "$out/watch.txt"

# (2) every version logged live is complete and listed
for w in a b; do
    for m in "${models[@]}"; do
        for v in $(sed -nE "s/.*model $m block [0-9]+: student v([0-9]+) live.*/\1/p" "$out/$w.log"); do
            [ "$(rc EXISTS "stall-run-$$:{$m}:v$v:meta")" = 1 ] || fail "$m v$v ($w logged it live) has no meta"
            [ -n "$(rc ZSCORE "stall-run-$$:{$m}:versions" "$v")" ] || fail "$m v$v ($w logged it live) is not listed"
        done
    done
done
# (3) bit for bit as the reference, exactly-once counts
python3 "$src/tests/compare_versions.py" "$REDIS_HOST" "$REDIS_PORT" "stall-ref-$$" "stall-run-$$" "$out" \
    "${models[@]}" || fail "versions differ from the reference"
# (4) A noticed. Its publication comes first thing when it resumes at the publish phases, so it is
# fenced there; at the others the consumer thread may learn of the lost session first and stop
# the block before its next write
case $phase in
publish_*) grep -q "publish fenced\|provisional student fenced" "$out/a.log" ||
    fail "A never said its publication was fenced" ;;
*) grep -qE "fenced|assignment lost" "$out/a.log" || fail "A neither fenced nor lost its assignment" ;;
esac
grep -hE "fenced|assignment lost" "$out/a.log" | head -n 3 || true
echo "stall at $phase ok"
