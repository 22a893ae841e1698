"""backend=remote against a real llama.cpp server (llama-cpp-python's, built from its PyPI source).

The server runs the embedded default model, its int4 weights written as GGUF
(benchmarks/llama_server.py); flashcode is driven over stdio as an editor drives it. Run with
`make test-remote`, which builds llama-cpp-python[server] into its own virtual environment and
points FLASHCODE_LLAMA_PYTHON at it; elsewhere these tests are skipped.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities

from benchmarks.llama_server import CACHE, LlamaServer, default_gguf, llama_python, vendor_dir
from tests.lsp.harness import (
    REPR,
    end_of,
    inline_completion,
    open_document,
    server_config,
    stats,
    watch_status,
)
from tests.lsp.openai_server import free_port

LLAMA_PYTHON = llama_python()
pytestmark = pytest.mark.skipif(
    LLAMA_PYTHON is None,
    reason="llama-cpp-python[server] is not installed: `make test-remote` builds it and runs these",
)
PORT = free_port()
URL = f"http://127.0.0.1:{PORT}/v1"
SCRATCH = Path(tempfile.mkdtemp(prefix="flashcode-llama-"))
NO_HANG_S = 60
ACCESS = re.compile(r'"POST /v1/completions HTTP/1\.1" 200')
DISCONNECTED = "Disconnected from client"
# A block to write: the random-weight model never ends a line, so it is still streaming its
# 512 tokens when the cancellation comes (a trained model may be done first).
BODY = "def total(values):\n    "


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    assert LLAMA_PYTHON is not None
    gguf = default_gguf(CACHE, vendor_dir())
    server = LlamaServer(gguf, PORT, SCRATCH / "llama.log", LLAMA_PYTHON, alias="flashcode-tiny")
    server.start()
    yield server
    server.stop()


@pytest_lsp.fixture(
    config=server_config(
        env={
            "FLASHCODE_BACKEND": "remote",
            "FLASHCODE_REMOTE__URL": URL,
            "FLASHCODE_REMOTE__FIM": "raw",  # as vLLM and llama-server need; exact here
            # A busy 2-core machine can take seconds for a prompt: the answer, not its speed,
            # is what these tests check.
            "FLASHCODE_DEADLINE_MS": "30000",
        }
    ),
    scope="module",
)
async def client(lsp_client: LanguageClient, llama: LlamaServer) -> AsyncIterator[None]:
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"flashcode": {"cache": {"enabled": False}}},
        )
    )
    await lsp_client.status.wait_for("ready")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def complete(
    client: LanguageClient, name: str, text: str = REPR
) -> list[types.InlineCompletionItem]:
    uri = open_document(client, str(SCRATCH / f"{name}.py"), text)
    return await asyncio.wait_for(inline_completion(client, uri, end_of(text)), NO_HANG_S)


async def test_completions_arrive_from_llama_cpp(
    client: LanguageClient, llama: LlamaServer
) -> None:
    served = len(ACCESS.findall(llama.log_text()))
    items = await complete(client, "user")
    assert items and items[0].insert_text.strip()
    assert len(ACCESS.findall(llama.log_text())) > served, "the answer came from llama.cpp"
    report = await stats(client)
    assert report["engine"]["model"] == "flashcode-tiny"


async def test_under_the_grammar_setting_the_server_finishes_a_partial_word(
    client: LanguageClient, llama: LlamaServer
) -> None:
    # `se` ends inside the token ` self`: the prompt backs off to the line's indentation, and a
    # GBNF grammar holds the server's answer to start with `se` (by default, `se` ends the
    # prompt as text, a split the model never saw, and it writes `semantics` here).
    partial = (
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
        "    def push(self, item):\n        se"
    )
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"flashcode": {"remote": {"healing": "grammar"}, "cache": {"enabled": False}}}
        )
    )
    try:
        await asyncio.wait_for(engine_setting(client, "healing", "grammar"), NO_HANG_S)
        served = len(ACCESS.findall(llama.log_text()))
        items = await complete(client, "healing", partial)
        assert len(ACCESS.findall(llama.log_text())) > served, "the answer came from llama.cpp"
        assert items, "no suggestion after `se`"
        suggestion = items[0].insert_text
        assert isinstance(suggestion, str) and suggestion.startswith("lf"), suggestion
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"flashcode": {"cache": {"enabled": False}}}
            )
        )
        await asyncio.wait_for(engine_setting(client, "healing", "prompt"), NO_HANG_S)


async def engine_setting(client: LanguageClient, key: str, value: str) -> None:
    """Until the engine the server reports has `key` set to `value` (after a reconnect)."""
    while (await stats(client))["engine"].get(key) != value:
        await asyncio.sleep(0.05)


async def test_a_cancellation_ends_the_servers_stream_early(
    client: LanguageClient, llama: LlamaServer
) -> None:
    random = default_gguf(CACHE, vendor_dir(), random=True)
    rambler = LlamaServer(random, PORT, SCRATCH / "random.log", llama.python, alias="random")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={
                "flashcode": {"maxNewTokens": 512, "deadlineMs": 60000, "cache": {"enabled": False}}
            }
        )
    )
    llama.stop()  # the same URL serves the random-weight model for this test
    rambler.start()
    before = rambler.log_text()  # its warm-up requests are in it already
    try:
        uri = open_document(client, str(SCRATCH / "total.py"), BODY)
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=end_of(BODY),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
        future = client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="llama-cancel-me"
        )
        # The access line is written when the server starts streaming the answer.
        await asyncio.wait_for(log_grows(rambler, ACCESS, before), NO_HANG_S)
        client.cancel_request(types.CancelParams(id="llama-cancel-me"))
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(asyncio.wrap_future(future), NO_HANG_S)
        await asyncio.wait_for(log_grows(rambler, re.compile(DISCONNECTED), before), NO_HANG_S)
    finally:
        rambler.stop()
        llama.start()
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={"flashcode": {"cache": {"enabled": False}}}
            )
        )
    assert (await stats(client))["engine"]["cancelled"] >= 1


async def log_grows(llama: LlamaServer, pattern: re.Pattern[str], before: str) -> None:
    """Until the server's log has one more line matching `pattern` than it had `before`."""
    count = len(pattern.findall(before))
    while len(pattern.findall(llama.log_text())) <= count:
        await asyncio.sleep(0.01)


async def test_a_killed_server_brings_the_message_and_a_restarted_one_completions(
    client: LanguageClient, llama: LlamaServer
) -> None:
    llama.kill()
    try:
        assert await complete(client, "while-down") == []
    finally:
        llama.start()
    told = [m.message for m in client.messages if URL in m.message]
    assert told and "refused the connection" in told[-1]
    items = await complete(client, "after-restart")
    assert items and items[0].insert_text.strip()
