"""The nfs driver against a real export directory: through OSFS (exportLocalPath) and through
SFTP to a real OpenSSH server that the tests start on a loopback port (Debian
openssh-server, its own config, host key and authorized key in a temporary directory; the
`sshd` fixture of tests/node/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from csi_like import contract, errors, nfs
from tests.conftest import free_port
from tests.node.sshd import Sshd


@dataclass
class Export:
    share: Path
    parameters: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["osfs", "sftp"])
def export(request: pytest.FixtureRequest, tmp_path: Path) -> Export:
    share = tmp_path / "export"
    share.mkdir()
    parameters = {"server": "127.0.0.1", "share": str(share)}
    if request.param == "osfs":
        return Export(share, {**parameters, "exportLocalPath": str(share)})
    server: Sshd = request.getfixturevalue("sshd")
    return Export(share, {**parameters, "sshPort": str(server.port)}, server.secrets())


def create(export: Export, name: str = "pvc-u1", size: int = 1 << 20,
           secrets: dict[str, str] | None = None, params: dict[str, str] | None = None,
           **parameters: str) -> contract.Volume:
    claim = contract.ClaimMetadata(pvc_name="data", pvc_namespace="team-a", pv_name=name)
    request = contract.CreateVolumeRequest(
        name, size, {**export.parameters, **(params or {}), **parameters},
        (contract.AccessMode.RWX, contract.AccessMode.ROX, contract.AccessMode.RWOP),
        claim=claim, secrets=export.secrets if secrets is None else secrets)
    return nfs.NfsDriver().create_volume(request)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if ".storagelab" not in p.parts)


def test_create_idempotent_with_permissions_and_context(export: Export) -> None:
    volume = create(export, subDir="{namespace}/{pvc_name}", mountPermissions="0770")
    directory = export.share / "team-a" / "data"
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o770
    assert volume.context == {"server": "127.0.0.1", "share": str(export.share),
                              "subDir": "team-a/data", "path": f"{export.share}/team-a/data"}
    assert volume.accessible_topology == ()
    (directory / "f").write_text("kept")
    assert create(export, subDir="{namespace}/{pvc_name}", mountPermissions="0770") == volume
    assert (directory / "f").read_text() == "kept"
    with pytest.raises(errors.VolumeConflict):
        create(export, "pvc-u2", subDir="{namespace}/{pvc_name}")


@pytest.mark.parametrize("on_delete, expected", [
    ("delete", []), ("retain", ["team-a", "team-a/data", "team-a/data/f"]),
    ("archive", ["team-a", "team-a/archived-data", "team-a/archived-data/f"])])
def test_delete_policies(export: Export, on_delete: str, expected: list[str]) -> None:
    volume = create(export, subDir="{namespace}/{pvc_name}", onDelete=on_delete)
    (export.share / "team-a/data/f").write_text("x")
    driver = nfs.NfsDriver()
    driver.delete_volume(volume.volume_id, export.secrets)
    driver.delete_volume(volume.volume_id, export.secrets)  # twice is success
    assert listing(export.share) == expected


def test_delete_removes_symlinks_not_their_targets(export: Export, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    volume = create(export)
    (export.share / "pvc-u1" / "link").symlink_to(outside)
    nfs.NfsDriver().delete_volume(volume.volume_id, export.secrets)
    assert (outside / "precious").exists()
    assert not (export.share / "pvc-u1").exists()


def test_expand_and_soft_enforcement(export: Export) -> None:
    driver = nfs.NfsDriver()
    volume = create(export, size=4096)
    assert not driver.get_volume(volume.volume_id, export.secrets).condition.abnormal
    (export.share / "pvc-u1" / "big").write_bytes(b"x" * 10000)
    status = driver.get_volume(volume.volume_id, export.secrets)
    assert status.used_bytes == 10000 and status.condition.abnormal
    result = driver.expand_volume(volume.volume_id, 1 << 20, export.secrets)
    assert result == contract.ExpansionResult(1 << 20, False)
    status = driver.get_volume(volume.volume_id, export.secrets)
    assert status.capacity_bytes == 1 << 20 and not status.condition.abnormal


def test_capacity_and_size_beyond_free_space(export: Export) -> None:
    free = nfs.NfsDriver().get_capacity(export.parameters, None, export.secrets)
    statvfs = os.statvfs(export.share)
    assert abs(free - statvfs.f_bavail * statvfs.f_frsize) < 256 << 20
    with pytest.raises(errors.OutOfCapacity):
        create(export, size=1 << 60)
    assert listing(export.share) == []


@pytest.mark.parametrize("parameters, parameter", [
    ({"colour": "blue"}, "parameter"),
    ({"subDir": "../{pv_name}"}, "subDir"),
    ({"subDir": "{pv_name"}, "subDir"),
    ({"mountPermissions": "abc"}, "mountPermissions"),
    ({"onDelete": "never"}, "onDelete"),
    ({"server": "a b"}, "server"),
    ({"share": "relative"}, "share"),
    ({"sshPort": "70000"}, "sshPort"),
])
def test_bad_parameters_create_nothing(export: Export, parameters: dict[str, str],
                                       parameter: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        create(export, params=parameters)
    assert caught.value.parameter == parameter
    assert list(export.share.iterdir()) == []


def test_symlinked_parent_is_refused(export: Export, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (export.share / "team-a").symlink_to(outside)
    with pytest.raises(errors.InvalidArgument, match="symbolic link"):
        create(export, subDir="{namespace}/{pvc_name}")
    assert list(outside.iterdir()) == []


def test_wrong_credentials_are_permanent(sshd: Sshd, tmp_path: Path) -> None:
    export = Export(tmp_path, {"server": "127.0.0.1", "share": str(tmp_path),
                               "sshPort": str(sshd.port)})
    bad_password = {"username": "root", "password": "not-the-password",
                    "knownHosts": sshd.known_hosts}
    with pytest.raises(errors.PermanentError, match="authentication"):
        create(export, secrets=bad_password)
    other_host = sshd.secrets(knownHosts=f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
                              "AAAAC3NzaC1lZDI1NTE5AAAAIFJWgBI0SmFZJtcC3PQK/1GLm5GaeXXu3ptUgfGOwvGT")
    with pytest.raises(errors.PermanentError, match="host key"):
        create(export, secrets=other_host)
    with pytest.raises(errors.PermanentError, match="not in the knownHosts"):
        create(export, secrets=sshd.secrets(knownHosts=""))
    with pytest.raises(errors.InvalidArgument, match="username"):
        create(export, secrets={})
    assert list(tmp_path.iterdir()) == []


def test_server_down_is_temporary(tmp_path: Path) -> None:
    export = Export(tmp_path, {"server": "127.0.0.1", "share": str(tmp_path),
                               "sshPort": str(free_port())},
                    {"username": "root", "password": "x", "knownHosts": ""})
    with pytest.raises(errors.TemporaryError, match="unreachable"):
        create(export)
    with pytest.raises(errors.TemporaryError):
        nfs.NfsDriver().delete_volume(
            nfs.volume_id(nfs.parse_class(export.parameters),
                          nfs.Record("pvc-u1", "pvc-u1", 1, 0)), export.secrets)


def test_forged_ids_are_refused(tmp_path: Path) -> None:
    share = tmp_path / "export"
    (share / "precious").mkdir(parents=True)
    cls = nfs.parse_class({"server": "127.0.0.1", "share": str(share),
                           "exportLocalPath": str(share)})
    forged = nfs.volume_id(cls, nfs.Record("pvc-x", "precious", 1, 0))
    with pytest.raises(errors.PermanentError, match="no record"):
        nfs.NfsDriver().delete_volume(forged)
    with pytest.raises(errors.PermanentError):
        nfs.NfsDriver().delete_volume(forged.replace("subDir=precious", "subDir=..%2Fx"))
    with pytest.raises(errors.NotMine):
        nfs.NfsDriver().delete_volume("local:v1:name=x")
    assert (share / "precious").is_dir()


class RecordingMounter:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.fail = fail

    def mount(self, server: str, export_path: str, target: str, options: list[str]) -> None:
        if self.fail:
            raise self.fail
        self.calls.append(("mount", server, export_path, target, tuple(options)))

    def unmount(self, target: str, lazy: bool = True) -> None:
        self.calls.append(("unmount", target))

    def is_mounted(self, target: str) -> bool:
        return False


def test_publish_delegates_to_the_mounter(tmp_path: Path) -> None:
    _: nfs.NfsMounter = RecordingMounter()
    mounter = RecordingMounter()
    driver = nfs.NfsDriver(mounter)
    cls = nfs.parse_class({"server": "nfs.example", "share": "/exports"})
    volume_id = nfs.volume_id(cls, nfs.Record("pvc-1", "team-a/data", 1, 0))
    driver.publish_volume(volume_id, "/var/lib/pods/x", True, mount_options=("vers=4.1",))
    driver.unpublish_volume(volume_id, "/var/lib/pods/x")
    assert mounter.calls == [
        ("mount", "nfs.example", "/exports/team-a/data", "/var/lib/pods/x", ("vers=4.1", "ro")),
        ("unmount", "/var/lib/pods/x")]
    with pytest.raises(errors.InvalidArgument):
        nfs.NfsDriver(RecordingMounter(ValueError("bad option"))).publish_volume(
            volume_id, "/t", False)
    with pytest.raises(errors.TemporaryError):
        nfs.NfsDriver(RecordingMounter(RuntimeError("timeout"))).publish_volume(
            volume_id, "/t", False)
    with pytest.raises(errors.PermanentError, match="no NFS mounter"):
        nfs.NfsDriver().publish_volume(volume_id, "/t", False)
    (tmp_path / "f").write_bytes(b"x" * 100)
    stats = driver.get_volume_stats(volume_id, str(tmp_path))
    assert stats.used_bytes == 100 and stats.total_bytes > 0


# ---------------------------------------------------------------- pooled SSH sessions

def sftp_export(sshd: Sshd, tmp_path: Path) -> Export:
    share = tmp_path / "export"
    share.mkdir()
    return Export(share, {"server": "127.0.0.1", "share": str(share),
                          "sshPort": str(sshd.port)}, sshd.secrets())


def create_with(driver: nfs.NfsDriver, export: Export, name: str,
                secrets: dict[str, str] | None = None) -> contract.Volume:
    request = contract.CreateVolumeRequest(
        name, 1 << 20, export.parameters, (contract.AccessMode.RWX,),
        claim=contract.ClaimMetadata(pvc_name=name, pvc_namespace="ns", pv_name=name),
        secrets=export.secrets if secrets is None else secrets)
    return driver.create_volume(request)


def test_one_ssh_connection_serves_call_after_call(sshd: Sshd, tmp_path: Path) -> None:
    export, driver = sftp_export(sshd, tmp_path), nfs.NfsDriver()
    volumes = [create_with(driver, export, f"pvc-{i}") for i in range(3)]
    driver.delete_volume(volumes[0].volume_id, export.secrets)
    assert driver.get_capacity(export.parameters, secrets=export.secrets) > 0
    assert listing(export.share) == ["pvc-1", "pvc-2"]
    assert driver._sessions.connects == 1
    # Other credentials (here the same key with another knownHosts text) never share it.
    create_with(driver, export, "pvc-3", sshd.secrets(knownHosts=sshd.known_hosts + "\n"))
    assert driver._sessions.connects == 2


def test_a_connection_the_server_dropped_is_replaced_not_reused(sshd: Sshd,
                                                                tmp_path: Path) -> None:
    export, driver = sftp_export(sshd, tmp_path), nfs.NfsDriver()
    create_with(driver, export, "pvc-a")
    assert sshd.process is not None
    children = subprocess.run(["pgrep", "-P", str(sshd.process.pid)], capture_output=True,
                              text=True, check=False).stdout.split()
    assert children, "the pooled session has its own sshd process"
    for pid in children:  # the server side of the pooled connection dies
        os.kill(int(pid), signal.SIGKILL)
    create_with(driver, export, "pvc-b")
    assert listing(export.share) == ["pvc-a", "pvc-b"]
    assert driver._sessions.connects == 2
