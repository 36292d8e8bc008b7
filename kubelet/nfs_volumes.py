"""NFS volumes on the node: one shared mount per export, bind mounted into every pod using it.

Pods reach NFS three ways: an inline `nfs:` volume, a PersistentVolume with `spec.nfs`, or a
PersistentVolume of our `storagelab.io/nfs` driver (`spec.csi`, driver `nfs.storagelab.io`,
whose volume id names the export and the volume's sub-directory). Each becomes an
`NfsSource`, validated before anything runs. The export is mounted once per node at `<root>/mounts/nfs/<server>/<export-hash>` (the
hash covers the export path, the options and the client kind) with the kernel client or the
userspace one (libnfs + FUSE), chosen per node (`--nfs-mounter`) and per volume (the
storagelab mount option `mounter=kernel|userspace`); every pod volume is a bind mount of it.
The users of a shared mount are recorded beside it (`<export-hash>.json`), so a restarted
kubelet adopts the mounts a previous run made, and the last user's teardown releases the
mount. A server that stops answering must not stall the kubelet: mounts run on a worker and
a sync waits for them only briefly, failures back off, health probes run on their own thread
and pods hear of an unhealthy export through events, and every unmount is lazy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kubelet import mount, subpath
from kubelet.mounters import nfs

Object = dict[str, Any]
EventSink = Callable[[Object, str, str, str], None]
logger = logging.getLogger(__name__)

NFS_PLUGIN = "kubernetes.io~nfs"
CSI_PLUGIN = "kubernetes.io~csi"
# The driver's provisioner name, and the same as a valid CSI driver name: Kubernetes requires
# spec.csi.driver to be a DNS-1123 subdomain, so a PV cannot carry "storagelab.io/nfs" there.
CSI_DRIVERS = ("storagelab.io/nfs", "nfs.storagelab.io")
MOUNTER_OPTION = "mounter"  # ours, not nfs(5): removed before the options reach a client
NFS_FSTYPES = ("nfs", "nfs4", nfs.FUSE_FSTYPE)
MOUNT_WAIT_S = 5.0  # a sync waits this long for a mount it started, then reports it pending
RETRY_INITIAL_S = 1.0  # after a failed mount, as Kubernetes' volume operations back off
RETRY_MAX_S = 30.0
PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 5.0
UNMOUNT_TIMEOUT_S = 30.0


class NfsVolumeError(Exception):
    """An NFS volume cannot be set up; the message is what the pod's FailedMount event says."""


class MountPending(Exception):
    """The export's mount is still running on the worker; the pod keeps waiting, quietly."""


@dataclass(frozen=True)
class NfsSource:
    """What one pod volume asks for: an export, client options, where inside it, and how."""

    server: str
    export: str
    options: tuple[str, ...] = ()
    sub_dir: str = ""
    read_only: bool = False
    preference: nfs.Preference = "auto"


# ---------------------------------------------------------------- sources (pure)

def split_mounter(options: Sequence[str], node: nfs.Preference
                  ) -> tuple[nfs.Preference, tuple[str, ...]]:
    """The client a volume asks for (`mounter=...`, else the node's) and the other options."""
    preference, rest = node, []
    for item in options:
        for option in (part.strip() for part in item.split(",")):
            name, _, value = option.partition("=")
            if name != MOUNTER_OPTION:
                rest.append(option)
            elif value in ("auto", "kernel", "userspace"):
                preference = cast(nfs.Preference, value)
            else:
                raise NfsVolumeError(f"invalid NFS mount option {option!r}: mounter must be "
                                     f"auto, kernel or userspace")
    return preference, tuple(o for o in rest if o)


def merge_options(defaults: Sequence[str], own: Sequence[str]) -> tuple[str, ...]:
    """The node's default options, then the volume's; the volume wins a name both give."""
    names = {option.partition("=")[0] for option in own}
    return tuple(o for o in defaults if o.partition("=")[0] not in names) + tuple(own)


def _source(server: str, export: str, options: Sequence[str], defaults: Sequence[str],
            node: nfs.Preference, sub_dir: str = "", read_only: bool = False) -> NfsSource:
    preference, rest = split_mounter(options, node)
    return NfsSource(server=server, export=export, options=merge_options(defaults, rest),
                     sub_dir=sub_dir, read_only=read_only, preference=preference)


def inline_source(volume: Object, defaults: Sequence[str] = (),
                  node: nfs.Preference = "auto") -> NfsSource:
    """A pod's inline `nfs: {server, path, readOnly}` (no options: the node's defaults)."""
    spec = volume.get("nfs") or {}
    return _source(str(spec.get("server", "")), str(spec.get("path", "")), (), defaults, node,
                   read_only=bool(spec.get("readOnly")))


