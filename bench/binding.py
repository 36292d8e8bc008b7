"""PV binding at scale: n static PVs and n PVCs created through the API, all ending Bound.

Starts a real apiserver (bench/common.py) and a real `storagelab controllers` process per run,
creates the PVs and then the PVCs through the API (8 concurrent clients, controllers
running), and follows a watch on PVCs until every claim is Bound. Prints JSON lines:
`binding_wall_time` (first create to last Bound), `binding_per_claim` (that over n, whose
flatness across n is the linearity check), `late_pv_bind_latency_max` (a claim created before
its PV binds this long after the PV appears), and with `--released` the per-claim cost with
that many Released PVs present. Usage: `.venv/bin/python bench/binding.py --n 1000 10000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common

LINEAR_ANCHOR = "linear scaling: per-claim cost at n equals the cost at the smallest n"
LATE_ANCHOR = "issue target: a PVC created before its PV binds within 1 s of the PV"
CONCURRENCY = 8


def pv(name: str, cls: str, claim_ref: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                            "hostPath": {"path": f"/tmp/{name}"}, "storageClassName": cls}
    if claim_ref:
        spec["claimRef"] = claim_ref
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": spec}


def pvc(name: str, cls: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "resources": {"requests": {"storage": "1Gi"}}}}


def ssl_context(handle: common.ServerHandle) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(handle.pki / "ca.crt"))
    context.load_cert_chain(str(handle.pki / "admin.crt"), str(handle.pki / "admin.key"))
    return context


async def create_all(handle: common.ServerHandle, bodies: list[tuple[str, dict[str, Any]]]
                     ) -> None:
    """POST every (path, body), CONCURRENCY at a time, retrying transient failures."""
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=handle.url, verify=ssl_context(handle), timeout=120,
                                 limits=limits) as client:
        queue = list(reversed(bodies))

        async def worker() -> None:
            while queue:
                path, body = queue.pop()
                for _ in range(5):
                    r = await client.post(path, json=body)
                    if r.status_code in (201, 409):
                        break
                    await asyncio.sleep(0.5)
                else:
                    raise common.BenchError(f"create {path} failed: {r.text}")
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


class BoundWatcher:
    """Follows PVCs in one namespace on a watch and notes when `target` of them are Bound."""

    def __init__(self, handle: common.ServerHandle, namespace: str, target: int) -> None:
        self.handle, self.namespace, self.target = handle, namespace, target
        self.bound: set[str] = set()
        self.done_at: float | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims"
        with self.handle.client(timeout=None) as client, \
                client.stream("GET", path, params={"watch": "true"}) as stream:  # type: ignore[arg-type]
            for line in stream.iter_lines():
                obj = json.loads(line)["object"]
                if (obj.get("status") or {}).get("phase") == "Bound":
                    self.bound.add(obj["metadata"]["name"])
                if len(self.bound) >= self.target:
                    self.done_at = time.monotonic()
                    self.done.set()
                    return


def make_namespace(handle: common.ServerHandle, name: str) -> None:
    with handle.client() as client:
        r = client.post("/api/v1/namespaces", json={"metadata": {"name": name}})
        if r.status_code != 201:
            raise common.BenchError(r.text)


def bind_n(handle: common.ServerHandle, n: int, cls: str) -> tuple[float, float]:
    """Create n PVs, then n PVCs; (seconds to all Bound, seconds after last create)."""
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    make_namespace(handle, ns)
    watcher = BoundWatcher(handle, ns, n)
    watcher.thread.start()
    # The static way: an administrator's PVs first, then users' claims (controllers running).
    bodies = [("/api/v1/persistentvolumes", pv(f"{cls}-{i}", cls)) for i in range(n)]
    bodies += [(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", pvc(f"c{i}", cls))
               for i in range(n)]
    start = time.monotonic()
    asyncio.run(create_all(handle, bodies))
    created = time.monotonic()
    if not watcher.done.wait(timeout=max(600.0, n * 0.2)):
        raise common.BenchError(f"only {len(watcher.bound)} of {n} claims bound")
    assert watcher.done_at is not None
    return watcher.done_at - start, watcher.done_at - created


def late_pv_latency(handle: common.ServerHandle, samples: int) -> list[float]:
    """Claim first, PV 0.5 s later: seconds from the PV's creation to the claim Bound."""
    ns = f"late-{uuid.uuid4().hex[:6]}"
    make_namespace(handle, ns)
    latencies = []
    with handle.client() as client:
        for i in range(samples):
            cls = f"late-{uuid.uuid4().hex[:6]}"
            client.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", json=pvc(f"c{i}", cls))
            time.sleep(0.5)
            start = time.monotonic()
            client.post("/api/v1/persistentvolumes", json=pv(cls, cls))
            while client.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/c{i}").json()[
                    "status"].get("phase") != "Bound":
                if time.monotonic() - start > 30:
                    raise common.BenchError("late claim never bound")
                time.sleep(0.01)
            latencies.append(time.monotonic() - start)
    return latencies


