"""The kubelet's own HTTPS server: container logs and exec, as the apiserver reaches them.

A real kubelet listens on port 10250 with a serving certificate and accepts only clients
whose certificate the cluster CA signed; the apiserver proxies `pods/log` and `pods/exec`
to `/containerLogs/{ns}/{pod}/{container}` and `/exec/{ns}/{pod}/{container}` here after
authorizing the user itself. The kubelet still authorizes its caller: members of
`system:masters` and the apiserver's kubelet-client identity. Which Docker container
answers follows the kubelet's rules (`validateContainerLogStatus`): the container IDs in the
pod's latest status, the current instance or, with `previous`, the last terminated one.
Uvicorn serves on a thread of its own, next to the kubelet's sync loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import docker.errors
import uvicorn
from cryptography import x509
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from kubelet import exec as exec_module

Object = dict[str, Any]
logger = logging.getLogger(__name__)
MASTERS_GROUP = "system:masters"
APISERVER_CLIENT_USER = "kube-apiserver-kubelet-client"
PodLookup = Callable[[str, str], Object | None]


class LookupFailed(Exception):
    """The request names no container we can serve; `code` is the HTTP status to answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ServingConfig:
    """Where and how the kubelet serves: address, port and its TLS files."""

    address: str
    port: int
    cert_file: Path
    key_file: Path
    client_ca_file: Path


# --- who may call ---------------------------------------------------------------------------

def subject(der: bytes) -> tuple[str, tuple[str, ...]]:
    """The user (CN) and groups (O) of a client certificate, as Kubernetes reads them."""
    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def allowed(user: str, groups: tuple[str, ...]) -> bool:
    """The kubelet's authorizer: cluster admins and the apiserver's kubelet client."""
    return MASTERS_GROUP in groups or user == APISERVER_CLIENT_USER


def _peer_cert(transport: Any) -> bytes | None:
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return der or None


class _CertHttp(HttpToolsProtocol):
    """HTTP/1.1 that hands the verified client certificate to the app in the scope."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        der = _peer_cert(self.transport)
        if der:
            self.scope["extensions"] = {"tls": {"client_cert": der}}  # type: ignore[typeddict-unknown-key]


class _CertWebSocket(WebSocketsSansIOProtocol):
    """WebSockets that carry the client certificate, like `_CertHttp`."""

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        der = _peer_cert(self.transport)
        if der and hasattr(self, "scope"):
            self.scope["extensions"]["tls"] = {"client_cert": der}  # type: ignore[index]


class AuthMiddleware:
    """401 without a client certificate, 403 for a caller the kubelet does not serve."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        der = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert")
        if not der:
            await _deny(scope, receive, send, PlainTextResponse("Unauthorized", 401))
            return
        user, groups = subject(der)
        if not allowed(user, groups):
            verb = "create" if scope["type"] == "websocket" else "get"
            text = f"Forbidden (user={user}, verb={verb}, resource=nodes, subresource=proxy)"
            await _deny(scope, receive, send, PlainTextResponse(text, 403))
            return
        await self.app(scope, receive, send)


async def _deny(scope: Any, receive: Any, send: Any, response: Response) -> None:
    if scope["type"] == "websocket":
        await WebSocket(scope, receive, send).send_denial_response(response)
    else:
        await response(scope, receive, send)


# --- which container ------------------------------------------------------------------------

def find_spec_container(pod: Object, container: str) -> bool:
    spec = pod.get("spec") or {}
    names = [c.get("name") for key in ("containers", "initContainers")
             for c in spec.get(key) or []]
    return container in names


