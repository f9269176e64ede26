#!/usr/bin/env bash
# Worker benchmarks, each side by side with a reference tool in the same run (not a test):
#   1. ingest: ccd-worker consuming, decoding and windowing (training off) vs kcat consuming the
#      same topic, events/s (best of 3 alternating runs);
#   2. publish: the worker's Redis sink (bench_publish, Yelp-sized version, d = 8) vs
#      redis-benchmark's pipelined SET of the same value size (32 bytes), one connection and 50;
#   3. latency: with --latency, seconds from each Yelp incremental window's close to its student
#      being live in Redis (p50/p99 over the blocks, and the worker's freshness histograms), with
#      every block replayed at full speed and the reference engine settings (LAT_BLOCKS=2: the
#      bootstrap and one block, ~10 min; all six, much longer).
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
    # every Yelp block replayed at full speed (LAT_BLOCKS to shorten): each incremental window
    # closes while earlier blocks' slow paths may still run, which is what freshness measures
    nb=${LAT_BLOCKS:-6}
    build/ccd-replay --brokers "$KAFKA_BOOTSTRAP" --topic lat-$$ --create-topic 1 --model yelp --data "$data" \
        --blocks "$nb" --quiet > /dev/null
    mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    build/ccd-worker -c configs/yelp-replay.ini -X "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" \
        -X "kafka.group.id=lat-$$" -X "input.topics=lat-$$" -X input.dead_letter_topic= \
        -X "redis.port=$REDIS_PORT" -X "checkpoint.dir=$dir/ckpt2" -X window.idle_ms=5000 \
        -X "metrics.listen=127.0.0.1:$mport" --exit-when-idle 30000 2> "$dir/lat.log" &
    wpid=$!
    # the freshness histograms, scraped once the last block is live (before the idle exit)
    until grep -q "block $((nb - 1)): student v[0-9]* live" "$dir/lat.log" 2>/dev/null; do
        kill -0 $wpid 2>/dev/null || { echo "ccd-worker exited early" >&2; tail "$dir/lat.log" >&2; exit 1; }
        sleep 2
    done
    curl -sf "http://127.0.0.1:$mport/metrics" | grep -E "^ccd_freshness_(close|event)_seconds_(sum|count)" || true
    wait $wpid
    grep -E "closed by|live|done in" "$dir/lat.log"
    python3 - "$dir/lat.log" "$nb" <<'PY'
import sys, datetime
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
nb = int(sys.argv[2])
close, live, start = {}, {}, {}
for line in open(sys.argv[1]):
    ts = line.split()[0]
    for k in range(1, nb):
        if f"window of block {k} closed" in line: close[k] = t(ts)
        if f"block {k}: student" in line and " live " in line: live[k] = t(ts)
        if f"block {k}:" in line and "events (" in line: start[k] = t(ts)
lat = sorted(live[k] - close[k] for k in range(1, nb) if k in close and k in live)
for k in range(1, nb):
    if k in close and k in live:
        print(f"latency: block {k} window closed -> student live: {live[k] - close[k]:.1f} s "
              f"({live[k] - start[k]:.1f} s after its training started)")
if lat:
    pct = lambda q: lat[max(0, -(-int(q * 100) * len(lat) // 100) - 1)]  # nearest rank
    print(f"freshness over {len(lat)} incremental blocks: p50 {pct(0.5):.1f} s, p99 {pct(0.99):.1f} s, "
          f"max {lat[-1]:.1f} s")
PY
fi
