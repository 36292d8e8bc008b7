"""The `storagelab.io/local` driver: volumes as directories under a node's base paths.

Like rancher's local-path-provisioner, each node has one or more base directories (validated
once into `LocalConfig`); a volume is the directory a class's `pathPattern` names under one
of them, pinned to its node by topology. What the directory is for is recorded beside it in
`<base>/.storagelab/<volume>.json`, written before the directory is made, so a retry after a
crash finishes the same volume, and delete touches only what this driver recorded; the index
`<base>/.storagelab/paths/` names each path's volume, so a new volume never takes the path of
a retained one, at the cost of one lookup. Capacity
is `enforce: none` (recorded only), `soft` (measured, reported when exceeded) or `hard` (a
loop-mounted ext4 file of that size, see `local_capacity`). The controller calls must run
where the node's base paths are (on the node, or one machine in the embedded setup).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from csi_like import contract, errors, local_capacity, local_params, naming

PROVISIONER = "storagelab.io/local"
VERSION = "0.1.0"
RECORD_DIR = ".storagelab"
PATHS_DIR = "paths"
# The public names of the configuration, kept here for callers of the driver.
LocalConfig = local_params.LocalConfig
parse_class = local_params.parse_class


@dataclass(frozen=True)
class Record:
    """What `<base>/.storagelab/<name>.json` says about one volume."""

    name: str
    node: str
    base: str
    path: str
    capacity_bytes: int
    enforce: str
    on_delete: str
    mode: int
    uid: int | None
    gid: int | None

    @property
    def directory(self) -> str:
        return os.path.join(self.base, self.path)

    @property
    def image(self) -> str:
        return os.path.join(self.base, RECORD_DIR, f"{self.name}.img")


def check_parents(base: str, relative: str, parameter: str) -> None:
    """Refuse a path whose existing parts (below base) include a symlink or a non-directory."""
    current = base
    for component in relative.split("/"):
        current = os.path.join(current, component)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            raise errors.InvalidArgument(parameter, relative, f"{current} is a symbolic link")
        if not stat.S_ISDIR(info.st_mode):
            raise errors.InvalidArgument(parameter, relative, f"{current} is not a directory")


def free_bytes(path: str) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def used_bytes(path: str) -> int:
    """Bytes allocated under `path` (du-like, not following symlinks, one file system)."""
    total = 0
    device = os.lstat(path).st_dev
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(root, d)).st_dev == device]
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue  # removed while we walked
    return total


# ---------------------------------------------------------------- records

def _record_path(base: str, name: str) -> str:
    return os.path.join(base, RECORD_DIR, f"{name}.json")


def read_record(base: str, name: str) -> Record | None:
    try:
        with open(_record_path(base, name), encoding="utf-8") as f:
            return Record(**json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise errors.PermanentError(f"volume record of {name} in {base} is corrupt") from e


def write_record(record: Record) -> None:
    """Write atomically (temp file + rename), so a crash leaves the old or the new record."""
    _write_durably(_record_path(record.base, record.name), json.dumps(asdict(record)))


def _write_durably(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _remove_record(record: Record) -> None:
    _release_path(record)
    try:
        os.remove(_record_path(record.base, record.name))
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- path index

def _path_claim(base: str, path: str) -> str:
    return os.path.join(base, RECORD_DIR, PATHS_DIR, naming.path_claim_name(path))


def _path_owner(base: str, path: str) -> str:
    try:
        with open(_path_claim(base, path), encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _claim_path(record: Record) -> None:
    """Note that record.path is record.name's (before its record: a claim without a record
    is a crash's leftover, and the next create of that path takes it over)."""
    if _path_owner(record.base, record.path) != record.name:
        _write_durably(_path_claim(record.base, record.path), record.name)


def _release_path(record: Record) -> None:
    if _path_owner(record.base, record.path) == record.name:
        os.remove(_path_claim(record.base, record.path))


def _index_paths(base: str) -> None:
    """Bases written before the path index existed get it built once from their records;
    built aside and renamed into place, so a reader sees no index or a whole one."""
    records = os.path.join(base, RECORD_DIR)
    index = os.path.join(records, PATHS_DIR)
    if os.path.isdir(index) or not os.path.isdir(records):
        return
    aside = f"{index}.{os.getpid()}.{time.monotonic_ns()}"
    os.makedirs(aside, mode=0o700)
    for entry in os.listdir(records):
        record = read_record(base, entry[:-5]) if entry.endswith(".json") else None
        if record is not None:
            with open(os.path.join(aside, naming.path_claim_name(record.path)), "w",
                      encoding="utf-8") as f:
                f.write(record.name)
    try:
        os.rename(aside, index)
    except OSError:
        shutil.rmtree(aside, ignore_errors=True)  # another process indexed it first


