#!/usr/bin/env bash
# ccd-offline end to end on the first two Yelp blocks with a tiny configuration: the run
# succeeds, and the JSON report has the documented top-level keys and the student's matrices
# and summaries, with plausible values; the HTML report renders in headless Chromium (screenshot
# not blank, charts drawn) and shows the run's numbers.
# Usage: offline_report.sh CCD_OFFLINE DATA_DIR CONFIG_DIR
set -euo pipefail
bin=$1 data=$2 configs=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
small=(-c "$configs/yelp.ini" --data "$data" --blocks 2 --quiet -X ccd.teachers=mf:16:0
       -X ccd.base.epochs=2 -X ccd.kd.epochs=1 -X ccd.student.epochs=1 -X ccd.teacher.epochs=1)
fail() { echo "FAIL: $*" >&2; exit 1; }
# Unusable outputs are refused before any training, naming the option (exit 2, within seconds).
touch "$out/a-file"
for bad in "--checkpoint $out/a-file/ckpt" "--report $out/missing/r.json" "--html $out"; do
    set +e; msg=$(timeout 60 "$bin" "${small[@]}" $bad 2>&1); rc=$?; set -e
    [ $rc -eq 2 ] || fail "$bad: exit $rc, expected 2 ($msg)"
    grep -q -- "ccd-offline: ${bad%% *}: " <<< "$msg" || fail "$bad: message does not name the option: $msg"
done
# The checkpoint directory and its parent do not exist yet: ccd-offline creates them. The config
# file's name has a quote and a backslash: the report (JSON written by jansson) must still parse.
weird="$out/we\"ird\\name.ini"
cp "$configs/yelp.ini" "$weird"
"$bin" "${small[@]}" -c "$weird" --report "$out/r.json" --checkpoint "$out/new/ckpt" --html "$out/r.html" > "$out/stdout"
cat "$out/stdout"
# The report's documented keys; prints the student's block-1 test R@20 (r[1][1]).
r11=$(python3 - "$out/r.json" "$weird" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("student", "student_valid", "ensemble", "distilled", "popularity", "seconds",
          "peak_rss_mb", "config"):
    assert k in r, "report lacks " + k
# the valid splits' matrices beside the test ones: same shape, other figures
v, t = r["student_valid"], r["student"]
assert [len(x) for x in v["r_R20"]] == [len(x) for x in t["r_R20"]], v
assert all(0 < x <= 1 for row in v["r_R20"] for x in row) and v["r_R20"] != t["r_R20"], v
assert "H_R20" in v and "LA_N20" in v, v
# the popularity baseline: one figure per block, a recall, and below the trained student's
pop = r["popularity"]
assert len(pop["R20"]) == len(pop["N20"]) == len(r["student"]["r_R20"]), pop
assert all(0 < x < 1 for x in pop["R20"] + pop["N20"]), pop
assert pop["R20"][-1] < r["student"]["r_R20"][-1][-1], (pop, r["student"]["r_R20"])
for k in ("r_R20", "r_N20", "LA_R20", "RA_R20", "H_R20", "LA_N20", "RA_N20", "H_N20"):
    assert k in r["student"], "student lacks " + k
assert r["config"]["file"] == sys.argv[2], "config.file is %r" % r["config"]["file"]
assert r["config"]["settings"]["ccd"]["teachers"] == "mf:16:0", r["config"]["settings"]["ccd"]
print(r["student"]["r_R20"][-1][-1])
PY
) || fail "JSON report: $r11"
awk -v x="$r11" 'BEGIN { exit !(x > 0.02 && x <= 1) }' || fail "r[1][1] = $r11"
grep -q "LA / RA / H-mean" "$out/stdout" || fail "no summary line"
grep -q "CL_k on the valid splits: LA / RA / H-mean" "$out/stdout" || fail "no valid summary line"
# The HTML report: rendered by Chromium, with the summary and r[1][1] as printed by the run.
summary=$(grep -o 'R@20 [0-9.]* / [0-9.]* / [0-9.]*' "$out/stdout" | head -1 | sed 's/^R@20 //')
[ -n "$summary" ] || fail "cannot read the summary"
python3 "$(dirname "$0")/html_screenshot.py" "$out/r.html" "$out/r.png" "$summary" "$(printf '%.4f' "$r11")" \
    "ensemble E_k" "popularity baseline" "Seconds per block" || fail "HTML report"
# Resuming from the block-0 checkpoint reproduces block 1 exactly (metrics, not timings).
[ -s "$out/new/ckpt/state-0.bin" ] && [ -s "$out/new/ckpt/state-1.bin" ] || fail "no checkpoints written"
"$bin" "${small[@]}" --resume "$out/new/ckpt/state-0.bin" > "$out/resumed"
metrics() { grep '^block 1:' "$1" | sed 's/.*); //; s/; peak RSS.*//'; }
[ -n "$(metrics "$out/stdout")" ] || fail "no block-1 line"
[ "$(metrics "$out/stdout")" = "$(metrics "$out/resumed")" ] ||
    fail "resumed run differs: '$(metrics "$out/stdout")' vs '$(metrics "$out/resumed")'"
# A truncated checkpoint is refused with a message.
head -c 1000 "$out/new/ckpt/state-1.bin" > "$out/bad.bin"
if "$bin" "${small[@]}" --resume "$out/bad.bin" > /dev/null 2> "$out/err"; then fail "truncated state accepted"; fi
grep -q "truncated" "$out/err" || fail "unclear error: $(cat "$out/err")"
echo "offline report ok: r[1][1] = $r11; resumed block 1 identical: $(metrics "$out/resumed")"
