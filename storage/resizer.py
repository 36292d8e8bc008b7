"""The volume resizer: grows a bound claim's volume when its user asks for more storage.

It follows Kubernetes' CSI external-resizer as it runs with RecoverVolumeExpansionFailure
(beta and on by default in 1.32, the rules our apiserver's PVC validation already applies):
a Bound claim whose `spec.resources.requests.storage` exceeds `status.capacity`, on a PV of one
of our csi_like drivers, is marked `Resizing` with `status.allocatedResources` set to the size
being attempted and `allocatedResourceStatuses.storage: ControllerResizeInProgress`; the
driver's `expand_volume` runs; the PV's `spec.capacity` follows; then either the claim's
`status.capacity` is set (event VolumeResizeSuccessful) or, when the driver says the node must
finish, the claim gets `FileSystemResizePending` / `NodeResizePending` and the kubelet finishes.
The driver gets the class's controller-expand Secret (`csi.storage.k8s.io/controller-expand-
secret-name` / `-namespace`, see `provisioning_secrets.for_expansion`), which the nfs driver
needs to reach an export over SFTP; a Secret that cannot be read is a VolumeResizeFailed
event and a retry, the claim's status untouched (not a final error: nothing ran).
Failures are VolumeResizeFailed events and retries with per-claim exponential backoff; an
"infeasible" failure (bad argument, no such volume, more than the backend can hold) marks
`ControllerResizeInfeasible`, is retried slowly, and lets the user lower the request, which
the apiserver allows down to (not including) `status.capacity`. Which size to attempt after
earlier half-finished or failed attempts is the pure `plan`, a table of Kubernetes' cases.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, NoReturn

from apimachinery import quantity
from csi_like import contract, errors
from storage import matching, provisioner, provisioning_secrets
from storage.runtime import controller, events, informer, shared, workqueue
from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)

COMPONENT_PREFIX = "external-resizer"
ANN_STORAGE_RESIZER = "volume.kubernetes.io/storage-resizer"
ANN_PRE_RESIZE_CAPACITY = "volume.alpha.kubernetes.io/pre-resize-capacity"

# Event reasons (external-resizer's pkg/util/events.go).
REASON_RESIZING = "Resizing"
REASON_FAILED = "VolumeResizeFailed"
REASON_SUCCESSFUL = "VolumeResizeSuccessful"
REASON_FS_RESIZE_REQUIRED = "FileSystemResizeRequired"
MSG_SUCCESSFUL = "Resize volume succeeded"
MSG_FS_RESIZE_REQUIRED = "Require file system resize of volume on node"

# PVC condition types.
COND_RESIZING = "Resizing"
COND_FS_RESIZE_PENDING = "FileSystemResizePending"
COND_CONTROLLER_RESIZE_ERROR = "ControllerResizeError"
COND_NODE_RESIZE_ERROR = "NodeResizeError"
RESIZE_CONDITIONS = (COND_RESIZING, COND_FS_RESIZE_PENDING, COND_CONTROLLER_RESIZE_ERROR,
                     COND_NODE_RESIZE_ERROR)
MSG_FS_RESIZE_PENDING = ("Waiting for user to (re-)start a pod to finish file system resize "
                         "of volume on node.")

# status.allocatedResourceStatuses values (ClaimResourceStatus).
CONTROLLER_IN_PROGRESS = "ControllerResizeInProgress"
CONTROLLER_INFEASIBLE = "ControllerResizeInfeasible"
NODE_PENDING = "NodeResizePending"
NODE_IN_PROGRESS = "NodeResizeInProgress"
NODE_INFEASIBLE = "NodeResizeInfeasible"


def msg_resizing(pv_name: str) -> str:
    return f"External resizer is resizing volume {pv_name}"


def msg_failed(pv_name: str, resizer: str, error: str) -> str:
    return f'resize volume "{pv_name}" by resizer "{resizer}" failed: {error}'


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- reading

def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def requested(claim: Mapping[str, Any]) -> str | None:
    return (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
            ).get("storage")


def status_capacity(claim: Mapping[str, Any]) -> str | None:
    return (_status(claim).get("capacity") or {}).get("storage")


def allocated(claim: Mapping[str, Any]) -> str | None:
    return (_status(claim).get("allocatedResources") or {}).get("storage")


def resize_status(claim: Mapping[str, Any]) -> str:
    return str((_status(claim).get("allocatedResourceStatuses") or {}).get("storage") or "")


def has_condition(claim: Mapping[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in _status(claim).get("conditions") or ())


def size(raw: str | None) -> Fraction:
    return matching.parse_storage(raw)


def needs_resize(claim: Mapping[str, Any]) -> bool:
    """pvcNeedResize: Bound, with a volume, asking for more than it has."""
    if matching.phase_of(claim) != matching.CLAIM_BOUND or \
            not matching.volume_name_of_claim(claim):
        return False
    try:
        return size(requested(claim)) > size(status_capacity(claim))
    except matching.InvalidQuantity:
        return False


def resize_wanted_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """The storage request or the storage-resizer annotation differ between two versions."""
    key = ANN_STORAGE_RESIZER
    if matching.annotations_of(old).get(key) != matching.annotations_of(new).get(key):
        return True
    try:
        return size(requested(old)) != size(requested(new))
    except matching.InvalidQuantity:
        return True


def csi_driver_of(volume: Mapping[str, Any]) -> str:
    return str(((volume.get("spec") or {}).get("csi") or {}).get("driver") or "")


def can_resize(claim: Mapping[str, Any], volume: Mapping[str, Any], driver_name: str) -> bool:
    """pvCanBeExpanded: our driver's CSI volume, bound to this very claim (namespace + uid),
    and not handed by the claim's storage-resizer annotation to another resizer."""
    resizer = matching.annotations_of(claim).get(ANN_STORAGE_RESIZER)
    if resizer and resizer != driver_name:
        return False
    if csi_driver_of(volume) != driver_name:
        return False
    ref = matching.claim_ref(volume) or {}
    return ref.get("namespace") == matching.namespace_of(claim) and \
        ref.get("uid") == matching.uid_of(claim)


