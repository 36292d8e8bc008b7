"""Table-driven tests of the PV matchers: Kubernetes' index.go and storage helpers, rule by rule.

The PV/PVC builders at the top are shared with the binder's decision and property tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import pytest

from storage import matching

RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"


def pv(
    name: str,
    size: str | None = "1Gi",
    modes: Sequence[str] = (RWO,),
    *,
    cls: str | None = None,
    phase: str | None = "Available",
    claim: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    volume_mode: str | None = None,
    vac: str | None = None,
    affinity: Mapping[str, Any] | None = None,
    policy: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}
    spec: dict[str, Any] = {"accessModes": list(modes)}
    if size is not None:
        spec["capacity"] = {"storage": size}
    optional_spec = {
        "storageClassName": cls,
        "claimRef": claim,
        "volumeMode": volume_mode,
        "volumeAttributesClassName": vac,
        "nodeAffinity": affinity,
        "persistentVolumeReclaimPolicy": policy,
    }
    spec.update({k: v for k, v in optional_spec.items() if v is not None})
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": meta,
        "spec": spec,
    }
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def pvc(
    name: str,
    size: str | None = "1Gi",
    modes: Sequence[str] = (RWO,),
    *,
    namespace: str = "default",
    uid: str | None = None,
    cls: str | None = None,
    volume_name: str | None = None,
    phase: str | None = "Pending",
    selector: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    volume_mode: str | None = None,
    vac: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "resourceVersion": "1",
    }
    spec: dict[str, Any] = {"accessModes": list(modes), "resources": {}}
    if size is not None:
        spec["resources"] = {"requests": {"storage": size}}
    optional_spec = {
        "storageClassName": cls,
        "volumeName": volume_name,
        "selector": selector,
        "volumeMode": volume_mode,
        "volumeAttributesClassName": vac,
    }
    spec.update({k: v for k, v in optional_spec.items() if v is not None})
    if annotations:
        meta["annotations"] = dict(annotations)
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": spec,
    }
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def ref(claim: Mapping[str, Any], *, with_uid: bool = True) -> dict[str, Any]:
    """A claimRef naming `claim`; without uid it is a user's pre-binding."""
    meta = claim["metadata"]
    out = {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"]}
    if with_uid:
        out["uid"] = meta["uid"]
    return out


def ref_to(name: str, namespace: str = "default", uid: str | None = None) -> dict[str, Any]:
    out = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name}
    if uid:
        out["uid"] = uid
    return out


def zone_affinity(*zones: str, key: str = "zone") -> dict[str, Any]:
    return {
        "required": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": key, "operator": "In", "values": list(zones)}]}
            ]
        }
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def names(volume: Mapping[str, Any] | None) -> str | None:
    return None if volume is None else volume["metadata"]["name"]


CLAIM = pvc("claim", "3Gi")
OTHER = pvc("other", "1Gi")

# ---------------------------------------------------------------------------------------------
# Rules shared by both paths, exercised through the controller's find_best_match_for_claim.

