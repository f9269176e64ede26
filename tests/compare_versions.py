#!/usr/bin/env python3
"""Compares the versions one run published with an undisturbed reference run's (the crash and stall
tests): every version of the run holds, bit for bit, the same user and item vectors and meta as the
reference's version of the same block; the reference's every block was published; the final live
versions are the same block; each block counted exactly the events ccd-replay produced for it.
Usage: compare_versions.py REDIS_HOST REDIS_PORT REF_PREFIX RUN_PREFIX OUT_DIR MODEL...
(OUT_DIR holds replay-MODEL.txt, ccd-replay's output). Exit status 1 with FAIL lines on a mismatch.
Provisional versions (meta provisional=1, the fast path's: docs/fastpath.md) are skipped on both
sides: which student they start from depends on timing; only exact versions are bit-identical."""
import csv, io, subprocess, sys
host, port, pref_ref, pref_crash, out = sys.argv[1:6]
models = sys.argv[6:]

def cli(*args):
    r = subprocess.run(["redis-cli", "-h", host, "-p", port, "--csv"] + list(args), capture_output=True)
    if r.returncode != 0:
        sys.exit("FAIL: redis-cli %s: %s" % (args, r.stderr.decode()))
    text = r.stdout.decode("latin-1").strip()
    return next(csv.reader(io.StringIO(text))) if text else []

def pairs(key):
    v = cli("HGETALL", key)
    return dict(zip(v[0::2], v[1::2]))

def versions(prefix, m):
    v = cli("ZRANGE", "%s:{%s}:versions" % (prefix, m), "0", "-1")
    return [int(x) for x in v]

FIELDS = ["block", "events", "events_total", "users", "items", "dim", "new_users", "new_items",
          "holdout_recall20", "holdout_ndcg20", "holdout_users"]
bad = []
import re
produced = {}   # model -> {block: events sent}, from ccd-replay's per-block lines
for m in models:
    produced[m] = {int(a): int(b) for a, b in
                   re.findall(r"block (\d+): (\d+) events", open("%s/replay-%s.txt" % (out, m)).read())}
    if len(produced[m]) < 5:
        sys.exit("FAIL: cannot read ccd-replay's block counts for %s" % m)
for m in models:
    ref = {}
    for v in versions(pref_ref, m):
        meta = pairs("%s:{%s}:v%d:meta" % (pref_ref, m, v))
        if meta.get("provisional") == "1":
            continue
        ref[int(meta["block"])] = (v, meta)
    if not ref:
        bad.append("%s: the reference published nothing" % m)
        continue
    vecs = {}
    def vectors(prefix, v):
        return (pairs("%s:{%s}:v%d:user" % (prefix, m, v)), pairs("%s:{%s}:v%d:item" % (prefix, m, v)))
    for b, (v, meta) in ref.items():
        vecs[b] = vectors(pref_ref, v)
    crash_versions = versions(pref_crash, m)
    seen_blocks = {}
    for v in crash_versions:
        meta = pairs("%s:{%s}:v%d:meta" % (pref_crash, m, v))
        if meta.get("provisional") == "1":
            continue
        b = int(meta["block"])
        seen_blocks[b] = seen_blocks.get(b, 0) + 1
        if b not in ref:
            bad.append("%s v%d: block %d not in the reference" % (m, v, b))
            continue
        for f in FIELDS:
            if meta.get(f) != ref[b][1].get(f):
                bad.append("%s v%d block %d: meta %s %s != reference %s" % (m, v, b, f, meta.get(f), ref[b][1].get(f)))
        u, i = vectors(pref_crash, v)
        if (u, i) != vecs[b]:
            diff = sum(1 for k in u if u.get(k) != vecs[b][0].get(k)) + sum(1 for k in i if i.get(k) != vecs[b][1].get(k))
            bad.append("%s v%d block %d: vectors differ from the reference (%d rows differ, %d/%d users, %d/%d items)"
                       % (m, v, b, diff, len(u), len(vecs[b][0]), len(i), len(vecs[b][1])))
    for b in ref:
        if b not in seen_blocks:
            bad.append("%s: block %d never published by the crashed run" % (m, b))
    cur_ref = int(cli("GET", "%s:{%s}:current" % (pref_ref, m))[0])
    cur_crash = int(cli("GET", "%s:{%s}:current" % (pref_crash, m))[0])
    mr = pairs("%s:{%s}:v%d:meta" % (pref_ref, m, cur_ref))
    mc = pairs("%s:{%s}:v%d:meta" % (pref_crash, m, cur_crash))
    if mc.get("provisional") == "1":
        bad.append("%s: the run's live version v%d is still provisional" % (m, cur_crash))
    if mr["block"] != mc["block"]:
        bad.append("%s: live block %s, reference %s" % (m, mc["block"], mr["block"]))
    events = [int(ref[b][1]["events"]) for b in sorted(ref)]
    for b in sorted(ref):
        if int(ref[b][1]["events"]) != produced[m].get(b):
            bad.append("%s block %d: %s events counted, %s produced" % (m, b, ref[b][1]["events"], produced[m].get(b)))
    if sum(events) != int(mr["events_total"]):
        bad.append("%s: block events %s do not add up to events_total %s" % (m, events, mr["events_total"]))
    repub = sum(n - 1 for n in seen_blocks.values())
    print("%s: %d blocks, events per block %s = produced (total %d), %d versions in the run (%d re-publications), "
          "all bit-identical to the reference" % (m, len(ref), events, sum(events), len(crash_versions), repub)
          if not bad else "%s: checked" % m)
if bad:
    sys.exit("FAIL:\n  " + "\n  ".join(bad[:30]))
