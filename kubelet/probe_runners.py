"""The three ways a kubelet checks a container (Kubernetes' pkg/probe): run a command in it,
GET a URL from it, open a TCP connection to it.

Each runner answers an `Outcome` and the output Kubernetes puts in its events: the command's
combined output (at most 10 KiB), the HTTP body or "HTTP probe failed with statuscode: N", or
Go's dial error ("dial tcp 172.17.0.3:80: connect: connection refused"). An HTTP probe
follows redirects only to the same host name (at most 10), as the kubelet's client does; a
redirect elsewhere ends the probe with a warning and no request leaves for the other host.
A runner that cannot probe at all (unknown named port, Docker refusing the exec) raises
`ProbeError`: the worker throws that result away instead of counting it.
"""

from __future__ import annotations

import enum
import errno
import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import docker.errors

from kubelet import exec as exec_module

Object = dict[str, Any]
MAX_OUTPUT = 10 * 1024  # exec output and HTTP bodies are cut here (maxReadLength)
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "kube-probe/1.32"  # kube-probe/<major>.<minor> of the kubelet version we report


class Outcome(enum.Enum):
    """pkg/probe's Result: what one run of a probe found."""

    SUCCESS = "success"
    WARNING = "warning"  # counts as success, with a ProbeWarning event
    FAILURE = "failure"
    UNKNOWN = "unknown"


class ProbeError(Exception):
    """The probe could not run; the message is what the Unhealthy "errored" event says."""


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    output: str


# --- ports ----------------------------------------------------------------------------------

def resolve_port(port: object, container: Object) -> int:
    """probe.ResolveContainerPort: a number, or the name of one of the container's ports
    (a name that matches none is tried as a number, as Kubernetes' last-ditch effort)."""
    if isinstance(port, bool) or port is None:
        raise ProbeError(f"intOrString had no kind: {port!r}")
    if isinstance(port, int):
        number = port
    else:
        named = [p.get("containerPort") for p in container.get("ports") or []
                 if p.get("name") == port]
        if named:
            number = int(named[0])
        else:
            try:
                number = int(str(port))
            except ValueError:
                raise ProbeError(f'strconv.Atoi: parsing "{port}": invalid syntax') from None
    if 0 < number < 65536:
        return number
    raise ProbeError(f"invalid port number: {number}")


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- exec -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExecResult:
    """What a Docker exec gave back: its output, and its exit code (None past the deadline)."""

    stdout: str
    stderr: str
    exit_code: int | None


def exec_sync(api: Any, container_id: str, command: Sequence[str], timeout_s: float
              ) -> ExecResult:
    """Run `command` in the container through a Docker exec (CRI's ExecSync) and wait at
    most `timeout_s` for it; each stream is cut at 10 KiB. Raises ProbeError when Docker
    refuses the exec."""
    if not command:
        raise ProbeError("exec probe has no command")
    try:
        created = api.exec_create(container_id, list(command), stdout=True, stderr=True)
        handle = api.exec_start(created["Id"], socket=True)
    except (docker.errors.DockerException, OSError) as e:  # refused, or Docker unreachable
        raise ProbeError(str(getattr(e, "explanation", None) or e)) from e
    sock = getattr(handle, "_sock", handle)
    deadline = time.monotonic() + timeout_s
    try:
        stdout, stderr, finished = _read_exec(sock, deadline)
    finally:
        _close(sock)
    code = _exit_code(api, created["Id"], deadline) if finished else None
    return ExecResult(stdout.decode(errors="replace"), stderr.decode(errors="replace"), code)


def run_exec(api: Any, container_id: str, command: Sequence[str], timeout_s: float) -> Answer:
    """An exec probe: exit 0 is success. Past `timeout_s` the probe fails with the words of
    Kubernetes' CRI client (the command itself is left to finish, as with a CRI ExecSync
    that timed out)."""
    result = exec_sync(api, container_id, command, timeout_s)
    if result.exit_code is None:
        return Answer(Outcome.FAILURE, f'command "{" ".join(command)}" timed out')
    output = (result.stdout + result.stderr)[:MAX_OUTPUT]
    return Answer(Outcome.SUCCESS if result.exit_code == 0 else Outcome.FAILURE, output)


def _read_exec(sock: socket.socket, deadline: float) -> tuple[bytes, bytes, bool]:
    """(stdout, stderr, whether the stream ended before the deadline)."""
    demuxer = exec_module.DockerDemuxer()
    out = {exec_module.STDOUT: b"", exec_module.STDERR: b""}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out[exec_module.STDOUT], out[exec_module.STDERR], False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            data = b""
        if not data:
            return out[exec_module.STDOUT], out[exec_module.STDERR], True
        for channel, chunk in demuxer.feed(data):
            if len(out[channel]) < MAX_OUTPUT:
                out[channel] += chunk


def _exit_code(api: Any, exec_id: str, deadline: float) -> int | None:
    """The exec's exit code; Docker may need a moment after the stream ends."""
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() > deadline + 1.0:
            return None
        time.sleep(0.02)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


# --- httpGet --------------------------------------------------------------------------------

