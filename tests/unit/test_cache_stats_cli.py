"""`flashcode stats`: what the servers counted, read from disk as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.cache.store import CompletionCache
from lsp_server import cache_stats


def test_stats_print_the_totals_of_every_server_that_used_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):  # two sessions, one after the other
        cache = CompletionCache(tmp_path / "c", 16)
        cache.record("pattern", True, 1.5)  # a pattern hit ends the lookup
        cache.put_exact("a" * 64, "x")
        cache.close()
    assert cache_stats.main(["--directory", str(tmp_path / "c")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exists"] is True
    assert report["pattern"]["hits"] == 2
    assert report["lookups"] == 2 and report["hitRate"] == 1.0
    assert report["hitLatencyMs"]["p50"] == 1.5
    assert report["entries"] == {"exact": 1, "pattern": 0}
    assert report["sizeBytes"] > 0


def test_stats_of_a_cache_never_created_say_so_and_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "never"
    assert cache_stats.main(["--directory", str(missing)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["exists"] is False and report["entries"] == {"exact": 0, "pattern": 0}
    assert not missing.exists()


def test_the_directory_comes_from_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHCODE_CONFIG", str(tmp_path / "no-config.json"))
    monkeypatch.setenv("FLASHCODE_CACHE__DIRECTORY", str(tmp_path / "from-env"))
    assert cache_stats.main([]) == 0
    assert json.loads(capsys.readouterr().out)["directory"] == str(tmp_path / "from-env")
