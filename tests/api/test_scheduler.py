"""The volume-aware scheduler against a real apiserver, with the PV controller and provisioner.

Two Ready nodes (node-a in zone a, node-b in zone b, 2 CPUs each) are created directly, as a
kubelet would register them; pods are never run (no kubelet), only placed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ApiServer
from tests.support import (
    LOCAL,
    TWO_NODES,
    Stack,
    eventually,
    failed_scheduling,
    get,
    local_driver,
    make_claim,
    make_class,
    make_pod,
    pod_node,
    reasons,
    running_apiserver,
    wait_bound,
    wait_placed,
)

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("scheduler"), nodes=TWO_NODES) as srv:
        yield srv


@pytest.fixture(scope="module")
def controllers(server: ApiServer, bases: dict[str, Path]) -> Iterator[Stack]:
    running = Stack(server, {LOCAL: local_driver(bases)}, identity="s").start()
    yield running
    running.stop()


def local_pv(api: httpx.Client, name: str, cls: str, on: str, claim: tuple[str, str] | None = None
             ) -> None:
    spec: Obj = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": cls, "persistentVolumeReclaimPolicy": "Retain",
                 "local": {"path": "/tmp"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [on]}]}]}}}
    if claim:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    r = api.post("/api/v1/persistentvolumes", json={"metadata": {"name": name}, "spec": spec})
    assert r.status_code == 201, r.text


def test_pod_placed_by_node_selector_through_binding(api: httpx.Client, ns: str) -> None:
    make_pod(api, ns, "web", selector={"zone": "b"})
    assert wait_placed(api, ns, "web") == "node-b"
    pod = get(api, f"/api/v1/namespaces/{ns}/pods/web")
    assert pod is not None
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True"  # set by the pods/binding subresource
    got = eventually(lambda: reasons(api, ns, "web").get("Scheduled"), 15, what="Scheduled event")
    assert got == f"Successfully assigned {ns}/web to node-b"


def test_message_counts_each_reason(api: httpx.Client, ns: str) -> None:
    cls = f"manual-{uuid.uuid4().hex[:6]}"
    make_class(api, cls, provisioner_name="kubernetes.io/no-provisioner")
    local_pv(api, f"pv-{cls}", cls, "node-a", (ns, "data"))
    make_claim(api, ns, "data", cls)
    wait_bound(api, ns, "data")
    make_pod(api, ns, "db", claims=("data",), selector={"zone": "b"})
    message = failed_scheduling(api, ns, "db")
    assert message == ("0/2 nodes are available: 1 node(s) didn't match Pod's node "
                       "affinity/selector, 1 node(s) had volume node affinity conflict.")
    assert pod_node(api, ns, "db") == ""
    pod = get(api, f"/api/v1/namespaces/{ns}/pods/db")
    assert pod is not None
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False", "Unschedulable", message)


def test_insufficient_cpu_and_unbound_immediate_claim(api: httpx.Client, ns: str) -> None:
    make_pod(api, ns, "big", cpu="3")
    assert failed_scheduling(api, ns, "big") == "0/2 nodes are available: 2 Insufficient cpu."
    cls = f"none-{uuid.uuid4().hex[:6]}"
    make_class(api, cls, provisioner_name="kubernetes.io/no-provisioner")
    make_claim(api, ns, "nothing", cls)
    make_pod(api, ns, "stuck", claims=("nothing",))
    assert failed_scheduling(api, ns, "stuck") == (
        "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.")
    make_pod(api, ns, "orphan", claims=("missing",))
    assert failed_scheduling(api, ns, "orphan") == (
        '0/2 nodes are available: persistentvolumeclaim "missing" not found.')


def test_bound_volume_pins_the_pod_to_its_node(api: httpx.Client, ns: str) -> None:
    cls = f"pin-{uuid.uuid4().hex[:6]}"
    make_class(api, cls, provisioner_name="kubernetes.io/no-provisioner")
    local_pv(api, f"pv-{cls}", cls, "node-b", (ns, "data"))
    make_claim(api, ns, "data", cls)
    wait_bound(api, ns, "data")
    make_pod(api, ns, "db", claims=("data",))
    assert wait_placed(api, ns, "db") == "node-b"


def test_wait_for_first_consumer_static_local_volume(api: httpx.Client, ns: str) -> None:
    cls = f"wffc-static-{uuid.uuid4().hex[:6]}"
    make_class(api, cls, mode="WaitForFirstConsumer",
               provisioner_name="kubernetes.io/no-provisioner")
    local_pv(api, f"pv-{cls}", cls, "node-b")
    make_claim(api, ns, "data", cls)
    make_pod(api, ns, "db", claims=("data",))
    assert wait_placed(api, ns, "db") == "node-b"
    assert wait_bound(api, ns, "data")["spec"]["volumeName"] == f"pv-{cls}"


def test_wait_for_first_consumer_provisions_on_the_chosen_node(
        api: httpx.Client, ns: str, bases: dict[str, Path]) -> None:
    cls = f"wffc-{uuid.uuid4().hex[:6]}"
    make_class(api, cls, mode="WaitForFirstConsumer")
    claim = make_claim(api, ns, "data", cls, "1Mi")
    make_pod(api, ns, "db", claims=("data",), selector={"zone": "b"})
    assert wait_placed(api, ns, "db") == "node-b"
    bound = wait_bound(api, ns, "data")
    assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "node-b"
    name = f"pvc-{claim['metadata']['uid']}"
    assert (bases["node-b"] / name).is_dir()
    pv = get(api, f"/api/v1/persistentvolumes/{name}")
    assert pv is not None
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["node-b"]


def test_provisioning_failure_clears_the_node_and_the_pod_is_placed_again(
        api: httpx.Client, ns: str, bases: dict[str, Path]) -> None:
    cls = f"only-a-{uuid.uuid4().hex[:6]}"
    make_class(api, cls, mode="WaitForFirstConsumer",
               parameters={"nodePath": str(bases["node-a"])})
    make_claim(api, ns, "data", cls, "1Mi")
    api.patch("/api/v1/nodes/node-a", json={"spec": {"unschedulable": True}},
              headers={"Content-Type": "application/merge-patch+json"})
    try:
        make_pod(api, ns, "db", claims=("data",))
        failed = eventually(lambda: reasons(api, ns, "data").get("ProvisioningFailed"), 15,
                            what="ProvisioningFailed on node-b")
        assert "nodePath" in failed and "node-b" in failed
        # The selection is cleared and, node-b being the only choice, made again: the pod
        # waits unplaced meanwhile.
        assert pod_node(api, ns, "db") == ""
    finally:
        api.patch("/api/v1/nodes/node-a", json={"spec": {"unschedulable": None}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert wait_placed(api, ns, "db") == "node-a"
    assert wait_bound(api, ns, "data", 20)["metadata"]["annotations"][
        "volume.kubernetes.io/selected-node"] == "node-a"
