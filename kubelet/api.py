"""The kubelet's only door to the API server: lightkube, with plain-dict objects.

Everything above this module works on Kubernetes JSON (dicts). Here the typed lightkube
resources are chosen by plural name, errors become `NotFound` / `ApiFailure`, and the
watches the kubelet needs run as daemon threads: the pods bound to this node (list, then
watch from the list's resourceVersion), and each configMap and secret a pod uses (a watch
with `metadata.name`, as the node authorizer allows), feeding an `ObjectCache`; so is the
kubelet's own Node (its volumesAttached), and CSIDrivers are read there with a TTL.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
)
from lightkube.resources.storage_v1 import CSIDriver
from lightkube.types import PatchType

Object = dict[str, Any]
logger = logging.getLogger(__name__)
RESOURCES: dict[str, Any] = {
    "configmaps": ConfigMap, "secrets": Secret, "persistentvolumeclaims": PersistentVolumeClaim,
    "persistentvolumes": PersistentVolume, "pods": Pod, "nodes": Node, "leases": Lease,
    "events": Event, "csidrivers": CSIDriver}
# Watched one by one by name; the own Node too, so that an attach wakes the waiting pod.
WATCHED_KINDS = ("configmaps", "secrets", "nodes")
MAX_REMEMBERED_EVENTS = 4096  # identical events remembered, to bump their count
UNWATCHED_TTL_S = 5.0


class ApiFailure(Exception):
    """The API server refused or failed a request; `code` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class NotFound(ApiFailure):
    pass


class Conflict(ApiFailure):
    pass


def _translate(e: Exception) -> ApiFailure:
    if isinstance(e, ApiError):
        code = e.status.code or 0
        kind = {404: NotFound, 409: Conflict}.get(code, ApiFailure)
        return kind(e.status.message or str(e), code)
    return ApiFailure(str(e))


class Api:
    """Typed calls the kubelet makes, each returning or taking plain dicts."""

    def __init__(self, kubeconfig: Path) -> None:
        self.client = Client(KubeConfig.from_file(str(kubeconfig)), field_manager="kubelet",
                             timeout=httpx2.Timeout(30, read=90))
        # (pod uid, type, reason, message, field path) -> [event name, count]
        self._events: OrderedDict[tuple[str, ...], list[Any]] = OrderedDict()
        self._events_lock = threading.Lock()

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (ApiError, httpx2.HTTPError) as e:
            raise _translate(e) from e

    def get(self, kind: str, namespace: str, name: str) -> Object:
        res = RESOURCES[kind]
        obj = self._call(lambda: self.client.get(res, name, namespace=namespace or None))
        return dict(obj.to_dict())

    def create(self, kind: str, body: Object, namespace: str = "") -> Object:
        obj = RESOURCES[kind].from_dict(body)
        created = self._call(lambda: self.client.create(obj, namespace=namespace or None))
        return dict(created.to_dict())

    def patch_status(self, kind: str, namespace: str, name: str, patch: Object) -> Object:
        res = RESOURCES[kind].Status
        out = self._call(lambda: self.client.patch(res, name, patch, namespace=namespace or None,
                                                   patch_type=PatchType.MERGE))
        return dict(out.to_dict())

    def patch(self, kind: str, namespace: str, name: str, patch: Object) -> Object:
        res = RESOURCES[kind]
        out = self._call(lambda: self.client.patch(res, name, patch, namespace=namespace or None,
                                                   patch_type=PatchType.MERGE))
        return dict(out.to_dict())

    def delete_pod_now(self, namespace: str, name: str) -> None:
        """Delete with grace period 0: how a kubelet confirms a graceful deletion."""
        try:
            self._call(lambda: self.client.delete(Pod, name, namespace=namespace,
                                                  grace_period=0))
        except NotFound:
            pass

    def event(self, involved: Object, kind: str, reason: str, message: str, node: str,
              field_path: str = "") -> None:
        """Record an Event about a pod; failures are only logged (events are best effort).

        As client-go's correlator does, an event identical to one already written for the
        same object (type, reason, message, field) bumps that one's count and lastTimestamp
        instead of making another (`kubectl describe`: "(x5 over 2m)")."""
        meta = involved["metadata"]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        key = (meta["uid"], kind, reason, message, field_path)
        with self._events_lock:
            seen = self._events.get(key)
        if seen is not None and self._bump(meta["namespace"], seen, stamp):
            return
        self._create_event(involved, kind, reason, message, node, field_path, stamp, key)

    def _bump(self, namespace: str, seen: list[Any], stamp: str) -> bool:
        name, count = seen
        try:
            self.patch("events", namespace, name, {"count": count + 1, "lastTimestamp": stamp})
        except ApiFailure:
            return False  # gone (or expired): write a new one
        with self._events_lock:
            seen[1] = count + 1
        return True

    def _create_event(self, involved: Object, kind: str, reason: str, message: str, node: str,
                      field_path: str, stamp: str, key: tuple[str, ...]) -> None:
        meta = involved["metadata"]
        ref = {"kind": "Pod", "apiVersion": "v1", "namespace": meta["namespace"],
               "name": meta["name"], "uid": meta["uid"]} | (
            {"fieldPath": field_path} if field_path else {})
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                             "namespace": meta["namespace"]},
                "involvedObject": ref, "reason": reason, "message": message, "type": kind,
                "source": {"component": "kubelet", "host": node}, "count": 1,
                "firstTimestamp": stamp, "lastTimestamp": stamp,
                "reportingComponent": "kubelet", "reportingInstance": node}
        try:
            created = self.create("events", body, meta["namespace"])
        except ApiFailure as e:
            logger.warning("event %s for %s/%s not recorded: %s", reason, meta["namespace"],
                           meta["name"], e)
            return
        with self._events_lock:
            self._events[key] = [created["metadata"]["name"], 1]
            while len(self._events) > MAX_REMEMBERED_EVENTS:
                self._events.popitem(last=False)


