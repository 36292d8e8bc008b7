"""What the API-level tests share: waiting, reading and building objects, and the controllers
they run in-process against a real apiserver.

tests/api and tests/node/nfs drive a real `storagelab apiserver` the way a user would and
then wait for controllers to act. Each module used to carry its own copy of these helpers,
with slowly drifting defaults; one copy here keeps a fix to how tests wait, or to what a claim
looks like, reaching every module. Fixtures stay in tests/conftest.py, where pytest finds them
(`api`, `ns`, and the `controllers` a module overrides with its own in-process stack).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import httpx

from csi_like import contract, registry
from storage import manager, protection, provisioner, pv_controller, reclaim, scheduler
from storage.runtime import events, shared
from storage.runtime import kube as kube_api
from tests import conftest
from tests.loopthread import LoopThread

Obj = dict[str, Any]
LOCAL = provisioner.LOCAL
SECRETS_NS = "nfs-provisioner"  # where the nfs tests keep the provisioner's SSH Secrets
TWO_NODES = {"node-a": "a", "node-b": "b"}  # node name -> zone label


# ----------------------------------------------------------------------------- waiting, reading

def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(check: Callable[[], Any], timeout: float, what: str = "") -> Any:
    """The first truthy value of `check()`, polled until `timeout` seconds have passed:
    controllers act on what they watch a moment after the write a test made."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def get(api: httpx.Client, path: str) -> Obj | None:
    """The object at `path`, or None when it cannot be read (gone, not made yet)."""
    r = api.get(path)
    return dict(r.json()) if r.status_code == 200 else None


def claim_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/persistentvolumeclaims" + (f"/{name}" if name else "")


def events_of(api: httpx.Client, ns: str, name: str) -> list[Obj]:
    """The events about the object called `name` in `ns`."""
    items: list[Obj] = api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def reasons(api: httpx.Client, ns: str, name: str) -> dict[str, str]:
    """Event reason -> message, for the object called `name`."""
    return {e["reason"]: e["message"] for e in events_of(api, ns, name)}


def event_reasons(api: httpx.Client, ns: str, name: str) -> dict[str, Obj]:
    """Event reason -> the whole event (type, count, source), for the object called `name`."""
    return {e["reason"]: e for e in events_of(api, ns, name)}


def wait_bound(api: httpx.Client, ns: str, name: str, timeout: float = 15.0) -> Obj:
    bound: Obj = eventually(lambda: (c := get(api, claim_path(ns, name))) and
                            c["status"].get("phase") == "Bound" and c, timeout,
                            f"claim {ns}/{name} Bound")
    return bound


def patch_request(api: httpx.Client, ns: str, name: str, size: str) -> httpx.Response:
    """Ask for a new size, as `kubectl patch` would: a merge patch of the storage request."""
    return api.patch(claim_path(ns, name),
                     json={"spec": {"resources": {"requests": {"storage": size}}}},
                     headers={"Content-Type": "application/merge-patch+json"})


def wait_capacity(api: httpx.Client, ns: str, name: str, size: str, timeout: float = 20.0
                  ) -> Obj:
    claim: Obj = eventually(
        lambda: (c := get(api, claim_path(ns, name))) and
        (c["status"].get("capacity") or {}).get("storage") == size and c,
        timeout, f"claim {ns}/{name} capacity {size}")
    return claim


# ----------------------------------------------------------------------------- building

def make_class(api: httpx.Client, name: str, *, mode: str = "Immediate",
               provisioner_name: str = LOCAL, **fields: Any) -> None:
    body = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name}, "provisioner": provisioner_name,
            "volumeBindingMode": mode, **fields}
    r = api.post("/apis/storage.k8s.io/v1/storageclasses", json=body)
    assert r.status_code == 201, r.text


