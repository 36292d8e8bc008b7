"""The scheduler's pure filters, as tables: taints, affinity, resources, volumes, messages."""

from __future__ import annotations

from typing import Any

import pytest

from storage import scheduling_filters as sf

Obj = dict[str, Any]


def node(name: str, *, ready: bool = True, labels: dict[str, str] | None = None,
         cpu: str = "2", pods: str = "110", **spec: Any) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": pods},
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def pod(cpu: str = "", memory: str = "", **spec: Any) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}],
                     **spec}}


def pv(name: str, on: str = "", cls: str = "c", claim: str = "") -> Obj:
    volume: Obj = {"metadata": {"name": name},
                   "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                            "storageClassName": cls},
                   "status": {"phase": "Available"}}
    if on:
        volume["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{
            "matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                  "values": [on]}]}]}}
    if claim:
        volume["spec"]["claimRef"] = {"namespace": "ns", "name": claim, "uid": "u"}
    return volume


def claim(name: str = "data", volume: str = "", cls: str = "c") -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": "u"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                     "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound" if volume else "Pending"}}


WFFC = {"metadata": {"name": "c"}, "provisioner": "storagelab.io/local",
        "volumeBindingMode": "WaitForFirstConsumer"}
IMMEDIATE = {**WFFC, "volumeBindingMode": "Immediate"}
STATIC_WFFC = {**WFFC, "provisioner": "kubernetes.io/no-provisioner"}


@pytest.mark.parametrize("reasons,expected", [
    ({"a": ["node(s) had volume node affinity conflict"],
      "b": ["node(s) didn't match Pod's node affinity/selector"]},
     ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
     "1 node(s) had volume node affinity conflict.")),
    ({"a": ["Insufficient cpu", "Insufficient memory"], "b": ["Insufficient cpu"],
      "c": ["node(s) were unschedulable"]},
     ("0/3 nodes are available: 1 Insufficient memory, 1 node(s) were unschedulable, "
     "2 Insufficient cpu.")),
])
def test_fit_error_sorts_the_histogram_as_strings(reasons: dict[str, list[str]],
                                                  expected: str) -> None:
    assert sf.fit_error(len(reasons), reasons) == expected


def test_no_nodes_and_prefilter_messages() -> None:
    assert sf.fit_error(0, {}) == "no nodes available to schedule pods"
    assert sf.prefilter_error(3, sf.ERR_UNBOUND_IMMEDIATE) == (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims.")


@pytest.mark.parametrize("toleration,taint,expected", [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "other"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
    ({"operator": "Exists"}, {"key": "any", "effect": "NoSchedule"}, True),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"},
     {"key": "k", "effect": "NoSchedule"}, False),
    ({"key": "", "value": ""}, {"key": "k", "effect": "NoSchedule"}, False),
])
def test_tolerates(toleration: Obj, taint: Obj, expected: bool) -> None:
    assert sf.tolerates(toleration, taint) is expected


@pytest.mark.parametrize("the_node,the_pod,expected", [
    (node("a"), pod(), ()),
    (node("a", ready=False), pod(),
     ("node(s) had untolerated taint {node.kubernetes.io/not-ready: }",)),
    (node("a", ready=False),
     pod(tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]), ()),
    (node("a", unschedulable=True), pod(), ("node(s) were unschedulable",)),
    (node("a", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]), pod(),
     ("node(s) had untolerated taint {gpu: yes}",)),
    (node("a", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}]), pod(), ()),
    (node("a", labels={"zone": "a"}), pod(nodeSelector={"zone": "b"}),
     ("node(s) didn't match Pod's node affinity/selector",)),
    (node("a", labels={"zone": "a"}), pod(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}),
     ()),
    (node("a"), pod(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}),
     ("node(s) didn't match Pod's node affinity/selector",)),
    (node("a", cpu="1"), pod(cpu="1500m"), ("Insufficient cpu",)),
    (node("a", cpu="1"), pod(cpu="1", memory="2Gi"), ("Insufficient memory",)),
    (node("a", pods="0"), pod(), ("Too many pods",)),
    # the first failing plugin wins: unschedulable before affinity and resources
    (node("a", unschedulable=True), pod(cpu="64", nodeSelector={"x": "y"}),
     ("node(s) were unschedulable",)),
])
def test_filter_node_without_volumes(the_node: Obj, the_pod: Obj,
                                     expected: tuple[str, ...]) -> None:
    assert sf.filter_node(the_pod, the_node, [], [], {}, []).reasons == expected


def test_resources_count_pods_already_there() -> None:
    others = [pod(cpu="1"), pod(cpu="500m")]
    assert sf.insufficient_resources(pod(cpu="600m"), node("a"), others) == ["Insufficient cpu"]
    assert sf.insufficient_resources(pod(cpu="500m"), node("a"), others) == []


