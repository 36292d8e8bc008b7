"""The userspace NFS mount (libnfs + FUSE) against a real Ganesha: POSIX behaviour end to end.

Each test works through the FUSE mount and checks the result on the server's side too (the
exported directory), so a client that only pretended would fail.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kubelet import nfs_volumes
from kubelet.mounters import nfs

from .conftest import GaneshaServer


@pytest.fixture
def work(mount: Path, ganesha: GaneshaServer) -> tuple[Path, Path]:
    """A fresh directory, as (path through the mount, same path on the server)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    (mount / name).mkdir()
    return mount / name, ganesha.export_dir / name


def test_mount_is_listed_and_idempotent(mount: Path, mounter: nfs.UserspaceNfsMounter,
                                        ganesha: GaneshaServer) -> None:
    assert mounter.is_mounted(str(mount))
    assert nfs.mount_fstype(str(mount)) == nfs.FUSE_FSTYPE
    mounter.mount("127.0.0.1", str(ganesha.export_dir), str(mount), ganesha.options)
    with open("/proc/self/mountinfo") as table:
        assert sum(line.split()[4] == str(mount) for line in table) == 1  # not mounted twice
    assert os.stat(mount).st_ino == os.stat(ganesha.export_dir).st_ino


def test_write_and_read_at_offsets(work: tuple[Path, Path]) -> None:
    client, server = work
    fd = os.open(client / "f", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"head", 0)
        os.pwrite(fd, b"middle", 5000)
        os.pwrite(fd, b"tail", (1 << 20) + 3)
        assert os.pread(fd, 6, 5000) == b"middle"
        assert os.pread(fd, 10, 4) == b"\0" * 10  # the hole reads as zeros
        assert os.pread(fd, 100, (1 << 20) + 3) == b"tail"  # short read at end of file
    finally:
        os.close(fd)
    data = (server / "f").read_bytes()
    assert len(data) == (1 << 20) + 7
    assert data[:4] == b"head" and data[5000:5006] == b"middle" and data[-4:] == b"tail"


def test_create_mkdir_rename_truncate_unlink(work: tuple[Path, Path]) -> None:
    client, server = work
    (client / "a" / "b").mkdir(parents=True)
    (client / "f").write_bytes(b"0123456789")
    (client / "f").rename(client / "a" / "b" / "g")
    (client / "h").write_bytes(b"old")
    (client / "a" / "b" / "g").replace(client / "h")  # rename over an existing file
    assert (server / "h").read_bytes() == b"0123456789"
    assert not (server / "a" / "b" / "g").exists()
    os.truncate(client / "h", 4)
    assert (server / "h").read_bytes() == b"0123"
    os.truncate(client / "h", 8)
    assert (client / "h").read_bytes() == b"0123\0\0\0\0"
    with pytest.raises(FileExistsError):
        (client / "a").mkdir()
    with pytest.raises(OSError) as caught:
        (client / "a").rmdir()
    assert caught.value.errno == errno.ENOTEMPTY
    (client / "a" / "b").rmdir()
    (client / "h").unlink()
    with pytest.raises(FileNotFoundError):
        (client / "h").unlink()
    assert sorted(p.name for p in server.iterdir()) == ["a"]


def test_exclusive_create_fails_on_existing(work: tuple[Path, Path]) -> None:
    client, _ = work
    (client / "x").write_bytes(b"")
    with pytest.raises(FileExistsError):
        os.open(client / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY)


def test_chmod_and_chown(work: tuple[Path, Path]) -> None:
    client, server = work
    (client / "f").write_bytes(b"x")
    os.chmod(client / "f", 0o640)
    os.chown(client / "f", 1234, 2345)
    for path in (client / "f", server / "f"):
        st = os.stat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1234, 2345)
    os.chown(client / "f", -1, 77)  # -1 keeps the owner
    assert (os.stat(server / "f").st_uid, os.stat(server / "f").st_gid) == (1234, 77)


def test_symlinks_and_hard_links(work: tuple[Path, Path]) -> None:
    client, server = work
    (client / "target").write_bytes(b"pointed at")
    os.symlink("target", client / "link")
    os.link(client / "target", client / "hard")
    assert os.readlink(client / "link") == "target"
    assert os.readlink(server / "link") == "target"
    assert stat.S_ISLNK(os.lstat(client / "link").st_mode)
    assert (client / "link").read_bytes() == b"pointed at"
    assert os.stat(client / "target").st_nlink == 2
    assert os.stat(server / "hard").st_ino == os.stat(server / "target").st_ino


