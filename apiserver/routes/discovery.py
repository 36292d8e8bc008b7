"""Discovery, OpenAPI, health and version: how clients learn what this server serves.

Legacy discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`) are
built from the resource descriptors; kubectl asks for aggregated discovery first and falls
back to these when it gets plain JSON, as it does with older servers.
"""

from __future__ import annotations

import functools
import hashlib
import platform
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from apimachinery import errors as api_errors
from apiserver import openapi, resources, wire

router = APIRouter()

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0+storagelab",
                      "gitCommit": "0000000000000000000000000000000000000000",
                      "gitTreeState": "clean", "buildDate": "2026-11-27T00:00:00Z",
                      "goVersion": f"python{platform.python_version()}",
                      "compiler": "cpython", "platform": "linux/amd64"}

SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "binding": ["create"],
                     "log": ["get"], "exec": ["create", "get"], "finalize": ["update"]}


def _resource_entries(rt: resources.ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular,
                            "namespaced": rt.namespaced, "kind": rt.kind,
                            "verbs": sorted(rt.verbs)}
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    if rt.persisted:
        main["storageVersionHash"] = hashlib.sha256(
            f"{rt.api_version}/{rt.kind}".encode()).hexdigest()[:16]
    subs = [{"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
             "kind": "Binding" if sub == "binding" else rt.kind if sub in ("status", "finalize")
             else {"log": "Pod", "exec": "PodExecOptions"}.get(sub, rt.kind),
             "verbs": SUBRESOURCE_VERBS[sub]} for sub in rt.subresources]
    return [main, *subs]


def resource_list(group: str, version: str) -> dict[str, Any]:
    entries = [e for rt in resources.in_group_version(group, version)
               for e in _resource_entries(rt)]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": entries}


@router.get("/version")
async def version() -> Response:
    return wire.json_response(KUBERNETES_VERSION)


@router.get("/api")
async def api_versions(request: Request) -> Response:
    address = request.url.netloc
    return wire.json_response({"kind": "APIVersions", "versions": ["v1"],
                               "serverAddressByClientCIDRs": [
                                   {"clientCIDR": "0.0.0.0/0", "serverAddress": address}]})


@router.get("/api/v1")
async def core_resources() -> Response:
    return wire.json_response(resource_list("", "v1"))


def _groups() -> list[dict[str, Any]]:
    out = []
    for group, version in resources.group_versions():
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        out.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return out


@router.get("/apis")
async def api_groups() -> Response:
    return wire.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": _groups()})


@router.get("/apis/{group}")
async def api_group(group: str) -> Response:
    for entry in _groups():
        if entry["name"] == group:
            return wire.json_response({"kind": "APIGroup", "apiVersion": "v1", **entry})
    raise api_errors.APIError(404, "NotFound", "the server could not find the requested resource")


@router.get("/apis/{group}/{version}")
async def group_resources(group: str, version: str) -> Response:
    if not resources.in_group_version(group, version):
        raise api_errors.APIError(404, "NotFound",
                                  "the server could not find the requested resource")
    return wire.json_response(resource_list(group, version))


@functools.lru_cache(maxsize=1)
def openapi_kinds() -> frozenset[str]:
    """Kinds the OpenAPI schemas describe; others are served but not documented."""
    return frozenset(r.kind for r in openapi.as_resources(None))


def _openapi_resources() -> list[tuple[str, str, str, str, bool, tuple[str, ...]]]:
    out = []
    for rt in resources.ALL:
        if rt.kind not in openapi_kinds():
            continue
        out.append((rt.group, rt.version, rt.kind, rt.plural, rt.namespaced, rt.verbs))
        for sub in rt.subresources:
            if sub == "status":
                out.append((rt.group, rt.version, rt.kind, f"{rt.plural}/status",
                            rt.namespaced, ("get", "patch", "update")))
    return out


@router.get("/openapi/v2")
async def openapi_v2(request: Request) -> Response:
    accept = request.headers.get("accept", "*/*")
    if "json" not in accept and "*/*" not in accept:
        raise api_errors.APIError(406, "NotAcceptable",
                                  "only application/json is served for /openapi/v2")
    return wire.json_response(openapi.openapi_v2(_openapi_resources()))


@router.get("/openapi/v3")
async def openapi_v3() -> Response:
    return wire.json_response(openapi.openapi_v3_index(_openapi_resources()))


@router.get("/openapi/v3/{path:path}")
async def openapi_v3_group(path: str) -> Response:
    try:
        return wire.json_response(openapi.openapi_v3_group(path, _openapi_resources()))
    except openapi.UnknownGroupVersion as e:
        raise api_errors.APIError(404, "NotFound", str(e)) from e


def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


for _path in ("/healthz", "/livez", "/readyz"):
    router.add_api_route(_path, _health, methods=["GET"])
