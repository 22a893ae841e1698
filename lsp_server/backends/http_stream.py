"""A small HTTP/1.1 client on asyncio streams, for the remote backend's JSON and SSE requests.

Why not http.client on a thread: a cancelled completion must close its connection at once, and
a thread blocked in a read can only be stopped by closing the socket under it. Here the cancel
lands on the awaited read and the transport is aborted; eight editors' requests are eight
coroutines, not eight threads. Why not httpx or aiohttp: neither is a dependency, and the part
of HTTP needed (one request per connection; bodies sized by Content-Length, chunked, or ended
by the close; lines of server-sent events) is small.

Trade-offs: one connection per request (`Connection: close`), no pooling, so each request pays a
TCP (and TLS) handshake: well under a millisecond on a LAN, and a typing user cancels most
requests, which would cost a pooled connection anyway. No redirects, proxies or HTTP/2.
Every read takes a time limit: a silent server costs a timeout, never a hang.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
MAX_HEADER_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024  # one SSE event; a completion chunk is a few hundred bytes


async def _within(awaitable: Awaitable[T], timeout: float) -> T:
    """`awaitable` within `timeout` seconds, else TimeoutError. Not asyncio.wait_for: on Python
    3.11 it can swallow a cancellation that lands as the awaited read completes, and a cancelled
    completion would then stream on to its end."""
    async with asyncio.timeout(timeout):
        return await awaitable


class ProtocolError(Exception):
    """The peer does not speak HTTP/1.1 as expected (the message says what was wrong)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a base URL points: `http://gpu-box:8000/v1` is ("http", "gpu-box", 8000, "/v1")."""

    scheme: str
    host: str
    port: int
    base_path: str  # without a trailing slash; "" for the root

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """The endpoint of a base URL, or ValueError saying what is wrong with it."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"{url!r} has a bad port: {exc}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def url(self, path: str = "") -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.base_path}{path}"


class Response:
    """A response whose body is read as it arrives. `close()` aborts the connection at once."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # names lower-cased
        self._reader = reader
        self._writer = writer
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length", "")
        self._left: int | None = int(length) if length.isdigit() and not self._chunked else None
        self._chunk_left = 0
        self._done = False
        self._pending = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    async def _read_some(self, timeout: float) -> bytes:
        """The next piece of the body, b"" at its end."""
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                size_line = await _within(self._reader.readline(), timeout)
                if not size_line:
                    raise ProtocolError("the connection closed inside a chunked body")
                try:
                    self._chunk_left = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size_line[:40]!r}") from None
                if self._chunk_left == 0:
                    self._done = True
                    return b""
            data = await _within(self._reader.read(self._chunk_left), timeout)
            if not data:
                raise ProtocolError("the connection closed inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                await _within(self._reader.readline(), timeout)  # the chunk's CRLF
            return data
        if self._left is not None:
            if self._left == 0:
                self._done = True
                return b""
            data = await _within(self._reader.read(min(self._left, 65536)), timeout)
            if not data:
                raise ProtocolError("the connection closed before the body's end")
            self._left -= len(data)
            return data
        data = await _within(self._reader.read(65536), timeout)
        if not data:
            self._done = True
        return data

    async def read_line(self, timeout: float) -> bytes | None:
        """The next line of the body without its line end, or None at the body's end.
        `timeout` bounds the wait for each piece of data (a stalled stream raises TimeoutError)."""
        while b"\n" not in self._pending:
            data = await self._read_some(timeout)
            if not data:
                if not self._pending:
                    return None
                line, self._pending = self._pending, b""
                return line.rstrip(b"\r")
            self._pending += data
            if len(self._pending) > MAX_LINE_BYTES:
                raise ProtocolError(f"a line of the body is over {MAX_LINE_BYTES} bytes")
        line, _, self._pending = self._pending.partition(b"\n")
        return line.rstrip(b"\r")

    async def read_body(self, limit: int, timeout: float) -> bytes:
        """The rest of the body, at most `limit` bytes (a longer one is cut there)."""
        body = self._pending
        self._pending = b""
        while len(body) < limit:
            data = await self._read_some(timeout)
            if not data:
                break
            body += data
        return body[:limit]

    def close(self) -> None:
        """Drop the connection now: the server sees it closed and can stop generating."""
        self._writer.transport.abort()


async def request(
    endpoint: Endpoint,
    method: str,
    path: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
) -> Response:
    """Send one request and read the status line and headers, each step within `timeout`
    seconds (TimeoutError), or raise OSError for a connection that fails."""
    context = ssl.create_default_context() if endpoint.scheme == "https" else None
    reader, writer = await _within(
        asyncio.open_connection(endpoint.host, endpoint.port, ssl=context, limit=MAX_LINE_BYTES),
        timeout,
    )
    try:
        lines = [
            f"{method} {endpoint.base_path}{path} HTTP/1.1",
            f"Host: {endpoint.host}:{endpoint.port}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await _within(writer.drain(), timeout)
        status_line = await _within(reader.readline(), timeout)
        version, _, rest = status_line.decode("latin-1").strip().partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdigit():
            raise ProtocolError(f"not an HTTP response: {status_line[:60]!r}")
        found: dict[str, str] = {}
        size = 0
        while True:
            line = await _within(reader.readline(), timeout)
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise ProtocolError("the response headers are too long")
            if not line:
                raise ProtocolError("the connection closed inside the response headers")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            found[name.strip().lower()] = value.strip()
        return Response(int(code), reason, found, reader, writer)
    except BaseException:
        writer.transport.abort()
        raise