BOTH_PATHS_CASES = [
    # (id, claim, volumes, expected volume name)
    ("smallest fitting wins", CLAIM, [pv("a", "1Gi"), pv("b", "10Gi"), pv("c", "5Gi")], "c"),
    ("nothing big enough", CLAIM, [pv("a", "1Gi"), pv("b", "2Gi")], None),
    ("no volumes at all", CLAIM, [], None),
    ("exact size fits", CLAIM, [pv("a", "3Gi")], "a"),
    ("1G is less than 1Gi", pvc("c", "1Gi"), [pv("a", "1G")], None),
    ("1024Mi equals 1Gi", pvc("c", "1Gi"), [pv("a", "1024Mi")], "a"),
    ("1000M equals 1G", pvc("c", "1G"), [pv("a", "1000M")], "a"),
    ("decimal vs binary ordering", pvc("c", "1G"), [pv("a", "1Gi"), pv("b", "1000M")], "b"),
    ("milli quantities compare exactly", pvc("c", "1500m"), [pv("a", "1"), pv("b", "2")], "b"),
    ("claim without request takes smallest", pvc("c", None), [pv("a", "5Gi"), pv("b", "1Gi")], "b"),
    ("volume without capacity fits empty request", pvc("c", None), [pv("a", None)], "a"),
    ("volume without capacity is zero", pvc("c", "1"), [pv("a", None)], None),
    # volumeMode: unset means Filesystem on both sides
    ("Block claim skips unset-mode volume", pvc("c", volume_mode="Block"), [pv("a")], None),
    (
        "Block claim takes Block volume",
        pvc("c", volume_mode="Block"),
        [pv("a"), pv("b", volume_mode="Block")],
        "b",
    ),
    (
        "unset claim mode takes Filesystem volume",
        pvc("c"),
        [pv("a", volume_mode="Filesystem")],
        "a",
    ),
    (
        "Filesystem claim takes unset-mode volume",
        pvc("c", volume_mode="Filesystem"),
        [pv("a")],
        "a",
    ),
    ("unset claim mode skips Block volume", pvc("c"), [pv("a", volume_mode="Block")], None),
    # volumeAttributesClassName: unset means ""
    ("VAC must be equal", pvc("c", vac="fast"), [pv("a"), pv("b", vac="slow")], None),
    ("VAC equal", pvc("c", vac="fast"), [pv("a"), pv("b", vac="fast")], "b"),
    ("unset VAC equals empty VAC", pvc("c", vac=""), [pv("a")], "a"),
    ("claim without VAC skips volume with VAC", pvc("c"), [pv("a", vac="fast")], None),
    # deletion
    (
        "volume being deleted is skipped",
        CLAIM,
        [pv("a", "5Gi", deleting=True), pv("b", "9Gi")],
        "b",
    ),
    (
        "pre-bound volume being deleted is skipped",
        CLAIM,
        [pv("a", "5Gi", claim=ref(CLAIM), deleting=True)],
        None,
    ),
    # phase
    ("Pending volume is skipped", CLAIM, [pv("a", "5Gi", phase="Pending")], None),
    ("volume without status is skipped", CLAIM, [pv("a", "5Gi", phase=None)], None),
    (
        "Released volume without claimRef is skipped",
        CLAIM,
        [pv("a", "5Gi", phase="Released")],
        None,
    ),
    ("Failed volume is skipped", CLAIM, [pv("a", "5Gi", phase="Failed")], None),
    # claimRef
    (
        "volume bound to another claim is skipped",
        CLAIM,
        [pv("a", "5Gi", claim=ref(OTHER), phase="Bound"), pv("b", "7Gi")],
        "b",
    ),
    (
        "pre-bound volume wins over a smaller one",
        CLAIM,
        [pv("a", "4Gi"), pv("b", "100Gi", claim=ref(CLAIM, with_uid=False))],
        "b",
    ),
    (
        "pre-bound with matching uid wins",
        CLAIM,
        [pv("a", "4Gi"), pv("b", "100Gi", claim=ref(CLAIM), phase="Bound")],
        "b",
    ),
    (
        "pre-bound with another uid (old claim) is skipped",
        CLAIM,
        [pv("b", "100Gi", claim=ref_to("claim", uid="old-uid"), phase="Released")],
        None,
    ),
    (
        "pre-bound in another namespace is skipped",
        CLAIM,
        [pv("b", "100Gi", claim=ref_to("claim", namespace="other"))],
        None,
    ),
    (
        "pre-bound but too small falls back to smallest",
        CLAIM,
        [pv("a", "1Gi", claim=ref(CLAIM, with_uid=False)), pv("b", "8Gi"), pv("c", "5Gi")],
        "c",
    ),
    ("pre-bound ignores phase", CLAIM, [pv("a", "5Gi", claim=ref(CLAIM), phase="Released")], "a"),
    ("pre-bound ignores class", CLAIM, [pv("a", "5Gi", cls="gold", claim=ref(CLAIM))], "a"),
    (
        "pre-bound ignores selector",
        pvc("claim", "3Gi", selector={"matchLabels": {"x": "y"}}),
        [pv("a", "5Gi", claim=ref(CLAIM))],
        "a",
    ),
    (
        "pre-bound still needs volumeMode",
        CLAIM,
        [pv("a", "5Gi", claim=ref(CLAIM), volume_mode="Block")],
        None,
    ),
    ("pre-bound still needs VAC", CLAIM, [pv("a", "5Gi", claim=ref(CLAIM), vac="x")], None),
    # storage class, beta annotation first, unset and "" both "no class"
    ("class must be equal", pvc("c", cls="gold"), [pv("a"), pv("b", cls="silver")], None),
    ("class equal", pvc("c", cls="gold"), [pv("a"), pv("b", cls="gold")], "b"),
    ("unset claim class takes class-less volume", pvc("c"), [pv("a", cls="gold"), pv("b")], "b"),
    ("empty claim class takes class-less volume", pvc("c", cls=""), [pv("a", cls="")], "a"),
    (
        "beta annotation on volume wins over spec",
        pvc("c", cls="gold"),
        [pv("a", cls="silver", annotations={matching.ANN_BETA_STORAGE_CLASS: "gold"})],
        "a",
    ),
    (
        "beta annotation on claim wins over spec",
        pvc("c", cls="silver", annotations={matching.ANN_BETA_STORAGE_CLASS: "gold"}),
        [pv("a", cls="silver"), pv("b", cls="gold")],
        "b",
    ),
    (
        "empty beta annotation on claim means no class",
        pvc("c", cls="gold", annotations={matching.ANN_BETA_STORAGE_CLASS: ""}),
        [pv("a", cls="gold"), pv("b")],
        "b",
    ),
    (
        "empty beta annotation on volume means no class",
        pvc("c", cls="gold"),
        [pv("a", cls="gold", annotations={matching.ANN_BETA_STORAGE_CLASS: ""})],
        None,
    ),
]


