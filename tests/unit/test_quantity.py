"""Quantity parsing and canonical strings, pinned to apimachinery's quantity_test.go."""

from __future__ import annotations

from fractions import Fraction

import pytest

from apimachinery import quantity
from apimachinery.quantity import QuantityError

FORMAT_WRONG = ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize("text, value", [
    ("0", 0), ("0n", 0), ("0Ki", 0), ("0Ti", 0),
    ("1", 1), ("1Ki", 1024), ("8Ki", 8 * 1024), ("7Mi", 7 * 2**20), ("6Gi", 6 * 2**30),
    ("5Ti", 5 * 2**40), ("4Pi", 4 * 2**50), ("3Ei", 3 * 2**60),
    ("5n", Fraction(5, 10**9)), ("4u", Fraction(4, 10**6)), ("3m", Fraction(3, 1000)),
    ("8k", 8000), ("50k", 50000), ("7M", 7 * 10**6), ("6G", 6 * 10**9), ("5T", 5 * 10**12),
    ("2P", 2 * 10**15), ("1E", 10**18), ("12E", 12 * 10**18),
    ("1E-3", Fraction(1, 1000)), ("1e3", 1000), ("1.3E+6", 1300000), ("1.7E18", 17 * 10**17),
    ("100.035k", 100035), ("0.0005k", Fraction(1, 2)), ("10.035M", 10035000),
    ("0.5e-2", Fraction(5, 1000)), ("1.01E", 101 * 10**16),
    # values finer than a nano round up, away from zero
    ("3.001n", Fraction(4, 10**9)), ("1.1E-9", Fraction(2, 10**9)),
    ("0.0000000005", Fraction(1, 10**9)), ("0.00000012345", Fraction(124, 10**9)),
    ("-0.00000012345", Fraction(-124, 10**9)),
    # binary quantities are capped at the int64 maximum
    ("9Ei", 2**63 - 1), ("9223372036854775807Ki", 2**63 - 1), ("-9Ei", -(2**63 - 1)),
    ("100.035Ki", Fraction(10243584, 100)), ("0.5Mi", 2**19), ("0.025Ti", Fraction(274877906944, 10)),
    # "things written by trolls", still accepted by Kubernetes
    (".001", Fraction(1, 1000)), (".0001k", Fraction(1, 10)), ("1.", 1), ("1.G", 10**9),
    ("+1", 1), ("-1.5", Fraction(-3, 2)), (".", 0), ("-", 0),
])
def test_parse_value(text: str, value: int | Fraction) -> None:
    assert quantity.parse_quantity(text) == value