class PodWatch:
    """The pods bound to one node, kept current by a list-then-watch thread."""

    def __init__(self, api: Api, node: str, on_change: Callable[[], None]) -> None:
        self.api, self.node, self.on_change = api, node, on_change
        self.pods: dict[str, Object] = {}
        self.synced = threading.Event()
        self.lock = threading.Lock()

    def snapshot(self) -> list[Object]:
        with self.lock:
            return list(self.pods.values())

    def get(self, uid: str) -> Object | None:
        with self.lock:
            return self.pods.get(uid)

    def start(self) -> None:
        threading.Thread(target=self._run, name="pod-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self._list_and_watch()
            except Exception as e:  # noqa: BLE001 - a dead watch thread would freeze the node
                logger.warning("pod watch failed, relisting: %s", e)
                time.sleep(1)

    def _list_and_watch(self) -> None:
        fields: dict[str, Any] = {"spec.nodeName": self.node}
        listing = self.api.client.list(Pod, namespace="*", fields=fields)
        objects = [dict(p.to_dict()) for p in listing]
        pods = {p["metadata"]["uid"]: p for p in objects}
        with self.lock:
            self.pods = pods
        self.synced.set()
        self.on_change()
        for kind, obj in self.api.client.watch(Pod, namespace="*", fields=fields,
                                               resource_version=listing.resourceVersion):
            pod = dict(obj.to_dict())
            with self.lock:
                if kind == "DELETED":
                    self.pods.pop(pod["metadata"]["uid"], None)
                else:
                    self.pods[pod["metadata"]["uid"]] = pod
            self.on_change()


def _name_is(name: str) -> dict[str, Any]:
    return {"metadata.name": name}


class ObjectCache:
    """The objects pods' volumes and env refer to: configMaps and secrets watched one by
    one (so an update reaches mounted files at once), claims and volumes read with a TTL."""

    def __init__(self, api: Api, on_change: Callable[[], None]) -> None:
        self.api, self.on_change = api, on_change
        self.objects: dict[tuple[str, str, str], Object | None] = {}
        self.fetched: dict[tuple[str, str, str], float] = {}
        self.watching: set[tuple[str, str, str]] = set()
        self.lock = threading.Lock()

    def get(self, kind: str, namespace: str, name: str) -> Object | None:
        key = (kind, namespace, name)
        with self.lock:
            fresh = key in self.objects and (
                key in self.watching or time.monotonic() - self.fetched[key] < UNWATCHED_TTL_S)
            if fresh:
                return self.objects[key]
        obj = self._fetch(kind, namespace, name)
        with self.lock:
            self.objects[key], self.fetched[key] = obj, time.monotonic()
            start = kind in WATCHED_KINDS and key not in self.watching
            if start:
                self.watching.add(key)
        if start:
            threading.Thread(target=self._watch, args=(key,), daemon=True,
                             name=f"watch-{kind}-{namespace}-{name}").start()
        return obj

    def _fetch(self, kind: str, namespace: str, name: str) -> Object | None:
        try:
            return self.api.get(kind, namespace, name)
        except NotFound:
            return None

    def _watch(self, key: tuple[str, str, str]) -> None:
        kind, namespace, name = key
        while True:
            try:
                for event, obj in self.api.client.watch(
                        RESOURCES[kind], namespace=namespace, fields=_name_is(name)):
                    with self.lock:
                        self.objects[key] = None if event == "DELETED" else dict(obj.to_dict())
                    self.on_change()
            except ApiError as e:
                if e.status.code == 403:
                    # No pod here uses it any more (the node authorizer says so): stop, and
                    # let the next `get`, if one comes, fetch and watch it afresh.
                    with self.lock:
                        self.watching.discard(key)
                        self.objects.pop(key, None)
                    return
                logger.debug("watch of %s failed: %s", key, e)
                time.sleep(1)
            except Exception as e:  # noqa: BLE001 - keep watching through server restarts
                logger.debug("watch of %s failed: %s", key, e)
                time.sleep(1)
