"""Which lists strategic merge patch merges, and by which key, for the kinds we serve.

Kubernetes reads this from struct tags on its Go types (`patchStrategy:"merge"
patchMergeKey:"name"` in staging/src/k8s.io/api/core/v1/types.go and friends). We have no
Go types, so the tags we need are written down here, per kind, by field path: a path is the
JSON field names joined by dots, with `[]` after a list whose elements it goes into
(`spec.containers[].env`). A field without an entry has no tag: maps merge key by key and
lists are replaced whole, which is also what Kubernetes does for untagged fields.

Tags as found in k8s.io/api (v1.32):
  ObjectMeta.finalizers            merge (primitive list: union)
  ObjectMeta.ownerReferences       merge, key uid
  ObjectMeta.managedFields         none (replaced)
  PodSpec.volumes                  merge,retainKeys, key name
  PodSpec.initContainers/containers/ephemeralContainers   merge, key name
  PodSpec.imagePullSecrets         merge, key name
  PodSpec.hostAliases              merge, key ip
  PodSpec.topologySpreadConstraints merge, key topologyKey
  PodSpec.schedulingGates          merge, key name
  PodSpec.resourceClaims           merge,retainKeys, key name
  PodSpec.tolerations, readinessGates   none (replaced)
  Container.ports                  merge, key containerPort
  Container.env                    merge, key name
  Container.envFrom, resizePolicy  none (replaced)
  Container.volumeMounts           merge, key mountPath
  Container.volumeDevices          merge, key devicePath
  PodStatus.conditions             merge, key type
  PodStatus.podIPs, hostIPs        merge, key ip
  PodStatus.resourceClaimStatuses  merge,retainKeys, key name
  PodStatus.containerStatuses, initContainerStatuses, ephemeralContainerStatuses  none
  NodeSpec.podCIDRs                merge (primitive list)
  NodeSpec.taints                  none (replaced)
  NodeStatus.conditions, addresses merge, key type
  NodeStatus.images, volumesAttached, volumesInUse  none
  PersistentVolumeClaimStatus.conditions  merge, key type
  NamespaceSpec.finalizers         none (replaced)
  NamespaceStatus.conditions       merge, key type
  PersistentVolume, StorageClass, ConfigMap, Secret, Event, Lease: nothing beyond metadata
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class FieldStrategy:
    """The patch tags of one field: `merge` lists merge (by `merge_key` for lists of maps)."""

    merge: bool = False
    merge_key: str = ""
    retain_keys: bool = False


NO_TAGS = FieldStrategy()


def merged(key: str = "", retain_keys: bool = False) -> FieldStrategy:
    return FieldStrategy(merge=True, merge_key=key, retain_keys=retain_keys)


@dataclass(frozen=True)
class KindSchema:
    """The tagged fields of one kind; every other field has no patch tags."""

    kind: str
    fields: Mapping[str, FieldStrategy] = field(default_factory=dict)

    def lookup(self, path: str) -> FieldStrategy:
        return self.fields.get(path, NO_TAGS)


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def element_path(path: str) -> str:
    return f"{path}[]"


_OBJECT_META = {
    "metadata.finalizers": merged(),
    "metadata.ownerReferences": merged("uid"),
}

_CONTAINER = {
    "ports": merged("containerPort"),
    "env": merged("name"),
    "volumeMounts": merged("mountPath"),
    "volumeDevices": merged("devicePath"),
}


def _containers(list_path: str) -> dict[str, FieldStrategy]:
    tags = {list_path: merged("name")}
    tags.update({f"{list_path}[].{name}": tag for name, tag in _CONTAINER.items()})
    return tags


def _pod() -> dict[str, FieldStrategy]:
    tags = {
        "spec.volumes": merged("name", retain_keys=True),
        "spec.imagePullSecrets": merged("name"),
        "spec.hostAliases": merged("ip"),
        "spec.topologySpreadConstraints": merged("topologyKey"),
        "spec.schedulingGates": merged("name"),
        "spec.resourceClaims": merged("name", retain_keys=True),
        "status.conditions": merged("type"),
        "status.podIPs": merged("ip"),
        "status.hostIPs": merged("ip"),
        "status.resourceClaimStatuses": merged("name", retain_keys=True),
    }
    for containers in ("containers", "initContainers", "ephemeralContainers"):
        tags.update(_containers(f"spec.{containers}"))
    return tags


_KIND_FIELDS: dict[str, dict[str, FieldStrategy]] = {
    "Pod": _pod(),
    "Node": {
        "spec.podCIDRs": merged(),
        "status.conditions": merged("type"),
        "status.addresses": merged("type"),
    },
    "PersistentVolumeClaim": {"status.conditions": merged("type")},
    "Namespace": {"status.conditions": merged("type")},
    "PersistentVolume": {},
    "StorageClass": {},
    "ConfigMap": {},
    "Secret": {},
    "Event": {},
    "Lease": {},
}


def _build(kind: str, fields: Mapping[str, FieldStrategy]) -> KindSchema:
    return KindSchema(kind, MappingProxyType({**_OBJECT_META, **fields}))


SCHEMAS: Mapping[str, KindSchema] = MappingProxyType(
    {kind: _build(kind, fields) for kind, fields in _KIND_FIELDS.items()})


def schema_for(kind: str) -> KindSchema:
    """The schema of `kind`; a kind we do not know gets the ObjectMeta tags only."""
    return SCHEMAS.get(kind) or _build(kind, {})
