"""The storage.k8s.io/v1 family: StorageClasses, CSIDrivers, CSIStorageCapacities and
VolumeAttachments."""

from __future__ import annotations

from fastapi import APIRouter

from apiserver import resources
from apiserver.routes import generic

router = APIRouter()
for _rt in (resources.STORAGE_CLASSES, resources.CSI_DRIVERS,
            resources.CSI_STORAGE_CAPACITIES, resources.VOLUME_ATTACHMENTS):
    generic.install(router, _rt)
