"""Server-side defaults: the fields kube-apiserver fills in before it validates and stores.

A client that creates a bare Pod reads back `restartPolicy: Always`, `dnsPolicy: ClusterFirst`,
`imagePullPolicy`, `terminationMessagePath` and so on; a PV comes back `Retain` and `Pending`.
Clients, `kubectl apply` diffs and tests depend on exactly these values, so this module mirrors
pkg/apis/core/v1/defaults.go, storage/v1 and rbac/v1 defaults, the declarative `+default`
markers of k8s.io/api, and the few create-time fills of the registries (Namespace finalizer,
Pod and Namespace initial status) that a reader cannot tell apart from defaults.
`apply_defaults(kind, obj)` mutates the object in place and is safe to run twice.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, MutableMapping
from fractions import Fraction
from typing import Any

from apimachinery import quantity

Obj = MutableMapping[str, Any]

TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_FILE_MODE = 0o644  # 420, for secret, configMap, downwardAPI and projected volumes
RBAC_GROUP = "rbac.authorization.k8s.io"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def _child(obj: Obj, key: str) -> Obj:
    """obj[key] as a dict, created when absent or null."""
    value = obj.get(key)
    if not isinstance(value, MutableMapping):
        value = {}
        obj[key] = value
    return value


def _items(obj: Obj, key: str) -> list[Obj]:
    return [item for item in obj.get(key) or [] if isinstance(item, MutableMapping)]


def _default(obj: Obj, key: str, value: Any) -> None:
    # Go's zero value ("" or nil) is what the defaulters test for
    if obj.get(key) in (None, ""):
        obj[key] = value


# --- images ---------------------------------------------------------------------------------

_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN = (r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
           r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?")
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?")


def image_tag(image: str) -> str:
    """The tag kubelet's parsers.ParseImageName finds: "latest" when neither tag nor digest,
    "" when the reference does not parse."""
    match = _REFERENCE.fullmatch(image)
    if match is None:
        return ""
    if match.group("tag"):
        return match.group("tag")
    return "" if match.group("digest") else "latest"


def default_pull_policy(image: str) -> str:
    return "Always" if image_tag(image) == "latest" else "IfNotPresent"


# --- pods -----------------------------------------------------------------------------------

def _default_probe(probe: Any) -> None:
    if not isinstance(probe, MutableMapping):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe)


def _default_http_get(handler: Any) -> None:
    """SetDefaults_HTTPGetAction, for a probe's or a lifecycle hook's httpGet."""
    http_get = handler.get("httpGet") if isinstance(handler, MutableMapping) else None
    if isinstance(http_get, MutableMapping):
        _default(http_get, "path", "/")
        _default(http_get, "scheme", "HTTP")


def _default_container(container: Obj, host_network: bool) -> None:
    _default(container, "imagePullPolicy", default_pull_policy(container.get("image") or ""))
    _default(container, "terminationMessagePath", TERMINATION_MESSAGE_PATH)
    _default(container, "terminationMessagePolicy", "File")
    resources = _child(container, "resources")
    limits = resources.get("limits")
    if isinstance(limits, MutableMapping) and limits:
        requests = _child(resources, "requests")
        for name, value in limits.items():
            requests.setdefault(name, value)
    for port in _items(container, "ports"):
        _default(port, "protocol", "TCP")
        if host_network and not port.get("hostPort"):
            port["hostPort"] = port.get("containerPort")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe))
    lifecycle = container.get("lifecycle")
    for hook in ("postStart", "preStop"):
        _default_http_get(lifecycle.get(hook) if isinstance(lifecycle, MutableMapping)
                          else None)
    for env in _items(container, "env"):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, MutableMapping):
            _default(field_ref, "apiVersion", "v1")


_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image")


def volume_sources(volume: Any) -> list[str]:
    """The volume-source keys a Volume (or PersistentVolumeSpec) sets to a non-null value."""
    if not isinstance(volume, MutableMapping):
        return []
    return [key for key in _VOLUME_SOURCES if volume.get(key) is not None]


def _default_volume(volume: Obj) -> None:
    if not volume_sources(volume):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = volume.get(key)
        if isinstance(source, MutableMapping):
            _default(source, "defaultMode", DEFAULT_FILE_MODE)
    _default_host_path(volume.get("hostPath"))
    for projection in _items(volume.get("projected") or {}, "sources"):
        token = projection.get("serviceAccountToken")
        if isinstance(token, MutableMapping):
            _default(token, "expirationSeconds", 3600)
    if isinstance(volume.get("image"), MutableMapping):
        image = volume["image"]
        _default(image, "pullPolicy", default_pull_policy(image.get("reference") or ""))


def _default_host_path(host_path: Any) -> None:
    if isinstance(host_path, MutableMapping) and host_path.get("type") is None:
        host_path["type"] = ""


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested in it (also used for pod templates)."""
    _default(spec, "dnsPolicy", "ClusterFirst")
    _default(spec, "restartPolicy", "Always")
    _child(spec, "securityContext")
    _default(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
    _default(spec, "schedulerName", DEFAULT_SCHEDULER)
    host_network = spec.get("hostNetwork") is True
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in _items(spec, key):
            _default_container(container, host_network and key != "ephemeralContainers")
    for volume in _items(spec, "volumes"):
        _default_volume(volume)


def qos_class(spec: Obj) -> str:
    """GetPodQOS: Guaranteed, Burstable or BestEffort from the cpu and memory of all containers."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in _items(spec, "containers") + _items(spec, "initContainers"):
        resources = container.get("resources") or {}
        _add_positive(requests, resources.get("requests"))
        limited = _add_positive(limits, resources.get("limits"))
        if not {"cpu", "memory"} <= limited:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _add_positive(totals: dict[str, Fraction], resources: Any) -> set[str]:
    """Add the positive cpu and memory amounts to totals; return the names added."""
    added = set()
    for name, raw in (resources or {}).items():
        if name not in ("cpu", "memory"):
            continue
        try:
            amount = quantity.parse_quantity(str(raw).strip())
        except quantity.QuantityError:
            continue  # validation reports it
        if amount > 0:
            totals[name] = totals.get(name, Fraction(0)) + amount
            added.add(name)
    return added


def _default_pod(pod: Obj) -> None:
    spec = _child(pod, "spec")
    default_pod_spec(spec)
    _default(spec, "enableServiceLinks", True)
    # the Priority admission plugin fills these on every pod without a priority class
    _default(spec, "priority", 0)
    _default(spec, "preemptionPolicy", "PreemptLowerPriority")
    # the pod registry's PrepareForCreate: a new pod is Pending with its QoS class
    status = _child(pod, "status")
    _default(status, "phase", "Pending")
    _default(status, "qosClass", qos_class(spec))


# --- storage ----------------------------------------------------------------------------------

def _default_persistent_volume(pv: Obj) -> None:
    spec = _child(pv, "spec")
    _default(spec, "persistentVolumeReclaimPolicy", "Retain")
    _default(spec, "volumeMode", "Filesystem")
    _default_host_path(spec.get("hostPath"))
    _default(_child(pv, "status"), "phase", "Pending")


def _default_claim(pvc: Obj) -> None:
    _default(_child(pvc, "spec"), "volumeMode", "Filesystem")
    _default(_child(pvc, "status"), "phase", "Pending")


def _default_storage_class(sc: Obj) -> None:
    _default(sc, "reclaimPolicy", "Delete")
    _default(sc, "volumeBindingMode", "Immediate")


def _default_csi_driver(driver: Obj) -> None:
    spec = _child(driver, "spec")
    for key, value in (("attachRequired", True), ("podInfoOnMount", False),
                       ("storageCapacity", False), ("requiresRepublish", False),
                       ("seLinuxMount", False),
                       ("fsGroupPolicy", "ReadWriteOnceWithFSType")):
        _default(spec, key, value)
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]


# --- the rest of core -------------------------------------------------------------------------

def _default_namespace(ns: Obj) -> None:
    meta = _child(ns, "metadata")
    if meta.get("name"):
        _child(meta, "labels")[NAMESPACE_NAME_LABEL] = meta["name"]
    # The "kubernetes" finalizer is added by the namespace strategy on create only
    # (apiserver/strategy.py): defaulting runs on every update too, and the namespace
    # controller's finalize must be able to remove it.
    _default(_child(ns, "status"), "phase", "Active")


def _default_node(node: Obj) -> None:
    status = node.get("status")
    if isinstance(status, MutableMapping) and status.get("allocatable") is None \
            and isinstance(status.get("capacity"), MutableMapping):
        status["allocatable"] = dict(status["capacity"])


def _default_secret(secret: Obj) -> None:
    merge_string_data(secret)
    _default(secret, "type", "Opaque")


def merge_string_data(secret: Obj) -> None:
    """Fold write-only `stringData` into `data`, as Kubernetes' v1 conversion does on decode.

    stringData wins over data for the same key and is never stored or returned.
    """
    string_data = secret.pop("stringData", None)
    if not isinstance(string_data, MutableMapping) or not string_data:
        return
    data = _child(secret, "data")
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")


def _default_event(event: Obj) -> None:
    # v1 Event serializes these without omitempty, so a stored event always has them
    _child(event, "involvedObject")
    _child(event, "source")
    for key in ("reportingComponent", "reportingInstance"):
        event.setdefault(key, "")
    for key in ("firstTimestamp", "lastTimestamp", "eventTime"):
        event.setdefault(key, None)


# --- rbac -------------------------------------------------------------------------------------

def _default_subjects(binding: Obj) -> None:
    for subject in _items(binding, "subjects"):
        if not subject.get("apiGroup"):
            kind = subject.get("kind")
            if kind in ("User", "Group"):
                subject["apiGroup"] = RBAC_GROUP
            elif kind == "ServiceAccount":
                subject["apiGroup"] = ""


def _default_binding(binding: Obj) -> None:
    _default(_child(binding, "roleRef"), "apiGroup", RBAC_GROUP)
    _default_subjects(binding)


def _default_volume_attachment(va: Obj) -> None:
    """status.attached has no omitempty in Go: a status without it decodes as false."""
    status = _child(va, "status")
    if status.get("attached") is None:
        status["attached"] = False


def _nothing(_: Obj) -> None:
    """Kinds whose v1 types have no server-side defaults."""


_DEFAULTERS: dict[str, Callable[[Obj], None]] = {
    "Namespace": _default_namespace,
    "Node": _default_node,
    "Pod": _default_pod,
    "PersistentVolume": _default_persistent_volume,
    "PersistentVolumeClaim": _default_claim,
    "ConfigMap": _nothing,  # Kubernetes sets data to an empty map, which JSON omits
    "Secret": _default_secret,
    "Event": _default_event,
    "StorageClass": _default_storage_class,
    "CSIDriver": _default_csi_driver,
    "CSIStorageCapacity": _nothing,
    "VolumeAttachment": _default_volume_attachment,
    "Lease": _nothing,
    "Role": _nothing,
    "ClusterRole": _nothing,
    "RoleBinding": _default_binding,
    "ClusterRoleBinding": _default_binding,
}


def apply_defaults(kind: str, obj: Obj) -> None:
    """Fill in Kubernetes' defaults for an object of `kind`, in place; unknown kinds are left."""
    _DEFAULTERS.get(kind, _nothing)(obj)