def volume_id(record: Record) -> str:
    return naming.encode_volume_id("local", {"node": record.node, "base": record.base,
                                             "path": record.path, "name": record.name,
                                             "onDelete": record.on_delete})


class LocalDriver:
    """The local driver; `node_name` set means this instance serves that node's Node calls."""

    def __init__(self, config: LocalConfig, node_name: str = "") -> None:
        self.config = config
        self.node_name = node_name

    # ---------------------------------------------------------------- identity

    def get_plugin_info(self) -> contract.PluginInfo:
        return contract.PluginInfo(PROVISIONER, VERSION)

    def probe(self) -> bool:
        paths = self.config.paths_for(self.node_name) if self.node_name else tuple(
            p for paths in self.config.node_paths.values() for p in paths)
        return bool(paths) and all(os.path.isdir(p) or not os.path.exists(p) for p in paths)

    def get_plugin_capabilities(self) -> frozenset[contract.Capability]:
        c = contract.Capability
        return frozenset({c.CONTROLLER_SERVICE, c.VOLUME_ACCESSIBILITY_CONSTRAINTS,
                          c.CREATE_DELETE_VOLUME, c.EXPAND_VOLUME, c.ONLINE_EXPANSION,
                          c.GET_CAPACITY, c.GET_VOLUME, c.VOLUME_CONDITION,
                          c.NODE_GET_VOLUME_STATS, c.NODE_EXPAND_VOLUME})

    # ---------------------------------------------------------------- controller

    def create_volume(self, request: contract.CreateVolumeRequest) -> contract.Volume:
        record = self._plan(request)
        existing = read_record(record.base, record.name)
        if existing is not None:
            _check_compatible(existing, record)
            record = existing
            _claim_path(record)
        else:
            _check_unclaimed(record)
            _check_space(record)
            _claim_path(record)
            write_record(record)  # the intent first: a retry after a crash finishes it
        try:
            self._converge(record)
        except BaseException:
            if existing is None:
                self._undo(record)
            raise
        return self._volume(record)

    def _plan(self, request: contract.CreateVolumeRequest) -> Record:
        _check_request(request)
        cls = local_params.apply_claim_overrides(parse_class(request.parameters),
                                                 request.claim.annotations)
        node = local_params.pick_node(request.topology, self.config)
        base = local_params.choose_base(self.config, node, cls.node_path)
        values = naming.pattern_values(request.claim, request.name, node)
        relative = naming.render(cls.pattern, values, "pathPattern")
        check_parents(base, relative, "pathPattern")
        capacity = request.capacity_bytes
        if cls.enforce == "hard":
            capacity = local_capacity.round_size(capacity)
        return Record(name=request.name, node=node, base=base, path=relative,
                      capacity_bytes=capacity, enforce=cls.enforce, on_delete=cls.on_delete,
                      mode=cls.mode, uid=cls.uid, gid=cls.gid)

    def _converge(self, record: Record) -> None:
        """Make the directory (and the hard backing) match the record; safe to repeat."""
        if record.enforce == "hard":
            reason = local_capacity.unavailable_reason()
            if reason:
                raise errors.PermanentError(f"enforce: hard: {reason}")
        os.makedirs(record.directory, exist_ok=True)
        if record.enforce == "hard":
            local_capacity.ensure_backing(record.image, record.capacity_bytes,
                                          record.uid or 0, record.gid or 0)
            local_capacity.ensure_mounted(record.image, record.directory)
        os.chmod(record.directory, record.mode)
        if record.uid is not None or record.gid is not None:
            os.chown(record.directory, -1 if record.uid is None else record.uid,
                     -1 if record.gid is None else record.gid)

    def _undo(self, record: Record) -> None:
        """Remove what a failed first create made, so nothing is left behind."""
        local_capacity.unmount(record.directory)
        for path in (record.image,):
            if os.path.exists(path):
                os.remove(path)
        if os.path.isdir(record.directory) and not os.listdir(record.directory):
            os.rmdir(record.directory)
            _remove_empty_parents(record.base, record.path)
        _remove_record(record)

    def _volume(self, record: Record) -> contract.Volume:
        return contract.Volume(
            volume_id=volume_id(record), capacity_bytes=record.capacity_bytes,
            context={"node": record.node, "path": record.directory, "enforce": record.enforce},
            accessible_topology=(contract.Topology.node(record.node),))

    def delete_volume(self, volume_id: str, secrets: Mapping[str, str] | None = None) -> None:
        record, fields = self._lookup(volume_id)
        if record is None:
            if os.path.lexists(os.path.join(fields["base"], fields["path"])):
                raise errors.PermanentError(f"refusing to delete {fields['path']} in "
                                            f"{fields['base']}: this driver has no record of it")
            return  # already gone: deleting twice is success
        if record.on_delete == "retain":
            return
        local_capacity.unmount(record.directory)
        if record.on_delete == "archive":
            _archive(record)
        else:
            _delete_tree(record)
        _remove_empty_parents(record.base, record.path)
        _remove_record(record)

    def _lookup(self, volume_id: str) -> tuple[Record | None, dict[str, str]]:
        """The record an id points at, after re-validating the id's fields (ids come from
        PV objects, which users can write)."""
        fields = naming.decode_volume_id("local", volume_id, ("node", "base", "path", "name"))
        if os.path.normpath(fields["base"]) not in self.config.paths_for(fields["node"]):
            raise errors.PermanentError(f"volume id {volume_id!r}: {fields['base']} is not a "
                                        f"base path of node {fields['node']!r}")
        naming.check_relative_path(fields["path"], "volume id path")
        if "/" in fields["name"] or fields["name"].startswith("."):
            raise errors.PermanentError(f"volume id {volume_id!r}: bad name")
        record = read_record(fields["base"], fields["name"])
        if record is not None and (record.path, record.node) != (fields["path"],
                                                                 fields["node"]):
            raise errors.PermanentError(f"volume id {volume_id!r} does not match its record")
        return record, fields

    def _require(self, volume_id: str) -> Record:
        record, _ = self._lookup(volume_id)
        if record is None:
            raise errors.VolumeNotFound(f"volume {volume_id!r} does not exist")
        return record

    def expand_volume(self, volume_id: str, capacity_bytes: int,
                      secrets: Mapping[str, str] | None = None) -> contract.ExpansionResult:
        record = self._require(volume_id)
        wanted = capacity_bytes
        if record.enforce == "hard":
            wanted = local_capacity.round_size(capacity_bytes)
        if wanted > record.capacity_bytes:
            growth = wanted - record.capacity_bytes
            available = free_bytes(record.base)
            if record.enforce != "none" and growth > available:
                raise errors.OutOfCapacity(f"cannot grow {record.name} by {growth} bytes: "
                                           f"{available} free in {record.base}", growth,
                                           available)
            if record.enforce == "hard":
                local_capacity.grow(record.image, record.directory, wanted)
            record = replace(record, capacity_bytes=wanted)
            write_record(record)
        return contract.ExpansionResult(record.capacity_bytes, node_expansion_required=False)

    def get_capacity(self, parameters: Mapping[str, str],
                     topology: contract.Topology | None = None,
                     secrets: Mapping[str, str] | None = None) -> int:
        cls = parse_class(parameters)
        node = (topology.segments.get(contract.TOPOLOGY_HOSTNAME_KEY) if topology else None)
        if not node or not self.config.paths_for(node):
            return 0
        base = local_params.choose_base(self.config, node, cls.node_path)
        return free_bytes(_existing_ancestor(base))

    def get_volume(self, volume_id: str,
                   secrets: Mapping[str, str] | None = None) -> contract.VolumeStatus:
        record = self._require(volume_id)
        used = _measure(record, record.directory)
        return contract.VolumeStatus(volume_id, record.capacity_bytes, used,
                                     _condition(record, used))

    # ---------------------------------------------------------------- node

    def publish_volume(self, volume_id: str, target_path: str, read_only: bool,
                       context: Mapping[str, str] | None = None,
                       mount_options: tuple[str, ...] = ()) -> None:
        record = self._require(volume_id)
        self._check_node(record)
        if record.enforce == "hard":
            local_capacity.ensure_mounted(record.image, record.directory)
        if local_capacity.is_mounted(target_path):
            return
        _mount(["mount", "--bind", record.directory, target_path])
        if read_only:
            _mount(["mount", "-o", "remount,bind,ro", target_path])

    def _check_node(self, record: Record) -> None:
        if self.node_name and record.node != self.node_name:
            raise errors.PermanentError(f"volume {record.name} lives on node {record.node!r}, "
                                        f"not on {self.node_name!r}")

    def unpublish_volume(self, volume_id: str, target_path: str) -> None:
        if local_capacity.is_mounted(target_path):
            _mount(["umount", target_path])

    def get_volume_stats(self, volume_id: str, volume_path: str) -> contract.VolumeStats:
        record = self._require(volume_id)
        if not os.path.isdir(volume_path):
            raise errors.VolumeNotFound(f"{volume_path} is not a directory")
        info = os.statvfs(volume_path)
        used = _measure(record, volume_path)
        if record.enforce == "hard":
            total, available = info.f_blocks * info.f_frsize, info.f_bavail * info.f_frsize
        else:
            total = record.capacity_bytes
            available = max(0, min(total - used, info.f_bavail * info.f_frsize))
        return contract.VolumeStats(total, used, available, info.f_files,
                                    info.f_files - info.f_ffree, _condition(record, used))

    def node_expand_volume(self, volume_id: str, volume_path: str,
                           capacity_bytes: int) -> int:
        return self._require(volume_id).capacity_bytes


