"""The REST verbs every resource shares, mounted for one `ResourceType` at a time.

`install(router, rt)` adds Kubernetes' paths for a resource: the collection (list, watch,
create, deletecollection), the cluster-wide list of a namespaced resource, the item (get,
update, patch, delete) and its `status` subresource. Handlers parse the request, call the
registry in a worker thread and render the answer; errors leave as `Status` objects through
the app's exception handler.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from apimachinery import errors as api_errors
from apimachinery import fields as field_selectors
from apimachinery import jsonwire
from apimachinery import labels as label_selectors
from apimachinery import patch as patches
from apiserver import resources, threads, wire
from apiserver.registry import DeleteOptions, ListOptions, Registry
from apiserver.routes import fastpath

Obj = dict[str, Any]
ResourceType = resources.ResourceType
Handler = Callable[[Request], Awaitable[Response]]

DEFAULT_WATCH_TIMEOUT = 1800
WATCH_QUEUE = 64  # events between the store's subscription and the response
STALL_TIMEOUT = 5.0  # seconds a full watcher may block before it is dropped
BOOKMARK_EVERY = 60.0


def registry_of(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


# Every path `install` adds, for the direct dispatcher in front of FastAPI's router.
ROUTES = fastpath.RouteTable()


def install(router: APIRouter, rt: ResourceType) -> None:
    """Add every path of `rt` to `router` (and to `ROUTES`)."""
    _install(_Both(router), rt)


class _Both:
    """Adds a route to FastAPI's router and to the direct table alike."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router

    def add_api_route(self, path: str, handler: Handler, methods: list[str]) -> None:
        self.router.add_api_route(path, handler, methods=methods)
        for method in methods:
            ROUTES.add(method, path, handler)


def _install(router: _Both, rt: ResourceType) -> None:
    base = rt.path_prefix
    collection = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced \
        else f"{base}/{rt.plural}"
    item = f"{collection}/{{name}}"
    if not rt.persisted:
        router.add_api_route(collection, _create(rt), methods=["POST"])
        return
    router.add_api_route(collection, _collection_get(rt), methods=["GET"])
    router.add_api_route(collection, _create(rt), methods=["POST"])
    router.add_api_route(collection, _delete_collection(rt), methods=["DELETE"])
    if rt.namespaced:
        router.add_api_route(f"{base}/{rt.plural}", _collection_get(rt), methods=["GET"])
    router.add_api_route(item, _get(rt), methods=["GET"])
    router.add_api_route(item, _update(rt, ""), methods=["PUT"])
    router.add_api_route(item, _patch(rt, ""), methods=["PATCH"])
    router.add_api_route(item, _delete(rt), methods=["DELETE"])
    for sub in ("status", "finalize"):
        if sub in rt.subresources:
            router.add_api_route(f"{item}/{sub}", _get(rt), methods=["GET"])
            router.add_api_route(f"{item}/{sub}", _update(rt, sub), methods=["PUT"])
            router.add_api_route(f"{item}/{sub}", _patch(rt, sub), methods=["PATCH"])


def _ns(rt: ResourceType, request: Request) -> str | None:
    return request.path_params.get("namespace") if rt.namespaced else None


def _query_has(request: Request, name: bytes) -> bool:
    """Whether the raw query string could hold `name`: most requests (the controllers') have
    no query at all, and parsing one per request showed in profiles."""
    return name in request.scope.get("query_string", b"")


def _dry_run(request: Request) -> bool:
    if not _query_has(request, b"dryRun"):
        return False
    values = request.query_params.getlist("dryRun")
    for value in values:
        if value != "All":
            raise api_errors.bad_request(f'dryRun: Unsupported value: "{value}": supported '
                                         f'values: "All"')
    return bool(values)


def list_options(rt: ResourceType, request: Request) -> ListOptions:
    q = request.query_params
    try:
        label = label_selectors.parse(q["labelSelector"]) if q.get("labelSelector") else None
    except ValueError as e:
        raise api_errors.bad_request(f"unable to parse requirement: {e}") from e
    try:
        field = field_selectors.parse_for_kind(rt.kind, q["fieldSelector"]) \
            if q.get("fieldSelector") else None
    except ValueError as e:
        raise api_errors.bad_request(str(e)) from e
    limit = q.get("limit", "0")
    if not limit.isdigit():
        raise api_errors.bad_request(f'limit: Invalid value: "{limit}"')
    return ListOptions(label, field, int(limit), q.get("continue", ""),
                       q.get("resourceVersion", ""))


