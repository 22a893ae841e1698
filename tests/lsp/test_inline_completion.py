"""Inline completion end to end: the real server over stdio, the real embedded model."""

from __future__ import annotations

import ast
import asyncio
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import e2e_model_dir
from tests.lsp.harness import (
    REPR,
    StatusLog,
    as_dict,
    end_of,
    inline_completion,
    open_document,
    send_raw_request,
    server_config,
    stats,
    watch_status,
)


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())), scope="module")
async def client(lsp_client: LanguageClient) -> Any:
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    lsp_client.init_result = await lsp_client.initialize_session(  # type: ignore[attr-defined]
        types.InitializeParams(capabilities=client_capabilities("neovim"))
    )
    await lsp_client.status.wait_for("ready")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def status_of(client: LanguageClient) -> StatusLog:
    return client.status  # type: ignore[attr-defined,no-any-return]


async def test_initialize_announces_inline_completion(client: LanguageClient) -> None:
    capabilities = client.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    assert capabilities.completion_provider is not None
    sync = capabilities.text_document_sync
    assert sync.change == types.TextDocumentSyncKind.Incremental


async def test_model_loaded_reports_progress_and_status(client: LanguageClient) -> None:
    ready = await status_of(client).wait_for("ready")
    assert ready["model"]
    assert ready["device"] in ("cpu", "cuda")
    states = [s["state"] for s in status_of(client).states]
    assert states.index("loading") < states.index("ready")
    kinds = [[type(v).__name__ for v in reports] for reports in client.progress_reports.values()]
    assert ["WorkDoneProgressBegin", "WorkDoneProgressEnd"] in kinds


async def test_python_completion_is_valid_code(client: LanguageClient) -> None:
    uri = open_document(client, "/tmp/flashcode-e2e/fib.py", REPR)
    items = await inline_completion(client, uri, end_of(REPR))
    assert len(items) == 1
    text = items[0].insert_text
    assert isinstance(text, str) and text.strip(), "the model offered nothing"
    assert "\n" not in text.strip(), "mid-line completion should be one line"
    ast.parse(REPR + text)  # what the user would accept must be valid Python
    assert items[0].command is not None and items[0].command.command == "flashcode.acceptCompletion"
    accepted = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="flashcode.acceptCompletion", arguments=items[0].command.arguments
        )
    )
    assert accepted is True


async def test_typing_the_suggestion_offers_the_rest_without_the_model(
    client: LanguageClient,
) -> None:
    text = (
        "class Account:\n    def __init__(self, owner):\n        self.owner = owner\n\n"
        "    def __str__(self):\n        return "
    )
    uri = open_document(client, "/tmp/flashcode-e2e/typeahead.py", text)
    items = await inline_completion(client, uri, end_of(text))
    suggestion = items[0].insert_text
    assert isinstance(suggestion, str) and len(suggestion) >= 2
    typed = suggestion[:2]
    position = end_of(text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=position, end=position), text=typed
                )
            ],
        )
    )
    before = await client.protocol.send_request_async("flashcode/stats", {})
    rest = await inline_completion(client, uri, end_of(text + typed))
    after = await client.protocol.send_request_async("flashcode/stats", {})
    assert [item.insert_text for item in rest] == [suggestion[2:]]
    typeahead = lambda stats: as_dict(stats)["completions"]["bySource"].get("typeahead", 0)  # noqa: E731
    assert typeahead(after) == typeahead(before) + 1


async def test_a_cancelled_request_is_answered_as_cancelled_and_stops_its_model_work(
    client: LanguageClient,
) -> None:
    # A long answer, so the request is still decoding when the cancellation arrives.
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={
                "flashcode": {"maxNewTokens": 512, "deadlineMs": 60000, "cache": {"enabled": False}}
            }
        )
    )
    before = await stats(client)
    body = (
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
        "    def push(self, item):\n        "
    )
    uri = open_document(client, "/tmp/flashcode-e2e/cancel.py", body)
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=end_of(body),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked
        ),
    )
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me"
    )
    client.cancel_request(types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wrap_future(future)
    after = await stats(client)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={
                "flashcode": {"maxNewTokens": 64, "deadlineMs": 3000, "cache": {"enabled": True}}
            }
        )
    )
    engine_before, engine_after = before["engine"], after["engine"]
    # The model stopped within a step of the cancellation (or before it ever ran the request).
    assert engine_after["cancel_steps_max"] <= 1
    assert engine_after["generated_tokens"] - engine_before["generated_tokens"] < 512
    # The server keeps serving after a cancellation: the next request gets a suggestion.
    after_cancel = open_document(client, "/tmp/flashcode-e2e/after-cancel.py", REPR)
    items = await inline_completion(client, after_cancel, end_of(REPR))
    assert items and isinstance(items[0].insert_text, str) and items[0].insert_text