def is_nfs_pv(pv: Object) -> bool:
    spec = pv.get("spec") or {}
    return "nfs" in spec or (spec.get("csi") or {}).get("driver") in CSI_DRIVERS


def pv_source(pv: Object, read_only: bool = False, defaults: Sequence[str] = (),
              node: nfs.Preference = "auto") -> NfsSource:
    """A PV's `spec.nfs`, or its `spec.csi` of our driver, with `spec.mountOptions`."""
    spec = pv.get("spec") or {}
    options = [str(o) for o in spec.get("mountOptions") or []]
    if "nfs" in spec:
        source = spec["nfs"]
        return _source(str(source.get("server", "")), str(source.get("path", "")), options,
                       defaults, node, read_only=read_only or bool(source.get("readOnly")))
    csi = spec.get("csi") or {}
    from csi_like import errors as driver_errors
    from csi_like import nfs as nfs_driver  # only this volume kind needs the driver's ids

    try:
        cls, _, sub_dir = nfs_driver.decode(str(csi.get("volumeHandle", "")))
    except driver_errors.DriverError as e:
        raise NfsVolumeError(str(e)) from e
    return _source(cls.server, cls.share, options, defaults, node, sub_dir=sub_dir,
                   read_only=read_only or bool(csi.get("readOnly")))


# ---------------------------------------------------------------- shared mounts

@dataclass(frozen=True)
class SharedMount:
    """One export as mounted on this node, whichever pods use it."""

    server: str
    export: str
    options: tuple[str, ...]
    mounter: str  # "kernel" or "userspace"

    @property
    def digest(self) -> str:
        identity = json.dumps([self.export, sorted(self.options), self.mounter])
        return hashlib.sha256(identity.encode()).hexdigest()[:16]

    @property
    def source(self) -> str:
        return f"{self.server}:{self.export}"


@dataclass
class Record:
    """What is persisted of one shared mount: the mount itself and the bind targets using it."""

    shared: SharedMount
    users: set[str] = field(default_factory=set)

    def dump(self) -> str:
        s = self.shared
        return json.dumps({"server": s.server, "export": s.export, "options": list(s.options),
                           "mounter": s.mounter, "users": sorted(self.users)}, indent=1)

    @staticmethod
    def load(text: str) -> Record:
        doc = json.loads(text)
        shared = SharedMount(doc["server"], doc["export"], tuple(doc["options"]),
                             doc["mounter"])
        return Record(shared, set(doc["users"]))


@dataclass
class Retry:
    """A failed mount: its message, repeated until `not_before`, then tried again."""

    message: str
    not_before: float
    delay: float


@dataclass
class Health:
    healthy: bool = True
    error: str = ""
    probing_since: float | None = None
    checked: float = 0.0


def resolve_kind(preference: nfs.Preference) -> str:
    """The client an `auto` preference means on this machine: the kernel's when it has one."""
    if preference == "auto":
        return "kernel" if nfs.kernel_supports_nfs() else "userspace"
    return preference


