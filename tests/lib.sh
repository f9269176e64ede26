# Sourced by the test scripts (services.sh, kafka_sasl.sh, security.sh, outage.sh, soak.sh,
# valgrind_e2e.sh, crash_consistency.sh): what they share. Functions only; nothing runs on source.
#
# Ports and processes
#   port_open PORT           true when something answers on 127.0.0.1:PORT
#   free_port                prints a random port nothing answers on, from 20000..49999, or from
#                            LO..HI with CCD_SERVICES_PORTS=LO-HI (tests/outage.sh keeps below the
#                            ephemeral range so that no client's outgoing connection takes a port
#                            while its server is stopped). A race with another process remains
#                            possible: the server then fails to start and the test fails loudly.
#   wait_until TENTHS CMD... runs CMD every 0.1 s until it succeeds; false after TENTHS tries
#   stop_pid PID [TENTHS]    SIGTERM, up to TENTHS (default 100) tenths of a second to exit, SIGKILL
#
# A single-node Kafka broker (KRaft, broker and controller in one JVM) whose files live in one
# directory DIR: server.properties, log4j.properties (written by the caller, with the help of the
# two *_properties functions), format.log, broker.log, pid.
#   kafka_jars                          prints the broker's classpath (tests/kafka/target/
#                                       dependency/*), fetching the jars with mvn the first time
#   kafka_kraft_properties CPORT LOGDIR AUTO_CREATE
#                                       the server.properties lines of a single node: roles, the
#                                       controller on 127.0.0.1:CPORT, storage in LOGDIR, internal
#                                       topics with one replica, auto.create.topics.enable
#   kafka_log4j_properties [LINE...]    log4j.properties: warnings, the broker's start-up, LINEs
#   kafka_tool DIR CLASS ARGS...        runs a Kafka command-line class (StorageTool, AclCommand)
#   kafka_format DIR                    formats the log directory of DIR/server.properties
#   kafka_launch DIR PORT SECONDS       starts the broker in the background and waits until it
#                                       serves on 127.0.0.1:PORT; prints the seconds it took, or
#                                       the broker log's tail (stderr) and fails
#
# A worker configuration's shared sections (for a heredoc: $(replay_window_ini))
#   replay_window_ini                   [window]: ccd-replay's blocks, one per day of event time
#   engine_ini TEACHERS DIM BASE KD STUDENT TEACHER
#                                       [ccd] teachers and student_dim, and the epochs of the
#                                       four stages ([ccd.base] [ccd.kd] [ccd.student] [ccd.teacher])

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local p i lo=20000 n=30000
    if [ -n "${CCD_SERVICES_PORTS:-}" ]; then
        lo=${CCD_SERVICES_PORTS%-*}; n=$(( ${CCD_SERVICES_PORTS#*-} - lo + 1 ))
    fi
    for i in $(seq 1 50); do
        p=$(( (RANDOM * 32768 + RANDOM) % n + lo ))
        port_open "$p" || { echo "$p"; return 0; }
    done
    return 1
}

wait_until() {
    local tenths=$1 i
    shift
    for ((i = 0; i < tenths; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

stop_pid() {
    local pid=$1 tenths=${2:-100} i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < tenths; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

kafka_jars() {
    local dep
    dep="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka/target/dependency"
    if ! ls "$dep"/kafka_2.13-*.jar >/dev/null 2>&1; then
        printf 'fetching Kafka broker jars with mvn\n' >&2
        (cd "$dep/../.." && mvn -q -B dependency:copy-dependencies) >&2
    fi
    echo "$dep/*"
}

kafka_kraft_properties() {
    cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$1
controller.listener.names=CONTROLLER
log.dirs=$2
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=$3
PROPS
}

kafka_log4j_properties() {
    cat <<'PROPS'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
PROPS
    [ $# -eq 0 ] || printf '%s\n' "$@"
}

# the command-line tools start often and run briefly: a small heap, no optimising JIT
kafka_tool() {
    local dir=$1
    shift
    java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$(kafka_jars)" "$@"
}

kafka_format() {
    local dir=$1 id
    id=$(kafka_tool "$dir" kafka.tools.StorageTool random-uuid) || return 1
    kafka_tool "$dir" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
        >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; return 1; }
}

kafka_launch() {
    local dir=$1 port=$2 seconds=$3 i
    nohup java -Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true \
        "-Dlog4j.configuration=file:$dir/log4j.properties" -cp "$(kafka_jars)" \
        kafka.Kafka "$dir/server.properties" >"$dir/broker.log" 2>&1 &
    echo $! > "$dir/pid"
    # ready = the port accepts connections and the broker logged that it started serving
    for ((i = 1; i <= seconds * 4; i++)); do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            printf 'Kafka (%s) exited during start-up:\n' "$dir" >&2; tail -30 "$dir/broker.log" >&2; return 1
        fi
        if port_open "$port" &&
            grep -q "Kafka Server started\|\[BrokerServer id=1\] Transition from STARTING to STARTED" "$dir/broker.log"; then
            echo $((i / 4)); return 0
        fi
        sleep 0.25
    done
    printf 'Kafka (%s) did not become ready in %s s:\n' "$dir" "$seconds" >&2; tail -30 "$dir/broker.log" >&2
    return 1
}

replay_window_ini() {
    cat <<'INI'
[window]
; ccd-replay's event times: block k in [1600000000000 + k * 86400000, ...); block 0 closes at the
; first event of block 1, then one window per day
bootstrap_until_ms = 1600086400000
duration_ms = 86400000
idle_ms = 0
INI
}

engine_ini() {
    printf '[ccd]\nteachers = %s\nstudent_dim = %s\n' "$1" "$2"
    printf '[ccd.base]\nepochs = %s\n[ccd.kd]\nepochs = %s\n[ccd.student]\nepochs = %s\n[ccd.teacher]\nepochs = %s\n' \
        "$3" "$4" "$5" "$6"
}
