"""Table printing pinned against Kubernetes' printers.go and duration.HumanDuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apiserver import printers

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, age_seconds: float = 300, **extra: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(age_seconds), "resourceVersion": "7",
            "uid": "u-" + name, **extra}


def cells(kind: str, obj: dict[str, Any]) -> list[Any]:
    table = printers.to_table(kind, [obj], list_meta={}, now=NOW)
    return list(table["rows"][0]["cells"])


def columns(kind: str) -> list[tuple[str, int]]:
    table = printers.to_table(kind, [], list_meta={}, now=NOW)
    return [(c["name"], c["priority"]) for c in table["columnDefinitions"]]


@pytest.mark.parametrize(("seconds", "expected"), [
    (-3, "<invalid>"), (-1.5, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"),
    (182, "3m2s"), (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"),
    (7 * 3600 + 5 * 60, "7h5m"), (8 * 3600 + 5 * 60, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (2 * 86400 + 3 * 3600, "2d3h"), (8 * 86400, "8d"),
    (729 * 86400, "729d"), (730 * 86400, "2y"), (3 * 365 * 86400 + 86400, "3y1d"),
    (9 * 365 * 86400 + 86400, "9y"),
])
def test_human_duration_follows_kubernetes_rules(seconds: float, expected: str) -> None:
    assert printers.human_duration(timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize(("modes", "expected"), [
    (["ReadWriteOnce"], "RWO"),
    (["ReadWriteMany", "ReadWriteOnce"], "RWO,RWX"),  # fixed order, not input order
    (["ReadWriteOncePod", "ReadOnlyMany", "ReadOnlyMany"], "ROX,RWOP"),
    ([], ""), (None, ""),
])
def test_access_modes_are_abbreviated_in_kubernetes_order(modes: list[str] | None,
                                                          expected: str) -> None:
    assert printers.access_modes(modes) == expected


def test_table_envelope_and_partial_object_metadata() -> None:
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("data"),
           "spec": {}, "status": {"phase": "Pending"}}
    table = printers.to_table("PersistentVolumeClaim", [pvc],
                              list_meta={"resourceVersion": "42", "continue": ""}, now=NOW)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    assert table["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": printers.NAME.description, "priority": 0}
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata",
                                          "apiVersion": "meta.k8s.io/v1",
                                          "metadata": pvc["metadata"]}


@pytest.mark.parametrize(("include", "has_object", "is_full"), [
    ("None", False, False), ("Metadata", True, False), ("Object", True, True)])
def test_include_object(include: str, has_object: bool, is_full: bool) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("c"), "data": {"a": "1"}}
    row = printers.to_table("ConfigMap", [cm], list_meta={}, include_object=include,
                            now=NOW)["rows"][0]
    assert ("object" in row) is has_object
    assert (row.get("object") is cm) is is_full


def test_unknown_include_object_is_rejected() -> None:
    with pytest.raises(printers.UnknownIncludeObject):
        printers.to_table("Pod", [], list_meta={}, include_object="Everything", now=NOW)


def test_no_headers_drops_column_definitions() -> None:
    table = printers.to_table("Pod", [], list_meta={}, now=NOW, no_headers=True)
    assert "columnDefinitions" not in table and table["rows"] == []


def test_pv_row_bound_with_wide_columns() -> None:
    pv = {"metadata": meta("pv1", 3 * 3600),
          "spec": {"capacity": {"storage": "1Gi"},
                   "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                   "claimRef": {"namespace": "default", "name": "data"},
                   "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    assert cells("PersistentVolume", pv) == [
        "pv1", "1Gi", "RWO,RWX", "Delete", "Bound", "default/data", "standard", "<unset>", "",
        "3h", "Filesystem"]
    assert columns("PersistentVolume")[-1] == ("VolumeMode", 1)


def test_pv_terminating_and_beta_class_annotation() -> None:
    pv = {"metadata": meta("pv2", deletionTimestamp=ago(1),
                           annotations={"volume.beta.kubernetes.io/storage-class": "old"}),
          "spec": {"storageClassName": "new"}, "status": {"phase": "Released"}}
    row = cells("PersistentVolume", pv)
    assert (row[1], row[4], row[5], row[6]) == ("0", "Terminating", "", "old")


def test_pvc_rows_bound_and_pending() -> None:
    bound = {"metadata": meta("data", 90),
             "spec": {"volumeName": "pv1", "storageClassName": "standard",
                      "volumeAttributesClassName": "gold"},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"]}}
    assert cells("PersistentVolumeClaim", bound) == [
        "data", "Bound", "pv1", "1Gi", "RWO", "standard", "gold", "90s", "<unset>"]
    pending = {"metadata": meta("wait"), "spec": {"resources": {"requests": {"storage": "5Gi"}}},
               "status": {"phase": "Pending"}}
    assert cells("PersistentVolumeClaim", pending)[:6] == ["wait", "Pending", "", "", "", ""]


@pytest.mark.parametrize(("annotations", "name"), [
    ({"storageclass.kubernetes.io/is-default-class": "true"}, "standard (default)"),
    ({"storageclass.beta.kubernetes.io/is-default-class": "true"}, "standard (default)"),
    ({"storageclass.kubernetes.io/is-default-class": "false"}, "standard"),
    ({}, "standard"),
])
def test_storage_class_default_marker(annotations: dict[str, str], name: str) -> None:
    sc = {"metadata": meta("standard", 2 * 86400 + 3 * 3600, annotations=annotations),
          "provisioner": "storagelab.io/local"}
    assert cells("StorageClass", sc) == [name, "storagelab.io/local", "Delete", "Immediate",
                                         False, "2d3h"]


def _container(state: dict[str, Any], *, ready: bool = False, restarts: int = 0,
               last: dict[str, Any] | None = None, name: str = "app") -> dict[str, Any]:
    status = {"name": name, "ready": ready, "restartCount": restarts, "state": state}
    if last:
        status["lastState"] = last
    return status


def _pod(phase: str, statuses: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    meta_extra = extra.pop("meta", {})
    spec = {"containers": [{"name": s["name"]} for s in statuses] or [{"name": "app"}]}
    spec.update(extra.pop("spec", {}))
    return {"metadata": meta("p", **meta_extra), "spec": spec,
            "status": {"phase": phase, "containerStatuses": statuses, **extra}}


RUNNING = {"running": {"startedAt": ago(60)}}
POD_CASES = [
    ("pending-unscheduled", _pod("Pending", []), "0/1", "Pending", "0"),
    ("creating", _pod("Pending", [_container({"waiting": {"reason": "ContainerCreating"}})]),
     "0/1", "ContainerCreating", "0"),
    ("running", _pod("Running", [_container(RUNNING, ready=True)]), "1/1", "Running", "0"),
    ("completed", _pod("Succeeded", [_container(
        {"terminated": {"exitCode": 0, "reason": "Completed"}})]), "0/1", "Completed", "0"),
    ("exit-code", _pod("Failed", [_container({"terminated": {"exitCode": 3}})]),
     "0/1", "ExitCode:3", "0"),
    ("crashloop", _pod("Running", [_container(
        {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=5,
        last={"terminated": {"exitCode": 1, "finishedAt": ago(300)}})]),
     "0/1", "CrashLoopBackOff", "5 (5m ago)"),
    ("terminating", _pod("Running", [_container(RUNNING, ready=True)],
                         meta={"deletionTimestamp": ago(1)}), "1/1", "Terminating", "0"),
    ("node-lost", _pod("Running", [_container(RUNNING, ready=True)], reason="NodeLost",
                       meta={"deletionTimestamp": ago(1)}), "1/1", "Unknown", "0"),
    ("evicted", _pod("Failed", [], reason="Evicted"), "0/1", "Evicted", "0"),
    ("init-running", _pod("Pending", [_container({"waiting": {"reason": "PodInitializing"}})],
                          spec={"initContainers": [{"name": "i1"}, {"name": "i2"}]},
                          initContainerStatuses=[
                              _container({"terminated": {"exitCode": 0}}, name="i1"),
                              _container({"running": {}}, name="i2")]),
     "0/1", "Init:1/2", "0"),
    ("init-crash", _pod("Pending", [], spec={"initContainers": [{"name": "i1"}]},
                        initContainerStatuses=[_container(
                            {"waiting": {"reason": "CrashLoopBackOff"}}, name="i1",
                            restarts=2)]),
     "0/1", "Init:CrashLoopBackOff", "2"),
    ("init-failed", _pod("Pending", [], spec={"initContainers": [{"name": "i1"}]},
                         initContainerStatuses=[_container(
                             {"terminated": {"exitCode": 2}}, name="i1")]),
     "0/1", "Init:ExitCode:2", "0"),
]


@pytest.mark.parametrize(("case", "pod", "ready", "status", "restarts"), POD_CASES,
                         ids=[c[0] for c in POD_CASES])
def test_pod_status_strings(case: str, pod: dict[str, Any], ready: str, status: str,
                            restarts: str) -> None:
    row = cells("Pod", pod)
    assert row[1:4] == [ready, status, restarts]
    assert row[4] == "5m"


def test_pod_wide_columns_and_completed_row_condition() -> None:
    pod = _pod("Succeeded", [], podIPs=[{"ip": "10.0.0.5"}])
    pod["spec"]["nodeName"] = "node-1"
    row = printers.to_table("Pod", [pod], list_meta={}, now=NOW)["rows"][0]
    assert row["cells"][5:] == ["10.0.0.5", "node-1", "<none>", "<none>"]
    assert row["conditions"][0]["type"] == "Completed"
    assert row["conditions"][0]["reason"] == "Succeeded"
    assert [n for n, p in columns("Pod") if p == 0] == ["Name", "Ready", "Status", "Restarts",
                                                        "Age"]


@pytest.mark.parametrize(("conditions", "unschedulable", "status"), [
    ([{"type": "Ready", "status": "True"}], False, "Ready"),
    ([{"type": "Ready", "status": "False"}], False, "NotReady"),
    ([{"type": "Ready", "status": "Unknown"}], True, "NotReady,SchedulingDisabled"),
    ([], False, "Unknown"),
])
def test_node_status(conditions: list[dict[str, str]], unschedulable: bool,
                     status: str) -> None:
    node = {"metadata": meta("n1", labels={"node-role.kubernetes.io/control-plane": "",
                                           "node-role.kubernetes.io/": "x"}),
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.32.0"},
                       "addresses": [{"type": "InternalIP", "address": "10.1.1.1"}]}}
    assert cells("Node", node) == ["n1", status, "control-plane", "5m", "v1.32.0", "10.1.1.1",
                                   "<none>", "<unknown>", "<unknown>", "<unknown>"]


def test_simple_kinds() -> None:
    assert cells("Namespace", {"metadata": meta("default"), "status": {"phase": "Active"}}) == \
        ["default", "Active", "5m"]
    assert cells("ConfigMap", {"metadata": meta("c"), "data": {"a": "1"},
                               "binaryData": {"b": "AA=="}}) == ["c", 2, "5m"]
    assert cells("Secret", {"metadata": meta("s"), "type": "Opaque", "data": {"a": "MQ=="}}) \
        == ["s", "Opaque", 1, "5m"]
    assert cells("Lease", {"metadata": meta("l"), "spec": {"holderIdentity": "node-1"}}) == \
        ["l", "node-1", "5m"]


def test_event_row_has_wide_cells_in_column_order() -> None:
    event = {"metadata": meta("data.17a"), "type": "Normal", "reason": "ProvisioningSucceeded",
             "involvedObject": {"kind": "PersistentVolumeClaim", "name": "data"},
             "source": {"component": "persistentvolume-controller"},
             "message": " provisioned pv1 \n", "firstTimestamp": ago(600),
             "lastTimestamp": ago(30), "count": 2}
    assert cells("Event", event) == [
        "30s", "Normal", "ProvisioningSucceeded", "persistentvolumeclaim/data", "",
        "persistentvolume-controller", "provisioned pv1", "10m", 2, "data.17a"]
    assert [n for n, p in columns("Event") if p == 0] == ["Last Seen", "Type", "Reason",
                                                          "Object", "Message"]


def test_event_without_timestamps_uses_event_time_and_count_one() -> None:
    event = {"metadata": meta("e"), "eventTime": "2024-06-01T11:59:00.000000Z",
             "involvedObject": {"kind": "Node"}, "reportingComponent": "kubelet",
             "reportingInstance": "node-1"}
    row = cells("Event", event)
    assert (row[0], row[3], row[5], row[7], row[8]) == ("60s", "node", "kubelet, node-1",
                                                        "60s", 1)


def test_role_binding_subjects() -> None:
    binding = {"metadata": meta("rb"), "roleRef": {"kind": "ClusterRole", "name": "edit"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "dev"},
                            {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
                            {"kind": "User", "name": "bob"}]}
    assert cells("RoleBinding", binding) == ["rb", "ClusterRole/edit", "5m", "alice, bob",
                                             "dev", "ns/sa"]
    assert columns("ClusterRoleBinding")[1] == ("Role", 0)


@pytest.mark.parametrize("kind", ["Role", "ClusterRole", "Widget"])
def test_default_table_for_kinds_without_printer(kind: str) -> None:
    assert columns(kind) == [("Name", 0), ("Created At", 0)]
    assert cells(kind, {"metadata": meta("r", 0)}) == ["r", "2024-06-01T12:00:00Z"]
