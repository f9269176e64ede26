#!/usr/bin/env bash
# Scale benchmark (not a test): how the cost of a CCD block grows with the data.
#
# For each size factor S (default 1 4 16 32) it generates a synthetic stream shaped like Yelp's
# block 0 times S (users, items and events all scaled: 12,248 S users, 10,822 S items,
# 204,000 S events of which about 80% are train pairs; an incremental block of 40,000 S events
# with 1,120 S new users and 520 S new items), then runs ccd-offline with the default settings and
# one epoch per stage on the bootstrap block and, unless --bootstrap-only, one incremental block.
# It prints seconds per stage, evaluation time inside the stages, peak RSS (of the run, and by
# stage from VmRSS sampled each second), and the growth exponent of each stage between
# consecutive sizes (log(t2/t1) / log(events2/events1): 1 is linear, 2 is the square).
#
#   tests/bench/bench_scale.sh [--sizes "1 4 16 32"] [--bootstrap-only] [--out DIR]
#                              [--build DIR] [--table-only] [-X section.key=V ...]
#
# --table-only prints the table from the reports already in DIR (for sizes run separately, e.g.
# the incremental block at 1x and 4x and the bootstrap alone at 16x and 32x).
#
# The datasets are written under DIR (default /tmp/ccd-scale); a 32x stream is about 1 GB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

sizes="1 4 16 32"
out=/tmp/ccd-scale
build=build
blocks=2
table_only=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
    --sizes) sizes="$2"; shift 2 ;;
    --bootstrap-only) blocks=1; shift ;;
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --table-only) table_only=1; shift ;;
    -X) extra+=(-X "$2"); shift 2 ;;
    *) echo "bench_scale: unknown argument $1" >&2; exit 2 ;;
    esac