# ---------------------------------------------------------------- helpers

def _check_request(request: contract.CreateVolumeRequest) -> None:
    if not request.name or "/" in request.name or request.name.startswith("."):
        raise errors.InvalidArgument("name", request.name, "must be a plain volume name")
    if request.capacity_bytes < 0:
        raise errors.InvalidArgument("capacity", request.capacity_bytes, "must be >= 0")
    if contract.AccessMode.RWX in request.access_modes:
        raise errors.InvalidArgument("accessModes", "ReadWriteMany",
                                     "local volumes are reachable from one node only")


def _check_compatible(existing: Record, wanted: Record) -> None:
    same = (existing.path, existing.node, existing.enforce) == (wanted.path, wanted.node,
                                                                wanted.enforce)
    if not same or existing.capacity_bytes < wanted.capacity_bytes:
        raise errors.VolumeConflict(f"volume {wanted.name} exists with other parameters "
                                    f"({existing.path} on {existing.node}, {existing.enforce}, "
                                    f"{existing.capacity_bytes} bytes)")


def _check_unclaimed(record: Record) -> None:
    if os.path.lexists(record.directory):
        raise errors.VolumeConflict(f"{record.directory} already exists and belongs to no "
                                    f"volume of this driver")
    claimed = _claimed_by_other(record)
    if claimed:
        raise errors.VolumeConflict(f"{record.path} is volume {claimed}'s directory")


