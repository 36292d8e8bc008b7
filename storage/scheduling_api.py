"""The API calls the scheduler and the capacity publisher need that `runtime.kube` lacks.

`runtime.kube.Kube` knows PVs, PVCs, pods, events, classes and leases; the scheduler also
watches Nodes, CSIDrivers and CSIStorageCapacities and posts `pods/binding`, and the capacity
publisher (`storage.capacity`) writes CSIDrivers and CSIStorageCapacities. Rather than edit
the shared runtime, this subclass adds exactly those kinds on the same lightkube client, with
the same dict-in/dict-out shape and the same typed errors, so an informer over any of them is
the ordinary `Informer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1, storage_v1

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
NODE = "Node"
CSI_DRIVER = "CSIDriver"
CSI_STORAGE_CAPACITY = "CSIStorageCapacity"

# kind -> (lightkube resource, namespaced)
_EXTRA: dict[str, tuple[Any, bool]] = {
    NODE: (core_v1.Node, False),
    CSI_DRIVER: (storage_v1.CSIDriver, False),
    CSI_STORAGE_CAPACITY: (storage_v1.CSIStorageCapacity, True),
}


def _translate(e: Exception) -> kube_api.KubeError:
    # runtime.kube owns the mapping from lightkube errors to our exception classes.
    return kube_api._translate(e)


def _scope(kind: str, namespace: str | None) -> dict[str, str]:
    """lightkube's namespace argument: none for cluster-scoped kinds."""
    return {"namespace": namespace or "default"} if _EXTRA[kind][1] else {}


def _namespace_of(obj: Obj) -> str | None:
    namespace: str | None = (obj.get("metadata") or {}).get("namespace")
    return namespace


class SchedulingKube(kube_api.Kube):
    """`Kube` plus Nodes, CSIDrivers, CSIStorageCapacities and `bind_pod`."""

    async def list(self, kind: str, namespace: str = kube_api.ALL_NAMESPACES
                   ) -> tuple[list[Obj], str]:
        if kind not in _EXTRA:
            return await super().list(kind, namespace)
        resource, namespaced = _EXTRA[kind]
        listing = self._api.list(resource, **({"namespace": namespace} if namespaced else {}))
        try:
            items = [o.to_dict() async for o in listing]
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        return items, str(listing.resourceVersion)

    async def watch(self, kind: str, resource_version: str) -> AsyncIterator[tuple[str, Obj]]:
        if kind not in _EXTRA:
            async for item in super().watch(kind, resource_version):
                yield item
            return
        resource, namespaced = _EXTRA[kind]
        params = {"namespace": kube_api.ALL_NAMESPACES} if namespaced else {}
        stream = self._api.watch(resource, resource_version=resource_version,
                                 server_timeout=300, **params)
        try:
            async for event_type, obj in stream:
                yield event_type, obj.to_dict()
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        finally:
            await stream.aclose()

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        if kind not in _EXTRA:
            return await super().get(kind, name, namespace)
        try:
            got = await self._api.get(_EXTRA[kind][0], name, **_scope(kind, namespace))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        result: Obj = got.to_dict()
        return result

    async def create(self, kind: str, obj: Obj) -> Obj:
        if kind not in _EXTRA:
            return await super().create(kind, obj)
        model = _EXTRA[kind][0].from_dict(obj)
        try:
            got = await self._api.create(model, **_scope(kind, _namespace_of(obj)))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        result: Obj = got.to_dict()
        return result

    async def replace(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        if kind not in _EXTRA or status:
            return await super().replace(kind, obj, status=status)
        model = _EXTRA[kind][0].from_dict(obj)
        try:
            got = await self._api.replace(model, **_scope(kind, _namespace_of(obj)))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        result: Obj = got.to_dict()
        return result

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        if kind not in _EXTRA:
            await super().delete(kind, name, namespace)
            return
        try:
            await self._api.delete(_EXTRA[kind][0], name, **_scope(kind, namespace))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e

    async def bind_pod(self, namespace: str, name: str, node: str, uid: str = "") -> None:
        """POST pods/{name}/binding (what kube-scheduler's DefaultBinder does)."""
        binding = core_v1.PodBinding(
            metadata=ObjectMeta(name=name, namespace=namespace, uid=uid or None),
            target=ObjectReference(apiVersion="v1", kind="Node", name=node))
        try:
            await self._api.create(binding, name=name, namespace=namespace)
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        except (TypeError, KeyError, ValueError):
            # The answer is a Status, not a Binding; lightkube may fail to decode it after
            # the server succeeded (errors would have been ApiError above).
            pass
