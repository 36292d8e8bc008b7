"""The node lifecycle controller against a real apiserver, under the controller-manager identity.

A kubelet is simulated with the admin client: it creates its Node (Ready=True) and its Lease,
then stops renewing. The controller must mark the node Unknown, taint it unreachable and mark
its pod not ready, without deleting the pod; when the "kubelet" renews and posts Ready=True
again, the taint must go away.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from storage import nodelifecycle as nl
from tests.conftest import ApiServer
from tests.support import ControllerThread, eventually, get, running_apiserver

Obj = dict[str, Any]
CONFIG = nl.LifecycleConfig(monitor_period=0.3, grace_period=2.0, startup_grace_period=2.0)


def stamp(micro: bool = False) -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("nodelifecycle")) as srv:
        yield srv


@pytest.fixture(scope="module")
def controllers(server: ApiServer) -> Iterator[ControllerThread]:
    running = ControllerThread(
        server, lambda kube, informers: [nl.NodeLifecycleController(kube, informers, CONFIG).run],
        resync=0.0).start()
    yield running
    running.stop()


def post_status(api: httpx.Client, name: str, ready: str) -> None:
    node = api.get(f"/api/v1/nodes/{name}").json()
    at = stamp()
    node["status"] = {"conditions": [
        {"type": "Ready", "status": ready, "reason": "KubeletReady",
         "message": "kubelet is posting ready status", "lastHeartbeatTime": at,
         "lastTransitionTime": at}]}
    r = api.put(f"/api/v1/nodes/{name}/status", json=node)
    assert r.status_code == 200, r.text


def renew(api: httpx.Client, name: str) -> None:
    spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp(micro=True)}
    path = f"/apis/coordination.k8s.io/v1/namespaces/{nl.LEASE_NAMESPACE}/leases"
    r = api.patch(f"{path}/{name}", json={"spec": spec},
                  headers={"Content-Type": "application/merge-patch+json"})
    if r.status_code == 404:
        r = api.post(path, json={"metadata": {"name": name, "namespace": nl.LEASE_NAMESPACE},
                                 "spec": spec})
    assert r.status_code in (200, 201), r.text


def register(api: httpx.Client, name: str) -> None:
    r = api.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": name}})
    assert r.status_code == 201, r.text
    post_status(api, name, "True")
    if api.get(f"/api/v1/namespaces/{nl.LEASE_NAMESPACE}").status_code == 404:
        api.post("/api/v1/namespaces", json={"metadata": {"name": nl.LEASE_NAMESPACE}})
    renew(api, name)


def running_pod(api: httpx.Client, node: str) -> str:
    r = api.post("/api/v1/namespaces/default/pods", json={
        "metadata": {"name": f"db-{uuid.uuid4().hex[:6]}"},
        "spec": {"nodeName": node, "containers": [{"name": "db", "image": "busybox"}]}})
    assert r.status_code == 201, r.text
    pod = r.json()
    at = stamp()
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": at},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": at}]}
    path = f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}"
    assert api.put(f"{path}/status", json=pod).status_code == 200
    return path


def ready_condition(obj: Obj | None) -> Obj:
    for c in ((obj or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return {}


def taint_keys(node: Obj | None) -> set[str]:
    return {t["key"] for t in ((node or {}).get("spec") or {}).get("taints") or ()}


def test_dead_kubelet_marks_node_unknown_and_pods_not_ready_then_recovers(
        api: httpx.Client) -> None:
    name = f"node-{uuid.uuid4().hex[:6]}"
    register(api, name)
    pod_path = running_pod(api, name)
    node_path = f"/api/v1/nodes/{name}"
    # A live kubelet (renewing faster than the grace period) is left alone.
    for _ in range(5):
        renew(api, name)
        time.sleep(0.6)
    assert ready_condition(get(api, node_path))["status"] == "True"
    assert nl.UNREACHABLE_TAINT not in taint_keys(get(api, node_path))

    # The kubelet dies: no more renewals.
    eventually(lambda: ready_condition(get(api, node_path)).get("status") == "Unknown",
               timeout=10, what="node Ready=Unknown")
    node = get(api, node_path)
    assert node is not None
    ready = ready_condition(node)
    assert (ready["reason"], ready["message"]) == (nl.REASON_UNKNOWN, nl.MSG_UNKNOWN)
    statuses = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert statuses == {t: "Unknown" for t in nl.KUBELET_CONDITIONS}
    eventually(lambda: nl.UNREACHABLE_TAINT in taint_keys(get(api, node_path)),
               timeout=5, what="unreachable taint")
    taint = next(t for t in (get(api, node_path) or {})["spec"]["taints"]
                 if t["key"] == nl.UNREACHABLE_TAINT)
    assert taint["effect"] == "NoSchedule"
    eventually(lambda: ready_condition(get(api, pod_path)).get("status") == "False",
               timeout=5, what="pod Ready=False")
    pod = get(api, pod_path)
    assert pod is not None and not pod["metadata"].get("deletionTimestamp")  # never evicted
    assert pod["status"]["phase"] == "Running"

    # The kubelet comes back: renews its lease and posts Ready=True.
    renew(api, name)
    post_status(api, name, "True")
    eventually(lambda: nl.UNREACHABLE_TAINT not in taint_keys(get(api, node_path)),
               timeout=5, what="taint removed")
    assert ready_condition(get(api, node_path))["status"] == "True"


def test_node_that_never_reported_gets_never_updated_conditions(api: httpx.Client) -> None:
    name = f"silent-{uuid.uuid4().hex[:6]}"
    r = api.post("/api/v1/nodes", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    path = f"/api/v1/nodes/{name}"
    eventually(lambda: ready_condition(get(api, path)).get("status") == "Unknown",
               timeout=10, what="never-updated node Unknown")
    ready = ready_condition(get(api, path))
    assert (ready["reason"], ready["message"]) == (nl.REASON_NEVER_UPDATED, nl.MSG_NEVER_UPDATED)
    eventually(lambda: nl.UNREACHABLE_TAINT in taint_keys(get(api, path)), timeout=5,
               what="unreachable taint on a never-updated node")
