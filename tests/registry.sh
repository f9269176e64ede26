#!/usr/bin/env bash
# Schema registry (issue 16): workers configured with only input.registry.url (no input.schema.<id>
# files) read Confluent-framed events whose writer schemas live in a real registry: Apicurio
# Registry 2.4.2 (tests/registry/pom.xml, its Confluent-compatible API /apis/ccompat/v7), with the
# real broker of the `services` fixture.
#   1. registry up: the producer registers v1 (schemas/interaction.avsc) under the topic's subject
#      and sends events framed with its id; worker A counts them. Then v2 (tests/registry/
#      interaction_v2.avsc: a field added with a default) is registered mid-stream and events
#      framed with the new id follow. A must decode every event, dead-letter none of them, and
#      fetch each id once (its cache). A also reads a second topic of events framed with an id
#      the registry does not know: those are dead-lettered, after one request (missing-id cache).
#   2. registry hung at start: the registry process is frozen (SIGSTOP: it accepts connections and
#      never answers), then worker B (another group) starts on the same topic. Its lookups time
#      out: B must hold its partitions (ccd_schema_registry_held_partitions), decode nothing and
#      dead-letter nothing. The registry is resumed (SIGCONT): B must then decode every event.
# Usage: registry.sh BUILD_DIR SOURCE_DIR   (CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd)
cd "$src"
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
t0=$(date +%s)
test_scratch

