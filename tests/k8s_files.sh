#!/usr/bin/env bash
# Keeps docker/k8s/ and docker/grafana/ in step with the worker (no cluster is needed, and none is
# reachable here: kubectl's own validation needs an API server, so the manifest's structure is
# checked by this script instead):
#   - the manifest parses into a ConfigMap, Secret, Deployment, PodDisruptionBudget and Service;
#   - the ConfigMap's worker.ini passes ccd-worker --check, with the Deployment's environment and
#     the Secret's files where the pod mounts them (KEY_file and ${VAR} included);
#   - the probes are /healthz and /readyz on the port metrics.listen names; the grace period covers
#     worker.shutdown_timeout_ms plus 5 s; the pod runs as the image's non-root user; the image
#     tag is this build's version; every mount the config reads from exists;
#   - every metric the Grafana dashboard queries is one the worker exports (worker/metrics.c).
# Usage: k8s_files.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
version=$("$build/ccd-worker" --version | awk '{print $2}')
python3 - "$build" "$src" "$version" <<'PY'
import json, os, re, subprocess, sys, tempfile, yaml
build, src, version = sys.argv[1:]
def fail(msg):
    sys.exit("FAIL: " + msg)
docs = [d for d in yaml.safe_load_all(open(os.path.join(src, "docker/k8s/ccd-worker.yaml"))) if d]
by_kind = {d["kind"]: d for d in docs}
for kind in ("ConfigMap", "Secret", "Deployment", "PodDisruptionBudget", "Service"):
    if kind not in by_kind:
        fail(f"the manifest has no {kind}")
cm, secret, dep = by_kind["ConfigMap"], by_kind["Secret"], by_kind["Deployment"]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
if not c["image"].endswith(":" + version):
    fail(f"image {c['image']} is not this build's version {version}")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
vols = {v["name"]: v for v in pod["volumes"]}
cfg_mount = next(mounts[n] for n, v in vols.items() if "configMap" in v)
sec_mount = next(mounts[n] for n, v in vols.items() if "secret" in v)
args = c["args"]
if args[0] != "ccd-worker" or args[args.index("-c") + 1] != cfg_mount + "/worker.ini":
    fail(f"the container does not run ccd-worker -c {cfg_mount}/worker.ini: {args}")
# the config as the pod sees it: secrets as files, the image's schema path, the pod's environment
tmp = tempfile.mkdtemp()
for k, v in secret["stringData"].items():
    open(os.path.join(tmp, k), "w").write(v)
text = cm["data"]["worker.ini"].replace(sec_mount + "/", tmp + "/").replace("/etc/ccd/schemas/", src + "/schemas/")
for p in re.findall(r"/[\w./-]+", text):
    if p.startswith(("/etc/", "/run/", "/var/")):
        fail(f"worker.ini reads {p}, which no volume of the pod mounts")
ini = os.path.join(tmp, "worker.ini")
open(ini, "w").write(text)
env = dict(os.environ)
for e in c["env"]:
    env[e["name"]] = e.get("value", "pod-0")  # fieldRef values: a stand-in
r = subprocess.run([os.path.join(build, "ccd-worker"), "-c", ini, "--check"], env=env, capture_output=True, text=True)
if r.returncode != 0:
    fail("worker.ini does not pass --check: " + r.stderr)
if "change-me" in r.stdout + r.stderr:
    fail("--check printed a secret")
# probes, ports, grace period, user
port = int(re.search(r"^listen\s*=\s*[\d.]+:(\d+)", cm["data"]["worker.ini"], re.M).group(1))
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    g = c[probe]["httpGet"]
    if g["path"] != path or ports.get(g["port"], g["port"]) != port:
        fail(f"{probe} is {g}, expected {path} on port {port}")
m = re.search(r"^shutdown_timeout_ms\s*=\s*(\d+)", cm["data"]["worker.ini"], re.M)
shutdown_ms = int(m.group(1)) if m else 25000
if pod["terminationGracePeriodSeconds"] * 1000 < shutdown_ms + 5000:
    fail(f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} does not cover worker.shutdown_timeout_ms {shutdown_ms} + 5 s")
uid = re.search(r"--uid (\d+)", open(os.path.join(src, "docker/Dockerfile")).read()).group(1)
sc = pod["securityContext"]
if not sc.get("runAsNonRoot") or str(sc.get("runAsUser")) != uid or str(sc.get("fsGroup")) != uid:
    fail(f"the pod does not run as the image's user {uid} (with it as fsGroup, for the secrets)")
# the dashboard's metrics exist
dash = json.load(open(os.path.join(src, "docker/grafana/ccd-stream.json")))
exported = set(re.findall(r'"(ccd_[a-z0-9_]+)', open(os.path.join(src, "worker/metrics.c")).read()))
exported |= set(re.findall(r'\b(ccd_[a-z0-9_]+)[{ ]', open(os.path.join(src, "worker/metrics.c")).read()))
n = 0
for p in dash["panels"]:
    for t in p["targets"]:
        for name in re.findall(r"\bccd_[a-z0-9_]+", t["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in exported and base not in exported:
                fail(f"dashboard panel '{p['title']}' queries {name}, which the worker does not export")
            n += 1
print(f"k8s files ok: {len(docs)} objects, worker.ini passes --check, probes on :{port}, "
      f"grace {pod['terminationGracePeriodSeconds']} s >= {shutdown_ms / 1000:.0f} s + 5 s; "
      f"dashboard: {len(dash['panels'])} panels, {n} metric references all exported")
PY
