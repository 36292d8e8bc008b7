"""A real kubelet waits for the attach/detach controller before it mounts a volume.

The kubelet registers its Node with `volumes.kubernetes.io/controller-managed-attach-detach`;
a volume of the storagelab.io/local driver, whose CSIDriver here says attachRequired, is then
not mounted (the pod stays ContainerCreating, no FailedMount) until the controller lists it
in the Node's status.volumesAttached. The controller runs in-process; everything else is
real: apiserver, kubelet process, Docker, the driver's bind mount.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from csi_like import contract, registry
from storage import attachdetach, attacher
from storage.runtime import kube as kube_api
from storage.runtime import shared
from tests.conftest import REPO, ApiServer
from tests.loopthread import LoopThread
from tests.node.harness import (
    MERGE,
    KubeletProcess,
    busybox,
    create,
    docker_exec,
    events_of,
    get_pod,
    mounts_under,
    node_cluster,
    wait_for,
    wait_phase,
)

Object = dict[str, Any]
NODE = "node-a"
DRIVER = "local.storagelab.io"


class LocalPathKubelet(KubeletProcess):
    """The harness's kubelet with a base path for the storagelab.io/local driver."""

    def __init__(self, server: ApiServer, root: Path, local_path: Path) -> None:
        super().__init__(server, NODE, root)
        self.local_path = local_path

    def start(self) -> LocalPathKubelet:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "storagelab.cli", "-v", "kubelet", "--node", self.node,
                "--data-dir", str(self.server.data_dir), "--root-dir", str(self.root),
                "--local-path", str(self.local_path)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        return self


class AttachDetach(LoopThread):
    """Only the attach/detach controller and the attacher of the driver (which marks its
    VolumeAttachments attached), as the controller-manager runs them."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        super().__init__()

    async def run(self) -> None:
        kube = kube_api.Kube.from_kubeconfig(
            str(self.server.data_dir / "controller-manager.kubeconfig"))
        informers = shared.Informers(kube, resync=5)
        ad = attachdetach.AttachDetachController(kube, informers)
        marks = attacher.Attacher(kube, informers, {DRIVER: attacher.NoAttach()})
        tasks = [asyncio.create_task(informers.run()), asyncio.create_task(marks.run())]
        try:
            await informers.wait_synced()
            await ad.run()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await kube.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[ApiServer, LocalPathKubelet]]:
    base = tmp_path_factory.mktemp("attach")

    def start(server: ApiServer) -> LocalPathKubelet:
        with server.client() as api:  # before the kubelet: every volume of it needs attach
            create(api, "/apis/storage.k8s.io/v1/csidrivers", {
                "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                "metadata": {"name": DRIVER}, "spec": {"attachRequired": True}})
        return LocalPathKubelet(server, base / "root", base / "local").start()
    with node_cluster(base, start) as running:
        yield running


def local_claim(api: httpx.Client, ns: str, claim: str, base: Path) -> str:
    """A volume made by the local driver (as the provisioner would) and a PV pre-bound to
    `claim`, both marked Bound (no binder runs here); returns the volume handle."""
    driver = registry.create("storagelab.io/local", {"nodePaths": {NODE: [str(base)]},
                                                     "nodeName": NODE})
    pv = f"pvc-{uuid.uuid4().hex[:8]}"
    volume = driver.create_volume(contract.CreateVolumeRequest(
        pv, 1 << 20, topology=contract.TopologyRequirement(
            preferred=(contract.Topology.node(NODE),)),
        claim=contract.ClaimMetadata(pvc_name=claim, pvc_namespace=ns, pv_name=pv)))
    create(api, "/api/v1/persistentvolumes", {"metadata": {"name": pv}, "spec": {
        "capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": ns, "name": claim},
        "csi": {"driver": DRIVER, "volumeHandle": volume.volume_id,
                "volumeAttributes": dict(volume.context)}}})
    create(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "metadata": {"name": claim}, "spec": {
            "accessModes": ["ReadWriteOnce"], "volumeName": pv,
            "resources": {"requests": {"storage": "1Mi"}}}})
    for path in (f"/api/v1/persistentvolumes/{pv}/status",
                 f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}/status"):
        r = api.patch(path, json={"status": {"phase": "Bound"}}, headers=MERGE)
        assert r.status_code == 200, r.text
    return str(volume.volume_id)


def attached(api: httpx.Client) -> set[str]:
    node = api.get(f"/api/v1/nodes/{NODE}").json()
    return {e["name"] for e in (node.get("status") or {}).get("volumesAttached") or ()}


def test_pod_waits_for_attach_then_runs(cluster: tuple[ApiServer, LocalPathKubelet]) -> None:
    server, kubelet = cluster
    with server.client() as api:
        wait_for("node registered", lambda: api.get(f"/api/v1/nodes/{NODE}").status_code == 200)
        annotations = api.get(f"/api/v1/nodes/{NODE}").json()["metadata"]["annotations"]
        assert annotations[attachdetach.ANN_CONTROLLER_MANAGED] == "true"
        ns = f"t-{uuid.uuid4().hex[:8]}"
        create(api, "/api/v1/namespaces", {"metadata": {"name": ns}})
        handle = local_claim(api, ns, "data", kubelet.local_path)
        create(api, f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "db"}, "spec": {
            "nodeName": NODE, "terminationGracePeriodSeconds": 1,
            "containers": [busybox("c", "echo hi > /data/f; sleep 3600",
                                   volumeMounts=[{"name": "d", "mountPath": "/data"}])],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}})

        def creating() -> bool:
            pod = get_pod(api, ns, "db") or {}
            states = [s.get("state") or {} for s in
                      (pod.get("status") or {}).get("containerStatuses") or ()]
            return bool(states) and all(
                (s.get("waiting") or {}).get("reason") == "ContainerCreating" for s in states)
        wait_for("pod ContainerCreating", creating)
        time.sleep(3)  # several kubelet syncs (1 s each): still waiting, quietly
        assert creating()
        assert [e["reason"] for e in events_of(api, ns, "db")
                if e["type"] == "Warning"] == []
        assert not [m for m in mounts_under(kubelet.root) if "kubernetes.io~csi" in m]

        controller = AttachDetach(server).start()
        try:
            unique = attachdetach.unique_volume_name(DRIVER, handle)
            wait_for("attached", lambda: unique in attached(api), timeout=15)
            pod = wait_phase(api, ns, "db", "Running")
            assert wait_for("file written", lambda: docker_exec(pod, "c", "cat", "/data/f")
                            ) == "hi\n"
            api.delete(f"/api/v1/namespaces/{ns}/pods/db")
            wait_for("pod gone", lambda: get_pod(api, ns, "db") is None, timeout=60)
            wait_for("detached", lambda: unique not in attached(api), timeout=15)
        finally:
            controller.stop()
