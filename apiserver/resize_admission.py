"""PersistentVolumeClaimResize: only claims whose StorageClass allows it may grow.

Kubernetes' admission plugin of that name (enabled by default) refuses an update of a claim
that raises `spec.resources.requests.storage` unless the claim is Bound and its StorageClass
(the same before and after the update) exists with `allowVolumeExpansion: true`. Validation
decides whether the request may change at all (shrink rules); this plugin only judges growth,
and leaves status writes (the subresource) alone, as the real plugin does.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

from apimachinery import errors as api_errors
from apimachinery import quantity
from apiserver import resources

if TYPE_CHECKING:
    from apiserver.registry import Registry

Obj = dict[str, Any]
ResourceType = resources.ResourceType

BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
MSG_NOT_BOUND = "Only bound persistent volume claims can be expanded"
MSG_NOT_EXPANDABLE = ("only dynamically provisioned pvc can be resized and the storageclass "
                      "that provisions the pvc must support resize")


def requested_storage(claim: Obj) -> Fraction:
    """The storage request; absent or unparsable counts as zero (validation reports it)."""
    raw = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
           ).get("storage")
    try:
        return quantity.parse_quantity(quantity.canonical_json_quantity(raw)) \
            if raw is not None else Fraction(0)
    except ValueError:
        return Fraction(0)


def claim_class(claim: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins over spec.storageClassName."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if BETA_STORAGE_CLASS in annotations:
        return str(annotations[BETA_STORAGE_CLASS] or "")
    return str((claim.get("spec") or {}).get("storageClassName") or "")


def forbidden(claim: Obj, why: str) -> api_errors.APIError:
    """admission.NewForbidden: `persistentvolumeclaims "<name>" is forbidden: <why>`."""
    name = (claim.get("metadata") or {}).get("name") or ""
    return api_errors.APIError(403, "Forbidden",
                               f'persistentvolumeclaims "{name}" is forbidden: {why}',
                               {"name": name, "kind": "persistentvolumeclaims"})


class PersistentVolumeClaimResize:
    """The admission plugin; add it to `admission.default_chain()`."""

    def admit_create(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        return None

    def admit_delete(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        return None

    def admit_update(self, registry: Registry, rt: ResourceType, new: Obj, old: Obj,
                     subresource: str) -> None:
        if rt.kind != "PersistentVolumeClaim" or subresource:
            return
        if requested_storage(new) <= requested_storage(old):
            return
        if (old.get("status") or {}).get("phase") != "Bound":
            raise forbidden(new, MSG_NOT_BOUND)
        if not self._allows_resize(registry, new, old):
            raise forbidden(new, MSG_NOT_EXPANDABLE)

    @staticmethod
    def _allows_resize(registry: Registry, new: Obj, old: Obj) -> bool:
        class_name = claim_class(new)
        if not class_name or class_name != claim_class(old):
            return False
        sc = registry.cached_get(resources.STORAGE_CLASSES, None, class_name)
        return sc is not None and sc.get("allowVolumeExpansion") is True
