"""enforce: hard for real: a loop-mounted ext4 answers ENOSPC past the request, grows online,
and publish bind-mounts it (read-only when asked). Needs root, loop devices and e2fsprogs."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from csi_like import contract, errors, local, local_capacity
from tests.conftest import require_real

NODE = "node-1"
MIB = 1024 * 1024


@pytest.fixture()
def driver(tmp_path: Path) -> Iterator[local.LocalDriver]:
    reason = local_capacity.unavailable_reason()
    require_real(reason is None, reason or "")
    driver = local.LocalDriver(local.LocalConfig.from_mapping({NODE: [str(tmp_path / "b")]}),
                               NODE)
    yield driver
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mount_point = line.split()[4]
        if mount_point.startswith(str(tmp_path)):
            subprocess.run(["umount", "-l", mount_point], check=False, timeout=30)


def hard_request(size: int, **parameters: str) -> contract.CreateVolumeRequest:
    return contract.CreateVolumeRequest(
        "pvc-h1", size, {"enforce": "hard", **parameters},
        topology=contract.TopologyRequirement(preferred=(contract.Topology.node(NODE),)),
        claim=contract.ClaimMetadata(pvc_name="db", pvc_namespace="ns", pv_name="pvc-h1"))


def fill(path: Path, limit: int) -> int:
    """Write 1 MiB chunks until ENOSPC or `limit` bytes; returns bytes written."""
    written = 0
    chunk = b"\0" * MIB
    with open(path, "wb") as f:
        try:
            while written < limit:
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                written += len(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
            return written
    return written


def test_hard_capacity_enforced_expanded_published_and_deleted(
        driver: local.LocalDriver, tmp_path: Path) -> None:
    volume = driver.create_volume(hard_request(20 * MIB, uid="1000", gid="1000", mode="0770",
                                               onDelete="delete"))
    assert volume.capacity_bytes == 20 * MIB
    directory = Path(volume.context["path"])
    assert local_capacity.is_mounted(str(directory))
    info = directory.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (1000, 1000, 0o770)
    assert driver.create_volume(hard_request(20 * MIB, uid="1000", gid="1000", mode="0770",
                                             onDelete="delete")) == volume  # idempotent

    written = fill(directory / "data", 40 * MIB)
    assert 10 * MIB <= written <= 20 * MIB  # ENOSPC at the request, not at the host's disk
    stats = driver.get_volume_stats(volume.volume_id, str(directory))
    assert stats.total_bytes <= 20 * MIB and stats.used_bytes >= written

    result = driver.expand_volume(volume.volume_id, 40 * MIB)
    assert result == contract.ExpansionResult(40 * MIB, node_expansion_required=False)
    assert local_capacity.is_mounted(str(directory))  # grown (online, or offline where the
    # container lacks CAP_SYS_RESOURCE) and mounted again
    assert (directory / "data").stat().st_size == written  # data kept
    more = fill(directory / "more", 40 * MIB)
    assert more >= 10 * MIB
    assert driver.get_volume_stats(volume.volume_id, str(directory)).total_bytes > 30 * MIB

    target = tmp_path / "pod-volume"
    target.mkdir()
    driver.publish_volume(volume.volume_id, str(target), read_only=True)
    driver.publish_volume(volume.volume_id, str(target), read_only=True)  # idempotent
    assert (target / "data").exists()
    with pytest.raises(OSError) as caught:
        (target / "new").write_text("x")
    assert caught.value.errno == errno.EROFS
    driver.unpublish_volume(volume.volume_id, str(target))
    driver.unpublish_volume(volume.volume_id, str(target))
    assert not local_capacity.is_mounted(str(target))

    driver.delete_volume(volume.volume_id)
    assert not local_capacity.is_mounted(str(directory))
    assert not directory.exists()
    assert not Path(local.Record("pvc-h1", NODE, str(tmp_path / "b"), "", 0, "hard",
                                 "delete", 0, None, None).image).exists()


def test_hard_archive_keeps_the_image(driver: local.LocalDriver, tmp_path: Path) -> None:
    volume = driver.create_volume(hard_request(16 * MIB, onDelete="archive",
                                               pathPattern="{namespace}/{pvc_name}"))
    (Path(volume.context["path"]) / "keep").write_text("me")
    driver.delete_volume(volume.volume_id)
    assert (tmp_path / "b/ns/archived-db.img").is_file()
    assert not (tmp_path / "b/ns/db").exists()


def test_hard_request_beyond_free_space_creates_nothing(driver: local.LocalDriver,
                                                        tmp_path: Path) -> None:
    with pytest.raises(errors.OutOfCapacity):
        driver.create_volume(hard_request(1 << 55))
    assert not (tmp_path / "b" / "pvc-h1").exists()
    assert list((tmp_path / "b").rglob("*.img")) == [] if (tmp_path / "b").exists() else True
