"""The docker-compose lab end to end: `lab.sh up`, every demo and reliability check, `lab.sh down`.

This is what `make lab` and `make lab-test` do, run as one module so CI keeps the lab working.
It builds the images that are missing or stale (about 2.5 minutes for the offline base the
first time, seconds for a changed checkout), brings the lab up once on a free loopback port,
runs each demo script under examples/, then the reliability checks under examples/reliability
in their numbered order (stop and start the whole lab, kill the NFS server, kill node-2's
kubelet: the last brings node-2 back itself), each exiting non-zero when what it shows does
not hold, and always removes the lab with its data. A lab someone already runs on this
machine is never touched: the module skips instead.
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
# Numbered: they run in this order, after the demos (the last one takes node-2 down).
CHECKS = sorted((REPO / "examples" / "reliability").glob("[0-9]*.sh"))


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


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("check", CHECKS, ids=[c.stem for c in CHECKS])
def test_reliability_holds_on_the_lab(lab_env: dict[str, str], check: Path) -> None:
    result = subprocess.run(["sh", str(check)], env=lab_env, capture_output=True, text=True,
                            check=False, timeout=300)
    assert result.returncode == 0, f"{check.stem}:\n{result.stdout}\n{result.stderr}"
    assert "PASS" in result.stdout
    print(result.stdout)  # the durations and events each check reports, for `pytest -s`


def test_every_demo_is_collected() -> None:
    # The four demos of the issue; a renamed or lost script must not pass silently.
    assert {d.parent.name for d in DEMOS} >= {"database-nfs", "local-pv", "config-secret",
                                              "emptydir"}
    # The three reliability checks, the node going down last.
    assert [c.stem for c in CHECKS] == ["1-stop-start", "2-nfs-outage", "3-node-down"]
