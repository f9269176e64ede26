#!/usr/bin/env bash
# Least privilege and secrets, against services this script starts itself (tests/services.sh's
# are not used): a Kafka 3.9 KRaft broker with SASL/PLAIN on every listener, a SASL_SSL listener
# and ACLs enforced by the StandardAuthorizer (tests/kafka_sasl.sh), and a redis-server whose
# default user is off.
#
#  Kafka  ccd-replay produces as `producer` (ACL: Write on the input topic); ccd-worker consumes
#         over SASL_SSL (the test CA verified) as `ccd-worker` (ACLs: Read on the input topic and
#         its group, Write on the dead-letter topic, nothing else): every window is published and
#         the events counted equal those produced, a bad record reaches the dead-letter topic.
#         A wrong password, a principal without Read on the group, one without Read on the topic
#         and one without Write on the dead-letter topic (that dead letter is then not committed:
#         a run after the grant delivers it) each stop the worker with status 1 and a clear error.
#         A client that does not trust the broker's CA gets a clear TLS error and reads nothing.
#         The ACLs restrict: `producer` cannot read the topic, `ccd-worker` cannot write it.
#  Redis  the worker publishes as an ACL user limited to ~ccd:* / &ccd:* and the nine commands
#         a publication sends; ccd-topk and ccd-eval read back as a read-only user. Both users are
#         refused outside their rights (other keys, other commands, writes), and a client without
#         credentials is refused. A wrong Redis password is reported without the password.
#  Secrets every password is distinctive (S3cr3t-...); the worker's stdout and stderr at
#         log.level=debug with librdkafka's debug contexts (text, and JSON once), --check, the
#         /metrics text, checkpoints and the tools' outputs must not contain any of them. The main
#         worker takes its secrets from a config file (mode 600), and its command line (ps) is
#         checked too; -X secrets on a command line are visible in ps (printed as a note).
#
# Usage: security.sh BUILD_DIR SOURCE_DIR. A service that does not start is a failure, never a
# skip. Everything started is stopped, and every file deleted, on exit.
set -euo pipefail
bin=$(cd "${1:?usage: security.sh BUILD_DIR SOURCE_DIR}" && pwd)
src=$(cd "${2:?usage: security.sh BUILD_DIR SOURCE_DIR}" && pwd)
# the tools default to schemas/interaction.avsc and the configs name it relative to the root
cd "$src"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
t0=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ccd-security.XXXXXX")
chmod 700 "$tmp"
kstate=$tmp/kafka
bg_pids=()
cleanup() {
    local p
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${bg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ ! -f "$tmp/redis/pid" ] || stop_pid "$(cat "$tmp/redis/pid")" 50
    bash "$src/tests/kafka_sasl.sh" stop "$kstate" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failures=0
say() { printf 'security: %s\n' "$*"; }
ok() { say "ok   $*"; }
bad() { say "FAIL $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...: the command's status decides
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
die() { say "FAIL $*"; exit 1; }
for tool in java openssl redis-server redis-cli kcat curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found (docker/setup.sh --test)"
done
for b in ccd-worker ccd-replay ccd-topk ccd-eval; do [ -x "$bin/$b" ] || die "$bin/$b not built"; done

# ---- secrets: every one distinctive, so that a leak anywhere is found by one grep ----
K_ADMIN=S3cr3t-kadmin-XYZ K_WORKER=S3cr3t-kafka-XYZ K_PRODUCER=S3cr3t-kprod-XYZ
K_OTHER=S3cr3t-kother-XYZ K_WRONG=S3cr3t-wrong-XYZ K_SSLKEY=S3cr3t-sslkey-XYZ
R_ADMIN=S3cr3t-radmin-XYZ R_WORKER=S3cr3t-redis-XYZ R_READER=S3cr3t-rread-XYZ R_WRONG=S3cr3t-rwrong-XYZ
secrets=("$K_ADMIN" "$K_WORKER" "$K_PRODUCER" "$K_OTHER" "$K_WRONG" "$K_SSLKEY" "$R_ADMIN" "$R_WORKER"
         "$R_READER" "$R_WRONG")
scan=()  # files that must hold no secret


# ---- services ----
say "starting Kafka 3.9.1 (KRaft, SASL/PLAIN, SASL_SSL, StandardAuthorizer)"
bash "$src/tests/kafka_sasl.sh" start "$kstate" "admin=$K_ADMIN" "ccd-worker=$K_WORKER" \
    "producer=$K_PRODUCER" "nogroup=$K_OTHER" "notopic=$K_OTHER" "nodlq=$K_OTHER" ||
    die "the SASL Kafka broker did not start"
# shellcheck disable=SC1091
source "$kstate/kafka_sasl.env"

say "starting redis-server with ACL users (default user off)"
rport=$(free_port) || die "no free port"
mkdir -p "$tmp/redis"
(umask 077; cat > "$tmp/redis/redis.conf" <<CONF
port $rport
bind 127.0.0.1
save ""
appendonly no
dir $tmp/redis
daemonize yes
pidfile $tmp/redis/pid
logfile $tmp/redis/redis.log
user default off
user admin on >$R_ADMIN ~* &* +@all
user ccd-worker on >$R_WORKER resetkeys ~ccd:* resetchannels &ccd:* -@all +incr +incrby +zrange +unlink +hset +zadd +zrem +set +publish +evalsha +script|load +hget +hmget +hexists +exists +time +get
user ccd-reader on >$R_READER resetkeys %R~ccd:* resetchannels -@all +get +hget +hmget +hscan +zrange +zrevrange
CONF
)
redis-server "$tmp/redis/redis.conf" >/dev/null || die "redis-server did not start"
admin_ping() { REDISCLI_AUTH=$R_ADMIN redis-cli -p "$rport" --user admin ping 2>/dev/null | grep -q PONG; }
wait_until 100 admin_ping || { tail -20 "$tmp/redis/redis.log" >&2; die "redis-server did not answer"; }
say "redis-server on 127.0.0.1:$rport; Kafka SASL_PLAINTEXT $KAFKA_SASL_BOOTSTRAP, SASL_SSL $KAFKA_SASL_SSL_BOOTSTRAP"
radmin() { REDISCLI_AUTH=$R_ADMIN redis-cli -p "$rport" --user admin "$@"; }
ras() { local u=$1 p=$2; shift 2; REDISCLI_AUTH=$p redis-cli -p "$rport" --user "$u" "$@" 2>&1; }

# ---- Kafka: topics (as admin) and ACLs ----
topic=sec-in dlq=sec-dlq group=sec-workers group2=sec-other model=shop topic3=sec-bad group3=sec-nodlq
sasl() { # librdkafka client properties for user $1, password $2 on the SASL_PLAINTEXT listener
    local k=${3:-}
    printf '%s\n' -X "${k}security.protocol=SASL_PLAINTEXT" -X "${k}sasl.mechanism=PLAIN" \
        -X "${k}sasl.username=$1" -X "${k}sasl.password=$2"
}
mapfile -t admin_x < <(sasl admin "$K_ADMIN" kafka.)
for t in "$topic" "$dlq" "$topic3"; do
    # ccd-replay's --create-topic, sending nothing (block 1 of a one-block stream)
    "$bin/ccd-replay" --brokers "$KAFKA_SASL_BOOTSTRAP" --topic "$t" --create-topic 2 --model x --synthetic \
        --blocks 1 --from-block 1 --synth-users 2 --synth-items 2 --synth-events 2 --quiet "${admin_x[@]}" \
        > "$tmp/create-$t.txt" 2>&1 || { cat "$tmp/create-$t.txt" >&2; die "creating topic $t as admin"; }
    scan+=("$tmp/create-$t.txt")
done
acl() { bash "$src/tests/kafka_sasl.sh" acl "$kstate" --add "$@" >> "$tmp/acl.log" 2>&1 ||
        { cat "$tmp/acl.log" >&2; die "kafka.admin.AclCommand --add $*"; }; }
acl --allow-principal User:producer --operation Write --topic "$topic"
acl --allow-principal User:ccd-worker --allow-principal User:nogroup --operation Read --topic "$topic"
acl --allow-principal User:ccd-worker --operation Read --group "$group"
acl --allow-principal User:ccd-worker --allow-principal User:nogroup --allow-principal User:notopic \
    --operation Write --topic "$dlq"
acl --allow-principal User:notopic --operation Read --group "$group2"
acl --allow-principal User:nodlq --operation Read --topic "$topic3" --group "$group3"
bash "$src/tests/kafka_sasl.sh" acl "$kstate" --list > "$tmp/acls.txt" 2>&1 || die "listing the ACLs"
awk '/ResourcePattern/ { t = $0; sub(/.*resourceType=/, "", t); sub(/,.*/, "", t)
                         n = $0; sub(/.*name=/, "", n); sub(/,.*/, "", n); next }
     /principal=/ { p = $0; sub(/.*principal=/, "", p); sub(/,.*/, "", p)
                    o = $0; sub(/.*operation=/, "", o); sub(/,.*/, "", o)
                    print p, o, t, n }' "$tmp/acls.txt" | sort > "$tmp/acls.sorted"
sort > "$tmp/acls.expected" <<ACLS
User:producer WRITE TOPIC $topic
User:ccd-worker READ TOPIC $topic
User:ccd-worker READ GROUP $group
User:ccd-worker WRITE TOPIC $dlq
User:nogroup READ TOPIC $topic
User:nogroup WRITE TOPIC $dlq
User:notopic READ GROUP $group2
User:notopic WRITE TOPIC $dlq
User:nodlq READ TOPIC $topic3
User:nodlq READ GROUP $group3
ACLS
say "ACLs (kafka.admin.AclCommand --list; super.users=User:admin, allow.everyone.if.no.acl.found=false):"
sed 's/^/    /' "$tmp/acls.sorted"
check "the broker holds exactly the 10 ACLs granted (User:ccd-worker: Read $topic, Read group $group, Write $dlq)" \
    cmp -s "$tmp/acls.sorted" "$tmp/acls.expected"

# ---- produce: the synthetic stream as `producer`, and one bad record ----
mapfile -t prod_x < <(sasl producer "$K_PRODUCER" kafka.)
"$bin/ccd-replay" --brokers "$KAFKA_SASL_BOOTSTRAP" --topic "$topic" --model "$model" --synthetic --seed 1 \
    --blocks 3 --synth-users 300 --synth-items 200 --synth-events 4000 --synth-new-users 30 \
    --synth-new-items 20 --synth-block-events 1500 --write-dataset "$tmp/data" --schema "$src/schemas/interaction.avsc" \
    "${prod_x[@]}" > "$tmp/replay.txt" 2> "$tmp/replay.err" || { cat "$tmp/replay.err" >&2; die "ccd-replay as producer"; }
scan+=("$tmp/replay.txt" "$tmp/replay.err")
sent=$(awk '/^sent/ {print $2}' "$tmp/replay.txt")
mapfile -t per_block < <(sed -n 's/^ccd-replay: block \([0-9]*\): \([0-9]*\) events.*/\2/p' "$tmp/replay.err")
say "produced as User:producer: $sent events in ${#per_block[@]} blocks (${per_block[*]})"
[ "${sent:-0}" -gt 0 ] && [ "${#per_block[@]}" = 3 ] || die "ccd-replay: $(cat "$tmp/replay.txt")"
# shellcheck disable=SC2046  # the -X KEY=VALUE words of sasl() hold no spaces
kc() { local u=$1 p=$2; shift 2; timeout 60 kcat -b "$KAFKA_SASL_BOOTSTRAP" $(sasl "$u" "$p") "$@"; }
printf '%s:\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\n' "$model" | kc producer "$K_PRODUCER" -P -t "$topic" -K: \
    > "$tmp/kcat-bad.txt" 2>&1 || { cat "$tmp/kcat-bad.txt" >&2; die "kcat: producing the bad record"; }
printf '%s:\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\n' "$model" | kc admin "$K_ADMIN" -P -t "$topic3" -K: \
    >> "$tmp/kcat-bad.txt" 2>&1 || { cat "$tmp/kcat-bad.txt" >&2; die "kcat: producing the bad record to $topic3"; }
# the ACLs restrict: the producer cannot read, the worker cannot write the input topic
kc producer "$K_PRODUCER" -C -t "$topic" -e -c 1 > "$tmp/kcat-deny1.txt" 2>&1 && rc=0 || rc=$?
check "User:producer cannot read $topic (kcat rc $rc: $(grep -o 'Topic authorization failed' "$tmp/kcat-deny1.txt" | head -1))" \
    test "$rc" != 0 -a -n "$(grep 'Topic authorization failed' "$tmp/kcat-deny1.txt")"
printf '%s:x\n' "$model" | kc ccd-worker "$K_WORKER" -P -t "$topic" -K: > "$tmp/kcat-deny2.txt" 2>&1 && rc=0 || rc=$?
check "User:ccd-worker cannot write $topic (kcat rc $rc: $(grep -o 'Topic authorization failed' "$tmp/kcat-deny2.txt" | head -1))" \
    test "$rc" != 0 -a -n "$(grep 'Topic authorization failed' "$tmp/kcat-deny2.txt")"
scan+=("$tmp/kcat-bad.txt" "$tmp/kcat-deny1.txt" "$tmp/kcat-deny2.txt")

# ---- the worker's configuration: secrets in a file only its user can read ----
# the checks below count one version per block: no provisional versions (docs/fastpath.md; the
# fast path publishes with the same commands as the trainer, so the ACL is the same)
tiny=(-X ccd.teachers=mf:16:0 -X ccd.base.epochs=2 -X ccd.kd.epochs=1 -X ccd.student.epochs=1
      -X ccd.teacher.epochs=1 -X worker.threads=1 -X fastpath.enabled=false)
common=(-X "input.topics=$topic" -X "input.dead_letter_topic=$dlq" -X "input.reader_schema=$src/schemas/interaction.avsc"
        -X "redis.port=$rport" -X "checkpoint.dir=$tmp/ckpt" "${tiny[@]}")
(umask 077; { cat "$src/configs/demo.ini"; cat <<INI

; security.sh: the secrets, in a file of mode 600
[kafka]
bootstrap.servers = $KAFKA_SASL_SSL_BOOTSTRAP
group.id = $group
security.protocol = SASL_SSL
sasl.mechanism = PLAIN
sasl.username = ccd-worker
sasl.password = $K_WORKER
ssl.ca.location = $KAFKA_SSL_CA
ssl.endpoint.identification.algorithm = https
debug = security,broker,conf,cgrp,topic,metadata,generic

[redis]
user = ccd-worker
password = $R_WORKER
INI
} > "$tmp/worker.ini")
say "worker config: $(stat -c '%a %U' "$tmp/worker.ini") $tmp/worker.ini"

# --check shows every secret as (hidden), with secrets from the file and from -X
"$bin/ccd-worker" -c "$tmp/worker.ini" "${common[@]}" -X "kafka.ssl.key.password=$K_SSLKEY" --check \
    > "$tmp/check.txt" 2>&1 || { cat "$tmp/check.txt" >&2; die "ccd-worker --check"; }
scan+=("$tmp/check.txt")
hidden=$(grep -c '(hidden)' "$tmp/check.txt" || true)
check "--check hides the secrets: $hidden values shown as (hidden) (kafka.sasl.password, kafka.ssl.key.password, redis password)" \
    test "$hidden" -ge 3 -a -n "$(grep -x 'kafka.sasl.password = (hidden)' "$tmp/check.txt")" \
    -a -n "$(grep -x 'kafka.ssl.key.password = (hidden)' "$tmp/check.txt")"

# ---- the main run: SASL_SSL as ccd-worker, Redis as the ACL user, debug logs, /metrics ----
mport=$(free_port) || die "no free port"
say "ccd-worker: SASL_SSL as User:ccd-worker, Redis as ccd-worker, log.level=debug, kafka.debug=security,broker,conf,cgrp,..."
start=$SECONDS
OMP_WAIT_POLICY=passive "$bin/ccd-worker" -c "$tmp/worker.ini" "${common[@]}" -X log.level=debug \
    -X "metrics.listen=127.0.0.1:$mport" --exit-when-idle 5000 > "$tmp/worker.out" 2> "$tmp/worker.log" &
wpid=$!
bg_pids+=("$wpid")
sleep 0.5
ps -ww -o args= -p "$wpid" > "$tmp/worker.ps" 2>/dev/null || true
scan+=("$tmp/worker.ps")
( while kill -0 "$wpid" 2>/dev/null; do
      curl -sf "http://127.0.0.1:$mport/metrics" -o "$tmp/metrics.new" && mv "$tmp/metrics.new" "$tmp/metrics.txt"
      sleep 0.5
  done ) &
bg_pids+=("$!")
wait "$wpid" && wrc=0 || wrc=$?
scan+=("$tmp/worker.out" "$tmp/worker.log" "$tmp/metrics.txt")
check "ps shows the main worker's command line (secrets in its config file: none there, checked below)" \
    grep -q 'ccd-worker -c' "$tmp/worker.ps"
say "ccd-worker exited with $wrc after $((SECONDS - start)) s; $(wc -l < "$tmp/worker.log") log lines"
grep -E 'closed by|student v[0-9]+ live|info  stopped:' "$tmp/worker.log" | sed 's/^[^ ]* [a-z]* */    /'
check "the worker exited 0" test "$wrc" = 0
check "the worker authenticated with SASL/PLAIN over TLS (debug log)" \
    grep -q 'sasl_ssl://.*AUTH_REQ -> UP' "$tmp/worker.log"
msgs=x decoded=x dead=x
read -r msgs decoded dead < <(sed -n 's/.*stopped: \([0-9]*\) messages, \([0-9]*\) decoded, \([0-9]*\) dead letters.*/\1 \2 \3/p' "$tmp/worker.log") || true
say "worker counted: $msgs messages, $decoded decoded, $dead dead letters (produced: $sent events + 1 bad record)"
check "events decoded = events produced ($decoded = $sent), the bad record dead-lettered" \
    test "${decoded:-x}" = "$sent" -a "${msgs:-x}" = $((sent + 1)) -a "${dead:-x}" = 1

cur=$(radmin GET "ccd:{$model}:current")
check "live version v$cur = one per block (3)" test "$cur" = 3
for v in 1 2 3; do
    k=$((v - 1))
    mapfile -t meta < <(radmin HMGET "ccd:{$model}:v$v:meta" block events events_total users)
    hl=$(radmin HLEN "ccd:{$model}:v$v:user")
    check "v$v: block ${meta[0]}, ${meta[1]} events (produced ${per_block[$k]}), ${meta[3]} users = $hl vectors" \
        test "${meta[0]}" = "$k" -a "${meta[1]}" = "${per_block[$k]}" -a "${meta[3]}" = "$hl"
done
total=$(radmin HGET "ccd:{$model}:v3:meta" events_total)
check "events counted into blocks = produced ($total = $sent)" test "$total" = "$sent"
kc admin "$K_ADMIN" -C -t "$dlq" -e -f '%h\n' > "$tmp/dlq.txt" 2>/dev/null || true
check "the dead-letter topic holds the bad record ($(grep -c 'ccd.error' "$tmp/dlq.txt" || true) with a ccd.error header)" \
    test "$(grep -c 'ccd.error' "$tmp/dlq.txt")" = 1
mline() { grep -E "^$1 " "$tmp/metrics.txt" | awk '{print $2}'; }
[ -s "$tmp/metrics.txt" ] || bad "/metrics was never scraped"
check "/metrics: ccd_events_in_total $(mline ccd_events_in_total), ccd_blocks_done_total $(mline ccd_blocks_done_total), ccd_dead_letters_total $(mline ccd_dead_letters_total)" \
    test "$(mline ccd_events_in_total)" = $((sent + 1)) -a "$(mline ccd_blocks_done_total)" = 3 \
    -a "$(mline ccd_dead_letters_total)" = 1

# ---- reading back as the read-only Redis user ----
export CCD_SEC_REDIS_PW=$R_READER
"$bin/ccd-topk" --redis "127.0.0.1:$rport" --redis-user ccd-reader --redis-password-env CCD_SEC_REDIS_PW \
    --model "$model" --user 5 --k 5 > "$tmp/topk.txt" 2>&1 && rc=0 || rc=$?
check "ccd-topk as the read-only user (rc $rc: $(head -1 "$tmp/topk.txt"))" test "$rc" = 0 -a "$(wc -l < "$tmp/topk.txt")" = 6
"$bin/ccd-eval" --redis "127.0.0.1:$rport" --redis-user ccd-reader --redis-password-env CCD_SEC_REDIS_PW \
    --model "$model" --data "$tmp/data" --all > "$tmp/eval.txt" 2>&1 && rc=0 || rc=$?
check "ccd-eval --all as the read-only user (rc $rc, $(grep -c '^version' "$tmp/eval.txt" || true) versions scored)" \
    test "$rc" = 0 -a "$(grep -c '^version' "$tmp/eval.txt")" = 3
unset CCD_SEC_REDIS_PW
scan+=("$tmp/topk.txt" "$tmp/eval.txt")

# ---- the Redis ACLs restrict ----
expect_noperm() { # expect_noperm DESCRIPTION USER PASSWORD COMMAND...
    local what=$1 u=$2 p=$3 out; shift 3
    out=$(ras "$u" "$p" "$@" | head -1)
    check "redis $what refused ($out)" grep -q 'NOPERM\|NOAUTH' <<< "$out"
}
out=$(redis-cli -p "$rport" SET ccd:x 1 2>&1 | head -1)
check "redis: no credentials refused ($out)" grep -q 'NOAUTH' <<< "$out"
expect_noperm "ccd-worker: SET outside ccd:*" ccd-worker "$R_WORKER" SET other:x 1
# (GET is needed now: the owner record is seeded from the live version, docs/design-fencing.md)
expect_noperm "ccd-worker: HGETALL ccd:{shop}:owner (a command it does not need)" ccd-worker "$R_WORKER" HGETALL "ccd:{$model}:owner"
expect_noperm "ccd-worker: FLUSHALL" ccd-worker "$R_WORKER" FLUSHALL
expect_noperm "ccd-worker: KEYS *" ccd-worker "$R_WORKER" KEYS '*'
expect_noperm "ccd-worker: CONFIG GET" ccd-worker "$R_WORKER" CONFIG GET dir
expect_noperm "ccd-worker: PUBLISH outside &ccd:*" ccd-worker "$R_WORKER" PUBLISH other:updates 1
expect_noperm "ccd-reader: SET ccd:{shop}:current" ccd-reader "$R_READER" SET "ccd:{$model}:current" 99
expect_noperm "ccd-reader: UNLINK ccd:{shop}:current" ccd-reader "$R_READER" UNLINK "ccd:{$model}:current"
expect_noperm "ccd-reader: GET outside ccd:*" ccd-reader "$R_READER" GET other:x
check "the live version is untouched (v$(radmin GET "ccd:{$model}:current"))" test "$(radmin GET "ccd:{$model}:current")" = 3

# ---- failures that must be clear (and, for Kafka, fail fast) ----
# run_fail NAME TIMEOUT ARGS...: a worker run that should fail; sets rc and log
run_fail() {
    local name=$1 limit=$2; shift 2
    log=$tmp/$name.log
    start=$SECONDS
    OMP_WAIT_POLICY=passive timeout "$limit" "$bin/ccd-worker" -c "$src/configs/demo.ini" "${common[@]}" \
        -X "redis.user=ccd-worker" -X "redis.password=$R_WORKER" -X "checkpoint.dir=$tmp/ckpt-$name" "$@" \
        > "$tmp/$name.out" 2> "$log" && rc=0 || rc=$?
    scan+=("$log" "$tmp/$name.out")
    say "$name: exit $rc after $((SECONDS - start)) s: $(grep -m1 'error' "$log" | sed 's/^[^ ]* [a-z]* *//' | cut -c1-220)"
}
mapfile -t wrong_x < <(sasl ccd-worker "$K_WRONG" kafka.)
run_fail bad-password 60 -X "kafka.bootstrap.servers=$KAFKA_SASL_BOOTSTRAP" -X "kafka.group.id=$group" \
    "${wrong_x[@]}" --exit-when-idle 20000
check "a wrong Kafka password: exit 1 with an authentication error" \
    test "$rc" = 1 -a -n "$(grep 'Authentication failed' "$log" | grep -i 'invalid username or password')" \
    -a -n "$(grep '_AUTHENTICATION.*fatal' "$log")"
mapfile -t nogroup_x < <(sasl nogroup "$K_OTHER" kafka.)
run_fail no-group-acl 60 -X "kafka.bootstrap.servers=$KAFKA_SASL_BOOTSTRAP" -X "kafka.group.id=$group" \
    "${nogroup_x[@]}" --exit-when-idle 20000
check "a principal without Read on the group: exit 1 with GROUP_AUTHORIZATION_FAILED" \
    test "$rc" = 1 -a -n "$(grep 'GROUP_AUTHORIZATION_FAILED.*Group authorization failed' "$log")"
mapfile -t notopic_x < <(sasl notopic "$K_OTHER" kafka.)
run_fail no-topic-acl 60 -X "kafka.bootstrap.servers=$KAFKA_SASL_BOOTSTRAP" -X "kafka.group.id=$group2" \
    "${notopic_x[@]}" --exit-when-idle 20000
check "a principal without Read on the topic: exit 1 with TOPIC_AUTHORIZATION_FAILED" \
    test "$rc" = 1 -a -n "$(grep 'TOPIC_AUTHORIZATION_FAILED' "$log")"
# TLS: a client trusting another CA. librdkafka retries TLS errors (they can be transient), so
# the worker reads nothing; at --exit-when-idle, never having joined the group, it exits 1.
mapfile -t ssl_x < <(sasl ccd-worker "$K_WORKER" kafka.)
run_fail untrusted-ca 60 -X "kafka.bootstrap.servers=$KAFKA_SASL_SSL_BOOTSTRAP" -X "kafka.group.id=$group" \
    "${ssl_x[@]}" -X kafka.security.protocol=SASL_SSL -X "kafka.ssl.ca.location=$KAFKA_SSL_OTHER_CA" \
    -X kafka.ssl.endpoint.identification.algorithm=https --exit-when-idle 4000
check "a client that does not trust the broker's CA: certificate verify failed, 0 messages read, exit 1" \
    test "$rc" = 1 -a -n "$(grep 'SSL handshake failed.*certificate verify failed' "$log")" \
    -a -n "$(grep 'stopped: 0 messages' "$log")" -a -n "$(grep 'without ever joining the consumer group' "$log")"
# A principal without Write on the dead-letter topic: the dead letter is refused, the worker
# stops (exit 1) without committing past it; once the ACL is granted, a second run reads the
# record again and delivers it.
mapfile -t nodlq_x < <(sasl nodlq "$K_OTHER" kafka.)
nodlq_run() {
    run_fail "$1" 60 -X "kafka.bootstrap.servers=$KAFKA_SASL_BOOTSTRAP" -X "kafka.group.id=$group3" \
        -X "input.topics=$topic3" "${nodlq_x[@]}" --exit-when-idle 3000
}
nodlq_run no-dlq-acl
check "a principal without Write on the dead-letter topic: exit 1, the dead letter refused, not committed" \
    test "$rc" = 1 -a -n "$(grep 'dead-letter topic: TOPIC_AUTHORIZATION_FAILED.*fatal' "$log")"
acl --allow-principal User:nodlq --operation Write --topic "$dlq"
nodlq_run dlq-acl-granted
kc admin "$K_ADMIN" -C -t "$dlq" -e -f '%h\n' > "$tmp/dlq2.txt" 2>/dev/null || true
check "... Write granted: the record read again (exit $rc, $(grep -o '[0-9]* dead letters' "$log")), the dead-letter topic now holds $(grep -c 'ccd.error' "$tmp/dlq2.txt" || true) (1 + 1)" \
    test "$rc" = 0 -a -n "$(grep 'stopped: 1 messages, 0 decoded, 1 dead letters' "$log")" \
    -a "$(grep -c 'ccd.error' "$tmp/dlq2.txt")" = 2
# Redis: a wrong password is reported (the worker retries for a minute, then gives up: stop it)
log=$tmp/redis-wrong.log
OMP_WAIT_POLICY=passive "$bin/ccd-worker" -c "$src/configs/demo.ini" "${common[@]}" -X "checkpoint.dir=$tmp/ckpt-rw" \
    -X "kafka.bootstrap.servers=$KAFKA_SASL_BOOTSTRAP" "${wrong_x[@]}" -X redis.user=ccd-worker \
    -X "redis.password=$R_WRONG" > "$tmp/redis-wrong.out" 2> "$log" &
rwpid=$!
bg_pids+=("$rwpid")
wait_until 100 grep -q WRONGPASS "$log" || true
kill "$rwpid" 2>/dev/null || true
wait "$rwpid" 2>/dev/null || true
scan+=("$log" "$tmp/redis-wrong.out")
check "a wrong Redis password is refused and reported: $(grep -m1 -o 'AUTH.*WRONGPASS[^;]*' "$log" | cut -c1-120)" \
    grep -q 'AUTH (ACL user): WRONGPASS' "$log"

# ---- JSON logs, the secrets on the command line (-X), every librdkafka debug context ----
mapfile -t worker_x < <(sasl ccd-worker "$K_WORKER" kafka.)
start=$SECONDS
OMP_WAIT_POLICY=passive "$bin/ccd-worker" -c "$src/configs/demo.ini" "${common[@]}" \
    -X "kafka.bootstrap.servers=$KAFKA_SASL_BOOTSTRAP" -X "kafka.group.id=$group" "${worker_x[@]}" \
    -X redis.user=ccd-worker -X "redis.password=$R_WORKER" -X "checkpoint.dir=$tmp/ckpt" \
    -X log.level=debug -X log.format=json -X kafka.debug=all --exit-when-idle 3000 \
    > "$tmp/json.out" 2> "$tmp/json.log" &
jpid=$!
bg_pids+=("$jpid")
sleep 0.5
ps -ww -o args= -p "$jpid" > "$tmp/json.ps" 2>/dev/null || true
wait "$jpid" && rc=0 || rc=$?
scan+=("$tmp/json.out" "$tmp/json.log")
njson=$(python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    json.loads(line); n += 1
print(n)' "$tmp/json.log" 2>/dev/null || echo invalid)
check "JSON run (-X secrets, kafka.debug=all): exit $rc after $((SECONDS - start)) s, $njson lines, all JSON, $(grep -c '\[redacted\]' "$tmp/json.log" || true) librdkafka values [redacted]" \
    test "$rc" = 0 -a "$njson" != invalid -a "${njson:-0}" -gt 100

# ---- no secret anywhere ----
for f in "$tmp"/ckpt/*/* "$tmp"/ckpt/*; do [ -f "$f" ] && scan+=("$f"); done
lines=0 leaks=0
for f in "${scan[@]}"; do
    [ -f "$f" ] || { bad "missing output $f"; continue; }
    lines=$((lines + $(wc -l < "$f")))
    for s in "${secrets[@]}"; do
        if grep -aqF -- "$s" "$f"; then
            bad "secret ${s:0:9}... found in $(basename "$f"): $(grep -aF -- "$s" "$f" | head -2 | cut -c1-200)"
            leaks=$((leaks + 1))
        fi
    done
done
check "no password in ${#scan[@]} outputs ($lines lines: worker logs text/JSON at debug, --check, /metrics, checkpoints, ps of the config-file worker, tools)" \
    test "$leaks" = 0
# A note, not a check: what -X puts on the command line is visible to every local user in ps.
if grep -qF -- "$K_WORKER" "$tmp/json.ps" 2>/dev/null; then
    say "note: -X kafka.sasl.password=... / -X redis.password=... are visible in ps (/proc/PID/cmdline) to" \
        "every local user; pass secrets in a config file of mode 600 (as the main run here) instead"
fi

say "$((SECONDS - t0)) s in all"
if [ "$failures" -gt 0 ]; then
    say "$failures check(s) failed; the worker's log (last 30 lines):"
    tail -30 "$tmp/worker.log" | cut -c1-300 >&2 || true
    exit 1
fi
say "all checks passed"
