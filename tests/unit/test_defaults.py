"""Server-side defaults, pinned to what kube-apiserver returns for the same input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver import defaults
from apiserver.defaults import apply_defaults


def _defaulted(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    apply_defaults(kind, out)
    return out


def test_bare_pod() -> None:
    pod = _defaulted("Pod", {"metadata": {"name": "p"},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    assert pod["spec"] == {
        "containers": [{
            "name": "c", "image": "busybox", "imagePullPolicy": "Always",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File", "resources": {},
        }],
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
        "enableServiceLinks": True, "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
    }
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/busybox", "Always"),
    ("localhost:5000/busybox:v1", "IfNotPresent"),
    ("docker.io/library/debian:bookworm", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ("busybox:latest@sha256:" + "a" * 64, "Always"),
    ("BusyBox", "IfNotPresent"),  # not a valid reference: no tag found
    ("", "IfNotPresent"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert defaults.default_pull_policy(image) == policy


def test_explicit_pod_values_are_kept() -> None:
    spec = {"restartPolicy": "Never", "dnsPolicy": "Default", "terminationGracePeriodSeconds": 0,
            "schedulerName": "mine", "enableServiceLinks": False,
            "containers": [{"name": "c", "image": "x:1", "imagePullPolicy": "Never",
                            "terminationMessagePolicy": "FallbackToLogsOnError"}]}
    pod = _defaulted("Pod", {"spec": spec})
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["dnsPolicy"] == "Default"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 0
    assert pod["spec"]["schedulerName"] == "mine"
    assert pod["spec"]["enableServiceLinks"] is False
    container = pod["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_pod_volumes() -> None:
    spec = {"containers": [{"name": "c", "image": "x:1"}], "volumes": [
        {"name": "none"},
        {"name": "s", "secret": {"secretName": "s"}},
        {"name": "cm", "configMap": {"name": "cm", "defaultMode": 256}},
        {"name": "hp", "hostPath": {"path": "/tmp"}},
        {"name": "ed", "emptyDir": {"medium": "Memory"}},
        {"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "d", "downwardAPI": {"items": []}},
        {"name": "pj", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
    ]}
    volumes = _defaulted("Pod", {"spec": spec})["spec"]["volumes"]
    assert volumes == [
        {"name": "none", "emptyDir": {}},
        {"name": "s", "secret": {"secretName": "s", "defaultMode": 420}},
        {"name": "cm", "configMap": {"name": "cm", "defaultMode": 256}},
        {"name": "hp", "hostPath": {"path": "/tmp", "type": ""}},
        {"name": "ed", "emptyDir": {"medium": "Memory"}},
        {"name": "pvc", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "d", "downwardAPI": {"items": [], "defaultMode": 420}},
        {"name": "pj", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}},
    ]


def test_container_details() -> None:
    container = {
        "name": "c", "image": "x:1",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}},
        "livenessProbe": {"httpGet": {"port": 80}},
        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    pod = _defaulted("Pod", {"spec": {"containers": [container]}})
    got = pod["spec"]["containers"][0]
    assert [p["protocol"] for p in got["ports"]] == ["TCP", "UDP"]
    assert "hostPort" not in got["ports"][0]
    # requests default to limits only where missing
    assert got["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert got["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
        "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert got["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert pod["status"]["qosClass"] == "Burstable"


def test_host_network_sets_host_ports() -> None:
    spec = {"hostNetwork": True,
            "containers": [{"name": "c", "image": "x:1", "ports": [{"containerPort": 8080}]}]}
    pod = _defaulted("Pod", {"spec": spec})
    assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080


@pytest.mark.parametrize("resources, qos", [
    ([{}], "BestEffort"),
    ([{"requests": {"cpu": "0"}}], "BestEffort"),
    ([{"requests": {"storage": "1Gi"}}], "BestEffort"),
    ([{"requests": {"cpu": "100m"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),  # requests default to limits
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}],
     "Guaranteed"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}], "Burstable"),
    ([{"limits": {"cpu": "1"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
])
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    containers = [{"name": f"c{i}", "image": "x:1", "resources": r}
                  for i, r in enumerate(resources)]
    pod = _defaulted("Pod", {"spec": {"containers": containers}})
    assert pod["status"]["qosClass"] == qos


@pytest.mark.parametrize("kind, obj, expected", [
    ("PersistentVolume", {"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x"}}},
     {"spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/x", "type": ""},
               "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"},
      "status": {"phase": "Pending"}}),
    ("PersistentVolume", {"spec": {"persistentVolumeReclaimPolicy": "Delete",
                                   "volumeMode": "Block"}, "status": {"phase": "Bound"}},
     {"spec": {"persistentVolumeReclaimPolicy": "Delete", "volumeMode": "Block"},
      "status": {"phase": "Bound"}}),
    ("PersistentVolumeClaim", {"spec": {"accessModes": ["ReadWriteOnce"]}},
     {"spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"},
      "status": {"phase": "Pending"}}),
    ("StorageClass", {"provisioner": "p"},
     {"provisioner": "p", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
    ("StorageClass", {"provisioner": "p", "reclaimPolicy": "Retain",
                      "volumeBindingMode": "WaitForFirstConsumer"},
     {"provisioner": "p", "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}),
    ("Secret", {"data": {}}, {"data": {}, "type": "Opaque"}),
    ("Secret", {"type": "kubernetes.io/tls"}, {"type": "kubernetes.io/tls"}),
    ("ConfigMap", {"metadata": {"name": "c"}}, {"metadata": {"name": "c"}}),
    ("Lease", {"spec": {}}, {"spec": {}}),
    ("Namespace", {"metadata": {"name": "dev"}},
     {"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
      "status": {"phase": "Active"}}),
    ("Node", {"status": {"capacity": {"cpu": "2"}}},
     {"status": {"capacity": {"cpu": "2"}, "allocatable": {"cpu": "2"}}}),
    ("Node", {"status": {"capacity": {"cpu": "2"}, "allocatable": {"cpu": "1"}}},
     {"status": {"capacity": {"cpu": "2"}, "allocatable": {"cpu": "1"}}}),
    ("ClusterRoleBinding",
     {"roleRef": {"kind": "ClusterRole", "name": "r"},
      "subjects": [{"kind": "User", "name": "u"}, {"kind": "Group", "name": "g"},
                   {"kind": "ServiceAccount", "name": "s", "namespace": "d"}]},
     {"roleRef": {"kind": "ClusterRole", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
      "subjects": [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"},
                   {"kind": "Group", "name": "g", "apiGroup": "rbac.authorization.k8s.io"},
                   {"kind": "ServiceAccount", "name": "s", "namespace": "d", "apiGroup": ""}]}),
    ("Event", {"reason": "R"},
     {"reason": "R", "involvedObject": {}, "source": {}, "reportingComponent": "",
      "reportingInstance": "", "firstTimestamp": None, "lastTimestamp": None,
      "eventTime": None}),
    ("Unknown", {"a": 1}, {"a": 1}),
])
def test_kind_defaults(kind: str, obj: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _defaulted(kind, obj) == expected


def test_namespace_defaulting_leaves_finalizers_to_the_create_strategy() -> None:
    # Defaulting also runs on updates; the namespace controller's finalize removes
    # "kubernetes", so defaulting must never put it back.
    ns = _defaulted("Namespace", {"metadata": {"name": "a"}, "spec": {"finalizers": []}})
    assert ns["spec"]["finalizers"] == []


def test_csi_driver() -> None:
    driver = _defaulted("CSIDriver", {"metadata": {"name": "d"}})
    assert driver["spec"] == {
        "attachRequired": True, "podInfoOnMount": False, "storageCapacity": False,
        "requiresRepublish": False, "seLinuxMount": False,
        "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"]}


@pytest.mark.parametrize("kind, obj", [
    ("Pod", {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                      "volumes": [{"name": "v"}]}}),
    ("Namespace", {"metadata": {"name": "n"}}),
    ("PersistentVolume", {"spec": {}}),
    ("Event", {}),
])
def test_idempotent(kind: str, obj: dict[str, Any]) -> None:
    once = _defaulted(kind, obj)
    assert _defaulted(kind, once) == once


def test_secret_string_data_is_folded_into_data() -> None:
    secret = _defaulted("Secret", {"data": {"a": "eA==", "b": "eQ=="},
                                   "stringData": {"b": "hello", "c": "é"}})
    assert secret == {"data": {"a": "eA==", "b": "aGVsbG8=", "c": "w6k="}, "type": "Opaque"}
