"""A real apiserver and a real kubelet process for the node tests, and helpers to create
pods and claims, wait on them, read their events and look inside their Docker containers."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from storagelab import images
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


K = TypeVar("K", bound=KubeletProcess)


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


def create(api: httpx.Client, path: str, body: Object) -> Object:
    r = api.post(path, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def busybox(name: str, script: str, **extra: object) -> Object:
    return {"name": name, "image": "busybox:latest", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


MERGE = {"Content-Type": "application/merge-patch+json"}


def bound_claim(api: httpx.Client, ns: str, claim: str, host_dir: Path,
                access_modes: tuple[str, ...] = ("ReadWriteOnce",)) -> str:
    """A hostPath PV pre-bound to a claim, both marked Bound (no binder runs in these
    tests); returns the PV's name."""
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    create(api, "/api/v1/persistentvolumes", {
        "metadata": {"name": pv}, "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": list(access_modes),
            "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"},
            "claimRef": {"namespace": ns, "name": claim},
            "persistentVolumeReclaimPolicy": "Retain"}})
    create(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims", {
        "metadata": {"name": claim}, "spec": {
            "accessModes": list(access_modes), "volumeName": pv,
            "resources": {"requests": {"storage": "1Gi"}}}})
    for path in (f"/api/v1/persistentvolumes/{pv}/status",
                 f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}/status"):
        r = api.patch(path, json={"status": {"phase": "Bound"}}, headers=MERGE)
        assert r.status_code == 200, r.text
    return pv


def events_of(api: httpx.Client, ns: str, pod: str) -> list[Object]:
    items = api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if e["involvedObject"]["name"] == pod]


def mounts_under(root: Path) -> list[str]:
    text = Path("/proc/mounts").read_text()
    return [line for line in text.splitlines() if str(root) in line.split()[1]]


def kubelet_containers(root: Path) -> list[str]:
    import docker
    # sparse: the list call alone (no inspect that races with the kubelet removing them)
    return [(c.attrs.get("Names") or ["/"])[0].lstrip("/") for c in docker.from_env()
            .containers.list(all=True, sparse=True,
                             filters={"label": f"io.storagelab.kubelet.root={root}"})]


def pod_containers(pod: Object, kind: str = "container") -> list[Object]:
    """The Docker containers of a pod (sparse list entries: Labels, State, Names); `kind`
    "podsandbox" gives its sandbox instead."""
    import docker
    return [c.attrs for c in docker.from_env().containers.list(
        all=True, sparse=True,
        filters={"label": [f"io.kubernetes.pod.uid={pod['metadata']['uid']}",
                           f"io.kubernetes.docker.type={kind}"]})]


def delete_all_pods(api: httpx.Client) -> None:
    """Delete every pod gracefully and wait for the kubelets to confirm each deletion."""
    for pod in api.get("/api/v1/pods").json()["items"]:
        api.delete(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/"
                   f"{pod['metadata']['name']}")
    wait_for("all pods deleted", lambda: not api.get("/api/v1/pods").json()["items"],
             timeout=60)


def delete_pod(api: httpx.Client, ns: str, name: str, timeout: float = 30) -> None:
    api.delete(f"/api/v1/namespaces/{ns}/pods/{name}")
    wait_for(f"pod {name} gone", lambda: get_pod(api, ns, name) is None, timeout=timeout)


def waiting_state(api: httpx.Client, ns: str, name: str, key: str = "containerStatuses"
                  ) -> Object | None:
    """The first container's waiting state once it is something else than the generic
    ContainerCreating / PodInitializing."""
    pod = get_pod(api, ns, name) or {}
    for s in (pod.get("status") or {}).get(key) or []:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in ("ContainerCreating", "PodInitializing"):
            return dict(waiting)
    return None


@contextlib.contextmanager
def node_cluster(base: Path, start_kubelet: Callable[[ApiServer], K]
                 ) -> Iterator[tuple[ApiServer, K]]:
    """An apiserver and the kubelet `start_kubelet` starts, for one test module. On the way
    out every pod is deleted, and nothing of them may stay mounted or running."""
    require_node_env()
    images.build_busybox()
    server = ApiServer(base / "api").start()
    kubelet: K | None = None
    try:
        kubelet = start_kubelet(server)
        yield server, kubelet
        with server.client() as api:
            delete_all_pods(api)
        # Pods with a zero grace period vanish at once; the kubelet cleans up after them.
        root = kubelet.root
        wait_for("no mount left", lambda: not mounts_under(root))
        wait_for("no container left", lambda: not kubelet_containers(root))
    finally:
        if kubelet is not None:
            kubelet.stop()
        server.stop()


def one_node(base: Path, node: str) -> contextlib.AbstractContextManager[
        tuple[ApiServer, KubeletProcess]]:
    """`node_cluster` with the harness's plain kubelet for `node`."""
    return node_cluster(base, lambda server: KubeletProcess(server, node, base / "root").start())


def one_node_fixtures(node: str) -> tuple[Any, Any]:
    """Module-scoped `cluster` (apiserver + kubelet for `node`) and `server` fixtures, for a
    test module to bind: `cluster, server = one_node_fixtures(NODE)`."""
    @pytest.fixture(scope="module")
    def cluster(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[ApiServer, KubeletProcess]]:
        with one_node(tmp_path_factory.mktemp(node), node) as running:
            yield running

    @pytest.fixture(scope="module")
    def server(cluster: tuple[ApiServer, KubeletProcess]) -> ApiServer:
        return cluster[0]
    return cluster, server
