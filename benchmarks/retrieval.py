"""`flashcode bench retrieval`: what the window index costs to build and to query. Prints JSON.

The workspace is the running Python's standard library (no download): its .py files in path
order (its tests included), each cut to its first `--lines-per-file` lines, `--files` of them (by
default 1,000 files of at most 100 lines: a workspace of about 1,000 files and 100,000 lines
at most). For each scorer it reports the build time of prompts.retrieval.WindowIndex (what the
retrieval step pays in its background thread on every rebuild) and the p50/p95 of a query as a
completion makes it: the lines before a random cursor of a random file, that file's windows
left out, with `--open` other files (the same ones throughout, as in one editing session)
scored fresh as open documents.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.lsp import percentile
from prompts.context import Document, cursor_window
from prompts.retrieval import QUERY_LINES, SCORERS, WindowIndex


def stdlib_files(count: int, lines_per_file: int) -> list[tuple[str, str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    found: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if "site-packages" in relative.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = text.splitlines(keepends=True)[:lines_per_file]
        if lines:
            found.append((relative.as_posix(), "".join(lines)))
        if len(found) >= count:
            break
    return found


def measure(
    files: Sequence[tuple[str, str]], scorer: str, queries: int, open_count: int, seed: int
) -> dict[str, Any]:
    started = time.perf_counter()
    index = WindowIndex(files, scorer)  # type: ignore[arg-type]
    build_s = time.perf_counter() - started
    rng = random.Random(seed)
    # The same open documents for every query, as in one editing session
    opened = [
        Document(f"file:///open/{p}", p, "python", t)
        for p, t in rng.sample(list(files), min(open_count, len(files)))
    ]
    timings: list[float] = []
    found = 0
    for _ in range(queries):
        path, text = files[rng.randrange(len(files))]
        offset = rng.randrange(len(text) + 1)
        begin = time.perf_counter()
        snippets = index.search(
            cursor_window(text, offset, QUERY_LINES),
            "python",
            exclude_paths=[path],
            fresh=opened,
            max_snippets=8,
        )
        timings.append((time.perf_counter() - begin) * 1000)
        found += bool(snippets)
    return {
        "build_s": round(build_s, 2),
        "windows": index.window_count,
        "query_p50_ms": round(statistics.median(timings), 2),
        "query_p95_ms": round(percentile(timings, 0.95), 2),
        "queries_with_snippets": round(found / queries, 3),
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flashcode bench retrieval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--lines-per-file", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--open", type=int, default=5, help="open documents scored per query")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv))
    if min(args.files, args.lines_per_file, args.queries) < 1 or args.open < 0:
        parser.error("--files, --lines-per-file and --queries must be at least 1")
    files = stdlib_files(args.files, args.lines_per_file)
    if not files:
        parser.error("no standard library sources found")
    result: dict[str, Any] = {
        "config": {
            "files": len(files),
            "lines": sum(text.count("\n") for _, text in files),
            "queries": args.queries,
            "open_documents": args.open,
            "python": sys.version.split()[0],
        },
        **{
            scorer: measure(files, scorer, args.queries, args.open, args.seed) for scorer in SCORERS
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
