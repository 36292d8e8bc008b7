"""Reading requests and writing responses the way kube-apiserver does on the wire.

Bodies are JSON or YAML up to 3 MiB; anything else is a `Status` with the right code.
Responses are JSON, or a `meta.k8s.io/v1` Table when the client asks for one with
`Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (what kubectl get sends).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml
from fastapi import Request
from fastapi.responses import Response

from apimachinery import errors as api_errors
from apimachinery import jsonwire
from apiserver import printers, protowire

MAX_BODY = 3 * 1024 * 1024
TABLE_MEDIA = "application/json;as=Table;v=v1;g=meta.k8s.io"

Obj = dict[str, Any]


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise api_errors.too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise api_errors.too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


def decode_object(body: bytes, content_type: str) -> Obj:
    """A JSON or YAML object; malformed input is a 400 naming what is wrong."""
    if content_type in ("application/json", "", "*/*", "text/plain"):
        try:
            obj = jsonwire.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise api_errors.bad_request(f"error decoding JSON: {e}") from e
    elif content_type == protowire.MEDIA_TYPE:
        obj = protowire.decode(body)
    elif content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            obj = yaml.safe_load(body)
        except yaml.YAMLError as e:
            raise api_errors.bad_request(f"error converting YAML to JSON: {e}") from e
    else:
        raise api_errors.APIError(
            415, "UnsupportedMediaType",
            f'the body of the request was in an unknown format - accepted media types include: '
            f'application/json, application/yaml; got "{content_type}"')
    if not isinstance(obj, dict):
        raise api_errors.bad_request(
            "the object provided is unrecognized (must be of type map)")
    return obj


def wants_table(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))


def json_response(body: Obj, status: int = 200, media: str = "application/json") -> Response:
    return Response(jsonwire.dumps(body), status_code=status,
                    media_type=media)


def error_response(error: api_errors.APIError) -> Response:
    return json_response(error.status(), error.code)


def render(request: Request, kind: str, obj: Obj, status: int = 200) -> Response:
    """One object, as JSON or as a single-row Table."""
    if wants_table(request) and obj.get("kind") != "Status":
        table = printers.to_table(kind, [obj], list_meta={
            "resourceVersion": obj["metadata"].get("resourceVersion", "")},
            include_object=include_object(request), now=datetime.now(UTC))
        return json_response(table, status, TABLE_MEDIA)
    return json_response(obj, status)


def render_list(request: Request, kind: str, lst: Obj) -> Response:
    if wants_table(request):
        table = printers.to_table(kind, lst["items"], list_meta=lst["metadata"],
                                  include_object=include_object(request),
                                  now=datetime.now(UTC))
        return json_response(table, 200, TABLE_MEDIA)
    return json_response(lst)


def table_event_object(request: Request, kind: str, obj: Obj, first: bool) -> Obj:
    return printers.to_table(kind, [obj], list_meta={
        "resourceVersion": obj["metadata"].get("resourceVersion", "")},
        include_object=include_object(request), now=datetime.now(UTC),
        no_headers=not first)


def include_object(request: Request) -> str:
    value = request.query_params.get("includeObject", "Metadata")
    if value not in ("None", "Metadata", "Object"):
        raise api_errors.bad_request(f'includeObject: Unsupported value: "{value}"')
    return value


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")
