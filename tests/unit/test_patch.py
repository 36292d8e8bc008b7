"""apply_patch: Content-Type dispatch, kube-apiserver's error answers, and real client patches."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.patch import (
    JSON_PATCH,
    MAX_JSON_PATCH_OPERATIONS,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
)

CM: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "db"},
                   "finalizers": ["a"]},
      "data": {"k": "v"}}

REJECTED = "the server rejected our request due to an error in our request"


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(("content_type", "patch", "expected_labels"), [
    (JSON_PATCH, [{"op": "add", "path": "/metadata/labels/x", "value": "1"}],
     {"app": "db", "x": "1"}),
    (MERGE_PATCH, {"metadata": {"labels": {"app": None, "x": "1"}}}, {"x": "1"}),
    (STRATEGIC_MERGE_PATCH, {"metadata": {"labels": {"x": "1"}}}, {"app": "db", "x": "1"}),
    ("application/merge-patch+json; charset=utf-8", {"metadata": {"labels": {"x": "1"}}},
     {"app": "db", "x": "1"}),
])
def test_each_patch_type_applies(content_type: str, patch: Any,
                                 expected_labels: dict[str, str]) -> None:
    original = copy.deepcopy(CM)
    result = apply_patch(content_type, original, body(patch), "ConfigMap")
    assert result["metadata"]["labels"] == expected_labels
    assert original == CM


def test_list_strategies_differ_between_merge_and_strategic() -> None:
    patch = body({"metadata": {"finalizers": ["b"]}})
    assert apply_patch(MERGE_PATCH, CM, patch, "ConfigMap")["metadata"]["finalizers"] == ["b"]
    assert apply_patch(STRATEGIC_MERGE_PATCH, CM, patch,
                       "ConfigMap")["metadata"]["finalizers"] == ["b", "a"]


@pytest.mark.parametrize("content_type", [
    "application/json", "application/apply-patch+yaml", "text/plain", ""])
def test_unknown_content_type_is_415(content_type: str) -> None:
    with pytest.raises(errors.APIError) as caught:
        apply_patch(content_type, CM, b"{}", "ConfigMap")
    assert (caught.value.code, caught.value.reason) == (415, "UnsupportedMediaType")
    assert f'got "{content_type}"' in caught.value.message


ErrorCase = tuple[str, str, bytes, int, str, str]

ERROR_CASES: list[ErrorCase] = [
    # JSON patch: decoding is a 400 with Go's text, applying a 422 that hides the reason.
    ("json patch not JSON", JSON_PATCH, b"[{", 400, "BadRequest",
     "unexpected end of JSON input"),
    ("json patch not a list", JSON_PATCH, body({"op": "add"}), 400, "BadRequest",
     "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    ("json patch element not an object", JSON_PATCH, body(["add"]), 400, "BadRequest",
     "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
    ("json patch test fails", JSON_PATCH,
     body([{"op": "test", "path": "/metadata/name", "value": "other"}]), 422, "Invalid",
     REJECTED),
    ("json patch path does not exist", JSON_PATCH,
     body([{"op": "remove", "path": "/spec/affinity"}]), 422, "Invalid", REJECTED),
    ("json patch unknown op", JSON_PATCH, body([{"op": "frob", "path": "/a"}]), 422,
     "Invalid", REJECTED),
    ("json patch too many operations", JSON_PATCH,
     body([{"op": "test", "path": "/kind", "value": "ConfigMap"}]
          * (MAX_JSON_PATCH_OPERATIONS + 1)), 413, "RequestEntityTooLarge",
     ("Request entity too large: The allowed maximum operations in a JSON patch is 10000, "
     "got 10001")),
    # Merge patch.
    ("merge patch not JSON", MERGE_PATCH, b"{", 400, "BadRequest", "Invalid JSON Patch"),
    ("merge patch null", MERGE_PATCH, b"null", 400, "BadRequest", "Invalid JSON Patch"),
    ("merge patch a string", MERGE_PATCH, b'"x"', 400, "BadRequest", "Invalid JSON Patch"),
    ("merge patch an array", MERGE_PATCH, b"[1]", 422, "Invalid",
     (' "" is invalid: patch: Invalid value: "[1]": couldn\'t get version/kind; json parse '
     "error: json: cannot unmarshal array into Go value of type struct")),
    # Strategic merge patch.
    ("strategic patch not JSON", STRATEGIC_MERGE_PATCH, b"{]", 400, "BadRequest",
     "invalid character"),
    ("strategic patch not an object", STRATEGIC_MERGE_PATCH, b"[]", 400, "BadRequest",
     "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ("strategic patch bad retainKeys", STRATEGIC_MERGE_PATCH,
     body({"data": {"$retainKeys": "k"}}), 400, "BadRequest",
     "invalid patch format of retainKeys"),
    ("strategic patch bad primitive list", STRATEGIC_MERGE_PATCH,
     body({"metadata": {"$deleteFromPrimitiveList": ["a"]}}), 400, "BadRequest",
     "invalid patch format of primitive list"),
    ("strategic patch list of lists", STRATEGIC_MERGE_PATCH,
     body({"metadata": {"finalizers": [["x"]]}}), 422, "Invalid", REJECTED),
    ("strategic patch element without merge key", STRATEGIC_MERGE_PATCH,
     body({"metadata": {"ownerReferences": [{"name": "x"}]}}), 500, "",
     "map: map[name:x] does not contain declared merge key: uid"),
    ("strategic patch $patch: merge in a list", STRATEGIC_MERGE_PATCH,
     body({"metadata": {"ownerReferences": [{"$patch": "merge"}]}}), 500, "",
     "merging lists cannot yet be specified in the patch"),
]


@pytest.mark.parametrize(("description", "content_type", "patch", "code", "reason", "message"),
                         ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_patch_errors_answer_like_kube_apiserver(description: str, content_type: str,
                                                 patch: bytes, code: int, reason: str,
                                                 message: str) -> None:
    original = {**copy.deepcopy(CM), "metadata": {**CM["metadata"], "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u"}]}}
    with pytest.raises(errors.APIError) as caught:
        apply_patch(content_type, original, patch, "ConfigMap")
    assert (caught.value.code, caught.value.reason) == (code, reason)
    if message == REJECTED:
        assert caught.value.message == REJECTED
        assert caught.value.status().get("details") is None
        assert caught.value.__cause__ is not None  # the real reason, kept for logs
    else:
        assert message in caught.value.message


@pytest.mark.parametrize(("content_type", "patch"), [
    (JSON_PATCH, b"null"), (JSON_PATCH, b"[]"), (STRATEGIC_MERGE_PATCH, b"null"),
    (STRATEGIC_MERGE_PATCH, b"{}"), (MERGE_PATCH, b"{}")])
def test_empty_patches_change_nothing(content_type: str, patch: bytes) -> None:
    assert apply_patch(content_type, CM, patch, "ConfigMap") == CM


def test_invalid_merge_patch_status_names_the_patch_field() -> None:
    with pytest.raises(errors.APIError) as caught:
        apply_patch(MERGE_PATCH, CM, b"[1]", "ConfigMap")
    details = caught.value.status()["details"]
    assert details["causes"][0]["field"] == "patch"
    assert details["causes"][0]["reason"] == "FieldValueInvalid"


# -- what kubectl 1.32 and the kubelet really send -------------------------------------

LAST_APPLIED_V1: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"annotations": {}, "labels": {"app": "db"}, "name": "db",
                 "namespace": "default"},
    "spec": {"containers": [{
        "env": [{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                {"name": "POSTGRES_PASSWORD", "value": "secret"}],
        "image": "postgres:16", "name": "postgres",
        "ports": [{"containerPort": 5432}],
        "volumeMounts": [{"mountPath": "/var/lib/postgresql/data", "name": "data"}]}],
        "volumes": [{"emptyDir": {}, "name": "data"}]},
}
LAST_APPLIED_V2 = copy.deepcopy(LAST_APPLIED_V1)
LAST_APPLIED_V2["metadata"]["labels"]["tier"] = "storage"
LAST_APPLIED_V2["spec"]["containers"][0].update(
    image="postgres:16.4", env=[{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                {"name": "POSTGRES_DB", "value": "app"}])
LAST_APPLIED_V2["spec"]["volumes"] = [{"name": "data",
                                       "persistentVolumeClaim": {"claimName": "db-data"}}]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SA_MOUNT = {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "name": "kube-api-access-7x2lq", "readOnly": True}
SA_VOLUME = {"name": "kube-api-access-7x2lq", "projected": {"defaultMode": 420, "sources": [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}


def live_pod() -> dict[str, Any]:
    """The Pod as the server holds it after `kubectl apply` of v1: defaults and extras."""
    pod = copy.deepcopy(LAST_APPLIED_V1)
    pod["metadata"].update(
        annotations={LAST_APPLIED: json.dumps(LAST_APPLIED_V1) + "\n"},
        uid="8d4b8a3c-0b0e-4d1e-9d55-0d6f2b8f3c11", resourceVersion="1042",
        creationTimestamp="2025-01-10T10:00:00Z")
    container = pod["spec"]["containers"][0]
    container.update(imagePullPolicy="IfNotPresent", resources={},
                     terminationMessagePath="/dev/termination-log",
                     terminationMessagePolicy="File")
    container["ports"][0]["protocol"] = "TCP"
    container["volumeMounts"].append(SA_MOUNT)
    pod["spec"]["volumes"].append(SA_VOLUME)
    pod["spec"].update(dnsPolicy="ClusterFirst", restartPolicy="Always", nodeName="node-1",
                       serviceAccountName="default")
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]}
    return pod


def kubectl_apply_patch_for_v2() -> dict[str, Any]:
    """The three-way patch kubectl 1.32 computes from last-applied v1, manifest v2, live."""
    return {
        "metadata": {"annotations": {LAST_APPLIED: json.dumps(LAST_APPLIED_V2) + "\n"},
                     "labels": {"tier": "storage"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "postgres"}],
            "$setElementOrder/volumes": [{"name": "data"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "PGDATA"}, {"name": "POSTGRES_DB"}],
                "env": [{"name": "POSTGRES_DB", "value": "app"},
                        {"$patch": "delete", "name": "POSTGRES_PASSWORD"}],
                "image": "postgres:16.4", "name": "postgres"}],
            "volumes": [{"$retainKeys": ["name", "persistentVolumeClaim"], "emptyDir": None,
                         "name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}],
        },
    }


def test_kubectl_apply_of_a_changed_pod_manifest() -> None:
    live = live_pod()
    result = apply_patch(STRATEGIC_MERGE_PATCH, live, body(kubectl_apply_patch_for_v2()), "Pod")

    expected = live_pod()
    expected["metadata"]["annotations"][LAST_APPLIED] = json.dumps(LAST_APPLIED_V2) + "\n"
    expected["metadata"]["labels"] = {"app": "db", "tier": "storage"}
    container = expected["spec"]["containers"][0]
    container["image"] = "postgres:16.4"
    container["env"] = [{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        {"name": "POSTGRES_DB", "value": "app"}]
    expected["spec"]["volumes"] = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}, SA_VOLUME]
    assert result == expected
    assert live == live_pod()


def test_kubectl_apply_of_a_changed_pvc_manifest() -> None:
    v1: dict[str, Any] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
          "metadata": {"annotations": {}, "labels": {"app": "db"}, "name": "data",
                       "namespace": "default"},
          "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                   "storageClassName": "local"}}
    v2 = copy.deepcopy(v1)
    v2["metadata"]["labels"] = {"tier": "storage"}
    v2["metadata"]["annotations"] = {"backup.example.com/schedule": "daily"}
    v2["spec"]["resources"]["requests"]["storage"] = "2Gi"
    live = copy.deepcopy(v1)
    live["metadata"].update(
        annotations={LAST_APPLIED: json.dumps(v1) + "\n", "pv.kubernetes.io/bind-completed": "yes",
                     "pv.kubernetes.io/bound-by-controller": "yes"},
        finalizers=["kubernetes.io/pvc-protection"], uid="u-pvc", resourceVersion="77")
    live["spec"].update(volumeMode="Filesystem", volumeName="pvc-u-pvc")
    live["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                      "capacity": {"storage": "1Gi"}}
    patch = {"metadata": {"annotations": {"backup.example.com/schedule": "daily",
                                          LAST_APPLIED: json.dumps(v2) + "\n"},
                          "labels": {"app": None, "tier": "storage"}},
             "spec": {"resources": {"requests": {"storage": "2Gi"}}}}

    result = apply_patch(STRATEGIC_MERGE_PATCH, live, body(patch), "PersistentVolumeClaim")

    assert result["metadata"]["labels"] == {"tier": "storage"}
    assert result["metadata"]["annotations"] == {
        LAST_APPLIED: json.dumps(v2) + "\n", "pv.kubernetes.io/bind-completed": "yes",
        "pv.kubernetes.io/bound-by-controller": "yes", "backup.example.com/schedule": "daily"}
    assert result["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert result["spec"] == {**live["spec"], "resources": {"requests": {"storage": "2Gi"}}}
    assert result["status"] == live["status"]


def test_kubectl_apply_removing_a_finalizer_keeps_the_servers_own() -> None:
    live: dict[str, Any] = {"metadata": {"name": "x", "finalizers": ["example.com/a", "example.com/b",
                                                    "kubernetes.io/pvc-protection"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                          "$setElementOrder/finalizers": ["example.com/c", "example.com/b"],
                          "finalizers": ["example.com/c"]}}
    result = apply_patch(STRATEGIC_MERGE_PATCH, live, body(patch), "PersistentVolumeClaim")
    assert result["metadata"]["finalizers"] == [
        "example.com/c", "example.com/b", "kubernetes.io/pvc-protection"]


def test_kubelet_status_patch() -> None:
    """The kubelet patches pod status with $setElementOrder/conditions and the statuses."""
    live = live_pod()
    patch = {
        "metadata": {"uid": live["metadata"]["uid"]},
        "status": {
            "$setElementOrder/conditions": [{"type": "PodReadyToStartContainers"},
                                            {"type": "Initialized"}, {"type": "Ready"},
                                            {"type": "ContainersReady"},
                                            {"type": "PodScheduled"}],
            "conditions": [
                {"lastTransitionTime": "2025-01-10T10:00:05Z", "status": "True",
                 "type": "PodReadyToStartContainers"},
                {"lastTransitionTime": "2025-01-10T10:00:09Z", "message": None,
                 "status": "False", "type": "Ready", "reason": "ContainersNotReady"},
                {"lastTransitionTime": "2025-01-10T10:00:09Z", "status": "False",
                 "type": "ContainersReady"},
                {"lastTransitionTime": "2025-01-10T10:00:00Z", "status": "True",
                 "type": "PodScheduled"}],
            "containerStatuses": [{"name": "postgres", "ready": False, "restartCount": 1}],
            "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
        },
    }
    result = apply_patch(STRATEGIC_MERGE_PATCH, live, body(patch), "Pod")
    conditions = result["status"]["conditions"]
    assert [c["type"] for c in conditions] == ["PodReadyToStartContainers", "Initialized",
                                               "Ready", "ContainersReady", "PodScheduled"]
    assert conditions[1] == {"type": "Initialized", "status": "True"}
    assert conditions[2] == {"type": "Ready", "status": "False",
                             "lastTransitionTime": "2025-01-10T10:00:09Z",
                             "reason": "ContainersNotReady"}
    assert result["status"]["containerStatuses"] == [
        {"name": "postgres", "ready": False, "restartCount": 1}]
    assert result["status"]["phase"] == "Running"
