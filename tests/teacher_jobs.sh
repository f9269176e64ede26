#!/usr/bin/env bash
# Teacher updates as Kafka jobs (issue 15, docs/design-teacher-jobs.md), against the real broker
# and redis-server (`services`). One synthetic model, blocks 0-5 closed (6 stays open), tiny engine.
#   reference  one worker, teachers.mode = local: every teacher trained in its own process;
#   jobs       one owner (teachers.mode = kafka, worker.roles = owner) and two teacher-only workers
#              A and B (one BLAS/OpenMP thread each, the owner and the reference two: the teacher
#              tables must not depend on it), sharing the checkpoint store. A carries
#              CCD_TEST_PAUSE=teacher_job:north:2 (worker/testhook.c): it stops itself (SIGSTOP)
#              right before training a teacher of block 2, and is then killed with SIGKILL, so that
#              job is in flight and uncommitted; B gets A's partition when A's session (6 s)
#              expires and runs the job again.
# Checks: (1) every version the jobs run published equals the reference's version of its block bit
# for bit, every reference block was published, events counted once (tests/compare_versions.py);
# (2) the final checkpoint's engine state (and block, event total) is byte for byte the reference's;
# (3) the owner sent jobs for every block 1-5 and got every result; teacher jobs were run by both
# A and B, and B ran the one A was killed in; (4) no input blob is left in the store, including
# one planted as an earlier owner's, which the owner sweeps when it takes the model; no sanitizer
# report; (5) a third run, one worker with worker.roles = owner,teacher, passes (1) and (2) too. Usage: teacher_jobs.sh BUILD_DIR SOURCE_DIR [STORE]   (STORE: dir (default) or redis, the
# checkpoint store, which holds the blobs too; CCD_SERVICES_ENV names services.env)
set -euo pipefail
bin=$(cd "$1" && pwd) src=$(cd "$2" && pwd) store=${3:-dir}
cd "$src"
# shellcheck disable=SC1090
source "${CCD_SERVICES_ENV:?run under CTest with the services fixture}"
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
test_scratch
fail_context=$store
t_start=$(date +%s)

tag=$$-$RANDOM
topic=tj-$tag jobs=tj-jobs-$tag results=tj-results-$tag
"$bin/ccd-replay" --synthetic --seed 3 --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --create-topic 2 \
    --model north --synth-users 300 --synth-items 200 --synth-events 3000 --synth-block-events 800 \
    --synth-new-users 20 --synth-new-items 10 --blocks 7 > "$out/replay-north.txt" 2>&1 || fail "replay north"

config() { # NAME MODE ROLES -> a worker config; the jobs run's three share group, prefix, store
    local run=run
    case $1 in ref | both) run=$1 ;; esac
    cat > "$out/$1.ini" <<INI
$(worker_ini "tj-$run-$tag" "$topic" "tj-$run-$tag")
$(engine_ini "mf:16:0, mf:16:1" 8 3 2 2 2)
[checkpoint]
store = $store
dir = $out/ckpt-$run
keep = 2
[teachers]
mode = $2
jobs_topic = $jobs-$run
; one partition per teacher, so the two teachers of a block go to A and B
jobs_partitions = 2
results_topic = $results
[worker]
roles = $3
threads = ${4:-2}
INI
}
config ref local owner
config owner kafka owner
config a kafka teacher 1
config b kafka teacher 1

"$bin/ccd-worker" -c "$out/ref.ini" --exit-when-idle 5000 2> "$out/ref.log" || fail "reference run failed"
t_ref=$(date +%s)
echo "reference: $((t_ref - t_start)) s"

