"""The PV controller, protection controllers and leader election against a real apiserver.

A real `storagelab apiserver` process, and the real controller-manager: in this process (in
a thread, so a recording Reclaimer can be plugged in) for most tests, and as two separate
`storagelab controllers` processes for the double-binding tests.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from storage import manager, reclaim
from storage.runtime import kube as kube_api
from storage.runtime import leaderelection
from tests.conftest import REPO, ApiServer
from tests.loopthread import LoopThread
from tests.support import (
    events_of,
    eventually,
    manager_config,
    reasons,
    running_apiserver,
    uniq,
)

Obj = dict[str, Any]
PROVISIONER = "storagelab.test/recording"


class RecordingReclaimer:
    """Records every call; fails deletes of volumes named in `failing`."""

    name = PROVISIONER

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.recycled: list[str] = []
        self.failing: set[str] = set()

    async def delete(self, volume: Any) -> None:
        name = volume["metadata"]["name"]
        self.deleted.append(name)
        if name in self.failing:
            raise reclaim.ReclaimError(f"disk {name} is on fire")

    async def recycle(self, volume: Any) -> None:
        self.recycled.append(volume["metadata"]["name"])


class InProcessManager(LoopThread):
    """manager.run in a thread with its own event loop; stop() cancels it cleanly."""

    def __init__(self, config: manager.ManagerConfig, reclaimers: reclaim.Reclaimers) -> None:
        super().__init__()
        self.config, self.reclaimers = config, reclaimers

    async def run(self) -> None:
        await manager.run(self.config, self.reclaimers)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("pvctl")) as srv:
        yield srv


@pytest.fixture(scope="module")
def recorder_plugin() -> RecordingReclaimer:
    return RecordingReclaimer()


@pytest.fixture(scope="module")
def controllers(server: ApiServer, recorder_plugin: RecordingReclaimer
                ) -> Iterator[InProcessManager]:
    config = manager_config(server, leader_elect=True, lease_name="pvctl-tests",
                            retry_period=0.5, renew_deadline=3, lease_duration=5)
    running = InProcessManager(config, reclaim.Reclaimers([recorder_plugin])).start()
    yield running
    running.stop()


def make_pv(api: httpx.Client, name: str, size: str = "1Gi", *, cls: str = "",
            policy: str = "Retain", annotations: dict[str, str] | None = None,
            claim_ref: Obj | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": f"/tmp/{name}"}, "persistentVolumeReclaimPolicy": policy,
                 "storageClassName": cls}
    if claim_ref:
        spec["claimRef"] = claim_ref
    body = {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}
    r = api.post("/api/v1/persistentvolumes", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def make_pvc(api: httpx.Client, ns: str, name: str, size: str = "1Gi", *,
             cls: str | None = "", volume_name: str = "") -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume_name:
        spec["volumeName"] = volume_name
    r = api.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
                 json={"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                       "metadata": {"name": name}, "spec": spec})
    assert r.status_code == 201, r.text
    return dict(r.json())


def get_pv(api: httpx.Client, name: str) -> Obj | None:
    r = api.get(f"/api/v1/persistentvolumes/{name}")
    return None if r.status_code == 404 else dict(r.json())


def get_pvc(api: httpx.Client, ns: str, name: str) -> Obj | None:
    r = api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{name}")
    return None if r.status_code == 404 else dict(r.json())


def phase(obj: Obj | None) -> str:
    return str(((obj or {}).get("status") or {}).get("phase") or "")


def add_default_class(api: httpx.Client, name: str, provisioner: str) -> None:
    r = api.post("/apis/storage.k8s.io/v1/storageclasses", json={
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": provisioner})
    assert r.status_code == 201, r.text


# ---- binding -------------------------------------------------------------------------------

def test_static_pv_and_claim_bind_both_ways(api: httpx.Client, ns: str) -> None:
    volume = uniq("pv")
    make_pv(api, volume, "2Gi")
    claim = make_pvc(api, ns, "data", "1Gi")
    bound = eventually(lambda: phase(c := get_pvc(api, ns, "data")) == "Bound" and c, 10,
                       what="claim Bound")
    assert bound["spec"]["volumeName"] == volume
    assert bound["status"]["capacity"] == {"storage": "2Gi"}
    assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
    assert bound["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes",
                                                "pv.kubernetes.io/bound-by-controller": "yes"}
    pv = eventually(lambda: phase(v := get_pv(api, volume)) == "Bound" and v, 10)
    ref = pv["spec"]["claimRef"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == (ns, "data", claim["metadata"]["uid"])
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert pv["status"]["lastPhaseTransitionTime"].endswith("Z")


def test_claim_created_first_binds_within_a_second_of_the_volume(api: httpx.Client,
                                                                  ns: str) -> None:
    make_pvc(api, ns, "early", "5Gi", cls="slow-disks")
    time.sleep(1.0)  # the claim has been synced and found nothing
    assert phase(get_pvc(api, ns, "early")) == "Pending"
    volume = uniq("pv")
    make_pv(api, volume, "5Gi", cls="slow-disks")
    start = time.monotonic()
    eventually(lambda: phase(get_pvc(api, ns, "early")) == "Bound", timeout=5)
    assert time.monotonic() - start < 1.0
    assert get_pvc(api, ns, "early")["spec"]["volumeName"] == volume  # type: ignore[index]


def test_claim_naming_a_volume_binds_to_it_and_mismatch_is_reported(api: httpx.Client,
                                                                     ns: str) -> None:
    small, big = uniq("small"), uniq("big")
    make_pv(api, small, "1Gi")
    make_pv(api, big, "10Gi")
    make_pvc(api, ns, "wants-big", "2Gi", volume_name=big)
    make_pvc(api, ns, "wants-small", "2Gi", volume_name=small)
    eventually(lambda: phase(get_pvc(api, ns, "wants-big")) == "Bound", 10)
    msg = eventually(lambda: reasons(api, ns, "wants-small").get("VolumeMismatch"), 10)
    assert msg == f'Cannot bind to requested volume "{small}": requested PV is too small'
    assert phase(get_pv(api, small)) == "Available"


def test_half_finished_bind_after_a_crash_is_completed(api: httpx.Client, ns: str) -> None:
    """A PV already pointing at the claim (step 1 done, then crash) ends fully bound."""
    claim = make_pvc(api, ns, "half", "1Gi", cls="half-done")
    volume = uniq("pv")
    make_pv(api, volume, cls="half-done", annotations={
        "pv.kubernetes.io/bound-by-controller": "yes"}, claim_ref={
        "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": "half",
        "uid": claim["metadata"]["uid"]})
    bound = eventually(lambda: phase(c := get_pvc(api, ns, "half")) == "Bound" and c, 10)
    assert bound["spec"]["volumeName"] == volume
    eventually(lambda: phase(get_pv(api, volume)) == "Bound", 10)


def test_released_volume_never_rebinds_until_its_claim_ref_is_cleared(api: httpx.Client,
                                                                       ns: str) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="retained")
    make_pvc(api, ns, "first", cls="retained")
    eventually(lambda: phase(get_pv(api, volume)) == "Bound", 10)
    assert api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/first").is_success
    eventually(lambda: phase(get_pv(api, volume)) == "Released", 10, what="Released")
    make_pvc(api, ns, "second", cls="retained")
    time.sleep(1.0)
    assert phase(get_pvc(api, ns, "second")) == "Pending"
    assert phase(get_pv(api, volume)) == "Released"
    r = api.patch(f"/api/v1/persistentvolumes/{volume}", json={"spec": {"claimRef": None}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    eventually(lambda: phase(get_pvc(api, ns, "second")) == "Bound", 10, what="rebind")


def test_claim_whose_volume_disappears_is_lost(api: httpx.Client, ns: str) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="losing")
    make_pvc(api, ns, "orphan", cls="losing")
    eventually(lambda: phase(get_pvc(api, ns, "orphan")) == "Bound", 10)
    api.delete(f"/api/v1/persistentvolumes/{volume}")
    api.patch(f"/api/v1/persistentvolumes/{volume}", json={"metadata": {"finalizers": None}},
              headers={"Content-Type": "application/merge-patch+json"})
    eventually(lambda: get_pv(api, volume) is None, 10)
    eventually(lambda: phase(get_pvc(api, ns, "orphan")) == "Lost", 10, what="Lost")
    assert eventually(lambda: reasons(api, ns, "orphan").get("ClaimLost"), 10) == \
        "Bound claim has lost its PersistentVolume. Data on the volume is lost!"


# ---- classes and provisioning -------------------------------------------------------------

def test_default_class_is_assigned_retroactively_but_never_to_empty_class(
        api: httpx.Client, ns: str) -> None:
    # Sizes no volume has: a class-less claim would rightly bind a class-less volume first.
    make_pvc(api, ns, "no-class", "999Ti", cls=None)
    make_pvc(api, ns, "empty-class", "999Ti", cls="")
    assert get_pvc(api, ns, "no-class")["spec"].get("storageClassName") is None  # type: ignore
    class_name = uniq("default")
    add_default_class(api, class_name, "example.com/nfs")
    got = eventually(lambda: get_pvc(api, ns, "no-class")["spec"].get(  # type: ignore[index]
        "storageClassName"), 10, what="default class assigned")
    assert got == class_name
    assert get_pvc(api, ns, "empty-class")["spec"]["storageClassName"] == ""  # type: ignore
    annotations = eventually(lambda: get_pvc(api, ns, "no-class")[  # type: ignore[index]
        "metadata"].get("annotations", {}).get("volume.kubernetes.io/storage-provisioner")
        and get_pvc(api, ns, "no-class")["metadata"]["annotations"], 10)  # type: ignore[index]
    assert annotations["volume.beta.kubernetes.io/storage-provisioner"] == "example.com/nfs"
    message = eventually(lambda: reasons(api, ns, "no-class").get("ExternalProvisioning"), 10)
    assert message == ("Waiting for a volume to be created either by the external provisioner "
                       "'example.com/nfs' or manually by the system administrator. If volume "
                       "creation is delayed, please verify that the provisioner is running and "
                       "correctly registered.")
    api.delete(f"/apis/storage.k8s.io/v1/storageclasses/{class_name}")


def test_no_provisioner_class_waits_for_a_static_volume(api: httpx.Client, ns: str) -> None:
    cls = uniq("local")
    r = api.post("/apis/storage.k8s.io/v1/storageclasses", json={
        "metadata": {"name": cls}, "provisioner": "kubernetes.io/no-provisioner"})
    assert r.status_code == 201, r.text
    make_pvc(api, ns, "local", cls=cls)
    message = eventually(lambda: reasons(api, ns, "local").get("ProvisioningFailed"), 10)
    assert message == "no volume plugin matched name: kubernetes.io/no-provisioner"
    claim = get_pvc(api, ns, "local")
    assert "volume.kubernetes.io/storage-provisioner" not in \
        (claim["metadata"].get("annotations") or {})  # type: ignore[index]
    make_pv(api, uniq("pv"), cls=cls)
    eventually(lambda: phase(get_pvc(api, ns, "local")) == "Bound", 10)


def test_wait_for_first_consumer_leaves_the_claim_pending(api: httpx.Client, ns: str) -> None:
    cls = uniq("wffc")
    r = api.post("/apis/storage.k8s.io/v1/storageclasses", json={
        "metadata": {"name": cls}, "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer"})
    assert r.status_code == 201, r.text
    make_pv(api, uniq("pv"), cls=cls)
    make_pvc(api, ns, "later", cls=cls)
    message = eventually(lambda: reasons(api, ns, "later").get("WaitForFirstConsumer"), 10)
    assert message == "waiting for first consumer to be created before binding"
    assert phase(get_pvc(api, ns, "later")) == "Pending"


# ---- reclaim -------------------------------------------------------------------------------

def bind_and_release(api: httpx.Client, ns: str, volume: str, claim: str) -> None:
    eventually(lambda: phase(get_pvc(api, ns, claim)) == "Bound", 10, what=f"{claim} Bound")
    api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")


def test_delete_policy_deletes_storage_through_the_provisioner_then_the_pv(
        api: httpx.Client, ns: str, recorder_plugin: RecordingReclaimer) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="reclaim-delete", policy="Delete",
            annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER})
    make_pvc(api, ns, "gone", cls="reclaim-delete")
    bind_and_release(api, ns, volume, "gone")
    eventually(lambda: get_pv(api, volume) is None, 10, what="PV deleted")
    assert recorder_plugin.deleted.count(volume) >= 1


def test_failed_delete_marks_the_volume_failed_and_retries(
        api: httpx.Client, ns: str, recorder_plugin: RecordingReclaimer) -> None:
    volume = uniq("pv")
    recorder_plugin.failing.add(volume)
    make_pv(api, volume, cls="reclaim-fail", policy="Delete",
            annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER})
    make_pvc(api, ns, "burning", cls="reclaim-fail")
    bind_and_release(api, ns, volume, "burning")
    pv = eventually(lambda: phase(v := get_pv(api, volume)) == "Failed" and v, 10)
    assert pv["status"]["message"] == f"disk {volume} is on fire"
    assert eventually(lambda: reasons(api, "default", volume).get("VolumeFailedDelete"), 10) == \
        f"disk {volume} is on fire"
    eventually(lambda: recorder_plugin.deleted.count(volume) >= 3, 10, what="retries")
    recorder_plugin.failing.discard(volume)
    eventually(lambda: get_pv(api, volume) is None, timeout=15, what="deleted after retry")


def test_delete_policy_without_a_deleter_fails_like_kubernetes(api: httpx.Client,
                                                                ns: str) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="no-deleter", policy="Delete")
    make_pvc(api, ns, "static", cls="no-deleter")
    bind_and_release(api, ns, volume, "static")
    pv = eventually(lambda: phase(v := get_pv(api, volume)) == "Failed" and v, 10)
    expected = (f'error getting deleter volume plugin for volume "{volume}": '
                "no deletable volume plugin matched")
    assert pv["status"]["message"] == expected
    assert eventually(lambda: reasons(api, "default", volume).get("VolumeFailedDelete"), 10) \
        == expected


def test_recycle_scrubs_through_the_provisioner_and_makes_the_volume_available(
        api: httpx.Client, ns: str, recorder_plugin: RecordingReclaimer) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="recycle", policy="Recycle",
            annotations={"pv.kubernetes.io/provisioned-by": PROVISIONER})
    make_pvc(api, ns, "reuse", cls="recycle")
    bind_and_release(api, ns, volume, "reuse")
    pv = eventually(lambda: phase(v := get_pv(api, volume)) == "Available" and
                    recorder_plugin.recycled.count(volume) and v, 10, what="recycled")
    assert "claimRef" not in pv["spec"]
    assert eventually(lambda: reasons(api, "default", volume).get("VolumeRecycled"), 10) == \
        "Volume recycled"


# ---- protection ----------------------------------------------------------------------------

def make_pod(api: httpx.Client, ns: str, name: str, claim: str) -> None:
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
    assert r.status_code == 201, r.text


def test_claim_in_use_stays_terminating_until_its_last_pod_is_gone(api: httpx.Client,
                                                                    ns: str) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="protected")
    make_pvc(api, ns, "used", cls="protected")
    eventually(lambda: phase(get_pvc(api, ns, "used")) == "Bound", 10)
    make_pod(api, ns, "user-1", "used")
    make_pod(api, ns, "user-2", "used")
    api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/used")
    time.sleep(1.0)
    claim = get_pvc(api, ns, "used")
    assert claim is not None and claim["metadata"].get("deletionTimestamp")
    assert phase(claim) == "Bound" and phase(get_pv(api, volume)) == "Bound"  # data intact
    api.delete(f"/api/v1/namespaces/{ns}/pods/user-1")
    time.sleep(1.0)
    assert get_pvc(api, ns, "used") is not None
    api.delete(f"/api/v1/namespaces/{ns}/pods/user-2")
    eventually(lambda: get_pvc(api, ns, "used") is None, 10, what="claim deleted")
    eventually(lambda: phase(get_pv(api, volume)) == "Released", 10)


def test_bound_volume_is_kept_until_released(api: httpx.Client, ns: str) -> None:
    volume = uniq("pv")
    make_pv(api, volume, cls="pv-protect")
    make_pvc(api, ns, "holder", cls="pv-protect")
    eventually(lambda: phase(get_pv(api, volume)) == "Bound", 10)
    api.delete(f"/api/v1/persistentvolumes/{volume}")
    time.sleep(1.0)
    pv = get_pv(api, volume)
    assert pv is not None and pv["metadata"]["deletionTimestamp"]
    api.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/holder")
    eventually(lambda: get_pv(api, volume) is None, 10, what="PV gone once released")


def test_repeated_events_are_aggregated_with_a_count(api: httpx.Client, ns: str) -> None:
    make_pvc(api, ns, "lonely", "998Ti", cls="")  # no volume, no class: FailedBinding on every sync
    first = eventually(lambda: [e for e in events_of(api, ns, "lonely")
                                if e["reason"] == "FailedBinding"], 10)
    assert len(first) == 1
    assert first[0]["source"]["component"] == "persistentvolume-controller"
    assert first[0]["message"] == \
        "no persistent volumes available for this claim and no storage class is set"
    bumped = eventually(lambda: [e for e in events_of(api, ns, "lonely")
                                 if e["reason"] == "FailedBinding" and e["count"] >= 2],
                        timeout=15, what="count bumped on resync")
    assert len(bumped) == 1 and bumped[0]["lastTimestamp"] >= bumped[0]["firstTimestamp"]


def test_server_sets_last_phase_transition_time(server: ApiServer) -> None:
    with server.client() as api:
        name = uniq("ltt")
        created = make_pv(api, name)
        assert created["status"].get("lastPhaseTransitionTime")
        for _ in range(20):  # a controller may write the PV meanwhile: retry on 409
            current = api.get(f"/api/v1/persistentvolumes/{name}").json()
            current["status"] = {"phase": "Released"}  # the client drops the timestamp
            answer = api.put(f"/api/v1/persistentvolumes/{name}/status", json=current)
            if answer.status_code != 409:
                break
        updated = answer.json()
        assert updated["status"]["phase"] == "Released"
        assert updated["status"].get("lastPhaseTransitionTime")


# ---- leader election and two controller-managers -----------------------------------------

def test_only_one_of_two_candidates_leads_and_the_other_takes_over(server: ApiServer) -> None:
    kubeconfig = str(server.data_dir / "controller-manager.kubeconfig")
    name = uniq("lease")

    async def scenario() -> None:
        kubes = [kube_api.Kube.from_kubeconfig(kubeconfig) for _ in range(2)]
        electors = [leaderelection.LeaderElector(k, leaderelection.LeaseConfig(
            name, f"cand-{i}", "kube-system", 4, 2, 0.3)) for i, k in enumerate(kubes)]
        leading: list[int] = []
        stop = [asyncio.Event(), asyncio.Event()]

        def lead(i: int) -> Callable[[], Any]:
            async def body() -> None:
                leading.append(i)
                await stop[i].wait()
            return body
        tasks = [asyncio.create_task(e.run(lead(i))) for i, e in enumerate(electors)]
        await asyncio.sleep(1.5)
        assert len(leading) == 1
        first = leading[0]
        stop[first].set()  # the leader finishes and releases: the other follows quickly
        await asyncio.wait_for(tasks[first], 5)
        for _ in range(30):
            if len(leading) == 2:
                break
            await asyncio.sleep(0.1)
        assert leading == [first, 1 - first]
        stop[1 - first].set()
        await asyncio.gather(*tasks)
        for k in kubes:
            await k.close()
    asyncio.run(scenario())


def start_controllers_process(server: ApiServer, *extra: str) -> subprocess.Popen[bytes]:
    with open(server.data_dir / f"cm-{uuid.uuid4().hex[:6]}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "storagelab.cli", "controllers", "--kubeconfig",
             str(server.data_dir / "controller-manager.kubeconfig"), *extra],
            cwd=REPO, stdout=log, stderr=log)


def assert_no_double_binding(api: httpx.Client, ns: str, claims: int) -> int:
    pvcs = api.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims").json()["items"]
    assert len(pvcs) == claims
    by_volume: dict[str, list[str]] = {}
    for c in pvcs:
        if c["spec"].get("volumeName"):
            by_volume.setdefault(c["spec"]["volumeName"], []).append(c["metadata"]["name"])
    assert all(len(names) == 1 for names in by_volume.values()), by_volume
    for volume, (claim,) in by_volume.items():
        ref = get_pv(api, volume)["spec"].get("claimRef") or {}  # type: ignore[index]
        assert (ref.get("namespace"), ref.get("name")) == (ns, claim)
    return len(by_volume)


@pytest.fixture(scope="module")
def race_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of its own: only the two controller processes act on it."""
    with running_apiserver(tmp_path_factory.mktemp("pvctl-race")) as srv:
        yield srv


@pytest.mark.parametrize("leader_elect", [False, True])
def test_two_binder_processes_never_double_bind(race_server: ApiServer,
                                                leader_elect: bool) -> None:
    server = race_server
    flag = "--leader-elect" if leader_elect else "--no-leader-elect"
    procs = [start_controllers_process(server, flag, "--lease-name", "double-bind")
             for _ in range(2)]
    try:
        with server.client() as api:
            ns = f"dbl-{uuid.uuid4().hex[:6]}"
            api.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
            cls = uniq("race")
            for i in range(30):
                make_pv(api, f"{cls}-{i}", cls=cls)
            for i in range(40):
                make_pvc(api, ns, f"c{i}", cls=cls)
            eventually(lambda: assert_no_double_binding(api, ns, 40) == 30, timeout=30,
                       what="30 claims bound")
            time.sleep(1.0)
            assert assert_no_double_binding(api, ns, 40) == 30
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            assert p.wait(15) == 0
