"""How the kubelet mounts an NFS volume: one interface, a kernel and a userspace implementation.

A PersistentVolume's `nfs: {server, path}` and its `mountOptions` arrive here from API objects
that any user with PV rights can write, so everything is validated strictly before anything
runs: the server must be a hostname or an IP address, the export an absolute path of plain
characters, and each option must be on an allow-list of nfs(5) options with a well-formed
value. Failures raise a typed error naming the bad part. Nothing ever goes through a shell.
Where the kernel has an NFS client, `KernelNfsMounter` runs `mount -t nfs4|nfs` with an
argument list; elsewhere `UserspaceNfsMounter` spawns the libnfs + FUSE process of
`kubelet.mounters.nfs_fuse` and waits for it to report readiness. Every call is time-boxed and
unmounting is lazy by default, so a dead server never wedges the kubelet.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

MOUNT_TIMEOUT_S = 60.0
UNMOUNT_TIMEOUT_S = 30.0
FUSE_FSTYPE = "fuse.libnfs"
Preference = Literal["auto", "kernel", "userspace"]


class NfsMountError(Exception):
    """Base of every error this module raises."""


class InvalidMountRequest(NfsMountError, ValueError):
    """Some part of the request is malformed; `part` names it (server, path, option, target)."""

    def __init__(self, part: str, value: str, reason: str) -> None:
        super().__init__(f"invalid NFS {part} {value!r}: {reason}")
        self.part = part
        self.value = value
        self.reason = reason


class InvalidServer(InvalidMountRequest):
    def __init__(self, value: str, reason: str) -> None:
        super().__init__("server", value, reason)


class InvalidExportPath(InvalidMountRequest):
    def __init__(self, value: str, reason: str) -> None:
        super().__init__("export path", value, reason)


class InvalidMountOption(InvalidMountRequest):
    def __init__(self, value: str, reason: str) -> None:
        super().__init__("mount option", value, reason)


class InvalidTarget(InvalidMountRequest):
    def __init__(self, value: str, reason: str) -> None:
        super().__init__("mount target", value, reason)


class MounterUnavailable(NfsMountError):
    """This machine cannot mount NFS the requested way; the message says what is missing."""


class MountFailed(NfsMountError):
    """The mount (or unmount) was attempted and failed; the message carries the tool's words."""


class MountTimeout(MountFailed):
    """The mount (or unmount) did not finish within its time box."""


# ---------------------------------------------------------------- validation (pure)

_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PATH_CHARS = re.compile(r"^[A-Za-z0-9._/@+=~-]+$")


def validate_server(server: str) -> str:
    """An IPv4/IPv6 address or an RFC 1123 hostname, returned without brackets or final dot."""
    candidate = server[1:-1] if server.startswith("[") and server.endswith("]") else server
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    if not candidate or len(candidate) > 253:
        raise InvalidServer(server, "must be a hostname or an IP address")
    labels = candidate.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidServer(server, "must be a hostname (letters, digits, '-', '.') or an IP "
                                    "address; other characters are not allowed")
    if labels[-1].isdigit():
        raise InvalidServer(server, "looks like an IP address but is not a valid one")
    return ".".join(labels)


def validate_export_path(path: str) -> str:
    """An absolute, normalized path made of plain characters (no shell or URL specials)."""
    if not path.startswith("/"):
        raise InvalidExportPath(path, "must be an absolute path")
    if len(path) > 1024:
        raise InvalidExportPath(path, "is longer than 1024 characters")
    if not _PATH_CHARS.match(path):
        raise InvalidExportPath(path, "may contain only letters, digits and . _ / @ + = ~ -")
    if ".." in path.split("/"):
        raise InvalidExportPath(path, "must not contain '..'")
    return "/" + "/".join(part for part in path.split("/") if part and part != ".")


def validate_target(target: str) -> str:
    """The local mount point: an absolute path without NUL or newline, normalized."""
    if not target.startswith("/"):
        raise InvalidTarget(target, "must be an absolute path")
    if "\0" in target or "\n" in target:
        raise InvalidTarget(target, "must not contain NUL or newline characters")
    return os.path.normpath(target)


def _int_in(low: int, high: int) -> Callable[[str], bool]:
    return lambda value: value.isdigit() and low <= int(value) <= high


def _one_of(*choices: str) -> Callable[[str], bool]:
    return lambda value: value in choices


