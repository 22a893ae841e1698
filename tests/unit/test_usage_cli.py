"""`flashcode stats`: the usage report read from disk, as a table, as JSON and as a plot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_server.cli import main as flashcode
from lsp_server.usage.cli import main
from lsp_server.usage.figures import DayUsage
from lsp_server.usage.store import UsageStore


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHCODE_CONFIG", str(tmp_path / "no-config.json"))


def two_days(directory: Path) -> Path:
    """A usage file as two days of a server's work left it."""
    store = UsageStore(directory / "usage")

    def monday(day: DayUsage) -> None:
        for latency in (100, 200, 300):
            day.count_request("model", "python", shown=True, latency_ms=latency)
        day.count_request("cancelled", "python", shown=False, latency_ms=40)
        day.count_accept("model", "python")
        day.count_tokens(generated=30, prompt=900, reused=600)

    def tuesday(day: DayUsage) -> None:
        day.count_request("cache", "typescript", shown=True, latency_ms=3)
        day.count_request("typeahead", "python", shown=True, latency_ms=1)
        day.count_accept("cache", "typescript")
        day.count_accept("typeahead", "python")

    store.update("2026-11-30", monday)
    store.update("2026-12-01", tuesday)
    store.close()
    return store.directory


def json_report(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_json_has_the_usage_figures_and_the_cache_beside_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = two_days(tmp_path)
    report = json_report(capsys, "--directory", str(tmp_path))
    usage = report["usage"]
    assert usage["directory"] == str(written) and usage["enabled"] is True
    assert (usage["requested"], usage["shown"], usage["accepted"]) == (6, 5, 3)
    assert usage["bySource"]["model"]["acceptanceRate"] == 0.3333
    assert usage["byLanguage"]["typescript"]["accepted"] == 1
    assert [day["latencyMs"]["p50"] for day in usage["perDay"]] == [200, 1]
    assert usage["costAvoidedUsd"] == pytest.approx(930 * 0.30 / 1e6)
    assert report["cache"]["directory"] == str(tmp_path)


def test_the_price_comes_from_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_days(tmp_path)
    monkeypatch.setenv("FLASHCODE_USAGE__PRICE_PER_MILLION_TOKENS", "1000")
    usage = json_report(capsys, "--directory", str(tmp_path))["usage"]
    assert usage["pricePerMillionTokens"] == 1000.0
    assert usage["costAvoidedUsd"] == pytest.approx(0.93)


def test_the_table_shows_sources_languages_tokens_latency_and_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_days(tmp_path)
    monkeypatch.setenv("FLASHCODE_CACHE__DIRECTORY", str(tmp_path))
    with pytest.raises(SystemExit) as done:
        flashcode(["stats"])  # as typed: the directory from the settings
    assert done.value.code == 0
    table = capsys.readouterr().out
    assert "2026-11-30 to 2026-12-01 (2 days)" in table
    rows = {line.split("  ")[0].strip(): line.split() for line in table.splitlines() if line}
    assert rows["model"][1:] == ["3", "3", "1", "33.3%"]
    assert rows["typing-ahead"][1:] == ["1", "1", "1", "100.0%"]
    assert rows["cancelled"][1:] == ["1", "0", "0", "-"]
    assert rows["all"][1:] == ["6", "5", "3", "60.0%"]
    assert rows["typescript"][1:] == ["1", "1", "1", "100.0%"]
    assert rows["2026-11-30"][-2:] == ["200", "300"]  # p50 and p95 ms
    assert "30 generated; prompt 300 computed, 600 reused (66.7%)" in table
    assert "cost avoided: 0.0003 USD at 0.30 USD per million tokens" in table


def test_a_corrupt_month_is_reported_left_as_it_is_and_the_others_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = two_days(tmp_path) / "2026-11.json"
    broken.write_text("[1, 2", encoding="utf-8")
    assert main(["--json", "--directory", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    usage = json.loads(printed.out)["usage"]
    assert [day["day"] for day in usage["perDay"]] == ["2026-12-01"]
    assert f"warning: {broken} cannot be read" in printed.err
    assert broken.read_text(encoding="utf-8") == "[1, 2"


def test_no_usage_yet_is_said_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "never"
    assert main(["--directory", str(missing)]) == 0
    assert "nothing counted yet" in capsys.readouterr().out
    assert not missing.exists()


def test_days_limit_the_report_to_the_last_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_days(tmp_path)
    usage = json_report(capsys, "--directory", str(tmp_path), "--days", "1")["usage"]
    assert [day["day"] for day in usage["perDay"]] == ["2026-12-01"]
    assert usage["requested"] == 2
    assert main(["--days", "0", "--directory", str(tmp_path)]) == 2
    assert "--days must be 1 or more" in capsys.readouterr().err


def test_the_plot_is_a_png_of_the_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    two_days(tmp_path)
    out = tmp_path / "usage.png"
    assert main(["--directory", str(tmp_path), "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000, "an image with two charts in it"


def test_a_plot_of_nothing_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "usage.png"
    assert main(["--directory", str(tmp_path), "--plot", str(out)]) == 1
    assert "nothing to plot" in capsys.readouterr().err
    assert not out.exists()


def test_without_matplotlib_the_plot_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_days(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert main(["--directory", str(tmp_path), "--plot", str(tmp_path / "u.png")]) == 2
    assert "pip install 'flashcode[plot]'" in capsys.readouterr().err
