"""`pods/log` and `pods/exec`: the apiserver's streaming proxy to the pod's kubelet.

kube-apiserver answers these subresources itself only up to choosing the container (its
`validateContainer`) and finding the node; the bytes come from the kubelet's HTTPS port,
named in the Node's status (`addresses`, `daemonEndpoints.kubeletEndpoint.Port`). The
apiserver calls it with its own client certificate (`kube-apiserver-kubelet-client`, signed
by the cluster CA, issued once per process) and verifies the kubelet's serving certificate
against the same CA. Authorization has already happened in the security middleware
(`get pods/log`; `get pods/exec` for a WebSocket exec, as Kubernetes 1.32 checks it).

Exec follows 1.32's stream translator: the client's WebSocket is accepted first (v5 or v4
channel protocol) and a failure to reach the kubelet arrives as a `Status` on the error
channel; errors found before that (no such pod, bad container, no node) refuse the
handshake with their `Status`, and kubectl then retries over SPDY (a POST), which gets the
same error here; SPDY itself is not served.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import websockets.asyncio.client
import websockets.exceptions
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import Response, StreamingResponse
from starlette.requests import HTTPConnection

from apimachinery import errors as api_errors
from apiserver import pki, resources, threads, wire
from apiserver.routes import generic

Object = dict[str, Any]
router = APIRouter()
LOG_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/log"
EXEC_PATH = "/api/v1/namespaces/{namespace}/pods/{name}/exec"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
DEFAULT_KUBELET_PORT = 10250
# kube-apiserver's --kubelet-preferred-address-types, with InternalIP first: the kubelet
# here listens on its node IP, and a Hostname need not resolve to it.
PREFERRED_ADDRESS_TYPES = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP",
                           "ExternalDNS")
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_TRUE = ("true", "1", "True")
_ERROR_CHANNEL = 3


# --- pure decisions -------------------------------------------------------------------------

def choose_container(pod: Object, requested: str) -> str:
    """Kubernetes' validateContainer: the named container, or the only one there is."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in spec.get("containers") or []]
    every = [c["name"] for key in ("initContainers", "containers", "ephemeralContainers")
             for c in spec.get(key) or []]
    if requested:
        if requested not in every:
            raise api_errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise api_errors.bad_request(f"a container name must be specified for pod {name}")
    raise api_errors.bad_request(f"a container name must be specified for pod {name}, "
                                 f"choose one of: [{' '.join(every)}]")


def kubelet_endpoint(node: Object) -> tuple[str, int]:
    """Where the node's kubelet serves: a preferred address and the published port."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    port = int(((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {})
               .get("Port") or 0)
    for kind in PREFERRED_ADDRESS_TYPES:
        for address in addresses:
            if address.get("type") == kind and address.get("address"):
                return str(address["address"]), port if port > 0 else DEFAULT_KUBELET_PORT
    known = [f"{a.get('type')}: {a.get('address')}" for a in addresses]
    raise api_errors.internal(f"no preferred addresses found; known addresses: {known}")


def log_params(query: Any, name: str) -> list[tuple[str, str]]:
    """PodLogOptions, validated as ValidatePodLogOptions does, as the kubelet's query."""
    params: list[tuple[str, str]] = [(k, "true") for k in ("follow", "previous", "timestamps")
                                     if query.get(k, "") in _TRUE]
    causes: list[api_errors.Cause] = []
    for key, least, message in (("tailLines", 0, "must be greater than or equal to 0"),
                                ("limitBytes", 1, "must be greater than 0"),
                                ("sinceSeconds", 1, "must be greater than 0")):
        raw = query.get(key)
        if raw in (None, ""):
            continue
        try:
            value = int(raw)
        except ValueError as e:
            raise api_errors.bad_request(f'{key}: invalid value "{raw}": not an integer') from e
        if value < least:
            causes.append(api_errors.Cause(key, f"Invalid value: {value}: {message}"))
        params.append((key, str(value)))
    if query.get("sinceTime"):
        if query.get("sinceSeconds"):
            causes.append(api_errors.Cause("", "at most one of `sinceTime` or `sinceSeconds` "
                                               "may be specified", "FieldValueForbidden"))
        params.append(("sinceTime", query["sinceTime"]))
    if causes:
        raise api_errors.invalid("PodLogOptions", name, causes)
    return params


