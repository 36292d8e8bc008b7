"""OpenAPI documents: every served kind has its schema, refs resolve, kubectl's needs hold."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apiserver import openapi

V3_ROOTS = ["api/v1", "apis/authorization.k8s.io/v1", "apis/coordination.k8s.io/v1",
            "apis/rbac.authorization.k8s.io/v1", "apis/storage.k8s.io/v1"]
SERVED = [(r.root.lstrip("/"), r.group, r.kind) for r in openapi.DEFAULT_RESOURCES
          if "/" not in r.plural]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _kind_schema(doc: dict[str, Any], group: str, kind: str) -> dict[str, Any]:
    found = [s for s in doc["components"]["schemas"].values()
             if {"group": group, "version": "v1", "kind": kind}
             in s.get("x-kubernetes-group-version-kind", [])]
    assert len(found) == 1, kind
    schema: dict[str, Any] = found[0]
    return schema


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema["allOf"][0]["$ref"] if "allOf" in schema else schema.get("$ref")
    if ref is None:
        return schema
    target: dict[str, Any] = doc["components"]["schemas"][ref.removeprefix("#/components/schemas/")]
    return target


def _walk(doc: dict[str, Any], group: str, kind: str, path: str) -> dict[str, Any]:
    """What `kubectl explain kind.a.b` resolves: properties, through refs and array items."""
    schema = _kind_schema(doc, group, kind)
    for name in path.split("."):
        schema = _resolve(doc, schema["properties"][name])
        if schema.get("type") == "array":
            schema = _resolve(doc, schema["items"])
    return schema


def test_v3_index_lists_each_group_version_with_hashed_url() -> None:
    index = openapi.openapi_v3_index()
    assert sorted(index["paths"]) == V3_ROOTS
    url = index["paths"]["api/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/api/v1?hash={openapi.openapi_v3_hash('api/v1')}"
    assert len(url.rpartition("=")[2]) == 128


@pytest.mark.parametrize(("root", "group", "kind"), SERVED)
def test_every_served_kind_has_a_schema_with_its_gvk(root: str, group: str, kind: str) -> None:
    doc = openapi.openapi_v3_group(root)
    schema = _kind_schema(doc, group, kind)
    assert {"apiVersion", "kind", "metadata"} <= set(schema["properties"])
    v2 = openapi.openapi_v2()
    assert any({"group": group, "version": "v1", "kind": kind}
               in s.get("x-kubernetes-group-version-kind", []) for s in v2["definitions"].values())


@pytest.mark.parametrize("root", V3_ROOTS)
def test_v3_refs_resolve_within_the_document(root: str) -> None:
    doc = openapi.openapi_v3_group(root)
    names = set(doc["components"]["schemas"])
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in names, ref


def test_v2_refs_resolve_and_use_definitions() -> None:
    doc = openapi.openapi_v2()
    assert doc["swagger"] == "2.0"
    for ref in _refs(doc):
        assert ref.startswith("#/definitions/")
        assert ref.removeprefix("#/definitions/") in doc["definitions"], ref
    # Swagger 2.0 keeps the description beside $ref; OpenAPI 3.0 wraps it in allOf.
    spec = doc["definitions"]["io.k8s.api.core.v1.PersistentVolumeClaim"]["properties"]["spec"]
    assert "$ref" in spec and spec["description"]


@pytest.mark.parametrize(("kind", "path", "fields"), [
    ("PersistentVolumeClaim", "spec", {"accessModes", "resources", "storageClassName",
                                       "volumeName", "volumeMode", "dataSource", "selector"}),
    ("PersistentVolumeClaim", "spec.resources", {"requests", "limits"}),
    ("PersistentVolume", "spec", {"capacity", "claimRef", "local", "nfs", "csi", "hostPath",
                                  "nodeAffinity", "persistentVolumeReclaimPolicy"}),
    ("Pod", "spec.volumes", {"emptyDir", "configMap", "secret", "hostPath",
                             "persistentVolumeClaim", "nfs", "csi"}),
    ("Pod", "spec.containers", {"name", "image", "env", "volumeMounts", "ports", "resources"}),
    ("Pod", "status.containerStatuses.state", {"waiting", "running", "terminated"}),
    ("Node", "status", {"conditions", "addresses", "nodeInfo", "capacity"}),
])
def test_explain_paths_resolve_to_described_fields(kind: str, path: str,
                                                   fields: set[str]) -> None:
    doc = openapi.openapi_v3_group("api/v1")
    schema = _walk(doc, "", kind, path)
    assert fields <= set(schema["properties"])
    assert all(p.get("description") for p in schema["properties"].values())


def test_required_fields() -> None:
    doc = openapi.openapi_v3_group("api/v1")
    assert _walk(doc, "", "Pod", "spec")["required"] == ["containers"]
    assert set(_walk(doc, "", "Pod", "spec.volumes.nfs")["required"]) == {"server", "path"}
    assert "provisioner" in _kind_schema(openapi.openapi_v3_group("apis/storage.k8s.io/v1"),
                                         "storage.k8s.io", "StorageClass")["required"]


@pytest.mark.parametrize(("path", "key", "strategy"), [
    ("spec.containers", "name", "merge"),
    ("spec.volumes", "name", "merge,retainKeys"),
    ("spec.containers.env", "name", "merge"),
    ("spec.containers.volumeMounts", "mountPath", "merge"),
    ("spec.containers.ports", "containerPort", "merge"),
    ("metadata.ownerReferences", "uid", "merge"),
])
def test_patch_merge_keys_on_pod_lists(path: str, key: str, strategy: str) -> None:
    doc = openapi.openapi_v3_group("api/v1")
    parent, _, name = path.rpartition(".")
    field = _walk(doc, "", "Pod", parent)["properties"][name]
    assert field["x-kubernetes-patch-merge-key"] == key
    assert field["x-kubernetes-patch-strategy"] == strategy
    assert field["x-kubernetes-list-type"] == "map"


def test_patch_operation_advertises_field_validation() -> None:
    """kubectl apply sends fieldValidation=Strict only if PATCH documents the parameter."""
    doc = openapi.openapi_v3_group("api/v1")
    item = doc["paths"]["/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "", "version": "v1", "kind": "PersistentVolumeClaim"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]


def test_paths_follow_scope_and_verbs() -> None:
    paths = openapi.openapi_v3_group("api/v1")["paths"]
    assert "/api/v1/persistentvolumes/{name}/status" in paths
    assert "/api/v1/persistentvolumeclaims" in paths  # list across namespaces
    assert set(paths["/api/v1/namespaces/{namespace}/pods"]) == {"get", "post", "delete",
                                                                 "parameters"}
    listing = paths["/api/v1/namespaces/{namespace}/pods"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.PodList"}
    reviews = openapi.openapi_v3_group("authorization.k8s.io/v1")["paths"]
    assert list(reviews) == ["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]
    assert set(reviews["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]) == {
        "post", "parameters"}


def test_resources_as_tuples_and_dicts() -> None:
    resources: list[openapi.ResourceLike] = [("", "v1", "ConfigMap", "configmaps", True, ["get", "list"]),
                 {"group": "storage.k8s.io", "version": "v1", "kind": "StorageClass",
                  "plural": "storageclasses", "namespaced": False, "verbs": "get"}]
    index = openapi.openapi_v3_index(resources)
    assert sorted(index["paths"]) == ["api/v1", "apis/storage.k8s.io/v1"]
    paths = openapi.openapi_v2(resources)["paths"]
    assert sorted(paths) == ["/api/v1/configmaps", "/api/v1/namespaces/{namespace}/configmaps",
                             "/api/v1/namespaces/{namespace}/configmaps/{name}",
                             "/apis/storage.k8s.io/v1/storageclasses/{name}"]


def test_unknown_group_version_and_kind() -> None:
    with pytest.raises(openapi.UnknownGroupVersion):
        openapi.openapi_v3_group("apis/apps/v1")
    with pytest.raises(openapi.UnknownKind):
        openapi.openapi_v2([("apps", "v1", "Deployment", "deployments", True, ["get"])])


def test_documents_are_plain_json_and_fresh_copies() -> None:
    doc = openapi.openapi_v3_group("api/v1")
    doc["paths"].clear()
    assert openapi.openapi_v3_group("api/v1")["paths"]
    assert json.loads(json.dumps(openapi.openapi_v2())) == openapi.openapi_v2()