@pytest.mark.parametrize(
    ("claim", "volumes", "expected"),
    [case[1:] for case in BOTH_PATHS_CASES],
    ids=[case[0] for case in BOTH_PATHS_CASES],
)
def test_controller_path_rules(
    claim: dict[str, Any], volumes: list[dict[str, Any]], expected: str | None
) -> None:
    assert names(matching.find_best_match_for_claim(claim, volumes)) == expected
    # The same rules hold on the scheduler's path for a node without affinity constraints.
    found = matching.find_matching_volume(claim, volumes, node=node("n1"))
    assert names(found) == expected


SELECTOR_CASES = [
    ("matchLabels", {"matchLabels": {"tier": "db"}}, "db"),
    (
        "matchExpressions In",
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]}]},
        "db",
    ),
    (
        "matchExpressions NotIn picks unlabeled smallest",
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
        "plain",
    ),
    (
        "matchExpressions Exists",
        {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
        "db",
    ),
    (
        "matchExpressions DoesNotExist",
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
        "plain",
    ),
    (
        "both parts ANDed",
        {
            "matchLabels": {"tier": "db"},
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}],
        },
        "db-b",
    ),
    ("no volume matches", {"matchLabels": {"tier": "web"}}, None),
    ("empty selector matches everything", {}, "plain"),
]
SELECTOR_VOLUMES = [
    pv("db", "5Gi", labels={"tier": "db", "zone": "a"}),
    pv("db-b", "6Gi", labels={"tier": "db", "zone": "b"}),
    pv("plain", "4Gi"),
]


@pytest.mark.parametrize(
    ("selector", "expected"), [c[1:] for c in SELECTOR_CASES], ids=[c[0] for c in SELECTOR_CASES]
)
def test_claim_label_selector(selector: dict[str, Any], expected: str | None) -> None:
    claim = pvc("c", "3Gi", selector=selector)
    assert names(matching.find_best_match_for_claim(claim, SELECTOR_VOLUMES)) == expected
    assert names(matching.find_matching_volume(claim, SELECTOR_VOLUMES)) == expected


def test_invalid_selector_is_an_error_not_a_mismatch() -> None:
    claim = pvc("c", selector={"matchExpressions": [{"key": "k", "operator": "In"}]})
    with pytest.raises(matching.InvalidSelector):
        matching.find_best_match_for_claim(claim, [pv("a")])


def test_invalid_request_quantity_is_an_error() -> None:
    with pytest.raises(matching.InvalidQuantity):
        matching.find_matching_volume(pvc("c", "lots"), [pv("a")])


