"""Strategic merge patch, Kubernetes' own patch type, as kube-apiserver applies it.

kubectl apply, kubectl patch (its default type) and the kubelet's status updates send a
partial object that merges like a JSON merge patch, except that lists tagged `merge` in the
Go types (see `apimachinery.patch_schema`) merge element by element: by a merge key for
lists of maps, as a union for lists of primitives. Directives in the patch say more:

- `$patch: replace` in a map replaces the map; in a list element, replaces the list.
- `$patch: delete` in a map empties it; in a list element, removes the elements whose merge
  key matches.
- `$deleteFromPrimitiveList/<field>: [...]` removes those values from a primitive list.
- `$setElementOrder/<field>: [...]` fixes the order of a merged list (kubectl apply sends it
  for every merge list it changes); elements the patch does not mention keep their place.
- `$retainKeys: [...]` clears every member of the map not named (kubectl sends it for
  `spec.volumes[]`, so switching a volume from emptyDir to a claim drops the emptyDir).
- `null` deletes a member.

This follows staging/src/k8s.io/apimachinery/pkg/util/strategicpatch/patch.go
(`StrategicMergeMapPatch`, i.e. `mergeMap` with MergeParallelList and IgnoreUnmatchedNulls),
including its ordering rules. Values the patch inserts whole are cleaned of nulls and
directives, which is what decoding into Go types does to them in Kubernetes. The errors are
classes so `apimachinery.patch` can answer with kube-apiserver's status codes.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar, cast

from apimachinery import patch_schema
from apimachinery.patch_schema import FieldStrategy, KindSchema

DIRECTIVE = "$patch"
REPLACE = "replace"
DELETE = "delete"
MERGE = "merge"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER = "$setElementOrder"

_T = TypeVar("_T")


class StrategicMergeError(Exception):
    """A patch strategic merge cannot apply; kube-apiserver answers 500 with this text."""


class BadPatchFormat(StrategicMergeError):
    """A malformed directive (mergepatch.ErrBadPatchFormat...): a 400 Bad Request."""


class ListOfListsError(StrategicMergeError):
    """A list whose elements are lists, which the API never has: a 422."""

    def __init__(self) -> None:
        super().__init__("lists of lists are not supported")


_PRIMITIVE_LIST_FORMAT = "invalid patch format of primitive list"
_RETAIN_KEYS_FORMAT = "invalid patch format of retainKeys"
_SET_ORDER_FORMAT = "invalid patch format of setElementOrder list"


def strategic_merge_patch(doc: dict[str, Any], patch: dict[str, Any],
                          kind: str) -> dict[str, Any]:
    """Apply `patch` to a copy of `doc`, a `kind` object; neither argument is changed."""
    return merge_with_schema(doc, patch, patch_schema.schema_for(kind))


def merge_with_schema(doc: dict[str, Any], patch: dict[str, Any],
                      schema: KindSchema) -> dict[str, Any]:
    """`strategic_merge_patch` with the patch tags given explicitly (tests, unknown kinds)."""
    return _merge_map(copy.deepcopy(doc), copy.deepcopy(patch), "", schema)


# -- maps ------------------------------------------------------------------------------

def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: str,
               schema: KindSchema) -> dict[str, Any]:
    if DIRECTIVE in patch:
        return _map_directive(patch)
    _apply_retain_keys(original, patch)
    _merge_ordered_lists(original, patch, path, schema)
    deletions = {k: v for k, v in patch.items() if k.startswith(DELETE_FROM_PRIMITIVE_LIST)}
    for key, value in patch.items():
        # Other "$" keys are no field of any kind; typed decoding would drop them.
        if not key.startswith("$"):
            _merge_member(original, key, value, path, schema)
    for key, value in deletions.items():
        _delete_from_primitive_list(original, key, value, path)
    return original


def _map_directive(patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch[DIRECTIVE]
    if directive == REPLACE:
        return _clean({k: v for k, v in patch.items() if k != DIRECTIVE})
    if directive == DELETE:
        return {}
    raise StrategicMergeError(f"unknown patch type: {go_format(directive)} in map: "
                              f"{go_format(patch)}")


def _merge_member(original: dict[str, Any], key: str, value: Any, path: str,
                  schema: KindSchema) -> None:
    if value is None:
        original.pop(key, None)
        return
    current = original.get(key)
    same_type = type(current) is type(value)  # a separate name keeps mypy from narrowing
    if key not in original or not same_type:
        original[key] = _clean(value)
        return
    member_path = patch_schema.child_path(path, key)
    if isinstance(current, dict):
        original[key] = _merge_map(current, value, member_path, schema)
    elif isinstance(current, list):
        original[key] = _merge_list_field(current, value, member_path,
                                          schema.lookup(member_path), schema)
    else:
        original[key] = value


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: drop members of `original` the list does not name."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch.pop(RETAIN_KEYS)
    if not isinstance(retained, list) or not all(isinstance(k, str) for k in retained):
        raise BadPatchFormat(_RETAIN_KEYS_FORMAT)
    for key, value in patch.items():
        is_directive = key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER))
        if value is not None and not is_directive and key not in retained:
            raise BadPatchFormat(_RETAIN_KEYS_FORMAT)
    for key in [k for k in original if k not in retained]:
        del original[key]


def _directive_target(key: str, prefix: str, error: str) -> str:
    """The field a parallel-list directive (`<prefix>/<field>`) is about."""
    head, slash, name = key.partition("/")
    if head != prefix or not slash:
        raise BadPatchFormat(error)
    return name


def _delete_from_primitive_list(original: dict[str, Any], key: str, values: Any,
                                path: str) -> None:
    name = _directive_target(key, DELETE_FROM_PRIMITIVE_LIST, _PRIMITIVE_LIST_FORMAT)
    if values is None:
        original.pop(name, None)
        return
    if not isinstance(values, list):
        raise BadPatchFormat(_PRIMITIVE_LIST_FORMAT)
    current = original.get(name)
    # Deleting from a list that is not there is a no-op (Kubernetes used to add the
    # values instead, kubernetes#105146), and it deletes whatever the field's strategy
    # (kubernetes#110472).
    if not isinstance(current, list) or not current:
        return
    if _element_kind(current, values) == "map":
        raise BadPatchFormat(_PRIMITIVE_LIST_FORMAT)
    original[name] = [v for v in current if not any(_same(v, d) for d in values)]


# -- lists -----------------------------------------------------------------------------

def _merge_list_field(current: list[Any], patch: list[Any], path: str,
                      strategy: FieldStrategy, schema: KindSchema) -> list[Any]:
    if not strategy.merge:
        return _clean(patch)
    return _merge_list(current, patch, path, strategy.merge_key, schema)


def _merge_list(original: list[Any], patch: list[Any], path: str, merge_key: str,
                schema: KindSchema) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        merged = _unique(original + patch)
    else:
        if not merge_key:
            raise StrategicMergeError("cannot merge lists without merge key for type struct")
        original, patch = _apply_list_directives(original, patch, merge_key)
        merged = _merge_elements(original, patch, merge_key, path, schema)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_order(patch_items, server_only, patch, original, merge_key)


def _apply_list_directives(original: list[Any], patch: list[Any],
                           merge_key: str) -> tuple[list[Any], list[Any]]:
    """Handle `$patch` elements; return the original left and the plain patch elements."""
    plain: list[Any] = []
    replace = False
    for element in patch:
        if DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[DIRECTIVE]
        if directive == DELETE:
            key_value = _merge_key_value(element, merge_key)
            original = [o for o in original if not _key_matches(o, merge_key, key_value)]
        elif directive == REPLACE:
            replace = True
        elif directive == MERGE:
            raise StrategicMergeError("merging lists cannot yet be specified in the patch")
        else:
            raise StrategicMergeError(f"unknown patch type: {go_format(directive)} in map: "
                                      f"{go_format(element)}")
    if replace:
        return _clean(plain), []
    return original, plain


def _merge_elements(original: list[Any], patch: list[Any], merge_key: str, path: str,
                    schema: KindSchema) -> list[Any]:
    merged = list(original)
    for element in patch:
        key_value = _merge_key_value(element, merge_key)
        index = next((i for i, o in enumerate(merged)
                      if _key_matches(o, merge_key, key_value)), None)
        if index is None:
            merged.append(_clean(element))
        else:
            merged[index] = _merge_map(merged[index], element,
                                       patch_schema.element_path(path), schema)
    return merged


def _merge_ordered_lists(original: dict[str, Any], patch: dict[str, Any], path: str,
                         schema: KindSchema) -> None:
    """Merge every list that has a `$setElementOrder/<field>`, in that order."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        name = _directive_target(key, SET_ELEMENT_ORDER, _SET_ORDER_FORMAT)
        if not isinstance(order, list):
            raise StrategicMergeError(f"expected a []interface {{}}, but received a "
                                      f"{_go_type_name(order)}")
        current = _list_member(original, name)
        patch_list = _list_member(patch, name)
        patch.pop(name, None)
        merged = _ordered_list(current, patch_list, order,
                               patch_schema.child_path(path, name), schema)
        if merged is not None:
            original[name] = merged


