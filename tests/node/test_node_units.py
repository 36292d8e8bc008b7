"""Pure pieces of the kubelet, table-driven: pod phase, $(VAR) expansion, command lines,
the atomic writer, hostPath type checks, subPath resolution and mountinfo parsing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kubelet import atomic_writer, envvars, hostpath, mount, status, subpath, volumes


def running() -> dict:
    return {"name": "c", "state": {"running": {}}}


def terminated(code: int) -> dict:
    return {"name": "c", "state": {"terminated": {"exitCode": code}}}


def backing_off() -> dict:
    return {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1}}}


@pytest.mark.parametrize("policy,statuses,count,expected", [
    ("Always", [], 1, "Pending"),
    ("Always", [{"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}], 1,
     "Pending"),
    ("Always", [running()], 1, "Running"),
    ("Always", [running()], 2, "Pending"),
    ("Always", [terminated(0)], 1, "Running"),
    ("OnFailure", [terminated(0)], 1, "Succeeded"),
    ("Never", [terminated(0), terminated(0)], 2, "Succeeded"),
    ("Never", [terminated(0), terminated(2)], 2, "Failed"),
    ("OnFailure", [terminated(2)], 1, "Running"),
    ("Always", [backing_off()], 1, "Running"),
    ("Never", [running(), terminated(1)], 2, "Running"),
])
def test_phase(policy: str, statuses: list, count: int, expected: str) -> None:
    assert status.phase(policy, statuses, count) == expected


def test_conditions_keep_transition_time_while_unchanged() -> None:
    first = status.conditions([], "Running", [{"name": "a", "ready": False}], ["a"], "T1")
    ready = {c["type"]: c for c in first}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    assert ready["message"] == "containers with unready status: [a]"
    second = status.conditions(first, "Running", [{"name": "a", "ready": False}], ["a"], "T2")
    assert {c["type"]: c["lastTransitionTime"] for c in second}["Ready"] == "T1"
    third = status.conditions(second, "Running", [{"name": "a", "ready": True}], ["a"], "T3")
    assert {c["type"]: (c["status"], c["lastTransitionTime"]) for c in third}["Ready"] == (
        "True", "T3")


@pytest.mark.parametrize("value,expected", [
    ("$(A)-x", "1-x"), ("$$(A)", "$(A)"), ("$(NOPE)", "$(NOPE)"), ("$(A)$(B)", "12"),
    ("plain", "plain"), ("$", "$"), ("$$", "$"),
])
def test_expand(value: str, expected: str) -> None:
    assert envvars.expand(value, {"A": "1", "B": "2"}) == expected


@pytest.mark.parametrize("container,expected", [
    ({}, (None, None)),
    ({"command": ["sh"]}, (["sh"], [])),
    ({"args": ["-c", "x"]}, (None, ["-c", "x"])),
    ({"command": ["echo"], "args": ["$(A)"]}, (["echo"], ["1"])),
])
def test_command_line(container: dict, expected: tuple) -> None:
    assert envvars.command_line(container, {"A": "1"}) == expected


class Objects:
    def __init__(self, **objs: dict) -> None:
        self.objs = objs

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objs.get(f"{kind}/{name}")


def test_env_errors_name_the_missing_source() -> None:
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"}, "spec": {}}
    objects = Objects(**{"configmaps/cm": {"data": {"k": "v"}}})
    ref = {"configMapKeyRef": {"name": "cm", "key": "other"}}
    with pytest.raises(envvars.ContainerConfigError, match="couldn't find key other in "
                                                           "ConfigMap ns/cm"):
        envvars.resolve(pod, {"env": [{"name": "X", "valueFrom": ref}]}, objects)
    with pytest.raises(envvars.ContainerConfigError, match='configmap "gone" not found'):
        envvars.resolve(pod, {"envFrom": [{"configMapRef": {"name": "gone"}}]}, objects)
    env = envvars.resolve(pod, {"env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {**ref["configMapKeyRef"],
                                                        "optional": True}}},
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}, objects)
    assert env == {"N": "p"}


def test_atomic_writer_swaps_all_files_at_once(tmp_path: Path) -> None:
    fp = atomic_writer.FileProjection
    assert atomic_writer.write(tmp_path, {"a": fp(b"1", 0o644), "d/b": fp(b"2", 0o600)})
    first = os.readlink(tmp_path / "..data")
    assert (tmp_path / "d" / "b").read_bytes() == b"2"
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert (tmp_path / "d" / "b").stat().st_mode & 0o777 == 0o600
    assert not atomic_writer.write(tmp_path, {"a": fp(b"1", 0o644), "d/b": fp(b"2", 0o600)})
    assert atomic_writer.write(tmp_path, {"a": fp(b"new", 0o644)})
    assert os.readlink(tmp_path / "..data") != first
    assert not (tmp_path / first).exists() and not (tmp_path / "d").exists()
    assert (tmp_path / "a").read_bytes() == b"new"


@pytest.mark.parametrize("bad", ["/abs", "../up", "a/../b", "..hidden"])
def test_atomic_writer_rejects_bad_paths(tmp_path: Path, bad: str) -> None:
    with pytest.raises(atomic_writer.InvalidPayloadPath):
        atomic_writer.write(tmp_path, {bad: atomic_writer.FileProjection(b"", 0o644)})


def test_hostpath_types(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    cases = [("file", "File", None), ("file", "Directory", "is not a directory"),
             ("missing", "Directory", "does not exist"), ("file", "", None),
             ("sock", "Socket", None), ("file", "Socket", "is not a socket file"),
             ("file", "CharDevice", "is not a character device"),
             ("file", "BlockDevice", "is not a block device")]
    for name, kind, error in cases:
        if error is None:
            hostpath.check(tmp_path / name, kind)
        else:
            with pytest.raises(hostpath.HostPathTypeError, match=error):
                hostpath.check(tmp_path / name, kind)
    hostpath.check(tmp_path / "new" / "dir", "DirectoryOrCreate")
    assert (tmp_path / "new" / "dir").is_dir()
    hostpath.check(tmp_path / "new" / "f", "FileOrCreate")
    assert (tmp_path / "new" / "f").is_file()
    assert Path("/dev/null").exists() and hostpath.check(Path("/dev/null"), "CharDevice") is None
    sock.close()


def test_subpath_stays_inside(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    (vol / "in").mkdir(parents=True)
    (vol / "inner-link").symlink_to("in")
    (vol / "out").symlink_to(tmp_path)
    assert subpath.resolve_within(vol, "inner-link") == (vol / "in").resolve()
    assert subpath.resolve_within(vol, "made/here").is_dir()
    for bad in ("out", "out/x", "../vol", "/etc"):
        with pytest.raises(subpath.SubPathError):
            subpath.resolve_within(vol, bad)
    assert not (tmp_path / "x").exists()


def test_parse_mountinfo_unescapes_paths() -> None:
    text = ("36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - tmpfs tmpfs rw,size=1k\n"
            "37 35 98:0 /x /ro ro,relatime - ext4 /dev/sda1 rw\n")
    mounts = mount.parse_mountinfo(text)
    assert mounts[0].target == Path("/mnt/with space") and mounts[0].fstype == "tmpfs"
    assert mounts[1].read_only and mounts[1].source == "/dev/sda1"


def test_configmap_payload_items_modes_and_optional() -> None:
    objects = Objects(**{"configmaps/cm": {"data": {"a": "1", "b": "2"},
                                           "binaryData": {"bin": "AAE="}}})
    payload = volumes.configmap_payload(objects, "ns", {"name": "cm", "defaultMode": 0o640})
    assert {k: (v.data, v.mode) for k, v in payload.items()} == {
        "a": (b"1", 0o640), "b": (b"2", 0o640), "bin": (b"\x00\x01", 0o640)}
    payload = volumes.configmap_payload(objects, "ns", {"name": "cm", "items": [
        {"key": "a", "path": "x/y", "mode": 0o600}]})
    assert {k: (v.data, v.mode) for k, v in payload.items()} == {"x/y": (b"1", 0o600)}
    with pytest.raises(volumes.VolumeSetupError,
                       match="configmap references non-existent config key: zz"):
        volumes.configmap_payload(objects, "ns", {"name": "cm", "items": [
            {"key": "zz", "path": "p"}]})
    assert volumes.configmap_payload(objects, "ns", {"name": "cm", "optional": True, "items": [
        {"key": "zz", "path": "p"}]}) == {}
    assert volumes.configmap_payload(objects, "ns", {"name": "gone", "optional": True}) == {}
    with pytest.raises(volumes.VolumeSetupError, match='configmap "gone" not found'):
        volumes.configmap_payload(objects, "ns", {"name": "gone"})


def test_secret_payload_decodes_and_names_missing_keys() -> None:
    objects = Objects(**{"secrets/s": {"data": {"k": "c2VjcmV0"}}})
    payload = volumes.secret_payload(objects, "ns", {"secretName": "s"})
    assert (payload["k"].data, payload["k"].mode) == (b"secret", 0o644)
    with pytest.raises(volumes.VolumeSetupError, match="references non-existent secret key: x"):
        volumes.secret_payload(objects, "ns", {"secretName": "s", "items": [
            {"key": "x", "path": "x"}]})
    with pytest.raises(volumes.VolumeSetupError, match='secret "t" not found'):
        volumes.secret_payload(objects, "ns", {"secretName": "t"})


@pytest.mark.parametrize("objs,message", [
    ({}, 'persistentvolumeclaim "c" not found'),
    ({"persistentvolumeclaims/c": {"spec": {}, "status": {"phase": "Pending"}}},
     'PVC ns/c has non-bound phase ("Pending") or empty pvc.Spec.VolumeName ("")'),
    ({"persistentvolumeclaims/c": {"spec": {"volumeName": "pv"}, "status": {"phase": "Bound"}}},
     'persistentvolume "pv" not found'),
])
def test_bound_volume_errors(objs: dict, message: str) -> None:
    with pytest.raises(volumes.VolumeSetupError) as caught:
        volumes.bound_volume(Objects(**objs), "ns", "c")
    assert str(caught.value) == message