def exec_params(query: Any) -> list[tuple[str, str]]:
    """PodExecOptions as the kubelet's `/exec` query (input, output, error, tty, command)."""
    params = [(kubelet, "1") for option, kubelet in (("stdin", "input"), ("stdout", "output"),
                                                      ("stderr", "error"), ("tty", "tty"))
              if query.get(option, "") in _TRUE]
    return params + [("command", c) for c in query.getlist("command")]


def kubelet_error(code: int, body: str, name: str) -> api_errors.APIError:
    """A kubelet's refusal as the apiserver reports it (GenericHttpResponseChecker)."""
    text = body.strip() if code == 404 else body
    if code == 400:
        return api_errors.bad_request(text)
    if code == 404:
        return api_errors.APIError(404, "NotFound", text, {"name": name, "kind": "pods/log"})
    if code == 403:
        return api_errors.forbidden(text)
    return api_errors.internal(text)


# --- the kubelet client ---------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def kubelet_tls(pki_dir: Path) -> ssl.SSLContext:
    """TLS to kubelets: trust the cluster CA, present the apiserver's kubelet-client cert.

    The certificate (CN=kube-apiserver-kubelet-client, no groups: it grants nothing on the
    API itself) is issued when the first request needs it and kept beside the others.
    """
    issued = pki.ensure_pki(pki_dir)
    cert_pem, key_pem = pki.issue_client_cert(issued, KUBELET_CLIENT_USER)
    cert_path, key_path = pki_dir / "apiserver-kubelet-client.crt", \
        pki_dir / "apiserver-kubelet-client.key"
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert_pem, 0o644)
    context = ssl.create_default_context(cafile=str(issued.ca.cert))
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


async def _target(conn: HTTPConnection, namespace: str, name: str
                  ) -> tuple[Object, str, str, ssl.SSLContext]:
    """The pod, its container, the kubelet's base URL and the TLS to reach it."""
    registry = generic.registry_of(conn)  # type: ignore[arg-type]
    pod = await threads.run(registry.get, resources.PODS, namespace, name)
    container = choose_container(pod, conn.query_params.get("container", ""))
    node_name = (pod.get("spec") or {}).get("nodeName", "")
    if not node_name:
        return pod, container, "", ssl.create_default_context()
    node = await threads.run(registry.get, resources.NODES, None, node_name)
    host, port = kubelet_endpoint(node)
    host = f"[{host}]" if ":" in host else host
    tls = await threads.run(kubelet_tls, conn.app.state.config.pki_dir)
    return pod, container, f"{host}:{port}", tls


# --- logs -----------------------------------------------------------------------------------

@router.get(LOG_PATH)
async def pod_log(request: Request, namespace: str, name: str) -> Response:
    _pod, container, kubelet, tls = await _target(request, namespace, name)
    params = log_params(request.query_params, name)
    if not kubelet:
        return Response(b"", media_type="text/plain")  # not scheduled yet: no logs at all
    url = (f"https://{kubelet}/containerLogs/{namespace}/{name}/{container}?"
           f"{urllib.parse.urlencode(params)}")
    client = httpx.AsyncClient(verify=tls, trust_env=False,
                               timeout=httpx.Timeout(30, read=None))
    try:
        upstream = await client.send(client.build_request("GET", url), stream=True)
    except httpx.HTTPError as e:
        await client.aclose()
        raise api_errors.APIError(500, "", f'Get "{url}": {e}') from e
    if upstream.status_code != 200:
        body = (await upstream.aread())[:65536].decode(errors="replace")
        await client.aclose()
        raise kubelet_error(upstream.status_code, body, name)
    return StreamingResponse(_relay_log(upstream, client), media_type="text/plain")


