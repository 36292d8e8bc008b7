"""The node lifecycle controller: notices dead kubelets and says so on their Node and pods.

A kubelet proves it is alive by renewing its Lease in kube-node-lease and by refreshing the
heartbeat of its Node's Ready condition. If neither changed for the grace period (measured on
this controller's own clock, as kube-controller-manager does, so clock skew does not matter),
the kubelet-owned conditions become `Unknown` ("Kubelet stopped posting node status."), the
NoSchedule taint `node.kubernetes.io/unreachable` (or `not-ready`) is added so nothing new is
placed there, and the node's pods get `Ready=False` so `kubectl get pods` shows them not ready.
Unlike Kubernetes' default, pods are never evicted: storage users keep their data-holding pods
where they are until the kubelet comes back, posts Ready=True, and the taint goes away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
from lightkube.core.exceptions import ApiError
from lightkube.resources import core_v1

from storage.runtime import controller, events, shared
from storage.runtime import kube as kube_api
from storage.scheduling_api import SchedulingKube

Obj = dict[str, Any]
log = logging.getLogger(__name__)

COMPONENT = "node-controller"
LEASE_NAMESPACE = "kube-node-lease"
# kubelet-owned conditions the controller marks Unknown (nodeConditionTypes in Kubernetes).
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
REASON_UNKNOWN = "NodeStatusUnknown"
MSG_UNKNOWN = "Kubelet stopped posting node status."
REASON_NEVER_UPDATED = "NodeStatusNeverUpdated"
MSG_NEVER_UPDATED = "Kubelet never posted node status."
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
# (condition type, status) -> NoSchedule taint key: doNoScheduleTaintingPass's table.
CONDITION_TAINTS: Mapping[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY_TAINT,
    ("Ready", "Unknown"): UNREACHABLE_TAINT,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
OWNED_TAINT_KEYS = frozenset({*CONDITION_TAINTS.values(), UNSCHEDULABLE_TAINT})
REASON_NODE_NOT_READY = "NodeNotReady"
MSG_POD_NODE_NOT_READY = "Node is not ready"


class ConfigError(ValueError):
    """The node lifecycle configuration is unusable; the message names the field."""


@dataclass(frozen=True)
class LifecycleConfig:
    """kube-controller-manager's --node-monitor-period, --node-monitor-grace-period and
    --node-startup-grace-period, in seconds."""

    monitor_period: float = 5.0
    grace_period: float = 40.0
    startup_grace_period: float = 60.0

    def __post_init__(self) -> None:
        for field_name in ("monitor_period", "grace_period", "startup_grace_period"):
            if getattr(self, field_name) <= 0:
                raise ConfigError(f"{field_name}: must be positive")
        if self.grace_period < self.monitor_period:
            raise ConfigError("grace_period: must not be shorter than monitor_period")


@dataclass(frozen=True)
class NodeHealth:
    """What we last saw of a kubelet and when (our clock) we last saw it change."""

    probe_time: float
    heartbeat: str
    renew_time: str


# ----------------------------------------------------------------------------- decisions

def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (ValueError, AttributeError):
        return None


def condition(node: Mapping[str, Any], type_: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def _renew_time(lease: Mapping[str, Any] | None) -> str:
    return str(((lease or {}).get("spec") or {}).get("renewTime") or "")


def observe(previous: NodeHealth | None, node: Mapping[str, Any],
            lease: Mapping[str, Any] | None, now: float) -> NodeHealth:
    """tryUpdateNodeHealth's bookkeeping: the probe time moves to `now` whenever the Ready
    heartbeat or the Lease renewTime changed since the last look. A node seen for the first
    time counts as heard from now, except one that never posted Ready: its creation time."""
    ready = condition(node, "Ready")
    heartbeat = str((ready or {}).get("lastHeartbeatTime") or "")
    renew = _renew_time(lease)
    if previous is None:
        created = parse_time(str((node.get("metadata") or {}).get("creationTimestamp") or ""))
        probe = now if ready is not None or created is None else created
        if ready is None and renew:
            probe = now
        return NodeHealth(probe, heartbeat, renew)
    changed = heartbeat != previous.heartbeat or bool(renew and renew != previous.renew_time)
    return NodeHealth(now if changed else previous.probe_time, heartbeat,
                      renew or previous.renew_time)


def is_stale(health: NodeHealth, node: Mapping[str, Any], now: float,
             config: LifecycleConfig) -> bool:
    grace = config.grace_period if condition(node, "Ready") is not None \
        else config.startup_grace_period
    return now > health.probe_time + grace


def unknown_conditions(node: Mapping[str, Any], now: str) -> list[Obj]:
    """The node's conditions with every kubelet-owned one set to Unknown; the heartbeat keeps
    the last time the kubelet was heard, the transition time is now (only on a change)."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
    present = {c.get("type") for c in conditions}
    for c in conditions:
        if c.get("type") in KUBELET_CONDITIONS and c.get("status") != "Unknown":
            c.update(status="Unknown", reason=REASON_UNKNOWN, message=MSG_UNKNOWN,
                     lastTransitionTime=now)
    created = (node.get("metadata") or {}).get("creationTimestamp")
    for type_ in KUBELET_CONDITIONS:
        if type_ not in present:
            conditions.append({"type": type_, "status": "Unknown",
                               "reason": REASON_NEVER_UPDATED, "message": MSG_NEVER_UPDATED,
                               "lastHeartbeatTime": created, "lastTransitionTime": now})
    return conditions


