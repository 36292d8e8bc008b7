"""The local driver on a real temporary directory (enforce none/soft; hard is in tests/node)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from csi_like import contract, errors, local

NODE = "node-1"


def make_driver(tmp_path: Path, *bases: str) -> local.LocalDriver:
    paths = [str(tmp_path / b) for b in (bases or ("base",))]
    return local.LocalDriver(local.LocalConfig.from_mapping({NODE: paths}), NODE)


def request(name: str = "pvc-u1", size: int = 1 << 20, *, claim_name: str = "data",
            annotations: dict[str, str] | None = None, node: str = NODE,
            modes: tuple[contract.AccessMode, ...] = (contract.AccessMode.RWO,),
            params: Mapping[str, str] | None = None,
            **parameters: str) -> contract.CreateVolumeRequest:
    claim = contract.ClaimMetadata(pvc_name=claim_name, pvc_namespace="team-a",
                                   pvc_uid=name.removeprefix("pvc-"), pv_name=name,
                                   annotations=annotations or {})
    topology = contract.TopologyRequirement(preferred=(contract.Topology.node(node),))
    return contract.CreateVolumeRequest(name, size, {**(params or {}), **parameters}, modes,
                                        topology, claim)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_create_makes_the_directory_with_mode_and_topology(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(pathPattern="{namespace}/{pvc_name}", mode="0750"))
    directory = tmp_path / "base" / "team-a" / "data"
    assert directory.is_dir()
    assert directory.stat().st_mode & 0o7777 == 0o750
    assert volume.capacity_bytes == 1 << 20
    assert volume.accessible_topology == (contract.Topology.node(NODE),)
    assert volume.context == {"node": NODE, "path": str(directory), "enforce": "soft"}


def test_create_is_idempotent_and_conflicts_are_typed(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    first = driver.create_volume(request(pathPattern="{namespace}/{pvc_name}"))
    (tmp_path / "base/team-a/data/file").write_text("kept")
    again = driver.create_volume(request(pathPattern="{namespace}/{pvc_name}"))
    assert again == first
    assert (tmp_path / "base/team-a/data/file").read_text() == "kept"
    with pytest.raises(errors.VolumeConflict):  # same name, other directory
        driver.create_volume(request(pathPattern="{pvc_name}"))
    with pytest.raises(errors.VolumeConflict):  # other name, same directory
        driver.create_volume(request("pvc-u2", pathPattern="{namespace}/{pvc_name}"))
    with pytest.raises(errors.VolumeConflict):  # bigger than what exists
        driver.create_volume(request(size=2 << 20, pathPattern="{namespace}/{pvc_name}"))


def test_existing_directory_not_made_by_the_driver_is_a_conflict(tmp_path: Path) -> None:
    (tmp_path / "base" / "pvc-u1").mkdir(parents=True)
    with pytest.raises(errors.VolumeConflict, match="belongs to no volume"):
        make_driver(tmp_path).create_volume(request())


@pytest.mark.parametrize("parameters, parameter", [
    ({"pathPattern": "../{pv_name}"}, "pathPattern"),
    ({"pathPattern": "/etc/{pv_name}"}, "pathPattern"),
    ({"pathPattern": "{pv_name.__dict__}"}, "pathPattern"),
    ({"mode": "rwx"}, "mode"),
    ({"uid": "-1"}, "uid"),
    ({"enforce": "strict"}, "enforce"),
    ({"onDelete": "shred"}, "onDelete"),
    ({"colour": "blue"}, "parameter"),
    ({"nodePath": "/elsewhere"}, "nodePath"),
    ({"allowClaimOverrides": "path"}, "allowClaimOverrides"),
])
def test_bad_parameters_name_themselves_and_create_nothing(
        tmp_path: Path, parameters: dict[str, str], parameter: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        make_driver(tmp_path).create_volume(request(params=parameters))
    assert caught.value.parameter == parameter
    assert tree(tmp_path) == []


def test_reserved_csi_parameters_are_ignored(tmp_path: Path) -> None:
    make_driver(tmp_path).create_volume(request(params={
        "csi.storage.k8s.io/provisioner-secret-name": "s"}))
    assert (tmp_path / "base" / "pvc-u1").is_dir()


def test_symlinked_parent_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "team-a").symlink_to(outside)
    with pytest.raises(errors.InvalidArgument, match="symbolic link"):
        make_driver(tmp_path).create_volume(request(pathPattern="{namespace}/{pvc_name}"))
    assert list(outside.iterdir()) == []


def test_claim_annotations_override_only_where_allowed(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    annotations = {"storagelab.io/mode": "0700"}
    with pytest.raises(errors.InvalidArgument, match="does not allow"):
        driver.create_volume(request(annotations=annotations))
    driver.create_volume(request(annotations=annotations, allowClaimOverrides="mode,uid"))
    assert (tmp_path / "base/pvc-u1").stat().st_mode & 0o777 == 0o700
    with pytest.raises(errors.InvalidArgument, match="storagelab.io/uid"):
        driver.create_volume(request("pvc-u3", annotations={"storagelab.io/uid": "x"},
                                     allowClaimOverrides="uid"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_uid_and_gid_are_applied(tmp_path: Path) -> None:
    make_driver(tmp_path).create_volume(request(uid="1234", gid="2345"))
    info = (tmp_path / "base/pvc-u1").stat()
    assert (info.st_uid, info.st_gid) == (1234, 2345)


def test_node_choice(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    with pytest.raises(errors.NodeUnsuitable) as caught:
        driver.create_volume(request(node="node-9"))
    assert caught.value.node == "node-9"
    plain = contract.CreateVolumeRequest("pvc-u1", 1, claim=contract.ClaimMetadata(pv_name="x"))
    assert driver.create_volume(plain).context["node"] == NODE  # the only node configured
    two = local.LocalDriver(local.LocalConfig.from_mapping({"a": ["/x"], "b": ["/y"]}))
    with pytest.raises(errors.InvalidArgument, match="topology"):
        two.create_volume(plain)


def test_second_base_path_by_parameter(tmp_path: Path) -> None:
    driver = make_driver(tmp_path, "ssd", "hdd")
    driver.create_volume(request(nodePath=str(tmp_path / "hdd")))
    assert (tmp_path / "hdd" / "pvc-u1").is_dir() and not (tmp_path / "ssd").exists()


def test_rwx_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="accessModes"):
        make_driver(tmp_path).create_volume(request(modes=(contract.AccessMode.RWX,)))


def test_size_beyond_free_space_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(errors.OutOfCapacity) as caught:
        make_driver(tmp_path).create_volume(request(size=1 << 60))
    assert caught.value.requested == 1 << 60
    assert tree(tmp_path) == []
    make_driver(tmp_path).create_volume(request(size=1 << 60, enforce="none"))


@pytest.mark.parametrize("on_delete", ["delete", "retain", "archive"])
def test_delete_policies(tmp_path: Path, on_delete: str) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(pathPattern="{namespace}/{pvc_name}",
                                          onDelete=on_delete))
    (tmp_path / "base/team-a/data/f").write_text("x")
    driver.delete_volume(volume.volume_id)
    driver.delete_volume(volume.volume_id)  # twice is success
    base = tmp_path / "base"
    expected = {"delete": [], "retain": ["team-a/data/f"], "archive": ["team-a/archived-data/f"]}
    files = [p for p in tree(base) if (base / p).is_file() and not p.startswith(".storagelab")]
    assert files == expected[on_delete]
    if on_delete == "delete":
        assert not (base / "team-a").exists()  # empty pattern parents removed too


def test_retained_directory_blocks_a_new_volume_on_it(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(pathPattern="{pvc_name}", onDelete="retain"))
    driver.delete_volume(volume.volume_id)
    with pytest.raises(errors.VolumeConflict):
        driver.create_volume(request("pvc-u2", pathPattern="{pvc_name}"))


def test_retained_volume_keeps_its_path_after_its_directory_is_removed(tmp_path: Path) -> None:
    # The record, not the directory, owns the path: a second volume there would be deleted
    # with the first if someone later switched the retained PV to Delete.
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(pathPattern="{pvc_name}", onDelete="retain"))
    driver.delete_volume(volume.volume_id)
    os.rmdir(tmp_path / "base" / "data")
    with pytest.raises(errors.VolumeConflict, match="volume pvc-u1's directory"):
        driver.create_volume(request("pvc-u2", pathPattern="{pvc_name}"))


def test_a_base_from_before_the_path_index_is_indexed_on_first_use(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(pathPattern="{pvc_name}", onDelete="retain"))
    driver.delete_volume(volume.volume_id)
    os.rmdir(tmp_path / "base" / "data")
    index = tmp_path / "base" / local.RECORD_DIR / local.PATHS_DIR
    for entry in index.iterdir():
        entry.unlink()
    index.rmdir()
    with pytest.raises(errors.VolumeConflict, match="volume pvc-u1's directory"):
        driver.create_volume(request("pvc-u2", pathPattern="{pvc_name}"))
    assert len(list(index.iterdir())) == 1


def test_a_path_claim_left_by_a_crash_is_taken_over(tmp_path: Path) -> None:
    # Claimed, then the process died before writing the record: nothing owns the path.
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(pathPattern="{pvc_name}"))
    record = tmp_path / "base" / local.RECORD_DIR / "pvc-u1.json"
    record.unlink()
    os.rmdir(tmp_path / "base" / "data")
    again = driver.create_volume(request("pvc-u2", pathPattern="{pvc_name}"))
    assert again.context["path"] == volume.context["path"]
    driver.delete_volume(again.volume_id)
    assert tree(tmp_path / "base" / local.RECORD_DIR / local.PATHS_DIR) == []


def test_delete_refuses_what_it_did_not_create_and_forged_ids(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    (tmp_path / "base" / "precious").mkdir(parents=True)
    forged = local.volume_id(local.Record("pvc-x", NODE, str(tmp_path / "base"), "precious",
                                          0, "soft", "delete", 0o777, None, None))
    with pytest.raises(errors.PermanentError, match="no record"):
        driver.delete_volume(forged)
    outside = local.volume_id(local.Record("pvc-x", NODE, "/", "etc", 0, "soft", "delete",
                                           0o777, None, None))
    with pytest.raises(errors.PermanentError, match="not a base path"):
        driver.delete_volume(outside)
    escaping = forged.replace("path=precious", "path=..%2F..%2Fetc")
    with pytest.raises(errors.InvalidArgument):
        driver.delete_volume(escaping)
    with pytest.raises(errors.NotMine):
        driver.delete_volume("nfs:v1:name=x")
    assert (tmp_path / "base" / "precious").is_dir()


def test_expand_and_soft_enforcement(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(size=64 * 1024))
    status = driver.get_volume(volume.volume_id)
    assert status.used_bytes == 0 and not status.condition.abnormal
    (tmp_path / "base/pvc-u1/big").write_bytes(os.urandom(256 * 1024))
    status = driver.get_volume(volume.volume_id)
    assert status.used_bytes >= 256 * 1024
    assert status.condition.abnormal and "over its capacity" in status.condition.message
    stats = driver.get_volume_stats(volume.volume_id, str(tmp_path / "base/pvc-u1"))
    assert stats.total_bytes == 64 * 1024 and stats.available_bytes == 0
    assert stats.condition.abnormal
    result = driver.expand_volume(volume.volume_id, 1 << 20)
    assert result == contract.ExpansionResult(1 << 20, node_expansion_required=False)
    assert not driver.get_volume(volume.volume_id).condition.abnormal
    assert driver.expand_volume(volume.volume_id, 1).capacity_bytes == 1 << 20  # no shrink
    with pytest.raises(errors.OutOfCapacity):
        driver.expand_volume(volume.volume_id, 1 << 60)


def test_enforce_none_never_reports(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request(size=1, enforce="none"))
    (tmp_path / "base/pvc-u1/big").write_bytes(b"x" * 8192)
    assert not driver.get_volume(volume.volume_id).condition.abnormal


def test_missing_volume_calls(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    volume = driver.create_volume(request())
    driver.delete_volume(volume.volume_id)
    with pytest.raises(errors.VolumeNotFound):
        driver.expand_volume(volume.volume_id, 10)
    with pytest.raises(errors.VolumeNotFound):
        driver.get_volume(volume.volume_id)


def test_get_capacity_is_free_space_of_the_node(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    free = driver.get_capacity({}, contract.Topology.node(NODE))
    statvfs = os.statvfs(tmp_path)
    assert abs(free - statvfs.f_bavail * statvfs.f_frsize) < 64 << 20
    assert driver.get_capacity({}, contract.Topology.node("other")) == 0
    with pytest.raises(errors.InvalidArgument):
        driver.get_capacity({"enforce": "bogus"}, None)


@pytest.mark.parametrize("raw, message", [
    ({"n": ["relative"]}, "absolute"),
    ({"n": ["/"]}, "absolute"),
    ({"n": ["/a", "/a/"]}, "duplicate"),
    ({"n": []}, "non-empty"),
    ({"n": "/a"}, "non-empty"),
])
def test_config_is_validated_once(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        local.LocalConfig.from_mapping(raw)


def test_identity(tmp_path: Path) -> None:
    driver = make_driver(tmp_path)
    assert driver.get_plugin_info().name == "storagelab.io/local"
    assert driver.probe()
    assert contract.Capability.VOLUME_ACCESSIBILITY_CONSTRAINTS in \
        driver.get_plugin_capabilities()
    assert not local.LocalDriver(local.LocalConfig({}), "n").probe()
