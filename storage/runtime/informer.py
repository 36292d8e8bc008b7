"""A shared informer: one list+watch per kind feeding a local cache and event handlers.

Controllers read from the cache instead of the API (tens of thousands of objects cost one
list), and learn about changes through `on_add`/`on_update`/`on_delete` callbacks that only
queue keys. The watch starts at the list's resourceVersion so nothing is missed between the
two; a 410 Gone (the revision was compacted) or a broken stream means list again and diff
against the cache, so handlers still see every deletion. A periodic resync replays every
cached object as an update, which is how level-triggered controllers heal missed work.
Controllers that write an object call `assume` with the API's answer, so that their next read
is not older than their own write (Kubernetes' storeObjectUpdate).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)
MAX_TOMBSTONES = 10_000


def object_key(obj: Obj) -> str:
    """`namespace/name` for namespaced objects, `name` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name") or "")


def resource_version(obj: Obj) -> int:
    """Our server's revisions are integers; an unparsable one compares as the newest."""
    raw = (obj.get("metadata") or {}).get("resourceVersion") or ""
    try:
        return int(raw)
    except ValueError:
        return 2**63


@dataclass(frozen=True)
class Handlers:
    on_add: Callable[[Obj], None] | None = None
    on_update: Callable[[Obj, Obj], None] | None = None
    on_delete: Callable[[Obj], None] | None = None


class Informer:
    """List+watch of one kind across all namespaces, with a cache and handlers."""

    def __init__(self, kube: kube_api.Kube, kind: str, *, resync: float = 0.0,
                 retry_delay: float = 1.0) -> None:
        self.kube = kube
        self.kind = kind
        self.resync = resync
        self.retry_delay = retry_delay
        self._cache: dict[str, Obj] = {}
        self._handlers: list[Handlers] = []
        self._synced = asyncio.Event()
        # Keys deleted lately and the revision of their deletion (see `assume`).
        self._tombstones: OrderedDict[str, int] = OrderedDict()

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._cache.get(key)

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self._cache.values()))

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def add_handlers(self, handlers: Handlers) -> None:
        self._handlers.append(handlers)

    def by_key(self) -> Mapping[str, Obj]:
        """The cache as a read-only mapping from `object_key`, without copying it."""
        return _CacheView(self._cache)

    # -- writing from controllers ---------------------------------------------------------

    def assume(self, obj: Obj) -> None:
        """Store our own write's result, unless the cache already holds something newer.

        A write that removed the last finalizer of an object being deleted deleted it; and
        if the watch already reported the deletion, the answer must not resurrect it.
        """
        key = object_key(obj)
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.forget(obj)
            return
        if resource_version(obj) <= self._tombstones.get(key, -1):
            return
        old = self._cache.get(key)
        if old is not None and resource_version(old) >= resource_version(obj):
            return
        self._apply("MODIFIED" if old is not None else "ADDED", obj)

    def forget(self, obj: Obj) -> None:
        """We deleted it; drop it now instead of waiting for the watch."""
        if object_key(obj) in self._cache:
            self._apply("DELETED", obj)

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """List and watch until cancelled; every failure leads to a fresh list."""
        resync_task = asyncio.create_task(self._resync_loop()) if self.resync > 0 else None
        try:
            while True:
                try:
                    version = await self._list()
                    await self._watch(version)
                except kube_api.Expired:
                    log.info("%s watch expired; listing again", self.kind)
                except kube_api.KubeError as e:
                    log.warning("%s list/watch failed: %s; retrying", self.kind, e)
                    await asyncio.sleep(self.retry_delay)
        finally:
            if resync_task is not None:
                resync_task.cancel()

    async def _list(self) -> str:
        items, version = await self.kube.list(self.kind)
        fresh = {object_key(o): o for o in items}
        for key, old in list(self._cache.items()):
            if key not in fresh:
                self._apply("DELETED", old)
        for obj in items:
            cached = self._cache.get(object_key(obj))
            if cached is None or resource_version(cached) != resource_version(obj):
                self._apply("MODIFIED" if cached is not None else "ADDED", obj)
        self._synced.set()
        return version

    async def _watch(self, version: str) -> None:
        async for event_type, obj in self.kube.watch(self.kind, version):
            if event_type in ("ADDED", "MODIFIED", "DELETED"):
                self._observe(event_type, obj)

    def _observe(self, event_type: str, obj: Obj) -> None:
        old = self._cache.get(object_key(obj))
        if event_type != "DELETED" and old is not None and \
                resource_version(old) >= resource_version(obj):
            return  # our own write (assumed) already newer than this event
        self._apply(event_type, obj)

    def _apply(self, event_type: str, obj: Obj) -> None:
        key = object_key(obj)
        old = self._cache.get(key)
        if event_type == "DELETED":
            self._cache.pop(key, None)
            self._tombstones[key] = resource_version(obj)
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)
        else:
            self._cache[key] = obj
            self._tombstones.pop(key, None)
        for h in self._handlers:
            self._dispatch(h, event_type, old, obj)

    @staticmethod
    def _dispatch(h: Handlers, event_type: str, old: Obj | None, obj: Obj) -> None:
        try:
            if event_type == "DELETED":
                if h.on_delete is not None:
                    h.on_delete(obj)
            elif old is None:
                if h.on_add is not None:
                    h.on_add(obj)
            elif h.on_update is not None:
                h.on_update(old, obj)
        except Exception:  # a handler bug must not kill the informer
            log.exception("event handler failed")

    async def _resync_loop(self) -> None:
        await self._synced.wait()
        while True:
            await asyncio.sleep(self.resync)
            for obj in list(self._cache.values()):
                for h in self._handlers:
                    if h.on_update is not None:
                        self._dispatch(h, "MODIFIED", obj, obj)


class _CacheView(Mapping[str, Obj]):
    """A live read-only view of an informer's cache (a pass over all claims should not copy
    them into a dict first)."""

    def __init__(self, cache: dict[str, Obj]) -> None:
        self._cache = cache

    def __getitem__(self, key: str) -> Obj:
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache)

    def __len__(self) -> int:
        return len(self._cache)