def log_container_id(pod: Object, container: str, previous: bool) -> str:
    """The Docker container whose logs answer, by the kubelet's validateContainerLogStatus."""
    name = pod["metadata"]["name"]
    status = _status_of(pod, container)
    if status is None:
        raise LookupFailed(400, f'container "{container}" in pod "{name}" is not available')
    state, last = status.get("state") or {}, status.get("lastState") or {}
    last_id = (last.get("terminated") or {}).get("containerID", "")
    if previous:
        if not last_id:
            raise LookupFailed(400, f'previous terminated container "{container}" in pod '
                                    f'"{name}" not found')
        return _docker_id(last_id)
    if "running" in state:
        return _docker_id(status.get("containerID", ""))
    if "terminated" in state:
        current = state["terminated"].get("containerID", "") or last_id
        if not current:
            raise LookupFailed(400, f'container "{container}" in pod "{name}" is terminated')
        return _docker_id(current)
    if last_id:
        return _docker_id(last_id)
    reason = (state.get("waiting") or {}).get("reason", "")
    if reason == "ErrImagePull":
        reason = "image can't be pulled"
    elif reason == "ImagePullBackOff":
        reason = "trying and failing to pull image"
    if not reason:
        raise LookupFailed(400, f'container "{container}" in pod "{name}" is waiting to '
                                f'start - no logs yet')
    raise LookupFailed(400, f'container "{container}" in pod "{name}" is waiting to start: '
                            f'{reason}')


def running_container_id(pod: Object, container: str) -> str:
    """The running Docker container an exec goes into (the kubelet's findContainer)."""
    status = _status_of(pod, container)
    if status is None or "running" not in (status.get("state") or {}):
        raise LookupFailed(500, f'container not found ("{container}")')
    return _docker_id(status.get("containerID", ""))


def _status_of(pod: Object, container: str) -> Object | None:
    """The container's status, app or init container alike."""
    st = pod.get("status") or {}
    statuses = (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or [])
    return next((s for s in statuses if s.get("name") == container), None)


def _docker_id(container_id: str) -> str:
    return container_id.partition("://")[2] or container_id


