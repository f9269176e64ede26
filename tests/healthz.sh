#!/usr/bin/env bash
# Liveness with a hung consumer thread (issue 16): /healthz must turn unhealthy on its own when the
# thread that polls Kafka stops making progress while the rest of the process goes on. Real Kafka
# (`services`); the worker counts events without training (no Redis needed).
#   CCD_TEST_PAUSE=consumer_hang:north:1 (worker/testhook.c test_hang) blocks only the consumer
#   thread, forever, when model north's window of block 1 closes; the metrics server's own thread
#   keeps answering.
# Checks, with the default metrics.health_timeout_ms (20 s): /healthz and /readyz answer 200 while
# the worker consumes and while it waits for events; after the hang /healthz answers 503 within 30 s of it, and /readyz too; the
# process is still alive (a hung thread, not a crash).
# Usage: healthz.sh BUILD_DIR SOURCE_DIR   (CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
cd "$src"
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
out=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    [ -n "${CCD_KEEP:-}" ] && echo "kept $out" >&2 || rm -rf "$out"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -n 25 "$out/worker.log" >&2 || true; exit 1; }
status() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/$1" 2>/dev/null || true; }

topic=healthz-$$-$RANDOM
replay() { # FROM_BLOCK BLOCKS [ARGS...]: blocks FROM..BLOCKS-1 of one synthetic stream
    local from=$1 blocks=$2
    shift 2
    "$bin/ccd-replay" --synthetic --seed 3 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" \
        --model north --synth-users 300 --synth-items 200 --synth-events 3000 \
        --synth-block-events 800 --synth-new-users 20 --synth-new-items 10 --blocks "$blocks" \
        --from-block "$from" "$@" >> "$out/replay.txt" 2>&1 || fail "replay"
}
# blocks 0-1 first: block 0's window closes, block 1's stays open until block 2 arrives
replay 0 2 --create-topic 1

port=$(free_port)
cat > "$out/worker.ini" <<INI
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = healthz-$$
auto.offset.reset = earliest
[input]
topics = $topic
reader_schema = $src/schemas/interaction.avsc
$(replay_window_ini)
[metrics]
listen = 127.0.0.1:$port
[checkpoint]
dir = $out/ckpt
[worker]
threads = 1
train = false
INI
CCD_TEST_PAUSE=consumer_hang:north:1 "$bin/ccd-worker" -c "$out/worker.ini" > /dev/null 2> "$out/worker.log" &
pid=$!

now_ms() { echo $(($(date +%s%N) / 1000000)); }
both_ready() { [ "$(status healthz)" = 200 ] && [ "$(status readyz)" = 200 ]; }
hang_logged() { grep -q "test hang: consumer_hang model north block 1" "$out/worker.log"; }

# healthy while it consumes: /healthz 200 and, once assigned, /readyz 200
wait_until 300 both_ready || fail "/healthz and /readyz never both answered 200"
sleep 3
[ "$(status healthz)" = 200 ] || fail "/healthz not 200 while the worker idles between events"
replay 2 4 # closes block 1's window: the consumer thread hangs there
wait_until 600 hang_logged || fail "the consumer thread never reached the hang"
hung=$(now_ms)
echo "consumer thread hung; /healthz right after: $(status healthz)"
unhealthy=
while (($(now_ms) - hung < 35000)); do
    if [ "$(status healthz)" = 503 ]; then
        unhealthy=$(($(now_ms) - hung))
        break
    fi
    sleep 0.5
done
[ -n "$unhealthy" ] || fail "/healthz still not 503 35 s after the consumer thread hung"
kill -0 "$pid" 2>/dev/null || fail "the worker died instead of hanging"
((unhealthy <= 30000)) || fail "/healthz turned 503 only after $unhealthy ms (want <= 30 s)"
[ "$(status readyz)" = 503 ] || fail "/readyz still ready with a hung consumer thread"
echo "healthz: 503 $unhealthy ms after the consumer thread hung (metrics.health_timeout_ms 20 s)," \
    "readyz 503 too, process alive"
