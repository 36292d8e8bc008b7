"""Name rules, field-error wording and ObjectMeta validation, pinned to Kubernetes' text."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import names
from apimachinery.errors import Cause

LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
QNAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                  "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                  "or '123-abc', regex used for validation is "
                  "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                   "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                   "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                   "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                  "is '[-._a-zA-Z0-9]+')")


@pytest.mark.parametrize("value, errors", [
    ("a", []), ("my-name", []), ("123-abc", []), ("a" * 63, []),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("", [LABEL_MSG]), ("My-Name", [LABEL_MSG]), ("-a", [LABEL_MSG]), ("a-", [LABEL_MSG]),
    ("a.b", [LABEL_MSG]), ("a b", [LABEL_MSG]), ("a;b", [LABEL_MSG]), ("a$(x)", [LABEL_MSG]),
    ("a\n", [LABEL_MSG]),
])
def test_dns1123_label(value: str, errors: list[str]) -> None:
    assert names.is_dns1123_label(value) == errors


@pytest.mark.parametrize("value, errors", [
    ("example.com", []), ("a", []), ("a-b.c-d", []), ("a" * 253, []),
    ("a" * 254, ["must be no more than 253 characters"]),
    ("", [SUBDOMAIN_MSG]), ("a..b", [SUBDOMAIN_MSG]), (".a", [SUBDOMAIN_MSG]),
    ("A.com", [SUBDOMAIN_MSG]), ("a_b", [SUBDOMAIN_MSG]), ("pv;rm", [SUBDOMAIN_MSG]),
    ("pv\n", [SUBDOMAIN_MSG]), ("pv 1", [SUBDOMAIN_MSG]),
])
def test_dns1123_subdomain(value: str, errors: list[str]) -> None:
    assert names.is_dns1123_subdomain(value) == errors


@pytest.mark.parametrize("value, errors", [
    ("app", []), ("MyName", []), ("my.name", []), ("a_b-c.d", []),
    ("example.com/MyName", []), ("kubernetes.io/pvc-protection", []),
    ("a" * 63, []), ("a" * 64, ["name part must be no more than 63 characters"]),
    ("", ["name part must be non-empty", QNAME_PART_MSG]),
    ("/a", ["prefix part must be non-empty"]),
    ("Example.com/a", ["prefix part " + SUBDOMAIN_MSG]),
    ("example.com/", ["name part must be non-empty", QNAME_PART_MSG]),
    ("-a", [QNAME_PART_MSG]), ("a b", [QNAME_PART_MSG]),
    ("a/b/c", [("a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
               "must start and end with an alphanumeric character (e.g. 'MyName',  or "
               "'my.name',  or '123-abc', regex used for validation is "
               "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
               "and '/' (e.g. 'example.com/MyName')")]),
])
def test_qualified_name(value: str, errors: list[str]) -> None:
    assert names.is_qualified_name(value) == errors


@pytest.mark.parametrize("value, errors", [
    ("", []), ("v1", []), ("My_Value.1", []), ("a" * 63, []),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("-a", [LABEL_VALUE_MSG]), ("a b", [LABEL_VALUE_MSG]), ("a/b", [LABEL_VALUE_MSG]),
])
def test_label_value(value: str, errors: list[str]) -> None:
    assert names.is_valid_label_value(value) == errors


@pytest.mark.parametrize("value, errors", [
    ("key.name", []), ("KEY_NAME", []), ("key-name", []), (".hidden", []),
    ("", [CONFIG_KEY_MSG]), ("a/b", [CONFIG_KEY_MSG]), ("a b", [CONFIG_KEY_MSG]),
    (".", ["must not be '.'"]), ("..", ["must not be '..'"]),
    ("..data", ["must not start with '..'"]),
    ("a" * 254, ["must be no more than 253 characters"]),
])
def test_config_map_key(value: str, errors: list[str]) -> None:
    assert names.is_config_map_key(value) == errors


@pytest.mark.parametrize("port, errors", [
    (1, []), (65535, []), (0, ["must be between 1 and 65535, inclusive"]),
    (65536, ["must be between 1 and 65535, inclusive"]),
])
def test_port_num(port: int, errors: list[str]) -> None:
    assert names.is_valid_port_num(port) == errors


@pytest.mark.parametrize("port, ok", [
    ("http", True), ("web-8080", True), ("a" * 16, False), ("8080", False), ("a--b", False),
    ("-ab", False), ("HTTP", False),
])
def test_port_name(port: str, ok: bool) -> None:
    assert (names.is_valid_port_name(port) == []) is ok


@pytest.mark.parametrize("name, prefix, ok", [
    ("pvc-", True, True), ("pvc-", False, False), ("a-", True, True), ("-", True, False),
    ("Pvc-", True, False),
])
def test_generate_name_may_end_in_dash(name: str, prefix: bool, ok: bool) -> None:
    assert (names.name_is_dns_subdomain(name, prefix) == []) is ok


@pytest.mark.parametrize("name, errors", [
    ("system:controller:x", []), ("a b", []), (".", ["may not be '.'"]),
    ("..", ["may not be '..'"]), ("a/b%c", ["may not contain '/'", "may not contain '%'"]),
])
def test_path_segment_name(name: str, errors: list[str]) -> None:
    assert names.is_valid_path_segment_name(name) == errors


@pytest.mark.parametrize("text, quoted", [
    ("abc", '"abc"'), ('a"b', '"a\\"b"'), ("a\nb", '"a\\nb"'), ("a\\b", '"a\\\\b"'),
    ("\x00", '"\\x00"'), ("é", '"é"'), ("\u200b", '"\\u200b"'),
])
def test_go_quote(text: str, quoted: str) -> None:
    assert names.go_quote(text) == quoted


@pytest.mark.parametrize("cause, message, reason", [
    (names.required("spec.x"), "Required value", "FieldValueRequired"),
    (names.required("spec.x", "must give one"), "Required value: must give one",
     "FieldValueRequired"),
    (names.invalid("spec.x", "Foo", "bad"), 'Invalid value: "Foo": bad', "FieldValueInvalid"),
    (names.invalid("spec.x", 5, "bad"), "Invalid value: 5: bad", "FieldValueInvalid"),
    (names.invalid("spec.x", None, "bad"), "Invalid value: null: bad", "FieldValueInvalid"),
    (names.invalid("spec.x", True, "bad"), "Invalid value: true: bad", "FieldValueInvalid"),
    (names.not_supported("spec.accessModes[0]", "X",
                         ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]),
     ('Unsupported value: "X": supported values: "ReadOnlyMany", "ReadWriteMany", '
     '"ReadWriteOnce", "ReadWriteOncePod"'), "FieldValueNotSupported"),
    (names.forbidden("spec", "nope"), "Forbidden: nope", "FieldValueForbidden"),
    (names.duplicate("spec.volumes[1].name", "data"), 'Duplicate value: "data"',
     "FieldValueDuplicate"),
    (names.too_long("metadata.annotations", 262144),
     "Too long: may not be more than 262144 bytes", "FieldValueTooLong"),
    (names.immutable("spec", "x"), 'Invalid value: "x": field is immutable', "FieldValueInvalid"),
])
def test_field_error_wording(cause: Cause, message: str, reason: str) -> None:
    assert cause.message == message
    assert cause.reason == reason


def _meta(**kw: Any) -> dict[str, Any]:
    return dict(kw)


@pytest.mark.parametrize("meta, namespaced, expected", [
    (_meta(name="a", namespace="default"), True, []),
    (_meta(name="a"), False, []),
    (_meta(namespace="default"), True,
     [Cause("metadata.name", "Required value: name or generateName is required",
            "FieldValueRequired")]),
    (_meta(name="a"), True, [Cause("metadata.namespace", "Required value", "FieldValueRequired")]),
    (_meta(name="a", namespace="x"), False,
     [Cause("metadata.namespace", "Forbidden: not allowed on this type", "FieldValueForbidden")]),
    (_meta(name="a", namespace="Bad_NS"), True,
     [Cause("metadata.namespace", 'Invalid value: "Bad_NS": ' + LABEL_MSG, "FieldValueInvalid")]),
    (_meta(name="a;rm -rf", namespace="d"), True,
     [Cause("metadata.name", 'Invalid value: "a;rm -rf": ' + SUBDOMAIN_MSG, "FieldValueInvalid")]),
    (_meta(name="a", generateName="Gen-", namespace="d"), True,
     [Cause("metadata.generateName", 'Invalid value: "Gen-": ' + SUBDOMAIN_MSG,
            "FieldValueInvalid")]),
    (_meta(name="a", namespace="d", labels={"app": "x y"}), True,
     [Cause("metadata.labels", 'Invalid value: "x y": ' + LABEL_VALUE_MSG, "FieldValueInvalid")]),
    (_meta(name="a", namespace="d", labels={"a b": "x"}), True,
     [Cause("metadata.labels", 'Invalid value: "a b": ' + QNAME_PART_MSG, "FieldValueInvalid")]),
    # annotation keys are checked case-insensitively, values are free text
    (_meta(name="a", namespace="d", annotations={"Example.COM/Key": "any value\n"}), True, []),
    (_meta(name="a", namespace="d", annotations={"k": "v" * 262144}), True,
     [Cause("metadata.annotations", "Too long: may not be more than 262144 bytes",
            "FieldValueTooLong")]),
    (_meta(name="a", namespace="d", annotations={"k": "v" * 262143}), True, []),
    (_meta(name="a", finalizers=["kubernetes.io/pv-protection", "kubernetes"]), False, []),
    (_meta(name="a", finalizers=["custom"]), False,
     [Cause("metadata.finalizers[0]", 'Invalid value: "custom": name is neither a standard '
            "finalizer name nor is it fully qualified", "FieldValueInvalid")]),
])
def test_validate_object_meta(meta: dict[str, Any], namespaced: bool,
                              expected: list[Cause]) -> None:
    assert names.validate_object_meta(meta, namespaced, names.name_is_dns_subdomain) == expected


def test_validate_object_meta_uses_given_name_rule() -> None:
    causes = names.validate_object_meta({"name": "a.b"}, False, names.name_is_dns_label)
    assert [c.field for c in causes] == ["metadata.name"]
    assert names.validate_object_meta({"name": "a.b"}, False, names.name_is_dns_subdomain) == []


@pytest.mark.parametrize("old, new, fields", [
    ({"name": "a", "uid": "1"}, {"name": "a", "uid": "1"}, []),
    ({"name": "a", "uid": "1"}, {"name": "b", "uid": "1"}, ["metadata.name"]),
    ({"name": "a", "uid": "1"}, {"name": "a", "uid": "2"}, ["metadata.uid"]),
    ({"name": "a", "namespace": "x"}, {"name": "a", "namespace": "y"}, ["metadata.namespace"]),
    ({"name": "a", "deletionTimestamp": "t", "finalizers": ["a/b"]},
     {"name": "a", "deletionTimestamp": "t", "finalizers": ["a/b", "c/d"]},
     ["metadata.finalizers"]),
    ({"name": "a", "deletionTimestamp": "t", "finalizers": ["a/b"]},
     {"name": "a", "deletionTimestamp": "t", "finalizers": []}, []),
])
def test_validate_object_meta_update(old: dict[str, Any], new: dict[str, Any],
                                     fields: list[str]) -> None:
    assert [c.field for c in names.validate_object_meta_update(new, old)] == fields


def test_no_new_finalizers_message() -> None:
    old = {"name": "a", "deletionTimestamp": "t"}
    new = {"name": "a", "deletionTimestamp": "t", "finalizers": ["x.io/f"]}
    [cause] = names.validate_object_meta_update(new, old)
    assert cause.message == ('Forbidden: no new finalizers can be added if the object is being '
                             'deleted, found new finalizers []string{"x.io/f"}')


def test_carry_system_fields() -> None:
    old = {"name": "a", "uid": "u1", "creationTimestamp": "t0", "generation": 3,
           "deletionTimestamp": "t1", "deletionGracePeriodSeconds": 30}
    new: dict[str, Any] = {"name": "a", "creationTimestamp": "t9", "generation": 7}
    names.carry_system_fields(new, old)
    assert new == {"name": "a", "uid": "u1", "creationTimestamp": "t0", "generation": 3,
                   "deletionTimestamp": "t1", "deletionGracePeriodSeconds": 30}
    assert names.validate_object_meta_update(new, old) == []
    # a different uid given by the client is kept, and rejected by validation
    other: dict[str, Any] = {"name": "a", "uid": "u2"}
    names.carry_system_fields(other, old)
    assert [c.field for c in names.validate_object_meta_update(other, old)] == ["metadata.uid"]