# ---- collection -----------------------------------------------------------------------

def _collection_get(rt: ResourceType) -> Handler:
    async def handler(request: Request) -> Response:
        opts = list_options(rt, request)
        if wire.flag(request, "watch"):
            return await serve_watch(rt, request, _ns(rt, request), opts)
        lst = await threads.run(registry_of(request).list, rt, _ns(rt, request), opts)
        return wire.render_list(request, rt.kind, lst)
    return handler


def _create(rt: ResourceType) -> Handler:
    async def handler(request: Request) -> Response:
        obj = wire.decode_object(await wire.read_body(request), wire.media_type(request))
        await _check_fields(request, rt, obj)
        if not rt.persisted:
            review = request.app.state.reviews
            return wire.json_response(await review(request, rt, obj), 201)
        created = await threads.run(registry_of(request).create, rt, _ns(rt, request),
                                          obj, dry_run=_dry_run(request))
        return wire.render(request, rt.kind, created, 201)
    return handler


async def _check_fields(request: Request, rt: ResourceType, obj: Obj,
                        decoding: bool = True) -> None:
    """`fieldValidation=Strict` (what kubectl sends): unknown fields are a 400.

    A body being decoded (create, update) says so as Go's decoder does; a patched object
    reports the bare strict decoding error, as kube-apiserver does for patches.
    """
    if not _query_has(request, b"fieldValidation"):
        return
    checker = getattr(request.app.state, "field_checker", None)
    mode = request.query_params.get("fieldValidation", "")
    if checker is None or mode not in ("Strict",):
        return
    unknown = checker(rt, obj)
    if unknown:
        raise _strict_error(rt, unknown, decoding)


def _strict_error(rt: ResourceType, unknown: list[str], decoding: bool) -> api_errors.APIError:
    message = "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown)
    if decoding:
        message = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: ' \
            + message
    return api_errors.bad_request(message)


def _check_patch_fields(request: Request, rt: ResourceType, content_type: str,
                        body: bytes) -> None:
    """Strict validation of what a merge or strategic patch sets (its directives aside).

    Only the patch's own fields are checked: the stored object also holds what the server
    set, which the client never sent.
    """
    if not _query_has(request, b"fieldValidation"):
        return
    checker = getattr(request.app.state, "field_checker", None)
    if checker is None or request.query_params.get("fieldValidation", "") != "Strict" or \
            content_type == patches.JSON_PATCH:
        return
    try:
        patch = json.loads(body)
    except ValueError:
        return  # apply_patch reports malformed bodies with Kubernetes' message
    if not isinstance(patch, dict):
        return
    unknown = checker(rt, _without_directives(patch))
    if unknown:
        raise _strict_error(rt, unknown, decoding=False)


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_without_directives(v) for v in value]
    return value


def _delete_collection(rt: ResourceType) -> Handler:
    async def handler(request: Request) -> Response:
        opts = list_options(rt, request)
        delete_opts = await _delete_options(request)
        registry = registry_of(request)

        def run() -> Obj:
            lst = registry.list(rt, _ns(rt, request), opts)
            for obj in lst["items"]:
                meta = obj["metadata"]
                try:
                    registry.delete(rt, meta.get("namespace"), meta["name"], delete_opts)
                except api_errors.APIError as e:
                    if e.code != 404:
                        raise
            return lst
        return wire.render_list(request, rt.kind, await threads.run(run))
    return handler


# ---- item -----------------------------------------------------------------------------

def _get(rt: ResourceType) -> Handler:
    async def handler(request: Request) -> Response:
        obj = await threads.run(registry_of(request).get, rt, _ns(rt, request),
                                      request.path_params["name"])
        return wire.render(request, rt.kind, obj)
    return handler


def _update(rt: ResourceType, subresource: str) -> Handler:
    async def handler(request: Request) -> Response:
        obj = wire.decode_object(await wire.read_body(request), wire.media_type(request))
        await _check_fields(request, rt, obj)
        updated = await threads.run(
            registry_of(request).update, rt, _ns(rt, request), request.path_params["name"], obj,
            subresource=subresource, dry_run=_dry_run(request))
        return wire.render(request, rt.kind, updated)
    return handler


