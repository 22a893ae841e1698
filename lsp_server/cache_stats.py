"""The completion cache's statistics on disk, as JSON (the cache part of `flashcode stats`).

Hits, misses and hit latency are totals over every server that used the cache directory (they
are flushed every few seconds and at exit); entries and size are read from the databases. The
directory is the one the settings name (config file, FLASHCODE_CACHE__DIRECTORY) unless
--directory says otherwise. A directory that does not exist is reported, not created.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from inference.cache.database import cache_dir
from inference.cache.store import CompletionCache
from lsp_server.settings import Settings, merge


def cache_report(directory_setting: str, settings: Settings) -> dict[str, Any]:
    """The cache's figures on disk for a directory setting ("" = the user cache directory)."""
    directory = cache_dir(directory_setting)
    report: dict[str, Any] = {"directory": str(directory), "enabled": settings.cache.enabled}
    if not directory.is_dir():
        report.update(exists=False, entries={"exact": 0, "pattern": 0}, sizeBytes=0)
        return report
    cache = CompletionCache(
        directory,
        settings.cache.max_size_mb,
        on_warning=lambda message: print(f"warning: {message}", file=sys.stderr),
    )
    try:
        stats = cache.stats()
    finally:
        cache.close()
    report.update(
        exists=True,
        entries=stats["entries"],
        sizeBytes=stats["sizeBytes"],
        maxSizeBytes=stats["maxSizeBytes"],
        **stats["total"],
    )
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode stats", description=__doc__)
    parser.add_argument("--directory", help="cache directory (default: from the settings)")
    args = parser.parse_args(argv)
    settings, problems = merge()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    report = cache_report(args.directory or settings.cache.directory, settings)
    print(json.dumps(report, indent=2))
    return 0
