"""The attach/detach controller's decisions, as tables: desired vs actual state, single-node
access modes, and the Multi-Attach messages of Kubernetes' reportMultiAttachError."""

from __future__ import annotations

from typing import Any

import pytest

from csi_like import nfs
from storage import attachdetach as ad
from storage import capacity, provisioner

Obj = dict[str, Any]
NFS = "nfs.storagelab.io"
MANAGED = {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}


def node(name: str, managed: bool = True, attached: tuple[str, ...] = ()) -> Obj:
    return {"metadata": {"name": name, "annotations": MANAGED if managed else {}},
            "status": {"volumesAttached": [{"name": v, "devicePath": ""} for v in attached]}}


def pv(name: str, modes: tuple[str, ...] = ("ReadWriteOnce",), driver: str = NFS) -> Obj:
    return {"metadata": {"name": name},
            "spec": {"accessModes": list(modes), "csi": {"driver": driver, "volumeHandle": name}}}


def claim(ns: str, name: str, volume: str) -> Obj:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"volumeName": volume},
            "status": {"phase": "Bound"}}


def pod(ns: str, name: str, on: str, *claims: str, **status: Any) -> Obj:
    meta: Obj = {"namespace": ns, "name": name}
    if status.pop("deleted", False):
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": on, "volumes": [
                {"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]},
            "status": status}


def driver(name: str = NFS, attach: bool | None = True) -> Obj:
    spec = {} if attach is None else {"attachRequired": attach}
    return {"metadata": {"name": name}, "spec": spec}


def vol(name: str, driver_name: str = NFS) -> str:
    return ad.unique_volume_name(driver_name, name)


def world(pods: list[Obj], nodes: list[Obj], pvs: list[Obj], claims: list[Obj],
          drivers: list[Obj] | None = None) -> dict[tuple[str, str], ad.VolumeToAttach]:
    return ad.desired_state(
        pods, {n["metadata"]["name"]: n for n in nodes},
        {f"{c['metadata']['namespace']}/{c['metadata']['name']}": c for c in claims},
        {v["metadata"]["name"]: v for v in pvs},
        {d["metadata"]["name"]: d for d in (drivers if drivers is not None else [driver()])})


def test_unique_name_is_the_csi_plugins() -> None:
    assert ad.unique_volume_name(NFS, "h1") == "kubernetes.io/csi/nfs.storagelab.io^h1"


@pytest.mark.parametrize(("modes", "allowed"), [
    ((), True),  # unknown: let the attacher decide
    (("ReadWriteOnce",), False),
    (("ReadWriteOncePod",), False),
    (("ReadWriteOnce", "ReadOnlyMany"), True),
    (("ReadWriteMany",), True),
])
def test_multi_attach_allowed(modes: tuple[str, ...], allowed: bool) -> None:
    assert ad.multi_attach_allowed(pv("v", modes)) is allowed


@pytest.mark.parametrize(("the_pod", "terminated"), [
    (pod("ns", "p", "n1"), False),
    (pod("ns", "p", "n1", phase="Succeeded"), True),
    (pod("ns", "p", "n1", phase="Failed"), True),
    (pod("ns", "p", "n1", deleted=True), True),  # deleted, nothing ever ran
    (pod("ns", "p", "n1", deleted=True, containerStatuses=[{"state": {"running": {}}}]), False),
    (pod("ns", "p", "n1", deleted=True,
         containerStatuses=[{"state": {"terminated": {"exitCode": 0}}}]), True),
    (pod("ns", "p", "n1", deleted=True, containerStatuses=[{"state": {"waiting": {}}}]), True),
])
def test_pod_terminated(the_pod: Obj, terminated: bool) -> None:
    assert ad.pod_terminated(the_pod) is terminated


@pytest.mark.parametrize(("drivers", "wanted"), [
    ([driver(attach=True)], True),
    ([driver(attach=None)], True),  # the API's default
    ([driver(attach=False)], False),
    ([], False),  # no CSIDriver object: nothing attaches here
])
def test_desired_only_for_drivers_that_attach(drivers: list[Obj], wanted: bool) -> None:
    got = world([pod("ns", "a", "n1", "c")], [node("n1")], [pv("v")],
                [claim("ns", "c", "v")], drivers)
    assert bool(got) is wanted