def test_init_containers_count_as_their_maximum() -> None:
    p = pod(cpu="100m")
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]
    assert sf.insufficient_resources(p, node("a"), []) == ["Insufficient cpu"]


@pytest.mark.parametrize("states,expected", [
    ([sf.ClaimState("data", None)], 'persistentvolumeclaim "data" not found'),
    ([sf.ClaimState("data", {**claim(), "metadata": {
        **claim()["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}}, WFFC)],
     'persistentvolumeclaim "data" is being deleted'),
    ([sf.ClaimState("data", claim(), IMMEDIATE)], sf.ERR_UNBOUND_IMMEDIATE),
    ([sf.ClaimState("data", claim(), None)], sf.ERR_UNBOUND_IMMEDIATE),
    ([sf.ClaimState("data", claim(), WFFC)], None),
    ([sf.ClaimState("data", claim(volume="pv1"), IMMEDIATE)], None),
])
def test_volume_prefilter(states: list[sf.ClaimState], expected: str | None) -> None:
    assert sf.volume_prefilter(states) == expected


@pytest.mark.parametrize("states,volumes,on,reasons,static,provision", [
    # bound claims: the PV's node affinity decides
    ([sf.ClaimState("data", claim(volume="pv1"), IMMEDIATE)], [pv("pv1", "a", claim="data")],
     "a", (), {}, ()),
    ([sf.ClaimState("data", claim(volume="pv1"), IMMEDIATE)], [pv("pv1", "a", claim="data")],
     "b", ("node(s) had volume node affinity conflict",), {}, ()),
    ([sf.ClaimState("data", claim(volume="gone"), IMMEDIATE)], [], "a",
     ("node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)",), {}, ()),
    # delayed claims: a static volume on this node, else provisioning, else a bind conflict
    ([sf.ClaimState("data", claim(), STATIC_WFFC)], [pv("local-b", "b")], "b", (),
     {"data": "local-b"}, ()),
    ([sf.ClaimState("data", claim(), STATIC_WFFC)], [pv("local-b", "b")], "a",
     ("node(s) didn't find available persistent volumes to bind",), {}, ()),
    ([sf.ClaimState("data", claim(), WFFC)], [pv("local-b", "b")], "a", (), {}, ("data",)),
    ([sf.ClaimState("data", claim(), {**WFFC, "allowedTopologies": [{"matchLabelExpressions": [
        {"key": "kubernetes.io/hostname", "values": ["b"]}]}]})], [], "a",
     ("node(s) didn't find available persistent volumes to bind",), {}, ()),
    # two claims never get the same static volume
    ([sf.ClaimState("one", claim("one"), STATIC_WFFC),
      sf.ClaimState("two", claim("two"), STATIC_WFFC)], [pv("only", "a")], "a",
     ("node(s) didn't find available persistent volumes to bind",), {}, ()),
])
def test_check_volumes(states: list[sf.ClaimState], volumes: list[Obj], on: str,
                       reasons: tuple[str, ...], static: dict[str, str],
                       provision: tuple[str, ...]) -> None:
    by_name = {v["metadata"]["name"]: v for v in volumes}
    unbound = [v for v in volumes if "claimRef" not in v["spec"]]
    got, plan = sf.check_volumes(states, node(on), by_name, unbound)
    assert tuple(got) == reasons
    assert (dict(plan.static), plan.provision) == (static, provision)


def test_pick_spreads_by_pod_count_then_name() -> None:
    verdicts = [sf.NodeVerdict("a"), sf.NodeVerdict("b"), sf.NodeVerdict("c", ("x",))]
    assert sf.pick(verdicts, {"a": 3, "b": 1}) == verdicts[1]
    assert sf.pick(verdicts, {}) == verdicts[0]
    assert sf.pick([sf.NodeVerdict("c", ("x",))], {}) is None


@pytest.mark.parametrize("terms,labels,expected", [
    ([], {}, True),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["a", "b"]}]}], {"zone": "b"}, True),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["a"]}]}], {"zone": "b"}, False),
    ([{"matchLabelExpressions": [{"key": "zone", "values": ["a"]}]},
      {"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}], {"zone": "b"}, True),
])
def test_allowed_topologies(terms: list[Obj], labels: dict[str, str], expected: bool) -> None:
    assert sf.allowed_topologies_match({"allowedTopologies": terms},
                                       {"metadata": {"labels": labels}}) is expected


# ----------------------------------------------------------------------------- ReadWriteOncePod

def rwop_claim(name: str = "data", modes: tuple[str, ...] = ("ReadWriteOncePod",)) -> Obj:
    made = claim(name, volume=f"pv-{name}")
    made["spec"]["accessModes"] = list(modes)
    return made


def user(claims: tuple[str, ...], *, ns: str = "ns", uid: str = "other",
         ephemeral: bool = False) -> Obj:
    """A pod already on a node using `claims`."""
    volumes: list[Obj] = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                          for i, c in enumerate(claims)]
    if ephemeral:  # a generic ephemeral volume's claim is `<pod>-<volume>`: never counted
        volumes = [{"name": "data", "ephemeral": {"volumeClaimTemplate": {}}}]
    return {"metadata": {"name": f"user-{uid}", "namespace": ns, "uid": uid},
            "spec": {"nodeName": "a", "volumes": volumes}}