def add_released(handle: common.ServerHandle, count: int) -> None:
    """`count` PVs bound to claims that no longer exist: the controller marks them Released."""
    bodies = [("/api/v1/persistentvolumes", pv(f"released-{i}", "old", {
        "kind": "PersistentVolumeClaim", "namespace": "gone", "name": f"ghost-{i}",
        "uid": str(uuid.uuid4())})) for i in range(count)]
    asyncio.run(create_all(handle, bodies))
    with handle.client() as client:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            items = client.get("/api/v1/persistentvolumes").json()["items"]
            if sum(1 for v in items if v["status"].get("phase") == "Released") >= count:
                return
            time.sleep(2)
    raise common.BenchError("Released volumes never settled")


def write_latency(handle: common.ServerHandle, samples: int = 30) -> float:
    """Median seconds of one sequential write (a ConfigMap create) on this server right now.

    The store commits writes one at a time, so binding (five writes per claim, two creates
    per pair) cannot beat this; quoting it beside the per-claim cost keeps a run on a busy
    machine comparable with one on an idle machine.
    """
    ns = f"lat-{uuid.uuid4().hex[:6]}"
    make_namespace(handle, ns)
    times = []
    with handle.client() as client:
        for i in range(samples):
            start = time.monotonic()
            client.post(f"/api/v1/namespaces/{ns}/configmaps",
                        json={"metadata": {"name": f"w{i}"}, "data": {"k": "v"}})
            times.append(time.monotonic() - start)
    return common.percentile(times, 50)


def run_one(n: int, released: int, late_samples: int, database_url: str) -> float:
    with common.apiserver(database_url) as handle:
        data_dir = handle.pki.parent
        controllers = common.start_controllers(data_dir)
        try:
            if released:
                add_released(handle, released)
            before = write_latency(handle)
            wall, after = bind_n(handle, n, f"sc{n}")
            write_ms = (before + write_latency(handle)) / 2 * 1000
            suffix = f"_with_{released}_released" if released else ""
            common.emit(f"binding_wall_time{suffix}", wall, "s", n, anchor=LINEAR_ANCHOR,
                        after_last_create_s=round(after, 3), released=released)
            per_claim = wall / n * 1000
            common.emit(f"binding_per_claim{suffix}", per_claim, "ms", n, anchor=LINEAR_ANCHOR,
                        released=released, api_write_p50_ms=round(write_ms, 2),
                        per_claim_in_writes=round(per_claim / write_ms, 2))
            if late_samples:
                lat = late_pv_latency(handle, late_samples)
                common.emit("late_pv_bind_latency_max", max(lat), "s", len(lat),
                            anchor=LATE_ANCHOR, anchor_value=1.0,
                            p50=round(common.percentile(lat, 50), 3), existing_bound=n)
            return per_claim
        finally:
            common.stop(controllers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--released", type=int, default=5000,
                        help="Released PVs present in the extra run (0: skip it)")
    parser.add_argument("--released-n", type=int, default=1000)
    parser.add_argument("--late-samples", type=int, default=10)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    try:
        for n in args.n:
            run_one(n, 0, args.late_samples, args.database_url)
        if args.released:
            run_one(args.released_n, args.released, 0, args.database_url)
    except common.BenchError as e:
        print(f"bench/binding.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
