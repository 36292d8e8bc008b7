"""The official `kubernetes` Python client against our apiserver, configured by kubeconfig.

The client deserializes responses into its generated models and raises `ApiException` on
errors, so these tests show that what we send has the shapes, types and codes it expects:
create, read, list with selectors, watch from a list's resourceVersion, replace with
optimistic concurrency, delete with propagation policies, and a namespace's life cycle.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

Api = Any  # kubernetes.client.CoreV1Api; the client ships no type hints


def pvc(name: str, size: str = "1Gi", labels: dict[str, str] | None = None
        ) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": size})))


def config_map(name: str, labels: dict[str, str] | None = None,
               **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels),
                              data=data)


def is_a(obj: Any, model: type) -> bool:
    """isinstance, without narrowing: the models type every field Optional, we read them."""
    return isinstance(obj, model)


def _status_of(call: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body or "{}")


def test_create_and_read_a_claim_with_canonical_quantity(core_v1: Api, ns: str) -> None:
    created = core_v1.create_namespaced_persistent_volume_claim(ns, pvc("data", "1.5Gi"))
    assert is_a(created, client.V1PersistentVolumeClaim)
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert created.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    assert created.status.phase == "Pending"
    assert created.spec.volume_mode == "Filesystem"
    read = core_v1.read_namespaced_persistent_volume_claim("data", ns)
    assert read.spec.resources.requests == {"storage": "1536Mi"}
    assert read.metadata.resource_version == created.metadata.resource_version


def test_list_with_label_selectors(core_v1: Api, ns: str) -> None:
    for name, labels in {"a": {"app": "db", "tier": "fast"}, "b": {"app": "db"},
                         "c": {"app": "web", "tier": "slow"}}.items():
        core_v1.create_namespaced_persistent_volume_claim(ns, pvc(name, labels=labels))
        core_v1.create_namespaced_config_map(ns, config_map(f"cm-{name}", labels))

    def claims(**kwargs: str) -> list[str]:
        listed = core_v1.list_namespaced_persistent_volume_claim(ns, **kwargs)
        assert is_a(listed, client.V1PersistentVolumeClaimList)
        return [item.metadata.name for item in listed.items]

    assert claims() == ["a", "b", "c"]
    assert claims(label_selector="app=db") == ["a", "b"]
    assert claims(label_selector="app=db,tier") == ["a"]
    assert claims(label_selector="tier notin (fast)") == ["b", "c"]
    assert claims(field_selector="metadata.name=c") == ["c"]
    maps = core_v1.list_namespaced_config_map(ns, label_selector="tier in (fast,slow)")
    assert [item.metadata.name for item in maps.items] == ["cm-a", "cm-c"]
    everywhere = core_v1.list_persistent_volume_claim_for_all_namespaces(
        label_selector="app=web", field_selector=f"metadata.namespace={ns}")
    assert [(i.metadata.namespace, i.metadata.name) for i in everywhere.items] == [(ns, "c")]


def test_watch_from_the_resource_version_of_a_list(core_v1: Api, ns: str) -> None:
    core_v1.create_namespaced_config_map(ns, config_map("first", mode="a"))
    core_v1.create_namespaced_persistent_volume_claim(ns, pvc("claim"))
    maps = core_v1.list_namespaced_config_map(ns)
    claims = core_v1.list_namespaced_persistent_volume_claim(ns)

    # Changes made after the lists: a watch from their resourceVersion replays exactly these.
    core_v1.create_namespaced_config_map(ns, config_map("second"))
    core_v1.patch_namespaced_config_map("first", ns, {"data": {"mode": "b"}})
    core_v1.delete_namespaced_config_map("first", ns)
    core_v1.patch_namespaced_persistent_volume_claim("claim", ns,
                                                     {"metadata": {"labels": {"seen": "yes"}}})

    seen = []
    w = watch.Watch()
    for event in w.stream(core_v1.list_namespaced_config_map, ns,
                          resource_version=maps.metadata.resource_version, timeout_seconds=5):
        assert is_a(event["object"], client.V1ConfigMap)
        seen.append((event["type"], event["object"].metadata.name,
                     (event["object"].data or {}).get("mode")))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "second", None), ("MODIFIED", "first", "b"),
                    ("DELETED", "first", "b")]

    w = watch.Watch()
    for event in w.stream(core_v1.list_namespaced_persistent_volume_claim, ns,
                          resource_version=claims.metadata.resource_version,
                          timeout_seconds=5):
        claim = event["object"]
        assert (event["type"], claim.metadata.labels) == ("MODIFIED", {"seen": "yes"})
        assert claim.spec.resources.requests == {"storage": "1Gi"}
        assert int(claim.metadata.resource_version) > int(claims.metadata.resource_version)
        w.stop()


def test_watch_sees_changes_made_while_it_streams(core_v1: Api, ns: str) -> None:
    listed = core_v1.list_namespaced_config_map(ns)

    def change_later() -> None:
        time.sleep(0.5)
        core_v1.create_namespaced_config_map(ns, config_map("late", mode="x"))

    changer = threading.Thread(target=change_later)
    changer.start()
    w = watch.Watch()
    seen = []
    try:
        for event in w.stream(core_v1.list_namespaced_config_map, ns,
                              resource_version=listed.metadata.resource_version,
                              timeout_seconds=10):
            seen.append((event["type"], event["object"].metadata.name,
                         event["object"].data))
            w.stop()
    finally:
        changer.join()
    assert seen == [("ADDED", "late", {"mode": "x"})]


def test_replace_with_a_stale_resource_version_is_a_conflict(core_v1: Api, ns: str) -> None:
    core_v1.create_namespaced_persistent_volume_claim(ns, pvc("data"))
    core_v1.create_namespaced_config_map(ns, config_map("settings", mode="a"))
    stale_claim = core_v1.read_namespaced_persistent_volume_claim("data", ns)
    stale_map = core_v1.read_namespaced_config_map("settings", ns)
    core_v1.patch_namespaced_persistent_volume_claim("data", ns,
                                                     {"metadata": {"labels": {"by": "other"}}})
    core_v1.patch_namespaced_config_map("settings", ns, {"data": {"mode": "b"}})

    stale_claim.metadata.labels = {"by": "me"}
    code, status = _status_of(core_v1.replace_namespaced_persistent_volume_claim, "data", ns,
                              stale_claim)
    assert (code, status["reason"], status["kind"]) == (409, "Conflict", "Status")
    assert status["message"] == (
        'Operation cannot be fulfilled on persistentvolumeclaims "data": the object has been '
        'modified; please apply your changes to the latest version and try again')
    stale_map.data = {"mode": "c"}
    code, _ = _status_of(core_v1.replace_namespaced_config_map, "settings", ns, stale_map)
    assert code == 409

    fresh = core_v1.read_namespaced_config_map("settings", ns)
    assert fresh.data == {"mode": "b"}
    fresh.data = {"mode": "c"}
    replaced = core_v1.replace_namespaced_config_map("settings", ns, fresh)
    assert replaced.data == {"mode": "c"}
    assert int(replaced.metadata.resource_version) > int(fresh.metadata.resource_version)


def test_errors_come_back_as_api_exceptions(core_v1: Api, ns: str) -> None:
    core_v1.create_namespaced_config_map(ns, config_map("taken"))
    code, status = _status_of(core_v1.create_namespaced_config_map, ns, config_map("taken"))
    assert (code, status["reason"], status["message"]) == \
        (409, "AlreadyExists", 'configmaps "taken" already exists')
    code, status = _status_of(core_v1.read_namespaced_persistent_volume_claim, "nope", ns)
    assert (code, status["reason"], status["details"]) == \
        (404, "NotFound", {"name": "nope", "kind": "persistentvolumeclaims"})
    code, status = _status_of(core_v1.create_namespaced_persistent_volume_claim, ns,
                              pvc("Bad_Name"))
    assert (code, status["reason"]) == (422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.name"]


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
def test_delete_with_propagation_policy(sqlite_core_v1: Api, sqlite_ns: str,
                                        policy: str) -> None:
    api, ns = sqlite_core_v1, sqlite_ns
    api.create_namespaced_config_map(ns, config_map("settings"))
    api.delete_namespaced_config_map("settings", ns, propagation_policy=policy)
    code, _ = _status_of(api.read_namespaced_config_map, "settings", ns)
    assert code == 404

    # The protection finalizer keeps the claim; the answer is the claim, marked for deletion.
    api.create_namespaced_persistent_volume_claim(ns, pvc("data"))
    marked = api.delete_namespaced_persistent_volume_claim(
        "data", ns, body=client.V1DeleteOptions(propagation_policy=policy))
    assert is_a(marked, client.V1PersistentVolumeClaim)
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    api.patch_namespaced_persistent_volume_claim("data", ns, {"metadata": {"finalizers": None}})
    code, _ = _status_of(api.read_namespaced_persistent_volume_claim, "data", ns)
    assert code == 404


def test_delete_with_an_unknown_propagation_policy_is_a_bad_request(core_v1: Api,
                                                                     ns: str) -> None:
    core_v1.create_namespaced_config_map(ns, config_map("settings"))
    code, status = _status_of(core_v1.delete_namespaced_config_map, "settings", ns,
                              propagation_policy="Sideways")
    assert (code, status["reason"]) == (400, "BadRequest")
    assert core_v1.read_namespaced_config_map("settings", ns).metadata.name == "settings"


def test_immediate_delete_answers_with_a_success_status(sqlite_core_v1: Api,
                                                        sqlite_ns: str) -> None:
    created = sqlite_core_v1.create_namespaced_config_map(sqlite_ns, config_map("settings"))
    answer = sqlite_core_v1.delete_namespaced_config_map("settings", sqlite_ns)
    # This client version types DELETE answers as a plain object (a dict).
    assert (answer["kind"], answer["status"]) == ("Status", "Success")
    details = answer["details"]
    assert (details["name"], details["kind"], details["uid"]) == \
        ("settings", "configmaps", created.metadata.uid)


def _wait_gone(read: Any, *args: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read(*args)
        except ApiException as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.2)
    raise AssertionError(f"{args} still exists after {timeout}s")


def test_namespace_terminates_then_goes_once_its_objects_are_gone(sqlite_core_v1: Api) -> None:
    api = sqlite_core_v1
    name = f"life-{uuid.uuid4().hex[:8]}"
    created = api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert created.status.phase == "Active"
    assert created.spec.finalizers == ["kubernetes"]
    api.create_namespaced_persistent_volume_claim(name, pvc("held"))
    api.create_namespaced_config_map(name, config_map("loose"))

    api.delete_namespace(name)
    terminating = api.read_namespace(name)
    assert terminating.status.phase == "Terminating"
    assert terminating.metadata.deletion_timestamp is not None
    # The namespace controller deletes the contents; the claim's finalizer holds it back.
    _wait_gone(api.read_namespaced_config_map, "loose", name)
    held = api.read_namespaced_persistent_volume_claim("held", name)
    assert held.metadata.deletion_timestamp is not None
    assert api.read_namespace(name).status.phase == "Terminating"
    code, status = _status_of(api.create_namespaced_config_map, name, config_map("late"))
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (f'configmaps "late" is forbidden: unable to create new content '
                                 f'in namespace {name} because it is being terminated')

    api.patch_namespaced_persistent_volume_claim("held", name, {"metadata": {"finalizers": None}})
    _wait_gone(api.read_namespace, name)
