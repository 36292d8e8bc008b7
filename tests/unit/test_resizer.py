"""The resizer's decisions (which size to attempt, what status to write) and one claim's sync
against a recording fake API, plus the PersistentVolumeClaimResize admission plugin.

`plan` has a row for every case of external-resizer's expandAndRecover; the sync tests drive
the controller through success, node expansion, and final / infeasible / temporary failures
with a fake driver, which is the only way to reach the node-expansion branch (both of our
drivers finish on the controller side).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from apimachinery import errors as api_errors
from apiserver import resize_admission, resources
from csi_like import contract, errors
from storage import resizer
from storage.runtime import controller, shared, workqueue

Obj = dict[str, Any]
DRIVER = "local.storagelab.io"


def claim(request: str = "2Gi", capacity: str = "1Gi", *, alloc: str | None = None,
          status: str = "", conditions: tuple[str, ...] = (), phase: str = "Bound",
          annotations: Mapping[str, str] | None = None) -> Obj:
    st: Obj = {"phase": phase, "capacity": {"storage": capacity}}
    if alloc is not None:
        st["allocatedResources"] = {"storage": alloc}
    if status:
        st["allocatedResourceStatuses"] = {"storage": status}
    if conditions:
        st["conditions"] = [{"type": c, "status": "True"} for c in conditions]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "ns", "uid": "u-1",
                         "resourceVersion": "5", "annotations": dict(annotations or {})},
            "spec": {"volumeName": "pvc-u-1", "storageClassName": "fast",
                     "resources": {"requests": {"storage": request}}},
            "status": st}


def volume(capacity: str = "1Gi", driver: str = DRIVER, uid: str = "u-1") -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "pvc-u-1", "resourceVersion": "4", "annotations": {}},
            "spec": {"capacity": {"storage": capacity},
                     "claimRef": {"namespace": "ns", "name": "data", "uid": uid},
                     "csi": {"driver": driver, "volumeHandle": "local:abc"}}}


# ----------------------------------------------------------------------------- reading

@pytest.mark.parametrize("c,expected", [
    (claim("2Gi", "1Gi"), True),
    (claim("1Gi", "1Gi"), False),
    (claim("1024Mi", "1Gi"), False),  # the same size, spelled otherwise
    (claim("2Gi", "1Gi", phase="Pending"), False),
    (claim("500Mi", "1Gi"), False),
])
def test_needs_resize(c: Obj, expected: bool) -> None:
    assert resizer.needs_resize(c) is expected


def test_needs_resize_wants_a_volume_name() -> None:
    c = claim()
    del c["spec"]["volumeName"]
    assert not resizer.needs_resize(c)


@pytest.mark.parametrize("c,v,expected", [
    (claim(), volume(), True),
    (claim(), volume(driver="nfs.storagelab.io"), False),
    (claim(), volume(uid="someone-else"), False),  # PV bound to an older claim of that name
    (claim(annotations={resizer.ANN_STORAGE_RESIZER: "other.csi"}), volume(), False),
    (claim(annotations={resizer.ANN_STORAGE_RESIZER: DRIVER}), volume(), True),
])
def test_can_resize(c: Obj, v: Obj, expected: bool) -> None:
    assert resizer.can_resize(c, v, DRIVER) is expected


# ----------------------------------------------------------------------------- plan

P, CI, CF = resizer.NODE_PENDING, resizer.CONTROLLER_IN_PROGRESS, resizer.CONTROLLER_INFEASIBLE
NI, NP = resizer.NODE_INFEASIBLE, resizer.NODE_IN_PROGRESS


@pytest.mark.parametrize("c,pv_size,final,expected", [
    # Volume smaller than asked.
    (claim("2Gi"), "1Gi", False, resizer.Expand("2Gi", mark=True)),
    (claim("2Gi", alloc="2Gi", status=CI), "1Gi", False, resizer.Expand("2Gi", mark=False)),
    # a controller attempt at 3Gi may still run: finish it before trying the new 2Gi
    (claim("2Gi", alloc="3Gi", status=CI), "1Gi", False, resizer.Expand("3Gi", mark=False)),
    # ... unless it failed for good: then the user's (lowered) request wins
    (claim("2Gi", alloc="3Gi", status=CI), "1Gi", True, resizer.Expand("2Gi", mark=True)),
    # the user lowered the request after an infeasible attempt
    (claim("2Gi", alloc="9Gi", status=CF), "1Gi", False, resizer.Expand("2Gi", mark=True)),
    # the same infeasible size again (slow retry decides when)
    (claim("9Gi", alloc="9Gi", status=CF), "1Gi", False, resizer.Expand("9Gi", mark=False)),
    # node expansion of 2Gi pending, user asks 3Gi: the node finishes first
    (claim("3Gi", alloc="2Gi", status=P), "2Gi", False, resizer.Skip("")),
    (claim("3Gi", alloc="2Gi", status=NP), "2Gi", False, resizer.Skip("")),
    (claim("3Gi", alloc="2Gi", status=NI), "2Gi", False, resizer.Expand("2Gi", mark=False)),
    # Volume already as big as asked.
    (claim("2Gi", alloc="2Gi", status=P), "2Gi", False, resizer.Skip("")),
    (claim("2Gi", alloc="2Gi", status=CI), "2Gi", False, resizer.Expand("2Gi", mark=False)),
    (claim("2Gi", alloc="2Gi"), "2Gi", False, resizer.Expand("2Gi", mark=False)),
    (claim("2Gi", conditions=(resizer.COND_FS_RESIZE_PENDING,)), "2Gi", False,
     resizer.Skip("")),
    # PV grown but the claim never recorded it (crash): finish through the driver
    (claim("2Gi"), "2Gi", False, resizer.Expand("2Gi", mark=True)),
])
def test_plan(c: Obj, pv_size: str, final: bool, expected: resizer.Skip | resizer.Expand
              ) -> None:
    got = resizer.plan(c, volume(pv_size), final)
    if isinstance(expected, resizer.Skip):
        assert isinstance(got, resizer.Skip), got
    else:
        assert got == expected


def _bumped(c: Obj, **status: Any) -> Obj:
    new = copy.deepcopy(c)
    new["metadata"]["resourceVersion"] = "6"
    new["status"].update(status)
    return new


@pytest.mark.parametrize("old,new,queued", [
    (claim("1Gi"), _bumped(claim("2Gi")), True),  # the user asked for more
    (claim("9Gi", alloc="9Gi", status=CF), _bumped(claim("2Gi")), True),  # ... or less
    (claim("2Gi"), claim("2Gi"), True),  # a resync replays the same version
    # our own status write: no new request, so the failure backoff is not cut short
    (claim("2Gi"), _bumped(claim("2Gi"), conditions=[{"type": "Resizing"}]), False),
    (claim("2Gi"), _bumped(claim("2Gi", annotations={resizer.ANN_STORAGE_RESIZER: DRIVER})),
     True),
])
def test_update_handler_queues(old: Obj, new: Obj, queued: bool) -> None:
    ctrl, _, _ = make_controller(FakeDriver(errors.TemporaryError("x")), claim(), volume())
    ctrl.queue = workqueue.WorkQueue("empty")  # seeding the cache queued the claim once
    ctrl._claim_updated(old, new)
    assert (len(ctrl.queue) == 1) is queued


# ----------------------------------------------------------------------------- new status

def test_merge_conditions_replaces_only_resize_conditions() -> None:
    old = [{"type": "ModifyingVolume", "status": "True"},
           {"type": resizer.COND_FS_RESIZE_PENDING, "status": "True"},
           {"type": resizer.COND_CONTROLLER_RESIZE_ERROR, "status": "True"}]
    new = [{"type": resizer.COND_RESIZING, "status": "True"}]
    assert [c["type"] for c in resizer.merge_conditions(old, new)] == \
        ["ModifyingVolume", resizer.COND_RESIZING]
    assert [c["type"] for c in resizer.merge_conditions(old, new, keep_old=True)] == \
        ["ModifyingVolume", resizer.COND_FS_RESIZE_PENDING,
         resizer.COND_CONTROLLER_RESIZE_ERROR, resizer.COND_RESIZING]


def test_mark_in_progress_then_finished() -> None:
    c = claim("2Gi")
    c["status"]["allocatedResourceStatuses"] = {"cpu": "X"}  # other resources are kept
    started = resizer.mark_in_progress(c, "2Gi", "T")
    assert started["status"]["allocatedResources"] == {"storage": "2Gi"}
    assert started["status"]["allocatedResourceStatuses"] == {"cpu": "X", "storage": CI}
    assert started["status"]["conditions"] == [
        {"type": "Resizing", "status": "True", "lastTransitionTime": "T"}]
    assert c["status"].get("conditions") is None  # the input is not modified
    done = resizer.mark_finished(started, "2Gi")
    assert done["status"]["capacity"] == {"storage": "2Gi"}
    assert done["status"]["allocatedResources"] == {"storage": "2Gi"}
    assert done["status"]["allocatedResourceStatuses"] == {"cpu": "X"}
    assert "conditions" not in done["status"]


def test_mark_finished_drops_an_empty_status_map() -> None:
    done = resizer.mark_finished(resizer.mark_in_progress(claim(), "2Gi", "T"), "2Gi")
    assert "allocatedResourceStatuses" not in done["status"]


def test_mark_node_pending() -> None:
    pending = resizer.mark_node_pending(resizer.mark_in_progress(claim(), "2Gi", "T"), "U")
    assert pending["status"]["allocatedResourceStatuses"] == {"storage": P}
    assert pending["status"]["conditions"] == [
        {"type": "FileSystemResizePending", "status": "True", "lastTransitionTime": "U",
         "message": resizer.MSG_FS_RESIZE_PENDING}]
    assert pending["status"]["capacity"] == {"storage": "1Gi"}  # the node sets it


@pytest.mark.parametrize("infeasible,status", [(True, CF), (False, CI)])
def test_mark_failed(infeasible: bool, status: str) -> None:
    failed = resizer.mark_failed(resizer.mark_in_progress(claim(), "2Gi", "T"), "boom", "U",
                                 infeasible)
    assert failed["status"]["allocatedResourceStatuses"] == {"storage": status}
    assert [c["type"] for c in failed["status"]["conditions"]] == \
        ["Resizing", "ControllerResizeError"]
    assert failed["status"]["conditions"][1]["message"] == "boom"


def test_with_capacity_records_pre_resize_once() -> None:
    grown = resizer.with_capacity(volume(), "2Gi", "1Gi")
    assert grown["spec"]["capacity"] == {"storage": "2Gi"}
    assert grown["metadata"]["annotations"] == {resizer.ANN_PRE_RESIZE_CAPACITY: "1Gi"}
    again = resizer.with_capacity(grown, "3Gi", "2Gi")
    assert again["metadata"]["annotations"] == {resizer.ANN_PRE_RESIZE_CAPACITY: "1Gi"}
    assert resizer.with_capacity(volume(), "2Gi", None)["metadata"]["annotations"] == {}


@pytest.mark.parametrize("error,final,infeasible,code", [
    (errors.TemporaryError("busy"), False, False, "Unavailable"),
    (errors.OutOfCapacity("full", 2, 1), True, True, "OutOfRange"),
    (errors.VolumeNotFound("gone"), True, True, "NotFound"),
    (errors.InvalidArgument("size", 1, "bad"), True, True, "InvalidArgument"),
    (errors.PermanentError("broken"), True, False, "Internal"),
])
def test_error_classes(error: errors.DriverError, final: bool, infeasible: bool,
                       code: str) -> None:
    assert resizer.is_final(error) is final
    assert resizer.is_infeasible(error) is infeasible
    assert resizer.rpc_message(error) == f"rpc error: code = {code} desc = {error}"


# ----------------------------------------------------------------------------- one sync

class FakeKube:
    """Records replaces, bumping resourceVersion; answers like the apiserver would."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, bool, Obj]] = []

    async def replace(self, kind: str, obj: Obj, *, status: bool = False) -> Obj:
        written = copy.deepcopy(obj)
        meta = written["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 100)
        self.writes.append((kind, status, written))
        return written


class FakeDriver:
    def __init__(self, result: contract.ExpansionResult | errors.DriverError) -> None:
        self.result = result
        self.calls: list[tuple[str, int]] = []

    def expand_volume(self, volume_id: str, capacity_bytes: int,
                      secrets: Mapping[str, str] | None = None) -> contract.ExpansionResult:
        self.calls.append((volume_id, capacity_bytes))
        if isinstance(self.result, errors.DriverError):
            raise self.result
        return self.result


class RecordedEvents:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))


