"""The attach/detach controller in a real controller-manager against a real apiserver.

Two Nodes (node-1, node-2) registered as a kubelet registers them (controller-managed
attach/detach annotation), a CSIDriver that requires attach, and pods bound straight to a
node (no scheduler, no kubelet): the controller records attachments in the Nodes'
status.volumesAttached and refuses a ReadWriteOnce volume on a second node with Kubernetes'
Multi-Attach event until the first pod is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from csi_like import contract, local, nfs
from storage import attachdetach, capacity, provisioner
from storage.runtime import kube as kube_api
from storage.runtime import shared
from tests.conftest import ApiServer
from tests.support import (
    ManagerThread,
    eventually,
    get,
    make_claim,
    manager_config,
    reasons,
    running_apiserver,
    uniq,
    wait_bound,
)

Obj = dict[str, Any]
DRIVER = "nfs.storagelab.io"
NODES = ("node-1", "node-2")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("attachdetach")) as srv:
        with srv.client() as api:
            for name in NODES:
                body = {"apiVersion": "v1", "kind": "Node", "metadata": {
                    "name": name, "labels": {"kubernetes.io/hostname": name},
                    "annotations": {attachdetach.ANN_CONTROLLER_MANAGED: "true"}}}
                assert api.post("/api/v1/nodes", json=body).status_code == 201
            r = api.post("/apis/storage.k8s.io/v1/csidrivers", json={
                "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                "metadata": {"name": DRIVER}, "spec": {"attachRequired": True}})
            assert r.status_code == 201, r.text
        yield srv


@pytest.fixture(scope="module")
def controllers(server: ApiServer) -> Iterator[ManagerThread]:
    config = manager_config(server, provisioning=None, run_scheduler=False,
                            node_lifecycle=None)
    running = ManagerThread(config).start()
    yield running
    running.stop()


def csi_pv(api: httpx.Client, ns: str, claim: str, modes: tuple[str, ...],
           handle: str = "", driver: str = DRIVER) -> str:
    """A pre-provisioned PV reserved for `claim`; its handle is its name unless given."""
    name = uniq("pv")
    body = {"metadata": {"name": name}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": list(modes),
        "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
        "claimRef": {"namespace": ns, "name": claim},
        "csi": {"driver": driver, "volumeHandle": handle or name}}}
    r = api.post("/api/v1/persistentvolumes", json=body)
    assert r.status_code == 201, r.text
    return name


def bound_claim(api: httpx.Client, ns: str, mode: str = "ReadWriteOnce", handle: str = "",
                driver: str = DRIVER) -> tuple[str, str]:
    claim = uniq("data")
    pv = csi_pv(api, ns, claim, (mode,), handle, driver)
    make_claim(api, ns, claim, "", access_mode=mode)
    wait_bound(api, ns, claim)
    return claim, pv


def pod_on(api: httpx.Client, ns: str, name: str, node: str, claim: str) -> None:
    body = {"metadata": {"name": name}, "spec": {
        "nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}}
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
    assert r.status_code == 201, r.text


def attached(api: httpx.Client, node: str) -> set[str]:
    got = get(api, f"/api/v1/nodes/{node}") or {}
    return {e["name"] for e in (got.get("status") or {}).get("volumesAttached") or ()}


def unique(pv: str) -> str:
    return f"kubernetes.io/csi/{DRIVER}^{pv}"


def test_rwo_waits_for_the_first_node_to_let_go(api: httpx.Client, ns: str) -> None:
    claim, pv = bound_claim(api, ns)
    pod_on(api, ns, "a", "node-1", claim)
    eventually(lambda: unique(pv) in attached(api, "node-1"), 15, "attached to node-1")
    node = get(api, "/api/v1/nodes/node-1") or {}
    entry = next(e for e in node["status"]["volumesAttached"] if e["name"] == unique(pv))
    assert entry == {"name": unique(pv), "devicePath": ""}

    pod_on(api, ns, "b", "node-2", claim)
    message = eventually(lambda: reasons(api, ns, "b").get("FailedAttachVolume"), 15,
                         "FailedAttachVolume on b")
    assert message == f'Multi-Attach error for volume "{pv}" Volume is already used by pod(s) a'
    event = next(e for e in api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
                 if e["reason"] == "FailedAttachVolume")
    assert (event["type"], event["source"]["component"]) == ("Warning",
                                                               "attachdetach-controller")
    assert unique(pv) not in attached(api, "node-2")

    assert api.delete(f"/api/v1/namespaces/{ns}/pods/a",
                      params={"gracePeriodSeconds": "0"}).status_code == 200
    eventually(lambda: unique(pv) not in attached(api, "node-1"), 15, "detached from node-1")
    eventually(lambda: unique(pv) in attached(api, "node-2"), 15, "attached to node-2")


def test_rwx_attaches_to_both_nodes(api: httpx.Client, ns: str) -> None:
    claim, pv = bound_claim(api, ns, "ReadWriteMany")
    pod_on(api, ns, "a", "node-1", claim)
    pod_on(api, ns, "b", "node-2", claim)
    eventually(lambda: all(unique(pv) in attached(api, n) for n in NODES), 15,
               "attached to both nodes")
    assert "FailedAttachVolume" not in reasons(api, ns, "b")


def test_pods_of_other_namespaces_are_only_counted(api: httpx.Client, ns: str) -> None:
    claim, pv = bound_claim(api, ns)
    pod_on(api, ns, "a", "node-1", claim)
    eventually(lambda: unique(pv) in attached(api, "node-1"), 15, "attached to node-1")
    # The same export statically provisioned twice: a second PV with the same handle, bound
    # in another namespace, is the same volume to the attach/detach controller.
    other = uniq("other")
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": other}}
                    ).status_code == 201
    other_claim, other_pv = bound_claim(api, other, handle=pv)
    pod_on(api, other, "b", "node-2", other_claim)
    message = eventually(lambda: reasons(api, other, "b").get("FailedAttachVolume"), 15,
                         "FailedAttachVolume on b")
    assert message == (f'Multi-Attach error for volume "{other_pv}" Volume is already used '
                       f"by 1 pod(s) in different namespaces")


def test_pvs_without_attaching_driver_are_left_alone(api: httpx.Client, ns: str) -> None:
    claim, pv = bound_claim(api, ns, driver="local.storagelab.io")  # no CSIDriver object
    pod_on(api, ns, "a", "node-1", claim)
    pod_on(api, ns, "b", "node-2", claim)
    marker, marker_pv = bound_claim(api, ns)  # a later change: the pass after ours has run
    pod_on(api, ns, "m", "node-1", marker)
    eventually(lambda: unique(marker_pv) in attached(api, "node-1"), 15, "marker attached")
    assert not any(pv in v for n in NODES for v in attached(api, n))
    assert "FailedAttachVolume" not in reasons(api, ns, "b")


def test_our_outdated_csi_driver_is_made_again(tmp_path: Path) -> None:
    """attachRequired is immutable: the nfs CSIDriver an older controller-manager made
    (labelled as ours) is deleted and created again; someone else's is left as it is."""
    old = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
           "spec": {"attachRequired": False}}
    ours = {"app.kubernetes.io/managed-by": "storagelab-controller-manager"}
    with running_apiserver(tmp_path) as srv, srv.client() as api:
        path = "/apis/storage.k8s.io/v1/csidrivers"
        for name, labels in ((DRIVER, ours), ("local.storagelab.io", {})):
            body = {**old, "metadata": {"name": name, "labels": labels}}
            assert api.post(path, json=body).status_code == 201
        first_uid = (get(api, f"{path}/{DRIVER}") or {})["metadata"]["uid"]
        asyncio.run(ensure_drivers(srv))
        nfs_driver = get(api, f"{path}/{DRIVER}") or {}
        assert nfs_driver["spec"]["attachRequired"] is True
        assert nfs_driver["metadata"]["uid"] != first_uid
        theirs = get(api, f"{path}/local.storagelab.io") or {}
        assert theirs["spec"]["attachRequired"] is False


