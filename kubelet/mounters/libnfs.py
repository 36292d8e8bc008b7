"""A small ctypes binding to libnfs (Debian `libnfs13`, libnfs 4.0), the userspace NFS client.

The kubelet needs an NFS client on machines whose kernel has none; libnfs speaks NFSv3 from
userspace. This module wraps exactly the synchronous calls the FUSE filesystem needs, one
`Context` per connection, and turns libnfs's `-errno` results into `OSError`s carrying the errno
and libnfs's own message. ctypes releases the GIL while a call runs, so several contexts used
from several threads really overlap on the wire. Every call is time-boxed by the context's RPC
timeout (`nfs_set_timeout`), so a server that stops answering gives `ETIMEDOUT`/`EIO` instead
of a hang.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

LIBRARY_NAME = "libnfs.so.13"

# Errors after which a context's connection is suspect and should be rebuilt.
TRANSPORT_ERRNOS = frozenset(
    {errno.ETIMEDOUT, errno.EIO, errno.ECONNREFUSED, errno.ECONNRESET, errno.ENOTCONN,
     errno.EPIPE, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EFAULT}
)


class LibNfsUnavailable(RuntimeError):
    """libnfs.so.13 cannot be loaded on this machine."""


class NfsError(OSError):
    """An NFS call failed; `errno` is the POSIX error, `strerror` libnfs's explanation."""

    @property
    def is_transport(self) -> bool:
        """True when the failure says more about the connection than about the file."""
        return self.errno in TRANSPORT_ERRNOS


class _Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
        "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class _StatVfs64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
        "f_favail", "f_fsid", "f_flag", "f_namemax")]


