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
# shellcheck source=lib.sh
source "$here/lib.sh"

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
    (umask 077; {
        kafka_kraft_properties "$cport" "$state/data" false
        cat <<PROPS
listeners=CLIENT://127.0.0.1:$port,SECURE://127.0.0.1:$sport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=CLIENT://127.0.0.1:$port,SECURE://127.0.0.1:$sport
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,SECURE:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENT
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
PROPS
    } > "$state/server.properties"
    cat > "$state/admin.properties" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_pw";
PROPS
    )
    kafka_log4j_properties log4j.logger.kafka.authorizer.logger=INFO > "$state/log4j.properties"
    kafka_format "$state" || return 1
    { echo "KAFKA_SASL_BOOTSTRAP=127.0.0.1:$port"
      echo "KAFKA_SASL_SSL_BOOTSTRAP=127.0.0.1:$sport"
      echo "KAFKA_SSL_CA=$state/tls/ca.pem"
      echo "KAFKA_SSL_OTHER_CA=$state/tls/other-ca.pem"; } > "$state/kafka_sasl.env"
    local secs
    secs=$(kafka_launch "$state" "$port" 90) || return 1
    log "Kafka 3.9 (KRaft, SASL/PLAIN, StandardAuthorizer) ready: SASL_PLAINTEXT 127.0.0.1:$port, SASL_SSL 127.0.0.1:$sport, after $secs s"
}

stop() {
    [ ! -f "$state/pid" ] || stop_pid "$(cat "$state/pid")" 150
    rm -rf "$state"
}

case "$cmd" in
start) start "$@" || { stop; exit 1; } ;;
stop) stop ;;
acl)
    # shellcheck disable=SC1091
    source "$state/kafka_sasl.env"
    kafka_tool "$state" kafka.admin.AclCommand --bootstrap-server "$KAFKA_SASL_BOOTSTRAP" \
        --command-config "$state/admin.properties" "$@"
    ;;
*) echo "usage: kafka_sasl.sh start|stop|acl STATE_DIR ..." >&2; exit 2 ;;
esac
