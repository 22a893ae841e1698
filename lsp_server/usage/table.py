"""The usage figures (figures.report) as the text table `flashcode stats` prints. Pure: figures in,
text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SOURCE_LABELS = {
    "model": "model",
    "cache": "cache",
    "typeahead": "typing-ahead",
    "none": "no answer",
    "cancelled": "cancelled",
}
COUNT_COLUMNS = ("requested", "shown", "accepted", "accepted/shown")


def _rate(value: float, shown: int) -> str:
    return f"{100 * value:.1f}%" if shown else "-"


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns aligned: the first to the left, the others to the right."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]


def _count_cells(label: str, counts: dict[str, Any]) -> list[str]:
    return [
        label,
        f"{counts['requested']:,}",
        f"{counts['shown']:,}",
        f"{counts['accepted']:,}",
        _rate(counts["acceptanceRate"], counts["shown"]),
    ]


def render(usage: dict[str, Any], cache: dict[str, Any] | None = None) -> str:
    lines: list[str] = []
    where = usage.get("directory", "")
    if usage.get("days"):
        span = f"{usage['firstDay']} to {usage['lastDay']} ({usage['days']} days)"
        lines.append(f"flashcode usage, {span}: {where}")
    else:
        lines.append(f"flashcode usage: nothing counted yet in {where}")
    if usage.get("enabled") is False:
        lines.append("(usage.enabled is off: no new completions are counted)")
    if not usage.get("days"):
        return "\n".join(lines + _cache_lines(cache)) + "\n"

    by_source = [
        _count_cells(SOURCE_LABELS[layer], counts) for layer, counts in usage["bySource"].items()
    ]
    lines += ["", *_rows(("source", *COUNT_COLUMNS), [*by_source, _count_cells("all", usage)])]
    by_language = [
        _count_cells(language or "(none)", counts)
        for language, counts in usage["byLanguage"].items()
    ]
    lines += ["", *_rows(("language", *COUNT_COLUMNS), by_language)]

    tokens, latency = usage["tokens"], usage["latencyMs"]
    lines += [
        "",
        f"tokens: {tokens['generated']:,} generated; prompt {tokens['promptComputed']:,} computed,"
        f" {tokens['promptReused']:,} reused ({_rate(tokens['promptReuseRate'], 1)})",
        f"latency of the suggestions shown: p50 {_ms(latency['p50'])} ms,"
        f" p95 {_ms(latency['p95'])} ms ({latency['count']:,} suggestions)",
        f"cost avoided: {usage['costAvoidedUsd']:.4f} USD at"
        f" {usage['pricePerMillionTokens']:.2f} USD per million tokens"
        " (prompt and generated tokens of the model's answers)",
    ]
    per_day = [
        [
            *_count_cells(day["day"], day),
            _ms(day["latencyMs"]["p50"]),
            _ms(day["latencyMs"]["p95"]),
        ]
        for day in usage["perDay"]
    ]
    lines += ["", *_rows(("day", *COUNT_COLUMNS, "p50 ms", "p95 ms"), per_day)]
    return "\n".join(lines + _cache_lines(cache)) + "\n"


def _cache_lines(cache: dict[str, Any] | None) -> list[str]:
    if cache is None:
        return []
    if not cache.get("exists"):
        return ["", f"cache: none yet in {cache['directory']}"]
    entries = cache["entries"]
    return [
        "",
        f"cache: {100 * cache['hitRate']:.1f}% hit rate over {cache['lookups']:,} lookups;"
        f" {entries['exact']:,} exact and {entries['pattern']:,} pattern entries,"
        f" {cache['sizeBytes'] / 2**20:.1f} MB in {cache['directory']}",
    ]
