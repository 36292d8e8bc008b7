"""The storage.k8s.io/v1 family: StorageClasses."""

from __future__ import annotations

from fastapi import APIRouter

from apiserver import resources
from apiserver.routes import generic

router = APIRouter()
generic.install(router, resources.STORAGE_CLASSES)
