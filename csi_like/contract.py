"""The CSI-like driver contract: value types and the three services a driver offers.

It mirrors the Container Storage Interface (Identity, Controller, Node) with plain Python
values instead of gRPC, so the provisioning controller and the kubelet can call any driver
the same way, and a third party can add one (see `registry`). Every method states its
contract in its docstring; drivers raise only the types of `csi_like.errors`. Names are
deterministic: the caller gives the volume name (`pvc-<claim uid>`) and creating an existing
volume with the same request returns it, so a retry after a crash reuses what was made.
Sizes are bytes (ints); the caller converts Kubernetes Quantities.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

TOPOLOGY_HOSTNAME_KEY = "kubernetes.io/hostname"
# Parameters the external-provisioner consumes itself (secret names ...); drivers ignore them.
RESERVED_PARAMETER_PREFIX = "csi.storage.k8s.io/"


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


class AccessMode(str, enum.Enum):
    """PersistentVolume access modes, spelled as in the Kubernetes API."""

    RWO = "ReadWriteOnce"
    ROX = "ReadOnlyMany"
    RWX = "ReadWriteMany"
    RWOP = "ReadWriteOncePod"


class Capability(str, enum.Enum):
    """What a driver can do beyond Identity (CSI's plugin, controller and node capabilities)."""

    CONTROLLER_SERVICE = "CONTROLLER_SERVICE"
    VOLUME_ACCESSIBILITY_CONSTRAINTS = "VOLUME_ACCESSIBILITY_CONSTRAINTS"
    CREATE_DELETE_VOLUME = "CREATE_DELETE_VOLUME"
    EXPAND_VOLUME = "EXPAND_VOLUME"
    ONLINE_EXPANSION = "ONLINE_EXPANSION"
    GET_CAPACITY = "GET_CAPACITY"
    GET_VOLUME = "GET_VOLUME"
    VOLUME_CONDITION = "VOLUME_CONDITION"
    NODE_GET_VOLUME_STATS = "NODE_GET_VOLUME_STATS"
    NODE_EXPAND_VOLUME = "NODE_EXPAND_VOLUME"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    vendor_version: str


@dataclass(frozen=True)
class Topology:
    """One topology segment set, e.g. {"kubernetes.io/hostname": "node-1"}."""

    segments: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", _frozen(self.segments))

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.segments.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topology) and dict(self.segments) == dict(other.segments)

    @classmethod
    def node(cls, node_name: str) -> Topology:
        return cls({TOPOLOGY_HOSTNAME_KEY: node_name})


@dataclass(frozen=True)
class TopologyRequirement:
    """Where the volume must (requisite) and should preferably (preferred) be accessible;
    with WaitForFirstConsumer the selected node comes first in `preferred`."""

    requisite: tuple[Topology, ...] = ()
    preferred: tuple[Topology, ...] = ()


@dataclass(frozen=True)
class ClaimMetadata:
    """Who the volume is for (CSI's extra-create-metadata); feeds path patterns and
    per-claim annotations where the class allows them."""

    pvc_name: str = ""
    pvc_namespace: str = ""
    pvc_uid: str = ""
    pv_name: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "annotations", _frozen(self.annotations))


@dataclass(frozen=True)
class CreateVolumeRequest:
    """CSI CreateVolume. `name` is the deterministic volume name (the PV name,
    `pvc-<claim uid>`); `parameters` are the StorageClass parameters; `secrets` the
    provisioner secret's data (decoded strings)."""

    name: str
    capacity_bytes: int
    parameters: Mapping[str, str] = field(default_factory=dict)
    access_modes: tuple[AccessMode, ...] = (AccessMode.RWO,)
    topology: TopologyRequirement | None = None
    claim: ClaimMetadata = field(default_factory=ClaimMetadata)
    secrets: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", _frozen(self.parameters))
        object.__setattr__(self, "secrets", _frozen(self.secrets))


@dataclass(frozen=True)
class Volume:
    """A created volume: the id to use in every later call (PV spec.csi.volumeHandle), its
    real capacity (>= requested), attributes for the node side (spec.csi.volumeAttributes)
    and where it is reachable (becomes the PV's nodeAffinity; empty means everywhere)."""

    volume_id: str
    capacity_bytes: int
    context: Mapping[str, str] = field(default_factory=dict)
    accessible_topology: tuple[Topology, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "context", _frozen(self.context))


@dataclass(frozen=True)
class ExpansionResult:
    """The new capacity, and whether NodeExpandVolume must still run on the node."""

    capacity_bytes: int
    node_expansion_required: bool


