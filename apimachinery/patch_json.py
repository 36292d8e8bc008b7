"""JSON Patch (RFC 6902) as kube-apiserver applies it.

`kubectl patch --type=json`, admission webhooks and many controllers send a list of
operations (add, remove, replace, move, copy, test) addressed by JSON pointers (RFC 6901).
kube-apiserver applies them with evanphx/json-patch v4, whose few departures from the RFC
clients now rely on, so this module keeps them: `replace` of a missing object member adds
it, a member that holds `null` counts as missing, and `add`/`remove` accept negative array
indexes counted from the end. Every failure is a `JSONPatchError`; the apiserver answers
it with a bare 422 (see `apimachinery.patch`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

JSONValue = Any
Container = dict[str, Any] | list[Any]


class JSONPatchError(Exception):
    """An operation that cannot be applied to the document (RFC 6902 section 5)."""


class _NoContainer(Exception):
    """The pointer's parent does not exist; each operation words this its own way."""


def json_patch(doc: JSONValue, ops: list[Any]) -> JSONValue:
    """Apply `ops` in order to a copy of `doc` and return it; `doc` is never changed."""
    result = copy.deepcopy(doc)
    for op in ops:
        result = _apply_operation(result, op if isinstance(op, dict) else {})
    return result


def decode_pointer(pointer: str) -> list[str]:
    """The reference tokens of a JSON pointer, unescaped (`~1` is `/`, then `~0` is `~`)."""
    return [_unescape(token) for token in pointer.split("/")[1:]]


def _unescape(token: str) -> str:
    # RFC 6901 section 4: "~1" first, so that "~01" becomes "~1" and not "/".
    return token.replace("~1", "/").replace("~0", "~")


def _apply_operation(doc: JSONValue, op: dict[str, Any]) -> JSONValue:
    kind = op.get("op")
    handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        raise JSONPatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
    handler(doc, op)
    return doc


def _member(op: dict[str, Any], name: str) -> str:
    value = op.get(name)
    if value is None:
        raise JSONPatchError(f"operation missing {name} field: missing value")
    if not isinstance(value, str):
        raise JSONPatchError(f"{op.get('op')} operation failed to decode {name}")
    return value


def _parent(doc: JSONValue, pointer: str) -> tuple[Container, str]:
    """The container holding the pointer's last token, and that token.

    Like evanphx/json-patch, the first token is dropped unchecked (so the pointer should
    start with "/") and the whole document ("") cannot be addressed.
    """
    tokens = pointer.split("/")
    if len(tokens) < 2:
        raise _NoContainer
    node: JSONValue = doc
    for token in tokens[1:-1]:
        node = _step(node, _unescape(token))
    if not isinstance(node, (dict, list)):
        raise _NoContainer
    return node, _unescape(tokens[-1])


def _step(node: JSONValue, token: str) -> JSONValue:
    try:
        child = _get(node, token) if isinstance(node, (dict, list)) else None
    except JSONPatchError as e:
        raise _NoContainer from e
    if not isinstance(child, (dict, list)):
        raise _NoContainer
    return child


def _index(token: str) -> int:
    """An array index the way Go's strconv.Atoi reads it (signs and leading zeros allowed)."""
    digits = token[1:] if token[:1] in "+-" else token
    if not digits.isascii() or not digits.isdigit():
        raise JSONPatchError(f'strconv.Atoi: parsing "{token}": invalid syntax')
    return int(token)


def _invalid_index(index: int) -> JSONPatchError:
    return JSONPatchError(f"Unable to access invalid index: {index}: invalid index referenced")


def _get(container: Container, token: str) -> JSONValue:
    """The addressed value; a missing (or null) object member is None, not an error."""
    if isinstance(container, dict):
        return container.get(token)
    index = _index(token)
    if not 0 <= index < len(container):
        raise _invalid_index(index)
    return container[index]


def _add(container: Container, token: str, value: JSONValue) -> None:
    if isinstance(container, dict):
        container[token] = value
        return
    if token == "-":
        container.append(value)
        return
    index = _index(token)
    size = len(container) + 1
    if not -size <= index < size:
        raise _invalid_index(index)
    container.insert(index + size if index < 0 else index, value)