# ---------------------------------------------------------------------------------------------
# The controller's path: access-mode groups.

GROUP_CASES = [
    (
        "fewest-modes group first, even if its volume is larger",
        (RWO,),
        [pv("wide", "1Gi", (RWO, ROX, RWX)), pv("narrow", "10Gi", (RWO,))],
        "narrow",
    ),
    (
        "falls through to a wider group",
        (RWO,),
        [pv("wide", "1Gi", (RWO, ROX, RWX)), pv("narrow", "100Mi", (RWO,))],
        "wide",
    ),
    (
        "group must hold every requested mode",
        (RWO, RWX),
        [pv("a", "1Gi", (RWO,)), pv("b", "1Gi", (RWX,)), pv("c", "1Gi", (RWO, RWX))],
        "c",
    ),
    ("no group offers the mode", (RWX,), [pv("a", "1Gi", (RWO, ROX))], None),
    (
        "two-mode group before three-mode group",
        (ROX,),
        [pv("three", "1Gi", (RWO, ROX, RWX)), pv("two", "5Gi", (RWO, ROX))],
        "two",
    ),
    (
        "pre-bound volume in a later group loses to a fit in an earlier group",
        (RWO,),
        [pv("prebound", "1Gi", (RWO, RWX), claim=ref_to("c")), pv("free", "1Gi", (RWO,))],
        "free",
    ),
    (
        "pre-bound volume wins within its group",
        (RWO,),
        [pv("prebound", "9Gi", (RWO,), claim=ref_to("c")), pv("free", "1Gi", (RWO,))],
        "prebound",
    ),
    (
        "pre-bound volume must offer the modes",
        (RWX,),
        [pv("prebound", "9Gi", (RWO,), claim=ref_to("c"))],
        None,
    ),
    ("equal sizes: smallest name", (RWO,), [pv("b", "1Gi"), pv("a", "1Gi"), pv("c", "1Gi")], "a"),
]


@pytest.mark.parametrize(
    ("modes", "volumes", "expected"), [c[1:] for c in GROUP_CASES], ids=[c[0] for c in GROUP_CASES]
)
def test_controller_path_groups_by_access_modes(
    modes: Sequence[str], volumes: list[dict[str, Any]], expected: str | None
) -> None:
    claim = pvc("c", "1Gi", modes)
    assert names(matching.find_best_match_for_claim(claim, volumes)) == expected


DELAY_CASES = [
    ("unbound volumes are left to the scheduler", [pv("a", "5Gi")], None),
    ("pre-bound volume is still returned", [pv("a", "5Gi"), pv("b", "9Gi", claim=ref(CLAIM))], "b"),
]


@pytest.mark.parametrize(
    ("volumes", "expected"), [c[1:] for c in DELAY_CASES], ids=[c[0] for c in DELAY_CASES]
)
def test_delayed_binding_without_node(volumes: list[dict[str, Any]], expected: str | None) -> None:
    assert names(matching.find_best_match_for_claim(CLAIM, volumes, delay_binding=True)) == expected
    assert names(matching.find_matching_volume(CLAIM, volumes, delay_binding=True)) == expected


# ---------------------------------------------------------------------------------------------
# The scheduler's path.

ZONE_A = zone_affinity("a")


