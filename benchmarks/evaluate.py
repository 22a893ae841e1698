"""Model quality: `flashcode eval humaneval-infilling | nextline | agreement` (prints JSON).

Completions go through the same prompt builder and post-processing as the editor, greedy, so the
scores are what a user of that model would see. `--no-healing` (humaneval-infilling, nextline)
builds the prompts without token healing, as the server's `tokenHealing: false` does.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.engine import Engine, EngineOptions
from inference.router import default_model_dir
from inference.scheduler import GenerationRequest
from lsp_server.completion.postprocess_step import shown_text
from lsp_server.completion.prompt_step import model_prompt, model_request
from prompts.context import Document
from prompts.fim import select_template

HUMANEVAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "eval" / "human-eval-infilling"
CONCURRENCY = 8  # requests in flight: the engine batches them into one model step


@dataclass(frozen=True)
class Infill:
    prefix: str
    suffix: str
    multiline: bool
    path: str = "task.py"


async def complete_all(
    engine: Engine,
    tasks: Sequence[Infill],
    max_new_tokens: int,
    budget: int = 1024,
    healing: bool = True,
) -> list[str]:
    template = select_template(engine.tokenizer.special_tokens)
    results: list[str] = [""] * len(tasks)
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int, task: Infill) -> None:
        text = task.prefix + task.suffix
        document = Document(
            uri=f"file:///{task.path}", path=task.path, language_id="python", text=text
        )
        offset = len(task.prefix)
        prompt = model_prompt(
            document, offset, [], engine, template, budget, max_new_tokens, task.multiline, healing
        )
        async with semaphore:
            result = await engine.generate(model_request(prompt, engine, max_new_tokens))
        results[index] = shown_text(result.text, task.prefix, task.suffix, prompt)

    await asyncio.gather(*(one(i, t) for i, t in enumerate(tasks)))
    return results


def with_cpu_limit(program: str, seconds: int) -> str:
    """The program, capped first at `seconds` of CPU time: a completion that loops forever dies of
    it even when this process is killed before its timeout, instead of spinning on as an orphan."""
    return f"import resource\nresource.setrlimit(resource.RLIMIT_CPU, ({seconds}, {seconds}))\n" + (
        program
    )


def run_python(program: str, timeout_s: float) -> bool:
    """True when the program exits 0 within the time limit, in a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="flashcode-eval-") as scratch:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", with_cpu_limit(program, math.ceil(timeout_s) + 1)],
                cwd=scratch,
                env=env,
                capture_output=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def humaneval_rows(
    kind: str, limit: int | None, data: Path = HUMANEVAL_DIR
) -> list[dict[str, Any]]:
    path = data / f"HumanEval-{kind}LineInfilling.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    if limit and limit < len(rows):
        step = len(rows) / limit  # an even spread over all problems, the same every run
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows


def score_humaneval(
    engine: Engine,
    kind: str,
    limit: int | None,
    timeout_s: float,
    data: Path,
    healing: bool = True,
) -> dict[str, Any]:
    rows = humaneval_rows(kind, limit, data)
    multiline = kind == "Multi"
    tasks = [Infill(r["prompt"], r["suffix"], multiline) for r in rows]
    started = time.perf_counter()
    completions = asyncio.run(
        complete_all(engine, tasks, 128 if multiline else 64, healing=healing)
    )
    generation_s = time.perf_counter() - started

    def program(row: dict[str, Any], completion: str) -> str:
        middle = completion if completion.endswith("\n") else completion + "\n"
        return (
            row["prompt"]
            + middle
            + row["suffix"]
            + "\n"
            + row["test"]
            + f"\ncheck({row['entry_point']})\n"
        )

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        passed = list(
            pool.map(
                lambda rc: run_python(program(*rc), timeout_s), zip(rows, completions, strict=True)
            )
        )
    exact = [
        c.rstrip() == r["canonical_solution"].rstrip()
        for r, c in zip(rows, completions, strict=True)
    ]
    return {
        "tasks": len(rows),
        "exact_match": sum(exact) / len(rows),
        "pass_at_1": sum(passed) / len(rows),
        "empty": sum(1 for c in completions if not c.strip()) / len(rows),
        "generation_s": round(generation_s, 1),
    }


def humaneval(args: argparse.Namespace) -> dict[str, Any]:
    engine = Engine.load(args.model, EngineOptions())
    try:
        healing = not args.no_healing
        single = score_humaneval(
            engine, "Single", args.limit_single, args.timeout, args.data, healing
        )
        multi = (
            score_humaneval(engine, "Multi", args.limit_multi, args.timeout, args.data, healing)
            if args.limit_multi != 0
            else None
        )
    finally:
        engine.close()
    return {
        "model": engine.model.name,
        "token_healing": not args.no_healing,
        "single_line_exact_match": single["exact_match"],
        "single_line_pass_at_1": single["pass_at_1"],
        "multi_line_exact_match": multi["exact_match"] if multi else None,
        "multi_line_pass_at_1": multi["pass_at_1"] if multi else None,
        "single_line": single,
        "multi_line": multi,
    }


