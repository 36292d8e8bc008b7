"""The userspace NFS client: an NFSv3 export served as a local FUSE file system through libnfs.

On machines whose kernel has no NFS client the kubelet spawns this module as a child process,
`python -m kubelet.mounters.nfs_fuse SERVER:/export MOUNTPOINT -o opts [--ready-fd N]`, and
waits for the line "ready" (or "error: ...") on the readiness descriptor. libfuse's
multithreaded loop calls the file system from several threads; each operation borrows one
libnfs context from a small pool (`nconnect`, default 4) so that requests from different
threads, including the kernel's readahead and background writes, are on the wire at the same
time, with I/O sizes up to 1 MiB. Every NFS call is time-boxed (`timeo`), a timed-out call
fails with EIO, and libnfs reconnects by itself once the server answers again. The process
daemonizes only when asked (`--daemonize`), and exits when the mount point is unmounted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import functools
import itertools
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from kubelet.mounters import libnfs, nfs

DEFAULT_TIMEO_DS = 100  # tenths of a second, as nfs(5)'s timeo; 10 s per NFS call
DEFAULT_CONNECTIONS = 4
MAX_IO = 1 << 20
SUBTYPE = "libnfs"  # the mount shows as fstype "fuse.libnfs"
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2

T = TypeVar("T")


@dataclass(frozen=True)
class FuseMountConfig:
    """Everything one userspace mount needs, derived once from a validated request."""

    connect: libnfs.ConnectOptions
    mountpoint: str
    source: str
    read_only: bool = False
    connections: int = DEFAULT_CONNECTIONS
    rsize: int = MAX_IO
    wsize: int = MAX_IO
    attr_timeout_s: float = 1.0


def config_from_request(request: nfs.MountRequest) -> FuseMountConfig:
    """Map nfs(5) options onto the userspace client; options it cannot honour are errors."""
    options = request.options
    version = options.version or "3"
    if not version.startswith("3"):
        raise nfs.InvalidMountOption(
            f"vers={version}", "the userspace NFS client speaks NFSv3 only (libnfs 4.0 cannot "
                               "write over NFSv4); use vers=3 or a kernel with NFS")
    timeo = int(options.get("timeo") or DEFAULT_TIMEO_DS)
    timeout_ms = max(1000, -(-timeo * 100 // 1000) * 1000)  # libnfs wants whole seconds
    port, mount_port = options.get("port"), options.get("mountport")
    actimeo = options.get("actimeo")
    connect = libnfs.ConnectOptions(
        server=request.server, export=request.export_path, version=3,
        nfs_port=int(port) if port else None, mount_port=int(mount_port) if mount_port else None,
        timeout_ms=timeout_ms)
    return FuseMountConfig(
        connect=connect, mountpoint=request.target, source=request.source,
        read_only=options.read_only,
        connections=int(options.get("nconnect") or DEFAULT_CONNECTIONS),
        rsize=int(options.get("rsize") or MAX_IO), wsize=int(options.get("wsize") or MAX_IO),
        attr_timeout_s=float(actimeo) if actimeo is not None else 1.0)


class ContextPool:
    """Up to `size` libnfs contexts, created on demand, each used by one thread at a time."""

    def __init__(self, options: libnfs.ConnectOptions, size: int) -> None:
        self.options = options
        self.size = size
        self._free: queue.LifoQueue[libnfs.Context] = queue.LifoQueue()
        self._all: list[libnfs.Context] = []
        self._lock = threading.Lock()
        # Waiting for a context is bounded too: every holder is itself time-boxed.
        self.wait_s = 2 * options.timeout_ms / 1000 + 1

    def start(self) -> libnfs.Context:
        """Connect the first context now, so a bad server or export fails the mount."""
        context = libnfs.connect(self.options)
        with self._lock:
            self._all.append(context)
        self._free.put(context)
        return context

    @contextlib.contextmanager
    def borrow(self) -> Iterator[libnfs.Context]:
        context = self._take()
        try:
            yield context
        finally:
            self._free.put(context)

    def _take(self) -> libnfs.Context:
        with contextlib.suppress(queue.Empty):
            return self._free.get_nowait()
        with self._lock:
            grow = len(self._all) < self.size
            if grow:
                self._all.append(context := libnfs.Context(self.options))
        if grow:
            return self._mount_new(context)
        try:
            return self._free.get(timeout=self.wait_s)
        except queue.Empty:
            raise OSError(errno.EIO, "no NFS connection became free in time") from None

    def _mount_new(self, context: libnfs.Context) -> libnfs.Context:
        try:
            context.mount()
        except libnfs.NfsError:
            with self._lock:
                self._all.remove(context)
            context.close()
            raise
        return context

    def close(self) -> None:
        with self._lock:
            contexts, self._all = self._all, []
        for context in contexts:
            context.close()


def _translated(function: Callable[..., T]) -> Callable[..., T]:
    """NFS failures become the errno the application sees; transport trouble becomes EIO."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except libnfs.NfsError as e:
            code = errno.EIO if e.is_transport or e.errno == errno.EINTR else e.errno
            raise OSError(code, str(e)) from e

    return wrapper