@pytest.mark.parametrize("text, message", [
    ("", FORMAT_WRONG),
    ("1.1.M", FORMAT_WRONG),
    ("1+1.0M", FORMAT_WRONG),
    ("aoeu", FORMAT_WRONG),
    (" 1", FORMAT_WRONG),
    ("1 ", FORMAT_WRONG),
    ("1 Gi", FORMAT_WRONG),
    ("10Gi;", FORMAT_WRONG),
    ("-3.01e-", "unable to parse quantity's suffix"),
    ("0.1mi", "unable to parse quantity's suffix"),
    ("0.1am", FORMAT_WRONG),
    (".5i", "unable to parse quantity's suffix"),
    ("1i", "unable to parse quantity's suffix"),
    ("1K", "unable to parse quantity's suffix"),
    ("1e", "unable to parse quantity's suffix"),
    ("1Mi5", "unable to parse quantity's suffix"),
    ("1e4294967297", "unable to parse quantity's suffix"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as err:
        quantity.parse_quantity(text)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("canonical, alternate", [
    # (string Kubernetes prints, another spelling of the same value and format)
    ("1Gi", "1024Mi"), ("300Mi", "307200Ki"), ("1001Gi", "1025024Mi"), ("1Ti", "1024Gi"),
    ("6Gi", "6144Mi"), ("1G", "1000M"), ("1G", "0.001T"), ("1m", "1000u"), ("1080m", "1.08"),
    ("1080m", "1080000000n"), ("1e9", ".001e12"), ("1e-3", "0.001e0"), ("1e-9", "1000e-12"),
    ("0", "00"), ("500m", "0.5"), ("5", "5000m"), ("1536Mi", "1.5Gi"), ("2Gi", "2048Mi"),
    ("1k", "1000"), ("1500", "1.5k"), ("1024m", ".001Ki"), ("1024u", ".000001Ki"),
    ("1024n", ".000000001Ki"), ("2n", ".000000000001Ki"), ("512Mi", "0.5Gi"), ("512", "0.5Ki"),
    ("1024102400u", "1.0001Ki"), ("1100m", "1.1"), ("-1k", "-1000"), ("-1536Mi", "-1.5Gi"),
    ("1500e-6", "1.5e-3"), ("1e21", "1000E"), ("9223372036854775807", "8Ei"), ("0", "-0"),
    ("0", "0Gi"), ("0", "."), ("1G", "1.000G"), ("6144", "6144.0"),
])
def test_canonical(canonical: str, alternate: str) -> None:
    assert quantity.canonical_quantity(alternate) == canonical
    assert quantity.canonical_quantity(canonical) == canonical


@pytest.mark.parametrize("text", [
    # already canonical, kept as written
    "1Ki", "1Mi", "1000Mi", "1001Mi", "10Gi", "100m", "1e3", "80e-3", "300e6", "1234567M",
    "1025", "1n", "80n", "1080n", "1u", "3k", "1E", "1e-3", "5", "-1", "10", "100", "500m",
])
def test_canonical_strings_are_kept(text: str) -> None:
    assert quantity.canonical_quantity(text) == text


@pytest.mark.parametrize("text", [
    # Kubernetes keeps the caller's string whenever its fast path finds it "canonical",
    # even when the spelling is unusual; the apiserver returns these unchanged.
    "+1", "1E3", "1.500k", "1e03", "+1Gi", "1.G", "01",
])
def test_unusual_spellings_kept_like_kubernetes(text: str) -> None:
    assert quantity.canonical_quantity(text) == text


@pytest.mark.parametrize("raw, canonical", [
    (" 1", "1"), ("1 ", "1"), (1, "1"), (10, "10"), (-1, "-1"), (1000, "1k"), (1.5, "1500m"),
    (" 1Gi ", "1Gi"), (0.5, "500m"),
])
def test_canonical_json_quantity(raw: object, canonical: str) -> None:
    assert quantity.canonical_json_quantity(raw) == canonical


@pytest.mark.parametrize("raw", [None, True, [1], {"a": 1}, float("inf"), "x"])
def test_canonical_json_quantity_rejects(raw: object) -> None:
    with pytest.raises(QuantityError):
        quantity.canonical_json_quantity(raw)


@pytest.mark.parametrize("value, binary, text", [
    (0, True, "0"), (0, False, "0"),
    (2**30, True, "1Gi"), (2**30, False, "1073741824"), (10**9, False, "1G"),
    (1536 * 2**20, True, "1536Mi"), (5, True, "5"), (1023, True, "1023"), (1024, True, "1Ki"),
    (2000, True, "2000"), (-2000, True, "-2000"), (Fraction(1, 2), True, "500m"),
    (Fraction(1, 3), False, "333333334n"), (-(2**31), True, "-2Gi"), (3000, False, "3k"),
    (10**21, False, "1e21"), (5 * 10**21, False, "5e21"),
])
def test_format_quantity(value: int | Fraction, binary: bool, text: str) -> None:
    assert quantity.format_quantity(value, binary) == text


def test_parse_reports_format() -> None:
    assert quantity.parse("1Gi").format is quantity.Format.BINARY_SI
    assert quantity.parse("1G").format is quantity.Format.DECIMAL_SI
    assert quantity.parse("1e9").format is quantity.Format.DECIMAL_EXPONENT
    # a tiny binary value turns decimal, as in Kubernetes' slow path
    assert quantity.parse(".000000000001Ki").format is quantity.Format.DECIMAL_SI


def test_huge_exponent_is_fast() -> None:
    # bounded work even for an absurd exponent
    with pytest.raises(QuantityError):
        quantity.parse_quantity("1e999999999")


@pytest.mark.parametrize("raw, stored", [
    # every ResourceList value is rounded up to a milli (SetDefaults_ResourceList)
    ("1500u", "2m"), ("100m", "100m"), ("1n", "1m"), ("-1500u", "-2m"), ("1Gi", "1Gi"),
    (" 2Gi", "2Gi"), ("1.5Gi", "1536Mi"), ("0.0001Ki", "103m"), (5, "5"), (0.25, "250m"),
    ("1e3", "1e3"), ("1000", "1k"),
])
def test_canonical_resource_quantity(raw: object, stored: str) -> None:
    assert quantity.canonical_resource_quantity(raw) == stored


def test_round_up_to_milli_keeps_exact_values() -> None:
    q = quantity.parse("+1")
    assert quantity.round_up_to_milli(q) is q  # already milli-exact: the kept string survives
