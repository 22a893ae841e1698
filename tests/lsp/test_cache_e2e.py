"""The completion cache end to end: the real server over stdio, the real model, a real disk cache
in a temporary directory (never the user's)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import json
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

from lsp_server import cache_stats
from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.cache_samples import MODELS, ORDERS, USERS
from tests.lsp.harness import (
    StatusLog,
    end_of,
    end_session,
    inline_completion,
    open_document,
    server_config,
    stats,
    watch_status,
)

DATABASE = """class Database:
    def get(self, model, key):
        return self.tables[model][key]

    def all(self, model):
        return list(self.tables[model].values())
"""
CALC = "def add(a, b):\n    return a + "

SHARED_CACHE = Path(tempfile.mkdtemp(prefix="flashcode-cache-e2e-"))
atexit.register(shutil.rmtree, SHARED_CACHE, True)  # the module's server is gone by then


def texts(items: list[types.InlineCompletionItem]) -> list[str]:
    """What the editor would show; each answer's id for acceptance differs."""
    return [str(item.insert_text) for item in items]


def cache_options(directory: Path, **cache: Any) -> dict[str, Any]:
    return {"flashcode": {"cache": {"directory": str(directory), **cache}}}


def model_answers(report: dict[str, Any]) -> int:
    """Completions the model answered, shown or found empty (the cache answered none of these
    where this is used: a hit's source is "cache")."""
    completions = report["completions"]
    return int(completions["bySource"].get("model", 0)) + int(completions["empty"])


@pytest_lsp.fixture(config=server_config("--model", str(e2e_model_dir())), scope="module")
async def client(lsp_client: LanguageClient) -> Any:
    status = watch_status(lsp_client)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("neovim"),
            initialization_options=cache_options(SHARED_CACHE),
        )
    )
    await status.wait_for("ready")
    yield
    await lsp_client.shutdown_session()


async def ready(status: StatusLog) -> None:
    """Until the model is loaded; a model that fails to load fails the test at once."""
    waits = {asyncio.ensure_future(status.event(state).wait()) for state in ("ready", "error")}
    _, pending = await asyncio.wait(waits, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    for wait in pending:
        wait.cancel()
    if not status.event("ready").is_set():
        raise AssertionError(f"the model did not load: {status.states[-1:] or 'no status'}")


@contextlib.asynccontextmanager
async def server(cache_dir: Path, workspace: Path | None = None) -> AsyncIterator[LanguageClient]:
    """A server of its own, for tests that restart it, break its cache before it starts, or
    open a workspace folder."""
    lsp = make_test_lsp_client()
    await lsp.start_io(
        sys.executable,
        "-m",
        "lsp_server",
        "--model",
        str(e2e_model_dir()),
        env={"PYTHONPATH": str(ROOT)},
    )
    status = watch_status(lsp)
    try:
        await lsp.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"),
                initialization_options=cache_options(cache_dir),
                root_uri=workspace.as_uri() if workspace else None,
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]
                if workspace
                else None,
            )
        )
        await ready(status)
        yield lsp
    finally:
        await end_session(lsp)


async def test_a_crud_method_for_a_new_entity_comes_from_the_pattern_cache(
    client: LanguageClient,
) -> None:
    open_document(client, "/tmp/flashcode-cache-e2e/models.py", MODELS)
    open_document(client, "/tmp/flashcode-cache-e2e/users.py", USERS)
    uri = open_document(client, "/tmp/flashcode-cache-e2e/orders.py", ORDERS)
    before = await stats(client)
    items = await inline_completion(client, uri, end_of(ORDERS))
    after = await stats(client)
    assert [item.insert_text for item in items] == ["return self.db.get(Order, order_id)"]
    assert after["cache"]["session"]["pattern"]["hits"] == (
        before["cache"]["session"]["pattern"]["hits"] + 1
    )
    assert model_answers(after) == model_answers(before), "the model was asked"


async def test_a_secret_looking_file_is_never_cached(client: LanguageClient) -> None:
    token = "tok-7f3c9a1e5b"
    secret = (
        "class InvoiceStore:\n    def __init__(self, vault):\n        self.vault = vault\n\n"
        "    def seal_invoice(self, invoice_id):\n"
        f"        return self.vault.seal(invoice_id, '{token}')\n"
    )
    secret_uri = open_document(client, "/tmp/flashcode-cache-e2e/invoice_secrets.py", secret)
    before = await stats(client)
    for _ in range(2):  # the same position twice: a cached file would answer the second time
        await inline_completion(client, secret_uri, end_of(secret))
    after = await stats(client)
    assert after["cache"]["session"]["lookups"] == before["cache"]["session"]["lookups"]
    assert model_answers(after) == model_answers(before) + 2
    assert after["cache"]["entries"]["exact"] == before["cache"]["entries"]["exact"]
    # Its code teaches nothing to other files either.
    receipts = (
        secret.split("    def seal")[0].replace("Invoice", "Receipt")
        + "    def seal_receipt(self, receipt_id):\n        "
    )
    receipts_uri = open_document(client, "/tmp/flashcode-cache-e2e/receipts.py", receipts)
    await inline_completion(client, receipts_uri, end_of(receipts))
    final = await stats(client)
    assert (
        final["cache"]["session"]["pattern"]["hits"] == after["cache"]["session"]["pattern"]["hits"]
    )
    for path in SHARED_CACHE.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


