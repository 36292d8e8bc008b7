"""Real NFS for the NFS mounter tests: NFS-Ganesha on loopback ports, rpcbind, FUSE mounts.

Each server is a `ganesha.nfsd` in the foreground on two free loopback ports (NFS and MOUNT),
exporting a fresh temporary directory over NFSv3 (rpcbind is required by Ganesha for v3; one
already running is reused, otherwise one is started for the session and stopped after).
Clients reach the server by explicit ports, so other servers registered with rpcbind do not
matter. Tests skip with the reason when a piece is missing, and fail instead when
STORAGELAB_REQUIRE_REAL=1. Everything started here is stopped in `finally`; mounts are
unmounted lazily.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelet.mounters import nfs

FSAL_DIRS = ("/usr/lib/x86_64-linux-gnu/ganesha", "/usr/lib/aarch64-linux-gnu/ganesha",
             "/usr/lib/ganesha", "/usr/lib64/ganesha")
GANESHA_CONFIG = """
NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = {nfs_port}; MNT_Port = {mount_port};
                 Bind_addr = 127.0.0.1; Enable_NLM = false; Enable_RQUOTA = false; }}
NFSV4 {{ Graceless = true; }}
EXPORT {{ Export_Id = 1; Path = {export}; Pseudo = /export; Access_Type = RW;
         Squash = No_Root_Squash; SecType = sys; Protocols = 3; Transports = TCP;
         FSAL {{ Name = VFS; }} }}
"""


def need(condition: bool, reason: str) -> None:
    """Skip when the environment lacks something, or fail when real parts are required."""
    if condition:
        return
    if os.environ.get("STORAGELAB_REQUIRE_REAL") == "1":
        pytest.fail(f"STORAGELAB_REQUIRE_REAL=1 but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    """A port free for both TCP and UDP on loopback (Ganesha binds both)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no free port pair found")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout}s")
        time.sleep(0.1)


@dataclass
class GaneshaServer:
    """One running Ganesha exporting `export_dir`; can be paused, stopped and restarted."""

    workdir: Path
    export_dir: Path
    nfs_port: int
    mount_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def options(self) -> list[str]:
        return [f"port={self.nfs_port}", f"mountport={self.mount_port}", "vers=3"]

    def start(self) -> None:
        conf = self.workdir / "ganesha.conf"
        conf.write_text(GANESHA_CONFIG.format(nfs_port=self.nfs_port, export=self.export_dir,
                                              mount_port=self.mount_port))
        argv = ["ganesha.nfsd", "-F", "-f", str(conf), "-L", str(self.workdir / "ganesha.log"),
                "-p", str(self.workdir / "ganesha.pid"), "-N", "NIV_EVENT"]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(lambda: _listening(self.nfs_port) and _listening(self.mount_port)
                      or self.process is None or self.process.poll() is not None, 30, "ganesha")
        finally:
            if self.process.poll() is not None:
                log = (self.workdir / "ganesha.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"ganesha exited at start: {log}")

    def stop(self) -> None:
        """Terminate (idempotent); the ports close, as when a server goes down."""
        if self.process is None:
            return
        process, self.process = self.process, None
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        _wait_for(lambda: not _listening(self.nfs_port), 10, "ganesha shutdown")

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but stops answering."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        # The stop reaches each thread on its own; a busy worker could still answer one call.
        _wait_for(lambda: self._all_threads_stopped(), 5, "SIGSTOP of ganesha")

    def _all_threads_stopped(self) -> bool:
        assert self.process is not None
        states = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                # the state follows the parenthesised command name in /proc/PID/task/TID/stat
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        return all(state in ("T", "t") for state in states)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def _rpcbind() -> Iterator[None]:
    """Reuse a running rpcbind, else run one for the session."""
    if _listening(111):
        yield
        return
    need(shutil.which("rpcbind") is not None, "rpcbind is not installed (Debian rpcbind)")
    os.makedirs("/run/rpcbind", exist_ok=True)
    process = subprocess.Popen(["rpcbind", "-w", "-f"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _listening(111), 10, "rpcbind")
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _check_environment() -> None:
    need(os.geteuid() == 0, "NFS mount tests need root (FUSE allow_other, Ganesha)")
    need(shutil.which("ganesha.nfsd") is not None,
         "NFS-Ganesha is not installed (Debian nfs-ganesha, nfs-ganesha-vfs)")
    need(any(Path(d, "libfsalvfs.so").exists() for d in FSAL_DIRS),
         "the Ganesha VFS backend is not installed (Debian nfs-ganesha-vfs)")
    reason = nfs.userspace_unavailable_reason()
    need(reason is None, f"userspace NFS client unavailable: {reason}")


@pytest.fixture(scope="session")
def ganesha_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Callable[[], GaneshaServer]]:
    """Start Ganesha servers on demand; all are stopped at the end of the session."""
    _check_environment()
    servers: list[GaneshaServer] = []

    def start() -> GaneshaServer:
        workdir = tmp_path_factory.mktemp("ganesha")
        export = workdir / "export"
        export.mkdir()
        server = GaneshaServer(workdir, export, _free_port(), _free_port())
        servers.append(server)
        server.start()
        return server

    with _rpcbind():
        try:
            yield start
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(scope="session")
def ganesha(ganesha_factory: Callable[[], GaneshaServer]) -> GaneshaServer:
    """The shared server for tests that do not disturb it."""
    return ganesha_factory()


@pytest.fixture(scope="session")
def mounter() -> nfs.UserspaceNfsMounter:
    return nfs.UserspaceNfsMounter()


@contextlib.contextmanager
def mounted(mounter: nfs.UserspaceNfsMounter, server: GaneshaServer, target: Path,
            extra: tuple[str, ...] = ()) -> Iterator[Path]:
    """Mount the server's export on `target` for the duration; always lazily unmounted."""
    target.mkdir(exist_ok=True)
    mounter.mount("127.0.0.1", str(server.export_dir), str(target), [*server.options, *extra])
    try:
        yield target
    finally:
        mounter.unmount(str(target), lazy=True)


@pytest.fixture(scope="module")
def mount(mounter: nfs.UserspaceNfsMounter, ganesha: GaneshaServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shared server's export, mounted through the userspace client for one module."""
    with mounted(mounter, ganesha, tmp_path_factory.mktemp("mnt") / "m") as target:
        yield target