async def ensure_drivers(srv: ApiServer) -> None:
    kube = kube_api.Kube.from_kubeconfig(str(srv.data_dir / "controller-manager.kubeconfig"))
    try:
        drivers: dict[str, contract.Driver] = {provisioner.NFS: nfs.NfsDriver(),
                                               provisioner.LOCAL: local.LocalDriver(
                                                   local.LocalConfig({}))}
        await capacity.CapacityController(kube, shared.Informers(kube), drivers
                                          ).ensure_csi_drivers()
    finally:
        await kube.close()


VA_PATH = "/apis/storage.k8s.io/v1/volumeattachments"


def va_of(api: httpx.Client, pv: str, node: str) -> Obj | None:
    return get(api, f"{VA_PATH}/{attachdetach.attachment_name(pv, DRIVER, node)}")


def test_attach_goes_through_a_volume_attachment(api: httpx.Client, ns: str) -> None:
    """csi-<sha256> created with the attacher's finalizer and status.attached before the
    Node records the volume; deleted (finalizer released) once the pod is gone."""
    claim, pv = bound_claim(api, ns)
    pod_on(api, ns, "a", "node-1", claim)
    eventually(lambda: unique(pv) in attached(api, "node-1"), 15, "attached to node-1")
    va = va_of(api, pv, "node-1") or {}
    assert va["spec"] == {"attacher": DRIVER, "nodeName": "node-1",
                          "source": {"persistentVolumeName": pv}}
    assert va["status"]["attached"] is True
    assert va["metadata"]["finalizers"] == ["external-attacher/nfs-storagelab-io"]
    assert va_of(api, pv, "node-2") is None
    message = eventually(lambda: reasons(api, ns, "a").get("SuccessfulAttachVolume"), 15,
                         "SuccessfulAttachVolume on a")
    assert message == f'AttachVolume.Attach succeeded for volume "{pv}" '

    assert api.delete(f"/api/v1/namespaces/{ns}/pods/a",
                      params={"gracePeriodSeconds": "0"}).status_code == 200
    eventually(lambda: va_of(api, pv, "node-1") is None, 15, "VolumeAttachment deleted")
    assert unique(pv) not in attached(api, "node-1")


