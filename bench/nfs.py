"""Benchmark of the userspace NFS mount (libnfs + FUSE) against direct libnfs and local disk.

It starts its own NFS-Ganesha on loopback ports (and rpcbind when none runs), then moves the
same 1 GiB sequentially four ways: through the mounted volume, directly with libnfs's `nfs-cp`
(the anchor the userspace mount should reach at least half of), and to and from the local disk
the export lives on. It also creates 10,000 small files through the mount, directly through
libnfs, and on the local disk. Each result is one JSON line on stdout:
`{"metric", "value", "unit", "n", "anchor": {...}}`. Reads through the mount use a fresh mount
so they come from the server, not the kernel's page cache; the mount's writes include the
COMMIT that close() sends (nfs-cp sends none), and the local disk's include fsync.
Run: `python bench/nfs.py [--size-mib 1024] [--files 10000]` as root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubelet.mounters import libnfs, nfs

CHUNK = 1 << 20
TARGET_RATIO = 0.5
GANESHA_CONFIG = """
NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = {nfs_port}; MNT_Port = {mount_port};
                 Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = /export; Access_Type = RW;
         Squash = No_Root_Squash; SecType = sys; Protocols = 3; Transports = TCP;
         FSAL {{ Name = VFS; }} }}
"""


def emit(metric: str, value: float, unit: str, n: int, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 2), "unit": unit, "n": n,
                      **extra}), flush=True)


def _free_port() -> int:
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        port = int(tcp.getsockname()[1])
        udp.bind(("127.0.0.1", port))
        return port


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready in {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def _process(argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def nfs_server(workdir: Path) -> Iterator[tuple[Path, list[str]]]:
    """(export directory, mount options reaching it); rpcbind too when none is running."""
    export = workdir / "export"
    export.mkdir()
    ports = {"nfs_port": _free_port(), "mount_port": _free_port()}
    conf = workdir / "ganesha.conf"
    conf.write_text(GANESHA_CONFIG.format(export=export, **ports))
    with contextlib.ExitStack() as stack:
        if not _listening(111):
            os.makedirs("/run/rpcbind", exist_ok=True)
            stack.enter_context(_process(["rpcbind", "-w", "-f"]))
            _wait(lambda: _listening(111), "rpcbind")
        stack.enter_context(_process(
            ["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(workdir / "ganesha.log"),
             "-p", str(workdir / "ganesha.pid"), "-N", "NIV_EVENT"]))
        _wait(lambda: _listening(ports["nfs_port"]) and _listening(ports["mount_port"]),
              "ganesha")
        yield export, [f"port={ports['nfs_port']}", f"mountport={ports['mount_port']}", "vers=3"]


@contextlib.contextmanager
def fuse_mount(mounter: nfs.UserspaceNfsMounter, export: Path, options: list[str],
               target: Path) -> Iterator[Path]:
    target.mkdir(exist_ok=True)
    mounter.mount("127.0.0.1", str(export), str(target), options)
    try:
        yield target
    finally:
        mounter.unmount(str(target), lazy=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def write_file(path: Path, size: int, block: bytes, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for offset in range(0, size, len(block)):
            os.write(fd, block[: min(len(block), size - offset)])
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> int:
    total = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            total += len(chunk)
    return total


def evict(path: Path) -> None:
    """Drop a local file's pages so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def nfs_cp(source: str, destination: str) -> None:
    subprocess.run(["nfs-cp", source, destination], check=True, capture_output=True)


