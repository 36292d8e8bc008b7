"""What the PV binder does next, decided by pure functions: Kubernetes' pv_controller.go decisions.

Binding a claim to a volume takes four separate API writes (the PV's claimRef, the PV's
phase, the PVC's volumeName and annotations, the PVC's status), and the controller may crash,
lose a race or see stale objects between any two of them. Kubernetes survives this by
deciding every sync afresh from what it observes, in "space shuttle style": every branch says
what it observed and every `if` has its `else`. This module keeps those decisions, returned as
typed actions, apart from the wiring that executes them: `decide_claim` and `decide_volume`
choose an action, `next_write` turns an action plus the current objects into the next API
write (or None when the step is done), and the controller loops over both. Because each write
is recomputed from the current objects, every half-finished bind completes correctly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from apimachinery import names
from storage import matching
from storage.matching import Obj

# Event types, reasons and messages, exactly as kube-controller-manager emits them.
EVENT_NORMAL = "Normal"
EVENT_WARNING = "Warning"

REASON_FAILED_BINDING = "FailedBinding"
REASON_VOLUME_MISMATCH = "VolumeMismatch"
REASON_CLAIM_LOST = "ClaimLost"
REASON_CLAIM_MISBOUND = "ClaimMisbound"
REASON_WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
REASON_WAIT_FOR_POD_SCHEDULED = "WaitForPodScheduled"
REASON_VOLUME_UNKNOWN_RECLAIM_POLICY = "VolumeUnknownReclaimPolicy"

MSG_NO_VOLUME_AND_NO_CLASS = (
    "no persistent volumes available for this claim and no storage class is set"
)
MSG_CLAIM_LOST_REFERENCE = (
    "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
)
MSG_CLAIM_LOST_VOLUME = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
MSG_CLAIM_MISBOUND = "Two claims are bound to the same volume, this one is bound incorrectly"
MSG_WAIT_FOR_FIRST_CONSUMER = "waiting for first consumer to be created before binding"
MSG_UNKNOWN_RECLAIM_POLICY = "Volume has unrecognized PersistentVolumeReclaimPolicy"

ANN_MIGRATED_TO = "pv.kubernetes.io/migrated-to"
ANN_PRE_RESIZE_CAPACITY = "volume.alpha.kubernetes.io/pre-resize-capacity"
BINDING_MODE_WAIT = "WaitForFirstConsumer"
RECLAIM_RETAIN, RECLAIM_DELETE, RECLAIM_RECYCLE = "Retain", "Delete", "Recycle"


def msg_volume_bound_elsewhere(volume_name: str) -> str:
    return f"volume {names.go_quote(volume_name)} already bound to a different claim."


def msg_cannot_bind_requested(volume_name: str, why: str) -> str:
    return f"Cannot bind to requested volume {names.go_quote(volume_name)}: {why}"


def msg_volume_mode_on_volume(claim_name: str) -> str:
    return (
        "Cannot bind PersistentVolume to requested PersistentVolumeClaim "
        f"{names.go_quote(claim_name)} due to incompatible volumeMode."
    )


def msg_volume_mode_on_claim(volume_name: str) -> str:
    return (
        f"Cannot bind PersistentVolume {names.go_quote(volume_name)} to requested "
        "PersistentVolumeClaim due to incompatible volumeMode."
    )


class BinderError(Exception):
    """A state the binder cannot act on; the controller logs it and retries with backoff."""


class MissingBindingMode(BinderError):
    """A StorageClass without volumeBindingMode (the apiserver normally defaults it)."""


class VolumeWithoutCapacity(BinderError):
    """A volume to bind has no spec.capacity.storage."""


@dataclass(frozen=True)
class Event:
    """An event to record on the claim or volume the action is about."""

    type: str
    reason: str
    message: str


# ---------------------------------------------------------------------------------------------
# Outcomes.


class ClaimAction:
    """What syncClaim should do next."""


class VolumeAction:
    """What syncVolume should do next."""


@dataclass(frozen=True)
class Nothing(ClaimAction, VolumeAction):
    """All is as it should be, or some other actor (user, provisioner, scheduler) moves next."""


@dataclass(frozen=True)
class BindVolumeToClaim(ClaimAction):
    """Bind: the volume does not point at the claim yet, so start at the PV's claimRef."""

    volume_name: str


