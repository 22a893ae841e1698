"""Warm context end to end: the real server over stdio, the real embedded model.

A long file opened, or a cursor resting (flashcode/cursor), is prefilled in the background: the
first completion there then reuses most of its prompt from the prefix cache. With warmContext
off, it does not.
"""

from __future__ import annotations

import asyncio
import inspect
import json.decoder
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import e2e_model_dir
from tests.lsp.harness import end_of, inline_completion, open_document, server_config, stats

# A long real file: its prompt is cut to the model's window around the cursor.
LONG_FILE = inspect.getsource(json.decoder)
CURSOR_LINE = 200  # in the middle of it: code before and after the cursor


async def start(client: LanguageClient, warm: bool) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"flashcode": {"warmContext": warm}},
        )
    )
    for _ in range(1200):  # the model loads in the background: wait for it as a user would
        if (await stats(client))["model"]["state"] == "ready":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the model never got ready")


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())), scope="module")
async def warm_on(lsp_client: LanguageClient) -> Any:
    await start(lsp_client, warm=True)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())), scope="module")
async def warm_off(lsp_client: LanguageClient) -> Any:
    await start(lsp_client, warm=False)
    yield
    await lsp_client.shutdown_session()


async def warmed(client: LanguageClient, scheduled: int) -> dict[str, Any]:
    """The server's warm stats once `scheduled` warms were handed to the engine and all ended."""
    report: dict[str, Any] = {}
    for _ in range(1200):
        report = (await stats(client))["warm"]
        done = report["warmed"] + report["dropped"]
        if report["scheduled"] >= scheduled and done == report["scheduled"]:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"the warm never finished: {report}")


def close(client: LanguageClient, uri: str) -> None:
    """Each test closes its file: another open file's snippets would join the next prompts."""
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


def type_at(client: LanguageClient, uri: str, version: int, at: types.Position, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )
    )


async def completion_reuse(client: LanguageClient, uri: str, at: types.Position) -> tuple[int, int]:
    """(prompt tokens, of which reused from the prefix cache) of a completion at `at`."""
    await inline_completion(client, uri, at)
    report = (await stats(client))["completions"]
    return report["lastPromptTokens"], report["lastReusedPromptTokens"]


async def test_a_file_just_opened_is_warm_for_code_added_at_its_end(
    warm_on: LanguageClient,
) -> None:
    text = LONG_FILE + "\n\ndef "
    uri = open_document(warm_on, "/tmp/flashcode-warm/opened.py", text)
    report = await warmed(warm_on, 1)
    assert report["warmed"] >= 1 and report["lastPromptTokens"] > 500, (
        "the warm prompt fills the model's window"
    )
    prompt, reused = await completion_reuse(warm_on, uri, end_of(text))
    close(warm_on, uri)
    assert prompt > 500 and reused >= 0.9 * prompt


async def test_a_resting_cursor_is_warm_for_the_first_keystroke_there(
    warm_on: LanguageClient,
) -> None:
    uri = open_document(warm_on, "/tmp/flashcode-warm/cursor.py", LONG_FILE)
    before = (await warmed(warm_on, 1))["scheduled"]
    line = LONG_FILE.split("\n")[CURSOR_LINE]
    at = types.Position(line=CURSOR_LINE, character=len(line))
    warm_on.protocol.notify(
        "flashcode/cursor",
        {"textDocument": {"uri": uri}, "position": {"line": at.line, "character": at.character}},
    )
    report = await warmed(warm_on, before + 1)
    assert report["dropped"] == 0
    type_at(warm_on, uri, 2, at, " ")
    typed = types.Position(line=at.line, character=at.character + 1)
    prompt, reused = await completion_reuse(warm_on, uri, typed)
    close(warm_on, uri)
    # the prompt up to the cursor is reused; the code after it runs again behind the new text
    assert prompt > 500 and reused >= 0.5 * prompt


async def test_a_malformed_cursor_notification_is_ignored_and_the_server_serves_on(
    warm_on: LanguageClient,
) -> None:
    scheduled = (await stats(warm_on))["warm"]["scheduled"]
    warm_on.protocol.notify("flashcode/cursor", {"position": {"line": -1}})
    warm_on.protocol.notify(
        "flashcode/cursor",
        {
            "textDocument": {"uri": "file:///never/opened.py"},
            "position": {"line": 0, "character": 0},
        },
    )
    text = "def add(a, b):\n    return "
    uri = open_document(warm_on, "/tmp/flashcode-warm/small.py", text)
    await inline_completion(warm_on, uri, end_of(text))
    report = await stats(warm_on)
    assert report["completions"]["requests"] >= 1
    # only the document opened got a warm (done or dropped by the completion)
    assert report["warm"]["scheduled"] <= scheduled + 1


async def test_with_warm_context_off_the_first_completion_prefills_its_whole_prompt(
    warm_off: LanguageClient,
) -> None:
    text = LONG_FILE + "\n\ndef "
    uri = open_document(warm_off, "/tmp/flashcode-warm/off.py", text)
    prompt, reused = await completion_reuse(warm_off, uri, end_of(text))
    report = await stats(warm_off)
    assert prompt > 500 and reused == 0
    assert report["warm"]["scheduled"] == 0 and report["engine"]["warm_requests"] == 0