# ----------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Skip:
    """Nothing for the controller to do now (the node finishes, or nothing is asked)."""

    why: str


@dataclass(frozen=True)
class Expand:
    """Call the driver for `target`; `mark` says the in-progress status must be written
    (it is not when the same size is already recorded in allocatedResources)."""

    target: str
    mark: bool


def plan(claim: Mapping[str, Any], volume: Mapping[str, Any], final_error: bool) -> Skip | Expand:
    """expandAndRecover's choice of size. `final_error` says the last controller attempt for
    this claim failed for good (so a lowered request may replace allocatedResources)."""
    spec, alloc, status = requested(claim), allocated(claim), resize_status(claim)
    assert spec is not None  # needs_resize held
    target: str = spec
    if size((volume.get("spec") or {}).get("capacity", {}).get("storage")) < size(spec):
        # OBSERVATION: the volume is smaller than asked: the controller has work, but a
        # node expansion already under way finishes first.
        if status in (NODE_INFEASIBLE, NODE_PENDING, NODE_IN_PROGRESS) and alloc:
            target = alloc
            if status != NODE_INFEASIBLE and _volume_size(volume) >= size(alloc):
                return Skip("node expansion of the previous size is not finished")
        elif status == CONTROLLER_IN_PROGRESS and alloc and not final_error:
            target = alloc  # the last attempt may still be running in the backend
    else:
        # OBSERVATION: the volume already has the asked size.
        if status in (NODE_PENDING, NODE_IN_PROGRESS):
            return Skip("the kubelet finishes the expansion")
        if alloc and status in ("", NODE_INFEASIBLE, CONTROLLER_IN_PROGRESS,
                                CONTROLLER_INFEASIBLE):
            target = alloc  # resume (or record) the last attempt's size
        elif has_condition(claim, COND_FS_RESIZE_PENDING):
            return Skip("the kubelet finishes the expansion")
    return Expand(target, mark=not (alloc is not None and size(alloc) == size(target)))


def _volume_size(volume: Mapping[str, Any]) -> Fraction:
    return size((volume.get("spec") or {}).get("capacity", {}).get("storage"))


