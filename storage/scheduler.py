"""The volume-aware scheduler: places every pod without a node, binding it via pods/binding.

This is the wiring around `scheduling_filters` (kube-scheduler's framework around its
plugins): informers on pods, nodes, claims, volumes and classes queue pod keys; `sync_pod`
filters every node, picks the least loaded fitting one, and binds. A pod whose claims wait
for their first consumer needs volumes first, as kube-scheduler's VolumeBinding plugin does
in PreBind: static volumes are bound to the claims (PV claimRef) and claims to provision get
`volume.kubernetes.io/selected-node`; the pod is bound once every claim is Bound. If the
provisioner clears the selected node (provisioning failed there), the pod is placed again.
Before it plans to provision a claim on a node, it checks the CSIStorageCapacity objects of
the claim's class when the class's CSIDriver asks for it (`storage.capacity` publishes them).
A pod that fits nowhere stays Pending with a FailedScheduling event and a PodScheduled=False
condition carrying Kubernetes' "0/N nodes are available: ..." message, and is retried when
nodes, claims, volumes, CSIDrivers or capacities change, when a pod goes away (it may have
held a ReadWriteOncePod claim), and with backoff. As kube-scheduler assumes a pod on its
node before binding, a pod counts as placed from the moment its node is chosen, before any
API call: the next pod (another worker) sees it, so two pods never both take a
ReadWriteOncePod claim.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import matching, provisioner, pv_controller
from storage import scheduling_filters as sf
from storage.runtime import controller, events, informer, shared, workqueue
from storage.runtime import kube as kube_api
from storage.scheduling_api import CSI_DRIVER, CSI_STORAGE_CAPACITY, SchedulingKube

Obj = dict[str, Any]
log = logging.getLogger(__name__)

COMPONENT = "default-scheduler"
REASON_SCHEDULED = "Scheduled"
REASON_FAILED_SCHEDULING = "FailedScheduling"
MSG_BIND_TIMEOUT = "binding volumes: context deadline exceeded"
DEFAULT_BIND_TIMEOUT = 600.0  # kube-scheduler's bindTimeoutSeconds
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Waiting:
    """A pod placed on `node`, waiting for its claims' volumes to be bound or provisioned."""

    node: str
    plan: sf.VolumePlan
    since: float


