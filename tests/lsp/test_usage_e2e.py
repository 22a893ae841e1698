"""The usage report end to end: the real server over stdio, the real model, the usage files in
a temporary cache directory (never the user's). A scripted session of accepts, rejects, cache
hits, typing-ahead, a request the filter stops and a cancelled one must come out exactly, in
flashcode/stats and in the files `flashcode stats` reads after the server is gone."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

from lsp_server.usage import cli as usage_cli
from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.harness import (
    REPR,
    end_of,
    end_session,
    inline_completion,
    open_document,
    stats,
    watch_status,
)

ACCEPT = "flashcode.acceptCompletion"
# A long answer to come, so that the request is still decoding when its cancellation arrives.
LONG = {"maxNewTokens": 512, "deadlineMs": 60000}
STACK = (
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n        "
)


@contextlib.asynccontextmanager
async def server(cache_dir: Path, **options: Any) -> AsyncIterator[LanguageClient]:
    """A server of its own whose cache (and usage file) is in `cache_dir`; it is shut down
    before the block ends, so that what it left on disk can be read."""
    lsp = make_test_lsp_client()
    await lsp.start_io(
        sys.executable,
        "-m",
        "lsp_server",
        "--model",
        str(e2e_model_dir()),
        env={"PYTHONPATH": str(ROOT), "FLASHCODE_CONFIG": str(cache_dir / "no-config.json")},
    )
    status = watch_status(lsp)
    try:
        await lsp.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"),
                initialization_options={
                    "flashcode": {"cache": {"directory": str(cache_dir)}, **options}
                },
            )
        )
        await status.wait_for("ready", timeout=120)
        yield lsp
    finally:
        await end_session(lsp)


async def accept(client: LanguageClient, item: types.InlineCompletionItem | str) -> Any:
    """What the editor sends when the user accepts: the item's own command."""
    if isinstance(item, str):
        arguments: list[Any] = [item]
    else:
        assert item.command is not None and item.command.command == ACCEPT
        arguments = list(item.command.arguments or [])
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=ACCEPT, arguments=arguments)
    )


def typed_into(client: LanguageClient, uri: str, at: types.Position, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )
    )


async def cancelled_request(client: LanguageClient, uri: str, at: types.Position) -> None:
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=at,
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="usage-cancel"
    )
    client.cancel_request(types.CancelParams(id="usage-cancel"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wrap_future(future)


def configure(client: LanguageClient, cache_dir: Path, **options: Any) -> None:
    """New settings; applied before the server reads its next message."""
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"flashcode": {"cache": {"directory": str(cache_dir)}, **options}}
        )
    )