def test_readdir_lists_every_name_with_its_type(work: tuple[Path, Path]) -> None:
    client, _ = work
    names = {f"file-{i}" for i in range(300)} | {"with space", "ünïcode", ".hidden"}
    for name in names:
        (client / name).write_bytes(b"")
    (client / "sub").mkdir()
    assert set(os.listdir(client)) == names | {"sub"}
    kinds = {entry.name: entry.is_dir(follow_symlinks=False) for entry in os.scandir(client)}
    assert kinds["sub"] and not kinds["with space"]


def test_stat_reports_the_servers_sizes_and_times(work: tuple[Path, Path]) -> None:
    client, server = work
    (client / "f").write_bytes(b"x" * 12345)
    seen, real = os.stat(client / "f"), os.stat(server / "f")
    assert seen.st_size == real.st_size == 12345
    assert seen.st_mtime_ns == real.st_mtime_ns
    assert seen.st_ino == real.st_ino
    assert seen.st_blocks == real.st_blocks
    os.utime(client / "f", ns=(1_600_000_000_123_456_000, 1_500_000_000_654_321_000))
    after = os.stat(server / "f")
    assert (after.st_atime_ns, after.st_mtime_ns) == (1_600_000_000_123_456_000,
                                                      1_500_000_000_654_321_000)
    # touch -m leaves the access time alone (UTIME_OMIT) and sets only the modification time
    subprocess.run(["touch", "-m", "-d", "2001-02-03 04:05:06Z", str(client / "f")], check=True)
    after = os.stat(server / "f")
    assert after.st_atime_ns == 1_600_000_000_123_456_000
    assert after.st_mtime == 981173106


def test_fsync_succeeds_and_data_is_on_the_server(work: tuple[Path, Path]) -> None:
    client, server = work
    with open(client / "f", "wb") as f:
        f.write(b"durable")
        f.flush()
        os.fsync(f.fileno())
        assert (server / "f").read_bytes() == b"durable"


def test_hundred_mib_checksum_round_trip(work: tuple[Path, Path]) -> None:
    client, server = work
    written = hashlib.sha256()
    chunk = os.urandom(1 << 20)
    with open(client / "big", "wb") as f:
        for i in range(100):
            piece = bytes([i]) + chunk[1:]
            written.update(piece)
            f.write(piece)
    assert os.stat(client / "big").st_size == 100 << 20
    for path in (client / "big", server / "big"):
        read = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(4 << 20):
                read.update(block)
        assert read.hexdigest() == written.hexdigest()


def test_sqlite_database_in_wal_mode(work: tuple[Path, Path]) -> None:
    client, server = work
    db = sqlite3.connect(client / "app.db")
    try:
        assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        db.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        for batch in range(10):
            with db:
                db.executemany("INSERT INTO kv VALUES (?, ?)",
                               [(batch * 100 + i, f"v{i}") for i in range(100)])
        db.execute("DELETE FROM kv WHERE k % 2 = 0")
        db.commit()
        assert (server / "app.db-wal").exists()
    finally:
        db.close()
    again = sqlite3.connect(client / "app.db")
    try:
        assert again.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert again.execute("SELECT count(*) FROM kv").fetchone()[0] == 500
    finally:
        again.close()
    on_server = sqlite3.connect(server / "app.db")
    try:
        assert on_server.execute("SELECT count(*) FROM kv").fetchone()[0] == 500
    finally:
        on_server.close()


def test_new_files_belong_to_the_calling_user(work: tuple[Path, Path]) -> None:
    client, server = work
    os.chmod(client, 0o777)
    # chdir first: the pytest temporary directories above the mount are root-only
    script = ("import os,sys; os.chdir(sys.argv[1]); os.setgid(4321); os.setuid(1234); "
              "open('mine','w').write('x'); os.mkdir('dir'); os.symlink('mine', 'ln')")
    subprocess.run([sys.executable, "-c", script, str(client)], check=True)
    for name in ("mine", "dir", "ln"):
        st = os.lstat(server / name)
        assert (st.st_uid, st.st_gid) == (1234, 4321), name


