"""Which PersistentVolume may serve a PersistentVolumeClaim, as pure functions over JSON objects.

The PV controller and the volume-aware scheduler must agree on what "this volume fits this
claim" means, and both must agree with Kubernetes, or a claim that binds on a real cluster
stays Pending here. So this module mirrors Kubernetes' `index.go` and the storage helpers of
`component-helpers` rule by rule: the scheduler's per-volume scan (`find_matching_volume`), the
controller's search by access-mode groups (`find_best_match_for_claim`), and `VolumeIndex`, which
gives the controller the same answers in about O(log n) per claim so that tens of thousands of
volumes bind in near-linear time. Nothing here talks to the API; objects are plain dicts.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Protocol

from apimachinery import labels, names, quantity

Obj = dict[str, Any]

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_DYNAMICALLY_PROVISIONED = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"

VOLUME_AVAILABLE = "Available"
VOLUME_BOUND = "Bound"
VOLUME_RELEASED = "Released"
VOLUME_FAILED = "Failed"
VOLUME_PENDING = "Pending"
CLAIM_PENDING = "Pending"
CLAIM_BOUND = "Bound"
CLAIM_LOST = "Lost"

FILESYSTEM = "Filesystem"
# Kubernetes' canonical order of access modes (v1helper.GetAccessModesAsString).
ACCESS_MODE_ORDER = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


class MatchingError(Exception):
    """A claim or volume that cannot be matched at all because a field of it is malformed."""


class InvalidSelector(MatchingError):
    """The claim's spec.selector cannot be turned into a label selector."""


class InvalidQuantity(MatchingError):
    """A storage request or capacity is not a Kubernetes quantity."""


class _Selector(Protocol):
    def matches(self, labels: Mapping[str, str]) -> bool: ...


# ---------------------------------------------------------------------------------------------
# Field access: Kubernetes' defaults for absent fields live here, in one place.


