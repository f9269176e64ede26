#!/usr/bin/env bash
# Test services: a real Apache Kafka 3.9 broker in KRaft mode and a real redis-server, each on a
# free loopback port with its data in a temporary directory.
#
#   tests/services.sh start STATE_DIR   start both, write STATE_DIR/services.env, wait until ready
#   tests/services.sh stop  STATE_DIR   stop both and delete their data
#
# For outage tests (tests/outage.sh), after `start`, on the same ports and data directories:
#   tests/services.sh stop-redis  STATE_DIR   save the dataset (SHUTDOWN SAVE: an RDB in its
#                                            directory) and stop redis-server
#   tests/services.sh start-redis STATE_DIR   start it again; it loads the saved dataset
#   tests/services.sh stop-kafka  STATE_DIR   stop the broker (SIGTERM: controlled shutdown)
#   tests/services.sh start-kafka STATE_DIR   start it again on its log directory, wait until ready
#
# services.env holds KAFKA_BOOTSTRAP=127.0.0.1:PORT and REDIS_HOST/REDIS_PORT; the integration
# tests read it (CTest passes its path in CCD_SERVICES_ENV). The broker jars come from Maven
# Central through tests/kafka/pom.xml. A service that does not come up is an error (exit 1):
# the tests that need it then fail, they are never skipped.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage="usage: services.sh start|stop|stop-redis|start-redis|stop-kafka|start-kafka STATE_DIR"
cmd=${1:?$usage}
state=${2:?$usage}

log() { printf 'services: %s\n' "$*" >&2; }

# shellcheck source=ports.sh
source "$here/ports.sh"

start_kafka() {
    local cp port cport dir id
    cp=$(kafka_jars)
    port=$(free_port); cport=$(free_port)
    while [ "$cport" = "$port" ]; do cport=$(free_port); done
    dir="$state/kafka"; mkdir -p "$dir/data"
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
PROPS
    cat > "$dir/log4j.properties" <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
PROPS
    local jvm=(java -Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true
               "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$cp")
    id=$("${jvm[@]}" kafka.tools.StorageTool random-uuid)
    "${jvm[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
        >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; return 1; }
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$port" >> "$state/services.env"
    launch_kafka "$port"
}

# Start the broker of $state/kafka (formatted, configured) and wait until it serves on port $1.
launch_kafka() {
    local port=$1 dir="$state/kafka" cp
    cp=$(kafka_jars)
    local jvm=(java -Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true
               "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$cp")
    nohup "${jvm[@]}" kafka.Kafka "$dir/server.properties" >"$dir/broker.log" 2>&1 &
    echo $! > "$dir/pid"
    # Ready = the port accepts connections and the broker logged that it started serving.
    local i
    for i in $(seq 1 240); do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            log "Kafka exited during start-up:"; tail -30 "$dir/broker.log" >&2; return 1
        fi
        if port_open "$port" && grep -q "Kafka Server started\|\[BrokerServer id=1\] Transition from STARTING to STARTED" "$dir/broker.log"; then
            log "Kafka 3.9 (KRaft) ready on 127.0.0.1:$port after $((i / 4)) s"; return 0
        fi
        sleep 0.25
    done
    log "Kafka did not become ready in 60 s:"; tail -30 "$dir/broker.log" >&2
    return 1
}

start_redis() {
    local port
    port=$(free_port); mkdir -p "$state/redis"
    echo "REDIS_HOST=127.0.0.1" >> "$state/services.env"
    echo "REDIS_PORT=$port" >> "$state/services.env"
    launch_redis "$port"
}

# Start redis-server on port $1 with its data in $state/redis (it loads dump.rdb if there is one).
launch_redis() {
    local port=$1 dir="$state/redis" i
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
        --daemonize yes --pidfile "$dir/pid" --logfile "$dir/redis.log" >/dev/null
    for i in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            log "redis-server ready on 127.0.0.1:$port"; return 0
        fi
        sleep 0.1
    done
    log "redis-server did not start:"; tail -20 "$dir/redis.log" >&2
    return 1
}

stop_pidfile() {
    local f=$1 tenths=${2:-100} pid i
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 "$tenths"); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

# A value of services.env (the ports of a started state directory).
env_value() {
    local v
    v=$(sed -n "s/^$1=//p" "$state/services.env" 2>/dev/null | tail -n 1)
    [ -n "$v" ] || { log "$state/services.env has no $1 (run: services.sh start $state)"; return 1; }
    echo "$v"
}

case "$cmd" in
start)
    command -v java >/dev/null || { log "java not found (run scripts/setup.sh --test)"; exit 1; }
    command -v redis-server >/dev/null || { log "redis-server not found (run scripts/setup.sh)"; exit 1; }
    rm -rf "$state"; mkdir -p "$state"; : > "$state/services.env"
    start_redis || { "$0" stop "$state"; exit 1; }
    start_kafka || { "$0" stop "$state"; exit 1; }
    ;;
stop)
    stop_pidfile "$state/kafka/pid"
    stop_pidfile "$state/redis/pid"
    rm -rf "$state/kafka/data" "$state/redis"
    ;;
stop-redis)
    port=$(env_value REDIS_PORT) || exit 1
    pid=$(cat "$state/redis/pid" 2>/dev/null || true)
    # SHUTDOWN SAVE writes the dataset to $state/redis/dump.rdb even with saving disabled
    redis-cli -h 127.0.0.1 -p "$port" shutdown save >/dev/null 2>&1 || true
    for i in $(seq 1 100); do
        { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || port_open "$port" || break
        sleep 0.1
    done
    if port_open "$port"; then log "redis-server on port $port did not stop"; exit 1; fi
    rm -f "$state/redis/pid"
    [ -s "$state/redis/dump.rdb" ] || { log "redis-server did not save its dataset"; exit 1; }
    log "redis-server on 127.0.0.1:$port stopped (dataset saved)"
    ;;
start-redis)
    port=$(env_value REDIS_PORT) || exit 1
    if port_open "$port"; then log "port $port is in use: stop-redis first"; exit 1; fi
    launch_redis "$port" || exit 1
    ;;
stop-kafka)
    port=$(env_value KAFKA_BOOTSTRAP) || exit 1
    stop_pidfile "$state/kafka/pid" 600   # a controlled shutdown takes a few seconds
    for i in $(seq 1 100); do port_open "${port##*:}" || break; sleep 0.1; done
    if port_open "${port##*:}"; then log "Kafka on $port did not stop"; exit 1; fi
    rm -f "$state/kafka/pid"
    log "Kafka on $port stopped"
    ;;
start-kafka)
    port=$(env_value KAFKA_BOOTSTRAP) || exit 1
    [ -f "$state/kafka/server.properties" ] || { log "no broker in $state (run: services.sh start)"; exit 1; }
    if port_open "${port##*:}"; then log "port ${port##*:} is in use: stop-kafka first"; exit 1; fi
    mv -f "$state/kafka/broker.log" "$state/kafka/broker.log.1" 2>/dev/null || true
    launch_kafka "${port##*:}" || exit 1
    ;;
*) echo "$usage" >&2; exit 2 ;;
esac
