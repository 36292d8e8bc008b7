"""The direct dispatcher must pick exactly the handler FastAPI's router would pick."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import Match

from apiserver import app as app_module
from apiserver import config
from apiserver.routes import fastpath, generic


@pytest.fixture(scope="module")
def fastapi_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("data")
    cfg = config.ServerConfig(data_dir=data, tls=False)
    wrapped = app_module.create_app(cfg, secure=False)
    while not hasattr(wrapped, "router"):
        wrapped = wrapped.app
    return wrapped


def _sample(path_template: str) -> str:
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: f"x-{m.group(1)}", path_template)


def _routes(router: Any) -> list[Any]:
    """Every route, looking into included routers (FastAPI keeps them nested)."""
    found = []
    for route in router.routes:
        inner = getattr(route, "original_router", None)
        found += _routes(inner) if inner is not None else [route]
    return found


def _fastapi_choice(app: Any, method: str, path: str) -> Any:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "app": app}
    for route in _routes(app.router):  # in FastAPI's order of precedence
        match, child = route.matches(scope)
        if match == Match.FULL:
            return child["endpoint"], child.get("path_params", {})
    return None


def test_every_resource_route_dispatches_as_fastapi_does(fastapi_app: Any) -> None:
    checked = 0
    for route in _routes(fastapi_app.router):
        for method in getattr(route, "methods", None) or ():
            path = _sample(route.path)
            found = generic.ROUTES.match(method, path)
            if found is None:
                continue
            handler, params = found
            assert _fastapi_choice(fastapi_app, method, path) == (handler, params), \
                f"{method} {route.path}"
            checked += 1
    assert checked > 100  # the generic routes of every resource type (127 today)


@pytest.mark.parametrize(("method", "path", "params"), [
    ("GET", "/api/v1/namespaces/team-a/persistentvolumeclaims/data",
     {"namespace": "team-a", "name": "data"}),
    ("PUT", "/api/v1/namespaces/team-a/persistentvolumeclaims/data/status",
     {"namespace": "team-a", "name": "data"}),
    ("GET", "/api/v1/namespaces/status", {"name": "status"}),  # a namespace named status
    ("PUT", "/api/v1/namespaces/team-a/finalize", {"name": "team-a"}),
    ("GET", "/api/v1/persistentvolumes", {}),
    ("GET", "/apis/storage.k8s.io/v1/storageclasses/fast", {"name": "fast"}),
])
def test_paths_match_with_their_parameters(method: str, path: str,
                                           params: dict[str, str]) -> None:
    found = generic.ROUTES.match(method, path)
    assert found is not None and found[1] == params


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/namespaces/team-a/pods/p/binding"),  # its own route, FastAPI's
    ("GET", "/api/v1/namespaces/team-a/pods/p/log"),
    ("GET", "/apis/storage.k8s.io/v1"),  # discovery
    ("GET", "/api/v1/namespaces/team-a/nosuchthings"),
    ("GET", "/api/v1/persistentvolumes/"),  # trailing slash: FastAPI redirects
    ("GET", "/api/v1/namespaces//pods"),
    ("POST", "/api/v1/namespaces/team-a/pods/p"),  # 405 comes from FastAPI
])
def test_everything_else_goes_on_to_fastapi(method: str, path: str) -> None:
    assert generic.ROUTES.match(method, path) is None


def test_first_route_added_wins() -> None:
    table = fastpath.RouteTable()

    async def first(_r: Any) -> Any: ...

    async def second(_r: Any) -> Any: ...

    table.add("GET", "/a/{x}", first)
    table.add("GET", "/a/{y}", second)
    assert table.match("GET", "/a/1") == (first, {"x": "1"})
