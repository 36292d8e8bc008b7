"""Kubernetes `resource.Quantity`: parsing and the canonical string the API returns.

Storage sizes, CPU and memory travel as Quantity strings ("10Gi", "500m", "1e3"). Clients
compare what they sent with what the apiserver hands back, so the string we store must be
exactly the one kube-apiserver would store: Kubernetes keeps the caller's string when it is
already canonical and otherwise re-renders it (binary suffixes stay binary, decimal stay
decimal, exponent form stays exponent form), rounds anything finer than a nano up, and caps
binary quantities at 2^63-1. This module mirrors apimachinery's `quantity.go` rule by rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from fractions import Fraction

SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
FORMAT_WRONG = f"quantities must match the regular expression '{SPLIT_RE}'"
NUMERIC_WRONG = "unable to parse numeric part of quantity"
SUFFIX_WRONG = "unable to parse quantity's suffix"

_NANO = Fraction(1, 10**9)
_MAX_ALLOWED = 2**63 - 1
_MAX_INT64_FACTORS = 18
# Kubernetes accepts any int32 exponent; a number with 10^2000000000 in it would stall the
# server, so exponents beyond this bound are refused as a bad suffix.
_MAX_EXPONENT = 1000

_DIGITS = "0123456789"
_SUFFIX_LETTERS = "eEinumkKMGTP"


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; the message is Kubernetes' own."""


class Format(str, Enum):
    """How a quantity is rendered, as in apimachinery's `resource.Format`."""

    DECIMAL_EXPONENT = "DecimalExponent"
    BINARY_SI = "BinarySI"
    DECIMAL_SI = "DecimalSI"


_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
                     "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {e: s for s, e in _BINARY_SUFFIXES.items()} | {0: ""}


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity: its exact value, its format, and the string Kubernetes returns."""

    value: Fraction
    format: Format
    canonical: str


@dataclass(frozen=True)
class _Scanned:
    """The pieces of a quantity string, as apimachinery's `parseQuantityString` splits it."""

    positive: bool
    value: str  # sign, numerator and fraction as written (leading zeros kept)
    num: str  # numerator without leading zeros ("0" when empty)
    denom: str  # digits after the point
    suffix: str


def _scan_digits(s: str, pos: int) -> int:
    while pos < len(s) and s[pos] in _DIGITS:
        pos += 1
    return pos


def _scan(s: str) -> _Scanned:
    positive = not s.startswith("-")
    pos = 1 if s[:1] in ("-", "+") else 0
    while pos < len(s) and s[pos] == "0":
        pos += 1
    if pos >= len(s):  # only a sign and zeros: Kubernetes reads that as zero
        return _Scanned(positive, "0", "0", "", "")
    end = _scan_digits(s, pos)
    num = s[pos:end] or "0"
    denom = ""
    if end < len(s) and s[end] == ".":
        denom_end = _scan_digits(s, end + 1)
        denom, end = s[end + 1:denom_end], denom_end
    return _Scanned(positive, s[:end], num, denom, _scan_suffix(s, end))


def _scan_suffix(s: str, start: int) -> str:
    pos = start
    while pos < len(s) and s[pos] in _SUFFIX_LETTERS:
        pos += 1
    if pos < len(s) and s[pos] in "+-":
        pos += 1
    if _scan_digits(s, pos) != len(s):
        raise QuantityError(FORMAT_WRONG)
    return s[start:]


def _interpret(suffix: str) -> tuple[int, int, Format]:
    """Return (base, exponent, format) for a suffix, as apimachinery's suffixer does."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], Format.DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], Format.BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            exponent = int(suffix[1:], 10)
        except ValueError:
            raise QuantityError(SUFFIX_WRONG) from None
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(SUFFIX_WRONG)
        return 10, exponent, Format.DECIMAL_EXPONENT
    raise QuantityError(SUFFIX_WRONG)


def _fast_path(sc: _Scanned, exponent: int, fmt: Format) -> tuple[Fraction, bool] | None:
    """Kubernetes' int64 fast path: the exact value and whether the input string is kept.

    Returns None when Kubernetes would take its arbitrary-precision path instead.
    """
    if fmt is Format.BINARY_SI:
        if sc.denom:
            return None
        precision = 15 - len(sc.num) - (exponent * 3) // 10 - 1
        scale, multiplier = 0, 1 << exponent
    else:
        precision = _MAX_INT64_FACTORS - len(sc.num) - len(sc.denom)
        scale, multiplier = exponent - len(sc.denom), 1
    if precision < 0 or scale < -9:
        return None
    shifted = sc.num + sc.denom
    digits = int(shifted)
    if digits * multiplier > _MAX_ALLOWED:
        return None
    value = Fraction(digits * multiplier) * Fraction(10) ** scale
    if fmt is Format.BINARY_SI:
        keep = digits & 0x07 != 0
    else:
        keep = scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
    return (value if sc.positive else -value), keep


def _slow_path(sc: _Scanned, base: int, exponent: int, fmt: Format) -> tuple[Fraction, Format]:
    """Kubernetes' inf.Dec path: round up to a nano, cap binary values at 2^63-1."""
    try:
        amount = abs(Fraction(Decimal(sc.value)))
    except (InvalidOperation, ValueError):
        raise QuantityError(NUMERIC_WRONG) from None
    amount *= Fraction(base) ** exponent
    if amount:
        amount = Fraction(math.ceil(amount / _NANO)) * _NANO
    if fmt is Format.BINARY_SI:
        amount = min(amount, Fraction(_MAX_ALLOWED))
        if 0 < amount < 1:
            fmt = Format.DECIMAL_SI
    return (amount if sc.positive else -amount), fmt