SCHEDULER_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, Any], Any]] = [
    (
        "access modes checked per volume: smallest overall",
        {"modes": (RWO,)},
        [pv("narrow", "10Gi", (RWO,)), pv("wide", "5Gi", (RWO, RWX))],
        {"node": node("n")},
        "wide",
    ),
    (
        "access modes must all be offered",
        {"modes": (RWO, RWX)},
        [pv("narrow", "5Gi", (RWO,)), pv("wide", "9Gi", (RWO, RWX))],
        {"node": node("n")},
        "wide",
    ),
    (
        "node affinity mismatch skips the volume",
        {},
        [pv("a", "5Gi", affinity=ZONE_A), pv("b", "9Gi")],
        {"node": node("n", zone="b")},
        "b",
    ),
    (
        "node affinity match",
        {},
        [pv("a", "5Gi", affinity=ZONE_A), pv("b", "9Gi")],
        {"node": node("n", zone="a")},
        "a",
    ),
    (
        "pre-bound volume failing affinity means no match at all",
        {},
        [pv("a", "5Gi", claim=ref(CLAIM), affinity=ZONE_A), pv("b", "9Gi")],
        {"node": node("n", zone="b")},
        None,
    ),
    (
        "pre-bound volume passing affinity wins",
        {},
        [pv("b", "4Gi"), pv("a", "9Gi", claim=ref(CLAIM), affinity=ZONE_A)],
        {"node": node("n", zone="a")},
        "a",
    ),
    (
        "excluded volumes are skipped",
        {},
        [pv("a", "4Gi"), pv("b", "5Gi")],
        {"excluded_volumes": {"a"}},
        "b",
    ),
    (
        "excluded pre-bound volume is skipped",
        {},
        [pv("a", "4Gi", claim=ref(CLAIM)), pv("b", "5Gi")],
        {"excluded_volumes": ["a"]},
        "b",
    ),
    (
        "delayed binding with a node considers unbound volumes",
        {},
        [pv("a", "4Gi")],
        {"node": node("n"), "delay_binding": True},
        "a",
    ),
    ("first among equals in list order", {}, [pv("b", "4Gi"), pv("a", "4Gi")], {}, "b"),
    (
        "without node the access modes are not checked (Kubernetes leaves it to the index)",
        {"modes": (RWX,)},
        [pv("a", "4Gi", (RWO,))],
        {},
        "a",
    ),
    ("without node affinity is not checked", {}, [pv("a", "4Gi", affinity=ZONE_A)], {}, "a"),
]


@pytest.mark.parametrize(
    ("claim_args", "volumes", "kwargs", "expected"),
    [c[1:] for c in SCHEDULER_CASES],
    ids=[c[0] for c in SCHEDULER_CASES],
)
def test_scheduler_path(
    claim_args: dict[str, Any], volumes: list[dict[str, Any]], kwargs: dict[str, Any], expected: Any
) -> None:
    claim = pvc("claim", "3Gi", **claim_args)
    assert names(matching.find_matching_volume(claim, volumes, **kwargs)) == expected


# ---------------------------------------------------------------------------------------------
# Node affinity.


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


def terms(*term_list: dict[str, Any]) -> dict[str, Any]:
    return {"nodeSelectorTerms": list(term_list)}


LABELS = {"zone": "a", "cpus": "8", "name": "x"}