def _attrs(st: libnfs.NfsStat) -> dict[str, int]:
    return {"st_mode": st.mode, "st_ino": st.ino, "st_nlink": st.nlink, "st_uid": st.uid,
            "st_gid": st.gid, "st_rdev": st.rdev, "st_size": st.size,
            "st_blksize": st.blksize, "st_blocks": st.blocks, "st_atime": st.atime_ns,
            "st_mtime": st.mtime_ns, "st_ctime": st.ctime_ns}


class NfsOperations:
    """The FUSE operations (mfusepy's high-level, path-based API) on one NFS export."""

    use_ns = True  # times travel as integer nanoseconds

    def __init__(self, config: FuseMountConfig, pool: ContextPool,
                 on_ready: Callable[[], None] = lambda: None,
                 caller: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)) -> None:
        self.config = config
        self.pool = pool
        self._on_ready = on_ready
        self._caller = caller
        self._files: dict[int, libnfs.FileHandle] = {}
        self._dirty: set[int] = set()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self.rsize = config.rsize
        self.wsize = config.wsize

    # -- life cycle
    def init_with_config(self, conn: Any, config: Any) -> None:
        if conn is not None:
            conn.max_write = self.wsize
            conn.max_readahead = self.rsize
            conn.max_background = 16
        if config is not None:
            timeout = self.config.attr_timeout_s
            config.attr_timeout = config.entry_timeout = timeout
            config.negative_timeout = 0.0
            config.auto_cache = 1  # drop cached pages when the server's mtime or size moved
        self._on_ready()

    def destroy(self, path: str) -> None:
        self.pool.close()

    def limit_io(self, context: libnfs.Context) -> None:
        """Shrink I/O sizes to what the server allows (learned from the first context)."""
        self.rsize = min(self.rsize, context.readmax() or MAX_IO)
        self.wsize = min(self.wsize, context.writemax() or MAX_IO)

    # -- helpers
    def _handle(self, fh: int) -> libnfs.FileHandle:
        try:
            return self._files[fh]
        except KeyError:
            raise OSError(errno.EBADF, f"unknown file handle {fh}") from None

    def _register(self, handle: libnfs.FileHandle) -> int:
        with self._lock:
            number = next(self._numbers)
            self._files[number] = handle
        return number

    def _own(self, context: libnfs.Context, path: str) -> None:
        # Requests reach the server as root; give new objects to the caller, as a kernel
        # client would by sending the caller's credentials.
        uid, gid, _ = self._caller()
        if (uid, gid) != (0, 0):
            context.chown(path, uid, gid)

    # -- attributes
    @_translated
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        with self.pool.borrow() as context:
            if fh is not None and fh in self._files:
                return _attrs(context.fstat(self._files[fh]))
            return _attrs(context.stat(path))

    @_translated
    def chmod(self, path: str, mode: int) -> int:
        with self.pool.borrow() as context:
            context.chmod(path, mode & 0o7777)
        return 0

    @_translated
    def chown(self, path: str, uid: int, gid: int) -> int:
        with self.pool.borrow() as context:
            context.chown(path, uid, gid)
        return 0

    @_translated
    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        with self.pool.borrow() as context:
            if fh is not None and fh in self._files:
                context.ftruncate(self._files[fh], length)
            else:
                context.truncate(path, length)
        return 0

    @_translated
    def utimens_raw(self, path: str, times: tuple[tuple[int, int], tuple[int, int]] | None) -> int:
        """`utimensat` semantics: each (sec, nsec) may be UTIME_NOW or UTIME_OMIT."""
        with self.pool.borrow() as context:
            if times is None or all(ns == UTIME_NOW for _, ns in times):
                now = time.time_ns()
                context.utimes(path, now, now)
                return 0
            current = context.stat(path)
            atime, mtime = (_resolve(spec, old) for spec, old in
                            zip(times, (current.atime_ns, current.mtime_ns)))
            context.utimes(path, atime, mtime)
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        """mfusepy's plain form (nanoseconds); our glue calls `utimens_raw` instead."""
        if times is None:
            return self.utimens_raw(path, None)
        atime, mtime = (divmod(int(t), 1_000_000_000) for t in times)
        return self.utimens_raw(path, (atime, mtime))

    @_translated
    def statfs(self, path: str) -> dict[str, int]:
        with self.pool.borrow() as context:
            vfs = context.statvfs(path)
        return {"f_bsize": vfs.bsize, "f_frsize": vfs.frsize, "f_blocks": vfs.blocks,
                "f_bfree": vfs.bfree, "f_bavail": vfs.bavail, "f_files": vfs.files,
                "f_ffree": vfs.ffree, "f_favail": vfs.favail, "f_namemax": vfs.namemax}

    # -- names
    @_translated
    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        with self.pool.borrow() as context:
            entries = context.listdir(path)
        return [(e.name, {"st_mode": e.mode, "st_ino": e.inode}, 0) for e in entries]

    @_translated
    def readlink(self, path: str) -> str:
        with self.pool.borrow() as context:
            return context.readlink(path)

    @_translated
    def mkdir(self, path: str, mode: int) -> int:
        with self.pool.borrow() as context:
            context.mkdir(path, mode & 0o7777)
            self._own(context, path)
        return 0

    @_translated
    def mknod(self, path: str, mode: int, dev: int) -> int:
        with self.pool.borrow() as context:
            context.mknod(path, mode, dev)
            self._own(context, path)
        return 0

    @_translated
    def symlink(self, path: str, target: str) -> int:
        with self.pool.borrow() as context:
            context.symlink(target, path)
            self._own(context, path)
        return 0

    @_translated
    def link(self, path: str, existing: str) -> int:
        with self.pool.borrow() as context:
            context.link(existing, path)
        return 0

    @_translated
    def unlink(self, path: str) -> int:
        with self.pool.borrow() as context:
            context.unlink(path)
        return 0

    @_translated
    def rmdir(self, path: str) -> int:
        with self.pool.borrow() as context:
            context.rmdir(path)
        return 0

    @_translated
    def rename(self, old: str, new: str) -> int:
        with self.pool.borrow() as context:
            context.rename(old, new)
        return 0

    # -- files
    @_translated
    def create(self, path: str, mode: int, flags: int) -> int:
        nfs_flags = flags & (os.O_EXCL | os.O_TRUNC) | _sync_flag(flags)
        with self.pool.borrow() as context:
            handle = context.create(path, nfs_flags, mode & 0o7777)
            self._own(context, path)
        return self._register(handle)

    @_translated
    def open(self, path: str, flags: int) -> int:
        nfs_flags = flags & (os.O_ACCMODE | os.O_TRUNC) | _sync_flag(flags)
        with self.pool.borrow() as context:
            handle = context.open(path, nfs_flags)
        return self._register(handle)

    @_translated
    def read_into(self, path: str, buffer: int, size: int, offset: int, fh: int) -> int:
        """Read straight into libfuse's buffer; short only at end of file."""
        handle, done = self._handle(fh), 0
        with self.pool.borrow() as context:
            while done < size:
                count = context.pread_into(handle, offset + done, min(size - done, self.rsize),
                                           buffer + done)
                if count == 0:
                    break
                done += count
        return done

    @_translated
    def write_from(self, path: str, buffer: int, size: int, offset: int, fh: int) -> int:
        """Write straight from libfuse's buffer."""
        handle, done = self._handle(fh), 0
        with self.pool.borrow() as context:
            while done < size:
                done += context.pwrite(handle, offset + done, buffer + done,
                                       min(size - done, self.wsize))
        self._dirty.add(fh)
        return done

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        count = self.read_into(path, ctypes.addressof(buffer), size, offset, fh)
        return buffer.raw[:count]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        buffer = ctypes.create_string_buffer(data, len(data))
        return self.write_from(path, ctypes.addressof(buffer), len(data), offset, fh)

    @_translated
    def fsync(self, path: str, datasync: int, fh: int) -> int:
        with self.pool.borrow() as context:
            context.fsync(self._handle(fh))
        self._dirty.discard(fh)
        return 0

    def flush(self, path: str, fh: int) -> int:
        # Like the kernel client, close() commits what this handle wrote (close-to-open).
        if fh in self._dirty:
            return self.fsync(path, 0, fh)
        return 0

    @_translated
    def release(self, path: str, fh: int) -> int:
        with self._lock:
            handle = self._files.pop(fh, None)
            self._dirty.discard(fh)
        if handle is not None:
            with self.pool.borrow() as context:
                context.close_file(handle)
        return 0