# ----------------------------------------------------------------------------- new objects

def merge_conditions(old: list[Obj], new: list[Obj], keep_old: bool = False) -> list[Obj]:
    """MergeResizeConditionsOfPVC: other conditions stay; resize conditions are replaced by
    `new` (and dropped unless `keep_old`)."""
    wanted = {c["type"]: c for c in new}
    merged: list[Obj] = []
    for condition in old:
        kind = condition.get("type")
        if kind not in RESIZE_CONDITIONS:
            merged.append(condition)
        elif kind in wanted:
            merged.append(wanted.pop(kind))
        elif keep_old:
            merged.append(condition)
    return merged + list(wanted.values())


def _condition(kind: str, now: str, message: str = "") -> Obj:
    condition: Obj = {"type": kind, "status": "True", "lastTransitionTime": now}
    if message:
        condition["message"] = message
    return condition


def _with_status(claim: Mapping[str, Any], **changes: Any) -> Obj:
    new = copy.deepcopy(dict(claim))
    status = new.setdefault("status", {})
    for key, value in changes.items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    return new


def _resource_statuses(claim: Mapping[str, Any], value: str | None) -> Obj | None:
    statuses = dict(_status(claim).get("allocatedResourceStatuses") or {})
    if value is None:
        statuses.pop("storage", None)
    else:
        statuses["storage"] = value
    return statuses or None


def mark_in_progress(claim: Mapping[str, Any], target: str, now: str) -> Obj:
    return _with_status(
        claim,
        conditions=merge_conditions(list(_status(claim).get("conditions") or ()),
                                    [_condition(COND_RESIZING, now)]),
        allocatedResourceStatuses=_resource_statuses(claim, CONTROLLER_IN_PROGRESS),
        allocatedResources={**(_status(claim).get("allocatedResources") or {}),
                            "storage": target})


def mark_node_pending(claim: Mapping[str, Any], now: str) -> Obj:
    return _with_status(
        claim,
        conditions=merge_conditions(list(_status(claim).get("conditions") or ()),
                                    [_condition(COND_FS_RESIZE_PENDING, now,
                                                MSG_FS_RESIZE_PENDING)]),
        allocatedResourceStatuses=_resource_statuses(claim, NODE_PENDING))


def mark_finished(claim: Mapping[str, Any], capacity: str) -> Obj:
    conditions = merge_conditions(list(_status(claim).get("conditions") or ()), [])
    return _with_status(
        claim, capacity={**(_status(claim).get("capacity") or {}), "storage": capacity},
        conditions=conditions or None,
        allocatedResourceStatuses=_resource_statuses(claim, None))


def mark_failed(claim: Mapping[str, Any], message: str, now: str, infeasible: bool) -> Obj:
    """A final failure: the ControllerResizeError condition (other resize conditions kept);
    an infeasible one also moves allocatedResourceStatuses to ControllerResizeInfeasible."""
    conditions = merge_conditions(list(_status(claim).get("conditions") or ()),
                                  [_condition(COND_CONTROLLER_RESIZE_ERROR, now, message)],
                                  keep_old=True)
    if not infeasible:
        return _with_status(claim, conditions=conditions)
    return _with_status(claim, conditions=conditions,
                        allocatedResourceStatuses=_resource_statuses(
                            claim, CONTROLLER_INFEASIBLE))


def with_capacity(volume: Mapping[str, Any], capacity: str, pre_resize: str | None) -> Obj:
    """The PV at its new size; `pre_resize` (the claim's old capacity) is recorded when the
    node still has to grow the file system, unless an earlier attempt recorded it."""
    new = copy.deepcopy(dict(volume))
    new["spec"]["capacity"] = {**(new["spec"].get("capacity") or {}), "storage": capacity}
    annotations = new["metadata"].get("annotations") or {}
    if pre_resize is not None and ANN_PRE_RESIZE_CAPACITY not in annotations:
        new["metadata"]["annotations"] = {**annotations, ANN_PRE_RESIZE_CAPACITY: pre_resize}
    return new


# ----------------------------------------------------------------------------- driver errors