async def test_the_cache_can_be_switched_off_by_setting(client: LanguageClient) -> None:
    uri = open_document(client, "/tmp/flashcode-cache-e2e/calc.py", CALC)
    first = texts(await inline_completion(client, uri, end_of(CALC)))
    assert first and first[0], "the model gave no answer to cache"
    before = await stats(client)
    second = texts(await inline_completion(client, uri, end_of(CALC)))
    after = await stats(client)
    assert second == first
    assert (
        after["cache"]["session"]["exact"]["hits"]
        == before["cache"]["session"]["exact"]["hits"] + 1
    )

    async def switch(enabled: bool) -> dict[str, Any]:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings=cache_options(SHARED_CACHE, enabled=enabled)
            )
        )
        for _ in range(200):  # settings are applied in a task of the server's own
            report = await stats(client)
            if report["cache"]["enabled"] == enabled:
                return report
            await asyncio.sleep(0.01)
        raise AssertionError(f"cache.enabled={enabled} was not applied")

    off = await switch(False)
    assert off["cache"] == {"enabled": False}
    await inline_completion(client, uri, end_of(CALC))
    assert model_answers(await stats(client)) == model_answers(off) + 1
    on = await switch(True)
    await inline_completion(client, uri, end_of(CALC))
    assert (await stats(client))["cache"]["session"]["exact"]["hits"] == on["cache"]["session"][
        "exact"
    ]["hits"] + 1


async def test_completions_and_patterns_survive_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    async with server(directory) as first:
        open_document(first, str(tmp_path / "models.py"), MODELS)
        open_document(first, str(tmp_path / "users.py"), USERS)
        calc = open_document(first, str(tmp_path / "calc.py"), CALC)
        answer = texts(await inline_completion(first, calc, end_of(CALC)))  # users.py learned too
    async with server(directory) as second:
        calc = open_document(second, str(tmp_path / "calc.py"), CALC)
        assert texts(await inline_completion(second, calc, end_of(CALC))) == answer
        # users.py is not open now: what it taught is on disk.
        open_document(second, str(tmp_path / "models.py"), MODELS)
        open_document(second, str(tmp_path / "db.py"), DATABASE)
        orders = open_document(second, str(tmp_path / "orders.py"), ORDERS)
        items = await inline_completion(second, orders, end_of(ORDERS))
        assert [item.insert_text for item in items] == ["return self.db.get(Order, order_id)"]
        session = (await stats(second))["cache"]["session"]
        assert session["exact"]["hits"] == 1 and session["pattern"]["hits"] == 1
    # capsys cannot be used beside the server's stderr forwarding: read stdout ourselves.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cache_stats.main(["--directory", str(directory)]) == 0
    total = json.loads(printed.getvalue())
    assert total["lookups"] == 3 and total["exact"]["hits"] == 1


async def test_a_corrupt_cache_database_is_moved_aside_and_the_server_keeps_completing(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "cache"
    for layer in ("exact", "pattern"):
        (directory / layer).mkdir(parents=True)
        (directory / layer / "cache.db").write_bytes(b"not a database at all" * 400)
    async with server(directory) as lsp:
        warnings = [m.message for m in lsp.messages if m.type == types.MessageType.Warning]
        assert any("moved it to" in w for w in warnings), warnings
        calc = open_document(lsp, str(tmp_path / "calc.py"), CALC)
        first = texts(await inline_completion(lsp, calc, end_of(CALC)))
        assert texts(await inline_completion(lsp, calc, end_of(CALC))) == first
        report = (await stats(lsp))["cache"]
        assert report["session"]["exact"]["hits"] == 1  # the rebuilt cache works
        assert report["recoveries"] == 2
    assert len(list(directory.glob("*.broken-*"))) == 2


async def test_patterns_are_learned_from_workspace_files_that_are_not_open(tmp_path: Path) -> None:
    workspace = tmp_path / "shop"
    (workspace / "app").mkdir(parents=True)
    (workspace / "app" / "models.py").write_text(MODELS)
    (workspace / "app" / "users.py").write_text(USERS)
    # Vendored code and secret-looking files are never read.
    (workspace / "node_modules" / "pkg").mkdir(parents=True)
    (workspace / "node_modules" / "pkg" / "carts.py").write_text(USERS.replace("User", "Cart"))
    (workspace / "app" / "secret_items.py").write_text(USERS.replace("User", "Item"))
    for start in ("first", "restart"):
        async with server(tmp_path / "cache", workspace) as lsp:
            learning = await workspace_learning(lsp)
            if start == "first":
                assert learning["files"] == learning["mined"] == 2 and learning["examples"] > 0
            else:  # nothing changed on disk: nothing is mined again, the patterns are kept
                assert learning["files"] == learning["unchanged"] == 2
                assert learning["mined"] == 0
            # orders.py is new and users.py was never opened: the pattern comes from the disk.
            uri = open_document(lsp, str(workspace / "app" / "orders.py"), ORDERS)
            items = await inline_completion(lsp, uri, end_of(ORDERS))
            assert texts(items) == ["return self.db.get(Order, order_id)"]
            assert (await stats(lsp))["cache"]["session"]["pattern"]["hits"] == 1


async def workspace_learning(lsp: LanguageClient) -> dict[str, Any]:
    """The workspace pass's report once it is done."""
    for _ in range(600):
        learning: dict[str, Any] = (await stats(lsp))["cache"].get("workspace", {})
        if learning.get("done"):
            return learning
        await asyncio.sleep(0.05)
    raise AssertionError(f"the workspace pass did not finish: {learning}")
