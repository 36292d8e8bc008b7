"""jsonwire answers exactly what the standard library answers, only faster."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apimachinery import jsonwire

TRICKY = [
    b'{"a": 123456789012345678901234}',  # beyond 64 bits: an int, not a float
    b'{"a": 18446744073709551615, "b": -9223372036854775808}',
    b'{"a": "12345678901234567890"}',  # a long digit run inside a string
    b'{"a": 1, "a": 2}',
    b'{"a": 1e400}',
    b'"\\ud800"',  # a lone surrogate
    b'\xef\xbb\xbf{"bom": true}',
    b'{"x": 1.5, "y": -0, "z": 1E-7}',
    '{"é": "ü"}'.encode(),
]


@pytest.mark.parametrize("text", TRICKY)
def test_loads_matches_the_standard_library(text: bytes) -> None:
    assert repr(jsonwire.loads(text)) == repr(json.loads(text))


def test_nan_is_read_as_the_standard_library_reads_it() -> None:
    assert math.isnan(jsonwire.loads(b'{"a": NaN}')["a"])


@pytest.mark.parametrize("text", [b"[1,]", b'{"a":1} x', b"", b"\xff", b'{"a": }'])
def test_errors_are_the_standard_librarys(text: bytes) -> None:
    with pytest.raises(ValueError) as ours:
        jsonwire.loads(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@given(JSON)
def test_what_dumps_writes_loads_reads_back_unchanged(value: Any) -> None:
    again = jsonwire.loads(jsonwire.dumps(value))
    assert repr(again) == repr(value)
    assert repr(jsonwire.loads(json.dumps(value))) == repr(json.loads(json.dumps(value)))