# nfs(5) options a volume may carry. Flags take no value; the rest validate their value.
FLAG_OPTIONS = frozenset({
    "ro", "rw", "hard", "soft", "intr", "nointr", "sync", "async", "atime", "noatime",
    "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "exec", "noexec",
    "suid", "nosuid", "dev", "nodev", "lock", "nolock", "ac", "noac", "cto", "nocto",
    "sharecache", "nosharecache", "resvport", "noresvport", "tcp", "rdirplus", "nordirplus",
    "fsc", "nofsc", "posix", "noposix", "acl", "noacl",
})
VALUE_OPTIONS: dict[str, Callable[[str], bool]] = {
    "vers": _one_of("3", "4", "4.0", "4.1", "4.2"),
    "nfsvers": _one_of("3", "4", "4.0", "4.1", "4.2"),
    "minorversion": _one_of("0", "1", "2"),
    "proto": _one_of("tcp", "tcp6"),
    "mountproto": _one_of("tcp", "tcp6"),
    "port": _int_in(1, 65535),
    "mountport": _int_in(1, 65535),
    "mountvers": _one_of("3"),
    "timeo": _int_in(1, 6000),
    "retrans": _int_in(0, 100),
    "retry": _int_in(0, 10000),
    "rsize": _int_in(1024, 1 << 20),
    "wsize": _int_in(1024, 1 << 20),
    "nconnect": _int_in(1, 16),
    "actimeo": _int_in(0, 3600),
    "acregmin": _int_in(0, 3600),
    "acregmax": _int_in(0, 3600),
    "acdirmin": _int_in(0, 3600),
    "acdirmax": _int_in(0, 3600),
    "sec": _one_of("sys", "none"),
    "lookupcache": _one_of("all", "none", "pos", "positive"),
    "local_lock": _one_of("none", "all", "flock", "posix"),
}


@dataclass(frozen=True)
class NfsOptions:
    """Mount options validated into a canonical form; `raw` keeps them for `mount -o`."""

    raw: tuple[str, ...] = ()
    values: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        for name, value in self.values:
            if name == key:
                return value
        return None

    def has(self, flag: str) -> bool:
        return flag in self.raw

    @property
    def version(self) -> str | None:
        return self.get("vers") or self.get("nfsvers")

    @property
    def read_only(self) -> bool:
        return self.has("ro") and not self.has("rw")


def parse_options(options: Sequence[str]) -> NfsOptions:
    """Validate options (each item may hold several, comma-separated) against the allow-list."""
    raw: list[str] = []
    values: list[tuple[str, str]] = []
    for item in options:
        for option in (part.strip() for part in item.split(",")):
            if not option:
                continue
            _check_option(option)
            raw.append(option)
            if "=" in option:
                name, _, value = option.partition("=")
                values = [pair for pair in values if pair[0] != name] + [(name, value)]
    return NfsOptions(raw=tuple(raw), values=tuple(values))


def _check_option(option: str) -> None:
    if not re.match(r"^[a-z_]+(=[A-Za-z0-9.]+)?$", option):
        raise InvalidMountOption(option, "must look like 'name' or 'name=value' with plain "
                                         "letters, digits and dots")
    name, has_value, value = option.partition("=")
    if not has_value:
        if name not in FLAG_OPTIONS:
            reason = "needs a value" if name in VALUE_OPTIONS else "is not an allowed option"
            raise InvalidMountOption(option, reason)
        return
    check = VALUE_OPTIONS.get(name)
    if check is None:
        reason = "takes no value" if name in FLAG_OPTIONS else "is not an allowed option"
        raise InvalidMountOption(option, reason)
    if not check(value):
        raise InvalidMountOption(option, f"value {value!r} is out of range for {name}")


@dataclass(frozen=True)
class MountRequest:
    """One validated request: what to mount, where, with which options."""

    server: str
    export_path: str
    target: str
    options: NfsOptions = field(default_factory=NfsOptions)

    @property
    def source(self) -> str:
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"{host}:{self.export_path}"


def validate_request(server: str, export_path: str, target: str,
                     options: Sequence[str]) -> MountRequest:
    """All checks at once, in the order a reader of the error would expect."""
    return MountRequest(server=validate_server(server),
                        export_path=validate_export_path(export_path),
                        target=validate_target(target), options=parse_options(options))


# ---------------------------------------------------------------- mount table