CCD_TEST_PAUSE="teacher_job:north:2" "$bin/ccd-worker" -c "$out/a.ini" 2> "$out/a.log" &
a=$!
pids+=("$a")
wait_for 60 "$a" grep -qE "teacher jobs: assigned [1-9]" "$out/a.log" || fail "A was never assigned"
"$bin/ccd-worker" -c "$out/b.ini" 2> "$out/b.log" &
b=$!
pids+=("$b")
# both in the group, one partition each, before the first job is produced
wait_for 60 "$b" grep -qE "teacher jobs: assigned 1 " "$out/b.log" || fail "B was never assigned a partition"
# what a crashed owner of an earlier epoch left: its input blob of block 1, swept when the owner
# takes the model (before any block of its own: "before block 0")
stale=tj-b00000001-e00000000000000000000-in
if [ "$store" = dir ]; then
    mkdir -p "$out/ckpt-run/north/blobs" && printf 'old' > "$out/ckpt-run/north/blobs/$stale"
else
    rc SADD "tj-run-$tag:{north}:blobs" "$stale w0 1" > /dev/null
    rc SET "tj-run-$tag:{north}:blob:$stale" "CCDBLOB1 w0 1 3 0" > /dev/null
    rc SET "tj-run-$tag:{north}:blob:$stale:w0:0" "old" > /dev/null
fi
"$bin/ccd-worker" -c "$out/owner.ini" --exit-when-idle 8000 2> "$out/owner.log" &
owner=$!
pids+=("$owner")

stopped() { grep -q "test pause: teacher_job model north block 2" "$out/a.log" &&
    [ "$(awk '{print $3}' "/proc/$a/stat" 2>/dev/null)" = T ]; }
wait_for 180 "$a" stopped || fail "A never paused at a teacher job of block 2"
kill -9 "$a"
wait "$a" 2>/dev/null || true
echo "A (pid $a) killed in a teacher job of block 2"

wait "$owner" || fail "the owner exited with an error"
kill -TERM "$b"
wait "$b" || fail "B exited with an error"
t_run=$(date +%s)
echo "jobs run (owner + 2 teachers, one killed): $((t_run - t_ref)) s"
# a sanitizer build reports and still exits with a plain status: its reports fail the test
! grep -lE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out"/*.log || fail "sanitizer report"

# (1) published versions bit for bit, every block, exactly-once counts
python3 "$src/tests/compare_versions.py" "$REDIS_HOST" "$REDIS_PORT" "tj-ref-$tag" "tj-run-$tag" "$out" \
    north || fail "versions differ from the reference"
# same_state RUN: the final checkpoint's engine state of RUN (run, both) is the reference's
same_state() {
    python3 - "$store" "$out" "$REDIS_HOST" "$REDIS_PORT" "tj-ref-$tag" "tj-$1-$tag" "$1" <<'PY' || fail "final checkpoints differ ($1)"
import glob, os, struct, subprocess, sys
store, out, host, port = sys.argv[1:5]
def redis(*args):
    r = subprocess.run(["redis-cli", "-h", host, "-p", port, "--raw"] + list(args), capture_output=True, check=True)
    return r.stdout[:-1] if r.stdout.endswith(b"\n") else r.stdout
def newest(name, prefix):
    if store == "dir":
        files = sorted(glob.glob(os.path.join(out, "ckpt-" + name, "north", "block-*.ckpt")))
        return open(files[-1], "rb").read() if files else None
    top = redis("ZREVRANGE", prefix + ":{north}:ckpts", "0", "0").decode().split()
    if not top:
        return None
    m = "%s:{north}:ckpt:%08d" % (prefix, int(top[0]))
    w, chunks = redis("HMGET", m + ":m", "w", "chunks").decode().split("\n")
    return b"".join(redis("GET", "%s:%s:%d" % (m, w, i)) for i in range(int(chunks)))
def last(name, prefix):
    b = newest(name, prefix)
    if b is None:
        sys.exit("FAIL: no checkpoint for the %s run" % name)
    p = 24                                     # le.h frame
    n, = struct.unpack_from("<I", b, p); p += 4 + n   # model
    block, = struct.unpack_from("<i", b, p); p += 4
    _, events_total, _ = struct.unpack_from("<qqq", b, p); p += 24
    n, = struct.unpack_from("<Q", b, p); p += 8
    return block, events_total, b[p:p + n]
ref, run = last("ref", sys.argv[5]), last(sys.argv[7], sys.argv[6])
if ref[0] != 5 or ref[:2] != run[:2]:
    sys.exit("FAIL: final checkpoints: reference block %d (%d events), jobs run block %d (%d events)"
             % (ref[0], ref[1], run[0], run[1]))
if ref[2] != run[2]:
    sys.exit("FAIL: block %d: the engine states differ (%d and %d bytes)" % (ref[0], len(ref[2]), len(run[2])))
print("final checkpoint (%s store): block %d, %d events, engine state %d bytes, identical"
      % (store, ref[0], ref[1], len(ref[2])))
PY
}
# (2) the final checkpoint's engine state
same_state run
# (3) jobs for every block 1-5, results for each, the killed job redone by B
for k in 1 2 3 4 5; do
    grep -q "model north block $k: 2 teacher jobs sent" "$out/owner.log" || fail "no jobs for block $k"
    grep -q "model north block $k: 2 teacher results in" "$out/owner.log" || fail "no results for block $k"
