#!/usr/bin/env bash
# A secured test broker: Apache Kafka 3.9 in KRaft combined mode (the jars of tests/kafka/pom.xml,
# as tests/services.sh uses) where every listener authenticates with SASL/PLAIN and the
# StandardAuthorizer enforces ACLs (allow.everyone.if.no.acl.found=false, super.users=User:admin).
# Used by tests/security.sh.
#
#   tests/kafka_sasl.sh start STATE_DIR USER=PASSWORD...  start, wait until ready, write
#                                                         STATE_DIR/kafka_sasl.env
#   tests/kafka_sasl.sh stop  STATE_DIR                   stop it and delete its data
#   tests/kafka_sasl.sh acl   STATE_DIR ARGS...           kafka.admin.AclCommand ARGS as admin
#
# Listeners: CLIENT (SASL_PLAINTEXT) and SECURE (SASL_SSL; a test CA made with openssl signs the
# broker's certificate for 127.0.0.1), both SASL/PLAIN, and the controller's (SASL_PLAINTEXT).
# The users are the USER=PASSWORD arguments; one must be admin: the broker authenticates to its
# own controller and to itself as admin, the only super user. kafka_sasl.env holds
# KAFKA_SASL_BOOTSTRAP and KAFKA_SASL_SSL_BOOTSTRAP (127.0.0.1:PORT), KAFKA_SSL_CA (the CA to
# trust) and KAFKA_SSL_OTHER_CA (a CA that signed nothing). The passwords live in STATE_DIR
# (mode 700) only. A broker that does not come up is an error (exit 1), never a skip.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:?usage: kafka_sasl.sh start|stop|acl STATE_DIR ...}
state=${2:?usage: kafka_sasl.sh start|stop|acl STATE_DIR ...}
shift 2

log() { printf 'kafka_sasl: %s\n' "$*" >&2; }
# shellcheck source=ports.sh
source "$here/ports.sh"

jvm() {
    java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        "-Dlog4j.configuration=file:$state/log4j.properties" -cp "$(kafka_jars)" "$@"
}

# A test CA, the broker's certificate for 127.0.0.1 signed by it (in a PKCS12 keystore with a
# random password), and a second CA that signed nothing (a client trusting only it must fail).
make_certs() {
    command -v openssl >/dev/null || { log "openssl not found (the SASL_SSL listener needs it)"; return 1; }
    local t="$state/tls" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    mkdir -p "$t"
    kspw=$(openssl rand -hex 16)
    {
        openssl req -x509 "${ec[@]}" -keyout "$t/ca.key" -out "$t/ca.pem" -days 2 -subj "/CN=ccd-test-ca" &&
        openssl req -x509 "${ec[@]}" -keyout "$t/other-ca.key" -out "$t/other-ca.pem" -days 2 \
            -subj "/CN=ccd-other-ca" &&
        openssl req "${ec[@]}" -keyout "$t/broker.key" -out "$t/broker.csr" -subj "/CN=127.0.0.1" &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$t/ext.cnf" &&
        openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
            -out "$t/broker.pem" -days 2 -extfile "$t/ext.cnf" &&
        openssl pkcs12 -export -in "$t/broker.pem" -inkey "$t/broker.key" -certfile "$t/ca.pem" \
            -name broker -out "$t/broker.p12" -passout "pass:$kspw"
    } > "$t/openssl.log" 2>&1 || { log "making the test certificates failed:"; cat "$t/openssl.log" >&2; return 1; }
}

start() {
    command -v java >/dev/null || { log "java not found (run scripts/setup.sh --test)"; return 1; }
    local admin_pw= users= kv u p kspw
    for kv in "$@"; do
        u=${kv%%=*} p=${kv#*=}
        [[ $u =~ ^[A-Za-z0-9_.-]+$ && $p != *'"'* && $p != *'\'* ]] || { log "bad user spec for '$u'"; return 1; }
        users+=" user_$u=\"$p\""
        [ "$u" = admin ] && admin_pw=$p
    done
    [ -n "$admin_pw" ] || { log "an admin=PASSWORD user is required"; return 1; }
    rm -rf "$state"; mkdir -p "$state/data"; chmod 700 "$state"
    local port sport cport
    port=$(free_port); sport=$(free_port); cport=$(free_port)
    while [ "$sport" = "$port" ]; do sport=$(free_port); done
    while [ "$cport" = "$port" ] || [ "$cport" = "$sport" ]; do cport=$(free_port); done
    make_certs || return 1
    local jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$admin_pw\"$users;"
    (umask 077; cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=CLIENT://127.0.0.1:$port,SECURE://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=CLIENT://127.0.0.1:$port,SECURE://127.0.0.1:$sport
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,SECURE:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENT
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.client.plain.sasl.jaas.config=$jaas
listener.name.controller.plain.sasl.jaas.config=$jaas
listener.name.secure.plain.sasl.jaas.config=$jaas
ssl.keystore.type=PKCS12
ssl.keystore.location=$state/tls/broker.p12
ssl.keystore.password=$kspw
ssl.key.password=$kspw
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin
log.dirs=$state/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    cat > "$state/admin.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw";
PROPS
    )
    cat > "$state/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
log4j.logger.kafka.authorizer.logger=INFO
PROPS
    local id
    id=$(jvm kafka.tools.StorageTool random-uuid)
    jvm kafka.tools.StorageTool format -t "$id" -c "$state/server.properties" >"$state/format.log" 2>&1 ||
        { cat "$state/format.log" >&2; return 1; }
    nohup java -Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true \
        "-Dlog4j.configuration=file:$state/log4j.properties" -cp "$(kafka_jars)" \
        kafka.Kafka "$state/server.properties" >"$state/broker.log" 2>&1 &
    echo $! > "$state/pid"
    { echo "KAFKA_SASL_BOOTSTRAP=127.0.0.1:$port"
      echo "KAFKA_SASL_SSL_BOOTSTRAP=127.0.0.1:$sport"
      echo "KAFKA_SSL_CA=$state/tls/ca.pem"
      echo "KAFKA_SSL_OTHER_CA=$state/tls/other-ca.pem"; } > "$state/kafka_sasl.env"
    local i
    for i in $(seq 1 360); do
        if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
            log "Kafka (SASL) exited during start-up:"; tail -30 "$state/broker.log" >&2; return 1
        fi
        if port_open "$port" && grep -q "Kafka Server started\|\[BrokerServer id=1\] Transition from STARTING to STARTED" "$state/broker.log"; then
            log "Kafka 3.9 (KRaft, SASL/PLAIN, StandardAuthorizer) ready: SASL_PLAINTEXT 127.0.0.1:$port, SASL_SSL 127.0.0.1:$sport, after $((i / 4)) s"
            return 0
        fi
        sleep 0.25
    done
    log "Kafka (SASL) did not become ready in 90 s:"; tail -30 "$state/broker.log" >&2
    return 1
}

stop() {
    local f="$state/pid" pid
    if [ -f "$f" ]; then
        pid=$(cat "$f")
        if kill "$pid" 2>/dev/null; then
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$state"
}

case "$cmd" in
start) start "$@" || { stop; exit 1; } ;;
stop) stop ;;
acl)
    # shellcheck disable=SC1091
    source "$state/kafka_sasl.env"
    jvm kafka.admin.AclCommand --bootstrap-server "$KAFKA_SASL_BOOTSTRAP" \
        --command-config "$state/admin.properties" "$@"
    ;;
*) echo "usage: kafka_sasl.sh start|stop|acl STATE_DIR ..." >&2; exit 2 ;;
esac
