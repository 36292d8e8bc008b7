"""The core/v1 family: namespaces, nodes, pods (with binding), volumes, claims, config, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from apimachinery import errors as api_errors
from apiserver import resources, threads, wire
from apiserver.routes import generic

router = APIRouter()

for _rt in (resources.NAMESPACES, resources.NODES, resources.PODS,
            resources.PERSISTENT_VOLUMES, resources.PERSISTENT_VOLUME_CLAIMS,
            resources.CONFIG_MAPS, resources.SECRETS, resources.EVENTS):
    generic.install(router, _rt)


def bind_pod(pod: dict[str, Any], node: str) -> dict[str, Any]:
    """The pod after a scheduler's Binding: its node set and PodScheduled true."""
    name = pod["metadata"]["name"]
    if pod["metadata"].get("deletionTimestamp"):
        raise api_errors.conflict("pods/binding", name, why=f"pod {name} is being deleted, "
                                  f"cannot be assigned to a host")
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise api_errors.conflict("pods/binding", name,
                                  why=f'pod {name} is already assigned to node "{current}"')
    pod["spec"]["nodeName"] = node
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now})
    status["conditions"] = conditions
    return pod


@router.post("/api/v1/namespaces/{namespace}/pods/{name}/binding")
async def create_binding(request: Request, namespace: str, name: str) -> Response:
    body = wire.decode_object(await wire.read_body(request), wire.media_type(request))
    target = body.get("target") or {}
    if not target.get("name"):
        raise api_errors.invalid("Binding", name, [api_errors.Cause(
            "target.name", "Required value", "FieldValueRequired")])
    if target.get("kind", "Node") != "Node":
        raise api_errors.invalid("Binding", name, [api_errors.Cause(
            "target.kind", 'must be empty or "Node"')])
    registry = generic.registry_of(request)
    await threads.run(registry.patch, resources.PODS, namespace, name,
                            lambda pod: bind_pod(pod, target["name"]), subresource="binding")
    return wire.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "code": 201}, 201)
