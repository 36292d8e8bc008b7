"""PATCH request bodies applied to stored objects, with kube-apiserver's answers on failure.

A PATCH names its dialect in Content-Type: `application/json-patch+json` (RFC 6902,
`apimachinery.patch_json`), `application/merge-patch+json` (RFC 7386,
`apimachinery.patch_merge`) or `application/strategic-merge-patch+json` (Kubernetes' own,
`apimachinery.patch_strategic`). `apply_patch` decodes the body, applies it to a copy of
the stored object and turns every failure into the `APIError` kube-apiserver would send
(staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go):

- a body that is not JSON, or not the right JSON shape: 400 BadRequest;
- a JSON patch operation that fails (a `test` that does not match, a path that does not
  exist): 422 Invalid with the generic "the server rejected our request due to an error in
  our request" and no details, exactly as Kubernetes hides the reason;
- more than 10000 JSON patch operations: 413;
- a merge patch that is not an object: 400 "Invalid JSON Patch" (an array: 422 on decoding);
- a strategic merge patch with a malformed directive: 400; a list of lists: 422; anything
  else it cannot merge (say an element without its merge key): 500 with the message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from apimachinery import errors, patch_json, patch_merge, patch_strategic
from apimachinery.patch_json import JSONPatchError, json_patch
from apimachinery.patch_merge import merge_patch
from apimachinery.patch_strategic import strategic_merge_patch

__all__ = [
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "PATCH_CONTENT_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)
MAX_JSON_PATCH_OPERATIONS = 10000

Object = dict[str, Any]


def apply_patch(content_type: str, original: Object, patch_body: bytes, kind: str) -> Object:
    """The object `patch_body` makes of `original` (left unchanged); raises `APIError`."""
    media_type = content_type.split(";", 1)[0].strip()
    applier = _APPLIERS.get(media_type)
    if applier is None:
        raise errors.unsupported_media_type(content_type)
    return applier(original, patch_body, kind)


def _apply_json_patch(original: Object, body: bytes, kind: str) -> Object:
    ops = _decode(body)
    if ops is None:
        ops = []  # Go decodes `null` into an empty patch
    if not isinstance(ops, list):
        raise errors.bad_request(_unmarshal_message(ops, "jsonpatch.Patch"))
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise errors.bad_request(_unmarshal_message(op, "jsonpatch.Operation"))
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.APIError(413, "RequestEntityTooLarge", "Request entity too large: The "
                              f"allowed maximum operations in a JSON patch is "
                              f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    try:
        return patch_json.json_patch(original, ops)  # type: ignore[no-any-return]
    except JSONPatchError as e:
        raise _rejected() from e


def _apply_merge_patch(original: Object, body: bytes, kind: str) -> Object:
    try:
        patch = _decode(body)
    except errors.APIError as e:
        raise errors.bad_request("Invalid JSON Patch") from e
    if patch is None or not isinstance(patch, (dict, list)):
        raise errors.bad_request("Invalid JSON Patch")
    result = patch_merge.merge_patch(original, patch)
    if not isinstance(result, dict):
        raise _undecodable(result)
    return result


def _apply_strategic_merge_patch(original: Object, body: bytes, kind: str) -> Object:
    patch = _decode(body)
    if patch is None:
        patch = {}  # Go decodes `null` into the empty map it was given
    if not isinstance(patch, dict):
        raise errors.bad_request(_unmarshal_message(patch, "map[string]interface {}"))
    try:
        return patch_strategic.strategic_merge_patch(original, patch, kind)
    except patch_strategic.BadPatchFormat as e:
        raise errors.bad_request(str(e)) from e
    except patch_strategic.ListOfListsError as e:
        raise _rejected() from e
    except patch_strategic.StrategicMergeError as e:
        # Not a Status error in Kubernetes: the handler answers 500 with reason Unknown.
        raise errors.APIError(500, "", str(e)) from e


_APPLIERS: dict[str, Callable[[Object, bytes, str], Object]] = {
    JSON_PATCH: _apply_json_patch,
    MERGE_PATCH: _apply_merge_patch,
    STRATEGIC_MERGE_PATCH: _apply_strategic_merge_patch,
}


def _rejected() -> errors.APIError:
    """NewGenericServerResponse(422, ...): Kubernetes drops the underlying message."""
    return errors.APIError(422, "Invalid",
                           "the server rejected our request due to an error in our request")


def _undecodable(result: Any) -> errors.APIError:
    """The patched document is no object; Kubernetes fails decoding it into its type."""
    text = json.dumps(result, separators=(",", ":"))
    detail = ("couldn't get version/kind; json parse error: json: cannot unmarshal "
              f"{_json_type(result)} into Go value of type struct {{ APIVersion string "
              '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    cause = errors.Cause("patch", f"Invalid value: {json.dumps(text)}: {detail}")
    return errors.invalid("", "", [cause])


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError as e:
        raise errors.bad_request(_syntax_message(body, e)) from e


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _syntax_message(body: bytes, error: ValueError) -> str:
    """Go's encoding/json wording, near enough, for a body that is not JSON."""
    if not isinstance(error, json.JSONDecodeError):
        return str(error)
    text = error.doc
    if error.pos >= len(text.rstrip()):
        return "unexpected end of JSON input"
    return f"invalid character {text[error.pos]!r} looking for beginning of value"


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _unmarshal_message(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {_json_type(value)} into Go value of type {go_type}"
