"""hostPath type checks, as Kubernetes' hostPath plugin makes them before a pod starts.

The `type` of a hostPath volume is a promise about what is at the path; the kubelet checks
it (creating the path for the `...OrCreate` types) and refuses the mount with Kubernetes'
own message otherwise, so a pod never runs against something it did not expect.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
         "CharDevice", "BlockDevice")


class HostPathTypeError(Exception):
    """What is at the path is not what the volume's type says."""


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None


def _expect(path: Path, test: Callable[[int], bool], what: str) -> None:
    mode = _mode(path)
    if mode is None:
        raise HostPathTypeError(f"hostPath type check failed: {path} does not exist")
    if not test(mode):
        raise HostPathTypeError(f"hostPath type check failed: {path} is not {what}")


def check(path: Path, kind: str) -> None:
    """Check (and for the `...OrCreate` types, create) `path` as hostPath type `kind` says."""
    if kind not in TYPES:
        raise HostPathTypeError(f"hostPath type check failed: unknown type {kind!r}")
    if kind == "DirectoryOrCreate" and _mode(path) is None:
        path.mkdir(mode=0o755, parents=True)
        return
    if kind == "FileOrCreate" and _mode(path) is None:
        # Kubernetes creates the file but not its parent directories.
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        return
    tests: dict[str, tuple[Callable[[int], bool], str]] = {
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "Directory": (stat.S_ISDIR, "a directory"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "File": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket file"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if kind in tests:
        _expect(path, *tests[kind])
