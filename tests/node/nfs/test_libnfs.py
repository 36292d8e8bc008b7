"""The ctypes binding to libnfs against a real Ganesha: struct layouts, errors and time-boxing."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator

import pytest

from kubelet.mounters import libnfs

from .conftest import GaneshaServer


@pytest.fixture
def context(ganesha: GaneshaServer) -> Iterator[libnfs.Context]:
    options = libnfs.ConnectOptions("127.0.0.1", str(ganesha.export_dir),
                                    nfs_port=ganesha.nfs_port, mount_port=ganesha.mount_port,
                                    timeout_ms=2000)
    context = libnfs.connect(options)
    try:
        yield context
    finally:
        context.close()


def test_stat_fields_match_the_server_file(context: libnfs.Context,
                                           ganesha: GaneshaServer) -> None:
    handle = context.create("/layout", os.O_TRUNC, 0o640)
    try:
        assert context.pwrite(handle, 10, b"abc", 3) == 3
        assert context.pread(handle, 0, 100) == b"\0" * 10 + b"abc"
        context.fsync(handle)
        assert context.fstat(handle).size == 13
    finally:
        context.close_file(handle)
    # through NFS: Ganesha caches attributes, so changes behind its back show up late
    context.utimes("/layout", 1_111_111_111_222_333_000, 1_555_555_555_666_777_000)
    seen, real = context.stat("/layout"), os.stat(ganesha.export_dir / "layout")
    assert (seen.mode, seen.ino, seen.nlink, seen.uid, seen.gid, seen.size) == (
        real.st_mode, real.st_ino, real.st_nlink, real.st_uid, real.st_gid, real.st_size)
    assert (seen.atime_ns, seen.mtime_ns, seen.ctime_ns) == (
        real.st_atime_ns, real.st_mtime_ns, real.st_ctime_ns)
    assert (seen.atime_ns, seen.mtime_ns) == (1_111_111_111_222_333_000, 1_555_555_555_666_777_000)


def test_listdir_reports_types(context: libnfs.Context, ganesha: GaneshaServer) -> None:
    (ganesha.export_dir / "ld").mkdir()
    (ganesha.export_dir / "ld" / "file").write_bytes(b"")
    (ganesha.export_dir / "ld" / "sub").mkdir()
    os.symlink("file", ganesha.export_dir / "ld" / "link")
    entries = {e.name: e.mode >> 12 for e in context.listdir("/ld")}
    assert entries == {".": 0o04, "..": 0o04, "file": 0o10, "sub": 0o04, "link": 0o12}


@pytest.mark.parametrize("call, code", [
    (lambda c: c.stat("/missing"), errno.ENOENT),
    (lambda c: (c.mkdir("/twice", 0o755), c.mkdir("/twice", 0o755)), errno.EEXIST),
    (lambda c: c.rmdir("/missing-dir"), errno.ENOENT),
    (lambda c: c.readlink("/"), errno.EINVAL),
])
def test_errors_carry_errno_and_message(context: libnfs.Context, call: object,
                                        code: int) -> None:
    with pytest.raises(libnfs.NfsError) as caught:
        call(context)  # type: ignore[operator]
    assert caught.value.errno == code
    assert caught.value.strerror


def test_calls_are_time_boxed(ganesha_factory: object) -> None:
    server: GaneshaServer = ganesha_factory()  # type: ignore[operator]
    options = libnfs.ConnectOptions("127.0.0.1", str(server.export_dir), nfs_port=server.nfs_port,
                                    mount_port=server.mount_port, timeout_ms=1000)
    context = libnfs.connect(options)
    try:
        server.pause()
        started = time.monotonic()
        with pytest.raises(libnfs.NfsError):
            context.stat("/")
        assert 0.9 < time.monotonic() - started < 5
        server.resume()
        assert context.stat("/").ino == os.stat(server.export_dir).st_ino
    finally:
        context.close()
        server.stop()


def test_connect_to_nothing_fails_fast() -> None:
    with pytest.raises(libnfs.NfsError):
        libnfs.connect(libnfs.ConnectOptions("127.0.0.1", "/x", nfs_port=9, mount_port=9,
                                             timeout_ms=1000))
