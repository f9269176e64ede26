#!/usr/bin/env bash
# Worker benchmarks, each side by side with a reference tool in the same run (not a test):
#   1. ingest: ccd-worker consuming, decoding and windowing (training off) vs kcat consuming the
#      same topic, events/s (best of 3 alternating runs);
#   2. publish: the worker's Redis sink (bench_publish, Yelp-sized version, d = 8) vs
#      redis-benchmark's pipelined SET of the same value size (32 bytes), one connection and 50;
#   3. latency: with --latency, seconds from a Yelp incremental window's close to its student
#      being live in Redis, with the reference engine settings (runs the bootstrap first: ~10 min).
# Usage: tests/bench/bench_worker.sh [--latency]   (from the project root, after building build/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
data=${CCD_DATA_DIR:-../shared/data/yelp}
dir=$(mktemp -d)
trap 'bash tests/services.sh stop "$dir/svc" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
bash tests/services.sh start "$dir/svc" >/dev/null
# shellcheck disable=SC1091
source "$dir/svc/services.env"
topic=bench-$$
build/ccd-replay --brokers "$KAFKA_BOOTSTRAP" --topic $topic --create-topic 1 --model yelp --data "$data" --quiet \
    > "$dir/replay.txt"
events=$(awk '/^sent/ {print $2}' "$dir/replay.txt")
echo "topic $topic: $events events (6 Yelp blocks, raw Avro)"

# kcat -C is librdkafka's legacy simple consumer (no group); kcat -G is the high-level consumer in a
# group, the client mode the worker uses. Whole-command times include start-up and, for -G and the
# worker, joining the group; the worker's idle wait before it exits (--exit-when-idle) is subtracted.
rate() { awk -v n="$1" -v a="$2" -v b="$3" -v idle="${4:-0}" 'BEGIN { printf "%.0f", n / (b - a - idle) }'; }
best_c=0 best_g=0 best_w=0 best_wf=0
for run in 1 2 3; do
    t0=$(date +%s.%N)
    n=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t $topic -o beginning -e -q -f '%o\n' | wc -l)
    t1=$(date +%s.%N)
    [ "$n" = "$events" ] || { echo "kcat -C read $n of $events" >&2; exit 1; }
    c=$(rate "$n" "$t0" "$t1")
    t0=$(date +%s.%N)
    n=$(kcat -b "$KAFKA_BOOTSTRAP" -G "kcat-$$-$run" -X auto.offset.reset=earliest -o beginning -e -q -f '%o\n' $topic | wc -l)
    t1=$(date +%s.%N)
    [ "$n" = "$events" ] || { echo "kcat -G read $n of $events" >&2; exit 1; }
    g=$(rate "$n" "$t0" "$t1")
    t0=$(date +%s.%N)
    build/ccd-worker -c configs/yelp-replay.ini -X "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" \
        -X "kafka.group.id=bench-$$-$run" -X "input.topics=$topic" -X input.dead_letter_topic= \
        -X worker.train=false -X "checkpoint.dir=$dir/ckpt" -X window.idle_ms=0 \
        --exit-when-idle 1500 2> "$dir/worker.log"
    t1=$(date +%s.%N)
    grep -q "ingest: $events messages" "$dir/worker.log" || { echo "worker did not read $events" >&2; exit 1; }
    w=$(rate "$events" "$t0" "$t1" 1.5)
    wf=$(grep -o 'ingest: .*' "$dir/worker.log" | grep -o '([0-9]* messages/s)' | tr -dc '0-9')
    echo "run $run: kcat -C $c, kcat -G $g, ccd-worker $w events/s (whole command; $wf from its first to last message)"
    [ "$c" -gt "$best_c" ] && best_c=$c
    [ "$g" -gt "$best_g" ] && best_g=$g
    [ "$w" -gt "$best_w" ] && best_w=$w
    [ "$wf" -gt "$best_wf" ] && best_wf=$wf
done
awk -v w="$best_w" -v wf="$best_wf" -v c="$best_c" -v g="$best_g" 'BEGIN {
    printf "ingest (best of 3): ccd-worker %d events/s (%d first to last), kcat -G %d, kcat -C %d\n", w, wf, g, c
    printf "ingest ratio: %.0f%% of kcat -G (same client mode), %.0f%% of kcat -C\n", 100 * w / g, 100 * w / c }'

pubout=$(build/bench_publish 127.0.0.1 "$REDIS_PORT")
echo "$pubout"
pub=$(echo "$pubout" | grep -o 'median [0-9]*' | tr -dc '0-9')
rb1=$(redis-benchmark -p "$REDIS_PORT" -t set -n 2000000 -d 32 -P 512 -c 1 -r 100000 -q | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
rb50=$(redis-benchmark -p "$REDIS_PORT" -t set -n 2000000 -d 32 -P 16 -c 50 -r 100000 -q | grep -o '[0-9.]* requests per second' | cut -d' ' -f1)
awk -v p="$pub" -v a="$rb1" -v b="$rb50" 'BEGIN {
    printf "publish: sink %d rows/s; redis-benchmark SET 32 B pipelined: %.0f/s (1 connection, -P 512), %.0f/s (50 connections, -P 16)\n", p, a, b
    printf "publish ratio: %.0f%% of the single-connection figure, %.0f%% of the 50-connection one\n", 100 * p / a, 100 * p / b }'

if [ "${1:-}" = "--latency" ]; then
    build/ccd-replay --brokers "$KAFKA_BOOTSTRAP" --topic lat-$$ --create-topic 1 --model yelp --data "$data" \
        --blocks 2 --quiet > /dev/null
    build/ccd-worker -c configs/yelp-replay.ini -X "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" \
        -X "kafka.group.id=lat-$$" -X "input.topics=lat-$$" -X input.dead_letter_topic= \
        -X "redis.port=$REDIS_PORT" -X "checkpoint.dir=$dir/ckpt2" -X window.idle_ms=5000 \
        --exit-when-idle 10000 2> "$dir/lat.log"
    grep -E "closed by|live|done in" "$dir/lat.log"
    python3 - "$dir/lat.log" <<'PY'
import re, sys, datetime
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
close = live = None
for line in open(sys.argv[1]):
    ts = line.split()[0]
    if "window of block 1 closed" in line: close = t(ts)
    if "block 1: student" in line and " live " in line: live = t(ts)
    if "block 1:" in line and "events (" in line: start = t(ts)
if close and live:
    print(f"latency: block 1 window closed -> student live in Redis: {live - close:.1f} s "
          f"({live - start:.1f} s after its training started; the wait before that is block 0's slow path)")
PY
fi
