"""The scheduler's pure decisions: which nodes a pod fits, why the others do not, and the message.

Kubernetes' scheduler runs filter plugins per node in a fixed order (NodeUnschedulable,
TaintToleration, NodeAffinity, NodeResourcesFit, VolumeRestrictions, VolumeBinding) and stops
at the first that fails; the reasons of every node are counted and printed, sorted, as "0/3
nodes are available: 1 Insufficient cpu, 2 node(s) had volume node affinity conflict.". A
PreFilter failure (a missing claim, an unbound Immediate claim) applies to the whole pod and
is printed once. VolumeBinding also checks storage capacity before it plans to provision a
claim on a node, when the class's CSIDriver opts in (`storageCapacity: true`): some
CSIStorageCapacity of the class whose nodeTopology selects the node must offer at least the
claim's request. This module is that logic over plain dicts with no I/O, so the wiring in
`scheduler` stays thin and every rule is tested by tables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from apimachinery import labels as label_selectors
from apimachinery import quantity
from storage import matching

Obj = dict[str, Any]

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
BINDING_MODE_WAIT = "WaitForFirstConsumer"

MSG_NO_NODES = "no nodes available to schedule pods"
ERR_UNSCHEDULABLE = "node(s) were unschedulable"
ERR_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
ERR_TOO_MANY_PODS = "Too many pods"
ERR_VOLUME_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_VOLUME_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_NOT_ENOUGH_SPACE = "node(s) did not have enough free storage"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
ERR_RWOP_CONFLICT = ("node has pod using PersistentVolumeClaim with the same name and "
                     "ReadWriteOncePod access mode")
READ_WRITE_ONCE_POD = "ReadWriteOncePod"
DEFAULT_MAX_PODS = 110


def msg_untolerated_taint(taint: Mapping[str, Any]) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"


def msg_insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


def msg_claim_not_found(name: str) -> str:
    return f'persistentvolumeclaim "{name}" not found'


def msg_claim_deleting(name: str) -> str:
    return f'persistentvolumeclaim "{name}" is being deleted'


def fit_error(num_nodes: int, reasons_by_node: Mapping[str, Sequence[str]]) -> str:
    """FitError.Error(): a histogram of reasons, each "count reason", sorted as strings."""
    if num_nodes == 0:
        return MSG_NO_NODES
    counts: Counter[str] = Counter()
    for reasons in reasons_by_node.values():
        counts.update(set(reasons))
    histogram = sorted(f"{count} {reason}" for reason, count in counts.items())
    return f"0/{num_nodes} nodes are available: {', '.join(histogram)}."


def prefilter_error(num_nodes: int, message: str) -> str:
    """A PreFilter failure is said once, not per node."""
    if num_nodes == 0:
        return MSG_NO_NODES
    return f"0/{num_nodes} nodes are available: {message}."


# ----------------------------------------------------------------------------- nodes

def node_name(node: Mapping[str, Any]) -> str:
    return matching.name_of(node)


def is_ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def effective_taints(node: Mapping[str, Any]) -> list[Obj]:
    """The node's taints plus the ones the node lifecycle controller would add (not-ready,
    unschedulable), so a node without a Ready condition is filtered like Kubernetes does."""
    taints = [dict(t) for t in (node.get("spec") or {}).get("taints") or ()]
    keys = {t.get("key") for t in taints}
    if not is_ready(node) and NOT_READY_TAINT not in keys:
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    return taints


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """ToleratesTaint: effect (empty = all), key (empty with Exists = all), operator."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: Mapping[str, Any], node: Mapping[str, Any]) -> Obj | None:
    """The first NoSchedule/NoExecute taint no toleration of the pod tolerates."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or ()
    for taint in effective_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def unschedulable_tolerated(pod: Mapping[str, Any]) -> bool:
    taint = {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    return any(tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or ())


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector (every label equal) and requiredDuringScheduling node affinity."""
    spec = pod.get("spec") or {}
    labels = matching.labels_of(node)
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return matching.node_selector_matches(required, labels, node_name(node))


# ----------------------------------------------------------------------------- resources

