"""The dynamic provisioner: makes a volume and its PV for every claim handed to our drivers.

It follows Kubernetes' external-provisioner (sig-storage-lib-external-provisioner + the CSI
provisioner): it acts on claims whose `volume.kubernetes.io/storage-provisioner` (or beta)
annotation, set by the PV controller, names one of our csi_like drivers; the PV is named
`pvc-<claim uid>`, so a retry finds and reuses its own work; the PV carries
`pv.kubernetes.io/provisioned-by`, the class's reclaimPolicy and mountOptions, a `spec.csi`
source whose volumeHandle is the driver's id (the real backend path: deletion uses it, never
a recomputed one) and node affinity from the volume's topology. Before the driver creates
anything, a finalizer and an intent annotation (the exact request) are written on the claim:
a crash before the PV exists is finished on restart, and a claim deleted before its PV
exists has its volume removed from the intent before the finalizer goes. Failures are
ProvisioningFailed events with per-claim backoff (1 s doubling to 5 min), and clear the
selected node of a WaitForFirstConsumer claim so the scheduler places the pod again. The
reclaim side is `DriverReclaimer`, the hook the PV controller calls to delete a volume.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from apimachinery import quantity
from csi_like import contract, errors, registry
from storage import matching, provisioning_secrets, pv_controller, reclaim
from storage.runtime import controller, events, informer, shared, workqueue
from storage.runtime import kube as kube_api

Obj = dict[str, Any]
log = logging.getLogger(__name__)

LOCAL = "storagelab.io/local"
NFS = "storagelab.io/nfs"
FINALIZER = "storagelab.io/provisioning-protection"
ANN_INTENT = "storagelab.io/provisioning-intent"
ANN_PROVISIONER_IDENTITY = "storage.kubernetes.io/csiProvisionerIdentity"
FSTYPE_PARAMETER = "csi.storage.k8s.io/fstype"
REASON_PROVISIONING = "Provisioning"
REASON_SUCCEEDED = "ProvisioningSucceeded"
REASON_FAILED = "ProvisioningFailed"
DEFAULT_RECLAIM_POLICY = "Delete"


class ConfigError(ValueError):
    """The provisioner's configuration is unusable; the message names the flag."""


class PlanError(errors.PermanentError):
    """The claim or class cannot be turned into a driver request (said in the event)."""


def msg_provisioning(claim: Mapping[str, Any]) -> str:
    return (f'External provisioner is provisioning volume for claim '
            f'"{matching.namespace_of(claim)}/{matching.name_of(claim)}"')


def msg_succeeded(pv_name: str) -> str:
    return f"Successfully provisioned volume {pv_name}"


def msg_failed(class_name: str, error: Exception) -> str:
    return f'failed to provision volume with StorageClass "{class_name}": {error}'


def csi_driver_name(provisioner: str) -> str:
    """The PV's spec.csi.driver for a provisioner: Kubernetes wants a DNS-1123 subdomain
    there, so "storagelab.io/local" becomes "local.storagelab.io" (as the kubelet expects)."""
    domain, sep, kind = provisioner.partition("/")
    return f"{kind}.{domain}" if sep else provisioner


def volume_name_for(claim: Mapping[str, Any]) -> str:
    return f"pvc-{matching.uid_of(claim)}"


# ----------------------------------------------------------------------------- config

@dataclass(frozen=True)
class ProvisionerConfig:
    """Which drivers to run and as whom; validated once at start."""

    local_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    enable_nfs: bool = True
    workers: int = 8
    takeover_after: float = 30.0

    def drivers(self) -> dict[str, contract.Driver]:
        drivers: dict[str, contract.Driver] = {}
        if self.local_paths:
            try:
                drivers[LOCAL] = registry.create(LOCAL, {"nodePaths": {
                    node: list(paths) for node, paths in self.local_paths.items()}})
            except errors.DriverError as e:
                raise ConfigError(f"--local-path: {e}") from e
        if self.enable_nfs:
            drivers[NFS] = registry.create(NFS, {})
        return drivers


