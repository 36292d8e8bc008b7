"""Dynamic provisioning speed: N claims of a local class created at once, until all are Bound.

A real `storagelab apiserver` and a real `storagelab controllers` (the controller-manager
`make up` runs, every controller in it, under leader election), each its own process, with
the local driver on a temp dir. Prints volumes per second (claims Bound / seconds from the
first create to the last Bound) and the p50/p95 of each claim's creation-to-Bound time (from
its create's answer to its Bound event on a watch). Issue target: >= 40 volumes/s and
p50 <= 100 ms for 500 claims.

"At once" is measured two ways (`--clients`): 16 clients each creating claims back to back
(a burst from several writers), and 1 client creating them one after another (what
`kubectl create -f` with 500 claims does). A measurement starts on a fresh apiserver and
controller-manager, after one warm-up claim is Bound.

`--driver nfs-sftp` measures the nfs driver instead, managing its directories over SFTP
through a real sshd on a loopback port (started here, as the tests start it; the export is
a temporary directory, since provisioning never mounts it). There is no target for it: the
issue asks for it beside the local figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import common
from storage import provisioner

THROUGHPUT_ANCHOR = "issue target: >= 40 volumes per second (500 PVCs, local driver)"
LATENCY_ANCHOR = "issue target: p50 PVC-created-to-Bound <= 100 ms"
CLIENTS = (16, 1)
WARM_UP_TIMEOUT = 60.0
NODE = "bench-node"  # the local driver's one node: Immediate claims go there


class BoundTimes:
    """Watches claims in one namespace; notes the first Bound time of each expected claim."""

    def __init__(self, handle: common.ServerHandle, namespace: str, names: list[str]) -> None:
        self.handle, self.namespace, self.expected = handle, namespace, set(names)
        self.bound: dict[str, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims"
        with self.handle.client(timeout=3600) as client, \
                client.stream("GET", path, params={"watch": "true"}) as stream:
            for line in stream.iter_lines():
                obj = json.loads(line)["object"]
                name = obj["metadata"]["name"]
                if (obj.get("status") or {}).get("phase") == "Bound" and \
                        name in self.expected and name not in self.bound:
                    self.bound[name] = time.monotonic()
                if len(self.bound) >= len(self.expected):
                    self.done.set()
                    return


def claim(name: str, cls: str) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "resources": {"requests": {"storage": "1Mi"}}}}


async def create_all(handle: common.ServerHandle, namespace: str, names: list[str], cls: str,
                     clients: int, rate: float = 0.0) -> dict[str, float]:
    """Create every claim (`clients` at a time; claim i not before i/rate seconds when a
    rate is given); each claim's creation time (when the API answered)."""
    created: dict[str, float] = {}
    queue = list(reversed(names))
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=handle.url, verify=_ssl(handle),
                                 timeout=120) as client:
        async def worker() -> None:
            while queue:
                due = start + (len(names) - len(queue)) / rate if rate else 0.0
                name = queue.pop()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                r = await client.post(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
                                      json=claim(name, cls))
                if r.status_code != 201:
                    raise common.BenchError(f"create {name}: {r.text}")
                created[name] = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(clients)))
    return created


def _ssl(handle: common.ServerHandle) -> Any:
    import ssl
    context = ssl.create_default_context(cafile=str(handle.pki / "ca.crt"))
    context.load_cert_chain(str(handle.pki / "admin.crt"), str(handle.pki / "admin.key"))
    return context


def setup(handle: common.ServerHandle, namespace: str, cls: str, driver: str,
          parameters: dict[str, str]) -> None:
    with handle.client() as client:
        r = client.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
        if r.status_code != 201:
            raise common.BenchError(r.text)
        r = client.post("/apis/storage.k8s.io/v1/storageclasses", json={
            "metadata": {"name": cls}, "provisioner": driver,
            "volumeBindingMode": "Immediate", "reclaimPolicy": "Delete",
            "parameters": parameters})
        if r.status_code != 201:
            raise common.BenchError(r.text)


