# Sourced by the test scripts that start servers (services.sh, kafka_sasl.sh, security.sh,
# soak.sh, valgrind_e2e.sh): free loopback ports and the Kafka broker's jars.
#
# port_open PORT   true when something answers on 127.0.0.1:PORT
# free_port        prints a random port nothing answers on, from 20000..49999, or from LO..HI with
#                  CCD_SERVICES_PORTS=LO-HI (tests/outage.sh keeps below the ephemeral range so
#                  that no client's outgoing connection takes a port while its server is stopped).
#                  A race with another process remains possible: the server then fails to start
#                  and the test fails loudly.
# kafka_jars       prints the broker's classpath (tests/kafka/target/dependency/*), fetching the
#                  jars with mvn the first time

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

kafka_jars() {
    local dep
    dep="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka/target/dependency"
    if ! ls "$dep"/kafka_2.13-*.jar >/dev/null 2>&1; then
        printf 'fetching Kafka broker jars with mvn\n' >&2
        (cd "$dep/../.." && mvn -q -B dependency:copy-dependencies) >&2
    fi
    echo "$dep/*"
}