done
for tool in ccd-replay ccd-offline; do
    [ -x "$build/$tool" ] || { echo "bench_scale: $build/$tool missing (cmake --build $build)" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench_scale: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
mkdir -p "$out"
one_epoch=(-X ccd.base.epochs=1 -X ccd.kd.epochs=1 -X ccd.student.epochs=1 -X ccd.teacher.epochs=1)

for s in $sizes; do
    [ "$table_only" = 1 ] && break
    data="$out/synthetic-${s}x"
    if [ ! -f "$data/blocks.tsv" ] || [ "$(wc -l < "$data/blocks.tsv")" -lt $((blocks + 1)) ]; then
        "$build/ccd-replay" --synthetic --write-dataset "$data" --blocks "$blocks" --quiet \
            --synth-users $((12248 * s)) --synth-items $((10822 * s)) \
            --synth-events $((204000 * s)) --synth-new-users $((1120 * s)) \
            --synth-new-items $((520 * s)) --synth-block-events $((40000 * s))
    fi
    echo "== ${s}x: $(tail -n 1 "$data/blocks.tsv" | cut -f2,3 --output-delimiter=' users, ') items" >&2
    # VmRSS once a second, to tell which stage holds the peak (the tables map the samples to the
    # stages by the report's seconds)
    (while sleep 1; do
        for p in $(pgrep -f "^$build/ccd-offline --data $data "); do
            awk -v t="$(date +%s)" '/^VmRSS/ {print t, $2}' "/proc/$p/status" 2>/dev/null
        done
    done) > "$out/rss-${s}x.txt" &
    sampler=$!
    /usr/bin/time -v -o "$out/time-${s}x.txt" "$build/ccd-offline" --data "$data" --blocks "$blocks" \
        --report "$out/report-${s}x.json" "${one_epoch[@]}" "${extra[@]}" | tee "$out/log-${s}x.txt" >&2
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
done

python3 - "$out" $sizes <<'EOF'
import json, math, os, sys
out, sizes = sys.argv[1], sys.argv[2:]
rows = []
for s in sizes:
    rep = json.load(open(os.path.join(out, f"report-{s}x.json")))
    pairs = [sum(1 for _ in open(os.path.join(out, f"synthetic-{s}x", f"block{k}", "train.tsv")))
             for k in range(len(rep["seconds"]["blocks"]))]
    sizes_k = [tuple(int(x) for x in line.split("\t")[1:3]) for line in
               open(os.path.join(out, f"synthetic-{s}x", "blocks.tsv")).read().split("\n")[1:] if line]
    rss = 0.0
    for line in open(os.path.join(out, f"time-{s}x.txt")):
        if "Maximum resident" in line:
            rss = int(line.split()[-1]) / 1024
    rows.append((s, sizes_k, pairs, rep["seconds"]["blocks"], rss))

def table(title, k, stages):
    print(f"\n{title}\n")
    print("| size | users x items | train pairs | " + " | ".join(n for n, _ in stages) +
          " | total s | peak RSS MB |")
    print("|" + " --- |" * (len(stages) + 5))
    for s, sizes_k, pairs, secs, rss in rows:
        if k >= len(secs):
            continue
        b = secs[k]
        u, i = sizes_k[k]
        print(f"| {s}x | {u:,} x {i:,} | {pairs[k]:,} | " +
              " | ".join(f"{b[key]:.1f}" for _, key in stages) +
              f" | {b['total']:.1f} | {b.get('peak_rss_mb', rss):,.0f} |")
    print("\ngrowth exponent (log t2/t1 / log pairs2/pairs1; 1 = linear):\n")
    for (s1, _, p1, b1, _), (s2, _, p2, b2, _) in zip(rows, rows[1:]):
        if k >= len(b1) or k >= len(b2):
            continue
        f = math.log(p2[k] / p1[k])
        if f <= 0:
            continue
        parts = []
        for name, key in stages + [("total", "total")]:
            t1, t2 = b1[k][key], b2[k][key]
            parts.append(f"{name} {math.log(t2 / t1) / f:.2f}" if t1 > 0 and t2 > 0 else f"{name} -")
        print(f"- {s1}x -> {s2}x: " + ", ".join(parts))
    # least-squares slope of log t on log pairs over every size that ran this block
    pts = [(math.log(p[k]), b[k]) for _, _, p, b, _ in rows if k < len(b) and p[k] > 0]
    if len(pts) > 2:
        parts = []
        for name, key in stages + [("total", "total")]:
            xy = [(x, math.log(b[key])) for x, b in pts if b[key] > 0]
            mx = sum(x for x, _ in xy) / len(xy)
            my = sum(y for _, y in xy) / len(xy)
            sxx = sum((x - mx) ** 2 for x, _ in xy)
            parts.append(f"{name} {sum((x - mx) * (y - my) for x, y in xy) / sxx:.2f}"
                         if len(xy) == len(pts) and sxx > 0 else f"{name} -")
        print(f"- fit over {', '.join(str(r[0]) + 'x' for r in rows if k < len(r[3]))}: " +
              ", ".join(parts))

def stage_peaks(k, stages):
    """Peak sampled RSS (MB) per stage of block k, per size: the samples' last second is the end
    of the run, the blocks' stages run in the order given, back to back (each block's time
    outside its stages counted with its last stage)."""
    out_parts = []
    for s, _, _, secs, _ in rows:
        path = os.path.join(out, f"rss-{s}x.txt")
        if k >= len(secs) or not os.path.exists(path):
            continue
        samples = [tuple(int(v) for v in line.split()) for line in open(path) if line.strip()]
        if not samples:
            continue
        end = samples[-1][0] + 1
        t = end - sum(b["total"] for b in secs)
        for j, b in enumerate(secs):
            spans = []
            for name, key in stages:
                spans.append([name, t, t + b[key]])
                t += b[key]
            spans[-1][2] += b["total"] - sum(b[key] for _, key in stages)
            t = spans[-1][2]
            if j == k:
                peaks = [f"{name} {max((m for when, m in samples if a <= when < z), default=0) / 1024:,.0f}"
                         for name, a, z in spans]
                out_parts.append(f"{s}x: " + ", ".join(peaks))
    if out_parts:
        print("\npeak RSS MB by stage (VmRSS sampled each second): " + "; ".join(out_parts))

boot = [("base teachers s", "teachers"), ("ensemble s", "ensemble"), ("distillation s", "distill"),
        ("evaluation in stages s", "eval_in_stages")]
table("Bootstrap block (base teachers, E_0, D_0), one epoch per stage", 0, boot)
stage_peaks(0, [("base teachers", "teachers"), ("ensemble", "ensemble"), ("distillation", "distill")])
print("\n(evaluation in stages: model selection inside the stages above, summed over the teachers "
      "when they train side by side)")
table("Incremental block (student, teacher updates, E_1, D_1), one epoch per stage", 1,
      [("student s", "student"), ("teacher update s", "teachers"), ("ensemble s", "ensemble"),
       ("distillation s", "distill"), ("evaluation in stages s", "eval_in_stages")])
stage_peaks(1, [("student", "student"), ("teacher update", "teachers"), ("ensemble", "ensemble"),
                ("distillation", "distill")])
print(f"\npeak RSS of the whole run (bootstrap + incremental): " +
      ", ".join(f"{s}x {rss:,.0f} MB" for s, _, _, _, rss in rows))
EOF
