#!/usr/bin/env bash
# The synthetic quality suite (a benchmark, not a test): does CCD beat fine-tuning and the
# popularity baseline on data that is not Yelp? Streams of several shapes come from the project's
# generator (models/synth.h, through ccd-replay --synthetic --write-dataset); each is run through
# ccd-offline three ways with the engine's defaults untouched (no config file):
#   ccd        the default engine (full CCD)
#   finetune   -X ccd.preset=finetune: the student fine-tuned on each block, no teachers
#   popularity the most popular items of block k, scored on block k's test split
# and the table compares LA / RA / H-mean R@20 over blocks 1-5 (CL_k: the student after block k on
# block k, on the blocks before it, their harmonic mean) and N@20's H-mean. Popularity has no
# memory, so its column is its mean R@20 over blocks 1-5 on each block's own test, to be read
# against LA. Test figures, reported once: nothing here chooses a default.
#
# Shapes (6 blocks each; generator defaults unless named: 2,000 users, 1,000 items, 40,000 events
# in block 0 and 8,000 in each later one, 200 new users and 100 new items per block, drift 0.3,
# popularity exponent 1, temperature 0.25):
#   base    the generator's defaults
#   sparse  twice the users and items, 3/4 of the events: about 3x sparser
#   drift   taste clusters that move 0.8 per block instead of 0.3
#   churn   600 new users and 300 new items per block instead of 200 and 100
#   flat    weak popularity (exponent 0.2) and diffuse tastes (temperature 0.5)
#
# A candidate setting is judged on the valid splits, never the test ones: CCD_QUALITY_X="k=v ..."
# (ccd-offline -X settings) adds a third run per shape, "variant" (full CCD with them), and a
# second table of valid-split H-means, CCD against the variant (docs/performance.md has the one
# that kept ccd.kd_absent_users off).
#
# Usage: tests/bench/bench_quality.sh [SHAPE...]   (from the project root, after building build/;
# each shape's engine runs go side by side, one thread each; CCD_QUALITY_SEED=S for another
# generator and engine seed, default 1; CCD_QUALITY_KEEP=DIR keeps the datasets and reports)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
seed=${CCD_QUALITY_SEED:-1}
dir=${CCD_QUALITY_KEEP:-$(mktemp -d)}
mkdir -p "$dir"
[ -n "${CCD_QUALITY_KEEP:-}" ] || trap 'rm -rf "$dir"' EXIT

declare -A shape_args=(
    [base]=""
    [sparse]="--synth-users 4000 --synth-items 2000 --synth-events 30000 --synth-block-events 6000"
    [drift]="--synth-drift 0.8"
    [churn]="--synth-new-users 600 --synth-new-items 300"
    [flat]="--synth-popularity 0.2 --synth-temperature 0.5"
)
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(base sparse drift churn flat)

for s in "${shapes[@]}"; do
    [ -n "${shape_args[$s]+x}" ] || { echo "unknown shape $s (${!shape_args[*]})" >&2; exit 2; }
    # shellcheck disable=SC2086 # the shape's options are words
    build/ccd-replay --synthetic --seed "$seed" --blocks 6 ${shape_args[$s]} \
        --write-dataset "$dir/$s" 2> "$dir/$s.gen.txt"
    t0=$(date +%s)
    build/ccd-offline --data "$dir/$s" --threads 1 --quiet -X "ccd.seed=$seed" \
        --report "$dir/$s.ccd.json" > "$dir/$s.ccd.txt" &
    a=$!
    build/ccd-offline --data "$dir/$s" --threads 1 --quiet -X "ccd.seed=$seed" -X ccd.preset=finetune \
        --report "$dir/$s.finetune.json" > "$dir/$s.finetune.txt" &
    b=$!
    if [ -n "${CCD_QUALITY_X:-}" ]; then
        xs=()
        for kv in $CCD_QUALITY_X; do xs+=(-X "$kv"); done
        build/ccd-offline --data "$dir/$s" --threads 1 --quiet -X "ccd.seed=$seed" "${xs[@]}" \
            --report "$dir/$s.variant.json" > "$dir/$s.variant.txt" &
        wait $! || { echo "$s: ccd-offline (variant: $CCD_QUALITY_X) failed" >&2; exit 1; }
    fi
    wait $a || { echo "$s: ccd-offline (ccd) failed" >&2; exit 1; }
    wait $b || { echo "$s: ccd-offline (finetune) failed" >&2; exit 1; }
    echo "$s: users x items from $(awk 'NR == 2 {a = $2 " x " $3} END {print a " to " $2 " x " $3}' "$dir/$s/blocks.tsv"), $(($(date +%s) - t0)) s for the runs"
done

python3 - "$dir" "${CCD_QUALITY_X:-}" "${shapes[@]}" <<'PY'
import json, sys
d, variant, shapes = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"\n{'shape':8} | {'CCD LA / RA / H R@20':24} | {'fine-tune LA / RA / H':24} | "
      f"{'popularity':10} | {'H N@20 CCD / FT':16} | CCD above")
print("-" * 110)
for s in shapes:
    c = json.load(open(f"{d}/{s}.ccd.json"))
    f = json.load(open(f"{d}/{s}.finetune.json"))
    pop = c["popularity"]["R20"][1:]
    pm = sum(pop) / len(pop)
    cs, fs = c["student"], f["student"]
    above = []
    if cs["H_R20"] > fs["H_R20"]: above.append("fine-tune")
    if cs["LA_R20"] > pm: above.append("popularity")
    print(f"{s:8} | {cs['LA_R20']:.4f} / {cs['RA_R20']:.4f} / {cs['H_R20']:.4f} | "
          f"{fs['LA_R20']:.4f} / {fs['RA_R20']:.4f} / {fs['H_R20']:.4f} | {pm:10.4f} | "
          f"{cs['H_N20']:.4f} / {fs['H_N20']:.4f}  | {', '.join(above) or 'neither'}")
if variant:
    print(f"\nvalid splits, CL_k R@20 over blocks 1-5 (LA / RA / H-mean): CCD against {variant}")
    print("-" * 90)
    for s in shapes:
        c = json.load(open(f"{d}/{s}.ccd.json"))["student_valid"]
        v = json.load(open(f"{d}/{s}.variant.json"))["student_valid"]
        print(f"{s:8} | {c['LA_R20']:.4f} / {c['RA_R20']:.4f} / {c['H_R20']:.4f} | "
              f"{v['LA_R20']:.4f} / {v['RA_R20']:.4f} / {v['H_R20']:.4f} | "
              f"H-mean {v['H_R20'] - c['H_R20']:+.4f}")
PY
