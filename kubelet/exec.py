"""`kubectl exec` on the node: a Docker exec bridged to the channel.k8s.io WebSocket protocol.

Kubernetes' streaming protocol (v4/v5.channel.k8s.io) multiplexes stdin, stdout, stderr,
an error stream and terminal resizes over one WebSocket: each binary message starts with a
channel byte (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v5 adds channel 255 whose
payload names a stream the peer has finished writing (how stdin EOF travels). When the
command ends, the error channel carries a `Status` (Success, or NonZeroExitCode with the
exit code as an `ExitCode` cause), and the connection closes normally. Here the other end
is a Docker exec started through the low-level API on a hijacked socket, whose output
(without a TTY) comes in Docker's 8-byte-header frames.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import anyio.to_thread

logger = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
SUPPORTED_PROTOCOLS = (V5, V4)
_TRUE = ("1", "true", "True")


class ExecOptionsError(ValueError):
    """The exec request cannot run as asked; the message is what Kubernetes says."""


@dataclass(frozen=True)
class ExecOptions:
    """What to run and which streams to wire up (PodExecOptions, as query parameters)."""

    command: tuple[str, ...]
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


def parse_options(query: Mapping[str, str], commands: Sequence[str]) -> ExecOptions:
    """The options of a kubelet `/exec` request, validated as the kubelet does."""
    def flag(name: str) -> bool:
        return query.get(name, "") in _TRUE
    stdin, stdout, stderr, tty = flag("input") or flag("stdin"), flag("output") or flag(
        "stdout"), flag("error") or flag("stderr"), flag("tty")
    if not (stdin or stdout or stderr):
        raise ExecOptionsError("you must specify at least 1 of stdin, stdout, stderr")
    if not commands:
        raise ExecOptionsError("you must specify at least 1 command")
    # A terminal merges stderr into stdout: Kubernetes drops the stderr stream then.
    return ExecOptions(tuple(commands), stdin, stdout, stderr and not tty, tty)


def choose_protocol(offered: Sequence[str]) -> str | None:
    """The first protocol the client offers that we speak (clients list best first)."""
    return next((p for p in offered if p in SUPPORTED_PROTOCOLS), None)


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + data


def exit_status(exit_code: int) -> dict[str, Any]:
    """The error-channel Status for a finished command, as the kubelet writes it."""
    if exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]}}


def internal_error_status(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: "
            f"{message}", "reason": "InternalError", "code": 500,
            "details": {"causes": [{"message": message}]}}


@dataclass
class DockerDemuxer:
    """Splits Docker's multiplexed exec/attach output into (channel, bytes) pieces.

    Each Docker frame is an 8-byte header (stream type, three zero bytes, big-endian
    length) and the payload; type 1 is stdout and 2 stderr. Frames arrive cut anywhere.
    """

    buffer: bytes = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buffer += data
        out: list[tuple[int, bytes]] = []
        while len(self.buffer) >= 8:
            kind, size = self.buffer[0], struct.unpack(">I", self.buffer[4:8])[0]
            if len(self.buffer) < 8 + size:
                break
            payload, self.buffer = self.buffer[8:8 + size], self.buffer[8 + size:]
            if payload:
                out.append((STDERR if kind == 2 else STDOUT, payload))
        return out


class WebSocketLike(Protocol):
    """The part of Starlette's WebSocket the bridge uses."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def receive(self) -> Any: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass
class DockerExec:
    """One running Docker exec: its id and the hijacked connection to its streams."""

    api: Any  # docker.APIClient
    exec_id: str
    handle: Any  # what exec_start returned; kept so the connection is not collected
    sock: socket.socket
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def start(cls, api: Any, container_id: str, opts: ExecOptions) -> DockerExec:
        created = api.exec_create(container_id, list(opts.command), stdin=opts.stdin,
                                  stdout=opts.stdout, stderr=opts.stderr, tty=opts.tty)
        handle = api.exec_start(created["Id"], socket=True, tty=opts.tty)
        sock = getattr(handle, "_sock", handle)
        sock.settimeout(None)  # an idle shell is no error: the client's heartbeat is enough
        return cls(api, created["Id"], handle, sock)

    def read(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def close_stdin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already closed: the command has ended

    def resize(self, message: bytes) -> None:
        size = json.loads(message)
        self.api.exec_resize(self.exec_id, height=int(size.get("Height", 0)),
                             width=int(size.get("Width", 0)))

    def exit_code(self) -> int | None:
        """The command's exit code; Docker may need a moment after the stream ends."""
        for _ in range(50):
            info = self.api.exec_inspect(self.exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            time.sleep(0.05)
        return None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


async def bridge(ws: WebSocketLike, proc: DockerExec, opts: ExecOptions, protocol: str) -> None:
    """Carry bytes between the WebSocket and the exec until the command ends, then report
    its exit status on the error channel and close the connection normally."""
    # The kubelet announces the open streams with an empty message on the lowest one.
    first = STDOUT if opts.stdout else STDERR if opts.stderr else ERROR
    await ws.send_bytes(frame(first, b""))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_pump_input, ws, proc, protocol == V5)
        await _pump_output(ws, proc, opts.tty)
        code = await anyio.to_thread.run_sync(proc.exit_code)
        status = exit_status(code) if code is not None else internal_error_status(
            "error executing command in container: exit code unknown")
        try:
            await ws.send_bytes(frame(ERROR, json.dumps(status).encode()))
            await ws.close(1000)
        except Exception:  # noqa: BLE001 - the client went away first: nothing to tell
            logger.debug("exec client gone before the status was sent")
        tasks.cancel_scope.cancel()


async def _pump_output(ws: WebSocketLike, proc: DockerExec, tty: bool) -> None:
    demuxer = DockerDemuxer()
    while True:
        data = await anyio.to_thread.run_sync(proc.read, abandon_on_cancel=True)
        if not data:
            return
        pieces = [(STDOUT, data)] if tty else demuxer.feed(data)
        for channel, chunk in pieces:
            await ws.send_bytes(frame(channel, chunk))


async def _pump_input(ws: WebSocketLike, proc: DockerExec, stream_close: bool) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            await anyio.to_thread.run_sync(proc.close)  # ends the output pump too
            return
        data = message.get("bytes") or (message.get("text") or "").encode()
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel == STDIN:
            await anyio.to_thread.run_sync(proc.write, payload)
        elif channel == RESIZE:
            await anyio.to_thread.run_sync(proc.resize, payload)
        elif channel == CLOSE and stream_close and payload[:1] == bytes([STDIN]):
            await anyio.to_thread.run_sync(proc.close_stdin)