class _TimeVal(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _DirEnt(ctypes.Structure):
    pass


_DirEnt._fields_ = [
    ("next", ctypes.POINTER(_DirEnt)), ("name", ctypes.c_char_p), ("inode", ctypes.c_uint64),
    ("type", ctypes.c_uint32), ("mode", ctypes.c_uint32), ("size", ctypes.c_uint64),
    ("atime", _TimeVal), ("mtime", _TimeVal), ("ctime", _TimeVal),
    ("uid", ctypes.c_uint32), ("gid", ctypes.c_uint32), ("nlink", ctypes.c_uint32),
    ("dev", ctypes.c_uint64), ("rdev", ctypes.c_uint64), ("blksize", ctypes.c_uint64),
    ("blocks", ctypes.c_uint64), ("used", ctypes.c_uint64),
    ("atime_nsec", ctypes.c_uint32), ("mtime_nsec", ctypes.c_uint32),
    ("ctime_nsec", ctypes.c_uint32),
]

# NFSv3 ftype3 -> the S_IFMT bits; libnfs reports `mode` as permission bits only in dirents.
_FTYPE_TO_IFMT = {1: 0o100000, 2: 0o040000, 3: 0o060000, 4: 0o020000, 5: 0o120000,
                  6: 0o140000, 7: 0o010000}


@dataclass(frozen=True)
class NfsStat:
    """The attributes of one file as the server reports them (times in nanoseconds)."""

    mode: int
    ino: int
    nlink: int
    uid: int
    gid: int
    rdev: int
    size: int
    blksize: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int


@dataclass(frozen=True)
class NfsStatVfs:
    """File system capacity, as `statvfs(2)` reports it."""

    bsize: int
    frsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    favail: int
    namemax: int


@dataclass(frozen=True)
class DirEntry:
    """One name in a directory listing with its type bits (`S_IFDIR` ...) and inode."""

    name: str
    inode: int
    mode: int


@dataclass(frozen=True)
class ConnectOptions:
    """Where and how one context connects: NFSv3 on a server, optionally on fixed ports."""

    server: str
    export: str
    version: int = 3
    nfs_port: int | None = None
    mount_port: int | None = None
    timeout_ms: int = 10_000
    uid: int = 0
    gid: int = 0

    def url(self) -> str:
        """The nfs:// URL that carries the settings libnfs 4.0 only accepts through URLs."""
        host = f"[{self.server}]" if ":" in self.server else self.server
        query = [f"version={self.version}", f"uid={self.uid}", f"gid={self.gid}"]
        if self.nfs_port is not None:
            query.append(f"nfsport={self.nfs_port}")
        if self.mount_port is not None:
            query.append(f"mountport={self.mount_port}")
        return f"nfs://{host}{quote(self.export, safe='/')}?{'&'.join(query)}"


_VOIDP = ctypes.c_void_p
_CHARP = ctypes.c_char_p
_INT = ctypes.c_int
_U64 = ctypes.c_uint64
# name -> (restype, argtypes); each names one libnfs 4.0 function we call.
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "nfs_init_context": (_VOIDP, []),
    "nfs_destroy_context": (None, [_VOIDP]),
    "nfs_get_error": (_CHARP, [_VOIDP]),
    "nfs_parse_url_dir": (_VOIDP, [_VOIDP, _CHARP]),
    "nfs_destroy_url": (None, [_VOIDP]),
    "nfs_set_timeout": (None, [_VOIDP, _INT]),
    "nfs_set_autoreconnect": (None, [_VOIDP, _INT]),
    "nfs_set_dircache": (None, [_VOIDP, _INT]),
    "nfs_set_tcp_syncnt": (None, [_VOIDP, _INT]),
    "nfs_umask": (ctypes.c_uint16, [_VOIDP, ctypes.c_uint16]),
    "nfs_mount": (_INT, [_VOIDP, _CHARP, _CHARP]),
    "nfs_get_readmax": (_U64, [_VOIDP]),
    "nfs_get_writemax": (_U64, [_VOIDP]),
    "nfs_stat64": (_INT, [_VOIDP, _CHARP, ctypes.POINTER(_Stat64)]),
    "nfs_lstat64": (_INT, [_VOIDP, _CHARP, ctypes.POINTER(_Stat64)]),
    "nfs_fstat64": (_INT, [_VOIDP, _VOIDP, ctypes.POINTER(_Stat64)]),
    "nfs_open": (_INT, [_VOIDP, _CHARP, _INT, ctypes.POINTER(_VOIDP)]),
    "nfs_create": (_INT, [_VOIDP, _CHARP, _INT, _INT, ctypes.POINTER(_VOIDP)]),
    "nfs_close": (_INT, [_VOIDP, _VOIDP]),
    "nfs_pread": (_INT, [_VOIDP, _VOIDP, _U64, _U64, _VOIDP]),
    "nfs_pwrite": (_INT, [_VOIDP, _VOIDP, _U64, _U64, _VOIDP]),
    "nfs_fsync": (_INT, [_VOIDP, _VOIDP]),
    "nfs_truncate": (_INT, [_VOIDP, _CHARP, _U64]),
    "nfs_ftruncate": (_INT, [_VOIDP, _VOIDP, _U64]),
    "nfs_mkdir2": (_INT, [_VOIDP, _CHARP, _INT]),
    "nfs_rmdir": (_INT, [_VOIDP, _CHARP]),
    "nfs_unlink": (_INT, [_VOIDP, _CHARP]),
    "nfs_rename": (_INT, [_VOIDP, _CHARP, _CHARP]),
    "nfs_link": (_INT, [_VOIDP, _CHARP, _CHARP]),
    "nfs_symlink": (_INT, [_VOIDP, _CHARP, _CHARP]),
    "nfs_readlink": (_INT, [_VOIDP, _CHARP, ctypes.c_char_p, _INT]),
    "nfs_mknod": (_INT, [_VOIDP, _CHARP, _INT, _INT]),
    "nfs_chmod": (_INT, [_VOIDP, _CHARP, _INT]),
    "nfs_lchown": (_INT, [_VOIDP, _CHARP, _INT, _INT]),
    "nfs_lutimes": (_INT, [_VOIDP, _CHARP, ctypes.POINTER(_TimeVal)]),
    "nfs_opendir": (_INT, [_VOIDP, _CHARP, ctypes.POINTER(_VOIDP)]),
    "nfs_readdir": (ctypes.POINTER(_DirEnt), [_VOIDP, _VOIDP]),
    "nfs_closedir": (None, [_VOIDP, _VOIDP]),
    "nfs_statvfs64": (_INT, [_VOIDP, _CHARP, ctypes.POINTER(_StatVfs64)]),
}


@functools.cache
def library() -> ctypes.CDLL:
    """Load libnfs once, with argument types declared so ctypes never guesses a width."""
    try:
        lib = ctypes.CDLL(LIBRARY_NAME, use_errno=True)
    except OSError as e:
        raise LibNfsUnavailable(f"{LIBRARY_NAME} not loadable (install Debian libnfs13): {e}") from e
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def available() -> bool:
    """True when libnfs can be loaded here."""
    try:
        library()
    except LibNfsUnavailable:
        return False
    return True


def _encode(path: str) -> bytes:
    # surrogateescape keeps names that are not valid UTF-8 byte-exact end to end.
    return path.encode("utf-8", "surrogateescape")


