"""Dynamic provisioning against a real apiserver, with the real local driver on a temp dir.

The PV controller, the protection controllers, the provisioner and the scheduler run in this
process (a thread with its own event loop, `tests.support.Stack`), against a real
`storagelab apiserver` process. Crashes are simulated by a driver wrapper that raises a
BaseException right after the real driver made the directory: the whole stack stops there, as
a killed process would, and a fresh stack is started on the same state.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from csi_like import contract
from storage import defaults_sc, provisioner, reclaim
from storage.runtime import kube as kube_api
from tests.conftest import ApiServer
from tests.support import (
    LOCAL,
    Stack,
    claim_path,
    eventually,
    get,
    local_driver,
    make_claim,
    make_class,
    on_node_a,
    reasons,
    running_apiserver,
    uniq,
    wait_bound,
)

Obj = dict[str, Any]


class Crash(BaseException):
    """Stops the whole stack, like SIGKILL would (not an Exception: nothing catches it)."""


class WrappedDriver:
    """The real local driver; optionally crashes or pauses right after create_volume."""

    def __init__(self, real: contract.Driver, *, crash_after_create: bool = False) -> None:
        self.real = real
        self.crash_after_create = crash_after_create
        self.pause = threading.Event()
        self.pause.set()
        self.created = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def create_volume(self, request: contract.CreateVolumeRequest) -> contract.Volume:
        volume = self.real.create_volume(request)
        self.created.set()
        if self.crash_after_create:
            raise Crash("killed between the directory and the PV")
        self.pause.wait(30)
        return volume


# ----------------------------------------------------------------------------- helpers

def volume_dirs(base: Path) -> set[str]:
    """Volume directories under a node's base path (not the driver's records)."""
    if not base.exists():
        return set()
    return {p.name for p in base.iterdir() if p.name != ".storagelab"}


def records(base: Path) -> set[str]:
    folder = base / ".storagelab"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("provisioning")) as srv:
        yield srv


@pytest.fixture(scope="module")
def controllers(server: ApiServer, bases: dict[str, Path]) -> Iterator[Stack]:
    running = Stack(server, {LOCAL: local_driver(bases)}, identity="main").start()
    yield running
    running.stop()


# ----------------------------------------------------------------------------- pure parts

@pytest.mark.parametrize("flags,expected", [
    (["node-a=/srv/a"], {"node-a": ("/srv/a",)}),
    (["node-a=/srv/a", "node-a=/srv/a2", "*=/srv/any"],
     {"node-a": ("/srv/a", "/srv/a2"), "*": ("/srv/any",)}),
])
def test_parse_local_paths(flags: list[str], expected: dict[str, tuple[str, ...]]) -> None:
    assert provisioner.parse_local_paths(flags) == expected


@pytest.mark.parametrize("flag", ["node-a", "=/srv", "node-a=relative", "node-a="])
def test_parse_local_paths_rejects(flag: str) -> None:
    with pytest.raises(provisioner.ConfigError, match="--local-path"):
        provisioner.parse_local_paths([flag])


def _claim(**annotations: str) -> Obj:
    return {"metadata": {"name": "data", "namespace": "ns", "uid": "u-1",
                         "resourceVersion": "7", "annotations": annotations},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                     "resources": {"requests": {"storage": "1500Mi"}}}}


def test_plan_and_pv_follow_external_provisioner() -> None:
    sc = {"metadata": {"name": "fast"}, "provisioner": LOCAL, "reclaimPolicy": "Retain",
          "mountOptions": ["noatime"], "parameters": {"csi.storage.k8s.io/fstype": "ext4"}}
    claim = _claim(**{"volume.kubernetes.io/selected-node": "node-b"})
    intent = provisioner.plan_intent(claim, sc, "me", 1.0)
    assert (intent.volume, intent.node, intent.capacity_bytes) == (
        "pvc-u-1", "node-b", 1500 * 1024 * 1024)
    request = intent.request(claim)
    assert request.topology == contract.TopologyRequirement(
        (contract.Topology.node("node-b"),), (contract.Topology.node("node-b"),))
    assert request.claim.pvc_name == "data" and request.claim.pv_name == "pvc-u-1"
    volume = contract.Volume("local:abc", 1500 * 1024 * 1024, {"path": "/srv/b/pvc-u-1"},
                             (contract.Topology.node("node-b"),))
    pv = provisioner.build_volume(claim, sc, intent, volume, "me")
    assert pv["metadata"] == {"name": "pvc-u-1",
                              "annotations": {"pv.kubernetes.io/provisioned-by": LOCAL}}
    spec = pv["spec"]
    assert spec["csi"] == {"driver": "local.storagelab.io", "volumeHandle": "local:abc", "fsType": "ext4",
                           "volumeAttributes": {
                               "path": "/srv/b/pvc-u-1",
                               "storage.kubernetes.io/csiProvisionerIdentity": "me"}}
    assert spec["capacity"] == {"storage": "1500Mi"}
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["mountOptions"] == ["noatime"] and spec["storageClassName"] == "fast"
    assert spec["claimRef"]["uid"] == "u-1" and spec["claimRef"]["name"] == "data"
    assert spec["nodeAffinity"] == {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-b"]}]}]}}


@pytest.mark.parametrize("change,error", [
    ({"spec": {"accessModes": [], "resources": {"requests": {"storage": "1Gi"}}}},
     "accessModes"),
    ({"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Block",
               "resources": {"requests": {"storage": "1Gi"}}}}, "Block"),
])
def test_plan_refuses(change: Obj, error: str) -> None:
    claim = {**_claim(), **change}
    with pytest.raises(provisioner.PlanError, match=error):
        provisioner.plan_intent(claim, {"metadata": {"name": "x"}, "provisioner": LOCAL}, "me", 0)


def test_plan_refuses_node_outside_allowed_topologies() -> None:
    sc = {"metadata": {"name": "x"}, "provisioner": LOCAL, **on_node_a()}
    claim = _claim(**{"volume.kubernetes.io/selected-node": "node-b"})
    with pytest.raises(provisioner.PlanError, match="allowedTopologies"):
        provisioner.plan_intent(claim, sc, "me", 0)


# ----------------------------------------------------------------------------- end to end

def test_immediate_claim_gets_a_provisioned_volume(api: httpx.Client, ns: str,
                                                   bases: dict[str, Path]) -> None:
    cls = uniq("retain")
    make_class(api, cls, reclaimPolicy="Retain", mountOptions=["noatime"], **on_node_a())
    claim = make_claim(api, ns, "data", cls, "64Mi")
    bound = wait_bound(api, ns, "data")
    name = f"pvc-{claim['metadata']['uid']}"
    assert bound["spec"]["volumeName"] == name
    pv = get(api, f"/api/v1/persistentvolumes/{name}")
    assert pv is not None
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == LOCAL
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["mountOptions"] == ["noatime"]
    assert pv["spec"]["capacity"]["storage"] == "64Mi"
    assert pv["spec"]["csi"]["driver"] == "local.storagelab.io"
    path = pv["spec"]["csi"]["volumeAttributes"]["path"]
    assert Path(path).parent == bases["node-a"] and Path(path).is_dir()
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["node-a"]
    assert provisioner.FINALIZER in bound["metadata"]["finalizers"]
    got = eventually(lambda: (r := reasons(api, ns, "data")) and
                     "ProvisioningSucceeded" in r and r, 15, what="events")
    assert got["Provisioning"] == f'External provisioner is provisioning volume for claim "{ns}/data"'
    assert got["ProvisioningSucceeded"] == f"Successfully provisioned volume {name}"


def test_delete_policy_removes_directory_and_pv(api: httpx.Client, ns: str) -> None:
    cls = uniq("delete")
    make_class(api, cls, reclaimPolicy="Delete", **on_node_a())
    claim = make_claim(api, ns, "data", cls, "1Mi")
    wait_bound(api, ns, "data")
    name = f"pvc-{claim['metadata']['uid']}"
    pv = get(api, f"/api/v1/persistentvolumes/{name}")
    assert pv is not None
    path = Path(pv["spec"]["csi"]["volumeAttributes"]["path"])
    assert path.is_dir()
    assert api.delete(claim_path(ns, "data")).status_code == 200
    eventually(lambda: get(api, f"/api/v1/persistentvolumes/{name}") is None, 15, what="PV deleted")
    assert not path.exists()
    assert get(api, claim_path(ns, "data")) is None


@pytest.mark.parametrize("parameters,size,expected", [
    ({"colour": "blue"}, "1Mi", "invalid parameter 'colour': unknown"),
    ({"pathPattern": "{nope}"}, "1Mi", "pathPattern"),
    ({"enforce": "soft"}, "1Ei", "are free in"),
])
def test_bad_request_fails_clearly_and_creates_nothing(
        api: httpx.Client, ns: str, bases: dict[str, Path], parameters: dict[str, str],
        size: str, expected: str) -> None:
    cls = uniq("bad")
    make_class(api, cls, parameters=parameters, **on_node_a())
    before = (volume_dirs(bases["node-a"]), records(bases["node-a"]))
    claim = make_claim(api, ns, "data", cls, size)
    failed = eventually(lambda: reasons(api, ns, "data").get("ProvisioningFailed"), 15,
                        what="ProvisioningFailed")
    assert failed.startswith(f'failed to provision volume with StorageClass "{cls}": ')
    assert expected in failed
    time.sleep(0.3)
    assert get(api, f"/api/v1/persistentvolumes/pvc-{claim['metadata']['uid']}") is None
    assert (volume_dirs(bases["node-a"]), records(bases["node-a"])) == before
    assert api.delete(claim_path(ns, "data")).status_code == 200
    eventually(lambda: get(api, claim_path(ns, "data")) is None, 15, what="claim deleted")


def test_claim_deleted_while_provisioning_leaves_no_directory(
        server: ApiServer, api: httpx.Client, ns: str, bases: dict[str, Path]) -> None:
    cls = uniq("slow")
    make_class(api, cls, provisioner_name="storagelab.test/slow", **on_node_a())
    slow = WrappedDriver(local_driver(bases))
    slow.pause.clear()
    # With its own PV controller: if the deletion is seen only after the PV was made, the
    # PV is Released and reclaimed through the hook; otherwise no PV is made at all.
    side = Stack(server, {"storagelab.test/slow": slow}, identity="slow",
                 schedule=False).start()
    try:
        claim = make_claim(api, ns, "data", cls, "1Mi",
                           {"volume.kubernetes.io/storage-provisioner": "storagelab.test/slow"})
        name = f"pvc-{claim['metadata']['uid']}"
        assert slow.created.wait(15)
        assert name in volume_dirs(bases["node-a"])
        assert api.delete(claim_path(ns, "data")).status_code == 200
        slow.pause.set()
        eventually(lambda: get(api, claim_path(ns, "data")) is None, 15, what="claim gone")
        eventually(lambda: name not in volume_dirs(bases["node-a"]), 15, what="directory gone")
        eventually(lambda: get(api, f"/api/v1/persistentvolumes/{name}") is None, 15, what="no PV")
        assert f"{name}.json" not in records(bases["node-a"])
    finally:
        side.stop()


def test_crash_between_directory_and_pv_then_restart(
        server: ApiServer, api: httpx.Client, ns: str, bases: dict[str, Path]) -> None:
    cls = uniq("crash")
    make_class(api, cls, provisioner_name="storagelab.test/crashy", **on_node_a())
    provisioner_ann = {"volume.kubernetes.io/storage-provisioner": "storagelab.test/crashy"}
    crashing = WrappedDriver(local_driver(bases), crash_after_create=True)
    first = Stack(server, {"storagelab.test/crashy": crashing}, identity="crashy", pv=False,
                  schedule=False).start()
    claim = make_claim(api, ns, "data", cls, "1Mi", provisioner_ann)
    name = f"pvc-{claim['metadata']['uid']}"
    first.thread.join(15)
    assert isinstance(first.error, Crash)
    assert name in volume_dirs(bases["node-a"])
    assert get(api, f"/api/v1/persistentvolumes/{name}") is None
    again = Stack(server, {"storagelab.test/crashy": WrappedDriver(local_driver(bases))},
                  identity="crashy", pv=False, schedule=False).start()
    try:
        eventually(lambda: get(api, f"/api/v1/persistentvolumes/{name}"), 15,
                   what="PV after restart")
        pvs = [v for v in api.get("/api/v1/persistentvolumes").json()["items"]
               if v["spec"].get("claimRef", {}).get("uid") == claim["metadata"]["uid"]]
        assert [v["metadata"]["name"] for v in pvs] == [name]
        assert sorted(d for d in volume_dirs(bases["node-a"]) if d == name) == [name]
        assert f"{name}.json" in records(bases["node-a"])
    finally:
        again.stop()


def test_crash_then_claim_deleted_then_restart_cleans_up(
        server: ApiServer, api: httpx.Client, ns: str, bases: dict[str, Path]) -> None:
    cls = uniq("crash2")
    make_class(api, cls, provisioner_name="storagelab.test/crashy2", **on_node_a())
    crashing = WrappedDriver(local_driver(bases), crash_after_create=True)
    first = Stack(server, {"storagelab.test/crashy2": crashing}, identity="c2", pv=False,
                  schedule=False).start()
    claim = make_claim(api, ns, "data", cls, "1Mi",
                       {"volume.kubernetes.io/storage-provisioner": "storagelab.test/crashy2"})
    name = f"pvc-{claim['metadata']['uid']}"
    first.thread.join(15)
    assert name in volume_dirs(bases["node-a"])
    assert api.delete(claim_path(ns, "data")).status_code == 200
    time.sleep(0.3)
    assert get(api, claim_path(ns, "data")) is not None  # held by our finalizer
    again = Stack(server, {"storagelab.test/crashy2": local_driver(bases)}, identity="c2",
                  pv=False, schedule=False).start()
    try:
        eventually(lambda: get(api, claim_path(ns, "data")) is None, 15, what="claim gone")
        assert name not in volume_dirs(bases["node-a"])
        assert f"{name}.json" not in records(bases["node-a"])
        assert get(api, f"/api/v1/persistentvolumes/{name}") is None
    finally:
        again.stop()


def test_two_provisioner_processes_make_one_volume_per_claim(
        server: ApiServer, api: httpx.Client, ns: str, bases: dict[str, Path]) -> None:
    cls = uniq("twice")
    name = "storagelab.test/twice"
    make_class(api, cls, provisioner_name=name, reclaimPolicy="Retain", **on_node_a())
    stacks = [Stack(server, {name: local_driver(bases)}, identity=f"p{i}", pv=False,
                    schedule=False).start() for i in range(2)]
    try:
        claims = [make_claim(api, ns, f"c{i}", cls, "1Mi",
                             {"volume.kubernetes.io/storage-provisioner": name})
                  for i in range(20)]
        uids = {c["metadata"]["uid"] for c in claims}
        for i in range(20):
            wait_bound(api, ns, f"c{i}", 30)
        pvs = [v for v in api.get("/api/v1/persistentvolumes").json()["items"]
               if v["spec"].get("claimRef", {}).get("uid") in uids]
        assert sorted(v["metadata"]["name"] for v in pvs) == sorted(f"pvc-{u}" for u in uids)
        made = {d for d in volume_dirs(bases["node-a"]) if d[4:] in uids}
        assert len(made) == 20
        failures = [e for e in api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
                    if e["reason"] == "ProvisioningFailed"]
        assert failures == []
    finally:
        for s in stacks:
            s.stop()


def test_default_storage_class_standard(server: ApiServer, api: httpx.Client) -> None:
    async def ensure() -> tuple[bool, bool]:
        kube = kube_api.Kube.from_kubeconfig(str(server.kubeconfig))
        try:
            return (await defaults_sc.ensure_default_storage_class(kube),
                    await defaults_sc.ensure_default_storage_class(kube))
        finally:
            await kube.close()

    assert asyncio.run(ensure()) == (True, False)
    sc = get(api, "/apis/storage.k8s.io/v1/storageclasses/standard")
    assert sc is not None
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (sc["provisioner"], sc["reclaimPolicy"], sc["volumeBindingMode"]) == (
        LOCAL, "Delete", "WaitForFirstConsumer")
    assert api.delete("/apis/storage.k8s.io/v1/storageclasses/standard").status_code == 200


def test_reclaimer_deletes_by_volume_handle(bases: dict[str, Path]) -> None:
    driver = local_driver(bases)
    request = contract.CreateVolumeRequest(
        "pvc-reclaim", 1024, topology=contract.TopologyRequirement(
            (contract.Topology.node("node-b"),)))
    volume = driver.create_volume(request)
    path = Path(volume.context["path"])
    assert path.is_dir()
    hook = provisioner.DriverReclaimer(LOCAL, driver)
    pv = {"metadata": {"name": "pvc-reclaim"},
          "spec": {"csi": {"driver": "local.storagelab.io",
                            "volumeHandle": volume.volume_id}}}
    asyncio.run(hook.delete(pv))
    assert not path.exists()
    asyncio.run(hook.delete(pv))  # already gone: success
    with pytest.raises(reclaim.ReclaimError):
        asyncio.run(hook.delete({"metadata": {"name": "x"}, "spec": {"csi": {
            "driver": "other", "volumeHandle": "h"}}}))
    assert os.path.isdir(bases["node-b"])
