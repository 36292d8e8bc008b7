"""The `storagelab.io/nfs` driver: volumes as subdirectories of an NFS export.

Everything about the export is a StorageClass parameter (server, share, subDir pattern,
mountPermissions, onDelete), so one installation serves many servers. Directories are managed
through pyfilesystem2: `OSFS` when the export is reachable as a local path (`exportLocalPath`,
e.g. beside the NFS server), otherwise SFTP over SSH (`sftpfs`) with credentials the caller
passes from the class's provisioner Secret. Capacity cannot be enforced on a plain export, so
it is recorded in `<share>/.storagelab/<volume>.json` (beside the volumes, out of the pods'
reach) and soft-enforced: `get_volume` reports a volume using more. The node side mounts the
export through a mounter object handed in (the kubelet's), so this package never imports the
kubelet.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from fs import errors as fserrors
from fs.base import FS
from fs.osfs import OSFS
from fs.permissions import Permissions

from csi_like import contract, errors, naming

if TYPE_CHECKING:
    from csi_like.sftpfs import SessionPool  # paramiko is only needed for remote exports

PROVISIONER = "storagelab.io/nfs"
VERSION = "0.1.0"
RECORD_DIR = ".storagelab"
PATHS_DIR = "paths"
PARAMETERS = ("server", "share", "subDir", "mountPermissions", "onDelete", "exportLocalPath",
              "sshHost", "sshPort", "sshHostKeyCheck")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.:-]{0,252}[A-Za-z0-9])?)$")
_EXPORT = re.compile(r"^/[A-Za-z0-9._/@+=~-]*$")


class NfsMounter(Protocol):
    """What the node side needs from the kubelet's NFS mounter (kubelet.mounters.nfs)."""

    def mount(self, server: str, export_path: str, target: str, options: list[str]) -> None:
        ...

    def unmount(self, target: str, lazy: bool = True) -> None:
        ...

    def is_mounted(self, target: str) -> bool:
        ...


@dataclass(frozen=True)
class NfsClass:
    """A StorageClass's parameters (or the same fields decoded from a volume id), validated."""

    server: str
    share: str
    sub_dir: naming.PathPattern
    mount_permissions: int
    on_delete: str
    export_local_path: str
    ssh_host: str
    ssh_port: int
    check_host_key: bool


@dataclass(frozen=True)
class Record:
    """What `<share>/.storagelab/<name>.json` says about one volume."""

    name: str
    sub_dir: str
    capacity_bytes: int
    mount_permissions: int


def _host(value: str, parameter: str) -> str:
    if not _HOST.match(value):
        raise errors.InvalidArgument(parameter, value, "must be a hostname or an IP address")
    return value


def parse_class(parameters: Mapping[str, str]) -> NfsClass:
    """Validate class parameters; unknown names and bad values raise InvalidArgument."""
    for name in parameters:
        if name not in PARAMETERS and not name.startswith(contract.RESERVED_PARAMETER_PREFIX):
            raise errors.InvalidArgument("parameter", name, f"unknown; known: {PARAMETERS}")
    for required in ("server", "share"):
        if not parameters.get(required):
            raise errors.InvalidArgument(required, "", "is required")
    share = parameters["share"]
    if not _EXPORT.match(share) or ".." in share.split("/"):
        raise errors.InvalidArgument("share", share, "must be an absolute plain path")
    server = _host(parameters["server"], "server")
    return NfsClass(
        server=server, share=posixpath.normpath(share),
        sub_dir=naming.parse_pattern(parameters.get("subDir", "{pv_name}"), "subDir"),
        mount_permissions=_permissions(parameters.get("mountPermissions", "0")),
        on_delete=naming.parse_on_delete(parameters.get("onDelete", "delete")),
        export_local_path=_local_path(parameters.get("exportLocalPath", "")),
        ssh_host=_host(parameters.get("sshHost", server), "sshHost"),
        ssh_port=_port(parameters.get("sshPort", "22")),
        check_host_key=_host_key_check(parameters.get("sshHostKeyCheck", "strict")))


