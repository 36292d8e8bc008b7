"""The coordination.k8s.io/v1 family: Leases, for leader election and node heartbeats."""

from __future__ import annotations

from fastapi import APIRouter

from apiserver import resources
from apiserver.routes import generic

router = APIRouter()
generic.install(router, resources.LEASES)
