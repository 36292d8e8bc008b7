"""End to end with real kubectl: static binding, events in describe, PVC protection.

A real apiserver and a real `storagelab controllers` process (leader election on), driven
only through kubectl as a user would.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REPO, ApiServer, kubectl_available, require_real

PV = """
apiVersion: v1
kind: PersistentVolume
metadata: {name: web-data}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: /tmp/web-data}
"""
PVC = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: web-data, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  resources: {requests: {storage: 1Gi}}
"""
POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers: [{name: web, image: busybox, command: [sleep, "3600"]}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: web-data}}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    require_real(kubectl_available(), "kubectl is not installed")
    server = ApiServer(tmp_path_factory.mktemp("kubectl-binding")).start()
    with open(server.data_dir / "controllers.log", "wb") as log:
        controllers = subprocess.Popen(
            [sys.executable, "-m", "storagelab.cli", "controllers", "--kubeconfig",
             str(server.data_dir / "controller-manager.kubeconfig")],
            cwd=REPO, stdout=log, stderr=log)
    try:
        yield server
    finally:
        controllers.terminate()
        controllers.wait(15)
        server.stop()


def wait_for(server: ApiServer, *args: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = server.kubectl(*args, check=False)
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}")
        time.sleep(0.2)


def test_static_binding_events_and_protection_through_kubectl(cluster: ApiServer) -> None:
    k = cluster.kubectl
    k("apply", "-f", "-", input=PVC)
    # No volume yet and no class: the controller says so, as an event on the claim.
    wait_for(cluster, "get", "events", "--field-selector", "reason=FailedBinding", "-o", "name")
    k("apply", "-f", "-", input=PV)
    k("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/web-data", "--timeout=20s")
    assert k("get", "pv", "web-data", "-o", "jsonpath={.status.phase}").stdout == "Bound"
    assert k("get", "pvc", "web-data", "-o", "jsonpath={.spec.volumeName}").stdout == "web-data"

    describe = k("describe", "pvc", "web-data").stdout
    assert "Status:        Bound" in describe
    assert "persistentvolume-controller" in describe
    assert "FailedBinding" in describe
    assert "no persistent volumes available for this claim and no storage class is set" \
        in describe
    pv_describe = k("describe", "pv", "web-data").stdout
    assert "Claim:           default/web-data" in pv_describe

    k("apply", "-f", "-", input=POD)
    k("delete", "pvc", "web-data", "--wait=false")
    time.sleep(1.5)
    assert k("get", "pvc", "web-data", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
    assert "Terminating" in k("describe", "pvc", "web-data").stdout
    assert k("get", "pv", "web-data", "-o", "jsonpath={.status.phase}").stdout == "Bound"

    k("delete", "pod", "web", "--grace-period=0", "--force")
    k("wait", "--for=delete", "pvc/web-data", "--timeout=20s")
    k("wait", "--for=jsonpath={.status.phase}=Released", "pv/web-data", "--timeout=20s")
