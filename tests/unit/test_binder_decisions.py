"""Table-driven tests of the PV binder's decisions and of the writes that carry them out.

Every branch of Kubernetes' syncClaim / syncVolume has a row, and the bind is replayed from
every half-finished state (as after a controller crash between two writes).
"""

from __future__ import annotations

from typing import Any

import pytest

from storage import binder_decisions as bd
from storage import matching
from tests.unit.test_matching import RWO, RWX, pv, pvc, ref, ref_to

BOUND_BY = matching.ANN_BOUND_BY_CONTROLLER
COMPLETED = matching.ANN_BIND_COMPLETED
NO_CLASS_EVENT = bd.Event("Normal", "FailedBinding", bd.MSG_NO_VOLUME_AND_NO_CLASS)


def bound_claim(name: str = "claim", volume: str = "vol", **kwargs: Any) -> dict[str, Any]:
    """A claim whose bind completed (as after all four writes)."""
    anns = {COMPLETED: "yes", BOUND_BY: "yes"} | kwargs.pop("annotations", {})
    claim = pvc(
        name, volume_name=volume, annotations=anns, phase=kwargs.pop("phase", "Bound"), **kwargs
    )
    claim["status"].update(accessModes=[RWO], capacity={"storage": "1Gi"})
    return claim


CLAIM = pvc("claim", "1Gi")

# ---------------------------------------------------------------------------------------------
# decide_claim

