"""emptyDir `sizeLimit` on disk: measure what each pod wrote, and evict the pod that wrote
too much, as the kubelet's eviction manager does (`localStorageEviction`).

A disk-backed emptyDir is a plain directory, so nothing stops a container from filling the
node's disk past the volume's `sizeLimit`; Kubernetes measures the volume periodically and
evicts the pod once its usage exceeds the limit. Here a monitor thread walks each limited
emptyDir with `os.scandir` (du's rule: allocated blocks, hard links once, symlinks not
followed, no other filesystem crossed) and records an `Eviction`, which the pod's next sync
carries out: containers stopped, phase Failed, reason Evicted, Kubernetes' message, an
Evicted event. A `medium: Memory` emptyDir is a tmpfs of `sizeLimit` and cannot overflow.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from apimachinery import quantity

Object = dict[str, Any]
logger = logging.getLogger(__name__)
REASON = "Evicted"
# The eviction manager's emptyDirMessageFmt, trailing space included.
EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{volume}" exceeds the limit "{limit}". '
# Kubernetes' immediateEvictionGracePeriodSeconds: local-storage evictions are not graceful.
GRACE_PERIOD_S = 1
BLOCK = 512  # st_blocks is counted in 512-byte units whatever the filesystem's block size
# A walk may take at most this share of the monitor's time: a huge emptyDir is measured less
# often rather than keeping a core busy.
MAX_DUTY = 0.05


@dataclass(frozen=True)
class Eviction:
    """Why a pod must go: the emptyDir that outgrew its limit."""

    volume: str
    limit: str

    @property
    def message(self) -> str:
        return EMPTY_DIR_MESSAGE.format(volume=self.volume, limit=self.limit)


def disk_usage(path: Path) -> int:
    """Bytes allocated under `path` (as `du -s -B1` counts them); 0 when it is gone."""
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return 0
    seen: set[tuple[int, int]] = set()
    total = top.st_blocks * BLOCK
    pending = [str(path)]
    while pending:
        total += _scan(pending.pop(), top.st_dev, seen, pending)
    return total


def _scan(directory: str, device: int, seen: set[tuple[int, int]], pending: list[str]) -> int:
    total = 0
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return 0  # removed while walking: the container is still writing
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if st.st_dev != device:
            continue  # a mount inside the volume is not the volume's usage
        if st.st_nlink > 1 and not entry.is_dir(follow_symlinks=False):
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * BLOCK
        if entry.is_dir(follow_symlinks=False):
            pending.append(entry.path)
    return total


def limited_disk_empty_dirs(pod: Object) -> list[tuple[str, Fraction, str]]:
    """(volume name, limit in bytes, canonical limit) of each disk emptyDir with a positive
    sizeLimit."""
    out = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if source is None or source.get("medium") == "Memory" or not source.get("sizeLimit"):
            continue
        try:
            limit = quantity.parse_quantity(str(source["sizeLimit"]))
        except quantity.QuantityError:
            continue
        if limit > 0:
            out.append((volume["name"], limit, quantity.canonical_quantity(
                str(source["sizeLimit"]))))
    return out


def over_limit(pod: Object, usage: Callable[[str], int]) -> Eviction | None:
    """The first disk emptyDir of `pod` whose usage is strictly above its sizeLimit
    (`usage` gives a volume's bytes by name), as `emptyDirLimitEviction` decides."""
    for name, limit, canonical in limited_disk_empty_dirs(pod):
        if usage(name) > limit:
            return Eviction(name, canonical)
    return None


class EmptyDirMonitor:
    """Measures the limited disk emptyDirs of running pods every `period` seconds and
    remembers which pods must be evicted; `on_eviction` wakes the pod syncs."""

    def __init__(self, pods: Callable[[], Iterable[Object]],
                 volume_dir: Callable[[str, str], Path], period: float,
                 on_eviction: Callable[[], None]) -> None:
        self.pods, self.volume_dir, self.period = pods, volume_dir, period
        self.on_eviction = on_eviction
        self.found: dict[str, Eviction] = {}
        self.lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._run, name="emptydir-monitor", daemon=True).start()

    def pending(self, uid: str) -> Eviction | None:
        with self.lock:
            return self.found.get(uid)

    def forget(self, uid: str) -> None:
        with self.lock:
            self.found.pop(uid, None)

    def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self.check_all()
            except Exception:  # the monitor must outlive one bad walk
                logger.exception("emptyDir usage check failed")
            spent = time.monotonic() - started
            time.sleep(max(self.period - spent, spent / MAX_DUTY - spent, 0.1))

    def check_all(self) -> None:
        for pod in self.pods():
            uid = pod["metadata"]["uid"]
            if self.pending(uid) or not _measurable(pod):
                continue
            found = over_limit(pod, self._usage_of(uid))
            if found is not None:
                logger.info("pod %s: %s", pod["metadata"].get("name"), found.message)
                with self.lock:
                    self.found[uid] = found
                self.on_eviction()


    def _usage_of(self, uid: str) -> Callable[[str], int]:
        return lambda name: disk_usage(self.volume_dir(uid, name))


def _measurable(pod: Object) -> bool:
    """Only live pods with a limited disk emptyDir are walked."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return bool(limited_disk_empty_dirs(pod))
