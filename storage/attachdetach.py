"""The attach/detach controller: which node a volume is attached to, and refusing a second.

A kubelet sees only its own pods (the node authorizer), so it cannot know that a
ReadWriteOnce volume is in use on another node; in Kubernetes that is the job of
kube-controller-manager's attach/detach controller, and this is its minimal faithful
version. The desired state is every (volume, node) pair of a scheduled, not yet terminated
pod on a node whose kubelet lets the controller attach (Node annotation
`volumes.kubernetes.io/controller-managed-attach-detach: "true"`), using a claim bound to a
CSI PersistentVolume whose CSIDriver says `attachRequired` (true when unset, the API
default; a driver without a CSIDriver object is treated as not attaching, so that clusters
without one keep working). The actual state is the Nodes' `status.volumesAttached` entries
named `kubernetes.io/csi/<driver>^<volumeHandle>`. Each pass detaches first (entries no pod
wants any more), then attaches; a volume whose access modes allow one node only
(ReadWriteOnce or ReadWriteOncePod without ReadWriteMany or ReadOnlyMany) that is attached
elsewhere is not attached: each waiting pod gets the `FailedAttachVolume` "Multi-Attach
error" event of reconciler.reportMultiAttachError, once, and the pass is retried.

Deliberate differences from Kubernetes: its CSI attacher creates a VolumeAttachment per
attachment and waits for an external-attacher to mark it attached; VolumeAttachments are not
served here and no driver attaches anything, so recording the attachment on the Node is the
attachment. The actual state is read back from the Nodes instead of being kept in memory,
and a detach does not wait for the kubelet's `volumesInUse` (the kubelet does not write it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from storage import matching
from storage.runtime import controller, events, informer, shared, workqueue
from storage.runtime import kube as kube_api
from storage.scheduling_api import CSI_DRIVER, NODE, SchedulingKube

Obj = dict[str, Any]
log = logging.getLogger(__name__)

COMPONENT = "attachdetach-controller"
ANN_CONTROLLER_MANAGED = "volumes.kubernetes.io/controller-managed-attach-detach"
CSI_PREFIX = "kubernetes.io/csi/"
REASON_FAILED_ATTACH = "FailedAttachVolume"
MULTI_ATTACH = "Multi-Attach error"
EXCLUSIVELY_ATTACHED = ("Volume is already exclusively attached to one node and can't be "
                        "attached to another")
SINGLE_NODE_MODES = frozenset({"ReadWriteOnce", "ReadWriteOncePod"})
MULTI_NODE_MODES = frozenset({"ReadWriteMany", "ReadOnlyMany"})
KEY = "world"  # one key: a multi-attach decision needs every node's view at once
RETRY_BLOCKED = 5.0


@dataclass(frozen=True, order=True)
class PodRef:
    namespace: str
    name: str


@dataclass(frozen=True)
class VolumeToAttach:
    """One desired (volume, node) pair and the pods on that node that want it."""

    volume: str  # the unique name: kubernetes.io/csi/<driver>^<handle>
    pv_name: str
    node: str
    multi_attach_allowed: bool
    pods: tuple[PodRef, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What one pass does: detach these, attach those, report the blocked ones."""

    detach: tuple[tuple[str, str], ...] = ()  # (volume, node)
    attach: tuple[VolumeToAttach, ...] = ()
    blocked: tuple[tuple[VolumeToAttach, tuple[str, ...]], ...] = ()  # (wanted, attached to)


# ----------------------------------------------------------------------------- decisions

def unique_volume_name(driver: str, handle: str) -> str:
    """The CSI plugin's unique volume name, as Node status.volumesAttached names it."""
    return f"{CSI_PREFIX}{driver}^{handle}"


def _not_running(statuses: Iterable[Mapping[str, Any]]) -> bool:
    return all((s.get("state") or {}).get("terminated") is not None or
               (s.get("state") or {}).get("waiting") is not None for s in statuses)


def pod_terminated(pod: Mapping[str, Any]) -> bool:
    """volumeutil.IsPodTerminated: phase Succeeded/Failed, or deleted with no container
    left running (a container whose state is neither terminated nor waiting runs)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return _not_running(status.get("initContainerStatuses") or ()) and \
        _not_running(status.get("containerStatuses") or ()) and \
        _not_running(status.get("ephemeralContainerStatuses") or ())


def multi_attach_allowed(pv: Mapping[str, Any]) -> bool:
    """util.IsMultiAttachAllowed for a PersistentVolume: no access modes means unknown
    (allowed); any ReadWriteMany or ReadOnlyMany allows it; otherwise one node only."""
    modes = set((pv.get("spec") or {}).get("accessModes") or ())
    return not modes or bool(modes & MULTI_NODE_MODES)


def attach_required(csi_driver: Mapping[str, Any] | None) -> bool:
    """Whether volumes of this driver are attached; no CSIDriver object: not here."""
    if csi_driver is None:
        return False
    return (csi_driver.get("spec") or {}).get("attachRequired") is not False


def controller_managed(node: Mapping[str, Any] | None) -> bool:
    return node is not None and \
        matching.annotations_of(dict(node)).get(ANN_CONTROLLER_MANAGED) == "true"


def _pod_volumes(pod: Mapping[str, Any], claims: Mapping[str, Obj], volumes: Mapping[str, Obj],
                 drivers: Mapping[str, Obj]) -> Iterable[tuple[str, Obj]]:
    """(unique name, PV) of each attachable CSI volume the pod uses through a bound claim."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "")
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        source = volume.get("persistentVolumeClaim")
        if not source:
            continue
        claim = claims.get(f"{namespace}/{source.get('claimName')}") or {}
        if (claim.get("status") or {}).get("phase") != "Bound":
            continue  # the binder is not done (getPVCFromCache refuses it too)
        pv_name = (claim.get("spec") or {}).get("volumeName")
        pv = volumes.get(str(pv_name)) if pv_name else None
        csi = ((pv or {}).get("spec") or {}).get("csi")
        if pv is None or not csi or not attach_required(drivers.get(str(csi.get("driver")))):
            continue
        yield unique_volume_name(str(csi["driver"]), str(csi.get("volumeHandle"))), pv


