#!/usr/bin/env bash
# Teacher phase of one Yelp block as Kafka jobs (docs/design-teacher-jobs.md): the same block 1 with
# 1 and then 2 teacher workers, each pinned to one core (taskset, worker.threads = 1,
# OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = 1). Prints, side by side, the teacher phase's wall time
# as the owner saw it (inputs stored -> every result loaded) and each teacher's seconds.
# Yelp's five LightGCN teachers (d = 128) with every stage cut to EPOCHS epochs (default 1) so that
# the bootstrap of block 0 (in the owner, both cores) stays short; the teacher phase then trains
# each teacher for EPOCHS epochs as the engine does.
# Usage: bench_teachers.sh BUILD_DIR [DATA_DIR [EPOCHS [TEACHERS]]]   (TEACHERS: how many of the five,
# default 5, fewer for a shorter run; starts its own Kafka and redis-server with tests/services.sh;
# needs 2 idle cores to mean anything). Measured 2026-12-05 on a shared 2-core machine (load 16-20):
# block 0 bootstrap 149 s, input blob 62.3 MB stored in 1.4 s, one teacher (1 epoch, 1 thread)
# 109.7 s; the full comparison did not fit the 5-minute benchmark budget there.
set -euo pipefail
bin=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
data=${2:-$src/../shared/data/yelp} epochs=${3:-1} nt=${4:-5}
roster=$(for ((m = 0; m < nt; m++)); do printf 'lightgcn:128:%d, ' "$m"; done)
roster=${roster%, }
out=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    "$src/tests/services.sh" stop "$out/services" > /dev/null 2>&1 || true
    [ -n "${CCD_KEEP:-}" ] && echo "kept $out" >&2 || rm -rf "$out"
}
trap cleanup EXIT
"$src/tests/services.sh" start "$out/services" > "$out/services.log" 2>&1 || { cat "$out/services.log"; exit 1; }
# shellcheck disable=SC1091
source "$out/services/services.env"
topic=bt-$$
"$bin/ccd-replay" --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --create-topic 1 --model yelp \
    --data "$data" --blocks 2 --schema "$src/schemas/interaction.avsc" --quiet > "$out/replay.txt"

config() { # NAME RUN ROLES THREADS
    cat > "$out/$1.ini" <<INI
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = bt-$2
session.timeout.ms = 6000
[input]
topics = $topic
reader_schema = $src/schemas/interaction.avsc
[window]
bootstrap_until_ms = 1600086400000
duration_ms = 86400000
idle_ms = 3000
[holdout]
fraction = 0.15
[ccd]
seed = 1
teachers = $roster
student_dim = 8
[ccd.base]
epochs = $epochs
patience = 0
[ccd.kd]
epochs = $epochs
[ccd.student]
epochs = $epochs
[ccd.teacher]
epochs = $epochs
[redis]
host = $REDIS_HOST
port = $REDIS_PORT
prefix = bt-$2
[checkpoint]
dir = $out/ckpt-$2
[teachers]
mode = kafka
jobs_topic = bt-jobs-$2
jobs_partitions = $nt
results_topic =
[worker]
roles = $3
threads = $4
INI
}

run() { # N: one owner, N teacher workers on cores 0..N-1
    local n=$1 t
    config "owner$n" "r$n" owner 2
    for ((t = 0; t < n; t++)); do
        config "t$n-$t" "r$n" teacher 1
        OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c "$t" \
            "$bin/ccd-worker" -c "$out/t$n-$t.ini" 2> "$out/t$n-$t.log" &
        pids+=($!)
    done
    for ((t = 0; t < n; t++)); do
        for ((i = 0; i < 600; i++)); do
            grep -q "teacher jobs: assigned [1-9]" "$out/t$n-$t.log" 2>/dev/null && break
            sleep 0.2
        done
    done
    "$bin/ccd-worker" -c "$out/owner$n.ini" --exit-when-idle 5000 2> "$out/owner$n.log"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
}
run 1
run 2

phase() { sed -nE 's/.*model yelp block 1: [0-9]+ teacher results in ([0-9.]+) s.*/\1/p' "$out/owner$1.log"; }
per_teacher() { cat "$out"/t"$1"-*.log | sed -nE "s/.*block 1 teacher $2 done in ([0-9.]+) s.*/\1/p" | head -n 1; }
inputs=$(sed -nE 's/.*model yelp block 1: teacher inputs stored \(([0-9.]+) MB.*/\1/p' "$out/owner1.log")
echo "Yelp block 1, $nt LightGCN teacher(s) (d = 128), $epochs epoch(s) each; input blob $inputs MB"
printf '%-28s %12s %12s\n' "" "1 worker" "2 workers"
printf '%-28s %12s %12s\n' "teacher phase wall s" "$(phase 1)" "$(phase 2)"
for ((m = 0; m < nt; m++)); do
    printf '%-28s %12s %12s\n' "teacher $m s" "$(per_teacher 1 $m)" "$(per_teacher 2 $m)"
done