@dataclass(frozen=True)
class CompleteBindOnClaim(ClaimAction):
    """Bind: the volume already points at the claim; finish whichever steps are missing."""

    volume_name: str


@dataclass(frozen=True)
class AssignDefaultStorageClass(ClaimAction):
    """Set spec.storageClassName of a class-less claim to the default class, then resync."""

    class_name: str


@dataclass(frozen=True)
class MarkClaimPending(ClaimAction):
    """Set the claim's phase to Pending (clearing capacity and modes) and retry later."""

    event: Event | None = None


@dataclass(frozen=True)
class WaitForFirstConsumer(ClaimAction):
    """Delayed binding and no pod scheduled yet: Pending, with an explanatory event."""

    event: Event


@dataclass(frozen=True)
class WaitForProvisioning(ClaimAction):
    """No volume fits but the claim has a class: provisioning is the provisioner's move."""

    class_name: str


@dataclass(frozen=True)
class MarkClaimLost(ClaimAction):
    """Set the claim's phase to Lost, a terminal phase, and record `event` on it."""

    event: Event


@dataclass(frozen=True)
class ReportBindingConflict(ClaimAction):
    """The claim names a volume the controller bound elsewhere ("THIS SHOULD NEVER HAPPEN").

    Record `event` on the claim and fail the sync with `error` so that it is retried.
    """

    event: Event
    error: str


@dataclass(frozen=True)
class MarkVolumeAvailable(VolumeAction):
    """Set the volume's phase to Available."""


@dataclass(frozen=True)
class MarkVolumeBound(VolumeAction):
    """Set the volume's phase to Bound."""


@dataclass(frozen=True)
class MarkVolumeReleased(VolumeAction):
    """Its claim is gone: set phase Released; the next sync applies the reclaim policy."""


@dataclass(frozen=True)
class MarkVolumeFailed(VolumeAction):
    """Set phase Failed with the event's message, and record the event on the volume."""

    event: Event


@dataclass(frozen=True)
class ReclaimVolume(VolumeAction):
    """Run the reclaim policy (Delete or Recycle) of a Released volume; idempotent."""

    policy: str


@dataclass(frozen=True)
class UnbindVolume(VolumeAction):
    """Roll back a binding whose claim went to another volume, then mark it Available."""


@dataclass(frozen=True)
class SyncClaim(VolumeAction):
    """The volume side is done and the claim side is not: queue the claim (`claim_key`)."""

    claim_key: str


@dataclass(frozen=True)
class ReportVolumeModeMismatch(VolumeAction):
    """The volume is bound to a claim of another volumeMode: warn on both, bind nothing."""

    volume_event: Event
    claim_event: Event


# ---------------------------------------------------------------------------------------------
# Deciding about a claim (syncClaim).


def is_delay_binding_mode(
    claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None
) -> bool:
    """IsDelayBindingMode: the claim's class exists and binds WaitForFirstConsumer.

    `storage_class` is the StorageClass named by the claim's class, None when not found.
    """
    class_name = matching.claim_class(claim)
    if not class_name or storage_class is None:
        return False
    mode = storage_class.get("volumeBindingMode")
    if mode is None:
        raise MissingBindingMode(
            f"VolumeBindingMode not set for StorageClass {names.go_quote(class_name)}"
        )
    return bool(mode == BINDING_MODE_WAIT)


def decide_claim(
    claim: Mapping[str, Any],
    volume: Obj | None,
    index: matching.VolumeIndex,
    *,
    delay_binding: bool = False,
    default_class: str | None = None,
    waiting_pods: Sequence[str] = (),
) -> ClaimAction:
    """The next step for `claim`.

    `volume` is the PV named by claim.spec.volumeName (None when unset or not found);
    `index` holds every PV, for claims that leave the choice to the controller.
    `delay_binding` comes from `is_delay_binding_mode`, `default_class` is the name of the
    default StorageClass if any, `waiting_pods` the unscheduled pods that use the claim.
    """
    if not matching.has_annotation(claim, matching.ANN_BIND_COMPLETED):
        # OBSERVATION: pvc is "Pending" (the bind never completed)
        if not matching.volume_name_of_claim(claim):
            return _decide_claim_choosing(claim, index, delay_binding, default_class, waiting_pods)
        else:
            return _decide_claim_asking_for_volume(claim, volume)
    else:
        # OBSERVATION: pvc was bound before (pv.kubernetes.io/bind-completed is set)
        return _decide_bound_claim(claim, volume)


