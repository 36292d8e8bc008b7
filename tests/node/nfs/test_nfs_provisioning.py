"""Dynamic provisioning on `storagelab.io/nfs`, end to end, against real servers.

A real apiserver process; the PV controller, the protection controllers and the provisioner
in this process (`tests.support.Stack`); a real NFS-Ganesha exporting a directory on loopback.
The export reaches the provisioner two ways, as the class says: as a local path (the export
mounted through the userspace NFS client, so every directory operation goes over NFS to
Ganesha) or over SFTP to a real OpenSSH server on a loopback port, with the SSH credentials
in a Secret the class names (`csi.storage.k8s.io/provisioner-secret-name`/`-namespace`).
What the tests check on the export, they read from the directory Ganesha exports.

Mounting such a PV into a pod through a kubelet is covered by
tests/node/nfs/test_kubelet_nfs.py (`test_sqlite_in_wal_mode_survives_its_pod_moving_node`
mounts a `spec.csi` nfs.storagelab.io PV made by this driver).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from csi_like import contract, nfs
from kubelet.mounters import nfs as nfs_mounters
from storage import provisioner, provisioning_secrets
from tests.conftest import ApiServer
from tests.node.sshd import Sshd, require_sshd
from tests.support import (
    SECRETS_NS,
    Stack,
    claim_path,
    events_of,
    eventually,
    get,
    make_claim,
    make_class,
    put_secret,
    running_apiserver,
    wait_bound,
)

from .conftest import GaneshaServer, mounted

Obj = dict[str, Any]
NFS = provisioner.NFS
FAST_FAIL = ("timeo=20", "actimeo=0")  # a stopped server answers EIO within ~2 s


class RecordingDriver:
    """The real nfs driver; notes when each create_volume started and how it ended."""

    def __init__(self) -> None:
        self.real = nfs.NfsDriver()
        self.attempts: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def create_volume(self, request: contract.CreateVolumeRequest) -> contract.Volume:
        started = time.monotonic()
        outcome = "ok"
        try:
            return self.real.create_volume(request)
        except Exception as e:
            outcome = type(e).__name__
            raise
        finally:
            with self._lock:
                self.attempts.append((started, outcome))

    def attempts_for(self, since: float) -> list[tuple[float, str]]:
        with self._lock:
            return [a for a in self.attempts if a[0] >= since]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("nfs-provisioning"),
                           namespaces=(SECRETS_NS,)) as srv:
        yield srv


@pytest.fixture(scope="module")
def driver() -> RecordingDriver:
    return RecordingDriver()


@pytest.fixture(scope="module")
def controllers(server: ApiServer, driver: RecordingDriver) -> Iterator[Stack]:
    """Binder, protection and provisioner with the nfs driver (no scheduler)."""
    running = Stack(server, {NFS: driver}, identity="nfs-test", schedule=False).start()
    yield running
    running.stop()
    assert running.error is None, running.error


@dataclass
class Export:
    """How a class reaches the export; `share` is the directory Ganesha exports."""

    share: Path
    parameters: dict[str, str]
    secret: dict[str, str] = field(default_factory=dict)


def local_export(ganesha: GaneshaServer, mount: Path) -> Export:
    return Export(ganesha.export_dir, {"server": "127.0.0.1", "share": str(ganesha.export_dir),
                                       "exportLocalPath": str(mount)})


def sftp_export(ganesha: GaneshaServer, sshd: Sshd) -> Export:
    return Export(ganesha.export_dir, {"server": "127.0.0.1", "share": str(ganesha.export_dir),
                                       "sshPort": str(sshd.port)}, sshd.secrets())


@pytest.fixture(params=["local-path", "sftp"])
def export(request: pytest.FixtureRequest, ganesha: GaneshaServer) -> Export:
    if request.param == "local-path":
        return local_export(ganesha, request.getfixturevalue("mount"))
    require_sshd()
    return sftp_export(ganesha, request.getfixturevalue("sshd"))


# ----------------------------------------------------------------------------- helpers

def export_class(api: httpx.Client, export: Export, *, secret_name: str = "",
                 reclaim_policy: str = "Delete", mount_options: tuple[str, ...] = (),
                 extra: dict[str, str] | None = None, **parameters: str) -> str:
    """A class on the export; a class reaching it over SFTP names a Secret with its
    credentials (made here unless `secret_name` names another)."""
    name = f"nfs-{uuid.uuid4().hex[:8]}"
    params = {**export.parameters, **(extra or {}), **parameters}
    if export.secret or secret_name:
        if not secret_name:
            secret_name = f"ssh-{name}"
            put_secret(api, SECRETS_NS, secret_name, export.secret)
        params |= {provisioning_secrets.PROVISIONER_NAME: secret_name,
                   provisioning_secrets.PROVISIONER_NAMESPACE: SECRETS_NS}
    options: Obj = {"mountOptions": list(mount_options)} if mount_options else {}
    make_class(api, name, provisioner_name=NFS, parameters=params,
               reclaimPolicy=reclaim_policy, **options)
    return name


def data_claim(api: httpx.Client, ns: str, cls: str, size: str = "64Mi") -> Obj:
    """The claim "data": ReadWriteMany, as nfs volumes are shared."""
    return make_claim(api, ns, "data", cls, size, access_mode="ReadWriteMany")


def claim_events(api: httpx.Client, ns: str, name: str, reason: str) -> list[Obj]:
    return [e for e in events_of(api, ns, name) if e["reason"] == reason]


def failures_saying(api: httpx.Client, ns: str, fragment: str) -> list[Obj]:
    """The claim's ProvisioningFailed events whose message contains `fragment` (a class
    created just before its claim may still be unknown to the provisioner's informer: a
    first "storageclass ... not found" failure is possible, as with external-provisioner)."""
    return [e for e in claim_events(api, ns, "data", "ProvisioningFailed")
            if fragment in e["message"]]


def failed_count(api: httpx.Client, ns: str, fragment: str) -> int:
    return sum(int(e.get("count") or 1) for e in failures_saying(api, ns, fragment))


def tree(root: Path) -> set[str]:
    """Everything under the export, the driver's records included."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def delete_claim(api: httpx.Client, ns: str, name: str = "data") -> None:
    assert api.delete(claim_path(ns, name)).status_code == 200
    eventually(lambda: get(api, claim_path(ns, name)) is None, 20, what=f"claim {name} gone")