@dataclass(frozen=True)
class Resources:
    """Requested or allocatable amounts: cpu in cores, memory and storage in bytes."""

    amounts: Mapping[str, Fraction] = field(default_factory=dict)

    def get(self, name: str) -> Fraction:
        return self.amounts.get(name, Fraction(0))

    def plus(self, other: Resources) -> Resources:
        names = set(self.amounts) | set(other.amounts)
        return Resources({n: self.get(n) + other.get(n) for n in names})

    def maximum(self, other: Resources) -> Resources:
        names = set(self.amounts) | set(other.amounts)
        return Resources({n: max(self.get(n), other.get(n)) for n in names})


def _parse_amounts(raw: Mapping[str, Any] | None) -> Resources:
    amounts = {}
    for name, value in (raw or {}).items():
        try:
            amounts[name] = quantity.parse_quantity(str(value))
        except quantity.QuantityError:
            continue  # the apiserver validated it; an odd value counts as nothing
    return Resources(amounts)


def pod_requests(pod: Mapping[str, Any]) -> Resources:
    """computePodResourceRequest: the containers' sum, at least each init container's."""
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or ():
        total = total.plus(_parse_amounts((container.get("resources") or {}).get("requests")))
    for container in spec.get("initContainers") or ():
        total = total.maximum(
            _parse_amounts((container.get("resources") or {}).get("requests")))
    return total.plus(_parse_amounts(spec.get("overhead")))


def allocatable(node: Mapping[str, Any]) -> Resources:
    status = node.get("status") or {}
    return _parse_amounts(status.get("allocatable") or status.get("capacity"))


def insufficient_resources(pod: Mapping[str, Any], node: Mapping[str, Any],
                           pods_on_node: Sequence[Mapping[str, Any]]) -> list[str]:
    """NodeResourcesFit: "Too many pods" and "Insufficient <resource>" reasons.

    A resource the node does not report (a hand-made Node without status) is not limited,
    except the pod count, which defaults to the kubelet's 110.
    """
    reasons = []
    limit = allocatable(node)
    max_pods = limit.amounts.get("pods", Fraction(DEFAULT_MAX_PODS))
    if len(pods_on_node) + 1 > max_pods:
        reasons.append(ERR_TOO_MANY_PODS)
    wanted = pod_requests(pod)
    used = Resources()
    for other in pods_on_node:
        used = used.plus(pod_requests(other))
    for name in sorted(wanted.amounts):
        if name == "pods" or wanted.get(name) == 0 or name not in limit.amounts:
            continue
        if used.get(name) + wanted.get(name) > limit.get(name):
            reasons.append(msg_insufficient(name))
    return reasons


# ----------------------------------------------------------------------------- volumes

@dataclass(frozen=True)
class ClaimState:
    """A pod's claim as the scheduler sees it: the claim (None if missing), its class and the
    CSIDriver object of the class's provisioner (None when there is none)."""

    name: str
    claim: Obj | None
    storage_class: Obj | None = None
    csi_driver: Obj | None = None

    @property
    def bound_volume(self) -> str:
        return matching.volume_name_of_claim(self.claim) if self.claim else ""

    @property
    def delayed(self) -> bool:
        sc = self.storage_class
        return sc is not None and sc.get("volumeBindingMode") == BINDING_MODE_WAIT


def volume_prefilter(claims: Sequence[ClaimState]) -> str | None:
    """VolumeBinding PreFilter: a missing or deleting claim, or an unbound Immediate one."""
    for state in claims:
        if state.claim is None:
            return msg_claim_not_found(state.name)
        if matching.is_being_deleted(state.claim):
            return msg_claim_deleting(state.name)
    for state in claims:
        if not state.bound_volume and not state.delayed:
            return ERR_UNBOUND_IMMEDIATE
    return None


@dataclass(frozen=True)
class VolumePlan:
    """What binding the pod to a node needs first: static volumes to bind to claims
    (claim name -> PV name) and claims to provision there."""

    static: Mapping[str, str] = field(default_factory=dict)
    provision: tuple[str, ...] = ()


