"""A small pyfilesystem2 file system over a paramiko SFTP session, and the SSH connection.

The NFS driver manages directories on a remote export over SSH. `fs.sshfs` would do, but it
pins an old paramiko and runs shell commands on the server; this adapter needs only SFTP
requests. Two choices are deliberate: entries are described with `lstat`, so a symlink is
never taken for a directory (a tree removal deletes the link, not what it points to), and
every path is kept inside `root`. Connection failures are translated here into the driver
error types: unreachable server -> TemporaryError, refused credentials or an unknown host key
-> PermanentError.

An SSH connection costs a key exchange and an authentication (most of a provisioning call
over SFTP), so `SessionPool` keeps idle connections per server and credentials for a while
and checks one (a `stat` of the share, with a short timeout) before handing it out again; a
connection that fails the check, or that an operation saw fail, is closed, never reused.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import stat
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import paramiko
from fs import errors as fserrors
from fs.base import FS
from fs.info import Info
from fs.mode import Mode
from fs.path import abspath, normpath
from fs.permissions import Permissions
from fs.subfs import SubFS

from csi_like import errors

CONNECT_TIMEOUT_S = 10.0
OPERATION_TIMEOUT_S = CONNECT_TIMEOUT_S * 3
CHECK_TIMEOUT_S = 5.0  # a pooled connection must answer a stat this fast to be reused
IDLE_S = 30.0  # below OpenSSH's usual ClientAliveInterval * CountMax
MAX_IDLE_PER_KEY = 8
_META: dict[str, Any] = {
    "case_insensitive": False, "invalid_path_chars": "\0", "network": True, "read_only": False,
    "thread_safe": False, "unicode_paths": True, "virtual": False, "supports_rename": True,
}


@contextmanager
def _converted(path: str) -> Iterator[None]:
    """Map SFTP IOErrors to pyfilesystem errors, like OSFS does for os errors."""
    try:
        yield
    except FileNotFoundError as e:
        raise fserrors.ResourceNotFound(path, exc=e) from e
    except PermissionError as e:
        raise fserrors.PermissionDenied(path, exc=e) from e
    except (OSError, paramiko.SSHException) as e:
        raise fserrors.OperationFailed(path, exc=e) from e


class SFTPFS(FS):
    """pyfilesystem2 FS rooted at `root` on an open paramiko SFTP client (a pooled session's:
    closing the FS leaves the session open)."""

    _meta = _META

    def __init__(self, sftp: paramiko.SFTPClient, root: str) -> None:
        super().__init__()
        self.sftp = sftp
        self.root = posixpath.normpath(root)

    def remote(self, path: str) -> str:
        """The server-side path of `path` (which can never climb above `root`)."""
        return posixpath.join(self.root, abspath(normpath(path)).lstrip("/")).rstrip("/") or "/"

    def _lstat(self, path: str) -> paramiko.SFTPAttributes:
        with _converted(path):
            return self.sftp.lstat(self.remote(path))

    def getinfo(self, path: str, namespaces: Collection[str] | None = None) -> Info:
        attrs = self._lstat(path)
        mode = attrs.st_mode or 0
        name = posixpath.basename(abspath(normpath(path)))
        raw: dict[str, dict[str, Any]] = {"basic": {"name": name,
                                                    "is_dir": stat.S_ISDIR(mode)}}
        wanted = set(namespaces or ())
        if "details" in wanted:
            raw["details"] = {"size": attrs.st_size or 0, "type": 1 if stat.S_ISDIR(mode) else 2,
                              "modified": attrs.st_mtime, "accessed": attrs.st_atime}
        if "access" in wanted:
            raw["access"] = {"permissions": Permissions(mode=stat.S_IMODE(mode)).dump(),
                             "uid": attrs.st_uid, "gid": attrs.st_gid}
        if "link" in wanted:
            raw["link"] = {"target": self._readlink(path) if stat.S_ISLNK(mode) else None}
        return Info(raw)

    def _readlink(self, path: str) -> str | None:
        with _converted(path):
            target = self.sftp.readlink(self.remote(path))
        return None if target is None else str(target)

    def islink(self, path: str) -> bool:
        return stat.S_ISLNK(self._lstat(path).st_mode or 0)

    def listdir(self, path: str) -> list[str]:
        if not self.getinfo(path).is_dir:
            raise fserrors.DirectoryExpected(path)
        with _converted(path):
            return sorted(self.sftp.listdir(self.remote(path)))

    def makedir(self, path: str, permissions: Permissions | None = None,
                recreate: bool = False) -> SubFS[FS]:
        if self.exists(path):
            if not recreate or not self.getinfo(path).is_dir:
                raise fserrors.DirectoryExists(path)
            return self.opendir(path)
        parent = posixpath.dirname(abspath(normpath(path)))
        if not self.exists(parent):
            raise fserrors.ResourceNotFound(path)
        with _converted(path):
            self.sftp.mkdir(self.remote(path), permissions.mode if permissions else 0o777)
        return self.opendir(path)

    def openbin(self, path: str, mode: str = "r", buffering: int = -1,
                **options: Any) -> BinaryIO:
        parsed = Mode(mode)
        parsed.validate_bin()
        if parsed.create and self.isdir(path):
            raise fserrors.FileExpected(path)
        with _converted(path):
            handle = self.sftp.open(self.remote(path), parsed.to_platform_bin())
        return _SftpBinary(handle)  # type: ignore[return-value]

    def remove(self, path: str) -> None:
        if self.getinfo(path).is_dir:
            raise fserrors.FileExpected(path)
        with _converted(path):
            self.sftp.remove(self.remote(path))

    def removedir(self, path: str) -> None:
        if abspath(normpath(path)) == "/":
            raise fserrors.RemoveRootError(path)
        if not self.getinfo(path).is_dir:
            raise fserrors.DirectoryExpected(path)
        if self.listdir(path):
            raise fserrors.DirectoryNotEmpty(path)
        with _converted(path):
            self.sftp.rmdir(self.remote(path))

    def setinfo(self, path: str, info: Mapping[str, Mapping[str, Any]]) -> None:
        remote = self.remote(path)
        self._lstat(path)  # ResourceNotFound before changing anything
        with _converted(path):
            access = info.get("access", {})
            if "permissions" in access:
                self.sftp.chmod(remote, Permissions(access["permissions"]).mode)
            if "uid" in access or "gid" in access:
                current = self.sftp.stat(remote)
                self.sftp.chown(remote, access.get("uid", current.st_uid),
                                access.get("gid", current.st_gid))
            details = info.get("details", {})
            if "modified" in details:
                modified = float(details["modified"])
                self.sftp.utime(remote, (float(details.get("accessed", modified)), modified))

    def rename(self, source: str, destination: str) -> None:
        """Atomic rename on the server (OpenSSH's posix-rename extension)."""
        with _converted(source):
            self.sftp.posix_rename(self.remote(source), self.remote(destination))

    def statvfs_free(self, path: str = "/") -> int | None:
        """Free bytes of the export (statvfs@openssh.com), or None if the server lacks it."""
        try:
            _, message = self.sftp._request(  # paramiko has no public call for it
                paramiko.sftp.CMD_EXTENDED, "statvfs@openssh.com", self.remote(path))
        except (OSError, paramiko.SSHException):
            return None
        if message is None:
            return None
        _bsize, frsize, _blocks, _bfree, bavail = (message.get_int64() for _ in range(5))
        return int(frsize * bavail)

class _SftpBinary(io.RawIOBase):
    """Binary file over an SFTP handle, shaped as pyfilesystem expects (io-compatible)."""

    def __init__(self, handle: paramiko.SFTPFile) -> None:
        super().__init__()
        self._handle = handle

    def readable(self) -> bool:
        return bool(self._handle.readable())

    def writable(self) -> bool:
        return bool(self._handle.writable())

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        self._handle.write(bytes(data))
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._handle.seek(offset, whence)
        return int(self._handle.tell())

    def tell(self) -> int:
        return int(self._handle.tell())

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()


# ---------------------------------------------------------------- connecting

class _RejectUnknown(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise errors.PermanentError(f"SSH host key of {hostname} ({key.get_name()}) is not in "
                                    "the knownHosts given in the provisioner secret")


def _load_known_hosts(client: paramiko.SSHClient, known_hosts: str, target: str) -> None:
    """Lines as in known_hosts ("host keytype key"), or a bare "keytype key" for the target."""
    keys = client.get_host_keys()
    for line in filter(None, (raw.strip() for raw in known_hosts.splitlines())):
        if line.startswith("#"):
            continue
        if len(line.split()) == 2:
            line = f"{target} {line}"
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.SSHException, ValueError) as e:
            raise errors.InvalidArgument("secret knownHosts", line[:40], "not a known_hosts "
                                         "line") from e
        if entry is None or entry.key is None:
            raise errors.InvalidArgument("secret knownHosts", line[:40], "unsupported key type")
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)


