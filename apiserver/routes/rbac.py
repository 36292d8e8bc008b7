"""The rbac.authorization.k8s.io/v1 family: Roles, ClusterRoles and their bindings."""

from __future__ import annotations

from fastapi import APIRouter

from apiserver import resources
from apiserver.routes import generic

router = APIRouter()
for _rt in (resources.ROLES, resources.CLUSTER_ROLES, resources.ROLE_BINDINGS,
            resources.CLUSTER_ROLE_BINDINGS):
    generic.install(router, _rt)
