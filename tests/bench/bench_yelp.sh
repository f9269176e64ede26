#!/usr/bin/env bash
# The Yelp quality table (a benchmark, not a test): the six-block run, several seeds, three ways.
#   default    configs/yelp.ini (full CCD), base teachers capped at 10 epochs with no early stop
#              like the reference's (-X ccd.base.epochs=10 -X ccd.base.patience=0)
#   finetune   configs/yelp-finetune.ini: the student fine-tuned on blocks 1-5 from the default's
#              block-0 state (the same D_0), no teachers
#   reference  configs/yelp-reference.ini alone, all six blocks (the reference's schedule; about
#              2.7 hours a seed on one thread, so only when asked for)
# Each seed's block 0 runs once on two threads with --checkpoint; the arms resume from its
# state-0.bin and run two at a time on one thread each. The table: CL_k over blocks 1-5 on the
# test splits, LA / RA / H-mean of R@20 and N@20 (mean of the seeds, each seed below), the
# valid splits' H-mean beside it (what a default is chosen on), and CL_k on block 0 after each
# block (the forgetting row, r[k][0]). Test figures reported once: nothing here picks a default.
#
#   tests/bench/bench_yelp.sh [--seeds "1 2 3"] [--arms "default finetune"] [--out DIR]
#                             [--data DIR] [--table-only]
#
# From the project root after building build/. --table-only prints the table from the reports
# already in DIR (default /tmp/ccd-yelp); a run skips the jobs whose report is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
seeds="1 2 3" arms="default finetune" out=/tmp/ccd-yelp data=../shared/data/yelp table_only=0
while [ $# -gt 0 ]; do
    case $1 in
    --seeds) seeds=$2; shift 2 ;;
    --arms) arms=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --table-only) table_only=1; shift ;;
    *) echo "usage: $0 [--seeds LIST] [--arms LIST] [--out DIR] [--data DIR] [--table-only]" >&2; exit 2 ;;
    esac
done
for a in $arms; do
    case $a in default | finetune | reference) ;; *) echo "unknown arm $a" >&2; exit 2 ;; esac
done
mkdir -p "$out"
base_x=(-X ccd.base.epochs=10 -X ccd.base.patience=0)

# arm_cmd ARM SEED: the arm's ccd-offline command line (one thread; no word holds a space)
arm_cmd() {
    local a=$1 s=$2
    case $a in
    default) echo build/ccd-offline -c configs/yelp.ini --data "$data" --threads 1 "${base_x[@]}" \
        -X "ccd.seed=$s" --resume "$out/seed$s/state-0.bin" --report "$out/default-$s.json" ;;
    finetune) echo build/ccd-offline -c configs/yelp-finetune.ini --data "$data" --threads 1 \
        -X "ccd.seed=$s" --resume "$out/seed$s/state-0.bin" --report "$out/finetune-$s.json" ;;
    reference) echo build/ccd-offline -c configs/yelp-reference.ini --data "$data" --threads 1 \
        -X "ccd.seed=$s" --report "$out/reference-$s.json" ;;
    esac
}

