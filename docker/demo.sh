#!/usr/bin/env bash
# The demo, the README's main command: ccd-worker on an embedded Kafka (librdkafka's mock
# cluster, in the worker's process: no broker to install), fed a synthetic interaction stream by
# ccd-replay, publishing each window's student to a redis-server started for the demo; then a
# per-window quality table read from Redis and recommendations read back with ccd-topk.
#
#   bash docker/demo.sh            (after docker/setup.sh and a build in build/)
#   CCD_BUILD=DIR bash docker/demo.sh   binaries from another build directory
# A few minutes on 2 cores. Everything it starts is stopped, and its files deleted, at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${CCD_BUILD:-build}
for t in ccd-worker ccd-replay ccd-topk; do
    [ -x "$bin/$t" ] || { echo "demo: $bin/$t not built (cmake -S . -B build && cmake --build build -j)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "demo: redis-server missing (bash docker/setup.sh)" >&2; exit 1; }
dir=$(mktemp -d)
worker_pid=
cleanup() {
    [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Ports below the kernel's ephemeral range, so that no client's outgoing connection holds the port
# that redis-server or the metrics listener is about to bind.
ephemeral_lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "${ephemeral_lo:-0}" -gt 21000 ] || ephemeral_lo=50000
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$(( (RANDOM * 32768 + RANDOM) % (ephemeral_lo - 20000) + 20000 ))
        port_open "$p" || { echo "$p"; return 0; }
    done
    echo "demo: no free port" >&2
    return 1
}
# redis-server on a free port; another program may take the port between the check and the bind,
# so a server that does not answer is stopped and the next port tried.
port=
for attempt in 1 2 3 4 5; do
    p=$(free_port)
    rm -f "$dir/redis.pid"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
        --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" || true
    for _ in $(seq 1 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && { port=$p; break; }; sleep 0.1; done
    [ -n "$port" ] && break
    echo "demo: redis-server did not answer on 127.0.0.1:$p (try $attempt of 5); its log:" >&2
    tail -n 5 "$dir/redis.log" 2>/dev/null | sed 's/^/  /' >&2 || true
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
done
[ -n "$port" ] || { echo "demo: could not start redis-server" >&2; exit 1; }
mport=$(free_port)
while [ "$mport" = "$port" ]; do mport=$(free_port); done
echo "demo: redis-server on 127.0.0.1:$port"

"$bin/ccd-worker" -c configs/demo.ini --embedded-kafka 2 -X "redis.port=$port" \
    -X "checkpoint.dir=$dir/checkpoints" -X "metrics.listen=127.0.0.1:$mport" \
    --exit-when-idle 10000 2> "$dir/worker.log" &
worker_pid=$!
addr=
for _ in $(seq 1 100); do
    addr=$(grep -o 'embedded Kafka .* at [0-9.:,]*' "$dir/worker.log" | sed 's/.* at //' || true)
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$dir/worker.log" >&2; echo "demo: the worker did not start" >&2; exit 1; }
echo "demo: ccd-worker running, embedded Kafka at $addr"

"$bin/ccd-replay" --synthetic --seed 1 --brokers "$addr" --topic interactions --model shop --quiet
echo "demo: synthetic stream sent (6 blocks: drifting clusters, power-law popularity, new users and items)"
# scrape /metrics in the background while the worker runs; keep the last good scrape
( while kill -0 "$worker_pid" 2>/dev/null; do
      curl -sf "http://127.0.0.1:$mport/metrics" -o "$dir/metrics.new" && mv "$dir/metrics.new" "$dir/metrics.txt"
      sleep 1
  done ) &
echo "demo: per window (the worker's log):"
# follow the worker until it exits (10 s after the last window is done)
tail -n +1 -f "$dir/worker.log" --pid="$worker_pid" |
    grep --line-buffered -E 'closed by|student v[0-9]+ live|done in' | sed -u 's/^[^ ]* [a-z]* *//; s/^/  /'
wait "$worker_pid" || { echo "demo: the worker failed" >&2; tail -n 20 "$dir/worker.log" >&2; exit 1; }
worker_pid=
metrics_seen=$(grep -c '^ccd_' "$dir/metrics.txt" 2>/dev/null || true)
echo "demo: /metrics (http://127.0.0.1:$mport/metrics, scraped while the worker ran; $metrics_seen samples):"
grep -E '^ccd_(events_in_total|dead_letters_total|blocks_done_total|live_version|holdout_recall20|consumer_lag)' \
    "$dir/metrics.txt" | sed 's/^/  /'

echo
echo "demo: published versions, read back from Redis (holdout = the windows' held-out test pairs)"
printf '  %-7s %-5s %-6s %-6s %-7s %-9s %-9s\n' version block users items events R@20 N@20
cur=$(redis-cli -p "$port" GET 'ccd:{shop}:current')
[ "${cur:-0}" -ge 6 ] || { echo "demo: expected 6 published versions, found ${cur:-none}" >&2; exit 1; }
# the last scrape saw the stream and the blocks (checked so that the demo's test covers /metrics)
grep -q "^ccd_events_in_total 71268$" "$dir/metrics.txt" ||
    { echo "demo: /metrics did not count the 71268 events" >&2; cat "$dir/metrics.txt" >&2; exit 1; }
grep -Eq "^ccd_blocks_done_total [56]$" "$dir/metrics.txt" ||
    { echo "demo: /metrics did not count the blocks" >&2; exit 1; }
for v in $(seq 1 "$cur"); do
    mapfile -t m < <(redis-cli -p "$port" HMGET "ccd:{shop}:v$v:meta" block users items events \
                     holdout_recall20 holdout_ndcg20)
    [ -n "${m[0]}" ] && printf '  %-7s %-5s %-6s %-6s %-7s %-9.4f %-9.4f\n' "$v" "${m[@]}"
done
echo
echo "demo: recommendations for user 7 from the live version (ccd-topk):"
"$bin/ccd-topk" --redis "127.0.0.1:$port" --model shop --user 7 --k 10 | sed 's/^/  /'
echo "demo: done (run your own: docs/operations.md, \"Replaying a dataset through the worker\")"
