"""Kubeconfig files shaped like a real cluster's, so kubectl and every client library accept them.

`storagelab kubeconfig` writes the admin's; `storagelab kubeconfig --user NAME --group G`
issues a fresh client certificate from the cluster CA and prints a kubeconfig for it. The
certificate, key and CA are embedded as base64 `*-data` fields (as kubeadm does), so the file
is self-contained; it is written 0600 because it holds a private key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from apiserver import pki as pki_mod

DEFAULT_CLUSTER = "storagelab"


class KubeconfigError(Exception):
    """A kubeconfig cannot be built from what was given."""


def build_kubeconfig(server_url: str, ca_pem: bytes, cert_pem: bytes | None = None,
                     key_pem: bytes | None = None, *, cluster: str = DEFAULT_CLUSTER,
                     user: str = "admin", context: str | None = None,
                     token: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A kubeconfig (apiVersion v1, kind Config) with one cluster, user and context.

    The user authenticates with a client certificate, or with a bearer `token` instead.
    """
    if not server_url.startswith("https://"):
        raise KubeconfigError(f"server URL must be https://..., got {server_url!r}")
    context = context or f"{user}@{cluster}"
    context_body: dict[str, str] = {"cluster": cluster, "user": user}
    if namespace:
        context_body["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": cluster, "cluster": {
            "server": server_url, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": _credentials(cert_pem, key_pem, token)}],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
    }


def user_kubeconfig(pki: pki_mod.Pki, server_url: str, name: str, groups: Sequence[str] = (),
                    *, days: int = pki_mod.LEAF_DAYS, cluster: str = DEFAULT_CLUSTER
                    ) -> dict[str, Any]:
    """Issue a client certificate for user `name` in `groups` and wrap it in a kubeconfig."""
    cert_pem, key_pem = pki_mod.issue_client_cert(pki, name, groups, days)
    return build_kubeconfig(server_url, pki.ca_pem, cert_pem, key_pem, cluster=cluster,
                            user=name)


def admin_kubeconfig(pki: pki_mod.Pki, server_url: str, *,
                     cluster: str = DEFAULT_CLUSTER) -> dict[str, Any]:
    """The cluster administrator's kubeconfig, from the admin certificate made at start."""
    return build_kubeconfig(server_url, pki.ca_pem, pki.admin.cert_pem(), pki.admin.key_pem(),
                            cluster=cluster, user=pki_mod.ADMIN_COMMON_NAME)


def dump_kubeconfig(config: dict[str, Any]) -> str:
    return str(yaml.safe_dump(config, sort_keys=False, default_flow_style=False))


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Write atomically with mode 0600 from the first byte (the file holds a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, dump_kubeconfig(config).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _credentials(cert_pem: bytes | None, key_pem: bytes | None,
                 token: str | None) -> dict[str, str]:
    if token is not None:
        if cert_pem is not None or key_pem is not None:
            raise KubeconfigError("give either a client certificate or a token, not both")
        return {"token": token}
    if cert_pem is None or key_pem is None:
        raise KubeconfigError("a client certificate needs both the certificate and its key")
    return {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
