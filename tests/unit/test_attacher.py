"""The attacher's decisions (external-attacher's csiHandler, one step at a time) and its
finalizer name (external-attacher's GetFinalizerName)."""

from __future__ import annotations

from typing import Any

import pytest

from storage import attacher

Obj = dict[str, Any]
NFS = "nfs.storagelab.io"
OURS = {NFS: attacher.NoAttach()}
FINALIZER = "external-attacher/nfs-storagelab-io"


@pytest.mark.parametrize(("driver", "finalizer"), [
    ("nfs.storagelab.io", "external-attacher/nfs-storagelab-io"),
    ("example.com/csi", "external-attacher/example-com-csi"),
    ("ebs.csi.aws.com", "external-attacher/ebs-csi-aws-com"),
    ("Odd_Name.", "external-attacher/Odd-Name-X"),  # never ends with "-"
])
def test_finalizer_name(driver: str, finalizer: str) -> None:
    assert attacher.finalizer_name(driver) == finalizer


def va(driver: str = NFS, finalizers: tuple[str, ...] = (), deleting: bool = False,
       **status: Any) -> Obj:
    meta: Obj = {"name": "csi-x", "finalizers": list(finalizers)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"attacher": driver, "nodeName": "n1",
                                       "source": {"persistentVolumeName": "pv"}},
            "status": {"attached": False, **status}}


@pytest.mark.parametrize(("obj", "action"), [
    (va("other.example.com"), attacher.NONE),  # another attacher's
    (va(), attacher.ADD_FINALIZER),  # first the finalizer, so a delete waits for detach
    (va(finalizers=(FINALIZER,)), attacher.ATTACH),
    (va(finalizers=(FINALIZER,), attached=True), attacher.NONE),
    (va(finalizers=(FINALIZER,), attached=True, deleting=True), attacher.DETACH),
    (va(finalizers=(FINALIZER,), deleting=True), attacher.REMOVE_FINALIZER),
    (va(finalizers=("someone/else",), deleting=True), attacher.NONE),
    (va("other.example.com", finalizers=(FINALIZER,), deleting=True), attacher.NONE),
])
def test_next_action(obj: Obj, action: attacher.Action) -> None:
    assert attacher.next_action(obj, OURS) == action


def test_no_attach_publishes_nothing() -> None:
    assert dict(attacher.NoAttach().publish("h", "n1", False)) == {}