def _patch(rt: ResourceType, subresource: str) -> Handler:
    async def handler(request: Request) -> Response:
        content_type = wire.media_type(request)
        if content_type not in patches.PATCH_CONTENT_TYPES:
            raise api_errors.unsupported_media_type(content_type)
        body = await wire.read_body(request)
        _check_patch_fields(request, rt, content_type, body)

        def apply(current: Obj) -> Obj:
            return patches.apply_patch(content_type, current, body, rt.kind)
        patched = await threads.run(
            registry_of(request).patch, rt, _ns(rt, request), request.path_params["name"],
            apply, subresource=subresource, dry_run=_dry_run(request))
        return wire.render(request, rt.kind, patched)
    return handler


async def _delete_options(request: Request) -> DeleteOptions:
    body = await wire.read_body(request)
    q = request.query_params
    options: Obj = wire.decode_object(body, "application/json") if body.strip() else {}
    grace = q.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
    policy = q.get("propagationPolicy", options.get("propagationPolicy") or "")
    if policy not in ("", "Orphan", "Background", "Foreground"):
        raise api_errors.bad_request(
            f'propagationPolicy: Unsupported value: "{policy}": supported values: "Foreground", '
            f'"Background", "Orphan", "nil"')
    pre = options.get("preconditions") or {}
    dry = bool(q.getlist("dryRun")) or bool(options.get("dryRun"))
    return DeleteOptions(policy, None if grace is None else int(grace), pre.get("uid", ""),
                         pre.get("resourceVersion", ""), dry)


def _delete(rt: ResourceType) -> Handler:
    async def handler(request: Request) -> Response:
        opts = await _delete_options(request)
        obj, gone = await threads.run(registry_of(request).delete, rt, _ns(rt, request),
                                            request.path_params["name"], opts)
        # kube-apiserver answers 202 only to the deprecated orphanDependents=false; a
        # deletion held by finalizers or grace (namespaces, pods) is still a 200.
        if gone and not rt.returns_deleted_object:
            return wire.json_response(_deleted_status(rt, obj))
        return wire.render(request, rt.kind, obj, 200)
    return handler


def _deleted_status(rt: ResourceType, obj: Obj) -> Obj:
    """What kube-apiserver answers when an object is gone at once (no ReturnDeletedObject)."""
    details: Obj = {"name": obj["metadata"]["name"], "kind": rt.plural,
                    "uid": obj["metadata"]["uid"]}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


# ---- watch ----------------------------------------------------------------------------

async def serve_watch(rt: ResourceType, request: Request, namespace: str | None,
                      opts: ListOptions) -> Response:
    """A chunked stream of `{"type": ..., "object": ...}` lines, as kube-apiserver sends.

    A pump task moves events from the registry into a bounded queue; the response reads
    the queue, adds bookmarks while idle, and ends at the timeout. When the client goes
    away the pump is cancelled and the store subscription released.
    """
    timeout = float(request.query_params.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
    bookmarks = wire.flag(request, "allowWatchBookmarks")
    table = wire.wants_table(request)
    registry = registry_of(request)
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=WATCH_QUEUE)
    dropped = asyncio.Event()
    pump = asyncio.create_task(_pump(registry.watch(rt, namespace, opts), queue, dropped))
    first = await _first_item(queue, pump)
    metrics = request.app.state.metrics
    metrics.watchers.inc()

    async def stream() -> AsyncIterator[bytes]:
        state = {"first": True}
        try:
            if first is not None:
                if isinstance(first, api_errors.APIError):
                    yield _encode({"type": "ERROR", "object": first.status()})
                    return
                yield _encode(_event_body(rt, request, first, table, state))
            async for line in _lines(rt, request, queue, timeout, bookmarks, table, state):
                yield line
        finally:
            metrics.watchers.dec()
            pump.cancel()
    return WatchResponse(stream(), wire.TABLE_MEDIA if table else "application/json",
                         dropped)


