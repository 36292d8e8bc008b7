"""What kube-apiserver and its built-in controllers keep true without being asked.

At start: the system namespaces exist and the bootstrap RBAC policy is in place. While
running: a namespace being deleted is emptied and then removed (the namespace controller),
and pods being deleted on a node that does not exist are removed (pod garbage collection),
since no kubelet will ever finish their deletion.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from apimachinery import errors as api_errors
from apiserver import authz, resources, threads
from apiserver.registry import DeleteOptions, ListOptions, Registry

logger = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAMESPACE_FINALIZER = "kubernetes"


def bootstrap(registry: Registry) -> None:
    """Create what a fresh cluster has; objects already there are left as they are."""
    for name in SYSTEM_NAMESPACES:
        _ensure(registry, resources.NAMESPACES,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for obj in authz.bootstrap_policy():
        rt = resources.BY_KIND[obj["kind"]]
        _ensure(registry, rt, obj)


def _ensure(registry: Registry, rt: resources.ResourceType, obj: dict[str, Any]) -> None:
    namespace = obj["metadata"].get("namespace") if rt.namespaced else None
    if registry.get_or_none(rt, namespace, obj["metadata"]["name"]) is not None:
        return
    try:
        registry.create(rt, namespace, obj)
    except api_errors.APIError as e:
        if e.code != 409:
            raise


def finalize_namespaces(registry: Registry) -> None:
    """One pass of the namespace controller over every terminating namespace."""
    for ns in registry.cached_items(resources.NAMESPACES):
        if ns["metadata"].get("deletionTimestamp"):
            _empty_namespace(registry, ns)


def _empty_namespace(registry: Registry, ns: dict[str, Any]) -> None:
    name = ns["metadata"]["name"]
    remaining = 0
    for rt in resources.PERSISTED:
        if not rt.namespaced:
            continue
        for obj in registry.list(rt, name, ListOptions())["items"]:
            remaining += 1
            if not obj["metadata"].get("deletionTimestamp"):
                _delete_quietly(registry, rt, name, obj["metadata"]["name"])
    if remaining:
        return
    finalizers = [f for f in ns.get("spec", {}).get("finalizers") or []
                  if f != NAMESPACE_FINALIZER]

    def drop_finalizer(current: dict[str, Any]) -> dict[str, Any]:
        current.setdefault("spec", {})["finalizers"] = finalizers
        return current
    try:
        registry.patch(resources.NAMESPACES, None, name, drop_finalizer, subresource="finalize")
    except api_errors.APIError as e:
        if e.code != 404:
            raise


def collect_orphaned_pods(registry: Registry) -> None:
    """Pods being deleted on a node that does not exist: nothing else will finish them."""
    nodes = {n["metadata"]["name"] for n in registry.cached_items(resources.NODES)}
    for pod in registry.cached_items(resources.PODS):
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and pod["spec"].get("nodeName") not in nodes:
            _delete_quietly(registry, resources.PODS, meta["namespace"], meta["name"],
                            DeleteOptions(grace_period_seconds=0))


def _delete_quietly(registry: Registry, rt: resources.ResourceType, namespace: str | None,
                    name: str, opts: DeleteOptions | None = None) -> None:
    try:
        registry.delete(rt, namespace, name, opts or DeleteOptions())
    except api_errors.APIError as e:
        if e.code not in (404, 409):
            logger.warning("deleting %s %s/%s: %s", rt.kind, namespace, name, e)


async def run(registry: Registry, every: float = 0.5) -> None:
    """The housekeeping loop, woken by the store's revision moving on; it reads the
    watch-fed cache (when current), so a busy store costs it no queries."""
    last = -1
    while True:
        if registry.store.revision != last:
            last = registry.store.revision
            try:
                await threads.run(finalize_namespaces, registry)
                await threads.run(collect_orphaned_pods, registry)
            except Exception:  # the loop must survive one bad pass
                logger.exception("housekeeping pass failed; retrying")
        await asyncio.sleep(every)
