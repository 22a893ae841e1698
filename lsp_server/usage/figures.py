"""Usage counts per day, their JSON form, and the figures a report shows: rates, percentiles and
the cost avoided. Pure: no file, no clock, no server.

A day holds, per layer (model, cache, typing-ahead; none and cancelled for requests that got no
answer) and per language: completions requested, shown and accepted; the model's tokens; and the
latencies of the suggestions shown, as a histogram of whole milliseconds. A histogram keeps a
day's size bounded by the distinct latencies rather than by the requests, adds up across servers
and sessions by summing, and gives percentiles to the millisecond; the mean is not kept.

The cost avoided is what a hosted model would have billed for the same model calls: every prompt
token (reused ones too: a hosted API bills the whole prompt of each call) and every generated
token, at one price per million tokens. Cache and typing-ahead answers made no model call and add
nothing, although a hosted service would have billed for them too: the figure is a lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lsp_server.completion.outcome import LAYERS

FORMAT_VERSION = 1
# layer -> language -> count
Tally = dict[str, dict[str, int]]


class UsageFormatError(ValueError):
    """Stored usage that is not in this module's format (a corrupt or foreign file)."""


def _bump(tally: Tally, layer: str, language: str, count: int = 1) -> None:
    by_language = tally.setdefault(layer, {})
    by_language[language] = by_language.get(language, 0) + count


def _add_tally(into: Tally, other: Tally) -> None:
    for layer, by_language in other.items():
        for language, count in by_language.items():
            _bump(into, layer, language, count)


