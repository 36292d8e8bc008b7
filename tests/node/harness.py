"""A real apiserver and a real kubelet process for the node tests, and helpers to wait on
pods and to look inside their Docker containers."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO, ApiServer, require_real, terminate

Object = dict[str, Any]


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def require_node_env() -> None:
    require_real(os.geteuid() == 0, "the kubelet tests mount filesystems: run as root")
    require_real(docker_available(), "Docker engine not running (dockerd)")
    require_real(Path("/bin/busybox").exists(), "busybox-static is not installed")


class KubeletProcess:
    """`storagelab kubelet --node NAME` against `server`, with its own root directory."""

    def __init__(self, server: ApiServer, node: str, root: Path, backoff: float = 1.0) -> None:
        self.server, self.node, self.root, self.backoff = server, node, root, backoff
        self.log = root.parent / f"kubelet-{node}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> KubeletProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "storagelab.cli", "-v", "kubelet", "--node", self.node,
                "--data-dir", str(self.server.data_dir), "--root-dir", str(self.root),
                "--restart-backoff", str(self.backoff)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
        return self

    def stop(self) -> None:
        terminate(self.process)

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0,
             every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def get_pod(api: httpx.Client, namespace: str, name: str) -> Object | None:
    r = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    return r.json() if r.status_code == 200 else None


def wait_phase(api: httpx.Client, namespace: str, name: str, phase: str,
               timeout: float = 40.0) -> Object:
    def check() -> Object | None:
        pod = get_pod(api, namespace, name)
        return pod if pod and (pod.get("status") or {}).get("phase") == phase else None
    result: Object = wait_for(f"pod {name} {phase}", check, timeout)
    return result


def docker_exec(pod: Object, container: str, *cmd: str) -> str:
    """Run `cmd` in the pod's container through Docker (as `kubectl exec` would)."""
    import docker
    uid = pod["metadata"]["uid"]
    client = docker.from_env()
    found = client.containers.list(filters={"label": [
        f"io.kubernetes.pod.uid={uid}", f"io.kubernetes.container.name={container}"]})
    assert found, f"no running container {container} for pod {pod['metadata']['name']}"
    code, out = found[0].exec_run(list(cmd))
    assert code == 0, f"{cmd} exited {code}: {out!r}"
    return str(out.decode())
