"""Field selectors: parsing, escapes, per-kind labels and object fields, as in Kubernetes."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import fields
from apimachinery.fields import FieldSelectorError, UnsupportedFieldLabel


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("a=b", "a=b"),
    ("a==b", "a=b"),
    ("a!=b", "a!=b"),
    ("b=1,a=2", "a=2,b=1"),  # terms are sorted
    ("a=", "a="),
    ("a=b,,c=d", "a=b,c=d"),
    (r"a=x\,y", r"a=x\,y"),
    (r"a=x\=y\\z", r"a=x\=y\\z"),
    ("spec.nodeName=node-1", "spec.nodeName=node-1"),
])
def test_parse_round_trip(text: str, canonical: str) -> None:
    assert str(fields.parse(text)) == canonical


def test_escaped_value_is_unescaped() -> None:
    [req] = fields.parse(r"a=x\,y\=z\\w").requirements
    assert req.value == "x,y=z\\w"


@pytest.mark.parametrize("text, message", [
    ("a", "invalid selector: 'a'; can't understand 'a'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    (r"a=b\x", "invalid field selector: invalid escape sequence: \\x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(FieldSelectorError) as err:
        fields.parse(text)
    assert str(err.value) == message


@pytest.mark.parametrize("text, matched", [
    ("", True), ("a=1", True), ("a==1", True), ("a=2", False), ("a!=2", True),
    ("a!=1", False), ("missing=", True), ("missing!=x", True), ("missing=x", False),
    ("a=1,b=2", True), ("a=1,b=3", False),
])
def test_matches(text: str, matched: bool) -> None:
    assert fields.parse(text).matches({"a": "1", "b": "2"}) is matched


@pytest.mark.parametrize("kind, label, message", [
    ("Pod", "spec.foo", "field label not supported: spec.foo"),
    ("Node", "metadata.namespace", "field label not supported: metadata.namespace"),
    ("Namespace", "metadata.namespace", "field label not supported: metadata.namespace"),
    ("Event", "message", "field label not supported: message"),
    ("Secret", "data", "field label not supported: data"),
    ("PersistentVolumeClaim", "spec.volumeName",
     '"spec.volumeName" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("PersistentVolume", "spec.storageClassName",
     ('"spec.storageClassName" is not a known field selector: only "metadata.name", '
     '"metadata.namespace"')),
    ("ConfigMap", "data", ('"data" is not a known field selector: only "metadata.name", '
     '"metadata.namespace"')),
    ("StorageClass", "provisioner", ('"provisioner" is not a known field selector: only '
     '"metadata.name", "metadata.namespace"')),
])
def test_unsupported_labels(kind: str, label: str, message: str) -> None:
    with pytest.raises(UnsupportedFieldLabel) as err:
        fields.parse_for_kind(kind, f"{label}=x")
    assert str(err.value) == message


@pytest.mark.parametrize("kind, label", [
    ("Pod", "spec.nodeName"), ("Pod", "status.phase"), ("Pod", "spec.restartPolicy"),
    ("Pod", "spec.schedulerName"), ("Pod", "spec.serviceAccountName"), ("Pod", "status.podIP"),
    ("Pod", "status.nominatedNodeName"), ("Pod", "metadata.namespace"),
    ("Event", "involvedObject.kind"), ("Event", "involvedObject.uid"), ("Event", "reason"),
    ("Event", "reportingComponent"), ("Event", "source"), ("Event", "type"),
    ("Secret", "type"), ("Namespace", "status.phase"), ("Node", "spec.unschedulable"),
    ("PersistentVolume", "metadata.name"), ("PersistentVolumeClaim", "metadata.namespace"),
    ("Lease", "metadata.name"), ("ClusterRole", "metadata.name"),
])
def test_supported_labels(kind: str, label: str) -> None:
    assert fields.parse_for_kind(kind, f"{label}=x").requirements[0].field == label


def test_legacy_spec_host_becomes_node_name() -> None:
    assert str(fields.parse_for_kind("Pod", "spec.host=n1")) == "spec.nodeName=n1"


POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
}


@pytest.mark.parametrize("kind, obj, expected", [
    ("Pod", POD, {"metadata.name": "p", "metadata.namespace": "ns", "spec.nodeName": "n1",
                  "spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
                  "spec.serviceAccountName": "default", "spec.hostNetwork": "false",
                  "status.phase": "Running", "status.podIP": "10.0.0.1",
                  "status.nominatedNodeName": ""}),
    ("Node", {"metadata": {"name": "n"}, "spec": {"unschedulable": True}},
     {"metadata.name": "n", "spec.unschedulable": "true"}),
    ("Node", {"metadata": {"name": "n"}}, {"metadata.name": "n", "spec.unschedulable": "false"}),
    ("Namespace", {"metadata": {"name": "x"}, "status": {"phase": "Active"}},
     {"metadata.name": "x", "status.phase": "Active"}),
    ("Secret", {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"},
     {"metadata.name": "s", "metadata.namespace": "d", "type": "Opaque"}),
    ("PersistentVolume", {"metadata": {"name": "pv"}, "spec": {"storageClassName": "x"}},
     {"metadata.name": "pv"}),
    ("PersistentVolumeClaim", {"metadata": {"name": "c", "namespace": "d"}},
     {"metadata.name": "c", "metadata.namespace": "d"}),
])
def test_object_fields(kind: str, obj: dict[str, Any], expected: dict[str, str]) -> None:
    assert fields.object_fields(kind, obj) == expected


def test_event_fields() -> None:
    event = {
        "metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": "d", "name": "data",
                           "uid": "u1", "apiVersion": "v1", "resourceVersion": "7"},
        "reason": "ProvisioningSucceeded", "type": "Normal",
        "reportingComponent": "persistentvolume-controller",
    }
    got = fields.object_fields("Event", event)
    assert got["involvedObject.name"] == "data"
    assert got["involvedObject.fieldPath"] == ""
    # source falls back to reportingComponent when source.component is empty
    assert got["source"] == "persistentvolume-controller"
    event["source"] = {"component": "kubelet"}
    assert fields.object_fields("Event", event)["source"] == "kubelet"
    assert fields.matches("Event", fields.parse_for_kind(
        "Event", "involvedObject.name=data,type=Normal"), event)


def test_kubelet_pod_filter() -> None:
    selector = fields.parse_for_kind("Pod", "spec.nodeName=n1,status.phase!=Failed")
    assert fields.matches("Pod", selector, POD)
    assert not fields.matches("Pod", selector, {**POD, "spec": {"nodeName": "n2"}})
    assert selector.requires_exact("spec.nodeName") == "n1"
    assert selector.requires_exact("status.phase") is None