@dataclass(frozen=True)
class VolumeCondition:
    """CSI VolumeCondition: `abnormal` with a human message (e.g. soft capacity exceeded)."""

    abnormal: bool = False
    message: str = ""


@dataclass(frozen=True)
class VolumeStatus:
    """Controller-side view of a volume (CSI ControllerGetVolume): capacity, measured use."""

    volume_id: str
    capacity_bytes: int
    used_bytes: int
    condition: VolumeCondition = field(default_factory=VolumeCondition)


@dataclass(frozen=True)
class VolumeStats:
    """Node-side usage (CSI NodeGetVolumeStats), as the kubelet reports it in its metrics."""

    total_bytes: int
    used_bytes: int
    available_bytes: int
    total_inodes: int = 0
    used_inodes: int = 0
    condition: VolumeCondition = field(default_factory=VolumeCondition)


@runtime_checkable
class IdentityDriver(Protocol):
    """Who the driver is and whether it can serve now."""

    def get_plugin_info(self) -> PluginInfo:
        """The provisioner name (e.g. "storagelab.io/local") and version; never fails."""
        ...

    def probe(self) -> bool:
        """True when the driver is ready to serve calls; False (never an exception) when a
        needed part is missing, e.g. no base path on this node."""
        ...

    def get_plugin_capabilities(self) -> frozenset[Capability]:
        """The capabilities this driver supports; a caller skips calls not listed."""
        ...


@runtime_checkable
class ControllerDriver(Protocol):
    """Creates, deletes and grows volumes; called by the provisioning controller."""

    def create_volume(self, request: CreateVolumeRequest) -> Volume:
        """Create the volume `request.name`, or return it when it already exists with the same
        request (idempotent: "already exists" is success). Raises InvalidArgument (bad or
        unknown parameter, naming it), VolumeConflict (the name or its directory is taken by
        something else), OutOfCapacity, NodeUnsuitable, TemporaryError (server unreachable),
        PermanentError (e.g. wrong credentials). On error nothing is left behind."""
        ...

    def delete_volume(self, volume_id: str, secrets: Mapping[str, str] | None = None) -> None:
        """Apply the volume's on-delete policy (delete, retain, archive). Idempotent: a volume
        already gone is success. Raises NotMine for another driver's id, PermanentError when
        the id is malformed or points at something this driver did not create."""
        ...

    def expand_volume(self, volume_id: str, capacity_bytes: int,
                      secrets: Mapping[str, str] | None = None) -> ExpansionResult:
        """Grow the volume to at least `capacity_bytes` (online); shrinking is a no-op that
        returns the current size. Raises VolumeNotFound, OutOfCapacity, TemporaryError."""
        ...

    def get_capacity(self, parameters: Mapping[str, str], topology: Topology | None = None,
                     secrets: Mapping[str, str] | None = None) -> int:
        """Bytes available for new volumes of this class at `topology` (a node for local
        volumes); 0 when the place is unknown. Raises InvalidArgument, TemporaryError."""
        ...

    def get_volume(self, volume_id: str,
                   secrets: Mapping[str, str] | None = None) -> VolumeStatus:
        """Capacity and measured usage; `condition.abnormal` when soft-enforced capacity is
        exceeded. Raises VolumeNotFound, TemporaryError."""
        ...


@runtime_checkable
class NodeDriver(Protocol):
    """Makes a volume usable at a path on the node; called by the kubelet."""

    def publish_volume(self, volume_id: str, target_path: str, read_only: bool,
                       context: Mapping[str, str] | None = None,
                       mount_options: tuple[str, ...] = ()) -> None:
        """Mount the volume at the existing directory `target_path`, read-only when asked.
        Idempotent: already published there is success. `context` is the Volume.context."""
        ...

    def unpublish_volume(self, volume_id: str, target_path: str) -> None:
        """Undo publish_volume; nothing mounted there is success. Never deletes data."""
        ...

    def get_volume_stats(self, volume_id: str, volume_path: str) -> VolumeStats:
        """Usage of the published volume at `volume_path`. Raises VolumeNotFound."""
        ...

    def node_expand_volume(self, volume_id: str, volume_path: str,
                           capacity_bytes: int) -> int:
        """Finish an expansion on the node (grow the file system); returns the capacity now
        usable. A no-op for drivers whose controller expansion is complete."""
        ...


@runtime_checkable
class Driver(IdentityDriver, ControllerDriver, NodeDriver, Protocol):
    """A driver offering all three services, as both built-in drivers do."""