# ----------------------------------------------------------------------------- end to end

def test_claim_gets_a_subdirectory_of_the_export(api: httpx.Client, ns: str,
                                                 export: Export,
                                                 ganesha: GaneshaServer) -> None:
    cls = export_class(api, export, mount_options=tuple(ganesha.options),
                       subDir="{namespace}/{pvc_name}", mountPermissions="0775")
    claim = data_claim(api, ns, cls)
    bound = wait_bound(api, ns, "data", 30)
    name = f"pvc-{claim['metadata']['uid']}"
    assert bound["spec"]["volumeName"] == name
    pv = get(api, f"/api/v1/persistentvolumes/{name}")
    assert pv is not None
    annotations = pv["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/provisioned-by"] == NFS
    secret_name = f"ssh-{cls}" if export.secret else ""
    assert annotations[provisioning_secrets.ANN_DELETION_NAME] == secret_name
    assert annotations[provisioning_secrets.ANN_DELETION_NAMESPACE] == (
        SECRETS_NS if export.secret else "")
    spec = pv["spec"]
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["mountOptions"] == ganesha.options
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["capacity"] == {"storage": "64Mi"}
    assert "nodeAffinity" not in spec  # reachable from every node
    csi = spec["csi"]
    assert csi["driver"] == "nfs.storagelab.io"
    directory = export.share / ns / "data"
    assert csi["volumeAttributes"]["path"] == str(directory)
    assert csi["volumeAttributes"]["subDir"] == f"{ns}/data"
    assert nfs.decode(csi["volumeHandle"])[2] == f"{ns}/data"  # the real backend path
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o775
    succeeded = eventually(lambda: claim_events(api, ns, "data", "ProvisioningSucceeded"), 20,
                           what="ProvisioningSucceeded")
    assert succeeded[0]["message"] == f"Successfully provisioned volume {name}"
    assert succeeded[0]["source"]["component"].startswith(f"{NFS}_")

    (directory / "kept-until-delete").write_text("x")
    delete_claim(api, ns)
    eventually(lambda: get(api, f"/api/v1/persistentvolumes/{name}") is None, 20,
               what="PV deleted")
    assert not (export.share / ns).exists()  # the volume and its emptied parent
    assert f".storagelab/{name}.json" not in tree(export.share)


