#!/usr/bin/env bash
# Bounded shutdown (issue 17 item 4, docs/design-fencing.md section 5), against the real Kafka
# broker and redis-server of the `services` fixture:
#   1. a synthetic stream whose bootstrap (block 0) has one base teacher with a single long epoch
#      (16 negatives per pair in batches of 64: about 12,000 mini-batches, several seconds in
#      Release, far more under the sanitizers);
#   2. a worker with worker.shutdown_timeout_ms = 3000 gets SIGTERM 1.5 s after it starts
#      training block 0. It must exit with status 0 within the deadline + 1 s (measured from the
#      signal), having abandoned the block mid-epoch (the teacher's epoch never finished: no
#      "base teacher 0" line), committed nothing of it, and left the group;
#   3. a second worker in the same group (fast engine settings: the counts do not depend on them)
#      gets the partition at once (the first one left: no session timeout to wait for) and runs
#      the stream to the end: every published block counted exactly the events produced into it;
#   4. the deadline itself: in a new group, against a redis-server of its own, a worker whose
#      trainer is blocked publishing block 0 (the server stopped with SIGSTOP, redis.timeout_ms
#      60 s) gets SIGTERM; the trainer cannot see the stop, so the worker must commit what is safe,
#      leave the group and exit without joining it, within the deadline + 1 s. The server is
#      resumed and a worker of that group runs to the end: every event counted once again.
# Usage: shutdown.sh BUILD_DIR SOURCE_DIR   (CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
cd "$src" # ccd-replay reads schemas/interaction.avsc relative to the root
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
test_scratch 15

deadline_ms=3000
topic=shutdown-$$-$RANDOM
model=big
"$bin/ccd-replay" --synthetic --seed 5 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --create-topic 1 \
    --model "$model" --synth-users 3000 --synth-items 2000 --synth-events 60000 \
    --synth-block-events 4000 --synth-new-users 50 --synth-new-items 30 --blocks 3 \
    > "$out/replay.txt" 2>&1 || fail "replay"

check_counts() { # REDIS_HOST REDIS_PORT PREFIX: every published block counted what was produced
python3 - "$1" "$2" "$3" "$model" "$out/replay.txt" <<'PY'
import re, subprocess, sys
host, port, prefix, m, replay = sys.argv[1:6]
def cli(*a):
    return subprocess.run(["redis-cli", "-h", host, "-p", port] + list(a), check=True,
                          capture_output=True, text=True).stdout.split()
produced = {int(a): int(b) for a, b in re.findall(r"block (\d+): (\d+) events", open(replay).read())}
if len(produced) != 3:
    sys.exit("FAIL: cannot read ccd-replay's block counts: %s" % produced)
counted = {}
for v in cli("ZRANGE", "%s:{%s}:versions" % (prefix, m), "0", "-1"):
    meta = cli("HGETALL", "%s:{%s}:v%s:meta" % (prefix, m, v))
    meta = dict(zip(meta[0::2], meta[1::2]))
    counted[int(meta["block"])] = int(meta["events"])
# the last block's window stays open (closed by the first event of the next day: none)
want = {b: n for b, n in produced.items() if b < max(produced)}
if counted != want:
    sys.exit("FAIL: events counted per block %s, produced %s" % (counted, want))
print("every event counted once: per block %s = produced" % counted)
PY
}

config() { # NAME BASE_NEGATIVES BASE_BATCH DIM -> a worker config (one group, one prefix for both)
    cat > "$out/$1.ini" <<EOF
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = shutdown-$$
; long: a worker that did not leave the group would hold the partition this long
session.timeout.ms = 45000
heartbeat.interval.ms = 1000
[input]
topics = $topic
reader_schema = $src/schemas/interaction.avsc
$(replay_window_ini)
[ccd]
seed = 1
$(engine_ini "lightgcn:$4:0" 8 1 1 1 1)
[ccd.base]
negatives = $2
batch = $3
[redis]
host = $REDIS_HOST
port = $REDIS_PORT
prefix = shutdown-$$
[checkpoint]
dir = $out/ckpt
[log]
level = debug
[worker]
threads = 2
shutdown_timeout_ms = $deadline_ms
EOF
}
config slow 16 64 64
config fast 1 512 16