def make_controller(driver: FakeDriver, c: Obj, v: Obj
                    ) -> tuple[resizer.ResizeController, FakeKube, RecordedEvents]:
    kube = FakeKube()
    informers = shared.Informers(kube)  # type: ignore[arg-type]
    ctrl = resizer.ResizeController(kube, informers,  # type: ignore[arg-type]
                                    {"storagelab.io/local": driver})  # type: ignore[dict-item]
    recorded = RecordedEvents()
    ctrl.recorders = {DRIVER: recorded}  # type: ignore[dict-item]
    ctrl.claims.assume(c)
    ctrl.volumes.assume(v)
    return ctrl, kube, recorded


def sync(ctrl: resizer.ResizeController) -> None:
    asyncio.run(ctrl.sync_claim("ns/data"))


def test_sync_success_writes_pv_then_claim() -> None:
    driver = FakeDriver(contract.ExpansionResult(2 * 1024**3, False))
    ctrl, kube, recorded = make_controller(driver, claim("2Gi"), volume())
    sync(ctrl)
    assert driver.calls == [("local:abc", 2 * 1024**3)]
    kinds = [(k, s) for k, s, _ in kube.writes]
    assert kinds == [("PersistentVolumeClaim", True), ("PersistentVolume", False),
                     ("PersistentVolumeClaim", True)]
    assert kube.writes[1][2]["spec"]["capacity"] == {"storage": "2Gi"}
    final = kube.writes[2][2]["status"]
    assert final["capacity"] == {"storage": "2Gi"}
    assert final["allocatedResources"] == {"storage": "2Gi"}
    assert "conditions" not in final and "allocatedResourceStatuses" not in final
    assert [r for _, r, _ in recorded.seen] == ["Resizing", "VolumeResizeSuccessful"]
    assert recorded.seen[0][2] == "External resizer is resizing volume pvc-u-1"
    assert not resizer.needs_resize(ctrl.claims.get("ns/data") or {})