def _decide_claim_choosing(
    claim: Mapping[str, Any],
    index: matching.VolumeIndex,
    delay_binding: bool,
    default_class: str | None,
    waiting_pods: Sequence[str],
) -> ClaimAction:
    """syncUnboundClaim when the user did not care which PV they get."""
    volume = index.find_best_match(claim, delay_binding=delay_binding)
    if volume is not None:
        # OBSERVATION: pvc is "Pending", pv is "Available" or pre-bound to this claim
        return _bind(volume, claim)
    # OBSERVATION: pvc is "Pending", no volume fits; will retry
    if not matching.claim_has_class(claim) and default_class:
        return AssignDefaultStorageClass(default_class)
    elif delay_binding and not matching.has_annotation(claim, matching.ANN_SELECTED_NODE):
        # OBSERVATION: the scheduler has not picked a node for a pod using this claim
        return WaitForFirstConsumer(_wait_event(waiting_pods))
    elif matching.claim_class(claim):
        return WaitForProvisioning(matching.claim_class(claim))
    else:
        event = Event(EVENT_NORMAL, REASON_FAILED_BINDING, MSG_NO_VOLUME_AND_NO_CLASS)
        return MarkClaimPending(event)


def _wait_event(waiting_pods: Sequence[str]) -> Event:
    if not waiting_pods:
        return Event(EVENT_NORMAL, REASON_WAIT_FOR_FIRST_CONSUMER, MSG_WAIT_FOR_FIRST_CONSUMER)
    elif len(waiting_pods) == 1:
        message = f"waiting for pod {waiting_pods[0]} to be scheduled"
        return Event(EVENT_NORMAL, REASON_WAIT_FOR_POD_SCHEDULED, message)
    else:
        message = f"waiting for pods {','.join(waiting_pods)} to be scheduled"
        return Event(EVENT_NORMAL, REASON_WAIT_FOR_POD_SCHEDULED, message)


def _bind(volume: Obj, claim: Mapping[str, Any]) -> ClaimAction:
    if matching.is_volume_bound_to_claim(volume, claim):
        return CompleteBindOnClaim(matching.name_of(volume))
    else:
        return BindVolumeToClaim(matching.name_of(volume))


def _decide_claim_asking_for_volume(claim: Mapping[str, Any], volume: Obj | None) -> ClaimAction:
    """syncUnboundClaim when claim.spec.volumeName names the PV the user wants."""
    volume_name = matching.volume_name_of_claim(claim)
    if volume is None:
        # OBSERVATION: pvc is "Pending", the requested pv does not exist; retry later
        return MarkClaimPending()
    elif matching.claim_ref(volume) is None:
        # OBSERVATION: pvc is "Pending", pv is "Available"
        unsatisfied = matching.check_volume_satisfies_claim(volume, claim)
        if unsatisfied is not None:
            message = msg_cannot_bind_requested(volume_name, unsatisfied.message(volume))
            return MarkClaimPending(Event(EVENT_WARNING, REASON_VOLUME_MISMATCH, message))
        else:
            return BindVolumeToClaim(volume_name)
    elif matching.is_volume_bound_to_claim(volume, claim):
        # OBSERVATION: pvc is "Pending", pv is "Bound" to this claim: finish the bind
        return CompleteBindOnClaim(volume_name)
    else:
        # OBSERVATION: pvc is "Pending", pv is "Bound" to another claim
        event = Event(EVENT_WARNING, REASON_FAILED_BINDING, msg_volume_bound_elsewhere(volume_name))
        if not matching.has_annotation(claim, matching.ANN_BOUND_BY_CONTROLLER):
            # The user asked for this volume; it may be freed later.
            return MarkClaimPending(event)
        else:
            ref = matching.claim_ref(volume) or {}
            error = (
                f"invalid binding of claim {names.go_quote(matching.claim_key(claim))} to volume "
                f"{names.go_quote(volume_name)}: volume already claimed by "
                f"{names.go_quote(matching.claim_ref_key(ref))}"
            )
            return ReportBindingConflict(event, error)


