#!/usr/bin/env bash
# Crash consistency (issue 6): the same stream through ccd-worker twice, against the real Kafka
# broker and redis-server of the `services` fixture:
#   reference  one worker, never disturbed;
#   crashed    a worker killed with SIGKILL at least KILLS times (default 10) and restarted each
#              time: half of the kills at random moments, half right after a log line that marks
#              a phase (a window closed = training, a version live = between publication and
#              checkpoint), then one last run to the end.
# Same seed, same thread count. Checks, per model:
#   - every version the crashed run published (re-published blocks included) holds, bit for bit,
#     the same user and item vectors and the same meta (block, events, events_total, users, items,
#     holdout figures) as the reference's version of that block: nothing wrong was ever served;
#   - the final live versions are the same block with bit-identical vectors;
#   - events counted into each block equal the reference's, and their total equals what was
#     produced into the model's blocks (exactly once).
# Usage: crash_consistency.sh BUILD_DIR SOURCE_DIR [KILLS]   (CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd) kills=${3:-10}
cd "$src" # ccd-replay reads schemas/interaction.avsc relative to the root
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
test_scratch 15

topic=crash-$$-$RANDOM
models=(north south)
# two models on a 2-partition topic; each model's key always lands on one partition
"$bin/ccd-replay" --synthetic --seed 3 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --create-topic 2 \
    --model north --synth-users 800 --synth-items 500 --synth-events 16000 --synth-block-events 4000 \
    --synth-new-users 40 --synth-new-items 20 --blocks 12 > "$out/replay-north.txt" 2>&1 || fail "replay north"
"$bin/ccd-replay" --synthetic --seed 4 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --model south --synth-users 600 --synth-items 600 --synth-events 12000 --synth-block-events 3000 \
    --synth-new-users 30 --synth-new-items 30 --blocks 12 > "$out/replay-south.txt" 2>&1 || fail "replay south"

config() { # NAME -> a worker config with its own group, checkpoint directory and Redis prefix
    cat > "$out/$1.ini" <<EOF
$(worker_ini "crash-$1-$$" "$topic" "crash-$1-$$")
[kafka]
; static membership: a restarted worker takes its partitions back at once instead of waiting
; for the killed one's session to expire
group.instance.id = crash-$1-$$
$(engine_ini "lightgcn:32:0, lightgcn:32:1, mf:32:2" 8 12 5 4 4)
[checkpoint]
dir = $out/ckpt-$1
keep = 2
[worker]
threads = 2
EOF
}
config ref
config crashed

# --- reference run
t0=$(date +%s.%N)
"$bin/ccd-worker" -c "$out/ref.ini" --exit-when-idle 8000 2> "$out/ref.log" || fail "reference run failed"
t_ref=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
# the run's own work: its last 8 s are the idle wait before --exit-when-idle ends it
t_work=$(awk -v t="$t_ref" 'BEGIN { w = t - 8; printf "%.1f", (w < 2 ? 2 : w) }')
echo "reference run: $t_ref s ($t_work s of work)"

# --- crashed run: kill -9 at random moments and at marked phases, restart each time
phase_of() { # the last worker log line that says what it was doing
    grep -E 'closed by|live \(|done in|resumed from|assigned|checkpoint' "$1" | tail -n 1 |
        sed -E 's/^[^ ]+ [a-z]+ +//' | cut -c1-90
}
killed=0 finished=0 run=0
while [ "$killed" -lt "$kills" ]; do
    run=$((run + 1))
    log="$out/crashed-$run.log"
    "$bin/ccd-worker" -c "$out/crashed.ini" --exit-when-idle 8000 2> "$log" &
    pid=$!
    pids+=("$pid")
    if [ $((run % 2)) -eq 1 ]; then
        # a random moment, scaled to the reference run's work so that the kills, not the
        # stream, run out first on any host: on average about 0.7 / KILLS of it (fixed delays
        # of 0.5-3.5 s let a fast host finish the stream after 9 kills; scaling by the whole
        # run, its 8 s idle wait included, after 7 on a fast CI host)
        delay=$(awk -v s="$RANDOM" -v t="$t_work" -v k="$kills" \
            'BEGIN { srand(s); printf "%.2f", 0.3 + rand() * 1.4 * t / k }')
        sleep "$delay"
        how="after ${delay} s"
    else
        # right after a phase marker: the trainer taking a block ("N events (...) closed by":
        # training starts) or an exact version published (checkpoint not yet written). The
        # latter is "student vN live (" or, while a newer provisional version is live, "student
        # vN stored behind ...": waiting for " live (" alone let one run train the whole stream
        # once the fast path had published provisional versions of its last windows (a loaded
        # host finished the stream after 7 to 9 kills).
        if [ $((run % 4)) -eq 0 ]; then pat=': student v'; else pat=' events ('; fi
        for _ in $(seq 1 600); do
            grep -qF "$pat" "$log" 2>/dev/null && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        how="at '$pat'"
    fi
    if kill -9 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        killed=$((killed + 1))
        echo "kill $killed ($how): $(phase_of "$log")"
    else
        wait "$pid" && finished=1 || fail "crashed run $run exited with an error"
        echo "run $run finished before its kill"
        break
    fi
done
if [ "$finished" -eq 0 ]; then
    "$bin/ccd-worker" -c "$out/crashed.ini" --exit-when-idle 8000 2> "$out/crashed-final.log" ||
        fail "final run failed"
fi
[ "$killed" -ge "$kills" ] || fail "only $killed kills before the stream was done (runs too short)"

# --- compare
python3 "$src/tests/compare_versions.py" "$REDIS_HOST" "$REDIS_PORT" "crash-ref-$$" "crash-crashed-$$" "$out" "${models[@]}"
echo "crash consistency ok: $killed SIGKILLs survived"