def _unescape_mountinfo(field_text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def mount_fstype(target: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The file system type mounted at `target`, read from the mount table (never stat-ing it,
    which could block on a dead server); None when nothing is mounted there."""
    found = _visible_mount(target, mountinfo)
    return found[1] if found else None


def mount_device(target: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The `major:minor` of the file system mounted at `target` (each NFS or FUSE mount has
    its own; a bind shares its source's), from the mount table; None when nothing is."""
    found = _visible_mount(target, mountinfo)
    return found[0] if found else None


def _visible_mount(target: str, mountinfo: str) -> tuple[str, str] | None:
    wanted = os.path.normpath(target)
    found: tuple[str, str] | None = None
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            if _unescape_mountinfo(fields[4]) == wanted:
                # The last mount on a point is the visible one.
                found = (fields[2], fields[separator + 1])
    return found


def _fuse_server_running(target: str, proc: str = "/proc") -> bool:
    """Whether an `nfs_fuse` process serving `target` runs (one made by an earlier kubelet
    keeps running across a restart of the kubelet alone, not across its container's)."""
    return any(_serves(pid, target, proc) for pid in os.listdir(proc) if pid.isdigit())


def _serves(pid: int | str, target: str, proc: str = "/proc") -> bool:
    """Process `pid` is an `nfs_fuse` serving `target`. An exiting process, not yet reaped,
    already has no command line, so it does not count."""
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False  # gone meanwhile
    return b"kubelet.mounters.nfs_fuse" in argv and os.fsencode(os.path.normpath(target)) in argv


def _run(argv: list[str], timeout: float, what: str) -> None:
    """Run an argument list (never a shell), time-boxed; MountFailed carries its stderr."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise MountTimeout(f"{what} did not finish within {timeout:.0f}s") from e
    except FileNotFoundError as e:
        raise MounterUnavailable(f"{what}: {argv[0]} is not installed") from e
    if done.returncode != 0:
        raise MountFailed(f"{what} failed ({done.returncode}): {done.stderr.strip()}")


# ---------------------------------------------------------------- the interface

class NfsMounter(Protocol):
    """Mounts NFS exports on local directories; every method is idempotent and time-boxed."""

    def mount(self, server: str, export_path: str, target: str, options: list[str]) -> None:
        """Mount `server:export_path` on the existing directory `target`; a no-op when
        already mounted there. Raises InvalidMountRequest before running anything, MountFailed
        or MountTimeout when the mount itself fails."""
        ...

    def unmount(self, target: str, lazy: bool = True) -> None:
        """Unmount `target`; lazy detaches even a mount whose server is dead. No-op when
        nothing is mounted."""
        ...

    def is_mounted(self, target: str) -> bool:
        """True when an NFS mount of this mounter's kind is on `target` (from the mount table,
        without touching the possibly dead mount)."""
        ...


def kernel_supports_nfs(filesystems: str = "/proc/filesystems") -> bool:
    """True when the running kernel has an NFS client (loaded, or as a loadable module)."""
    try:
        listed = Path(filesystems).read_text(encoding="utf-8").split()
    except OSError:
        listed = []
    if "nfs" in listed or "nfs4" in listed:
        return True
    module_dir = Path("/lib/modules") / os.uname().release / "kernel/fs/nfs"
    return module_dir.is_dir() and shutil.which("mount.nfs") is not None


class KernelNfsMounter:
    """The kernel's NFS client through `mount(8)`."""

    def __init__(self, timeout: float = MOUNT_TIMEOUT_S) -> None:
        self.timeout = timeout

    def mount_argv(self, request: MountRequest) -> list[str]:
        """The exact argument list run; vers=3 (or 2) selects `-t nfs`, the rest `-t nfs4`."""
        version = request.options.version or "4"
        fstype = "nfs" if version.startswith("3") else "nfs4"
        argv = ["mount", "-t", fstype]
        if request.options.raw:
            argv += ["-o", ",".join(request.options.raw)]
        return argv + [request.source, request.target]

    def mount(self, server: str, export_path: str, target: str, options: list[str]) -> None:
        request = validate_request(server, export_path, target, options)
        if self.is_mounted(request.target):
            return
        if not kernel_supports_nfs():
            raise MounterUnavailable("the kernel has no NFS client (see /proc/filesystems)")
        _run(self.mount_argv(request), self.timeout, f"mount {request.source}")

    def unmount(self, target: str, lazy: bool = True) -> None:
        path = validate_target(target)
        if self.is_mounted(path):
            _run(["umount", *(["-l"] if lazy else []), path], UNMOUNT_TIMEOUT_S, f"umount {path}")

    def is_mounted(self, target: str) -> bool:
        return mount_fstype(validate_target(target)) in ("nfs", "nfs4")


def userspace_unavailable_reason() -> str | None:
    """Why the libnfs + FUSE client cannot run here, or None when it can."""
    from kubelet.mounters import libnfs

    if not libnfs.available():
        return f"{libnfs.LIBRARY_NAME} is missing (Debian package libnfs13)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel or container)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return f"the mfusepy FUSE binding cannot load: {e}"
    return None


def _project_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class UserspaceNfsMounter:
    """libnfs served through FUSE, one child process per mount (see `nfs_fuse`)."""

    def __init__(self, log_dir: str | None = None, timeout: float = MOUNT_TIMEOUT_S,
                 python: str = sys.executable) -> None:
        self.log_dir = log_dir
        self.timeout = timeout
        self.python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def command(self, request: MountRequest, ready_fd: int) -> list[str]:
        """The argument list of the FUSE process for one mount."""
        argv = [self.python, "-m", "kubelet.mounters.nfs_fuse", request.source, request.target,
                "--ready-fd", str(ready_fd)]
        return argv + (["-o", ",".join(request.options.raw)] if request.options.raw else [])

    def mount(self, server: str, export_path: str, target: str, options: list[str]) -> None:
        request = validate_request(server, export_path, target, options)
        from kubelet.mounters import nfs_fuse  # imports this module: import late

        nfs_fuse.config_from_request(request)  # options the userspace client cannot honour
        if self.is_mounted(request.target):
            return
        if mount_fstype(request.target) == FUSE_FSTYPE:
            # Its process died (with the node's container): the mount answers ENOTCONN to
            # everything, forever. Detach it and mount afresh on the same point.
            _run(["umount", "-l", "--no-canonicalize", request.target], UNMOUNT_TIMEOUT_S,
                 f"umount -l {request.target}")
        reason = userspace_unavailable_reason()
        if reason is not None:
            raise MounterUnavailable(reason)
        read_end, write_end = os.pipe()
        try:
            child = self._spawn(request, write_end)
        finally:
            os.close(write_end)
        try:
            self._await_ready(child, read_end, request)
        finally:
            os.close(read_end)
        with self._lock:
            self._children[request.target] = child

    def _spawn(self, request: MountRequest, ready_fd: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [_project_root(), *filter(None, [env.get("PYTHONPATH")])])
        # A new session: the mount outlives a kubelet restart and its terminal signals.
        return subprocess.Popen(
            self.command(request, ready_fd), pass_fds=(ready_fd,), env=env,
            stdin=subprocess.DEVNULL, stdout=self._log(request), stderr=subprocess.STDOUT,
            start_new_session=True)

    def _log(self, request: MountRequest) -> int:
        if self.log_dir is None:
            return subprocess.DEVNULL
        name = request.target.strip("/").replace("/", "_") or "root"
        os.makedirs(self.log_dir, exist_ok=True)
        return os.open(os.path.join(self.log_dir, f"nfs-fuse-{name}.log"),
                       os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _await_ready(self, child: subprocess.Popen[bytes], read_end: int,
                     request: MountRequest) -> None:
        message = _read_line(read_end, self.timeout)
        if message == "ready":
            return
        _stop(child)
        if message is None:
            raise MountTimeout(f"userspace NFS mount of {request.source} not ready within "
                               f"{self.timeout:.0f}s")
        raise MountFailed(f"userspace NFS mount of {request.source} failed: "
                          f"{message.removeprefix('error: ') or 'the FUSE process exited'}")

    def unmount(self, target: str, lazy: bool = True) -> None:
        path = validate_target(target)
        if mount_fstype(path) == FUSE_FSTYPE:  # live or dead, it goes
            try:
                _run(["fusermount3", "-u", *(["-z"] if lazy else []), path],
                     UNMOUNT_TIMEOUT_S, f"fusermount3 -u {path}")
            except MountFailed:
                if os.geteuid() != 0:
                    raise
                _run(["umount", *(["-l"] if lazy else []), path], UNMOUNT_TIMEOUT_S,
                     f"umount {path}")
        with self._lock:
            child = self._children.pop(path, None)
        if child is not None:
            _stop(child)

    def is_mounted(self, target: str) -> bool:
        """A live userspace mount is on `target`: FUSE, and its `nfs_fuse` process runs. One
        whose process died answers ENOTCONN forever and counts as not mounted."""
        path = validate_target(target)
        if mount_fstype(path) != FUSE_FSTYPE:
            return False
        with self._lock:
            child = self._children.get(path)
        if child is not None:  # ours: no need to look through every process
            return child.poll() is None and _serves(child.pid, path)
        return _fuse_server_running(path)


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from the child's readiness pipe; "" at EOF, None when time ran out."""
    data = b""
    deadline = _now() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - _now()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def _now() -> float:
    return time.monotonic()


def _stop(child: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """Let a FUSE child finish (an unmounted file system ends its loop), then insist."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None and child.poll() is None:
            child.send_signal(sig)
        try:
            child.wait(timeout=grace if sig is None else 5.0)
            return
        except subprocess.TimeoutExpired:
            continue


def choose_mounter(preference: Preference = "auto", log_dir: str | None = None) -> NfsMounter:
    """The kernel client when asked for or (auto) when the kernel has one, else userspace."""
    if preference not in ("auto", "kernel", "userspace"):
        raise ValueError(f"unknown NFS mounter preference {preference!r}")
    if preference == "kernel" or (preference == "auto" and kernel_supports_nfs()):
        if not kernel_supports_nfs():
            raise MounterUnavailable("the kernel has no NFS client (see /proc/filesystems)")
        return KernelNfsMounter()
    reason = userspace_unavailable_reason()
    if reason is not None:
        raise MounterUnavailable(f"no NFS client: the kernel has none and {reason}")
    return UserspaceNfsMounter(log_dir=log_dir)