def incoming(*claims: str) -> Obj:
    made = pod()
    made["metadata"]["uid"] = "me"
    made["spec"]["volumes"] = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                               for i, c in enumerate(claims)]
    return made


@pytest.mark.parametrize("wanted,states,placed,expected", [
    # nobody else uses the claim
    (("data",), [sf.ClaimState("data", rwop_claim())], [], 0),
    (("data",), [sf.ClaimState("data", rwop_claim())], [user(("other",))], 0),
    # another pod of the namespace uses it: one conflict
    (("data",), [sf.ClaimState("data", rwop_claim())], [user(("data",))], 1),
    # two users of one claim still make one conflicting claim (IsPVCUsedByPods)
    (("data",), [sf.ClaimState("data", rwop_claim())],
     [user(("data",), uid="u1"), user(("data",), uid="u2")], 1),
    (("one", "two"), [sf.ClaimState("one", rwop_claim("one")),
                      sf.ClaimState("two", rwop_claim("two"))],
     [user(("one",), uid="u1"), user(("two",), uid="u2")], 2),
    # not ReadWriteOncePod: sharing is the kubelet's business (RWO is per node)
    (("data",), [sf.ClaimState("data", rwop_claim(modes=("ReadWriteOnce",)))],
     [user(("data",))], 0),
    (("data",), [sf.ClaimState("data", rwop_claim(modes=("ReadWriteOnce", "ReadWriteOncePod")))],
     [user(("data",))], 1),
    # same claim name in another namespace is another claim
    (("data",), [sf.ClaimState("data", rwop_claim())], [user(("data",), ns="elsewhere")], 0),
    # the pod itself (already known to the cache) is no conflict with itself
    (("data",), [sf.ClaimState("data", rwop_claim())], [user(("data",), uid="me")], 0),
    # only persistentVolumeClaim volumes count
    (("data",), [sf.ClaimState("data", rwop_claim())], [user((), ephemeral=True)], 0),
    # a missing claim is the PreFilter's "not found", not a conflict
    (("data",), [sf.ClaimState("data", None)], [user(("data",))], 0),
])
def test_read_write_once_pod_conflicts(wanted: tuple[str, ...], states: list[sf.ClaimState],
                                       placed: list[Obj], expected: int) -> None:
    assert sf.read_write_once_pod_conflicts(incoming(*wanted), states, placed) == expected


@pytest.mark.parametrize("the_node,the_pod,expected", [
    (node("a"), pod(), (sf.ERR_RWOP_CONFLICT,)),
    # VolumeRestrictions runs after NodeUnschedulable, NodeAffinity and NodeResourcesFit ...
    (node("a", unschedulable=True), pod(), ("node(s) were unschedulable",)),
    (node("a", labels={"zone": "a"}), pod(nodeSelector={"zone": "b"}),
     ("node(s) didn't match Pod's node affinity/selector",)),
    (node("a", cpu="1"), pod(cpu="2"), ("Insufficient cpu",)),
])
def test_rwop_conflict_in_filter_order(the_node: Obj, the_pod: Obj,
                                       expected: tuple[str, ...]) -> None:
    assert sf.filter_node(the_pod, the_node, [], [], {}, [], rwop_conflicts=1).reasons == expected


def test_rwop_conflict_comes_before_volume_binding() -> None:
    # ... and before VolumeBinding: the PV being elsewhere is not reported
    states = [sf.ClaimState("data", rwop_claim())]
    volumes = {"pv-data": pv("pv-data", on="b", claim="data")}
    verdict = sf.filter_node(incoming("data"), node("a"), [], states, volumes, [], 1)
    assert verdict.reasons == (sf.ERR_RWOP_CONFLICT,)
    assert sf.filter_node(incoming("data"), node("a"), [], states, volumes, [], 0).reasons == (
        sf.ERR_VOLUME_NODE_CONFLICT,)


def test_rwop_message_as_kube_scheduler_prints_it() -> None:
    reasons = {"a": [sf.ERR_RWOP_CONFLICT], "b": [sf.ERR_RWOP_CONFLICT]}
    assert sf.fit_error(2, reasons) == (
        "0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same "
        "name and ReadWriteOncePod access mode.")