def test_archive_on_delete_renames_the_directory(api: httpx.Client, ns: str,
                                                 export: Export) -> None:
    cls = export_class(api, export, subDir="{namespace}/{pvc_name}", onDelete="archive")
    claim = data_claim(api, ns, cls)
    wait_bound(api, ns, "data", 30)
    name = f"pvc-{claim['metadata']['uid']}"
    (export.share / ns / "data" / "results.csv").write_text("1,2,3\n")
    delete_claim(api, ns)
    eventually(lambda: get(api, f"/api/v1/persistentvolumes/{name}") is None, 20,
               what="PV deleted")
    assert sorted(p.name for p in (export.share / ns).iterdir()) == ["archived-data"]
    assert (export.share / ns / "archived-data" / "results.csv").read_text() == "1,2,3\n"


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("parameters,size,expected", [
    ({"colour": "blue"}, "1Mi", "invalid parameter 'colour': unknown"),
    ({"subDir": "{namespace}/{nope}"}, "1Mi", "invalid subDir '{namespace}/{nope}'"),
    ({"subDir": "../{pvc_name}"}, "1Mi", "invalid subDir '../{pvc_name}'"),
    ({}, "1Ei", "are free on the export"),
])
def test_bad_class_or_claim_fails_clearly_and_creates_nothing(
        api: httpx.Client, ns: str, export: Export, parameters: dict[str, str], size: str,
        expected: str) -> None:
    before = tree(export.share)
    cls = export_class(api, export, extra=parameters)
    claim = data_claim(api, ns, cls, size=size)
    assert_refused(api, ns, cls, claim, expected)
    assert tree(export.share) == before


@pytest.mark.parametrize("secret,expected", [
    ({"username": "root", "password": "not-the-password"},
     "SSH authentication as 'root' to 127.0.0.1:{port} failed: check the provisioner secret"),
    ({"password": "x"}, "invalid secret username ''"),
    (None, ('error getting secret absent in namespace nfs-provisioner: '
            'secrets "absent" not found')),
])
def test_bad_credentials_fail_clearly_and_create_nothing(
        api: httpx.Client, ns: str, ganesha: GaneshaServer, sshd: Sshd,
        secret: dict[str, str] | None, expected: str) -> None:
    export = sftp_export(ganesha, sshd)
    before = tree(export.share)
    if secret is None:
        cls = export_class(api, export, secret_name="absent")
    else:
        secret_name = f"bad-{uuid.uuid4().hex[:8]}"
        put_secret(api, SECRETS_NS, secret_name, {"knownHosts": sshd.known_hosts, **secret})
        cls = export_class(api, export, secret_name=secret_name)
    claim = data_claim(api, ns, cls)
    assert_refused(api, ns, cls, claim, expected.format(port=sshd.port))
    assert tree(export.share) == before


def test_unresolvable_secret_template_fails_clearly(api: httpx.Client, ns: str,
                                                    ganesha: GaneshaServer,
                                                    sshd: Sshd) -> None:
    export = sftp_export(ganesha, sshd)
    cls = export_class(api, export, secret_name="${pvc.label}")
    claim = data_claim(api, ns, cls)
    assert_refused(api, ns, cls, claim,
                   'error resolving value "${pvc.label}": invalid tokens: ["pvc.label"]')


