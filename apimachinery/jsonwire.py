"""JSON for what the server reads and writes: compact, fast, exact.

orjson encodes and decodes several times faster than the standard library, which mattered
because the apiserver decodes every body and stored object it reads and encodes every object
it stores, answers and sends to watchers. The standard library defines what we accept: it
reads integers of any size, NaN and Infinity, lone surrogates and a byte-order mark, where
orjson refuses them or (integers beyond 64 bits) turns them into floats. So `dumps` falls
back to the standard library when orjson refuses, and `loads` uses it whenever orjson fails
or the text holds a run of 19 or more digits (which might be such an integer); nothing a
client sent is ever changed or refused here.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Digits to "0", everything else to ".": a run of 19 digits is then a plain substring search
# (a regular expression took longer than orjson's whole parse).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_LONG_RUN = b"0" * 19


def dumps(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON (UTF-8, no spaces); keys sorted when asked."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys,
                          ensure_ascii=False).encode()


def loads(data: bytes | str) -> Any:
    """What `json.loads(data)` answers (and raises), faster."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_RUN not in raw.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library decides, and words the error
    return json.loads(data)