def _permissions(value: str) -> int:
    return 0 if value == "0" else naming.parse_mode(value, "mountPermissions")


def _local_path(value: str) -> str:
    if value and (not os.path.isabs(value) or os.path.normpath(value) == "/"):
        raise errors.InvalidArgument("exportLocalPath", value, "must be absolute and not /")
    return os.path.normpath(value) if value else ""


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise errors.InvalidArgument("sshPort", value, "must be a port number 1-65535")
    return int(value)


def _host_key_check(value: str) -> bool:
    if value not in ("strict", "off"):
        raise errors.InvalidArgument("sshHostKeyCheck", value, "must be strict or off")
    return value == "strict"


# ---------------------------------------------------------------- the export as a file system

@contextmanager
def open_export(cls: NfsClass, secrets: Mapping[str, str],
                sessions: SessionPool | None) -> Iterator[FS]:
    """The export's root as a pyfilesystem2 FS: OSFS locally, otherwise SFTP on a session of
    `sessions` (which a remote export needs); closed after."""
    try:
        with _open(cls, secrets, sessions) as export:
            yield export
    except fserrors.FSError as e:
        raise _translate(e) from e
    except (OSError, EOFError) as e:  # the SSH session dropped mid-operation
        raise errors.TemporaryError(f"export {cls.server}:{cls.share}: {e}") from e


@contextmanager
def _open(cls: NfsClass, secrets: Mapping[str, str],
          sessions: SessionPool | None) -> Iterator[FS]:
    if cls.export_local_path:
        _check_local_export(cls.export_local_path)
        with OSFS(cls.export_local_path) as export:
            yield export
        return
    assert sessions is not None, "a remote export is reached through a SessionPool"
    with sessions.filesystem(cls.ssh_host, cls.ssh_port, cls.share, secrets,
                             check_host_key=cls.check_host_key) as export:
        yield export


