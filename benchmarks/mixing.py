"""`flashcode bench mixing`: what decode-time mixing costs a decode step (prints JSON).

The default model generates greedily from prompts cut out of an installed package's files, once
with no mixing and once with the package's other files as a workspace source (plus the prompt's
own tokens as the buffer), alternating. The scheduler times each row's mixing (`mixing_ms_per_row`)
and each decode step by batch size; the figure the issue sets is mixing per row against a 1-row
decode step of the same run (under 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.repo_cases import find_project
from inference.engine import Engine, EngineOptions
from inference.ngram import TokenSuffixIndex
from inference.router import default_model_dir
from inference.scheduler import GenerationRequest
from lsp_server.workspace.segments import separator_for


def _step_ms(stats: dict[str, Any]) -> float:
    by_batch = stats.get("step_ms_by_batch", {})
    return float(by_batch.get(1, 0.0))


async def _run(engine: Engine, requests: Sequence[GenerationRequest]) -> None:
    for request in requests:
        await engine.generate(request)


def measure(model: Path, project: str, prompts: int, new_tokens: int, seed: int) -> dict[str, Any]:
    source = find_project(project)
    engine = Engine.load(model, EngineOptions(max_batch=1))
    try:
        tokenizer = engine.tokenizer
        separator = separator_for(tokenizer.vocab_size)
        texts = {path: source.read(path) for path in source.files}
        workspace = TokenSuffixIndex.from_documents(
            [tokenizer.encode(text) for text in texts.values()], separator
        )
        rng = random.Random(seed)
        plain: list[GenerationRequest] = []
        mixed: list[GenerationRequest] = []
        for _ in range(prompts):
            text = texts[rng.choice(sorted(texts))]
            cut = rng.randrange(len(text) // 4, max(len(text) // 4 + 1, len(text) - 1))
            ids = tuple(tokenizer.encode(text[:cut])[-600:])
            request = GenerationRequest(prompt_ids=ids, max_new_tokens=new_tokens)
            plain.append(request)
            buffer = TokenSuffixIndex.from_documents([list(ids)], separator)
            mixed.append(replace(request, ngram_sources=(buffer, workspace), ngram_context=ids))
        asyncio.run(_run(engine, plain[:2]))  # warm-up
        for part_plain, part_mixed in zip(plain, mixed, strict=True):
            asyncio.run(_run(engine, [part_plain, part_mixed]))
        stats = engine.stats()
        mixing_ms = float(stats.get("mixing_ms_per_row", 0.0))  # type: ignore[arg-type]
        step_ms = _step_ms(stats)
        return {
            "model": str(model),
            "workspace": {"project": project, "files": len(texts), "tokens": len(workspace)},
            "prompts": prompts,
            "new_tokens": new_tokens,
            "decode_step_ms_1_row": round(step_ms, 3),
            "mixing_ms_per_row": round(mixing_ms, 4),
            "mixing_share_of_step": round(mixing_ms / step_ms, 4) if step_ms else None,
            "mixed_rows": stats.get("mixed_rows"),
            "mixing_rows": stats.get("mixing_rows"),
        }
    finally:
        engine.close()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flashcode bench mixing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--project", default="jinja2", help="installed package used as workspace")
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    args = parser.parse_args(list(argv))
    report = measure(args.model, args.project, args.prompts, args.new_tokens, args.seed)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