# CSI status codes for our error classes, for the messages users read.
_GRPC_CODES: tuple[tuple[type[errors.DriverError], str], ...] = (
    (errors.InvalidArgument, "InvalidArgument"), (errors.VolumeNotFound, "NotFound"),
    (errors.OutOfCapacity, "OutOfRange"), (errors.TemporaryError, "Unavailable"),
    (errors.PermanentError, "Internal"))
INFEASIBLE = (errors.InvalidArgument, errors.VolumeNotFound, errors.OutOfCapacity)


def rpc_message(error: errors.DriverError) -> str:
    code = next((c for cls, c in _GRPC_CODES if isinstance(error, cls)), "Unknown")
    return f"rpc error: code = {code} desc = {error}"


def is_final(error: errors.DriverError) -> bool:
    """IsFinalError: the operation surely is not running on in the backend."""
    return not isinstance(error, errors.TemporaryError)


def is_infeasible(error: errors.DriverError) -> bool:
    """IsInfeasibleError (INVALID_ARGUMENT, NOT_FOUND, OUT_OF_RANGE): the size cannot be had;
    the user should ask for less."""
    return isinstance(error, INFEASIBLE)


# ----------------------------------------------------------------------------- controller

def bytes_of(raw: str) -> int:
    return math.ceil(size(raw))


def quantity_of(capacity_bytes: int) -> str:
    return quantity.format_quantity(capacity_bytes, True)