def _check_local_export(path: str) -> None:
    """The export's local path must answer now. A mount of a server that is down answers EIO
    or times out, an unmounted one may be missing: both can come back, so both are
    temporary; a path that is there but is no directory is a mistake in the class."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise errors.TemporaryError(f"exportLocalPath {path} is not reachable on this "
                                    f"machine: {e.strerror or e}") from e
    if not stat.S_ISDIR(info.st_mode):
        raise errors.PermanentError(f"exportLocalPath {path} is not a directory")


def _translate(error: fserrors.FSError) -> errors.DriverError:
    if isinstance(error, fserrors.PermissionDenied):
        return errors.PermanentError(f"permission denied on the export: {error}")
    if isinstance(error, fserrors.OperationFailed):
        return errors.TemporaryError(f"operation on the export failed: {error}")
    return errors.PermanentError(f"export: {error}")


def _free_bytes(export: FS) -> int | None:
    if export.hassyspath("/"):
        info = os.statvfs(export.getsyspath("/"))
        return info.f_bavail * info.f_frsize
    statvfs_free = getattr(export, "statvfs_free", None)
    return statvfs_free() if statvfs_free else None


def _rename(export: FS, source: str, destination: str) -> None:
    if export.hassyspath(source):
        os.rename(export.getsyspath(source), export.getsyspath(destination))
    else:
        export.rename(source, destination)  # type: ignore[attr-defined]


def _remove_tree(export: FS, path: str) -> None:
    if export.hassyspath(path):
        shutil.rmtree(export.getsyspath(path))  # never follows symlinks out of the tree
    else:
        export.removetree(path)  # SFTPFS describes symlinks as files: links are removed


def _used_bytes(export: FS, path: str) -> int:
    total = 0
    for _, info in export.walk.info(path, namespaces=["details"]):
        if not info.is_dir:
            total += info.size
    return total


def _check_parents(export: FS, relative: str) -> None:
    current = ""
    for component in relative.split("/"):
        current = f"{current}/{component}"
        if not export.exists(current) and not _is_link(export, current):
            return
        if _is_link(export, current):
            raise errors.InvalidArgument("subDir", relative, f"{current} is a symbolic link")
        if not export.isdir(current):
            raise errors.InvalidArgument("subDir", relative, f"{current} is not a directory")


def _is_link(export: FS, path: str) -> bool:
    try:
        return bool(export.islink(path))
    except fserrors.ResourceNotFound:
        return False


def _record_path(name: str) -> str:
    return f"/{RECORD_DIR}/{name}.json"


def read_record(export: FS, name: str) -> Record | None:
    try:
        return Record(**json.loads(export.readtext(_record_path(name))))
    except fserrors.ResourceNotFound:
        return None
    except (ValueError, TypeError) as e:
        raise errors.PermanentError(f"volume record of {name} is corrupt") from e


def write_record(export: FS, record: Record) -> None:
    _write_replacing(export, _record_path(record.name), json.dumps(asdict(record)))


def _write_replacing(export: FS, path: str, text: str) -> None:
    export.makedirs(posixpath.dirname(path), recreate=True)
    temporary = path + ".tmp"
    export.writetext(temporary, text)
    if export.exists(path):
        export.remove(path)
    _rename(export, temporary, path)


def _remove_record(export: FS, name: str) -> None:
    record = read_record(export, name)
    if record is not None and _path_owner(export, record.sub_dir) == name:
        export.remove(_path_claim(record.sub_dir))
    if export.exists(_record_path(name)):
        export.remove(_record_path(name))


# ---------------------------------------------------------------- path index

def _path_claim(sub_dir: str) -> str:
    """`<share>/.storagelab/paths/<hash>` names the volume owning sub_dir: checking a path is
    one read, not a scan of every record (which over SFTP costs a round trip each)."""
    return f"/{RECORD_DIR}/{PATHS_DIR}/{naming.path_claim_name(sub_dir)}"


def _path_owner(export: FS, sub_dir: str) -> str:
    try:
        return export.readtext(_path_claim(sub_dir))
    except fserrors.ResourceNotFound:
        return ""


def _claim_path(export: FS, record: Record) -> None:
    """Before the record: a claim without a record is a crash's leftover, taken over."""
    if _path_owner(export, record.sub_dir) != record.name:
        _write_replacing(export, _path_claim(record.sub_dir), record.name)


def _index_paths(export: FS) -> None:
    """Exports written before the path index existed get it built once from their records,
    aside and renamed into place, so a reader sees no index or a whole one."""
    index = f"/{RECORD_DIR}/{PATHS_DIR}"
    if export.isdir(index) or not export.isdir(f"/{RECORD_DIR}"):
        return
    aside = f"{index}.{os.getpid()}.{time.monotonic_ns()}"
    export.makedir(aside)
    for entry in export.listdir(f"/{RECORD_DIR}"):
        record = read_record(export, entry[:-5]) if entry.endswith(".json") else None
        if record is not None:
            export.writetext(f"{aside}/{naming.path_claim_name(record.sub_dir)}", record.name)
    try:
        _rename(export, aside, index)
    except (OSError, fserrors.FSError):
        export.removetree(aside)  # another provisioner indexed it first


def _claimed_by_other(export: FS, record: Record) -> str:
    _index_paths(export)
    owner = _path_owner(export, record.sub_dir)
    if not owner or owner == record.name:
        return ""
    other = read_record(export, owner)
    return owner if other is not None and other.sub_dir == record.sub_dir else ""


# ---------------------------------------------------------------- volume ids