def _stat_from(raw: _Stat64) -> NfsStat:
    return NfsStat(
        mode=raw.mode, ino=raw.ino, nlink=raw.nlink, uid=raw.uid, gid=raw.gid, rdev=raw.rdev,
        size=raw.size, blksize=raw.blksize, blocks=raw.blocks,
        atime_ns=raw.atime * 1_000_000_000 + raw.atime_nsec,
        mtime_ns=raw.mtime * 1_000_000_000 + raw.mtime_nsec,
        ctime_ns=raw.ctime * 1_000_000_000 + raw.ctime_nsec,
    )


class FileHandle:
    """An open NFS file; NFSv3 handles are plain data, usable from any context of the mount."""

    def __init__(self, pointer: int, path: str) -> None:
        self.pointer = pointer
        self.path = path


class Context:
    """One libnfs connection. Not thread-safe: one thread at a time (see `ContextPool`)."""

    def __init__(self, options: ConnectOptions) -> None:
        self.options = options
        self._lib = library()
        pointer = self._lib.nfs_init_context()
        if not pointer:
            raise NfsError(errno.ENOMEM, "nfs_init_context failed")
        self._nfs: int | None = pointer

    def _check(self, result: int, what: str) -> int:
        if result >= 0:
            return result
        message = self._lib.nfs_get_error(self._nfs) or b""
        code = -result
        raise NfsError(code, f"{what}: {message.decode(errors='replace') or os.strerror(code)}")

    @property
    def nfs(self) -> int:
        if self._nfs is None:
            raise NfsError(errno.EBADF, "context is closed")
        return self._nfs

    def mount(self) -> None:
        """Connect and mount the export; applies timeout, umask 0 and no directory cache."""
        lib, nfs, opts = self._lib, self.nfs, self.options
        url = lib.nfs_parse_url_dir(nfs, opts.url().encode())
        if not url:
            raise NfsError(errno.EINVAL, f"bad NFS URL: {lib.nfs_get_error(nfs)!r}")
        lib.nfs_destroy_url(url)
        lib.nfs_set_timeout(nfs, opts.timeout_ms)
        # Several contexts share one mount: a per-context directory cache would go stale.
        lib.nfs_set_dircache(nfs, 0)
        lib.nfs_umask(nfs, 0)
        lib.nfs_set_tcp_syncnt(nfs, 2)
        self._check(lib.nfs_mount(nfs, opts.server.encode(), _encode(opts.export)), "mount")

    def close(self) -> None:
        """Destroy the context; idempotent."""
        if self._nfs is not None:
            self._lib.nfs_destroy_context(self._nfs)
            self._nfs = None

    def readmax(self) -> int:
        return int(self._lib.nfs_get_readmax(self.nfs))

    def writemax(self) -> int:
        return int(self._lib.nfs_get_writemax(self.nfs))

    def stat(self, path: str, follow: bool = False) -> NfsStat:
        raw = _Stat64()
        call = self._lib.nfs_stat64 if follow else self._lib.nfs_lstat64
        self._check(call(self.nfs, _encode(path), ctypes.byref(raw)), f"stat {path}")
        return _stat_from(raw)

    def fstat(self, handle: FileHandle) -> NfsStat:
        raw = _Stat64()
        self._check(self._lib.nfs_fstat64(self.nfs, handle.pointer, ctypes.byref(raw)),
                    f"fstat {handle.path}")
        return _stat_from(raw)

    def open(self, path: str, flags: int) -> FileHandle:
        pointer = _VOIDP()
        self._check(self._lib.nfs_open(self.nfs, _encode(path), flags, ctypes.byref(pointer)),
                    f"open {path}")
        return FileHandle(int(pointer.value or 0), path)

    def create(self, path: str, flags: int, mode: int) -> FileHandle:
        pointer = _VOIDP()
        result = self._lib.nfs_create(self.nfs, _encode(path), flags, mode, ctypes.byref(pointer))
        self._check(result, f"create {path}")
        return FileHandle(int(pointer.value or 0), path)

    def close_file(self, handle: FileHandle) -> None:
        if handle.pointer:
            pointer, handle.pointer = handle.pointer, 0
            self._check(self._lib.nfs_close(self.nfs, pointer), f"close {handle.path}")

    def pread_into(self, handle: FileHandle, offset: int, size: int, buffer: int) -> int:
        """Read up to `size` bytes at `offset` into the memory at address `buffer`."""
        result = self._lib.nfs_pread(self.nfs, handle.pointer, offset, size, buffer)
        return self._check(result, f"read {handle.path}")

    def pread(self, handle: FileHandle, offset: int, size: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        count = self.pread_into(handle, offset, size, ctypes.addressof(buffer))
        return buffer.raw[:count]

    def pwrite(self, handle: FileHandle, offset: int, data: bytes | int, size: int) -> int:
        """Write `size` bytes from `data` (bytes or an address) at `offset`."""
        result = self._lib.nfs_pwrite(self.nfs, handle.pointer, offset, size, data)
        return self._check(result, f"write {handle.path}")

    def fsync(self, handle: FileHandle) -> None:
        """COMMIT the file's unstable writes to the server's stable storage."""
        self._check(self._lib.nfs_fsync(self.nfs, handle.pointer), f"fsync {handle.path}")

    def truncate(self, path: str, length: int) -> None:
        self._check(self._lib.nfs_truncate(self.nfs, _encode(path), length), f"truncate {path}")

    def ftruncate(self, handle: FileHandle, length: int) -> None:
        self._check(self._lib.nfs_ftruncate(self.nfs, handle.pointer, length),
                    f"truncate {handle.path}")

    def mkdir(self, path: str, mode: int) -> None:
        self._check(self._lib.nfs_mkdir2(self.nfs, _encode(path), mode), f"mkdir {path}")

    def rmdir(self, path: str) -> None:
        self._check(self._lib.nfs_rmdir(self.nfs, _encode(path)), f"rmdir {path}")

    def unlink(self, path: str) -> None:
        self._check(self._lib.nfs_unlink(self.nfs, _encode(path)), f"unlink {path}")

    def rename(self, old: str, new: str) -> None:
        self._check(self._lib.nfs_rename(self.nfs, _encode(old), _encode(new)), f"rename {old}")

    def link(self, existing: str, new: str) -> None:
        self._check(self._lib.nfs_link(self.nfs, _encode(existing), _encode(new)), f"link {new}")

    def symlink(self, target: str, path: str) -> None:
        self._check(self._lib.nfs_symlink(self.nfs, _encode(target), _encode(path)),
                    f"symlink {path}")

    def readlink(self, path: str) -> str:
        buffer = ctypes.create_string_buffer(4097)
        self._check(self._lib.nfs_readlink(self.nfs, _encode(path), buffer, 4096),
                    f"readlink {path}")
        return buffer.value.decode("utf-8", "surrogateescape")

    def mknod(self, path: str, mode: int, dev: int) -> None:
        self._check(self._lib.nfs_mknod(self.nfs, _encode(path), mode, dev), f"mknod {path}")

    def chmod(self, path: str, mode: int) -> None:
        self._check(self._lib.nfs_chmod(self.nfs, _encode(path), mode), f"chmod {path}")

    def chown(self, path: str, uid: int, gid: int) -> None:
        """Change owner without following a symlink; -1 leaves that id unchanged."""
        self._check(self._lib.nfs_lchown(self.nfs, _encode(path), uid, gid), f"chown {path}")

    def utimes(self, path: str, atime_ns: int, mtime_ns: int) -> None:
        """Set access and modification times (microsecond precision on the wire)."""
        times = (_TimeVal * 2)(*(_TimeVal(t // 1_000_000_000, (t % 1_000_000_000) // 1000)
                                 for t in (atime_ns, mtime_ns)))
        self._check(self._lib.nfs_lutimes(self.nfs, _encode(path), times), f"utimes {path}")

    def listdir(self, path: str) -> list[DirEntry]:
        """All entries of a directory, `.` and `..` included, from READDIRPLUS."""
        directory = _VOIDP()
        self._check(self._lib.nfs_opendir(self.nfs, _encode(path), ctypes.byref(directory)),
                    f"opendir {path}")
        try:
            return list(self._entries(directory))
        finally:
            self._lib.nfs_closedir(self.nfs, directory)

    def _entries(self, directory: ctypes.c_void_p) -> Iterator[DirEntry]:
        while entry := self._lib.nfs_readdir(self.nfs, directory):
            item = entry.contents
            type_bits = _FTYPE_TO_IFMT.get(item.type, 0)
            name = (item.name or b"").decode("utf-8", "surrogateescape")
            yield DirEntry(name=name, inode=item.inode, mode=type_bits | (item.mode & 0o7777))

    def statvfs(self, path: str) -> NfsStatVfs:
        raw = _StatVfs64()
        self._check(self._lib.nfs_statvfs64(self.nfs, _encode(path), ctypes.byref(raw)),
                    f"statvfs {path}")
        return NfsStatVfs(bsize=raw.f_bsize, frsize=raw.f_frsize, blocks=raw.f_blocks,
                          bfree=raw.f_bfree, bavail=raw.f_bavail, files=raw.f_files,
                          ffree=raw.f_ffree, favail=raw.f_favail, namemax=raw.f_namemax)


def connect(options: ConnectOptions) -> Context:
    """A mounted context, or NfsError (the half-built context is destroyed)."""
    context = Context(options)
    try:
        context.mount()
    except BaseException:
        context.close()
        raise
    return context