def test_moving_rwo_volume_gets_a_new_attachment(api: httpx.Client, ns: str) -> None:
    claim, pv = bound_claim(api, ns)
    pod_on(api, ns, "a", "node-1", claim)
    eventually(lambda: (va_of(api, pv, "node-1") or {}).get("status", {}).get("attached"),
               15, "attached on node-1")
    pod_on(api, ns, "b", "node-2", claim)
    eventually(lambda: reasons(api, ns, "b").get("FailedAttachVolume"), 15, "Multi-Attach")
    assert va_of(api, pv, "node-2") is None  # refused: no VolumeAttachment for node-2
    api.delete(f"/api/v1/namespaces/{ns}/pods/a", params={"gracePeriodSeconds": "0"})
    eventually(lambda: unique(pv) in attached(api, "node-2"), 15, "attached to node-2")
    assert va_of(api, pv, "node-1") is None
    assert (va_of(api, pv, "node-2") or {})["status"]["attached"] is True


def test_attachments_of_other_attachers_are_left_alone(api: httpx.Client) -> None:
    name = uniq("va")
    body = {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
            "metadata": {"name": name},
            "spec": {"attacher": "other.example.com", "nodeName": "node-1",
                     "source": {"persistentVolumeName": uniq("nopv")}}}
    assert api.post(VA_PATH, json=body).status_code == 201
    claim_ns = uniq("marker")  # a later change the controllers act on: ours has been seen
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": claim_ns}}
                    ).status_code == 201
    marker, marker_pv = bound_claim(api, claim_ns)
    pod_on(api, claim_ns, "m", "node-1", marker)
    eventually(lambda: unique(marker_pv) in attached(api, "node-1"), 15, "marker attached")
    got = get(api, f"{VA_PATH}/{name}") or {}
    assert got["status"] == {"attached": False}
    assert not got["metadata"].get("finalizers")
    assert api.delete(f"{VA_PATH}/{name}").status_code == 200
