"""Server-side Table printing: what `kubectl get` shows for each kind.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
`meta.k8s.io/v1` Table the server returns, so the columns, cell values and placeholders of
`kubectl get pvc` come from here, not from kubectl. Each kind has one small row function
registered with its column definitions, mirroring Kubernetes' pkg/printers/internalversion;
kinds without a printer get the apiserver's default table (Name, Created At). Like
kube-apiserver, every column is always produced (wide ones included, with priority 1) and
kubectl hides the wide ones unless `-o wide`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Obj = dict[str, Any]
Cell = Any
RowFunc = Callable[[Obj, datetime], list[Cell]]

INCLUDE_NONE = "None"
INCLUDE_METADATA = "Metadata"
INCLUDE_OBJECT = "Object"


class UnknownIncludeObject(ValueError):
    """`includeObject` was not one of None, Metadata, Object (kube-apiserver answers 400)."""


@dataclass(frozen=True)
class Column:
    """One `TableColumnDefinition`; priority 1 marks a column kubectl shows only with -o wide."""

    name: str
    type: str
    description: str
    format: str = ""
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        # Go serialises every field of TableColumnDefinition, empty format included.
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


@dataclass(frozen=True)
class Printer:
    """The columns of a kind and the function that turns one object into their cells."""

    columns: tuple[Column, ...]
    row: RowFunc


_PRINTERS: dict[str, Printer] = {}


def register_printer(kind: str, columns: Iterable[Column]) -> Callable[[RowFunc], RowFunc]:
    """Decorator registering `func(obj, now) -> cells` as the Table printer of `kind`."""

    def register(func: RowFunc) -> RowFunc:
        _PRINTERS[kind] = Printer(tuple(columns), func)
        return func

    return register


def printer_for(kind: str) -> Printer:
    """The registered printer of `kind`, or the apiserver's default Name/Created At one."""
    return _PRINTERS.get(kind, _DEFAULT_PRINTER)


# --- durations and timestamps ---------------------------------------------------------