def _remove(container: Container, token: str) -> JSONValue:
    if isinstance(container, dict):
        if token not in container:
            raise JSONPatchError(f"Unable to remove nonexistent key: {token}: missing value")
        return container.pop(token)
    index = _index(token)
    if not -len(container) <= index < len(container):
        raise _invalid_index(index)
    return container.pop(index)


def _op_add(doc: JSONValue, op: dict[str, Any]) -> None:
    path = _member(op, "path")
    container, token = _located(doc, path, f'add operation does not apply: doc is missing '
                                f'path: "{path}": missing value')
    _wrapped(lambda: _add(container, token, copy.deepcopy(op.get("value"))),
             f"error in add for path: '{path}'")


def _op_remove(doc: JSONValue, op: dict[str, Any]) -> None:
    path = _member(op, "path")
    container, token = _located(doc, path, f'remove operation does not apply: doc is missing '
                                f'path: "{path}": missing value')
    _wrapped(lambda: _remove(container, token), f"error in remove for path: '{path}'")


def _op_replace(doc: JSONValue, op: dict[str, Any]) -> None:
    path = _member(op, "path")
    container, token = _located(doc, path, "replace operation does not apply: doc is missing "
                                f"path: {path}: missing value")
    try:
        _get(container, token)
    except JSONPatchError as e:
        raise JSONPatchError("replace operation does not apply: doc is missing key: "
                             f"{path}: missing value") from e
    value = copy.deepcopy(op.get("value"))
    if isinstance(container, dict):
        # json-patch v4 quirk kept on purpose: a missing member is added, not refused.
        container[token] = value
    else:
        container[_index(token)] = value


def _op_move(doc: JSONValue, op: dict[str, Any]) -> None:
    source = _member(op, "from")
    container, token = _located(doc, source, "move operation does not apply: doc is missing "
                                f"from path: {source}: missing value")
    value = _wrapped(lambda: _get(container, token), f"error in move for path: '{token}'")
    _wrapped(lambda: _remove(container, token), f"error in move for path: '{token}'")
    path = _member(op, "path")
    target, key = _located(doc, path, "move operation does not apply: doc is missing "
                           f"destination path: {path}: missing value")
    _wrapped(lambda: _add(target, key, value), f"error in move for path: '{path}'")


def _op_copy(doc: JSONValue, op: dict[str, Any]) -> None:
    source = _member(op, "from")
    container, token = _located(doc, source, "copy operation does not apply: doc is missing "
                                f"from path: {source}: missing value")
    value = _wrapped(lambda: _get(container, token), f"error in copy for from: '{source}'")
    path = _member(op, "path")
    target, key = _located(doc, path, "copy operation does not apply: doc is missing "
                           f"destination path: {path}: missing value")
    _wrapped(lambda: _add(target, key, copy.deepcopy(value)),
             "error while adding value during copy")


def _op_test(doc: JSONValue, op: dict[str, Any]) -> None:
    path = _member(op, "path")
    container, token = _located(doc, path, "test operation does not apply: is missing path: "
                                f"{path}: missing value")
    actual = _wrapped(lambda: _get(container, token), f"error in test for path: '{path}'")
    # A missing member and a null one are the same to json-patch v4; both match only null.
    if actual is None and "value" in op and op["value"] is None:
        return
    if actual is None or "value" not in op or not json_equal(actual, op["value"]):
        raise JSONPatchError(f"testing value {path} failed: test failed")


def json_equal(left: JSONValue, right: JSONValue) -> bool:
    """JSON equality: objects by members, arrays by position, and 1 differs from true."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k])
                                                   for k, v in left.items())
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _located(doc: JSONValue, pointer: str, message: str) -> tuple[Container, str]:
    try:
        return _parent(doc, pointer)
    except _NoContainer as e:
        raise JSONPatchError(message) from e


def _wrapped(action: Callable[[], JSONValue], context: str) -> JSONValue:
    """Run `action`, prefixing any failure with `context` as pkg/errors.Wrapf does."""
    try:
        return action()
    except JSONPatchError as e:
        raise JSONPatchError(f"{context}: {e}") from e


_HANDLERS: dict[str, Callable[[JSONValue, dict[str, Any]], None]] = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}
