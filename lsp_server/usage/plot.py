"""`flashcode stats --plot FILE`: acceptance and latency per day, drawn with matplotlib (the
optional `plot` extra, imported only here and only when a plot is asked for)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def draw(usage: dict[str, Any], path: Path) -> None:
    """Write a PNG (or any format matplotlib knows from the suffix) of the report's days: the
    share of shown suggestions accepted, and the p50/p95 latency of the shown ones."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # a file, never a window
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'flashcode[plot]'") from exc
    days = usage["perDay"]
    when = [date.fromisoformat(day["day"]) for day in days]
    nan = float("nan")  # a day without a shown suggestion has no latency: a gap in the line
    p50 = [nan if day["latencyMs"]["p50"] is None else day["latencyMs"]["p50"] for day in days]
    p95 = [nan if day["latencyMs"]["p95"] is None else day["latencyMs"]["p95"] for day in days]
    figure, (acceptance, latency) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    try:
        acceptance.plot(when, [100 * day["acceptanceRate"] for day in days], marker="o")
        acceptance.set_ylabel("accepted / shown (%)")
        acceptance.set_ylim(bottom=0)
        acceptance.set_title(f"flashcode usage, {usage['firstDay']} to {usage['lastDay']}")
        latency.plot(when, p50, marker="o", label="p50")
        latency.plot(when, p95, marker="s", label="p95")
        latency.set_ylabel("latency of shown suggestions (ms)")
        latency.set_ylim(bottom=0)
        latency.legend()
        # One tick per day at most (matplotlib would put hours between two days), and half a day
        # of margin so that a single day is not drawn on the frame.
        latency.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(days) // 10)))
        latency.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
        latency.set_xlim(mdates.date2num(when[0]) - 0.5, mdates.date2num(when[-1]) + 0.5)
        figure.autofmt_xdate()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
