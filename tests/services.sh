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

# shellcheck source=lib.sh
source "$here/lib.sh"

start_kafka() {
    local port cport dir="$state/kafka"
    port=$(free_port); cport=$(free_port)
    while [ "$cport" = "$port" ]; do cport=$(free_port); done
    mkdir -p "$dir/data"
    {
        kafka_kraft_properties "$cport" "$dir/data" true
        cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
PROPS
    } > "$dir/server.properties"
    kafka_log4j_properties > "$dir/log4j.properties"
    kafka_format "$dir" || return 1
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$port" >> "$state/services.env"
    launch_kafka "$port"
}

# Start the broker of $state/kafka (formatted, configured) and wait until it serves on port $1.
launch_kafka() {
    local secs
    secs=$(kafka_launch "$state/kafka" "$1" 60) || return 1
    log "Kafka 3.9 (KRaft) ready on 127.0.0.1:$1 after $secs s"
}

start_redis() {
    local port
    port=$(free_port); mkdir -p "$state/redis"
    echo "REDIS_HOST=127.0.0.1" >> "$state/services.env"
    echo "REDIS_PORT=$port" >> "$state/services.env"
    launch_redis "$port"
}

redis_answers() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }
# true once redis-server (pid $1; may be empty) has exited and nothing answers on port $2
redis_stopped() { ! { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; } && ! port_open "$2"; }
port_closed() { ! port_open "$1"; }

# Start redis-server on port $1 with its data in $state/redis (it loads dump.rdb if there is one).
launch_redis() {
    local port=$1 dir="$state/redis"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
        --daemonize yes --pidfile "$dir/pid" --logfile "$dir/redis.log" >/dev/null
    if wait_until 100 redis_answers "$port"; then
        log "redis-server ready on 127.0.0.1:$port"; return 0
    fi
    log "redis-server did not start:"; tail -20 "$dir/redis.log" >&2
    return 1
}

stop_pidfile() { [ ! -f "$1" ] || stop_pid "$(cat "$1")" "${2:-100}"; }

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
    wait_until 100 redis_stopped "$pid" "$port" || true
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
    wait_until 100 port_closed "${port##*:}" || true
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