CLAIM_CASES: list[
    tuple[
        str,
        dict[str, Any],
        dict[str, Any] | None,
        list[dict[str, Any]],
        dict[str, Any],
        bd.ClaimAction,
    ]
] = [
    # -- unbound claim, no volumeName: the controller chooses
    ("fitting volume: bind it", CLAIM, None, [pv("vol", "2Gi")], {}, bd.BindVolumeToClaim("vol")),
    (
        "volume pre-bound by user: complete the bind",
        CLAIM,
        None,
        [pv("vol", "2Gi", claim=ref(CLAIM, with_uid=False))],
        {},
        bd.CompleteBindOnClaim("vol"),
    ),
    (
        "volume half-bound by us: complete the bind",
        CLAIM,
        None,
        [pv("vol", "2Gi", claim=ref(CLAIM), annotations={BOUND_BY: "yes"}, phase="Bound")],
        {},
        bd.CompleteBindOnClaim("vol"),
    ),
    (
        "nothing fits, no class: FailedBinding",
        CLAIM,
        None,
        [pv("vol", "100Mi")],
        {},
        bd.MarkClaimPending(NO_CLASS_EVENT),
    ),
    (
        "nothing fits, no class, default class exists: assign it",
        CLAIM,
        None,
        [],
        {"default_class": "standard"},
        bd.AssignDefaultStorageClass("standard"),
    ),
    (
        "explicit empty class is not defaulted",
        pvc("claim", cls=""),
        None,
        [],
        {"default_class": "standard"},
        bd.MarkClaimPending(NO_CLASS_EVENT),
    ),
    (
        "nothing fits, class set: provisioning",
        pvc("claim", cls="fast"),
        None,
        [],
        {},
        bd.WaitForProvisioning("fast"),
    ),
    (
        "class already set is not defaulted",
        pvc("claim", cls="fast"),
        None,
        [],
        {"default_class": "standard"},
        bd.WaitForProvisioning("fast"),
    ),
    (
        "delayed binding: wait for first consumer",
        pvc("claim", cls="local"),
        None,
        [pv("vol", cls="local")],
        {"delay_binding": True},
        bd.WaitForFirstConsumer(
            bd.Event(
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )
        ),
    ),
    (
        "delayed binding with one pod waiting",
        pvc("claim", cls="local"),
        None,
        [],
        {"delay_binding": True, "waiting_pods": ["web-0"]},
        bd.WaitForFirstConsumer(
            bd.Event("Normal", "WaitForPodScheduled", "waiting for pod web-0 to be scheduled")
        ),
    ),
    (
        "delayed binding with two pods waiting",
        pvc("claim", cls="local"),
        None,
        [],
        {"delay_binding": True, "waiting_pods": ["a", "b"]},
        bd.WaitForFirstConsumer(
            bd.Event("Normal", "WaitForPodScheduled", "waiting for pods a,b to be scheduled")
        ),
    ),
    (
        "delayed binding, node selected: provisioning",
        pvc("claim", cls="local", annotations={matching.ANN_SELECTED_NODE: "n1"}),
        None,
        [],
        {"delay_binding": True},
        bd.WaitForProvisioning("local"),
    ),
    (
        "delayed binding still takes a pre-bound volume",
        pvc("claim", cls="local"),
        None,
        [pv("vol", cls="local", claim=ref_to("claim"))],
        {"delay_binding": True},
        bd.CompleteBindOnClaim("vol"),
    ),
    # -- unbound claim naming a volume
    (
        "named volume missing: Pending, no event",
        pvc("claim", volume_name="vol"),
        None,
        [],
        {},
        bd.MarkClaimPending(),
    ),
    (
        "named volume free and fitting: bind",
        pvc("claim", volume_name="vol"),
        pv("vol"),
        [],
        {},
        bd.BindVolumeToClaim("vol"),
    ),
    (
        "named volume free but too small: VolumeMismatch",
        pvc("claim", "5Gi", volume_name="vol"),
        pv("vol", "1Gi"),
        [],
        {},
        bd.MarkClaimPending(
            bd.Event(
                "Warning",
                "VolumeMismatch",
                'Cannot bind to requested volume "vol": requested PV is too small',
            )
        ),
    ),
    (
        "named volume being deleted: VolumeMismatch",
        pvc("claim", volume_name="vol"),
        pv("vol", deleting=True),
        [],
        {},
        bd.MarkClaimPending(
            bd.Event(
                "Warning",
                "VolumeMismatch",
                'Cannot bind to requested volume "vol": the volume is marked for deletion "vol"',
            )
        ),
    ),
    (
        "named volume of another class: VolumeMismatch",
        pvc("claim", volume_name="vol"),
        pv("vol", cls="gold"),
        [],
        {},
        bd.MarkClaimPending(
            bd.Event(
                "Warning",
                "VolumeMismatch",
                'Cannot bind to requested volume "vol": storageClassName does not match',
            )
        ),
    ),
    (
        "named volume may be in any phase",
        pvc("claim", volume_name="vol"),
        pv("vol", phase="Pending"),
        [],
        {},
        bd.BindVolumeToClaim("vol"),
    ),
    (
        "named volume already points at the claim: complete",
        pvc("claim", volume_name="vol"),
        pv("vol", claim=ref(CLAIM), phase="Bound"),
        [],
        {},
        bd.CompleteBindOnClaim("vol"),
    ),
    (
        "named volume bound elsewhere, user's choice: Pending with FailedBinding",
        pvc("claim", volume_name="vol"),
        pv("vol", claim=ref_to("other", uid="u2")),
        [],
        {},
        bd.MarkClaimPending(
            bd.Event("Warning", "FailedBinding", 'volume "vol" already bound to a different claim.')
        ),
    ),
    (
        "named volume bound elsewhere by the controller: conflict",
        pvc("claim", volume_name="vol", annotations={BOUND_BY: "yes"}),
        pv("vol", claim=ref_to("other", uid="u2")),
        [],
        {},
        bd.ReportBindingConflict(
            bd.Event(
                "Warning", "FailedBinding", 'volume "vol" already bound to a different claim.'
            ),
            'invalid binding of claim "default/claim" to volume "vol": '
            'volume already claimed by "default/other"',
        ),
    ),
    # -- bound claim (bind-completed set)
    (
        "bound claim lost its volumeName: Lost",
        bound_claim(volume=""),
        None,
        [],
        {},
        bd.MarkClaimLost(bd.Event("Warning", "ClaimLost", bd.MSG_CLAIM_LOST_REFERENCE)),
    ),
    (
        "bound claim's volume is gone: Lost",
        bound_claim(),
        None,
        [],
        {},
        bd.MarkClaimLost(bd.Event("Warning", "ClaimLost", bd.MSG_CLAIM_LOST_VOLUME)),
    ),
    (
        "already Lost: nothing, so the event is not repeated",
        bound_claim(phase="Lost"),
        None,
        [],
        {},
        bd.Nothing(),
    ),
    (
        "bound claim, volume came unbound: bind again",
        bound_claim(),
        pv("vol"),
        [],
        {},
        bd.BindVolumeToClaim("vol"),
    ),
    (
        "bound claim, volume bound to it, all done: nothing",
        bound_claim(),
        pv("vol", claim=ref(bound_claim()), phase="Bound"),
        [],
        {},
        bd.Nothing(),
    ),
    (
        "bound claim, volume phase not yet Bound: complete",
        bound_claim(),
        pv("vol", claim=ref(bound_claim()), phase="Available"),
        [],
        {},
        bd.CompleteBindOnClaim("vol"),
    ),
    (
        "bound claim, status not yet Bound: complete",
        bound_claim(phase="Pending"),
        pv("vol", claim=ref(bound_claim()), phase="Bound"),
        [],
        {},
        bd.CompleteBindOnClaim("vol"),
    ),
    (
        "bound claim, volume belongs to another claim: misbound",
        bound_claim(),
        pv("vol", claim=ref_to("claim", uid="another-uid"), phase="Bound"),
        [],
        {},
        bd.MarkClaimLost(bd.Event("Warning", "ClaimMisbound", bd.MSG_CLAIM_MISBOUND)),
    ),
]