NODE_SELECTOR_CASES = [
    ("In matches", terms({"matchExpressions": [expr("zone", "In", "a", "b")]}), LABELS, "", True),
    ("In misses", terms({"matchExpressions": [expr("zone", "In", "b")]}), LABELS, "", False),
    (
        "In on missing key",
        terms({"matchExpressions": [expr("rack", "In", "1")]}),
        LABELS,
        "",
        False,
    ),
    (
        "NotIn on other value",
        terms({"matchExpressions": [expr("zone", "NotIn", "b")]}),
        LABELS,
        "",
        True,
    ),
    (
        "NotIn on same value",
        terms({"matchExpressions": [expr("zone", "NotIn", "a")]}),
        LABELS,
        "",
        False,
    ),
    (
        "NotIn on missing key",
        terms({"matchExpressions": [expr("rack", "NotIn", "1")]}),
        LABELS,
        "",
        True,
    ),
    ("Exists", terms({"matchExpressions": [expr("zone", "Exists")]}), LABELS, "", True),
    ("Exists missing", terms({"matchExpressions": [expr("rack", "Exists")]}), LABELS, "", False),
    ("DoesNotExist", terms({"matchExpressions": [expr("rack", "DoesNotExist")]}), LABELS, "", True),
    (
        "DoesNotExist present",
        terms({"matchExpressions": [expr("zone", "DoesNotExist")]}),
        LABELS,
        "",
        False,
    ),
    ("Gt", terms({"matchExpressions": [expr("cpus", "Gt", "4")]}), LABELS, "", True),
    (
        "Gt equal is false",
        terms({"matchExpressions": [expr("cpus", "Gt", "8")]}),
        LABELS,
        "",
        False,
    ),
    ("Lt", terms({"matchExpressions": [expr("cpus", "Lt", "16")]}), LABELS, "", True),
    (
        "Lt negative bound",
        terms({"matchExpressions": [expr("cpus", "Lt", "-1")]}),
        LABELS,
        "",
        False,
    ),
    (
        "Gt on non-integer label",
        terms({"matchExpressions": [expr("name", "Gt", "1")]}),
        LABELS,
        "",
        False,
    ),
    (
        "Gt on missing label",
        terms({"matchExpressions": [expr("rack", "Gt", "1")]}),
        LABELS,
        "",
        False,
    ),
    (
        "Gt with non-integer value is invalid",
        terms({"matchExpressions": [expr("cpus", "Gt", "x")]}),
        LABELS,
        "",
        False,
    ),
    (
        "Gt with two values is invalid",
        terms({"matchExpressions": [expr("cpus", "Gt", "1", "2")]}),
        LABELS,
        "",
        False,
    ),
    (
        "In without values is invalid",
        terms({"matchExpressions": [expr("zone", "NotIn")]}),
        LABELS,
        "",
        False,
    ),
    (
        "Exists with values is invalid",
        terms({"matchExpressions": [expr("zone", "Exists", "a")]}),
        LABELS,
        "",
        False,
    ),
    (
        "unknown operator is invalid",
        terms({"matchExpressions": [expr("zone", "Is", "a")]}),
        LABELS,
        "",
        False,
    ),
    (
        "expressions are ANDed",
        terms({"matchExpressions": [expr("zone", "In", "a"), expr("cpus", "Gt", "10")]}),
        LABELS,
        "",
        False,
    ),
    (
        "terms are ORed",
        terms(
            {"matchExpressions": [expr("zone", "In", "b")]},
            {"matchExpressions": [expr("cpus", "Gt", "4")]},
        ),
        LABELS,
        "",
        True,
    ),
    (
        "invalid term does not spoil a valid one",
        terms(
            {"matchExpressions": [expr("zone", "Exists", "oops")]},
            {"matchExpressions": [expr("zone", "In", "a")]},
        ),
        LABELS,
        "",
        True,
    ),
    ("empty term matches nothing", terms({}), LABELS, "", False),
    (
        "empty expression lists match nothing",
        terms({"matchExpressions": [], "matchFields": []}),
        LABELS,
        "",
        False,
    ),
    ("no terms match nothing", terms(), LABELS, "", False),
    (
        "matchFields metadata.name In",
        terms({"matchFields": [expr("metadata.name", "In", "n1")]}),
        LABELS,
        "n1",
        True,
    ),
    (
        "matchFields metadata.name In other node",
        terms({"matchFields": [expr("metadata.name", "In", "n1")]}),
        LABELS,
        "n2",
        False,
    ),
    (
        "matchFields metadata.name NotIn",
        terms({"matchFields": [expr("metadata.name", "NotIn", "n1")]}),
        LABELS,
        "n2",
        True,
    ),
    (
        "matchFields ANDed with expressions",
        terms(
            {
                "matchExpressions": [expr("zone", "In", "b")],
                "matchFields": [expr("metadata.name", "In", "n1")],
            }
        ),
        LABELS,
        "n1",
        False,
    ),
    (
        "matchFields skipped for a node without name",
        terms({"matchFields": [expr("metadata.name", "In", "n1")]}),
        LABELS,
        "",
        True,
    ),
    (
        "matchFields with two values is invalid even unnamed",
        terms({"matchFields": [expr("metadata.name", "In", "n1", "n2")]}),
        LABELS,
        "",
        False,
    ),
    (
        "matchFields Exists is invalid",
        terms({"matchFields": [expr("metadata.name", "Exists")]}),
        LABELS,
        "n1",
        False,
    ),
]


@pytest.mark.parametrize(
    ("selector", "node_labels", "node_name", "expected"),
    [c[1:] for c in NODE_SELECTOR_CASES],
    ids=[c[0] for c in NODE_SELECTOR_CASES],
)
def test_node_selector_matches(
    selector: dict[str, Any], node_labels: dict[str, str], node_name: str, expected: bool
) -> None:
    assert matching.node_selector_matches(selector, node_labels, node_name) is expected


