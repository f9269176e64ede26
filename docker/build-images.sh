#!/usr/bin/env bash
# Builds the images of docker/compose.yaml without any registry: nothing is pulled, every layer
# comes from Debian packages (deb.debian.org) and the Kafka jars CI already fetches.
#
#   bash docker/build-images.sh          make what is missing, rebuild what changed
#   bash docker/build-images.sh base kafka   only those (the base is always made when missing)
#   CCD_REBUILD_BASE=1 ...               remake the base image as well
#   CCD_BASE_IMAGE=NAME ...              another base tag (default ccd-base:bookworm)
#   CCD_IMAGE_UNIT_TESTS=0 ...           compile only the binaries, no unit tests in the image build
#
#   ccd-base:bookworm        debootstrap --variant=minbase bookworm, imported with `docker import`
#                            (the stand-in for debian:12-slim; made once, reused while it exists)
#   ccd-stream:VERSION, :latest  docker/Dockerfile on that base (x86-64-v3, user ccd)
#   ccd-kafka:KAFKA_VERSION  docker/kafka/Dockerfile: the tests/kafka jars and Debian's JRE 17
#   ccd-redis:7.0            docker/redis/Dockerfile: Debian's redis-server
#
# Starts dockerd when no daemon answers (root, or sudo: the daemon's log goes to
# /var/log/ccd-dockerd.log). Builds use the host's network (--network host): the only network
# they need is apt's. Prints the seconds each step took and the images' sizes. Needs the packages
# of `docker/setup.sh --test` and the jars of `(cd tests/kafka && mvn dependency:copy-dependencies)`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
log() { printf 'build-images: %s\n' "$*" >&2; }
# Debian's client (docker.io) matches its daemon; another docker earlier in PATH may not.
[ -x /usr/bin/docker ] && docker() { /usr/bin/docker "$@"; }
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)

base=${CCD_BASE_IMAGE:-ccd-base:bookworm}
mirror=${CCD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
version=$(sed -n 's/^project(ccd-stream VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
kafka_version=$(grep -o '<kafka.version>[^<]*' tests/kafka/pom.xml | sed 's/.*>//')
jobs=${CCD_IMAGE_JOBS:-2}
[ -n "$version" ] && [ -n "$kafka_version" ] || { log "cannot read the versions"; exit 1; }

# The daemon: started here when none answers (no systemd in CI containers), then waited for.
ensure_dockerd() {
    docker info >/dev/null 2>&1 && return 0
    command -v dockerd >/dev/null || { log "dockerd missing (bash docker/setup.sh --test)"; return 1; }
    if ! pgrep -x dockerd >/dev/null; then
        log "starting dockerd (log: /var/log/ccd-dockerd.log)"
        # a daemon killed without its shutdown (a machine's session ended) leaves its pid files;
        # dockerd refuses to start while one names a live process, whatever that process is now
        "${sudo[@]}" rm -f /var/run/docker.pid
        pgrep -x containerd >/dev/null || "${sudo[@]}" rm -f /var/run/docker/containerd/containerd.pid
        # detached (setsid, no inherited descriptors): it outlives this script and a CTest run
        # that started it, which would otherwise wait for its output pipes
        "${sudo[@]}" sh -c 'setsid nohup dockerd --host unix:///var/run/docker.sock \
            </dev/null >>/var/log/ccd-dockerd.log 2>&1 &'
    fi
    local i
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    log "dockerd did not answer within 60 s:"; "${sudo[@]}" tail -20 /var/log/ccd-dockerd.log >&2 || true
    return 1
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
size_of() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

# Debian 12 minbase from the mirror: what debian:12-slim is, without the registry. The package
# cache and lists are dropped (each Dockerfile runs apt-get update itself).
make_base() {
    if have_image "$base" && [ -z "${CCD_REBUILD_BASE:-}" ]; then
        log "$base present ($(size_of "$base")), reused"; return 0
    fi
    command -v debootstrap >/dev/null || { log "debootstrap missing (bash docker/setup.sh --test)"; return 1; }
    local dir t0=$SECONDS
    dir=$(mktemp -d /tmp/ccd-base.XXXXXX)
    "${sudo[@]}" debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1 ||
        { tail -20 "$dir.log" >&2; "${sudo[@]}" rm -rf "$dir" "$dir.log"; return 1; }
    "${sudo[@]}" sh -c "printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' '$mirror' '$mirror' > '$dir/etc/apt/sources.list'
        rm -rf '$dir'/var/cache/apt/archives/*.deb '$dir'/var/lib/apt/lists/* '$dir'/var/log/*.log"
    "${sudo[@]}" tar -C "$dir" -c . | docker import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base" >/dev/null
    "${sudo[@]}" rm -rf "$dir" "$dir.log"
    log "$base made in $((SECONDS - t0)) s ($(size_of "$base"))"
}

make_project() {
    local t0=$SECONDS
    docker build -q --network host --build-arg BASE="$base" --build-arg JOBS="$jobs" \
        --build-arg UNIT_TESTS="${CCD_IMAGE_UNIT_TESTS:-1}" \
        -f docker/Dockerfile -t "ccd-stream:$version" -t ccd-stream:latest . >/dev/null
    docker run --rm ccd-stream:latest ccd-worker --version >/dev/null ||
        { log "ccd-stream:latest: ccd-worker --version failed"; return 1; }
    log "ccd-stream:$version built in $((SECONDS - t0)) s ($(size_of ccd-stream:latest))"
}

make_kafka() {
    local t0=$SECONDS ctx jars=tests/kafka/target/dependency
    ls "$jars"/kafka_2.13-"$kafka_version".jar "$jars"/kafka-tools-"$kafka_version".jar >/dev/null 2>&1 ||
        { log "no Kafka $kafka_version jars in $jars: (cd tests/kafka && mvn -q -B dependency:copy-dependencies)"; return 1; }
    ctx=$(mktemp -d /tmp/ccd-kafka.XXXXXX)
    cp -r docker/kafka/. "$ctx/"
    mkdir "$ctx/libs" && cp "$jars"/*.jar "$ctx/libs/"
    docker build -q --network host --build-arg BASE="$base" -t "ccd-kafka:$kafka_version" "$ctx" >/dev/null ||
        { rm -rf "$ctx"; return 1; }
    rm -rf "$ctx"
    log "ccd-kafka:$kafka_version built in $((SECONDS - t0)) s ($(size_of "ccd-kafka:$kafka_version"))"
}

make_redis() {
    local t0=$SECONDS
    docker build -q --network host --build-arg BASE="$base" -t ccd-redis:7.0 docker/redis >/dev/null
    log "ccd-redis:7.0 built in $((SECONDS - t0)) s ($(size_of ccd-redis:7.0))"
}

ensure_dockerd
make_base
for what in "${@:-redis kafka stream}"; do
    for w in $what; do
        case "$w" in
        base) ;;
        redis) make_redis ;;
        kafka) make_kafka ;;
        stream) make_project ;;
        *) log "unknown image $w (base, redis, kafka, stream)"; exit 2 ;;
        esac
    done
done