def _claimed_by_other(record: Record) -> str:
    """The name of another recorded volume using the same path (a retained one), or ""."""
    _index_paths(record.base)
    owner = _path_owner(record.base, record.path)
    if not owner or owner == record.name:
        return ""
    other = read_record(record.base, owner)
    return owner if other is not None and other.path == record.path else ""


def _check_space(record: Record) -> None:
    if record.enforce == "none":
        return
    available = free_bytes(_existing_ancestor(record.base))
    if record.capacity_bytes > available:
        raise errors.OutOfCapacity(f"requested {record.capacity_bytes} bytes but only "
                                   f"{available} are free in {record.base} on {record.node}",
                                   record.capacity_bytes, available)


def _existing_ancestor(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _measure(record: Record, path: str) -> int:
    if record.enforce == "hard" and local_capacity.is_mounted(path):
        info = os.statvfs(path)
        return (info.f_blocks - info.f_bfree) * info.f_frsize
    return used_bytes(path) if os.path.isdir(path) else 0


def _condition(record: Record, used: int) -> contract.VolumeCondition:
    if record.enforce == "soft" and used > record.capacity_bytes:
        return contract.VolumeCondition(True, f"volume {record.name} uses {used} bytes, over "
                                        f"its capacity of {record.capacity_bytes} bytes")
    return contract.VolumeCondition()


def _delete_tree(record: Record) -> None:
    if record.enforce == "hard" and os.path.exists(record.image):
        os.remove(record.image)
    if os.path.islink(record.directory):
        raise errors.PermanentError(f"{record.directory} became a symbolic link; not deleting")
    if os.path.isdir(record.directory):
        shutil.rmtree(record.directory)


def _archive(record: Record) -> None:
    """Rename `<dir>` to `<parent>/archived-<leaf>` (with a time suffix when taken)."""
    parent, leaf = os.path.split(record.directory)
    destination = os.path.join(parent, f"archived-{leaf}")
    if os.path.lexists(destination) or os.path.lexists(destination + ".img"):
        destination = f"{destination}-{int(time.time())}"
    if record.enforce == "hard" and os.path.exists(record.image):
        os.replace(record.image, destination + ".img")
        if os.path.isdir(record.directory) and not os.listdir(record.directory):
            os.rmdir(record.directory)
        return
    if os.path.isdir(record.directory):
        os.rename(record.directory, destination)


def _remove_empty_parents(base: str, relative: str) -> None:
    """Remove directories the pattern made above the volume, while they are empty."""
    parts = relative.split("/")[:-1]
    while parts:
        try:
            os.rmdir(os.path.join(base, *parts))
        except OSError:
            return  # not empty (or gone): stop climbing
        parts.pop()


def _mount(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=local_capacity.TOOL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise errors.TemporaryError(f"{' '.join(argv)} timed out") from e
    if done.returncode != 0:
        raise errors.PermanentError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def from_options(options: Mapping[str, Any]) -> LocalDriver:
    """Registry factory: options {"nodePaths": {node: [paths]}, "nodeName": str}."""
    try:
        config = LocalConfig.from_mapping(options.get("nodePaths", {}))
    except ValueError as e:
        raise errors.InvalidArgument("nodePaths", options.get("nodePaths"), str(e)) from e
    return LocalDriver(config, str(options.get("nodeName", "")))
