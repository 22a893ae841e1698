"""backend=remote end to end: the real server over stdio asks an OpenAI-compatible server.

The server in this process (openai_server.py) answers from the embedded model; each of its
fault modes must cost the editor one message naming the URL, an empty answer and no hang, and
the next request after the fault is over must be answered again. Settings come from the
environment, as FLASHCODE_BACKEND and FLASHCODE_REMOTE__* (the documented forms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities

from inference.engine import Engine
from tests.conftest import e2e_model_dir
from tests.lsp.harness import (
    REPR,
    end_of,
    inline_completion,
    open_document,
    server_config,
    stats,
    watch_status,
)
from tests.lsp.openai_server import OpenAIServer, free_port

PORT = free_port()
URL = f"http://127.0.0.1:{PORT}/v1"
TIMEOUT_MS = 1000
NO_HANG_S = 30  # far beyond any answer here: only a hang reaches it


@pytest.fixture(scope="module")
def remote() -> Iterator[OpenAIServer]:
    with Engine.load(e2e_model_dir()) as engine:
        server = OpenAIServer(engine, PORT)
        server.start()
        yield server
        server.stop()


@pytest_lsp.fixture(
    config=server_config(
        env={
            "FLASHCODE_BACKEND": "remote",
            "FLASHCODE_REMOTE__URL": URL,
            "FLASHCODE_REMOTE__TIMEOUT_MS": str(TIMEOUT_MS),
        }
    ),
    scope="module",
)
async def client(lsp_client: LanguageClient, remote: OpenAIServer) -> AsyncIterator[None]:
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            # No cache: every request must reach the remote server.
            initialization_options={"flashcode": {"cache": {"enabled": False}}},
        )
    )
    await lsp_client.status.wait_for("ready")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def complete(client: LanguageClient, name: str, text: str = REPR) -> list[Any]:
    uri = open_document(client, f"/tmp/flashcode-remote/{name}.py", text)
    return await asyncio.wait_for(inline_completion(client, uri, end_of(text)), NO_HANG_S)


def warnings_about_the_server(client: LanguageClient) -> list[str]:
    return [m.message for m in client.messages if URL in m.message]


async def test_completions_come_from_the_remote_server(
    client: LanguageClient, remote: OpenAIServer
) -> None:
    remote.set_mode("ok")
    items = await complete(client, "user")
    assert items and items[0].insert_text.strip()
    body = remote.record.bodies[-1]
    assert body["stream"] is True and "self.name" in body["prompt"]
    report = await stats(client)
    assert report["model"]["device"] == "remote"
    assert report["engine"]["backend"] == "remote" and report["engine"]["url"] == URL
    assert report["completions"]["bySource"].get("model", 0) >= 1


FAULTS = {
    # mode of the test server (None: stopped) -> words the user's message must hold
    None: "refused the connection",
    "hang": "did not answer in time",
    "http500": "HTTP 500",
    "http401": "remote.apiKeyEnv",
    "malformed": "cannot read",
    "slow": "stopped sending",
}


@pytest.mark.parametrize("mode", list(FAULTS), ids=[str(m) for m in FAULTS])
async def test_a_fault_costs_one_message_and_an_empty_answer_then_the_server_is_used_again(
    client: LanguageClient, remote: OpenAIServer, mode: str | None
) -> None:
    seen = len(warnings_about_the_server(client))
    if mode is None:
        remote.stop()
    else:
        remote.set_mode(mode)
    try:
        assert await complete(client, f"fault-{mode}-1") == []
        assert await complete(client, f"fault-{mode}-2") == []
    finally:
        if mode is None:
            remote.start()
        remote.set_mode("ok")
    # A message goes out before the answer it belongs to, so both answers' messages are here.
    new = warnings_about_the_server(client)[seen:]
    assert len(new) == 1, new
    assert FAULTS[mode] in new[0]
    report = await stats(client)
    assert report["completions"]["lastEmptyReason"] == "backend-error"
    items = await complete(client, f"fault-{mode}-recovered")
    assert items and items[0].insert_text.strip()


async def reached(remote: OpenAIServer) -> None:
    """Until a completion request has reached the server."""
    while not remote.record.bodies:
        await asyncio.sleep(0.01)


async def test_a_cancelled_completion_closes_its_connection(
    client: LanguageClient, remote: OpenAIServer
) -> None:
    remote.set_mode("stream")  # the server would stream for HOLD_S seconds
    uri = open_document(client, "/tmp/flashcode-remote/cancel.py", REPR)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=end_of(REPR),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="remote-cancel-me"
    )
    await asyncio.wait_for(reached(remote), NO_HANG_S)
    cancelled_at = time.monotonic()
    client.cancel_request(types.CancelParams(id="remote-cancel-me"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(asyncio.wrap_future(future), NO_HANG_S)
    closed = await asyncio.to_thread(remote.record.closed_by_client.wait, NO_HANG_S)
    closed_at = remote.record.closed_at
    remote.set_mode("ok")
    assert closed, "the server saw its connection closed"
    assert closed_at >= cancelled_at
    report = await stats(client)
    assert report["engine"]["cancelled"] >= 1 and report["engine"]["in_flight"] == 0


async def test_editors_requests_go_out_at_the_same_time(
    client: LanguageClient, remote: OpenAIServer
) -> None:
    remote.set_mode("gate")  # answers only once three requests are open together
    remote.gate_size = 3
    results = await asyncio.gather(*(complete(client, f"editor-{i}") for i in range(3)))
    assert remote.record.most_open == 3
    assert all(items and items[0].insert_text.strip() for items in results)


@pytest_lsp.fixture(
    config=server_config(env={"FLASHCODE_BACKEND": "remote"}),  # the URL comes from the editor
    scope="module",
)
async def misconfigured(lsp_client: LanguageClient, remote: OpenAIServer) -> AsyncIterator[None]:
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"flashcode": {"remote": {"url": "gpu-box:8000"}}},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_a_url_that_is_no_url_is_told_and_fixing_it_brings_completions_back(
    misconfigured: LanguageClient, remote: OpenAIServer
) -> None:
    remote.set_mode("ok")
    status = misconfigured.status  # type: ignore[attr-defined]
    error = await status.wait_for("error", NO_HANG_S)
    assert "remote.url" in error["message"] and "http://gpu-box:8000/v1" in error["message"]
    assert await complete(misconfigured, "bad-url") == []
    misconfigured.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"flashcode": {"cache": {"enabled": False}, "remote": {"url": URL}}}
        )
    )
    await status.wait_for("ready", NO_HANG_S)
    items = await complete(misconfigured, "url-fixed")
    assert items and items[0].insert_text.strip()
