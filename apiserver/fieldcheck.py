"""Strict field validation: which fields of a request body the schema does not know.

kubectl sends `fieldValidation=Strict` because our OpenAPI advertises it, and then relies on
the server to refuse manifests with misspelt fields, as kube-apiserver does with
`strict decoding error: unknown field "spec.acessModes"`. The walk follows the same OpenAPI
v3 schemas that `kubectl explain` reads; a schema without `properties` accepts anything.
"""

from __future__ import annotations

import functools
from typing import Any

from apiserver import openapi, resources

Schema = dict[str, Any]
_IGNORED_TOP = {"apiVersion", "kind"}


@functools.cache
def _schemas(group_version_path: str) -> dict[str, Schema]:
    doc = openapi.openapi_v3_group(group_version_path)
    schemas: dict[str, Schema] = doc.get("components", {}).get("schemas", {})
    return schemas


def _root(rt: resources.ResourceType) -> tuple[dict[str, Schema], Schema] | None:
    path = f"apis/{rt.group}/{rt.version}" if rt.group else f"api/{rt.version}"
    try:
        schemas = _schemas(path)
    except Exception:  # noqa: BLE001 - a kind without a schema is not checked
        return None
    for schema in schemas.values():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if gvk.get("kind") == rt.kind and gvk.get("group", "") == rt.group:
                return schemas, schema
    return None


def _resolve(schemas: dict[str, Schema], schema: Schema) -> Schema:
    while True:
        if "$ref" in schema:
            schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def unknown_fields(rt: resources.ResourceType, obj: dict[str, Any]) -> list[str]:
    """Paths like `spec.acessModes` of fields the kind's schema does not have."""
    found = _root(rt)
    if found is None:
        return []
    schemas, root = found
    out: list[str] = []
    _walk(schemas, root, obj, "", out)
    return [p for p in out if p not in _IGNORED_TOP]


def _walk(schemas: dict[str, Schema], schema: Schema, value: Any, path: str,
          out: list[str]) -> None:
    schema = _resolve(schemas, schema)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(schemas, props[key], child, child_path, out)
            elif isinstance(extra, dict):
                _walk(schemas, extra, child, child_path, out)
            elif props is not None and extra is None:
                out.append(child_path)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schemas, schema["items"], item, f"{path}[{i}]", out)
