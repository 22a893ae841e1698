"""Retrieval end to end: code of a workspace file the user never opened reaches the prompt.

The real server over stdio on a workspace folder, the real model. flashcode/stats says which
snippets ("path:line") the last prompt held; the prompt text itself never leaves the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.harness import (
    end_of,
    end_session,
    inline_completion,
    open_document,
    stats,
    watch_status,
)

BILLING = """\
def shipping_surcharge(parcel_weight, carrier_zone):
    base_rate = carrier_zone.base_rate_for(parcel_weight)
    return base_rate * carrier_zone.fuel_factor
"""
# The buffer the user types in: it shares the names of billing.py's function, not its file.
INVOICE = """\
def invoice_surcharge(parcel_weight, carrier_zone):
    base_rate = carrier_zone.base_rate_for(parcel_weight)
    return """


@contextlib.asynccontextmanager
async def server(
    tmp_path: Path, workspace: Path, options: dict[str, Any]
) -> AsyncIterator[LanguageClient]:
    lsp = make_test_lsp_client()
    await lsp.start_io(
        sys.executable,
        "-m",
        "lsp_server",
        "--model",
        str(e2e_model_dir()),
        env={"PYTHONPATH": str(ROOT), "FLASHCODE_CACHE__DIRECTORY": str(tmp_path / "cache")},
    )
    status = watch_status(lsp)
    try:
        await lsp.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"),
                initialization_options={"flashcode": options},
                root_uri=workspace.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")],
            )
        )
        await status.wait_for("ready")
        yield lsp
    finally:
        await end_session(lsp)


async def retrieval_built(lsp: LanguageClient) -> dict[str, Any]:
    """The retrieval report once its background build has ended."""
    report: dict[str, Any] = {}
    for _ in range(600):
        report = (await stats(lsp))["retrieval"]
        if report["builds"] and not report["indexing"]:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"the retrieval index was never built: {report}")


def options(retrieval: str) -> dict[str, Any]:
    # Without the cache, whose patterns learned from billing.py could answer instead of the model
    return {"workspace": {"retrieval": retrieval}, "cache": {"enabled": False}}


def make_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "shop"
    (workspace / "app").mkdir(parents=True)
    (workspace / "app" / "billing.py").write_text(BILLING)
    # Secret-looking and vendored files are never read, however similar.
    (workspace / "app" / "secret_rates.py").write_text(BILLING)
    (workspace / "node_modules" / "pkg").mkdir(parents=True)
    (workspace / "node_modules" / "pkg" / "rates.py").write_text(BILLING)
    return workspace


async def test_a_workspace_file_that_is_not_open_reaches_the_prompt(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    async with server(tmp_path, workspace, options("bm25")) as lsp:
        report = await retrieval_built(lsp)
        assert (report["scorer"], report["source"], report["files"]) == (
            "bm25",
            "workspace folders",
            1,
        )
        uri = open_document(lsp, str(workspace / "app" / "invoices.py"), INVOICE)
        await inline_completion(lsp, uri, end_of(INVOICE))
        report = await stats(lsp)
        assert report["completions"]["bySource"].get("cache") is None, "the model was asked"
        assert report["retrieval"]["lastSnippets"] == ["app/billing.py:1"]


async def test_switched_off_no_workspace_file_reaches_the_prompt(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    async with server(tmp_path, workspace, options("jaccard")) as lsp:
        await retrieval_built(lsp)
        uri = open_document(lsp, str(workspace / "app" / "invoices.py"), INVOICE)
        await inline_completion(lsp, uri, end_of(INVOICE))
        assert (await stats(lsp))["retrieval"]["lastSnippets"] == ["app/billing.py:1"]
        lsp.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"flashcode": options("off")})
        )
        await inline_completion(lsp, uri, end_of(INVOICE))
        report = (await stats(lsp))["retrieval"]
        assert report["scorer"] == "off" and report["lastSnippets"] == []