def desired_state(pods: Iterable[Mapping[str, Any]], nodes: Mapping[str, Obj],
                  claims: Mapping[str, Obj], volumes: Mapping[str, Obj],
                  drivers: Mapping[str, Obj]) -> dict[tuple[str, str], VolumeToAttach]:
    """(volume, node) -> what should be attached there, from pods on managed nodes."""
    found: dict[tuple[str, str], VolumeToAttach] = {}
    for pod in pods:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node or not controller_managed(nodes.get(node)) or pod_terminated(pod):
            continue
        meta = pod.get("metadata") or {}
        ref = PodRef(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        for name, pv in _pod_volumes(pod, claims, volumes, drivers):
            old = found.get((name, node))
            pods_there = tuple(sorted({*(old.pods if old else ()), ref}))
            found[(name, node)] = VolumeToAttach(name, matching.name_of(pv), node,
                                                 multi_attach_allowed(pv), pods_there)
    return found


def actual_state(nodes: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """volume -> nodes, from the CSI entries of every Node's status.volumesAttached."""
    attached: dict[str, set[str]] = {}
    for node in nodes:
        for entry in (node.get("status") or {}).get("volumesAttached") or ():
            name = str(entry.get("name") or "")
            if name.startswith(CSI_PREFIX):
                attached.setdefault(name, set()).add(matching.name_of(dict(node)))
    return attached


def plan(desired: Mapping[tuple[str, str], VolumeToAttach],
         actual: Mapping[str, set[str]]) -> Plan:
    """The reconciler's pass: detach what no pod wants, then attach what is wanted unless
    a single-node volume is attached to another node (reported instead, not attached)."""
    detach = tuple(sorted((v, n) for v, nodes in actual.items() for n in nodes
                          if (v, n) not in desired))
    after = {v: set(nodes) - {n for w, n in detach if w == v} for v, nodes in actual.items()}
    attach: list[VolumeToAttach] = []
    blocked: list[tuple[VolumeToAttach, tuple[str, ...]]] = []
    for key in sorted(desired):
        wanted = desired[key]
        there = after.setdefault(wanted.volume, set())
        if wanted.node in there:
            continue
        if there and not wanted.multi_attach_allowed:
            blocked.append((wanted, tuple(sorted(there))))
            continue
        there.add(wanted.node)
        attach.append(wanted)
    return Plan(detach, tuple(attach), tuple(blocked))


_NO_PODS = VolumeToAttach("", "", "", True)


def multi_attach_messages(wanted: VolumeToAttach, attached_to: Iterable[str],
                          desired: Mapping[tuple[str, str], VolumeToAttach]
                          ) -> list[tuple[PodRef, str]]:
    """reportMultiAttachError: for each waiting pod, its message. Pods of the volume on the
    other nodes are named when in the waiting pod's namespace, otherwise only counted."""
    others = [p for node in attached_to if node != wanted.node
              for p in (desired.get((wanted.volume, node)) or _NO_PODS).pods]
    prefix = f'{MULTI_ATTACH} for volume "{wanted.pv_name}"'
    if not others:
        return [(p, f"{prefix} {EXCLUSIVELY_ATTACHED}") for p in wanted.pods]
    out = []
    for pod in wanted.pods:
        local = [p.name for p in others if p.namespace == pod.namespace]
        foreign = len(others) - len(local)
        if local:
            msg = f"Volume is already used by pod(s) {', '.join(local)}"
            if foreign:
                msg += f" and {foreign} pod(s) in different namespaces"
        else:
            msg = f"Volume is already used by {foreign} pod(s) in different namespaces"
        out.append((pod, f"{prefix} {msg}"))
    return out


def attached_after(node: Mapping[str, Any], detach: Iterable[str],
                   attach: Iterable[str]) -> list[Obj]:
    """The node's volumesAttached with these detached and attached (others kept as is)."""
    gone = set(detach)
    kept = [dict(e) for e in (node.get("status") or {}).get("volumesAttached") or ()
            if e.get("name") not in gone]
    present = {e.get("name") for e in kept}
    added = [v for v in dict.fromkeys(attach) if v not in present]
    return kept + [{"name": v, "devicePath": ""} for v in added]


# ----------------------------------------------------------------------------- API

class AttachKube(SchedulingKube):
    """`SchedulingKube` plus the one write of this controller: nodes/status."""

    async def set_volumes_attached(self, node: Obj, attached: list[Obj]) -> Obj:
        """Merge-patch status.volumesAttached, guarded by the resourceVersion we read."""
        meta = node.get("metadata") or {}
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
                 "status": {"volumesAttached": attached or None}}
        return await self.merge_patch("Node", str(meta.get("name")), patch, status=True)


# ----------------------------------------------------------------------------- controller

class AttachDetachController:
    """Build it with the shared informers (before they run), then `run()`."""

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 retry_blocked: float = RETRY_BLOCKED) -> None:
        self.api = AttachKube(kube.client)
        self.retry_blocked = retry_blocked
        self.pods = informers.for_kind("Pod")
        self.claims = informers.for_kind("PersistentVolumeClaim")
        self.volumes = informers.for_kind("PersistentVolume")
        self.nodes = informer.Informer(self.api, NODE)
        self.drivers = informer.Informer(self.api, CSI_DRIVER)
        self.recorder = events.EventRecorder(kube, COMPONENT, host=socket.gethostname())
        self.queue = workqueue.WorkQueue("attachdetach", workqueue.Backoff(0.5, 30.0))
        # (volume, node) pairs whose Multi-Attach error was reported: once, as the desired
        # state's MultiAttachErrorReported flag; forgotten when the pair is no longer blocked.
        self._reported: set[tuple[str, str]] = set()
        handlers = informer.Handlers(self._changed, lambda old, new: self._changed(new),
                                     self._changed)
        for source in (self.pods, self.claims, self.volumes, self.nodes, self.drivers):
            source.add_handlers(handlers)

    def _changed(self, _: Obj) -> None:
        self.queue.add(KEY)

    async def run(self) -> None:
        """Own informers (Nodes, CSIDrivers), the recorder and one worker, until cancelled.
        Expects the shared informers to be running (the controller-manager starts them)."""
        own = (self.nodes, self.drivers)
        background = [asyncio.create_task(i.run(), name=f"attachdetach-{i.kind}") for i in own]
        background.append(asyncio.create_task(self.recorder.run(), name="attachdetach-events"))
        try:
            await asyncio.gather(*(i.wait_synced() for i in own))
            self.queue.add(KEY)
            await controller.run_workers(self.queue, self.reconcile, 1)
        finally:
            await controller.cancel_and_wait(background)

    def desired(self) -> dict[tuple[str, str], VolumeToAttach]:
        return desired_state(self.pods, {matching.name_of(n): n for n in self.nodes},
                             {informer.object_key(c): c for c in self.claims},
                             {matching.name_of(v): v for v in self.volumes},
                             {matching.name_of(d): d for d in self.drivers})

    async def reconcile(self, _: str) -> None:
        """One pass over the whole cluster; safe to run twice (it re-reads the caches)."""
        desired = self.desired()
        todo = plan(desired, actual_state(self.nodes))
        await self._write(todo.detach, ())  # detach first: it may unblock an attach
        await self._write((), todo.attach)
        self._report(todo.blocked, desired)
        if todo.blocked:
            raise controller.Requeue(self.retry_blocked, "volumes wait for a detach")

    async def _write(self, detach: Iterable[tuple[str, str]],
                     attach: Iterable[VolumeToAttach]) -> None:
        by_node: dict[str, tuple[list[str], list[str]]] = {}
        for volume, node_name in detach:
            by_node.setdefault(node_name, ([], []))[0].append(volume)
        for wanted in attach:
            by_node.setdefault(wanted.node, ([], []))[1].append(wanted.volume)
        for name, (gone, added) in sorted(by_node.items()):
            node = self.nodes.get(name)
            if node is None:
                continue  # deleted: nothing is attached to a node that does not exist
            updated = await self.api.set_volumes_attached(node, attached_after(node, gone, added))
            self.nodes.assume(updated)
            for volume in gone:
                log.info("detached %s from node %s", volume, name)
            for volume in added:
                log.info("attached %s to node %s", volume, name)

    def _report(self, blocked: Iterable[tuple[VolumeToAttach, tuple[str, ...]]],
                desired: Mapping[tuple[str, str], VolumeToAttach]) -> None:
        now: set[tuple[str, str]] = set()
        for wanted, attached_to in blocked:
            pair = (wanted.volume, wanted.node)
            now.add(pair)
            if pair in self._reported:
                continue
            for ref, message in multi_attach_messages(wanted, attached_to, desired):
                pod = self.pods.get(f"{ref.namespace}/{ref.name}")
                if pod is not None:
                    self.recorder.event(pod, "Warning", REASON_FAILED_ATTACH, message)
            log.info("volume %s waits on node %s: attached to %s", wanted.volume, wanted.node,
                     ", ".join(attached_to))
        self._reported = now