def make_claim(api: httpx.Client, ns: str, name: str, cls: str | None, size: str = "1Gi",
               annotations: dict[str, str] | None = None, *,
               access_mode: str = "ReadWriteOnce") -> Obj:
    """A claim on class `cls` (None: no storageClassName at all, so the default class)."""
    spec: Obj = {"accessModes": [access_mode], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    r = api.post(claim_path(ns), json={"metadata": {"name": name,
                                                     "annotations": annotations or {}},
                                        "spec": spec})
    assert r.status_code == 201, r.text
    return dict(r.json())


def on_node_a(**fields: Any) -> dict[str, Any]:
    """Immediate local classes need a node: allowedTopologies names one."""
    return {"allowedTopologies": [{"matchLabelExpressions": [
        {"key": "kubernetes.io/hostname", "values": ["node-a"]}]}], **fields}


def put_secret(api: httpx.Client, namespace: str, name: str, data: dict[str, str]) -> None:
    """A Secret with these string values, replacing any of that name."""
    api.delete(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    r = api.post(f"/api/v1/namespaces/{namespace}/secrets",
                 json={"metadata": {"name": name}, "stringData": data})
    assert r.status_code == 201, r.text


def node(name: str, zone: str, ready: bool = True) -> Obj:
    """A Node as a kubelet registers it: 2 CPUs, a hostname and a zone label."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "zone": zone}},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def add_ready_nodes(api: httpx.Client, zones: Mapping[str, str]) -> None:
    """Ready nodes (name -> zone) with no kubelet behind them: pods are placed, never run."""
    for name, zone in zones.items():
        r = api.post("/api/v1/nodes", json=node(name, zone))
        assert r.status_code == 201, r.text
        r = api.put(f"/api/v1/nodes/{name}/status",
                    json={**node(name, zone), "metadata": r.json()["metadata"]})
        assert r.status_code == 200, r.text


def make_pod(api: httpx.Client, ns: str, name: str, *, claims: tuple[str, ...] = (),
             selector: dict[str, str] | None = None, cpu: str = "100m") -> None:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox",
                                 "resources": {"requests": {"cpu": cpu}}}],
                 "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                             for i, c in enumerate(claims)]}
    if selector:
        spec["nodeSelector"] = selector
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json={"metadata": {"name": name},
                                                         "spec": spec})
    assert r.status_code == 201, r.text


def pod_node(api: httpx.Client, ns: str, name: str) -> str:
    pod = get(api, f"/api/v1/namespaces/{ns}/pods/{name}")
    return str(((pod or {}).get("spec") or {}).get("nodeName") or "")


def wait_placed(api: httpx.Client, ns: str, name: str) -> str:
    placed: str = eventually(lambda: pod_node(api, ns, name), 20, f"pod {name} placed")
    return placed


def failed_scheduling(api: httpx.Client, ns: str, name: str) -> str:
    message: str = eventually(lambda: reasons(api, ns, name).get("FailedScheduling"), 15,
                              "FailedScheduling")
    return message


# ----------------------------------------------------------------------------- running parts

@contextlib.contextmanager
def running_apiserver(data_dir: Path, *, namespaces: tuple[str, ...] = (),
                      nodes: Mapping[str, str] | None = None) -> Iterator[conftest.ApiServer]:
    """A started apiserver with these namespaces and Ready nodes made; stopped after."""
    server = conftest.ApiServer(data_dir).start()
    try:
        with server.client() as api:
            for namespace in namespaces:
                conftest.create_namespace(api, namespace)
            add_ready_nodes(api, nodes or {})
        yield server
    finally:
        server.stop()


def local_driver(bases: Mapping[str, Path]) -> contract.Driver:
    """The real local driver, serving each node from its own directory."""
    return registry.create(LOCAL, {"nodePaths": {n: [str(p)] for n, p in bases.items()}})


Runs = list[Callable[[], Coroutine[Any, Any, None]]]


class ControllerThread(LoopThread):
    """Controllers on shared informers, under the controller-manager's identity, in a thread
    with its own event loop. `build(kube, informers)` makes them before the informers run (they
    register their handlers then) and returns what to run once the informers have synced, as
    the controller-manager does; the first to fail stops the whole thread."""

    def __init__(self, server: conftest.ApiServer,
                 build: Callable[[kube_api.Kube, shared.Informers], Runs] | None = None, *,
                 resync: float = 5.0) -> None:
        self.server, self.build, self.resync = server, build, resync
        super().__init__()

    def controllers(self, kube: kube_api.Kube, informers: shared.Informers) -> Runs:
        assert self.build is not None, "give `build`, or override `controllers`"
        return self.build(kube, informers)

    async def run(self) -> None:
        kube = kube_api.Kube.from_kubeconfig(
            str(self.server.data_dir / "controller-manager.kubeconfig"))
        informers = shared.Informers(kube, resync=self.resync)
        runs = self.controllers(kube, informers)
        tasks = [asyncio.create_task(informers.run())]
        try:
            await informers.wait_synced()
            tasks += [asyncio.create_task(run()) for run in runs]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await kube.close()


class Stack(ControllerThread):
    """The controllers of one controller-manager process, wired by hand so a test can hand
    them any drivers (real, recording, crashing): binder and protection (`pv`), provisioner,
    and scheduler (`schedule`)."""

    def __init__(self, server: conftest.ApiServer, drivers: Mapping[str, Any], *,
                 identity: str = "", pv: bool = True, schedule: bool = True,
                 takeover_after: float = 30.0) -> None:
        self.drivers, self.identity = dict(drivers), identity
        self.pv, self.schedule, self.takeover_after = pv, schedule, takeover_after
        super().__init__(server)

    def controllers(self, kube: kube_api.Kube, informers: shared.Informers) -> Runs:
        recorder = events.EventRecorder(kube, pv_controller.COMPONENT)
        runs: Runs = [recorder.run]
        if self.pv:
            # With the API client, as the manager builds them: a deletion Secret is found.
            reclaimers = reclaim.Reclaimers(provisioner.reclaimers_for(self.drivers, kube))
            runs += [pv_controller.PersistentVolumeController(
                kube, informers, recorder, reclaimers).run,
                protection.PVCProtectionController(kube, informers).run,
                protection.PVProtectionController(kube, informers).run]
        runs.append(provisioner.ProvisionController(
            kube, informers, self.drivers, identity=self.identity,
            takeover_after=self.takeover_after).run)
        if self.schedule:
            runs.append(scheduler.Scheduler(kube, informers).run)
        return runs


def manager_config(server: conftest.ApiServer, **fields: Any) -> manager.ManagerConfig:
    """The controller-manager's configuration for tests: no leader election, a 5 s resync."""
    defaults: dict[str, Any] = {"leader_elect": False, "resync": 5.0}
    return manager.ManagerConfig(
        kubeconfig=server.data_dir / "controller-manager.kubeconfig", **(defaults | fields))


class ManagerThread(LoopThread):
    """storage.manager.ControllerManager, built as `storagelab controllers` builds it, in a
    thread with its own event loop. `prepare` sees it before its controllers run (to check
    what it built, or to wrap a driver); `start()` returns once that is done."""

    def __init__(self, config: manager.ManagerConfig) -> None:
        self.config = config
        super().__init__()
        self.ready = threading.Event()
        self.manager: manager.ControllerManager | None = None

    def prepare(self, cm: manager.ControllerManager) -> None:
        """Nothing by default."""

    async def run(self) -> None:
        kube = kube_api.Kube.from_kubeconfig(str(self.config.kubeconfig))
        try:
            cm = self.manager = manager.ControllerManager(kube, self.config)
            self.prepare(cm)
            self.ready.set()
            await cm.run_controllers()
        finally:
            await kube.close()

    def start(self) -> Self:
        super().start()
        assert self.ready.wait(15), f"the controller-manager did not start: {self.error!r}"
        return self
