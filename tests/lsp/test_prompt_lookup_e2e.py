"""Prompt lookup end to end: `promptLookup` changes how fast, never what is suggested."""

from __future__ import annotations

from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import e2e_model_dir
from tests.lsp.harness import (
    end_of,
    inline_completion,
    open_document,
    server_config,
    stats,
    watch_status,
)

# The method being written repeats the one above it, which prompt lookup drafts from.
CODE = (
    "class Store:\n"
    "    def get_user(self, key):\n"
    "        value = self.cache.get(key)\n"
    "        if value is None:\n"
    "            value = self.backend.load(key)\n"
    "            self.cache[key] = value\n"
    "        return value\n"
    "\n"
    "    def get_order(self, key):\n"
    "        value = self.cache.get(key)\n"
    "        if value is None:\n"
    "            value = "
)
# The completion cache would answer the second request without the model.
OFF = {"promptLookup": False, "cache": {"enabled": False}}


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())), scope="module")
async def client(lsp_client: LanguageClient) -> Any:
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options={"flashcode": OFF},
        )
    )
    await lsp_client.status.wait_for("ready")  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


async def test_a_completion_is_the_same_with_prompt_lookup_on_and_off(
    client: LanguageClient,
) -> None:
    uri = open_document(client, "/tmp/flashcode-e2e/store.py", CODE)
    plain = [item.insert_text for item in await inline_completion(client, uri, end_of(CODE))]
    assert plain and plain[0], "the model offered nothing"
    assert "lookup_drafts" not in (await stats(client))["engine"]  # switched off
    status = client.status  # type: ignore[attr-defined]
    status.event("ready").clear()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"flashcode": {**OFF, "promptLookup": True}})
    )
    await status.wait_for("ready")  # the engine is loaded again, with prompt lookup
    speculated = [item.insert_text for item in await inline_completion(client, uri, end_of(CODE))]
    assert speculated == plain
    engine = (await stats(client))["engine"]
    assert engine["lookup_accepted_tokens"] > 0  # drafts from the method above stood
