"""`storagelab up` (what `make up` runs), driven with the real kubectl as the README's first
session does: one Ready node, the default class `standard`, a claim with no class Bound and
mounted into a pod; stopped and started again on the same data dir, the pod and its data are
still there (the kubelet adopts its containers, as a restarted kubelet does, so a stop is
not a pod deletion); a clean stop leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import REPO, free_port, kubectl_available, require_real
from tests.node.harness import require_node_env

T = TypeVar("T")

CLAIM_AND_POD = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 10Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo kept >> /data/f; sleep 3600"]
    readinessProbe:
      exec: {command: ["cat", "/data/f"]}
      periodSeconds: 1
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
"""


class Up:
    """One `storagelab up` process on `data_dir` (its own session, so a signal reaches it
    and not pytest)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Up:
        log = open(self.data_dir.parent / "up.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "storagelab.cli", "up", "--data-dir", str(self.data_dir),
             "--port", str(self.port)], cwd=REPO, stdout=log, stderr=log,
            start_new_session=True)
        log.close()
        eventually(lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                   90, "the API answers")
        return self

    def stop(self) -> int:
        """SIGTERM, as `kill` or a service manager sends; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None
                ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.data_dir / "kubeconfig"),
                               *args], input=stdin, capture_output=True, text=True,
                              check=check, timeout=60)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            got = None
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def processes_using(data_dir: Path) -> list[str]:
    """Command lines of live processes started on `data_dir`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline:
            found.append(cmdline)
    return found


def mounts_under(path: Path) -> list[str]:
    with open("/proc/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(f"{path}/")]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    require_node_env()
    require_real(kubectl_available(), "kubectl is not installed")
    running = Up(tmp_path / "state", free_port())
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.stop()
        # Pods outlive a stopped `up` by design; the test's own must not outlive the test.
        subprocess.run("docker ps -aq --filter name=_writer_ | xargs -r docker rm -f",
                       shell=True, capture_output=True, check=False)
        for point in sorted(mounts_under(running.data_dir), reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def ready_pod(up: Up, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = up.get("pod", name)
    conditions = pod.get("status", {}).get("conditions") or ()
    return pod if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) \
        else None


def test_up_serves_the_first_session_and_a_restart_keeps_pods_and_data(up: Up) -> None:
    up.start()
    nodes = eventually(lambda: [n for n in up.get("nodes")["items"] if any(
        c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])],
        60, "a Ready node")
    assert len(nodes) == 1
    classes = up.get("storageclass")["items"]
    assert [(c["metadata"]["name"], c["metadata"]["annotations"].get(
        "storageclass.kubernetes.io/is-default-class")) for c in classes] == [
        ("standard", "true")]

    up.kubectl("apply", "-f", "-", stdin=CLAIM_AND_POD)
    pod = eventually(lambda: ready_pod(up, "writer"), 90, "the pod Ready")
    claim = up.get("pvc", "data")
    assert claim["status"]["phase"] == "Bound"
    assert claim["spec"]["storageClassName"] == "standard"
    uid = pod["metadata"]["uid"]

    assert up.stop() == 0
    assert processes_using(up.data_dir) == []

    up.start()
    again = eventually(lambda: ready_pod(up, "writer"), 90, "the pod Ready after the restart")
    assert again["metadata"]["uid"] == uid
    # The pod's status survives in the store, so it reads Ready before the new kubelet
    # serves; exec answers once it does. One "kept" line: the container was not run again.
    content = eventually(lambda: up.kubectl("exec", "writer", "--", "cat", "/data/f").stdout,
                         60, "exec through the restarted kubelet")
    assert content == "kept\n"

    up.kubectl("delete", "pod", "writer", "--wait=true", "--timeout=60s")
    up.kubectl("delete", "pvc", "data", "--wait=true", "--timeout=60s")
    assert up.stop() == 0
    assert processes_using(up.data_dir) == []