@pytest.mark.parametrize(
    ("claim", "volume", "volumes", "kwargs", "expected"),
    [c[1:] for c in CLAIM_CASES],
    ids=[c[0] for c in CLAIM_CASES],
)
def test_decide_claim(
    claim: dict[str, Any],
    volume: dict[str, Any] | None,
    volumes: list[dict[str, Any]],
    kwargs: dict[str, Any],
    expected: bd.ClaimAction,
) -> None:
    index = matching.VolumeIndex(volumes + ([volume] if volume else []))
    assert bd.decide_claim(claim, volume, index, **kwargs) == expected


def test_kubernetes_event_texts() -> None:
    assert bd.MSG_NO_VOLUME_AND_NO_CLASS == (
        "no persistent volumes available for this claim and no storage class is set"
    )
    assert bd.MSG_CLAIM_LOST_VOLUME == (
        "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
    )
    assert bd.msg_volume_mode_on_claim("v") == (
        'Cannot bind PersistentVolume "v" to requested PersistentVolumeClaim due to '
        "incompatible volumeMode."
    )


# ---------------------------------------------------------------------------------------------
# decide_volume

ALIVE = pvc("claim", uid="uid-1")


def vol(**kwargs: Any) -> dict[str, Any]:
    return pv("vol", **kwargs)


