"""Just enough Kubernetes protobuf to read the bodies kubectl sends only as protobuf.

kubectl's typed commands (`kubectl auth can-i`, `kubectl auth whoami`, `kubectl create
namespace|configmap|secret`) post their object with `Content-Type:
application/vnd.kubernetes.protobuf` and accept JSON back. The body is
the `k8s\\0` magic, a `runtime.Unknown` envelope, and the object's message; this module
decodes those two kinds into the JSON shape the rest of the server uses. Everything else is
JSON, as kubectl sends it.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors as api_errors

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Field numbers from k8s.io/api/authorization/v1/generated.proto.
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                        6: "subresource", 7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Top-level fields of one message: number -> values (bytes for length-delimited)."""
    out: dict[int, list[bytes | int]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
            out.setdefault(number, []).append(value)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            out.setdefault(number, []).append(data[pos:pos + length])
            pos += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            out.setdefault(number, []).append(data[pos:pos + size])
            pos += size
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return out


def _strings(data: bytes, names: dict[int, str]) -> dict[str, str]:
    found = fields(data)
    return {name: bytes(found[n][0]).decode() for n, name in names.items()  # type: ignore[arg-type]
            if n in found}


def _first(found: dict[int, list[bytes | int]], number: int) -> bytes:
    value = found.get(number, [b""])[0]
    return value if isinstance(value, bytes) else b""


def _string_map(entries: list[bytes | int], as_bytes: bool = False) -> dict[str, str]:
    """A proto map<string, string|bytes>; bytes values become base64, as in JSON."""
    import base64
    out: dict[str, str] = {}
    for entry in entries:
        found = fields(entry if isinstance(entry, bytes) else b"")
        key = _first(found, 1).decode()
        value = _first(found, 2)
        out[key] = base64.b64encode(value).decode() if as_bytes else value.decode()
    return out


def _object_meta(data: bytes) -> dict[str, Any]:
    """What a client may set in ObjectMeta (meta/v1 generated.proto field numbers)."""
    found = fields(data)
    named = _strings(data, {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"})
    # Go's proto2 encoder sends empty strings too; JSON leaves them out.
    meta: dict[str, Any] = {k: v for k, v in named.items() if v}
    if 11 in found:
        meta["labels"] = _string_map(found[11])
    if 12 in found:
        meta["annotations"] = _string_map(found[12])
    if 14 in found:
        meta["finalizers"] = [bytes(v).decode() for v in found[14]  # type: ignore[arg-type]
                              if isinstance(v, bytes)]
    return meta


def _config_map(message: dict[int, list[bytes | int]]) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": _object_meta(_first(message, 1))}
    if 2 in message:
        obj["data"] = _string_map(message[2])
    if 3 in message:
        obj["binaryData"] = _string_map(message[3], as_bytes=True)
    if 4 in message:
        obj["immutable"] = bool(message[4][0])
    return obj


def _secret(message: dict[int, list[bytes | int]]) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": _object_meta(_first(message, 1))}
    if 2 in message:
        obj["data"] = _string_map(message[2], as_bytes=True)
    if 3 in message:
        obj["type"] = _first(message, 3).decode()
    if 4 in message:
        obj["stringData"] = _string_map(message[4])
    if 5 in message:
        obj["immutable"] = bool(message[5][0])
    return obj


def _namespace(message: dict[int, list[bytes | int]]) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": _object_meta(_first(message, 1))}
    spec = fields(_first(message, 2))
    if 1 in spec:
        obj["spec"] = {"finalizers": [bytes(v).decode() for v in spec[1]  # type: ignore[arg-type]
                                      if isinstance(v, bytes)]}
    return obj


_OBJECTS = {"ConfigMap": _config_map, "Secret": _secret, "Namespace": _namespace}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf SelfSubjectAccessReview or SelfSubjectRulesReview."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("missing k8s protobuf magic")
        envelope = fields(body[len(MAGIC):])
        type_meta = _strings(_first(envelope, 1), {1: "apiVersion", 2: "kind"})
        message = fields(_first(envelope, 2))
        spec = fields(_first(message, 2))
        kind = type_meta.get("kind", "")
        if kind == "SelfSubjectAccessReview":
            out: dict[str, Any] = {}
            if 1 in spec:
                out["resourceAttributes"] = _strings(_first(spec, 1), _RESOURCE_ATTRIBUTES)
            if 2 in spec:
                out["nonResourceAttributes"] = _strings(_first(spec, 2),
                                                        _NON_RESOURCE_ATTRIBUTES)
            return {**type_meta, "metadata": {}, "spec": out}
        if kind in _OBJECTS:
            return {**type_meta, **_OBJECTS[kind](message)}
        if kind == "SelfSubjectReview":
            return {**type_meta, "metadata": {}}
        if kind == "SelfSubjectRulesReview":
            return {**type_meta, "metadata": {},
                    "spec": _strings(_first(message, 2), {1: "namespace"})}
    except (ValueError, UnicodeDecodeError, IndexError) as e:
        raise api_errors.bad_request(f"unable to decode protobuf body: {e}") from e
    raise api_errors.APIError(415, "UnsupportedMediaType",
                              f"protobuf is accepted only for access reviews, namespaces, "
                              f"configmaps and secrets; send application/json for "
                              f"{kind or 'this object'}")