def test_desired_skips_unmanaged_unscheduled_terminated_and_unbound() -> None:
    pods = [pod("ns", "unmanaged", "n9", "c"), pod("ns", "unscheduled", "", "c"),
            pod("ns", "done", "n1", "c", phase="Succeeded"), pod("ns", "unbound", "n1", "x"),
            pod("ns", "missing", "n1", "nope"), pod("ns", "pending", "n1", "p")]
    claims = [claim("ns", "c", "v"), {"metadata": {"namespace": "ns", "name": "x"}, "spec": {}},
              {**claim("ns", "p", "v"), "status": {"phase": "Pending"}}]
    assert world(pods, [node("n1"), node("n9", managed=False)], [pv("v")], claims) == {}


def test_two_pods_same_node_are_one_attachment() -> None:
    got = world([pod("ns", "b", "n1", "c"), pod("ns", "a", "n1", "c")], [node("n1")],
                [pv("v")], [claim("ns", "c", "v")])
    assert got == {(vol("v"), "n1"): ad.VolumeToAttach(
        vol("v"), "v", "n1", False, (ad.PodRef("ns", "a"), ad.PodRef("ns", "b")))}


def want(volume: str, on: str, multi: bool = False, *pods: str) -> ad.VolumeToAttach:
    return ad.VolumeToAttach(vol(volume), volume, on, multi,
                             tuple(ad.PodRef("ns", p) for p in pods))


def desired_of(*items: ad.VolumeToAttach) -> dict[tuple[str, str], ad.VolumeToAttach]:
    return {(i.volume, i.node): i for i in items}


@pytest.mark.parametrize(("desired", "actual", "expected"), [
    # nothing attached: attach
    ([want("v", "n1")], {}, ad.Plan(attach=(want("v", "n1"),))),
    # already attached where wanted: nothing to do
    ([want("v", "n1")], {vol("v"): {"n1"}}, ad.Plan()),
    # no pod wants it any more: detach
    ([], {vol("v"): {"n1"}}, ad.Plan(detach=((vol("v"), "n1"),))),
    # RWO attached to n1 and wanted on n2 too: n2 waits
    ([want("v", "n1"), want("v", "n2")], {vol("v"): {"n1"}},
     ad.Plan(blocked=((want("v", "n2"), ("n1",)),))),
    # RWO wanted on two nodes, attached nowhere: the first (by node name) wins
    ([want("v", "n2"), want("v", "n1")], {},
     ad.Plan(attach=(want("v", "n1"),), blocked=((want("v", "n2"), ("n1",)),))),
    # RWO moved: detach from n1, then attach to n2 in the same pass
    ([want("v", "n2")], {vol("v"): {"n1"}},
     ad.Plan(detach=((vol("v"), "n1"),), attach=(want("v", "n2"),))),
    # RWX on two nodes: both attached
    ([want("v", "n1", True), want("v", "n2", True)], {vol("v"): {"n1"}},
     ad.Plan(attach=(want("v", "n2", True),))),
])
def test_plan(desired: list[ad.VolumeToAttach], actual: dict[str, set[str]],
              expected: ad.Plan) -> None:
    assert ad.plan(desired_of(*desired), actual) == expected


def test_actual_state_reads_only_csi_entries() -> None:
    nodes = [node("n1", attached=(vol("v"), "kubernetes.io/aws-ebs/x")),
             node("n2", attached=(vol("v"),))]
    assert ad.actual_state(nodes) == {vol("v"): {"n1", "n2"}}


def refs(*names: str) -> tuple[ad.PodRef, ...]:
    return tuple(ad.PodRef(*n.split("/")) for n in names)


@pytest.mark.parametrize(("on_other_nodes", "expected"), [
    ({}, ("Volume is already exclusively attached to one node and can't be attached to "
         "another")),
    ({"n2": refs("ns1/pod2")}, "Volume is already used by pod(s) pod2"),
    ({"n2": refs("ns2/pod2")}, "Volume is already used by 1 pod(s) in different namespaces"),
    ({"n2": refs("ns2/pod2"), "n3": refs("ns1/pod3")},
     "Volume is already used by pod(s) pod3 and 1 pod(s) in different namespaces"),
    ({"n2": refs("ns1/a", "ns1/b")}, "Volume is already used by pod(s) a, b"),
])
def test_multi_attach_messages(on_other_nodes: dict[str, tuple[ad.PodRef, ...]],
                               expected: str) -> None:
    """Kubernetes' Test_ReportMultiAttachError cases, for pod ns1/pod1 waiting on n1."""
    waiting = ad.VolumeToAttach(vol("volume-name"), "volume-name", "n1", False,
                                refs("ns1/pod1"))
    desired = {(vol("volume-name"), n): ad.VolumeToAttach(vol("volume-name"), "volume-name",
                                                          n, False, p)
               for n, p in on_other_nodes.items()}
    attached_to = sorted(on_other_nodes) or ["n2"]
    got = ad.multi_attach_messages(waiting, attached_to, desired)
    assert got == [(ad.PodRef("ns1", "pod1"),
                    f'Multi-Attach error for volume "volume-name" {expected}')]


