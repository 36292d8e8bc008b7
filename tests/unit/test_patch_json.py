"""JSON Patch: the RFC 6902 appendix examples and the json-patch v4 behaviour Kubernetes keeps."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery.patch_json import JSONPatchError, decode_pointer, json_patch

# (name, document, operations, expected result); RFC 6902 Appendix A, in order.
RFC6902_EXAMPLES: list[tuple[str, Any, list[dict[str, Any]], Any]] = [
    ("A.1 add object member", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ("A.2 add array element", {"foo": ["bar", "baz"]},
     [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ("A.3 remove object member", {"baz": "qux", "foo": "bar"},
     [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4 remove array element", {"foo": ["bar", "qux", "baz"]},
     [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ("A.5 replace value", {"baz": "qux", "foo": "bar"},
     [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ("A.6 move value", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7 move array element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8 test value success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"},
      {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10 add nested member object", {"foo": "bar"},
     [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11 ignore unrecognized elements", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A.14 ~ escape ordering", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A.16 add array value", {"foo": ["bar"]},
     [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
]

RFC6902_ERRORS: list[tuple[str, Any, list[dict[str, Any]]]] = [
    ("A.9 test value error", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ("A.12 add to nonexistent target", {"foo": "bar"},
     [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ("A.15 comparing strings and numbers", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": "10"}]),
]


@pytest.mark.parametrize(("name", "doc", "ops", "expected"), RFC6902_EXAMPLES,
                         ids=[c[0] for c in RFC6902_EXAMPLES])
def test_rfc6902_examples(name: str, doc: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    assert json_patch(doc, ops) == expected


@pytest.mark.parametrize(("name", "doc", "ops"), RFC6902_ERRORS,
                         ids=[c[0] for c in RFC6902_ERRORS])
def test_rfc6902_error_examples(name: str, doc: Any, ops: list[dict[str, Any]]) -> None:
    with pytest.raises(JSONPatchError):
        json_patch(doc, ops)


@pytest.mark.parametrize(("pointer", "tokens"), [
    ("", []),
    ("/foo", ["foo"]),
    ("/foo/0", ["foo", "0"]),
    ("/", [""]),
    ("/a~1b", ["a/b"]),
    ("/m~0n", ["m~n"]),
    ("/~01", ["~1"]),
    ("/metadata/annotations/kubernetes.io~1pvc-protection", [
        "metadata", "annotations", "kubernetes.io/pvc-protection"]),
])
def test_decode_pointer_follows_rfc6901(pointer: str, tokens: list[str]) -> None:
    assert decode_pointer(pointer) == tokens


DOC: dict[str, Any] = {"metadata": {"name": "p", "labels": {"app": "db", "k8s.io/role": "x"},
                    "finalizers": ["a", "b", "c"], "nothing": None}}

# json-patch v4 (what kube-apiserver uses) where it differs from, or refines, the RFC.
V4_BEHAVIOUR: list[tuple[str, list[dict[str, Any]], Any]] = [
    ("replace of a missing member adds it",
     [{"op": "replace", "path": "/metadata/labels/tier", "value": "web"}],
     {**DOC["metadata"]["labels"], "tier": "web"}),
    ("remove with a negative index counts from the end",
     [{"op": "remove", "path": "/metadata/finalizers/-1"}], ["a", "b"]),
    ("add with a negative index counts in the grown array: -1 appends",
     [{"op": "add", "path": "/metadata/finalizers/-1", "value": "z"}], ["a", "b", "c", "z"]),
    ("add at -2 inserts before the last element",
     [{"op": "add", "path": "/metadata/finalizers/-2", "value": "z"}], ["a", "b", "z", "c"]),
    ("add at the array length appends",
     [{"op": "add", "path": "/metadata/finalizers/3", "value": "d"}], ["a", "b", "c", "d"]),
    ("escaped slash addresses a label key",
     [{"op": "remove", "path": "/metadata/labels/k8s.io~1role"}], {"app": "db"}),
    ("copy duplicates a value",
     [{"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copy"}],
     {**DOC["metadata"]["labels"], "copy": "db"}),
    ("test of a missing member against null passes",
     [{"op": "test", "path": "/metadata/labels/missing", "value": None}],
     DOC["metadata"]["labels"]),
    ("a null member counts as missing",
     [{"op": "test", "path": "/metadata/nothing", "value": None}], DOC["metadata"]["labels"]),
    ("objects compare by members, whatever their order",
     [{"op": "test", "path": "/metadata/labels",
       "value": {"k8s.io/role": "x", "app": "db"}}], DOC["metadata"]["labels"]),
]


@pytest.mark.parametrize(("name", "ops", "expected"), V4_BEHAVIOUR,
                         ids=[c[0] for c in V4_BEHAVIOUR])
def test_json_patch_v4_behaviour(name: str, ops: list[dict[str, Any]], expected: Any) -> None:
    result = json_patch(DOC, ops)
    where = "finalizers" if isinstance(expected, list) else "labels"
    assert result["metadata"][where] == expected


V4_ERRORS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("remove of a missing member", [{"op": "remove", "path": "/metadata/labels/nope"}],
     "Unable to remove nonexistent key: nope"),
    ("add past the end of an array",
     [{"op": "add", "path": "/metadata/finalizers/5", "value": "x"}],
     "Unable to access invalid index: 5"),
    ("replace past the end of an array",
     [{"op": "replace", "path": "/metadata/finalizers/3", "value": "x"}],
     "replace operation does not apply: doc is missing key"),
    ("array index that is no number",
     [{"op": "remove", "path": "/metadata/finalizers/first"}], "invalid syntax"),
    ("the whole document cannot be addressed", [{"op": "add", "path": "", "value": {}}],
     "doc is missing path"),
    ("a path through a missing member", [{"op": "add", "path": "/spec/x/y", "value": 1}],
     'add operation does not apply: doc is missing path: "/spec/x/y"'),
    ("a path through a scalar", [{"op": "add", "path": "/metadata/name/x", "value": 1}],
     "doc is missing path"),
    ("test of a missing member against a value",
     [{"op": "test", "path": "/metadata/uid", "value": "u"}],
     "testing value /metadata/uid failed: test failed"),
    ("test with an object that has an extra member",
     [{"op": "test", "path": "/metadata/labels", "value": {"app": "db", "k8s.io/role": "x",
                                                          "more": "y"}}], "test failed"),
    ("test distinguishes 1 from true",
     [{"op": "test", "path": "/metadata/flag", "value": True}], "test failed"),
    ("move from a missing member", [{"op": "move", "from": "/metadata/x", "path": "/y"}],
     "Unable to remove nonexistent key: x"),
    ("move of a value into itself",
     [{"op": "move", "from": "/metadata", "path": "/metadata/inner"}], "doc is missing"),
    ("unknown operation", [{"op": "merge", "path": "/metadata"}], "Unexpected kind: merge"),
    ("operation without op", [{"path": "/metadata"}], "Unexpected kind: unknown"),
    ("operation without path", [{"op": "add", "value": 1}], "missing path field"),
    ("a failing operation after a good one",
     [{"op": "add", "path": "/a", "value": 1}, {"op": "test", "path": "/a", "value": 2}],
     "testing value /a failed"),
]


@pytest.mark.parametrize(("name", "ops", "message"), V4_ERRORS, ids=[c[0] for c in V4_ERRORS])
def test_json_patch_v4_errors(name: str, ops: list[dict[str, Any]], message: str) -> None:
    doc = {"metadata": {**DOC["metadata"], "flag": 1}}
    with pytest.raises(JSONPatchError, match=message.replace("[", r"\[")):
        json_patch(doc, ops)


def test_json_patch_leaves_its_inputs_alone() -> None:
    doc = {"a": {"b": [1, 2]}}
    value = {"c": [3]}
    ops = [{"op": "add", "path": "/a/new", "value": value},
           {"op": "add", "path": "/a/new/c/-", "value": 4},
           {"op": "remove", "path": "/a/b/0"}]
    assert json_patch(doc, ops) == {"a": {"b": [2], "new": {"c": [3, 4]}}}
    assert doc == {"a": {"b": [1, 2]}}
    assert value == {"c": [3]}


def test_json_patch_failure_applies_nothing() -> None:
    doc = {"a": 1}
    with pytest.raises(JSONPatchError):
        json_patch(doc, [{"op": "replace", "path": "/a", "value": 2},
                         {"op": "remove", "path": "/missing"}])
    assert doc == {"a": 1}
