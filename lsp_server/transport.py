"""Reading stdin on the event loop itself.

pygls reads stdin through a thread pool: every header line and every body is a hop to a worker
thread and back, three per message. On a loaded two-core machine those hops were most of a
cached completion's round trip. When stdin is a pipe (how editors start a language server) an
asyncio pipe transport reads it with no thread at all; anything else (a file, a closed stdin)
keeps pygls' own reader.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from typing import TYPE_CHECKING, BinaryIO

from pygls.io_ import StdoutWriter, run_async

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer


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
