"""CSIDriver and CSIStorageCapacity in the apiserver: validation, quantities, Table printing.

Field paths and messages are Kubernetes' (pkg/apis/storage/validation, 1.32), printer columns
those of pkg/printers/internalversion.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from apiserver import printers, validation
from apiserver.defaults import apply_defaults
from apiserver.validation import DecodeError
from tests.unit.test_validation import SUBDOMAIN_MSG

Obj = dict[str, Any]
NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def driver(**spec: Any) -> Obj:
    obj: Obj = {"metadata": {"name": "local.storagelab.io"}, "spec": spec}
    apply_defaults("CSIDriver", obj)
    return obj


def capacity(**fields: Any) -> Obj:
    obj: Obj = {"metadata": {"name": "csisc-1", "namespace": "kube-system"},
                "storageClassName": "standard",
                "nodeTopology": {"matchLabels": {"kubernetes.io/hostname": "node-a"}},
                "capacity": "1Gi"}
    obj.update(fields)
    return {k: v for k, v in obj.items() if v is not None}


def fields(causes: list[Any]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


# --- CSIDriver ----------------------------------------------------------------------------

def test_csi_driver_defaults() -> None:
    assert driver()["spec"] == {
        "attachRequired": True, "podInfoOnMount": False, "storageCapacity": False,
        "requiresRepublish": False, "seLinuxMount": False,
        "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"]}


@pytest.mark.parametrize("obj, expected", [
    (driver(), []),
    (driver(storageCapacity=True, attachRequired=False), []),
    # The name is any DNS subdomain, longer than a PV's 63-character driver field allows.
    ({**driver(), "metadata": {"name": "a" * 64 + ".example.com"}}, []),
    ({**driver(), "metadata": {"name": "Local_Driver"}},
     [("metadata.name", f'Invalid value: "Local_Driver": {SUBDOMAIN_MSG}')]),
    (driver(fsGroupPolicy="Always"),
     [("spec.fsGroupPolicy", ('Unsupported value: "Always": supported values: "File", '
                             '"None", "ReadWriteOnceWithFSType"'))]),
    (driver(volumeLifecycleModes=["Persistent", "Forever"]),
     [("spec.volumeLifecycleModes", ('Unsupported value: "Forever": supported values: '
                                    '"Persistent", "Ephemeral"'))]),
    (driver(tokenRequests=[{"audience": "a", "expirationSeconds": 599},
                           {"audience": "b", "expirationSeconds": 2**32 + 1},
                           {"audience": "a"}]),
     [("spec.tokenRequests[0].expirationSeconds",
       "Invalid value: 599: may not specify a duration less than 10 minutes"),
      ("spec.tokenRequests[1].expirationSeconds",
       "Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"),
      ("spec.tokenRequests[2].audience", 'Duplicate value: "a"')]),
])
def test_validate_csi_driver(obj: Obj, expected: list[tuple[str, str]]) -> None:
    assert fields(validation.validate("CSIDriver", obj)) == expected


def test_csi_driver_required_fields_after_a_null() -> None:
    obj = {"metadata": {"name": "d"}, "spec": {"attachRequired": None}}
    assert fields(validation.validate("CSIDriver", obj)) == [
        ("spec.attachedRequired", "Required value"), ("spec.podInfoOnMount", "Required value"),
        ("spec.storageCapacity", "Required value"), ("spec.seLinuxMount", "Required value")]


@pytest.mark.parametrize("change, expected", [
    # Mutable since Kubernetes 1.28: podInfoOnMount, fsGroupPolicy; always: storageCapacity.
    ({"podInfoOnMount": True, "fsGroupPolicy": "File", "storageCapacity": True}, []),
    ({"attachRequired": False},
     [("spec.attachedRequired", "Invalid value: false: field is immutable")]),
    ({"volumeLifecycleModes": ["Persistent", "Ephemeral"]},
     [("spec.volumeLifecycleModes",
       'Invalid value: ["Persistent","Ephemeral"]: field is immutable')]),
])
def test_validate_csi_driver_update(change: Obj, expected: list[tuple[str, str]]) -> None:
    old = driver()
    old["metadata"]["resourceVersion"] = "1"
    new = copy.deepcopy(old)
    new["spec"].update(change)
    assert fields(validation.validate_update("CSIDriver", new, old)) == expected


# --- CSIStorageCapacity -------------------------------------------------------------------

@pytest.mark.parametrize("obj, expected", [
    (capacity(), []),
    (capacity(capacity=None, nodeTopology=None), []),  # both optional
    (capacity(capacity="0", maximumVolumeSize="-1"), []),  # maximumVolumeSize is unchecked
    (capacity(storageClassName=None),
     [("storageClassName", f'Invalid value: "": {SUBDOMAIN_MSG}')]),
    (capacity(storageClassName="Fast_SSD"),
     [("storageClassName", f'Invalid value: "Fast_SSD": {SUBDOMAIN_MSG}')]),
    (capacity(capacity="-1Gi"),
     [("capacity", 'Invalid value: "-1Gi": must be greater than or equal to 0')]),
    (capacity(nodeTopology={"matchExpressions": [{"key": "zone", "operator": "Near"}]}),
     [("nodeTopology.matchExpressions[0].operator",
       'Invalid value: "Near": not a valid selector operator')]),
    (capacity(nodeTopology={"matchExpressions": [{"key": "zone", "operator": "In"}]}),
     [("nodeTopology.matchExpressions[0].values",
       "Required value: must be specified when `operator` is 'In' or 'NotIn'")]),
    ({**capacity(), "metadata": {"name": "csisc-1"}},
     [("metadata.namespace", "Required value")]),
])
def test_validate_csi_storage_capacity(obj: Obj, expected: list[tuple[str, str]]) -> None:
    assert fields(validation.validate("CSIStorageCapacity", obj)) == expected


@pytest.mark.parametrize("change, expected", [
    ({"capacity": "5Gi", "maximumVolumeSize": "1Gi"}, []),
    ({"capacity": "-1"}, [("capacity", ('Invalid value: "-1": must be greater than or equal '
                                       'to 0'))]),
    ({"storageClassName": "other"},
     [("storageClassName", 'Invalid value: "other": field is immutable')]),
    ({"nodeTopology": {"matchLabels": {"kubernetes.io/hostname": "node-b"}}},
     [("nodeTopology", ('Invalid value: {"matchLabels":{"kubernetes.io/hostname":"node-b"}}: '
                       'field is immutable'))]),
])
def test_validate_csi_storage_capacity_update(change: Obj,
                                              expected: list[tuple[str, str]]) -> None:
    old = capacity()
    old["metadata"]["resourceVersion"] = "1"
    new = {**copy.deepcopy(old), **change}
    assert fields(validation.validate_update("CSIStorageCapacity", new, old)) == expected


def test_capacity_quantities_are_canonical_and_unrounded() -> None:
    obj = capacity(capacity="1024Mi", maximumVolumeSize="1500m")
    validation.canonicalize_quantities("CSIStorageCapacity", obj)
    # Lone Quantities, not a ResourceList: 1500m stays 1500m (no rounding to whole units).
    assert (obj["capacity"], obj["maximumVolumeSize"]) == ("1Gi", "1500m")


def test_capacity_that_is_no_quantity_cannot_be_decoded() -> None:
    with pytest.raises(DecodeError, match="^CSIStorageCapacity in version"):
        validation.check_decodable("CSIStorageCapacity", capacity(capacity="lots"))


# --- printing -----------------------------------------------------------------------------

def _table(kind: str, obj: Obj) -> tuple[list[str], list[Any]]:
    printer = printers.printer_for(kind)
    return [c.name for c in printer.columns], printer.row(obj, NOW)


def test_print_csi_driver() -> None:
    obj = driver(attachRequired=False, storageCapacity=True)
    obj["metadata"]["creationTimestamp"] = "2026-11-28T11:55:00Z"
    assert _table("CSIDriver", obj) == (
        ["Name", "AttachRequired", "PodInfoOnMount", "StorageCapacity", "TokenRequests",
         "RequiresRepublish", "Modes", "Age"],
        ["local.storagelab.io", False, False, True, "<unset>", False, "Persistent", "5m"])


def test_print_csi_driver_token_audiences_and_modes() -> None:
    obj = driver(tokenRequests=[{"audience": "vault"}, {"audience": ""}],
                 volumeLifecycleModes=["Persistent", "Ephemeral"])
    _, row = _table("CSIDriver", obj)
    assert (row[4], row[6]) == ("vault,", "Persistent,Ephemeral")
    assert _table("CSIDriver", driver(tokenRequests=[]))[1][4] == ""


@pytest.mark.parametrize("value, shown", [("1Gi", "1Gi"), (None, "<unset>")])
def test_print_csi_storage_capacity(value: str | None, shown: str) -> None:
    assert _table("CSIStorageCapacity", capacity(capacity=value)) == (
        ["Name", "StorageClassName", "Capacity"], ["csisc-1", "standard", shown])
