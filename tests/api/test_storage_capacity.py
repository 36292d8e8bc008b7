"""Capacity-aware scheduling end to end: a real apiserver, the controller-manager in-process.

Two Ready nodes (no kubelet; pods are only placed). The local driver serves node-a from a
16 MiB tmpfs mounted for this module and node-b from a directory on the test machine's disk,
so the two nodes really have different free space, measured by statvfs: no fake capacity.
The controller-manager (`storage.manager.ControllerManager`: binder, provisioner, scheduler,
capacity publisher) runs in a thread with leader election and node lifecycle off. The tests
read what a user would: CSIDrivers, CSIStorageCapacities (also through the real kubectl),
where pods land, and the FailedScheduling event of a pod no node has room for.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apimachinery import quantity
from storage import capacity, provisioner
from tests.conftest import ApiServer, kubectl_available, require_real
from tests.support import (
    TWO_NODES,
    ManagerThread,
    claim_path,
    eventually,
    failed_scheduling,
    get,
    make_claim,
    make_class,
    make_pod,
    manager_config,
    node,
    reasons,
    running_apiserver,
    wait_bound,
    wait_placed,
)

Obj = dict[str, Any]
MI = 1024**2
TMPFS_SIZE = 16 * MI
CAPACITIES = "/apis/storage.k8s.io/v1/namespaces/kube-system/csistoragecapacities"


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """node-a's base path: a 16 MiB tmpfs, unmounted when the module ends."""
    require_real(os.geteuid() == 0, "mounting a tmpfs needs root")
    target = tmp_path_factory.mktemp("node-a-tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(target)],
                   check=True, timeout=30)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True, timeout=30)


