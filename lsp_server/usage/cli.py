"""`flashcode stats`: the usage report (and the cache's figures) as a table, as JSON, or as a
plot.

It reads the usage files and the cache beside them, in the directory the settings name (config
file, FLASHCODE_CACHE__DIRECTORY) unless --directory says otherwise. It never writes the usage
files: none yet reports zeros, a corrupt one a warning and the other months (the next server to
write that month moves it aside). The price of the cost avoided is the
`usage.pricePerMillionTokens` setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lsp_server.cache_stats import cache_report
from lsp_server.settings import merge
from lsp_server.usage.figures import report
from lsp_server.usage.plot import PlotUnavailable, draw
from lsp_server.usage.store import read_usage, usage_dir
from lsp_server.usage.table import render

DESCRIPTION = (
    "Completions requested, shown and accepted, tokens, latency and the cost avoided, counted on"
    " this machine; and the completion cache's figures."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, on `flashcode stats`'s parser or this module's own."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", type=Path, metavar="FILE", help="draw the days into FILE (PNG)")
    parser.add_argument("--days", type=int, metavar="N", help="only the last N days with usage")
    parser.add_argument("--directory", help="cache directory (default: from the settings)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode stats", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.days is not None and args.days < 1:
        print("error: --days must be 1 or more", file=sys.stderr)
        return 2
    settings, problems = merge()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    directory = args.directory or settings.cache.directory
    where = usage_dir(directory)

    def unreadable(path: Path, exc: Exception) -> None:
        print(f"warning: {path} cannot be read ({exc}); its month is left out", file=sys.stderr)

    figures = {
        "enabled": settings.usage.enabled,
        "directory": str(where),
        **report(read_usage(where, unreadable), settings.usage.price_per_million_tokens, args.days),
    }
    if args.plot is not None:
        if not figures["days"]:
            print(f"error: no usage counted yet in {where}: nothing to plot", file=sys.stderr)
            return 1
        try:
            draw(figures, args.plot)
        except PlotUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (OSError, ValueError) as exc:
            print(f"error: cannot write {args.plot}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.plot}", file=sys.stderr)
    cache = cache_report(directory, settings)
    if args.json:
        print(json.dumps({"usage": figures, "cache": cache}, indent=2))
    elif args.plot is None:
        sys.stdout.write(render(figures, cache))
    return 0
