"""Label selector parsing, matching and LabelSelector conversion, as in apimachinery/labels."""

from __future__ import annotations

from typing import Any

import pytest

from apimachinery import labels
from apimachinery.labels import Operator, Requirement, SelectorError

WEB = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("x=a", "x=a"),
    ("x==a", "x==a"),
    ("x!=a", "x!=a"),
    ("  x = a ", "x=a"),
    ("x=", "x="),
    ("x=a,y!=b", "x=a,y!=b"),
    ("y!=b,x=a", "x=a,y!=b"),  # sorted by key
    ("x in (a,b)", "x in (a,b)"),
    ("x in (b,a,a)", "x in (a,b)"),
    ("x notin (a)", "x notin (a)"),
    ("x in ()", "x in ()"),
    ("x in (,a)", "x in (,a)"),
    ("x", "x"),
    ("!x", "!x"),
    ("x>1", "x>1"),
    ("x<1", "x<1"),
    ("x in (in,notin)", "x in (in,notin)"),  # keywords are plain values inside a set
    ("x=in", "x=in"),
    ("example.com/app=web", "example.com/app=web"),
])
def test_parse_round_trip(text: str, canonical: str) -> None:
    assert str(labels.parse(text)) == canonical


@pytest.mark.parametrize("text, message", [
    ("x=a=b", "found '=', expected: ',' or 'end of string'"),
    ("x=a,", "found '', expected: identifier after ','"),
    (",x=a", "found ',', expected: !, identifier, or 'end of string'"),
    ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("x in a", "unable to parse requirement: found 'a' expected: '('"),
    ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    ("x (a)", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
    ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("x=(a)", "unable to parse requirement: found '(', expected: identifier"),
    ("x>a", ("unable to parse requirement: values[0]: Invalid value: \"a\": "
            "for 'Gt', 'Lt' operators, the value must be an integer")),
    ("a;b=c", ("unable to parse requirement: <nil>: Invalid value: \"a;b\": name part must "
              "consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
              "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
              "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")),
    ("x=a;b", ("unable to parse requirement: values[0][x]: Invalid value: \"a;b\": a valid label "
              "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
              "'my_value',  or '12345', regex used for validation is "
              "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        labels.parse(text)
    assert str(err.value) == message


@pytest.mark.parametrize("text, matched", [
    ("", True),
    ("app=web", True), ("app==web", True), ("app=db", False),
    ("app!=db", True), ("app!=web", False), ("missing!=x", True),
    ("app in (web,db)", True), ("app in (db)", False), ("missing in (x)", False),
    ("app notin (db)", True), ("app notin (web)", False), ("missing notin (x)", True),
    ("app", True), ("missing", False), ("!app", False), ("!missing", True),
    ("version>2", True), ("version>3", False), ("version<4", True), ("app>1", False),
    ("missing>1", False),
    ("app=web,tier=front", True), ("app=web,tier=back", False),
    ("missing=", False), ("missing in ()", False),
])
def test_matches(text: str, matched: bool) -> None:
    assert labels.parse(text).matches(WEB) is matched


def test_empty_value_matches_empty_label() -> None:
    assert labels.parse("x=").matches({"x": ""})
    assert labels.parse("x in ()").matches({"x": ""})


@pytest.mark.parametrize("selector, matched", [
    (None, False),  # LabelSelectorAsSelector(nil) is Nothing
    ({}, True),
    ({"matchLabels": {}, "matchExpressions": []}, True),
    ({"matchLabels": {"app": "web"}}, True),
    ({"matchLabels": {"app": "db"}}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
])
def test_from_label_selector(selector: dict[str, Any] | None, matched: bool) -> None:
    assert labels.from_label_selector(selector).matches(WEB) is matched


@pytest.mark.parametrize("selector, message", [
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     '"Gt" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     ("values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not "
     "exist")),
])
def test_from_label_selector_errors(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as err:
        labels.from_label_selector(selector)
    assert str(err.value) == message


def test_nothing_and_everything() -> None:
    assert labels.EVERYTHING.matches({}) and labels.EVERYTHING.empty()
    assert not labels.NOTHING.matches(WEB) and not labels.NOTHING.empty()
    assert labels.parse("").matches(None)


def test_requirement_values_sorted_and_unique() -> None:
    req = labels.new_requirement("k", Operator.IN, ["b", "a", "b"])
    assert req == Requirement("k", Operator.IN, ("a", "b"))


@pytest.mark.parametrize("selector, fields", [
    (None, []),
    ({"matchLabels": {"app": "web"}}, []),
    ({"matchLabels": {"a b": "web"}}, ["s.matchLabels"]),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]}, ["s.matchExpressions[0].values"]),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     ["s.matchExpressions[0].values"]),
    ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     ["s.matchExpressions[0].operator"]),
    ({"matchExpressions": [{"key": "", "operator": "Exists"}]},
     ["s.matchExpressions[0].key", "s.matchExpressions[0].key"]),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x y"]}]},
     ["s.matchExpressions[0].values[0]"]),
])
def test_validate_label_selector(selector: dict[str, Any] | None, fields: list[str]) -> None:
    assert [c.field for c in labels.validate_label_selector(selector, "s")] == fields


def test_validate_label_selector_messages() -> None:
    [cause] = labels.validate_label_selector(
        {"matchExpressions": [{"key": "a", "operator": "In"}]}, "spec.selector")
    assert cause.message == "Required value: must be specified when `operator` is 'In' or 'NotIn'"
    [cause] = labels.validate_label_selector(
        {"matchExpressions": [{"key": "a", "operator": "Foo"}]}, "spec.selector")
    assert cause.message == 'Invalid value: "Foo": not a valid selector operator'