def _resolve(spec: tuple[int, int], old_ns: int) -> int:
    seconds, nanos = spec
    if nanos == UTIME_NOW:
        return time.time_ns()
    if nanos == UTIME_OMIT:
        return old_ns
    return seconds * 1_000_000_000 + nanos


def _sync_flag(flags: int) -> int:
    return os.O_SYNC if flags & (os.O_SYNC | os.O_DSYNC) else 0


# ---------------------------------------------------------------- libfuse glue

def run_fuse(operations: NfsOperations, config: FuseMountConfig, debug: bool = False) -> None:
    """Mount and serve until unmounted; blocks. Needs libfuse3 through mfusepy."""
    import mfusepy

    class NfsFuse(mfusepy.FUSE):  # type: ignore[misc]
        """mfusepy's glue, with I/O going straight between libfuse's and libnfs's buffers and
        utimens keeping UTIME_NOW/UTIME_OMIT (mfusepy folds them into plain numbers)."""

        def read(self, path: bytes, buf: Any, size: int, offset: int, fip: Any) -> int:
            address = ctypes.cast(buf, ctypes.c_void_p).value or 0
            return operations.read_into(path.decode(errors="surrogateescape"), address, size,
                                        offset, fip.contents.fh)

        def write(self, path: bytes, buf: Any, size: int, offset: int, fip: Any) -> int:
            address = ctypes.cast(buf, ctypes.c_void_p).value or 0
            return operations.write_from(path.decode(errors="surrogateescape"), address, size,
                                         offset, fip.contents.fh)

        def utimens_fuse_3(self, path: bytes, buf: Any, fip: Any) -> int:
            times = None
            if buf:
                spec = buf.contents
                times = ((spec.actime.tv_sec, spec.actime.tv_nsec),
                         (spec.modtime.tv_sec, spec.modtime.tv_nsec))
            return operations.utimens_raw(path.decode(errors="surrogateescape"), times)

    options: dict[str, Any] = {
        "foreground": True, "debug": debug, "fsname": config.source, "subtype": SUBTYPE,
        "allow_other": True, "default_permissions": True, "use_ino": True,
    }
    if config.read_only:
        options["ro"] = True
    NfsFuse(operations, config.mountpoint, **options)