def msg_scheduled(pod: Mapping[str, Any], node: str) -> str:
    return f"Successfully assigned {matching.namespace_of(pod)}/{matching.name_of(pod)} to {node}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """Build it with the shared informers (before they run), then `run()`."""

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers, *,
                 scheduler_name: str = COMPONENT, bind_timeout: float = DEFAULT_BIND_TIMEOUT,
                 max_backoff: float = 30.0) -> None:
        self.kube = kube
        self.api = SchedulingKube(kube.client)
        self.scheduler_name = scheduler_name
        self.bind_timeout = bind_timeout
        self.max_backoff = max_backoff
        self.nodes = informers.for_kind("Node")
        self.pods = informers.for_kind("Pod")
        self.claims = informers.for_kind("PersistentVolumeClaim")
        self.volumes = informers.for_kind("PersistentVolume")
        self.classes = informers.for_kind("StorageClass")
        self.csi_drivers = informers.for_kind(CSI_DRIVER)
        self.capacities = informers.for_kind(CSI_STORAGE_CAPACITY)
        self.recorder = events.EventRecorder(kube, COMPONENT, host=socket.gethostname())
        self.queue = workqueue.WorkQueue("pods")
        self._waiting: dict[str, Waiting] = {}
        self._assumed: dict[str, str] = {}  # pod key -> node, until the informer shows it
        self._unschedulable: dict[str, int] = {}  # pod key -> failed attempts
        self._wire()

    # -- wiring ---------------------------------------------------------------------------

    def _wire(self) -> None:
        self.pods.add_handlers(informer.Handlers(
            self._pod_changed, self._pod_updated, self._pod_deleted))
        self.nodes.add_handlers(informer.Handlers(
            lambda n: self._retry_unschedulable(), lambda o, n: self._node_updated(o, n)))
        self.claims.add_handlers(informer.Handlers(
            self._claim_changed, lambda old, new: self._claim_changed(new)))
        self.volumes.add_handlers(informer.Handlers(
            lambda v: self._retry_unschedulable(),
            lambda old, new: self._retry_unschedulable()))
        self.classes.add_handlers(informer.Handlers(lambda c: self._retry_unschedulable()))
        for capacity_informer in (self.csi_drivers, self.capacities):
            capacity_informer.add_handlers(informer.Handlers(
                lambda o: self._retry_unschedulable(),
                lambda old, new: self._retry_unschedulable()))

    def _responsible_for(self, pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or COMPONENT) == self.scheduler_name

    def _pod_changed(self, pod: Obj) -> None:
        key = matching.claim_key(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self._forget(key)
        elif self._responsible_for(pod) and not matching.is_being_deleted(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(new)
        if matching.phase_of(new) in TERMINAL_PHASES and \
                matching.phase_of(old) not in TERMINAL_PHASES:
            self._retry_unschedulable()  # a finished pod frees its node and its claims

    def _pod_deleted(self, pod: Obj) -> None:
        self._forget(matching.claim_key(pod))
        self._retry_unschedulable()

    def _forget(self, key: str) -> None:
        self._assumed.pop(key, None)
        self._waiting.pop(key, None)
        self._unschedulable.pop(key, None)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Heartbeats change a node every few seconds; only what filters read matters.
        if (sf.is_ready(old), old.get("spec"), matching.labels_of(old),
                (old.get("status") or {}).get("allocatable")) != (
                sf.is_ready(new), new.get("spec"), matching.labels_of(new),
                (new.get("status") or {}).get("allocatable")):
            self._retry_unschedulable()

    def _retry_unschedulable(self) -> None:
        for key in list(self._unschedulable):
            self.queue.add(key)

    def _claim_changed(self, claim: Obj) -> None:
        namespace, name = matching.namespace_of(claim), matching.name_of(claim)
        for pod in self.pods:
            if matching.namespace_of(pod) == namespace and \
                    not (pod.get("spec") or {}).get("nodeName") and \
                    name in pv_controller.claims_of_pod(pod):
                self.queue.add(matching.claim_key(pod))

    # -- running --------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        """Run the event recorder, then the workers, until cancelled. Expects the shared
        informers to be running (the controller-manager starts them)."""
        background = [asyncio.create_task(self.recorder.run(), name="scheduler-events")]
        try:
            await asyncio.gather(*(i.wait_synced() for i in (self.nodes, self.csi_drivers,
                                                              self.capacities)))
            await controller.run_workers(self.queue, self.sync_pod, workers)
        finally:
            await controller.cancel_and_wait(background)

    # -- scheduling -----------------------------------------------------------------------

    async def sync_pod(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or \
                matching.is_being_deleted(pod) or not self._responsible_for(pod) or \
                key in self._assumed:
            return
        waiting = self._waiting.get(key)
        if waiting is not None:
            await self._continue_waiting(pod, waiting)
            return
        await self._schedule(pod)

    def _claim_states(self, pod: Mapping[str, Any]) -> list[sf.ClaimState]:
        namespace = matching.namespace_of(pod)
        states = []
        for name in pv_controller.claims_of_pod(pod):
            claim = self.claims.get(f"{namespace}/{name}")
            sc = self.classes.get(matching.claim_class(claim)) if claim else None
            states.append(sf.ClaimState(name, claim, sc, self._csi_driver_of(sc)))
        return states

    def _csi_driver_of(self, sc: Mapping[str, Any] | None) -> Obj | None:
        """The CSIDriver named after the class's provisioner (spec.csi.driver of its PVs)."""
        if sc is None or not sc.get("provisioner"):
            return None
        return self.csi_drivers.get(provisioner.csi_driver_name(str(sc["provisioner"])))

    def _placed_on(self, pod: Mapping[str, Any]) -> str:
        """The pod's node: bound, assumed (binding), or chosen (waiting for volumes)."""
        key = matching.claim_key(pod)
        waiting = self._waiting.get(key)
        return str((pod.get("spec") or {}).get("nodeName") or self._assumed.get(key)
                   or (waiting.node if waiting else ""))

    def _pods_by_node(self) -> dict[str, list[Obj]]:
        by_node: dict[str, list[Obj]] = {}
        for pod in self.pods:
            node = self._placed_on(pod)
            if node and matching.phase_of(pod) not in TERMINAL_PHASES:
                by_node.setdefault(node, []).append(pod)
        return by_node

    async def _schedule(self, pod: Obj) -> None:
        nodes = list(self.nodes)
        claims = self._claim_states(pod)
        problem = sf.volume_prefilter(claims)
        if problem is not None:
            await self._unschedulable_now(pod, sf.prefilter_error(len(nodes), problem))
            return
        by_node = self._pods_by_node()
        conflicts = sf.read_write_once_pod_conflicts(
            pod, claims, (p for placed in by_node.values() for p in placed))
        volumes = {matching.name_of(v): v for v in self.volumes}
        unbound = [v for v in volumes.values() if matching.claim_ref(v) is None
                   or any(matching.is_volume_bound_to_claim(v, c.claim)
                          for c in claims if c.claim)]
        capacities = list(self.capacities)
        verdicts = [sf.filter_node(pod, node, by_node.get(sf.node_name(node), []), claims,
                                   volumes, unbound, conflicts, capacities) for node in nodes]
        chosen = sf.pick(verdicts, {n: len(p) for n, p in by_node.items()})
        if chosen is None:
            message = sf.fit_error(len(nodes), {v.node: v.reasons for v in verdicts})
            await self._unschedulable_now(pod, message)
            return
        await self._place(pod, chosen, claims)

    async def _place(self, pod: Obj, chosen: sf.NodeVerdict,
                     claims: list[sf.ClaimState]) -> None:
        key = matching.claim_key(pod)
        self._unschedulable.pop(key, None)
        if not chosen.plan.static and not chosen.plan.provision:
            await self._bind(pod, chosen.node)
            return
        by_name = {c.name: c.claim for c in claims}
        waiting = self._waiting[key] = Waiting(chosen.node, chosen.plan, time.monotonic())
        try:
            for claim_name, volume_name in chosen.plan.static.items():
                await self._bind_static(by_name[claim_name] or {}, volume_name)
            for claim_name in chosen.plan.provision:
                await self._select_node(by_name[claim_name] or {}, chosen.node)
        except BaseException:
            self._waiting.pop(key, None)  # not placed after all: scheduled again
            raise
        await self._continue_waiting(pod, waiting)

    async def _bind_static(self, claim: Obj, volume_name: str) -> None:
        """bindAPIUpdate: pre-bind the volume to the claim; the PV controller finishes."""
        volume = self.volumes.get(volume_name)
        if volume is None or matching.claim_ref(volume) is not None:
            return
        meta = volume["metadata"]
        annotations = {**(meta.get("annotations") or {}),
                       matching.ANN_BOUND_BY_CONTROLLER: "yes"}
        ref = {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
               "namespace": matching.namespace_of(claim), "name": matching.name_of(claim),
               "uid": matching.uid_of(claim),
               "resourceVersion": claim["metadata"].get("resourceVersion")}
        new = {**volume, "metadata": {**meta, "annotations": annotations},
               "spec": {**volume.get("spec", {}), "claimRef": ref}}
        self.volumes.assume(await self.kube.replace("PersistentVolume", new))

    async def _select_node(self, claim: Obj, node: str) -> None:
        if matching.annotations_of(claim).get(matching.ANN_SELECTED_NODE) == node:
            return
        patch = {"metadata": {"annotations": {matching.ANN_SELECTED_NODE: node}}}
        updated = await self.kube.merge_patch("PersistentVolumeClaim", matching.name_of(claim),
                                              patch, matching.namespace_of(claim))
        self.claims.assume(updated)

    async def _continue_waiting(self, pod: Obj, waiting: Waiting) -> None:
        """Bind once every claim is Bound to a volume that fits the node; place again if a
        provisioner gave the node up; give up after bind_timeout."""
        key = matching.claim_key(pod)
        states = {c.name: c for c in self._claim_states(pod)}
        for name in waiting.plan.provision:
            claim = states[name].claim if name in states else None
            if claim is None or (not states[name].bound_volume and matching.annotations_of(
                    claim).get(matching.ANN_SELECTED_NODE) != waiting.node):
                del self._waiting[key]  # provisioning failed there: choose again
                self.queue.add(key)
                return
        if all(self._bound_on(state, waiting.node) for state in states.values()):
            del self._waiting[key]
            await self._bind(pod, waiting.node)
            return
        if time.monotonic() - waiting.since > self.bind_timeout:
            del self._waiting[key]
            await self._unschedulable_now(pod, MSG_BIND_TIMEOUT)
        # Otherwise the claim's update will queue the pod again.

    def _bound_on(self, state: sf.ClaimState, node_name: str) -> bool:
        claim = state.claim
        if claim is None or matching.phase_of(claim) != matching.CLAIM_BOUND:
            return False
        volume = self.volumes.get(state.bound_volume)
        node = self.nodes.get(node_name)
        return volume is not None and node is not None and \
            matching.check_node_affinity(volume, matching.labels_of(node))

    async def _bind(self, pod: Obj, node: str) -> None:
        key = matching.claim_key(pod)
        self._assumed[key] = node  # assumed before the call: the next pod counts it
        try:
            await self.api.bind_pod(matching.namespace_of(pod), matching.name_of(pod), node,
                                    matching.uid_of(pod))
        except kube_api.Conflict:
            self._assumed.pop(key, None)
            return  # already assigned (by us before a restart, or by someone else)
        except BaseException:
            self._assumed.pop(key, None)
            raise
        self.recorder.event(pod, "Normal", REASON_SCHEDULED, msg_scheduled(pod, node))

    async def _unschedulable_now(self, pod: Obj, message: str) -> None:
        """Event + PodScheduled=False; retry with backoff 1 s .. max_backoff."""
        key = matching.claim_key(pod)
        attempts = self._unschedulable.get(key, 0)
        self._unschedulable[key] = attempts + 1
        self.recorder.event(pod, "Warning", REASON_FAILED_SCHEDULING, message)
        await self._set_unschedulable_condition(pod, message)
        raise controller.Requeue(min(self.max_backoff, 2.0 ** attempts), message)

    async def _set_unschedulable_condition(self, pod: Obj, message: str) -> None:
        status = pod.get("status") or {}
        conditions = [c for c in status.get("conditions") or ()
                      if c.get("type") != "PodScheduled"]
        old = next((c for c in status.get("conditions") or ()
                    if c.get("type") == "PodScheduled"), None)
        if old is not None and old.get("message") == message:
            return
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": message, "lastProbeTime": None,
                           "lastTransitionTime": _now()})
        new = {**pod, "status": {**status, "phase": status.get("phase") or "Pending",
                                 "conditions": conditions}}
        try:
            self.pods.assume(await self.kube.replace("Pod", new, status=True))
        except kube_api.KubeError as e:
            log.debug("pod %s: could not set PodScheduled: %s", matching.claim_key(pod), e)


def build(kube: kube_api.Kube, informers: shared.Informers, **options: Any) -> Scheduler:
    """The constructor the controller-manager calls (before starting the informers)."""
    return Scheduler(kube, informers, **options)
