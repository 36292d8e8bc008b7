"""Validation of API objects on create and update, with Kubernetes' field errors.

kube-apiserver answers 422 Invalid with one `Cause` per offending field, worded by
pkg/apis/core/validation, pkg/apis/storage/validation, coordination and rbac validation. Clients
show those messages to people and tests match them, so this module reproduces the rules and
their text for the kinds storagelab serves: Namespace, Node, Pod, PersistentVolume,
PersistentVolumeClaim, ConfigMap, Secret, Event, StorageClass, CSIDriver, CSIStorageCapacity,
VolumeAttachment, Lease and the RBAC kinds.
It also offers the two steps Kubernetes performs while decoding a body, before validation:
`check_decodable` (quantities and base64 that fail to decode are a 400, not a 422) and
`canonicalize_quantities` (the stored string of every Quantity is its canonical form).

Container probes have their own module, apiserver.validation_probes.

Call order on create: apply_defaults, canonicalize_quantities, validate.
"""

from __future__ import annotations

import binascii
import copy
import json
import posixpath
from collections.abc import Callable, Mapping, MutableMapping
from fractions import Fraction
from typing import Any

from apimachinery import labels, names, quantity
from apimachinery.errors import Cause
from apimachinery.names import (
    duplicate,
    forbidden,
    immutable,
    invalid,
    not_found,
    not_supported,
    required,
    too_long,
)
from apiserver import validation_probes

Obj = Mapping[str, Any]
Validator = Callable[[Obj], list[Cause]]
UpdateValidator = Callable[[Obj, Obj], list[Cause]]

ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
PV_RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
SC_RECLAIM_POLICIES = ("Delete", "Retain")
VOLUME_MODES = ("Block", "Filesystem")
BINDING_MODES = ("Immediate", "WaitForFirstConsumer")
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                   "FileOrCreate", "Socket")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_SECRET_SIZE = 1024 * 1024
MAX_INT32 = 2**31 - 1
FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"
BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)")
PVC_UPDATE_FORBIDDEN = ("spec is immutable after creation except resources.requests and "
                        "volumeAttributesClassName for bound claims")
PV_SOURCE_FORBIDDEN = "spec.persistentvolumesource is immutable after creation"


class DecodeError(ValueError):
    """A body Kubernetes cannot even decode into the kind: HTTP 400 BadRequest."""

    def __init__(self, kind: str, detail: str, version: str = "v1") -> None:
        self.kind, self.detail, self.version = kind, detail, version
        super().__init__(f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}')


# --- small helpers ----------------------------------------------------------------------------

def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _map(obj: Any, *path: str) -> Mapping[str, Any]:
    value = _get(obj, *path)
    return value if isinstance(value, Mapping) else {}


def _list(obj: Any, *path: str) -> list[Any]:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _name_causes(path: str, value: str, messages: list[str]) -> list[Cause]:
    return [invalid(path, value, m) for m in messages]


def _quantity(raw: Any) -> Fraction | None:
    try:
        return quantity.parse_quantity(str(raw).strip())
    except (quantity.QuantityError, TypeError):
        return None


def _diff(old: Any, new: Any) -> str:
    """A readable stand-in for the cmp.Diff Kubernetes appends to immutability errors."""
    before = json.dumps(old, sort_keys=True, default=str)
    after = json.dumps(new, sort_keys=True, default=str)
    return f"- {before}\n+ {after}"


def _enum(path: str, value: Any, allowed: tuple[str, ...], required_if_empty: bool = True,
          ) -> list[Cause]:
    if value in allowed:
        return []
    if value in (None, "") and required_if_empty:
        return [required(path)]
    return [not_supported(path, value, allowed)]


def _positive_quantity(path: str, raw: Any) -> list[Cause]:
    value = _quantity(raw)
    if value is None:
        return [invalid(path, _str(raw) or str(raw), "must be a valid resource quantity")]
    if value <= 0:
        return [invalid(path, _shown(raw), "must be greater than zero")]
    return []


def _shown(raw: Any) -> str:
    """A quantity as Kubernetes prints it in a message: its canonical string."""
    try:
        return quantity.canonical_json_quantity(raw)
    except quantity.QuantityError:
        return str(raw)


def _nonnegative_quantity(path: str, raw: Any) -> list[Cause]:
    value = _quantity(raw)
    if value is None:
        return [invalid(path, _str(raw) or str(raw), "must be a valid resource quantity")]
    if value < 0:
        return [invalid(path, _shown(raw), "must be greater than or equal to 0")]
    return []


def _path_no_backsteps(path: str, value: str) -> list[Cause]:
    if ".." in value.replace("\\", "/").split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


def _local_descending_path(path: str, value: str) -> list[Cause]:
    causes = []
    if value.startswith("/"):
        causes.append(invalid(path, value, "must be a relative path"))
    return causes + _path_no_backsteps(path, value)


def _local_non_reserved_path(path: str, value: str) -> list[Cause]:
    causes = _local_descending_path(path, value)
    if value.startswith("..") and not value.startswith("../"):
        causes.append(invalid(path, value, "must not start with '..'"))
    return causes


def _file_mode(path: str, mode: Any) -> list[Cause]:
    if isinstance(mode, int) and not 0 <= mode <= 0o777:
        return [invalid(path, mode, FILE_MODE_ERROR)]
    return []


# --- decoding: base64 and quantities ------------------------------------------------------------

_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def decode_base64(text: str) -> bytes:
    """Go's base64.StdEncoding as encoding/json uses it for []byte: CR and LF are skipped.

    Raises ValueError("illegal base64 data at input byte N").
    """
    cleaned = text.replace("\r", "").replace("\n", "")
    for i, ch in enumerate(cleaned):
        if ch not in _B64_ALPHABET and ch != "=":
            raise ValueError(f"illegal base64 data at input byte {i}")
    if len(cleaned) % 4:
        raise ValueError(f"illegal base64 data at input byte {len(cleaned) - len(cleaned) % 4}")
    first_pad = cleaned.find("=")
    if first_pad != -1 and (first_pad < len(cleaned) - 2 or
                            cleaned[first_pad:].strip("=") or first_pad % 4 < 2):
        raise ValueError(f"illegal base64 data at input byte {first_pad}")
    try:
        return binascii.a2b_base64(cleaned.encode("ascii"), strict_mode=True)
    except binascii.Error:
        raise ValueError("illegal base64 data at input byte 0") from None


def _check_base64_map(kind: str, values: Any) -> None:
    if values is None:
        return
    if not isinstance(values, Mapping):
        raise DecodeError(kind, "json: cannot unmarshal into map[string][]byte")
    for value in values.values():
        if value is None:
            continue
        if not isinstance(value, str):
            raise DecodeError(kind, "json: cannot unmarshal number into Go value of type []uint8")
        try:
            decode_base64(value)
        except ValueError as err:
            raise DecodeError(kind, str(err)) from None


def _resource_lists(kind: str, obj: Obj) -> list[tuple[MutableMapping[str, Any], bool]]:
    """Every quantity map of an object, with whether it is a ResourceList (rounded to milli)."""
    found: list[tuple[Any, bool]] = []
    if kind == "PersistentVolume":
        found.append((_get(obj, "spec", "capacity"), True))
    elif kind == "PersistentVolumeClaim":
        found += [(_get(obj, "spec", "resources", "requests"), True),
                  (_get(obj, "spec", "resources", "limits"), True),
                  (_get(obj, "status", "capacity"), True),
                  (_get(obj, "status", "allocatedResources"), True)]
    elif kind == "Node":
        found += [(_get(obj, "status", "capacity"), True),
                  (_get(obj, "status", "allocatable"), True)]
    elif kind == "Pod":
        found += _pod_resource_lists(obj)
    return [(m, rounded) for m, rounded in found if isinstance(m, MutableMapping)]


def _pod_resource_lists(pod: Obj) -> list[tuple[Any, bool]]:
    found: list[tuple[Any, bool]] = [(_get(pod, "spec", "overhead"), True)]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in _list(pod, "spec", key):
            found.append((_get(container, "resources", "requests"), True))
            found.append((_get(container, "resources", "limits"), True))
    for volume in _list(pod, "spec", "volumes"):
        # emptyDir.sizeLimit is a lone Quantity, not a ResourceList: no milli rounding
        found.append((_get(volume, "emptyDir"), False))
    return found