def _ordered_list(current: list[Any] | None, patch_list: list[Any] | None,
                  order: list[Any], path: str, schema: KindSchema) -> list[Any] | None:
    strategy = schema.lookup(path)
    merge_key = strategy.merge_key
    _check_order(patch_list or [], order, merge_key)
    merged: list[Any]
    if current is not None and patch_list is not None:
        merged = _merge_list_field(current, patch_list, path, strategy, schema)
    elif current is not None:
        merged = current
    elif patch_list is not None:
        merged = _clean(patch_list)
    else:
        return None
    if not current and not patch_list:
        return merged
    _element_kind(current or [], patch_list or [])
    patch_items, server_only = _partition(merged, order, merge_key)
    return _normalize_order(patch_items, server_only, order, current or [], merge_key)


def _list_member(holder: dict[str, Any], name: str) -> list[Any] | None:
    if name not in holder:
        return None
    value = holder[name]
    if not isinstance(value, list):
        raise StrategicMergeError(f"expected a []interface {{}}, but received a "
                                  f"{_go_type_name(value)}")
    return value


def _check_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch's elements must appear in `$setElementOrder` and in the same order."""
    if not patch_list or not order:
        return
    elements = [e for e in patch_list if not (merge_key and _is_delete(e))]
    at, cursor = 0, 0
    while at < len(elements) and cursor < len(order):
        if isinstance(elements[at], dict) and DIRECTIVE in elements[at]:
            at += 1
            continue
        if _same_element(elements[at], order[cursor], merge_key):
            at += 1
        cursor += 1
    if at < len(elements):
        raise StrategicMergeError(f"The order in patch list:\n{go_format(patch_list)}\n "
                                  f"doesn't match {SET_ELEMENT_ORDER} list:\n"
                                  f"{go_format(order)}\n")