async def _relay_log(upstream: httpx.Response, client: httpx.AsyncClient
                     ) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the kubelet went away mid-stream: end the log there, as a proxy does
    finally:
        await upstream.aclose()
        await client.aclose()


# --- exec -----------------------------------------------------------------------------------

@router.api_route(EXEC_PATH, methods=["GET", "POST"])
async def pod_exec_http(request: Request, namespace: str, name: str) -> Response:
    """Exec without WebSocket: kubectl's SPDY fallback, or a plain request."""
    _pod, _container, kubelet, _tls = await _target(request, namespace, name)
    if not kubelet:
        raise api_errors.bad_request(f"pod {name} does not have a host assigned")
    if not request.headers.get("upgrade"):
        raise api_errors.bad_request("Upgrade request required")
    raise api_errors.bad_request(
        f"unable to upgrade connection: {request.headers['upgrade']} is not supported; "
        f"use a WebSocket client ({', '.join(EXEC_PROTOCOLS)})")


@router.websocket(EXEC_PATH)
async def pod_exec(websocket: WebSocket, namespace: str, name: str) -> None:
    try:
        _pod, container, kubelet, tls = await _target(websocket, namespace, name)
        if not kubelet:
            raise api_errors.bad_request(f"pod {name} does not have a host assigned")
        protocol = next((p for p in websocket.scope.get("subprotocols") or []
                         if p in EXEC_PROTOCOLS), None)
        if protocol is None:
            raise api_errors.bad_request(
                f"unable to upgrade: none of the requested protocols is supported; "
                f"supported: {', '.join(EXEC_PROTOCOLS)}")
    except api_errors.APIError as e:
        await websocket.send_denial_response(wire.error_response(e))
        return
    await websocket.accept(subprotocol=protocol)
    url = (f"wss://{kubelet}/exec/{namespace}/{name}/{container}?"
           f"{urllib.parse.urlencode(exec_params(websocket.query_params))}")
    try:
        upstream = await websockets.asyncio.client.connect(
            url, ssl=tls, subprotocols=[protocol], max_size=None, proxy=None,  # type: ignore[list-item]
            open_timeout=30, ping_interval=None, compression=None)
    except websockets.exceptions.InvalidStatus as e:
        body = e.response.body.decode(errors="replace") if e.response.body else ""
        await _send_error(websocket, kubelet_error(e.response.status_code, body, name))
        return
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as e:
        await _send_error(websocket, api_errors.internal(f"error dialing backend: {e}"))
        return
    async with upstream:
        await _relay_exec(websocket, upstream)


async def _send_error(websocket: WebSocket, error: api_errors.APIError) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_bytes(bytes([_ERROR_CHANNEL]) + json.dumps(error.status()).encode())
        await websocket.close(1000)


async def _relay_exec(client: WebSocket, upstream: Any) -> None:
    """Messages both ways, unchanged, until the kubelet closes (after the exit status)."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_client_to_kubelet, client, upstream)
        try:
            async for message in upstream:
                if isinstance(message, bytes):
                    await client.send_bytes(message)
                else:
                    await client.send_text(message)
        except websockets.exceptions.ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - the client is gone; the kubelet side closes below
            tasks.cancel_scope.cancel()
            return
        code = upstream.close_code if upstream.close_code in (1000, 1001, 1011) else 1000
        with contextlib.suppress(Exception):
            await client.close(code)
        tasks.cancel_scope.cancel()


async def _client_to_kubelet(client: WebSocket, upstream: Any) -> None:
    while True:
        message = await client.receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close()
            return
        data = message.get("bytes")
        await upstream.send(data if data is not None else message.get("text") or "")
