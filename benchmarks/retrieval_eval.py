"""`flashcode eval retrieval`: which retrieval, and which snippet format, helps the model most.

Offline, on `flashcode eval repo`'s cases (benchmarks/repo_cases.py, same seed, same holes):
for every case the other files of its project are indexed (prompts/retrieval.py, the file under
test left out as it is in the eval's workspace), the prompt is built as the server builds it
(lsp_server/completion/prompt_step.py) with the retrieved snippets, and the model answers
through the engine directly, with the server's post-processing and decode-time mixing of the
buffer (what the server mixes in when no workspace index is wired). No LSP server: a case costs
one model call, so every configuration runs on the same cases in one process.

Configurations (`--configs`, comma-separated):
- `none`: no snippets (the eval opens only the file under test, so no other open document);
- `jaccard`, `bm25`: the scorer, with snippets written as comments;
- `jaccard-files`, `bm25-files`: the same, in the template's repository format (file separator
  and path before each snippet, and before the current file).

Reported per configuration: exact match and edit similarity of the first line (every case
counts, an empty answer scores 0), answered share, `with_snippets` (share of prompts holding at
least one snippet) and `answer_in_snippets` (share of cases whose removed rest of the line
appears in a snippet of the prompt: what retrieval can give at best, model aside). `--no-model`
reports only the model-free columns, for sweeping `--window-lines`, `--stride` and
`--query-lines` in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.repo_cases import (
    DEFAULT_PROJECTS,
    Case,
    Project,
    build_cases,
    edit_similarity,
    exact_match,
    find_project,
)
from inference.engine import Engine, EngineOptions
from inference.router import default_model_dir
from lsp_server.completion.context import build_context
from lsp_server.completion.mixing_step import MixingSources
from lsp_server.completion.postprocess_step import shown_text_with_reason
from lsp_server.completion.prompt_step import model_prompt, model_request
from lsp_server.settings import Settings
from prompts.context import Document, Snippet, cursor_window
from prompts.fim import select_template
from prompts.retrieval import (
    MIN_SCORES,
    QUERY_LINES,
    SCORERS,
    STRIDE,
    WINDOW_LINES,
    Scorer,
    WindowIndex,
)

CONFIGS = ("none", "jaccard", "bm25", "jaccard-files", "bm25-files")
CONTEXT_BUDGET = Settings().context_budget
MAX_NEW_TOKENS = Settings().max_new_tokens
MAX_SNIPPETS = 4
MIN_ANSWER_CHARS = 4  # a shorter rest of the line is found in any snippet: no signal


@dataclass(frozen=True)
class Config:
    name: str
    scorer: Scorer | None
    as_files: bool


def parse_config(name: str) -> Config:
    scorer, _, form = name.partition("-")
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r}; allowed: {', '.join(CONFIGS)}")
    return Config(name, None if scorer == "none" else scorer, form == "files")  # type: ignore[arg-type]


class Indexes:
    """One WindowIndex per (case file, scorer): the project's files without the one under test."""

    def __init__(self, projects: dict[str, Project], window_lines: int, stride: int) -> None:
        self.texts = {
            name: {path: project.read(path) for path in project.files}
            for name, project in projects.items()
        }
        self.window_lines, self.stride = window_lines, stride
        self._built: dict[tuple[str, str, str], WindowIndex] = {}
        self.build_s: list[float] = []

    def for_case(self, case: Case, scorer: Scorer) -> WindowIndex:
        key = (case.project, case.path, scorer)
        if key not in self._built:
            started = time.perf_counter()
            files = [
                (f"{case.project}/{path}", text)
                for path, text in self.texts[case.project].items()
                if path != case.path
            ]
            self._built = {k: v for k, v in self._built.items() if k[:2] == key[:2]}
            self._built[key] = WindowIndex(
                files, scorer, window_lines=self.window_lines, stride=self.stride
            )
            self.build_s.append(time.perf_counter() - started)
        return self._built[key]


def retrieved(
    case: Case,
    document: Document,
    config: Config,
    indexes: Indexes,
    args: argparse.Namespace,
    query_ms: list[float],
) -> list[Snippet] | None:
    if config.scorer is None:
        return None
    index = indexes.for_case(case, config.scorer)
    started = time.perf_counter()
    query = cursor_window(document.text, case.offset, args.query_lines)
    found = index.search(
        query,
        "python",
        exclude_paths=[document.path],
        max_snippets=2 * MAX_SNIPPETS,
        min_score=args.min_score if args.min_score is not None else MIN_SCORES[config.scorer],
    )
    query_ms.append((time.perf_counter() - started) * 1000)
    return found