# -- ordering (normalizeElementOrder and friends in patch.go) --------------------------

def _partition(merged: list[Any], present_in: list[Any],
               merge_key: str) -> tuple[list[Any], list[Any]]:
    """Split `merged` into the elements `present_in` names and the server-only rest."""
    named: list[Any] = []
    server_only: list[Any] = []
    for item in merged:
        if merge_key:
            key_value = _merge_key_value(item, merge_key)
            found = any(_key_matches(p, merge_key, key_value) for p in present_in)
        else:
            found = any(_same(item, p) for p in present_in)
        (named if found else server_only).append(item)
    return named, server_only


def _normalize_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], merge_key: str) -> list[Any]:
    """Patch items in patch order, server items in server order, woven by server order."""
    patch_items = _sorted_by(patch_items, patch_order, merge_key)
    server_only = _sorted_by(server_only, server_order, merge_key)
    woven: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if right >= len(patch_items) or (
                left < len(server_only)
                and _before(server_only[left], patch_items[right], server_order, merge_key)):
            woven.append(server_only[left])
            left += 1
        else:
            woven.append(patch_items[right])
            right += 1
    return woven


def _before(server_item: Any, patch_item: Any, order: list[Any], merge_key: str) -> bool:
    """A server item goes first only when the server order knows both and says so."""
    server_at = _position(order, server_item, merge_key)
    patch_at = _position(order, patch_item, merge_key)
    return 0 <= server_at < patch_at


