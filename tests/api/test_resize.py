"""Volume expansion against a real apiserver, with the controller-manager in this process.

The apiserver runs as a process with the PersistentVolumeClaimResize admission plugin in its
chain; the controller-manager (binder, protection, provisioner, resizer) runs in a thread of
this process with the real local driver (soft capacity, on a temp dir) and the real nfs
driver (an export reachable as a local path). The tests grow claims as a user would (a merge
patch of spec.resources.requests.storage) and look at what Kubernetes shows: the PV's and the
claim's capacity, allocatedResources, conditions and events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from csi_like import contract, errors
from storage import manager, provisioner
from tests.conftest import ApiServer
from tests.support import (
    ManagerThread,
    claim_path,
    event_reasons,
    eventually,
    get,
    make_claim,
    make_class,
    manager_config,
    on_node_a,
    patch_request,
    running_apiserver,
    uniq,
    wait_bound,
    wait_capacity,
)

Obj = dict[str, Any]
GI = 1024**3


class FlakyDriver:
    """The real driver, whose expand_volume fails `failures` times first (temporarily)."""

    def __init__(self, real: contract.Driver) -> None:
        self.real = real
        self.failures = 0
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def expand_volume(self, volume_id: str, capacity_bytes: int,
                      secrets: Mapping[str, str] | None = None) -> contract.ExpansionResult:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise errors.TemporaryError("backend busy, try again")
        return self.real.expand_volume(volume_id, capacity_bytes, secrets)


class FlakyManager(ManagerThread):
    """The controller-manager, its resizer calling the local driver through a FlakyDriver."""

    flaky: FlakyDriver | None = None

    def prepare(self, cm: manager.ControllerManager) -> None:
        assert cm.resizer is not None, "the manager must build the resizer"
        local = provisioner.csi_driver_name(provisioner.LOCAL)
        self.flaky = FlakyDriver(cm.resizer.drivers[local])
        cm.resizer.drivers[local] = self.flaky


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("resize")) as srv:
        yield srv


@pytest.fixture(scope="module")
def local_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-volumes") / "node-a"


@pytest.fixture(scope="module")
def controllers(server: ApiServer, local_base: Path) -> Iterator[FlakyManager]:
    config = manager_config(server, run_scheduler=False,
                            provisioning=provisioner.ProvisionerConfig(
                                local_paths={"node-a": (str(local_base),)},
                                identity="resize-test"))
    running = FlakyManager(config).start()
    yield running
    running.stop()


def local_class(api: httpx.Client, *, expandable: bool = True) -> str:
    name = uniq("local")
    fields = {"allowVolumeExpansion": True} if expandable else {}
    make_class(api, name, parameters={"enforce": "soft"}, **on_node_a(**fields))
    return name


def volume_of(api: httpx.Client, claim: Obj) -> Obj:
    pv = get(api, f"/api/v1/persistentvolumes/{claim['spec']['volumeName']}")
    assert pv is not None
    return pv


def test_grow_local_claim(api: httpx.Client, ns: str, local_base: Path) -> None:
    cls = local_class(api)
    make_claim(api, ns, "data", cls, "1Gi")
    bound = wait_bound(api, ns, "data")
    assert patch_request(api, ns, "data", "2Gi").status_code == 200
    claim = wait_capacity(api, ns, "data", "2Gi")
    status = claim["status"]
    assert status["allocatedResources"] == {"storage": "2Gi"}
    assert "allocatedResourceStatuses" not in status and "conditions" not in status
    pv = volume_of(api, bound)
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    record = json.loads((local_base / ".storagelab" / f"{pv['metadata']['name']}.json")
                        .read_text())
    assert record["capacity_bytes"] == 2 * GI  # the driver itself grew
    seen = eventually(lambda: (r := event_reasons(api, ns, "data")) and
                      "VolumeResizeSuccessful" in r and r, 10, "resize events")
    assert seen["Resizing"]["message"] == \
        f"External resizer is resizing volume {pv['metadata']['name']}"
    assert seen["VolumeResizeSuccessful"]["message"] == "Resize volume succeeded"
    assert seen["Resizing"]["source"]["component"] == "external-resizer local.storagelab.io"


def test_grow_nfs_claim(api: httpx.Client, ns: str, tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    cls = uniq("nfs")
    make_class(api, cls, provisioner_name=provisioner.NFS, allowVolumeExpansion=True,
               parameters={"server": "127.0.0.1", "share": "/export",
                           "exportLocalPath": str(export)})
    make_claim(api, ns, "shared", cls, "1Gi")
    bound = wait_bound(api, ns, "shared")
    assert patch_request(api, ns, "shared", "3Gi").status_code == 200
    claim = wait_capacity(api, ns, "shared", "3Gi")
    assert claim["status"]["allocatedResources"] == {"storage": "3Gi"}
    pv = volume_of(api, bound)
    assert pv["spec"]["capacity"] == {"storage": "3Gi"}
    record = json.loads((export / ".storagelab" / f"{pv['metadata']['name']}.json")
                        .read_text())
    assert record["capacity_bytes"] == 3 * GI


def test_class_without_expansion_is_refused(api: httpx.Client, ns: str) -> None:
    cls = local_class(api, expandable=False)
    make_claim(api, ns, "fixed", cls, "1Gi")
    wait_bound(api, ns, "fixed")
    r = patch_request(api, ns, "fixed", "2Gi")
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can '
        "be resized and the storageclass that provisions the pvc must support resize")
    stored = get(api, claim_path(ns, "fixed"))
    assert stored is not None
    assert stored["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_shrink_is_refused(api: httpx.Client, ns: str) -> None:
    cls = local_class(api)
    make_claim(api, ns, "data", cls, "1Gi")
    wait_bound(api, ns, "data")
    r = patch_request(api, ns, "data", "500Mi")
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "Invalid"
    assert "spec.resources.requests.storage: Forbidden: field can not be less than " \
        "status.capacity" in r.json()["message"]


def test_driver_failure_is_reported_and_retried(api: httpx.Client, ns: str,
                                                controllers: FlakyManager) -> None:
    assert controllers.flaky is not None
    cls = local_class(api)
    make_claim(api, ns, "flaky", cls, "1Gi")
    bound = wait_bound(api, ns, "flaky")
    controllers.flaky.failures = 2
    assert patch_request(api, ns, "flaky", "2Gi").status_code == 200
    wait_capacity(api, ns, "flaky", "2Gi", timeout=30)
    assert controllers.flaky.failures == 0
    failed = eventually(lambda: event_reasons(api, ns, "flaky").get("VolumeResizeFailed"),
                        10, "VolumeResizeFailed event")
    assert failed["type"] == "Warning"
    assert failed["message"] == (
        f'resize volume "{bound["spec"]["volumeName"]}" by resizer "local.storagelab.io" '
        "failed: rpc error: code = Unavailable desc = backend busy, try again")
    eventually(lambda: (e := event_reasons(api, ns, "flaky").get("VolumeResizeFailed"))
               and e["count"] == 2, 10, "the repeated failure counted")
    assert "VolumeResizeSuccessful" in event_reasons(api, ns, "flaky")


def test_infeasible_size_then_a_smaller_request(api: httpx.Client, ns: str) -> None:
    cls = local_class(api)
    make_claim(api, ns, "big", cls, "1Gi")
    wait_bound(api, ns, "big")
    assert patch_request(api, ns, "big", "100Pi").status_code == 200
    claim: Obj = eventually(
        lambda: (c := get(api, claim_path(ns, "big"))) and
        (c["status"].get("allocatedResourceStatuses") or {}).get("storage") ==
        "ControllerResizeInfeasible" and c, 15, "ControllerResizeInfeasible")
    assert claim["status"]["allocatedResources"] == {"storage": "100Pi"}
    assert claim["status"]["capacity"] == {"storage": "1Gi"}
    assert "ControllerResizeError" in [c["type"] for c in claim["status"]["conditions"]]
    # Events are recorded in the background, after the status write the loop above saw.
    failed = eventually(lambda: event_reasons(api, ns, "big").get("VolumeResizeFailed"), 10,
                        "VolumeResizeFailed event")
    assert "code = OutOfRange" in failed["message"]
    # RecoverVolumeExpansionFailure: the user may go back down, above status.capacity.
    assert patch_request(api, ns, "big", "2Gi").status_code == 200
    recovered = wait_capacity(api, ns, "big", "2Gi")
    assert recovered["status"]["allocatedResources"] == {"storage": "2Gi"}
    assert "allocatedResourceStatuses" not in recovered["status"]
    assert "conditions" not in recovered["status"]
