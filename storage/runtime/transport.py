"""A lean HTTP/1.1 transport under the controllers' lightkube client.

httpx's default transport (httpcore over anyio, TLS through memory BIOs in Python) took about
four fifths of the provisioning controllers' CPU in `bench/provisioning.py` (py-spy), and the
controllers share two cores with the apiserver. This transport keeps the httpx interface that
lightkube is built on and does the work with asyncio's own TLS streams and httptools, the C
parser uvicorn uses: keep-alive connections pooled per host, bodies streamed to the caller as
they arrive (watches are long responses), the request's timeouts, and one new attempt when a
pooled connection turns out to have been closed by the server while idle, before any answer
(uvicorn closes idle connections after 5 s; such a request was never read).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httptools
import httpx2

# Below uvicorn's default keep-alive timeout (5 s): older idle connections are not reused.
IDLE_LIMIT = 4.0
MAX_IDLE_PER_HOST = 32
READ_SIZE = 256 * 1024

Key = tuple[str, str, int]


class _Closed(Exception):
    """The server closed the connection; `answered` says whether any response byte came."""

    def __init__(self, answered: bool) -> None:
        super().__init__("connection closed by the server")
        self.answered = answered


class _Connection:
    """One HTTP/1.1 connection; the httptools callbacks fill in the current response."""

    def __init__(self, key: Key, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.key, self.reader, self.writer = key, reader, writer
        self.idle_since = time.monotonic()
        self.reused = False
        self._reset()

    def _reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.head_done = self.complete = self.answered = self.keep_alive = False

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True
        # Asked here: once the message is complete the parser has reset and says False.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.complete = True

    def usable(self) -> bool:
        return (time.monotonic() - self.idle_since < IDLE_LIMIT
                and not self.reader.at_eof() and not self.writer.is_closing())

    async def send(self, request: httpx2.Request, body: bytes) -> None:
        self._reset()
        head = [f"{request.method} ".encode(), request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        self.writer.write(b"".join(head) + body)
        await self.writer.drain()

    async def fill(self, timeout: float | None) -> None:
        """Read once and parse; `_Closed` when the server has closed the connection."""
        async with asyncio.timeout(timeout):
            data = await self.reader.read(READ_SIZE)
        if not data:
            raise _Closed(self.answered)
        self.answered = True
        self.parser.feed_data(data)

    def close(self) -> None:
        self.writer.close()


class _Body(httpx2.AsyncByteStream):
    """The response body as it arrives; the connection goes back to the pool when read to
    its end, and is closed when the reader stops early (a cancelled watch)."""

    def __init__(self, transport: LeanTransport, connection: _Connection,
                 timeout: float | None) -> None:
        self.transport, self.connection, self.timeout = transport, connection, timeout
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self.connection
        try:
            while True:
                while connection.chunks:
                    yield connection.chunks.popleft()
                if connection.complete:
                    break
                await connection.fill(self.timeout)
        except _Closed as e:
            raise httpx2.RemoteProtocolError("the server closed the connection in the "
                                             "middle of the response") from e
        except TimeoutError as e:
            raise httpx2.ReadTimeout("timed out reading the response") from e
        except (OSError, httptools.HttpParserError) as e:
            raise httpx2.ReadError(f"reading the response: {e}") from e
        finally:
            if not self.done:
                self.done = True
                self.transport.release(connection, keep=connection.complete)

    async def aclose(self) -> None:
        if not self.done:
            self.done = True
            self.transport.release(self.connection, keep=False)


class LeanTransport(httpx2.AsyncBaseTransport):
    """`httpx2.AsyncBaseTransport` for lightkube; `ssl_context` carries CA and client cert."""

    def __init__(self, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self.idle: dict[Key, list[_Connection]] = {}
        self.busy: set[_Connection] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        body = await request.aread()
        connection = await self._acquire(request, timeouts.get("connect"))
        while True:
            try:
                await self._exchange(connection, request, body, timeouts.get("read"))
                break
            except _Closed as e:
                self.release(connection, keep=False)
                if not connection.reused or e.answered:
                    raise httpx2.RemoteProtocolError("the server closed the connection "
                                                     "without answering",
                                                     request=request) from e
                # A pooled connection closed while idle: the request was never read. A new
                # connection is not `reused`, so this happens once at most.
                connection = await self._connect(request, timeouts.get("connect"))
            except BaseException:
                self.release(connection, keep=False)
                raise
        return httpx2.Response(
            connection.parser.get_status_code(), headers=connection.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"})

    async def _exchange(self, connection: _Connection, request: httpx2.Request, body: bytes,
                        timeout: float | None) -> None:
        """Send the request and read up to the end of the response head."""
        try:
            await connection.send(request, body)
        except OSError as e:
            if connection.reused:
                raise _Closed(False) from e
            raise httpx2.WriteError(f"sending the request: {e}", request=request) from e
        try:
            while not connection.head_done:
                await connection.fill(timeout)
        except TimeoutError as e:
            raise httpx2.ReadTimeout("timed out waiting for the response",
                                     request=request) from e
        except ConnectionResetError as e:
            raise _Closed(connection.answered) from e
        except (OSError, httptools.HttpParserError) as e:
            raise httpx2.ReadError(f"reading the response: {e}", request=request) from e

    async def _acquire(self, request: httpx2.Request, timeout: float | None) -> _Connection:
        idle = self.idle.get(_key(request), [])
        while idle:
            connection = idle.pop()
            if connection.usable():
                connection.reused = True
                self.busy.add(connection)
                return connection
            connection.close()
        return await self._connect(request, timeout)

    async def _connect(self, request: httpx2.Request, timeout: float | None) -> _Connection:
        key = _key(request)
        secure = key[0] == "https"
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    key[1], key[2], ssl=self._context() if secure else None,
                    server_hostname=key[1] if secure else None, limit=READ_SIZE)
        except TimeoutError as e:
            raise httpx2.ConnectTimeout(f"connecting to {key[1]}:{key[2]} timed out",
                                        request=request) from e
        except (OSError, ssl.SSLError) as e:
            raise httpx2.ConnectError(f"connecting to {key[1]}:{key[2]}: {e}",
                                      request=request) from e
        connection = _Connection(key, reader, writer)
        self.busy.add(connection)
        return connection

    def _context(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    def release(self, connection: _Connection, *, keep: bool) -> None:
        self.busy.discard(connection)
        idle = self.idle.setdefault(connection.key, [])
        if keep and connection.keep_alive and len(idle) < MAX_IDLE_PER_HOST:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        for connection in [*self.busy, *(c for idle in self.idle.values() for c in idle)]:
            connection.close()
        self.busy.clear()
        self.idle.clear()


def _key(request: httpx2.Request) -> Key:
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


def for_config(config: Any) -> LeanTransport:
    """The transport for a lightkube `SingleConfig` (CA and client certificate); bearer
    tokens need nothing here, lightkube adds them as headers."""
    from lightkube.config import client_adapter
    if not str(config.cluster.server).startswith("https"):
        return LeanTransport(None)
    context: ssl.SSLContext = client_adapter.verify_cluster(config.cluster, config.user,
                                                            config.abs_file)
    return LeanTransport(context)