VOLUME_CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, bd.VolumeAction]] = [
    ("unused and new: Available", vol(phase="Pending"), None, bd.MarkVolumeAvailable()),
    ("unused without status: Available", vol(phase=None), None, bd.MarkVolumeAvailable()),
    ("unused and Available: nothing", vol(), None, bd.Nothing()),
    (
        "unused and Released (claimRef removed by admin): Available",
        vol(phase="Released"),
        None,
        bd.MarkVolumeAvailable(),
    ),
    (
        "pre-bound by user: Available",
        vol(phase="Pending", claim=ref_to("claim")),
        None,
        bd.MarkVolumeAvailable(),
    ),
    (
        "pre-bound by user, already Available: nothing",
        vol(claim=ref_to("claim")),
        None,
        bd.Nothing(),
    ),
    ("claim gone: Released", vol(phase="Bound", claim=ref(ALIVE)), None, bd.MarkVolumeReleased()),
    (
        "claim recreated with a new uid: Released",
        vol(phase="Bound", claim=ref(ALIVE)),
        pvc("claim", uid="uid-2"),
        bd.MarkVolumeReleased(),
    ),
    (
        "Released, Retain: nothing",
        vol(phase="Released", claim=ref(ALIVE), policy="Retain"),
        None,
        bd.Nothing(),
    ),
    (
        "Released, no policy means Retain: nothing",
        vol(phase="Released", claim=ref(ALIVE)),
        None,
        bd.Nothing(),
    ),
    (
        "Released, Delete: reclaim",
        vol(phase="Released", claim=ref(ALIVE), policy="Delete"),
        None,
        bd.ReclaimVolume("Delete"),
    ),
    (
        "Failed, Delete: retry reclaim",
        vol(phase="Failed", claim=ref(ALIVE), policy="Delete"),
        None,
        bd.ReclaimVolume("Delete"),
    ),
    (
        "Failed stays Failed (not Released)",
        vol(phase="Failed", claim=ref(ALIVE), policy="Retain"),
        None,
        bd.Nothing(),
    ),
    (
        "Released, Recycle: reclaim",
        vol(phase="Released", claim=ref(ALIVE), policy="Recycle"),
        None,
        bd.ReclaimVolume("Recycle"),
    ),
    (
        "Released, unknown policy: Failed",
        vol(phase="Released", claim=ref(ALIVE), policy="Shred"),
        None,
        bd.MarkVolumeFailed(
            bd.Event(
                "Warning",
                "VolumeUnknownReclaimPolicy",
                "Volume has unrecognized PersistentVolumeReclaimPolicy",
            )
        ),
    ),
    (
        "Failed, unknown policy: nothing",
        vol(phase="Failed", claim=ref(ALIVE), policy="Shred"),
        None,
        bd.Nothing(),
    ),
    (
        "migrated volume: the CSI provisioner reclaims",
        vol(
            phase="Released",
            claim=ref(ALIVE),
            policy="Delete",
            annotations={bd.ANN_MIGRATED_TO: "ebs.csi.aws.com"},
        ),
        None,
        bd.Nothing(),
    ),
    (
        "claim Pending without volumeName: let syncClaim finish",
        vol(phase="Bound", claim=ref(ALIVE)),
        ALIVE,
        bd.SyncClaim("default/claim"),
    ),
    (
        "claim of another volumeMode: warn both",
        vol(phase="Bound", claim=ref(ALIVE), volume_mode="Block"),
        ALIVE,
        bd.ReportVolumeModeMismatch(
            bd.Event(
                "Warning",
                "VolumeMismatch",
                'Cannot bind PersistentVolume to requested PersistentVolumeClaim "claim" '
                "due to incompatible volumeMode.",
            ),
            bd.Event(
                "Warning",
                "VolumeMismatch",
                'Cannot bind PersistentVolume "vol" to requested PersistentVolumeClaim '
                "due to incompatible volumeMode.",
            ),
        ),
    ),
    (
        "all bound, phase not yet Bound: Bound",
        vol(phase="Available", claim=ref(ALIVE)),
        pvc("claim", uid="uid-1", volume_name="vol"),
        bd.MarkVolumeBound(),
    ),
    (
        "all bound: nothing",
        vol(phase="Bound", claim=ref(ALIVE)),
        pvc("claim", uid="uid-1", volume_name="vol"),
        bd.Nothing(),
    ),
    (
        "claim bound elsewhere, bound by us: unbind",
        vol(phase="Bound", claim=ref(ALIVE), annotations={BOUND_BY: "yes"}),
        pvc("claim", uid="uid-1", volume_name="other"),
        bd.UnbindVolume(),
    ),
    (
        "claim bound elsewhere, pre-bound by user: unbind (keeps the pre-binding)",
        vol(phase="Bound", claim=ref(ALIVE)),
        pvc("claim", uid="uid-1", volume_name="other"),
        bd.UnbindVolume(),
    ),
    (
        "claim bound elsewhere, provisioned for it with Delete: Released",
        vol(
            phase="Bound",
            claim=ref(ALIVE),
            policy="Delete",
            annotations={matching.ANN_DYNAMICALLY_PROVISIONED: "local"},
        ),
        pvc("claim", uid="uid-1", volume_name="other"),
        bd.MarkVolumeReleased(),
    ),
    (
        "claim bound elsewhere, provisioned with Retain: unbind",
        vol(
            phase="Bound",
            claim=ref(ALIVE),
            policy="Retain",
            annotations={matching.ANN_DYNAMICALLY_PROVISIONED: "local", BOUND_BY: "yes"},
        ),
        pvc("claim", uid="uid-1", volume_name="other"),
        bd.UnbindVolume(),
    ),
]


@pytest.mark.parametrize(
    ("volume", "claim", "expected"), [c[1:] for c in VOLUME_CASES], ids=[c[0] for c in VOLUME_CASES]
)
def test_decide_volume(
    volume: dict[str, Any], claim: dict[str, Any] | None, expected: bd.VolumeAction
) -> None:
    assert bd.decide_volume(volume, claim) == expected


