"""Create and update validation, pinned to the field paths and messages Kubernetes returns."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from apiserver import validation
from apiserver.defaults import apply_defaults
from apiserver.validation import DecodeError

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
ACCESS_MODES_MSG = ('supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", '
                    '"ReadWriteOncePod"')

Mutation = Callable[[dict[str, Any]], Any]


def _obj(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    apply_defaults(kind, out)
    return out


PV = _obj("PersistentVolume", {
    "metadata": {"name": "pv-1"},
    "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
             "hostPath": {"path": "/data/pv-1"}, "storageClassName": "manual"},
})
PVC = _obj("PersistentVolumeClaim", {
    "metadata": {"name": "data", "namespace": "default"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
             "storageClassName": "standard"},
})
SC = _obj("StorageClass", {"metadata": {"name": "standard"}, "provisioner": "storagelab.io/local",
                           "parameters": {"path": "/srv"}})
POD = _obj("Pod", {
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "cfg", "configMap": {"name": "cfg"}}],
    },
})
CM = _obj("ConfigMap", {"metadata": {"name": "cfg", "namespace": "default"},
                        "data": {"app.conf": "x=1"}})
SECRET = _obj("Secret", {"metadata": {"name": "s", "namespace": "default"},
                         "data": {"password": "aHVudGVyMg=="}})


def _fields(causes: list[Any]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def _mutated(obj: dict[str, Any], mutate: Mutation) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    mutate(out)
    return out


@pytest.mark.parametrize("kind, obj", [
    ("PersistentVolume", PV), ("PersistentVolumeClaim", PVC), ("StorageClass", SC),
    ("Pod", POD), ("ConfigMap", CM), ("Secret", SECRET),
    ("Namespace", _obj("Namespace", {"metadata": {"name": "dev"}})),
    ("Node", _obj("Node", {"metadata": {"name": "node-1"},
                           "status": {"capacity": {"cpu": "2", "memory": "4Gi"}}})),
    ("Event", _obj("Event", {"metadata": {"name": "data.1789", "namespace": "default"},
                             "involvedObject": {"kind": "PersistentVolumeClaim",
                                                "namespace": "default", "name": "data"},
                             "reason": "ProvisioningSucceeded", "type": "Normal"})),
    ("Lease", {"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
               "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
    ("ClusterRole", {"metadata": {"name": "system:storagelab:binder"},
                     "rules": [{"apiGroups": [""], "resources": ["persistentvolumes"],
                                "verbs": ["get", "list"]},
                               {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
    ("RoleBinding", _obj("RoleBinding", {
        "metadata": {"name": "b", "namespace": "default"},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}, {"kind": "User", "name": "u"}]
    })),
    ("CSIDriver", _obj("CSIDriver", {"metadata": {"name": "local.storagelab.io"}})),
])
def test_valid_objects(kind: str, obj: dict[str, Any]) -> None:
    assert validation.validate(kind, obj) == []


# --- PersistentVolume ---------------------------------------------------------------------------

def _set(path: str, value: Any) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return mutate


def _drop(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = obj
        for key in parents:
            node = node[key]
        node.pop(last)
    return mutate


@pytest.mark.parametrize("mutate, expected", [
    (_set("spec.capacity", {"storage": "0"}),
     [("spec.capacity[storage]", 'Invalid value: "0": must be greater than zero')]),
    (_drop("spec.capacity"), [("spec.capacity", "Required value"),
                              ("spec.capacity", ('Unsupported value: {}: supported values: '
                                                '"storage"'))]),
    (_set("spec.capacity", {"storage": "1Gi", "cpu": "1"}),
     [("spec.capacity", ('Unsupported value: {"cpu":"1","storage":"1Gi"}: supported values: '
                        '"storage"'))]),
    (_drop("spec.accessModes"), [("spec.accessModes", "Required value")]),
    (_set("spec.accessModes", ["ReadWriteSome"]),
     [("spec.accessModes", f'Unsupported value: "ReadWriteSome": {ACCESS_MODES_MSG}')]),
    (_set("spec.accessModes", ["ReadWriteOncePod", "ReadOnlyMany"]),
     [("spec.accessModes", "Forbidden: may not use ReadWriteOncePod with other access modes")]),
    (_set("spec.persistentVolumeReclaimPolicy", "Keep"),
     [("spec.persistentVolumeReclaimPolicy",
       'Unsupported value: "Keep": supported values: "Delete", "Recycle", "Retain"')]),
    (_set("spec.volumeMode", "Raw"),
     [("spec.volumeMode", 'Unsupported value: "Raw": supported values: "Block", "Filesystem"')]),
    (_drop("spec.hostPath"), [("spec", "Required value: must specify a volume type")]),
    (_set("spec.nfs", {"server": "nfs", "path": "/export"}),
     [("spec.nfs", "Forbidden: may not specify more than 1 volume type")]),
    (_set("spec.hostPath", {"path": "/data/../etc", "type": ""}),
     [("spec.hostPath.path", "Invalid value: \"/data/../etc\": must not contain '..'")]),
    (_set("spec.hostPath", {"path": ""}), [("spec.hostPath.path", "Required value")]),
    (_set("spec.hostPath", {"path": "/x", "type": "Dir"}),
     [("spec.hostPath.type", ('Unsupported value: "Dir": supported values: "", "BlockDevice", '
                             '"CharDevice", "Directory", "DirectoryOrCreate", "File", '
                             '"FileOrCreate", "Socket"'))]),
    (_set("spec.hostPath", {"path": "/", "type": ""}), []),
    (_set("metadata.name", "pv;rm -rf /"),
     [("metadata.name", 'Invalid value: "pv;rm -rf /": ' + SUBDOMAIN_MSG)]),
    (_set("spec.storageClassName", "Fast SSD"),
     [("spec.storageClassName", 'Invalid value: "Fast SSD": ' + SUBDOMAIN_MSG)]),
    (_set("spec.claimRef", {"name": "data", "namespace": "Bad NS"}),
     [("spec.claimRef.namespace", 'Invalid value: "Bad NS": ' + LABEL_MSG)]),
])
def test_persistent_volume(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate("PersistentVolume", _mutated(PV, mutate))) == expected


def _nfs_pv(pv: dict[str, Any]) -> None:
    pv["spec"].pop("hostPath")
    pv["spec"]["nfs"] = {"server": "", "path": "export"}


def _local_pv(pv: dict[str, Any]) -> None:
    pv["spec"].pop("hostPath")
    pv["spec"]["local"] = {"path": "/mnt/disk"}


def _affinity(pv: dict[str, Any]) -> None:
    _local_pv(pv)
    pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}}


def _bad_affinity(pv: dict[str, Any]) -> None:
    _local_pv(pv)
    pv["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "zone", "operator": "In"}, {"key": "a", "operator": "Near", "values": ["x"]}],
        "matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["x"]}]}]}}


def _csi_pv(pv: dict[str, Any]) -> None:
    pv["spec"].pop("hostPath")
    pv["spec"]["csi"] = {"driver": "", "volumeHandle": ""}


@pytest.mark.parametrize("mutate, expected", [
    (_nfs_pv, [("spec.nfs.server", "Required value"),
               ("spec.nfs.path", 'Invalid value: "export": must be an absolute path')]),
    (_local_pv, [("spec.nodeAffinity", "Required value: Local volume requires node affinity")]),
    (_affinity, []),
    (_bad_affinity, [
        ("spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values",
         "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        ("spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[1].operator",
         'Invalid value: "Near": not a valid selector operator'),
        ("spec.nodeAffinity.required.nodeSelectorTerms[0].matchFields[0].key",
         'Invalid value: "metadata.uid": not a valid field selector key'),
    ]),
    (_set("spec.nodeAffinity", {}),
     [("spec.nodeAffinity.required", "Required value: must specify required node constraints")]),
    (_set("spec.nodeAffinity", {"required": {"nodeSelectorTerms": []}}),
     [("spec.nodeAffinity.required.nodeSelectorTerms",
       "Required value: must have at least one node selector term")]),
    (_csi_pv, [("spec.csi.driver", "Required value"),
               ("spec.csi.driver", 'Invalid value: "": ' + SUBDOMAIN_MSG),
               ("spec.csi.volumeHandle", "Required value")]),
])
def test_persistent_volume_sources(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate("PersistentVolume", _mutated(PV, mutate))) == expected


def _bind_pv(pv: dict[str, Any]) -> None:
    pv["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": "default",
                              "name": "data", "uid": "u1"}
    pv["status"] = {"phase": "Bound"}


@pytest.mark.parametrize("mutate, expected_fields", [
    (_bind_pv, []),
    (_set("spec.persistentVolumeReclaimPolicy", "Delete"), []),
    (_set("spec.capacity", {"storage": "20Gi"}), []),
    (_set("metadata.labels", {"tier": "gold"}), []),
    (_set("spec.hostPath", {"path": "/elsewhere", "type": ""}), ["spec.persistentvolumesource"]),
    (_set("spec.volumeMode", "Block"), ["volumeMode"]),
    (_set("metadata.name", "pv-2"), ["metadata.name"]),
])
def test_persistent_volume_update(mutate: Mutation, expected_fields: list[str]) -> None:
    causes = validation.validate_update("PersistentVolume", _mutated(PV, mutate), PV)
    assert [c.field for c in causes] == expected_fields


def test_persistent_volume_source_message() -> None:
    new = _mutated(PV, _set("spec.hostPath", {"path": "/elsewhere", "type": ""}))
    [cause] = validation.validate_update("PersistentVolume", new, PV)
    assert cause.message.startswith(
        "Forbidden: spec.persistentvolumesource is immutable after creation\n")
    assert cause.reason == "FieldValueForbidden"
    [cause] = validation.validate_update("PersistentVolume",
                                         _mutated(PV, _set("spec.volumeMode", "Block")), PV)
    assert cause.message == 'Invalid value: "Block": field is immutable'


# --- PersistentVolumeClaim ----------------------------------------------------------------------

@pytest.mark.parametrize("mutate, expected", [
    (_drop("spec.accessModes"),
     [("spec.accessModes", "Required value: at least 1 access mode is required")]),
    (_set("spec.accessModes", ["ReadWriteOnce", "Shared"]),
     [("spec.accessModes", f'Unsupported value: "Shared": {ACCESS_MODES_MSG}')]),
    (_set("spec.resources", {}), [("spec.resources[storage]", "Required value")]),
    (_set("spec.resources", {"requests": {"storage": "0"}}),
     [("spec.resources[storage]", 'Invalid value: "0": must be greater than zero')]),
    (_set("spec.resources", {"requests": {"storage": "-1Gi"}}),
     [("spec.resources[storage]", 'Invalid value: "-1Gi": must be greater than zero')]),
    (_set("spec.volumeMode", "Raw"),
     [("spec.volumeMode", 'Unsupported value: "Raw": supported values: "Block", "Filesystem"')]),
    (_set("spec.storageClassName", ""), []),  # "" asks for no class, it is valid
    (_set("spec.storageClassName", "a_b"),
     [("spec.storageClassName", 'Invalid value: "a_b": ' + SUBDOMAIN_MSG)]),
    (_set("spec.selector", {"matchExpressions": [{"key": "tier", "operator": "In"}]}),
     [("spec.selector.matchExpressions[0].values",
       "Required value: must be specified when `operator` is 'In' or 'NotIn'")]),
    (_set("spec.dataSource", {"kind": "Snapshot", "name": "s"}),
     [("spec.dataSource", ('Invalid value: "Snapshot": must be \'PersistentVolumeClaim\' when '
                          'referencing the default apiGroup'))]),
    (_set("spec.dataSource", {"kind": "PersistentVolumeClaim", "name": "src"}), []),
    (_set("spec.dataSource", {"apiGroup": "snapshot.storage.k8s.io",
                              "kind": "VolumeSnapshot", "name": "snap"}), []),
    (_set("metadata.namespace", ""), [("metadata.namespace", "Required value")]),
])
def test_persistent_volume_claim(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    causes = validation.validate("PersistentVolumeClaim", _mutated(PVC, mutate))
    assert _fields(causes) == expected


BOUND_PVC = _mutated(PVC, lambda c: c.update(
    spec={**c["spec"], "volumeName": "pv-1"},
    status={"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}))


BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
ANNOTATED_PVC = _mutated(PVC, lambda c: (c["spec"].pop("storageClassName"),
                                         c["metadata"].update(annotations={BETA_CLASS: "fast"})))


def _resize(size: str) -> Mutation:
    return _set("spec.resources", {"requests": {"storage": size}})


@pytest.mark.parametrize("old, mutate, expected_fields", [
    (PVC, _set("spec.volumeName", "pv-1"), []),  # binding sets volumeName once
    (BOUND_PVC, _set("spec.volumeName", "pv-2"), ["spec"]),
    (PVC, _resize("2Gi"), ["spec"]),  # a pending claim cannot be resized
    (BOUND_PVC, _resize("2Gi"), []),
    (BOUND_PVC, _resize("500Mi"), ["spec.resources.requests.storage"]),
    (_mutated(BOUND_PVC, _resize("4Gi")), _resize("2Gi"), []),  # recovering a failed expansion
    (BOUND_PVC, _set("spec.accessModes", ["ReadWriteMany"]), ["spec"]),
    (BOUND_PVC, _set("spec.storageClassName", "other"), ["spec"]),
    (_mutated(PVC, _drop("spec.storageClassName")), _set("spec.storageClassName", "standard"),
     []),  # a default class may be assigned retroactively
    (BOUND_PVC, _set("spec.volumeMode", "Block"), ["spec", "volumeMode"]),
    (BOUND_PVC, _set("metadata.annotations", {"pv.kubernetes.io/bind-completed": "yes"}), []),
    (BOUND_PVC, _set("metadata.annotations", {BETA_CLASS: "fast"}),
     ["metadata.annotations.volume.beta.kubernetes.io/storage-class"]),
    (ANNOTATED_PVC, _set("spec.storageClassName", "fast"), []),  # annotation to field
    (ANNOTATED_PVC, lambda c: (c["spec"].update(storageClassName="fast"),
                               c["metadata"].pop("annotations")), []),
    (ANNOTATED_PVC, _set("spec.storageClassName", "slow"), ["spec"]),
    (ANNOTATED_PVC, _set("metadata.annotations", {BETA_CLASS: "slow"}),
     ["metadata.annotations.volume.beta.kubernetes.io/storage-class"]),
])
def test_persistent_volume_claim_update(old: dict[str, Any], mutate: Mutation,
                                        expected_fields: list[str]) -> None:
    new = _mutated(old, mutate)
    causes = validation.validate_update("PersistentVolumeClaim", new, old)
    assert [c.field for c in causes] == expected_fields


def test_claim_update_messages() -> None:
    new = _mutated(PVC, _resize("2Gi"))
    [cause] = validation.validate_update("PersistentVolumeClaim", new, PVC)
    assert cause.message.startswith(
        "Forbidden: spec is immutable after creation except resources.requests and "
        "volumeAttributesClassName for bound claims\n")
    [cause] = validation.validate_update("PersistentVolumeClaim",
                                         _mutated(BOUND_PVC, _resize("500Mi")), BOUND_PVC)
    assert cause.message == "Forbidden: field can not be less than status.capacity"


# --- StorageClass -------------------------------------------------------------------------------

@pytest.mark.parametrize("mutate, expected", [
    (_drop("provisioner"), [("provisioner", "Required value")]),
    (_set("provisioner", "Storagelab.IO/Local Disk"),
     [("provisioner", ('Invalid value: "storagelab.io/local disk": name part must consist of '
                      "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                      "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"))]),
    (_set("reclaimPolicy", "Recycle"),
     [("reclaimPolicy", 'Unsupported value: "Recycle": supported values: "Delete", "Retain"')]),
    (_set("volumeBindingMode", "Later"),
     [("volumeBindingMode", ('Unsupported value: "Later": supported values: "Immediate", '
                            '"WaitForFirstConsumer"'))]),
    (_drop("volumeBindingMode"), [("volumeBindingMode", "Required value")]),
    (_set("parameters", {"": "x"}), [("parameters", 'Invalid value: "": field can not be empty.')]),
    (_set("metadata.name", "Fast"), [("metadata.name", 'Invalid value: "Fast": ' + SUBDOMAIN_MSG)]),
    (_set("allowedTopologies", [{"matchLabelExpressions": [
        {"key": "zone", "values": ["a", "a"]}, {"key": "zone", "values": []}]}]),
     [("allowedTopologies[0].matchLabelExpressions[0].values[1]", 'Duplicate value: "a"'),
      ("allowedTopologies[0].matchLabelExpressions[1].values",
       "Required value: must specify as least one value"),
      ("allowedTopologies[0].matchLabelExpressions[1].key", 'Duplicate value: "zone"')]),
])
def test_storage_class(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate("StorageClass", _mutated(SC, mutate))) == expected


@pytest.mark.parametrize("mutate, expected", [
    (_set("allowVolumeExpansion", True), []),
    (_set("metadata.labels", {"a": "b"}), []),
    (_set("parameters", {"path": "/other"}),
     [("parameters", "Forbidden: updates to parameters are forbidden.")]),
    (_set("provisioner", "other.io/x"),
     [("provisioner", "Forbidden: updates to provisioner are forbidden.")]),
    (_set("reclaimPolicy", "Retain"),
     [("reclaimPolicy", "Forbidden: updates to reclaimPolicy are forbidden.")]),
    (_set("volumeBindingMode", "WaitForFirstConsumer"),
     [("volumeBindingMode", 'Invalid value: "WaitForFirstConsumer": field is immutable')]),
])
def test_storage_class_update(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    causes = validation.validate_update("StorageClass", _mutated(SC, mutate), SC)
    assert _fields(causes) == expected


# --- ConfigMap and Secret ----------------------------------------------------------------------

CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                  "is '[-._a-zA-Z0-9]+')")


@pytest.mark.parametrize("mutate, expected", [
    (_set("data", {"a/b": "x"}), [("data[a/b]", f'Invalid value: "a/b": {CONFIG_KEY_MSG}')]),
    (_set("data", {"..x": "x"}), [("data[..x]", ("Invalid value: \"..x\": must not start with "
                                                "'..'"))]),
    (_set("data", {"big": "x" * (1024 * 1024 + 1)}),
     [("[]", "Too long: may not be more than 1048576 bytes")]),
    (_set("binaryData", {"app.conf": "AA=="}),
     [("data[app.conf]", 'Invalid value: "app.conf": duplicate of key present in binaryData')]),
    (_set("binaryData", {"blob": "AAEC"}), []),
])
def test_config_map(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate("ConfigMap", _mutated(CM, mutate))) == expected


IMMUTABLE_CM = _mutated(CM, _set("immutable", True))


@pytest.mark.parametrize("old, mutate, expected", [
    (CM, _set("data", {"app.conf": "x=2"}), []),
    (IMMUTABLE_CM, _set("data", {"app.conf": "x=2"}),
     [("data", "Forbidden: field is immutable when `immutable` is set")]),
    (IMMUTABLE_CM, _set("immutable", False),
     [("immutable", "Forbidden: field is immutable when `immutable` is set")]),
    (IMMUTABLE_CM, _set("metadata.labels", {"a": "b"}), []),
])
def test_config_map_update(old: dict[str, Any], mutate: Mutation,
                           expected: list[tuple[str, str]]) -> None:
    causes = validation.validate_update("ConfigMap", _mutated(old, mutate), old)
    assert _fields(causes) == expected


@pytest.mark.parametrize("mutate, expected", [
    (_set("data", {"a b": "eA=="}), [("data[a b]", f'Invalid value: "a b": {CONFIG_KEY_MSG}')]),
    (_set("type", "kubernetes.io/tls"),
     [("data[tls.crt]", "Required value"), ("data[tls.key]", "Required value")]),
    (lambda s: s.update(type="kubernetes.io/basic-auth", data={"token": "eA=="}),
     [("data[username]", "Required value"), ("data[password]", "Required value")]),
    (_set("type", "kubernetes.io/basic-auth"), []),  # one of the two keys is enough
    (_set("type", "kubernetes.io/ssh-auth"), [("data[ssh-privatekey]", "Required value")]),
    (_set("type", "kubernetes.io/service-account-token"),
     [("metadata.annotations[kubernetes.io/service-account.name]", "Required value")]),
    (_set("type", "example.com/custom"), []),
    (_set("data", {"big": "A" * (4 * (1024 * 1024 // 3 + 1))}),
     [("data", "Too long: may not be more than 1048576 bytes")]),
])
def test_secret(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate("Secret", _mutated(SECRET, mutate))) == expected


@pytest.mark.parametrize("old, mutate, expected", [
    (SECRET, _set("data", {"password": "eA=="}), []),
    (SECRET, _set("type", "kubernetes.io/basic-auth"),
     [("type", 'Invalid value: "kubernetes.io/basic-auth": field is immutable')]),
    (_mutated(SECRET, _set("immutable", True)), _set("data", {}),
     [("data", "Forbidden: field is immutable when `immutable` is set")]),
])
def test_secret_update(old: dict[str, Any], mutate: Mutation,
                       expected: list[tuple[str, str]]) -> None:
    causes = validation.validate_update("Secret", _mutated(old, mutate), old)
    assert _fields(causes) == expected


@pytest.mark.parametrize("kind, obj, message", [
    ("Secret", {"data": {"k": "not base64!"}},
     'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'),
    ("Secret", {"data": {"k": "abc"}},
     'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 0'),
    ("ConfigMap", {"binaryData": {"k": "AA=A"}},
     ('ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data at input '
     "byte 2")),
    ("PersistentVolumeClaim", {"spec": {"resources": {"requests": {"storage": "1 Gi"}}}},
     ('PersistentVolumeClaim in version "v1" cannot be handled as a PersistentVolumeClaim: '
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")),
    ("PersistentVolume", {"spec": {"capacity": {"storage": "10K"}}},
     ('PersistentVolume in version "v1" cannot be handled as a PersistentVolume: unable to parse '
     "quantity's suffix")),
])
def test_decode_errors(kind: str, obj: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError) as err:
        validation.check_decodable(kind, obj)
    assert str(err.value) == message


@pytest.mark.parametrize("text, decoded", [
    ("aHVudGVyMg==", b"hunter2"), ("", b""), ("aHVu\ndGVy", b"hunter"), ("AA==", b"\x00"),
])
def test_decode_base64(text: str, decoded: bytes) -> None:
    assert validation.decode_base64(text) == decoded


def test_check_decodable_does_not_modify() -> None:
    pvc = _mutated(PVC, _resize("1.5Gi"))
    validation.check_decodable("PersistentVolumeClaim", pvc)
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1.5Gi"


@pytest.mark.parametrize("kind, obj, expected", [
    ("PersistentVolume", {"spec": {"capacity": {"storage": "1.5Gi"}}},
     {"spec": {"capacity": {"storage": "1536Mi"}}}),
    ("PersistentVolumeClaim",
     {"spec": {"resources": {"requests": {"storage": "1000Mi"}, "limits": {"storage": 2048}}},
      "status": {"capacity": {"storage": "2048Mi"}}},
     {"spec": {"resources": {"requests": {"storage": "1000Mi"}, "limits": {"storage": "2048"}}},
      "status": {"capacity": {"storage": "2Gi"}}}),
    ("Pod", {"spec": {"containers": [{"resources": {"requests": {"cpu": "1500u",
                                                                  "memory": "1024Mi"}}}],
                      "volumes": [{"emptyDir": {"sizeLimit": "1000"}}]}},
     {"spec": {"containers": [{"resources": {"requests": {"cpu": "2m", "memory": "1Gi"}}}],
               "volumes": [{"emptyDir": {"sizeLimit": "1k"}}]}}),
    ("Node", {"status": {"capacity": {"cpu": "4", "memory": "8048564Ki", "pods": "110"}}},
     {"status": {"capacity": {"cpu": "4", "memory": "8048564Ki", "pods": "110"}}}),
    ("ConfigMap", {"data": {"a": "1000"}}, {"data": {"a": "1000"}}),
])
def test_canonicalize_quantities(kind: str, obj: dict[str, Any],
                                 expected: dict[str, Any]) -> None:
    out = copy.deepcopy(obj)
    validation.canonicalize_quantities(kind, out)
    assert out == expected


# --- Pod ----------------------------------------------------------------------------------------

def _container(**changes: Any) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        pod["spec"]["containers"][0].update(changes)
    return mutate


def _volume(index: int, volume: dict[str, Any]) -> Mutation:
    def mutate(pod: dict[str, Any]) -> None:
        pod["spec"]["volumes"][index] = volume
    return mutate


@pytest.mark.parametrize("mutate, expected", [
    (_set("spec.containers", []), [("spec.containers", "Required value")]),
    (_container(name="Web"), [("spec.containers[0].name", 'Invalid value: "Web": ' + LABEL_MSG)]),
    (_container(image=""), [("spec.containers[0].image", "Required value")]),
    (lambda p: p["spec"]["containers"].append(copy.deepcopy(p["spec"]["containers"][0])),
     [("spec.containers[1].name", 'Duplicate value: "web"')]),
    (_volume(1, {"name": "cfg;rm", "configMap": {"name": "cfg"}}),
     [("spec.volumes[1].name", 'Invalid value: "cfg;rm": ' + LABEL_MSG)]),
    (_volume(1, {"name": "$(echo)", "configMap": {"name": "cfg"}}),
     [("spec.volumes[1].name", 'Invalid value: "$(echo)": ' + LABEL_MSG)]),
    (_volume(1, {"name": "data", "emptyDir": {}}),
     [("spec.volumes[1].name", 'Duplicate value: "data"')]),
    (_volume(1, {"name": "cfg", "configMap": {"name": "cfg"}, "emptyDir": {}}),
     [("spec.volumes[1].configMap", "Forbidden: may not specify more than 1 volume type")]),
    (_volume(1, {"name": "s", "secret": {"defaultMode": 512}}),
     [("spec.volumes[1].secret.secretName", "Required value"),
      ("spec.volumes[1].secret.defaultMode", ("Invalid value: 512: must be a number between 0 and "
                                             "0777 (octal), both inclusive"))]),
    (_volume(1, {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420,
                                              "items": [{"key": "a", "path": "../a"}]}}),
     [("spec.volumes[1].configMap.items[0].path", ("Invalid value: \"../a\": must not contain "
                                                  "'..'"))]),
    (_volume(0, {"name": "data", "persistentVolumeClaim": {"claimName": ""}}),
     # a volume with errors is not mountable, so the mount is reported too
     [("spec.volumes[0].persistentVolumeClaim.claimName", "Required value"),
      ("spec.containers[0].volumeMounts[0].name", 'Not found: "data"')]),
    (_volume(1, {"name": "h", "hostPath": {"path": "/var/../etc", "type": ""}}),
     [("spec.volumes[1].hostPath.path", ("Invalid value: \"/var/../etc\": must not contain "
                                        "'..'"))]),
    (_container(volumeMounts=[{"name": "nope", "mountPath": "/x"}]),
     [("spec.containers[0].volumeMounts[0].name", 'Not found: "nope"')]),
    (_container(volumeMounts=[{"name": "data", "mountPath": ""}]),
     [("spec.containers[0].volumeMounts[0].mountPath", "Required value")]),
    (_container(volumeMounts=[{"name": "data", "mountPath": "/d"},
                              {"name": "cfg", "mountPath": "/d"}]),
     [("spec.containers[0].volumeMounts[1].mountPath", 'Invalid value: "/d": must be unique')]),
    (_container(volumeMounts=[{"name": "data", "mountPath": "/d", "subPath": "../x"}]),
     [("spec.containers[0].volumeMounts.subPath", ("Invalid value: \"../x\": must not contain "
                                                  "'..'"))]),
    (_container(volumeMounts=[{"name": "data", "mountPath": "/d", "subPath": "/abs"}]),
     [("spec.containers[0].volumeMounts.subPath", ('Invalid value: "/abs": must be a relative '
                                                  "path"))]),
    (_container(volumeMounts=[{"name": "data", "mountPath": "/d", "subPath": "db/pg"}]), []),
    (_container(ports=[{"containerPort": 70000, "protocol": "TCP"}]),
     [("spec.containers[0].ports[0].containerPort",
       "Invalid value: 70000: must be between 1 and 65535, inclusive")]),
    (_container(ports=[{"protocol": "TCP"}]),
     [("spec.containers[0].ports[0].containerPort", "Required value")]),
    (_container(ports=[{"containerPort": 80, "protocol": "HTTP"}]),
     [("spec.containers[0].ports[0].protocol",
       'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"')]),
    (_container(imagePullPolicy="Sometimes"),
     [("spec.containers[0].imagePullPolicy", ('Unsupported value: "Sometimes": supported values: '
                                             '"Always", "IfNotPresent", "Never"'))]),
    (_set("spec.restartPolicy", "Sometimes"),
     [("spec.restartPolicy", ('Unsupported value: "Sometimes": supported values: "Always", '
                             '"OnFailure", "Never"'))]),
    (_set("spec.nodeName", "Node 1"), [("spec.nodeName", 'Invalid value: "Node 1": '
                                       + SUBDOMAIN_MSG)]),
    (_set("spec.activeDeadlineSeconds", 0),
     [("spec.activeDeadlineSeconds", ("Invalid value: 0: must be between 1 and 2147483647, "
                                     "inclusive"))]),
    (_container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     [("spec.containers[0].resources.requests[cpu]",
       'Invalid value: "2": must be less than or equal to cpu limit of 1')]),
])
def test_pod(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate("Pod", _mutated(POD, mutate))) == expected


@pytest.mark.parametrize("mutate, expected_fields", [
    (_container(image="nginx:1.26"), []),
    (_set("metadata.labels", {"app": "web"}), []),
    (_set("spec.activeDeadlineSeconds", 600), []),
    (_set("spec.tolerations", [{"key": "k", "operator": "Exists"}]), []),
    (_container(command=["sh"]), ["spec"]),
    (_set("spec.nodeName", "node-2"), ["spec"]),
    (lambda p: p["spec"]["containers"].append({"name": "side", "image": "x:1"}),
     ["spec.containers"]),
])
def test_pod_update(mutate: Mutation, expected_fields: list[str]) -> None:
    new = _obj("Pod", _mutated(POD, mutate))  # updates are defaulted too
    causes = validation.validate_update("Pod", new, POD)
    assert [c.field for c in causes] == expected_fields


def test_pod_update_messages() -> None:
    [cause] = validation.validate_update("Pod", _mutated(POD, _container(command=["sh"])), POD)
    assert cause.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
        "set to 1 if it was previously negative)\n")
    grown = _obj("Pod", _mutated(POD, lambda p: p["spec"]["containers"].append(
        {"name": "s", "image": "x"})))
    [cause] = validation.validate_update("Pod", grown, POD)
    assert cause.message == "Forbidden: pod updates may not add or remove containers"


@pytest.mark.parametrize("old_deadline, new_deadline, message", [
    (300, 600, "Invalid value: 600: must be less than or equal to previous value"),
    (300, None, "Invalid value: null: must not update from a positive integer to nil value"),
    (300, 100, None),
])
def test_pod_deadline_update(old_deadline: int, new_deadline: int | None,
                             message: str | None) -> None:
    old = _mutated(POD, _set("spec.activeDeadlineSeconds", old_deadline))
    new = _mutated(old, _set("spec.activeDeadlineSeconds", new_deadline))
    if new_deadline is None:
        new["spec"].pop("activeDeadlineSeconds")
    causes = validation.validate_update("Pod", new, old)
    assert [c.message for c in causes] == ([message] if message else [])


def test_pod_tolerations_only_added() -> None:
    old = _mutated(POD, _set("spec.tolerations", [{"key": "a", "operator": "Exists"}]))
    new = _mutated(old, _set("spec.tolerations", [{"key": "b", "operator": "Exists"}]))
    fields = [(c.field, c.message) for c in validation.validate_update("Pod", new, old)]
    assert fields[0] == ("spec.tolerations", ("Forbidden: existing toleration can not be modified "
                                             "except its tolerationSeconds"))


# --- the other kinds ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, obj, expected", [
    ("Namespace", {"metadata": {"name": "Dev"}},
     [("metadata.name", 'Invalid value: "Dev": ' + LABEL_MSG)]),
    ("Namespace", {"metadata": {"name": "a.b"}},
     [("metadata.name", 'Invalid value: "a.b": ' + LABEL_MSG)]),
    ("Namespace", {"metadata": {"name": "a", "namespace": "x"}},
     [("metadata.namespace", "Forbidden: not allowed on this type")]),
    ("Node", {"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Never"}]}},
     [("spec.taints[0].effect", ('Unsupported value: "Never": supported values: "NoSchedule", '
                                '"PreferNoSchedule", "NoExecute"'))]),
    ("Node", {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "-1"}}},
     [("status.capacity[cpu]", 'Invalid value: "-1": must be greater than or equal to 0')]),
    ("Event", {"metadata": {"name": "e", "namespace": "default"},
               "involvedObject": {"namespace": "other"}},
     [("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')]),
    ("Lease", {"metadata": {"name": "l", "namespace": "d"},
               "spec": {"leaseDurationSeconds": 0}},
     [("spec.leaseDurationSeconds", "Invalid value: 0: must be greater than 0")]),
    ("ClusterRole", {"metadata": {"name": "r"}, "rules": [{"resources": ["pods"]}]},
     [("rules[0].verbs", "Required value: verbs must contain at least one value"),
      ("rules[0].apiGroups", ("Required value: resource rules must supply at least one api "
                             "group"))]),
    ("Role", {"metadata": {"name": "r", "namespace": "d"},
              "rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]},
     [("rules[0].nonResourceURLs", ('Invalid value: ["/x"]: namespaced rules cannot apply to '
                                   "non-resource URLs"))]),
    ("ClusterRoleBinding", {"metadata": {"name": "b"},
                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                        "name": "r"},
                            "subjects": [{"kind": "ServiceAccount", "name": "sa"},
                                         {"kind": "Robot", "name": "x"}]},
     [("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"'),
      ("subjects[0].namespace", "Required value"),
      ("subjects[1].kind", ('Unsupported value: "Robot": supported values: "ServiceAccount", '
                           '"User", "Group"'))]),
    ("Widget", {"metadata": {"name": "a/b"}},
     [("metadata.name", "Invalid value: \"a/b\": may not contain '/'")]),
])
def test_other_kinds(kind: str, obj: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _fields(validation.validate(kind, obj)) == expected


def test_role_binding_role_ref_is_immutable() -> None:
    old = _obj("RoleBinding", {"metadata": {"name": "b", "namespace": "d"},
                               "roleRef": {"kind": "Role", "name": "r"}})
    new = _mutated(old, _set("roleRef.name", "other"))
    assert [c.field for c in validation.validate_update("RoleBinding", new, old)] == ["roleRef"]


def test_namespace_update_keeps_name() -> None:
    old = _obj("Namespace", {"metadata": {"name": "dev"}})
    new = _mutated(old, _set("metadata.name", "prod"))
    causes = validation.validate_update("Namespace", new, old)
    assert _fields(causes) == [("metadata.name", 'Invalid value: "prod": field is immutable')]