class NfsVolumes:
    """The NFS volume plugin of one kubelet root: shared mounts, bind mounts, their records."""

    def __init__(self, root: Path, preference: nfs.Preference = "auto",
                 default_options: Sequence[str] = (), events: EventSink | None = None,
                 mounters: Mapping[str, nfs.NfsMounter] | None = None) -> None:
        self.root = root
        self.base = root / "mounts" / "nfs"
        self.preference = preference
        self.default_options = tuple(default_options)
        self.events = events
        self._mounters: dict[str, nfs.NfsMounter] = dict(mounters or {})
        self._records: dict[str, Record] = {}
        self._jobs: dict[str, Future[None]] = {}
        self._retries: dict[str, Retry] = {}
        self._health: dict[str, Health] = {}
        self._told: set[tuple[str, str]] = set()  # (pod uid, digest) warned of bad health
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nfs-mount")
        self._adopt()

    # -- sources, with this node's defaults
    def inline(self, volume: Object) -> NfsSource:
        return inline_source(volume, self.default_options, self.preference)

    def persistent(self, pv: Object, read_only: bool) -> NfsSource:
        return pv_source(pv, read_only, self.default_options, self.preference)

    # -- paths and records
    def mount_point(self, shared: SharedMount) -> Path:
        return self.base / shared.server / shared.digest

    def _record_path(self, shared: SharedMount) -> Path:
        return self.base / shared.server / f"{shared.digest}.json"

    def _save(self, record: Record) -> None:
        path = self._record_path(record.shared)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(record.dump())
        os.replace(temporary, path)  # a crash leaves the old record or the new, never half

    def _adopt(self) -> None:
        """Take over the records a previous run left; users no longer mounted are dropped."""
        mounted = {str(m.target) for m in mount.list_mounts()}
        for path in sorted(self.base.glob("*/*.json")):
            try:
                record = Record.load(path.read_text())
            except (OSError, ValueError, KeyError, TypeError):
                logger.warning("ignoring unreadable NFS mount record %s", path)
                continue
            record.users &= mounted
            self._records[record.shared.digest] = record
            self._save(record)
        self.sweep()

    def records(self) -> list[Record]:
        return list(self._records.values())

    def mounter(self, kind: str) -> nfs.NfsMounter:
        if kind not in self._mounters:
            log_dir = str(self.base / "logs")
            try:
                self._mounters[kind] = nfs.choose_mounter(cast(nfs.Preference, kind), log_dir)
            except nfs.MounterUnavailable as e:
                raise NfsVolumeError(f"no {kind} NFS client on this node: {e}") from e
        return self._mounters[kind]

    # -- set up
    def shared_for(self, source: NfsSource) -> SharedMount:
        """Validate everything about a source (nothing runs before this) into its mount."""
        kind = resolve_kind(source.preference)
        try:
            request = nfs.validate_request(source.server, source.export, "/", source.options)
            if kind == "userspace":
                from kubelet.mounters import nfs_fuse

                nfs_fuse.config_from_request(request)  # options this client cannot honour
        except nfs.InvalidMountRequest as e:
            raise NfsVolumeError(str(e)) from e
        return SharedMount(request.server, request.export_path, request.options.raw, kind)

    def setup(self, pod: Object, target: Path, source: NfsSource) -> Path:
        """Make `target` (a pod's volume directory) show the source; returns `target`.

        Raises NfsVolumeError (the pod gets a FailedMount event) or MountPending."""
        shared = self.shared_for(source)
        point = self.mount_point(shared)
        if not self.mounter(shared.mounter).is_mounted(str(point)):
            self._ensure_mounted(shared, point)
        self._add_user(shared, target)
        self._report_health(pod, shared, point)
        if mount.is_mount_point(target) and \
                nfs.mount_device(str(target)) != nfs.mount_device(str(point)):
            # A bind of an earlier mount of the export, dead since (its FUSE process went
            # with the node's container): bind the live one instead.
            lazy_unmount(target)
        if not mount.is_mount_point(target):  # never stat a bind of a possibly dead export
            self._bind(point, source, target)
        return target

    def _ensure_mounted(self, shared: SharedMount, point: Path) -> None:
        job = self._jobs.get(shared.digest)
        if job is None:
            retry = self._retries.get(shared.digest)
            if retry is not None and time.monotonic() < retry.not_before:
                raise NfsVolumeError(retry.message)
            job = self._start_mount(shared, point)
        wait_for_futures([job], timeout=MOUNT_WAIT_S)
        if not job.done():
            raise MountPending(shared.source)
        del self._jobs[shared.digest]
        error = job.exception()
        if error is not None:
            self._failed(shared, error)
        self._retries.pop(shared.digest, None)

    def _start_mount(self, shared: SharedMount, point: Path) -> Future[None]:
        with self._lock:
            record = self._records.setdefault(shared.digest, Record(shared))
            self._save(record)  # the record first: a crash mid-mount leaves a trace to clean
        point.mkdir(parents=True, exist_ok=True)
        mounter = self.mounter(shared.mounter)
        job = self._pool.submit(mounter.mount, shared.server, shared.export, str(point),
                                list(shared.options))
        self._jobs[shared.digest] = job
        return job

    def _failed(self, shared: SharedMount, error: BaseException) -> None:
        message = f"mount failed: {error}"
        if shared.source not in message:
            message = f"mount of {shared.source} failed: {error}"
        previous = self._retries.get(shared.digest)
        delay = min(previous.delay * 2, RETRY_MAX_S) if previous else RETRY_INITIAL_S
        self._retries[shared.digest] = Retry(message, time.monotonic() + delay, delay)
        raise NfsVolumeError(message) from error

    def _add_user(self, shared: SharedMount, target: Path) -> None:
        with self._lock:
            record = self._records.setdefault(shared.digest, Record(shared))
            if str(target) not in record.users:
                record.users.add(str(target))
                self._save(record)

    def _bind(self, point: Path, source: NfsSource, target: Path) -> None:
        if not source.sub_dir:
            mount.bind_mount(point, target, read_only=source.read_only, source_is_dir=True)
            return
        if not os.path.lexists(point / source.sub_dir):
            raise NfsVolumeError(f"directory {source.sub_dir!r} of the volume is missing on "
                                 f"{source.server}:{source.export}")
        try:  # resolved and opened without following links: the server controls its content
            subpath.prepare(point, source.sub_dir, target, source.read_only)
        except subpath.SubPathError as e:
            raise NfsVolumeError(f"volume directory on {source.server}: {e}") from e

    # -- health
    def health(self, shared: SharedMount, point: Path) -> Health:
        """The export's last known health; starts a probe (on its own thread) when due."""
        with self._lock:
            state = self._health.setdefault(shared.digest, Health())
            now = time.monotonic()
            if state.probing_since is None and now - state.checked >= PROBE_INTERVAL_S:
                state.probing_since = now
                threading.Thread(target=self._probe, args=(state, point), daemon=True,
                                 name="nfs-probe").start()
            if state.probing_since is not None and now - state.probing_since > PROBE_TIMEOUT_S:
                return Health(False, f"no answer within {PROBE_TIMEOUT_S:.0f}s")
            return Health(state.healthy, state.error)

    def _probe(self, state: Health, point: Path) -> None:
        try:
            os.statvfs(point)  # a round trip to the server, boxed by the client's timeo
            healthy, error = True, ""
        except OSError as e:
            healthy, error = False, e.strerror or str(e)
        with self._lock:
            state.healthy, state.error = healthy, error
            state.probing_since, state.checked = None, time.monotonic()

    def _report_health(self, pod: Object, shared: SharedMount, point: Path) -> None:
        state = self.health(shared, point)
        key = (str(pod["metadata"]["uid"]), shared.digest)
        if not state.healthy and key not in self._told:
            self._told.add(key)
            self._event(pod, "Warning", "VolumeConditionAbnormal",
                        f"NFS server {shared.server} is not responding for export "
                        f"{shared.export}: {state.error}")
        elif state.healthy and key in self._told:
            self._told.discard(key)
            self._event(pod, "Normal", "VolumeConditionNormal",
                        f"NFS server {shared.server} is responding again for export "
                        f"{shared.export}")

    def _event(self, pod: Object, kind: str, reason: str, message: str) -> None:
        if self.events is not None:
            self.events(pod, kind, reason, message)

    # -- tear down
    def release_pod(self, pod_dir: Path) -> None:
        """Lazily unmount the pod's NFS binds, forget it as a user, release unused mounts."""
        for point in mount.mounts_under(pod_dir):
            if point.fstype in NFS_FSTYPES:
                lazy_unmount(point.target)
        prefix = str(pod_dir).rstrip("/") + "/"
        self._told = {told for told in self._told if told[0] != pod_dir.name}
        with self._lock:
            for record in self._records.values():
                left = {user for user in record.users if not user.startswith(prefix)}
                if left != record.users:
                    record.users = left
                    self._save(record)
        self.sweep()

    def sweep(self) -> None:
        """Unmount and forget every shared mount nobody uses (and none is being made)."""
        for digest, record in list(self._records.items()):
            if record.users or digest in self._jobs:
                continue
            point = self.mount_point(record.shared)
            try:
                self.mounter(record.shared.mounter).unmount(str(point), lazy=True)
            except (nfs.NfsMountError, NfsVolumeError) as e:
                logger.warning("NFS mount %s not released: %s", point, e)
                continue
            if not mount.is_mount_point(point):
                with self._lock:
                    self._records.pop(digest, None)
                    self._health.pop(digest, None)
                    self._record_path(record.shared).unlink(missing_ok=True)
                if point.is_dir():
                    os.rmdir(point)  # rmdir, never rmtree: an export's data is not ours

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def lazy_unmount(target: Path) -> None:
    """Detach `target` at once, even when its server is dead (`umount -l`, no path lookup
    beyond the mount table's own spelling)."""
    while mount.is_mount_point(target):
        try:
            done = subprocess.run(["umount", "-l", "--no-canonicalize", str(target)],
                                  capture_output=True, text=True, timeout=UNMOUNT_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as e:
            raise mount.MountError(f"umount -l {target} timed out") from e
        if done.returncode != 0:
            raise mount.MountError(f"umount -l {target}: {done.stderr.strip()}")
