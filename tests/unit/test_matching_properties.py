"""Property tests: the binder's pure decisions, driven by a simulated controller loop.

Hypothesis creates and deletes PVs and PVCs in any order and syncs them one by one, with the
controller "crashing" between any two writes of a bind. Whatever happens, no PV is bound to
two claims and a bound PV satisfies its claim; once the loop settles, every claim that some
volume could serve is Bound. The index is also checked against the plain per-volume matcher,
and binding 10,000 claims must take near-linear time, with thousands of Released volumes around.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from storage import binder_decisions as bd
from storage import matching
from tests.unit.test_matching import ROX, RWO, RWX, pv, pvc, ref_to

Obj = dict[str, Any]
RELEASED_OR_FAILED = (matching.VOLUME_RELEASED, matching.VOLUME_FAILED)


class Cluster:
    """An in-memory API server plus the controller loop over the pure decisions."""

    def __init__(self) -> None:
        self.pvs: dict[str, Obj] = {}
        self.pvcs: dict[str, Obj] = {}
        self.index = matching.VolumeIndex()
        self.revision = 0
        self.next_uid = 0
        self.pv_count = 0

    def _stamp(self, obj: Obj) -> Obj:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        return obj

    def create_pv(self, volume: Obj) -> None:
        volume["metadata"]["name"] = f"pv-{self.pv_count}"
        self.pv_count += 1
        volume["status"] = {"phase": "Pending"}  # the apiserver's default
        self._store_pv(self._stamp(volume))

    def create_pvc(self, claim: Obj) -> None:
        key = matching.claim_key(claim)
        if key in self.pvcs:
            return
        self.next_uid += 1
        claim["metadata"]["uid"] = f"claim-uid-{self.next_uid}"
        claim["status"] = {"phase": "Pending"}
        self.pvcs[key] = self._stamp(claim)

    def _store_pv(self, volume: Obj) -> None:
        name = matching.name_of(volume)
        if matching.phase_of(self.pvs.get(name, {})) in RELEASED_OR_FAILED:
            # Only an administrator (absent here) may return a Released volume to the pool.
            assert matching.phase_of(volume) in RELEASED_OR_FAILED, f"{name} was reused"
        self.pvs[name] = volume
        self.index.upsert(volume)

    def delete_pv(self, name: str) -> None:
        self.pvs.pop(name, None)
        self.index.remove(name)

    def delete_pvc(self, key: str) -> None:
        self.pvcs.pop(key, None)

    def write(self, write: bd.Write) -> None:
        obj = self._stamp(write.obj)
        if write.kind == "PersistentVolume":
            self._store_pv(obj)
        else:
            self.pvcs[matching.claim_key(obj)] = obj

    def sync_claim(self, key: str, crash_after: int | None = None) -> int:
        claim = self.pvcs.get(key)
        if claim is None:
            return 0
        named = matching.volume_name_of_claim(claim)
        action = bd.decide_claim(claim, self.pvs.get(named) if named else None, self.index)
        return self._execute(action, key, bd.target_volume_name(action, claim), crash_after)

    def sync_volume(self, name: str, crash_after: int | None = None) -> int:
        volume = self.pvs.get(name)
        if volume is None:
            return 0
        ref = matching.claim_ref(volume)
        claim = self.pvcs.get(matching.claim_ref_key(ref)) if ref else None
        action = bd.decide_volume(volume, claim)
        if action == bd.ReclaimVolume("Delete"):
            self.delete_pv(name)  # what the deleter does, eventually
            return 1
        return self._execute(action, None, name, crash_after)

    def _execute(self, action: Any, key: str | None, name: str, crash_after: int | None) -> int:
        done = 0
        while crash_after is None or done < crash_after:
            claim = self.pvcs.get(key) if key else None
            write = bd.next_write(action, claim, self.pvs.get(name) if name else None)
            if write is None:
                break
            self.write(write)
            done += 1
        return done

    def settle(self) -> None:
        for _ in range(50):
            writes = sum(self.sync_volume(name) for name in sorted(self.pvs))
            writes += sum(self.sync_claim(key) for key in sorted(self.pvcs))
            if writes == 0:
                return
        raise AssertionError("the controller loop did not settle")


# ---------------------------------------------------------------------------------------------
# Invariants.


def check_safety(cluster: Cluster) -> None:
    """No PV bound to two claims; a Bound claim's PV points back at it and satisfies it.

    Also, a claim is Lost only when its volume was deleted. (That a Released volume is never
    handed out again is checked on every write, by `Cluster`.)
    """
    owner: dict[str, str] = {}
    for key, claim in cluster.pvcs.items():
        if matching.phase_of(claim) == matching.CLAIM_LOST:
            assert matching.volume_name_of_claim(claim) not in cluster.pvs, (
                f"{key} lost a live volume"
            )
        if matching.phase_of(claim) != matching.CLAIM_BOUND:
            continue
        name = matching.volume_name_of_claim(claim)
        assert name, f"{key} is Bound without a volume"
        assert name not in owner, f"{name} is bound to {owner[name]} and {key}"
        owner[name] = key
        volume = cluster.pvs.get(name)
        if volume is None:
            continue  # deleted under the claim; the claim becomes Lost on its next sync
        ref = matching.claim_ref(volume)
        assert ref is not None and ref.get("uid") == matching.uid_of(claim)
        check_satisfies(claim, volume)


def check_satisfies(claim: Obj, volume: Obj) -> None:
    """Request, modes and class, except where the user chose the pairing herself.

    A user's pre-binding (PV claimRef) skips the class check and a pairing written on both
    sides by the user skips every check, exactly as in Kubernetes.
    """
    prebound_by_user = not matching.has_annotation(volume, matching.ANN_BOUND_BY_CONTROLLER)
    named_by_user = not matching.has_annotation(claim, matching.ANN_BOUND_BY_CONTROLLER)
    if prebound_by_user and named_by_user:
        return
    assert matching.volume_capacity(volume) >= matching.requested_storage(claim)
    assert matching.check_access_modes(claim, volume)
    if not prebound_by_user:
        assert matching.volume_class(volume) == matching.claim_class(claim)


def could_serve(volume: Obj, claim: Obj) -> bool:
    """An independent oracle: a free volume this claim may take."""
    return (
        matching.claim_ref(volume) is None
        and matching.phase_of(volume) == matching.VOLUME_AVAILABLE
        and matching.volume_capacity(volume) >= matching.requested_storage(claim)
        and set(volume["spec"]["accessModes"]) >= set(claim["spec"]["accessModes"])
        and volume["spec"].get("storageClassName", "")
        == (claim["spec"].get("storageClassName") or "")
        and matching.volume_mode(volume) == matching.volume_mode(claim)
    )


def reserved_for(volume: Obj, claim: Obj) -> bool:
    """A volume a user pre-bound to this claim, which fits it."""
    ref = matching.claim_ref(volume)
    return (
        ref is not None
        and not ref.get("uid")
        and matching.claim_ref_key(ref) == matching.claim_key(claim)
        and matching.volume_capacity(volume) >= matching.requested_storage(claim)
        and set(volume["spec"]["accessModes"]) >= set(claim["spec"]["accessModes"])
        and matching.volume_mode(volume) == matching.volume_mode(claim)
    )


def check_settled(cluster: Cluster) -> None:
    """Every claim some volume could serve is Bound; every volume's phase tells the truth."""
    for key, claim in cluster.pvcs.items():
        if matching.phase_of(claim) != matching.CLAIM_PENDING:
            continue
        named = matching.volume_name_of_claim(claim)
        if named:
            volume = cluster.pvs.get(named)
            assert (
                volume is None
                or matching.claim_ref(volume) is not None
                or (matching.check_volume_satisfies_claim(volume, claim) is not None)
            ), f"{key} asked for {named}, which is free and fits"
            continue
        for volume in cluster.pvs.values():
            assert not could_serve(volume, claim), f"{key} stayed Pending next to {volume}"
            assert not reserved_for(volume, claim), f"{key} ignored its pre-bound {volume}"
    for name, volume in cluster.pvs.items():
        check_volume_settled(cluster, name, volume)


