"""Mounting on the node: bind mounts, tmpfs, unmounting, and reading what is mounted.

The kubelet keeps every mount it makes under its root directory, so /proc/self/mountinfo
alone says what is mounted for which pod (the actual state of the volume manager), and a
restarted kubelet can find and clean what a previous run left. Every call runs `mount` or
`umount` with an argument list (never a shell) and a time box, and is idempotent: mounting
what is already mounted, or unmounting what is not, is success.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MOUNT_TIMEOUT_S = 30.0


class MountError(Exception):
    """A mount or unmount was attempted and failed; the message carries the tool's words."""


class StillMounted(MountError):
    """A directory cannot be removed because something below it is still mounted."""


@dataclass(frozen=True)
class MountPoint:
    """One line of /proc/self/mountinfo that matters to the kubelet."""

    target: Path
    fstype: str
    source: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountPoint]:
    """The mounts listed in a mountinfo text (proc(5) format)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        mounts.append(MountPoint(Path(_unescape(fields[4])), tail[0], _unescape(tail[1]),
                                 tuple(fields[5].split(","))))
    return mounts


def list_mounts() -> list[MountPoint]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def mounts_under(base: Path) -> list[MountPoint]:
    """Mounts at or below `base`, deepest first (the order to unmount them)."""
    base = Path(os.path.abspath(base))
    found = [m for m in list_mounts() if m.target == base or base in m.target.parents]
    return sorted(found, key=lambda m: len(m.target.parts), reverse=True)


def is_mount_point(path: Path) -> bool:
    path = Path(os.path.abspath(path))
    return any(m.target == path for m in list_mounts())


def _run(args: Sequence[str]) -> None:
    try:
        result = subprocess.run(list(args), capture_output=True, text=True,
                                timeout=MOUNT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise MountError(f"{args[0]} timed out after {MOUNT_TIMEOUT_S:.0f}s") from e
    if result.returncode != 0:
        raise MountError(f"{' '.join(args)}: {result.stderr.strip() or result.returncode}")


def mount_tmpfs(target: Path, size_bytes: int | None = None, mode: int = 0o755) -> None:
    """A tmpfs at `target` (created if missing); `size_bytes` caps it."""
    target.mkdir(parents=True, exist_ok=True)
    if is_mount_point(target):
        return
    options = [f"mode={mode:o}"] + ([f"size={size_bytes}"] if size_bytes else [])
    _run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(target)])


def bind_mount(source: Path, target: Path, read_only: bool = False,
               source_is_dir: bool | None = None) -> None:
    """Bind `source` onto `target` (a directory or file made to match), read-only if asked."""
    if source.is_dir() if source_is_dir is None else source_is_dir:
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    if not is_mount_point(target):
        _run(["mount", "--bind", str(source), str(target)])
    if read_only:
        # A bind mount ignores "ro" on the first call; only a remount makes it read-only.
        _run(["mount", "-o", "remount,bind,ro", str(target)])


def unmount(target: Path) -> None:
    """Unmount `target` until nothing is mounted there (stacked mounts included)."""
    while is_mount_point(target):
        _run(["umount", str(target)])


def unmount_all_under(base: Path) -> None:
    for mount in mounts_under(base):
        unmount(mount.target)


def remove_tree(path: Path) -> None:
    """Remove a kubelet-owned tree, refusing while anything below it is mounted.

    The refusal is what keeps a still-mounted PersistentVolume's data from being deleted
    along with the pod's directory.
    """
    if not os.path.lexists(path):
        return
    left = mounts_under(path)
    if left:
        raise StillMounted(f"{path}: still mounted: {', '.join(str(m.target) for m in left)}")
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    shutil.rmtree(path)
