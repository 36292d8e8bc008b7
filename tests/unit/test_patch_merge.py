"""JSON Merge Patch: every example of RFC 7386 Appendix A, and the null pruning Kubernetes does."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery.patch_merge import merge_patch

# (original, patch, result), RFC 7386 Appendix A in order.
RFC7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_EXAMPLES,
                         ids=[f"A-{i + 1}" for i in range(len(RFC7386_EXAMPLES))])
def test_rfc7386_examples(original: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(original, patch) == expected


def test_kubectl_label_style_patch() -> None:
    pvc: dict[str, Any] = {"metadata": {"name": "data", "labels": {"app": "db", "tier": "x"},
                        "finalizers": ["kubernetes.io/pvc-protection"]},
           "spec": {"accessModes": ["ReadWriteOnce"]}}
    patch = {"metadata": {"labels": {"tier": None, "env": "prod"}},
             "spec": {"accessModes": ["ReadWriteMany"]}}
    assert merge_patch(pvc, patch) == {
        "metadata": {"name": "data", "labels": {"app": "db", "env": "prod"},
                     "finalizers": ["kubernetes.io/pvc-protection"]},
        "spec": {"accessModes": ["ReadWriteMany"]}}
    assert pvc["metadata"]["labels"] == {"app": "db", "tier": "x"}


def test_nulls_inside_objects_in_a_patch_array_are_dropped() -> None:
    # evanphx/json-patch prunes them; decoding into Go types would drop them anyway.
    patch = {"spec": {"containers": [{"name": "a", "image": None}, None]}}
    assert merge_patch({"spec": {}}, patch) == {"spec": {"containers": [{"name": "a"}, None]}}


def test_merge_patch_leaves_its_inputs_alone() -> None:
    original = {"a": {"b": {"c": 1}}}
    patch = {"a": {"b": {"d": 2}}}
    assert merge_patch(original, patch) == {"a": {"b": {"c": 1, "d": 2}}}
    assert original == {"a": {"b": {"c": 1}}}
    assert patch == {"a": {"b": {"d": 2}}}