def test_sync_node_expansion_required() -> None:
    driver = FakeDriver(contract.ExpansionResult(2 * 1024**3, True))
    ctrl, kube, recorded = make_controller(driver, claim("2Gi"), volume())
    sync(ctrl)
    pv = kube.writes[1][2]
    assert pv["metadata"]["annotations"] == {resizer.ANN_PRE_RESIZE_CAPACITY: "1Gi"}
    status = kube.writes[2][2]["status"]
    assert status["capacity"] == {"storage": "1Gi"}
    assert status["allocatedResourceStatuses"] == {"storage": P}
    assert [c["type"] for c in status["conditions"]] == ["FileSystemResizePending"]
    assert recorded.seen[-1] == ("Normal", "FileSystemResizeRequired",
                                 "Require file system resize of volume on node")


@pytest.mark.parametrize("error,status,final", [
    (errors.OutOfCapacity("no room", 2, 1), CF, True),
    (errors.PermanentError("broken"), CI, True),
    (errors.TemporaryError("busy"), CI, False),
])
def test_sync_failure(error: errors.DriverError, status: str, final: bool) -> None:
    ctrl, kube, recorded = make_controller(FakeDriver(error), claim("2Gi"), volume())
    with pytest.raises(controller.RetryLater):
        sync(ctrl)
    assert all(k == "PersistentVolumeClaim" for k, _, _ in kube.writes)  # the PV is untouched
    last = kube.writes[-1][2]["status"]
    assert last["allocatedResourceStatuses"] == {"storage": status}
    assert last["capacity"] == {"storage": "1Gi"}
    has_error_condition = any(c["type"] == "ControllerResizeError"
                              for c in last["conditions"])
    assert has_error_condition is final  # temporary failures change no status
    type_, reason, message = recorded.seen[-1]
    assert (type_, reason) == ("Warning", "VolumeResizeFailed")
    assert message.startswith('resize volume "pvc-u-1" by resizer "local.storagelab.io" '
                              'failed: rpc error: code = ')


