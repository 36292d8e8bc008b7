"""JSON Merge Patch (RFC 7386), the `application/merge-patch+json` patch type.

`kubectl patch --type=merge`, `kubectl label`/`annotate` and most controllers that only
touch maps send a partial object: members replace, `null` deletes, objects merge
recursively and arrays are replaced whole. The one liberty kube-apiserver takes (through
evanphx/json-patch) is that nulls inside objects it inserts are dropped even when those
objects sit in an array; the typed decoding that follows would drop them anyway.
"""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(doc, patch) on copies; `doc` and `patch` are never changed."""
    if not isinstance(patch, dict):
        return _without_nulls(patch)
    target = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
