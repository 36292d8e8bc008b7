"""VolumeBinding's storage-capacity check (hasEnoughCapacity), as tables.

A WaitForFirstConsumer claim that must be provisioned on a node fits there only if the class's
CSIDriver does not track capacity, or some CSIStorageCapacity of the class whose nodeTopology
selects the node offers at least the request (maximumVolumeSize preferred over capacity);
otherwise the node fails with kube-scheduler's "node(s) did not have enough free storage".
"""

from __future__ import annotations

from typing import Any

import pytest

from storage import scheduling_filters as sf
from tests.unit.test_scheduler_filters import WFFC, claim, node, pod, pv

Obj = dict[str, Any]
TRACKED = {"metadata": {"name": "local.storagelab.io"}, "spec": {"storageCapacity": True}}
UNTRACKED = {"metadata": {"name": "local.storagelab.io"}, "spec": {"storageCapacity": False}}


def cap(cls: str = "c", on: str | None = "a", capacity: str | None = "2Gi",
        maximum: str | None = None, topology: Obj | None = None) -> Obj:
    obj: Obj = {"metadata": {"name": f"csisc-{cls}-{on}", "namespace": "kube-system"},
                "storageClassName": cls}
    if topology is not None:
        obj["nodeTopology"] = topology
    elif on is not None:
        obj["nodeTopology"] = {"matchLabels": {"kubernetes.io/hostname": on}}
    if capacity is not None:
        obj["capacity"] = capacity
    if maximum is not None:
        obj["maximumVolumeSize"] = maximum
    return obj


def state(driver: Obj | None = TRACKED, size: str | None = "1Gi") -> sf.ClaimState:
    c = claim()
    if size is None:
        c["spec"]["resources"] = {}
    else:
        c["spec"]["resources"]["requests"]["storage"] = size
    return sf.ClaimState("data", c, WFFC, driver)


@pytest.mark.parametrize("the_state, capacities, fits", [
    # The driver decides whether capacity counts at all.
    (state(driver=None), [], True),
    (state(driver=UNTRACKED), [], True),
    (state(driver={"metadata": {"name": "x"}, "spec": {}}), [], True),
    # Tracked: no object for the class at all means no capacity (as in Kubernetes).
    (state(), [], False),
    (state(), [cap(cls="other")], False),
    (state(), [cap(on="b")], False),
    # Enough, exactly enough, too little, unset, zero.
    (state(), [cap(capacity="2Gi")], True),
    (state(), [cap(capacity="1Gi")], True),
    (state(), [cap(capacity="1073741823")], False),
    (state(), [cap(capacity=None)], False),
    (state(), [cap(capacity="0")], False),
    # maximumVolumeSize wins over capacity, in both directions.
    (state(), [cap(capacity="10Gi", maximum="512Mi")], False),
    (state(), [cap(capacity="512Mi", maximum="1Gi")], True),
    # One sufficient object among several is enough.
    (state(), [cap(capacity="1Mi"), cap(on="b", capacity="5Gi"),
               {**cap(capacity="3Gi"), "metadata": {"name": "second"}}], True),
    # Topology: unset reaches no node, empty selects every node, expressions work.
    (state(), [cap(on=None)], False),
    (state(), [cap(topology={})], True),
    (state(), [cap(topology={"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["z1"]}]})], True),
    (state(), [cap(topology={"matchExpressions": [
        {"key": "zone", "operator": "NotIn", "values": ["z1"]}]})], False),
    (state(), [cap(topology={"matchExpressions": [{"key": "zone", "operator": "Bogus"}]})],
     False),
    # A claim without a storage request has nothing to check.
    (state(size=None), [], True),
    # Requests round up to whole bytes before comparing (Quantity.Value()).
    (state(size="1500m"), [cap(capacity="1")], False),
    (state(size="1500m"), [cap(capacity="2")], True),
])
def test_has_enough_capacity(the_state: sf.ClaimState, capacities: list[Obj],
                             fits: bool) -> None:
    the_node = node("a", labels={"zone": "z1"})
    assert sf.has_enough_capacity(the_state, the_node, capacities) is fits


def test_check_volumes_reports_not_enough_space_and_plans_nothing() -> None:
    reasons, plan = sf.check_volumes([state(size="1Pi")], node("a"), {}, [], [cap()])
    assert reasons == ["node(s) did not have enough free storage"]
    assert plan == sf.VolumePlan()


def test_check_volumes_plans_provisioning_where_capacity_suffices() -> None:
    reasons, plan = sf.check_volumes([state()], node("a"), {}, [], [cap()])
    assert (reasons, plan) == ([], sf.VolumePlan({}, ("data",)))


def test_static_volume_needs_no_capacity() -> None:
    """A claim that binds an existing PV is not provisioned: capacity is not consulted."""
    reasons, plan = sf.check_volumes([state()], node("a"), {}, [pv("pv-1", on="a")], [])
    assert (reasons, plan) == ([], sf.VolumePlan({"data": "pv-1"}, ()))


def test_bind_conflict_comes_before_capacity() -> None:
    """checkVolumeProvisions stops at the first claim that cannot be provisioned there."""
    no_provisioner = sf.ClaimState("data", claim(), {**WFFC, "provisioner": ""}, TRACKED)
    reasons, _ = sf.check_volumes([no_provisioner, state(size="1Pi")], node("a"), {}, [], [])
    assert reasons == ["node(s) didn't find available persistent volumes to bind"]


def test_fit_error_with_capacity_on_every_node() -> None:
    """What the pod's FailedScheduling event says when no node has the space."""
    verdicts = [sf.filter_node(pod(), node(n), [], [state(size="1Pi")], {}, [], 0,
                               [cap(on="a"), cap(on="b")]) for n in ("a", "b")]
    message = sf.fit_error(2, {v.node: v.reasons for v in verdicts})
    assert message == "0/2 nodes are available: 2 node(s) did not have enough free storage."


def test_capacity_steers_to_the_node_with_space() -> None:
    verdicts = [sf.filter_node(pod(), node(n), [], [state(size="3Gi")], {}, [], 0,
                               [cap(on="a", capacity="1Gi"), cap(on="b", capacity="10Gi")])
                for n in ("a", "b")]
    assert sf.pick(verdicts, {}) == sf.NodeVerdict("b", (), sf.VolumePlan({}, ("data",)))