# ---------------------------------------------------------------------------------------------
# The bind, write by write.


def apply(
    write: bd.Write, claim: dict[str, Any], volume: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    if write.kind == "PersistentVolume":
        return claim, write.obj
    return write.obj, volume


def run_bind(
    claim: dict[str, Any], volume: dict[str, Any]
) -> tuple[list[bd.Write], dict[str, Any], dict[str, Any]]:
    writes = []
    while (write := bd.next_bind_write(volume, claim)) is not None:
        writes.append(write)
        claim, volume = apply(write, claim, volume)
        assert len(writes) <= 4, "bind must converge in four writes"
    return writes, claim, volume


def test_bind_writes_in_kubernetes_order() -> None:
    claim = pvc("claim", "1Gi", (RWO,), uid="u-1")
    claim["metadata"]["resourceVersion"] = "42"
    volume = pv("vol", "2Gi", (RWO, RWX))
    writes, claim, volume = run_bind(claim, volume)
    assert [(w.kind, w.status) for w in writes] == [
        ("PersistentVolume", False),
        ("PersistentVolume", True),
        ("PersistentVolumeClaim", False),
        ("PersistentVolumeClaim", True),
    ]
    assert volume["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": "default",
        "name": "claim",
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert volume["metadata"]["annotations"] == {BOUND_BY: "yes"}
    assert volume["status"] == {"phase": "Bound"}
    assert claim["spec"]["volumeName"] == "vol"
    assert claim["metadata"]["annotations"] == {BOUND_BY: "yes", COMPLETED: "yes"}
    assert claim["status"] == {
        "phase": "Bound",
        "accessModes": [RWO, RWX],
        "capacity": {"storage": "2Gi"},
    }


def test_bind_does_not_touch_the_objects_it_was_given() -> None:
    claim, volume = pvc("claim"), pv("vol")
    before = (repr(claim), repr(volume))
    run_bind(claim, volume)
    assert (repr(claim), repr(volume)) == before


def test_prebound_volume_is_not_marked_bound_by_controller() -> None:
    claim = pvc("claim")
    _, claim, volume = run_bind(claim, pv("vol", claim=ref(claim, with_uid=False)))
    assert BOUND_BY not in volume["metadata"].get("annotations", {})
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]  # uid added


def test_claim_naming_its_volume_is_not_marked_bound_by_controller() -> None:
    _, claim, volume = run_bind(pvc("claim", volume_name="vol"), pv("vol"))
    assert claim["metadata"]["annotations"] == {COMPLETED: "yes"}
    assert volume["metadata"]["annotations"] == {BOUND_BY: "yes"}


def half_finished_states() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every state a bind can be interrupted in, starting from a fresh claim and volume."""
    claim, volume = pvc("claim", "1Gi"), pv("vol", "5Gi", (RWO,), phase="Pending")
    states = [("nothing written", claim, volume)]
    labels = ["PV claimRef written", "PV phase written", "PVC spec written", "PVC status written"]
    for label in labels:
        write = bd.next_bind_write(volume, claim)
        assert write is not None
        claim, volume = apply(write, claim, volume)
        states.append((label, claim, volume))
    return states


STATES = half_finished_states()


@pytest.mark.parametrize(("claim", "volume"), [s[1:] for s in STATES], ids=[s[0] for s in STATES])
def test_every_half_finished_bind_completes_from_both_sides(
    claim: dict[str, Any], volume: dict[str, Any]
) -> None:
    """Run the controller's loop (sync both objects until no write) from an interrupted bind."""
    final_claim, final_volume = STATES[-1][1], STATES[-1][2]
    index = matching.VolumeIndex([volume])
    for _ in range(10):
        wrote = False
        for action in (bd.decide_volume(volume, claim), _claim_action(claim, index)):
            target = _bind_target(action, index, volume)
            while (write := bd.next_write(action, claim, target)) is not None:
                claim, volume = apply(write, claim, volume)
                index.upsert(volume)
                target = volume
                wrote = True
        if not wrote:
            break
    assert claim == final_claim
    assert volume == final_volume


def _claim_action(claim: dict[str, Any], index: matching.VolumeIndex) -> bd.ClaimAction:
    name = matching.volume_name_of_claim(claim)
    return bd.decide_claim(claim, index.get(name) if name else None, index)


def _bind_target(
    action: Any, index: matching.VolumeIndex, volume: dict[str, Any]
) -> dict[str, Any]:
    if isinstance(action, (bd.BindVolumeToClaim, bd.CompleteBindOnClaim)):
        found = index.get(action.volume_name)
        assert found is not None
        return found
    return volume


CRASH_ACTIONS = [
    ("PV claimRef written", bd.CompleteBindOnClaim("vol"), bd.SyncClaim("default/claim")),
    ("PV phase written", bd.CompleteBindOnClaim("vol"), bd.SyncClaim("default/claim")),
    ("PVC spec written", bd.CompleteBindOnClaim("vol"), bd.Nothing()),
    ("PVC status written", bd.Nothing(), bd.Nothing()),
]


@pytest.mark.parametrize(
    ("label", "claim_action", "volume_action"), CRASH_ACTIONS, ids=[c[0] for c in CRASH_ACTIONS]
)
def test_half_finished_bind_observations(
    label: str, claim_action: bd.ClaimAction, volume_action: bd.VolumeAction
) -> None:
    _, claim, volume = next(s for s in STATES if s[0] == label)
    index = matching.VolumeIndex([volume])
    assert _claim_action(claim, index) == claim_action
    assert bd.decide_volume(volume, claim) == volume_action


def test_half_bound_volume_is_not_offered_to_another_claim() -> None:
    _, _, volume = STATES[1]  # claimRef written for "claim", nothing else
    other = pvc("other", "1Gi")
    assert bd.decide_claim(other, None, matching.VolumeIndex([volume])) == bd.MarkClaimPending(
        NO_CLASS_EVENT
    )


# ---------------------------------------------------------------------------------------------
# Object changes of the other steps.


def test_claim_status_capacity_copied_only_when_becoming_bound() -> None:
    volume = pv("vol", "5Gi", (RWO,))
    bound = pvc("claim", phase="Bound")
    bound["status"]["capacity"] = {"storage": "4Gi"}  # e.g. block device vs filesystem
    bound["status"]["accessModes"] = [RWO]
    assert bd.set_claim_status(bound, "Bound", volume) is None
    pending = bd.set_claim_status(pvc("claim"), "Bound", volume)
    assert pending is not None and pending["status"]["capacity"] == {"storage": "5Gi"}


def test_claim_status_keeps_equal_capacity_string() -> None:
    claim = pvc("claim")
    claim["status"]["capacity"] = {"storage": "1024Mi"}
    new = bd.set_claim_status(claim, "Bound", pv("vol", "1Gi"))
    assert new is not None and new["status"]["capacity"] == {"storage": "1024Mi"}


def test_claim_status_uses_pre_resize_capacity() -> None:
    volume = pv("vol", "10Gi", annotations={bd.ANN_PRE_RESIZE_CAPACITY: "5Gi"})
    new = bd.set_claim_status(pvc("claim"), "Bound", volume)
    assert new is not None and new["status"]["capacity"] == {"storage": "5Gi"}
    volume = pv("vol", "10Gi", annotations={bd.ANN_PRE_RESIZE_CAPACITY: "garbage"})
    new = bd.set_claim_status(pvc("claim"), "Bound", volume)
    assert new is not None and new["status"]["capacity"] == {"storage": "10Gi"}


def test_claim_status_takes_attributes_class_only_when_binding() -> None:
    new = bd.set_claim_status(pvc("claim", vac="gold"), "Bound", pv("vol", vac="gold"))
    assert new is not None and new["status"]["currentVolumeAttributesClassName"] == "gold"
    bound = pvc("claim", phase="Bound")
    bound["status"].update(accessModes=[RWO], currentVolumeAttributesClassName="silver")
    assert bd.set_claim_status(bound, "Bound", pv("vol", vac="gold")) is None


def test_claim_status_pending_clears_volume_fields() -> None:
    claim = pvc("claim", phase="Bound")
    claim["status"].update(
        accessModes=[RWO],
        capacity={"storage": "1Gi"},
        currentVolumeAttributesClassName="x",
        conditions=[{"type": "Resizing"}],
    )
    new = bd.set_claim_status(claim, "Lost", None)
    assert new is not None
    assert new["status"] == {"phase": "Lost", "conditions": [{"type": "Resizing"}]}
    assert bd.set_claim_status(new, "Lost", None) is None


def test_claim_status_needs_volume_capacity() -> None:
    with pytest.raises(bd.VolumeWithoutCapacity):
        bd.set_claim_status(pvc("claim"), "Bound", pv("vol", None))


def test_volume_phase_message() -> None:
    new = bd.set_volume_phase(pv("vol"), "Failed", "it broke")
    assert new is not None and new["status"] == {"phase": "Failed", "message": "it broke"}
    again = bd.set_volume_phase(new, "Available")
    assert again is not None and again["status"] == {"phase": "Available"}
    assert bd.set_volume_phase(again, "Available") is None


def test_unbind_controller_binding_then_available() -> None:
    volume = pv("vol", claim=ref(ALIVE), phase="Bound", annotations={BOUND_BY: "yes", "keep": "me"})
    write = bd.next_write(bd.UnbindVolume(), None, volume)
    assert write is not None and not write.status
    assert "claimRef" not in write.obj["spec"]
    assert write.obj["metadata"]["annotations"] == {"keep": "me"}
    phase = bd.next_write(bd.UnbindVolume(), None, write.obj)
    assert phase is not None and phase.status and phase.obj["status"]["phase"] == "Available"
    assert bd.next_write(bd.UnbindVolume(), None, phase.obj) is None


def test_unbind_user_prebinding_keeps_claim_ref_without_uid() -> None:
    volume = pv("vol", claim=ref(ALIVE), phase="Bound")
    write = bd.next_write(bd.UnbindVolume(), None, volume)
    assert write is not None
    assert write.obj["spec"]["claimRef"] == ref(ALIVE, with_uid=False)
    assert "annotations" not in write.obj["metadata"]


STATUS_WRITES = [
    (bd.MarkClaimPending(), "Pending"),
    (bd.MarkClaimLost(bd.Event("Warning", "ClaimLost", "x")), "Lost"),
    (bd.WaitForFirstConsumer(bd.Event("Normal", "WaitForFirstConsumer", "x")), "Pending"),
]


@pytest.mark.parametrize(("action", "phase"), STATUS_WRITES)
def test_claim_phase_writes(action: bd.ClaimAction, phase: str) -> None:
    write = bd.next_write(action, pvc("claim", phase=None), None)
    assert write is not None and write.status and write.obj["status"] == {"phase": phase}


def test_assign_default_class_write() -> None:
    write = bd.next_write(bd.AssignDefaultStorageClass("standard"), pvc("claim"), None)
    assert write is not None and not write.status
    assert write.obj["spec"]["storageClassName"] == "standard"
    assert bd.next_write(bd.AssignDefaultStorageClass("standard"), write.obj, None) is None


@pytest.mark.parametrize(
    "action",
    [
        bd.Nothing(),
        bd.SyncClaim("a/b"),
        bd.ReclaimVolume("Delete"),
        bd.WaitForProvisioning("x"),
    ],
)
def test_hand_offs_write_nothing(action: Any) -> None:
    assert bd.next_write(action, pvc("claim"), pv("vol", phase="Pending")) is None


DELAY_MODE_CASES = [
    ("no class", pvc("c"), {"volumeBindingMode": "WaitForFirstConsumer"}, False),
    ("class not found", pvc("c", cls="x"), None, False),
    ("immediate", pvc("c", cls="x"), {"volumeBindingMode": "Immediate"}, False),
    ("wait", pvc("c", cls="x"), {"volumeBindingMode": "WaitForFirstConsumer"}, True),
]


@pytest.mark.parametrize(
    ("claim", "cls", "expected"),
    [c[1:] for c in DELAY_MODE_CASES],
    ids=[c[0] for c in DELAY_MODE_CASES],
)
def test_is_delay_binding_mode(
    claim: dict[str, Any], cls: dict[str, Any] | None, expected: bool
) -> None:
    assert bd.is_delay_binding_mode(claim, cls) is expected


def test_delay_binding_mode_unset_is_an_error() -> None:
    with pytest.raises(bd.MissingBindingMode, match='StorageClass "x"'):
        bd.is_delay_binding_mode(pvc("c", cls="x"), {"metadata": {"name": "x"}})