def _section(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return obj.get(name) or {}


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _section(obj, "metadata").get("annotations") or {}


def has_annotation(obj: Mapping[str, Any], key: str) -> bool:
    return key in annotations_of(obj)


def name_of(obj: Mapping[str, Any]) -> str:
    return str(_section(obj, "metadata").get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(_section(obj, "metadata").get("namespace") or "")


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(_section(obj, "metadata").get("uid") or "")


def claim_key(claim: Mapping[str, Any]) -> str:
    """`namespace/name`, the key the controller queues claims under."""
    return f"{namespace_of(claim)}/{name_of(claim)}"


def claim_ref(volume: Mapping[str, Any]) -> Mapping[str, Any] | None:
    ref = _section(volume, "spec").get("claimRef")
    return ref if ref else None


def claim_ref_key(ref: Mapping[str, Any]) -> str:
    return f"{ref.get('namespace') or ''}/{ref.get('name') or ''}"


def volume_name_of_claim(claim: Mapping[str, Any]) -> str:
    return str(_section(claim, "spec").get("volumeName") or "")


def phase_of(obj: Mapping[str, Any]) -> str:
    return str(_section(obj, "status").get("phase") or "")


def is_being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool(_section(obj, "metadata").get("deletionTimestamp"))


def claim_class(claim: Mapping[str, Any]) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins; unset and "" mean no class."""
    beta = annotations_of(claim).get(ANN_BETA_STORAGE_CLASS)
    if beta is not None:
        return beta
    return str(_section(claim, "spec").get("storageClassName") or "")


def claim_has_class(claim: Mapping[str, Any]) -> bool:
    """PersistentVolumeClaimHasClass: an explicit "" counts as asking for "no class"."""
    if ANN_BETA_STORAGE_CLASS in annotations_of(claim):
        return True
    return _section(claim, "spec").get("storageClassName") is not None


def volume_class(volume: Mapping[str, Any]) -> str:
    """GetPersistentVolumeClass: the beta annotation wins over spec.storageClassName."""
    beta = annotations_of(volume).get(ANN_BETA_STORAGE_CLASS)
    if beta is not None:
        return beta
    return str(_section(volume, "spec").get("storageClassName") or "")


def volume_mode(obj: Mapping[str, Any]) -> str:
    """spec.volumeMode; nil defaults to Filesystem, as CheckVolumeModeMismatches does."""
    return str(_section(obj, "spec").get("volumeMode") or FILESYSTEM)


def attributes_class(obj: Mapping[str, Any]) -> str:
    """spec.volumeAttributesClassName; nil and "" are the same (ptr.Deref(..., ""))."""
    return str(_section(obj, "spec").get("volumeAttributesClassName") or "")


def access_modes(obj: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(_section(obj, "spec").get("accessModes") or ())


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _section(obj, "metadata").get("labels") or {}


def parse_storage(raw: object) -> Fraction:
    """The exact value of a storage quantity; an absent one is zero, like Go's zero Quantity."""
    if raw is None:
        return Fraction(0)
    try:
        if isinstance(raw, str):
            return quantity.parse_quantity(raw.strip())
        return quantity.parse_quantity(quantity.canonical_json_quantity(raw))
    except ValueError as e:
        raise InvalidQuantity(f"invalid storage quantity {raw!r}: {e}") from e


def requested_storage(claim: Mapping[str, Any]) -> Fraction:
    requests = _section(_section(claim, "spec"), "resources").get("requests") or {}
    return parse_storage(requests.get("storage"))


def volume_capacity(volume: Mapping[str, Any]) -> Fraction:
    return parse_storage((_section(volume, "spec").get("capacity") or {}).get("storage"))


# ---------------------------------------------------------------------------------------------
# The individual rules.


def volume_mode_mismatches(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    """CheckVolumeModeMismatches, with an unset mode on either side meaning Filesystem."""
    return volume_mode(claim) != volume_mode(volume)


def attributes_class_mismatches(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    return attributes_class(claim) != attributes_class(volume)


def check_access_modes(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> bool:
    """CheckAccessModes: the volume offers every mode the claim asks for (it may offer more)."""
    return access_modes(claim) <= access_modes(volume)


def is_volume_bound_to_claim(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """IsVolumeBoundToClaim: claimRef names the claim; its uid, when set, must match too.

    A claimRef without uid is how a user pre-binds a volume to a claim that may not exist yet.
    """
    ref = claim_ref(volume)
    if ref is None:
        return False
    if (ref.get("name") or "") != name_of(claim):
        return False
    if (ref.get("namespace") or "") != namespace_of(claim):
        return False
    ref_uid = ref.get("uid") or ""
    return not ref_uid or ref_uid == uid_of(claim)


def claim_selector(claim: Mapping[str, Any]) -> _Selector | None:
    """The claim's spec.selector as a matcher, or None when the claim has no selector."""
    raw = _section(claim, "spec").get("selector")
    if raw is None:
        return None
    try:
        return labels.from_label_selector(raw)
    except ValueError as e:
        raise InvalidSelector(
            f"error creating internal label selector for claim: {claim_key(claim)}: {e}"
        ) from e


# ---------------------------------------------------------------------------------------------
# Node affinity, as component-helpers' nodeaffinity evaluates a NodeSelector.

_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None when Go would return an error."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


class _TermInvalid(Exception):
    """A node selector requirement Kubernetes refuses to parse; its term matches nothing."""


def _expression_matches(expr: Mapping[str, Any], node_labels: Mapping[str, str]) -> bool:
    key, op = expr.get("key") or "", expr.get("operator")
    values: Sequence[str] = expr.get("values") or []
    present = key in node_labels
    if op in ("In", "NotIn"):
        if not values:
            raise _TermInvalid(f"{op} requires values")
        inside = present and node_labels[key] in values
        return inside if op == "In" else not inside
    if op in ("Exists", "DoesNotExist"):
        if values:
            raise _TermInvalid(f"{op} takes no values")
        return present if op == "Exists" else not present
    if op in ("Gt", "Lt"):
        bound = _parse_int64(values[0]) if len(values) == 1 else None
        if bound is None:
            raise _TermInvalid(f"{op} requires one integer value")
        have = _parse_int64(node_labels[key]) if present else None
        if have is None:
            return False
        return have > bound if op == "Gt" else have < bound
    raise _TermInvalid(f"unsupported operator {op!r}")


def _field_matches(expr: Mapping[str, Any], node_fields: Mapping[str, str]) -> bool:
    op = expr.get("operator")
    values: Sequence[str] = expr.get("values") or []
    if op not in ("In", "NotIn"):
        raise _TermInvalid(f"unsupported field operator {op!r}")
    if len(values) != 1:
        raise _TermInvalid("field requirement must have one value")
    equal = node_fields.get(expr.get("key") or "", "") == values[0]
    return equal if op == "In" else not equal


def _term_matches(
    term: Mapping[str, Any], node_labels: Mapping[str, str], node_fields: Mapping[str, str]
) -> bool:
    """AND of the term's expressions; matchFields only count when the node's fields are known."""
    # Every requirement is evaluated: one Kubernetes cannot parse fails the whole term.
    try:
        expressions = [
            _expression_matches(e, node_labels) for e in term.get("matchExpressions") or ()
        ]
        fields = [_field_matches(f, node_fields) for f in term.get("matchFields") or ()]
    except _TermInvalid:
        return False
    return all(expressions) and (not node_fields or all(fields))


def node_selector_matches(
    node_selector: Mapping[str, Any], node_labels: Mapping[str, str], node_name: str = ""
) -> bool:
    """OR of nodeSelectorTerms; an empty term (no expressions, no fields) matches nothing.

    matchFields (only `metadata.name` exists) are checked only when `node_name` is given,
    exactly as Kubernetes skips them for a node whose fields are empty.
    """
    node_fields = {"metadata.name": node_name} if node_name else {}
    for term in node_selector.get("nodeSelectorTerms") or ():
        if not term.get("matchExpressions") and not term.get("matchFields"):
            continue
        if _term_matches(term, node_labels, node_fields):
            return True
    return False


def check_node_affinity(volume: Mapping[str, Any], node_labels: Mapping[str, str]) -> bool:
    """CheckNodeAffinity: does the volume's required node affinity admit a node with these labels?

    Kubernetes evaluates PV affinity against a node built from labels alone, so a term's
    matchFields are not enforced here (kubernetes#81725); we keep that behaviour.
    """
    affinity = _section(volume, "spec").get("nodeAffinity")
    if not affinity or affinity.get("required") is None:
        return True
    return node_selector_matches(affinity["required"], node_labels)


# ---------------------------------------------------------------------------------------------
# The scheduler's path: one scan over a list of volumes (FindMatchingVolume).


def _fits_any_claim_of_its_kind(
    claim: Mapping[str, Any], volume: Mapping[str, Any], request: Fraction, capacity: Fraction
) -> bool:
    """Rules applied to every candidate, pre-bound or not: size, volumeMode, VAC, not deleted."""
    if capacity < request:
        return False
    if volume_mode_mismatches(claim, volume) or attributes_class_mismatches(claim, volume):
        return False
    return not is_being_deleted(volume)


def _fits_as_unbound(
    claim: Mapping[str, Any], volume: Mapping[str, Any], selector: _Selector | None
) -> bool:
    """Rules for a volume nobody has claimed yet: Available, selector and class."""
    if phase_of(volume) != VOLUME_AVAILABLE:
        # Volumes not yet Available will be soon; binding them now only meets conflicts.
        return False
    if selector is not None and not selector.matches(labels_of(volume)):
        return False
    return volume_class(volume) == claim_class(claim)


def find_matching_volume(
    claim: Mapping[str, Any],
    volumes: Iterable[Obj],
    *,
    node: Mapping[str, Any] | None = None,
    excluded_volumes: Collection[str] = (),
    delay_binding: bool = False,
) -> Obj | None:
    """The best volume for `claim` among `volumes`, or None; Kubernetes' FindMatchingVolume.

    A volume whose claimRef names this claim wins at once (and if `node` fails its affinity
    there is no match at all). Otherwise the smallest fitting Available volume wins, the first
    one in `volumes` among equals. With `node` (the scheduler's path) node affinity and access
    modes are checked per volume; without it and with `delay_binding`, unbound volumes are
    left to the scheduler. `excluded_volumes` are names already chosen for sibling claims.
    """
    request = requested_storage(claim)
    selector = claim_selector(claim)
    node_labels = labels_of(node) if node is not None else None
    best: Obj | None = None
    best_capacity = Fraction(0)
    for volume in volumes:
        if name_of(volume) in excluded_volumes:
            continue
        if claim_ref(volume) is not None and not is_volume_bound_to_claim(volume, claim):
            continue
        capacity = volume_capacity(volume)
        if not _fits_any_claim_of_its_kind(claim, volume, request, capacity):
            continue
        affinity_ok = node_labels is None or check_node_affinity(volume, node_labels)
        if is_volume_bound_to_claim(volume, claim):
            return volume if affinity_ok else None
        if node is None and delay_binding:
            continue
        if not _fits_as_unbound(claim, volume, selector) or not affinity_ok:
            continue
        if node is not None and not check_access_modes(claim, volume):
            continue
        if best is None or capacity < best_capacity:
            best, best_capacity = volume, capacity
    return best


# ---------------------------------------------------------------------------------------------
# The controller's path: an index kept alive across events (persistentVolumeOrderedIndex).


@dataclass(frozen=True)
class _PoolKey:
    """Volumes that differ in none of the fields a claim must equal exactly share a pool."""

    modes: frozenset[str]
    storage_class: str
    mode: str
    attributes_class: str


@dataclass(frozen=True)
class _Indexed:
    volume: Obj
    capacity: Fraction
    modes: frozenset[str]
    pool: _PoolKey | None  # None: not claimable by an arbitrary claim (claimed, deleted, ...)
    claimed_by: tuple[str, str] | None  # (namespace, name) from claimRef


def _modes_order(modes: frozenset[str]) -> tuple[int, tuple[int, ...], tuple[str, ...]]:
    """Fewest modes first (as Kubernetes sorts groups); ties in canonical mode order.

    Kubernetes leaves the order of groups of equal size to chance; a fixed order keeps our
    controller and its tests deterministic.
    """
    rank = sorted(ACCESS_MODE_ORDER.index(m) if m in ACCESS_MODE_ORDER else 99 for m in modes)
    return len(modes), tuple(rank), tuple(sorted(modes))


def _index_entry(volume: Obj) -> _Indexed:
    modes = access_modes(volume)
    ref = claim_ref(volume)
    pool = None
    if ref is None and phase_of(volume) == VOLUME_AVAILABLE and not is_being_deleted(volume):
        pool = _PoolKey(modes, volume_class(volume), volume_mode(volume), attributes_class(volume))
    claimed_by = (str(ref.get("namespace") or ""), str(ref.get("name") or "")) if ref else None
    return _Indexed(volume, volume_capacity(volume), modes, pool, claimed_by)


class VolumeIndex:
    """All PVs the controller knows, indexed so that matching a claim does not scan them all.

    Unclaimed Available volumes sit in pools keyed by (access-mode set, class, volumeMode,
    volumeAttributesClassName), each sorted by (capacity, name): the smallest fitting one is a
    binary search away. Claimed volumes (Bound, Released, pre-bound) stay out of the pools and
    are found through their claimRef, so thousands of Released volumes cost nothing per claim.
    Keep one index alive and feed it every PV event (`upsert`, `remove`).
    """

    def __init__(self, volumes: Iterable[Obj] = ()) -> None:
        self._entries: dict[str, _Indexed] = {}
        self._pools: dict[_PoolKey, list[tuple[Fraction, str]]] = {}
        self._by_claim: dict[tuple[str, str], set[str]] = {}
        self._mode_sets: dict[frozenset[str], int] = {}
        for volume in volumes:
            self.upsert(volume)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Obj]:
        return (entry.volume for entry in self._entries.values())

    def get(self, name: str) -> Obj | None:
        entry = self._entries.get(name)
        return entry.volume if entry else None

    def upsert(self, volume: Obj) -> None:
        """Add a volume or replace the stored version of it (the newest one seen wins)."""
        name = name_of(volume)
        entry = _index_entry(volume)  # parse first: a bad volume leaves the index untouched
        self.remove(name)
        self._entries[name] = entry
        self._mode_sets[entry.modes] = self._mode_sets.get(entry.modes, 0) + 1
        if entry.pool is not None:
            bisect.insort(self._pools.setdefault(entry.pool, []), (entry.capacity, name))
        if entry.claimed_by is not None:
            self._by_claim.setdefault(entry.claimed_by, set()).add(name)

    def remove(self, name: str) -> None:
        entry = self._entries.pop(name, None)
        if entry is None:
            return
        self._forget_modes(entry.modes)
        if entry.pool is not None:
            pool = self._pools[entry.pool]
            del pool[bisect.bisect_left(pool, (entry.capacity, name))]
            if not pool:
                del self._pools[entry.pool]
        if entry.claimed_by is not None:
            claiming = self._by_claim[entry.claimed_by]
            claiming.discard(name)
            if not claiming:
                del self._by_claim[entry.claimed_by]

    def _forget_modes(self, modes: frozenset[str]) -> None:
        left = self._mode_sets[modes] - 1
        if left:
            self._mode_sets[modes] = left
        else:
            del self._mode_sets[modes]

    def volumes_claiming(self, namespace: str, name: str) -> list[Obj]:
        """Volumes whose claimRef names namespace/name (any uid), sorted by volume name."""
        claiming = sorted(self._by_claim.get((namespace, name), ()))
        return [self._entries[n].volume for n in claiming]

    def matching_mode_sets(self, requested: frozenset[str]) -> list[frozenset[str]]:
        """allPossibleMatchingAccessModes: indexed mode sets holding every requested mode."""
        found = [modes for modes in self._mode_sets if requested <= modes]
        return sorted(found, key=_modes_order)

    def find_best_match(
        self, claim: Mapping[str, Any], *, delay_binding: bool = False
    ) -> Obj | None:
        """findBestMatchForClaim: group by group, a pre-bound volume or else the smallest fit."""
        request = requested_storage(claim)
        selector = claim_selector(claim)
        prebound = self._prebound_candidates(claim, request)
        for modes in self.matching_mode_sets(access_modes(claim)):
            for entry in prebound:
                if entry.modes == modes:
                    return entry.volume
            if delay_binding:
                continue  # unbound volumes are the scheduler's to choose
            found = self._smallest_in_pool(claim, modes, request, selector)
            if found is not None:
                return found
        return None

    def _prebound_candidates(self, claim: Mapping[str, Any], request: Fraction) -> list[_Indexed]:
        claiming = sorted(self._by_claim.get((namespace_of(claim), name_of(claim)), ()))
        entries = [self._entries[n] for n in claiming]
        return [
            e
            for e in entries
            if is_volume_bound_to_claim(e.volume, claim)
            and _fits_any_claim_of_its_kind(claim, e.volume, request, e.capacity)
        ]

    def _smallest_in_pool(
        self,
        claim: Mapping[str, Any],
        modes: frozenset[str],
        request: Fraction,
        selector: _Selector | None,
    ) -> Obj | None:
        key = _PoolKey(modes, claim_class(claim), volume_mode(claim), attributes_class(claim))
        pool = self._pools.get(key)
        if not pool:
            return None
        # "" sorts before every volume name, so this lands on the first volume >= request.
        for i in range(bisect.bisect_left(pool, (request, "")), len(pool)):
            volume = self._entries[pool[i][1]].volume
            if selector is None or selector.matches(labels_of(volume)):
                return volume
        return None


def find_best_match_for_claim(
    claim: Mapping[str, Any], volumes: Iterable[Obj], *, delay_binding: bool = False
) -> Obj | None:
    """The controller's choice for `claim` among `volumes` (findBestMatchForClaim).

    Volumes are grouped by their exact set of access modes; groups holding every requested
    mode are tried fewest modes first, and the first group with a pre-bound or fitting volume
    decides. Among equally small volumes the one with the smallest name wins (Kubernetes'
    order there is its cache's, i.e. unspecified). A controller should keep a `VolumeIndex`.
    """
    return VolumeIndex(volumes).find_best_match(claim, delay_binding=delay_binding)


# ---------------------------------------------------------------------------------------------
# A volume the claim names explicitly (checkVolumeSatisfyClaim).


class Unsatisfied(Enum):
    """Why a volume named by claim.spec.volumeName cannot serve the claim."""

    MARKED_FOR_DELETION = "marked for deletion"
    TOO_SMALL = "requested PV is too small"
    CLASS_MISMATCH = "storageClassName does not match"
    ATTRIBUTES_CLASS_MISMATCH = "volumeAttributesClassName does not match"
    VOLUME_MODE_MISMATCH = "incompatible volumeMode"
    ACCESS_MODE_MISMATCH = "incompatible accessMode"

    def message(self, volume: Mapping[str, Any]) -> str:
        """The error text Kubernetes puts after "Cannot bind to requested volume ...: "."""
        if self is Unsatisfied.MARKED_FOR_DELETION:
            return f"the volume is marked for deletion {names.go_quote(name_of(volume))}"
        return str(self.value)


def check_volume_satisfies_claim(
    volume: Mapping[str, Any], claim: Mapping[str, Any]
) -> Unsatisfied | None:
    """checkVolumeSatisfyClaim, checks in Kubernetes' order; None when the volume will do.

    Sizes are compared as Quantity.Value() does, i.e. each rounded up to whole bytes.
    """
    if is_being_deleted(volume):
        return Unsatisfied.MARKED_FOR_DELETION
    if math.ceil(volume_capacity(volume)) < math.ceil(requested_storage(claim)):
        return Unsatisfied.TOO_SMALL
    if volume_class(volume) != claim_class(claim):
        return Unsatisfied.CLASS_MISMATCH
    if attributes_class_mismatches(claim, volume):
        return Unsatisfied.ATTRIBUTES_CLASS_MISMATCH
    if volume_mode_mismatches(claim, volume):
        return Unsatisfied.VOLUME_MODE_MISMATCH
    if not check_access_modes(claim, volume):
        return Unsatisfied.ACCESS_MODE_MISMATCH
    return None
