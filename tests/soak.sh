#!/usr/bin/env bash
# Soak (issue 6, load): replay a synthetic stream into a real Kafka broker as fast as it goes, for
# MINUTES (default 10), while one ccd-worker consumes, trains every window and publishes to Redis.
# Each pass of the replay re-sends the same users and items with later event times, so windows
# keep closing and the models stop growing after the first pass: memory should then be flat.
# Every 5 s it samples the worker's RSS (/proc) and /metrics (buffered events, events in, blocks,
# pause state) into a CSV, and at the end checks:
#   - buffered events never exceeded input.max_buffered_events (+ one consumer batch of slack);
#   - RSS flat after warm-up: the mean RSS over the last third of the run is within 10% (or 32 MB)
#     of the mean over the middle third;
#   - the worker is alive, kept publishing (blocks done grew in the second half) and the counts
#     add up: events in = decoded + dead letters.
# Not part of CI (it takes MINUTES); run it by hand:  bash tests/soak.sh 10 [BUILD_DIR]
set -euo pipefail
minutes=${1:-10}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${2:-$src/build}
out=$(mktemp -d)
svc=$out/svc
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash "$src/tests/services.sh" stop "$svc" > /dev/null 2>&1 || true
    echo "soak: samples and logs kept in $out" >&2
}
trap cleanup EXIT
export OMP_WAIT_POLICY=passive

bash "$src/tests/services.sh" start "$svc" > /dev/null
# shellcheck disable=SC1091
source "$svc/services.env"
bound=200000
# shellcheck source=lib.sh
source "$src/tests/lib.sh" # also fail: the last lines of worker.log
mport=$(free_port) || mport=0
cat > "$out/worker.ini" <<EOF
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = soak
[input]
topics = soak
reader_schema = $src/schemas/interaction.avsc
dead_letter_topic = soak.dlq
max_buffered_events = $bound
$(replay_window_ini)
$(engine_ini "mf:16:0, lightgcn:16:1" 8 3 1 2 1)
[redis]
host = $REDIS_HOST
port = $REDIS_PORT
prefix = soak
keep_versions = 3
[checkpoint]
dir = $out/ckpt
keep = 2
[metrics]
listen = 127.0.0.1:$mport
EOF
"$bin/ccd-replay" --synthetic --brokers "$KAFKA_BOOTSTRAP" --topic soak --create-topic 2 --model shop \
    --blocks 1 --quiet > /dev/null 2>&1 || fail "cannot create the topic"
"$bin/ccd-worker" -c "$out/worker.ini" > "$out/worker.log" 2>&1 &
wpid=$!
pids+=("$wpid")

# the producer: pass after pass of 6 synthetic blocks for two models, event times moving on
(
    pass=0
    while :; do
        base=$((1600000000000 + pass * 6 * 86400000))
        for m in shop books; do
            "$bin/ccd-replay" --synthetic --seed "$([ $m = shop ] && echo 1 || echo 2)" \
                --brokers "$KAFKA_BOOTSTRAP" --topic soak --model "$m" --base-time-ms "$base" \
                --schema "$src/schemas/interaction.avsc" --quiet >> "$out/replay.log" 2>&1 || exit 1
        done
        pass=$((pass + 1))
        echo "$pass" > "$out/passes"
    done
) &
pids+=("$!")

metric() { awk -v k="$1" '$1 == k { print $2 }' "$out/metrics.txt" | head -1; }
echo "t_s,rss_mb,buffered,events_in,blocks_done,paused" > "$out/samples.csv"
end=$(( $(date +%s) + minutes * 60 ))
t0=$(date +%s)
while [ "$(date +%s)" -lt "$end" ]; do
    sleep 5
    kill -0 "$wpid" 2>/dev/null || fail "the worker died"
    rss=$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$wpid/status")
    curl -sf "http://127.0.0.1:$mport/metrics" -o "$out/metrics.txt" || continue
    echo "$(( $(date +%s) - t0 )),$rss,$(metric ccd_buffered_events),$(metric ccd_events_in_total),$(metric ccd_blocks_done_total),$(metric ccd_input_paused)" >> "$out/samples.csv"
done
kill -0 "$wpid" 2>/dev/null || fail "the worker died"
in=$(metric ccd_events_in_total) dec=$(metric ccd_events_decoded_total) dl=$(metric ccd_dead_letters_total)
python3 - "$out/samples.csv" "$bound" "$in" "$dec" "$dl" "$(cat "$out/passes" 2>/dev/null || echo 0)" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
bound, ev_in, dec, dl, passes = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
if len(rows) < 12:
    sys.exit("FAIL: only %d samples" % len(rows))
n = len(rows)
mid = [float(r["rss_mb"]) for r in rows[n // 3: 2 * n // 3]]
last = [float(r["rss_mb"]) for r in rows[2 * n // 3:]]
m_mid, m_last = sum(mid) / len(mid), sum(last) / len(last)
buf_max = max(int(float(r["buffered"])) for r in rows)
blocks_half = int(float(rows[n // 2]["blocks_done"])); blocks_end = int(float(rows[-1]["blocks_done"]))
paused = sum(1 for r in rows if r["paused"] not in ("0", "0.0", ""))
print("soak: %s s, %d samples, %s replay passes, %d events in, %d blocks done (%d in the second half), "
      "input paused in %d samples" % (rows[-1]["t_s"], n, passes, ev_in, blocks_end, blocks_end - blocks_half, paused))
print("soak: RSS mean %.1f MB (middle third) -> %.1f MB (last third), max %.1f MB; buffered max %d (bound %d)"
      % (m_mid, m_last, max(float(r["rss_mb"]) for r in rows), buf_max, bound))
bad = []
if buf_max > bound + 100000:
    bad.append("buffered events %d beyond the bound %d" % (buf_max, bound))
if m_last > max(m_mid * 1.10, m_mid + 32):
    bad.append("RSS grew from %.1f to %.1f MB after warm-up" % (m_mid, m_last))
if blocks_end <= blocks_half:
    bad.append("no block finished in the second half")
if ev_in != dec + dl:
    bad.append("events in %d != decoded %d + dead letters %d" % (ev_in, dec, dl))
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
print("soak ok")
PY