async def test_completions_in_a_row_do_not_each_send_a_status(client: LanguageClient) -> None:
    uri = open_document(client, "/tmp/flashcode-e2e/status-pace.py", REPR)
    await inline_completion(client, uri, end_of(REPR))
    before = len(status_of(client).states)
    for _ in range(4):
        assert await inline_completion(client, uri, end_of(REPR))
    await stats(client)  # a round trip: any status sent before its answer has arrived
    # Only a latency can have changed, and it refreshes the status at most every few seconds.
    assert len(status_of(client).states) - before <= 1


async def test_two_open_documents_each_get_their_own_completion(client: LanguageClient) -> None:
    helpers = "def parse_port(value):\n    return int(value.strip())\n\n\n" + REPR.replace(
        "User", "Port"
    ).replace("name", "number")
    user = (
        "import sys\n\nfrom helpers import parse_port\n\n\n"
        "def main(argv):\n    port = parse_port(argv[1])\n    print(port)\n    return "
    )
    helpers_uri = open_document(client, "/tmp/flashcode-e2e/helpers.py", helpers)
    user_uri = open_document(client, "/tmp/flashcode-e2e/user.py", user)
    in_user = await inline_completion(client, user_uri, end_of(user))
    in_helpers = await inline_completion(client, helpers_uri, end_of(helpers))
    assert in_user and in_user[0].insert_text
    assert in_helpers and in_helpers[0].insert_text
    ast.parse(user + str(in_user[0].insert_text))
    ast.parse(helpers + str(in_helpers[0].insert_text))


async def test_disabling_a_language_in_settings_stops_its_completions(
    client: LanguageClient,
) -> None:
    uri = open_document(client, "/tmp/flashcode-e2e/settings.py", REPR)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"flashcode": {"enabledLanguages": ["rust"]}})
    )
    await asyncio.sleep(0)
    stats = await client.protocol.send_request_async(
        "flashcode/stats", {}
    )  # a round trip: the change is applied
    assert stats is not None
    assert await inline_completion(client, uri, end_of(REPR)) == []
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"flashcode": {"enabledLanguages": ["*"]}})
    )
    await client.protocol.send_request_async("flashcode/stats", {})
    assert await inline_completion(client, uri, end_of(REPR))


def lookups(report: dict[str, Any]) -> int:
    """Requests that went past the cheap checks to the cache and the model."""
    return report["cache"]["session"]["lookups"]  # type: ignore[no-any-return]


async def test_no_ghost_text_in_the_middle_of_code_while_typing(client: LanguageClient) -> None:
    # The cursor before code on its line: a typed suggestion would have to fit around it.
    uri = open_document(client, "/tmp/flashcode-e2e/mid_line.py", REPR + "self.name\n")
    before = await stats(client)
    assert await inline_completion(client, uri, end_of(REPR)) == []
    after = await stats(client)
    assert lookups(after) == lookups(before)  # answered without the cache or the model
    assert after["engine"]["requests"] == before["engine"]["requests"]
    # Closing brackets after the cursor are no obstacle: the suggestion is looked for.
    uri = open_document(client, "/tmp/flashcode-e2e/mid_line_closers.py", REPR + "str()\n")
    await inline_completion(client, uri, types.Position(line=5, character=19))
    assert lookups(await stats(client)) == lookups(after) + 1


