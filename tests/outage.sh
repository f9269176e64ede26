#!/usr/bin/env bash
# Outages (issue 6): ccd-worker against a real Kafka 3.9 broker and a real redis-server that this
# script starts itself (tests/services.sh, free loopback ports) so that it can stop and restart
# them on the same ports and data.
#
#   (a) Redis stopped for 30 s right after the first version is live: the worker keeps consuming
#       up to input.max_buffered_events and pauses there (/metrics: ccd_input_paused,
#       ccd_buffered_events, ccd_events_in_total stands still, ccd_consumer_lag grows; /readyz 503
#       while /healthz stays 200; before the outage, promtool accepts a live scrape), retries
#       the publication with growing backoff (ccd_publish_errors_total, WARN lines), commits
#       nothing past what was published and checkpointed before the outage (the group's
#       committed offset, read from the broker's group coordinator), and publishes every block
#       once redis-server is back (restarted on its port with its saved dataset).
#   (b) The Kafka broker stopped for 10 s mid-stream (controlled shutdown) and started again on
#       its port and log directory: the worker (and ccd-replay, still producing) reconnect and
#       carry on; twice: b1 with a session timeout longer than the outage (the worker keeps its
#       partition and open windows), b2 with a shorter one (librdkafka declares the assignment
#       lost, the worker drops the model uncommitted and resumes it from its checkpoint).
#   (c) A full checkpoint disk (checkpoint.dir on a small tmpfs when mount works, else
#       RLIMIT_FSIZE on the worker): an error naming the checkpoint file, ccd_checkpoint_errors_total
#       counted, nothing committed past the last checkpoint, no corrupt or temporary file left;
#       once space is freed the same worker writes the checkpoint and goes on; a worker killed
#       while the disk is full is restarted and resumes from the previous good checkpoint.
#
# Every scenario streams the same synthetic stream (ccd-replay --synthetic, 7 event-time blocks)
# into its own topic, group and Redis prefix, with a tiny engine. Windows close on event time
# only (idle_ms = 0), so the blocks are the generator's: blocks 0..5 are trained and block 6
# stays open (never trained, never committed). Checked at the end of each, in Redis and on the
# broker: a complete version (meta users/items = hash sizes, no stray version keys) of every
# block 0..5, each version's `events` = its block's size and `events_total` = the sizes up to its
# block (so no event was lost or counted twice), `current` = the newest version, which is block
# 5's, and the committed offset = the events of blocks 0..5.
#
# Usage: outage.sh BUILD_DIR SOURCE_DIR [a] [b] [c]    (default: all three)
#   CCD_OUTAGE_DISK=tmpfs|fsize  how (c) fills the disk (default: tmpfs if mount works, else fsize)
#   CCD_OUTAGE_KEEP=1            keep the logs and samples (the path is printed at the end)
# Needs java + maven (the broker, as tests/services.sh), redis-server/redis-cli, curl, python3.
# A service that does not start is a failure, never a skip. About 3 minutes on 2 cores.
set -euo pipefail
bin=$(cd "${1:?usage: outage.sh BUILD_DIR SOURCE_DIR [a] [b] [c]}" && pwd)
src=$(cd "${2:?usage: outage.sh BUILD_DIR SOURCE_DIR [a] [b] [c]}" && pwd)
shift 2
scenarios=${*:-a b c}
# shellcheck source=lib.sh
source "$src/tests/lib.sh"
export OMP_WAIT_POLICY=passive
for t in ccd-worker ccd-replay; do [ -x "$bin/$t" ] || { echo "FAIL: $bin/$t not built" >&2; exit 1; }; done
for t in redis-server redis-cli curl python3 java promtool; do
    command -v "$t" >/dev/null || { echo "FAIL: $t not installed (bash docker/setup.sh --test)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/ccd-outage-XXXXXX)
svc=$work/svc
pids=()        # processes this script started (worker, replay, log readers)
mounted=
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do stop_pid "$p" 50; done
    [ -n "$mounted" ] && { umount "$mounted" 2>/dev/null || umount -l "$mounted" 2>/dev/null || true; }
    [ -f "$svc/services.env" ] && bash "$src/tests/services.sh" stop "$svc" >/dev/null 2>&1
    if [ -n "${CCD_OUTAGE_KEEP:-}" ]; then echo "outage: files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# (c) in RLIMIT_FSIZE mode: an oversized write must fail with EFBIG, not kill the worker. An
# ignored signal stays ignored across exec, so every process started from here ignores it.
trap '' XFSZ

current_log=
fail() {
    echo "FAIL: $*" >&2
    if [ -n "$current_log" ] && [ -f "$current_log" ]; then
        echo "--- last lines of $(basename "$current_log"):" >&2
        grep -v ' kafka ' "$current_log" | tail -n 25 >&2 || true
    fi
    exit 1
}
say() { printf 'outage: %s\n' "$*"; }

# ---------------------------------------------------------------------------------------------
# services

# The services' ports lie below the kernel's ephemeral range (free_port's default, tests/lib.sh):
# while a server is stopped its clients keep reconnecting, and an outgoing connection must not be
# able to take the port it restarts on.
bash "$src/tests/services.sh" start "$svc" || fail "the test services (Kafka, Redis) did not start"
# shellcheck disable=SC1091
source "$svc/services.env"
rc() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# ---------------------------------------------------------------------------------------------
# helpers in Python: the group's committed offset (OffsetFetch v1 to the group coordinator, as
# kafka-consumer-groups.sh --describe reads it; the only broker is the coordinator) and a full
# decode of checkpoint files (the format in worker/checkpoint.h)
cat > "$work/helper.py" <<'PY'
import os, re, socket, struct, sys, zlib

def committed(bootstrap, group, topic, partition=0):
    host, port = bootstrap.rsplit(":", 1)
    def s(x):
        b = x.encode()
        return struct.pack(">h", len(b)) + b
    req = struct.pack(">hhi", 9, 1, 1) + s("ccd-outage-test") + s(group) + struct.pack(">i", 1) + s(topic)
    req += struct.pack(">ii", 1, partition)
    with socket.create_connection((host, int(port)), timeout=5) as c:
        c.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = c.recv(65536)
            if not chunk:
                raise IOError("connection closed")
            buf += chunk
    r, o = buf[4:], 4                                  # skip the correlation id
    nt, = struct.unpack_from(">i", r, o); o += 4
    for _ in range(nt):
        n, = struct.unpack_from(">h", r, o); o += 2 + n
        np_, = struct.unpack_from(">i", r, o); o += 4
        for _ in range(np_):
            p, off = struct.unpack_from(">iq", r, o); o += 12
            n, = struct.unpack_from(">h", r, o); o += 2 + max(n, 0)
            err, = struct.unpack_from(">h", r, o); o += 2
            if err:
                raise IOError(f"OffsetFetch error code {err}")
            if p == partition:
                return off
    raise IOError("partition missing from the OffsetFetch response")

def decode_checkpoint(path):
    """Decode a checkpoint file completely; returns (block, events_total, {topic/partition: next})."""
    b = open(path, "rb").read()
    if len(b) < 24 or b[:8] != b"CCDCKPT1":
        raise ValueError("bad magic or truncated header")
    version, crc, length = struct.unpack_from("<IIQ", b, 8)
    if version not in (1, 2) or length != len(b) - 24 or zlib.crc32(b[24:]) != crc:
        raise ValueError(f"bad version, length or CRC (version {version}, length {length}, file {len(b)})")
    o = 24
    def u32():
        nonlocal o
        v, = struct.unpack_from("<I", b, o); o += 4; return v
    def u64():
        nonlocal o
        v, = struct.unpack_from("<Q", b, o); o += 8; return v
    def st():
        nonlocal o
        n = u32(); v = b[o:o + n]
        if len(v) != n:
            raise ValueError("string past the end")
        o += n; return v.decode()
    st(); block = u32(); u64(); events_total = u64(); u64()
    n = u64()
    o += n                                             # engine state (its own CRC is the worker's)
    for _ in range(u32()): st()                        # user ids
    for _ in range(u32()): st()                        # item ids
    offsets = {}
    for _ in range(u32()):
        t = st(); p = u32(); offsets[f"{t}/{p}"] = u64()
        if version >= 2: u64()                         # the commit floor
    if o != len(b):
        raise ValueError(f"{len(b) - o} trailing bytes")
    return block, events_total, offsets

if sys.argv[1] == "committed":
    try:
        print(committed(sys.argv[2], sys.argv[3], sys.argv[4]))
    except Exception as e:                             # broker down: say so, the caller decides
        print(f"committed offset of {sys.argv[3]}: {e}", file=sys.stderr)
        sys.exit(1)
elif sys.argv[1] == "checkpoints":
    # every file of the model's directory: block-*.ckpt must decode; nothing else may be there
    # but the owner records (owner/e-<20 digits>, one per claim: docs/contracts.md)
    d, bad, out = sys.argv[2], [], []
    for name in sorted(os.listdir(d)):
        if name == "owner" and os.path.isdir(os.path.join(d, name)):
            bad += [f"owner/{e}: not an owner record" for e in os.listdir(os.path.join(d, name))
                    if not re.fullmatch(r"e-[0-9]{20}", e)]
            continue
        if not (name.startswith("block-") and name.endswith(".ckpt")):
            bad.append(f"{name}: not a checkpoint (leftover)")
            continue
        try:
            block, total, offs = decode_checkpoint(os.path.join(d, name))
            if int(name[6:-5]) != block:
                raise ValueError(f"holds block {block}")
            out.append(f"{name}(block {block}, {total} events, next {','.join(map(str, offs.values()))})")
        except Exception as e:
            bad.append(f"{name}: {e}")
    print("; ".join(out) if out else "none")
    if bad:
        print("BAD: " + "; ".join(bad))
        sys.exit(1)
PY
committed() { python3 "$work/helper.py" committed "$KAFKA_BOOTSTRAP" "$1" "$2"; }
metric() { curl -sf --max-time 3 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n {print $2}'; }
probe() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$1/$2" || true; }
probe_is() { [ "$(probe "$1" "$2")" = "$3" ]; }
# wait_for SECONDS WHAT COMMAND...: poll the command every 0.2 s; a failure if the worker
# ($watch_pid, the one started last) exits first
watch_pid=
wait_for() {
    local secs=$1 what=$2
    shift 2
    local until=$((SECONDS + secs))
    while ! "$@"; do
        [ -z "$watch_pid" ] || kill -0 "$watch_pid" 2>/dev/null || fail "$what: the worker exited first"
        [ "$SECONDS" -lt "$until" ] || fail "$what: not within $secs s"
        sleep 0.2
    done
}
alive() { kill -0 "$1" 2>/dev/null; }
committed_is() { [ "$(committed "$group" "$topic" 2>/dev/null)" = "$1" ]; }   # (the caller's group, topic)
log_has() { grep -q -- "$2" "$1" 2>/dev/null; }

# ---------------------------------------------------------------------------------------------
# the stream and the worker

blocks=7 last=5   # blocks 0..5 are trained; block 6 stays open
declare -A EXP    # events per block, from ccd-replay
stream=(--synthetic --seed 1 --synth-users 300 --synth-items 200 --synth-events 2000
        --synth-block-events 1500 --blocks "$blocks")

# replay OUT TOPIC [ccd-replay options]: stream into TOPIC (model m), recording block sizes
replay() {
    local out=$1 topic=$2
    shift 2
    "$bin/ccd-replay" "${stream[@]}" --brokers "$KAFKA_BOOTSTRAP" --topic "$topic" --model m \
        --schema "$src/schemas/interaction.avsc" "$@" > "$out.txt" 2> "$out.err"
}
# the block sizes a finished replay printed (the same stream must have the same blocks every
# time), and the events it had acknowledged (added to $SENT)
SENT=0
record_blocks() {
    local k n acked
    acked=$(sed -n 's/^sent \([0-9]*\) acked \1 failed 0 .*/\1/p' "$1.txt")
    [ -n "$acked" ] || fail "ccd-replay: $(cat "$1.txt" "$1.err")"
    SENT=$((SENT + acked))
    while read -r k n; do
        [ -z "${EXP[$k]:-}" ] || [ "${EXP[$k]}" = "$n" ] || fail "block $k: $n events now, ${EXP[$k]} before"
        EXP[$k]=$n
    done < <(sed -n 's/^ccd-replay: block \([0-9]*\): \([0-9]*\) events.*/\1 \2/p' "$1.err")
}
# replay_blocks TAG OUT TOPIC [ccd-replay options]: replay (a failure, with TAG, if it fails), then
# record_blocks
replay_blocks() {
    local tag=$1 out=$2
    shift 2
    replay "$out" "$@" || fail "$tag ccd-replay: $(cat "$out.err")"
    record_blocks "$out"
}
sum_blocks() { # events of blocks 0..$1
    local k s=0
    for k in $(seq 0 "$1"); do s=$((s + EXP[$k])); done
    echo "$s"
}

# write_config NAME TOPIC CKPT_DIR METRICS_PORT: $work/NAME.ini (with $BOUND as
# input.max_buffered_events and $SESSION_MS as session.timeout.ms when set)
write_config() {
    cat > "$work/$1.ini" <<INI
[kafka]
bootstrap.servers = $KAFKA_BOOTSTRAP
group.id = outage-$1-$$
; (c): a killed worker's partition moves after 6 s (the default 45 s would only slow it down)
session.timeout.ms = ${SESSION_MS:-6000}
heartbeat.interval.ms = 1000
[input]
topics = $2
reader_schema = $src/schemas/interaction.avsc
dead_letter_topic =
max_buffered_events = ${BOUND:-100000}
$(replay_window_ini)
[holdout]
fraction = 0.1
$(engine_ini mf:16:0 8 2 1 1 1)
[redis]
host = 127.0.0.1
port = $REDIS_PORT
prefix = out$1$$
keep_versions = 50
timeout_ms = 2000
[checkpoint]
dir = $3
keep = 2
[metrics]
listen = 127.0.0.1:$4
[worker]
threads = 1
INI
}
# start_worker NAME LOG [ccd-worker options]: starts it in the background; sets $wpid. Its log
# goes through a pipe (a log file would be subject to (c)'s RLIMIT_FSIZE)
start_worker() {
    local name=$1 log=$2
    shift 2
    rm -f "$log.fifo"
    mkfifo "$log.fifo"
    cat "$log.fifo" > "$log" &
    pids+=($!)
    "$bin/ccd-worker" -c "$work/$name.ini" "$@" 2> "$log.fifo" &
    wpid=$!
    pids+=("$wpid")
    watch_pid=$wpid
    current_log=$log
}
# wait_exit PID SECONDS: the worker's exit status in $WST (killed, and a failure, past the time)
wait_exit() {
    local until=$((SECONDS + $2))
    while alive "$1"; do
        [ "$SECONDS" -lt "$until" ] || { kill -9 "$1"; fail "the worker did not exit within $2 s"; }
        sleep 0.2
    done
    WST=0
    wait "$1" || WST=$?
}

# check_final NAME GROUP TOPIC: the end state every scenario must reach (see the top)
check_final() {
    local name=$1 group=$2 topic=$3 key="out$1$$:{m}"
    local cur v k want total vers blocks_seen=() stray
    cur=$(rc GET "$key:current")
    [ -n "$cur" ] || fail "$name: no live version"
    mapfile -t vers < <(rc ZRANGE "$key:versions" 0 -1)
    [ "${#vers[@]}" -gt 0 ] && [ "${vers[-1]}" = "$cur" ] ||
        fail "$name: current v$cur is not the newest complete version (${vers[*]})"
    declare -A seen=()
    local prev=-1
    for v in "${vers[@]}"; do
        local meta=()
        mapfile -t meta < <(rc HMGET "$key:v$v:meta" block events events_total users items provisional)
        local hu hi
        hu=$(rc HLEN "$key:v$v:user"); hi=$(rc HLEN "$key:v$v:item")
        [ "${meta[3]}" = "$hu" ] && [ "${meta[4]}" = "$hi" ] ||
            fail "$name: v$v is partial: meta users ${meta[3]} items ${meta[4]}, hashes $hu and $hi"
        # a provisional version (the fast path, docs/fastpath.md) may run ahead of the exact ones;
        # the exact versions alone must move forward and count their blocks exactly
        [ "${meta[5]}" = 1 ] && continue
        k=${meta[0]}
        [ "$k" -ge "$prev" ] || fail "$name: v$v holds block $k after a version of block $prev"
        [ "${meta[1]}" = "${EXP[$k]}" ] || fail "$name: v$v (block $k) counted ${meta[1]} events, the block has ${EXP[$k]}"
        want=$(sum_blocks "$k")
        [ "${meta[2]}" = "$want" ] || fail "$name: v$v (block $k): events_total ${meta[2]}, blocks 0..$k have $want"
        [ -n "${seen[$k]:-}" ] || blocks_seen+=("$k")
        seen[$k]="${seen[$k]:-}v$v "
        prev=$k
    done
    for k in $(seq 0 "$last"); do
        [ -n "${seen[$k]:-}" ] || fail "$name: block $k was never published (versions: ${vers[*]})"
    done
    [ "$prev" = "$last" ] || fail "$name: the live version holds block $prev, expected $last"
    # no version keys outside the complete versions (a partial one would be left over)
    stray=$(rc --scan --pattern "out$1$$:{m}:v[0-9]*" | sed 's/.*:v\([0-9]*\):.*/\1/' | sort -u |
            grep -vxF -f <(printf '%s\n' "${vers[@]}") || true)
    [ -z "$stray" ] || fail "$name: keys of versions that are not complete: $stray"
    total=$(rc HGET "$key:v$cur:meta" events_total)
    want=$(sum_blocks "$last")
    local c
    c=$(committed "$group" "$topic") || fail "$name: committed offset: $c"
    [ "$c" = "$want" ] || fail "$name: committed offset $c, blocks 0..$last end at $want"
    local dup=""
    for k in "${blocks_seen[@]}"; do
        [ "$(wc -w <<< "${seen[$k]}")" -gt 1 ] && dup+=" block $k: ${seen[$k]% }"
    done
    [ "$SENT" = "$(sum_blocks $((blocks - 1)))" ] || fail "$name: $SENT events produced, the blocks hold $(sum_blocks $((blocks - 1)))"
    FINAL="blocks 0..$last published (v${vers[0]}..v$cur, ${#vers[@]} versions${dup:+;$dup}), all complete, events $total = produced $SENT - open block 6 (${EXP[6]}), committed offset $c"
}

# ---------------------------------------------------------------------------------------------
# (a) Redis down for 30 s, from right after the first version went live

live_block() { # the block of KEY's live version ("" when none)
    local v
    v=$(rc GET "$1:current" 2>/dev/null) || return 1
    [ -n "$v" ] && rc HGET "$1:v$v:meta" block 2>/dev/null
}
live_block_is() { [ "$(live_block "$1")" = "$2" ]; }
version_live() { [ -n "$(rc GET "$1:current" 2>/dev/null)" ]; }

# sample_outage FILE T_DOWN WORKER_PID METRICS_PORT GROUP TOPIC: until 30 s after T_DOWN, one
# sample a second of /metrics and of the group's committed offset on the broker, as TSV in FILE
sample_outage() {
    local samples=$1 t_down=$2 w=$3 mport=$4 group=$5 topic=$6 t m
    printf 't\tpaused\tbuffered\tevents_in\tpublish_errors\tlag\tcommitted\n' > "$samples"
    while [ $((SECONDS - t_down)) -lt 30 ]; do
        alive "$w" || fail "(a) the worker exited while Redis was down"
        m=$(curl -sf --max-time 3 "http://127.0.0.1:$mport/metrics" || true)
        t=$((SECONDS - t_down))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" \
            "$(awk '$1 == "ccd_input_paused" {print $2}' <<< "$m")" \
            "$(awk '$1 == "ccd_buffered_events" {print $2}' <<< "$m")" \
            "$(awk '$1 == "ccd_events_in_total" {print $2}' <<< "$m")" \
            "$(awk '$1 == "ccd_publish_errors_total" {print $2}' <<< "$m")" \
            "$(awk '/^ccd_consumer_lag/ {print $2}' <<< "$m")" \
            "$(committed "$group" "$topic" 2>/dev/null || echo error)" >> "$samples"
        sleep 1
    done
}

scenario_a() {
    local d=$work/a topic="outage-a-$$" group="outage-a-$$" key="outa$$:{m}" bound=3200 mport w rpid t0=$SECONDS
    mkdir -p "$d"
    mport=$(free_port)
    SENT=0
    BOUND=$bound write_config a "$topic" "$d/ckpt" "$mport"
    # block 0 first (its window stays open until block 1's first event), then the rest at
    # 1000 events/s while the worker runs: the first version goes live as block 1 starts
    replay_blocks "(a)" "$d/replay0" "$topic" --create-topic 1 --blocks 1
    start_worker a "$d/worker.log" --exit-when-idle 6000
    w=$wpid
    wait_for 60 "(a) the worker owning the partition" log_has "$d/worker.log" "assigned $topic/0"
    replay "$d/replay" "$topic" --from-block 1 --rate 1000 &
    rpid=$!
    pids+=("$rpid")
    wait_for 120 "(a) the first version in Redis" version_live "$key"
    # the probes and the exposition on a live worker (Prometheus' own checker)
    [ "$(probe "$mport" healthz)" = 200 ] || fail "(a) /healthz is not 200 on a running worker"
    wait_for 10 "(a) /readyz 200 with a version live" probe_is "$mport" readyz 200
    curl -sf --max-time 3 "http://127.0.0.1:$mport/metrics" > "$d/scrape.txt" || fail "(a) no /metrics"
    promtool check metrics < "$d/scrape.txt" > "$d/promtool.txt" 2>&1 ||
        fail "(a) promtool check metrics on a live scrape: $(cat "$d/promtool.txt")"
    bash "$src/tests/services.sh" stop-redis "$svc" 2>> "$d/services.log" || fail "(a) stop-redis: $(cat "$d/services.log")"
    local t_down=$SECONDS
    say "(a) redis-server stopped as soon as a version was live; 30 s without Redis"
    local samples=$d/samples.tsv
    sample_outage "$samples" "$t_down" "$w" "$mport" "$group" "$topic"
    # Redis still down, publications failing: not ready, but alive
    [ "$(probe "$mport" readyz)" = 503 ] || fail "(a) /readyz is not 503 while publications to Redis fail"
    [ "$(probe "$mport" healthz)" = 200 ] || fail "(a) /healthz is not 200 during the Redis outage"
    wait "$rpid" || fail "(a) ccd-replay failed: $(cat "$d/replay.txt" "$d/replay.err")"
    record_blocks "$d/replay"
    bash "$src/tests/services.sh" start-redis "$svc" 2>> "$d/services.log" || fail "(a) start-redis: $(cat "$d/services.log")"
    local t_up=$SECONDS
    # the restarted server's dataset (saved at the stop): the blocks published before the outage
    local v pub_before=-1 n_before=0
    for v in $(rc ZRANGE "$key:versions" 0 -1); do pub_before=$(rc HGET "$key:v$v:meta" block); n_before=$((n_before + 1)); done
    [ "$n_before" -gt 0 ] || fail "(a) the restarted redis-server lost the versions published before the outage"
    local c_pub
    c_pub=$(sum_blocks "$pub_before")
    # the outage, as measured
    local errs paused buffered_max lag_end in_first in_last
    errs=$(awk -F'\t' 'NR > 1 && $5 != "" {e = $5} END {print e + 0}' "$samples")
    paused=$(awk -F'\t' 'NR > 1 && $1 >= 10 && $2 != 1 {bad = 1} END {print bad ? 0 : 1}' "$samples")
    buffered_max=$(awk -F'\t' 'NR > 1 && $3 + 0 > b {b = $3 + 0} END {print b + 0}' "$samples")
    # (the largest of the last 10 s: a snapshot whose watermark query timed out shows the cached one)
    lag_end=$(awk -F'\t' 'NR > 1 && $1 >= 20 && $6 + 0 > l {l = $6 + 0} END {print l + 0}' "$samples")
    in_first=$(awk -F'\t' 'NR > 1 && $1 >= 10 {print $4; exit}' "$samples")
    in_last=$(awk -F'\t' 'NR > 1 {v = $4} END {print v}' "$samples")
    local show="cat $samples >&2"
    [ "$paused" = 1 ] || { eval "$show"; fail "(a) the input was not paused at the buffer bound (ccd_input_paused)"; }
    # (the bound is checked after each batch of messages: it may be passed by the last batch)
    [ "$buffered_max" -ge "$bound" ] && [ "$buffered_max" -le $((bound + 1000)) ] ||
        { eval "$show"; fail "(a) ccd_buffered_events peaked at $buffered_max, bound $bound"; }
    [ -n "$in_first" ] && [ "$in_first" = "$in_last" ] ||
        { eval "$show"; fail "(a) events kept coming in while paused (ccd_events_in_total $in_first -> $in_last)"; }
    # every event was produced long before the end of the outage: the lag shown must be the backlog
    [ "$lag_end" -gt 0 ] && [ "$lag_end" = $((SENT - in_last)) ] ||
        { eval "$show"; fail "(a) ccd_consumer_lag $lag_end at the end of the outage; backlog $SENT - $in_last = $((SENT - in_last))"; }
    [ "$errs" -ge 4 ] || { eval "$show"; fail "(a) $errs publish errors counted in 30 s"; }
    local warns delays
    warns=$(grep -c 'warn .*publish failed (.*); retrying in [0-9]* ms' "$d/worker.log" || true)
    delays=$(sed -n 's/.*warn .*publish failed .*retrying in \([0-9]*\) ms.*/\1/p' "$d/worker.log" | paste -sd, -)
    [ "$warns" -ge 4 ] || fail "(a) $warns WARN lines about failed publications"
    # exponential backoff: 200 ms doubling up to 10 s (a later publication starts at 200 again)
    python3 -c 'import sys; d = [int(x) for x in sys.argv[1].split(",")]
sys.exit(not (d[0] == 200 and max(d) == 10000 and all(b in (200, min(2 * a, 10000)) for a, b in zip(d, d[1:]))))' \
        "$delays" || fail "(a) the publication retries do not back off from 200 ms to 10 s: $delays ms"
    # committed: never past the blocks published before the outage, and held there while down
    local bad held
    bad=$(awk -F'\t' -v c="$c_pub" 'NR > 1 && ($7 == "error" || $7 + 0 > c) {print $1 "s:" $7}' "$samples" | paste -sd' ' -)
    held=$(awk -F'\t' 'NR > 1 && $1 >= 3 {print $7}' "$samples" | sort -u | paste -sd' ' -)
    [ -z "$bad" ] || { eval "$show"; fail "(a) committed past what was published before the outage (blocks 0..$pub_before, $c_pub events): $bad"; }
    [ "$held" = "$c_pub" ] || { eval "$show"; fail "(a) committed offsets during the outage: $held; expected $c_pub held"; }
    # Redis back: every block published, then the worker exits on its own
    wait_for 120 "(a) block $last live after Redis came back" live_block_is "$key" "$last"
    local t_pub=$((SECONDS - t_up))
    wait_exit "$w" 60
    [ "$WST" = 0 ] || fail "(a) the worker exited with status $WST"
    check_final a "$group" "$topic"
    say "(a) redis down 30 s: input paused at $buffered_max buffered events (bound $bound; ccd_events_in_total held at $in_last of $SENT, ccd_consumer_lag $lag_end), $errs publish errors in /metrics, $warns WARN lines, retries after $delays ms; committed offset held at $c_pub (blocks 0..$pub_before, published before the outage); block $last live ${t_pub} s after Redis came back"
    say "(a) $FINAL  [$((SECONDS - t0)) s]"
}

# ---------------------------------------------------------------------------------------------
# (b) the Kafka broker stopped for 10 s mid-stream, then started again on its port and log dir

# scenario_b NAME SESSION_MS: with session.timeout.ms longer than the outage the worker keeps its
# partition through it (b1); with a shorter one librdkafka declares the assignment lost, the worker
# drops the model uncommitted and, assigned again, resumes it from its checkpoint (b2)
scenario_b() {
    local name=$1 session=$2 d=$work/$1 topic="outage-$1-$$" group="outage-$1-$$" key="out$1$$:{m}" mport w rpid t0=$SECONDS
    local tag="($name, session.timeout.ms $session)"
    mkdir -p "$d"
    mport=$(free_port)
    SENT=0
    SESSION_MS=$session write_config "$name" "$topic" "$d/ckpt" "$mport"
    replay_blocks "$tag" "$d/replay0" "$topic" --create-topic 1 --blocks 1
    # it would exit after 120 s without messages: the outage does not come near that
    start_worker "$name" "$d/worker.log" --exit-when-idle 120000
    w=$wpid
    wait_for 60 "$tag the worker owning the partition" log_has "$d/worker.log" "assigned $topic/0"
    replay "$d/replay" "$topic" --from-block 1 --rate 1000 &
    rpid=$!
    pids+=("$rpid")
    wait_for 120 "$tag block 1 live" live_block_is "$key" 1
    bash "$src/tests/services.sh" stop-kafka "$svc" 2>> "$d/services.log" || fail "$tag stop-kafka: $(cat "$d/services.log")"
    local t_down=$SECONDS in_before pub_down
    in_before=$(metric "$mport" ccd_events_in_total)
    sleep 10
    alive "$w" || fail "$tag the worker exited while the broker was down"
    pub_down=$(live_block "$key")
    bash "$src/tests/services.sh" start-kafka "$svc" 2>> "$d/services.log" || fail "$tag start-kafka: $(cat "$d/services.log")"
    local t_up=$SECONDS
    wait "$rpid" || fail "$tag ccd-replay did not get its events through the restart: $(cat "$d/replay.txt" "$d/replay.err")"
    record_blocks "$d/replay"
    local want
    want=$(sum_blocks "$last")
    wait_for 180 "$tag block $last live" live_block_is "$key" "$last"
    wait_for 60 "$tag offsets committed up to block $last ($want)" committed_is "$want"
    local t_rec=$((SECONDS - t_up)) in_after
    in_after=$(metric "$mport" ccd_events_in_total)
    [ "${in_after:-0}" -gt "${in_before:-0}" ] || fail "$tag nothing consumed after the restart ($in_before -> $in_after)"
    alive "$w" || fail "$tag the worker exited"
    kill -TERM "$w"
    wait_exit "$w" 60
    [ "$WST" = 0 ] || fail "$tag the worker exited with status $WST after SIGTERM"
    check_final "$name" "$group" "$topic"
    local how
    if [ "$session" -gt 30000 ]; then
        ! log_has "$d/worker.log" "assignment lost" && ! log_has "$d/worker.log" "resumed from" ||
            fail "$tag the worker lost its partition although the session outlived the outage"
        how="kept its partition and its open windows"
    else
        log_has "$d/worker.log" "assignment lost: dropping its models without committing" &&
            log_has "$d/worker.log" "model m: resumed from its block-" ||
            fail "$tag expected the assignment to be lost and the model resumed from its checkpoint"
        how="lost its assignment, dropped the model uncommitted, $(sed -n 's/.*model m: \(resumed from its block-[0-9]* checkpoint\).*/\1/p' "$d/worker.log" | head -1)"
    fi
    local commit_warns stopped
    commit_warns=$(grep -c 'commit.* failed' "$d/worker.log" || true)
    stopped=$(sed -n 's/.*stopped: \([0-9]*\) messages.*, \([0-9]*\) duplicates skipped.*/\1 messages read, \2 duplicates skipped/p' "$d/worker.log")
    say "$tag broker down $((t_up - t_down)) s (stopped with block $pub_down live, ccd_events_in_total $in_before; restart included): the worker stayed up, $how; $commit_warns failed commits; block $last live ${t_rec} s after the broker was back; $stopped"
    say "$tag $FINAL  [$((SECONDS - t0)) s]"
}

# ---------------------------------------------------------------------------------------------
# (c) a full checkpoint disk

disk_mode=
fill_disk() { # make the next checkpoint write fail: $1 = worker pid (fsize mode)
    if [ "$disk_mode" = tmpfs ]; then
        dd if=/dev/zero of="$ckdir/filler" bs=64k 2>/dev/null || true
        [ "$(df --output=avail "$ckdir" | tail -1)" -lt 64 ] || fail "(c) could not fill $ckdir"
    else
        prlimit --pid "$1" --fsize=4096: || fail "(c) prlimit"
    fi
}
# the disk that can be filled: a 16 MiB tmpfs mounted on $ckdir (disk_mode=tmpfs), or, where
# mounting is not permitted or CCD_OUTAGE_DISK=fsize, the worker's RLIMIT_FSIZE (disk_mode=fsize)
use_checkpoint_disk() {
    disk_mode=${CCD_OUTAGE_DISK:-}
    if [ -z "$disk_mode" ]; then
        if mount -t tmpfs -o size=16m tmpfs "$ckdir" 2>/dev/null; then disk_mode=tmpfs; mounted=$ckdir; else disk_mode=fsize; fi
    elif [ "$disk_mode" = tmpfs ]; then
        mount -t tmpfs -o size=16m tmpfs "$ckdir" || fail "(c) mount tmpfs"
        mounted=$ckdir
    fi
}
free_disk() { # (in fsize mode a worker started afterwards has no limit)
    if [ "$disk_mode" = tmpfs ]; then
        rm -f "$ckdir/filler"
    elif alive "$1"; then
        prlimit --pid "$1" --fsize=unlimited: || fail "(c) prlimit"
    fi
}

scenario_c() {
    local d=$work/c topic="outage-c-$$" group="outage-c-$$" key="outc$$:{m}" mport w t0=$SECONDS
    mkdir -p "$d/ckpt"
    ckdir=$d/ckpt
    use_checkpoint_disk
    local how="checkpoint.dir on a 16 MiB tmpfs filled up"
    [ "$disk_mode" = tmpfs ] || how="RLIMIT_FSIZE of the worker lowered to 4 KiB (no tmpfs: CCD_OUTAGE_DISK=fsize, or mount not permitted)"
    mport=$(free_port)
    SENT=0
    write_config c "$topic" "$ckdir" "$mport"
    replay_blocks "(c)" "$d/replay01" "$topic" --create-topic 1 --blocks 2
    start_worker c "$d/worker1.log"
    w=$wpid
    wait_for 120 "(c) block 0 checkpointed" log_has "$d/worker1.log" "block 0: done in"
    [ -f "$ckdir/m/block-00000000.ckpt" ] || fail "(c) no block-0 checkpoint file"
    fill_disk "$w"
    say "(c) $how; block 2 sent (closes block 1)"
    replay_blocks "(c)" "$d/replay2" "$topic" --blocks 3 --from-block 2
    errors_at_least() { [ "$(metric "$mport" ccd_checkpoint_errors_total)" -ge "$1" ] 2>/dev/null; }
    wait_for 60 "(c) 3 failed checkpoint writes counted" errors_at_least 3
    local errs1 line files
    errs1=$(metric "$mport" ccd_checkpoint_errors_total)
    line=$(grep -m1 ' error .*block 1: checkpoint failed' "$d/worker1.log" || true)
    [ -n "$line" ] || fail "(c) no error line about the checkpoint"
    grep -Eq "checkpoint failed \(checkpoint: (create|write|fsync|close) $ckdir/m/\.tmp-block-00000001-[^ ]*: (No space left on device|File too large)\)" <<< "$line" ||
        fail "(c) the error does not name the checkpoint file and the cause: $line"
    [ "$(metric "$mport" ccd_blocks_done_total)" = 1 ] || fail "(c) block 1 counted as done without its checkpoint"
    live_block_is "$key" 1 || fail "(c) block 1 not published while its checkpoint failed"
    files=$(python3 "$work/helper.py" checkpoints "$ckdir/m") || fail "(c) checkpoint directory while the disk is full: $files"
    [ "$files" = "block-00000000.ckpt(block 0, ${EXP[0]} events, next ${EXP[0]})" ] ||
        fail "(c) checkpoint directory while the disk is full: $files"
    local c
    c=$(committed "$group" "$topic")
    [ "$c" = "${EXP[0]}" ] || fail "(c) committed $c with the block-1 checkpoint missing (block 0 ends at ${EXP[0]})"
    # space again: the same worker writes block 1's checkpoint and carries on
    free_disk "$w"
    local t_free=$SECONDS
    wait_for 60 "(c) block 1 checkpointed once space was freed" log_has "$d/worker1.log" "block 1: done in"
    local t_write=$((SECONDS - t_free)) c01
    c01=$(sum_blocks 1)
    wait_for 30 "(c) offsets committed through block 1" committed_is "$c01"
    files=$(python3 "$work/helper.py" checkpoints "$ckdir/m") || fail "(c) after freeing space: $files"
    grep -q "block-00000001.ckpt(block 1, $c01 events, next $c01)" <<< "$files" || fail "(c) after freeing space: $files"
    say "(c) disk full: $errs1 checkpoint errors counted, committed held at $c; space freed: block-1 checkpoint written ${t_write} s later, committed $c01"
    # full again, then the worker dies (SIGKILL) with block 2 published but not checkpointed
    fill_disk "$w"
    replay_blocks "(c)" "$d/replay3" "$topic" --blocks 4 --from-block 3
    errs1=$(metric "$mport" ccd_checkpoint_errors_total)
    wait_for 60 "(c) block 2's checkpoint failing" errors_at_least $((errs1 + 2))
    live_block_is "$key" 2 || fail "(c) block 2 not published"
    kill -9 "$w"
    wait "$w" 2>/dev/null || true
    # every checkpoint file decodes (a temporary file of the killed write may remain: the next save sweeps it)
    files=$(python3 "$work/helper.py" checkpoints "$ckdir/m" 2>&1 | grep -v '^BAD: [^;]*\.tmp-[^;]*: not a checkpoint (leftover)$') || true
    grep -q '^BAD' <<< "$files" && fail "(c) after the crash on a full disk: $files"
    grep -q "block-00000001.ckpt(block 1, $c01 events" <<< "$files" || fail "(c) after the crash: $files"
    # a new worker with space again resumes from block 1's checkpoint (the previous good one)
    free_disk "$w"
    mport=$(free_port)
    write_config c "$topic" "$ckdir" "$mport"
    # (it gets the partition once the group has timed the killed one out; it is stopped below)
    start_worker c "$d/worker2.log" --exit-when-idle 120000
    w=$wpid
    wait_for 120 "(c) the restarted worker resuming" log_has "$d/worker2.log" "resumed from its block-"
    grep -q "model m: resumed from its block-1 checkpoint (.*, $c01 events" "$d/worker2.log" ||
        fail "(c) the restarted worker did not resume from block 1: $(grep 'resumed from' "$d/worker2.log")"
    replay_blocks "(c)" "$d/replay4" "$topic" --blocks "$blocks" --from-block 4
    local want
    want=$(sum_blocks "$last")
    wait_for 120 "(c) block $last live" live_block_is "$key" "$last"
    wait_for 60 "(c) offsets committed up to block $last ($want)" committed_is "$want"
    kill -TERM "$w"
    wait_exit "$w" 60
    [ "$WST" = 0 ] || fail "(c) the restarted worker exited with status $WST after SIGTERM"
    check_final c "$group" "$topic"
    files=$(python3 "$work/helper.py" checkpoints "$ckdir/m") || fail "(c) at the end: $files"
    grep -q "block-0000000$last.ckpt(block $last, $want events, next $want)" <<< "$files" || fail "(c) at the end: $files"
    say "(c) killed on a full disk with block 2 published but not checkpointed: the restarted worker resumed from block 1's checkpoint; files at the end: $files"
    say "(c) $FINAL  [$((SECONDS - t0)) s]"
}

for s in $scenarios; do
    case "$s" in
    a) scenario_a ;;
    b) scenario_b b1 45000; scenario_b b2 6000 ;;
    c) scenario_c ;;
    *) fail "unknown scenario $s (a, b or c)" ;;
    esac
done
say "all outage scenarios passed ($scenarios) in $SECONDS s"