done
grep -q "teacher job: model north block [0-9]* teacher [0-9] done" "$out/a.log" ||
    fail "A ran no job before block 2 (both teachers of block 1 went to B?)"
done_b2=$(grep -c "teacher job: model north block 2 teacher [0-9] done" "$out/b.log" || true)
[ "$done_b2" = 2 ] || fail "B ran $done_b2 teacher jobs of block 2, expected both (its own and A's)"
grep -q "teacher job: model north block 2 .* done" "$out/a.log" && fail "A finished a block-2 job after its pause"
! grep -q "is not a job" "$out/a.log" "$out/b.log" || fail "a teacher read something other than jobs"
# (4) the owner cleaned up its blobs
if [ "$store" = dir ]; then
    left=$(find "$out/ckpt-run/north/blobs" -name 'tj-*' 2>/dev/null | wc -l)
else
    left=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --scan --pattern "tj-run-$tag:{north}:blob:*" | wc -l)
    # the set of writes in flight, which the sweep reads, ends empty too
    listed=$(rc SCARD "tj-run-$tag:{north}:blobs")
    [ "$listed" = 0 ] || fail "$listed write(s) still listed in tj-run-$tag:{north}:blobs"
fi
[ "$left" = 0 ] || fail "$left blob(s) left in the $store store"
grep -q "model north, before block 0: 1 stale teacher-job blobs deleted" "$out/owner.log" ||
    fail "the owner did not sweep an earlier owner's blob when it took the model"
# (5) worker.roles = owner,teacher: one process owns the model and runs its own jobs (own jobs topic)
config both kafka owner,teacher
"$bin/ccd-worker" -c "$out/both.ini" --exit-when-idle 5000 2> "$out/both.log" || fail "owner,teacher run failed"
! grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$out/both.log" || fail "sanitizer report (owner,teacher)"
python3 "$src/tests/compare_versions.py" "$REDIS_HOST" "$REDIS_PORT" "tj-ref-$tag" "tj-both-$tag" "$out" \
    north || fail "versions of the owner,teacher run differ from the reference"
same_state both
n=$(grep -c "teacher job: model north block [1-5] teacher [01] done" "$out/both.log" || true)
[ "$n" = 10 ] || fail "the owner,teacher worker ran $n of the 10 teacher jobs itself"
t_both=$(date +%s)
grep -h "teacher job: model north" "$out/a.log" "$out/b.log" | sed 's/^.*teacher job: //' | sort -t' ' -k4n | head -n 12
echo "teacher jobs ok ($store store): reference $((t_ref - t_start)) s, jobs run $((t_run - t_ref)) s," \
    "owner,teacher run $((t_both - t_run)) s (checks included)"