async def test_bad_positions_get_empty_answers_and_the_server_keeps_serving(
    client: LanguageClient,
) -> None:
    uri = open_document(client, "/tmp/flashcode-e2e/bad.py", REPR)
    assert await inline_completion(client, uri, types.Position(line=400, character=0)) == []
    assert await inline_completion(client, uri, types.Position(line=1, character=300)) == []
    unknown = "file:///tmp/flashcode-e2e/never-opened.py"
    assert await inline_completion(client, unknown, types.Position(line=0, character=0)) == []
    with pytest.raises(JsonRpcException, match=r"(?i)invalid|line|-1"):
        await send_raw_request(
            client,
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            {
                "textDocument": {"uri": uri},
                "position": {"line": -1, "character": 0},
                "context": {"triggerKind": 1},
            },
        )
    assert await inline_completion(client, uri, end_of(REPR))


async def test_unusable_settings_are_reported_and_replaced_by_defaults(
    client: LanguageClient,
) -> None:
    before = len(client.messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"flashcode": {"maxNewTokens": "lots", "device": "tpu"}}
        )
    )
    await client.protocol.send_request_async("flashcode/stats", {})
    for _ in range(100):
        if len(client.messages) > before:
            break
        await client.protocol.send_request_async("flashcode/stats", {})
    assert len(client.messages) > before, "no warning about the settings arrived"
    warning = client.messages[-1]
    assert warning.type == types.MessageType.Warning
    assert "maxNewTokens" in warning.message and "device" in warning.message
    uri = open_document(client, "/tmp/flashcode-e2e/after-bad-settings.py", REPR)
    assert await inline_completion(client, uri, end_of(REPR))


async def test_a_fim_template_the_model_lacks_is_reported_and_completions_go_on(
    client: LanguageClient,
) -> None:
    before = len(client.messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"flashcode": {"fimTemplate": "codellama"}})
    )
    uri = open_document(client, "/tmp/flashcode-e2e/fim-template.py", REPR)
    items = await inline_completion(client, uri, end_of(REPR))
    await stats(client)  # a round trip: the warning sent before its answer has arrived
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"flashcode": {"fimTemplate": ""}})
    )
    assert items and items[0].insert_text
    warnings = [m.message for m in client.messages[before:]]
    assert len(warnings) == 1 and "codellama" in warnings[0]


async def test_a_partial_word_is_finished_not_followed_by_a_new_line(
    client: LanguageClient,
) -> None:
    # `se` ends inside the token ` self`: token healing backs the prompt off to the line's
    # indentation, the model rewrites ` se` as ` self...`, and the editor gets what follows.
    text = (
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
        "    def push(self, item):\n        se"
    )
    uri = open_document(client, "/tmp/flashcode-e2e/healing.py", text)
    items = await inline_completion(client, uri, end_of(text))
    assert items, "no suggestion after `se`"
    suggestion = items[0].insert_text
    assert isinstance(suggestion, str) and suggestion.startswith("lf"), suggestion


async def test_a_line_from_another_open_file_is_continued_as_written_there(
    client: LanguageClient,
) -> None:
    # The open file reaches the answer twice over: as a prompt snippet, and as the continuation
    # the decoder mixes in (tests/unit/test_mixing_engine.py shows the latter alone).
    helpers = (
        "import os\n\n\ndef configure(path):\n"
        "    settings = load_settings_from(path, strict_mode=True, env=os.environ)\n"
        "    return settings\n"
    )
    open_document(client, "/tmp/flashcode-e2e/mixing_helpers.py", helpers)
    user = "import os\n\n\ndef reload(path):\n    settings = load_settings_from(pa"
    uri = open_document(client, "/tmp/flashcode-e2e/mixing_user.py", user)
    items = await inline_completion(client, uri, end_of(user))
    assert items, "nothing offered"
    assert items[0].insert_text == "th, strict_mode=True, env=os.environ)"


async def test_the_int4_and_int8_variants_share_one_prefix_cache_bound(
    client: LanguageClient,
) -> None:
    uri = open_document(client, "/tmp/flashcode-e2e/shared_budget.py", REPR)
    await inline_completion(client, uri, end_of(REPR))
    caches = [engine["prefix_cache"] for engine in (await stats(client))["engines"].values()]
    assert len(caches) == 2, "the default model ships an int4 and an int8 variant"
    assert [cache["shared_by"] for cache in caches] == [2, 2]
    assert sum(cache["bytes"] for cache in caches) <= caches[0]["capacity_bytes"]