def volume_id(cls: NfsClass, record: Record) -> str:
    return naming.encode_volume_id("nfs", {
        "server": cls.server, "share": cls.share, "subDir": record.sub_dir,
        "name": record.name, "onDelete": cls.on_delete,
        "exportLocalPath": cls.export_local_path, "sshHost": cls.ssh_host,
        "sshPort": str(cls.ssh_port),
        "sshHostKeyCheck": "strict" if cls.check_host_key else "off"})


def decode(volume_id: str) -> tuple[NfsClass, str, str]:
    """The class, volume name and subdirectory an id names, re-validated field by field."""
    fields = naming.decode_volume_id("nfs", volume_id, ("server", "share", "subDir", "name"))
    name = fields.pop("name")
    sub_dir = naming.check_relative_path(fields.pop("subDir"), "volume id subDir")
    if "/" in name or name.startswith("."):
        raise errors.PermanentError(f"volume id {volume_id!r}: bad name")
    fields = {key: value for key, value in fields.items() if value}
    try:
        return parse_class(fields), name, sub_dir
    except errors.InvalidArgument as e:
        raise errors.PermanentError(f"volume id {volume_id!r}: {e}") from e


class NfsDriver:
    """The NFS driver; `mounter` (the kubelet's) is needed only for the Node calls."""

    def __init__(self, mounter: NfsMounter | None = None) -> None:
        self.mounter = mounter
        self._sessions: SessionPool | None = None  # made when an SFTP export is first used

    def _export(self, cls: NfsClass, secrets: Mapping[str, str] | None
                ) -> contextlib.AbstractContextManager[FS]:
        if not cls.export_local_path and self._sessions is None:
            from csi_like import sftpfs  # paramiko is only needed for remote exports
            self._sessions = sftpfs.SessionPool()
        return open_export(cls, secrets or {}, self._sessions)

    # ---------------------------------------------------------------- identity

    def get_plugin_info(self) -> contract.PluginInfo:
        return contract.PluginInfo(PROVISIONER, VERSION)

    def probe(self) -> bool:
        return True  # each class names its own server: nothing global to check

    def get_plugin_capabilities(self) -> frozenset[contract.Capability]:
        c = contract.Capability
        return frozenset({c.CONTROLLER_SERVICE, c.CREATE_DELETE_VOLUME, c.EXPAND_VOLUME,
                          c.ONLINE_EXPANSION, c.GET_CAPACITY, c.GET_VOLUME,
                          c.VOLUME_CONDITION, c.NODE_GET_VOLUME_STATS})

    # ---------------------------------------------------------------- controller

    def create_volume(self, request: contract.CreateVolumeRequest) -> contract.Volume:
        cls, record = _plan(request)
        with self._export(cls, request.secrets) as export:
            _check_parents(export, record.sub_dir)
            existing = read_record(export, record.name)
            if existing is not None:
                _check_compatible(existing, record)
                record = existing
                _claim_path(export, record)
            else:
                _check_unclaimed(export, record)
                _claim_path(export, record)
                write_record(export, record)  # the intent first: a retry finishes it
            try:
                _converge(export, record)
            except BaseException:
                if existing is None:
                    _undo(export, record)
                raise
        return _volume(cls, record)

    def delete_volume(self, volume_id: str, secrets: Mapping[str, str] | None = None) -> None:
        cls, name, sub_dir = decode(volume_id)
        with self._export(cls, secrets) as export:
            record = read_record(export, name)
            if record is None:
                if export.exists(sub_dir) or _is_link(export, sub_dir):
                    raise errors.PermanentError(f"refusing to delete {sub_dir} on {cls.server}:"
                                                f"{cls.share}: this driver has no record of it")
                return  # already gone: deleting twice is success
            if record.sub_dir != sub_dir:
                raise errors.PermanentError(f"volume id {volume_id!r} does not match its "
                                            "record")
            if cls.on_delete == "retain":
                return
            _dispose(export, sub_dir, cls.on_delete)
            _remove_empty_parents(export, sub_dir)
            _remove_record(export, name)

    def expand_volume(self, volume_id: str, capacity_bytes: int,
                      secrets: Mapping[str, str] | None = None) -> contract.ExpansionResult:
        cls, name, _ = decode(volume_id)
        with self._export(cls, secrets) as export:
            record = _require(export, name, volume_id)
            if capacity_bytes > record.capacity_bytes:
                _check_space(export, capacity_bytes - record.capacity_bytes)
                record = replace(record, capacity_bytes=capacity_bytes)
                write_record(export, record)
        return contract.ExpansionResult(record.capacity_bytes, node_expansion_required=False)

    def get_capacity(self, parameters: Mapping[str, str],
                     topology: contract.Topology | None = None,
                     secrets: Mapping[str, str] | None = None) -> int:
        cls = parse_class(parameters)
        with self._export(cls, secrets) as export:
            return _free_bytes(export) or 0

    def get_volume(self, volume_id: str,
                   secrets: Mapping[str, str] | None = None) -> contract.VolumeStatus:
        cls, name, sub_dir = decode(volume_id)
        with self._export(cls, secrets) as export:
            record = _require(export, name, volume_id)
            used = _used_bytes(export, sub_dir) if export.isdir(sub_dir) else 0
        condition = contract.VolumeCondition()
        if used > record.capacity_bytes:
            condition = contract.VolumeCondition(True, f"volume {name} uses {used} bytes, "
                                                 f"over its capacity of "
                                                 f"{record.capacity_bytes} bytes")
        return contract.VolumeStatus(volume_id, record.capacity_bytes, used, condition)

    # ---------------------------------------------------------------- node

    def publish_volume(self, volume_id: str, target_path: str, read_only: bool,
                       context: Mapping[str, str] | None = None,
                       mount_options: tuple[str, ...] = ()) -> None:
        cls, _, sub_dir = decode(volume_id)
        options = list(mount_options) + (["ro"] if read_only else [])
        export_path = posixpath.join(cls.share, sub_dir)
        self._mounter_call(lambda m: m.mount(cls.server, export_path, target_path, options))

    def unpublish_volume(self, volume_id: str, target_path: str) -> None:
        self._mounter_call(lambda m: m.unmount(target_path))

    def _mounter_call(self, call: Any) -> None:
        if self.mounter is None:
            raise errors.PermanentError("this nfs driver has no NFS mounter (node side only)")
        try:
            call(self.mounter)
        except ValueError as e:  # the kubelet mounter's InvalidMountRequest
            raise errors.InvalidArgument("mount request", str(e), "rejected by the mounter") \
                from e
        except Exception as e:  # MountFailed, MountTimeout ...: a dead server may come back
            raise errors.TemporaryError(f"NFS mount operation failed: {e}") from e

    def get_volume_stats(self, volume_id: str, volume_path: str) -> contract.VolumeStats:
        """Export-wide totals (statvfs) and the volume's own use; the recorded capacity is
        not visible from the node, so the soft limit is judged by get_volume."""
        decode(volume_id)
        if not os.path.isdir(volume_path):
            raise errors.VolumeNotFound(f"{volume_path} is not a directory")
        info = os.statvfs(volume_path)
        with OSFS(volume_path) as published:
            used = _used_bytes(published, "/")
        return contract.VolumeStats(info.f_blocks * info.f_frsize, used,
                                    info.f_bavail * info.f_frsize, info.f_files,
                                    info.f_files - info.f_ffree)

    def node_expand_volume(self, volume_id: str, volume_path: str,
                           capacity_bytes: int) -> int:
        return capacity_bytes  # nothing to grow on the node: the capacity is a record


