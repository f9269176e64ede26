#!/usr/bin/env bash
# The Docker deployment, run: docker/build-images.sh makes (or reuses) the images from Debian
# packages and the tests' Kafka jars, then docker/compose.yaml (with tests/compose_test.yaml over
# it) starts Kafka, Redis, two workers in one group and a replay job streaming small Yelp blocks
# (3-5 and 4-5 of ../shared/data/yelp, mounted read-only) as two models. Once a worker has
# checkpointed a block, it is killed with `docker kill` while blocks are still coming; the other
# must take its partitions over and resume from the shared checkpoint volume. Checked, as
# test_worker_group does: every model's live version in Redis is its last block, complete, and
# its blocks counted exactly the events ccd-replay produced for it (none lost, none twice); the
# survivor resumed a model from a checkpoint; its metrics answer on the port published on
# 127.0.0.1. Everything is removed at the end (docker-compose down -v: containers, network,
# volumes); the images stay for the next run.
# Usage: compose.sh SOURCE_DIR DATA_DIR
set -euo pipefail
src=$(cd "$1" && pwd) data=$(cd "$2" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
cd "$src"
fail() { echo "FAIL: $*" >&2; exit 1; }
t0=$SECONDS
[ -x /usr/bin/docker ] && docker() { /usr/bin/docker "$@"; }   # the client of Debian's daemon

# 1. Images (seconds per image are printed by build-images.sh). The unit tests ran in this CI
#    run already: the image compiles only the binaries.
CCD_IMAGE_UNIT_TESTS=0 bash docker/build-images.sh || fail "docker/build-images.sh failed"
t_images=$((SECONDS - t0))
kafka_version=$(grep -o '<kafka.version>[^<]*' tests/kafka/pom.xml | sed 's/.*>//')

# 2. The stack, under a project name of its own (its containers, network and volumes carry it).
project="ccdtest$$"
p1=$(free_port) p2=$(free_port)
while [ "$p2" = "$p1" ]; do p2=$(free_port); done
export CCD_KAFKA_IMAGE="ccd-kafka:$kafka_version" CCD_REDIS_IMAGE=ccd-redis:7.0 CCD_IMAGE=ccd-stream:latest
export CCD_WORKER1_PORT=$p1 CCD_WORKER2_PORT=$p2 CCD_TEST_DATA=$data
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
compose+=(-p "$project" -f docker/compose.yaml -f tests/compose_test.yaml)
cleanup() {
    "${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
}
trap cleanup EXIT
dump() { "${compose[@]}" logs --no-color --tail 30 >&2 || true; }
t1=$SECONDS
"${compose[@]}" up -d --no-build >/dev/null 2>&1 || { dump; fail "docker-compose up failed"; }
echo "stack up in $((SECONDS - t1)) s (project $project, metrics on 127.0.0.1:$p1 and :$p2)"

# docker itself, not docker-compose (a Python start-up per call), for what the loops below poll.
# Logs are read whole before grep: `grep -q` in a pipe would end the writer early (SIGPIPE), which
# pipefail turns into a failed check.
# The container ids are looked up once: each docker-compose call costs a second or more on a
# loaded host, and the kill below must come while the victim still has blocks to train.
declare -A cid
for s in redis replay worker-1 worker-2; do
    cid[$s]=$("${compose[@]}" ps -q "$s")
    [ -n "${cid[$s]}" ] || { dump; fail "no container for service $s"; }
done
container() { echo "${cid[$1]}"; }
rcli() { docker exec -i "${cid[redis]}" redis-cli "$@"; }
wlog() { docker logs "${cid[$1]}" 2>&1; }
has() { local text; text=$(wlog "$1"); grep -q -- "$2" <<<"$text"; }

# 3. The replay job: its exit status, and the events it produced per model ("sent N ...").
for _ in $(seq 1 300); do
    state=$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$(container replay)")
    [ "${state%% *}" = exited ] && break
    sleep 1
done
[ "$state" = "exited 0" ] || { dump; fail "replay job: $state"; }
mapfile -t sent < <(wlog replay | sed -n 's/.*sent \([0-9]*\) acked.*/\1/p')
[ "${#sent[@]}" = 2 ] && [ "${sent[0]}" -gt 0 ] && [ "${sent[1]}" -gt 0 ] ||
    { dump; fail "replay job: cannot read what it sent: ${sent[*]:-nothing}"; }
echo "replayed: yelp-a ${sent[0]} events (Yelp blocks 3-5), yelp-b ${sent[1]} (blocks 4-5)"

# 4. Both workers own partitions and one has checkpointed a block ("block N: done in ... (checkpoint
#    ...)"): kill that one (docker kill: SIGKILL). Killing it on its first publication instead
#    would leave the survivor nothing to resume when the publication came before the checkpoint
#    (it then starts the model anew from the committed offsets, which is right but not this test).
victim=
for _ in $(seq 1 600); do
    if has worker-1 'assigned ' && has worker-2 'assigned '; then
        if has worker-1 ': done in '; then victim=worker-1; break; fi
        if has worker-2 ': done in '; then victim=worker-2; break; fi
    fi
    sleep 0.5
done
[ -n "$victim" ] || { dump; fail "no worker checkpointed a block within 300 s while both owned partitions"; }
survivor=worker-1
[ "$victim" = worker-1 ] && survivor=worker-2
published=$(wlog "$victim" | grep -c ': done in ')
docker kill "$(container "$victim")" >/dev/null
echo "killed $victim after $published checkpointed block(s), $((SECONDS - t1)) s after start"

# 5. Every model's live version: its last block, the CCD student (not the fast path's
#    provisional one, which the victim may have published for the last block before it died),
#    complete, all events counted once.
models=(yelp-a yelp-b) last=(2 1)   # their last windows (tests/compose_test.yaml)
done_models() {
    local i cur block prov n=0
    for i in 0 1; do
        cur=$(rcli GET "ccd:{${models[$i]}}:current" 2>/dev/null | tr -d '\r')
        [ -n "$cur" ] || continue
        block=$(rcli HGET "ccd:{${models[$i]}}:v$cur:meta" block | tr -d '\r')
        prov=$(rcli HGET "ccd:{${models[$i]}}:v$cur:meta" provisional | tr -d '\r')
        [ "$block" = "${last[$i]}" ] && [ "$prov" = 0 ] && n=$((n + 1))
    done
    [ "$n" = 2 ]
}
for _ in $(seq 1 600); do done_models && break; sleep 1; done
done_models || { dump; fail "the models did not reach their last blocks within 600 s"; }
[ "$(docker inspect -f '{{.State.Status}}' "$(container "$survivor")")" = running ] ||
    { dump; fail "$survivor is not running"; }
for i in 0 1; do
    m=${models[$i]} cur=$(rcli GET "ccd:{${models[$i]}}:current" | tr -d '\r')
    meta() { rcli HGET "ccd:{$m}:v$cur:meta" "$1" | tr -d '\r'; }
    total=$(meta events_total)
    [ "$total" = "${sent[$i]}" ] || fail "$m: $total events in its blocks, ${sent[$i]} produced"
    for side in user item; do
        n=$(meta "${side}s") h=$(rcli HLEN "ccd:{$m}:v$cur:$side" | tr -d '\r')
        [ "$n" = "$h" ] || fail "$m: live v$cur incomplete: meta ${side}s $n, hash $h"
    done
    echo "$m: live v$cur, block $(meta block), $total events counted of ${sent[$i]} produced"
done
for _ in $(seq 1 120); do has "$survivor" 'resumed from its block-' && break; sleep 1; done
has "$survivor" 'resumed from its block-' ||
    { dump; fail "$survivor resumed no model from a checkpoint after $victim was killed"; }
port=$p1
[ "$survivor" = worker-2 ] && port=$p2
metrics=$(curl -fsS "http://127.0.0.1:$port/metrics") || fail "$survivor: no metrics on 127.0.0.1:$port"
grep -q '^ccd_live_version' <<<"$metrics" ||
    fail "$survivor: no ccd_live_version on 127.0.0.1:$port/metrics"
t_stack=$((SECONDS - t1))

# 6. Down, and nothing of the project left behind.
"${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || fail "docker-compose down failed"
trap - EXIT
label="label=com.docker.compose.project=$project"
left="$(docker ps -aq --filter "$label")$(docker volume ls -q --filter "$label")$(docker network ls -q --filter "$label")"
[ -z "$left" ] || fail "left behind by docker-compose down -v: $left"
echo "compose ok: $victim killed, $survivor finished both models; images $t_images s, stack $t_stack s, total $((SECONDS - t0)) s"
