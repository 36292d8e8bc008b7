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
named `kubernetes.io/csi/<driver>^<volumeHandle>` and the VolumeAttachments. Each pass detaches first (entries no pod
wants any more), then attaches; a volume whose access modes allow one node only
(ReadWriteOnce or ReadWriteOncePod without ReadWriteMany or ReadOnlyMany) that is attached
elsewhere is not attached: each waiting pod gets the `FailedAttachVolume` "Multi-Attach
error" event of reconciler.reportMultiAttachError, once, and the pass is retried.

Attaching goes through VolumeAttachment objects, as Kubernetes' CSI attacher does: for each
(volume, node) pair to attach the controller creates `csi-<sha256(handle+driver+node)>`
(spec.attacher, spec.nodeName, spec.source.persistentVolumeName) and waits for the driver's
attacher (storage/attacher.py for our drivers) to set status.attached; only then is the
volume recorded in the Node's `status.volumesAttached`, which the kubelet waits for. A
detach removes the Node entry and deletes the VolumeAttachment; a single-node volume is
attached elsewhere only once its old VolumeAttachment is gone. A volume counts as attached
(for Multi-Attach) when the Node records it or its VolumeAttachment says attached. Once
recorded, each pod that wanted it gets a `SuccessfulAttachVolume` event.

Deliberate differences from Kubernetes: the actual state is read back from the Nodes and
the VolumeAttachments instead of being kept in memory; a VolumeAttachment whose PV is gone
is left alone (Kubernetes cannot map it to a volume either); a detach does not wait for the
kubelet's `volumesInUse` (the kubelet does not write it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from storage import matching
from storage.runtime import controller, events, informer, shared, workqueue
from storage.runtime import kube as kube_api
from storage.scheduling_api import CSI_DRIVER, NODE, VOLUME_ATTACHMENT, SchedulingKube

Obj = dict[str, Any]
log = logging.getLogger(__name__)

COMPONENT = "attachdetach-controller"
ANN_CONTROLLER_MANAGED = "volumes.kubernetes.io/controller-managed-attach-detach"
CSI_PREFIX = "kubernetes.io/csi/"
REASON_FAILED_ATTACH = "FailedAttachVolume"
REASON_ATTACHED = "SuccessfulAttachVolume"
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
class Steps:
    """What one pass writes around the VolumeAttachments, once `plan` has decided."""

    create: tuple[VolumeToAttach, ...] = ()     # VolumeAttachments to create
    delete: tuple[str, ...] = ()                # VolumeAttachments (names) to delete
    record: tuple[tuple[str, str], ...] = ()    # (volume, node) attached: add to the Node
    unrecord: tuple[tuple[str, str], ...] = ()  # (volume, node) detached: drop from the Node


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


def split_unique_name(volume: str) -> tuple[str, str]:
    """(driver, volumeHandle) of a unique CSI volume name (a driver name has no "^")."""
    driver, _, handle = volume.removeprefix(CSI_PREFIX).partition("^")
    return driver, handle


def attachment_name(handle: str, driver: str, node: str) -> str:
    """The CSI attacher's getAttachmentName: csi-<hex sha256(volumeHandle+driver+nodeName)>."""
    return "csi-" + hashlib.sha256(f"{handle}{driver}{node}".encode()).hexdigest()


def attachment_name_of(volume: str, node: str) -> str:
    driver, handle = split_unique_name(volume)
    return attachment_name(handle, driver, node)


def volume_attachment(wanted: VolumeToAttach) -> Obj:
    """The VolumeAttachment the CSI attacher creates for one (volume, node) pair."""
    driver, _ = split_unique_name(wanted.volume)
    return {"apiVersion": "storage.k8s.io/v1", "kind": VOLUME_ATTACHMENT,
            "metadata": {"name": attachment_name_of(wanted.volume, wanted.node)},
            "spec": {"attacher": driver, "nodeName": wanted.node,
                     "source": {"persistentVolumeName": wanted.pv_name}}}


def attachments_by_pair(attachments: Iterable[Mapping[str, Any]],
                        volumes: Mapping[str, Obj]) -> dict[tuple[str, str], Obj]:
    """(volume, node) -> VolumeAttachment, for those of a CSI PV that still exists."""
    found: dict[tuple[str, str], Obj] = {}
    for va in attachments:
        spec = va.get("spec") or {}
        pv_name = (spec.get("source") or {}).get("persistentVolumeName")
        csi = ((volumes.get(str(pv_name)) or {}).get("spec") or {}).get("csi") if pv_name \
            else None
        if csi and csi.get("driver") == spec.get("attacher"):
            volume = unique_volume_name(str(csi["driver"]), str(csi.get("volumeHandle")))
            found[(volume, str(spec.get("nodeName") or ""))] = dict(va)
    return found


def is_attached(va: Mapping[str, Any] | None) -> bool:
    return va is not None and (va.get("status") or {}).get("attached") is True and \
        not (va.get("metadata") or {}).get("deletionTimestamp")


def confirmed(recorded: Mapping[str, set[str]],
              attachments: Mapping[tuple[str, str], Obj]) -> dict[str, set[str]]:
    """volume -> nodes it is attached to: recorded on the Node or attached by its attacher."""
    out = {v: set(nodes) for v, nodes in recorded.items()}
    for (volume, node), va in attachments.items():
        if is_attached(va):
            out.setdefault(volume, set()).add(node)
    return out