class WatchResponse(Response):
    """A chunked watch stream that the server can abandon.

    Unlike a plain streaming response, it stops when `dropped` is set even while a send is
    blocked on a client that stopped reading: the response returns unfinished and the HTTP
    server closes the connection, so the client re-watches. A client that goes away ends
    the stream at once.
    """

    def __init__(self, chunks: AsyncIterator[bytes], media_type: str,
                 dropped: asyncio.Event) -> None:
        super().__init__(media_type=media_type)
        self.chunks = chunks
        self.dropped = dropped

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Each chunk goes straight from the queue to the socket; a stop (the client went
        # away, or the store dropped this watcher) cancels the streaming task instead of
        # every await being raced against it: under load each extra task on an event's way
        # out cost a turn of the busy loop (py-spy: watch delivery p50 15 ms).
        streaming = asyncio.current_task()
        assert streaming is not None
        stopped = False

        async def stop_on(wait: Callable[[], Awaitable[Any]]) -> None:
            nonlocal stopped
            await wait()
            stopped = True
            streaming.cancel()

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
        stoppers = [asyncio.create_task(stop_on(disconnected)),
                    asyncio.create_task(stop_on(self.dropped.wait))]
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", str(self.media_type).encode()),
                                    (b"cache-control", b"no-cache, private")]})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not stopped:
                raise
            streaming.uncancel()  # ours: leave the response unfinished, the server closes it
        finally:
            for stopper in stoppers:
                stopper.cancel()
            await self.chunks.aclose()  # type: ignore[attr-defined]


_END = object()


async def _pump(events: AsyncIterator[Any], queue: asyncio.Queue[Any],
                dropped: asyncio.Event) -> None:
    """Registry events into the response's queue. When the store drops this watcher (it
    stopped reading) and the response is stuck sending, the response is cancelled: the
    connection closes and the client re-watches from its last revision."""
    try:
        async for event in events:
            if not queue.full():
                queue.put_nowait(event)
                continue
            try:
                async with asyncio.timeout(STALL_TIMEOUT):
                    await queue.put(event)
            except TimeoutError:
                # Like kube-apiserver's cacher: a watcher that cannot take events for this
                # long is terminated as unresponsive; it re-watches from its last revision.
                dropped.set()
                return
    except api_errors.APIError as e:
        await queue.put(e)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        try:
            queue.put_nowait(_END)
        except asyncio.QueueFull:
            dropped.set()


async def _first_item(queue: asyncio.Queue[Any], pump: asyncio.Task[None]) -> Any:
    """Wait briefly for the first event, so a too-old revision fails before streaming."""
    try:
        item = await asyncio.wait_for(queue.get(), timeout=0.05)
    except TimeoutError:
        return None
    if item is _END:
        await queue.put(_END)
        return None
    if isinstance(item, api_errors.APIError) and item.code != 410:
        pump.cancel()
        raise item
    return item


async def _lines(rt: ResourceType, request: Request, queue: asyncio.Queue[Any],
                 timeout: float, bookmarks: bool, table: bool,
                 state: dict[str, bool]) -> AsyncIterator[bytes]:
    """Encoded events; everything already queued goes out in one chunk."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_rv = ""
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            if queue.empty():
                async with asyncio.timeout(min(remaining, BOOKMARK_EVERY)):
                    item = await queue.get()
            else:
                item = queue.get_nowait()
        except TimeoutError:
            if bookmarks and last_rv:
                yield _encode(_bookmark(rt, last_rv))
            continue
        chunk: list[bytes] = []
        while True:
            if item is _END:
                if chunk:
                    yield b"".join(chunk)
                return
            if isinstance(item, api_errors.APIError):
                chunk.append(_encode({"type": "ERROR", "object": item.status()}))
                yield b"".join(chunk)
                return
            last_rv = item.object["metadata"].get("resourceVersion", last_rv)
            chunk.append(_encode(_event_body(rt, request, item, table, state)))
            if queue.empty() or len(chunk) >= 256:
                break
            item = queue.get_nowait()
        yield b"".join(chunk)


def _event_body(rt: ResourceType, request: Request, event: Any, table: bool,
                state: dict[str, bool]) -> Obj:
    obj = event.object
    if table:
        obj = wire.table_event_object(request, rt.kind, obj, state["first"])
        state["first"] = False
    return {"type": event.type, "object": obj}


def _bookmark(rt: ResourceType, last_rv: str) -> Obj:
    """Progress without a change: everything up to `last_rv` has been sent."""
    revision = last_rv
    return {"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                           "metadata": {"resourceVersion": revision}}}


def _encode(body: Obj) -> bytes:
    return jsonwire.dumps(body) + b"\n"
