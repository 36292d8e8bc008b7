"""The attacher of our CSI drivers: kubernetes-csi/external-attacher's part, in-process.

The attach/detach controller only creates and deletes VolumeAttachments; in Kubernetes a
sidecar next to each CSI driver (external-attacher) acts on those whose `spec.attacher` is
its driver: it adds the finalizer `external-attacher/<driver name with every character
outside [a-zA-Z0-9-] replaced by "-">`, calls ControllerPublishVolume and sets
`status.attached: true` with the call's publish context as `attachmentMetadata` (or
`status.attachError` when the call fails); when the VolumeAttachment is deleted it calls
ControllerUnpublishVolume, clears the status and removes its finalizer, so the object goes.
This module does that for our drivers. Neither attaches anything: the node mounts NFS (or
binds a local directory) itself, so publishing is a no-op with no metadata; a `Publisher`
can be given per driver for one that does attach.

Deliberate differences from external-attacher: no finalizer on the PersistentVolume (it is
not deleted while a pod uses it anyway, through pvc/pv protection), and no node ID lookup in
CSINode (our drivers identify nodes by name).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from storage.runtime import controller, informer, shared, workqueue
from storage.runtime import kube as kube_api
from storage.scheduling_api import VOLUME_ATTACHMENT

Obj = dict[str, Any]
log = logging.getLogger(__name__)
FINALIZER_PREFIX = "external-attacher/"
WORKERS = 4


class Publisher(Protocol):
    """ControllerPublishVolume / ControllerUnpublishVolume of one driver."""

    def publish(self, volume_handle: str, node: str, read_only: bool) -> Mapping[str, str]:
        """Make the volume reachable from `node`; returns the publish context (metadata)."""

    def unpublish(self, volume_handle: str, node: str) -> None:
        """Undo `publish`; succeeds when nothing is published."""


class NoAttach:
    """A driver whose node reaches the volume by itself (NFS, local directories)."""

    def publish(self, volume_handle: str, node: str, read_only: bool) -> Mapping[str, str]:
        return {}

    def unpublish(self, volume_handle: str, node: str) -> None:
        return None


_: Publisher = NoAttach()


def sanitize_driver_name(driver: str) -> str:
    """external-attacher's SanitizeDriverName: what a finalizer name may hold."""
    name = re.sub(r"[^a-zA-Z0-9-]", "-", driver)
    return name + "X" if name.endswith("-") else name


def finalizer_name(driver: str) -> str:
    return FINALIZER_PREFIX + sanitize_driver_name(driver)


@dataclass(frozen=True)
class Action:
    """What one VolumeAttachment needs next (at most one step per pass)."""

    kind: str  # "none", "add-finalizer", "attach", "detach", "remove-finalizer"


NONE, ADD_FINALIZER, ATTACH, DETACH, REMOVE_FINALIZER = (
    Action("none"), Action("add-finalizer"), Action("attach"), Action("detach"),
    Action("remove-finalizer"))


