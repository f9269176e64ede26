#!/usr/bin/env bash
# The end-to-end path under valgrind memcheck (issue 6, memory safety): ccd-replay streams a small
# synthetic stream plus a few malformed records into Kafka, ccd-worker consumes it in a group,
# trains every window, dead-letters the bad records, publishes to Redis, serves /metrics and
# checkpoints; ccd-topk reads a recommendation back. Each binary runs under
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
# and must exit 0: no invalid read or write, no use of uninitialised values, no definite leak.
# ("Possibly lost" blocks are the thread stacks of OpenBLAS and librdkafka, kept until exit.)
# Needs binaries built without -march=native (valgrind does not know every instruction):
# tests/run.sh builds build-valgrind with -DCCD_NATIVE=OFF for this test.
# Usage: valgrind_e2e.sh BUILD_DIR SOURCE_DIR   (CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$1 src=$2
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
command -v valgrind > /dev/null || { echo "FAIL: valgrind missing (docker/setup.sh --test)" >&2; exit 1; }
command -v kcat > /dev/null || { echo "FAIL: kcat missing (docker/setup.sh --test)" >&2; exit 1; }
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
test_scratch 30
# the tools re-exec themselves to set OMP_WAIT_POLICY (worker/omp_env.h); under valgrind that
# exec would start the tool itself, so set it here
export OMP_WAIT_POLICY=passive
vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite -q)
topic=vg-$$-$RANDOM

"${vg[@]}" "$bin/ccd-replay" --synthetic --seed 5 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" \
    --create-topic 2 --schema "$src/schemas/interaction.avsc" --model vg --synth-users 200 --synth-items 150 --synth-events 3000 \
    --synth-block-events 600 --synth-new-users 20 --synth-new-items 10 --blocks 4 \
    > "$out/replay.log" 2>&1 || fail "ccd-replay under valgrind (exit $?)"
sent=$(grep -o 'acked [0-9]*' "$out/replay.log" | awk '{print $2}')
# malformed records: garbage, a truncated Confluent frame, an empty value with a key
printf 'not avro at all' | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k vg
printf '\x00\x00\x00' | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k vg
printf '\x02a\x02b' | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -k vg

mport=$(free_port) || mport=0
[ "$mport" -gt 0 ] || fail "no free port"
cat > "$out/worker.ini" <<EOF
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = $topic
[input]
topics = $topic
reader_schema = $src/schemas/interaction.avsc
dead_letter_topic = $topic.dlq
$(replay_window_ini)
$(engine_ini "mf:8:0, lightgcn:8:1" 4 2 1 1 1)
[redis]
host = $REDIS_HOST
port = $REDIS_PORT
prefix = $topic
[checkpoint]
dir = $out/ckpt
[metrics]
listen = 127.0.0.1:$mport
[worker]
threads = 2
EOF
"${vg[@]}" "$bin/ccd-worker" -c "$out/worker.ini" --exit-when-idle 8000 > "$out/worker.log" 2>&1 &
wpid=$!
# scrape /metrics while it runs (the HTTP thread under valgrind too)
scraped=0
while kill -0 "$wpid" 2>/dev/null; do
    curl -sf "http://127.0.0.1:$mport/metrics" -o "$out/metrics.txt" && scraped=1
    sleep 1
done
wait "$wpid" || fail "ccd-worker under valgrind (exit $?)"
[ "$scraped" = 1 ] || fail "/metrics never answered"
grep -q '^ccd_events_in_total' "$out/metrics.txt" || fail "/metrics lacks ccd_events_in_total"
grep -q "dead letters" "$out/worker.log" || fail "no summary line"
dl=$(grep -o '[0-9]* dead letters' "$out/worker.log" | tail -1 | awk '{print $1}')
[ "$dl" = 3 ] || fail "expected 3 dead letters, got $dl"
cur=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" GET "$topic:{vg}:current")
blk=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" HGET "$topic:{vg}:v$cur:meta" block)
[ "$blk" = 2 ] || fail "live version v$cur is block '$blk', expected block 2 (blocks 0-2 close; 3 stays open)"

"${vg[@]}" "$bin/ccd-topk" --redis "$REDIS_HOST:$REDIS_PORT" --prefix "$topic" --model vg --user 7 --k 5 \
    > "$out/topk.log" 2>&1 || fail "ccd-topk under valgrind (exit $?)"
[ "$(grep -c . "$out/topk.log")" -ge 5 ] || fail "ccd-topk printed too little: $(cat "$out/topk.log")"
echo "valgrind e2e ok: ccd-replay ($sent events), ccd-worker (3 blocks, v$cur live, $dl dead letters," \
     "/metrics scraped), ccd-topk: no memcheck errors, no definite leaks"