def _answer_in(snippets: Sequence[str], expected: str) -> bool:
    wanted = expected.strip()
    return len(wanted) >= MIN_ANSWER_CHARS and any(wanted in s for s in snippets)


async def run_config(
    config: Config,
    cases: Sequence[Case],
    engine: Engine,
    indexes: Indexes,
    args: argparse.Namespace,
) -> dict[str, Any]:
    template = select_template(engine.tokenizer.special_tokens)
    settings = Settings()
    exact = answered = with_snippets = answer_in = 0
    similarity: list[float] = []
    query_ms: list[float] = []
    for case in cases:
        document = Document(
            uri=f"file:///workspace/{case.workspace_path}",
            path=case.workspace_path,
            language_id="python",
            text=case.text,
        )
        snippets = retrieved(case, document, config, indexes, args, query_ms)
        prompt = model_prompt(
            document, case.offset, [], engine, template, CONTEXT_BUDGET, MAX_NEW_TOKENS,
            retrieved=snippets, as_files=config.as_files,
        )  # fmt: skip
        with_snippets += bool(prompt.snippets)
        answer_in += _answer_in(prompt.snippets, case.expected)
        if args.no_model:
            continue
        request = model_request(prompt, engine, MAX_NEW_TOKENS)
        if not args.no_mixing:
            context = build_context(document, case.offset, [], settings)
            sources, before = MixingSources().for_request(context, prompt, engine.tokenizer, ())
            request = replace(request, ngram_sources=sources, ngram_context=before)
        result = await engine.generate(request)
        text, _ = shown_text_with_reason(result.text, case.prefix, case.suffix, prompt)
        answered += bool(text)
        exact += exact_match(text, case.expected)
        similarity.append(edit_similarity(text, case.expected))
    count = len(cases)
    row: dict[str, Any] = {
        "with_snippets": round(with_snippets / count, 3),
        "answer_in_snippets": round(answer_in / count, 3),
    }
    if query_ms:
        row["query_p50_ms"] = round(statistics.median(query_ms), 2)
    if not args.no_model:
        row |= {
            "exact_match": round(exact / count, 3),
            "exact_matches": exact,
            "edit_similarity": round(statistics.fmean(similarity), 3),
            "answered_share": round(answered / count, 3),
        }
    return row


async def run(args: argparse.Namespace, configs: Sequence[Config]) -> dict[str, Any]:
    projects = {p.name: p for p in (find_project(n.strip()) for n in args.projects.split(","))}
    cases = build_cases(list(projects.values()), args.cases, args.seed)
    engine = Engine.load(args.model, EngineOptions(threads=args.threads))
    indexes = Indexes(projects, args.window_lines, args.stride)
    results: dict[str, Any] = {}
    try:
        for config in configs:
            started = time.perf_counter()
            results[config.name] = await run_config(config, cases, engine, indexes, args)
            results[config.name]["wall_s"] = round(time.perf_counter() - started, 1)
            print(f"{config.name}: {results[config.name]}", file=sys.stderr, flush=True)
    finally:
        engine.close()
    return {
        "config": {
            "cases": len(cases),
            "seed": args.seed,
            "projects": list(projects),
            "model": str(args.model),
            "window_lines": args.window_lines,
            "stride": args.stride,
            "query_lines": args.query_lines,
            "mixing": "buffer" if not args.no_mixing else "off",
            "index_build_p50_s": round(statistics.median(indexes.build_s), 3)
            if indexes.build_s
            else None,
        },
        "results": results,
    }


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flashcode eval retrieval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--projects", default=",".join(DEFAULT_PROJECTS))
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--threads", type=int, default=0, help="engine threads (0: per core)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=", ".join(CONFIGS))
    parser.add_argument("--window-lines", type=int, default=WINDOW_LINES)
    parser.add_argument("--stride", type=int, default=STRIDE)
    parser.add_argument("--query-lines", type=int, default=QUERY_LINES)
    parser.add_argument("--min-score", type=float, help="instead of the scorer's own")
    parser.add_argument("--no-model", action="store_true", help="model-free columns only")
    parser.add_argument("--no-mixing", action="store_true", help="no decode-time mixing")
    args = parser.parse_args(list(argv))
    if args.cases < 1 or not 0 < args.stride <= args.window_lines or args.query_lines < 1:
        parser.error("--cases, --query-lines >= 1 and 0 < --stride <= --window-lines")
    try:
        configs = [parse_config(n.strip()) for n in args.configs.split(",") if n.strip()]
    except ValueError as exc:
        parser.error(str(exc))
    assert all(c.scorer in (None, *SCORERS) for c in configs)
    print(json.dumps(asyncio.run(run(args, configs)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
