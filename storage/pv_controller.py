"""The PersistentVolume controller: binds claims to volumes, and reclaims released volumes.

This is the wiring around the pure decisions of `binder_decisions` (Kubernetes'
pv_controller_base.go around pv_controller.go): informers on PVs, PVCs, StorageClasses and
pods feed two work queues (claims by `namespace/name`, volumes by name); `sync_claim` and
`sync_volume` re-read the cached objects, ask `decide_claim`/`decide_volume` what to do, and
carry the action out one API write at a time with `next_write`, storing each answer in the
cache so the next step sees our own write. A `VolumeIndex` kept up to date from the PV
informer makes each claim's search about O(log n). Claims that found nothing wait in a list
per class and are woken the moment a fitting volume becomes Available, instead of at the next
resync. Reclaiming (Delete, Recycle) goes through `reclaim.Reclaimers`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from apimachinery import names
from storage import binder_decisions as bd
from storage import matching, reclaim
from storage.runtime import controller, events, informer, shared, workqueue
from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)

COMPONENT = "persistentvolume-controller"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")
NO_PROVISIONER = "kubernetes.io/no-provisioner"

REASON_PROVISIONING_FAILED = "ProvisioningFailed"
REASON_EXTERNAL_PROVISIONING = "ExternalProvisioning"
REASON_VOLUME_FAILED_DELETE = "VolumeFailedDelete"
REASON_VOLUME_FAILED_RECYCLE = "VolumeFailedRecycle"
REASON_VOLUME_RECYCLED = "VolumeRecycled"
REASON_VOLUME_DELETE = "VolumeDelete"
MSG_NO_RECYCLER = "No recycler plugin found for the volume!"
MSG_VOLUME_RECYCLED = "Volume recycled"


def msg_external_provisioning(provisioner: str) -> str:
    return (f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.")


def msg_no_deleter(volume_name: str) -> str:
    return (f"error getting deleter volume plugin for volume {names.go_quote(volume_name)}: "
            "no deletable volume plugin matched")


def msg_class_not_found(class_name: str) -> str:
    return f"storageclass.storage.k8s.io {names.go_quote(class_name)} not found"


def is_default_class(sc: Mapping[str, Any]) -> bool:
    annotations = matching.annotations_of(sc)
    return any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)


def default_class_name(classes: list[Obj]) -> str | None:
    """GetDefaultClass: among default classes the newest wins, then the smallest name."""
    defaults = [sc for sc in classes if is_default_class(sc)]
    if not defaults:
        return None
    newest = max(str(sc["metadata"].get("creationTimestamp") or "") for sc in defaults)
    return min(matching.name_of(sc) for sc in defaults
               if str(sc["metadata"].get("creationTimestamp") or "") == newest)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def claims_of_pod(pod: Mapping[str, Any]) -> list[str]:
    """Names of the claims a pod uses: persistentVolumeClaim volumes and generic ephemeral
    volumes (whose claim is named `<pod>-<volume>`)."""
    found = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        pvc = volume.get("persistentVolumeClaim")
        if pvc and pvc.get("claimName"):
            found.append(str(pvc["claimName"]))
        elif volume.get("ephemeral") is not None:
            found.append(f"{matching.name_of(pod)}-{volume.get('name')}")
    return found


class PersistentVolumeController:
    """Binder + reclaimer. Build it, then `run()` it once the informers run."""

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 recorder: events.EventRecorder,
                 reclaimers: reclaim.Reclaimers | None = None) -> None:
        self.kube = kube
        self.recorder = recorder
        self.reclaimers = reclaimers or reclaim.Reclaimers()
        self.volumes = informers.for_kind("PersistentVolume")
        self.claims = informers.for_kind("PersistentVolumeClaim")
        self.classes = informers.for_kind("StorageClass")
        self.pods = informers.for_kind("Pod")
        self.index = matching.VolumeIndex()
        self.claim_queue = workqueue.WorkQueue("claims")
        self.volume_queue = workqueue.WorkQueue("volumes", workqueue.Backoff(0.5, 300.0))
        # Claims that found no volume, by class, in arrival order; and by requested volume.
        self._waiting: dict[str, dict[str, None]] = {}
        self._waiting_for_volume: dict[str, set[str]] = {}
        self._wire()

    # -- wiring ---------------------------------------------------------------------------

    def _wire(self) -> None:
        self.volumes.add_handlers(informer.Handlers(
            self._volume_added, lambda old, new: self._volume_added(new), self._volume_deleted))
        self.claims.add_handlers(informer.Handlers(
            self._claim_changed, lambda old, new: self._claim_changed(new), self._claim_deleted))
        self.classes.add_handlers(informer.Handlers(
            self._class_changed, lambda old, new: self._class_changed(new)))

    def _volume_added(self, volume: Obj) -> None:
        name = matching.name_of(volume)
        self._index_volume(volume)
        self.volume_queue.add(name)
        ref = matching.claim_ref(volume)
        if ref is not None:
            # Its claim may be one step from Bound: ahead of claims still to be looked at.
            self.claim_queue.add(matching.claim_ref_key(ref), urgent=True)
        elif matching.phase_of(volume) == matching.VOLUME_AVAILABLE:
            self._wake_claim_for(volume)
        for key in self._waiting_for_volume.pop(name, ()):
            self.claim_queue.add(key)

    def _index_volume(self, volume: Obj) -> None:
        try:
            self.index.upsert(volume)
        except matching.MatchingError as e:
            self.index.remove(matching.name_of(volume))
            log.warning("volume %s cannot be indexed: %s", matching.name_of(volume), e)

    def _restore_index(self, name: str) -> None:
        cached = self.volumes.get(name)
        if cached is not None:
            self._index_volume(cached)
        else:
            self.index.remove(name)

    def _volume_deleted(self, volume: Obj) -> None:
        self.index.remove(matching.name_of(volume))
        ref = matching.claim_ref(volume)
        if ref is not None:
            self.claim_queue.add(matching.claim_ref_key(ref))

    def _claim_changed(self, claim: Obj) -> None:
        # A claim naming its volume is half bound: finish it before taking up new ones.
        self.claim_queue.add(matching.claim_key(claim),
                             urgent=bool(matching.volume_name_of_claim(claim)))

    def _claim_deleted(self, claim: Obj) -> None:
        key = matching.claim_key(claim)
        self._stop_waiting(key)
        volume_name = matching.volume_name_of_claim(claim)
        if volume_name:
            self.volume_queue.add(volume_name)
        for volume in self.index.volumes_claiming(matching.namespace_of(claim),
                                                  matching.name_of(claim)):
            self.volume_queue.add(matching.name_of(volume))

    def _class_changed(self, sc: Obj) -> None:
        """A new (default) class may let waiting claims proceed: resync them."""
        name = matching.name_of(sc)
        for key in list(self._waiting.get(name, ())):
            self.claim_queue.add(key)
        if is_default_class(sc):
            for claim in self.claims:
                if not matching.claim_has_class(claim) and \
                        not matching.volume_name_of_claim(claim):
                    self.claim_queue.add(matching.claim_key(claim))

    def _wake_claim_for(self, volume: Obj) -> None:
        """Queue the oldest waiting claim this newly Available volume could serve."""
        waiting = self._waiting.get(matching.volume_class(volume))
        if not waiting:
            return
        for key in waiting:
            claim = self.claims.get(key)
            if claim is None or self._could_serve(volume, claim):
                del waiting[key]
                self.claim_queue.add(key)
                return

    @staticmethod
    def _could_serve(volume: Obj, claim: Obj) -> bool:
        try:
            fits = matching.find_matching_volume(claim, [volume]) is not None
        except matching.MatchingError:
            return False
        return fits and matching.check_access_modes(claim, volume)

    def _wait(self, claim: Obj) -> None:
        key = matching.claim_key(claim)
        requested = matching.volume_name_of_claim(claim)
        if requested:
            self._waiting_for_volume.setdefault(requested, set()).add(key)
        else:
            self._waiting.setdefault(matching.claim_class(claim), {})[key] = None

    def _stop_waiting(self, key: str) -> None:
        for waiting in self._waiting.values():
            waiting.pop(key, None)

    # -- running --------------------------------------------------------------------------

    async def run(self, claim_workers: int = 16, volume_workers: int = 8) -> None:
        """Work the queues until cancelled. Several claim workers overlap their API round
        trips; `_write` reserves a chosen volume so that they never pick the same one."""
        await asyncio.gather(
            controller.run_workers(self.claim_queue, self.sync_claim, claim_workers),
            controller.run_workers(self.volume_queue, self.sync_volume, volume_workers))

    # -- claims ---------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None:
            self._stop_waiting(key)
            return
        self._stop_waiting(key)
        delay = bd.is_delay_binding_mode(claim, self._class_of(claim))
        action = bd.decide_claim(
            claim, self._requested_volume(claim), self.index, delay_binding=delay,
            default_class=default_class_name(list(self.classes)),
            waiting_pods=self._unscheduled_pods_using(claim) if delay else ())
        await self._carry_out_claim_action(action, claim)

    def _class_of(self, claim: Obj) -> Obj | None:
        name = matching.claim_class(claim)
        return self.classes.get(name) if name else None

    def _requested_volume(self, claim: Obj) -> Obj | None:
        name = matching.volume_name_of_claim(claim)
        return self.index.get(name) if name else None

    def _unscheduled_pods_using(self, claim: Obj) -> list[str]:
        namespace, name = matching.namespace_of(claim), matching.name_of(claim)
        return sorted(
            f"{namespace}/{matching.name_of(pod)}" for pod in self.pods
            if matching.namespace_of(pod) == namespace and name in claims_of_pod(pod)
            and not (pod.get("spec") or {}).get("nodeName"))

    async def _carry_out_claim_action(self, action: bd.ClaimAction, claim: Obj) -> None:
        volume = self.index.get(bd.target_volume_name(action, claim))
        claim, volume = await self._write_until_done(action, claim, volume)
        if isinstance(action, (bd.MarkClaimPending, bd.WaitForFirstConsumer,
                               bd.MarkClaimLost)) and action.event is not None:
            self._event(claim, action.event)
        if isinstance(action, bd.MarkClaimPending):
            self._wait(claim)
        elif isinstance(action, bd.WaitForProvisioning):
            await self._provision(claim, action.class_name)
        elif isinstance(action, bd.AssignDefaultStorageClass):
            self.claim_queue.add(matching.claim_key(claim))
        elif isinstance(action, bd.ReportBindingConflict):
            self._event(claim, action.event)
            raise controller.RetryLater(action.error)

    async def _write_until_done(self, action: bd.ClaimAction | bd.VolumeAction,
                                claim: Obj | None, volume: Obj | None
                                ) -> tuple[Any, Any]:
        """Apply `next_write` until it has nothing more to do; each answer feeds the next."""
        while (write := bd.next_write(action, claim, volume)) is not None:
            written = await self._write(write)
            if write.kind == "PersistentVolume":
                volume = written
            else:
                claim = written
        return claim, volume

    async def _write(self, write: bd.Write) -> Obj:
        obj = write.obj
        if write.kind == "PersistentVolume" and write.status:
            obj = _stamp_phase_transition(obj, self.volumes.get(matching.name_of(obj)))
        claiming = write.kind == "PersistentVolume" and not write.status
        if claiming:
            # Reserve the volume in the index before the first await, so that another claim
            # worker cannot choose it meanwhile; the resourceVersion check on the write
            # keeps it safe even if a stale event undoes the reservation.
            self._index_volume(obj)
        try:
            written = await self.kube.replace(write.kind, obj, status=write.status)
        except BaseException:
            if claiming:
                self._restore_index(matching.name_of(obj))
            raise
        if write.kind == "PersistentVolume":
            self.volumes.assume(written)
        else:
            self.claims.assume(written)
        return written

    async def _provision(self, claim: Obj, class_name: str) -> None:
        """provisionClaim: hand the claim to its class's provisioner, or say why nobody will.

        Our provisioners run as their own controllers, like CSI external provisioners, so
        they find the claim by the storage-provisioner annotations set here.
        """
        sc = self.classes.get(class_name)
        self._wait(claim)
        if sc is None:
            self._event(claim, bd.Event(bd.EVENT_WARNING, REASON_PROVISIONING_FAILED,
                                        msg_class_not_found(class_name)))
            return
        provisioner = str(sc.get("provisioner") or "")
        if provisioner.startswith("kubernetes.io/"):
            # In-tree names (kubernetes.io/no-provisioner above all): no plugin here, so
            # the claim waits for a static volume, as it does in Kubernetes.
            self._event(claim, bd.Event(bd.EVENT_WARNING, REASON_PROVISIONING_FAILED,
                                        f"no volume plugin matched name: {provisioner}"))
            return
        await self._set_claim_provisioner(claim, provisioner)
        self._event(claim, bd.Event(bd.EVENT_NORMAL, REASON_EXTERNAL_PROVISIONING,
                                    msg_external_provisioning(provisioner)))

    async def _set_claim_provisioner(self, claim: Obj, provisioner: str) -> None:
        annotations = matching.annotations_of(claim)
        if annotations.get(ANN_STORAGE_PROVISIONER) == provisioner and \
                annotations.get(ANN_BETA_STORAGE_PROVISIONER) == provisioner:
            return
        new = {**claim, "metadata": {**claim["metadata"], "annotations": {
            **annotations, ANN_STORAGE_PROVISIONER: provisioner,
            ANN_BETA_STORAGE_PROVISIONER: provisioner}}}
        self.claims.assume(await self.kube.replace("PersistentVolumeClaim", new))

    # -- volumes --------------------------------------------------------------------------

    async def sync_volume(self, name: str) -> None:
        volume = self.volumes.get(name)
        if volume is None:
            return
        claim = await self._claim_of(volume)
        action = bd.decide_volume(volume, claim)
        if isinstance(action, bd.SyncClaim):
            self.claim_queue.add(action.claim_key)
        elif isinstance(action, bd.ReportVolumeModeMismatch):
            self._event(volume, action.volume_event)
            if claim is not None:
                self._event(claim, action.claim_event)
        elif isinstance(action, bd.ReclaimVolume):
            await self._reclaim(volume, action.policy)
        else:
            await self._carry_out_volume_action(action, volume)

    async def _claim_of(self, volume: Obj) -> Obj | None:
        """The claim named by claimRef. A cache miss on a volume not yet released is confirmed
        with the API server first: releasing on stale information could lose data."""
        ref = matching.claim_ref(volume)
        if ref is None:
            return None
        claim = self.claims.get(matching.claim_ref_key(ref))
        if claim is not None or not ref.get("uid"):
            return claim
        if matching.phase_of(volume) in (matching.VOLUME_RELEASED, matching.VOLUME_FAILED):
            return None  # already released: nothing more to lose, no need to ask again
        try:
            return await self.kube.get("PersistentVolumeClaim", str(ref.get("name")),
                                       str(ref.get("namespace")))
        except kube_api.NotFound:
            return None

    async def _carry_out_volume_action(self, action: bd.VolumeAction, volume: Obj) -> None:
        _, volume = await self._write_until_done(action, None, volume)
        if isinstance(action, bd.MarkVolumeFailed):
            self._event(volume, action.event)
        elif isinstance(action, bd.MarkVolumeReleased):
            self.volume_queue.add(matching.name_of(volume))  # now apply the reclaim policy

    # -- reclaim --------------------------------------------------------------------------

    async def _reclaim(self, volume: Obj, policy: str) -> None:
        # Re-read: deleting storage on a stale view (e.g. the PV was re-bound) loses data.
        try:
            volume = await self.kube.get("PersistentVolume", matching.name_of(volume))
        except kube_api.NotFound:
            return
        if matching.phase_of(volume) not in (matching.VOLUME_RELEASED, matching.VOLUME_FAILED):
            return
        plugin = self.reclaimers.for_volume(volume)
        if isinstance(plugin, reclaim.External):
            return  # an external provisioner's deleter owns this volume
        if policy == bd.RECLAIM_DELETE:
            await self._delete_volume(volume, plugin)
        else:
            await self._recycle_volume(volume, plugin)

    async def _delete_volume(self, volume: Obj,
                             plugin: reclaim.Reclaimer | reclaim.NoPlugin) -> None:
        if isinstance(plugin, reclaim.NoPlugin):
            await self._fail(volume, REASON_VOLUME_FAILED_DELETE,
                             msg_no_deleter(matching.name_of(volume)))
        try:
            await plugin.delete(volume)
        except reclaim.VolumeInUse as e:
            self._event(volume, bd.Event(bd.EVENT_NORMAL, REASON_VOLUME_DELETE, str(e)))
            raise controller.RetryLater(str(e)) from e
        except reclaim.ReclaimError as e:
            await self._fail(volume, REASON_VOLUME_FAILED_DELETE, str(e))
        try:
            await self.kube.delete("PersistentVolume", matching.name_of(volume))
        except kube_api.NotFound:
            pass

    async def _recycle_volume(self, volume: Obj,
                              plugin: reclaim.Reclaimer | reclaim.NoPlugin) -> None:
        if isinstance(plugin, reclaim.NoPlugin):
            await self._fail(volume, REASON_VOLUME_FAILED_RECYCLE, MSG_NO_RECYCLER)
        try:
            await plugin.recycle(volume)
        except NotImplementedError:
            await self._fail(volume, REASON_VOLUME_FAILED_RECYCLE, MSG_NO_RECYCLER)
        except reclaim.ReclaimError as e:
            await self._fail(volume, REASON_VOLUME_FAILED_RECYCLE, f"Recycle failed: {e}")
        self._event(volume, bd.Event(bd.EVENT_NORMAL, REASON_VOLUME_RECYCLED,
                                     MSG_VOLUME_RECYCLED))
        await self._write_until_done(bd.UnbindVolume(), None, volume)

    async def _fail(self, volume: Obj, reason: str, message: str) -> NoReturn:
        """updateVolumePhaseWithEvent(Failed), then fail the sync so it retries with backoff."""
        event = bd.Event(bd.EVENT_WARNING, reason, message)
        new = bd.set_volume_phase(volume, matching.VOLUME_FAILED, message)
        if new is not None:
            volume = await self._write(bd.Write("PersistentVolume", True, new))
        self._event(volume, event)
        raise controller.RetryLater(message)

    def _event(self, obj: Obj, event: bd.Event) -> None:
        self.recorder.event(obj, event.type, event.reason, event.message)


def _stamp_phase_transition(new: Obj, old: Obj | None) -> Obj:
    """status.lastPhaseTransitionTime moves with the phase (Kubernetes 1.31 GA field)."""
    old_phase = matching.phase_of(old) if old is not None else ""
    if matching.phase_of(new) == old_phase:
        return new
    return {**new, "status": {**(new.get("status") or {}), "lastPhaseTransitionTime": _now()}}
