"""The controller-manager: every storage controller in one process, under leader election.

`run(config)` builds the lightkube client from a kubeconfig, the shared informers, the event
recorder and the controllers (PV binder/reclaimer, PVC and PV protection, attach/detach and
the attacher of our drivers, and
with provisioning the provisioner, resizer and storage-capacity publisher), and runs them
while this process holds the Lease, so that two copies never both act. Losing the lease stops
the controllers and ends `run` with `LeadershipLost` (the process exits, as
kube-controller-manager does, and a supervisor restarts it); a clean shutdown releases the
lease for the successor.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from storage import (  # --- node lifecycle: nodelifecycle added
    attachdetach,
    attacher,
    capacity,
    nodelifecycle,
    protection,
    provisioner,
    pv_controller,
    reclaim,
    resizer,
    scheduler,
)
from storage.runtime import controller, events, leaderelection, shared
from storage.runtime import kube as kube_api

log = logging.getLogger(__name__)
DEFAULT_LEASE_NAME = "storagelab-controller-manager"


class ConfigError(ValueError):
    """The controller-manager configuration is unusable; the message names the field."""


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class ManagerConfig:
    kubeconfig: Path
    leader_elect: bool = True
    lease_name: str = DEFAULT_LEASE_NAME
    lease_namespace: str = "kube-system"
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    resync: float = 15.0
    # What the provisioner serves (local driver node paths, the nfs driver); None runs the
    # binder, protection and scheduler without dynamic provisioning.
    provisioning: provisioner.ProvisionerConfig | None = None
    run_scheduler: bool = True
    # --- node lifecycle (storage/nodelifecycle.py): None turns the controller off
    node_lifecycle: nodelifecycle.LifecycleConfig | None = field(
        default_factory=nodelifecycle.LifecycleConfig)
    # --- end node lifecycle
    run_attach_detach: bool = True  # --- attach/detach (storage/attachdetach.py)
    # --- the external-attacher of our drivers (storage/attacher.py)
    run_attacher: bool = True

    def __post_init__(self) -> None:
        if not Path(self.kubeconfig).is_file():
            raise ConfigError(f"kubeconfig: no such file: {self.kubeconfig}")
        if self.resync < 0:
            raise ConfigError("resync: must not be negative")

    def lease(self) -> leaderelection.LeaseConfig:
        try:
            return leaderelection.LeaseConfig(
                self.lease_name, self.identity, self.lease_namespace, self.lease_duration,
                self.renew_deadline, self.retry_period)
        except leaderelection.ConfigError as e:
            raise ConfigError(f"leader election: {e}") from e


class ControllerManager:
    """The controllers wired to shared informers; `run_controllers` runs them all."""

    def __init__(self, kube: kube_api.Kube, config: ManagerConfig,
                 reclaimers: reclaim.Reclaimers | None = None) -> None:
        self.kube = kube
        self.informers = shared.Informers(kube, resync=config.resync)
        provisioning: provisioner.ProvisionController | None = None
        if config.provisioning is not None:
            provisioning, built = provisioner.build(kube, self.informers, config.provisioning)
            reclaimers = _merge_reclaimers(reclaimers, built)
        self.config = config
        self.recorder = events.EventRecorder(kube, pv_controller.COMPONENT,
                                             host=socket.gethostname())
        self.pv = pv_controller.PersistentVolumeController(
            kube, self.informers, self.recorder, reclaimers)
        self.pvc_protection = protection.PVCProtectionController(kube, self.informers)
        self.pv_protection = protection.PVProtectionController(kube, self.informers)
        self.provisioner = provisioning
        self.scheduler = scheduler.Scheduler(kube, self.informers) \
            if config.run_scheduler else None
        # --- volume expansion (storage/resizer.py): the provisioner's drivers grow volumes
        self.resizer = resizer.ResizeController(kube, self.informers, provisioning.drivers) \
            if provisioning is not None else None
        # --- end volume expansion
        # --- storage capacity (storage/capacity.py): CSIStorageCapacity for the scheduler
        self.capacity = capacity.build(kube, self.informers, provisioning.drivers,
                                       config.provisioning.local_paths) \
            if provisioning is not None and config.provisioning is not None else None
        # --- end storage capacity
        # --- node lifecycle
        self.node_lifecycle = nodelifecycle.NodeLifecycleController(
            kube, self.informers, config.node_lifecycle) \
            if config.node_lifecycle is not None else None
        # --- end node lifecycle
        # --- attach/detach: one node at a time for ReadWriteOnce volumes
        self.attach_detach = attachdetach.AttachDetachController(kube, self.informers) \
            if config.run_attach_detach else None
        # --- attacher: marks our drivers' VolumeAttachments attached (nothing to attach)
        self.attacher = attacher.Attacher(kube, self.informers, {
            provisioner.csi_driver_name(name): attacher.NoAttach()
            for name in (provisioner.NFS, provisioner.LOCAL)}) if config.run_attacher else None

    async def run_controllers(self) -> None:
        tasks = [asyncio.create_task(self.informers.run(), name="informers"),
                 asyncio.create_task(self.recorder.run(), name="events")]
        try:
            await self.informers.wait_synced()
            log.info("caches synced; starting controllers")
            tasks += [asyncio.create_task(self.pv.run()),
                      asyncio.create_task(self.pvc_protection.run()),
                      asyncio.create_task(self.pv_protection.run())]
            if self.provisioner is not None:
                workers = self.config.provisioning.workers if self.config.provisioning else 8
                tasks.append(asyncio.create_task(self.provisioner.run(workers)))
            if self.scheduler is not None:
                tasks.append(asyncio.create_task(self.scheduler.run()))
            if self.resizer is not None:  # --- volume expansion
                tasks.append(asyncio.create_task(self.resizer.run(), name="resizer"))
            if self.capacity is not None:  # --- storage capacity
                tasks.append(asyncio.create_task(self.capacity.run(), name="capacity"))
            if self.node_lifecycle is not None:  # --- node lifecycle
                tasks.append(asyncio.create_task(self.node_lifecycle.run(),
                                                 name="node-lifecycle"))
            if self.attach_detach is not None:  # --- attach/detach
                tasks.append(asyncio.create_task(self.attach_detach.run(),
                                                 name="attach-detach"))
            if self.attacher is not None:  # --- attacher
                tasks.append(asyncio.create_task(self.attacher.run(), name="attacher"))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            await controller.cancel_and_wait(tasks)


def _merge_reclaimers(given: reclaim.Reclaimers | None,
                      built: reclaim.Reclaimers) -> reclaim.Reclaimers:
    if given is None:
        return built
    for one in built.all():
        given.register(one)
    return given


async def run(config: ManagerConfig, reclaimers: reclaim.Reclaimers | None = None) -> None:
    """Run until cancelled (clean stop, lease released) or the lease is lost (raises)."""
    kube = kube_api.Kube.from_kubeconfig(str(config.kubeconfig))
    try:
        manager = ControllerManager(kube, config, reclaimers)
        if not config.leader_elect:
            await manager.run_controllers()
            return
        elector = leaderelection.LeaderElector(kube, config.lease())
        await elector.run(manager.run_controllers)
    finally:
        await kube.close()