# ---------------------------------------------------------------- helpers

def _plan(request: contract.CreateVolumeRequest) -> tuple[NfsClass, Record]:
    if not request.name or "/" in request.name or request.name.startswith("."):
        raise errors.InvalidArgument("name", request.name, "must be a plain volume name")
    if request.capacity_bytes < 0:
        raise errors.InvalidArgument("capacity", request.capacity_bytes, "must be >= 0")
    cls = parse_class(request.parameters)
    values = naming.pattern_values(request.claim, request.name)
    sub_dir = naming.render(cls.sub_dir, values, "subDir")
    return cls, Record(request.name, sub_dir, request.capacity_bytes, cls.mount_permissions)


def _check_compatible(existing: Record, wanted: Record) -> None:
    if existing.sub_dir != wanted.sub_dir or existing.capacity_bytes < wanted.capacity_bytes:
        raise errors.VolumeConflict(f"volume {wanted.name} exists with other parameters "
                                    f"({existing.sub_dir}, {existing.capacity_bytes} bytes)")


def _check_unclaimed(export: FS, record: Record) -> None:
    if export.exists(record.sub_dir):
        raise errors.VolumeConflict(f"{record.sub_dir} already exists on the export and "
                                    "belongs to no volume of this driver")
    claimed = _claimed_by_other(export, record)
    if claimed:
        raise errors.VolumeConflict(f"{record.sub_dir} is volume {claimed}'s directory")
    _check_space(export, record.capacity_bytes)


