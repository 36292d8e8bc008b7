"""The capacity publisher's pure parts: which objects should exist and what they say."""

from __future__ import annotations

from typing import Any

import pytest

from csi_like import local, nfs
from storage import capacity

Obj = dict[str, Any]
LOCAL, NFS = "storagelab.io/local", "storagelab.io/nfs"


def sc(name: str, provisioner: str = LOCAL, mode: str = "WaitForFirstConsumer") -> Obj:
    return {"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode}


def test_which_drivers_report_capacity_per_node() -> None:
    assert capacity.reports_capacity(local.LocalDriver(local.LocalConfig({"*": ("/srv",)})))
    # nfs answers GetCapacity but its volumes have no topology: one export, every node.
    assert not capacity.reports_capacity(nfs.NfsDriver())


def test_csi_driver_objects() -> None:
    obj = capacity.csi_driver_object(LOCAL, local.LocalDriver(local.LocalConfig({})))
    assert obj == {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                   "metadata": {"name": "local.storagelab.io", "labels": {
                       "app.kubernetes.io/managed-by": "storagelab-controller-manager"}},
                   "spec": {"attachRequired": False, "podInfoOnMount": False,
                            "storageCapacity": True, "volumeLifecycleModes": ["Persistent"]}}
    other = capacity.csi_driver_object(NFS, nfs.NfsDriver())
    assert (other["metadata"]["name"], other["spec"]["storageCapacity"]) == \
        ("nfs.storagelab.io", False)


def test_desired_items_wait_for_first_consumer_classes_times_served_nodes() -> None:
    served = {LOCAL: capacity.local_nodes({"node-a": ("/a",), "node-b": ("/b",)})}
    classes = [sc("fast"), sc("slow"), sc("now", mode="Immediate"), sc("shared", NFS),
               sc("manual", "kubernetes.io/no-provisioner")]
    got = capacity.desired_items(classes, ["node-a", "node-b", "node-c"], served)
    assert sorted(got) == [capacity.Item(c, n) for c in ("fast", "slow")
                           for n in ("node-a", "node-b")]


def test_star_serves_every_node() -> None:
    served = {LOCAL: capacity.local_nodes({"*": ("/srv",)})}
    assert capacity.desired_items([sc("fast")], ["x", "y"], served) == {
        capacity.Item("fast", "x"), capacity.Item("fast", "y")}


@pytest.mark.parametrize("topology, node", [
    ({"matchLabels": {"kubernetes.io/hostname": "node-a"}}, "node-a"),
    ({"matchLabels": {"kubernetes.io/hostname": "node-a", "zone": "z"}}, ""),
    ({"matchLabels": {"kubernetes.io/hostname": "node-a"},
      "matchExpressions": [{"key": "zone", "operator": "Exists"}]}, ""),
    (None, ""),
])
def test_item_of(topology: Obj | None, node: str) -> None:
    obj: Obj = {"storageClassName": "fast"}
    if topology is not None:
        obj["nodeTopology"] = topology
    assert capacity.item_of(obj) == capacity.Item("fast", node)


def test_names_are_deterministic_and_distinct() -> None:
    a = capacity.object_name("local.storagelab.io", capacity.Item("fast", "node-a"))
    assert a == capacity.object_name("local.storagelab.io", capacity.Item("fast", "node-a"))
    assert a.startswith("csisc-") and len(a) == len("csisc-") + 12
    others = {capacity.object_name("local.storagelab.io", capacity.Item("fast", "node-b")),
              capacity.object_name("local.storagelab.io", capacity.Item("fas", "tnode-a")),
              capacity.object_name("x.storagelab.io", capacity.Item("fast", "node-a"))}
    assert a not in others and len(others) == 3


def test_capacity_object() -> None:
    item = capacity.Item("fast", "node-a")
    obj = capacity.capacity_object(item, "local.storagelab.io", "kube-system", 16 * 1024**2)
    assert obj == {
        "apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
        "metadata": {"name": capacity.object_name("local.storagelab.io", item),
                     "namespace": "kube-system",
                     "labels": {"csi.storage.k8s.io/drivername": "local.storagelab.io",
                                "csi.storage.k8s.io/managed-by": "external-provisioner"}},
        "storageClassName": "fast",
        "nodeTopology": {"matchLabels": {"kubernetes.io/hostname": "node-a"}},
        "capacity": "16Mi"}
    assert capacity.item_of(obj) == item
    # Quantity's BinarySI canonical form, as external-provisioner's NewQuantity prints it:
    # no multiple of 1024 stays a plain number; below 1024 it falls back to decimal.
    assert capacity.capacity_object(item, "d", "ns", 445199919616)["capacity"] == \
        "445199919616"
    assert capacity.capacity_object(item, "d", "ns", 1000)["capacity"] == "1k"


def test_same_capacity_compares_amounts() -> None:
    assert capacity.same_capacity("1Gi", "1024Mi")
    assert not capacity.same_capacity("1Gi", "1G")
    assert not capacity.same_capacity(None, "1Gi")


def test_volume_nodes() -> None:
    pv = {"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                               "values": ["node-a"]},
                              {"key": "zone", "operator": "In", "values": ["z"]}]},
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "NotIn",
                               "values": ["node-b"]}]}]}}}}
    assert capacity.volume_nodes(pv) == {"node-a"}
    assert capacity.volume_nodes({"spec": {}}) == set()


def test_item_keys_round_trip() -> None:
    item = capacity.Item("fast.example.com", "node-a.example.com")
    assert capacity.Item.from_key(item.key) == item
