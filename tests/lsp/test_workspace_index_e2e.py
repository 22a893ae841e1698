"""The workspace index end to end: the real server over stdio on a workspace folder, the real
model's tokenizer, an index saved in a temporary cache directory (never the user's)."""

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
from tests.lsp.harness import open_document, stats, watch_status

HELPERS = "def slugify(title):\n    return title.lower().replace(' ', '-')\n"
MODELS = "class Article:\n    def __init__(self, title):\n        self.slug = slugify(title)\n"


@contextlib.asynccontextmanager
async def server(cache: Path, workspace: Path) -> AsyncIterator[LanguageClient]:
    lsp = make_test_lsp_client()
    await lsp.start_io(
        sys.executable, "-m", "lsp_server", "--model", str(e2e_model_dir()),
        env={"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    status = watch_status(lsp)
    try:
        await lsp.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"),
                initialization_options={"flashcode": {"cache": {"directory": str(cache)}}},
                root_uri=workspace.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="blog")],
            )
        )
        await status.wait_for("ready")
        yield lsp
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(lsp.shutdown_session(), 30)
        await lsp.stop()


async def index_report(lsp: LanguageClient, **expected: Any) -> dict[str, Any]:
    """flashcode/stats' workspaceIndex once it is ready and shows `expected`."""
    report: dict[str, Any] = {}
    for _ in range(600):
        report = (await stats(lsp))["workspaceIndex"]
        if report.get("ready") and all(report.get(k) == v for k, v in expected.items()):
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"the workspace index never showed {expected}: {report}")


async def progress_of_the_index(lsp: LanguageClient) -> list[Any]:
    """The index's one progress bar, once it has ended. Its notifications trail the index
    itself (the bar is created with a round trip to the client), so a small index can be
    ready before its bar has begun."""
    for _ in range(200):
        bars = [
            reports
            for reports in lsp.progress_reports.values()
            if reports and getattr(reports[0], "title", "") == "flashcode index"
        ]
        if bars and isinstance(bars[-1][-1], types.WorkDoneProgressEnd):
            break
        await asyncio.sleep(0.05)
    assert len(bars) == 1, f"one progress bar for the index, got {lsp.progress_reports}"
    return bars[0]


async def test_the_index_is_built_in_the_background_updated_and_kept_for_a_restart(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "blog"
    (workspace / "blog").mkdir(parents=True)
    (workspace / "blog" / "helpers.py").write_text(HELPERS)
    (workspace / "blog" / "models.py").write_text(MODELS)
    (workspace / "generated").mkdir()
    (workspace / "generated" / "schema.py").write_text("X = 1\n")
    (workspace / ".gitignore").write_text("generated/\n")
    (workspace / "node_modules" / "pkg").mkdir(parents=True)
    (workspace / "node_modules" / "pkg" / "index.js").write_text("module.exports = 1;\n")
    cache = tmp_path / "cache"

    async with server(cache, workspace) as lsp:
        report = await index_report(lsp)
        assert report["files"] == 2 and report["tokens"] > 20
        assert report["skipped"]["gitignored"] == 1 and report["skipped"]["skipped_dir"] == 1
        bar = await progress_of_the_index(lsp)
        assert isinstance(bar[0], types.WorkDoneProgressBegin)
        assert isinstance(bar[-1], types.WorkDoneProgressEnd)
        assert bar[-1].message == f"2 files, {report['tokens']:,} tokens"

        # An open buffer counts before it is ever saved; a file created on disk once the
        # editor reports it.
        open_document(lsp, str(workspace / "blog" / "views.py"), "def index():\n    pass\n")
        report = await index_report(lsp, files=3, open_documents=1)
        (workspace / "blog" / "feeds.py").write_text("def rss():\n    return []\n")
        lsp.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[
                    types.FileEvent(
                        uri=(workspace / "blog" / "feeds.py").as_uri(),
                        type=types.FileChangeType.Created,
                    )
                ]
            )
        )
        report = await index_report(lsp, files=4)
        assert report["segments"] == 2 and report["delta_tokens"] > 0  # base + delta

    # The restart reads only the file that is new since the index was saved.
    async with server(cache, workspace) as lsp:
        report = await index_report(lsp)
        assert report["files"] == 3  # views.py was never saved to disk
        assert (report["reused_files"], report["tokenized_files"]) == (2, 1)