@pytest.fixture(scope="module")
def paths(small_disk: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {"node-a": small_disk, "node-b": tmp_path_factory.mktemp("node-b-disk"),
            "node-c": tmp_path_factory.mktemp("node-c-disk")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("capacity"), nodes=TWO_NODES) as srv:
        yield srv


@pytest.fixture(scope="module")
def controllers(server: ApiServer, paths: dict[str, Path]) -> Iterator[ManagerThread]:
    config = manager_config(server, node_lifecycle=None,
                            provisioning=provisioner.ProvisionerConfig(
                                local_paths={n: (str(p),) for n, p in paths.items()},
                                identity="capacity"))
    running = ManagerThread(config).start()
    assert running.manager is not None and running.manager.capacity is not None, \
        "the manager must build the capacity publisher"
    yield running
    running.stop()


def wffc_class(api: httpx.Client) -> str:
    name = f"fast-{uuid.uuid4().hex[:6]}"
    make_class(api, name, mode="WaitForFirstConsumer", reclaimPolicy="Delete")
    return name


def capacities_of(api: httpx.Client, cls: str) -> dict[str, Obj]:
    """The class's capacity objects by node."""
    items = api.get(CAPACITIES).json()["items"]
    return {capacity.item_of(c).node: c for c in items if c["storageClassName"] == cls}


def wait_capacities(api: httpx.Client, cls: str, nodes: set[str]) -> dict[str, Obj]:
    found: dict[str, Obj] = eventually(
        lambda: (got := capacities_of(api, cls)) and set(got) == nodes and got, 15,
        f"capacities of {cls} on {sorted(nodes)}")
    return found


def size_of(obj: Obj) -> int:
    return int(quantity.parse_quantity(obj["capacity"]))


def free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def pods_on(api: httpx.Client, node_name: str) -> int:
    pods = api.get("/api/v1/pods").json()["items"]
    return sum(1 for p in pods if p["spec"].get("nodeName") == node_name)


def load_node_b_more_than_node_a(api: httpx.Client, ns: str) -> None:
    """The scheduler spreads by pod count: with node-a the less loaded, only capacity can
    send a pod to node-b. Filler pods are bound to node-b directly (no kubelet runs them)."""
    while pods_on(api, "node-b") <= pods_on(api, "node-a"):
        body = {"metadata": {"name": f"filler-{uuid.uuid4().hex[:6]}"},
                "spec": {"nodeName": "node-b",
                         "containers": [{"name": "c", "image": "busybox"}]}}
        assert api.post(f"/api/v1/namespaces/{ns}/pods", json=body).status_code == 201


# ----------------------------------------------------------------------------- tests

def test_csi_drivers_installed(api: httpx.Client) -> None:
    path = "/apis/storage.k8s.io/v1/csidrivers/"
    local, nfs = eventually(lambda: (d := (get(api, path + "local.storagelab.io"),
                                           get(api, path + "nfs.storagelab.io")))
                            and all(d) and d, 15, "both CSIDrivers")
    assert (local["spec"]["storageCapacity"], local["spec"]["attachRequired"]) == (True, False)
    assert nfs["spec"]["storageCapacity"] is False


def test_one_capacity_per_node_with_free_space(api: httpx.Client,
                                               paths: dict[str, Path]) -> None:
    cls = wffc_class(api)
    immediate = f"now-{uuid.uuid4().hex[:6]}"
    make_class(api, immediate)
    found = wait_capacities(api, cls, {"node-a", "node-b"})
    assert size_of(found["node-a"]) == free_bytes(paths["node-a"]) == TMPFS_SIZE
    assert found["node-a"]["capacity"] == "16Mi"
    # The disk is shared with everything else on the machine: close, not equal.
    assert abs(size_of(found["node-b"]) - free_bytes(paths["node-b"])) < 256 * MI
    for obj in found.values():
        assert obj["metadata"]["labels"] == {
            "csi.storage.k8s.io/drivername": "local.storagelab.io",
            "csi.storage.k8s.io/managed-by": "external-provisioner"}
    assert found["node-b"]["nodeTopology"] == {
        "matchLabels": {"kubernetes.io/hostname": "node-b"}}
    time.sleep(0.5)
    assert capacities_of(api, immediate) == {}  # the scheduler never reads them


def test_kubectl_lists_capacities(api: httpx.Client, server: ApiServer) -> None:
    require_real(kubectl_available(), "kubectl missing")
    cls = wffc_class(api)
    found = wait_capacities(api, cls, {"node-a", "node-b"})
    out = server.kubectl("get", "csistoragecapacities", "-A").stdout
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["NAMESPACE", "NAME", "STORAGECLASSNAME", "CAPACITY"]
    assert ["kube-system", found["node-a"]["metadata"]["name"], cls, "16Mi"] in lines
    resources = [line.split() for line in
                 server.kubectl("api-resources", "--api-group=storage.k8s.io").stdout
                 .splitlines()]
    assert ["csistoragecapacities", "storage.k8s.io/v1", "true", "CSIStorageCapacity"] in \
        resources
    assert ["csidrivers", "storage.k8s.io/v1", "false", "CSIDriver"] in resources
    explained = server.kubectl("explain", "csistoragecapacity.capacity").stdout
    assert "KIND:       CSIStorageCapacity" in explained
    assert "FIELD: capacity <Quantity>" in explained


def test_claim_larger_than_a_node_goes_to_the_other(api: httpx.Client, ns: str) -> None:
    cls = wffc_class(api)
    wait_capacities(api, cls, {"node-a", "node-b"})
    load_node_b_more_than_node_a(api, ns)
    make_claim(api, ns, "big", cls, "100Mi")  # more than node-a's 16 MiB tmpfs
    make_pod(api, ns, "db", claims=("big",))
    assert wait_placed(api, ns, "db") == "node-b"
    bound = wait_bound(api, ns, "big")
    assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "node-b"
    # Straight there: no failed attempt on node-a first.
    assert "ProvisioningFailed" not in reasons(api, ns, "big")
    assert "FailedScheduling" not in reasons(api, ns, "db")
    # A claim that fits both goes to the less loaded node as before.
    make_claim(api, ns, "small", cls, "1Mi")
    make_pod(api, ns, "cache", claims=("small",))
    assert wait_placed(api, ns, "cache") == "node-a"


def test_claim_no_node_can_hold_stays_pending(api: httpx.Client, ns: str) -> None:
    cls = wffc_class(api)
    wait_capacities(api, cls, {"node-a", "node-b"})
    make_claim(api, ns, "huge", cls, "1Pi")
    make_pod(api, ns, "db", claims=("huge",))
    message = failed_scheduling(api, ns, "db")
    assert message == "0/2 nodes are available: 2 node(s) did not have enough free storage."
    pod = get(api, f"/api/v1/namespaces/{ns}/pods/db")
    assert pod is not None and not pod["spec"].get("nodeName")
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False", "Unschedulable", message)
    claim = get(api, claim_path(ns, "huge"))
    assert claim is not None and claim["status"]["phase"] == "Pending"
    assert "volume.kubernetes.io/selected-node" not in (claim["metadata"].get("annotations")
                                                        or {})


def test_capacity_refreshed_after_provisioning_and_deletion(
        api: httpx.Client, ns: str, paths: dict[str, Path]) -> None:
    """The poll runs every 60 s; a volume made or removed on a node refreshes it at once."""
    cls = wffc_class(api)
    assert size_of(wait_capacities(api, cls, {"node-a", "node-b"})["node-a"]) > 15 * MI
    ballast = paths["node-a"] / "ballast"
    ballast.write_bytes(b"\0" * (8 * MI))  # space used outside any volume
    try:
        make_claim(api, ns, "data", cls, "1Mi")
        make_pod(api, ns, "db", claims=("data",), selector={"zone": "a"})
        assert wait_placed(api, ns, "db") == "node-a"
        shrunk_volume = wait_bound(api, ns, "data")["spec"]["volumeName"]
        shrunk = eventually(lambda: (c := capacities_of(api, cls).get("node-a"))
                            and size_of(c) <= 8 * MI and c, 10, "node-a capacity refreshed")
        assert size_of(shrunk) == free_bytes(paths["node-a"])
    finally:
        ballast.unlink()
    # Nothing refreshes node-a until its volume goes (no kubelet: the pod goes at once).
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/db",
                      params={"gracePeriodSeconds": "0"}).status_code == 200
    assert api.delete(claim_path(ns, "data")).status_code == 200
    eventually(lambda: get(api, f"/api/v1/persistentvolumes/{shrunk_volume}") is None, 15,
               "the volume deleted with its claim")
    eventually(lambda: (c := capacities_of(api, cls).get("node-a")) and
               size_of(c) == free_bytes(paths["node-a"]) > 15 * MI, 15,
               "node-a capacity back after the volume went")


def test_objects_follow_classes_nodes_and_ownership(api: httpx.Client) -> None:
    cls = wffc_class(api)
    wait_capacities(api, cls, {"node-a", "node-b"})
    foreign = {"metadata": {"name": f"manual-{cls}"}, "storageClassName": cls,
               "nodeTopology": {"matchLabels": {"kubernetes.io/hostname": "node-a"}},
               "capacity": "1Ti"}
    assert api.post(CAPACITIES, json=foreign).status_code == 201
    # A node the driver serves appears: it gets its object; when it goes, so does the object.
    created = api.post("/api/v1/nodes", json=node("node-c", "c"))
    assert created.status_code == 201, created.text
    wait_capacities(api, cls, {"node-a", "node-b", "node-c"})
    assert api.delete("/api/v1/nodes/node-c").status_code == 200
    eventually(lambda: "node-c" not in capacities_of(api, cls), 15, "node-c object gone")
    # The class goes: the objects it had go too, except one we did not make.
    assert api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{cls}").status_code == 200
    eventually(lambda: [c["metadata"]["name"] for c in api.get(CAPACITIES).json()["items"]
                        if c["storageClassName"] == cls] == [f"manual-{cls}"], 15,
               "only the manual object left")