def probe_url(action: Object, container: Object, pod_ip: str) -> str:
    """GetProbeUrl: scheme (lower case, default http), host (default the pod IP), port (a
    number or a port name), path."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    host = str(action.get("host") or pod_ip)
    if not host:
        raise ProbeError("the pod has no IP address yet")
    port = resolve_port(action.get("port"), container)
    path = str(action.get("path") or "")
    if path and not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{join_host_port(host, port)}{path}"


def probe_headers(action: Object, user_agent: str = USER_AGENT) -> list[tuple[str, str]]:
    """The request headers: httpHeaders as given, User-Agent kube-probe/1.32 (or the
    lifecycle hooks' kube-lifecycle/1.32) and Accept */* unless given (an empty Accept given
    removes it), as newProbeRequest sets them."""
    given = [(str(h.get("name", "")), str(h.get("value", "")))
             for h in action.get("httpHeaders") or []]
    names = {n.lower() for n, _ in given}
    headers = [(n, v) for n, v in given if not (n.lower() == "accept" and not v)]
    if "user-agent" not in names:
        headers.append(("User-Agent", user_agent))
    if "accept" not in names:
        headers.append(("Accept", "*/*"))
    return headers


def http_outcome(status: int, body: str) -> Answer:
    """DoHTTPProbe's verdict on a response: 2xx success, 3xx (a redirect not followed) a
    warning, anything else a failure whose message never carries the body."""
    if 200 <= status < 400:
        if status >= 300:
            return Answer(Outcome.WARNING, f"Probe terminated redirects, Response body: {body}")
        return Answer(Outcome.SUCCESS, body)
    return Answer(Outcome.FAILURE, f"HTTP probe failed with statuscode: {status}")


class HttpFailure(Exception):
    """The GET got no response; the message reads as Go's client error ('Get "url": ...')."""


def http_get(url: str, headers: Sequence[tuple[str, str]], timeout_s: float
             ) -> tuple[int, str]:
    """(status, body) of a GET of `url`, following same-host redirects (at most 10) as the
    kubelet's probe and lifecycle clients do; raises HttpFailure without a response."""
    deadline = time.monotonic() + timeout_s
    current, sent, made = url, list(headers), 0
    while True:
        try:
            status, location, body = _get(current, sent, deadline)
        except OSError as e:
            raise HttpFailure(f'Get "{current}": {_http_error(current, e)}') from e
        made += 1
        target = urllib.parse.urljoin(current, location) if location else ""
        if status not in REDIRECTS or not target or _hostname(target) != _hostname(url):
            return status, body  # a redirect elsewhere: http.ErrUseLastResponse
        if made >= MAX_REDIRECTS:  # Go's client names the Location it refused to follow
            raise HttpFailure(f'Get "{location}": stopped after {MAX_REDIRECTS} redirects')
        sent, current = _redirect_headers(sent, location), target


def run_http(url: str, headers: Sequence[tuple[str, str]], timeout_s: float) -> Answer:
    """An HTTP probe: GET `url`; every transport error is a failure whose output reads as
    Go's client error does."""
    try:
        return http_outcome(*http_get(url, headers, timeout_s))
    except HttpFailure as e:
        return Answer(Outcome.FAILURE, str(e))


def _hostname(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def _redirect_headers(headers: list[tuple[str, str]], location: str) -> list[tuple[str, str]]:
    """Go keeps a Host override only for a relative redirect."""
    if urllib.parse.urlsplit(location).netloc:
        return [(n, v) for n, v in headers if n.lower() != "host"]
    return headers


def _get(url: str, headers: Sequence[tuple[str, str]], deadline: float
         ) -> tuple[int, str, str]:
    """(status, Location, body up to 10 KiB) of one GET, within the deadline."""
    parts = urllib.parse.urlsplit(url)
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the kubelet's prober skips verification too
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=left,
                                           context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=left)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.putrequest("GET", target, skip_host=any(n.lower() == "host" for n, _ in headers),
                        skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Connection", "close")  # DisableKeepAlives
        conn.endheaders()
        response = conn.getresponse()
        body = response.read(MAX_OUTPUT).decode(errors="replace")
        return response.status, response.getheader("Location") or "", body
    finally:
        conn.close()


def _http_error(url: str, e: OSError) -> str:
    if isinstance(e, TimeoutError):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _dial_error(parts.hostname or "", port, e)


# --- tcpSocket ------------------------------------------------------------------------------

def run_tcp(host: str, port: int, timeout_s: float) -> Answer:
    """DoTCPProbe: a connection that opens is success; it is closed at once."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        return Answer(Outcome.FAILURE, _dial_error(host, port, e))
    return Answer(Outcome.SUCCESS, "")


def _dial_error(host: str, port: int, e: OSError) -> str:
    """Go's *net.OpError text for a failed dial."""
    where = f"dial tcp {join_host_port(host, port)}"
    if isinstance(e, TimeoutError):
        return f"{where}: i/o timeout"
    if e.errno == errno.ECONNREFUSED:
        return f"{where}: connect: connection refused"
    if e.errno == errno.EHOSTUNREACH:
        return f"{where}: connect: no route to host"
    return f"{where}: {e.strerror or e}"


def tcp_target(action: Object, container: Object, pod_ip: str) -> tuple[str, int]:
    host = str(action.get("host") or pod_ip)
    if not host:
        raise ProbeError("the pod has no IP address yet")
    return host, resolve_port(action.get("port"), container)


def static_env(container: Object) -> Mapping[str, str]:
    """The container's env entries with a literal value: the only ones an exec probe's
    command may reference (ExpandContainerCommandOnlyStatic)."""
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or []
            if "valueFrom" not in e and "name" in e}