def _sorted_by(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    if merge_key:
        for item in items + order:
            _merge_key_value(item, merge_key)
        deleted = [i for i in items if _is_delete(i)]
        items = [i for i in items if not _is_delete(i)]
    else:
        deleted = []
    unknown = len(order)

    def rank(item: Any) -> int:
        at = _position(order, item, merge_key)
        return at if at >= 0 else unknown
    return sorted(items, key=rank) + deleted


def _position(items: list[Any], wanted: Any, merge_key: str) -> int:
    for at, item in enumerate(items):
        if _same_element(item, wanted, merge_key, strict=False):
            return at
    return -1


# -- elements --------------------------------------------------------------------------

def _element_kind(*lists: list[Any]) -> str:
    """"map" or "scalar" for lists whose elements share one type (sliceElementType)."""
    first: type | None = None
    for values in lists:
        for value in values:
            if isinstance(value, list):
                raise ListOfListsError
            if first is None:
                first = type(value)
            elif type(value) is not first:
                raise StrategicMergeError("list element types are not identical: "
                                          f"{go_format(list(lists))}")
    return "map" if first is dict else "scalar"


def _merge_key_value(element: Any, merge_key: str) -> Any:
    if not isinstance(element, dict):
        raise StrategicMergeError(f"expected a map[string]interface {{}}, but received a "
                                  f"{_go_type_name(element)}")
    if merge_key not in element:
        raise StrategicMergeError(f"map: {go_format(element)} does not contain declared "
                                  f"merge key: {merge_key}")
    return element[merge_key]


def _key_matches(element: Any, merge_key: str, key_value: Any) -> bool:
    return isinstance(element, dict) and merge_key in element and _same(element[merge_key],
                                                                          key_value)


def _same_element(left: Any, right: Any, merge_key: str, strict: bool = True) -> bool:
    if not merge_key:
        return _same(left, right)
    if strict:
        return _same(_merge_key_value(left, merge_key), _merge_key_value(right, merge_key))
    return (isinstance(left, dict) and isinstance(right, dict)
            and _same(left.get(merge_key), right.get(merge_key)))


def _is_delete(element: Any) -> bool:
    if not isinstance(element, dict):
        raise StrategicMergeError(f"expected a map[string]interface {{}}, but received a "
                                  f"{_go_type_name(element)}")
    return element.get(DIRECTIVE) == DELETE


def _same(left: Any, right: Any) -> bool:
    """Go's interface equality on JSON scalars: the types must match too (1 is not true)."""
    return type(left) is type(right) and bool(left == right)


def _unique(values: list[Any]) -> list[Any]:
    seen: set[tuple[type, Any]] = set()
    unique: list[Any] = []
    for value in values:
        if (type(value), value) not in seen:
            seen.add((type(value), value))
            unique.append(value)
    return unique


def _clean(value: _T) -> _T:
    """What decoding into Go types leaves of a value taken whole: no nulls, no directives."""
    if isinstance(value, dict):
        return cast(_T, {k: _clean(v) for k, v in value.items()
                         if v is not None and not k.startswith("$")})
    if isinstance(value, list):
        return cast(_T, [_clean(item) for item in value])
    return value


def _go_type_name(value: Any) -> str:
    names = {dict: "map[string]interface {}", list: "[]interface {}", str: "string",
             bool: "bool", int: "int64", float: "float64"}
    return names.get(type(value), "<nil>")


def go_format(value: Any) -> str:
    """`value` as Go's %v prints decoded JSON, for error texts that match Kubernetes'."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