class ResizeController:
    """One external-resizer for each of our drivers, sharing the informers and the queue.

    `drivers` maps provisioner names (as `ProvisionerConfig.drivers()` gives them) to driver
    objects; the PV's spec.csi.driver names the driver (`csi_driver_name`).
    """

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 drivers: Mapping[str, contract.Driver], *, base_backoff: float = 1.0,
                 max_backoff: float = 300.0, slow_retry: float = 300.0) -> None:
        self.kube = kube
        self.drivers = {provisioner.csi_driver_name(name): driver
                        for name, driver in drivers.items()}
        self.slow_retry = slow_retry
        self.claims = informers.for_kind("PersistentVolumeClaim")
        self.volumes = informers.for_kind("PersistentVolume")
        self.classes = informers.for_kind("StorageClass")
        self.secrets = provisioning_secrets.Secrets(kube)
        self.queue = workqueue.WorkQueue("resizer", workqueue.Backoff(base_backoff,
                                                                      max_backoff))
        self.recorders = {name: events.EventRecorder(kube, f"{COMPONENT_PREFIX} {name}")
                          for name in self.drivers}
        # Claims whose last attempt failed for good / was infeasible (until when to wait).
        self._final_errors: set[str] = set()
        self._slow_until: dict[str, float] = {}
        self.claims.add_handlers(informer.Handlers(
            self._claim_changed, self._claim_updated, self._claim_deleted))

    def _claim_changed(self, claim: Obj) -> None:
        if needs_resize(claim):
            self.queue.add(matching.claim_key(claim))

    def _claim_updated(self, old: Obj, new: Obj) -> None:
        """updatePVC: only a new request, a new resizer annotation or a resync (same
        resourceVersion) queue the claim, so that our own status writes do not cut the
        failure backoff short. Unlike external-resizer, a lowered request counts too: it
        is how a user recovers from an infeasible size, and should not wait for a resync."""
        if resize_wanted_changed(old, new) or \
                old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            self._claim_changed(new)

    def _claim_deleted(self, claim: Obj) -> None:
        key = matching.claim_key(claim)
        self.queue.forget(key)
        self._final_errors.discard(key)
        self._slow_until.pop(key, None)

    async def run(self, workers: int = 2) -> None:
        """Workers and event recorders until cancelled; the shared informers must run."""
        recorders = [asyncio.create_task(r.run()) for r in self.recorders.values()]
        try:
            await controller.run_workers(self.queue, self.sync_claim, workers)
        finally:
            await controller.cancel_and_wait(recorders)

    async def flush_events(self) -> None:
        await asyncio.gather(*(r.flush() for r in self.recorders.values()))

    # -- one claim ------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or not needs_resize(claim):
            return
        volume = self.volumes.get(matching.volume_name_of_claim(claim))
        if volume is None:
            return
        name = csi_driver_of(volume)
        if name not in self.drivers or not can_resize(claim, volume, name):
            return
        decision = plan(claim, volume, key in self._final_errors)
        if isinstance(decision, Skip):
            log.debug("claim %s: %s", key, decision.why)
            return
        self._wait_if_infeasible(key, claim, decision)
        if decision.mark:
            claim = await self._write_claim(mark_in_progress(claim, decision.target,
                                                             now_rfc3339()))
        await self._expand(key, claim, volume, name, decision.target)

    def _wait_if_infeasible(self, key: str, claim: Obj, decision: Expand) -> None:
        """The same size that was found infeasible is retried only slowly."""
        until = self._slow_until.get(key)
        if until is None or decision.mark or resize_status(claim) != CONTROLLER_INFEASIBLE:
            self._slow_until.pop(key, None)
            return
        if time.monotonic() < until:
            raise controller.Requeue(until - time.monotonic(), "infeasible; retrying slowly")

    async def _expand(self, key: str, claim: Obj, volume: Obj, name: str, target: str) -> None:
        pv_name = matching.name_of(volume)
        self._event(name, claim, "Normal", REASON_RESIZING, msg_resizing(pv_name))
        handle = str(volume["spec"]["csi"].get("volumeHandle") or "")
        secrets = await self._expand_secrets(claim, volume, pv_name, name)
        try:
            result = await asyncio.to_thread(self.drivers[name].expand_volume, handle,
                                             bytes_of(target), secrets)
        except errors.NotMine:
            return
        except errors.DriverError as e:
            await self._failed(key, claim, pv_name, name, e)
        self._final_errors.discard(key)
        self._slow_until.pop(key, None)
        capacity = quantity_of(result.capacity_bytes)
        pre_resize = status_capacity(claim) if result.node_expansion_required else None
        self.volumes.assume(await self.kube.replace(
            "PersistentVolume", with_capacity(volume, capacity, pre_resize)))
        if result.node_expansion_required:
            await self._write_claim(mark_node_pending(claim, now_rfc3339()))
            self._event(name, claim, "Normal", REASON_FS_RESIZE_REQUIRED,
                        MSG_FS_RESIZE_REQUIRED)
            return
        await self._write_claim(mark_finished(claim, capacity))
        self._event(name, claim, "Normal", REASON_SUCCESSFUL, MSG_SUCCESSFUL)

    async def _expand_secrets(self, claim: Obj, volume: Obj, pv_name: str,
                              name: str) -> dict[str, str]:
        sc = self.classes.get(str((volume.get("spec") or {}).get("storageClassName") or ""))
        try:
            return await self.secrets.for_expansion(
                volume, provisioner.claim_metadata(claim, pv_name), sc)
        except provisioning_secrets.SecretError as e:
            message = msg_failed(pv_name, name, str(e))
            self._event(name, claim, "Warning", REASON_FAILED, message)
            raise controller.RetryLater(message) from e

    async def _failed(self, key: str, claim: Obj, pv_name: str, name: str,
                      error: errors.DriverError) -> NoReturn:
        """VolumeResizeFailed, the status Kubernetes gives this kind of failure, backoff."""
        message = msg_failed(pv_name, name, rpc_message(error))
        self._event(name, claim, "Warning", REASON_FAILED, message)
        if is_final(error):
            self._final_errors.add(key)
            infeasible = is_infeasible(error)
            if infeasible:
                self._slow_until[key] = time.monotonic() + self.slow_retry
            try:
                await self._write_claim(mark_failed(claim, rpc_message(error), now_rfc3339(),
                                                    infeasible))
            except kube_api.KubeError as e:
                log.warning("claim %s: could not record the failed resize: %s", key, e)
        else:
            self._final_errors.discard(key)
        raise controller.RetryLater(message) from error

    async def _write_claim(self, claim: Obj) -> Obj:
        written = await self.kube.replace("PersistentVolumeClaim", claim, status=True)
        self.claims.assume(written)
        return written

    def _event(self, name: str, claim: Obj, type_: str, reason: str, message: str) -> None:
        self.recorders[name].event(claim, type_, reason, message)

