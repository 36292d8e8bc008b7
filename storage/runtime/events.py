"""Records core/v1 Events as client-go's event recorder does, so `kubectl describe` shows them.

A controller calls `recorder.event(obj, type, reason, message)` and moves on: events are
written in the background, never on the controller's hot path. An event identical to one
already written for the same object (same type, reason and message) is not created again:
its `count` is bumped and `lastTimestamp` moved, which is what `kubectl describe` shows as
"(x5 over 2m)". Events of cluster-scoped objects (PVs) go to the "default" namespace, as in
Kubernetes. Event names are `<object name>.<hex nanoseconds>`, like client-go's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)
MAX_REMEMBERED = 4096
WRITERS = 4


@dataclass(frozen=True)
class _Key:
    kind: str
    namespace: str
    name: str
    uid: str
    type: str
    reason: str
    message: str


@dataclass
class _Written:
    namespace: str
    name: str
    count: int


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved_object(obj: Obj) -> Obj:
    """The ObjectReference of `obj` (reference.GetReference)."""
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind"), "namespace": meta.get("namespace"),
           "name": meta.get("name"), "uid": meta.get("uid"),
           "apiVersion": obj.get("apiVersion"), "resourceVersion": meta.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Queue events for one component; `run` writes them, `flush` waits for the queues.

    Several writers overlap their API round trips (a burst of claims makes a few events
    each); the events of one object and reason always go to the same writer, so that the
    second of two identical events bumps the count of the first instead of racing it.
    """

    def __init__(self, kube: kube_api.Kube, component: str, host: str = "",
                 writers: int = WRITERS) -> None:
        self.kube = kube
        self.component = component
        self.host = host
        self._queues: list[asyncio.Queue[tuple[_Key, Obj]]] = [
            asyncio.Queue() for _ in range(writers)]
        self._written: OrderedDict[_Key, _Written] = OrderedDict()

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        ref = involved_object(obj)  # as the object is now, not when the writer gets to it
        key = _Key(str(ref.get("kind")), str(ref.get("namespace") or ""), str(ref.get("name")),
                   str(ref.get("uid") or ""), type_, reason, message)
        self._queues[hash(key) % len(self._queues)].put_nowait((key, ref))

    async def flush(self) -> None:
        for queue in self._queues:
            await queue.join()

    async def run(self) -> None:
        await asyncio.gather(*(self._drain(queue) for queue in self._queues))

    async def _drain(self, queue: asyncio.Queue[tuple[_Key, Obj]]) -> None:
        while True:
            key, ref = await queue.get()
            try:
                await self._write(key, ref)
            except kube_api.KubeError as e:
                log.warning("could not record event %s on %s: %s", key.reason, key.name, e)
            finally:
                queue.task_done()

    async def _write(self, key: _Key, ref: Obj) -> None:
        type_, reason, message = key.type, key.reason, key.message
        seen = self._written.get(key)
        if seen is not None:
            try:
                await self.kube.merge_patch("Event", seen.name, {
                    "count": seen.count + 1, "lastTimestamp": now_rfc3339()}, seen.namespace)
                seen.count += 1
                self._written.move_to_end(key)
                return
            except kube_api.NotFound:
                pass  # deleted (or expired) meanwhile: create a new one
        created = await self.kube.create("Event", self._new_event(ref, type_, reason, message))
        meta = created["metadata"]
        self._written[key] = _Written(meta["namespace"], meta["name"], 1)
        while len(self._written) > MAX_REMEMBERED:
            self._written.popitem(last=False)

    def _new_event(self, ref: Obj, type_: str, reason: str, message: str) -> Obj:
        stamp = now_rfc3339()
        namespace = ref.get("namespace") or "default"
        source = {"component": self.component}
        if self.host:
            source["host"] = self.host
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{ref.get('name')}.{time.time_ns():x}",
                         "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": source, "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
