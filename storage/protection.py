"""Storage object in-use protection: claims and volumes in use are not deleted under a pod.

The apiserver puts `kubernetes.io/pvc-protection` on every new claim and
`kubernetes.io/pv-protection` on every new volume, so a deletion only sets
deletionTimestamp. These two controllers remove the finalizer once it is safe, which lets the
deletion finish: a claim when no pod that is not finished uses it any more (checked against
the cache, then confirmed with a live list, as Kubernetes does, since a stale cache would
lose data), a volume when it is no longer Bound. They also add the finalizer to objects that
lack it (made before protection existed). Like Kubernetes, a pod that was force-deleted (zero
grace period) no longer protects its claim.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from storage import matching
from storage.pv_controller import claims_of_pod
from storage.runtime import controller, informer, shared, workqueue
from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
FINISHED_POD_PHASES = ("Succeeded", "Failed")


def finalizers_of(obj: Mapping[str, Any]) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def pod_is_shut_down(pod: Mapping[str, Any]) -> bool:
    """Force-deleted, or deleted after the kubelet finished with it (grace period 0)."""
    meta = pod.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and meta.get("deletionGracePeriodSeconds") == 0


def pod_uses_claim(pod: Mapping[str, Any], namespace: str, claim_name: str) -> bool:
    """Whether `pod` holds the claim: same namespace, not finished, not shut down."""
    if matching.namespace_of(pod) != namespace:
        return False
    if matching.phase_of(pod) in FINISHED_POD_PHASES or pod_is_shut_down(pod):
        return False
    return claim_name in claims_of_pod(pod)


def with_finalizers(obj: Obj, finalizers: list[str]) -> Obj:
    return {**obj, "metadata": {**obj["metadata"], "finalizers": finalizers}}


class PVCProtectionController:
    def __init__(self, kube: kube_api.Kube, informers: shared.Informers) -> None:
        self.kube = kube
        self.claims = informers.for_kind("PersistentVolumeClaim")
        self.pods = informers.for_kind("Pod")
        self.queue = workqueue.WorkQueue("pvc-protection")
        self.claims.add_handlers(informer.Handlers(
            self._claim_changed, lambda old, new: self._claim_changed(new)))
        self.pods.add_handlers(informer.Handlers(
            self._pod_changed, lambda old, new: self._pod_changed(new), self._pod_changed))

    def _claim_changed(self, claim: Obj) -> None:
        if self._needs_work(claim):
            self.queue.add(matching.claim_key(claim))

    @staticmethod
    def _needs_work(claim: Obj) -> bool:
        has = PVC_PROTECTION in finalizers_of(claim)
        return has if matching.is_being_deleted(claim) else not has

    def _pod_changed(self, pod: Obj) -> None:
        # A pod that goes away or finishes may release a claim that waits for deletion.
        namespace = matching.namespace_of(pod)
        for name in claims_of_pod(pod):
            claim = self.claims.get(f"{namespace}/{name}")
            if claim is not None and self._needs_work(claim):
                self.queue.add(f"{namespace}/{name}")

    async def run(self, workers: int = 1) -> None:
        await controller.run_workers(self.queue, self.sync, workers)

    async def sync(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or not self._needs_work(claim):
            return
        finalizers = finalizers_of(claim)
        if not matching.is_being_deleted(claim):
            await self._replace(with_finalizers(claim, [*finalizers, PVC_PROTECTION]))
            return
        if await self._in_use(claim):
            log.debug("claim %s is in use; keeping %s", key, PVC_PROTECTION)
            return  # a pod event will queue it again
        await self._replace(with_finalizers(
            claim, [f for f in finalizers if f != PVC_PROTECTION]))

    async def _in_use(self, claim: Obj) -> bool:
        namespace, name = matching.namespace_of(claim), matching.name_of(claim)
        if any(pod_uses_claim(p, namespace, name) for p in self.pods):
            return True
        pods, _ = await self.kube.list("Pod", namespace)
        return any(pod_uses_claim(p, namespace, name) for p in pods)

    async def _replace(self, claim: Obj) -> None:
        self.claims.assume(await self.kube.replace("PersistentVolumeClaim", claim))


class PVProtectionController:
    def __init__(self, kube: kube_api.Kube, informers: shared.Informers) -> None:
        self.kube = kube
        self.volumes = informers.for_kind("PersistentVolume")
        self.queue = workqueue.WorkQueue("pv-protection")
        self.volumes.add_handlers(informer.Handlers(
            self._volume_changed, lambda old, new: self._volume_changed(new)))

    def _volume_changed(self, volume: Obj) -> None:
        if self._needs_work(volume):
            self.queue.add(matching.name_of(volume))

    @staticmethod
    def _needs_work(volume: Obj) -> bool:
        has = PV_PROTECTION in finalizers_of(volume)
        if not matching.is_being_deleted(volume):
            return not has
        # isBeingUsed: a Bound volume is in use; the PV controller releases it first.
        return has and matching.phase_of(volume) != matching.VOLUME_BOUND

    async def run(self, workers: int = 1) -> None:
        await controller.run_workers(self.queue, self.sync, workers)

    async def sync(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None or not self._needs_work(volume):
            return
        finalizers = finalizers_of(volume)
        if matching.is_being_deleted(volume):
            finalizers = [f for f in finalizers if f != PV_PROTECTION]
        else:
            finalizers = [*finalizers, PV_PROTECTION]
        written = await self.kube.replace("PersistentVolume", with_finalizers(volume, finalizers))
        self.volumes.assume(written)
