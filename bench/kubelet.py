"""The kubelet's two latencies users feel: pod start with every volume kind, and a
configMap update reaching the mounted file.

Starts a real apiserver (bench/common.py) and a real `storagelab kubelet` on Docker (root,
a running dockerd and `busybox:latest` from `storagelab images build` are needed), then:
`pod_start_p50/p99`: from the pod's create to both of its containers running, for a pod
with an emptyDir, a configMap, a secret and a PVC on a hostPath PV (each round makes a new
configMap, secret, PV and claim, so volume setup is measured, not a warm cache), on a quiet
node: the previous round's pod is deleted and its containers gone first, the condition of
Kubernetes' pod startup SLO; `pod_start_during_teardown_p50/p99`: the same while the
previous round's pod is being deleted (a rolling update's case);
`configmap_update_p50/p99`: from a configMap PATCH's answer to the new content in the
mounted file (read on the node, through the volume's `..data` link, every 5 ms).
Usage: `.venv/bin/python -m bench.kubelet [--pods 20] [--updates 50]`.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common

NODE = "bench-node"
POD_STARTUP_ANCHOR = ("Kubernetes SLO: p99 pod startup (stateless, image present) <= 5 s")
POD_STARTUP_SLO_S = 5.0
CONFIGMAP_ANCHOR = ("Kubernetes docs: a mounted ConfigMap update takes up to the kubelet sync "
                    "period (60 s default) plus the cache propagation delay")
CONFIGMAP_ANCHOR_S = 60.0
MERGE = {"Content-Type": "application/merge-patch+json"}
POD_UID = "io.kubernetes.pod.uid"


def _create(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    r = api.post(path, json=body)
    if r.status_code != 201:
        raise common.BenchError(f"POST {path}: {r.status_code} {r.text}")


def _bound_claim(api: httpx.Client, ns: str, name: str, host: Path) -> None:
    _create(api, "/api/v1/persistentvolumes", {"metadata": {"name": f"{ns}-{name}"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
        "hostPath": {"path": str(host), "type": "DirectoryOrCreate"},
        "claimRef": {"namespace": ns, "name": name}}})
    _create(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
                                             "volumeName": f"{ns}-{name}",
                                             "resources": {"requests": {"storage": "1Gi"}}}})
    for path in (f"/api/v1/persistentvolumes/{ns}-{name}/status",
                 f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}/status"):
        api.patch(path, json={"status": {"phase": "Bound"}}, headers=MERGE)


def _pod(name: str, suffix: str) -> dict[str, Any]:
    mounts = [{"name": n, "mountPath": f"/{n}"} for n in ("scratch", "cfg", "sec", "data")]
    container = {"image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "3600"], "volumeMounts": mounts}
    return {"metadata": {"name": name}, "spec": {
        "nodeName": NODE, "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "a", **container}, {"name": "b", **container}],
        "volumes": [{"name": "scratch", "emptyDir": {}},
                    {"name": "cfg", "configMap": {"name": f"cm-{suffix}"}},
                    {"name": "sec", "secret": {"secretName": f"sec-{suffix}"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": f"pvc-{suffix}"}}]}}


def _running(api: httpx.Client, ns: str, name: str) -> dict[str, Any] | None:
    pod = api.get(f"/api/v1/namespaces/{ns}/pods/{name}").json()
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    ok = len(statuses) == 2 and all("running" in s["state"] for s in statuses)
    return pod if ok else None


def _wait(what: str, check: Any, timeout: float = 60, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise common.BenchError(f"timed out: {what}")


def start_round(api: httpx.Client, ns: str, i: int, tmp: Path) -> tuple[float, dict[str, Any]]:
    suffix = str(i)
    _create(api, f"/api/v1/namespaces/{ns}/configmaps",
            {"metadata": {"name": f"cm-{suffix}"}, "data": {"k": "v0"}})
    _create(api, f"/api/v1/namespaces/{ns}/secrets",
            {"metadata": {"name": f"sec-{suffix}"}, "data": {"k": base64.b64encode(b"s").decode()}})
    _bound_claim(api, ns, f"pvc-{suffix}", tmp / f"pv-{suffix}")
    started = time.monotonic()
    _create(api, f"/api/v1/namespaces/{ns}/pods", _pod(f"p{suffix}", suffix))
    pod = _wait("pod running", lambda: _running(api, ns, f"p{suffix}"), every=0.02)
    return time.monotonic() - started, pod


def update_latencies(api: httpx.Client, ns: str, root: Path, pod: dict[str, Any],
                     updates: int) -> list[float]:
    suffix = pod["metadata"]["name"][1:]
    path = (root / "pods" / pod["metadata"]["uid"] / "volumes" / "kubernetes.io~configmap"
            / "cfg" / "k")
    out = []
    for n in range(1, updates + 1):
        value = f"v{n}"
        api.patch(f"/api/v1/namespaces/{ns}/configmaps/cm-{suffix}", json={"data": {"k": value}},
                  headers=MERGE)
        acknowledged = time.monotonic()
        _wait("update visible", lambda v=value: path.exists() and path.read_text() == v,
              every=0.005)
        out.append(time.monotonic() - acknowledged)
    return out


def run(pods: int, updates: int) -> None:
    subprocess.run([sys.executable, "-m", "storagelab.cli", "images", "build"], check=True,
                   cwd=common.REPO, stdout=sys.stderr)
    with common.apiserver() as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        data_dir = server.pki.parent
        with open(tmp / "kubelet.log", "ab") as log:
            kubelet = subprocess.Popen(
                [sys.executable, "-m", "storagelab.cli", "kubelet", "--node", NODE,
                 "--data-dir", str(data_dir), "--root-dir", str(root)],
                cwd=common.REPO, stdout=log, stderr=log)
        try:
            measure(server, root, tmp, pods, updates)
        finally:
            kubelet.terminate()
            kubelet.wait(20)


def measure(server: common.ServerHandle, root: Path, tmp: Path, pods: int,
            updates: int) -> None:
    with server.client() as api:
        ns = f"bench-{uuid.uuid4().hex[:6]}"
        _create(api, "/api/v1/namespaces", {"metadata": {"name": ns}})
        _wait("node registered", lambda: api.get(f"/api/v1/nodes/{NODE}").status_code == 200,
              timeout=60, every=0.2)
        quiet: list[float] = []
        last: dict[str, Any] | None = None
        for i in range(pods):
            if last is not None:
                _delete_and_wait(api, ns, last, root)
            seconds, last = start_round(api, ns, i, tmp)
            quiet.append(seconds)
        busy: list[float] = []
        for i in range(pods, 2 * pods):
            assert last is not None
            # Its teardown runs while the next pod starts.
            api.delete(f"/api/v1/namespaces/{ns}/pods/{last['metadata']['name']}")
            seconds, last = start_round(api, ns, i, tmp)
            busy.append(seconds)
        emit_pair("pod_start", quiet, POD_STARTUP_ANCHOR, POD_STARTUP_SLO_S)
        emit_pair("pod_start_during_teardown", busy, POD_STARTUP_ANCHOR, POD_STARTUP_SLO_S)
        assert last is not None
        emit_pair("configmap_update", update_latencies(api, ns, root, last, updates),
                  CONFIGMAP_ANCHOR, CONFIGMAP_ANCHOR_S)
        api.delete(f"/api/v1/namespaces/{ns}/pods/{last['metadata']['name']}")
        _wait("cleanup", lambda: not (root / "pods").exists() or not any(
            (root / "pods").iterdir()), timeout=60, every=0.2)


def _delete_and_wait(api: httpx.Client, ns: str, pod: dict[str, Any], root: Path) -> None:
    """Delete a pod and wait until the node shows nothing of it: no container, no
    directory."""
    import docker
    client = docker.from_env()
    uid = pod["metadata"]["uid"]
    api.delete(f"/api/v1/namespaces/{ns}/pods/{pod['metadata']['name']}")
    _wait("pod torn down", lambda: not (root / "pods" / uid).exists() and not client
          .containers.list(all=True, sparse=True, filters={"label": f"{POD_UID}={uid}"}),
          timeout=60, every=0.05)


def emit_pair(name: str, samples: list[float], anchor: str, anchor_value: float) -> None:
    for p in (50, 99):
        common.emit(f"{name}_p{p}", common.percentile(samples, p), "s", len(samples),
                    anchor=anchor, anchor_value=anchor_value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--updates", type=int, default=50)
    args = parser.parse_args()
    try:
        run(args.pods, args.updates)
    except common.BenchError as e:
        print(f"bench/kubelet.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
