"""The usage files and the recorder that fills them: batched writes, one file per month,
user-only permissions, several servers adding to the same totals, and a file that is corrupt or
cannot be written."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from lsp_server.completion.outcome import CompletionOutcome
from lsp_server.settings import CacheSettings, Settings, UsageSettings
from lsp_server.usage import store as store_module
from lsp_server.usage.figures import DayUsage, report
from lsp_server.usage.recorder import UsageRecorder
from lsp_server.usage.store import (
    FLUSH_EVERY_EVENTS,
    FLUSH_INTERVAL_S,
    UsageStore,
    read_month,
    read_usage,
)

DAY = "2026-12-01"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def one_request(day: DayUsage) -> None:
    day.count_request("model", "python", shown=True, latency_ms=20)


def test_events_are_written_in_batches_not_one_by_one(tmp_path: Path) -> None:
    clock = Clock()
    store = UsageStore(tmp_path / "usage", clock=clock)
    for _ in range(FLUSH_EVERY_EVENTS - 1):
        store.update(DAY, one_request)
    assert not store.directory.exists()
    store.update(DAY, one_request)  # the batch is full
    stored = read_usage(store.directory)
    assert stored.days[DAY].requested == {"model": {"python": FLUSH_EVERY_EVENTS}}
    store.update(DAY, one_request)
    clock.now += FLUSH_INTERVAL_S  # the next event after the interval writes the batch
    store.update(DAY, one_request)
    assert report(read_usage(store.directory), 0.3)["requested"] == FLUSH_EVERY_EVENTS + 2
    store.update(DAY, one_request)
    store.close()  # and closing writes the rest
    assert report(read_usage(store.directory), 0.3)["requested"] == FLUSH_EVERY_EVENTS + 3


def test_each_month_has_a_file_of_its_own(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "usage")
    for date in ("2026-11-30", "2026-12-01", "2026-12-02"):
        store.update(date, one_request)
    store.close()
    files = sorted(p.name for p in store.directory.iterdir() if p.suffix == ".json")
    assert files == ["2026-11.json", "2026-12.json"]
    assert set(read_month(store.directory / "2026-12.json").days) == {"2026-12-01", "2026-12-02"}
    assert set(read_usage(store.directory).days) == {"2026-11-30", "2026-12-01", "2026-12-02"}


def test_the_usage_file_and_its_directory_are_the_users_only(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "cache" / "usage")
    store.update(DAY, one_request)
    store.close()
    written = store.directory / "2026-12.json"
    assert written.is_file()
    if os.name == "posix":
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
        shared = [p for p in store.directory.iterdir() if stat.S_IMODE(p.stat().st_mode) & 0o077]
        assert shared == []


def test_two_servers_add_to_the_same_totals(tmp_path: Path) -> None:
    directory = tmp_path / "usage"
    first, second = UsageStore(directory), UsageStore(directory)
    first.update(DAY, one_request)
    second.update(DAY, one_request)
    second.update(DAY, one_request)
    first.close()
    second.close()
    assert read_usage(directory).days[DAY].requested == {"model": {"python": 3}}


def test_the_totals_include_what_is_not_written_yet(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "usage")
    store.update(DAY, one_request)
    assert store.totals().days[DAY].requested == {"model": {"python": 1}}
    store.close()


def test_a_corrupt_file_is_moved_aside_with_one_warning_and_counting_goes_on(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "usage"
    directory.mkdir()
    path = directory / "2026-12.json"
    path.write_text("{not json", encoding="utf-8")
    earlier = UsageStore(directory)
    earlier.update("2026-11-30", one_request)  # another month, in a good file
    earlier.close()
    warnings: list[str] = []
    store = UsageStore(directory, on_warning=warnings.append)
    store.update(DAY, one_request)
    assert store.flush() is True
    assert read_month(path).days[DAY].requested == {"model": {"python": 1}}
    aside = [p.name for p in directory.iterdir() if p.name.startswith("2026-12.json.broken-")]
    assert len(aside) == 1 and (directory / aside[0]).read_text() == "{not json"
    assert len(warnings) == 1 and "unreadable" in warnings[0] and aside[0] in warnings[0]
    assert set(read_usage(directory).days) == {"2026-11-30", DAY}, "other months are kept"
    path.write_text('{"version": 1, "days": []}', encoding="utf-8")  # broken again
    store.update(DAY, one_request)
    store.close()
    assert len(warnings) == 1, "the same trouble is said once"


def test_a_file_that_cannot_be_written_warns_once_and_keeps_the_counts(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # the usage file's directory is a file: nothing can be created there
    warnings: list[str] = []
    store = UsageStore(blocker / "usage", on_warning=warnings.append)
    store.update(DAY, one_request)
    assert store.flush() is False
    store.update(DAY, one_request)
    assert store.flush() is False
    assert len(warnings) == 1 and "cannot write" in warnings[0]
    assert store.totals().days[DAY].requested == {"model": {"python": 2}}
    store.close()


def test_a_write_never_leaves_a_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = UsageStore(tmp_path / "usage")
    path = store.directory / "2026-12.json"
    store.update(DAY, one_request)
    store.flush()
    before = path.read_text()

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module.json, "dump", broken_dump)
    store.update(DAY, one_request)
    assert store.flush() is False
    assert path.read_text() == before
    assert [p.name for p in store.directory.iterdir() if p.suffix == ".tmp"] == []
    monkeypatch.undo()
    store.close()
    assert read_month(path).days[DAY].requested == {"model": {"python": 2}}


# -- the recorder ---------------------------------------------------------------------------


def settings_for(tmp_path: Path, **usage: object) -> Settings:
    return Settings(
        cache=CacheSettings(directory=str(tmp_path / "cache")),
        usage=UsageSettings(**usage),  # type: ignore[arg-type]
    )


def shown(layer: str, suggestion_id: str, language: str = "python") -> CompletionOutcome:
    return CompletionOutcome(
        language=language, layer=layer, shown=True, latency_ms=15, suggestion_id=suggestion_id
    )


def test_a_suggestion_accepted_twice_counts_once_for_the_text_on_screen(tmp_path: Path) -> None:
    recorder = UsageRecorder(today=lambda: DAY)
    recorder.configure(settings_for(tmp_path))
    recorder.record(shown("model", "a1"))
    recorder.record(shown("typeahead", "a1"))  # the user typed into it: the rest was shown
    recorder.accepted("a1")
    recorder.accepted("a1")
    recorder.accepted("never-shown")
    figures = recorder.report()
    assert figures["enabled"] is True
    assert figures["directory"] == str(tmp_path / "cache" / "usage")
    assert figures["bySource"]["model"]["accepted"] == 0
    assert figures["bySource"]["typeahead"]["accepted"] == 1
    assert (figures["shown"], figures["accepted"]) == (2, 1)
    recorder.close()


def test_the_models_tokens_are_counted_and_priced_from_the_settings(tmp_path: Path) -> None:
    recorder = UsageRecorder(today=lambda: DAY)
    recorder.configure(settings_for(tmp_path, price_per_million_tokens=1000.0))
    recorder.record(
        CompletionOutcome(
            language="rust",
            layer="model",
            shown=True,
            latency_ms=250,
            suggestion_id="r1",
            generated_tokens=12,
            prompt_tokens=300,
            reused_prompt_tokens=280,
        )
    )
    figures = recorder.report()
    assert figures["tokens"]["generated"] == 12
    assert (figures["tokens"]["promptComputed"], figures["tokens"]["promptReused"]) == (20, 280)
    assert figures["costAvoidedUsd"] == pytest.approx(0.312)  # 312 tokens at 1000 USD per million
    recorder.close()


def test_switched_off_it_counts_nothing_and_writes_nothing(tmp_path: Path) -> None:
    recorder = UsageRecorder(today=lambda: DAY)
    recorder.configure(settings_for(tmp_path, enabled=False))
    recorder.record(shown("model", "b1"))
    recorder.accepted("b1")
    assert recorder.report() == {"enabled": False}
    recorder.close()
    assert not (tmp_path / "cache").exists()


def test_what_is_stored_names_languages_and_counts_never_code(tmp_path: Path) -> None:
    recorder = UsageRecorder(today=lambda: DAY)
    recorder.configure(settings_for(tmp_path))
    recorder.record(shown("model", "secret-id-7", language="python"))
    recorder.accepted("secret-id-7")
    recorder.close()
    stored = json.loads((tmp_path / "cache" / "usage" / "2026-12.json").read_text())
    assert "secret-id-7" not in json.dumps(stored)
    assert set(stored) == {"version", "days"}
    assert set(stored["days"][DAY]) == {"requested", "shown", "accepted", "tokens", "latencyMs"}