@dataclass
class DayUsage:
    requested: Tally = field(default_factory=dict)
    shown: Tally = field(default_factory=dict)
    accepted: Tally = field(default_factory=dict)
    generated_tokens: int = 0
    prompt_tokens: int = 0  # reused ones included
    reused_prompt_tokens: int = 0
    latency_ms: dict[int, int] = field(default_factory=dict)  # whole ms -> suggestions shown

    def count_request(self, layer: str, language: str, shown: bool, latency_ms: float) -> None:
        assert layer in LAYERS, f"layer must be one of {LAYERS}, got {layer!r}"
        _bump(self.requested, layer, language)
        if shown:
            _bump(self.shown, layer, language)
            bucket = max(0, round(latency_ms))
            self.latency_ms[bucket] = self.latency_ms.get(bucket, 0) + 1

    def count_accept(self, layer: str, language: str) -> None:
        _bump(self.accepted, layer, language)

    def count_tokens(self, generated: int, prompt: int, reused: int) -> None:
        self.generated_tokens += generated
        self.prompt_tokens += prompt
        self.reused_prompt_tokens += reused

    def add(self, other: DayUsage) -> None:
        _add_tally(self.requested, other.requested)
        _add_tally(self.shown, other.shown)
        _add_tally(self.accepted, other.accepted)
        self.count_tokens(other.generated_tokens, other.prompt_tokens, other.reused_prompt_tokens)
        for bucket, count in other.latency_ms.items():
            self.latency_ms[bucket] = self.latency_ms.get(bucket, 0) + count

    def is_empty(self) -> bool:
        return not (self.requested or self.accepted or self.generated_tokens or self.prompt_tokens)

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "shown": self.shown,
            "accepted": self.accepted,
            "tokens": {
                "generated": self.generated_tokens,
                "prompt": self.prompt_tokens,
                "promptReused": self.reused_prompt_tokens,
            },
            "latencyMs": {str(bucket): count for bucket, count in sorted(self.latency_ms.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> DayUsage:
        if not isinstance(data, dict):
            raise UsageFormatError("a day is not an object")
        tokens = data.get("tokens", {})
        if not isinstance(tokens, dict):
            raise UsageFormatError("tokens is not an object")
        latencies = data.get("latencyMs", {})
        if not isinstance(latencies, dict) or not all(
            isinstance(k, str) and k.isdigit() for k in latencies
        ):
            raise UsageFormatError("latencyMs is not an object of whole milliseconds")
        return cls(
            requested=_tally(data.get("requested", {})),
            shown=_tally(data.get("shown", {})),
            accepted=_tally(data.get("accepted", {})),
            generated_tokens=_count(tokens.get("generated", 0)),
            prompt_tokens=_count(tokens.get("prompt", 0)),
            reused_prompt_tokens=_count(tokens.get("promptReused", 0)),
            latency_ms={int(k): _count(v) for k, v in latencies.items()},
        )


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageFormatError(f"a count is not a whole number >= 0: {value!r}")
    return value


def _tally(data: Any) -> Tally:
    if not isinstance(data, dict):
        raise UsageFormatError("a tally is not an object")
    tally: Tally = {}
    for layer, by_language in data.items():
        if layer not in LAYERS or not isinstance(by_language, dict):
            raise UsageFormatError(f"unknown layer {layer!r}")
        tally[layer] = {str(language): _count(n) for language, n in by_language.items()}
    return tally


@dataclass
class Usage:
    """Days by their local date, "YYYY-MM-DD" (which sorts as the calendar does)."""

    days: dict[str, DayUsage] = field(default_factory=dict)

    def day(self, date: str) -> DayUsage:
        return self.days.setdefault(date, DayUsage())

    def add(self, other: Usage) -> None:
        for date, day in other.days.items():
            self.day(date).add(day)

    def is_empty(self) -> bool:
        return all(day.is_empty() for day in self.days.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "days": {date: self.days[date].to_json() for date in sorted(self.days)},
        }

    @classmethod
    def from_json(cls, data: Any) -> Usage:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise UsageFormatError(f"not a version {FORMAT_VERSION} usage file")
        days = data.get("days")
        if not isinstance(days, dict):
            raise UsageFormatError("days is not an object")
        return cls({str(date): DayUsage.from_json(day) for date, day in days.items()})


# -- figures ------------------------------------------------------------------------------------


def percentile(histogram: Mapping[int, int], fraction: float) -> int | None:
    """The nearest-rank percentile of a histogram {value: count}: the smallest value with at
    least `fraction` of all counts at or below it. None for an empty histogram."""
    assert 0 < fraction <= 1, f"fraction must be in (0, 1], got {fraction}"
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = math.ceil(fraction * total)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")


def latency_summary(histogram: Mapping[int, int]) -> dict[str, Any]:
    return {
        "count": sum(histogram.values()),
        "p50": percentile(histogram, 0.50),
        "p95": percentile(histogram, 0.95),
    }


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _total(tally: Tally, layer: str | None = None, language: str | None = None) -> int:
    return sum(
        count
        for each_layer, by_language in tally.items()
        if layer is None or each_layer == layer
        for each_language, count in by_language.items()
        if language is None or each_language == language
    )


def cost_usd(day: DayUsage, price_per_million: float) -> float:
    return (day.prompt_tokens + day.generated_tokens) * price_per_million / 1e6


def _counts(day: DayUsage, layer: str | None = None, language: str | None = None) -> dict[str, Any]:
    shown = _total(day.shown, layer, language)
    accepted = _total(day.accepted, layer, language)
    return {
        "requested": _total(day.requested, layer, language),
        "shown": shown,
        "accepted": accepted,
        "acceptanceRate": _rate(accepted, shown),
    }


def _tokens(day: DayUsage) -> dict[str, Any]:
    computed = day.prompt_tokens - day.reused_prompt_tokens
    return {
        "generated": day.generated_tokens,
        "promptComputed": computed,
        "promptReused": day.reused_prompt_tokens,
        "promptReuseRate": _rate(day.reused_prompt_tokens, day.prompt_tokens),
    }


def summed(days: Iterable[DayUsage]) -> DayUsage:
    total = DayUsage()
    for day in days:
        total.add(day)
    return total


def report(usage: Usage, price_per_million: float, last_days: int | None = None) -> dict[str, Any]:
    """The figures over every stored day, or over the `last_days` most recent ones."""
    dates = sorted(date for date, day in usage.days.items() if not day.is_empty())
    if last_days is not None:
        dates = dates[-last_days:] if last_days > 0 else []
    total = summed(usage.days[date] for date in dates)
    languages = sorted(
        {
            lang
            for tally in (total.requested, total.accepted)
            for by in tally.values()
            for lang in by
        }
    )
    return {
        "pricePerMillionTokens": price_per_million,
        "firstDay": dates[0] if dates else None,
        "lastDay": dates[-1] if dates else None,
        "days": len(dates),
        **_counts(total),
        "bySource": {layer: _counts(total, layer=layer) for layer in LAYERS},
        "byLanguage": {language: _counts(total, language=language) for language in languages},
        "tokens": _tokens(total),
        "latencyMs": latency_summary(total.latency_ms),
        "costAvoidedUsd": round(cost_usd(total, price_per_million), 6),
        "perDay": [
            {
                "day": date,
                **_counts(usage.days[date]),
                "latencyMs": latency_summary(usage.days[date].latency_ms),
                "tokens": _tokens(usage.days[date]),
                "costAvoidedUsd": round(cost_usd(usage.days[date], price_per_million), 6),
            }
            for date in dates
        ],
    }