def parse_local_paths(values: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`NODE=PATH` flags (repeatable; `*=PATH` serves every node) into nodePaths."""
    paths: dict[str, list[str]] = {}
    for value in values:
        node, sep, path = value.partition("=")
        if not sep or not node or not path:
            raise ConfigError(f"--local-path {value!r}: expected NODE=PATH")
        if not os.path.isabs(path):
            raise ConfigError(f"--local-path {value!r}: the path must be absolute")
        paths.setdefault(node, []).append(path)
    return {node: tuple(p) for node, p in paths.items()}


def default_local_paths(data_dir: str) -> dict[str, tuple[str, ...]]:
    """`<data-dir>/local-volumes` for every node (the embedded, one-machine setup)."""
    return {"*": (os.path.join(os.path.abspath(data_dir), "local-volumes"),)}


# ----------------------------------------------------------------------------- pure plan

@dataclass(frozen=True)
class Intent:
    """What we are about to ask a driver, written on the claim before asking."""

    holder: str
    at: float
    provisioner: str
    class_name: str
    volume: str
    capacity_bytes: int
    parameters: Mapping[str, str]
    access_modes: tuple[str, ...]
    node: str

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "parameters": dict(self.parameters),
                           "access_modes": list(self.access_modes)}, sort_keys=True)

    @classmethod
    def of_claim(cls, claim: Mapping[str, Any]) -> Intent | None:
        raw = matching.annotations_of(claim).get(ANN_INTENT)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            data["access_modes"] = tuple(data["access_modes"])
            return cls(**data)
        except (ValueError, TypeError, KeyError):
            return None

    def same_request(self, other: Intent) -> bool:
        return {**asdict(self), "at": 0} == {**asdict(other), "at": 0}

    def request(self, claim: Mapping[str, Any]) -> contract.CreateVolumeRequest:
        topology = None
        if self.node:
            segment = contract.Topology.node(self.node)
            topology = contract.TopologyRequirement((segment,), (segment,))
        return contract.CreateVolumeRequest(
            name=self.volume, capacity_bytes=self.capacity_bytes,
            parameters=self.parameters,
            access_modes=tuple(contract.AccessMode(m) for m in self.access_modes),
            topology=topology, claim=claim_metadata(claim, self.volume))


def claim_metadata(claim: Mapping[str, Any], pv_name: str) -> contract.ClaimMetadata:
    return contract.ClaimMetadata(
        pvc_name=matching.name_of(claim), pvc_namespace=matching.namespace_of(claim),
        pvc_uid=matching.uid_of(claim), pv_name=pv_name,
        annotations=dict(matching.annotations_of(claim)))


def provisioner_of(claim: Mapping[str, Any]) -> str:
    annotations = matching.annotations_of(claim)
    return str(annotations.get(pv_controller.ANN_STORAGE_PROVISIONER)
               or annotations.get(pv_controller.ANN_BETA_STORAGE_PROVISIONER) or "")


def _hostnames_allowed(sc: Mapping[str, Any]) -> set[str] | None:
    """Hostnames allowedTopologies permits, or None when it does not restrict hostnames."""
    allowed: set[str] | None = None
    for term in sc.get("allowedTopologies") or ():
        for expression in term.get("matchLabelExpressions") or ():
            if expression.get("key") == contract.TOPOLOGY_HOSTNAME_KEY:
                allowed = (allowed or set()) | set(expression.get("values") or ())
    return allowed


def plan_intent(claim: Mapping[str, Any], sc: Mapping[str, Any], holder: str,
                now: float) -> Intent:
    """The driver request for `claim` in class `sc`; PlanError when it cannot be made."""
    modes = tuple(sorted(matching.access_modes(claim)))
    known = {m.value for m in contract.AccessMode}
    if not modes or not set(modes) <= known:
        raise PlanError(f"invalid accessModes {list(modes)}")
    if matching.volume_mode(claim) == "Block":
        raise PlanError("volumeMode Block is not supported by this provisioner")
    try:
        request = matching.requested_storage(claim)
    except matching.MatchingError as e:
        raise PlanError(str(e)) from e
    node = matching.annotations_of(claim).get(matching.ANN_SELECTED_NODE, "")
    allowed = _hostnames_allowed(sc)
    if allowed is not None and node and node not in allowed:
        raise PlanError(f"selected node {node!r} is not in the class's allowedTopologies")
    if allowed is not None and not node and len(allowed) == 1:
        node = next(iter(allowed))
    return Intent(holder=holder, at=now, provisioner=str(sc.get("provisioner")),
                  class_name=matching.name_of(sc), volume=volume_name_for(claim),
                  capacity_bytes=math.ceil(request), parameters=dict(sc.get("parameters") or {}),
                  access_modes=modes, node=node)


def node_affinity(topologies: Sequence[contract.Topology]) -> Obj | None:
    """One nodeSelectorTerm per accessible topology (ORed), one In per segment (ANDed)."""
    terms = [{"matchExpressions": [{"key": k, "operator": "In", "values": [v]}
                                   for k, v in sorted(t.segments.items())]}
             for t in topologies if t.segments]
    return {"required": {"nodeSelectorTerms": terms}} if terms else None


def build_volume(claim: Mapping[str, Any], sc: Mapping[str, Any], intent: Intent,
                 volume: contract.Volume, identity: str) -> Obj:
    """The PV external-provisioner would create for this claim and driver answer."""
    csi: Obj = {"driver": csi_driver_name(intent.provisioner), "volumeHandle": volume.volume_id,
                "volumeAttributes": {**dict(volume.context),
                                     ANN_PROVISIONER_IDENTITY: identity}}
    fs_type = intent.parameters.get(FSTYPE_PARAMETER)
    if fs_type:
        csi["fsType"] = fs_type
    meta = claim.get("metadata") or {}
    spec: Obj = {
        "accessModes": list(intent.access_modes),
        "capacity": {"storage": quantity.format_quantity(volume.capacity_bytes, True)},
        "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                     "namespace": meta.get("namespace"), "name": meta.get("name"),
                     "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or DEFAULT_RECLAIM_POLICY,
        "storageClassName": matching.name_of(sc),
        "volumeMode": matching.volume_mode(claim),
        "csi": csi,
    }
    if sc.get("mountOptions"):
        spec["mountOptions"] = list(sc["mountOptions"])
    affinity = node_affinity(volume.accessible_topology)
    if affinity is not None:
        spec["nodeAffinity"] = affinity
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": intent.volume, "annotations": {
                matching.ANN_DYNAMICALLY_PROVISIONED: intent.provisioner}},
            "spec": spec}


# ----------------------------------------------------------------------------- reclaim

class DriverReclaimer:
    """The PV controller's Delete hook for one driver: delete_volume(volumeHandle)."""

    def __init__(self, name: str, driver: contract.Driver,
                 secrets: provisioning_secrets.Secrets | None = None) -> None:
        self.name = name
        self.driver = driver
        self.secrets = secrets

    async def delete(self, volume: Mapping[str, Any]) -> None:
        csi = (volume.get("spec") or {}).get("csi") or {}
        if csi.get("driver") != csi_driver_name(self.name) or not csi.get("volumeHandle"):
            raise reclaim.ReclaimError(f"volume {matching.name_of(volume)} has no "
                                       f"{self.name} volumeHandle")
        secrets = await self.secrets.for_volume(volume) if self.secrets else {}
        try:
            await asyncio.to_thread(self.driver.delete_volume, str(csi["volumeHandle"]),
                                    secrets)
        except errors.DriverError as e:
            raise reclaim.ReclaimError(f"rpc error: {e}") from e

    async def recycle(self, volume: Mapping[str, Any]) -> None:
        raise NotImplementedError("csi volumes are not recyclable")


def reclaimers_for(drivers: Mapping[str, contract.Driver],
                   kube: kube_api.Kube | None = None) -> list[DriverReclaimer]:
    secrets = provisioning_secrets.Secrets(kube) if kube is not None else None
    return [DriverReclaimer(name, driver, secrets) for name, driver in drivers.items()]


# ----------------------------------------------------------------------------- controller

@dataclass
class _Backoff:
    failures: int = 0
    not_before: float = 0.0


class ProvisionController:
    """Build it with the shared informers (before they run), then `run()`."""

    def __init__(self, kube: kube_api.Kube, informers: shared.Informers,
                 drivers: Mapping[str, contract.Driver], *, identity: str = "",
                 takeover_after: float = 30.0, base_backoff: float = 1.0,
                 max_backoff: float = 300.0) -> None:
        self.kube = kube
        self.drivers = dict(drivers)
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}"
        self.takeover_after = takeover_after
        self.base_backoff, self.max_backoff = base_backoff, max_backoff
        self.claims = informers.for_kind("PersistentVolumeClaim")
        self.volumes = informers.for_kind("PersistentVolume")
        self.classes = informers.for_kind("StorageClass")
        self.recorders = {name: events.EventRecorder(kube, f"{name}_{self.identity}",
                                                     host=socket.gethostname())
                          for name in self.drivers}
        self.queue = workqueue.WorkQueue("provisioning")
        self.secrets = provisioning_secrets.Secrets(kube)
        self._backoff: dict[str, _Backoff] = {}
        self.claims.add_handlers(informer.Handlers(
            self._claim_changed, lambda old, new: self._claim_changed(new),
            self._claim_deleted))
        self.classes.add_handlers(informer.Handlers(
            self._class_changed, lambda old, new: self._class_changed(new)))

    def _claim_changed(self, claim: Obj) -> None:
        if provisioner_of(claim) in self.drivers:
            self.queue.add(matching.claim_key(claim))

    def _claim_deleted(self, claim: Obj) -> None:
        self._backoff.pop(matching.claim_key(claim), None)

    def _class_changed(self, sc: Obj) -> None:
        for claim in self.claims:
            if matching.claim_class(claim) == matching.name_of(sc) and \
                    not matching.volume_name_of_claim(claim):
                self._claim_changed(claim)

    async def run(self, workers: int = 8) -> None:
        """Workers and event recorders until cancelled; the shared informers must run."""
        recorders = [asyncio.create_task(r.run()) for r in self.recorders.values()]
        try:
            await controller.run_workers(self.queue, self.sync_claim, workers)
        finally:
            await controller.cancel_and_wait(recorders)

    def _event(self, claim: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        recorder = self.recorders.get(provisioner_of(claim))
        if recorder is not None:
            recorder.event(dict(claim), type_, reason, message)

    async def flush_events(self) -> None:
        await asyncio.gather(*(r.flush() for r in self.recorders.values()))

    # -- one claim ------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        claim = self.claims.get(key)
        if claim is None or provisioner_of(claim) not in self.drivers:
            return
        if matching.is_being_deleted(claim):
            if FINALIZER in (claim["metadata"].get("finalizers") or ()):
                await self._release(claim)
            return
        if matching.volume_name_of_claim(claim) or self.volumes.get(volume_name_for(claim)):
            return  # bound, or our PV exists and the PV controller is binding it
        self._wait_for_backoff(key)
        sc = self.classes.get(matching.claim_class(claim))
        if sc is None:
            await self._failed(claim, matching.claim_class(claim), PlanError(
                pv_controller.msg_class_not_found(matching.claim_class(claim))))
        if sc.get("provisioner") != provisioner_of(claim):
            return
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not \
                matching.annotations_of(claim).get(matching.ANN_SELECTED_NODE):
            return  # the scheduler has not chosen a node yet
        await self._provision(claim, sc)

    def _wait_for_backoff(self, key: str) -> None:
        state = self._backoff.get(key)
        if state is not None and time.monotonic() < state.not_before:
            raise controller.Requeue(state.not_before - time.monotonic())

    async def _provision(self, claim: Obj, sc: Obj) -> None:
        class_name = matching.name_of(sc)
        try:
            intent = plan_intent(claim, sc, self.identity, time.time())
        except PlanError as e:
            await self._failed(claim, class_name, e)
        claim = await self._record_intent(claim, intent)
        self._event(claim, "Normal", REASON_PROVISIONING, msg_provisioning(claim))
        driver = self.drivers[intent.provisioner]
        try:
            request, secret = await self.secrets.request(intent.request(claim))
            # Recorded on the PV for the resizer, as external-provisioner does.
            expand_secret = provisioning_secrets.reference(
                intent.parameters, request.claim, intent.volume,
                provisioning_secrets.CONTROLLER_EXPAND_SECRET)
        except provisioning_secrets.SecretError as e:
            await self._failed(claim, class_name, e)
        try:
            volume = await asyncio.to_thread(driver.create_volume, request)
        except errors.NotMine:
            return
        except errors.DriverError as e:
            await self._failed(claim, class_name, e)
        current = self.claims.get(matching.claim_key(claim))
        if current is None or matching.is_being_deleted(current):
            await self._abandon(claim, current, driver, volume, request.secrets)
            return
        pv = build_volume(claim, sc, intent, volume, self.identity)
        pv["metadata"]["annotations"].update(provisioning_secrets.deletion_annotations(secret))
        if expand_secret is not None:
            pv["spec"]["csi"]["controllerExpandSecretRef"] = \
                provisioning_secrets.secret_reference_field(expand_secret)
        try:
            self.volumes.assume(await self.kube.create("PersistentVolume", pv))
        except kube_api.AlreadyExists:
            pass  # another attempt (or process) finished first: same name, same volume
        self._backoff.pop(matching.claim_key(claim), None)
        self._event(claim, "Normal", REASON_SUCCEEDED, msg_succeeded(intent.volume))

    async def _record_intent(self, claim: Obj, intent: Intent) -> Obj:
        """Finalizer + intent on the claim before the driver runs. Another live holder's
        intent makes us wait (two processes never drive one claim at once) until it is
        older than `takeover_after` (its holder crashed)."""
        current = Intent.of_claim(claim)
        finalizers = list(claim["metadata"].get("finalizers") or ())
        if current is not None and current.holder != self.identity:
            age = time.time() - current.at
            if age < self.takeover_after:
                raise controller.Requeue(self.takeover_after - age, "held by " + current.holder)
        elif current is not None and current.same_request(
                Intent(**{**asdict(intent), "at": current.at})) and FINALIZER in finalizers:
            return claim
        meta = claim["metadata"]
        new = {**claim, "metadata": {
            **meta, "finalizers": finalizers + ([FINALIZER] if FINALIZER not in finalizers
                                                else []),
            "annotations": {**(meta.get("annotations") or {}), ANN_INTENT: intent.to_json()}}}
        written = await self.kube.replace("PersistentVolumeClaim", new)
        self.claims.assume(written)
        return written

    async def _failed(self, claim: Obj, class_name: str, error: Exception) -> NoReturn:
        """ProvisioningFailed, clear the selected node (the pod is placed again), back off."""
        key = matching.claim_key(claim)
        state = self._backoff.setdefault(key, _Backoff())
        delay = min(self.max_backoff, self.base_backoff * 2 ** state.failures)
        state.failures += 1
        state.not_before = time.monotonic() + delay
        self._event(claim, "Warning", REASON_FAILED, msg_failed(class_name, error))
        if matching.ANN_SELECTED_NODE in matching.annotations_of(claim):
            try:
                await self._clear_selected_node(claim)
            except kube_api.KubeError as e:
                log.warning("claim %s: could not clear the selected node: %s", key, e)
        raise controller.Requeue(delay, str(error))

    async def _clear_selected_node(self, claim: Obj) -> None:
        patch = {"metadata": {"annotations": {matching.ANN_SELECTED_NODE: None}}}
        self.claims.assume(await self.kube.merge_patch(
            "PersistentVolumeClaim", matching.name_of(claim), patch,
            matching.namespace_of(claim)))

    # -- a claim deleted before its PV existed --------------------------------------------

    async def _release(self, claim: Obj) -> None:
        """Remove what the intent may have created unless a PV owns it, then the finalizer."""
        name = volume_name_for(claim)
        if not await self._volume_exists(name):
            intent = Intent.of_claim(claim)
            driver = self.drivers.get(intent.provisioner) if intent else None
            if intent is not None and driver is not None:
                await self._delete_intended(claim, intent, driver)
        await self._remove_finalizer(claim)

    async def _abandon(self, claim: Obj, current: Obj | None, driver: contract.Driver,
                       volume: contract.Volume, secrets: Mapping[str, str]) -> None:
        """The claim was deleted while the driver worked: undo the volume, make no PV."""
        try:
            await asyncio.to_thread(driver.delete_volume, volume.volume_id, secrets)
        except errors.DriverError as e:
            raise controller.RetryLater(f"deleting {volume.volume_id}: {e}") from e
        if current is not None:
            await self._remove_finalizer(current)

    async def _remove_finalizer(self, claim: Obj) -> None:
        meta = claim["metadata"]
        finalizers = [f for f in meta.get("finalizers") or () if f != FINALIZER]
        written = await self.kube.replace("PersistentVolumeClaim",
                                          {**claim, "metadata": {**meta,
                                                                 "finalizers": finalizers}})
        self.claims.assume(written)

    async def _volume_exists(self, name: str) -> bool:
        if self.volumes.get(name) is not None:
            return True
        try:
            await self.kube.get("PersistentVolume", name)
        except kube_api.NotFound:
            return False
        return True

    async def _delete_intended(self, claim: Obj, intent: Intent,
                               driver: contract.Driver) -> None:
        """Drivers find volumes by id, not name: asking to create the same request again is
        idempotent and answers the id (a volume that cannot be made was never made)."""
        try:
            request, _ = await self.secrets.request(intent.request(claim))
            volume = await asyncio.to_thread(driver.create_volume, request)
            await asyncio.to_thread(driver.delete_volume, volume.volume_id, request.secrets)
        except errors.TemporaryError as e:
            raise controller.RetryLater(f"cleaning up {intent.volume}: {e}") from e
        except (errors.DriverError, provisioning_secrets.SecretError) as e:
            log.info("claim %s deleted; nothing to clean up for %s: %s",
                     matching.claim_key(claim), intent.volume, e)


def build(kube: kube_api.Kube, informers: shared.Informers, config: ProvisionerConfig
          ) -> tuple[ProvisionController, reclaim.Reclaimers]:
    """What the controller-manager needs: the controller and the reclaimers to hand to the
    PV controller (both built before the informers run)."""
    drivers = config.drivers()
    provisioner = ProvisionController(kube, informers, drivers, identity=config.identity,
                                      takeover_after=config.takeover_after)
    return provisioner, reclaim.Reclaimers(reclaimers_for(drivers, kube))