def assert_refused(api: httpx.Client, ns: str, cls: str, claim: Obj, expected: str) -> None:
    failed = eventually(lambda: failures_saying(api, ns, expected), 20,
                        what=f"ProvisioningFailed saying {expected!r}")[0]
    assert failed["type"] == "Warning"
    assert failed["message"].startswith(f'failed to provision volume with StorageClass "{cls}": ')
    time.sleep(0.5)
    assert get(api, f"/api/v1/persistentvolumes/pvc-{claim['metadata']['uid']}") is None
    current = get(api, claim_path(ns, "data"))
    assert current is not None and current["status"]["phase"] == "Pending"
    delete_claim(api, ns)


# ----------------------------------------------------------------------------- server down

def check_backoff(attempts: list[tuple[float, str]], failures: int) -> None:
    """The first `failures` attempts failed, each wait at least ~double the one before (the
    provisioner's 1 s, 2 s, 4 s ...), measured from the end of an attempt: no hot loop."""
    assert len(attempts) >= failures + 1, attempts
    assert all(outcome == "TemporaryError" for _, outcome in attempts[:failures]), attempts
    assert attempts[failures][1] == "ok", attempts
    starts = [start for start, _ in attempts[:failures + 1]]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for i, gap in enumerate(gaps):
        assert gap >= 0.9 * 2 ** i, (i, gaps)


def test_ssh_server_down_then_back(api: httpx.Client, ns: str, ganesha: GaneshaServer,
                                   driver: RecordingDriver,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    require_sshd()
    own = Sshd.create(tmp_path_factory.mktemp("sshd-down"))  # created, not started
    try:
        cls = export_class(api, sftp_export(ganesha, own), subDir="{namespace}/{pvc_name}")
        since = time.monotonic()
        claim = data_claim(api, ns, cls)
        eventually(lambda: len(driver.attempts_for(since)) >= 3, 15, "three attempts")
        unreachable = f"SSH server 127.0.0.1:{own.port} unreachable"
        eventually(lambda: failed_count(api, ns, unreachable) >= 3, 10,
                   "three ProvisioningFailed counted")
        assert (get(api, claim_path(ns, "data")) or {}).get("status") == {"phase": "Pending"}
        assert get(api, f"/api/v1/persistentvolumes/pvc-{claim['metadata']['uid']}") is None
        assert not (ganesha.export_dir / ns).exists()
        own.start()  # nobody touches the claim: the next retry binds it
        wait_bound(api, ns, "data", timeout=20)
        check_backoff(driver.attempts_for(since), 3)
        assert (ganesha.export_dir / ns / "data").is_dir()
        delete_claim(api, ns)
        eventually(lambda: not (ganesha.export_dir / ns).exists(), 20, what="directory deleted")
    finally:
        own.stop()


def test_nfs_server_down_then_back(api: httpx.Client, ns: str,
                                   ganesha_factory: Callable[[], GaneshaServer],
                                   mounter: nfs_mounters.UserspaceNfsMounter,
                                   driver: RecordingDriver, tmp_path: Path) -> None:
    own = ganesha_factory()
    try:
        with mounted(mounter, own, tmp_path / "m", FAST_FAIL) as mount:
            cls = export_class(api, local_export(own, mount), subDir="{namespace}/{pvc_name}")
            own.stop()
            since = time.monotonic()
            claim = data_claim(api, ns, cls)
            eventually(lambda: len(driver.attempts_for(since)) >= 2, 20, "two attempts")
            unreachable = f"exportLocalPath {mount} is not reachable on this machine"
            eventually(lambda: failed_count(api, ns, unreachable) >= 2, 10,
                       "two ProvisioningFailed counted")
            assert get(api, f"/api/v1/persistentvolumes/pvc-{claim['metadata']['uid']}") \
                is None
            own.start()
            wait_bound(api, ns, "data", timeout=40)
            attempts = driver.attempts_for(since)
            failures = next(i for i, (_, outcome) in enumerate(attempts) if outcome == "ok")
            check_backoff(attempts, failures)
            assert (own.export_dir / ns / "data").is_dir()
            delete_claim(api, ns)
            eventually(lambda: not (own.export_dir / ns).exists(), 20, what="directory deleted")
    finally:
        with contextlib.suppress(Exception):
            own.stop()
