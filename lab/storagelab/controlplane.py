#!/opt/storagelab/bin/python
"""Entry point of the lab's control-plane container: the apiserver and the controllers, and
what the lab needs from them before anyone else starts.

Order, as `storagelab up` does it: the apiserver (its serving certificate names the compose
services `apiserver` and `controlplane`), then, once it answers `/readyz`, a kubeconfig per
lab node pointing at `https://apiserver:6443` (the kubelets read them from the shared data
volume), the controller-manager, and the lab's StorageClasses: `nfs` (the default, volumes
as subdirectories of the NFS server's export, which is mounted here at the same path as in
the server so the provisioner makes directories directly) and `local` (directories on the
node that runs the pod). Then `<data>/lab/ready` marks the container healthy. If either
process dies, the container exits and compose shows why; a TERM stops both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA = Path(os.environ.get("LAB_DATA_DIR", "/var/lib/storagelab"))
LAB = DATA / "lab"
NODES = os.environ.get("LAB_NODES", "node-1 node-2").split()
NODE_ROOT = Path(os.environ.get("LAB_ROOT", "/var/lib/storagelab-lab"))
DATABASE_URL = os.environ.get("STORAGELAB_DATABASE_URL", "")
NFS_SERVER = os.environ.get("LAB_NFS_SERVER", "nfs")
NFS_SHARE = os.environ.get("LAB_NFS_SHARE", "/srv/export")
API_IN_NETWORK = "https://apiserver:6443"
ANN_DEFAULT = "storageclass.kubernetes.io/is-default-class"


class StartError(Exception):
    """A part of the control plane did not come up; the message says which and why."""


@dataclass(frozen=True)
class Lab:
    """The processes this container runs."""

    apiserver: subprocess.Popen[bytes]
    controllers: subprocess.Popen[bytes] | None = None


def storagelab(*args: str) -> list[str]:
    return ["storagelab", *args]


def wait_for_database(timeout: float = 60.0) -> None:
    """The PostgreSQL container may still be initialising: wait until it takes connections."""
    if not DATABASE_URL.startswith("postgresql"):
        return
    import sqlalchemy
    engine = sqlalchemy.create_engine(DATABASE_URL)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with engine.connect():
                return
        except sqlalchemy.exc.OperationalError as e:
            if time.monotonic() > deadline:
                raise StartError(f"the database at {DATABASE_URL} did not answer: {e}") from e
            time.sleep(0.5)
        finally:
            engine.dispose()


def start_apiserver() -> subprocess.Popen[bytes]:
    args = ["apiserver", "--data-dir", str(DATA), "--host", "0.0.0.0", "--port", "6443",
            "--hostname", "apiserver", "--hostname", "controlplane"]
    if DATABASE_URL:
        args += ["--database-url", DATABASE_URL]
    return subprocess.Popen(storagelab(*args))


def wait_ready(apiserver: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if apiserver.poll() is not None:
            raise StartError(f"the apiserver exited with status {apiserver.returncode}")
        try:
            context = ssl.create_default_context(cafile=str(DATA / "pki" / "ca.crt"))
            with urllib.request.urlopen("https://127.0.0.1:6443/readyz", context=context,
                                        timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, ssl.SSLError):
            pass
        time.sleep(0.2)
    raise StartError(f"the apiserver was not ready after {timeout:.0f}s")


def write_node_kubeconfigs() -> None:
    """Node credentials (CN=system:node:<node>, O=system:nodes) that reach the apiserver by
    its service name, written atomically so a kubelet never reads half a file."""
    LAB.mkdir(parents=True, exist_ok=True)
    for node in NODES:
        text = subprocess.run(
            storagelab("kubeconfig", "--data-dir", str(DATA), "--server", API_IN_NETWORK,
                       "--user", f"system:node:{node}", "--group", "system:nodes"),
            check=True, capture_output=True).stdout
        path = LAB / f"kubelet-{node}.kubeconfig"
        partial = path.with_suffix(".partial")
        partial.write_bytes(text)
        partial.chmod(0o600)
        partial.rename(path)


def start_controllers() -> subprocess.Popen[bytes]:
    local_paths = [a for node in NODES
                   for a in ("--local-path", f"{node}={NODE_ROOT / node / 'local'}")]
    for node in NODES:
        (NODE_ROOT / node / "local").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(storagelab(
        "controllers", "--kubeconfig", str(DATA / "controller-manager.kubeconfig"),
        "--data-dir", str(DATA), *local_paths))


def storage_classes() -> list[dict[str, Any]]:
    nfs = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
           "metadata": {"name": "nfs", "annotations": {ANN_DEFAULT: "true"}},
           "provisioner": "storagelab.io/nfs",
           "parameters": {"server": NFS_SERVER, "share": NFS_SHARE,
                          "exportLocalPath": NFS_SHARE},
           "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
           "allowVolumeExpansion": True}
    local = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "local"},
             "provisioner": "storagelab.io/local",
             "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
             "allowVolumeExpansion": True}
    return [nfs, local]


async def ensure_storage_classes() -> None:
    """Create the lab's classes unless they exist (an administrator's edits survive)."""
    from storage.runtime import kube as kube_api
    kube = kube_api.Kube.from_kubeconfig(str(DATA / "kubeconfig"))
    try:
        for cls in storage_classes():
            try:
                await kube.create("StorageClass", cls)
            except kube_api.AlreadyExists:
                pass
    finally:
        await kube.close()


def stop(lab: Lab) -> None:
    for process in (lab.controllers, lab.apiserver):
        if process is not None and process.poll() is None:
            process.terminate()
    for process in (lab.controllers, lab.apiserver):
        if process is not None:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def start() -> Lab:
    (LAB / "ready").unlink(missing_ok=True)
    wait_for_database()
    apiserver = start_apiserver()
    try:
        wait_ready(apiserver)
        write_node_kubeconfigs()
        lab = Lab(apiserver, start_controllers())
        asyncio.run(ensure_storage_classes())
    except BaseException:
        stop(Lab(apiserver))
        raise
    (LAB / "ready").write_text("ready\n")
    return lab


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        lab = start()
    except StartError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1
    print("lab: control plane ready", flush=True)
    try:
        while lab.apiserver.poll() is None and (lab.controllers is None
                                                or lab.controllers.poll() is None):
            time.sleep(0.5)
        print("lab: a control-plane process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(lab)
        (LAB / "ready").unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
