"""Node registration and heartbeat: the Node object and its Lease in kube-node-lease.

As a kubelet does, the Node is created (or, when it exists, its status refreshed) with
capacity, the `kubernetes.io/hostname` label, the annotation that hands attach/detach to the
controller-manager, and a Ready condition; liveness is then shown by renewing the node's
Lease every `lease_duration / 4` seconds, and the Ready condition's heartbeat is refreshed at
a slower pace.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import threading
from typing import Any

from kubelet import api as api_module

Object = dict[str, Any]
logger = logging.getLogger(__name__)
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40
STATUS_EVERY_S = 60.0
KUBELET_VERSION = "v1.32.0-storagelab"
# --enable-controller-attach-detach (on by default): the attach/detach controller attaches
# this node's volumes, and the kubelet waits for them in the Node's status.volumesAttached.
ANN_CONTROLLER_MANAGED = "volumes.kubernetes.io/controller-managed-attach-detach"
PRESSURE_CONDITIONS = (("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                       ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                       ("PIDPressure", "SufficientPID", "sufficient PID available"))


def micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capacity() -> dict[str, str]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    disk = os.statvfs("/")
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory // 1024}Ki", "pods": "110",
            "ephemeral-storage": f"{disk.f_blocks * disk.f_frsize // 1024}Ki"}


def node_status(runtime_version: str, at: str, address: str = "127.0.0.1",
                kubelet_port: int = 0) -> Object:
    """The Node's status; `address` and `kubelet_port` tell the apiserver where the
    kubelet's HTTPS server (logs, exec) listens."""
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": at,
             "lastTransitionTime": at}
    pressure = [{"type": t, "status": "False", "reason": f"KubeletHas{r}",
                 "message": f"kubelet has {m}", "lastHeartbeatTime": at,
                 "lastTransitionTime": at}
                for t, r, m in PRESSURE_CONDITIONS]
    uname = platform.uname()
    return {"capacity": capacity(), "allocatable": capacity(),
            "conditions": [*pressure, ready],
            "addresses": [{"type": "InternalIP", "address": address},
                          {"type": "Hostname", "address": uname.node}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
                         "containerRuntimeVersion": runtime_version,
                         "operatingSystem": "linux", "architecture": "amd64",
                         "kernelVersion": uname.release, "osImage": "storagelab node",
                         "machineID": "", "systemUUID": "", "bootID": ""}}


def node_object(name: str) -> Object:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64"},
                         "annotations": {ANN_CONTROLLER_MANAGED: "true"}}}


class NodeAgent:
    """Registers the Node, then keeps its Lease and Ready condition fresh."""

    def __init__(self, api: api_module.Api, name: str, runtime_version: str,
                 address: str = "127.0.0.1", kubelet_port: int = 0) -> None:
        self.api, self.name, self.runtime_version = api, name, runtime_version
        self.address, self.kubelet_port = address, kubelet_port
        self.node_uid = ""
        self.stopped = threading.Event()

    def register(self) -> None:
        try:
            node = self.api.create("nodes", node_object(self.name))
        except api_module.ApiFailure as e:
            if e.code != 409:
                raise
            node = self._claim_attach_detach(self.api.get("nodes", "", self.name))
        self.node_uid = node["metadata"]["uid"]
        self.update_status()
        self.renew_lease()

    def _claim_attach_detach(self, node: Object) -> Object:
        """An existing Node gets the annotation too (reconcileCMADAnnotationWithExistingNode)."""
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        if annotations.get(ANN_CONTROLLER_MANAGED) == "true":
            return node
        return self.api.patch("nodes", "", self.name,
                              {"metadata": {"annotations": {ANN_CONTROLLER_MANAGED: "true"}}})

    def update_status(self) -> None:
        self.api.patch_status("nodes", "", self.name,
                              {"status": node_status(self.runtime_version, _stamp(),
                                                     self.address, self.kubelet_port)})

    def renew_lease(self) -> None:
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION_S,
                "renewTime": micro_time()}
        try:
            self.api.patch("leases", LEASE_NAMESPACE, self.name, {"spec": spec})
        except api_module.NotFound:
            self.api.create("leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.name, "uid": self.node_uid}]},
                "spec": spec}, LEASE_NAMESPACE)

    def _server_sees_ready(self) -> bool:
        """Whether the Node on the server says Ready=True; after an outage the node
        lifecycle controller has set it Unknown, and the kubelet corrects it at once (as
        the real kubelet does when the status it would post differs)."""
        node = self.api.get("nodes", "", self.name)
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def start(self) -> None:
        threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True).start()

    def _heartbeat(self) -> None:
        since_status = 0.0
        interval = LEASE_DURATION_S / 4
        while not self.stopped.wait(interval):
            try:
                self.renew_lease()
                since_status += interval
                if since_status >= STATUS_EVERY_S or not self._server_sees_ready():
                    self.update_status()
                    since_status = 0.0
            except api_module.ApiFailure as e:
                logger.warning("heartbeat failed: %s", e)