def allowed_topologies_match(sc: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """MatchTopologySelectorTerms: no terms allow everywhere; else one term must match all of
    its label requirements (key's value in values)."""
    terms = sc.get("allowedTopologies") or ()
    if not terms:
        return True
    labels = matching.labels_of(node)
    for term in terms:
        expressions = term.get("matchLabelExpressions") or ()
        if all(labels.get(e.get("key")) in (e.get("values") or ()) for e in expressions):
            return True
    return False


def check_volumes(claims: Sequence[ClaimState], node: Mapping[str, Any],
                  volumes: Mapping[str, Obj], unbound_volumes: Iterable[Obj],
                  capacities: Sequence[Obj] = ()) -> tuple[list[str], VolumePlan]:
    """VolumeBinding Filter for one node: the reasons it fails, or the plan that makes it fit.

    `volumes` holds every PV by name (for bound claims), `unbound_volumes` the candidates for
    delayed-binding claims, `capacities` every CSIStorageCapacity.
    """
    reasons: list[str] = []
    labels = matching.labels_of(node)
    for state in claims:
        name = state.bound_volume
        if not name:
            continue
        volume = volumes.get(name)
        if volume is None:
            reasons.append(ERR_PV_NOT_EXIST)
        elif not matching.check_node_affinity(volume, labels):
            reasons.append(ERR_VOLUME_NODE_CONFLICT)
    plan, failure = _plan_delayed(claims, node, list(unbound_volumes), capacities)
    if failure:
        reasons.append(failure)
    return sorted(set(reasons)), plan


def _plan_delayed(claims: Sequence[ClaimState], node: Mapping[str, Any],
                  candidates: list[Obj], capacities: Sequence[Obj]) -> tuple[VolumePlan, str]:
    """Static volumes first, then provisioning (checkVolumeProvisions): the first claim that
    cannot be provisioned here decides the reason."""
    static: dict[str, str] = {}
    provision: list[ClaimState] = []
    for state in claims:
        if state.bound_volume or state.claim is None or not state.delayed:
            continue
        try:
            found = matching.find_matching_volume(state.claim, candidates, node=node,
                                                  excluded_volumes=set(static.values()),
                                                  delay_binding=True)
        except matching.MatchingError:
            found = None
        if found is not None:
            static[state.name] = matching.name_of(found)
        else:
            provision.append(state)
    for state in provision:
        if not _can_provision(state, node):
            return VolumePlan(), ERR_VOLUME_BIND_CONFLICT
        if not has_enough_capacity(state, node, capacities):
            return VolumePlan(), ERR_NOT_ENOUGH_SPACE
    return VolumePlan(static, tuple(s.name for s in provision)), ""


def _can_provision(state: ClaimState, node: Mapping[str, Any]) -> bool:
    sc = state.storage_class
    if sc is None or sc.get("provisioner") in (None, "", NO_PROVISIONER):
        return False
    return allowed_topologies_match(sc, node)


# ----------------------------------------------------------------------------- capacity

def _bytes(raw: Any) -> int | None:
    """Quantity.Value(): the amount rounded up to a whole number; None when unset or odd."""
    if raw is None:
        return None
    try:
        return math.ceil(quantity.parse_quantity(str(raw)))
    except quantity.QuantityError:
        return None


def capacity_sufficient(capacity: Mapping[str, Any], size: int) -> bool:
    """maximumVolumeSize when reported (it is the more precise), else capacity; unset is none."""
    limit = capacity.get("maximumVolumeSize")
    if limit is None:
        limit = capacity.get("capacity")
    value = _bytes(limit)
    return value is not None and value >= size


def node_has_access(node: Mapping[str, Any], capacity: Mapping[str, Any]) -> bool:
    """nodeTopology selects the node; an unset topology reaches no node at all."""
    topology = capacity.get("nodeTopology")
    if not isinstance(topology, Mapping):
        return False
    try:
        selector = label_selectors.from_label_selector(topology)
    except ValueError:
        return False  # the apiserver validated it; an odd one reaches nothing
    return selector.matches(matching.labels_of(node))


def capacity_tracked(driver: Mapping[str, Any] | None) -> bool:
    """The CSIDriver opts into capacity-aware scheduling; no CSIDriver means it does not."""
    return driver is not None and bool((driver.get("spec") or {}).get("storageCapacity"))


def has_enough_capacity(state: ClaimState, node: Mapping[str, Any],
                        capacities: Sequence[Obj]) -> bool:
    """hasEnoughCapacity: a claim without a storage request, or whose driver does not track
    capacity, always fits; otherwise one capacity object of its class that reaches the node
    must be large enough. No object at all means no capacity, as in Kubernetes."""
    requests = ((state.claim or {}).get("spec") or {}).get("resources") or {}
    size = _bytes((requests.get("requests") or {}).get("storage"))
    if size is None or not capacity_tracked(state.csi_driver):
        return True
    class_name = matching.name_of(state.storage_class or {})
    return any(c.get("storageClassName") == class_name and capacity_sufficient(c, size)
               and node_has_access(node, c) for c in capacities)


# ----------------------------------------------------------------------------- ReadWriteOncePod

def pvc_volume_claims(pod: Mapping[str, Any]) -> list[str]:
    """Claims named by the pod's persistentVolumeClaim volumes (what VolumeRestrictions and
    the scheduler cache's PVC reference counts look at; generic ephemeral claims belong to
    one pod and are not counted)."""
    return [str(v["persistentVolumeClaim"]["claimName"])
            for v in (pod.get("spec") or {}).get("volumes") or ()
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


def read_write_once_pod_claims(pod: Mapping[str, Any],
                               claims: Sequence[ClaimState]) -> frozenset[str]:
    """The pod's claims whose access modes include ReadWriteOncePod."""
    by_name = {state.name: state.claim for state in claims}
    return frozenset(name for name in pvc_volume_claims(pod)
                     if (claim := by_name.get(name)) is not None
                     and READ_WRITE_ONCE_POD in matching.access_modes(claim))


def read_write_once_pod_conflicts(pod: Mapping[str, Any], claims: Sequence[ClaimState],
                                  scheduled_pods: Iterable[Mapping[str, Any]]) -> int:
    """VolumeRestrictions PreFilter: how many of the pod's ReadWriteOncePod claims a pod
    already placed on a node (assumed included) uses, each claim counted once. The count is
    cluster-wide, so a conflict fails every node alike."""
    wanted = read_write_once_pod_claims(pod, claims)
    if not wanted:
        return 0
    namespace, uid = matching.namespace_of(pod), matching.uid_of(pod)
    used: set[str] = set()
    for other in scheduled_pods:
        if matching.namespace_of(other) == namespace and matching.uid_of(other) != uid:
            used.update(wanted.intersection(pvc_volume_claims(other)))
    return len(used)


# ----------------------------------------------------------------------------- per node

@dataclass(frozen=True)
class NodeVerdict:
    node: str
    reasons: tuple[str, ...] = ()
    plan: VolumePlan = field(default_factory=VolumePlan)

    @property
    def fits(self) -> bool:
        return not self.reasons


def filter_node(pod: Mapping[str, Any], node: Mapping[str, Any],
                pods_on_node: Sequence[Mapping[str, Any]], claims: Sequence[ClaimState],
                volumes: Mapping[str, Obj], unbound_volumes: Iterable[Obj],
                rwop_conflicts: int = 0, capacities: Sequence[Obj] = ()) -> NodeVerdict:
    """The filter plugins in Kubernetes' order; the first that fails gives the reasons.
    `rwop_conflicts` is what `read_write_once_pod_conflicts` counted for the pod,
    `capacities` every CSIStorageCapacity."""
    name = node_name(node)
    if (node.get("spec") or {}).get("unschedulable") and not unschedulable_tolerated(pod):
        return NodeVerdict(name, (ERR_UNSCHEDULABLE,))
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return NodeVerdict(name, (msg_untolerated_taint(taint),))
    if not matches_node_affinity(pod, node):
        return NodeVerdict(name, (ERR_NODE_AFFINITY,))
    short = insufficient_resources(pod, node, pods_on_node)
    if short:
        return NodeVerdict(name, tuple(short))
    if rwop_conflicts > 0:
        return NodeVerdict(name, (ERR_RWOP_CONFLICT,))
    reasons, plan = check_volumes(claims, node, volumes, unbound_volumes, capacities)
    return NodeVerdict(name, tuple(reasons), plan)


def pick(verdicts: Sequence[NodeVerdict], pod_counts: Mapping[str, int]) -> NodeVerdict | None:
    """Among fitting nodes, the least loaded by pod count (spreading), then by name."""
    fitting = [v for v in verdicts if v.fits]
    if not fitting:
        return None
    return min(fitting, key=lambda v: (pod_counts.get(v.node, 0), v.node))