# --- the registry ---------------------------------------------------------------------------------
rport=$(free_port)
secs=$(registry_launch "$out" "$rport" 180) || fail "the registry did not start"
reg=$(cat "$out/pid")
pids+=("$reg")
mv "$out/registry.log" "$out/apicurio.log"
echo "Apicurio Registry 2.4.2 ready on 127.0.0.1:$rport after $secs s"
api=http://127.0.0.1:$rport/apis/ccompat/v7
topic=registry-$$-$RANDOM
register() { # SCHEMA_FILE -> the id the registry gives it under the topic's value subject
    python3 -c 'import json,sys; print(json.dumps({"schema": open(sys.argv[1]).read()}))' "$1" |
        curl -sf -X POST -H "Content-Type: application/vnd.schemaregistry.v1+json" --data @- \
            "$api/subjects/$topic-value/versions" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# --- workers --------------------------------------------------------------------------------------
worker() { # NAME TOPICS: start a registry-only worker that counts (no training), serves /metrics
    local port
    port=$(free_port)
    echo "$port" > "$out/$1.mport"
    cat > "$out/$1.ini" <<INI
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = registry-$1-$$
auto.offset.reset = earliest
[input]
topics = $2
format = confluent
reader_schema = $src/schemas/interaction.avsc
dead_letter_topic = $topic-dlq
registry.url = $api
registry.timeout_ms = 1000
$(replay_window_ini)
[metrics]
listen = 127.0.0.1:$port
[checkpoint]
dir = $out/ckpt-$1
[worker]
threads = 1
train = false
INI
    "$bin/ccd-worker" -c "$out/$1.ini" > /dev/null 2> "$out/$1.log" &
    echo $!
}
metric() { # NAME METRIC -> its value on the worker's /metrics (empty if unreachable)
    curl -sf "http://127.0.0.1:$(cat "$out/$1.mport")/metrics" 2>/dev/null | awk -v m="$2" '$1 == m {print $2}'
}
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
metric_ge() { local v; v=$(metric "$1" "$2"); [ -n "$v" ] && [ "$v" -ge "$3" ]; }
replay() { # SCHEMA_ID FROM_BLOCK [ARGS...] -> events sent (to $topic unless ARGS name another)
    local id=$1 from=$2
    shift 2
    "$bin/ccd-replay" --synthetic --seed 5 --synth-users 200 --synth-items 150 --synth-events 1500 \
        --synth-block-events 400 --blocks $((from + 2)) --from-block "$from" --brokers "$KAFKA_BOOTSTRAP" \
        --topic "${to:-$topic}" --create-topic 2 --model reg --format confluent --schema-id "$id" \
        --schema "$src/schemas/interaction.avsc" --quiet "$@" > "$out/replay-$id.txt" 2>&1 ||
        fail "ccd-replay (schema id $id): $(cat "$out/replay-$id.txt")"
    awk '/^sent/ {print $2}' "$out/replay-$id.txt"
}

# 1. registry up; v2 registered mid-stream
id1=$(register "$src/schemas/interaction.avsc") || fail "registering v1"
n1=$(replay "$id1" 0)
# beside it, a flood of an id the registry does not know: dead-lettered, asked about once (cache)
bad=$(to=$topic-bad replay 999999 0 --blocks 1)
a=$(worker a "$topic,$topic-bad")
pids+=("$a")
wait_until 600 metric_is a ccd_events_decoded_total "$n1" || fail "A decoded $(metric a ccd_events_decoded_total) of $n1 v1 events"
wait_until 300 metric_is a ccd_dead_letters_total "$bad" || fail "A dead-lettered $(metric a ccd_dead_letters_total) of $bad events with an unknown id"
metric_is a ccd_schema_registry_missing_total 1 || fail "A counted $(metric a ccd_schema_registry_missing_total) missing ids"
metric_ge a ccd_schema_registry_cache_hits_total $((bad - 1)) || fail "A's missing-id cache answered $(metric a ccd_schema_registry_cache_hits_total) of $((bad - 1)) lookups"
id2=$(register "$src/tests/registry/interaction_v2.avsc") || fail "registering v2"
[ "$id2" != "$id1" ] || fail "v2 got v1's id $id1"
n2=$(replay "$id2" 2 --writer-schema "$src/tests/registry/interaction_v2.avsc")
total=$((n1 + n2))
wait_until 600 metric_is a ccd_events_decoded_total "$total" || fail "A decoded $(metric a ccd_events_decoded_total) of $total events"
metric_is a ccd_dead_letters_total "$bad" || fail "A dead-lettered $(metric a ccd_dead_letters_total), expected only the $bad with an unknown id"
metric_is a ccd_dead_letter_errors_total 0 || fail "A could not produce $(metric a ccd_dead_letter_errors_total) dead letters"
metric_is a ccd_schema_registry_found_total 2 || fail "A fetched $(metric a ccd_schema_registry_found_total) schemas, expected 2"
metric_is a ccd_schema_registry_requests_total 3 || fail "A made $(metric a ccd_schema_registry_requests_total) requests for 3 ids (no cache?)"
echo "A: $n1 events with v1 (id $id1), then $n2 with v2 (id $id2) registered mid-stream: all decoded; $bad events with an unknown id dead-lettered after 1 request"
stop_pid "$a"

# 2. registry hung when B starts; no loss once it answers again
kill -STOP "$reg"
b=$(worker b "$topic")
pids+=("$b")
wait_until 300 metric_ge b ccd_schema_registry_errors_total 2 || fail "B made no failed lookup"
wait_until 100 metric_ge b ccd_schema_registry_held_partitions 1 || fail "B held no partition"
sleep 2
metric_is b ccd_events_decoded_total 0 || fail "B decoded while the registry was hung"
metric_is b ccd_dead_letters_total 0 || fail "B dead-lettered $(metric b ccd_dead_letters_total) while the registry was hung"
metric_is b ccd_schema_registry_up 0 || fail "B says the registry is up"
echo "B: registry hung: $(metric b ccd_schema_registry_errors_total) failed lookups, $(metric b ccd_schema_registry_retries_total) messages held, nothing decoded or dead-lettered"
kill -CONT "$reg"
wait_until 600 metric_is b ccd_events_decoded_total "$total" || fail "B decoded $(metric b ccd_events_decoded_total) of $total after the registry came back"
metric_is b ccd_dead_letters_total 0 || fail "B dead-lettered $(metric b ccd_dead_letters_total)"
metric_is b ccd_schema_registry_up 1 || fail "B says the registry is down"
echo "B: registry back: all $total events decoded, 0 dead letters"
stop_pid "$b"
! grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out"/*.log || fail "sanitizer report"
echo "registry ok in $(($(date +%s) - t0)) s (registry start $secs s)"
