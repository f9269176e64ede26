#!/usr/bin/env bash
# Installs what ccd-stream needs on Debian 12, idempotently: only missing packages are
# installed, and apt-get update runs only when something is missing. Used by the README's
# commands, by tests/run.sh (CI) and by the Dockerfile.
#
#   docker/setup.sh          build and runtime dependencies
#   docker/setup.sh --test   also what the tests need: Java and Maven for the Kafka broker
#                            (its jars come from Maven Central), valgrind, kcat (benchmarks),
#                            python3 (+ yaml: the compose check), chromium (the HTML
#                            report screenshot test), openssl (test certificates) and clang
#                            with libFuzzer and OpenMP (the fuzz targets), clang-format and
#                            cppcheck (tests/lint.sh), prometheus (promtool checks /metrics),
#                            docker.io, docker-compose and debootstrap (the images and the
#                            compose stack: docker/build-images.sh starts dockerd itself)
#   docker/setup.sh --runtime  only the shared libraries the binaries load (the Docker
#                            image's final stage), plus curl for its healthcheck
set -euo pipefail

if [ "${1:-}" = "--runtime" ]; then
    packages=(librdkafka1 libavro23 libhiredis0.14 libopenblas0-pthread libinih1 libmicrohttpd12 zlib1g
              libjansson4 libcurl4 libgomp1 ca-certificates curl)
else
    packages=(
        build-essential cmake pkg-config
        librdkafka-dev      # Kafka client
        libavro-dev         # Avro wire format
        libhiredis-dev      # Redis client
        libopenblas-dev     # dense math (SGEMM)
        libinih-dev         # INI config files
        libcmocka-dev       # unit tests
        libmicrohttpd-dev   # the Prometheus /metrics endpoint
        zlib1g-dev          # CRC-32 of checkpoints
        libjansson-dev      # JSON: reports, JSON logs
        libcurl4-openssl-dev # the schema registry client (HTTPS)
        curl                # the demo and tests scrape /metrics
        redis-server        # the demo's and tests' Redis
    )
    if [ "${1:-}" = "--test" ]; then
        packages+=(openjdk-17-jre-headless maven valgrind kcat python3 python3-yaml chromium
                   openssl                            # the TLS certificates of tests/kafka_sasl.sh
                   clang libclang-rt-dev libomp-dev   # the fuzz build (tests/fuzz/run.sh)
                   clang-format cppcheck              # tests/lint.sh
                   prometheus                         # promtool: the /metrics exposition check
                   docker.io docker-compose debootstrap)  # tests/compose.sh (docker/build-images.sh)
    fi
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#packages[@]} packages present"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
