"""The stdio transport, byte by byte as an editor writes it: the server reads stdin on its event
loop (lsp_server.transport), so framing, big messages and the ways a session ends are tested
against the raw pipe rather than through a client library."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import ROOT, e2e_model_dir


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_message(stdout: asyncio.StreamReader) -> dict[str, Any]:
    length = 0
    while True:
        line = await stdout.readline()
        if not line:
            raise EOFError("the server closed stdout")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line == b"\r\n":
            return json.loads(await stdout.readexactly(length))  # type: ignore[no-any-return]


async def answer_to(stdout: asyncio.StreamReader, request_id: int) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(read_message(stdout), 60)
        if message.get("id") == request_id and "method" not in message:
            return message
        if "method" in message and "id" in message:  # a request from the server: decline it
            continue


@contextlib.asynccontextmanager
async def initialized_server(
    stderr: int = asyncio.subprocess.DEVNULL,
    arguments: tuple[str, ...] = (),
    options: dict[str, Any] | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The server started on pipes and initialized; killed at the end unless it has exited."""
    cache = tempfile.mkdtemp(prefix="flashcode-e2e-cache-")  # never the user's cache
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lsp_server", "--model", str(e2e_model_dir()), *arguments,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, "PYTHONPATH": str(ROOT), "FLASHCODE_CACHE__DIRECTORY": cache},
    )  # fmt: skip
    assert server.stdin is not None and server.stdout is not None
    try:
        server.stdin.write(
            frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"processId": None, "rootUri": None, "capabilities": {},
                              "initializationOptions": options or {}}})
        )  # fmt: skip
        await server.stdin.drain()
        reply = await answer_to(server.stdout, 1)
        assert "inlineCompletionProvider" in reply["result"]["capabilities"]
        server.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        yield server
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def ask_inline(server: asyncio.subprocess.Process, request_id: int, uri: str) -> Any:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(
        frame({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion",
               "params": {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0},
                          "context": {"triggerKind": 2}}})
    )  # fmt: skip
    await server.stdin.drain()
    return await answer_to(server.stdout, request_id)


async def test_messages_split_across_writes_and_a_large_document_are_read_whole() -> None:
    async with initialized_server() as server:
        assert server.stdin is not None and server.stdout is not None
        # About 2 MB of document in one message, written in uneven pieces as a pipe may carry it.
        text = "".join(f"value_{i} = {i}\n" for i in range(150_000))
        opened = frame(
            {"jsonrpc": "2.0", "method": "textDocument/didOpen",
             "params": {"textDocument": {"uri": "file:///tmp/big.py", "languageId": "python",
                                         "version": 1, "text": text}}}
        )  # fmt: skip
        assert len(opened) > 2_000_000
        for start_at in range(0, len(opened), 65_521):
            server.stdin.write(opened[start_at : start_at + 65_521])
            await server.stdin.drain()
        # A request whose header arrives a byte at a time is still one request.
        shutdown = frame({"jsonrpc": "2.0", "id": 7, "method": "shutdown"})
        for byte in shutdown[:30]:
            server.stdin.write(bytes([byte]))
            await server.stdin.drain()
        server.stdin.write(shutdown[30:])
        assert (await answer_to(server.stdout, 7))["result"] is None
        server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        await server.stdin.drain()
        assert await asyncio.wait_for(server.wait(), 30) == 0


async def test_exit_without_a_shutdown_request_ends_the_server_with_code_1() -> None:
    # LSP: `exit` before `shutdown` is an error exit; an editor reading the code can tell.
    async with initialized_server() as server:
        assert server.stdin is not None
        server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        await server.stdin.drain()
        assert await asyncio.wait_for(server.wait(), 30) == 1


@pytest.mark.parametrize("command_line", [True, False])
async def test_the_command_line_log_level_wins_over_the_editors_log_level_setting(
    command_line: bool,
) -> None:
    arguments = ("--log-level", "debug") if command_line else ()
    async with initialized_server(
        asyncio.subprocess.PIPE, arguments, options={"logLevel": "info"}
    ) as server:
        assert server.stdin is not None and server.stdout is not None
        assert server.stderr is not None
        server.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "flashcode/stats"}))
        await answer_to(server.stdout, 2)
        server.stdin.close()
        log = (await asyncio.wait_for(server.stderr.read(), 30)).decode()
    debug_about_the_request = [
        line for line in log.splitlines() if " DEBUG " in line and "flashcode/stats" in line
    ]
    assert bool(debug_about_the_request) == command_line, log[-2000:]