def test_each_waiting_pod_sees_only_its_namespace() -> None:
    waiting = ad.VolumeToAttach(vol("v"), "v", "n1", False, refs("ns1/w1", "ns2/w2"))
    desired = {(vol("v"), "n2"): ad.VolumeToAttach(vol("v"), "v", "n2", False, refs("ns1/a"))}
    assert [m for _, m in ad.multi_attach_messages(waiting, ["n2"], desired)] == [
        'Multi-Attach error for volume "v" Volume is already used by pod(s) a',
        ('Multi-Attach error for volume "v" Volume is already used by 1 pod(s) in different '
        'namespaces')]


def test_attached_after_keeps_others_and_adds_once() -> None:
    n = node("n1", attached=("kubernetes.io/other", vol("old")))
    assert ad.attached_after(n, [vol("old")], [vol("new"), vol("new")]) == [
        {"name": "kubernetes.io/other", "devicePath": ""},
        {"name": vol("new"), "devicePath": ""}]


def test_nfs_csi_driver_requires_attach_local_does_not() -> None:
    nfs_obj = capacity.csi_driver_object(provisioner.NFS, nfs.NfsDriver())
    assert nfs_obj["spec"]["attachRequired"] is True
    assert nfs_obj["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "storagelab-controller-manager"}


@pytest.mark.parametrize(("labels", "spec", "outdated"), [
    ({"app.kubernetes.io/managed-by": "storagelab-controller-manager"},
     {"attachRequired": False}, True),
    ({"app.kubernetes.io/managed-by": "storagelab-controller-manager"},
     {"attachRequired": True, "podInfoOnMount": False, "storageCapacity": False,
      "volumeLifecycleModes": ["Persistent"]}, False),
    ({}, {"attachRequired": False}, False),  # not ours: the administrator's
])
def test_outdated_csi_driver(labels: dict[str, str], spec: Obj, outdated: bool) -> None:
    wanted = capacity.csi_driver_object(provisioner.NFS, nfs.NfsDriver())
    existing = {"metadata": {"name": NFS, "labels": labels}, "spec": spec}
    assert capacity.outdated_csi_driver(existing, wanted) is outdated


# ----------------------------------------------------------------------------- the kubelet side

class Objects:
    """An ObjectSource over a dict keyed (kind, namespace, name)."""

    def __init__(self, objects: dict[tuple[str, str, str], Obj]) -> None:
        self.objects = objects

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((kind, namespace, name))


KUBELET_POD = {"metadata": {"uid": "u1"}, "spec": {"nodeName": "n1"}}


@pytest.mark.parametrize(("managed", "drivers", "attached_here", "waits"), [
    (True, [driver(attach=True)], (), True),
    (True, [driver(attach=None)], (), True),  # attachRequired defaults to true
    (True, [driver(attach=True)], (vol("v"),), False),
    (True, [driver(attach=True)], (vol("other"),), True),
    (True, [driver(attach=False)], (), False),
    (True, [], (), False),  # no CSIDriver object
    (False, [driver(attach=True)], (), False),  # the kubelet attaches (not managed)
])
def test_kubelet_waits_for_attach(tmp_path: Any, managed: bool, drivers: list[Obj],
                                  attached_here: tuple[str, ...], waits: bool) -> None:
    from kubelet import volumes
    objects = {("nodes", "", "n1"): node("n1", managed, attached_here)}
    objects |= {("csidrivers", "", d["metadata"]["name"]): d for d in drivers}
    manager = volumes.VolumeManager(tmp_path, Objects(objects))
    if waits:
        with pytest.raises(volumes.VolumePending):
            manager.wait_attached(KUBELET_POD, pv("v"))
    else:
        manager.wait_attached(KUBELET_POD, pv("v"))


# ----------------------------------------------------------------------------- VolumeAttachments

def test_attachment_name_is_the_csi_attachers() -> None:
    # getAttachmentName: sha256 of volumeHandle, driver and node name, in that order.
    import hashlib
    digest = hashlib.sha256(b"vol-1" + NFS.encode() + b"node-1").hexdigest()
    assert ad.attachment_name("vol-1", NFS, "node-1") == f"csi-{digest}"
    assert ad.attachment_name_of(vol("vol-1"), "node-1") == f"csi-{digest}"
    assert len(ad.attachment_name("h", NFS, "n")) == 68  # "csi-" + 64 hex digits


def test_volume_attachment_object() -> None:
    va = ad.volume_attachment(want("v", "n1"))
    assert va == {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                  "metadata": {"name": ad.attachment_name("v", NFS, "n1")},
                  "spec": {"attacher": NFS, "nodeName": "n1",
                           "source": {"persistentVolumeName": "v"}}}


def va(volume: str, on: str, attached: bool = False, deleting: bool = False) -> Obj:
    meta: Obj = {"name": ad.attachment_name(volume, NFS, on)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"attacher": NFS, "nodeName": on,
                                       "source": {"persistentVolumeName": volume}},
            "status": {"attached": attached}}