def test_infeasible_size_is_retried_slowly_but_a_lower_request_at_once() -> None:
    driver = FakeDriver(errors.OutOfCapacity("no room", 2, 1))
    ctrl, kube, _ = make_controller(driver, claim("9Gi"), volume())
    with pytest.raises(controller.RetryLater):
        sync(ctrl)
    with pytest.raises(controller.Requeue) as waited:
        sync(ctrl)  # same size: waits for the slow retry
    assert waited.value.delay > 200
    assert len(driver.calls) == 1
    lowered = copy.deepcopy(ctrl.claims.get("ns/data") or {})
    lowered["spec"]["resources"]["requests"]["storage"] = "2Gi"
    lowered["metadata"]["resourceVersion"] = "999"
    ctrl.claims.assume(lowered)
    driver.result = contract.ExpansionResult(2 * 1024**3, False)
    sync(ctrl)
    assert driver.calls[-1] == ("local:abc", 2 * 1024**3)
    assert kube.writes[-1][2]["status"]["capacity"] == {"storage": "2Gi"}


def test_sync_ignores_other_drivers_volumes() -> None:
    driver = FakeDriver(contract.ExpansionResult(2 * 1024**3, False))
    ctrl, kube, _ = make_controller(driver, claim("2Gi"), volume(driver="other.csi"))
    sync(ctrl)
    assert driver.calls == [] and kube.writes == []


