"""Reliability under load, end to end: the soak benchmark run small, several editors on one TCP
server at once, and the widest answer setting, each with the real server and the real model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.harness import (
    REPR,
    StatusLog,
    end_of,
    inline_completion,
    open_document,
    server_config,
    stats,
    watch_status,
)

SOAK_FIELDS = (
    "requests", "cancelled", "errors", "crashes", "rss_start_mb", "rss_end_mb", "leaked_slots",
    "p95_ms_under_8_clients", "server_log_errors", "engine_cancelled", "tcp",
)  # fmt: skip


def test_a_small_soak_has_no_error_crash_or_leaked_slot(tmp_path: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from lsp_server.cli import main; main()", "bench", "reliability",
         "--model", str(e2e_model_dir()), "--requests", "40", "--warmup", "8",
         "--tcp-clients", "2", "--tcp-requests", "5", "--json"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(SOAK_FIELDS) <= set(report), sorted(report)
    assert report["requests"] == 40
    assert (report["errors"], report["crashes"], report["leaked_slots"]) == (0, 0, 0), report
    assert report["server_log_errors"] == 0, report["server_log_sample"]
    # Some requests were answered, some cancelled (answered as cancelled, or the answer won).
    assert report["answered"] > 0
    assert report["cancelled"] + report["answered_after_cancel"] > 0
    assert report["tcp"]["answered"] == 10 and report["tcp"]["clients"] == 2
    assert report["rss_start_mb"] > 0 and report["rss_end_mb"] > 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def tcp_server() -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lsp_server", "--model", str(e2e_model_dir()),
        "--tcp", f"127.0.0.1:{port}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT), "FLASHCODE_CACHE__ENABLED": "false"},
    )  # fmt: skip
    try:
        yield process, port
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def connect(port: int) -> tuple[LanguageClient, StatusLog]:
    client = make_test_lsp_client()
    status = watch_status(client)
    for _ in range(600):
        try:
            await client.start_tcp("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.1)
    await client.initialize_session(types.InitializeParams(capabilities=types.ClientCapabilities()))
    await status.wait_for("ready", timeout=120)
    return client, status


async def test_editors_on_one_tcp_server_each_get_their_own_answers() -> None:
    async with tcp_server() as (process, port):
        first, _ = await connect(port)
        second, second_status = await connect(port)  # joins a model the first one loaded
        # Each has a document only it opened: an answer routed to the other would be empty.
        uris = [
            open_document(client, f"/tmp/flashcode-tcp/{name}.py", REPR)
            for client, name in ((first, "first"), (second, "second"))
        ]
        answers = await asyncio.gather(
            *(
                inline_completion(client, uri, end_of(REPR))
                for client, uri in zip((first, second), uris, strict=True)
            )
        )
        assert all(items and items[0].insert_text for items in answers), answers
        # One editor leaving ends its own connection only.
        await first.shutdown_async(None)
        first.exit(None)
        await asyncio.sleep(0.5)
        assert process.returncode is None
        assert await inline_completion(second, uris[1], end_of(REPR))
        report = await stats(second)
        assert report["engine"]["free_slots"] == report["engine"]["slots"]
        assert second_status.states[-1]["state"] == "ready"
        await second.shutdown_async(None)
        second.exit(None)
        process.send_signal(signal.SIGINT)  # how a TCP server is stopped
        assert await asyncio.wait_for(process.wait(), 30) == 0
        for client in (first, second):
            client._stop_event.set()  # a TCP client has no server process of its own to wait for
            # The server has exited: a socket it closed may read as reset by the peer.
            with contextlib.suppress(ConnectionResetError):
                await client.stop()


async def test_a_tcp_server_stopped_while_an_editor_is_connected_exits_cleanly() -> None:
    # A team server is stopped (systemd, Ctrl-C) while editors still hold their connections.
    async with tcp_server() as (process, port):
        client, _ = await connect(port)
        uri = open_document(client, "/tmp/flashcode-tcp/connected.py", REPR)
        assert await inline_completion(client, uri, end_of(REPR))
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        client._stop_event.set()
        with contextlib.suppress(ConnectionResetError):
            await client.stop()


WIDE = {"flashcode": {"maxNewTokens": 1024, "deadlineMs": 60000, "cache": {"enabled": False}}}


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())))
async def wide(lsp_client: LanguageClient) -> Any:
    status = watch_status(lsp_client)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"), initialization_options=WIDE
        )
    )
    await status.wait_for("ready")
    yield
    await lsp_client.shutdown_session()


async def test_the_longest_answer_setting_still_leaves_room_for_a_prompt(
    wide: LanguageClient,
) -> None:
    # maxNewTokens as long as the default model's whole window: before, the prompt got no room
    # and every completion answered with an error.
    uri = open_document(wide, "/tmp/flashcode-wide/user.py", REPR)
    items = await inline_completion(wide, uri, end_of(REPR))
    assert items and items[0].insert_text


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())))
async def typing(lsp_client: LanguageClient) -> Any:
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("neovim"))
    )
    yield
    await lsp_client.shutdown_session()


async def test_keystrokes_leave_nothing_behind_in_the_protocol(typing: LanguageClient) -> None:
    # Before, every didChange left its future in pygls' table of requests for ever.
    uri = open_document(typing, "/tmp/flashcode-keys/user.py", "")
    text = ""
    for version, char in enumerate("def add(a, b):\n    return a + b\n", start=2):
        text += char
        typing.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
    typing.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    report = await stats(typing)
    assert report["protocol"]["heldMessages"] == 1, report["protocol"]  # the stats request itself