def test_attachments_by_pair_skips_vas_of_missing_or_other_pvs() -> None:
    pvs = {"v": pv("v")}
    got = ad.attachments_by_pair([va("v", "n1"), va("gone", "n1")], pvs)
    assert list(got) == [(vol("v"), "n1")]


def pairs(*items: Obj) -> dict[tuple[str, str], Obj]:
    return {(vol(i["spec"]["source"]["persistentVolumeName"]), i["spec"]["nodeName"]): i
            for i in items}


def run_steps(desired: list[ad.VolumeToAttach], recorded: dict[str, set[str]],
              attachments: dict[tuple[str, str], Obj]) -> ad.Steps:
    wanted = desired_of(*desired)
    todo = ad.plan(wanted, ad.confirmed(recorded, attachments))
    return ad.steps(todo, wanted, recorded, attachments)


@pytest.mark.parametrize(("desired", "recorded", "attachments", "expected"), [
    # wanted, nothing yet: create its VolumeAttachment, record nothing
    ([want("v", "n1")], {}, pairs(), ad.Steps(create=(want("v", "n1"),))),
    # its attacher is at work: wait
    ([want("v", "n1")], {}, pairs(va("v", "n1")), ad.Steps()),
    # attached by its attacher: record it on the Node
    ([want("v", "n1")], {}, pairs(va("v", "n1", True)),
     ad.Steps(record=((vol("v"), "n1"),))),
    # attached and recorded: nothing to do
    ([want("v", "n1")], {vol("v"): {"n1"}}, pairs(va("v", "n1", True)), ad.Steps()),
    # no pod wants it: drop it from the Node and delete the VolumeAttachment
    ([], {vol("v"): {"n1"}}, pairs(va("v", "n1", True)),
     ad.Steps(delete=(ad.attachment_name("v", NFS, "n1"),), unrecord=((vol("v"), "n1"),))),
    # already being deleted: not deleted twice
    ([], {}, pairs(va("v", "n1", True, deleting=True)), ad.Steps()),
    # an attach in progress nobody wants any more: deleted too
    ([], {}, pairs(va("v", "n1")), ad.Steps(delete=(ad.attachment_name("v", NFS, "n1"),))),
    # RWO moving to n2: n1 let go now, n2 waits until n1's VolumeAttachment is gone
    ([want("v", "n2")], {vol("v"): {"n1"}}, pairs(va("v", "n1", True)),
     ad.Steps(delete=(ad.attachment_name("v", NFS, "n1"),), unrecord=((vol("v"), "n1"),))),
    # ... and once it is gone, n2 gets its own
    ([want("v", "n2")], {}, pairs(), ad.Steps(create=(want("v", "n2"),))),
    # RWX: a second node does not wait for the first
    ([want("v", "n1", True), want("v", "n2", True)], {}, pairs(va("v", "n1", True)),
     ad.Steps(create=(want("v", "n2", True),), record=((vol("v"), "n1"),))),
    # recorded on the Node from before VolumeAttachments: it gets one
    ([want("v", "n1")], {vol("v"): {"n1"}}, pairs(), ad.Steps(create=(want("v", "n1"),))),
])
def test_steps(desired: list[ad.VolumeToAttach], recorded: dict[str, set[str]],
               attachments: dict[tuple[str, str], Obj], expected: ad.Steps) -> None:
    assert run_steps(desired, recorded, attachments) == expected


def test_attached_va_elsewhere_blocks_with_multi_attach() -> None:
    """A VolumeAttachment its attacher says attached counts for Multi-Attach even before
    the Node records it."""
    wanted = desired_of(want("v", "n1", False, "a"), want("v", "n2", False, "b"))
    todo = ad.plan(wanted, ad.confirmed({}, pairs(va("v", "n1", True))))
    assert todo.blocked == ((want("v", "n2", False, "b"), ("n1",)),)