def _check_space(export: FS, wanted: int) -> None:
    available = _free_bytes(export)
    if available is not None and wanted > available:
        raise errors.OutOfCapacity(f"requested {wanted} bytes but only {available} are free "
                                   "on the export", wanted, available)


def _converge(export: FS, record: Record) -> None:
    export.makedirs(record.sub_dir, recreate=True)
    if record.mount_permissions:
        _chmod(export, record.sub_dir, record.mount_permissions)


def _chmod(export: FS, path: str, mode: int) -> None:
    if export.hassyspath(path):
        os.chmod(export.getsyspath(path), mode)  # OSFS.setinfo ignores permissions
    else:
        export.setinfo(path, {"access": {"permissions": Permissions(mode=mode).dump()}})


def _undo(export: FS, record: Record) -> None:
    if export.isdir(record.sub_dir) and export.isempty(record.sub_dir):
        export.removedir(record.sub_dir)
        _remove_empty_parents(export, record.sub_dir)
    _remove_record(export, record.name)


def _dispose(export: FS, sub_dir: str, on_delete: str) -> None:
    if _is_link(export, sub_dir):
        raise errors.PermanentError(f"{sub_dir} became a symbolic link; not touching it")
    if not export.isdir(sub_dir):
        return  # a crash after disposing, before the record went: finish the delete
    if on_delete == "delete":
        _remove_tree(export, sub_dir)
        return
    parent, leaf = posixpath.split(sub_dir)
    destination = posixpath.join(parent, f"archived-{leaf}")
    if export.exists(destination):
        destination = f"{destination}-{int(time.time())}"
    _rename(export, sub_dir, destination)


def _remove_empty_parents(export: FS, sub_dir: str) -> None:
    parts = sub_dir.split("/")[:-1]
    while parts:
        path = "/".join(parts)
        if not export.isdir(path) or not export.isempty(path):
            return
        export.removedir(path)
        parts.pop()


def _require(export: FS, name: str, volume_id: str) -> Record:
    record = read_record(export, name)
    if record is None:
        raise errors.VolumeNotFound(f"volume {volume_id!r} does not exist")
    return record


def _volume(cls: NfsClass, record: Record) -> contract.Volume:
    return contract.Volume(
        volume_id=volume_id(cls, record), capacity_bytes=record.capacity_bytes,
        context={"server": cls.server, "share": cls.share, "subDir": record.sub_dir,
                 "path": posixpath.join(cls.share, record.sub_dir)})


def from_options(options: Mapping[str, Any]) -> NfsDriver:
    """Registry factory: options {"mounter": NfsMounter} (node side only)."""
    return NfsDriver(options.get("mounter"))
