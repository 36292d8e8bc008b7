"""subPath: mount a path inside a volume, never a path outside it.

A subPath is user input naming a path inside a volume whose content the user (or another
pod) controls, so a symlink in it may point anywhere on the host (CVE-2017-1002101). As
Kubernetes does, the path is resolved, checked to stay inside the volume, then opened
component by component with O_NOFOLLOW, and what was opened (not the path string) is
bind-mounted, through /proc/<pid>/fd, to `<pod dir>/volume-subpaths/<volume>/<container>/<i>`.
The container mounts that bind, so a symlink swapped in after the check changes nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from kubelet import mount


class SubPathError(Exception):
    """A subPath could not be prepared; the message names the subPath."""


class SubPathEscape(SubPathError):
    """The subPath resolves outside its volume."""


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def _check_relative(sub_path: str) -> PurePosixPath:
    p = PurePosixPath(sub_path)
    if p.is_absolute() or ".." in p.parts:
        raise SubPathError(f"subPath {sub_path!r} must be a relative path without '..'")
    return p


def _make_dirs(volume: str, sub_path: PurePosixPath) -> None:
    """Create missing directories of the subPath, checking each existing step stays inside."""
    current = volume
    for part in sub_path.parts:
        current = os.path.join(current, part)
        if os.path.lexists(current):
            if not _within(os.path.realpath(current), volume):
                raise SubPathEscape(f"subpath {current!r} not within volume path {volume!r}")
            continue
        os.mkdir(current, 0o755)


def _open_no_follow(volume: str, sub_path: PurePosixPath) -> int:
    """An O_PATH descriptor of the subPath, opened with no symlink followed on the way."""
    fd = os.open(volume, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY)
    try:
        for part in sub_path.parts:
            child = os.open(part, os.O_PATH | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise SubPathEscape(f"subpath {str(sub_path)!r}: symlink in the path")
        return fd
    except BaseException:
        os.close(fd)
        raise


def resolve_within(volume_path: Path, sub_path: str) -> Path:
    """The real path a subPath names inside its volume, created if missing; refuses escapes."""
    rel = _check_relative(sub_path)
    volume = os.path.realpath(volume_path)
    _make_dirs(volume, rel)
    resolved = os.path.realpath(os.path.join(volume, *rel.parts))
    if not _within(resolved, volume):
        raise SubPathEscape(f"subpath {resolved!r} not within volume path {volume!r}")
    return Path(resolved)


def prepare(volume_path: Path, sub_path: str, target: Path, read_only: bool = False) -> Path:
    """Bind the subPath of a volume onto `target` (a kubelet-owned path); returns `target`."""
    resolved = resolve_within(volume_path, sub_path)
    volume = os.path.realpath(volume_path)
    fd = _open_no_follow(volume, PurePosixPath(os.path.relpath(resolved, volume)))
    try:
        source = Path(f"/proc/{os.getpid()}/fd/{fd}")
        mount.bind_mount(source, target, read_only=read_only, source_is_dir=resolved.is_dir())
    finally:
        os.close(fd)
    return target
