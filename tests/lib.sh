# Sourced by the test scripts (services.sh and the integration tests' scripts): what they share. Functions only; nothing runs on source.
#
# Ports and processes
#   port_open PORT           true when something answers on 127.0.0.1:PORT
#   free_port                prints a random port nothing answers on, from 20000 up to the kernel's
#                            ephemeral range (so that no client's outgoing connection holds the
#                            port a server is about to bind, or takes it while the server is
#                            stopped), or from LO..HI with CCD_SERVICES_PORTS=LO-HI. A race with
#                            another process remains possible: the server then fails to start
#                            and the test fails loudly.
#   wait_until TENTHS CMD... runs CMD every 0.1 s until it succeeds; false after TENTHS tries
#   stop_pid PID [TENTHS]    SIGTERM, up to TENTHS (default 100) tenths of a second to exit, SIGKILL
#
# A test script's scratch space and teardown (the integration tests' scripts)
#   test_scratch [TAIL]      out = a new temporary directory, pids = (): on exit every pid in pids
#                            is resumed (a test may have SIGSTOPped it) and SIGKILLed, and out is
#                            removed (CCD_KEEP=1 keeps it and says where)
#   fail MSG...              "FAIL (fail_context): MSG" (context when set), then the last TAIL
#                            (default 25) lines of every out/*.log; exits 1
#   wait_for SECONDS PID CMD...  CMD every 0.1 s until it succeeds; false when time runs out or
#                            PID (may be empty) has exited
#   rc ARGS...               redis-cli against REDIS_HOST:REDIS_PORT (the services fixture's)
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
# A schema registry: Apicurio Registry 2.4.2 (in-memory H2 storage; the Confluent-compatible API
# under /apis/ccompat/v7), assembled from Maven Central by tests/registry/pom.xml
#   registry_jar                        prints the runner jar's path, building it with mvn the
#                                       first time (kept in ~/.cache/ccd-stream/registry-<hash of
#                                       tests/registry's pom and source>, or $CCD_CACHE_DIR)
#   registry_launch DIR PORT SECONDS    starts it in the background on 127.0.0.1:PORT (pid in
#                                       DIR/pid, log in DIR/registry.log) and waits until the
#                                       Confluent API answers; prints the seconds it took, or the
#                                       log's tail (stderr) and fails
#
# A worker configuration's shared sections (for a heredoc: $(replay_window_ini))
#   replay_window_ini                   [window]: ccd-replay's blocks, one per day of event time
#   worker_ini GROUP TOPICS PREFIX      what the integration tests' workers share: [kafka] (6 s
#                                       session), [input] (reader schema, a large buffer bound),
#                                       the replay windows, [holdout], [ccd] seed 1 with base
#                                       patience 0, [redis] keeping every version; callers add
#                                       engine_ini, [checkpoint], [worker] and their own keys
#                                       (a section may appear again: the keys add up)
#   engine_ini TEACHERS DIM BASE KD STUDENT TEACHER
#                                       [ccd] teachers and student_dim, and the epochs of the
#                                       four stages ([ccd.base] [ccd.kd] [ccd.student] [ccd.teacher])

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

test_scratch() {
    out=$(mktemp -d)
    pids=()
    fail_tail=${1:-25}
    trap scratch_cleanup EXIT
}

scratch_cleanup() {
    local p
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${CCD_KEEP:-}" ]; then echo "kept $out" >&2; else rm -rf "$out"; fi
}

fail() {
    local f
    echo "FAIL${fail_context:+ ($fail_context)}: $*" >&2
    for f in "$out"/*.log; do
        [ -f "$f" ] || continue
        echo "== $f" >&2
        tail -n "${fail_tail:-25}" "$f" >&2
    done
    exit 1
}

wait_for() {
    local n=$(($1 * 10)) pid=$2
    shift 2
    for _ in $(seq 1 "$n"); do
        "$@" && return 0
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}

rc() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }

free_port() {
    local p i lo=20000 n=30000 eph
    eph=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 0)
    [ "${eph:-0}" -gt 21000 ] && n=$((eph - lo))
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

registry_jar() {
    local dir key cache
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/registry"
    # the Quarkus build takes 0.5-2 minutes: its result is kept per content of the pom and the
    # Java source, like ~/.m2 keeps the jars it is made of
    key=$(cat "$dir/pom.xml" "$dir"/src/main/java/io/ccdstream/testregistry/*.java | sha256sum | cut -c1-16)
    cache="${CCD_CACHE_DIR:-$HOME/.cache/ccd-stream}/registry-$key"
    if [ ! -f "$cache/ccd-stream-test-registry-1.0-runner.jar" ]; then
        printf 'building the Apicurio test registry with mvn (tests/registry)\n' >&2
        (cd "$dir" && mvn -q -B package -DskipTests) >&2 || return 1
        mkdir -p "$cache.tmp"
        cp -r "$dir/target/ccd-stream-test-registry-1.0-runner.jar" "$dir/target/lib" "$cache.tmp/"
        rm -rf "$cache" && mv "$cache.tmp" "$cache"
    fi
    echo "$cache/ccd-stream-test-registry-1.0-runner.jar"
}

registry_launch() {
    local dir=$1 port=$2 seconds=$3 jar i
    jar=$(registry_jar) || return 1
    # C1 only and one GC thread: a short-lived test server on a small, shared host starts faster
    HTTP_PORT=$port nohup java -Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.datasource.jdbc.initial-size=1 \
        -Dquarkus.datasource.jdbc.min-size=1 -jar "$jar" >"$dir/registry.log" 2>&1 &
    echo $! > "$dir/pid"
    for ((i = 1; i <= seconds * 4; i++)); do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            printf 'the registry exited during start-up:\n' >&2; tail -30 "$dir/registry.log" >&2; return 1
        fi
        if curl -sf "http://127.0.0.1:$port/apis/ccompat/v7/subjects" >/dev/null 2>&1; then
            echo $((i / 4)); return 0
        fi
        sleep 0.25
    done
    printf 'the registry did not answer in %s s:\n' "$seconds" >&2; tail -30 "$dir/registry.log" >&2
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

worker_ini() {
    cat <<INI
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = $1
session.timeout.ms = 6000
heartbeat.interval.ms = 1000
[input]
topics = $2
reader_schema = $src/schemas/interaction.avsc
max_buffered_events = 1000000
$(replay_window_ini)
[holdout]
fraction = 0.1
seed = 0
[ccd]
seed = 1
[ccd.base]
patience = 0
[redis]
host = $REDIS_HOST
port = $REDIS_PORT
prefix = $3
keep_versions = 1000
INI
}

engine_ini() {
    printf '[ccd]\nteachers = %s\nstudent_dim = %s\n' "$1" "$2"
    printf '[ccd.base]\nepochs = %s\n[ccd.kd]\nepochs = %s\n[ccd.student]\nepochs = %s\n[ccd.teacher]\nepochs = %s\n' \
        "$3" "$4" "$5" "$6"
}