if [ "$table_only" = 0 ]; then
    for s in $seeds; do
        [ -f "$out/seed$s/state-0.bin" ] && continue
        case " $arms " in *" default "* | *" finetune "*) ;; *) continue ;; esac
        t0=$(date +%s)
        build/ccd-offline -c configs/yelp.ini --data "$data" --threads 2 --blocks 1 "${base_x[@]}" \
            -X "ccd.seed=$s" --checkpoint "$out/seed$s" --report "$out/block0-$s.json" \
            > "$out/block0-$s.txt" 2>&1 || { echo "seed $s: block 0 failed ($out/block0-$s.txt)" >&2; exit 1; }
        echo "seed $s: block 0 in $(($(date +%s) - t0)) s"
    done
    # the arms, longest first, two at a time
    jobs_file="$out/jobs.txt"
    : > "$jobs_file"
    for a in reference default finetune; do
        case " $arms " in *" $a "*) ;; *) continue ;; esac
        for s in $seeds; do
            [ -f "$out/$a-$s.json" ] || echo "$a $s" >> "$jobs_file"
        done
    done
    run_job() {
        local a=$1 s=$2 t0 cmd
        t0=$(date +%s)
        read -r -a cmd <<< "$(arm_cmd "$a" "$s")"
        "${cmd[@]}" > "$out/$a-$s.txt" 2>&1 || { echo "$a seed $s failed ($out/$a-$s.txt)" >&2; return 1; }
        echo "$a seed $s: $(($(date +%s) - t0)) s"
    }
    running=0 failed=0
    while read -r a s; do
        run_job "$a" "$s" < /dev/null &
        running=$((running + 1))
        if [ "$running" -ge 2 ]; then
            wait -n || failed=1
            running=$((running - 1))
        fi
    done < "$jobs_file"
    while [ "$running" -gt 0 ]; do
        wait -n || failed=1
        running=$((running - 1))
    done
    [ "$failed" = 0 ] || exit 1
fi

python3 - "$out" "$arms" "$seeds" <<'PY'
import json, os, sys
out, arms, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")
print(f"Yelp, CL_k over blocks 1-5 (test; valid H-mean beside), mean of seeds {' '.join(seeds)}")
print(f"{'arm':10} | {'LA / RA / H R@20':24} | {'LA / RA / H N@20':24} | valid H R@20 | seeds' H R@20")
print("-" * 110)
rows, seeds_of = {}, {}
for a in arms:
    have = [s for s in seeds if os.path.exists(f"{out}/{a}-{s}.json")]
    reps = [json.load(open(f"{out}/{a}-{s}.json")) for s in have]
    if not reps:
        continue
    seeds_of[a] = have
    st = [r["student"] for r in reps]
    f = {k: mean([x[k] for x in st]) for k in ("LA_R20", "RA_R20", "H_R20", "LA_N20", "RA_N20", "H_N20")}
    vh = mean([r["student_valid"]["H_R20"] for r in reps])
    print(f"{a:10} | {f['LA_R20']:.4f} / {f['RA_R20']:.4f} / {f['H_R20']:.4f} | "
          f"{f['LA_N20']:.4f} / {f['RA_N20']:.4f} / {f['H_N20']:.4f} | {vh:.4f}       | "
          + ", ".join(f"{x['H_R20']:.4f}" for x in st) + f"  ({len(reps)} seeds)")
    rows[a] = reps
# r_R20[i] is the row after block first_block + i; the arms that resume start at block 1, and
# their CL_0 (= D_0) is the block-0 run's
def block0_row(a, r, s):
    first = r["config"]["first_block"]
    rows = [row[0] for row in r["student"]["r_R20"]]
    if first == 1 and os.path.exists(f"{out}/block0-{s}.json"):
        rows = [json.load(open(f"{out}/block0-{s}.json"))["student"]["r_R20"][0][0]] + rows
    return rows
print("\nCL_k on block 0 after block k (test R@20, r[k][0]), mean of the seeds")
print(f"{'arm':10} | " + " | ".join(f"k={k}" for k in range(6)))
print("-" * 70)
for a in rows:
    per = [block0_row(a, r, s) for r, s in zip(rows[a], seeds_of[a])]
    n = min(len(x) for x in per)
    print(f"{a:10} | " + " | ".join(f"{mean([x[k] for x in per]):.4f}" for k in range(n)))
for a, reps in rows.items():
    b1 = []
    for r in reps:
        i = 1 - r["config"]["first_block"]
        if 0 <= i < len(r["student"]["r_R20"]):
            x = r["student"]["r_R20"][i]
            b1.append(2 / (1 / x[0] + 1 / x[1]))
    if b1:
        print(f"{a}: after block 1, H-mean of CL_1 on blocks 0 and 1, R@20: {mean(b1):.4f} "
              f"(seeds " + ", ".join(f"{x:.4f}" for x in b1) + "; reference 0.0877)")
PY
