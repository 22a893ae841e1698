"""The transports: stdin read on the event loop itself, and TCP with any number of clients.

pygls reads stdin through a thread pool: every header line and every body is a hop to a worker
thread and back, three per message. On a loaded two-core machine those hops were most of a
cached completion's round trip. When stdin is a pipe (how editors start a language server) an
asyncio pipe transport reads it with no thread at all; anything else (a file, a closed stdin)
keeps pygls' own reader.

pygls' TCP server gives every connection the same protocol object: answers go to the client that
connected last, and the first client to leave shuts the server down. Here each connection gets a
server of its own (its documents, settings and cache handle) from `make_server`, which shares
the process's model, so the clients' requests are batched into the same model steps; a client
that leaves (or sends `exit`) ends only its own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from pygls.io_ import StdoutWriter, run_async

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

S = TypeVar("S", bound="LanguageServer")
log = logging.getLogger(__name__)


class PipeReader:
    """pygls' reader interface (readline, readexactly) over an asyncio stream; end of input
    reads as b"" as it does there, so the message loop stops instead of raising."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream

    async def readline(self) -> bytes:
        # Tasks that earlier messages started get a turn before the next message is handled, as
        # they did with pygls' threaded reader, even when the next one is already buffered.
        await asyncio.sleep(0)
        return await self.stream.readline()

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self.stream.readexactly(n)
        except asyncio.IncompleteReadError:
            return b""


def is_pipe(stream: BinaryIO) -> bool:
    if os.name != "posix":  # Windows pipes need the proactor loop's own handling: keep pygls'
        return False
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def _serve(server: LanguageServer, stdin: BinaryIO, stop: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), stdin)
    await run_async(
        stop_event=stop,
        reader=PipeReader(stream),
        protocol=server.protocol,
        error_handler=server.report_server_error,
    )


def serve_stdio(server: LanguageServer) -> bool:
    """Serve over stdin/stdout with stdin read on the event loop; False (nothing started) when
    stdin is not a pipe, so the caller can fall back to pygls' reader."""
    stdin = sys.stdin.buffer
    if not is_pipe(stdin):
        return False
    stop = threading.Event()
    server._stop_event = stop  # pygls' shutdown() sets it to end the message loop
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    try:
        asyncio.run(_serve(server, stdin, stop))
    except BrokenPipeError:
        pass  # the editor went away
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
    return True


async def _connection(
    make_server: Callable[[], S],
    end: Callable[[S], Awaitable[None]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    server = make_server()
    stop = threading.Event()
    server._stop_event = stop
    server.protocol.set_writer(writer)  # a StreamWriter has the write() and close() it needs
    try:
        await run_async(
            stop_event=stop,
            reader=PipeReader(reader),
            protocol=server.protocol,
            error_handler=server.report_server_error,
        )
    finally:
        await end(server)
        writer.close()


# After SIGINT or SIGTERM a TCP server that is still winding down this much later stops anyway: its
# clients are gone, and a server that ignores a stop is worse than one that skips its cleanup.
STOP_LIMIT_S = 10.0


class StopWatchdog:
    """Ends the process `limit_s` after the first stop signal unless it has ended by then; before
    it does, it writes every thread's stack to stderr, so a wind-down that hangs says where."""

    def __init__(
        self, limit_s: float = STOP_LIMIT_S, end: Callable[[int], object] = os._exit
    ) -> None:
        self.limit_s = limit_s
        self._end = end
        self.timer: threading.Timer | None = None

    @property
    def armed(self) -> bool:
        return self.timer is not None

    def arm(self) -> None:
        if self.timer is not None:
            return
        self.timer = threading.Timer(self.limit_s, self.expire)
        self.timer.daemon = True
        self.timer.start()

    def expire(self) -> None:
        log.error(
            "still stopping %.0f s after the stop signal: exiting without cleanup", self.limit_s
        )
        with contextlib.suppress(Exception):  # stderr may be closed; the exit matters more
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        self._end(1)


class GracefulStop:
    """The first SIGINT or SIGTERM asks the event loop to wind down; a second one ends the
    process at once. The signal never interrupts the frame that happens to be running: a
    KeyboardInterrupt raised inside a lock's or a condition's bookkeeping can leave it held, and
    the model's threads then wait on it for ever."""

    def __init__(self, loop: asyncio.AbstractEventLoop, watchdog: StopWatchdog) -> None:
        self.loop = loop
        self.watchdog = watchdog
        self.requested = asyncio.Event()

    def on_signal(self, signum: int = 0, frame: FrameType | None = None) -> None:
        if self.watchdog.armed:
            self.watchdog.expire()  # asked twice: the user wants it gone now
            return
        self.watchdog.arm()
        self.loop.call_soon_threadsafe(self.requested.set)

    def install(self) -> None:
        for stop in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(stop, self.on_signal)
            except (NotImplementedError, RuntimeError):  # Windows: the loop has no such hook
                signal.signal(stop, self.on_signal)


class Connections:
    """The TCP connections being served, so that a stop can end each one's message loop."""

    def __init__(self) -> None:
        self.readers: dict[asyncio.Task[None], asyncio.StreamReader] = {}

    async def serve(
        self,
        make_server: Callable[[], S],
        end: Callable[[S], Awaitable[None]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.readers[task] = reader
        try:
            await _connection(make_server, end, reader, writer)
        finally:
            self.readers.pop(task, None)

    async def end_all(self, timeout_s: float) -> None:
        """End every connection as its client leaving would (its work stopped, what it held let
        go), waiting at most `timeout_s` for them all."""
        tasks = set(self.readers)
        for reader in self.readers.values():
            reader.feed_eof()  # the message loop reads the end of input and returns
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)


def serve_tcp(
    make_server: Callable[[], S],
    end: Callable[[S], Awaitable[None]],
    host: str,
    port: int,
) -> None:
    """Serve every client that connects to host:port, each with a server of its own, until the
    process is told to stop (SIGINT or SIGTERM; StopWatchdog bounds the wind-down); `end` runs
    when a client's connection is over."""
    watchdog = StopWatchdog()

    async def main() -> None:
        stop = GracefulStop(asyncio.get_running_loop(), watchdog)
        stop.install()
        connections = Connections()
        listener = await asyncio.start_server(
            lambda reader, writer: connections.serve(make_server, end, reader, writer), host, port
        )
        await stop.requested.wait()
        listener.close()
        await connections.end_all(timeout_s=STOP_LIMIT_S)
        await listener.wait_closed()

    with contextlib.suppress(KeyboardInterrupt):  # a Ctrl-C that lands before the loop runs
        asyncio.run(main())