# --- 1: SIGTERM in the middle of the bootstrap's one long epoch
"$bin/ccd-worker" -c "$out/slow.ini" 2> "$out/slow.log" &
pid=$!
pids+=("$pid")
wait_until 1200 grep -qE "block 0: [0-9]+ events \(" "$out/slow.log" || fail "block 0 never started training"
sleep 1.5
kill -0 "$pid" 2>/dev/null || fail "the worker exited before its SIGTERM"
t0=$(date +%s.%N)
kill -TERM "$pid"
for _ in $(seq 1 3000); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
t1=$(date +%s.%N)
if kill -0 "$pid" 2>/dev/null; then fail "still running 60 s after SIGTERM"; fi
status=0
wait "$pid" || status=$?
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "SIGTERM mid-epoch: exited with status $status after $took s (deadline $deadline_ms ms)"
[ "$status" -eq 0 ] || fail "exit status $status after SIGTERM"
awk -v t="$took" -v d="$deadline_ms" 'BEGIN { exit !(t <= d / 1000 + 1) }' ||
    fail "exited after $took s, past the deadline + 1 s"
! grep -q "base teacher 0" "$out/slow.log" ||
    fail "the teacher's epoch finished before the stop: the stream is too small for this host"
grep -q "block abandoned" "$out/slow.log" || fail "no 'block abandoned' line"
! grep -q "done in" "$out/slow.log" || fail "a block finished: nothing was abandoned"

# --- 2: the next worker takes over at once and counts every event once
t0=$(date +%s.%N)
"$bin/ccd-worker" -c "$out/fast.ini" --exit-when-idle 8000 2> "$out/fast.log" &
pid=$!
pids+=("$pid")
wait_until 300 grep -q "assigned $topic/0" "$out/fast.log" ||
    fail "the second worker got no partition within 30 s (the first one did not leave the group?)"
assigned=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
wait "$pid" || fail "the second worker failed"
echo "second worker: partition assigned after $assigned s, ran to the end"

check_counts "$REDIS_HOST" "$REDIS_PORT" "shutdown-$$"

# --- 4: a trainer that cannot see the stop (blocked on a stopped Redis): exit at the deadline
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$out" \
    > "$out/redis-own.txt" 2>&1 &
rpid=$!
pids+=("$rpid")
wait_until 100 redis-cli -p "$rport" ping > /dev/null || fail "own redis-server did not start"
stuck() { # the worker's request sits unread in the stopped server's socket
    ss -tnH state established "( sport = :$rport )" | awk '$1 > 0 { f = 1 } END { exit !f }'
}
"$bin/ccd-worker" -c "$out/fast.ini" -X kafka.group.id="shutdown-$$-b" -X redis.port="$rport" \
    -X redis.timeout_ms=60000 -X checkpoint.dir="$out/ckpt-b" 2> "$out/stuck.log" &
pid=$!
pids+=("$pid")
wait_until 1200 grep -qE "block 0: [0-9]+ events \\(" "$out/stuck.log" || fail "block 0 never started (own redis)"
kill -STOP "$rpid"
wait_until 1800 stuck || fail "the trainer never blocked on the stopped Redis"
t0=$(date +%s.%N)
kill -TERM "$pid"
for _ in $(seq 1 3000); do kill -0 "$pid" 2>/dev/null || break; sleep 0.02; done
t1=$(date +%s.%N)
kill -CONT "$rpid"
kill -0 "$pid" 2>/dev/null && fail "still running 60 s after SIGTERM with the trainer blocked"
status=0
wait "$pid" || status=$?
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "SIGTERM with the trainer blocked in a Redis write: status $status after $took s"
[ "$status" -eq 0 ] || fail "exit status $status"
awk -v t="$took" -v d="$deadline_ms" 'BEGIN { exit !(t <= d / 1000 + 1) }' ||
    fail "exited after $took s, past the deadline + 1 s"
grep -q "exiting without waiting" "$out/stuck.log" || fail "no 'exiting without waiting' line"
"$bin/ccd-worker" -c "$out/fast.ini" -X kafka.group.id="shutdown-$$-b" -X redis.port="$rport" \
    -X checkpoint.dir="$out/ckpt-b" --exit-when-idle 8000 2> "$out/after-stuck.log" ||
    fail "the worker after the stuck one failed"
check_counts 127.0.0.1 "$rport" "shutdown-$$"
echo "bounded shutdown ok"
