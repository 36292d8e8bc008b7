"""A server that stops answering must not hang the kubelet: EIO in bounded time, recovery when
the server returns, lazy unmount of a dead mount, and clear errors for mounts that cannot work.
Each test has its own Ganesha so that stopping it disturbs nobody else."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubelet.mounters import nfs

from .conftest import GaneshaServer, mounted

# Every NFS call is boxed to 2 s; no attribute caching so each stat reaches the server.
FAST_FAIL = ("timeo=20", "actimeo=0")
BOUND_S = 8.0


@pytest.fixture
def server(ganesha_factory: Callable[[], GaneshaServer]) -> Iterator[GaneshaServer]:
    own = ganesha_factory()
    try:
        yield own
    finally:
        own.stop()


def _expect_eio(operation: Callable[[], object]) -> float:
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        operation()
    elapsed = time.monotonic() - started
    assert caught.value.errno == errno.EIO, caught.value
    assert elapsed < BOUND_S
    return elapsed


def _write_and_sync(fd: int) -> None:
    os.pwrite(fd, b"x" * 100, 0)
    os.fsync(fd)  # reaches the server: fails when it does not answer


def test_unresponsive_server_gives_eio_then_recovers(
        server: GaneshaServer, mounter: nfs.UserspaceNfsMounter, tmp_path: Path) -> None:
    with mounted(mounter, server, tmp_path / "m", FAST_FAIL) as mount:
        (mount / "f").write_bytes(b"before")
        fd = os.open(mount / "f", os.O_RDWR)
        try:
            server.pause()
            try:
                assert _expect_eio(lambda: os.stat(mount / "f")) >= 1.0  # it did wait
                _expect_eio(lambda: os.listdir(mount))
                _expect_eio(lambda: _write_and_sync(fd))
            finally:
                server.resume()
            assert os.pread(fd, 6, 0) in (b"before", b"x" * 6)
            (mount / "g").write_bytes(b"after")
            assert (server.export_dir / "g").read_bytes() == b"after"
        finally:
            os.close(fd)


def test_stopped_server_gives_eio_and_works_after_restart(
        server: GaneshaServer, mounter: nfs.UserspaceNfsMounter, tmp_path: Path) -> None:
    with mounted(mounter, server, tmp_path / "m", FAST_FAIL) as mount:
        (mount / "f").write_bytes(b"survives")
        fd = os.open(mount / "f", os.O_RDONLY)
        try:
            server.stop()
            _expect_eio(lambda: os.stat(mount / "f"))
            _expect_eio(lambda: os.pread(fd, 8, 0) or os.stat(mount / "f"))
            server.start()
            deadline = time.monotonic() + 15
            while True:  # the first calls after the restart may still see the old socket
                try:
                    assert (mount / "f").read_bytes() == b"survives"
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert os.pread(fd, 8, 0) == b"survives"  # handles outlive the restart
            (mount / "new").write_bytes(b"ok")
            assert (server.export_dir / "new").read_bytes() == b"ok"
        finally:
            os.close(fd)


def test_lazy_unmount_of_a_dead_mount(server: GaneshaServer, mounter: nfs.UserspaceNfsMounter,
                                      tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    mounter.mount("127.0.0.1", str(server.export_dir), str(target), [*server.options, *FAST_FAIL])
    child = mounter._children[str(target)]
    server.pause()
    try:
        started = time.monotonic()
        mounter.unmount(str(target), lazy=True)
        assert time.monotonic() - started < 20
        assert not mounter.is_mounted(str(target))
        assert child.poll() is not None  # the FUSE process ended with its mount
        mounter.unmount(str(target), lazy=True)  # idempotent
    finally:
        server.resume()


def test_unreachable_server_fails_the_mount_clearly(
        server: GaneshaServer, mounter: nfs.UserspaceNfsMounter, tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    server.stop()
    with pytest.raises(nfs.MountFailed) as caught:
        mounter.mount("127.0.0.1", str(server.export_dir), str(target),
                      [*server.options, *FAST_FAIL])
    assert "userspace NFS mount of 127.0.0.1:" in str(caught.value)
    assert not mounter.is_mounted(str(target))


def test_missing_export_fails_the_mount(ganesha: GaneshaServer, mounter: nfs.UserspaceNfsMounter,
                                        tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    with pytest.raises(nfs.MountFailed, match="mount"):
        mounter.mount("127.0.0.1", "/not/exported", str(target), ganesha.options)
    assert not mounter.is_mounted(str(target))


def test_fuse_process_rejects_bad_input_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cases = [
        [f"srv;touch {marker}:/x", str(tmp_path)],
        ["127.0.0.1:relative", str(tmp_path)],
        ["127.0.0.1:/x", str(tmp_path), "-o", "port=1,evil"],
        ["127.0.0.1:/x", "relative/target"],
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(nfs.__file__).resolve().parents[2])}
    for argv in cases:
        done = subprocess.run([sys.executable, "-m", "kubelet.mounters.nfs_fuse", *argv],
                              capture_output=True, text=True, env=env, timeout=60,
                              check=False)
        assert done.returncode == 1, (argv, done.stderr)
        assert done.stderr.startswith("error: invalid NFS "), done.stderr
    assert not marker.exists()