def desired_taints(node: Mapping[str, Any]) -> list[Obj]:
    """The node's taints, with the NoSchedule taints this controller owns recomputed from
    its conditions and spec.unschedulable; taints set by others are kept as they are."""
    kept = [dict(t) for t in (node.get("spec") or {}).get("taints") or ()
            if not (t.get("key") in OWNED_TAINT_KEYS and t.get("effect") == "NoSchedule")]
    owned = [{"key": CONDITION_TAINTS[(c.get("type"), c.get("status"))], "effect": "NoSchedule"}
             for c in (node.get("status") or {}).get("conditions") or ()
             if (c.get("type"), c.get("status")) in CONDITION_TAINTS]
    if (node.get("spec") or {}).get("unschedulable"):
        owned.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
    return kept + owned


def taints_differ(node: Mapping[str, Any], wanted: list[Obj]) -> bool:
    def keyed(taints: Any) -> set[tuple[str, str, str]]:
        return {(t.get("key"), t.get("value") or "", t.get("effect")) for t in taints or ()}
    return keyed((node.get("spec") or {}).get("taints")) != keyed(wanted)


def pod_not_ready_status(pod: Mapping[str, Any], now: str) -> Obj | None:
    """MarkPodsNotReady for one pod: its status with the Ready condition False (reason and
    message kept, transition time now), or None when there is nothing to change."""
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or ()]
    for c in conditions:
        if c.get("type") == "Ready":
            if c.get("status") == "False":
                return None
            c.update(status="False", lastTransitionTime=now)
            return {**status, "conditions": conditions}
    return None


def node_not_ready(node: Mapping[str, Any]) -> bool:
    """A Ready condition exists and is not True (a node that never reported is left alone)."""
    ready = condition(node, "Ready")
    return ready is not None and ready.get("status") != "True"


# ----------------------------------------------------------------------------- API

class LifecycleKube(SchedulingKube):
    """`SchedulingKube` plus the two Node writes this controller makes."""

    async def replace_node_status(self, node: Obj) -> Obj:
        """PUT nodes/{name}/status; a stale resourceVersion is `Conflict`."""
        try:
            got = await self._api.replace(core_v1.NodeStatus.from_dict(node))
        except (ApiError, httpx2.HTTPError) as e:
            raise kube_api._translate(e) from e
        result: Obj = got.to_dict()
        return result

    async def set_node_taints(self, node: Obj, taints: list[Obj]) -> Obj:
        """Merge-patch spec.taints, guarded by the resourceVersion we decided from."""
        meta = node.get("metadata") or {}
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")},
                 "spec": {"taints": taints or None}}
        return await self.merge_patch("Node", str(meta.get("name")), patch)


# ----------------------------------------------------------------------------- controller

class NodeLifecycleController:
    """Build it with the shared informers (before they run), then `run()`."""

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 config: LifecycleConfig | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.api = LifecycleKube(kube.client)
        self.config = config or LifecycleConfig()
        self.clock = clock
        self.nodes = informers.for_kind("Node")
        self.leases = informers.for_kind("Lease")
        self.pods = informers.for_kind("Pod")
        self.recorder = events.EventRecorder(kube, COMPONENT, host=socket.gethostname())
        self._health: dict[str, NodeHealth] = {}

    async def run(self) -> None:
        """Run the recorder, and monitor every period until cancelled. Expects the shared
        informers to be running (the controller-manager starts them)."""
        tasks = [asyncio.create_task(self.recorder.run(), name="lifecycle-events")]
        try:
            await self.nodes.wait_synced()
            await self.leases.wait_synced()
            while True:
                await self.monitor_once()
                await asyncio.sleep(self.config.monitor_period)
        finally:
            await controller.cancel_and_wait(tasks)

    async def monitor_once(self) -> None:
        """One monitorNodeHealth pass over every node; a failed node is retried next pass."""
        now = self.clock()
        names = set()
        for node in self.nodes:
            name = str((node.get("metadata") or {}).get("name") or "")
            names.add(name)
            try:
                await self._monitor(node, now)
            except kube_api.KubeError as e:
                log.info("node %s: %s; retrying next period", name, e)
        for gone in set(self._health) - names:
            del self._health[gone]

    async def _monitor(self, node: Obj, now: float) -> None:
        name = node["metadata"]["name"]
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        health = observe(self._health.get(name), node, lease, now)
        self._health[name] = health
        if is_stale(health, node, now, self.config):
            node = await self._mark_unknown(node, now)
        wanted = desired_taints(node)
        if taints_differ(node, wanted):
            self.nodes.assume(await self.api.set_node_taints(node, wanted))
        if node_not_ready(node):
            await self._mark_pods_not_ready(name, now)

    async def _mark_unknown(self, node: Obj, now: float) -> Obj:
        conditions = unknown_conditions(node, rfc3339(now))
        if conditions == (node.get("status") or {}).get("conditions"):
            return node
        was_ready = not node_not_ready(node) and condition(node, "Ready") is not None
        updated = await self.api.replace_node_status(
            {**node, "status": {**(node.get("status") or {}), "conditions": conditions}})
        self.nodes.assume(updated)
        if was_ready:
            name = node["metadata"]["name"]
            log.info("node %s: kubelet stopped posting status; marked Unknown", name)
            self.recorder.event(node, "Normal", REASON_NODE_NOT_READY,
                                f"Node {name} status is now: {REASON_NODE_NOT_READY}")
        return updated

    async def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        for pod in self.pods:
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            status = pod_not_ready_status(pod, rfc3339(now))
            if status is None:
                continue
            try:
                updated = await self.api.replace("Pod", {**pod, "status": status}, status=True)
            except kube_api.NotFound:
                continue  # deleted meanwhile: nothing left to mark
            self.pods.assume(updated)
            self.recorder.event(pod, "Warning", REASON_NODE_NOT_READY, MSG_POD_NODE_NOT_READY)
