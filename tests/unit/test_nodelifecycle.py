"""Decision tables of the node lifecycle controller (storage/nodelifecycle.py)."""

from __future__ import annotations

from typing import Any

import pytest

from storage import nodelifecycle as nl

Obj = dict[str, Any]
CFG = nl.LifecycleConfig(monitor_period=1, grace_period=40, startup_grace_period=60)
CREATED = "2026-01-01T00:00:00Z"
T0 = nl.parse_time(CREATED) or 0.0


def node(ready: str | None = "True", heartbeat: str = "h1", **spec: Any) -> Obj:
    conditions = [{"type": "MemoryPressure", "status": "False",
                   "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": heartbeat, "lastTransitionTime": "t0"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready, "reason": "KubeletReady",
                           "lastHeartbeatTime": heartbeat, "lastTransitionTime": "t0"})
    return {"metadata": {"name": "n", "creationTimestamp": CREATED}, "spec": spec,
            "status": {"conditions": conditions}}


def lease(renew: str) -> Obj:
    return {"spec": {"renewTime": renew}}


@pytest.mark.parametrize("previous,n,ls,now,probe", [
    # first look at a node that reported: heard from now
    (None, node(), lease("r1"), T0 + 500, T0 + 500),
    # first look at a node that never reported Ready and has no lease: its creation time
    (None, node(ready=None), None, T0 + 500, T0),
    (None, node(ready=None), lease("r1"), T0 + 500, T0 + 500),
    # nothing changed: the probe time stays
    (nl.NodeHealth(T0, "h1", "r1"), node(), lease("r1"), T0 + 100, T0),
    # the lease was renewed: heard from now, though the Ready heartbeat is old
    (nl.NodeHealth(T0, "h1", "r1"), node(), lease("r2"), T0 + 100, T0 + 100),
    # the Ready heartbeat moved
    (nl.NodeHealth(T0, "h1", "r1"), node(heartbeat="h2"), lease("r1"), T0 + 100, T0 + 100),
    # the lease disappeared: not a sign of life
    (nl.NodeHealth(T0, "h1", "r1"), node(), None, T0 + 100, T0),
])
def test_observe(previous: nl.NodeHealth | None, n: Obj, ls: Obj | None, now: float,
                 probe: float) -> None:
    assert nl.observe(previous, n, ls, now).probe_time == probe


@pytest.mark.parametrize("n,probe,now,stale", [
    (node(), T0, T0 + 40, False),
    (node(), T0, T0 + 40.5, True),
    (node(ready=None), T0, T0 + 50, False),   # startup grace applies
    (node(ready=None), T0, T0 + 61, True),
])
def test_is_stale(n: Obj, probe: float, now: float, stale: bool) -> None:
    assert nl.is_stale(nl.NodeHealth(probe, "", ""), n, now, CFG) is stale


def test_unknown_conditions_marks_kubelet_conditions_and_adds_missing() -> None:
    n = node()
    n["status"]["conditions"].append({"type": "NetworkUnavailable", "status": "False"})
    got = {c["type"]: c for c in nl.unknown_conditions(n, "NOW")}
    assert got["Ready"] == {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                            "message": "Kubelet stopped posting node status.",
                            "lastHeartbeatTime": "h1", "lastTransitionTime": "NOW"}
    assert got["MemoryPressure"]["status"] == "Unknown"
    assert got["NetworkUnavailable"] == {"type": "NetworkUnavailable", "status": "False"}
    for missing in ("DiskPressure", "PIDPressure"):
        assert got[missing] == {"type": missing, "status": "Unknown",
                                "reason": "NodeStatusNeverUpdated",
                                "message": "Kubelet never posted node status.",
                                "lastHeartbeatTime": CREATED, "lastTransitionTime": "NOW"}


def test_unknown_conditions_is_stable_once_unknown() -> None:
    once = node()
    once["status"]["conditions"] = nl.unknown_conditions(once, "T1")
    assert nl.unknown_conditions(once, "T2") == once["status"]["conditions"]


OTHER = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
UNREACHABLE = {"key": nl.UNREACHABLE_TAINT, "effect": "NoSchedule"}
NOT_READY = {"key": nl.NOT_READY_TAINT, "effect": "NoSchedule"}


@pytest.mark.parametrize("n,want", [
    (node("True"), []),
    (node("Unknown"), [UNREACHABLE]),
    (node("False"), [NOT_READY]),
    (node(None), []),
    # recovery: the controller's own taint goes, someone else's stays
    (node("True", taints=[OTHER, UNREACHABLE]), [OTHER]),
    (node("Unknown", taints=[OTHER, NOT_READY]), [OTHER, UNREACHABLE]),
    # a NoExecute taint with the same key is not ours to remove here
    (node("True", taints=[{"key": nl.UNREACHABLE_TAINT, "effect": "NoExecute"}]),
     [{"key": nl.UNREACHABLE_TAINT, "effect": "NoExecute"}]),
    (node("True", unschedulable=True), [{"key": nl.UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}]),
])
def test_desired_taints(n: Obj, want: list[Obj]) -> None:
    assert nl.desired_taints(n) == want


def test_taints_differ_ignores_order() -> None:
    n = node("Unknown", taints=[UNREACHABLE, OTHER])
    assert not nl.taints_differ(n, nl.desired_taints(n))
    assert nl.taints_differ(node("Unknown"), [UNREACHABLE])
    assert nl.taints_differ(node("True", taints=[UNREACHABLE]), [])


@pytest.mark.parametrize("conditions,want", [
    ([{"type": "Ready", "status": "True", "reason": "R", "lastTransitionTime": "old"}],
     [{"type": "Ready", "status": "False", "reason": "R", "lastTransitionTime": "NOW"}]),
    ([{"type": "Ready", "status": "False", "lastTransitionTime": "old"}], None),
    ([{"type": "PodScheduled", "status": "True"}], None),
    ([], None),
])
def test_pod_not_ready_status(conditions: list[Obj], want: list[Obj] | None) -> None:
    got = nl.pod_not_ready_status({"status": {"phase": "Running", "conditions": conditions}},
                                  "NOW")
    assert (got["conditions"] if got else None) == want
    if got:
        assert got["phase"] == "Running"


@pytest.mark.parametrize("ready,want", [("True", False), ("False", True), ("Unknown", True),
                                        (None, False)])
def test_node_not_ready(ready: str | None, want: bool) -> None:
    assert nl.node_not_ready(node(ready)) is want


@pytest.mark.parametrize("kwargs", [{"monitor_period": 0}, {"grace_period": -1},
                                    {"monitor_period": 10, "grace_period": 5}])
def test_config_rejects(kwargs: dict[str, float]) -> None:
    with pytest.raises(nl.ConfigError):
        nl.LifecycleConfig(**kwargs)
