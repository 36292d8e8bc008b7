"""Hard capacity for local volumes: a sparse file, formatted ext4, loop-mounted on the volume.

A directory on a shared disk has no size of its own; backing it with its own file system of
exactly the requested size makes the kernel answer ENOSPC past it. The file is sparse, so an
empty volume costs almost nothing, and ext4 grows online (resize2fs on the mounted loop
device after `losetup -c`), so expansion needs no unmount. Every step is idempotent (a
retry after a crash finds the file, the file system or the mount already there), runs as an
argument list without a shell, and is time-boxed. Needs root, loop devices and e2fsprogs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from csi_like import errors

TOOL_TIMEOUT_S = 120.0
MIN_HARD_BYTES = 16 * 1024 * 1024  # mkfs.ext4 needs room for its journal and tables
TOOLS = ("mkfs.ext4", "resize2fs", "e2fsck", "losetup", "mount", "umount", "blkid")


def round_size(capacity_bytes: int) -> int:
    """The backing file size: the request rounded up to a MiB, at least MIN_HARD_BYTES."""
    mib = 1024 * 1024
    return max(MIN_HARD_BYTES, -(-capacity_bytes // mib) * mib)


def unavailable_reason() -> str | None:
    """Why hard capacity cannot work on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "hard capacity needs root (loop mounts)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"hard capacity needs {', '.join(missing)} (Debian e2fsprogs, mount)"
    if not os.path.exists("/dev/loop-control"):
        return "hard capacity needs loop devices (/dev/loop-control is missing)"
    return None


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise errors.TemporaryError(f"{argv[0]} did not finish in {TOOL_TIMEOUT_S:.0f}s") from e
    except FileNotFoundError as e:
        raise errors.PermanentError(f"{argv[0]} is not installed (Debian e2fsprogs)") from e
    if done.returncode != 0:
        raise errors.PermanentError(f"{' '.join(argv[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def mount_source(target: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The device mounted on `target` (the visible, last mount), or None."""
    wanted = os.path.normpath(target)
    found: str | None = None
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            if _unescape(fields[4]) == wanted:
                found = _unescape(fields[separator + 2])
    return found


def is_mounted(target: str) -> bool:
    return mount_source(target) is not None


def _formatted(image: str) -> bool:
    done = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", image],
                          capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    return done.stdout.strip() == "ext4"


def ensure_backing(image: str, size_bytes: int, uid: int, gid: int) -> None:
    """Create the sparse file and its ext4 file system unless they exist already."""
    if not os.path.exists(image):
        with open(image, "xb") as backing:
            backing.truncate(size_bytes)
    if not _formatted(image):
        # -m 0: no blocks reserved for root, so the user gets the whole size.
        _run(["mkfs.ext4", "-F", "-q", "-m", "0", "-E", f"root_owner={uid}:{gid}", image])


def ensure_mounted(image: str, target: str) -> None:
    """Loop-mount `image` on the directory `target` unless already mounted there."""
    if is_mounted(target):
        return
    _run(["mount", "-t", "ext4", "-o", "loop,nosuid,nodev", image, target])


def unmount(target: str) -> None:
    """Unmount (the loop device is released with it: mount -o loop sets autoclear)."""
    if is_mounted(target):
        _run(["umount", target])


def _loop_device(image: str) -> str:
    out = _run(["losetup", "-n", "-O", "NAME", "-j", os.path.realpath(image)])
    devices = out.split()
    if not devices:
        raise errors.PermanentError(f"no loop device backs {image}: is the volume mounted?")
    return devices[0]


def grow(image: str, target: str, size_bytes: int) -> None:
    """Grow the file, the loop device and the mounted ext4 to `size_bytes`: online where the
    kernel lets us (CAP_SYS_RESOURCE), else offline when only `target` uses the volume."""
    if os.path.getsize(image) < size_bytes:
        with open(image, "r+b") as backing:
            backing.truncate(size_bytes)
    ensure_mounted(image, target)
    device = _loop_device(image)
    _run(["losetup", "-c", device])
    try:
        _run(["resize2fs", device])
    except errors.PermanentError as e:
        if "Permission denied" not in str(e):
            raise
        _grow_offline(image, target, device)


def mounts_of(device: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points whose source is `device` (the volume itself and its bind mounts)."""
    wanted = os.path.realpath(device)
    points: list[str] = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            if _unescape(fields[separator + 2]) == wanted:
                points.append(_unescape(fields[4]))
    return points


def _grow_offline(image: str, target: str, device: str) -> None:
    """Without CAP_SYS_RESOURCE (containers) ext4 cannot grow mounted: unmount, check,
    resize, remount; only safe when no pod has the volume bind-mounted."""
    others = [p for p in mounts_of(device) if p != os.path.normpath(target)]
    if others:
        raise errors.TemporaryError(f"cannot grow {target} online here (no CAP_SYS_RESOURCE) "
                                    f"while it is in use at {', '.join(others)}; retrying",
                                    delay=30.0)
    unmount(target)
    try:
        _run(["e2fsck", "-f", "-p", image])
        _run(["resize2fs", image])
    finally:
        ensure_mounted(image, target)