def printed_report(cache_dir: Path) -> dict[str, Any]:
    """`flashcode stats --json` on the directory. capsys cannot be used beside the server's
    stderr forwarding: stdout is read here."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert usage_cli.main(["--json", "--directory", str(cache_dir)]) == 0
    return json.loads(printed.getvalue())["usage"]  # type: ignore[no-any-return]


def counts(by: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    return {key: (c["requested"], c["shown"], c["accepted"]) for key, c in by.items()}


async def test_a_scripted_session_is_counted_exactly_and_kept_on_disk(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    async with server(cache_dir, usage={"pricePerMillionTokens": 1000}) as client:
        engine_start = (await stats(client))["engine"]["generated_tokens"]
        uri = open_document(client, str(tmp_path / "user.py"), REPR)
        # 1. The model's suggestion, accepted.
        first = await inline_completion(client, uri, end_of(REPR))
        assert first and await accept(client, first[0]) is True
        # 2. The same place again: the exact cache answers. The user passes it by (a reject).
        again = await inline_completion(client, uri, end_of(REPR))
        assert [i.insert_text for i in again] == [i.insert_text for i in first]
        # 3. Typing its first characters: typing-ahead shows the rest, accepted (twice: an
        #    editor that repeats itself counts once) and an id never shown counts nothing.
        suggestion = str(again[0].insert_text)
        typed_into(client, uri, end_of(REPR), suggestion[:2])
        rest = await inline_completion(client, uri, end_of(REPR + suggestion[:2]))
        assert [i.insert_text for i in rest] == [suggestion[2:]]
        assert await accept(client, rest[0]) is True
        assert await accept(client, rest[0]) is True
        assert await accept(client, "never-shown") is False
        # 4. Code after the cursor: no layer answers.
        mid = open_document(client, str(tmp_path / "mid.py"), REPR + "self.name\n")
        assert await inline_completion(client, mid, end_of(REPR)) == []
        engine_tokens = (await stats(client))["engine"]["generated_tokens"] - engine_start
        # 5. A request cancelled while the model writes.
        configure(client, cache_dir, usage={"pricePerMillionTokens": 1000}, **LONG)
        stack = open_document(client, str(tmp_path / "stack.py"), STACK)
        await cancelled_request(client, stack, end_of(STACK))
        configure(client, cache_dir, usage={"pricePerMillionTokens": 1000})

        usage = (await stats(client))["usage"]
        assert usage["enabled"] is True and usage["directory"] == str(cache_dir / "usage")
        assert counts(usage["bySource"]) == {
            "model": (1, 1, 1),
            "cache": (1, 1, 0),
            "typeahead": (1, 1, 1),
            "none": (1, 0, 0),
            "cancelled": (1, 0, 0),
        }
        assert (usage["requested"], usage["shown"], usage["accepted"]) == (5, 3, 2)
        assert usage["acceptanceRate"] == 0.6667
        assert counts(usage["byLanguage"]) == {"python": (5, 3, 2)}
        tokens = usage["tokens"]
        assert tokens["generated"] == engine_tokens > 0  # the model's answer, and only it
        prompt = tokens["promptComputed"] + tokens["promptReused"]
        assert prompt > 0
        assert usage["latencyMs"]["count"] == 3
        assert usage["latencyMs"]["p50"] <= usage["latencyMs"]["p95"]
        assert usage["costAvoidedUsd"] == pytest.approx((prompt + tokens["generated"]) / 1000)

        # One more after the last report: the shutdown writes it.
        assert await inline_completion(client, mid, end_of(REPR)) == []
    on_disk = printed_report(cache_dir)
    assert counts(on_disk["bySource"])["none"] == (2, 0, 0)
    assert on_disk["requested"] == 6 and on_disk["accepted"] == 2
    assert on_disk["tokens"] == usage["tokens"]
    assert on_disk["latencyMs"] == usage["latencyMs"]


async def test_a_corrupt_usage_file_costs_one_warning_and_counting_goes_on(
    tmp_path: Path,
) -> None:
    cache_dir = tmp_path / "cache"
    (cache_dir / "usage").mkdir(parents=True)
    # This month's file: the one the server adds to.
    month = cache_dir / "usage" / f"{datetime.date.today():%Y-%m}.json"
    month.write_text("{ half a file", encoding="utf-8")
    async with server(cache_dir) as client:
        uri = open_document(client, str(tmp_path / "user.py"), REPR)
        for _ in range(2):
            assert await inline_completion(client, uri, end_of(REPR))
            usage = (await stats(client))["usage"]  # each report writes what is pending
        said = [m.message for m in client.messages if month.name in m.message]
        assert len(said) == 1 and "unreadable" in said[0], said
        assert usage["requested"] == 2 and usage["shown"] == 2
    aside = [p for p in month.parent.iterdir() if p.name.startswith(f"{month.name}.broken-")]
    assert len(aside) == 1
    assert aside[0].read_text(encoding="utf-8") == "{ half a file"
    assert printed_report(cache_dir)["requested"] == 2


async def test_switched_off_nothing_is_counted_or_written(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    async with server(cache_dir, usage={"enabled": False}) as client:
        uri = open_document(client, str(tmp_path / "user.py"), REPR)
        items = await inline_completion(client, uri, end_of(REPR))
        assert items and await accept(client, items[0]) is True
        assert (await stats(client))["usage"] == {"enabled": False}
    assert not (cache_dir / "usage").exists()