def human_duration(d: timedelta) -> str:
    """Kubernetes' duration.HumanDuration: about two significant units ("3m2s", "2d3h")."""
    micros = d // timedelta(microseconds=1)
    seconds = _trunc_div(micros, 1_000_000)
    # Up to a second of clock skew reads as "now"; more than that as an invalid time.
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return _two_units(minutes, "m", seconds % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two_units(hours // 24, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return _two_units(hours // 24 // 365, "y", (hours // 24) % 365, "d")
    return f"{hours // 24 // 365}y"


def _trunc_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's int conversion does."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}" if small == 0 else f"{big}{big_unit}{small}{small_unit}"


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp (metav1.Time or MicroTime) as an aware datetime; None if absent."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def since(value: str | None, now: datetime) -> str:
    """translateTimestampSince: the age of a timestamp, `<unknown>` when it is unset."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration(now - when)


def age(obj: Obj, now: datetime) -> str:
    return since(_get(obj, "metadata", "creationTimestamp"), now)


def _get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., None as soon as a step is missing."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _name(obj: Obj) -> str:
    return str(_get(obj, "metadata", "name") or "")


# --- the Table itself ----------------------------------------------------------------


def to_table(kind: str, objects: list[Obj], *, list_meta: dict[str, Any],
             include_object: str = INCLUDE_METADATA, now: datetime,
             no_headers: bool = False) -> Obj:
    """A `meta.k8s.io/v1` Table of `objects` (all of `kind`) as kube-apiserver returns it.

    `list_meta` is the list's metadata (resourceVersion, continue, remainingItemCount), or a
    single object's resourceVersion for a GET of one object. `include_object` is the
    `includeObject` table option; `no_headers` drops the column definitions as the
    `noHeaders` option does (kubectl sets it on watch pages after the first).
    """
    if include_object not in (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT):
        raise UnknownIncludeObject(include_object)
    printer = printer_for(kind)
    table: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                  "metadata": _table_meta(list_meta)}
    if not no_headers:
        table["columnDefinitions"] = [c.to_dict() for c in printer.columns]
    table["rows"] = [_row(kind, printer, obj, include_object, now) for obj in objects]
    return table


def _table_meta(list_meta: dict[str, Any]) -> Obj:
    keep = ("resourceVersion", "continue", "remainingItemCount")
    return {k: list_meta[k] for k in keep if list_meta.get(k) not in (None, "")}


def _row(kind: str, printer: Printer, obj: Obj, include_object: str, now: datetime) -> Obj:
    row: Obj = {"cells": printer.row(obj, now)}
    conditions = _row_conditions(kind, obj)
    if conditions:
        row["conditions"] = conditions
    if include_object == INCLUDE_OBJECT:
        row["object"] = obj
    elif include_object == INCLUDE_METADATA:
        row["object"] = partial_object_metadata(obj)
    return row


def partial_object_metadata(obj: Obj) -> Obj:
    """The `PartialObjectMetadata` kube-apiserver puts in rows for includeObject=Metadata."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def _row_conditions(kind: str, obj: Obj) -> list[Obj]:
    """Finished pods carry a `Completed` row condition; kubectl hides them without -a."""
    if kind != "Pod":
        return []
    phase = _get(obj, "status", "phase")
    messages = {"Succeeded": "The pod has completed successfully.", "Failed": "The pod failed."}
    if phase not in messages:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": messages[phase]}]


# --- column helpers --------------------------------------------------------------------

NAME = Column("Name", "string", "Name must be unique within a namespace.", format="name")
AGE = Column("Age", "string", "When the object was created, as an age.")


def _col(name: str, description: str, type_: str = "string", priority: int = 0) -> Column:
    return Column(name, type_, description, priority=priority)


def _wide(name: str, description: str) -> Column:
    return Column(name, "string", description, priority=1)


def _default_row(obj: Obj, now: datetime) -> list[Cell]:
    created = parse_time(_get(obj, "metadata", "creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else \
        "0001-01-01T00:00:00Z"
    return [_name(obj), stamp]


_DEFAULT_PRINTER = Printer(
    (NAME, Column("Created At", "date", "When the object was created (RFC 3339, UTC).")),
    _default_row,
)

# --- storage ---------------------------------------------------------------------------

_ACCESS_MODE_ABBREVIATIONS = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"),
                              ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
_BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
_DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                              "storageclass.beta.kubernetes.io/is-default-class")


def access_modes(modes: list[str] | None) -> str:
    """Access modes abbreviated in Kubernetes' fixed order, whatever order they were given."""
    present = set(modes or [])
    return ",".join(short for mode, short in _ACCESS_MODE_ABBREVIATIONS if mode in present)


def _storage(quantities: dict[str, Any] | None) -> str:
    # A missing quantity prints as the zero Quantity does.
    return str((quantities or {}).get("storage") or "0")


def _class_name(obj: Obj) -> str:
    # The beta annotation still wins over spec.storageClassName, as in Kubernetes' helpers.
    annotations = _get(obj, "metadata", "annotations") or {}
    if _BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[_BETA_CLASS_ANNOTATION])
    return str(_get(obj, "spec", "storageClassName") or "")


def _phase(obj: Obj) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return str(_get(obj, "status", "phase") or "")


def _or_unset(value: Any) -> str:
    return "<unset>" if value is None else str(value)


@register_printer("PersistentVolume", (
    NAME, _col("Capacity", "The volume's size."),
    _col("Access Modes", "Ways the volume can be mounted."),
    _col("Reclaim Policy", "What happens to the volume when its claim is released."),
    _col("Status", "The phase of the volume."),
    _col("Claim", "The claim bound to this volume, as namespace/name."),
    _col("StorageClass", "StorageClass of the pv"),
    _col("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
    _col("Reason", "Why the volume is in this phase, for failures."), AGE,
    _wide("VolumeMode", "Filesystem or Block."),
))
def _print_pv(pv: Obj, now: datetime) -> list[Cell]:
    spec = pv.get("spec") or {}
    ref = spec.get("claimRef")
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    return [_name(pv), _storage(spec.get("capacity")), access_modes(spec.get("accessModes")),
            str(spec.get("persistentVolumeReclaimPolicy") or ""), _phase(pv), claim,
            _class_name(pv), _or_unset(spec.get("volumeAttributesClassName")),
            str(_get(pv, "status", "reason") or ""), age(pv, now),
            _or_unset(spec.get("volumeMode"))]


@register_printer("PersistentVolumeClaim", (
    NAME, _col("Status", "The phase of the claim."),
    _col("Volume", "The volume bound to this claim."),
    _col("Capacity", "The size of the bound volume."),
    _col("Access Modes", "Ways the bound volume can be mounted."),
    _col("StorageClass", "StorageClass of the pvc"),
    _col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"), AGE,
    _wide("VolumeMode", "Filesystem or Block."),
))
def _print_pvc(pvc: Obj, now: datetime) -> list[Cell]:
    spec = pvc.get("spec") or {}
    status = pvc.get("status") or {}
    volume = str(spec.get("volumeName") or "")
    # Capacity and modes describe the bound volume, so they stay empty until binding.
    capacity = _storage(status.get("capacity")) if volume else ""
    modes = access_modes(status.get("accessModes")) if volume else ""
    return [_name(pvc), _phase(pvc), volume, capacity, modes, _class_name(pvc),
            _or_unset(spec.get("volumeAttributesClassName")), age(pvc, now),
            _or_unset(spec.get("volumeMode"))]


@register_printer("StorageClass", (
    NAME, _col("Provisioner", "The driver that provisions volumes of this class."),
    _col("ReclaimPolicy", "Reclaim policy of the volumes it provisions."),
    _col("VolumeBindingMode", "When claims of this class are bound and provisioned."),
    _col("AllowVolumeExpansion", "Whether claims of this class may grow."), AGE,
))
def _print_storage_class(sc: Obj, now: datetime) -> list[Cell]:
    annotations = _get(sc, "metadata", "annotations") or {}
    is_default = any(annotations.get(a) == "true" for a in _DEFAULT_CLASS_ANNOTATIONS)
    name = _name(sc) + (" (default)" if is_default else "")
    return [name, str(sc.get("provisioner") or ""), str(sc.get("reclaimPolicy") or "Delete"),
            str(sc.get("volumeBindingMode") or "Immediate"),
            bool(sc.get("allowVolumeExpansion") or False), age(sc, now)]


@register_printer("CSIDriver", (
    NAME, _col("AttachRequired", "Whether volumes must be attached before they are mounted.",
               "boolean"),
    _col("PodInfoOnMount", "Whether pod information is passed on mount.", "boolean"),
    _col("StorageCapacity", "Whether the scheduler checks the driver's storage capacity.",
         "boolean"),
    _col("TokenRequests", "Audiences of the service account tokens the driver needs."),
    _col("RequiresRepublish", "Whether volumes are published again periodically.", "boolean"),
    _col("Modes", "Volume lifecycle modes the driver supports."), AGE,
))
def _print_csi_driver(driver: Obj, now: datetime) -> list[Cell]:
    spec = driver.get("spec") or {}
    requests = spec.get("tokenRequests")
    # No list at all prints "<unset>"; an empty one prints as an empty join.
    tokens = "<unset>" if requests is None else \
        ",".join(str(r.get("audience") or "") for r in requests)
    modes = ",".join(spec.get("volumeLifecycleModes") or ()) or "<none>"
    return [_name(driver), bool(spec.get("attachRequired", False)),
            bool(spec.get("podInfoOnMount", False)), bool(spec.get("storageCapacity", False)),
            tokens, bool(spec.get("requiresRepublish", False)), modes, age(driver, now)]


# Kubernetes' capacity columns end at Capacity: no Age column, unlike most kinds.
@register_printer("CSIStorageCapacity", (
    NAME, _col("StorageClassName", "The StorageClass the capacity was reported for."),
    _col("Capacity", "Space available for new volumes of the class there."),
))
def _print_csi_storage_capacity(capacity: Obj, now: datetime) -> list[Cell]:
    value = capacity.get("capacity")
    return [_name(capacity), str(capacity.get("storageClassName") or ""),
            "<unset>" if value is None else str(value)]


# Kubernetes names the attacher column with format "name", like NAME.
@register_printer("VolumeAttachment", (
    NAME, Column("Attacher", "string", "The CSI driver that attaches the volume.", format="name"),
    _col("PV", "The PersistentVolume attached."),
    _col("Node", "The node the volume is attached to."),
    _col("Attached", "Whether the attach operation succeeded.", "boolean"), AGE,
))
def _print_volume_attachment(va: Obj, now: datetime) -> list[Cell]:
    spec = va.get("spec") or {}
    return [_name(va), str(spec.get("attacher") or ""),
            str((spec.get("source") or {}).get("persistentVolumeName") or ""),
            str(spec.get("nodeName") or ""), bool(_get(va, "status", "attached") or False),
            age(va, now)]


# --- pods ------------------------------------------------------------------------------


@dataclass
class _PodTally:
    """What walking the container statuses of a pod accumulates."""

    reason: str
    restarts: int = 0
    ready: int = 0
    last_restart: datetime | None = None

    def restarted(self, status: Obj) -> None:
        self.restarts += int(status.get("restartCount") or 0)
        self.last_restart = _later(self.last_restart, _last_termination(status))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _last_termination(status: Obj) -> datetime | None:
    return parse_time(_get(status, "lastState", "terminated", "finishedAt"))


def _terminated_reason(terminated: Obj, prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def _is_sidecar(pod: Obj, name: str) -> bool:
    """An init container with restartPolicy Always keeps running beside the main ones."""
    return any(c.get("name") == name and c.get("restartPolicy") == "Always"
               for c in _get(pod, "spec", "initContainers") or [])


def _has_condition(pod: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in _get(pod, "status", "conditions") or [])


def _walk_init_containers(pod: Obj, tally: _PodTally, sidecars: _PodTally) -> bool:
    """Account init containers; True while the pod is still initializing."""
    statuses = _get(pod, "status", "initContainerStatuses") or []
    total = len(_get(pod, "spec", "initContainers") or [])
    for index, status in enumerate(statuses):
        tally.restarted(status)
        sidecar = _is_sidecar(pod, str(status.get("name")))
        if sidecar:
            sidecars.restarted(status)
        state = status.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and status.get("started"):
            tally.ready += 1 if status.get("ready") else 0
            continue
        if terminated is not None:
            tally.reason = _terminated_reason(terminated, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            tally.reason = "Init:" + str(waiting["reason"])
        else:
            tally.reason = f"Init:{index}/{total}"
        return True
    return False


def _walk_containers(pod: Obj, tally: _PodTally) -> None:
    """Account main containers, last first, so the first container's state wins."""
    running = False
    for status in reversed(_get(pod, "status", "containerStatuses") or []):
        tally.restarted(status)
        state = status.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            tally.reason = str(waiting["reason"])
        elif terminated is not None:
            tally.reason = _terminated_reason(terminated, "")
        elif status.get("ready") and state.get("running") is not None:
            running = True
            tally.ready += 1
    if tally.reason == "Completed" and running:
        tally.reason = "Running" if _has_condition(pod, "Ready") else "NotReady"


def pod_status(pod: Obj) -> _PodTally:
    """kubectl's STATUS, READY count and RESTARTS of a pod (printPod in Kubernetes)."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "")
    tally = _PodTally(reason=str(status.get("reason") or phase))
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        tally.reason = "SchedulingGated"
    sidecars = _PodTally(reason="")
    initializing = _walk_init_containers(pod, tally, sidecars)
    if not initializing or _has_condition(pod, "Initialized"):
        # Only sidecar restarts survive once the main containers are what count.
        tally.restarts, tally.last_restart = sidecars.restarts, sidecars.last_restart
        _walk_containers(pod, tally)
    if _get(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            tally.reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            tally.reason = "Terminating"
    return tally


def _sidecar_count(pod: Obj) -> int:
    return sum(1 for c in _get(pod, "spec", "initContainers") or []
               if c.get("restartPolicy") == "Always")


def _readiness_gates(pod: Obj) -> str:
    gates = _get(pod, "spec", "readinessGates") or []
    if not gates:
        return "<none>"
    conditions = {c.get("type"): c.get("status") for c in _get(pod, "status", "conditions") or []}
    passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
    return f"{passed}/{len(gates)}"


@register_printer("Pod", (
    NAME, _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "The aggregate status of the containers in this pod."),
    _col("Restarts", "The number of times the containers in this pod have been restarted "
                     "and when the last container in this pod has restarted."), AGE,
    _wide("IP", "The pod's IP address."), _wide("Node", "The node the pod runs on."),
    _wide("Nominated Node", "The node the scheduler means to preempt pods on for this one."),
    _wide("Readiness Gates", "Extra conditions that must hold for the pod to be ready."),
))
def _print_pod(pod: Obj, now: datetime) -> list[Cell]:
    tally = pod_status(pod)
    total = len(_get(pod, "spec", "containers") or []) + _sidecar_count(pod)
    restarts = str(tally.restarts)
    if tally.restarts and tally.last_restart is not None:
        restarts += f" ({human_duration(now - tally.last_restart)} ago)"
    ips = _get(pod, "status", "podIPs") or []
    return [_name(pod), f"{tally.ready}/{total}", tally.reason, restarts, age(pod, now),
            str(ips[0].get("ip") or "<none>") if ips else "<none>",
            str(_get(pod, "spec", "nodeName") or "<none>"),
            str(_get(pod, "status", "nominatedNodeName") or "<none>"), _readiness_gates(pod)]


# --- cluster objects -------------------------------------------------------------------

_ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
_ROLE_LABEL = "kubernetes.io/role"


def _node_status(node: Obj) -> str:
    ready = [c for c in _get(node, "status", "conditions") or [] if c.get("type") == "Ready"]
    parts = ["Ready" if ready[-1].get("status") == "True" else "NotReady"] if ready \
        else ["Unknown"]
    if _get(node, "spec", "unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in (_get(node, "metadata", "labels") or {}).items():
        if key.startswith(_ROLE_LABEL_PREFIX) and key[len(_ROLE_LABEL_PREFIX):]:
            roles.add(key[len(_ROLE_LABEL_PREFIX):])
        elif key == _ROLE_LABEL and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, type_: str) -> str:
    for address in _get(node, "status", "addresses") or []:
        if address.get("type") == type_:
            return str(address.get("address"))
    return "<none>"


@register_printer("Node", (
    NAME, _col("Status", "The status of the node"), _col("Roles", "The roles of the node"),
    AGE, _col("Version", "The kubelet's version."),
    _wide("Internal-IP", "The node's addresses."), _wide("External-IP", "The node's addresses."),
    _wide("OS-Image", "The node's operating system image."),
    _wide("Kernel-Version", "The node's kernel version."),
    _wide("Container-Runtime", "The node's container runtime and version."),
))
def _print_node(node: Obj, now: datetime) -> list[Cell]:
    info = _get(node, "status", "nodeInfo") or {}
    return [_name(node), _node_status(node), _node_roles(node), age(node, now),
            str(info.get("kubeletVersion") or ""),
            _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            str(info.get("osImage") or "<unknown>"), str(info.get("kernelVersion") or "<unknown>"),
            str(info.get("containerRuntimeVersion") or "<unknown>")]


@register_printer("Namespace", (NAME, _col("Status", "The status of the namespace"), AGE))
def _print_namespace(ns: Obj, now: datetime) -> list[Cell]:
    return [_name(ns), str(_get(ns, "status", "phase") or ""), age(ns, now)]


@register_printer("ConfigMap", (NAME, _col("Data", "Number of data entries."), AGE))
def _print_config_map(cm: Obj, now: datetime) -> list[Cell]:
    return [_name(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), age(cm, now)]


@register_printer("Secret", (NAME, _col("Type", "The secret's type."),
                             _col("Data", "Number of data entries."), AGE))
def _print_secret(secret: Obj, now: datetime) -> list[Cell]:
    return [_name(secret), str(secret.get("type") or ""), len(secret.get("data") or {}),
            age(secret, now)]


@register_printer("Lease", (NAME, _col("Holder", "Who holds the lease."), AGE))
def _print_lease(lease: Obj, now: datetime) -> list[Cell]:
    return [_name(lease), str(_get(lease, "spec", "holderIdentity") or ""), age(lease, now)]


# --- events ----------------------------------------------------------------------------


def _event_times(event: Obj, now: datetime) -> tuple[str, str, int]:
    """(last seen, first seen, count), falling back to eventTime/series as Kubernetes does."""
    first = since(event.get("firstTimestamp"), now) if event.get("firstTimestamp") else \
        since(event.get("eventTime"), now)
    last = since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = int(event.get("count") or 0)
    series = event.get("series")
    if series is not None:
        last, count = since(series.get("lastObservedTime"), now), int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API carry no count
    return last, first, count


def _event_source(event: Obj) -> str:
    component = _get(event, "source", "component") or event.get("reportingComponent") or ""
    host = _get(event, "source", "host") or event.get("reportingInstance") or ""
    return f"{component}, {host}" if host else str(component)


@register_printer("Event", (
    _col("Last Seen", "When the event was last seen."), _col("Type", "Normal or Warning."),
    _col("Reason", "Why the event happened, in CamelCase."),
    _col("Object", "The object the event is about."),
    _wide("Subobject", "The part of the object, such as a container."),
    _wide("Source", "The component that reported the event."),
    _col("Message", "What happened, for humans."),
    _wide("First Seen", "When the event was first seen."),
    _wide("Count", "How many times it happened."),
    Column("Name", "string", NAME.description, format="name", priority=1),
))
def _print_event(event: Obj, now: datetime) -> list[Cell]:
    last, first, count = _event_times(event, now)
    involved = event.get("involvedObject") or {}
    kind = str(involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [last, str(event.get("type") or ""), str(event.get("reason") or ""), target,
            str(involved.get("fieldPath") or ""), _event_source(event),
            str(event.get("message") or "").strip(), first, count, _name(event)]


# --- RBAC (Role and ClusterRole use the default table, as in Kubernetes) ---------------


def _subjects(binding: Obj) -> tuple[str, str, str]:
    users, groups, accounts = [], [], []
    for subject in binding.get("subjects") or []:
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def _binding_columns(what: str) -> tuple[Column, ...]:
    return (NAME, _col("Role", "The role granted, as Kind/name."), AGE,
            _wide("Users", f"Users in the {what}"), _wide("Groups", f"Groups in the {what}"),
            _wide("ServiceAccounts", f"ServiceAccounts in the {what}"))


def _print_binding(binding: Obj, now: datetime) -> list[Cell]:
    ref = binding.get("roleRef") or {}
    return [_name(binding), f"{ref.get('kind', '')}/{ref.get('name', '')}", age(binding, now),
            *_subjects(binding)]


register_printer("RoleBinding", _binding_columns("roleBinding"))(_print_binding)
register_printer("ClusterRoleBinding", _binding_columns("clusterRoleBinding"))(_print_binding)
