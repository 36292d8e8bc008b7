"""The two API calls the scheduler needs that `runtime.kube` does not offer yet: Nodes and Bindings.

`runtime.kube.Kube` knows PVs, PVCs, pods, events, classes and leases; the scheduler also
watches Nodes and posts `pods/binding`. Rather than edit the shared runtime, this subclass adds
exactly those two things on the same lightkube client, with the same dict-in/dict-out shape
and the same typed errors, so an informer over Nodes is the ordinary `Informer`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources import core_v1

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
NODE = "Node"


def _translate(e: Exception) -> kube_api.KubeError:
    # runtime.kube owns the mapping from lightkube errors to our exception classes.
    return kube_api._translate(e)


class SchedulingKube(kube_api.Kube):
    """`Kube` plus cluster-scoped Nodes (list, watch, get) and `bind_pod`."""

    async def list(self, kind: str, namespace: str = kube_api.ALL_NAMESPACES
                   ) -> tuple[list[Obj], str]:
        if kind != NODE:
            return await super().list(kind, namespace)
        listing = self._api.list(core_v1.Node)
        try:
            items = [o.to_dict() async for o in listing]
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        return items, str(listing.resourceVersion)

    async def watch(self, kind: str, resource_version: str) -> AsyncIterator[tuple[str, Obj]]:
        if kind != NODE:
            async for item in super().watch(kind, resource_version):
                yield item
            return
        stream = self._api.watch(core_v1.Node, resource_version=resource_version,
                                 server_timeout=300)
        try:
            async for event_type, obj in stream:
                yield event_type, obj.to_dict()
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        finally:
            await stream.aclose()

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        if kind != NODE:
            return await super().get(kind, name, namespace)
        try:
            node = await self._api.get(core_v1.Node, name)
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        result: Obj = node.to_dict()
        return result

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
