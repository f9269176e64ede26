#!/usr/bin/env bash
# Worker benchmarks, each side by side with a reference tool in the same run (not a test):
#   1. ingest: ccd-worker consuming, decoding and windowing (training off) vs kcat consuming the
#      same topic, events/s (best of 3 alternating runs);
#   2. publish: the worker's Redis sink (bench_publish, Yelp-sized version, d = 8) vs
#      redis-benchmark's pipelined SET of the same value size (32 bytes), one connection and 50;
#   3. latency: with --latency, seconds from each Yelp window's close to the first version
#      containing it going live in Redis (provisional or exact, docs/fastpath.md) and to its exact
#      student being published (p50/p99 over the blocks, and the worker's freshness histograms), with
#      every block replayed at full speed and the reference engine settings (LAT_BLOCKS=N: the
#      first N blocks, default 6; LAT_PACED=1: block 0 first, the rest once its first student is
#      live; LAT_EXACT=1: also wait for every exact version, about 20 minutes for six blocks).
# Usage: tests/bench/bench_worker.sh [--latency | --latency-only]   (from the project root, after
# building build/; --latency-only skips 1 and 2; LAT_BLOCKS and LAT_PACED=1: see 3 below)
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

if [ "${1:-}" != "--latency-only" ]; then
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
fi

if [ "${1:-}" = "--latency" ] || [ "${1:-}" = "--latency-only" ]; then
    # every Yelp block replayed at full speed (LAT_BLOCKS to shorten): each incremental window
    # closes while earlier blocks' slow paths may still run, which is what freshness measures
    # LAT_PACED=1: block 0 alone first, the rest at full speed once block 0's first student is
    # live (the windows after the bootstrap: the fast path's steady state). The run ends when every
    # window has a first version; LAT_EXACT=1 also waits for the last block's exact student (the
    # slow path of every block: hours at the reference settings)
    nb=${LAT_BLOCKS:-6}
    paced=${LAT_PACED:-0}
    first_blocks=$nb
    [ "$paced" = 1 ] && first_blocks=1
    build/ccd-replay --brokers "$KAFKA_BOOTSTRAP" --topic lat-$$ --create-topic 1 --model yelp --data "$data" \
        --blocks "$first_blocks" --quiet > /dev/null
    mport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    build/ccd-worker -c configs/yelp-replay.ini -X "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" \
        -X "kafka.group.id=lat-$$" -X "input.topics=lat-$$" -X input.dead_letter_topic= \
        -X "redis.port=$REDIS_PORT" -X "checkpoint.dir=$dir/ckpt2" -X window.idle_ms=5000 \
        -X "metrics.listen=127.0.0.1:$mport" --exit-when-idle 30000 2> "$dir/lat.log" &
    wpid=$!
    wait_log() { # PATTERN: until the worker's log has it
        until grep -qE "$1" "$dir/lat.log" 2>/dev/null; do
            kill -0 $wpid 2>/dev/null || { echo "ccd-worker exited early" >&2; tail "$dir/lat.log" >&2; exit 1; }
            sleep 0.5
        done
    }
    if [ "$paced" = 1 ]; then
        wait_log "block 0: (provisional )?student v[0-9]* live"
        build/ccd-replay --brokers "$KAFKA_BOOTSTRAP" --topic lat-$$ --model yelp --data "$data" \
            --from-block 1 --blocks "$nb" --quiet > /dev/null
    fi
    # every window has a first version once the last one has
    wait_log "provisional student v[0-9]* live .*windows [0-9]+-$((nb - 1)),|block $((nb - 1)): student v[0-9]* live"
    if [ "${LAT_EXACT:-0}" = 1 ]; then
        wait_log "block $((nb - 1)): student v[0-9]* (live|stored behind)"
    fi
    # the freshness histograms, scraped before the worker is stopped
    curl -sf "http://127.0.0.1:$mport/metrics" | grep -E "^ccd_freshness_(close|event|exact_close)_seconds_(sum|count)" || true
    kill -TERM $wpid
    wait $wpid || true
    grep -E "closed by|live|stored behind|done in" "$dir/lat.log"
    python3 - "$dir/lat.log" "$nb" <<'PY'
import re, sys, datetime
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
nb = int(sys.argv[2])
# first live: the first version containing the window going live (a provisional one of the fast
# path, whose job may have folded several windows "windows a-b", or the exact one); exact: the
# exact CL_k published (live, or stored behind a newer live provisional version)
close, first, exact, start = {}, {}, {}, {}
for line in open(sys.argv[1]):
    ts = t(line.split()[0])
    a = re.search(r"window of block (\d+) closed", line)
    p = re.search(r"block (\d+): provisional student v\d+ live .*windows (\d+)-(\d+)", line)
    e = re.search(r"block (\d+): student v\d+ (live|stored behind)", line)
    s = re.search(r"block (\d+): \d+ events \(", line)
    if a: close.setdefault(int(a.group(1)), ts)
    if s: start.setdefault(int(s.group(1)), ts)
    if p:
        for k in range(int(p.group(2)), int(p.group(3)) + 1): first.setdefault(k, ts)
    if e:
        k = int(e.group(1))
        exact.setdefault(k, ts)
        if e.group(2) == "live": first.setdefault(k, ts)
pct = lambda v, q: v[max(0, -(-int(q * 100) * len(v) // 100) - 1)]  # nearest rank
for k in range(nb):
    if k in close:
        f = f"{first[k] - close[k]:.1f} s" if k in first else "-"
        x = f"{exact[k] - close[k]:.1f} s" if k in exact else "-"
        print(f"latency: block {k} window closed -> first version live {f}, exact published {x}")
for name, d in (("first live", first), ("exact", exact)):
    for lo in (0, 1):
        v = sorted(d[k] - close[k] for k in range(lo, nb) if k in close and k in d)
        if v:
            print(f"{name} over blocks {lo}-{nb - 1} ({len(v)}): p50 {pct(v, 0.5):.1f} s, "
                  f"p99 {pct(v, 0.99):.1f} s, max {v[-1]:.1f} s")
PY
fi