def test_permissions_are_enforced_for_other_users(work: tuple[Path, Path]) -> None:
    client, _ = work
    (client / "secret").write_bytes(b"root only")
    os.chmod(client / "secret", 0o600)
    os.chmod(client, 0o755)
    script = "import os,sys; os.chdir(sys.argv[1]); os.setuid(1234); open('secret').read()"
    done = subprocess.run([sys.executable, "-c", script, str(client)],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "PermissionError" in done.stderr


def _fuse_pids(target: Path) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kubelet.mounters.nfs_fuse" in argv and os.fsencode(str(target)) in argv:
            pids.append(int(pid))
    return pids


def _kill_and_wait(pids: list[int]) -> None:
    """SIGKILL, then wait until each has exited (a zombie's cmdline is empty): death is not
    instant, and a busy machine shows it."""
    assert pids
    for pid in pids:
        os.kill(pid, 9)
    deadline = time.monotonic() + 10
    while any(_fuse_cmdline(pid) for pid in pids):
        assert time.monotonic() < deadline, f"{pids} still running"
        time.sleep(0.02)


def _fuse_cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_mount_whose_process_died_is_made_again(ganesha: GaneshaServer,
                                                  tmp_path: Path) -> None:
    # A node's container killed takes its FUSE processes with it and leaves the mounts:
    # they answer ECONNABORTED, then ENOTCONN, forever. The kubelet restarted in a new container (a new mounter
    # that did not make the mount) must see it dead and mount afresh on the same point.
    first = nfs.UserspaceNfsMounter()
    target = tmp_path / "m"
    target.mkdir()
    first.mount("127.0.0.1", str(ganesha.export_dir), str(target), ganesha.options)
    try:
        restarted = nfs.UserspaceNfsMounter()
        assert restarted.is_mounted(str(target))  # adopted while its process runs
        _kill_and_wait(_fuse_pids(target))
        with pytest.raises(OSError) as dead:
            os.stat(target)
        assert dead.value.errno in (errno.ECONNABORTED, errno.ENOTCONN)  # first, then after
        assert not first.is_mounted(str(target)) and not restarted.is_mounted(str(target))
        restarted.mount("127.0.0.1", str(ganesha.export_dir), str(target), ganesha.options)
        assert restarted.is_mounted(str(target))
        assert os.stat(target).st_ino == os.stat(ganesha.export_dir).st_ino
        with open("/proc/self/mountinfo") as table:
            assert sum(line.split()[4] == str(target) for line in table) == 1
    finally:
        nfs.UserspaceNfsMounter().unmount(str(target), lazy=True)
    assert nfs.mount_fstype(str(target)) is None


def test_a_restarted_kubelet_rebinds_pods_onto_a_fresh_mount(ganesha: GaneshaServer,
                                                            tmp_path: Path) -> None:
    # The lab's case: node container killed and started again. Its pods' volume directories
    # are binds of the dead mount; the kubelet's next sync of the pod must mount the export
    # again and bind the pod's directory to the live mount.
    (ganesha.export_dir / "kept").mkdir(exist_ok=True)
    (ganesha.export_dir / "kept" / "data").write_text("survives")
    source = nfs_volumes.NfsSource("127.0.0.1", str(ganesha.export_dir),
                                   tuple(ganesha.options), "kept", False, "userspace")
    pod = {"metadata": {"uid": "u-1", "name": "db", "namespace": "team-a"}}
    pod_dir = tmp_path / "root" / "pods" / "u-1"
    target = pod_dir / "volumes" / "kubernetes.io~nfs" / "data"
    target.mkdir(parents=True)
    before = nfs_volumes.NfsVolumes(tmp_path / "root")
    before.setup(pod, target, source)
    assert (target / "data").read_text() == "survives"
    before.close()
    _kill_and_wait(_fuse_pids(before.mount_point(before.shared_for(source))))
    after = nfs_volumes.NfsVolumes(tmp_path / "root")  # the kubelet in its new container
    try:
        with pytest.raises(OSError):
            os.stat(target / "data")
        after.setup(pod, target, source)
        assert (target / "data").read_text() == "survives"
    finally:
        after.release_pod(pod_dir)
        after.close()
    with open("/proc/self/mountinfo") as table:
        assert str(tmp_path) not in table.read()  # nothing of the pod or the export left