AFFINITY_CASES = [
    ("no affinity", None, True),
    ("affinity without required", {}, True),
    ("required matching", zone_affinity("a"), True),
    ("required not matching", zone_affinity("b"), False),
    # Kubernetes builds the node from labels only, so matchFields cannot exclude it.
    (
        "matchFields are not enforced",
        {"required": terms({"matchFields": [expr("metadata.name", "In", "elsewhere")]})},
        True,
    ),
    ("required with no terms", {"required": terms()}, False),
]


@pytest.mark.parametrize(
    ("affinity", "expected"), [c[1:] for c in AFFINITY_CASES], ids=[c[0] for c in AFFINITY_CASES]
)
def test_check_node_affinity(affinity: dict[str, Any] | None, expected: bool) -> None:
    assert matching.check_node_affinity(pv("a", affinity=affinity), {"zone": "a"}) is expected


# ---------------------------------------------------------------------------------------------
# Single helpers.

BOUND_TO_CLAIM_CASES = [
    ("no claimRef", None, False),
    ("name, namespace and uid", ref(CLAIM), True),
    ("name and namespace, no uid", ref(CLAIM, with_uid=False), True),
    ("other uid", ref_to("claim", uid="someone-else"), False),
    ("other name", ref_to("claim2"), False),
    ("other namespace", ref_to("claim", namespace="kube-system"), False),
]


@pytest.mark.parametrize(
    ("claim_ref", "expected"),
    [c[1:] for c in BOUND_TO_CLAIM_CASES],
    ids=[c[0] for c in BOUND_TO_CLAIM_CASES],
)
def test_is_volume_bound_to_claim(claim_ref: dict[str, Any] | None, expected: bool) -> None:
    assert matching.is_volume_bound_to_claim(pv("v", claim=claim_ref), CLAIM) is expected


SATISFY_CASES = [
    ("fits", pv("v", "5Gi"), CLAIM, None),
    (
        "deleting comes first",
        pv("v", "1Gi", deleting=True),
        CLAIM,
        matching.Unsatisfied.MARKED_FOR_DELETION,
    ),
    ("too small", pv("v", "1Gi"), CLAIM, matching.Unsatisfied.TOO_SMALL),
    ("sizes rounded up to bytes", pv("v", "1500m"), pvc("c", "2"), None),
    ("class", pv("v", "5Gi", cls="gold"), CLAIM, matching.Unsatisfied.CLASS_MISMATCH),
    (
        "class before VAC",
        pv("v", "5Gi", cls="gold", vac="x"),
        CLAIM,
        matching.Unsatisfied.CLASS_MISMATCH,
    ),
    ("VAC", pv("v", "5Gi", vac="x"), CLAIM, matching.Unsatisfied.ATTRIBUTES_CLASS_MISMATCH),
    (
        "volume mode",
        pv("v", "5Gi", volume_mode="Block"),
        CLAIM,
        matching.Unsatisfied.VOLUME_MODE_MISMATCH,
    ),
    ("access mode", pv("v", "5Gi", (ROX,)), CLAIM, matching.Unsatisfied.ACCESS_MODE_MISMATCH),
    ("more modes are fine", pv("v", "5Gi", (RWO, RWX)), CLAIM, None),
    ("phase does not matter", pv("v", "5Gi", phase="Released"), CLAIM, None),
]


@pytest.mark.parametrize(
    ("volume", "claim", "expected"),
    [c[1:] for c in SATISFY_CASES],
    ids=[c[0] for c in SATISFY_CASES],
)
def test_check_volume_satisfies_claim(
    volume: dict[str, Any], claim: dict[str, Any], expected: matching.Unsatisfied | None
) -> None:
    assert matching.check_volume_satisfies_claim(volume, claim) is expected


def test_unsatisfied_messages_are_kubernetes_texts() -> None:
    volume = pv("vol-1")
    assert matching.Unsatisfied.MARKED_FOR_DELETION.message(volume) == (
        'the volume is marked for deletion "vol-1"'
    )
    assert matching.Unsatisfied.TOO_SMALL.message(volume) == "requested PV is too small"
    assert matching.Unsatisfied.ACCESS_MODE_MISMATCH.message(volume) == "incompatible accessMode"


