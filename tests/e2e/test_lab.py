"""The docker-compose lab end to end: `lab.sh up`, every demo under examples/, `lab.sh down`.

This is what `make lab` and `make lab-test` do, run as one test so CI keeps the lab working.
It builds the images that are missing (about 2.5 minutes for the offline base the first
time), brings the lab up on a free loopback port, runs each demo script (each exits non-zero
when what it shows does not hold) and always removes the lab with its data. A lab someone
already runs on this machine is never touched: the test skips instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, require_real

LAB = REPO / "lab" / "lab.sh"
DEMOS = sorted((REPO / "examples").glob("*/run.sh"))


def _compose_available() -> bool:
    if shutil.which("docker-compose"):
        return True
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


def _lab_running() -> bool:
    out = subprocess.run(["docker", "ps", "-q", "--filter",
                          "label=com.docker.compose.project=storagelab-lab"],
                         capture_output=True, text=True, check=False).stdout
    return bool(out.strip())


@pytest.fixture(scope="module")
def lab_env() -> Iterator[dict[str, str]]:
    require_real(shutil.which("docker") is not None, "docker is not installed")
    require_real(_compose_available(), "neither docker compose nor docker-compose")
    require_real(shutil.which("kubectl") is not None, "kubectl is not installed")
    require_real(os.geteuid() == 0, "the lab needs root (a shared mount point)")
    require_real(shutil.which("mmdebstrap") is not None, "mmdebstrap builds the lab's base image")
    if _lab_running():
        pytest.skip("a storagelab lab is already running here; not touching it")
    env = {**os.environ, "LAB_API_PORT": str(free_port()), "DB": "sqlite"}
    try:
        subprocess.run([str(LAB), "up"], env=env, check=True, timeout=400)
        yield {**env, "KUBECONFIG": str(REPO / "lab" / "kubeconfig")}
    finally:
        subprocess.run([str(LAB), "down", "--volumes"], env=env, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("demo", DEMOS, ids=[d.parent.name for d in DEMOS])
def test_demo_holds_on_the_lab(lab_env: dict[str, str], demo: Path) -> None:
    result = subprocess.run(["sh", str(demo)], env=lab_env, capture_output=True, text=True, check=False,
                            timeout=240)
    assert result.returncode == 0, f"{demo.parent.name}:\n{result.stdout}\n{result.stderr}"
    assert "PASS" in result.stdout


def test_every_demo_is_collected() -> None:
    # The four demos of the issue; a renamed or lost script must not pass silently.
    assert {d.parent.name for d in DEMOS} >= {"database-nfs", "local-pv", "config-secret",
                                              "emptydir"}