def _decide_bound_claim(claim: Mapping[str, Any], volume: Obj | None) -> ClaimAction:
    """syncBoundClaim."""
    if not matching.volume_name_of_claim(claim):
        # OBSERVATION: pvc was bound and lost its spec.volumeName
        return _lose(claim, REASON_CLAIM_LOST, MSG_CLAIM_LOST_REFERENCE)
    elif volume is None:
        # OBSERVATION: pvc is bound to a pv that does not exist
        return _lose(claim, REASON_CLAIM_LOST, MSG_CLAIM_LOST_VOLUME)
    ref = matching.claim_ref(volume)
    if ref is None:
        # OBSERVATION: pvc is "Bound", pv came unbound (or its update has not reached us):
        # bind it again.
        return BindVolumeToClaim(matching.name_of(volume))
    elif (ref.get("uid") or "") == matching.uid_of(claim):
        # OBSERVATION: pvc is "Bound", pv is "Bound" to it; bind() only repairs leftovers
        if next_bind_write(volume, claim) is None:
            return Nothing()
        else:
            return CompleteBindOnClaim(matching.name_of(volume))
    else:
        # OBSERVATION: pvc is "Bound", but the pv belongs to another claim
        return _lose(claim, REASON_CLAIM_MISBOUND, MSG_CLAIM_MISBOUND)


def _lose(claim: Mapping[str, Any], reason: str, message: str) -> ClaimAction:
    # The event goes out with the phase change only, not on every sync.
    if matching.phase_of(claim) == matching.CLAIM_LOST:
        return Nothing()
    else:
        return MarkClaimLost(Event(EVENT_WARNING, reason, message))


# ---------------------------------------------------------------------------------------------
# Deciding about a volume (syncVolume).


def decide_volume(volume: Mapping[str, Any], claim: Mapping[str, Any] | None) -> VolumeAction:
    """The next step for `volume`.

    `claim` is the PVC named by the volume's claimRef (namespace/name), or None. Kubernetes
    re-reads a claim missing from its cache from the API server before concluding it is
    gone, since releasing a volume wrongly loses data; pass None only after that check.
    """
    ref = matching.claim_ref(volume)
    if ref is None:
        # OBSERVATION: pv is unused
        return _set_phase(volume, matching.VOLUME_AVAILABLE)
    elif not ref.get("uid"):
        # OBSERVATION: pv is pre-bound to a claim that has not bound to it; syncClaim will
        return _set_phase(volume, matching.VOLUME_AVAILABLE)
    if claim is not None and matching.uid_of(claim) != ref.get("uid"):
        # OBSERVATION: the claim was deleted and another one with the same name created
        claim = None
    if claim is None:
        # OBSERVATION: pv is bound to a claim that no longer exists
        return _release(volume)
    claim_volume = matching.volume_name_of_claim(claim)
    if not claim_volume:
        return _decide_half_bound_volume(volume, claim)
    elif claim_volume == matching.name_of(volume):
        # OBSERVATION: pv and pvc point at each other: all is bound
        return _set_phase(volume, matching.VOLUME_BOUND)
    else:
        return _decide_volume_of_claim_bound_elsewhere(volume)