CLASS_CASES = [
    ("unset", {}, None, "", False),
    ("spec", {}, "gold", "gold", True),
    ("explicit empty", {}, "", "", True),
    ("beta annotation", {matching.ANN_BETA_STORAGE_CLASS: "silver"}, "gold", "silver", True),
    ("empty beta annotation", {matching.ANN_BETA_STORAGE_CLASS: ""}, None, "", True),
]


@pytest.mark.parametrize(
    ("anns", "spec_class", "expected", "has_class"),
    [c[1:] for c in CLASS_CASES],
    ids=[c[0] for c in CLASS_CASES],
)
def test_claim_class(
    anns: dict[str, str], spec_class: str | None, expected: str, has_class: bool
) -> None:
    claim = pvc("c", cls=spec_class, annotations=anns)
    assert matching.claim_class(claim) == expected
    assert matching.claim_has_class(claim) is has_class


# ---------------------------------------------------------------------------------------------
# VolumeIndex: kept alive across events.


def test_index_follows_volume_updates() -> None:
    index = matching.VolumeIndex([pv("small", "1Gi", phase="Pending"), pv("big", "10Gi")])
    claim = pvc("c", "1Gi")
    assert names(index.find_best_match(claim)) == "big"  # "small" is not Available yet
    index.upsert(pv("small", "1Gi"))
    assert names(index.find_best_match(claim)) == "small"
    index.upsert(pv("small", "1Gi", claim=ref(OTHER), phase="Bound"))
    assert names(index.find_best_match(claim)) == "big"
    index.remove("big")
    assert index.find_best_match(claim) is None
    assert len(index) == 1 and "small" in index and "big" not in index


def test_index_resize_moves_volume_within_pool() -> None:
    index = matching.VolumeIndex([pv("a", "1Gi"), pv("b", "2Gi")])
    index.upsert(pv("a", "3Gi"))
    assert names(index.find_best_match(pvc("c", "1Gi"))) == "b"
    assert names(index.find_best_match(pvc("c", "2500Mi"))) == "a"


def test_index_forgets_mode_groups_of_removed_volumes() -> None:
    index = matching.VolumeIndex([pv("a", "1Gi", (RWO, RWX)), pv("b", "1Gi", (RWO,))])
    assert index.matching_mode_sets(frozenset({RWO})) == [frozenset({RWO}), frozenset({RWO, RWX})]
    index.remove("a")
    assert index.matching_mode_sets(frozenset({RWO})) == [frozenset({RWO})]


def test_index_finds_prebound_volumes_by_claim_ref() -> None:
    index = matching.VolumeIndex(
        [
            pv("p1", claim=ref(CLAIM), phase="Bound"),
            pv("p2", claim=ref(CLAIM, with_uid=False)),
            pv("free"),
        ]
    )
    assert [names(v) for v in index.volumes_claiming("default", "claim")] == ["p1", "p2"]
    index.upsert(pv("p1"))
    assert [names(v) for v in index.volumes_claiming("default", "claim")] == ["p2"]


def test_index_rejects_bad_capacity_without_losing_the_old_version() -> None:
    index = matching.VolumeIndex([pv("a", "1Gi")])
    with pytest.raises(matching.InvalidQuantity):
        index.upsert(pv("a", "one gig"))
    assert names(index.find_best_match(pvc("c", "1Gi"))) == "a"


def test_selector_scan_skips_non_matching_volumes_in_size_order() -> None:
    volumes = [pv(f"v{i}", f"{i}Gi", labels={"n": str(i)}) for i in range(1, 50)]
    claim = pvc(
        "c",
        "10Gi",
        selector={
            "matchExpressions": [{"key": "n", "operator": "In", "values": ["7", "30", "12"]}]
        },
    )
    assert names(matching.find_best_match_for_claim(claim, volumes)) == "v12"


def test_parse_storage_accepts_json_numbers() -> None:
    assert matching.parse_storage(5) == Fraction(5)
    assert matching.parse_storage(" 1Ki ") == Fraction(1024)