def next_action(va: Mapping[str, Any], drivers: Mapping[str, Publisher]) -> Action:
    """The state machine of external-attacher's csiHandler, one step at a time."""
    spec, meta = va.get("spec") or {}, va.get("metadata") or {}
    driver = str(spec.get("attacher") or "")
    if driver not in drivers:
        return NONE  # another attacher's
    has_finalizer = finalizer_name(driver) in (meta.get("finalizers") or ())
    status = va.get("status") or {}
    if meta.get("deletionTimestamp"):
        if not has_finalizer:
            return NONE
        return DETACH if status.get("attached") or status.get("attachmentMetadata") \
            else REMOVE_FINALIZER
    if not has_finalizer:
        return ADD_FINALIZER
    return NONE if status.get("attached") is True else ATTACH


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Attacher:
    """Watches VolumeAttachments and serves those of `drivers`; `run()` until cancelled."""

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 drivers: Mapping[str, Publisher], workers: int = WORKERS) -> None:
        self.kube = kube
        self.drivers = dict(drivers)
        self.workers = workers
        self.attachments = informers.for_kind(VOLUME_ATTACHMENT)
        self.volumes = informers.for_kind("PersistentVolume")  # external-attacher's PV lister
        self.queue = workqueue.WorkQueue("attacher", workqueue.Backoff(0.5, 30.0))
        self.attachments.add_handlers(informer.Handlers(
            self._changed, lambda old, new: self._changed(new), None))

    def _changed(self, va: Obj) -> None:
        if str((va.get("spec") or {}).get("attacher") or "") in self.drivers:
            self.queue.add(informer.object_key(va))

    async def run(self) -> None:
        """The workers until cancelled; the shared informers must run."""
        await self.attachments.wait_synced()
        await controller.run_workers(self.queue, self.reconcile, self.workers)

    async def reconcile(self, name: str) -> None:
        """Take the next step of one VolumeAttachment; each step's write requeues it."""
        va = self.attachments.get(name)
        if va is None:
            return
        action = next_action(va, self.drivers)
        if action == ADD_FINALIZER:
            await self._set_finalizers(va, [*self._finalizers(va), self._finalizer(va)])
        elif action == ATTACH:
            await self._attach(va)
        elif action == DETACH:
            await self._detach(va)
        elif action == REMOVE_FINALIZER:
            mine = self._finalizer(va)
            await self._set_finalizers(va, [f for f in self._finalizers(va) if f != mine])

    @staticmethod
    def _finalizers(va: Obj) -> list[str]:
        return list((va.get("metadata") or {}).get("finalizers") or ())

    @staticmethod
    def _finalizer(va: Obj) -> str:
        return finalizer_name(str(va["spec"]["attacher"]))

    async def _set_finalizers(self, va: Obj, finalizers: list[str]) -> None:
        meta = va["metadata"]
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                              "finalizers": finalizers or None}}
        try:
            updated = await self.kube.merge_patch(VOLUME_ATTACHMENT, meta["name"], patch)
        except kube_api.NotFound:
            return
        self.attachments.assume(updated)
        self.queue.add(meta["name"])

    def _handle(self, va: Obj) -> str:
        """The volume handle the driver knows the volume by (from the PV or inline spec);
        NotFound when the PV is not (or no longer) there."""
        source = (va.get("spec") or {}).get("source") or {}
        spec = source.get("inlineVolumeSpec")
        if spec is None:
            name = str(source.get("persistentVolumeName"))
            pv = self.volumes.get(name)
            if pv is None:
                raise kube_api.NotFound(f'persistentvolumes "{name}" not found')
            spec = pv.get("spec") or {}
        return str((spec.get("csi") or {}).get("volumeHandle") or "")

    async def _attach(self, va: Obj) -> None:
        spec = va["spec"]
        try:
            handle = self._handle(va)
            metadata = self.drivers[spec["attacher"]].publish(handle, spec["nodeName"], False)
        except Exception as e:  # the driver's failure is reported on the object
            await self._status(va, {"attachError": {"time": _now(), "message": str(e)}})
            raise controller.Requeue(5.0, f"attach failed: {e}") from e
        await self._status(va, {"attached": True,
                                "attachmentMetadata": dict(metadata) or None,
                                "attachError": None})
        log.info("attached %s (%s) to node %s", handle, spec["attacher"], spec["nodeName"])

    async def _detach(self, va: Obj) -> None:
        spec = va["spec"]
        try:
            handle = self._handle(va)
            self.drivers[spec["attacher"]].unpublish(handle, spec["nodeName"])
        except kube_api.NotFound:
            handle = ""  # the PV is gone: nothing left to ask the driver about
        except Exception as e:
            await self._status(va, {"detachError": {"time": _now(), "message": str(e)}})
            raise controller.Requeue(5.0, f"detach failed: {e}") from e
        await self._status(va, {"attached": False, "attachmentMetadata": None,
                                "detachError": None})
        log.info("detached %s (%s) from node %s", handle, spec["attacher"], spec["nodeName"])

    async def _status(self, va: Obj, status: Obj) -> None:
        meta = va["metadata"]
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": status}
        try:
            updated = await self.kube.merge_patch(VOLUME_ATTACHMENT, meta["name"], patch,
                                                  status=True)
        except kube_api.NotFound:
            return
        self.attachments.assume(updated)
        self.queue.add(meta["name"])