def _private_key(text: str, passphrase: str | None) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.SSHException:
            continue
    raise errors.InvalidArgument("secret privateKey", "<redacted>", "not a readable OpenSSH "
                                 "private key (ed25519, ecdsa or rsa)")


@dataclass(eq=False)
class Session:
    """One authenticated SSH connection and its SFTP channel."""

    client: paramiko.SSHClient
    sftp: paramiko.SFTPClient
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self, root: str) -> bool:
        """Still connected, and the share answers within CHECK_TIMEOUT_S."""
        transport = self.client.get_transport()
        if transport is None or not transport.is_active() or \
                time.monotonic() - self.idle_since > IDLE_S:
            return False
        channel = self.sftp.get_channel()
        try:
            channel.settimeout(CHECK_TIMEOUT_S)
            self.sftp.stat(root)
            channel.settimeout(OPERATION_TIMEOUT_S)
        except (OSError, paramiko.SSHException, EOFError):
            return False
        return True

    def close(self) -> None:
        self.sftp.close()
        self.client.close()


def connect(host: str, port: int, root: str, secrets: Mapping[str, str],
            check_host_key: bool = True) -> Session:
    """A new session whose `root` exists. Secrets: username, and password or privateKey
    (+ passphrase); knownHosts unless `check_host_key` is off."""
    username = secrets.get("username", "")
    if not username:
        raise errors.InvalidArgument("secret username", "", "the provisioner secret needs it")
    if not secrets.get("password") and not secrets.get("privateKey"):
        raise errors.InvalidArgument("secret password/privateKey", "",
                                     "the provisioner secret needs one of them")
    client = paramiko.SSHClient()
    target = host if port == 22 else f"[{host}]:{port}"
    if check_host_key:
        _load_known_hosts(client, secrets.get("knownHosts", ""), target)
        client.set_missing_host_key_policy(_RejectUnknown())
    else:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    key = (_private_key(secrets["privateKey"], secrets.get("passphrase"))
           if secrets.get("privateKey") else None)
    _connect(client, host, port, username, secrets.get("password"), key)
    try:
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(OPERATION_TIMEOUT_S)
        sftp.stat(root)
    except FileNotFoundError as e:
        client.close()
        raise errors.InvalidArgument("share", root, f"does not exist on {host}") from e
    except (OSError, paramiko.SSHException) as e:
        client.close()
        raise errors.TemporaryError(f"SFTP to {host}:{port} failed: {e}") from e
    return Session(client, sftp)