class Readiness:
    """Tells the parent, once, whether the mount came up ("ready") or why not."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self._sent = False

    def redirect(self, fd: int) -> None:
        """From now on report to `fd` (the daemonized child reports to its waiting parent)."""
        self.fd, self._sent = fd, False

    def send(self, line: str) -> None:
        if self._sent:
            return
        self._sent = True
        if self.fd is None:
            print(line, file=sys.stdout if line == "ready" else sys.stderr, flush=True)
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, (line.replace("\n", " ") + "\n").encode())
            os.close(self.fd)


def _daemonize(readiness: Readiness) -> None:
    """Fork away from the caller, who waits for the daemon's readiness line and exits with it."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        line = os.read(read_end, 4096).decode(errors="replace").strip()
        readiness.send(line or "error: the daemon exited before the mount was ready")
        os._exit(0 if line == "ready" else 1)
    os.close(read_end)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    readiness.redirect(write_end)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kubelet.mounters.nfs_fuse",
                                     description="Mount an NFSv3 export through libnfs + FUSE.")
    parser.add_argument("source", help="SERVER:/export")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", action="append", default=[],
                        help="nfs(5) mount options, comma separated")
    parser.add_argument("--ready-fd", type=int, default=None,
                        help="write 'ready' or 'error: ...' and a newline to this descriptor")
    parser.add_argument("--daemonize", action="store_true", help="detach once mounted")
    parser.add_argument("--debug", action="store_true", help="libfuse debug output")
    return parser.parse_args(argv)


def split_source(source: str) -> tuple[str, str]:
    """`host:/path` or `[v6addr]:/path` -> (host, path)."""
    if source.startswith("["):
        host, _, rest = source[1:].partition("]")
        return host, rest.removeprefix(":")
    host, separator, path = source.partition(":")
    if not separator:
        raise nfs.InvalidExportPath(source, "the source must look like SERVER:/export")
    return host, path


def serve(args: argparse.Namespace, readiness: Readiness) -> int:
    """Validate, connect, mount, serve; reports the outcome through `readiness`."""
    try:
        server, export = split_source(args.source)
        request = nfs.validate_request(server, export, args.mountpoint, args.options)
        config = config_from_request(request)
        pool = ContextPool(config.connect, config.connections)
        first = pool.start()
    except (nfs.NfsMountError, libnfs.NfsError, libnfs.LibNfsUnavailable) as e:
        readiness.send(f"error: {e}")
        return 1
    import mfusepy

    operations = NfsOperations(config, pool, on_ready=lambda: readiness.send("ready"),
                               caller=mfusepy.fuse_get_context)
    operations.limit_io(first)
    try:
        run_fuse(operations, config, debug=args.debug)
    except (RuntimeError, OSError) as e:
        readiness.send(f"error: FUSE mount on {config.mountpoint} failed: {e}")
        return 1
    finally:
        pool.close()
    readiness.send("error: the FUSE loop ended before the mount was ready")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    readiness = Readiness(args.ready_fd)
    if args.daemonize:
        _daemonize(readiness)
    return serve(args, readiness)


if __name__ == "__main__":
    sys.exit(main())
