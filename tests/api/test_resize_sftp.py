"""Growing an nfs volume whose export is reached over SFTP: the controller-expand Secret.

A real apiserver; the controller-manager (binder, provisioner, resizer) in this process with
the real nfs driver; a real OpenSSH server on a loopback port (tests/node/sshd.py) serving
the export directory over SFTP. The driver needs the SSH credentials for every call, so the
resizer must hand it the Secret the class names with
`csi.storage.k8s.io/controller-expand-secret-name` / `-namespace` (or the shared
`csi.storage.k8s.io/secret-name` pair), as external-resizer does; without one the driver is
called without credentials and refuses, as it would in Kubernetes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage import provisioner
from storage import provisioning_secrets as ps
from tests.conftest import ApiServer
from tests.node.sshd import Sshd
from tests.support import (
    SECRETS_NS,
    ManagerThread,
    claim_path,
    events_of,
    eventually,
    get,
    make_claim,
    make_class,
    manager_config,
    patch_request,
    put_secret,
    running_apiserver,
    wait_bound,
    wait_capacity,
)

Obj = dict[str, Any]
MI = 1024**2




@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sshd: Sshd) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("resize-sftp"),
                           namespaces=(SECRETS_NS,)) as srv:
        yield srv


@pytest.fixture(scope="module")
def controllers(server: ApiServer) -> Iterator[ManagerThread]:
    """The controller-manager with only the nfs driver."""
    config = manager_config(server, run_scheduler=False, node_lifecycle=None,
                            provisioning=provisioner.ProvisionerConfig(identity="resize-sftp"))
    running = ManagerThread(config).start()
    yield running
    running.stop()
    assert running.error is None, running.error


@pytest.fixture()
def share(tmp_path: Path) -> Path:
    path = tmp_path / "export"
    path.mkdir()
    return path


def sftp_class(api: httpx.Client, sshd: Sshd, share: Path, secrets: dict[str, str]) -> str:
    name = f"sftp-{uuid.uuid4().hex[:8]}"
    make_class(api, name, provisioner_name=provisioner.NFS, allowVolumeExpansion=True,
               parameters={"server": "127.0.0.1", "share": str(share),
                           "sshPort": str(sshd.port), **secrets})
    return name


def ensure_provisioner_secret(api: httpx.Client, sshd: Sshd) -> None:
    if get(api, f"/api/v1/namespaces/{SECRETS_NS}/secrets/ssh") is None:
        put_secret(api, SECRETS_NS, "ssh", sshd.secrets())


def provisioned(api: httpx.Client, ns: str, cls: str) -> Obj:
    make_claim(api, ns, "data", cls, "64Mi", access_mode="ReadWriteMany")
    return wait_bound(api, ns, "data", timeout=30)


def recorded_capacity(share: Path, claim: Obj) -> int:
    record = share / ".storagelab" / f"{claim['spec']['volumeName']}.json"
    return int(json.loads(record.read_text())["capacity_bytes"])


def resize_failures(api: httpx.Client, ns: str) -> list[str]:
    return [e["message"] for e in events_of(api, ns, "data")
            if e["reason"] == "VolumeResizeFailed"]


PROVISIONER_SECRET = {ps.PROVISIONER_NAME: "ssh", ps.PROVISIONER_NAMESPACE: SECRETS_NS}


@pytest.mark.parametrize("expand_parameters", [
    # Its own Secret, with the templates external-provisioner resolves: the claim's namespace
    # and name.
    {ps.CONTROLLER_EXPAND_NAME: "${pvc.name}-expand",
     ps.CONTROLLER_EXPAND_NAMESPACE: "${pvc.namespace}"},
    # The shared pair serves provisioning and expansion alike.
    {ps.DEFAULT_NAME: "ssh", ps.DEFAULT_NAMESPACE: SECRETS_NS},
], ids=["controller-expand", "shared"])
def test_nfs_volume_over_sftp_grows(api: httpx.Client, ns: str, sshd: Sshd, share: Path,
                                    expand_parameters: dict[str, str]) -> None:
    ensure_provisioner_secret(api, sshd)
    put_secret(api, ns, "data-expand", sshd.secrets())
    shared = ps.DEFAULT_NAME in expand_parameters
    cls = sftp_class(api, sshd, share, {**({} if shared else PROVISIONER_SECRET),
                                        **expand_parameters})
    claim = provisioned(api, ns, cls)
    assert recorded_capacity(share, claim) == 64 * MI
    volume = api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}").json()
    # external-provisioner records the resolved reference on the PV for the resizer.
    assert volume["spec"]["csi"]["controllerExpandSecretRef"] == (
        {"name": "ssh", "namespace": SECRETS_NS} if shared
        else {"name": "data-expand", "namespace": ns})
    assert patch_request(api, ns, "data", "128Mi").status_code == 200
    grown = wait_capacity(api, ns, "data", "128Mi")
    assert recorded_capacity(share, grown) == 128 * MI  # written over SFTP by the driver
    assert resize_failures(api, ns) == []


def test_without_an_expand_secret_the_driver_refuses(api: httpx.Client, ns: str,
                                                     sshd: Sshd, share: Path) -> None:
    """A class naming only the provisioner Secret: external-resizer passes no credentials,
    and the driver cannot reach the export without them."""
    ensure_provisioner_secret(api, sshd)
    cls = sftp_class(api, sshd, share, PROVISIONER_SECRET)
    claim = provisioned(api, ns, cls)
    volume = api.get(f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}").json()
    assert "controllerExpandSecretRef" not in volume["spec"]["csi"]
    assert patch_request(api, ns, "data", "128Mi").status_code == 200
    failures = eventually(lambda: resize_failures(api, ns), 20, "VolumeResizeFailed")
    assert failures[0] == (
        f'resize volume "{claim["spec"]["volumeName"]}" by resizer "nfs.storagelab.io" '
        "failed: rpc error: code = InvalidArgument desc = invalid secret username '': "
        "the provisioner secret needs it")
    assert recorded_capacity(share, claim) == 64 * MI


def test_missing_expand_secret_is_reported_then_used_once_it_exists(
        api: httpx.Client, ns: str, sshd: Sshd, share: Path) -> None:
    ensure_provisioner_secret(api, sshd)
    cls = sftp_class(api, sshd, share, {**PROVISIONER_SECRET,
                                        ps.CONTROLLER_EXPAND_NAME: "late",
                                        ps.CONTROLLER_EXPAND_NAMESPACE: ns})
    claim = provisioned(api, ns, cls)
    assert patch_request(api, ns, "data", "128Mi").status_code == 200
    failures = eventually(lambda: resize_failures(api, ns), 20, "VolumeResizeFailed")
    assert failures[0] == (
        f'resize volume "{claim["spec"]["volumeName"]}" by resizer "nfs.storagelab.io" '
        f'failed: error getting secret late in namespace {ns}: secrets "late" not found')
    # Nothing ran: not a final error, so the claim is not marked infeasible.
    current = get(api, claim_path(ns, "data")) or {}
    statuses = current["status"].get("allocatedResourceStatuses") or {}
    assert statuses.get("storage") == "ControllerResizeInProgress"
    put_secret(api, ns, "late", sshd.secrets())
    grown = wait_capacity(api, ns, "data", "128Mi", timeout=40)
    assert recorded_capacity(share, grown) == 128 * MI