def warm_up(handle: common.ServerHandle, namespace: str, cls: str, log: Path) -> None:
    """One claim Bound: the controllers lead, have synced, and see the class."""
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    with handle.client() as client:
        r = client.post(path, json=claim("warm-up", cls))
        if r.status_code != 201:
            raise common.BenchError(r.text)
        deadline = time.monotonic() + WARM_UP_TIMEOUT
        while time.monotonic() < deadline:
            if (client.get(f"{path}/warm-up").json().get("status") or {}).get(
                    "phase") == "Bound":
                return
            time.sleep(0.05)
        events = client.get(f"/api/v1/namespaces/{namespace}/events").json()["items"]
    said = "; ".join(f"{e['reason']}: {e['message']}" for e in events) or "no events"
    raise common.BenchError(f"the warm-up claim was not Bound within {WARM_UP_TIMEOUT:.0f} s "
                            f"({said}); controllers' log: {log}")


@contextlib.contextmanager
def sftp_server(work: Path) -> Iterator[Any]:
    from tests.node import sshd  # the tests' real sshd on a loopback port
    home = work / "sshd"
    home.mkdir()
    server = sshd.Sshd.create(home).start()
    try:
        yield server
    finally:
        server.stop()


def run(n: int, database_url: str, driver: str, clients: int, rate: float) -> None:
    with common.apiserver(database_url) as handle, \
            tempfile.TemporaryDirectory(prefix="bench-prov-") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        (work / "local").mkdir()
        data = handle.pki.parent
        controllers = common.start_controllers(data, "--local-path", f"{NODE}={work / 'local'}")
        stack.callback(common.stop, controllers)
        namespace, cls = f"prov-{uuid.uuid4().hex[:6]}", f"bench-{uuid.uuid4().hex[:6]}"
        name, parameters = provisioner.LOCAL, {"enforce": "none"}
        if driver == "nfs-sftp":
            server = stack.enter_context(sftp_server(work))
            (work / "export").mkdir()
            name, parameters = provisioner.NFS, {
                "server": "127.0.0.1", "share": str(work / "export"),
                "sshPort": str(server.port),
                "csi.storage.k8s.io/provisioner-secret-name": "sftp",
                "csi.storage.k8s.io/provisioner-secret-namespace": namespace}
        setup(handle, namespace, cls, name, parameters)
        if driver == "nfs-sftp":
            with handle.client() as client:
                r = client.post(f"/api/v1/namespaces/{namespace}/secrets", json={
                    "metadata": {"name": "sftp"}, "stringData": server.secrets()})
                if r.status_code != 201:
                    raise common.BenchError(r.text)
        warm_up(handle, namespace, cls, data / "controllers.log")
        measure(handle, namespace, cls, n, driver, clients, rate)


def measure(handle: common.ServerHandle, namespace: str, cls: str, n: int, driver: str,
            clients: int, rate: float) -> None:
    """Create n claims at once; emit volumes/s and the created-to-Bound percentiles."""
    names = [f"c{i}" for i in range(n)]
    watcher = BoundTimes(handle, namespace, names)
    watcher.thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    created = asyncio.run(create_all(handle, namespace, names, cls, clients, rate))
    if not watcher.done.wait(timeout=max(120.0, n * 0.5)):
        raise common.BenchError(f"only {len(watcher.bound)} of {n} claims bound")
    wall = max(watcher.bound.values()) - start
    create_s = max(created.values()) - start
    latencies = [(watcher.bound[c] - created[c]) * 1000 for c in names]
    how: dict[str, Any] = {"driver": driver, "clients": clients, "rate": rate or "at once"}
    common.emit("provisioning_volumes_per_second", n / wall, "volumes/s", n,
                anchor=THROUGHPUT_ANCHOR, anchor_value=40, wall_s=round(wall, 3),
                creating_s=round(create_s, 3), **how)
    common.emit("provisioning_created_to_bound_p50", common.percentile(latencies, 50),
                "ms", n, anchor=LATENCY_ANCHOR, anchor_value=100,
                p95=round(common.percentile(latencies, 95), 1),
                max=round(max(latencies), 1), **how)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--driver", choices=("local", "nfs-sftp"), default="local")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS),
                        help="creating clients; one measurement each (default: 16 1)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="claims created per second (default: all at once)")
    args = parser.parse_args()
    try:
        for clients in args.clients:
            run(args.n, args.database_url, args.driver, clients, args.rate)
    except common.BenchError as e:
        print(f"bench/provisioning.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