# Quantities that stand alone at the top of an object (not in a ResourceList: no rounding).
_LONE_QUANTITIES = {"CSIStorageCapacity": ("capacity", "maximumVolumeSize")}


def _canonical_values(kind: str, values: MutableMapping[str, Any], rounded: bool,
                      lone_keys: tuple[str, ...] = ("sizeLimit",)) -> None:
    keys = list(values) if rounded else list(lone_keys)
    for key in keys:
        raw = values.get(key)
        if raw is None:
            continue
        try:
            values[key] = (quantity.canonical_resource_quantity(raw) if rounded
                           else quantity.canonical_json_quantity(raw))
        except quantity.QuantityError as err:
            raise DecodeError(kind, str(err)) from None


def check_decodable(kind: str, obj: Obj) -> None:
    """Raise DecodeError where Kubernetes' decoder would refuse the body (HTTP 400)."""
    if kind == "Secret":
        _check_base64_map(kind, obj.get("data"))
    elif kind == "ConfigMap":
        _check_base64_map(kind, obj.get("binaryData"))
    scratch = copy.deepcopy(dict(obj))
    canonicalize_quantities(kind, scratch)


def canonicalize_quantities(kind: str, obj: MutableMapping[str, Any]) -> None:
    """Rewrite every Quantity to the string Kubernetes stores (ResourceLists rounded to milli).

    Raises DecodeError for a value that is not a quantity.
    """
    for values, rounded in _resource_lists(kind, obj):
        _canonical_values(kind, values, rounded)
    if kind in _LONE_QUANTITIES:
        _canonical_values(kind, obj, False, _LONE_QUANTITIES[kind])


# --- PersistentVolume ---------------------------------------------------------------------------