class SessionPool:
    """Idle sessions by server and credentials, for any thread to take and give back."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, ...], list[Session]] = {}
        self._lock = threading.Lock()
        self.connects = 0  # new connections made (a reused one does not count)

    @contextmanager
    def filesystem(self, host: str, port: int, root: str, secrets: Mapping[str, str],
                   check_host_key: bool = True) -> Iterator[SFTPFS]:
        """An SFTPFS rooted at `root` on a pooled session; the session goes back to the
        pool afterwards unless the connection failed under it."""
        key = _pool_key(host, port, secrets, check_host_key)
        session = self._take(key, root)
        if session is None:
            session = connect(host, port, root, secrets, check_host_key)
            with self._lock:
                self.connects += 1
        filesystem = SFTPFS(session.sftp, root)  # closing it leaves the session open
        healthy = False
        try:
            yield filesystem
            healthy = True
        except (fserrors.OperationFailed, OSError, EOFError, paramiko.SSHException):
            raise  # the connection may be what failed: it is closed below
        except BaseException:
            healthy = True  # the caller's own error (a bad request, a conflict)
            raise
        finally:
            filesystem.close()
            if healthy:
                self._give(key, session)
            else:
                session.close()

    def _take(self, key: tuple[str, ...], root: str) -> Session | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                session = idle.pop()
            if session.usable(root):
                return session
            session.close()

    def _give(self, key: tuple[str, ...], session: Session) -> None:
        session.idle_since = time.monotonic()
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE_PER_KEY:
                idle.append(session)
                return
        session.close()

    def close(self) -> None:
        with self._lock:
            sessions = [s for idle in self._idle.values() for s in idle]
            self._idle.clear()
        for session in sessions:
            session.close()


def _pool_key(host: str, port: int, secrets: Mapping[str, str],
              check_host_key: bool) -> tuple[str, ...]:
    """Sessions are shared only by callers with the same server and the same credentials
    (a digest, so the pool holds no secret in its keys)."""
    digest = hashlib.sha256()
    for name in sorted(secrets):
        digest.update(f"{name}\0{secrets[name]}\0".encode())
    return host, str(port), str(check_host_key), digest.hexdigest()


def _connect(client: paramiko.SSHClient, host: str, port: int, username: str,
             password: str | None, key: paramiko.PKey | None) -> None:
    try:
        client.connect(host, port=port, username=username, password=password, pkey=key,
                       timeout=CONNECT_TIMEOUT_S, banner_timeout=CONNECT_TIMEOUT_S,
                       auth_timeout=CONNECT_TIMEOUT_S, allow_agent=False, look_for_keys=False)
    except errors.DriverError:
        client.close()
        raise
    except paramiko.BadHostKeyException as e:
        client.close()
        raise errors.PermanentError(f"SSH host key of {host}:{port} does not match "
                                    "knownHosts") from e
    except paramiko.AuthenticationException as e:
        client.close()
        raise errors.PermanentError(f"SSH authentication as {username!r} to {host}:{port} "
                                    "failed: check the provisioner secret") from e
    except (OSError, paramiko.SSHException, EOFError) as e:  # TimeoutError is an OSError
        client.close()
        raise errors.TemporaryError(f"SSH server {host}:{port} unreachable: {e}") from e
