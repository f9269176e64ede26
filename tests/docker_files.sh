#!/usr/bin/env bash
# Keeps docker/ in step with what CI builds and runs (no Docker daemon is needed):
#   - every binary the Dockerfile copies is built by CMake, and the runtime stage's libraries
#     (docker/setup.sh --runtime) cover what those binaries load;
#   - the compose file parses, its Kafka image is the version the tests run (tests/kafka/pom.xml),
#     and each worker's command line passes ccd-worker --check with the image's paths;
#   - the configs that ship in the image (configs/*.ini for the worker) pass --check.
# Usage: docker_files.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. Dockerfile binaries exist in this build.
bins=$(grep -o '/src/build/ccd-[a-z-]*' "$src/docker/Dockerfile" | sed 's|/src/build/||' | sort -u)
[ -n "$bins" ] || fail "no binaries found in the Dockerfile"
for b in $bins; do [ -x "$build/$b" ] || fail "Dockerfile copies $b, which the build does not make"; done

# 2. Runtime packages provide every shared library the binaries load (outside libc/libm/...).
runtime=$(sed -n '/--runtime" \]; then/,/^else/p' "$src/docker/setup.sh" | grep -oE '(^|[ (])z?lib[a-z0-9.+-]*[0-9a-z]' | tr -d ' (' | sort -u)
[ -n "$runtime" ] || fail "cannot read the --runtime package list"
for b in $bins; do
    # direct dependencies must be listed; indirect ones come with apt's dependency closure (so
    # only direct ones are looked up: dpkg -S is slow, and libcurl alone pulls in ~20 libraries)
    direct=$(objdump -p "$build/$b" | awk '/NEEDED/ {print $2}')
    for lib in $(ldd "$build/$b" | awk '$3 ~ /^\// {print $3}'); do
        base=$(basename "$lib")
        echo "$direct" | grep -qx "$base" || continue
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1) || true
        [ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1) || true
        case "$pkg" in libc6|libgcc-s1|libstdc++6|libasan*|libubsan*|"") continue ;; esac  # sanitizer builds
        echo "$runtime" | grep -qx "$pkg" || fail "$b needs $base from $pkg, missing in setup.sh --runtime"
    done
done

# 3. Compose: parses, Kafka version matches the tests' broker, worker commands pass --check.
kafka_tests=$(grep -o '<kafka.version>[^<]*' "$src/tests/kafka/pom.xml" | sed 's/.*>//')
python3 - "$src/docker/compose.yaml" "$kafka_tests" "$build" "$src" <<'PY'
import os, re, subprocess, sys, tempfile, yaml
path, kafka_version, build, src = sys.argv[1:]
d = yaml.safe_load(open(path))
s = d["services"]
for name in ("kafka", "redis", "worker-1", "worker-2", "replay"):
    if name not in s:
        sys.exit(f"FAIL: compose has no service {name}")
# ${CCD_KAFKA_IMAGE:-apache/kafka:V}: the default is the registry's image, the variable picks
# docker/build-images.sh's ccd-kafka:V (made from the tests' jars, so the same version)
kafka_image = re.sub(r"^\$\{CCD_KAFKA_IMAGE:-(.*)\}$", r"\1", s["kafka"]["image"])
if kafka_image != f"apache/kafka:{kafka_version}":
    sys.exit(f"FAIL: compose runs {kafka_image}, the tests run Kafka {kafka_version}")
workers = [n for n in s if n.startswith("worker-")]
for n in workers:
    w = s[n]
    if "healthcheck" not in w and "HEALTHCHECK" not in open(os.path.join(src, "docker/Dockerfile")).read():
        sys.exit(f"FAIL: {n} has no healthcheck")
    if not any(v.endswith(":/var/lib/ccd/checkpoints") for v in w.get("volumes", [])):
        sys.exit(f"FAIL: {n} does not mount the shared checkpoint volume")
    cmd = w["command"]
    if cmd[0] != "ccd-worker":
        sys.exit(f"FAIL: {n} does not run ccd-worker")
    # the image's /etc/ccd paths, mapped onto this checkout
    args = [a.replace("/etc/ccd/configs/", src + "/configs/").replace("/etc/ccd/schemas/", src + "/schemas/")
            for a in cmd[1:]]
    cfg = args[args.index("-c") + 1]
    text = open(cfg).read().replace("/etc/ccd/schemas/", src + "/schemas/")
    tmp = tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False)
    tmp.write(text); tmp.close()
    args[args.index("-c") + 1] = tmp.name
    r = subprocess.run([os.path.join(build, "ccd-worker")] + args + ["--check"], capture_output=True, text=True)
    os.unlink(tmp.name)
    if r.returncode != 0:
        sys.exit(f"FAIL: {n}: ccd-worker --check: {r.stderr.strip()}")
print(f"compose ok: {len(workers)} workers pass --check, Kafka {kafka_version}")
PY

# 4. Worker configs in configs/ pass --check (the Yelp engine-only ones are ccd-offline's).
cd "$src"
for c in configs/worker.ini configs/demo.ini configs/yelp-replay.ini configs/production.ini; do
    extra=()
    [ "$c" = configs/demo.ini ] && extra=(--embedded-kafka 2)   # the demo has no broker address
    "$build/ccd-worker" -c "$c" "${extra[@]}" --check > /dev/null 2> /tmp/ccd-check.$$ ||
        { cat /tmp/ccd-check.$$ >&2; rm -f /tmp/ccd-check.$$; fail "$c does not pass --check"; }
done
rm -f /tmp/ccd-check.$$
echo "docker files ok: $(echo $bins | wc -w) binaries, runtime libraries covered"