def steps(todo: Plan, desired: Mapping[tuple[str, str], VolumeToAttach],
          recorded: Mapping[str, set[str]],
          attachments: Mapping[tuple[str, str], Obj]) -> Steps:
    """The writes of a pass: delete the VolumeAttachments no pod wants, create those `plan`
    attaches (a single-node volume only once no other VolumeAttachment of it is left),
    and record on the Node what its attacher reports attached."""
    unrecord = tuple(p for p in todo.detach if p[1] in recorded.get(p[0], ()))
    delete = tuple(sorted(matching.name_of(va) for pair, va in attachments.items()
                          if pair not in desired and
                          not (va.get("metadata") or {}).get("deletionTimestamp")))
    create = []
    for wanted in todo.attach:
        others = [n for v, n in attachments if v == wanted.volume and n != wanted.node]
        if (wanted.volume, wanted.node) in attachments or \
                (others and not wanted.multi_attach_allowed):
            continue  # its attacher is at work, or the old node is not let go yet
        create.append(wanted)
    # A volume on the Node from before VolumeAttachments were served gets one too.
    create += [w for key, w in sorted(desired.items()) if key not in attachments and
               key[1] in recorded.get(key[0], ()) and w not in create]
    record = tuple(sorted(key for key in desired if is_attached(attachments.get(key)) and
                          key[1] not in recorded.get(key[0], ())))
    return Steps(tuple(create), delete, record, unrecord)


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


def attach_succeeded_message(pv_name: str) -> str:
    """The operation generator's GenerateMsg("AttachVolume.Attach succeeded", ""): the
    trailing space is Kubernetes' (an empty suffix after a space)."""
    return f'AttachVolume.Attach succeeded for volume "{pv_name}" '


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
    """`SchedulingKube` plus the writes of this controller: nodes/status and
    VolumeAttachments (created as ours if one exists already, deleted if still there)."""

    async def ensure_attachment(self, va: Obj) -> None:
        try:
            await self.create(VOLUME_ATTACHMENT, va)
        except kube_api.AlreadyExists:
            pass

    async def delete_attachment(self, name: str) -> None:
        try:
            await self.delete(VOLUME_ATTACHMENT, name)
        except kube_api.NotFound:
            pass

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
        self.nodes = informers.for_kind(NODE)
        self.drivers = informers.for_kind(CSI_DRIVER)
        self.attachments = informers.for_kind(VOLUME_ATTACHMENT)
        self.recorder = events.EventRecorder(kube, COMPONENT, host=socket.gethostname())
        self.queue = workqueue.WorkQueue("attachdetach", workqueue.Backoff(0.5, 30.0))
        # (volume, node) pairs whose Multi-Attach error was reported: once, as the desired
        # state's MultiAttachErrorReported flag; forgotten when the pair is no longer blocked.
        self._reported: set[tuple[str, str]] = set()
        handlers = informer.Handlers(self._changed, lambda old, new: self._changed(new),
                                     self._changed)
        for source in (self.pods, self.claims, self.volumes, self.nodes, self.drivers,
                       self.attachments):
            source.add_handlers(handlers)

    def _changed(self, _: Obj) -> None:
        self.queue.add(KEY)

    async def run(self) -> None:
        """The recorder and one worker, until cancelled. Expects the shared informers to be
        running (the controller-manager starts them)."""
        background = [asyncio.create_task(self.recorder.run(), name="attachdetach-events")]
        try:
            await asyncio.gather(*(i.wait_synced() for i in (self.nodes, self.drivers,
                                                              self.attachments)))
            self.queue.add(KEY)
            await controller.run_workers(self.queue, self.reconcile, 1)
        finally:
            await controller.cancel_and_wait(background)

    def desired(self) -> dict[tuple[str, str], VolumeToAttach]:
        # Views, not copies: this runs after every claim or volume change.
        return desired_state(self.pods, self.nodes.by_key(), self.claims.by_key(),
                             self.volumes.by_key(), self.drivers.by_key())

    async def reconcile(self, _: str) -> None:
        """One pass over the whole cluster; safe to run twice (it re-reads the caches)."""
        desired = self.desired()
        recorded = actual_state(self.nodes)
        attachments = attachments_by_pair(self.attachments, self.volumes.by_key())
        todo = plan(desired, confirmed(recorded, attachments))
        writes = steps(todo, desired, recorded, attachments)
        await self._write(writes.unrecord, ())  # detach first: it may unblock an attach
        for name in writes.delete:
            await self.api.delete_attachment(name)
            log.info("deleted VolumeAttachment %s", name)
        for wanted in writes.create:
            await self.api.ensure_attachment(volume_attachment(wanted))
            log.info("VolumeAttachment for %s on node %s", wanted.volume, wanted.node)
        await self._write((), writes.record)
        self._announce(desired[pair] for pair in writes.record if pair in desired)
        self._report(todo.blocked, desired)
        if todo.blocked:
            raise controller.Requeue(self.retry_blocked, "volumes wait for a detach")

    async def _write(self, detach: Iterable[tuple[str, str]],
                     attach: Iterable[tuple[str, str]]) -> None:
        """Drop `detach` from and add `attach` to the Nodes' status.volumesAttached."""
        by_node: dict[str, tuple[list[str], list[str]]] = {}
        for volume, node_name in detach:
            by_node.setdefault(node_name, ([], []))[0].append(volume)
        for volume, node_name in attach:
            by_node.setdefault(node_name, ([], []))[1].append(volume)
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

    def _announce(self, attached: Iterable[VolumeToAttach]) -> None:
        """SuccessfulAttachVolume on every pod that waited for the attach, once."""
        for wanted in attached:
            for ref in wanted.pods:
                pod = self.pods.get(f"{ref.namespace}/{ref.name}")
                if pod is not None:
                    self.recorder.event(pod, "Normal", REASON_ATTACHED,
                                        attach_succeeded_message(wanted.pv_name))

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
