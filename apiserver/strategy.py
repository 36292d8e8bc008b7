"""Per-kind rules the registry applies around every write (Kubernetes' REST strategies).

What is reset on create (status of kinds with a status subresource), what an update of the
main resource may not touch (status) and what a status update may not touch (everything
else), defaults, quantity canonicalisation, validation, and how deletion proceeds (a pod on a
node is deleted gracefully; a namespace waits for its contents).
"""

from __future__ import annotations

import copy
from datetime import UTC
from typing import Any

from apimachinery import errors as api_errors
from apiserver import defaults, resources, validation

Obj = dict[str, Any]
ResourceType = resources.ResourceType

# Kinds whose status on create is what Kubernetes' strategies start from.
_INITIAL_STATUS: dict[str, Obj] = {
    "PersistentVolume": {"phase": "Pending"},
    "PersistentVolumeClaim": {"phase": "Pending"},
    "Pod": {"phase": "Pending", "qosClass": "BestEffort"},
    "Namespace": {"phase": "Active"},
    # A v1 VolumeAttachment starts with an empty status whatever the client sent.
    "VolumeAttachment": {"attached": False},
}


def _now() -> str:
    from datetime import datetime
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_for_create(rt: ResourceType, obj: Obj) -> None:
    if rt.kind in _INITIAL_STATUS:
        obj["status"] = copy.deepcopy(_INITIAL_STATUS[rt.kind])
    if rt.kind == "PersistentVolume":
        obj["status"]["lastPhaseTransitionTime"] = _now()
    if rt.kind == "Namespace":
        spec = obj.setdefault("spec", {})
        if "kubernetes" not in (spec.get("finalizers") or []):
            spec["finalizers"] = [*(spec.get("finalizers") or []), "kubernetes"]
        obj["metadata"].setdefault("labels", {})[
            "kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    if rt.kind == "Pod":
        obj["status"]["qosClass"] = defaults.qos_class(obj.get("spec") or {})
    defaults.apply_defaults(rt.kind, obj)
    _canonicalize(rt, obj)


def _canonicalize(rt: ResourceType, obj: Obj) -> None:
    """Quantities in canonical form; an unparsable one is a 400, as decoding fails in Go."""
    try:
        validation.canonicalize_quantities(rt.kind, obj)
    except validation.DecodeError as e:
        raise api_errors.bad_request(str(e)) from e


def prepare_for_update(rt: ResourceType, new: Obj, old: Obj, subresource: str) -> None:
    """Keep what this kind of update may not change, then default and canonicalise."""
    if subresource == "status":
        status = new.get("status")
        new.clear()
        new.update(copy.deepcopy({k: v for k, v in old.items() if k != "status"}))
        if status is not None:
            new["status"] = status
        _stamp_phase_transition(rt, new, old)
    elif subresource == "finalize" and rt.kind == "Namespace":
        finalizers = (new.get("spec") or {}).get("finalizers") or []
        new.clear()
        new.update(copy.deepcopy(old))
        new.setdefault("spec", {})["finalizers"] = finalizers
    elif subresource == "binding":
        pass  # built by the binding handler from the stored pod: node and PodScheduled only
    elif rt.has_status:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if rt.kind == "Namespace":
        new["metadata"].setdefault("labels", {})[
            "kubernetes.io/metadata.name"] = new["metadata"]["name"]
    defaults.apply_defaults(rt.kind, new)
    _canonicalize(rt, new)


def _stamp_phase_transition(rt: ResourceType, new: Obj, old: Obj) -> None:
    """A PV's phase change records when it happened (Kubernetes' PV status strategy)."""
    if rt.kind != "PersistentVolume":
        return
    status, old_status = new.get("status") or {}, old.get("status") or {}
    if status.get("phase") != old_status.get("phase"):
        status["lastPhaseTransitionTime"] = _now()
        new["status"] = status


def prepare_for_delete(rt: ResourceType, obj: Obj) -> None:
    if rt.kind == "Namespace":
        obj.setdefault("status", {})["phase"] = "Terminating"


def validate_create(rt: ResourceType, obj: Obj) -> None:
    causes = validation.validate(rt.kind, obj)
    if causes:
        raise api_errors.invalid(rt.kind, obj["metadata"].get("name", ""), causes, rt.group)


def validate_update(rt: ResourceType, new: Obj, old: Obj, subresource: str) -> None:
    if subresource == "binding":
        return
    causes = validation.validate_update(rt.kind, new, old)
    if causes:
        raise api_errors.invalid(rt.kind, new["metadata"].get("name", ""), causes, rt.group)


def grace_period(rt: ResourceType, obj: Obj, requested: int | None) -> int:
    """Seconds a deletion waits for the owner to clean up; 0 deletes at once.

    Only pods already on a node are deleted gracefully (their kubelet finishes the job);
    everything else, and a pod never scheduled, goes at once.
    """
    if rt.kind != "Pod":
        return 0
    spec = obj.get("spec") or {}
    if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in (
            "Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(int(requested), 0)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def deletion_held(rt: ResourceType, obj: Obj) -> bool:
    """Whether finalizers keep the object after its deletion was requested."""
    if obj["metadata"].get("finalizers"):
        return True
    return rt.kind == "Namespace" and bool((obj.get("spec") or {}).get("finalizers"))
