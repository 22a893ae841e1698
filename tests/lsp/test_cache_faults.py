"""A completion cache that fails under the server: its database corrupt, locked by another
process, or on a disk that runs full. The real server over stdio and the real model; completions
go on in every case, and the user hears of it once."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

from inference.cache.store import CompletionCache
from tests.conftest import ROOT, e2e_model_dir
from tests.lsp.harness import (
    end_of,
    end_session,
    inline_completion,
    open_document,
    stats,
    watch_status,
)

# Prompts the default model answers, each different, so that each answer is a new exact entry.
# Each repeats code right above the cursor, which the answer copies (workspace mixing): the answer
# then does not hang on the temporary directory's name, which the prompt holds in the file's path.
SOURCES = [
    "import math\n\nradius = 2.0\narea = math.pi * radius ** 2\ncircumference = 2 * math.pi * ",
    "class User:\n    def __init__(self, name):\n        self.name = name\n\n"
    "    def __repr__(self):\n        return ",
    "def total(prices):\n    result = 0\n    for price in prices:\n        result += price\n"
    "    return result\n\n\ndef total_tax(prices, rate):\n    result = 0\n"
    "    for price in prices:\n        result += ",
    'def greet(name):\n    print("Hello", name)\n\n\ndef welcome(name):\n    print(',
]
# Generous: a loaded machine must not cut answers short (a cut answer is not cached).
OPTIONS = {"deadlineMs": 60000}


def cache_warnings(client: LanguageClient) -> list[str]:
    return [
        m.message
        for m in client.messages
        if m.type == types.MessageType.Warning and "flashcode cache" in m.message
    ]


def server_command() -> list[str]:
    return [sys.executable, "-m", "lsp_server", "--model", str(e2e_model_dir())]


@contextlib.asynccontextmanager
async def server(
    cache_dir: Path, command: list[str] | None = None
) -> AsyncIterator[LanguageClient]:
    """A server of its own with its cache in `cache_dir`, ready to complete; always stopped."""
    lsp = make_test_lsp_client()
    argv = command or server_command()
    await lsp.start_io(argv[0], *argv[1:], env={"PYTHONPATH": str(ROOT)})
    status = watch_status(lsp)
    try:
        await lsp.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"),
                initialization_options={
                    "flashcode": {**OPTIONS, "cache": {"directory": str(cache_dir)}}
                },
            )
        )
        await status.wait_for("ready", timeout=120)
        yield lsp
    finally:
        await end_session(lsp)


async def complete(lsp: LanguageClient, index: int, folder: Path) -> list[str]:
    """The suggestion for SOURCES[index], in a document of its own."""
    text = SOURCES[index]
    uri = open_document(lsp, str(folder / f"source{index}.py"), text)
    return [str(item.insert_text) for item in await inline_completion(lsp, uri, end_of(text))]


async def test_a_corrupt_database_costs_one_warning_and_no_completion(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    for layer in ("exact", "pattern", "stats"):
        (directory / layer).mkdir(parents=True)
        (directory / layer / "cache.db").write_bytes(bytes(range(256)) * 64)  # garbage
    async with server(directory) as lsp:
        answers = [await complete(lsp, index, tmp_path) for index in range(3)]
        assert all(answers), answers
        # Three broken layers, one thing to fix: one message.
        assert len(cache_warnings(lsp)) == 1, cache_warnings(lsp)
        # The rebuilt cache works: the same request again is a hit.
        assert await complete(lsp, 0, tmp_path) == answers[0]
        assert (await stats(lsp))["cache"]["session"]["exact"]["hits"] == 1


@contextlib.contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another process's write transaction on `database` that does not end until we leave."""
    holder = sqlite3.connect(database, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("when", ["before the server starts", "while it serves"])
async def test_a_database_another_process_keeps_locked_costs_one_warning(
    tmp_path: Path, when: str
) -> None:
    directory = tmp_path / "cache"
    database = directory / "exact" / "cache.db"
    existing = CompletionCache(directory)  # a cache with something in it, as a user's would be
    existing.put_exact("a" * 64, "x")
    existing.close()
    async with contextlib.AsyncExitStack() as stack:
        if when == "before the server starts":
            stack.enter_context(write_lock(database))
        lsp = await stack.enter_async_context(server(directory))
        if when == "while it serves":
            stack.enter_context(write_lock(database))
        answers = [await complete(lsp, index, tmp_path) for index in range(len(SOURCES))]
        assert all(answers), answers
        warnings = cache_warnings(lsp)
        assert len(warnings) == 1 and "locked" in warnings[0], warnings


def tmpfs_available() -> bool:
    """Whether this machine lets a process mount a tmpfs of its own (a user and mount
    namespace): how a full disk is simulated here."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as point:
        probe = ["unshare", "--user", "--map-root-user", "--mount", "mount", "-t", "tmpfs"]
        done = subprocess.run([*probe, "tmpfs", point], capture_output=True, timeout=10)
        return done.returncode == 0


def fill(directory: Path) -> int:
    """Write into `directory` until its file system has no room left; the bytes written."""
    written = 0
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
            written += 65536
    return written


@pytest.mark.skipif(not tmpfs_available(), reason="needs a user and mount namespace for a tmpfs")
async def test_a_disk_that_runs_full_keeps_the_cache_and_completions_go_on(
    tmp_path: Path,
) -> None:
    # The server runs in a mount namespace of its own where the cache directory is a 4 MB tmpfs:
    # a real file system that runs out of room (ENOSPC), not an imitation of one. The test
    # reaches it through the server's /proc/PID/root.
    directory = tmp_path / "cache"
    directory.mkdir()
    mount = 'mount -t tmpfs -o size=4m tmpfs "$0" && exec "$@"'
    namespace = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount]
    async with server(directory, [*namespace, str(directory), *server_command()]) as lsp:
        first = await complete(lsp, 0, tmp_path)
        assert first and cache_warnings(lsp) == []
        process = lsp._server
        assert process is not None
        assert fill(Path(f"/proc/{process.pid}/root") / directory.relative_to("/")) > 0
        later = [await complete(lsp, index, tmp_path) for index in range(1, len(SOURCES))]
        assert all(later), later
        warnings = cache_warnings(lsp)
        assert len(warnings) == 1 and "no room left" in warnings[0], warnings
        # What the cache held before the disk ran full still answers: it was not thrown away.
        before = (await stats(lsp))["cache"]["session"]["exact"]["hits"]
        assert await complete(lsp, 0, tmp_path) == first
        report: Any = (await stats(lsp))["cache"]
        assert report["session"]["exact"]["hits"] == before + 1
        assert report["recoveries"] == 0