def _validate_access_modes(path: str, modes: Any, required_detail: str) -> list[Cause]:
    modes = modes if isinstance(modes, list) else []
    causes = [] if modes else [required(path, required_detail)]
    causes += [not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        causes.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def _validate_capacity(capacity: Any) -> list[Cause]:
    capacity = capacity if isinstance(capacity, Mapping) else {}
    causes = [] if capacity else [required("spec.capacity")]
    if "storage" not in capacity or len(capacity) > 1:
        causes.append(not_supported("spec.capacity", dict(capacity), ("storage",)))
    for name, raw in capacity.items():
        path = f"spec.capacity[{name}]"
        value = _quantity(raw)
        if value is not None and value < 0:
            causes.append(invalid(path, int(value), "must be a valid resource quantity"))
        causes += _positive_quantity(path, raw)
    return causes


def _validate_host_path(path: str, source: Obj) -> list[Cause]:
    host_path = _str(source.get("path"))
    if not host_path:
        return [required(f"{path}.path")]
    causes = _path_no_backsteps(f"{path}.path", host_path)
    kind = source.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        causes.append(not_supported(f"{path}.type", kind, HOST_PATH_TYPES))
    return causes


def _validate_nfs(path: str, source: Obj) -> list[Cause]:
    causes = [] if source.get("server") else [required(f"{path}.server")]
    export = _str(source.get("path"))
    if not export:
        causes.append(required(f"{path}.path"))
    if not export.startswith("/"):
        causes.append(invalid(f"{path}.path", export, "must be an absolute path"))
    return causes


def _validate_local(path: str, source: Obj) -> list[Cause]:
    local_path = _str(source.get("path"))
    if not local_path:
        return [required(f"{path}.path")]
    return _path_no_backsteps(f"{path}.path", local_path)


def validate_csi_driver_name(path: str, driver: str) -> list[Cause]:
    causes = [] if driver else [required(path)]
    if len(driver) > 63:
        causes.append(too_long(path, 63))
    return causes + _name_causes(path, driver, names.is_dns1123_subdomain(driver.lower()))


def _validate_csi_pv(path: str, source: Obj) -> list[Cause]:
    causes = validate_csi_driver_name(f"{path}.driver", _str(source.get("driver")))
    if not source.get("volumeHandle"):
        causes.append(required(f"{path}.volumeHandle"))
    for ref in ("controllerPublishSecretRef", "nodeStageSecretRef", "nodePublishSecretRef",
                "controllerExpandSecretRef", "nodeExpandSecretRef"):
        secret = source.get(ref)
        if isinstance(secret, Mapping):
            for key in ("name", "namespace"):
                if not secret.get(key):
                    causes.append(required(f"{path}.{ref}.{key}"))
    return causes


_PV_SOURCE_VALIDATORS: dict[str, Callable[[str, Obj], list[Cause]]] = {
    "hostPath": _validate_host_path, "nfs": _validate_nfs, "local": _validate_local,
    "csi": _validate_csi_pv,
}
_PV_SOURCES = ("hostPath", "gcePersistentDisk", "awsElasticBlockStore", "glusterfs", "flocker",
               "nfs", "rbd", "quobyte", "cephfs", "iscsi", "cinder", "fc", "flexVolume",
               "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume",
               "azureDisk", "scaleIO", "local", "storageos", "csi")


def _validate_pv_sources(spec: Obj, affinity_given: bool) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for key in _PV_SOURCES:
        source = spec.get(key)
        if source is None:
            continue
        if count:
            causes.append(forbidden(f"spec.{key}", "may not specify more than 1 volume type"))
            continue
        count += 1
        check = _PV_SOURCE_VALIDATORS.get(key)
        if check is not None:
            causes += check(f"spec.{key}", source if isinstance(source, Mapping) else {})
        if key == "local" and not affinity_given:
            causes.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    if not count:
        causes.append(required("spec", "must specify a volume type"))
    return causes


def validate_node_selector_requirement(path: str, req: Obj) -> list[Cause]:
    op, values = req.get("operator"), _list(req, "values")
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if not values:
            causes.append(required(f"{path}.values",
                                   "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            causes.append(forbidden(f"{path}.values", "may not be specified when `operator` is "
                                    "'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            causes.append(required(f"{path}.values", "must be specified single value when "
                                   "`operator` is 'Lt' or 'Gt'"))
    else:
        causes.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    key = _str(req.get("key"))
    causes += _name_causes(f"{path}.key", key, names.is_qualified_name(key))
    for i, value in enumerate(values):
        causes += _name_causes(f"{path}.values[{i}]", _str(value),
                               names.is_valid_label_value(_str(value)))
    return causes


def _validate_node_field_requirement(path: str, req: Obj) -> list[Cause]:
    op, values = req.get("operator"), _list(req, "values")
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if len(values) != 1:
            causes.append(required(f"{path}.values", "must be only one value when `operator` "
                                   "is 'In' or 'NotIn' for node field selector"))
    else:
        causes.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    if req.get("key") != "metadata.name":
        causes.append(invalid(f"{path}.key", _str(req.get("key")),
                              "not a valid field selector key"))
    else:
        for i, value in enumerate(values):
            causes += _name_causes(f"{path}.values[{i}]", _str(value),
                                   names.is_dns1123_subdomain(_str(value)))
    return causes


def validate_node_selector(path: str, selector: Obj) -> list[Cause]:
    terms = _list(selector, "nodeSelectorTerms")
    if not terms:
        return [required(f"{path}.nodeSelectorTerms",
                         "must have at least one node selector term")]
    causes: list[Cause] = []
    for i, term in enumerate(terms):
        term_path = f"{path}.nodeSelectorTerms[{i}]"
        for j, req in enumerate(_list(term, "matchExpressions")):
            causes += validate_node_selector_requirement(f"{term_path}.matchExpressions[{j}]",
                                                         _map({"r": req}, "r"))
        for j, req in enumerate(_list(term, "matchFields")):
            causes += _validate_node_field_requirement(f"{term_path}.matchFields[{j}]",
                                                       _map({"r": req}, "r"))
    return causes


def _validate_pv_spec(spec: Obj) -> list[Cause]:
    causes = _validate_access_modes("spec.accessModes", spec.get("accessModes"), "")
    causes += _validate_capacity(spec.get("capacity"))
    class_name = _str(spec.get("storageClassName"))
    if class_name:
        causes += _name_causes("spec.storageClassName", class_name,
                               names.is_dns1123_subdomain(class_name))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in PV_RECLAIM_POLICIES:
        causes.append(not_supported("spec.persistentVolumeReclaimPolicy", policy,
                                    PV_RECLAIM_POLICIES))
    affinity = spec.get("nodeAffinity")
    if affinity is not None:
        required_terms = _get(affinity, "required")
        if isinstance(required_terms, Mapping):
            causes += validate_node_selector("spec.nodeAffinity.required", required_terms)
        else:
            causes.append(required("spec.nodeAffinity.required",
                                   "must specify required node constraints"))
    causes += _validate_pv_sources(spec, affinity is not None)
    host_path = _str(_get(spec, "hostPath", "path"))
    if host_path and posixpath.normpath(host_path) == "/" and policy == "Recycle":
        causes.append(forbidden("spec.persistentVolumeReclaimPolicy",
                                "may not be 'recycle' for a hostPath mount of '/'"))
    return causes + _validate_claim_ref(spec.get("claimRef"))


def _validate_claim_ref(ref: Any) -> list[Cause]:
    """claimRef names a claim; its name and namespace must be real names when given."""
    if not isinstance(ref, Mapping):
        return []
    causes: list[Cause] = []
    for key, check in (("name", names.is_dns1123_subdomain), ("namespace", names.is_dns1123_label)):
        value = _str(ref.get(key))
        if value:
            causes += _name_causes(f"spec.claimRef.{key}", value, check(value))
    return causes


def validate_persistent_volume(pv: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(pv, "metadata"), False, names.name_is_dns_subdomain)
    return causes + _validate_pv_spec(_map(pv, "spec"))


def _pv_source(spec: Obj) -> dict[str, Any]:
    return {k: spec[k] for k in _PV_SOURCES if spec.get(k) is not None}


def validate_persistent_volume_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    causes += validate_persistent_volume(new)
    new_spec, old_spec = _map(new, "spec"), _map(old, "spec")
    new_source, old_source = _pv_source(new_spec), _pv_source(old_spec)
    new_csi, old_csi = new_source.get("csi"), old_source.get("csi")
    if isinstance(new_csi, Mapping) and isinstance(old_csi, Mapping) and \
            old_csi.get("controllerExpandSecretRef") is None:
        # a CSI volume may gain an expansion secret after creation
        new_source["csi"] = {k: v for k, v in new_csi.items()
                             if k != "controllerExpandSecretRef"}
    if new_source != old_source:
        causes.append(forbidden("spec.persistentvolumesource",
                                f"{PV_SOURCE_FORBIDDEN}\n{_diff(old_source, new_source)}"))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
        # Kubernetes names this path without its "spec." prefix
        causes.append(immutable("volumeMode", new_spec.get("volumeMode")))
    if old_spec.get("nodeAffinity") is not None and \
            new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
        causes.append(immutable("nodeAffinity", new_spec.get("nodeAffinity")))
    return causes


# --- PersistentVolumeClaim ---------------------------------------------------------------------

def _validate_data_source(path: str, source: Obj, is_ref: bool) -> list[Cause]:
    causes = [] if source.get("name") else [required(f"{path}.name")]
    kind = _str(source.get("kind"))
    if not kind:
        causes.append(required(f"{path}.kind"))
    group = _str(source.get("apiGroup"))
    if not group and kind != "PersistentVolumeClaim":
        causes.append(invalid(path, kind, "must be 'PersistentVolumeClaim' when referencing "
                              "the default apiGroup"))
    if group:
        causes += _name_causes(f"{path}.apiGroup", group, names.is_dns1123_subdomain(group))
    namespace = _str(source.get("namespace")) if is_ref else ""
    if namespace:
        causes += _name_causes(f"{path}.namespace", namespace, names.is_dns1123_label(namespace))
    return causes


def _validate_data_sources(spec: Obj) -> list[Cause]:
    source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
    causes: list[Cause] = []
    if isinstance(source, Mapping):
        causes += _validate_data_source("spec.dataSource", source, False)
    if isinstance(ref, Mapping):
        causes += _validate_data_source("spec.dataSourceRef", ref, True)
        if _str(ref.get("namespace")):
            if source is not None:
                causes.append(invalid("spec", "spec.dataSource",
                                      "may not be specified when dataSourceRef.namespace is "
                                      "specified"))
        elif isinstance(source, Mapping) and _same_source(source) != _same_source(ref):
            causes.append(invalid("spec", "spec.dataSource", "must match dataSourceRef"))
    return causes


def _same_source(ref: Obj) -> tuple[str, str, str]:
    return _str(ref.get("apiGroup")), _str(ref.get("kind")), _str(ref.get("name"))


def validate_claim_spec(spec: Obj, path: str = "spec") -> list[Cause]:
    """ValidatePersistentVolumeClaimSpec (also used for ephemeral volume templates)."""
    causes = _validate_access_modes(f"{path}.accessModes", spec.get("accessModes"),
                                    "at least 1 access mode is required")
    if spec.get("selector") is not None:
        causes += labels.validate_label_selector(_map(spec, "selector"), f"{path}.selector")
    storage = _map(spec, "resources", "requests").get("storage")
    if storage is None:
        causes.append(required(f"{path}.resources[storage]"))
    else:
        causes += _positive_quantity(f"{path}.resources[storage]", storage)
    class_name = _str(spec.get("storageClassName"))
    if class_name:
        causes += _name_causes(f"{path}.storageClassName", class_name,
                               names.is_dns1123_subdomain(class_name))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    if path == "spec":
        causes += _validate_data_sources(spec)
    vac = _str(spec.get("volumeAttributesClassName"))
    if vac:
        causes += _name_causes(f"{path}.volumeAttributesClassName", vac,
                               names.is_dns1123_subdomain(vac))
    return causes


def validate_persistent_volume_claim(pvc: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(pvc, "metadata"), True, names.name_is_dns_subdomain)
    return causes + validate_claim_spec(_map(pvc, "spec"))


def _class_from_annotation(new: Obj, old: Obj) -> bool:
    """spec.storageClassName may replace the beta annotation that named the same class."""
    old_annotations = _map(old, "metadata", "annotations")
    new_annotations = _map(new, "metadata", "annotations")
    if BETA_STORAGE_CLASS_ANNOTATION not in old_annotations:
        return False
    old_class = old_annotations[BETA_STORAGE_CLASS_ANNOTATION]
    return (_get(old, "spec", "storageClassName") is None and
            _get(new, "spec", "storageClassName") == old_class and
            new_annotations.get(BETA_STORAGE_CLASS_ANNOTATION, old_class) == old_class)


def _class_from_nil(new: Obj, old: Obj) -> bool:
    """A claim without a class may be given one later (retroactive default StorageClass)."""
    return (BETA_STORAGE_CLASS_ANNOTATION not in _map(old, "metadata", "annotations") and
            _get(old, "spec", "storageClassName") is None and
            _get(new, "spec", "storageClassName") is not None)


def validate_persistent_volume_claim_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    causes += validate_persistent_volume_claim(new)
    new_spec = copy.deepcopy(dict(_map(new, "spec")))
    old_spec = copy.deepcopy(dict(_map(old, "spec")))
    if not old_spec.get("volumeName"):
        old_spec["volumeName"] = new_spec.get("volumeName")  # binding sets it once
        if old_spec["volumeName"] is None:
            old_spec.pop("volumeName")
            new_spec.pop("volumeName", None)
    if _class_from_annotation(new, old):
        new_spec.pop("storageClassName", None)
    else:
        causes += _immutable_annotation(new, old, BETA_STORAGE_CLASS_ANNOTATION)
        if _class_from_nil(new, old):
            new_spec.pop("storageClassName", None)
    # the registry keeps the stored status on a spec update, so fall back to the old one
    bound = (_get(new, "status", "phase") or _get(old, "status", "phase")) == "Bound"
    if bound:
        _carry_storage_request(new_spec, old_spec)
        if "volumeAttributesClassName" in old_spec or "volumeAttributesClassName" in new_spec:
            new_spec["volumeAttributesClassName"] = old_spec.get("volumeAttributesClassName")
            old_spec.setdefault("volumeAttributesClassName", None)
    if new_spec != old_spec:
        causes.append(forbidden("spec", f"{PVC_UPDATE_FORBIDDEN}\n{_diff(old_spec, new_spec)}"))
    causes += _validate_shrink(new, old)
    if _get(new, "spec", "volumeMode") != _get(old, "spec", "volumeMode"):
        causes.append(immutable("volumeMode", _get(new, "spec", "volumeMode")))
    return causes


def _carry_storage_request(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    requests = _get(new_spec, "resources", "requests")
    if isinstance(requests, dict):
        old_storage = _get(old_spec, "resources", "requests", "storage")
        if old_storage is None:
            requests.pop("storage", None)
        else:
            requests["storage"] = old_storage


def _immutable_annotation(new: Obj, old: Obj, key: str) -> list[Cause]:
    # a missing annotation reads as "", so adding one later is a change too
    old_value = _str(_map(old, "metadata", "annotations").get(key))
    new_value = _str(_map(new, "metadata", "annotations").get(key))
    if new_value != old_value:
        return [invalid(f"metadata.annotations.{key}", new_value, names.FIELD_IMMUTABLE)]
    return []


def _validate_shrink(new: Obj, old: Obj) -> list[Cause]:
    """Requests may shrink only to recover a failed expansion, never to status.capacity."""
    new_size = _quantity(_map(new, "spec", "resources", "requests").get("storage", "0")) or 0
    old_size = _quantity(_map(old, "spec", "resources", "requests").get("storage", "0")) or 0
    status_size = _quantity(_map(old, "status", "capacity").get("storage", "0")) or 0
    if new_size < old_size and new_size <= status_size:
        return [forbidden("spec.resources.requests.storage",
                          "field can not be less than status.capacity")]
    return []


# --- StorageClass, CSIDriver ------------------------------------------------------------------

def _validate_parameters(params: Any) -> list[Cause]:
    params = params if isinstance(params, Mapping) else {}
    if len(params) > 512:
        return [too_long("parameters", 512)]
    causes = [invalid("parameters", key, "field can not be empty.") for key in params if not key]
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in params.items())
    if size > 256 * 1024:
        causes.append(too_long("parameters", 256 * 1024))
    return causes


def _validate_allowed_topologies(terms: Any) -> list[Cause]:
    causes: list[Cause] = []
    seen: list[dict[str, frozenset[str]]] = []
    for i, term in enumerate(terms if isinstance(terms, list) else []):
        expressions: dict[str, frozenset[str]] = {}
        for j, expr in enumerate(_list(term, "matchLabelExpressions")):
            path = f"allowedTopologies[{i}].matchLabelExpressions[{j}]"
            values = [_str(v) for v in _list(expr, "values")]
            if not values:
                causes.append(required(f"{path}.values", "must specify as least one value"))
            for k, value in enumerate(values):
                if value in values[:k]:
                    causes.append(duplicate(f"{path}.values[{k}]", value))
            key = _str(_get(expr, "key"))
            causes += _name_causes(f"{path}.key", key, names.is_qualified_name(key))
            if key in expressions:
                causes.append(duplicate(f"{path}.key", key))
            expressions[key] = frozenset(values)
        if expressions in seen:
            causes.append(duplicate(f"allowedTopologies[{i}].matchLabelExpressions", ""))
        seen.append(expressions)
    return causes


def validate_storage_class(sc: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(sc, "metadata"), False, names.name_is_dns_subdomain)
    provisioner = _str(sc.get("provisioner"))
    if not provisioner:
        causes.append(required("provisioner"))
    else:
        lowered = provisioner.lower()
        causes += _name_causes("provisioner", lowered, names.is_qualified_name(lowered))
    causes += _validate_parameters(sc.get("parameters"))
    policy = sc.get("reclaimPolicy")
    if policy and policy not in SC_RECLAIM_POLICIES:
        causes.append(not_supported("reclaimPolicy", policy, SC_RECLAIM_POLICIES))
    mode = sc.get("volumeBindingMode")
    if mode is None:
        causes.append(required("volumeBindingMode"))
    elif mode not in BINDING_MODES:
        causes.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
    return causes + _validate_allowed_topologies(sc.get("allowedTopologies"))


def validate_storage_class_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    if (new.get("parameters") or {}) != (old.get("parameters") or {}):
        causes.append(forbidden("parameters", "updates to parameters are forbidden."))
    if new.get("provisioner") != old.get("provisioner"):
        causes.append(forbidden("provisioner", "updates to provisioner are forbidden."))
    if new.get("reclaimPolicy") != old.get("reclaimPolicy"):
        causes.append(forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        causes.append(immutable("volumeBindingMode", new.get("volumeBindingMode")))
    return causes + validate_storage_class(new)


FS_GROUP_POLICIES = ("File", "None", "ReadWriteOnceWithFSType")
LIFECYCLE_MODES = ("Persistent", "Ephemeral")  # Kubernetes lists them in this order
MIN_TOKEN_SECONDS = 10 * 60
MAX_TOKEN_SECONDS = 1 << 32


def _validate_token_requests(requests: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    audiences: set[str] = set()
    for i, request in enumerate(requests):
        path, audience = f"spec.tokenRequests[{i}]", _str(_get(request, "audience"))
        if audience in audiences:
            causes.append(duplicate(f"{path}.audience", audience))
            continue
        audiences.add(audience)
        seconds = _get(request, "expirationSeconds")
        if not isinstance(seconds, int):
            continue
        if seconds < MIN_TOKEN_SECONDS:
            causes.append(invalid(f"{path}.expirationSeconds", seconds,
                                  "may not specify a duration less than 10 minutes"))
        if seconds > MAX_TOKEN_SECONDS:
            causes.append(invalid(f"{path}.expirationSeconds", seconds,
                                  "may not specify a duration larger than 2^32 seconds"))
    return causes


def _validate_csi_driver_spec(spec: Obj) -> list[Cause]:
    # The misspelt path "attachedRequired" is what Kubernetes reports.
    causes = [required(f"spec.{path}") for key, path in (
        ("attachRequired", "attachedRequired"), ("podInfoOnMount", "podInfoOnMount"),
        ("storageCapacity", "storageCapacity"), ("seLinuxMount", "seLinuxMount"))
        if spec.get(key) is None]
    policy = spec.get("fsGroupPolicy")
    if policy is not None and policy not in FS_GROUP_POLICIES:
        causes.append(not_supported("spec.fsGroupPolicy", policy, FS_GROUP_POLICIES))
    causes += _validate_token_requests(_list(spec, "tokenRequests"))
    return causes + [not_supported("spec.volumeLifecycleModes", mode, LIFECYCLE_MODES)
                     for mode in _list(spec, "volumeLifecycleModes")
                     if mode not in LIFECYCLE_MODES]


def validate_csi_driver(driver: Obj) -> list[Cause]:
    """ValidateCSIDriver: the name is a DNS subdomain; spec as validateCSIDriverSpec."""
    causes = names.validate_object_meta(_map(driver, "metadata"), False,
                                        names.name_is_dns_subdomain)
    return causes + _validate_csi_driver_spec(_map(driver, "spec"))


def validate_csi_driver_update(new: Obj, old: Obj) -> list[Cause]:
    """Only attachRequired and volumeLifecycleModes are immutable since Kubernetes 1.28."""
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    causes += _validate_csi_driver_spec(_map(new, "spec"))
    for key, path in (("attachRequired", "attachedRequired"),
                      ("volumeLifecycleModes", "volumeLifecycleModes")):
        if _get(new, "spec", key) != _get(old, "spec", key):
            causes.append(immutable(f"spec.{path}", _get(new, "spec", key)))
    return causes


# --- CSIStorageCapacity ------------------------------------------------------------------------

def validate_csi_storage_capacity(capacity: Obj) -> list[Cause]:
    """ValidateCSIStorageCapacity: maximumVolumeSize is not checked, as in Kubernetes."""
    causes = names.validate_object_meta(_map(capacity, "metadata"), True,
                                        names.name_is_dns_subdomain)
    topology = capacity.get("nodeTopology")
    causes += labels.validate_label_selector(
        topology if isinstance(topology, Mapping) else None, "nodeTopology")
    class_name = _str(capacity.get("storageClassName"))
    causes += _name_causes("storageClassName", class_name,
                           names.name_is_dns_subdomain(class_name, False))
    if capacity.get("capacity") is not None:
        causes += _nonnegative_quantity("capacity", capacity["capacity"])
    return causes


def validate_csi_storage_capacity_update(new: Obj, old: Obj) -> list[Cause]:
    """The strategy validates the new object whole, then that the inputs of the GetCapacity
    call (topology and class) did not change."""
    causes = validate_csi_storage_capacity(new)
    causes += names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    if new.get("nodeTopology") != old.get("nodeTopology"):
        causes.append(immutable("nodeTopology", new.get("nodeTopology")))
    if new.get("storageClassName") != old.get("storageClassName"):
        causes.append(immutable("storageClassName", _str(new.get("storageClassName"))))
    return causes


# --- VolumeAttachment --------------------------------------------------------------------------

MAX_ATTACHMENT_METADATA_SIZE = 256 * (1 << 10)
MAX_VOLUME_ERROR_MESSAGE_SIZE = 1024
EXACTLY_ONE_SOURCE = "must specify exactly one of inlineVolumeSpec and persistentVolumeName"


def _validate_attachment_source(source: Obj) -> list[Cause]:
    """validateVolumeAttachmentSource: exactly one of the two members."""
    pv_name, inline = source.get("persistentVolumeName"), source.get("inlineVolumeSpec")
    if pv_name is None and inline is None:
        return [required("spec.source", EXACTLY_ONE_SOURCE)]
    if pv_name is not None and inline is not None:
        return [forbidden("spec.source", EXACTLY_ONE_SOURCE)]
    if pv_name is not None:
        return [] if _str(pv_name) else [required("spec.source.persistentVolumeName",
                                                  "must specify non empty persistentVolumeName")]
    causes = _validate_pv_spec(_map(source, "inlineVolumeSpec"))
    return [Cause(c.field.replace("spec.", "spec.source.inlineVolumeSpec.", 1), c.message,
                  c.reason) for c in causes]


def _validate_volume_error(path: str, error: Any) -> list[Cause]:
    if not isinstance(error, Mapping):
        return []
    causes: list[Cause] = []
    if len(_str(error.get("message"))) > MAX_VOLUME_ERROR_MESSAGE_SIZE:
        # Kubernetes reports the metadata limit here, not the message one: kept as it is.
        causes.append(too_long(f"{path}.message", MAX_ATTACHMENT_METADATA_SIZE))
    code = error.get("errorCode")
    if isinstance(code, int) and code < 0:
        causes.append(invalid(f"{path}.errorCode", code,
                              names.inclusive_range_error(0, MAX_INT32)))
    return causes


def _validate_attachment_status(status: Obj) -> list[Cause]:
    metadata = _map(status, "attachmentMetadata")
    size = sum(len(_str(k)) + len(_str(v)) for k, v in metadata.items())
    causes = [too_long("status.attachmentMetadata", MAX_ATTACHMENT_METADATA_SIZE)] \
        if size > MAX_ATTACHMENT_METADATA_SIZE else []
    for key in ("attachError", "detachError"):
        causes += _validate_volume_error(f"status.{key}", status.get(key))
    return causes


def _validate_volume_attachment_common(va: Obj) -> list[Cause]:
    """ValidateVolumeAttachment: what create and every update check."""
    causes = names.validate_object_meta(_map(va, "metadata"), False, names.name_is_dns_subdomain)
    spec = _map(va, "spec")
    if not _str(spec.get("attacher")):
        causes.append(required("spec.attacher"))
    causes += _validate_attachment_source(_map(spec, "source"))
    node = _str(spec.get("nodeName"))
    causes += _name_causes("spec.nodeName", node, names.name_is_dns_subdomain(node, False))
    return causes + _validate_attachment_status(_map(va, "status"))


def validate_volume_attachment(va: Obj) -> list[Cause]:
    """On create, ValidateVolumeAttachment plus the v1 checks (ValidateVolumeAttachmentV1):
    the attacher is a CSI driver name, the PV name a PV name."""
    causes = _validate_volume_attachment_common(va)
    causes += validate_csi_driver_name("spec.attacher", _str(_get(va, "spec", "attacher")))
    pv_name = _get(va, "spec", "source", "persistentVolumeName")
    if isinstance(pv_name, str):
        causes += _name_causes("spec.source.persistentVolumeName", pv_name,
                               names.name_is_dns_subdomain(pv_name, False))
    return causes


def validate_volume_attachment_update(new: Obj, old: Obj) -> list[Cause]:
    """ValidateVolumeAttachmentUpdate: the spec is read-only once created."""
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    causes += _validate_volume_attachment_common(new)
    if _map(new, "spec") != _map(old, "spec"):
        causes.append(immutable("spec", dict(_map(new, "spec"))))
    return causes


# --- ConfigMap and Secret ----------------------------------------------------------------------

def _validate_keys(path: str, data: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for key in data:
        causes += _name_causes(f"{path}[{key}]", key, names.is_config_map_key(key))
    return causes


def _decoded_size(values: Mapping[str, Any]) -> int:
    total = 0
    for value in values.values():
        try:
            total += len(decode_base64(_str(value)))
        except ValueError:
            total += len(_str(value))  # check_decodable reports it
    return total


def validate_config_map(cm: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(cm, "metadata"), True, names.name_is_dns_subdomain)
    data, binary = _map(cm, "data"), _map(cm, "binaryData")
    causes += _validate_keys("data", data)
    causes += [invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
               for key in data if key in binary]
    causes += _validate_keys("binaryData", binary)
    size = sum(len(_str(v).encode()) for v in data.values()) + _decoded_size(binary)
    if size > MAX_SECRET_SIZE:
        # Kubernetes reports the whole object, whose field path prints as "[]"
        causes.append(too_long("[]", MAX_SECRET_SIZE))
    return causes


def _immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> list[Cause]:
    if old.get("immutable") is not True:
        return []
    causes = [] if new.get("immutable") is True else [forbidden("immutable", IMMUTABLE_WHEN_SET)]
    for key in keys:
        if (new.get(key) or {}) != (old.get(key) or {}):
            causes.append(forbidden(key, IMMUTABLE_WHEN_SET))
    return causes


def validate_config_map_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    causes += _immutable_data(new, old, ("data", "binaryData"))
    return causes + validate_config_map(new)


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _validate_secret_type(secret: Obj, data: Mapping[str, Any]) -> list[Cause]:
    kind = _str(secret.get("type"))
    if kind == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        if not _map(secret, "metadata", "annotations").get(key):
            return [required(f"metadata.annotations[{key}]")]
        return []
    if kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
        return []
    causes = [required(f"data[{key}]") for key in _SECRET_REQUIRED_KEYS.get(kind, ())
              if key not in data or (kind == "kubernetes.io/ssh-auth" and not data[key])]
    if not causes and kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        causes += _validate_docker_config(data, _SECRET_REQUIRED_KEYS[kind][0])
    return causes


def _validate_docker_config(data: Mapping[str, Any], key: str) -> list[Cause]:
    try:
        parsed = json.loads(decode_base64(_str(data[key])))
    except ValueError as err:
        return [invalid(f"data[{key}]", "<secret contents redacted>", str(err))]
    if not isinstance(parsed, dict):
        return [invalid(f"data[{key}]", "<secret contents redacted>",
                        "json: cannot unmarshal into Go value of type map[string]interface {}")]
    return []


def validate_secret(secret: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(secret, "metadata"), True,
                                        names.name_is_dns_subdomain)
    data = _map(secret, "data")
    causes += _validate_keys("data", data)
    if _decoded_size(data) > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    return causes + _validate_secret_type(secret, data)


def validate_secret_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    if (new.get("type") or "") != (old.get("type") or ""):
        causes.append(immutable("type", new.get("type") or ""))
    causes += _immutable_data(new, old, ("data",))
    return causes + validate_secret(new)


# --- Pod ---------------------------------------------------------------------------------------

def _validate_secret_source(path: str, source: Obj) -> list[Cause]:
    causes = [] if source.get("secretName") else [required(f"{path}.secretName")]
    return causes + _file_mode(f"{path}.defaultMode", source.get("defaultMode")) + \
        _validate_items(f"{path}.items", _list(source, "items"))


def _validate_config_map_source(path: str, source: Obj) -> list[Cause]:
    causes = [] if source.get("name") else [required(f"{path}.name")]
    return causes + _file_mode(f"{path}.defaultMode", source.get("defaultMode")) + \
        _validate_items(f"{path}.items", _list(source, "items"))


def _validate_items(path: str, items: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(items):
        item_path, target = f"{path}[{i}]", _str(_get(item, "path"))
        if not _get(item, "key"):
            causes.append(required(f"{item_path}.key"))
        if not target:
            causes.append(required(f"{item_path}.path"))
        causes += _local_non_reserved_path(f"{item_path}.path", target)
        causes += _file_mode(f"{item_path}.mode", _get(item, "mode"))
    return causes


def _validate_claim_source(path: str, source: Obj) -> list[Cause]:
    return [] if source.get("claimName") else [required(f"{path}.claimName")]


def _validate_empty_dir(path: str, source: Obj) -> list[Cause]:
    limit = source.get("sizeLimit")
    value = _quantity(limit) if limit is not None else None
    if value is not None and value < 0:
        return [forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")]
    return []


def _validate_csi_inline(path: str, source: Obj) -> list[Cause]:
    return validate_csi_driver_name(f"{path}.driver", _str(source.get("driver")))


def _validate_downward_api(path: str, source: Obj) -> list[Cause]:
    causes = _file_mode(f"{path}.defaultMode", source.get("defaultMode"))
    for i, item in enumerate(_list(source, "items")):
        target = _str(_get(item, "path"))
        if not target:
            causes.append(required(f"{path}.items[{i}].path"))
        causes += _local_non_reserved_path(f"{path}.items[{i}].path", target)
    return causes


_VOLUME_SOURCE_ORDER = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs",
    "quobyte", "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
    "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO",
    "csi", "ephemeral", "image")
_VOLUME_SOURCE_VALIDATORS: dict[str, Callable[[str, Obj], list[Cause]]] = {
    "emptyDir": _validate_empty_dir, "hostPath": _validate_host_path,
    "secret": _validate_secret_source, "nfs": _validate_nfs,
    "persistentVolumeClaim": _validate_claim_source, "downwardAPI": _validate_downward_api,
    "configMap": _validate_config_map_source, "csi": _validate_csi_inline,
}


def _validate_volume_source(path: str, volume: Obj) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for key in _VOLUME_SOURCE_ORDER:
        source = volume.get(key)
        if source is None:
            continue
        if count:
            causes.append(forbidden(f"{path}.{key}", "may not specify more than 1 volume type"))
            continue
        count += 1
        check = _VOLUME_SOURCE_VALIDATORS.get(key)
        if check is not None:
            causes += check(f"{path}.{key}", source if isinstance(source, Mapping) else {})
        if key == "ephemeral":
            causes += _validate_ephemeral(f"{path}.ephemeral", source)
    if not count:
        causes.append(required(path, "must specify a volume type"))
    return causes


def _validate_ephemeral(path: str, source: Any) -> list[Cause]:
    template = _get(source, "volumeClaimTemplate")
    if not isinstance(template, Mapping):
        return [required(f"{path}.volumeClaimTemplate")]
    return validate_claim_spec(_map(template, "spec"), f"{path}.volumeClaimTemplate.spec")


def _validate_volumes(volumes: list[Any]) -> tuple[set[str], list[Cause]]:
    valid: set[str] = set()
    causes: list[Cause] = []
    for i, volume in enumerate(volumes):
        volume = volume if isinstance(volume, Mapping) else {}
        path, name = f"spec.volumes[{i}]", _str(volume.get("name"))
        errors = _validate_volume_source(path, volume)
        if not name:
            errors.append(required(f"{path}.name"))
        else:
            errors += _name_causes(f"{path}.name", name, names.is_dns1123_label(name))
        if name in valid:
            errors.append(duplicate(f"{path}.name", name))
        if errors:
            causes += errors
        else:
            valid.add(name)
    return valid, causes


def _validate_ports(path: str, ports: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        port = port if isinstance(port, Mapping) else {}
        port_path, name = f"{path}[{i}]", _str(port.get("name"))
        if name:
            errors = names.is_valid_port_name(name)
            causes += _name_causes(f"{port_path}.name", name, errors)
            if not errors and name in seen:
                causes.append(duplicate(f"{port_path}.name", name))
            seen.add(name)
        number = port.get("containerPort")
        if not number:
            causes.append(required(f"{port_path}.containerPort"))
        elif isinstance(number, int):
            causes += [invalid(f"{port_path}.containerPort", number, m)
                       for m in names.is_valid_port_num(number)]
        host = port.get("hostPort")
        if isinstance(host, int) and host:
            causes += [invalid(f"{port_path}.hostPort", host, m)
                       for m in names.is_valid_port_num(host)]
        causes += _enum(f"{port_path}.protocol", port.get("protocol"), PROTOCOLS)
    return causes


def _validate_mounts(path: str, mounts: list[Any], volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    mount_points: set[str] = set()
    for i, mount in enumerate(mounts):
        mount = mount if isinstance(mount, Mapping) else {}
        mount_path, name = f"{path}[{i}]", _str(mount.get("name"))
        target = _str(mount.get("mountPath"))
        if not name:
            causes.append(required(f"{mount_path}.name"))
        if name not in volumes:
            causes.append(not_found(f"{mount_path}.name", name))
        if not target:
            causes.append(required(f"{mount_path}.mountPath"))
        if target in mount_points:
            causes.append(invalid(f"{mount_path}.mountPath", target, "must be unique"))
        mount_points.add(target)
        causes += _validate_sub_paths(path, mount_path, mount)
    return causes


def _validate_sub_paths(path: str, mount_path: str, mount: Obj) -> list[Cause]:
    # Kubernetes reports subPath errors on the list path, without the index
    sub_path, expr = _str(mount.get("subPath")), _str(mount.get("subPathExpr"))
    causes = _local_descending_path(f"{path}.subPath", sub_path) if sub_path else []
    if expr:
        if sub_path:
            causes.append(invalid(f"{mount_path}.subPathExpr", expr,
                                  "subPathExpr and subPath are mutually exclusive"))
        causes += _local_descending_path(f"{path}.subPathExpr", expr)
    return causes


def _validate_container_resources(path: str, resources: Obj) -> list[Cause]:
    causes: list[Cause] = []
    requests, limits = _map(resources, "requests"), _map(resources, "limits")
    for kind, values in (("limits", limits), ("requests", requests)):
        for name, raw in values.items():
            causes += _nonnegative_quantity(f"{path}.{kind}[{name}]", raw)
    for name, raw in requests.items():
        limit = _quantity(limits[name]) if name in limits else None
        request = _quantity(raw)
        if limit is not None and request is not None and request > limit:
            causes.append(invalid(f"{path}.requests[{name}]", str(raw),
                                  f"must be less than or equal to {name} limit of "
                                  f"{limits[name]}"))
    return causes


def _validate_container(path: str, container: Obj, volumes: set[str]) -> list[Cause]:
    name = _str(container.get("name"))
    causes = [required(f"{path}.name")] if not name else \
        _name_causes(f"{path}.name", name, names.is_dns1123_label(name))
    if not container.get("image"):
        causes.append(required(f"{path}.image"))
    causes += _enum(f"{path}.terminationMessagePolicy", container.get("terminationMessagePolicy"),
                    TERMINATION_MESSAGE_POLICIES)
    causes += _validate_ports(f"{path}.ports", _list(container, "ports"))
    causes += _validate_env(f"{path}.env", _list(container, "env"))
    causes += _validate_mounts(f"{path}.volumeMounts", _list(container, "volumeMounts"), volumes)
    causes += _enum(f"{path}.imagePullPolicy", container.get("imagePullPolicy"), PULL_POLICIES)
    return causes + _validate_container_resources(f"{path}.resources",
                                                  _map(container, "resources"))


def _validate_env(path: str, env: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env):
        name = _str(_get(var, "name"))
        if not name:
            causes.append(required(f"{path}[{i}].name"))
        elif any(ord(c) < 32 or ord(c) > 126 or c == "=" for c in name):
            causes.append(invalid(f"{path}[{i}].name", name, "a valid environment variable name "
                                  "must consist only of printable ASCII characters other than "
                                  "'='"))
    return causes


def _validate_containers(key: str, containers: list[Any], volumes: set[str],
                         others: set[str], grace: int | None = None) -> list[Cause]:
    if not containers and key == "containers":
        return [required("spec.containers")]
    causes: list[Cause] = []
    seen: set[str] = set()
    init = key == "initContainers"
    for i, container in enumerate(containers):
        container = container if isinstance(container, Mapping) else {}
        path, name = f"spec.{key}[{i}]", _str(container.get("name"))
        causes += _validate_container(path, container, volumes)
        if init:
            causes += validation_probes.validate_init_restart_policy(path, container)
        if name in seen or name in others:
            causes.append(duplicate(f"{path}.name", name))
        seen.add(name)
        # lifecycle hooks, probes (and restartPolicy) depend on the kind of container, as in
        # Kubernetes; a sleep hook is measured against the pod's grace period
        causes += (validation_probes.validate_init_container if init else
                   validation_probes.validate_regular_container)(path, container, grace)
    return causes


def _validate_tolerations(path: str, tolerations: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    for i, tol in enumerate(tolerations):
        tol = tol if isinstance(tol, Mapping) else {}
        tol_path, key, op = f"{path}[{i}]", _str(tol.get("key")), tol.get("operator") or "Equal"
        if key:
            causes += _name_causes(f"{tol_path}.key", key, names.is_qualified_name(key))
        elif op != "Exists":
            causes.append(invalid(f"{tol_path}.operator", op,
                                  "operator must be Exists when `key` is empty, which means "
                                  "\"match all values and all keys\""))
        if op == "Exists" and tol.get("value"):
            causes.append(invalid(f"{tol_path}.operator", tol.get("value"),
                                  "value must be empty when `operator` is 'Exists'"))
        elif op not in ("Equal", "Exists"):
            causes.append(not_supported(f"{tol_path}.operator", op, ("Equal", "Exists")))
        effect = tol.get("effect")
        if effect and effect not in TAINT_EFFECTS:
            causes.append(not_supported(f"{tol_path}.effect", effect, TAINT_EFFECTS))
    return causes


def _validate_pod_spec_names(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for key, check in (("serviceAccountName", names.is_dns1123_subdomain),
                       ("nodeName", names.is_dns1123_subdomain),
                       ("hostname", names.is_dns1123_label),
                       ("subdomain", names.is_dns1123_label),
                       ("priorityClassName", names.is_dns1123_subdomain)):
        value = _str(spec.get(key))
        if value:
            causes += _name_causes(f"spec.{key}", value, check(value))
    return causes


def validate_pod_spec(spec: Obj) -> list[Cause]:
    volumes, causes = _validate_volumes(_list(spec, "volumes"))
    containers = _list(spec, "containers")
    container_names = {_str(_get(c, "name")) for c in containers}
    grace = validation_probes.pod_grace(spec)
    causes += _validate_containers("containers", containers, volumes, set(), grace)
    causes += _validate_containers("initContainers", _list(spec, "initContainers"), volumes,
                                   container_names, grace)
    causes += _enum("spec.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES)
    causes += _enum("spec.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    causes += names.validate_labels(_map(spec, "nodeSelector"), "spec.nodeSelector")
    causes += _validate_pod_spec_names(spec)
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= MAX_INT32:
        causes.append(invalid("spec.activeDeadlineSeconds", deadline,
                              names.inclusive_range_error(1, MAX_INT32)))
    causes += _validate_tolerations("spec.tolerations", _list(spec, "tolerations"))
    return causes + _validate_affinity(_map(spec, "affinity"))


def _validate_affinity(affinity: Obj) -> list[Cause]:
    required_terms = _get(affinity, "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required_terms, Mapping):
        return validate_node_selector(
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
            required_terms)
    return []


def validate_pod(pod: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(pod, "metadata"), True, names.name_is_dns_subdomain)
    return causes + validate_pod_spec(_map(pod, "spec"))


def _container_update_causes(key: str, new: list[Any], old: list[Any]) -> tuple[list[Cause], bool]:
    if len(new) != len(old):
        return [forbidden(f"spec.{key}", "pod updates may not add or remove containers")], True
    causes: list[Cause] = []
    for i, container in enumerate(new):
        image = _str(_get(container, "image"))
        if not image:
            causes.append(required(f"spec.{key}[{i}].image"))
        if image.strip() != image:
            causes.append(invalid(f"spec.{key}[{i}].image", image,
                                  "must not have leading or trailing whitespace"))
    return causes, False


def _deadline_update_causes(new: Any, old: Any) -> list[Cause]:
    path = "spec.activeDeadlineSeconds"
    if new is None:
        if old is not None:
            return [invalid(path, None, "must not update from a positive integer to nil value")]
        return []
    if not isinstance(new, int) or not 0 <= new <= MAX_INT32:
        return [invalid(path, new, names.inclusive_range_error(0, MAX_INT32))]
    if isinstance(old, int) and old < new:
        return [invalid(path, new, "must be less than or equal to previous value")]
    return []


def _toleration_update_causes(new: list[Any], old: list[Any]) -> list[Cause]:
    for existing in old:
        if not any(isinstance(t, Mapping) and isinstance(existing, Mapping) and
                   {**existing, "tolerationSeconds": t.get("tolerationSeconds")} ==
                   {**t, "tolerationSeconds": t.get("tolerationSeconds")} for t in new):
            return [forbidden("spec.tolerations",
                              "existing toleration can not be modified except its "
                              "tolerationSeconds")]
    return []


def _munged_pod_spec(new_spec: Obj, old_spec: Obj) -> dict[str, Any]:
    """The new spec with every field a pod update may change put back to its old value."""
    munged = copy.deepcopy(dict(new_spec))
    for key in ("containers", "initContainers"):
        for container, before in zip(munged.get(key) or [], old_spec.get(key) or []):
            if isinstance(container, dict) and isinstance(before, Mapping):
                container["image"] = before.get("image")
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = copy.deepcopy(old_spec[key])
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and \
            munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    return munged


def validate_pod_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    causes += validate_pod(new)
    new_spec, old_spec = _map(new, "spec"), _map(old, "spec")
    for key in ("containers", "initContainers"):
        found, stop = _container_update_causes(key, _list(new_spec, key), _list(old_spec, key))
        causes += found
        if stop:
            return causes
    deadline = _deadline_update_causes(new_spec.get("activeDeadlineSeconds"),
                                       old_spec.get("activeDeadlineSeconds"))
    if deadline:
        return causes + deadline
    causes += _toleration_update_causes(_list(new_spec, "tolerations"),
                                        _list(old_spec, "tolerations"))
    munged = _munged_pod_spec(new_spec, old_spec)
    if munged != dict(old_spec):
        causes.append(forbidden("spec", f"{POD_UPDATE_FORBIDDEN}\n{_diff(dict(old_spec), munged)}"))
    return causes


# --- Node, Namespace, Event, Lease --------------------------------------------------------------

def validate_node(node: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(node, "metadata"), False, names.name_is_dns_subdomain)
    for key in ("capacity", "allocatable"):
        for name, raw in _map(node, "status", key).items():
            causes += _nonnegative_quantity(f"status.{key}[{name}]", raw)
    for i, taint in enumerate(_list(node, "spec", "taints")):
        path, key = f"spec.taints[{i}]", _str(_get(taint, "key"))
        causes += _name_causes(f"{path}.key", key, names.is_qualified_name(key))
        value = _str(_get(taint, "value"))
        if value:
            causes += _name_causes(f"{path}.value", value, names.is_valid_label_value(value))
        causes += _enum(f"{path}.effect", _get(taint, "effect"), TAINT_EFFECTS)
    return causes


def validate_node_update(new: Obj, old: Obj) -> list[Cause]:
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    for key in ("podCIDR", "providerID"):
        before = _get(old, "spec", key)
        if before and _get(new, "spec", key) != before:
            causes.append(forbidden(f"spec.{key}", "node updates may not change "
                                    f"{key} except from \"\" to valid"))
    return causes + validate_node(new)


def validate_namespace(ns: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(ns, "metadata"), False, names.name_is_dns_label)
    for finalizer in _list(ns, "spec", "finalizers"):
        value = _str(finalizer)
        causes += _name_causes("spec.finalizers", value, names.is_qualified_name(value))
        if "/" not in value and value not in names.STANDARD_FINALIZERS:
            causes.append(invalid("spec.finalizers", value, "name is neither a standard "
                                  "finalizer name nor is it fully qualified"))
    return causes


def validate_namespace_update(new: Obj, old: Obj) -> list[Cause]:
    return names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))


def validate_event(event: Obj) -> list[Cause]:
    """legacyValidateEvent for core/v1 Events, then the registry's generic ObjectMeta check."""
    namespace = _str(_get(event, "metadata", "namespace"))
    involved = _str(_get(event, "involvedObject", "namespace"))
    causes: list[Cause] = []
    if not event.get("eventTime"):
        if (involved and involved != namespace) or (not involved and namespace not in
                                                     ("", "default")):
            causes.append(invalid("involvedObject.namespace", involved,
                                  "does not match event.namespace"))
    else:
        causes += _validate_new_style_event(event, namespace, involved)
    causes += _name_causes("namespace", namespace, names.is_dns1123_subdomain(namespace))
    return causes + names.validate_object_meta(_map(event, "metadata"), True,
                                               names.name_is_path_segment)


def _validate_new_style_event(event: Obj, namespace: str, involved: str) -> list[Cause]:
    causes: list[Cause] = []
    if not involved and namespace not in ("default", "kube-system"):
        causes.append(invalid("involvedObject.namespace", involved,
                              "does not match event.namespace"))
    controller = _str(event.get("reportingComponent"))
    if not controller:
        causes.append(required("reportingComponent"))
    causes += _name_causes("reportingComponent", controller, names.is_qualified_name(controller))
    for key, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        value = _str(event.get(key))
        if not value:
            causes.append(required(key))
        if len(value) > limit:
            causes.append(invalid(key, "", f"can have at most {limit} characters"))
    if len(_str(event.get("message"))) > 1024:
        causes.append(invalid("message", "", "can have at most 1024 characters"))
    return causes


def validate_event_update(new: Obj, old: Obj) -> list[Cause]:
    return names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata")) + \
        validate_event(new)


def validate_lease(lease: Obj) -> list[Cause]:
    causes = names.validate_object_meta(_map(lease, "metadata"), True, names.name_is_dns_subdomain)
    duration = _get(lease, "spec", "leaseDurationSeconds")
    if isinstance(duration, int) and duration <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = _get(lease, "spec", "leaseTransitions")
    if isinstance(transitions, int) and transitions < 0:
        causes.append(invalid("spec.leaseTransitions", transitions,
                              "must be greater than or equal to 0"))
    return causes


def validate_lease_update(new: Obj, old: Obj) -> list[Cause]:
    return names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata")) + \
        validate_lease(new)


# --- RBAC ----------------------------------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"


def _validate_rules(rules: list[Any], namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(rules):
        rule = rule if isinstance(rule, Mapping) else {}
        path = f"rules[{i}]"
        if not rule.get("verbs"):
            causes.append(required(f"{path}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                causes.append(invalid(f"{path}.nonResourceURLs", urls,
                                      "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append(invalid(f"{path}.nonResourceURLs", urls, "rules cannot apply to "
                                      "both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            causes.append(required(f"{path}.apiGroups",
                                   "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            causes.append(required(f"{path}.resources",
                                   "resource rules must supply at least one resource"))
    return causes


def _role_validator(namespaced: bool) -> Validator:
    def validate_role(role: Obj) -> list[Cause]:
        causes = names.validate_object_meta(_map(role, "metadata"), namespaced,
                                            names.name_is_path_segment)
        return causes + _validate_rules(_list(role, "rules"), namespaced)
    return validate_role


def _validate_subject(path: str, subject: Obj, namespaced: bool) -> list[Cause]:
    name, kind, group = (_str(subject.get(k)) for k in ("name", "kind", "apiGroup"))
    causes = [] if name else [required(f"{path}.name")]
    if kind == "ServiceAccount":
        if name:
            causes += _name_causes(f"{path}.name", name, names.is_dns1123_subdomain(name))
        if group:
            causes.append(not_supported(f"{path}.apiGroup", group, ("",)))
        if not namespaced and not subject.get("namespace"):
            causes.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            causes.append(not_supported(f"{path}.apiGroup", group, (RBAC_GROUP,)))
    else:
        causes.append(not_supported(f"{path}.kind", kind, ("ServiceAccount", "User", "Group")))
    return causes


def _binding_validator(namespaced: bool) -> Validator:
    role_kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)

    def validate_binding(binding: Obj) -> list[Cause]:
        causes = names.validate_object_meta(_map(binding, "metadata"), namespaced,
                                            names.name_is_path_segment)
        ref = _map(binding, "roleRef")
        if ref.get("apiGroup") != RBAC_GROUP:
            causes.append(not_supported("roleRef.apiGroup", _str(ref.get("apiGroup")),
                                        (RBAC_GROUP,)))
        if ref.get("kind") not in role_kinds:
            causes.append(not_supported("roleRef.kind", _str(ref.get("kind")), role_kinds))
        ref_name = _str(ref.get("name"))
        if not ref_name:
            causes.append(required("roleRef.name"))
        else:
            causes += _name_causes("roleRef.name", ref_name,
                                   names.is_valid_path_segment_name(ref_name))
        for i, subject in enumerate(_list(binding, "subjects")):
            causes += _validate_subject(f"subjects[{i}]", _map({"s": subject}, "s"), namespaced)
        return causes
    return validate_binding


def _binding_update_validator(namespaced: bool) -> UpdateValidator:
    validate_binding = _binding_validator(namespaced)

    def validate_binding_update(new: Obj, old: Obj) -> list[Cause]:
        causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
        causes += validate_binding(new)
        if _map(new, "roleRef") != _map(old, "roleRef"):
            causes.append(invalid("roleRef", dict(_map(new, "roleRef")), "cannot change roleRef"))
        return causes
    return validate_binding_update


def _plain_update(validator: Validator) -> UpdateValidator:
    def validate_update(new: Obj, old: Obj) -> list[Cause]:
        return names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata")) + \
            validator(new)
    return validate_update


# --- dispatch ----------------------------------------------------------------------------------

_CREATE: dict[str, Validator] = {
    "Namespace": validate_namespace,
    "Node": validate_node,
    "Pod": validate_pod,
    "PersistentVolume": validate_persistent_volume,
    "PersistentVolumeClaim": validate_persistent_volume_claim,
    "ConfigMap": validate_config_map,
    "Secret": validate_secret,
    "Event": validate_event,
    "StorageClass": validate_storage_class,
    "CSIDriver": validate_csi_driver,
    "CSIStorageCapacity": validate_csi_storage_capacity,
    "VolumeAttachment": validate_volume_attachment,
    "Lease": validate_lease,
    "Role": _role_validator(True),
    "ClusterRole": _role_validator(False),
    "RoleBinding": _binding_validator(True),
    "ClusterRoleBinding": _binding_validator(False),
}
_UPDATE: dict[str, UpdateValidator] = {
    "Namespace": validate_namespace_update,
    "Node": validate_node_update,
    "Pod": validate_pod_update,
    "PersistentVolume": validate_persistent_volume_update,
    "PersistentVolumeClaim": validate_persistent_volume_claim_update,
    "ConfigMap": validate_config_map_update,
    "Secret": validate_secret_update,
    "Event": validate_event_update,
    "StorageClass": validate_storage_class_update,
    "CSIDriver": validate_csi_driver_update,
    "CSIStorageCapacity": validate_csi_storage_capacity_update,
    "VolumeAttachment": validate_volume_attachment_update,
    "Lease": validate_lease_update,
    "Role": _plain_update(_role_validator(True)),
    "ClusterRole": _plain_update(_role_validator(False)),
    "RoleBinding": _binding_update_validator(True),
    "ClusterRoleBinding": _binding_update_validator(False),
}
_NAMESPACED = frozenset({"Pod", "PersistentVolumeClaim", "ConfigMap", "Secret", "Event", "Lease",
                         "Role", "RoleBinding", "CSIStorageCapacity"})


def validate(kind: str, obj: Obj) -> list[Cause]:
    """Causes that make `obj` invalid on create (empty when valid)."""
    validator = _CREATE.get(kind)
    if validator is None:
        return names.validate_object_meta(_map(obj, "metadata"), kind in _NAMESPACED,
                                          names.name_is_path_segment)
    return _dedupe(validator(obj))


def validate_update(kind: str, new: Obj, old: Obj) -> list[Cause]:
    """Causes that make replacing `old` by `new` invalid (empty when valid)."""
    validator = _UPDATE.get(kind)
    if validator is None:
        return names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    return _dedupe(validator(new, old))


def validate_status_update(kind: str, new: Obj, old: Obj) -> list[Cause]:
    """A status subresource write: identity fields fixed, status values well formed."""
    causes = names.validate_object_meta_update(_map(new, "metadata"), _map(old, "metadata"))
    if kind == "PersistentVolumeClaim":
        for name, raw in _map(new, "status", "capacity").items():
            causes += _nonnegative_quantity(f"status.capacity[{name}]", raw)
    if kind == "Node":
        causes += validate_node(new)
    return _dedupe(causes)


def _dedupe(causes: list[Cause]) -> list[Cause]:
    """Kubernetes' aggregate drops repeated messages; keep the first of identical causes."""
    return list(dict.fromkeys(causes))