async def test_a_cancel_that_arrives_after_the_answer_leaves_no_warning_in_the_log() -> None:
    async with initialized_server(asyncio.subprocess.PIPE) as server:
        assert server.stdin is not None and server.stdout is not None
        assert server.stderr is not None
        await ask_inline(server, 2, "file:///tmp/never-opened.py")
        server.stdin.write(
            frame({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}})
        )
        server.stdin.write(frame({"jsonrpc": "2.0", "id": 3, "method": "flashcode/stats"}))
        await answer_to(server.stdout, 3)  # the cancel was read before this answer
        server.stdin.close()
        log = (await asyncio.wait_for(server.stderr.read(), 30)).decode()
    assert "WARNING" not in log, log[-2000:]


async def test_the_server_keeps_serving_after_a_request_it_cannot_parse() -> None:
    async with initialized_server() as server:
        assert server.stdin is not None and server.stdout is not None
        body = b"{not json"
        server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        reply = await ask_inline(server, 2, "file:///tmp/never-opened.py")
        assert "error" not in reply


async def test_requests_without_params_or_with_malformed_ones_are_answered() -> None:
    async with initialized_server() as server:
        assert server.stdin is not None and server.stdout is not None
        # JSON-RPC lets a request leave params out.
        server.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "flashcode/stats"}))
        assert "completions" in (await answer_to(server.stdout, 2))["result"]
        server.stdin.write(
            frame({"jsonrpc": "2.0", "id": 3, "method": "textDocument/inlineCompletion",
                   "params": {"textDocument": {"uri": "file:///x.py"}, "position": "end"}})
        )  # fmt: skip
        error = (await answer_to(server.stdout, 3))["error"]
        assert "textDocument/inlineCompletion" in error["message"]
        reply = await ask_inline(server, 4, "file:///tmp/never-opened.py")
        assert "error" not in reply


@pytest.mark.parametrize("cut_mid_message", [False, True])
async def test_the_server_exits_when_the_editor_closes_stdin(cut_mid_message: bool) -> None:
    async with initialized_server() as server:
        assert server.stdin is not None and server.stdout is not None
        if cut_mid_message:
            server.stdin.write(frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"})[:-5])
            await server.stdin.drain()
        server.stdin.close()
        await asyncio.wait_for(server.wait(), 30)


async def test_a_settings_change_applies_to_the_request_written_right_after_it() -> None:
    def cache_enabled(enabled: bool) -> bytes:
        return frame(
            {"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration",
             "params": {"settings": {"flashcode": {"cache": {"enabled": enabled}}}}}
        )  # fmt: skip

    def stats(request_id: int) -> bytes:
        return frame({"jsonrpc": "2.0", "id": request_id, "method": "flashcode/stats"})

    async with initialized_server() as server:
        assert server.stdin is not None and server.stdout is not None
        # Each pair in one write: the editor expects the messages handled in the order sent.
        for request_id, enabled in enumerate((False, True, False), start=2):
            server.stdin.write(cache_enabled(enabled) + stats(request_id))
            reply = await answer_to(server.stdout, request_id)
            assert reply["result"]["cache"]["enabled"] is enabled


async def test_a_rejected_request_is_one_line_in_the_log_not_a_traceback() -> None:
    async with initialized_server(stderr=asyncio.subprocess.PIPE) as server:
        assert server.stdin is not None and server.stdout is not None
        assert server.stderr is not None
        server.stdin.write(
            frame({"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion",
                   "params": {"textDocument": {"uri": "file:///tmp/x.py"},
                              "position": {"line": -1, "character": 0},
                              "context": {"triggerKind": 2}}})
        )  # fmt: skip
        await server.stdin.drain()
        reply = await answer_to(server.stdout, 2)
        assert "line" in reply["error"]["message"]
        server.stdin.write(frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
        await answer_to(server.stdout, 3)
        server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        await server.stdin.drain()
        log = (await asyncio.wait_for(server.stderr.read(), 30)).decode()
        await server.wait()
    rejected = [line for line in log.splitlines() if "rejected a message" in line]
    assert len(rejected) == 1 and "Position.line" in rejected[0]
    assert "Traceback" not in log and "Unable to deserialize" not in log