def parse(s: str) -> Quantity:
    """Parse a quantity string exactly as `resource.ParseQuantity` does."""
    if not s:
        raise QuantityError(FORMAT_WRONG)
    if s == "0":
        return Quantity(Fraction(0), Format.DECIMAL_SI, "0")
    sc = _scan(s)
    base, exponent, fmt = _interpret(sc.suffix)
    fast = _fast_path(sc, exponent, fmt)
    if fast is not None:
        value, keep = fast
        return Quantity(value, fmt, s if keep else format_value(value, fmt))
    value, fmt = _slow_path(sc, base, exponent, fmt)
    return Quantity(value, fmt, format_value(value, fmt))


def parse_quantity(s: str) -> Fraction:
    """The exact value of a quantity string; raises QuantityError when it is not one."""
    return parse(s).value


def canonical_quantity(s: str) -> str:
    """The string kube-apiserver returns for a quantity written as `s`."""
    return parse(s).canonical


def canonical_json_quantity(raw: object) -> str:
    """Canonical form of a quantity as found in a decoded JSON object.

    Kubernetes also accepts a JSON number and trims surrounding whitespace from strings.
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise QuantityError(FORMAT_WRONG)
    text = raw.strip() if isinstance(raw, str) else _number_text(raw)
    return canonical_quantity(text)


def _number_text(number: float) -> str:
    if isinstance(number, float):
        if not math.isfinite(number):
            raise QuantityError(FORMAT_WRONG)
        return format(Decimal(repr(number)), "f")
    return str(number)


def format_quantity(value: Fraction | int, binary: bool) -> str:
    """Render a computed value (a sum, a requested size) the way Kubernetes prints it.

    Values finer than a nano are rounded up first, as Kubernetes does on parse.
    """
    amount = Fraction(value)
    if amount.denominator != 1:
        magnitude = Fraction(math.ceil(abs(amount) / _NANO)) * _NANO
        amount = magnitude if amount > 0 else -magnitude
    return format_value(amount, Format.BINARY_SI if binary else Format.DECIMAL_SI)


def format_value(value: Fraction, fmt: Format) -> str:
    """Kubernetes' `CanonicalizeBytes` for an exact value (at most nano precision)."""
    if value == 0:
        return "0"
    if fmt is Format.BINARY_SI:
        if -1024 < value < 1024 or value.denominator != 1:
            fmt = Format.DECIMAL_SI  # keeps small and fractional values exact
        else:
            return _format_binary(int(value))
    mantissa, exponent = _decimal_parts(value)
    if fmt is Format.DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
    # Beyond exa (or below nano) there is no SI suffix: Kubernetes falls back to
    # exponent notation rather than dropping the magnitude.
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)


def _format_binary(value: int) -> str:
    magnitude, times = abs(value), 0
    while magnitude >= 1024 and magnitude % 1024 == 0 and times < 6:
        magnitude, times = magnitude // 1024, times + 1
    sign = "-" if value < 0 else ""
    return f"{sign}{magnitude}{_BINARY_BY_EXPONENT[times * 10]}"


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with value = mantissa * 10^exponent and exponent a multiple of 3."""
    exponent = 0
    while value.denominator != 1:
        value, exponent = value * 10, exponent - 1
    mantissa = int(value)
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    aligned = 3 * (exponent // 3)
    return mantissa * 10 ** (exponent - aligned), aligned


def round_up_to_milli(q: Quantity) -> Quantity:
    """Kubernetes' `RoundUp(Milli)`, applied to every ResourceList by SetDefaults_ResourceList.

    A value finer than a milli rounds up (away from zero) and loses its kept string.
    """
    scaled = q.value * 1000
    if scaled.denominator == 1:
        return q
    magnitude = Fraction(math.ceil(abs(scaled)), 1000)
    value = magnitude if q.value > 0 else -magnitude
    return Quantity(value, q.format, format_value(value, q.format))


def canonical_resource_quantity(raw: object) -> str:
    """The string Kubernetes stores for a value in a ResourceList (capacity, requests ...).

    Accepts what JSON decoding yields (strings, whole or decimal numbers) and rounds to milli.
    """
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise QuantityError(FORMAT_WRONG)
    text = raw.strip() if isinstance(raw, str) else _number_text(raw)
    return round_up_to_milli(parse(text)).canonical
