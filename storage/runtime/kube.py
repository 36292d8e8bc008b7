"""The controllers' only door to the API server: lightkube, with plain dicts on our side.

Controllers think in Kubernetes JSON objects (dicts), as the decision modules do; lightkube
speaks typed models. This module converts at the boundary, picks the lightkube resource class
for a kind, and maps API failures to exception classes (`NotFound`, `Conflict`,
`AlreadyExists`, `Expired`) with the lightkube error chained, so that callers branch on types
instead of status codes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources import coordination_v1, core_v1, storage_v1
from lightkube.types import PatchType

from storage.runtime import transport

Obj = dict[str, Any]
ALL_NAMESPACES = "*"

_RESOURCES: dict[str, Any] = {
    "PersistentVolume": core_v1.PersistentVolume,
    "PersistentVolumeClaim": core_v1.PersistentVolumeClaim,
    "Pod": core_v1.Pod,
    "Event": core_v1.Event,
    "Namespace": core_v1.Namespace,
    "StorageClass": storage_v1.StorageClass,
    "Lease": coordination_v1.Lease,
    "Node": core_v1.Node,
    "CSIDriver": storage_v1.CSIDriver,
    "CSIStorageCapacity": storage_v1.CSIStorageCapacity,
    "VolumeAttachment": storage_v1.VolumeAttachment,
}
_STATUS_RESOURCES: dict[str, Any] = {
    "PersistentVolume": core_v1.PersistentVolumeStatus,
    "PersistentVolumeClaim": core_v1.PersistentVolumeClaimStatus,
    "Pod": core_v1.PodStatus,
    "Node": core_v1.NodeStatus,
    "VolumeAttachment": storage_v1.VolumeAttachmentStatus,
}


class KubeError(Exception):
    """An API call failed; `code` is the HTTP status (0 when the server was not reached)."""

    code = 0

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code or self.code


class NotFound(KubeError):
    code = 404


class Conflict(KubeError):
    """The object changed since we read it (stale resourceVersion): re-read and retry."""

    code = 409


class AlreadyExists(KubeError):
    code = 409


class Expired(KubeError):
    """410 Gone: the resourceVersion we watch from was compacted; list again."""

    code = 410


class Unreachable(KubeError):
    """The server did not answer (connection refused, reset, timeout)."""


def _translate(e: Exception) -> KubeError:
    if not isinstance(e, ApiError):
        return Unreachable(f"API server unreachable: {e}")
    status = e.status
    code, reason = int(status.code or 0), str(status.reason or "")
    message = str(status.message or e)
    if code == 404:
        return NotFound(message)
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists(message)
    if code == 409:
        return Conflict(message)
    if code == 410:
        return Expired(message)
    return KubeError(message, code)


def resource_class(kind: str, status: bool = False) -> Any:
    table = _STATUS_RESOURCES if status else _RESOURCES
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"storage.runtime.kube does not know kind {kind!r}") from None


def _to_dict(model: Any) -> Obj:
    result: Obj = model.to_dict()
    return result


def _is_namespaced(kind: str) -> bool:
    return kind not in ("PersistentVolume", "StorageClass", "Namespace", "Node", "CSIDriver",
                        "VolumeAttachment")


class Kube:
    """Dict-in, dict-out wrapper around a lightkube `AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        # lightkube's overloads are per resource class; we dispatch on a kind string.
        self._api: Any = client

    @classmethod
    def from_kubeconfig(cls, path: str, *, timeout: float = 30.0) -> Kube:
        config = KubeConfig.from_file(path)
        lean = transport.for_config(config.get())
        return cls(AsyncClient(config, timeout=httpx2.Timeout(timeout), transport=lean))

    async def close(self) -> None:
        await self.client.close()

    def _ns(self, kind: str, namespace: str | None) -> dict[str, str]:
        return {"namespace": namespace or "default"} if _is_namespaced(kind) else {}

    async def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        try:
            got = await self._api.get(resource_class(kind), name, **self._ns(kind, namespace))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        return _to_dict(got)

    async def list(self, kind: str, namespace: str = ALL_NAMESPACES) -> tuple[list[Obj], str]:
        """Every object of `kind` and the list's resourceVersion (where a watch starts)."""
        params = {"namespace": namespace} if _is_namespaced(kind) else {}
        listing = self._api.list(resource_class(kind), **params)
        try:
            items = [_to_dict(o) async for o in listing]
            version = listing.resourceVersion
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        return items, version

    async def watch(self, kind: str, resource_version: str) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) pairs after `resource_version`; raises `Expired` on 410 Gone."""
        params = {"namespace": ALL_NAMESPACES} if _is_namespaced(kind) else {}
        stream = self._api.watch(resource_class(kind), resource_version=resource_version,
                                   server_timeout=300, **params)
        try:
            async for event_type, obj in stream:
                yield event_type, _to_dict(obj)
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        finally:
            await stream.aclose()

    async def create(self, kind: str, obj: Obj) -> Obj:
        model = resource_class(kind).from_dict(obj)
        try:
            return _to_dict(await self._api.create(model, **self._ns_of(kind, obj)))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e

    async def replace(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        """PUT the object (or its status subresource); a stale resourceVersion is `Conflict`."""
        model = resource_class(kind, status).from_dict(obj)
        try:
            return _to_dict(await self._api.replace(model, **self._ns_of(kind, obj)))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e

    async def merge_patch(self, kind: str, name: str, patch: Obj,
                          namespace: str | None = None, *, status: bool = False) -> Obj:
        """JSON merge patch (of the status subresource when `status`); a resourceVersion
        in the patch makes it conditional, a stale one is `Conflict`."""
        try:
            got = await self._api.patch(resource_class(kind, status), name, patch,
                                          patch_type=PatchType.MERGE,
                                          **self._ns(kind, namespace))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e
        return _to_dict(got)

    async def delete(self, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            await self._api.delete(resource_class(kind), name, **self._ns(kind, namespace))
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e

    def _ns_of(self, kind: str, obj: Obj) -> dict[str, str]:
        return self._ns(kind, (obj.get("metadata") or {}).get("namespace"))