def check_volume_settled(cluster: Cluster, name: str, volume: Obj) -> None:
    """Free and pre-bound volumes are Available, bound ones Bound both ways, the rest Released."""
    ref = matching.claim_ref(volume)
    phase = matching.phase_of(volume)
    if ref is None or not ref.get("uid"):
        assert phase == matching.VOLUME_AVAILABLE, name
        return
    claim = cluster.pvcs.get(matching.claim_ref_key(ref))
    if claim is not None and matching.uid_of(claim) == ref["uid"]:
        assert phase == matching.VOLUME_BOUND, name
        assert matching.volume_name_of_claim(claim) == name, (
            f"{name} points at a claim bound elsewhere"
        )
        assert matching.phase_of(claim) == matching.CLAIM_BOUND, name
    else:
        assert phase in (matching.VOLUME_RELEASED, matching.VOLUME_FAILED), name


# ---------------------------------------------------------------------------------------------
# The random histories.

CLAIM_NAMES = ["a", "b", "c", "d", "e", "f"]
SIZES = st.sampled_from(["1Gi", "2Gi", "3Gi", "2048Mi", "5G"])
CRASH = st.one_of(st.none(), st.integers(min_value=0, max_value=3))

create_pv = st.tuples(
    st.just("pv"),
    SIZES,
    st.sampled_from([(RWO,), (RWO, RWX), (RWX,), (ROX,), (RWO, ROX, RWX)]),
    st.sampled_from(["", "gold"]),
    st.sampled_from([None] * 24 + CLAIM_NAMES),  # sometimes a user's pre-binding
    st.sampled_from(["Retain", "Delete"]),
    st.sampled_from([None, None, None, "Block"]),
)
create_pvc = st.tuples(
    st.just("pvc"),
    st.sampled_from(CLAIM_NAMES),
    SIZES,
    st.sampled_from([(RWO,), (RWX,), (RWO, RWX), (ROX,)]),
    st.sampled_from([None, "", "gold"]),
    st.sampled_from([None] * 40 + list(range(10))),  # sometimes a user's choice of volume
    st.sampled_from([None, None, None, "Block"]),
)
sync_claim = st.tuples(st.just("sync_claim"), st.integers(min_value=0, max_value=50), CRASH)
sync_volume = st.tuples(st.just("sync_volume"), st.integers(min_value=0, max_value=50), CRASH)
churn = st.one_of(
    sync_claim,
    sync_volume,
    sync_claim,
    sync_volume,
    st.tuples(st.just("del_pv"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("del_pvc"), st.integers(min_value=0, max_value=50)),
)
deletion = st.one_of(
    st.tuples(st.just("del_pv"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("del_pvc"), st.integers(min_value=0, max_value=50)),
)


def shuffled(*parts: st.SearchStrategy[list[Any]]) -> st.SearchStrategy[list[Any]]:
    """Lists of a few dozen operations in any order (hypothesis keeps plain lists short)."""
    return st.tuples(*parts).flatmap(
        lambda lists: st.permutations([op for ops in lists for op in ops])
    )


history = shuffled(
    st.lists(create_pv, min_size=1, max_size=12),
    st.lists(create_pvc, min_size=1, max_size=10),
    st.lists(churn, max_size=30),
)
# The second round replaces bound objects: claims come back under their old names.
second_round = shuffled(
    st.lists(deletion, min_size=1, max_size=8),
    st.lists(create_pv, max_size=6),
    st.lists(create_pvc, min_size=1, max_size=8),
    st.lists(churn, max_size=20),
)


def pick(keys: Sequence[str], i: int) -> str | None:
    ordered = sorted(keys)
    return ordered[i % len(ordered)] if ordered else None


def run(cluster: Cluster, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "pv":
        _, size, modes, cls, prebind, policy, mode = op
        claim_ref = ref_to(prebind) if prebind else None
        cluster.create_pv(
            pv("x", size, modes, cls=cls, claim=claim_ref, policy=policy, volume_mode=mode)
        )
    elif kind == "pvc":
        _, name, size, modes, cls, volume, mode = op
        volume_name = f"pv-{volume}" if volume is not None else None
        cluster.create_pvc(
            pvc(name, size, modes, cls=cls, volume_name=volume_name, volume_mode=mode)
        )
    elif kind == "del_pv" and (name := pick(list(cluster.pvs), op[1])):
        cluster.delete_pv(name)
    elif kind == "del_pvc" and (key := pick(list(cluster.pvcs), op[1])):
        cluster.delete_pvc(key)
    elif kind == "sync_claim" and (key := pick(list(cluster.pvcs), op[1])):
        cluster.sync_claim(key, op[2])
    elif kind == "sync_volume" and (name := pick(list(cluster.pvs), op[1])):
        cluster.sync_volume(name, op[2])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history, second_round)
def test_any_history_binds_safely_and_completely(
    first: list[tuple[Any, ...]], then: list[tuple[Any, ...]]
) -> None:
    """Two rounds, so that the second one deletes and replaces objects that are bound."""
    cluster = Cluster()
    for ops in (first, then):
        for op in ops:
            run(cluster, op)
            check_safety(cluster)
        cluster.settle()
        check_safety(cluster)
        check_settled(cluster)
    for claim in cluster.pvcs.values():
        event(f"a claim ended {matching.phase_of(claim)}")
    for volume in cluster.pvs.values():
        event(f"a volume ended {matching.phase_of(volume)}")


def test_recreated_claim_does_not_take_the_released_volume() -> None:
    cluster = Cluster()
    cluster.create_pv(pv("x", "1Gi"))
    cluster.create_pvc(pvc("a", "1Gi"))
    cluster.settle()
    cluster.delete_pvc("default/a")
    cluster.create_pvc(pvc("a", "1Gi"))  # same name, new uid
    cluster.settle()
    assert matching.phase_of(cluster.pvs["pv-0"]) == "Released"
    assert matching.phase_of(cluster.pvcs["default/a"]) == "Pending"
    check_settled(cluster)


def test_half_bound_volume_is_rolled_back_when_its_claim_binds_elsewhere() -> None:
    """The claim first half-binds a wide volume, then a narrower one becomes Available."""
    cluster = Cluster()
    cluster.create_pv(pv("x", "1Gi", (RWO, RWX)))  # pv-0
    cluster.sync_volume("pv-0")
    cluster.create_pv(pv("y", "1Gi", (RWO,)))  # pv-1, still Pending
    cluster.create_pvc(pvc("a", "1Gi", (RWO,)))
    cluster.sync_claim("default/a", crash_after=1)  # only pv-0's claimRef is written
    cluster.sync_volume("pv-1")
    cluster.sync_claim("default/a")  # the {RWO} group comes first: pv-1 wins
    assert matching.volume_name_of_claim(cluster.pvcs["default/a"]) == "pv-1"
    cluster.settle()
    assert matching.claim_ref(cluster.pvs["pv-0"]) is None
    assert matching.phase_of(cluster.pvs["pv-0"]) == "Available"
    check_settled(cluster)


# ---------------------------------------------------------------------------------------------
# The index agrees with the plain matcher.

volume_strategy = st.builds(
    lambda i, size, modes, cls, phase, prebound, deleting: pv(
        f"v{i}",
        size,
        modes,
        cls=cls,
        phase=phase,
        claim=ref_to("c") if prebound else None,
        deleting=deleting,
    ),
    st.integers(min_value=0, max_value=30),
    SIZES,
    st.sampled_from([(RWO,), (RWO, RWX), (RWX,), (ROX, RWX), (RWO, ROX, RWX)]),
    st.sampled_from(["", "gold"]),
    st.sampled_from(["Available", "Available", "Bound", "Released"]),
    st.booleans(),
    st.booleans(),
)


def reference_best_match(claim: Obj, volumes: list[Obj]) -> Obj | None:
    """findByClaim spelled out: group by mode set, fewest modes first, scan each group."""
    ordered = sorted(volumes, key=matching.name_of)  # ties go to the smallest name
    groups: dict[frozenset[str], list[Obj]] = {}
    for volume in ordered:
        groups.setdefault(matching.access_modes(volume), []).append(volume)
    requested = matching.access_modes(claim)
    for modes in matching.VolumeIndex(volumes).matching_mode_sets(requested):
        assert requested <= modes
        found = matching.find_matching_volume(claim, groups[modes])
        if found is not None:
            return found
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(volume_strategy, max_size=25, unique_by=lambda v: matching.name_of(v)),
    SIZES,
    st.sampled_from([(RWO,), (RWX,), (RWO, RWX), (ROX,)]),
    st.sampled_from(["", "gold"]),
)
def test_index_agrees_with_per_volume_scan(
    volumes: list[Obj], size: str, modes: tuple[str, ...], cls: str
) -> None:
    claim = pvc("c", size, modes, cls=cls)
    expected = reference_best_match(claim, volumes)
    assert matching.find_best_match_for_claim(claim, volumes) is expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), volume_strategy), max_size=40))
