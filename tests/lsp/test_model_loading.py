"""The model loads in the background: early requests, and a model that fails to load."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.conftest import e2e_model_dir
from tests.lsp.cache_samples import MODELS, ORDERS, USERS
from tests.lsp.harness import (
    REPR,
    end_of,
    inline_completion,
    open_document,
    server_config,
    watch_status,
)

CODE = REPR


def truncated_model() -> Path:
    """A copy of the test model whose weights file was cut short, as by a failed download."""
    copy = Path(tempfile.mkdtemp(prefix="flashcode-truncated-")) / "model"
    shutil.copytree(e2e_model_dir(), copy, ignore=shutil.ignore_patterns("int8"))
    data = next(copy.glob("*.onnx.data"), None) or next(copy.glob("*.onnx"))
    with data.open("r+b") as weights:
        weights.truncate(data.stat().st_size // 3)
    return copy


TRUNCATED = (
    truncated_model()
)  # a two-line function gets only a repetition loop from the model, which is dropped


async def session(lsp_client: LanguageClient) -> AsyncIterator[None]:
    """initialize with Neovim's capabilities, watching flashcode/status; shut down after."""
    lsp_client.status = watch_status(lsp_client)  # type: ignore[attr-defined]
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("neovim"))
    )
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())))
async def fresh(lsp_client: LanguageClient) -> Any:
    async for _ in session(lsp_client):
        yield


async def test_request_before_the_model_is_ready_gets_an_empty_answer_quickly(
    fresh: LanguageClient,
) -> None:
    uri = open_document(fresh, "/tmp/flashcode-e2e/early.py", CODE)
    started = time.perf_counter()
    items = await inline_completion(fresh, uri, end_of(CODE))
    waited = time.perf_counter() - started
    assert not fresh.status.event("ready").is_set(), "the model was ready too soon to test this"  # type: ignore[attr-defined]
    assert items == []
    assert waited < 5  # generous: it must not wait for the model load
    await fresh.status.wait_for("ready")  # type: ignore[attr-defined]
    assert await inline_completion(fresh, uri, end_of(CODE))


@pytest_lsp.fixture(config=server_config("--model", "/nonexistent/flashcode-model"))
async def broken(lsp_client: LanguageClient) -> Any:
    async for _ in session(lsp_client):
        yield


async def test_a_model_that_fails_to_load_is_reported_and_the_server_keeps_serving(
    broken: LanguageClient,
) -> None:
    error = await broken.status.wait_for("error")  # type: ignore[attr-defined]
    assert "/nonexistent/flashcode-model" in error["message"]
    shown = [m for m in broken.messages if m.type == types.MessageType.Error]
    assert shown and "/nonexistent/flashcode-model" in shown[0].message
    assert len(shown) == 1 and "leave it empty for the embedded model" in shown[0].message
    uri = open_document(broken, "/tmp/flashcode-e2e/broken.py", CODE)
    assert await inline_completion(broken, uri, end_of(CODE)) == []
    stats = await broken.protocol.send_request_async("flashcode/stats", {})
    assert stats.model.state == "error"


async def test_without_a_model_the_pattern_cache_still_completes(broken: LanguageClient) -> None:
    await broken.status.wait_for("error")  # type: ignore[attr-defined]
    open_document(broken, "/tmp/flashcode-e2e/no-model/models.py", MODELS)
    open_document(broken, "/tmp/flashcode-e2e/no-model/users.py", USERS)
    uri = open_document(broken, "/tmp/flashcode-e2e/no-model/orders.py", ORDERS)
    items = await inline_completion(broken, uri, end_of(ORDERS))
    assert [item.insert_text for item in items] == ["return self.db.get(Order, order_id)"]


@pytest_lsp.fixture(config=server_config("--model", str(TRUNCATED)))
async def truncated(lsp_client: LanguageClient) -> Any:
    async for _ in session(lsp_client):
        yield


async def test_a_truncated_model_is_reported_with_the_fix(truncated: LanguageClient) -> None:
    error = await truncated.status.wait_for("error")  # type: ignore[attr-defined]
    assert "incomplete" in error["message"] and "export or copy the model again" in error["message"]
    shown = [m for m in truncated.messages if m.type == types.MessageType.Error]
    assert len(shown) == 1
    uri = open_document(truncated, "/tmp/flashcode-e2e/truncated.py", CODE)
    assert await inline_completion(truncated, uri, end_of(CODE)) == []