# --- log options ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LogOptions:
    """PodLogOptions as the kubelet receives them in the query."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since: float | None = None  # epoch seconds
    limit_bytes: int | None = None


def parse_log_options(query: Any, now: float) -> LogOptions:
    def flag(name: str) -> bool:
        return str(query.get(name, "")).lower() in ("true", "1")

    def number(name: str) -> int | None:
        value = query.get(name)
        try:
            return int(value) if value not in (None, "") else None
        except ValueError as e:
            raise LookupFailed(400, f"invalid {name}: {value!r}") from e
    since_seconds, since_time = number("sinceSeconds"), query.get("sinceTime")
    since: float | None = now - since_seconds if since_seconds is not None else None
    if since_time:
        try:
            since = datetime.datetime.fromisoformat(since_time).timestamp()
        except ValueError as e:
            raise LookupFailed(400, f"invalid sinceTime: {since_time!r}") from e
    return LogOptions(flag("follow"), flag("previous"), flag("timestamps"), number("tailLines"),
                      since, number("limitBytes"))


# --- the app --------------------------------------------------------------------------------

class KubeletApp:
    """The routes, over a way to find pods (the kubelet's view) and the Docker client."""

    def __init__(self, pods: PodLookup, docker_api: Any) -> None:
        self.pods, self.docker = pods, docker_api

    def asgi(self) -> Any:
        app = Starlette(routes=[
            Route("/healthz", lambda _r: PlainTextResponse("ok")),
            Route("/containerLogs/{namespace}/{pod}/{container}", self.logs),
            WebSocketRoute("/exec/{namespace}/{pod}/{container}", self.exec),
        ])
        return AuthMiddleware(app)

    def _pod(self, namespace: str, name: str, container: str) -> Object:
        pod = self.pods(namespace, name)
        if pod is None:
            raise LookupFailed(404, f'pod "{name}" does not exist\n')
        if not find_spec_container(pod, container):
            raise LookupFailed(404, f'container "{container}" not found in pod "{name}"\n')
        return pod

    async def logs(self, request: Request) -> Response:
        p = request.path_params
        try:
            opts = parse_log_options(request.query_params, time.time())
            pod = self._pod(p["namespace"], p["pod"], p["container"])
            container_id = log_container_id(pod, p["container"], opts.previous)
            stream = await anyio.to_thread.run_sync(self._open_logs, container_id, opts)
        except LookupFailed as e:
            return PlainTextResponse(str(e), e.code)
        return StreamingResponse(_relay(stream, opts.limit_bytes), media_type="text/plain")

    def _open_logs(self, container_id: str, opts: LogOptions) -> Any:
        try:
            return self.docker.logs(container_id, stdout=True, stderr=True, stream=True,
                                    follow=opts.follow, timestamps=opts.timestamps,
                                    tail=opts.tail_lines if opts.tail_lines is not None
                                    else "all", since=opts.since)
        except docker.errors.NotFound as e:
            raise LookupFailed(404, f"failed to get container logs: {e.explanation}") from e
        except docker.errors.APIError as e:
            raise LookupFailed(500, f"failed to get container logs: {e.explanation}") from e

    async def exec(self, ws: WebSocket) -> None:
        p = ws.path_params
        try:
            opts = exec_module.parse_options(ws.query_params, ws.query_params.getlist("command"))
            pod = self._pod(p["namespace"], p["pod"], p["container"])
            container_id = running_container_id(pod, p["container"])
        except exec_module.ExecOptionsError as e:
            await ws.send_denial_response(PlainTextResponse(str(e), 400))
            return
        except LookupFailed as e:
            await ws.send_denial_response(PlainTextResponse(str(e), e.code))
            return
        protocol = exec_module.choose_protocol(ws.scope.get("subprotocols") or [])
        if protocol is None:
            await ws.send_denial_response(PlainTextResponse(
                f"unable to upgrade: no supported protocol; supported: "
                f"{list(exec_module.SUPPORTED_PROTOCOLS)}", 400))
            return
        await ws.accept(subprotocol=protocol)
        await self._run_exec(ws, container_id, opts, protocol)

    async def _run_exec(self, ws: WebSocket, container_id: str, opts: exec_module.ExecOptions,
                        protocol: str) -> None:
        try:
            proc = await anyio.to_thread.run_sync(exec_module.DockerExec.start, self.docker,
                                                  container_id, opts)
        except docker.errors.APIError as e:
            status = exec_module.internal_error_status(
                f"error executing command in container: {e.explanation or e}")
            await ws.send_bytes(exec_module.frame(exec_module.ERROR, json.dumps(status).encode()))
            await ws.close(1000)
            return
        try:
            await exec_module.bridge(ws, proc, opts, protocol)
        finally:
            await anyio.to_thread.run_sync(proc.close)


async def _relay(stream: Any, limit: int | None) -> AsyncIterator[bytes]:
    """Docker's log chunks as they come; closing the stream unblocks a waiting read."""
    sent = 0
    try:
        while limit is None or sent < limit:
            chunk = await anyio.to_thread.run_sync(next, stream, None, abandon_on_cancel=True)
            if chunk is None:
                return
            if limit is not None:
                chunk = chunk[:limit - sent]
            sent += len(chunk)
            yield chunk
    finally:
        await anyio.to_thread.run_sync(stream.close)


# --- serving --------------------------------------------------------------------------------

class KubeletServer:
    """Binds the port at once and serves on a thread.

    Several kubelets may share one machine here (unlike real nodes), so when the port is
    taken the kubelet takes a free one instead and says so: the Node's status publishes
    whichever port it got, and that is the one the apiserver dials.
    """

    def __init__(self, cfg: ServingConfig, app: Any) -> None:
        self.cfg, self.app = cfg, app
        try:
            self.sock = _listen(cfg.address, cfg.port)
        except OSError as e:
            if cfg.port == 0:
                raise
            self.sock = _listen(cfg.address, 0)
            logger.warning("kubelet port %d unavailable (%s): serving on %d instead",
                           cfg.port, e.strerror, self.port)
        self.server: uvicorn.Server | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", lifespan="off",
            http=_CertHttp, ws=_CertWebSocket, timeout_graceful_shutdown=1,
            ssl_certfile=str(self.cfg.cert_file), ssl_keyfile=str(self.cfg.key_file),
            ssl_ca_certs=str(self.cfg.client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
        self.server = uvicorn.Server(config)
        threading.Thread(target=self._serve, name="kubelet-server", daemon=True).start()
        logger.info("kubelet serving logs and exec on https://%s:%d", self.cfg.address,
                    self.port)

    def _serve(self) -> None:
        assert self.server is not None
        asyncio.run(self.server.serve(sockets=[self.sock]))


def _listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
