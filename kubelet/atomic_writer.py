"""The atomic writer: a configMap or secret volume changes all at once, never file by file.

As Kubernetes' `AtomicWriter` does, the payload is written into a fresh timestamped
directory (`..2026_11_27_21_00_00.123456789`), a `..data_tmp` symlink to it is renamed over
`..data` (rename is atomic), and each user-visible top-level name is a symlink through
`..data`. A reader therefore sees either the old set of files or the new one, and a
container that bind-mounts the volume directory sees updates without a remount.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DATA_DIR_NAME = "..data"
DATA_TMP_NAME = "..data_tmp"


class InvalidPayloadPath(ValueError):
    """A payload path is absolute, contains `..`, or starts with `..`."""


@dataclass(frozen=True)
class FileProjection:
    """One file of a payload: its bytes and permission bits."""

    data: bytes
    mode: int


def validate_path(path: str) -> PurePosixPath:
    """A payload path as Kubernetes allows it: relative, no `..` element, not `..`-prefixed."""
    p = PurePosixPath(path)
    if not path or p.is_absolute():
        raise InvalidPayloadPath(f"{path!r}: must be a relative path")
    if any(part == ".." for part in p.parts):
        raise InvalidPayloadPath(f"{path!r}: must not contain '..'")
    if path.startswith(".."):
        raise InvalidPayloadPath(f"{path!r}: must not start with '..'")
    return p


def _timestamped_dir(target: Path) -> Path:
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + secrets.token_hex(5)
    path = target / stamp
    path.mkdir(mode=0o755)
    return path


def _write_payload(directory: Path, payload: Mapping[str, FileProjection]) -> None:
    for name, item in payload.items():
        path = directory / validate_path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_bytes(item.data)
        os.chmod(path, item.mode)  # chmod, since the umask would narrow open()'s mode


def _current(target: Path) -> Path | None:
    link = target / DATA_DIR_NAME
    return target / os.readlink(link) if link.is_symlink() else None


def _same(directory: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Whether `directory` already holds exactly `payload` (so nothing is rewritten)."""
    found = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
    if found != set(payload):
        return False
    for name, item in payload.items():
        path = directory / name
        if path.read_bytes() != item.data or (path.stat().st_mode & 0o7777) != item.mode:
            return False
    return True


def write(target: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Make `target` show exactly `payload`; returns whether anything changed."""
    for name in payload:
        validate_path(name)
    target.mkdir(parents=True, exist_ok=True)
    old = _current(target)
    if old is not None and old.is_dir() and _same(old, payload):
        return False
    new = _timestamped_dir(target)
    _write_payload(new, payload)
    tmp = target / DATA_TMP_NAME
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(new.name, tmp)
    os.rename(tmp, target / DATA_DIR_NAME)
    _update_user_links(target, payload)
    if old is not None and old != new and old.exists():
        shutil.rmtree(old)
    return True


def _update_user_links(target: Path, payload: Mapping[str, FileProjection]) -> None:
    wanted = {PurePosixPath(name).parts[0] for name in payload}
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in wanted and entry.is_symlink():
            entry.unlink()
    for top in wanted:
        link = target / top
        if not link.is_symlink():
            os.symlink(f"{DATA_DIR_NAME}/{top}", link)
