"""`storagelab images build`: busybox from Debian's static binary, runnable with no registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from storagelab import images
from tests.conftest import REPO
from tests.node.harness import require_node_env


def test_build_busybox_from_the_static_binary() -> None:
    require_node_env()
    result = subprocess.run([sys.executable, "-m", "storagelab.cli", "images", "build"],
                            cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert "built busybox:latest" in result.stdout
    import docker
    out = docker.from_env().containers.run("busybox:latest", ["sh", "-c", "echo $((6*7))"],
                                           remove=True)
    assert out == b"42\n"


def test_a_dynamic_binary_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF" + b"\0" * 60 + b"/lib64/ld-linux-x86-64.so.2")
    with pytest.raises(images.ImageBuildError, match="static busybox"):
        images.build_busybox(binary=fake)
    with pytest.raises(images.ImageBuildError, match="busybox-static"):
        images.build_busybox(binary=tmp_path / "missing")
