"""The usage figures on their own: percentiles, rates, the cost avoided and the stored form."""

from __future__ import annotations

import pytest

from lsp_server.usage.figures import DayUsage, Usage, UsageFormatError, percentile, report


def test_percentiles_are_the_nearest_rank_of_a_histogram() -> None:
    one_to_hundred = dict.fromkeys(range(1, 101), 1)
    assert percentile(one_to_hundred, 0.50) == 50
    assert percentile(one_to_hundred, 0.95) == 95
    assert percentile(one_to_hundred, 1.0) == 100
    # Counts weigh: 90 fast answers and 10 slow ones put p50 with the fast, p95 with the slow.
    assert percentile({5: 90, 800: 10}, 0.50) == 5
    assert percentile({5: 90, 800: 10}, 0.95) == 800
    assert percentile({42: 1}, 0.95) == 42


def test_an_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.5) is None
    assert report(Usage(), 0.30)["latencyMs"] == {"count": 0, "p50": None, "p95": None}


def test_latencies_are_kept_to_the_millisecond_for_shown_suggestions_only() -> None:
    day = DayUsage()
    day.count_request("model", "python", shown=True, latency_ms=12.4)
    day.count_request("cache", "python", shown=True, latency_ms=12.6)
    day.count_request("model", "python", shown=False, latency_ms=900.0)
    assert day.latency_ms == {12: 1, 13: 1}


def scripted_day() -> DayUsage:
    day = DayUsage()
    for _ in range(3):
        day.count_request("model", "python", shown=True, latency_ms=100)
    day.count_request("model", "python", shown=False, latency_ms=100)  # post-processing emptied it
    day.count_request("cache", "go", shown=True, latency_ms=2)
    day.count_request("typeahead", "python", shown=True, latency_ms=1)
    day.count_request("none", "python", shown=False, latency_ms=0)
    day.count_request("cancelled", "go", shown=False, latency_ms=30)
    day.count_accept("model", "python")
    day.count_accept("cache", "go")
    day.count_tokens(generated=200_000, prompt=800_000, reused=600_000)
    return day


def test_the_report_counts_per_source_and_language_with_acceptance_rates() -> None:
    figures = report(Usage({"2026-12-01": scripted_day()}), 0.30)
    assert (figures["requested"], figures["shown"], figures["accepted"]) == (8, 5, 2)
    assert figures["acceptanceRate"] == 0.4
    assert figures["bySource"]["model"] == {
        "requested": 4,
        "shown": 3,
        "accepted": 1,
        "acceptanceRate": 0.3333,
    }
    assert figures["bySource"]["cache"]["acceptanceRate"] == 1.0
    assert figures["bySource"]["cancelled"] == {
        "requested": 1,
        "shown": 0,
        "accepted": 0,
        "acceptanceRate": 0.0,
    }
    assert figures["byLanguage"]["go"]["requested"] == 2
    assert figures["byLanguage"]["python"]["accepted"] == 1
    assert figures["tokens"] == {
        "generated": 200_000,
        "promptComputed": 200_000,
        "promptReused": 600_000,
        "promptReuseRate": 0.75,
    }
    assert figures["latencyMs"] == {"count": 5, "p50": 100, "p95": 100}


def test_the_cost_avoided_prices_every_prompt_and_generated_token() -> None:
    usage = Usage({"2026-12-01": scripted_day()})  # 800k prompt + 200k generated = 1M tokens
    assert report(usage, 0.30)["costAvoidedUsd"] == pytest.approx(0.30)
    assert report(usage, 2.5)["costAvoidedUsd"] == pytest.approx(2.5)
    assert report(usage, 0.0)["costAvoidedUsd"] == 0.0


def test_days_are_reported_in_order_and_can_be_limited_to_the_last_ones() -> None:
    usage = Usage()
    for date in ("2026-12-03", "2026-11-30", "2026-12-01"):
        usage.day(date).count_request("model", "python", shown=True, latency_ms=10)
    usage.day("2026-12-02")  # a day with nothing in it is no day of usage
    figures = report(usage, 0.30)
    assert [day["day"] for day in figures["perDay"]] == ["2026-11-30", "2026-12-01", "2026-12-03"]
    assert (figures["firstDay"], figures["lastDay"], figures["days"]) == (
        "2026-11-30",
        "2026-12-03",
        3,
    )
    last_two = report(usage, 0.30, last_days=2)
    assert [day["day"] for day in last_two["perDay"]] == ["2026-12-01", "2026-12-03"]
    assert last_two["requested"] == 2


def test_the_stored_form_reads_back_the_same_and_adds_up() -> None:
    usage = Usage({"2026-12-01": scripted_day()})
    again = Usage.from_json(usage.to_json())
    assert again == usage
    again.add(usage)
    assert report(again, 0.30)["requested"] == 16
    assert again.days["2026-12-01"].latency_ms == {100: 6, 2: 2, 1: 2}


@pytest.mark.parametrize(
    "stored",
    [
        [],
        {"version": 99, "days": {}},
        {"version": 1, "days": []},
        {"version": 1, "days": {"2026-12-01": {"requested": {"model": {"python": -1}}}}},
        {"version": 1, "days": {"2026-12-01": {"requested": {"gpu": {"python": 1}}}}},
        {"version": 1, "days": {"2026-12-01": {"latencyMs": {"fast": 1}}}},
        {"version": 1, "days": {"2026-12-01": {"tokens": {"generated": "many"}}}},
    ],
)
def test_anything_but_a_usage_file_is_refused_as_such(stored: object) -> None:
    with pytest.raises(UsageFormatError):
        Usage.from_json(stored)
