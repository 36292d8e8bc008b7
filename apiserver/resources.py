"""The resources this server serves, each described once.

A `ResourceType` knows its group, version, kind, plural, scope, short names and
subresources, like a lightkube resource class does on the client side. Routing, discovery,
OpenAPI, storage keys and printing all read these descriptors, so adding a resource is one
entry here plus its defaults and validation.
"""

from __future__ import annotations

from dataclasses import dataclass

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update",
                  "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives on the wire and in the store."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    # Whether an immediate DELETE answers with the object (pods) or a Success Status.
    returns_deleted_object: bool = False

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def path_prefix(self) -> str:
        """`/api/v1` for the core group, `/apis/<group>/<version>` otherwise."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def persisted(self) -> bool:
        return "get" in self.verbs

    def prefix(self, namespace: str | None = None) -> str:
        """Store prefix of every object of this type (in one namespace when given)."""
        if self.namespaced and namespace:
            return f"/registry/{self.plural}/{namespace}/"
        return f"/registry/{self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.plural}/{namespace}/{name}"
        return f"/registry/{self.plural}/{name}"

    def self_link(self, namespace: str | None, name: str = "") -> str:
        base = self.path_prefix
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


CORE = ""
STORAGE = "storage.k8s.io"
COORDINATION = "coordination.k8s.io"
RBAC = "rbac.authorization.k8s.io"
AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"

NAMESPACES = ResourceType(CORE, "v1", "Namespace", "namespaces", False, ("ns",),
                          ("status", "finalize"))
NODES = ResourceType(CORE, "v1", "Node", "nodes", False, ("no",), ("status",))
PODS = ResourceType(CORE, "v1", "Pod", "pods", True, ("po",),
                    ("status", "binding", "log", "exec"), ("all",),
                    returns_deleted_object=True)
PERSISTENT_VOLUMES = ResourceType(CORE, "v1", "PersistentVolume", "persistentvolumes", False,
                                  ("pv",), ("status",))
PERSISTENT_VOLUME_CLAIMS = ResourceType(CORE, "v1", "PersistentVolumeClaim",
                                        "persistentvolumeclaims", True, ("pvc",), ("status",))
CONFIG_MAPS = ResourceType(CORE, "v1", "ConfigMap", "configmaps", True, ("cm",))
SECRETS = ResourceType(CORE, "v1", "Secret", "secrets", True)
EVENTS = ResourceType(CORE, "v1", "Event", "events", True, ("ev",))
STORAGE_CLASSES = ResourceType(STORAGE, "v1", "StorageClass", "storageclasses", False, ("sc",))
CSI_DRIVERS = ResourceType(STORAGE, "v1", "CSIDriver", "csidrivers", False)
CSI_STORAGE_CAPACITIES = ResourceType(STORAGE, "v1", "CSIStorageCapacity",
                                      "csistoragecapacities", True)
VOLUME_ATTACHMENTS = ResourceType(STORAGE, "v1", "VolumeAttachment", "volumeattachments", False,
                                  subresources=("status",))
LEASES = ResourceType(COORDINATION, "v1", "Lease", "leases", True)
ROLES = ResourceType(RBAC, "v1", "Role", "roles", True)
CLUSTER_ROLES = ResourceType(RBAC, "v1", "ClusterRole", "clusterroles", False)
ROLE_BINDINGS = ResourceType(RBAC, "v1", "RoleBinding", "rolebindings", True)
CLUSTER_ROLE_BINDINGS = ResourceType(RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings",
                                     False)
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType(AUTHORIZATION, "v1", "SelfSubjectAccessReview",
                                           "selfsubjectaccessreviews", False, verbs=("create",))
SELF_SUBJECT_RULES_REVIEWS = ResourceType(AUTHORIZATION, "v1", "SelfSubjectRulesReview",
                                          "selfsubjectrulesreviews", False, verbs=("create",))
SELF_SUBJECT_REVIEWS = ResourceType(AUTHENTICATION, "v1", "SelfSubjectReview",
                                    "selfsubjectreviews", False, verbs=("create",))

ALL: tuple[ResourceType, ...] = (
    NAMESPACES, NODES, PODS, PERSISTENT_VOLUMES, PERSISTENT_VOLUME_CLAIMS, CONFIG_MAPS,
    SECRETS, EVENTS, STORAGE_CLASSES, CSI_DRIVERS, CSI_STORAGE_CAPACITIES, VOLUME_ATTACHMENTS,
    LEASES, ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS,
    SELF_SUBJECT_ACCESS_REVIEWS, SELF_SUBJECT_RULES_REVIEWS, SELF_SUBJECT_REVIEWS,
)

PERSISTED: tuple[ResourceType, ...] = tuple(r for r in ALL if r.persisted)

BY_KIND = {r.kind: r for r in ALL}


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in the order discovery lists them."""
    seen: list[tuple[str, str]] = []
    for r in ALL:
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in ALL if r.group == group and r.version == version]
