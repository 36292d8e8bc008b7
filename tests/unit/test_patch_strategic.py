"""Strategic merge patch: Kubernetes' own test cases, its directives, and our kinds' tags.

The first tables are ported from strategicpatch/patch_test.go (its MergeItem test type,
whose tags `MERGE_ITEM` restates); each row is (description, current, patch, result).
"""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery.patch_schema import KindSchema, merged
from apimachinery.patch_strategic import (
    BadPatchFormat,
    ListOfListsError,
    StrategicMergeError,
    go_format,
    merge_with_schema,
    strategic_merge_patch,
)

MERGE_ITEM = KindSchema("MergeItem", {
    "mergingList": merged("name"),
    "mergingIntList": merged(),
    "mergingList[].mergingList": merged("name"),
    "mergingList[].mergingIntList": merged(),
    "retainKeysMergingList": merged("name", retain_keys=True),
    "retainKeysMap.mergingList": merged("name"),
    "retainKeysMap.mergingIntList": merged(),
})

Case = tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]


def names(*items: Any) -> list[dict[str, Any]]:
    return [{"name": i} for i in items]


UPSTREAM_CASES: list[Case] = [
    ("unique scalars when merging lists",
     {"mergingIntList": [1, 2]}, {"mergingIntList": [2, 3]}, {"mergingIntList": [1, 2, 3]}),
    ("delete map from nested map",
     {"simpleMap": {"key1": 1, "key2": 1}}, {"simpleMap": {"$patch": "delete"}},
     {"simpleMap": {}}),
    ("delete all items from merging list",
     {"mergingList": names(1, 2)}, {"mergingList": [{"$patch": "replace"}]},
     {"mergingList": []}),
    ("merge empty merging lists", {"mergingList": []}, {"mergingList": []}, {"mergingList": []}),
    ("delete all keys from map", {"name": 1, "value": 1}, {"$patch": "replace"}, {}),
    ("add key and delete all keys from map",
     {"name": 1, "value": 1}, {"other": "a", "$patch": "replace"}, {"other": "a"}),
    ("delete all duplicate entries in a merging list",
     {"mergingList": [{"name": 1}, {"name": 1}, {"name": 2, "value": "a"}, {"name": 3},
                      {"name": 3}]},
     {"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 3, "$patch": "delete"}]},
     {"mergingList": [{"name": 2, "value": "a"}]}),
    ("retainKeys list can delete a field when no retainKeys directive present",
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo", "value": "a"}]},
     {"retainKeysMergingList": [{"name": "foo", "value": None}]},
     {"retainKeysMergingList": [{"name": "bar"}, {"name": "foo"}]}),
    ("retainKeys map merge an empty map",
     {"retainKeysMap": {"name": "foo", "value": "a"}}, {"retainKeysMap": {}},
     {"retainKeysMap": {"name": "foo", "value": "a"}}),
    ("preserve the order from the patch in a merging list",
     {"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"},
                      {"name": 2, "other": "x"}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"},
                      {"name": 2, "value": "b", "other": "x"}]}),
    ("preserve the order from the patch in a merging list 2",
     {"mergingList": [{"name": 1}, {"name": 2, "value": "b"}, {"name": 3}]},
     {"mergingList": [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}]},
     {"mergingList": [{"name": 2, "value": "b"}, {"name": 3, "value": "c"},
                      {"name": 1, "value": "a"}]}),
    ("preserve the order from the patch in a merging int list",
     {"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1, 2]},
     {"mergingIntList": [3, 1, 2]}),
    ("preserve the order from the patch in a merging int list 2",
     {"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1]}, {"mergingIntList": [2, 3, 1]}),
    ("$setElementOrder contains item that is not present in the list to be merged",
     {"mergingList": names(1, 3)},
     {"$setElementOrder/mergingList": names(3, 2, 1),
      "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     {"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    ("$setElementOrder contains item that is not present in the int list to be merged",
     {"mergingIntList": [1, 3]}, {"$setElementOrder/mergingIntList": [3, 2, 1]},
     {"mergingIntList": [3, 1]}),
    ("delete items in lists of scalars",
     {"mergingIntList": [1, 2, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}),
    ("delete all duplicate items in lists of scalars",
     {"mergingIntList": [1, 2, 3, 3, 4]},
     {"$setElementOrder/mergingIntList": [1, 2], "$deleteFromPrimitiveList/mergingIntList": [3]},
     {"mergingIntList": [1, 2, 4]}),
    ("add and delete items in lists of scalars",
     {"mergingIntList": [1, 2, 3]},
     {"$setElementOrder/mergingIntList": [1, 2, 4],
      "$deleteFromPrimitiveList/mergingIntList": [3], "mergingIntList": [4]},
     {"mergingIntList": [1, 2, 4]}),
    ("merge lists of maps",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": names(4, 1, 2, 3),
      "mergingList": [{"name": 4, "value": 4}, {"name": 3, "value": 3}]},
     {"mergingList": [{"name": 4, "value": 4}, {"name": 1, "other": "a"},
                      {"name": 2, "value": 2, "other": "b"}, {"name": 3, "value": 3}]}),
    ("merge lists of maps with conflict",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 3, "other": "b"}]},
     {"$setElementOrder/mergingList": names(1, 2, 3),
      "mergingList": [{"name": 2, "value": 2}, {"name": 3, "value": 3}]},
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"},
                      {"name": 3, "value": 3}]}),
    ("add field to map in merging list",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2, "other": "b"}]},
     {"$setElementOrder/mergingList": names(1, 2), "mergingList": [{"name": 1, "value": 1}]},
     {"mergingList": [{"name": 1, "value": 1, "other": "a"},
                      {"name": 2, "value": 2, "other": "b"}]}),
    ("add field and delete field from map",
     {"name": 1, "other": "a"}, {"name": None, "value": 1}, {"value": 1, "other": "a"}),
    ("delete field from nested map",
     {"simpleMap": {"key1": 1, "key2": 1, "other": "a"}}, {"simpleMap": {"key2": None}},
     {"simpleMap": {"key1": 1, "other": "a"}}),
    ("replace list of scalars",
     {"nonMergingIntList": [1, 4]}, {"nonMergingIntList": [2, 3]}, {"nonMergingIntList": [2, 3]}),
    ("delete all maps from merging list with conflict",
     {"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "other": "b"}]},
     {"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 2, "$patch": "delete"}]},
     {"mergingList": []}),
    ("delete all maps from empty merging list",
     {"mergingList": []},
     {"mergingList": [{"name": 1, "$patch": "delete"}, {"name": 2, "$patch": "delete"}]},
     {"mergingList": []}),
    ("defined null values should propagate removing original fields",
     {"name": "original-name", "value": "original-value", "other": "current-other"},
     {"name": "modified-name", "value": None},
     {"name": "modified-name", "other": "current-other"}),
]

DIRECTIVE_CASES: list[Case] = [
    ("a new merging list element goes first without $setElementOrder, as in Kubernetes",
     {"mergingList": names("a", "b")}, {"mergingList": names("c")},
     {"mergingList": names("c", "a", "b")}),
    ("with $setElementOrder a new element goes where the order says",
     {"mergingList": names("a", "b")},
     {"$setElementOrder/mergingList": names("a", "b", "c"), "mergingList": names("c")},
     {"mergingList": names("a", "b", "c")}),
    ("a new primitive goes first without $setElementOrder, as in Kubernetes",
     {"mergingIntList": [1, 2]}, {"mergingIntList": [3]}, {"mergingIntList": [3, 1, 2]}),
    ("$patch: replace in a list replaces the whole list with the other elements",
     {"mergingList": [{"name": 1, "value": "x"}, {"name": 2}]},
     {"mergingList": [{"$patch": "replace"}, {"name": 3, "value": None}]},
     {"mergingList": [{"name": 3}]}),
    ("$patch: replace in a nested map replaces only that map",
     {"simpleMap": {"a": 1, "b": 2}, "other": "kept"},
     {"simpleMap": {"$patch": "replace", "c": 3}}, {"simpleMap": {"c": 3}, "other": "kept"}),
    ("$retainKeys clears what it does not name, then the patch merges",
     {"retainKeysMap": {"name": "foo", "value": "a", "other": "b"}},
     {"retainKeysMap": {"$retainKeys": ["name", "simpleMap"], "simpleMap": {"k": "v"}}},
     {"retainKeysMap": {"name": "foo", "simpleMap": {"k": "v"}}}),
    ("$retainKeys in a merging list element",
     {"retainKeysMergingList": [{"name": "v", "value": "old"}, {"name": "w", "value": "w"}]},
     {"retainKeysMergingList": [{"$retainKeys": ["name", "other"], "name": "v",
                                 "other": "new", "value": None}]},
     {"retainKeysMergingList": [{"name": "v", "other": "new"}, {"name": "w", "value": "w"}]}),
    ("$deleteFromPrimitiveList and an addition without $setElementOrder",
     {"mergingIntList": [1, 2, 3]},
     {"$deleteFromPrimitiveList/mergingIntList": [2], "mergingIntList": [4]},
     {"mergingIntList": [4, 1, 3]}),
    ("$deleteFromPrimitiveList of a value that is not there",
     {"mergingIntList": [1]}, {"$deleteFromPrimitiveList/mergingIntList": [9]},
     {"mergingIntList": [1]}),
    ("$deleteFromPrimitiveList on a missing list adds nothing (kubernetes#105146)",
     {"name": 1}, {"$deleteFromPrimitiveList/mergingIntList": [9]}, {"name": 1}),
    ("$deleteFromPrimitiveList deletes from a list that is not merged (kubernetes#110472)",
     {"nonMergingIntList": [1, 2, 3]}, {"$deleteFromPrimitiveList/nonMergingIntList": [2]},
     {"nonMergingIntList": [1, 3]}),
    ("$setElementOrder reorders a list the patch does not change",
     {"mergingList": [{"name": 1, "v": 1}, {"name": 2, "v": 2}, {"name": "srv"}]},
     {"$setElementOrder/mergingList": names(2, 1)},
     {"mergingList": [{"name": 2, "v": 2}, {"name": 1, "v": 1}, {"name": "srv"}]}),
    ("$setElementOrder for a list the object lacks takes the patch list",
     {}, {"$setElementOrder/mergingList": names(1), "mergingList": [{"name": 1, "x": None}]},
     {"mergingList": [{"name": 1}]}),
    ("nested merging lists merge at every level",
     {"mergingList": [{"name": 1, "mergingList": [{"name": "a", "value": 1}],
                       "mergingIntList": [1]}]},
     {"mergingList": [{"name": 1, "mergingList": [{"name": "b"}], "mergingIntList": [2]}]},
     {"mergingList": [{"name": 1, "mergingList": [{"name": "b"}, {"name": "a", "value": 1}],
                       "mergingIntList": [2, 1]}]}),
    ("a patch value of another type replaces the original",
     {"mergingList": names(1), "simpleMap": {"a": 1}},
     {"mergingList": "x", "simpleMap": ["y"]}, {"mergingList": "x", "simpleMap": ["y"]}),
    ("values taken whole lose their nulls and directives",
     {}, {"simpleMap": {"a": None, "b": {"$patch": "delete", "c": 1}},
          "mergingList": [{"name": 1, "$patch": "delete", "value": None}]},
     {"simpleMap": {"b": {"c": 1}}, "mergingList": [{"name": 1}]}),
    ("a new list element loses its nulls and directives",
     {"mergingList": names(1)},
     {"mergingList": [{"name": 2, "value": None, "$setElementOrder/mergingList": names("x"),
                       "mergingList": [{"name": "x"}]}]},
     {"mergingList": [{"name": 2, "mergingList": [{"name": "x"}]}, {"name": 1}]}),
    ("a null for a missing field is ignored", {"name": 1}, {"missing": None}, {"name": 1}),
    ("an unknown $ key is dropped like an unknown field",
     {"name": 1}, {"$unknown": "x", "value": 2}, {"name": 1, "value": 2}),
    ("the empty patch changes nothing", {"name": 1, "mergingList": names(1)}, {},
     {"name": 1, "mergingList": names(1)}),
]


@pytest.mark.parametrize(("description", "current", "patch", "expected"),
                         UPSTREAM_CASES + DIRECTIVE_CASES,
                         ids=[c[0] for c in UPSTREAM_CASES + DIRECTIVE_CASES])
def test_strategic_merge_patch(description: str, current: dict[str, Any],
                               patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert merge_with_schema(current, patch, MERGE_ITEM) == expected


ErrorCase = tuple[str, dict[str, Any], dict[str, Any], type[Exception], str]

ERROR_CASES: list[ErrorCase] = [
    ("order in $setElementOrder and patch list differ",
     {"mergingList": names(1, 3, 2)},
     {"$setElementOrder/mergingList": names(1, 2, 3),
      "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]},
     StrategicMergeError, "doesn't match \\$setElementOrder list"),
    ("order in $setElementOrder and patch int list differ",
     {"mergingIntList": [1, 3, 2]},
     {"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]},
     StrategicMergeError, "doesn't match"),
    ("missing merge key", {"mergingList": [{"name": 1, "value": "a"}]},
     {"mergingList": [{"value": "b"}]}, StrategicMergeError,
     "^map: map\\[value:b\\] does not contain declared merge key: name$"),
    ("$patch: delete element without merge key", {"mergingList": names(1)},
     {"mergingList": [{"$patch": "delete"}]}, StrategicMergeError,
     "does not contain declared merge key"),
    ("$patch: merge in a list", {"mergingList": names(1)},
     {"mergingList": [{"$patch": "merge"}]}, StrategicMergeError,
     "^merging lists cannot yet be specified in the patch$"),
    ("$patch: merge in a map", {"simpleMap": {"a": 1}},
     {"simpleMap": {"$patch": "merge", "b": 2}}, StrategicMergeError,
     "^unknown patch type: merge in map: map\\[\\$patch:merge b:2\\]$"),
    ("unknown $patch in a list element", {"mergingList": names(1)},
     {"mergingList": [{"$patch": "zap", "name": 1}]}, StrategicMergeError,
     "unknown patch type: zap"),
    ("$retainKeys not a list", {"simpleMap": {}}, {"simpleMap": {"$retainKeys": "a"}},
     BadPatchFormat, "^invalid patch format of retainKeys$"),
    ("patch member missing from $retainKeys", {"simpleMap": {"a": 1}},
     {"simpleMap": {"$retainKeys": ["a"], "b": 2}}, BadPatchFormat,
     "invalid patch format of retainKeys"),
    ("$deleteFromPrimitiveList without a field", {"mergingIntList": [1]},
     {"$deleteFromPrimitiveList": [1]}, BadPatchFormat,
     "^invalid patch format of primitive list$"),
    ("$deleteFromPrimitiveList value not a list", {"mergingIntList": [1]},
     {"$deleteFromPrimitiveList/mergingIntList": 1}, BadPatchFormat, "primitive list"),
    ("$setElementOrder without a field", {"mergingIntList": [1]},
     {"$setElementOrderX": [1]}, BadPatchFormat,
     "^invalid patch format of setElementOrder list$"),
    ("$setElementOrder not a list", {"mergingIntList": [1]},
     {"$setElementOrder/mergingIntList": "x"}, StrategicMergeError, "expected a \\[\\]interface"),
    ("lists of lists", {"mergingIntList": [1]}, {"mergingIntList": [[2]]}, ListOfListsError,
     "^lists of lists are not supported$"),
    ("mixed element types", {"mergingIntList": [1]}, {"mergingIntList": ["a"]},
     StrategicMergeError, "list element types are not identical"),
]


@pytest.mark.parametrize(("description", "current", "patch", "error", "message"), ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_strategic_merge_patch_errors(description: str, current: dict[str, Any],
                                      patch: dict[str, Any], error: type[Exception],
                                      message: str) -> None:
    with pytest.raises(error, match=message):
        merge_with_schema(current, patch, MERGE_ITEM)


def test_inputs_are_never_changed() -> None:
    current = {"mergingList": [{"name": 1, "value": "a"}], "simpleMap": {"k": "v"},
               "mergingIntList": [1, 2]}
    patch = {"mergingList": [{"name": 1, "value": "b"}, {"name": 2, "$patch": "delete"}],
             "simpleMap": {"$retainKeys": ["x"], "x": 1},
             "$deleteFromPrimitiveList/mergingIntList": [1],
             "$setElementOrder/mergingList": names(1)}
    before_current, before_patch = repr(current), repr(patch)
    merge_with_schema(current, patch, MERGE_ITEM)
    assert (repr(current), repr(patch)) == (before_current, before_patch)


@pytest.mark.parametrize(("value", "text"), [
    ({"b": 1, "a": [True, None, 1.0, "x"]}, "map[a:[true <nil> 1 x] b:1]"),
    ([], "[]"),
    (2.5, "2.5"),
])
def test_go_format_prints_like_go(value: Any, text: str) -> None:
    assert go_format(value) == text


# -- the tags of our kinds ------------------------------------------------------------

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {
        "name": "db", "namespace": "default", "uid": "u1",
        "finalizers": ["example.com/a", "example.com/b"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
                             "name": "rc", "uid": "o1", "controller": True}],
    },
    "spec": {
        "containers": [{
            "name": "app", "image": "busybox:1.36",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "envFrom": [{"configMapRef": {"name": "cm1"}}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "volumeDevices": [{"name": "raw", "devicePath": "/dev/xvda"}],
        }],
        "initContainers": [{"name": "init", "image": "busybox"}],
        "volumes": [{"name": "data", "emptyDir": {}}],
        "tolerations": [{"key": "a", "operator": "Exists"}],
        "imagePullSecrets": [{"name": "reg1"}],
        "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["one"]}],
    },
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"},
                       {"type": "Ready", "status": "False"}],
        "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0}],
    },
}

PodCase = tuple[str, str, dict[str, Any], Any, Any]

POD_CASES: list[PodCase] = [
    ("containers merge by name", "spec.containers",
     {"spec": {"containers": [{"name": "app", "image": "busybox:1.37"},
                              {"name": "side", "image": "nginx"}]}},
     lambda c: [c[0]["name"], c[0]["image"], c[0]["env"][0]["name"], c[1]["name"]],
     ["app", "busybox:1.37", "A", "side"]),
    ("initContainers merge by name", "spec.initContainers",
     {"spec": {"initContainers": [{"name": "init", "args": ["x"]}]}}, None,
     [{"name": "init", "image": "busybox", "args": ["x"]}]),
    ("env merges by name", "spec.containers.0.env",
     {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "3"},
                                                       {"name": "C", "value": "4"}]}]}},
     None, [{"name": "A", "value": "1"}, {"name": "B", "value": "3"},
            {"name": "C", "value": "4"}]),
    ("env deletes by name", "spec.containers.0.env",
     {"spec": {"containers": [{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]}},
     None, [{"name": "B", "value": "2"}]),
    ("envFrom is replaced", "spec.containers.0.envFrom",
     {"spec": {"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "s"}}]}]}},
     None, [{"secretRef": {"name": "s"}}]),
    ("ports merge by containerPort", "spec.containers.0.ports",
     {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"},
                                                         {"containerPort": 443}]}]}},
     None, [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]),
    ("volumeMounts merge by mountPath", "spec.containers.0.volumeMounts",
     {"spec": {"containers": [{"name": "app", "volumeMounts": [
         {"mountPath": "/data", "readOnly": True}, {"name": "cfg", "mountPath": "/etc/cfg"}]}]}},
     None, [{"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "cfg", "mountPath": "/etc/cfg"}]),
    ("volumeDevices merge by devicePath", "spec.containers.0.volumeDevices",
     {"spec": {"containers": [{"name": "app", "volumeDevices": [
         {"name": "raw2", "devicePath": "/dev/xvda"}]}]}}, None,
     [{"name": "raw2", "devicePath": "/dev/xvda"}]),
    ("volumes merge by name and honour $retainKeys", "spec.volumes",
     {"spec": {"volumes": [{"$retainKeys": ["name", "persistentVolumeClaim"], "name": "data",
                            "persistentVolumeClaim": {"claimName": "c"}},
                           {"name": "cfg", "configMap": {"name": "cm"}}]}},
     None, [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "cfg", "configMap": {"name": "cm"}}]),
    ("tolerations are replaced", "spec.tolerations",
     {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}, None,
     [{"key": "b", "operator": "Exists"}]),
    ("imagePullSecrets merge by name", "spec.imagePullSecrets",
     {"spec": {"imagePullSecrets": [{"name": "reg2"}]}}, None,
     [{"name": "reg2"}, {"name": "reg1"}]),
    ("hostAliases merge by ip", "spec.hostAliases",
     {"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["uno"]}]}}, None,
     [{"ip": "10.0.0.1", "hostnames": ["uno"]}]),
    ("status.conditions merge by type", "status.conditions",
     {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, None,
     [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]),
    ("status.containerStatuses are replaced", "status.containerStatuses",
     {"status": {"containerStatuses": [{"name": "app", "ready": True}]}}, None,
     [{"name": "app", "ready": True}]),
    ("finalizers are a union", "metadata.finalizers",
     {"metadata": {"finalizers": ["example.com/b", "example.com/c"]}}, None,
     ["example.com/a", "example.com/b", "example.com/c"]),
    ("finalizers delete from the primitive list", "metadata.finalizers",
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"]}}, None,
     ["example.com/b"]),
    ("ownerReferences merge by uid", "metadata.ownerReferences",
     {"metadata": {"ownerReferences": [{"uid": "o1", "controller": False},
                                       {"apiVersion": "v1", "kind": "Node", "name": "n",
                                        "uid": "o2"}]}},
     lambda refs: [(r["uid"], r.get("controller")) for r in refs],
     [("o1", False), ("o2", None)]),
]


def _at(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[int(part)] if part.isdigit() else obj[part]
    return obj


@pytest.mark.parametrize(("description", "where", "patch", "view", "expected"), POD_CASES,
                         ids=[c[0] for c in POD_CASES])
def test_pod_tags(description: str, where: str, patch: dict[str, Any], view: Any,
                  expected: Any) -> None:
    result = _at(strategic_merge_patch(POD, patch, "Pod"), where)
    assert (view(result) if view else result) == expected


NODE = {"metadata": {"name": "n1"},
        "spec": {"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.1.1.1"},
                                 {"type": "Hostname", "address": "n1"}]}}


@pytest.mark.parametrize(("kind", "obj", "patch", "where", "expected"), [
    ("Node", NODE, {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}, "spec.taints",
     [{"key": "b", "effect": "NoExecute"}]),
    ("Node", NODE, {"spec": {"podCIDRs": ["fd00::/64"]}}, "spec.podCIDRs",
     ["fd00::/64", "10.0.0.0/24"]),
    ("Node", NODE, {"status": {"addresses": [{"type": "Hostname", "address": "n1.lab"}]}},
     "status.addresses", [{"type": "InternalIP", "address": "10.1.1.1"},
                          {"type": "Hostname", "address": "n1.lab"}]),
    ("Node", NODE, {"status": {"conditions": [{"type": "DiskPressure", "status": "False"}]}},
     "status.conditions", [{"type": "DiskPressure", "status": "False"},
                           {"type": "Ready", "status": "True"}]),
    ("PersistentVolumeClaim",
     {"status": {"conditions": [{"type": "Resizing", "status": "True"}]}},
     {"status": {"conditions": [{"type": "FileSystemResizePending", "status": "True"},
                                {"type": "Resizing", "$patch": "delete"}]}},
     "status.conditions", [{"type": "FileSystemResizePending", "status": "True"}]),
    ("Namespace", {"spec": {"finalizers": ["kubernetes"]}},
     {"spec": {"finalizers": ["other"]}}, "spec.finalizers", ["other"]),
    ("PersistentVolume", {"spec": {"mountOptions": ["hard"], "accessModes": ["ReadWriteOnce"]}},
     {"spec": {"mountOptions": ["soft"]}}, "spec.mountOptions", ["soft"]),
    ("ConfigMap", {"metadata": {"finalizers": ["a"]}, "data": {"k": "v", "x": "y"}},
     {"metadata": {"finalizers": ["b"]}, "data": {"x": None}}, "data", {"k": "v"}),
    ("SomethingElse", {"metadata": {"finalizers": ["a"]}},
     {"metadata": {"finalizers": ["b"]}}, "metadata.finalizers", ["b", "a"]),
])
def test_other_kinds(kind: str, obj: dict[str, Any], patch: dict[str, Any], where: str,
                     expected: Any) -> None:
    assert _at(strategic_merge_patch(obj, patch, kind), where) == expected
