"""A direct dispatcher for the resource paths, in front of FastAPI's router.

FastAPI matches a request by trying each route's regular expression in turn and then wraps
the endpoint in several layers; with some two hundred resource routes that was a fifth of the
apiserver's CPU under `bench/provisioning.py` (py-spy). The generic resource handlers take
only a `Request`, so they need none of it: `generic.install` also records each path here,
segment by segment (a literal segment wins over a parameter, as the routes never overlap
otherwise), and `FastRoutes` calls the handler itself, turning errors into `Status` answers
as the app's exception handlers do. Everything it does not know, or a known path with a
method it lacks (405), goes on to FastAPI unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from apimachinery import errors as api_errors
from apiserver import wire

Handler = Callable[[Request], Awaitable[Response]]
logger = logging.getLogger(__name__)


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    parameter: _Node | None = None
    # method -> the handler and its parameters' names, in path order: routes through the
    # same node may name a parameter differently (`{namespace}/pods`, `{name}/status`).
    handlers: dict[str, tuple[Handler, tuple[str, ...]]] = field(default_factory=dict)


class RouteTable:
    """Path templates like `/api/v1/namespaces/{namespace}/pods/{name}` to handlers."""

    def __init__(self) -> None:
        self.root = _Node()

    def add(self, method: str, template: str, handler: Handler) -> None:
        node, names = self.root, []
        for segment in template.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("}"):
                names.append(segment[1:-1])
                if node.parameter is None:
                    node.parameter = _Node()
                node = node.parameter
            else:
                node = node.literal.setdefault(segment, _Node())
        # The first route added wins, as in FastAPI.
        node.handlers.setdefault(method, (handler, tuple(names)))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        if path.endswith("/"):
            return None  # FastAPI's answer (a redirect) stays FastAPI's
        values: list[str] = []
        node = self.root
        for segment in path[1:].split("/"):
            child = node.literal.get(segment)
            if child is None and node.parameter is not None and segment:
                values.append(segment)
                child = node.parameter
            if child is None:
                return None
            node = child
        found = node.handlers.get(method)
        if found is None:
            return None
        handler, names = found
        return handler, dict(zip(names, values, strict=True))


class FastRoutes:
    """ASGI: known resource paths straight to their handler, the rest to `app`."""

    def __init__(self, app: Any, table: RouteTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        found = self.table.match(scope["method"], scope["path"]) \
            if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        handler, params = found
        scope["app"] = self.app
        scope["path_params"] = params
        try:
            response = await handler(Request(scope, receive, send))
        except api_errors.APIError as e:
            response = wire.error_response(e)
        except Exception as e:
            logger.exception("internal error")
            response = wire.error_response(api_errors.internal(str(e)))
        await response(scope, receive, send)