def nfs_url(export: Path, name: str, options: list[str]) -> str:
    values = dict(option.split("=", 1) for option in options)
    return (f"nfs://127.0.0.1{export}/{name}?version=3&nfsport={values['port']}"
            f"&mountport={values['mountport']}")


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def sequential(args: argparse.Namespace, work: Path, export: Path, options: list[str],
               mounter: nfs.UserspaceNfsMounter) -> None:
    size = args.size_mib << 20
    block = os.urandom(CHUNK)
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        source = shm / "source"
        write_file(source, size, block, sync=False)
        direct_w = timed(lambda: nfs_cp(str(source), nfs_url(export, "direct", options)))
        direct_r = timed(lambda: nfs_cp(nfs_url(export, "direct", options), str(shm / "back")))
    finally:
        shutil.rmtree(shm)
    with fuse_mount(mounter, export, options, work / "w") as mount:
        fuse_w = timed(lambda: write_file(mount / "fuse", size, block, sync=False))
    with fuse_mount(mounter, export, options, work / "r") as mount:
        fuse_r = timed(lambda: read_file(mount / "fuse"))
    local_w = timed(lambda: write_file(work / "local", size, block, sync=True))
    evict(work / "local")
    local_r = timed(lambda: read_file(work / "local"))
    report_sequential(size, {"write": (fuse_w, direct_w, local_w),
                             "read": (fuse_r, direct_r, local_r)})


def report_sequential(size: int, timings: dict[str, tuple[float, float, float]]) -> None:
    n = size >> 20
    for kind, (fuse, direct, local) in timings.items():
        emit(f"nfs.libnfs_direct.seq_{kind}", mbps(size, direct), "MB/s", 1, mib=n,
             tool="nfs-cp")
        emit(f"nfs.local_disk.seq_{kind}", mbps(size, local), "MB/s", 1, mib=n)
        emit(f"nfs.fuse_mount.seq_{kind}", mbps(size, fuse), "MB/s", 1, mib=n, anchor={
            "metric": f"nfs.libnfs_direct.seq_{kind}", "value": round(mbps(size, direct), 2),
            "ratio": round(direct / fuse, 3), "target_ratio": TARGET_RATIO,
            "local_disk": round(mbps(size, local), 2), "local_ratio": round(local / fuse, 3)})


def small_files(count: int, mount: Path, export: Path, options: list[str], work: Path) -> None:
    payload = b"x" * 100

    def through(directory: Path) -> None:
        directory.mkdir()
        for i in range(count):
            with open(directory / f"f{i:05d}", "wb") as f:
                f.write(payload)

    fuse = timed(lambda: through(mount / "small"))
    local = timed(lambda: through(work / "small"))
    direct = timed(lambda: _libnfs_small(count, export, options, payload))
    emit("nfs.libnfs_direct.create_rate", count / direct, "files/s", count)
    emit("nfs.local_disk.create_rate", count / local, "files/s", count)
    emit("nfs.fuse_mount.create_rate", count / fuse, "files/s", count, anchor={
        "metric": "nfs.libnfs_direct.create_rate", "value": round(count / direct, 2),
        "ratio": round(direct / fuse, 3), "local_disk": round(count / local, 2)})


def _libnfs_small(count: int, export: Path, options: list[str], payload: bytes) -> None:
    values = dict(option.split("=", 1) for option in options)
    context = libnfs.connect(libnfs.ConnectOptions(
        "127.0.0.1", str(export), nfs_port=int(values["port"]),
        mount_port=int(values["mountport"])))
    try:
        context.mkdir("/small-direct", 0o755)
        for i in range(count):
            handle = context.create(f"/small-direct/f{i:05d}", os.O_TRUNC, 0o644)
            context.pwrite(handle, 0, payload, len(payload))
            context.close_file(handle)
    finally:
        context.close()


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (FUSE allow_other, Ganesha)"
    for tool in ("ganesha.nfsd", "rpcbind", "nfs-cp"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return nfs.userspace_unavailable_reason()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    reason = unavailable()
    if reason is not None:
        print(json.dumps({"metric": "nfs", "skipped": reason}), flush=True)
        return 0
    mounter = nfs.UserspaceNfsMounter()
    with tempfile.TemporaryDirectory(prefix="nfs-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        with nfs_server(work) as (export, options):
            sequential(args, work, export, options, mounter)
            with fuse_mount(mounter, export, options, work / "s") as mount:
                small_files(args.files, mount, export, options, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