def test_index_updates_equal_a_fresh_index(events: list[tuple[bool, Obj]]) -> None:
    index, current = matching.VolumeIndex(), {}
    for removed, volume in events:
        name = matching.name_of(volume)
        if removed:
            index.remove(name)
            current.pop(name, None)
        else:
            index.upsert(volume)
            current[name] = volume
    fresh = matching.VolumeIndex(current.values())
    for size in ["1Gi", "3Gi"]:
        for modes in [(RWO,), (RWX,)]:
            claim = pvc("c", size, modes)
            assert index.find_best_match(claim) is fresh.find_best_match(claim)
    assert sorted(map(matching.name_of, index)) == sorted(current)


# ---------------------------------------------------------------------------------------------
# Work per claim. Speed itself is bench/binding.py's to measure (no timed assertions here);
# what a test can pin is that binding a claim examines a bounded number of volumes, however
# many there are: a linear scan per claim is what made binding quadratic.


def bind_everything(n: int, released: int, monkeypatch: pytest.MonkeyPatch) -> float:
    """Volumes examined per claim (fit and pre-bound checks) while the decision loop binds n
    claims to n volumes among `released` Released others."""
    rng = random.Random(n)
    sizes = [rng.randint(1, 500) for _ in range(n)]
    modes = [(RWO,), (RWO, RWX), (RWX,)]
    volumes = [
        pv(f"pv-{i}", f"{s}Gi", modes[i % 3], cls="fast" if i % 2 else "")
        for i, s in enumerate(sizes)
    ]
    volumes += [
        pv(
            f"old-{i}",
            f"{rng.randint(1, 500)}Gi",
            phase="Released",
            claim=ref_to(f"gone-{i}", uid=f"gone-{i}"),
        )
        for i in range(released)
    ]
    claims = [
        pvc(f"c-{i}", f"{s}Gi", modes[i % 3], cls="fast" if i % 2 else None)
        for i, s in enumerate(sizes)
    ]
    rng.shuffle(claims)
    cluster = Cluster()
    cluster.index = matching.VolumeIndex(volumes)
    cluster.pvs = {matching.name_of(v): v for v in volumes}
    cluster.pvcs = {matching.claim_key(c): c for c in claims}
    examined = [0]
    for name in ("_fits_any_claim_of_its_kind", "is_volume_bound_to_claim"):
        monkeypatch.setattr(matching, name, _counting(getattr(matching, name), examined))
    for key in list(cluster.pvcs):
        cluster.sync_claim(key)
    monkeypatch.undo()
    assert all(matching.phase_of(c) == "Bound" for c in cluster.pvcs.values())
    return examined[0] / n


def _counting(check: Any, count: list[int]) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return check(*args, **kwargs)
    return counted


@pytest.mark.slow
def test_binding_ten_thousand_claims_examines_a_bounded_number_of_volumes_each(
        monkeypatch: pytest.MonkeyPatch) -> None:
    small = bind_everything(2_500, released=1_250, monkeypatch=monkeypatch)
    large = bind_everything(10_000, released=5_000, monkeypatch=monkeypatch)
    # Linear binding examines the same few volumes per claim at any n; a scan, n of them.
    assert large <= max(2 * small, 8), f"{small:.1f} per claim at 2,500, {large:.1f} at 10,000"


@pytest.mark.slow
def test_released_volumes_are_not_examined_for_new_claims(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plain = bind_everything(2_500, released=0, monkeypatch=monkeypatch)
    crowded = bind_everything(2_500, released=5_000, monkeypatch=monkeypatch)
    assert crowded <= plain + 1, f"{plain:.1f} per claim alone, {crowded:.1f} among Released"
