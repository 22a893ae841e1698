"""The disk cache: keys, persistence, bounds, privacy, statistics, and broken databases."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from inference.cache.keys import exact_key, excluded
from inference.cache.store import CompletionCache
from inference.scheduler import GenerationRequest
from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS

REQUEST = GenerationRequest(prompt_ids=(1, 2, 3, 70000), max_new_tokens=32, stop_strings=("\n",))


def open_cache(path: Path, warnings: list[str] | None = None, size_mb: int = 16) -> CompletionCache:
    sink = warnings if warnings is not None else []
    return CompletionCache(path, size_mb, on_warning=sink.append)


def test_the_exact_key_changes_with_model_settings_and_prompt() -> None:
    key = exact_key("model-a", REQUEST)
    assert key == exact_key("model-a", REQUEST)
    assert key != exact_key("model-b", REQUEST)
    longer = GenerationRequest(
        prompt_ids=REQUEST.prompt_ids, max_new_tokens=64, stop_strings=("\n",)
    )
    assert key != exact_key("model-a", longer)
    other_prompt = GenerationRequest(
        prompt_ids=(1, 2, 3, 70001), max_new_tokens=32, stop_strings=("\n",)
    )
    assert key != exact_key("model-a", other_prompt)
    # Sampling without a seed answers differently each time: nothing to cache.
    assert exact_key("model-a", GenerationRequest(prompt_ids=(1,), temperature=0.7)) is None
    assert exact_key("model-a", GenerationRequest(prompt_ids=(1,), temperature=0.7, seed=3))


def test_completions_survive_a_restart(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    key = exact_key("m", REQUEST)
    assert key is not None
    assert cache.get_exact(key) is None
    cache.put_exact(key, "return a + b")
    cache.add_patterns([("pattern-key", ["    def get_\ue000(self):"], "user")], "workspace")
    cache.close()
    again = open_cache(tmp_path / "c")
    assert again.get_exact(key) == "return a + b"
    assert again.get_patterns("pattern-key") == [
        (("    def get_\ue000(self):",), "user", "workspace")
    ]
    again.close()


def test_the_users_own_code_replaces_what_the_model_guessed(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    cache.add_patterns([("k", ["model 1"], "user")], "model")
    cache.add_patterns([("k", ["model 2"], "order")], "model")
    assert [lines for lines, _, _ in cache.get_patterns("k")] == [("model 2",), ("model 1",)]
    # The user wrote something else at such a place: the model's guesses there are dropped.
    cache.add_patterns([("k", ["typed"], "user")], "workspace")
    assert cache.get_patterns("k") == [(("typed",), "user", "workspace")]
    # A later guess ranks after the user's code; the same one again is not stored twice.
    assert cache.add_patterns([("k", ["model 3"], "order")], "model") == 1
    assert cache.add_patterns([("k", ["model 3"], "order")], "model") == 0
    assert [lines for lines, _, _ in cache.get_patterns("k")] == [("typed",), ("model 3",)]
    for n in range(10):
        cache.add_patterns([("k", [f"more {n}"], "user")], "workspace")
    assert len(cache.get_patterns("k")) == 4
    assert cache.get_patterns("k")[0] == (("more 9",), "user", "workspace")
    cache.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_the_cache_is_readable_by_its_user_only(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    cache.put_exact("k" * 64, "secret-looking completion")
    cache.close()
    root = tmp_path / "c"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for path in root.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_the_size_stays_within_the_budget(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c", size_mb=1)
    for n in range(60):  # 60 x 50 KB = 3 MB into a 1 MB cache
        cache.put_exact(f"{n:064d}", "x" * 50_000)
    stats = cache.stats()
    assert stats["sizeBytes"] <= 1.2 * 2**20
    assert stats["entries"]["exact"] < 60
    assert cache.get_exact(f"{59:064d}") is not None, "the newest entry was evicted"
    cache.close()


def test_a_corrupt_database_is_moved_aside_and_rebuilt(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    cache.put_exact("a" * 64, "old")
    cache.close()
    database = tmp_path / "c" / "exact" / "cache.db"
    for extra in database.parent.glob("cache.db-*"):
        extra.unlink()
    database.write_bytes(b"this is not a database" * 500)
    warnings: list[str] = []
    cache = open_cache(tmp_path / "c", warnings)
    assert warnings and "moved it to" in warnings[0]
    assert cache.get_exact("a" * 64) is None
    cache.put_exact("b" * 64, "new")
    assert cache.get_exact("b" * 64) == "new"
    moved = list((tmp_path / "c").glob("exact.broken-*"))
    assert len(moved) == 1 and (moved[0] / "cache.db").read_bytes().startswith(b"this is not")
    assert cache.stats()["recoveries"] == 1
    cache.close()


def test_a_database_corrupted_while_open_costs_a_miss_then_is_rebuilt(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = open_cache(tmp_path / "c", warnings)
    cache.put_exact("a" * 64, "value")
    database = tmp_path / "c" / "exact" / "cache.db"
    with open(database, "r+b") as handle:  # scribble over the header and first pages
        handle.write(b"\xff" * 8192)
    for extra in database.parent.glob("cache.db-*"):
        extra.unlink()
    cache.layers["exact"].cache.close()  # type: ignore[union-attr]  # drop pages held in memory
    assert cache.get_exact("a" * 64) is None
    assert warnings and "exact" in warnings[0]
    cache.put_exact("c" * 64, "after")
    assert cache.get_exact("c" * 64) == "after"
    cache.close()


def test_a_database_locked_by_another_process_is_moved_aside(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    cache.add_patterns([("k", ["line"], "user")], "workspace")
    cache.close()
    holder = sqlite3.connect(tmp_path / "c" / "pattern" / "cache.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a writer that never finishes
    try:
        warnings: list[str] = []
        cache = open_cache(tmp_path / "c", warnings)
        assert any("locked" in w for w in warnings)
        assert cache.add_patterns([("k2", ["other"], "user")], "workspace") == 1
        assert cache.get_patterns("k2") == [(("other",), "user", "workspace")]
        cache.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_directory_that_cannot_be_created_leaves_the_cache_off_not_broken(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    warnings: list[str] = []
    cache = open_cache(blocker / "cache", warnings)
    assert warnings
    cache.put_exact("a" * 64, "x")
    assert cache.get_exact("a" * 64) is None
    assert cache.get_patterns("k") == []
    assert cache.stats()["entries"] == {"exact": 0, "pattern": 0}
    cache.close()


def test_hits_misses_and_latency_are_counted_and_kept_across_restarts(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    cache.record("pattern", True, 2.0)  # 1: a pattern hit
    cache.record("pattern", False)  # 2: both layers miss
    cache.record("exact", False)
    cache.record("pattern", False)  # 3: an exact hit after a pattern miss
    cache.record("exact", True, 4.0)
    session = cache.stats()["session"]
    assert session["exact"] == {"hits": 1, "misses": 1, "stored": 0}
    assert session["pattern"]["hits"] == 1 and session["pattern"]["misses"] == 2
    assert session["lookups"] == 3 and session["hitRate"] == pytest.approx(2 / 3, abs=1e-3)
    assert session["hitLatencyMs"]["p50"] == 3.0
    cache.close()
    second = open_cache(tmp_path / "c")
    second.record("exact", True, 1.0)
    stats = second.stats()
    assert stats["session"]["lookups"] == 1
    assert stats["total"]["lookups"] == 4
    assert stats["total"]["exact"]["hits"] == 2
    second.close()


def test_two_servers_sharing_a_cache_add_up_their_counts(tmp_path: Path) -> None:
    first, second = open_cache(tmp_path / "c"), open_cache(tmp_path / "c")
    first.record("exact", False)
    second.record("exact", False)
    second.record("exact", True, 1.0)
    first.close()
    second.close()
    assert open_cache(tmp_path / "c").stats()["total"]["lookups"] == 3


@pytest.mark.parametrize(
    "path",
    [
        "/work/app/.env",
        "/work/app/.env.production",
        "/work/certs/server.pem",
        "/work/keys/deploy.key",
        "/work/app/client_secret.json",
        "/work/app/SecretStore.py",
        "/home/me/.aws/credentials",
        "/home/me/.ssh/id_rsa",
        "file:///work/app/.env",
    ],
)
def test_secret_looking_files_are_excluded(path: str) -> None:
    assert excluded(path, DEFAULT_SECRET_GLOBS)


@pytest.mark.parametrize("path", ["/work/app/models.py", "/work/env/app.py", "/work/keyboard.py"])
def test_ordinary_files_are_not_excluded(path: str) -> None:
    assert not excluded(path, DEFAULT_SECRET_GLOBS)


def test_the_users_globs_add_to_the_defaults() -> None:
    globs = (*DEFAULT_SECRET_GLOBS, "*.sql", "internal/**")
    assert excluded("/work/db/dump.sql", globs)
    assert excluded("/work/internal/payroll/rates.py", globs)
    assert not excluded("/work/public/rates.py", globs)


def test_the_process_umask_does_not_matter(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        cache = open_cache(tmp_path / "c")
        cache.put_exact("a" * 64, "x")
        cache.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c" / "exact" / "cache.db").stat().st_mode) == 0o600
