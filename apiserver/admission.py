"""Admission plugins: the checks and mutations kube-apiserver runs on every write.

Each plugin mirrors a Kubernetes admission plugin of the same name and is enabled by default
here as it is in Kubernetes: NamespaceLifecycle (no objects in a missing or terminating
namespace; the system namespaces cannot be deleted), DefaultStorageClass (a claim with no
class gets the default one) and StorageObjectInUseProtection (the protection finalizers on
claims and volumes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from apimachinery import errors as api_errors
from apiserver import resources

if TYPE_CHECKING:
    from apiserver.registry import Registry

Obj = dict[str, Any]
ResourceType = resources.ResourceType

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"


class Plugin(Protocol):
    def admit_create(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        """Check or mutate an object about to be created; raise APIError to refuse."""

    def admit_update(self, registry: Registry, rt: ResourceType, new: Obj, old: Obj,
                     subresource: str) -> None:
        """Check or mutate an update; raise APIError to refuse."""

    def admit_delete(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        """Check a deletion; raise APIError to refuse."""


class _Base:
    def admit_create(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        return None

    def admit_update(self, registry: Registry, rt: ResourceType, new: Obj, old: Obj,
                     subresource: str) -> None:
        return None

    def admit_delete(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        return None


class NamespaceLifecycle(_Base):
    def admit_create(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        if not rt.namespaced:
            return
        namespace = obj["metadata"]["namespace"]
        ns = registry.cached_get(resources.NAMESPACES, None, namespace)
        if ns is None:
            raise api_errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            if rt.kind == "Event":
                return
            raise api_errors.APIError(
                403, "Forbidden",
                f'{rt.plural} "{obj["metadata"]["name"]}" is forbidden: unable to create new '
                f'content in namespace {namespace} because it is being terminated',
                {"name": obj["metadata"]["name"], "kind": rt.plural,
                 "causes": [{"reason": "NamespaceTerminating",
                             "message": f"namespace {namespace} is being terminated",
                             "field": "metadata.namespace"}]})

    def admit_delete(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if rt.kind == "Namespace" and name in IMMORTAL_NAMESPACES:
            raise api_errors.APIError(
                403, "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"})


class DefaultStorageClass(_Base):
    def admit_create(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        if rt.kind != "PersistentVolumeClaim":
            return
        spec = obj.setdefault("spec", {})
        annotations = obj["metadata"].get("annotations") or {}
        if spec.get("storageClassName") is not None or \
                "volume.beta.kubernetes.io/storage-class" in annotations:
            return
        default = default_storage_class(registry)
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]


def is_default_class(sc: Obj) -> bool:
    annotations = sc["metadata"].get("annotations") or {}
    return any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)


def default_storage_class(registry: Registry) -> Obj | None:
    """The default StorageClass; with several, the newest wins, as in Kubernetes 1.28+."""
    defaults = [sc for sc in registry.cached_items(resources.STORAGE_CLASSES)
                if is_default_class(sc)]
    if not defaults:
        return None
    # Newest first; on a tie, the smallest name (Kubernetes' GetDefaultClass).
    newest = max(sc["metadata"]["creationTimestamp"] for sc in defaults)
    return min((sc for sc in defaults if sc["metadata"]["creationTimestamp"] == newest),
               key=lambda sc: sc["metadata"]["name"])


class StorageObjectInUseProtection(_Base):
    def admit_create(self, registry: Registry, rt: ResourceType, obj: Obj) -> None:
        finalizer = {"PersistentVolumeClaim": PVC_PROTECTION,
                     "PersistentVolume": PV_PROTECTION}.get(rt.kind)
        if finalizer is None:
            return
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if finalizer not in finalizers:
            finalizers.append(finalizer)


def default_chain() -> list[Plugin]:
    from apiserver import resize_admission
    return [NamespaceLifecycle(), DefaultStorageClass(), StorageObjectInUseProtection(),
            resize_admission.PersistentVolumeClaimResize()]
