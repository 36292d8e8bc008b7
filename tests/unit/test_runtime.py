"""The runtime's pieces, against a scripted API: informer relists, outcomes, events.

The fake API here only replays list and watch answers (and records writes) so that relist on
410 Gone, handler dispatch and event aggregation can be checked in milliseconds; the same
pieces run against the real apiserver in tests/api/test_pv_controller.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from storage import pv_controller, reclaim
from storage.protection import pod_uses_claim
from storage.runtime import controller, events, informer, leaderelection, workqueue
from storage.runtime import kube as kube_api

Obj = dict[str, Any]


def pv(name: str, rv: int, phase: str = "Available") -> Obj:
    return {"kind": "PersistentVolume", "apiVersion": "v1",
            "metadata": {"name": name, "resourceVersion": str(rv), "uid": f"uid-{name}"},
            "status": {"phase": phase}}


class ScriptedKube:
    """Lists and watch streams handed out in order; a watch ends by raising its last item."""

    def __init__(self, lists: list[tuple[list[Obj], str]],
                 watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.created: list[Obj] = []
        self.patched: list[tuple[str, Obj]] = []

    async def list(self, kind: str, namespace: str = "*") -> tuple[list[Obj], str]:
        return self.lists.pop(0)

    async def watch(self, kind: str, rv: str) -> AsyncIterator[tuple[str, Obj]]:
        if not self.watches:
            await asyncio.sleep(3600)
        for item in self.watches.pop(0):
            if isinstance(item, Exception):
                raise item
            yield item

    async def create(self, kind: str, obj: Obj) -> Obj:
        self.created.append(obj)
        return obj

    async def merge_patch(self, kind: str, name: str, patch: Obj,
                          namespace: str | None = None) -> Obj:
        self.patched.append((name, patch))
        return patch


def test_informer_relists_after_410_and_reports_what_vanished_meanwhile() -> None:
    seen: list[tuple[str, str]] = []
    fake = ScriptedKube(
        lists=[([pv("a", 1), pv("b", 2)], "2"), ([pv("a", 5)], "6")],
        watches=[[("MODIFIED", pv("a", 3)), kube_api.Expired("too old")]])
    inf = informer.Informer(fake, "PersistentVolume")  # type: ignore[arg-type]
    inf.add_handlers(informer.Handlers(
        on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
        on_update=lambda old, new: seen.append(("update", new["metadata"]["resourceVersion"])),
        on_delete=lambda o: seen.append(("delete", o["metadata"]["name"]))))

    async def scenario() -> None:
        task = asyncio.create_task(inf.run())
        await inf.wait_synced()
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(scenario())
    assert seen == [("add", "a"), ("add", "b"), ("update", "3"), ("delete", "b"),
                    ("update", "5")]
    assert [o["metadata"]["name"] for o in inf] == ["a"]


def test_informer_ignores_events_older_than_our_own_write() -> None:
    fake = ScriptedKube(lists=[], watches=[])
    inf = informer.Informer(fake, "PersistentVolume")  # type: ignore[arg-type]
    inf.assume(pv("a", 10, "Bound"))
    inf._observe("MODIFIED", pv("a", 9, "Available"))
    assert inf.get("a")["status"]["phase"] == "Bound"  # type: ignore[index]
    inf.assume(pv("a", 8, "Pending"))
    assert inf.get("a")["status"]["phase"] == "Bound"  # type: ignore[index]
    inf._observe("DELETED", pv("a", 11))
    assert inf.get("a") is None


def test_our_write_answered_after_the_deletion_event_does_not_resurrect_it() -> None:
    fake = ScriptedKube(lists=[], watches=[])
    inf = informer.Informer(fake, "PersistentVolumeClaim")  # type: ignore[arg-type]
    inf.assume(pv("a", 10))
    inf._observe("DELETED", pv("a", 12))  # the watch reports the deletion first ...
    inf.assume(pv("a", 11))  # ... then the answer to our (earlier) write arrives
    assert inf.get("a") is None
    inf._observe("ADDED", pv("a", 20))  # a new object of the same name is welcome
    assert inf.get("a") is not None


def test_a_write_that_removed_the_last_finalizer_deletes_from_the_cache() -> None:
    fake = ScriptedKube(lists=[], watches=[])
    inf = informer.Informer(fake, "PersistentVolumeClaim")  # type: ignore[arg-type]
    inf.assume(pv("a", 10))
    gone = pv("a", 11)
    gone["metadata"].update(deletionTimestamp="2024-01-01T00:00:00Z", finalizers=[])
    inf.assume(gone)
    assert inf.get("a") is None


@pytest.mark.parametrize(("raised", "requeued_after", "failures"), [
    (None, None, 0),
    (controller.Requeue(0.05), 0.05, 0),
    (kube_api.Conflict("stale"), 0.005, 1),
    (kube_api.NotFound("gone"), 0.005, 1),
    (controller.RetryLater("reported"), 0.005, 1),
    (RuntimeError("bug"), 0.005, 1),
])
def test_reconcile_outcomes_map_to_queue_actions(
        raised: Exception | None, requeued_after: float | None, failures: int) -> None:
    async def scenario() -> None:
        q = workqueue.WorkQueue()
        q.add("k")
        key = await q.get()

        async def reconcile(k: str) -> None:
            if raised is not None:
                raise raised
        await controller.process_one(q, reconcile, key)
        assert q.failures("k") == failures
        if requeued_after is None:
            assert not q._delayed.heap
        else:
            assert q._delayed.heap[0][0] - asyncio.get_running_loop().time() == \
                pytest.approx(requeued_after, abs=0.02)
        q.shutdown()
    asyncio.run(scenario())


def test_repeated_events_bump_count_instead_of_creating_new_ones() -> None:
    fake = ScriptedKube([], [])
    recorder = events.EventRecorder(fake, "persistentvolume-controller")  # type: ignore[arg-type]
    volume = pv("a", 1)

    async def scenario() -> None:
        task = asyncio.create_task(recorder.run())
        for _ in range(3):
            recorder.event(volume, "Warning", "VolumeFailedDelete", "boom")
        recorder.event(volume, "Warning", "VolumeFailedDelete", "other")
        await recorder.flush()
        task.cancel()
    asyncio.run(scenario())
    assert len(fake.created) == 2
    first = fake.created[0]
    assert first["metadata"]["namespace"] == "default"  # cluster-scoped objects
    assert first["metadata"]["name"].startswith("a.")
    assert first["involvedObject"] == {"kind": "PersistentVolume", "name": "a", "uid": "uid-a",
                                       "apiVersion": "v1", "resourceVersion": "1"}
    assert first["source"] == {"component": "persistentvolume-controller"}
    assert first["reportingComponent"] == "persistentvolume-controller"
    assert (first["count"], first["type"], first["reason"]) == (1, "Warning",
                                                                "VolumeFailedDelete")
    assert [p["count"] for _, p in fake.patched] == [2, 3]


@pytest.mark.parametrize(("duration", "deadline", "retry"), [
    (10, 10, 2), (15, 20, 2), (15, 10, 0), (15, 10, 11)])
def test_lease_timings_that_allow_two_leaders_are_refused(
        duration: float, deadline: float, retry: float) -> None:
    with pytest.raises(leaderelection.ConfigError):
        leaderelection.LeaseConfig("l", "me", lease_duration=duration,
                                   renew_deadline=deadline, retry_period=retry)


class FakeReclaimer:
    name = "storagelab.dev/local"

    async def delete(self, volume: Any) -> None:
        return None

    async def recycle(self, volume: Any) -> None:
        return None


def test_fake_reclaimer_satisfies_the_protocol() -> None:
    _: reclaim.Reclaimer = FakeReclaimer()
    assert isinstance(FakeReclaimer(), reclaim.Reclaimer)


@pytest.mark.parametrize(("provisioned_by", "expected"), [
    ("storagelab.dev/local", "ours"),
    ("ebs.csi.aws.com", reclaim.External("ebs.csi.aws.com")),
    ("kubernetes.io/aws-ebs", reclaim.NoPlugin()),
    (None, reclaim.NoPlugin()),
])
def test_reclaimer_lookup_follows_find_deletable_plugin(provisioned_by: str | None,
                                                        expected: object) -> None:
    ours = FakeReclaimer()
    volume = pv("a", 1, "Released")
    if provisioned_by:
        volume["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by": provisioned_by}
    found = reclaim.Reclaimers([ours]).for_volume(volume)
    assert found == (ours if expected == "ours" else expected)


def sc(name: str, created: str, default: bool) -> Obj:
    ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann}}


@pytest.mark.parametrize(("classes", "expected"), [
    ([], None),
    ([sc("a", "2024-01-01T00:00:00Z", False)], None),
    ([sc("old", "2024-01-01T00:00:00Z", True), sc("new", "2024-02-01T00:00:00Z", True)], "new"),
    ([sc("b", "2024-01-01T00:00:00Z", True), sc("a", "2024-01-01T00:00:00Z", True)], "a"),
    ([sc("x", "2025-01-01T00:00:00Z", False), sc("d", "2024-01-01T00:00:00Z", True)], "d"),
])
def test_default_class_newest_wins_then_smallest_name(classes: list[Obj],
                                                      expected: str | None) -> None:
    assert pv_controller.default_class_name(classes) == expected


def pod(phase: str = "Running", *, ns: str = "ns", deleted_with_grace: int | None = None,
        volumes: list[Obj] | None = None) -> Obj:
    meta: Obj = {"name": "p", "namespace": ns}
    if deleted_with_grace is not None:
        meta.update(deletionTimestamp="2024-01-01T00:00:00Z",
                    deletionGracePeriodSeconds=deleted_with_grace)
    default = [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]
    return {"metadata": meta, "spec": {"volumes": volumes if volumes is not None else default},
            "status": {"phase": phase}}


@pytest.mark.parametrize(("the_pod", "uses"), [
    (pod(), True),
    (pod("Pending"), True),
    (pod("Succeeded"), False),
    (pod("Failed"), False),
    (pod(ns="other"), False),
    (pod(deleted_with_grace=30), True),  # still shutting down: data may be written
    (pod(deleted_with_grace=0), False),  # force-deleted / kubelet done
    (pod(volumes=[{"name": "v", "emptyDir": {}}]), False),
    (pod(volumes=[{"name": "c", "ephemeral": {"volumeClaimTemplate": {}}}]), False),
    (pod(volumes=[{"name": "x", "persistentVolumeClaim": {"claimName": "other"}},
                  {"name": "y", "persistentVolumeClaim": {"claimName": "c"}}]), True),
])
def test_which_pods_keep_a_claim_from_being_deleted(the_pod: Obj, uses: bool) -> None:
    assert pod_uses_claim(the_pod, "ns", "c") is uses


def test_generic_ephemeral_volume_claims_are_named_pod_dash_volume() -> None:
    the_pod = pod(volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}])
    assert pv_controller.claims_of_pod(the_pod) == ["p-scratch"]