# ----------------------------------------------------------------------------- admission

class FakeRegistry:
    def __init__(self, classes: Mapping[str, Obj]) -> None:
        self.classes = classes

    def cached_get(self, rt: resources.ResourceType, namespace: str | None,
                   name: str) -> Obj | None:
        assert rt is resources.STORAGE_CLASSES
        return self.classes.get(name)


def admit(new: Obj, old: Obj, classes: Mapping[str, Obj], subresource: str = "") -> None:
    plugin = resize_admission.PersistentVolumeClaimResize()
    registry: Any = FakeRegistry(classes)
    plugin.admit_update(registry, resources.PERSISTENT_VOLUME_CLAIMS, new, old, subresource)


EXPANDABLE = {"metadata": {"name": "fast"}, "allowVolumeExpansion": True}
FIXED = {"metadata": {"name": "fast"}}


@pytest.mark.parametrize("new,old,classes,message", [
    (claim("2Gi"), claim("1Gi"), {"fast": FIXED}, resize_admission.MSG_NOT_EXPANDABLE),
    (claim("2Gi"), claim("1Gi"), {}, resize_admission.MSG_NOT_EXPANDABLE),
    (claim("2Gi"), claim("1Gi", phase="Pending"), {"fast": EXPANDABLE},
     resize_admission.MSG_NOT_BOUND),
    (claim("2Gi", annotations={"volume.beta.kubernetes.io/storage-class": "other"}),
     claim("1Gi"), {"fast": EXPANDABLE, "other": EXPANDABLE},
     resize_admission.MSG_NOT_EXPANDABLE),
])
def test_admission_refuses(new: Obj, old: Obj, classes: dict[str, Obj], message: str) -> None:
    with pytest.raises(api_errors.APIError) as refused:
        admit(new, old, classes)
    assert refused.value.code == 403 and refused.value.reason == "Forbidden"
    assert refused.value.message == f'persistentvolumeclaims "data" is forbidden: {message}'
    assert refused.value.details == {"name": "data", "kind": "persistentvolumeclaims"}


@pytest.mark.parametrize("new,old,subresource,classes", [
    (claim("2Gi"), claim("1Gi"), "", {"fast": EXPANDABLE}),
    (claim("1Gi"), claim("1Gi"), "", {"fast": FIXED}),  # no growth: not this plugin's case
    (claim("1Gi"), claim("2Gi"), "", {"fast": FIXED}),  # shrink: validation judges it
    (claim("2Gi"), claim("1Gi"), "status", {"fast": FIXED}),
])
def test_admission_allows(new: Obj, old: Obj, subresource: str,
                          classes: dict[str, Obj]) -> None:
    admit(new, old, classes, subresource)