def _decide_half_bound_volume(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> VolumeAction:
    # OBSERVATION: pv points at the claim, pvc is "Pending" with no volumeName
    if matching.volume_mode_mismatches(claim, volume):
        # syncClaim would never pick this volume, so do not hand the claim to it.
        return ReportVolumeModeMismatch(
            Event(
                EVENT_WARNING,
                REASON_VOLUME_MISMATCH,
                msg_volume_mode_on_volume(matching.name_of(claim)),
            ),
            Event(
                EVENT_WARNING,
                REASON_VOLUME_MISMATCH,
                msg_volume_mode_on_claim(matching.name_of(volume)),
            ),
        )
    else:
        # Whether we bound it and crashed or a user pre-bound it, syncClaim finishes the job.
        return SyncClaim(matching.claim_key(claim))


def _decide_volume_of_claim_bound_elsewhere(volume: Mapping[str, Any]) -> VolumeAction:
    # OBSERVATION: pv points at a claim that is bound to another volume
    provisioned = matching.has_annotation(volume, matching.ANN_DYNAMICALLY_PROVISIONED)
    if provisioned and _reclaim_policy(volume) == RECLAIM_DELETE:
        # Provisioned for a claim that got another volume: it is not needed, delete it.
        return _release(volume)
    else:
        # Bound by us: roll back. Pre-bound by the user: only forget the claim's uid.
        return UnbindVolume()


def _release(volume: Mapping[str, Any]) -> VolumeAction:
    # A Failed phase stays, so the user sees that reclaiming went wrong.
    if matching.phase_of(volume) not in (matching.VOLUME_RELEASED, matching.VOLUME_FAILED):
        return MarkVolumeReleased()
    else:
        return _reclaim(volume)


def _reclaim(volume: Mapping[str, Any]) -> VolumeAction:
    policy = _reclaim_policy(volume)
    if matching.annotations_of(volume).get(ANN_MIGRATED_TO):
        # A CSI driver's external provisioner owns this volume.
        return Nothing()
    elif policy == RECLAIM_RETAIN:
        return Nothing()
    elif policy in (RECLAIM_DELETE, RECLAIM_RECYCLE):
        return ReclaimVolume(policy)
    elif matching.phase_of(volume) == matching.VOLUME_FAILED:
        return Nothing()
    else:
        return MarkVolumeFailed(
            Event(EVENT_WARNING, REASON_VOLUME_UNKNOWN_RECLAIM_POLICY, MSG_UNKNOWN_RECLAIM_POLICY)
        )


def _reclaim_policy(volume: Mapping[str, Any]) -> str:
    # The apiserver defaults an unset policy to Retain.
    spec = volume.get("spec") or {}
    return str(spec.get("persistentVolumeReclaimPolicy") or RECLAIM_RETAIN)


def _set_phase(volume: Mapping[str, Any], phase: str) -> VolumeAction:
    if matching.phase_of(volume) == phase:
        return Nothing()
    elif phase == matching.VOLUME_BOUND:
        return MarkVolumeBound()
    else:
        return MarkVolumeAvailable()


# ---------------------------------------------------------------------------------------------
# The object changes of each step.


@dataclass(frozen=True)
class Write:
    """One API write: replace `obj` (a PV or PVC), or its status subresource when `status`."""

    kind: Literal["PersistentVolume", "PersistentVolumeClaim"]
    status: bool
    obj: Obj


def _copy(obj: Mapping[str, Any]) -> Obj:
    """A copy whose metadata, annotations, spec and status may be changed without aliasing."""
    new = dict(obj)
    for section in ("metadata", "spec", "status"):
        new[section] = dict(obj.get(section) or {})
    new["metadata"]["annotations"] = dict(new["metadata"].get("annotations") or {})
    return new


def _tidy(obj: Obj) -> Obj:
    # No annotations look better than an empty map, as Kubernetes says; same for status.
    if not obj["metadata"]["annotations"]:
        del obj["metadata"]["annotations"]
    if not obj["status"]:
        del obj["status"]
    return obj


def claim_reference(claim: Mapping[str, Any]) -> Obj:
    """The ObjectReference Kubernetes stores in pv.spec.claimRef (reference.GetReference)."""
    meta = claim.get("metadata") or {}
    ref = {
        "kind": "PersistentVolumeClaim",
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "apiVersion": "v1",
        "resourceVersion": meta.get("resourceVersion"),
    }
    return {k: v for k, v in ref.items() if v}


def bind_volume_to_claim(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> Obj | None:
    """GetBindVolumeToClaim: the PV pointing at the claim, or None if it already does.

    bound-by-controller is added only when the volume was not pre-bound to this claim.
    """
    set_bound_by_controller = not matching.is_volume_bound_to_claim(volume, claim)
    ref = matching.claim_ref(volume) or {}
    new: Obj | None = None
    meta = claim.get("metadata") or {}
    if any((ref.get(k) or "") != (meta.get(k) or "") for k in ("name", "namespace", "uid")):
        new = _copy(volume)
        new["spec"]["claimRef"] = claim_reference(claim)
    if set_bound_by_controller and not matching.has_annotation(
        volume, matching.ANN_BOUND_BY_CONTROLLER
    ):
        new = new or _copy(volume)
        new["metadata"]["annotations"][matching.ANN_BOUND_BY_CONTROLLER] = "yes"
    return _tidy(new) if new is not None else None


def set_volume_phase(volume: Mapping[str, Any], phase: str, message: str = "") -> Obj | None:
    """updateVolumePhase: the PV with a new status.phase and message, or None if unchanged."""
    if matching.phase_of(volume) == phase:
        return None
    new = _copy(volume)
    new["status"]["phase"] = phase
    new["status"].pop("message", None)
    if message:
        new["status"]["message"] = message
    return _tidy(new)


def bind_claim_to_volume(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> Obj | None:
    """bindClaimToVolume: the PVC with volumeName and annotations set, or None if it has them."""
    new = _copy(claim)
    added = new["metadata"]["annotations"]
    dirty = False
    if matching.volume_name_of_claim(claim) != matching.name_of(volume):
        new["spec"]["volumeName"] = matching.name_of(volume)
        added.setdefault(matching.ANN_BOUND_BY_CONTROLLER, "yes")
        dirty = True
    if matching.ANN_BIND_COMPLETED not in added:
        added[matching.ANN_BIND_COMPLETED] = "yes"
        dirty = True
    return _tidy(new) if dirty else None


def set_claim_status(
    claim: Mapping[str, Any], phase: str, volume: Mapping[str, Any] | None
) -> Obj | None:
    """updateClaimStatus: the PVC with its new status, or None when nothing changes.

    With a volume, accessModes follow the volume; capacity is copied only as the claim
    changes phase (a later difference may be a deliberate filesystem/block size gap), and
    currentVolumeAttributesClassName only on Pending -> Bound. Without one, both are cleared.
    """
    old_status = claim.get("status") or {}
    status = dict(old_status)
    status["phase"] = phase
    if volume is None:
        for field in ("accessModes", "capacity", "currentVolumeAttributesClassName"):
            status.pop(field, None)
    else:
        _copy_volume_into_claim_status(status, old_status, phase, volume)
    if status == old_status:
        return None
    new = _copy(claim)
    new["status"] = status
    return _tidy(new)


def _copy_volume_into_claim_status(
    status: Obj, old_status: Mapping[str, Any], phase: str, volume: Mapping[str, Any]
) -> None:
    spec = volume.get("spec") or {}
    status["accessModes"] = list(spec.get("accessModes") or [])
    if not status["accessModes"]:
        status.pop("accessModes")
    # A claim without status is a claim the apiserver would have defaulted to Pending.
    old_phase = old_status.get("phase") or matching.CLAIM_PENDING
    if old_status.get("phase") != phase:
        capacity = spec.get("capacity") or {}
        if "storage" not in capacity:
            name = names.go_quote(matching.name_of(volume))
            raise VolumeWithoutCapacity(f"PersistentVolume {name} is without a storage capacity")
        status["capacity"] = _bound_capacity(old_status, volume, capacity)
    if old_phase == matching.CLAIM_PENDING and phase == matching.CLAIM_BOUND:
        vac = spec.get("volumeAttributesClassName")
        status.pop("currentVolumeAttributesClassName", None)
        if vac is not None:
            status["currentVolumeAttributesClassName"] = vac


def _bound_capacity(
    old_status: Mapping[str, Any], volume: Mapping[str, Any], capacity: Mapping[str, Any]
) -> Obj:
    pre_resize = matching.annotations_of(volume).get(ANN_PRE_RESIZE_CAPACITY)
    if pre_resize is not None:
        # A volume that still needs a filesystem resize reports its old size.
        try:
            matching.parse_storage(pre_resize)
            size = pre_resize
        except matching.InvalidQuantity:
            size = capacity["storage"]
        return {**(old_status.get("capacity") or {}), "storage": size}
    old = (old_status.get("capacity") or {}).get("storage")
    if old is not None and matching.parse_storage(old) == matching.parse_storage(
        capacity["storage"]
    ):
        return dict(old_status.get("capacity") or {})
    return dict(capacity)


def unbind_volume(volume: Mapping[str, Any]) -> Obj:
    """unbindVolume's spec change: drop our claimRef, or just the uid of a user's pre-binding."""
    new = _copy(volume)
    if matching.ANN_BOUND_BY_CONTROLLER in new["metadata"]["annotations"]:
        new["spec"].pop("claimRef", None)
        del new["metadata"]["annotations"][matching.ANN_BOUND_BY_CONTROLLER]
    else:
        ref = dict(new["spec"].get("claimRef") or {})
        ref.pop("uid", None)
        new["spec"]["claimRef"] = ref
    return _tidy(new)


def next_bind_write(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> Write | None:
    """The next write of bind(), in Kubernetes' order, or None when the bind is complete.

    PV claimRef and bound-by-controller, then PV phase Bound, then PVC volumeName with
    bind-completed / bound-by-controller, then PVC status (Bound, capacity, accessModes).
    Computed from the objects as they are now, so a bind interrupted anywhere resumes.
    """
    new_volume = bind_volume_to_claim(volume, claim)
    if new_volume is not None:
        return Write("PersistentVolume", False, new_volume)
    new_volume = set_volume_phase(volume, matching.VOLUME_BOUND)
    if new_volume is not None:
        return Write("PersistentVolume", True, new_volume)
    new_claim = bind_claim_to_volume(claim, volume)
    if new_claim is not None:
        return Write("PersistentVolumeClaim", False, new_claim)
    new_claim = set_claim_status(claim, matching.CLAIM_BOUND, volume)
    if new_claim is not None:
        return Write("PersistentVolumeClaim", True, new_claim)
    return None


def target_volume_name(action: ClaimAction, claim: Mapping[str, Any]) -> str:
    """The PV a claim action works on: the one chosen to bind, else claim.spec.volumeName."""
    if isinstance(action, (BindVolumeToClaim, CompleteBindOnClaim)):
        return action.volume_name
    else:
        return matching.volume_name_of_claim(claim)


def next_write(
    action: ClaimAction | VolumeAction,
    claim: Mapping[str, Any] | None,
    volume: Mapping[str, Any] | None,
) -> Write | None:
    """The next API write that carries out `action` on the current objects, or None when done.

    For a claim action `volume` is the PV named by `target_volume_name`; for a volume action
    `claim` may be None. Call again with the objects the API returned until it gives None
    (a version conflict means: re-read, decide again). Actions that only record events or
    hand work to another component (SyncClaim, ReclaimVolume, WaitForProvisioning,
    ReportVolumeModeMismatch, ReportBindingConflict) write nothing.
    """
    if claim is not None:
        write = _next_claim_write(action, claim, volume)
        if write is not None:
            return write
    if volume is not None:
        return _next_volume_write(action, volume)
    return None


def _next_claim_write(
    action: ClaimAction | VolumeAction, claim: Mapping[str, Any], volume: Mapping[str, Any] | None
) -> Write | None:
    if isinstance(action, (BindVolumeToClaim, CompleteBindOnClaim)) and volume is not None:
        return next_bind_write(volume, claim)
    elif isinstance(action, (MarkClaimPending, WaitForFirstConsumer)):
        new = set_claim_status(claim, matching.CLAIM_PENDING, None)
        return Write("PersistentVolumeClaim", True, new) if new is not None else None
    elif isinstance(action, MarkClaimLost):
        new = set_claim_status(claim, matching.CLAIM_LOST, None)
        return Write("PersistentVolumeClaim", True, new) if new is not None else None
    elif isinstance(action, AssignDefaultStorageClass) and not matching.claim_has_class(claim):
        new = _copy(claim)
        new["spec"]["storageClassName"] = action.class_name
        return Write("PersistentVolumeClaim", False, _tidy(new))
    else:
        return None


def _next_volume_write(
    action: ClaimAction | VolumeAction, volume: Mapping[str, Any]
) -> Write | None:
    new: Obj | None
    if isinstance(action, MarkVolumeAvailable):
        new = set_volume_phase(volume, matching.VOLUME_AVAILABLE)
    elif isinstance(action, MarkVolumeBound):
        new = set_volume_phase(volume, matching.VOLUME_BOUND)
    elif isinstance(action, MarkVolumeReleased):
        new = set_volume_phase(volume, matching.VOLUME_RELEASED)
    elif isinstance(action, MarkVolumeFailed):
        new = set_volume_phase(volume, matching.VOLUME_FAILED, action.event.message)
    elif isinstance(action, UnbindVolume):
        return _next_unbind_write(volume)
    else:
        return None
    return Write("PersistentVolume", True, new) if new is not None else None


def _next_unbind_write(volume: Mapping[str, Any]) -> Write | None:
    ref = matching.claim_ref(volume)
    still_bound = ref is not None and (
        bool(ref.get("uid")) or matching.has_annotation(volume, matching.ANN_BOUND_BY_CONTROLLER)
    )
    if still_bound:
        return Write("PersistentVolume", False, unbind_volume(volume))
    new = set_volume_phase(volume, matching.VOLUME_AVAILABLE)
    return Write("PersistentVolume", True, new) if new is not None else None