def next_line_tasks(samples: int, seed: int = 0) -> list[tuple[Infill, str]]:
    """Cursor at the start of a non-blank line of a stdlib file; that line is the answer."""
    from inference.build.corpus import collect

    rng = random.Random(seed)
    files = collect().validation
    tasks: list[tuple[Infill, str]] = []
    per_file = max(1, samples // max(1, len(files)) + 1)
    for source in files:
        lines = source.text.splitlines(keepends=True)
        candidates = [i for i, line in enumerate(lines) if line.strip() and i > 0]
        for index in sorted(rng.sample(candidates, min(per_file, len(candidates)))):
            prefix = "".join(lines[:index])
            suffix = "".join(lines[index + 1 :])
            tasks.append(
                (Infill(prefix, suffix, multiline=False, path=source.relpath), lines[index])
            )
    rng.shuffle(tasks)
    return tasks[:samples]


def nextline(args: argparse.Namespace) -> dict[str, Any]:
    tasks = next_line_tasks(args.samples)
    engine = Engine.load(args.model, EngineOptions())
    try:
        completions = asyncio.run(
            complete_all(engine, [t for t, _ in tasks], 64, healing=not args.no_healing)
        )
    finally:
        engine.close()
    exact = [c.rstrip() == line.rstrip() for (_, line), c in zip(tasks, completions, strict=True)]
    return {
        "model": engine.model.name,
        "samples": len(tasks),
        "next_line_exact_match": sum(exact) / len(tasks),
    }


def model_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.iterdir() if p.suffix in (".onnx", ".data"))


async def teacher_forced_agreement(
    candidate: Engine, reference: Engine, prompts: Sequence[tuple[int, ...]], new_tokens: int
) -> tuple[int, int]:
    """Top-1 agreement of `candidate` with `reference` along the reference's own greedy path."""
    agree = total = 0
    for prompt in prompts:
        path = await reference.generate(
            GenerationRequest(prompt_ids=prompt, max_new_tokens=new_tokens)
        )
        for i, expected in enumerate(path.token_ids):
            step = await candidate.generate(
                GenerationRequest(prompt_ids=(*prompt, *path.token_ids[:i]), max_new_tokens=1)
            )
            agree += bool(step.token_ids) and step.token_ids[0] == expected
            total += 1
    return agree, total


def agreement(args: argparse.Namespace) -> dict[str, Any]:
    tasks = next_line_tasks(args.prompts, seed=1)
    candidate = Engine.load(args.model, EngineOptions())
    reference = Engine.load(args.reference, EngineOptions())
    try:
        prompts = [tuple(candidate.tokenizer.encode(task.prefix)[-512:]) for task, _ in tasks]
        agree, total = asyncio.run(
            teacher_forced_agreement(candidate, reference, prompts, args.tokens)
        )
    finally:
        candidate.close()
        reference.close()
    return {
        "model": str(args.model),
        "reference": str(args.reference),
        "greedy_token_agreement": agree / max(1, total),
        "tokens_compared": total,
        "size_ratio": model_bytes(args.model) / model_bytes(args.reference),
        "model_bytes": model_bytes(args.model),
        "reference_bytes": model_bytes(args.reference),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode eval")
    sub = parser.add_subparsers(dest="name", required=True)
    he = sub.add_parser("humaneval-infilling")
    he.add_argument("--limit-single", type=int, default=None, help="tasks (default: all 1,033)")
    he.add_argument(
        "--limit-multi", type=int, default=1000, help="tasks, evenly spread (of 5,815; 0: none)"
    )
    he.add_argument("--timeout", type=float, default=10.0, help="seconds per test run")
    he.add_argument(
        "--data", type=Path, default=HUMANEVAL_DIR, help="the human-eval-infilling files"
    )
    nl = sub.add_parser("nextline")
    nl.add_argument("--samples", type=int, default=1000)
    ag = sub.add_parser("agreement")
    ag.add_argument("--reference", type=Path, required=True, help="the fp32 model directory")
    ag.add_argument("--prompts", type=int, default=100)
    ag.add_argument("--tokens", type=int, default=32)
    for sp in (he, nl):
        sp.add_argument(
            "--no-healing", action="store_true", help="prompts without token healing (ablation)"
        )
    for sp in (he, nl, ag):
        sp.add_argument("--model", type=Path, default=default_model_dir())
        sp.add_argument(
            "--json", action="store_true", help="print JSON only (the default output too)"
        )
    args = parser.parse_args(argv)
    report = {"humaneval-infilling": humaneval, "nextline": nextline, "agreement": agreement}[
        args.name
    ](args)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
