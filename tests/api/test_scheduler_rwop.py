"""ReadWriteOncePod in the scheduler, against a real apiserver (VolumeRestrictions).

The same two Ready nodes and in-process controllers as tests/api/test_scheduler.py. A claim
with the ReadWriteOncePod access mode is bound to a static NFS volume reachable from both
nodes, so only the access mode keeps a second pod away: it stays Pending with Kubernetes'
FailedScheduling message, and is placed without any user action once the first pod is gone.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.api.test_scheduler import controllers as scheduler_controllers
from tests.api.test_scheduler import server as scheduler_server
from tests.support import (
    eventually,
    failed_scheduling,
    get,
    make_pod,
    pod_node,
    reasons,
    wait_bound,
    wait_placed,
)

server = scheduler_server  # the module's apiserver with node-a and node-b, as there
controllers = scheduler_controllers


Obj = dict[str, Any]
RWOP_MESSAGE = ("0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the "
                "same name and ReadWriteOncePod access mode.")


def rwop_claim(api: httpx.Client, ns: str, name: str = "data") -> None:
    """A ReadWriteOncePod claim bound to an NFS volume without node affinity."""
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    r = api.post("/api/v1/persistentvolumes", json={"metadata": {"name": pv}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOncePod"],
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
        "nfs": {"server": "127.0.0.1", "path": "/exports/db"},
        "claimRef": {"namespace": ns, "name": name}}})
    assert r.status_code == 201, r.text
    r = api.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", json={
        "metadata": {"name": name}, "spec": {
            "accessModes": ["ReadWriteOncePod"], "storageClassName": "", "volumeName": pv,
            "resources": {"requests": {"storage": "1Gi"}}}})
    assert r.status_code == 201, r.text
    wait_bound(api, ns, name)


def scheduled_condition(api: httpx.Client, ns: str, name: str) -> Obj:
    pod = get(api, f"/api/v1/namespaces/{ns}/pods/{name}")
    assert pod is not None
    found: Obj = next(c for c in pod["status"].get("conditions") or ()
                      if c["type"] == "PodScheduled")
    return found


def test_second_pod_of_a_read_write_once_pod_claim_waits(api: httpx.Client, ns: str) -> None:
    rwop_claim(api, ns)
    make_pod(api, ns, "first", claims=("data",))
    wait_placed(api, ns, "first")
    make_pod(api, ns, "second", claims=("data",))
    assert failed_scheduling(api, ns, "second") == RWOP_MESSAGE
    condition = eventually(lambda: scheduled_condition(api, ns, "second"), 15,
                           what="PodScheduled condition")
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False", "Unschedulable", RWOP_MESSAGE)
    time.sleep(1.5)  # retried with backoff meanwhile: still refused
    assert pod_node(api, ns, "second") == ""
    # Another claim name in the same namespace is no conflict.
    rwop_claim(api, ns, "other")
    make_pod(api, ns, "third", claims=("other",))
    wait_placed(api, ns, "third")

    # No kubelet here to confirm a graceful stop: delete at once.
    r = api.delete(f"/api/v1/namespaces/{ns}/pods/first", params={"gracePeriodSeconds": "0"})
    assert r.status_code == 200, r.text
    eventually(lambda: get(api, f"/api/v1/namespaces/{ns}/pods/first") is None, 30,
               "first pod gone")
    wait_placed(api, ns, "second")  # placed by the pod's deletion, nobody touched it
    scheduled = eventually(lambda: reasons(api, ns, "second").get("Scheduled"), 10,
                           "Scheduled event (recorded in the background)")
    assert scheduled.endswith(f"{ns}/second to {pod_node(api, ns, 'second')}")


def test_pods_created_together_never_share_the_claim(api: httpx.Client, ns: str) -> None:
    rwop_claim(api, ns)
    names = [f"p{i}" for i in range(4)]
    for name in names:  # back to back: the scheduler's workers see them at once
        make_pod(api, ns, name, claims=("data",))
    placed = eventually(lambda: [n for n in names if pod_node(api, ns, n)], 20, "one placed")
    for name in names:
        if name not in placed:
            assert failed_scheduling(api, ns, name) == RWOP_MESSAGE
    time.sleep(1.0)
    assert len([n for n in names if pod_node(api, ns, n)]) == 1
