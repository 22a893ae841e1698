"""`python -m inference.build.ablate --base runs/v2 --work runs/ablate`: the recipe, by ablation.

Each variant trains from scratch in `work/<name>` on the base run's corpus, for the same number
of tokens (`--tokens`), with the same warmup and a stable learning rate after it (no decay: the
variants compare at equal schedules, and a decay would favour whichever is furthest along). Its
own tokenizer and packed file are built only when its vocabulary or FIM mix differs from the
base's. It is then exported (int4) and scored on:
- validation bits per byte on the held-out packages, which compares across vocabularies;
- HumanEval single-line infilling, `--humaneval` tasks, through flashcode's own pipeline.

A variant already scored is kept, so an interrupted ablation resumes with the next one. Writes
`work/ablations.json` and `work/ablations.md`, the model card's table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# name -> (what it changes, the build flags that change it). The base is the shipped recipe:
# 6 layers x 256, vocabulary 8,192, AdamW, FIM rate 0.5.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "base": ("6 x 256, vocabulary 8,192, AdamW, FIM 0.5", []),
    "vocab-4k": ("vocabulary 4,096", ["--vocab", "4096"]),
    "vocab-16k": ("vocabulary 16,384", ["--vocab", "16384"]),
    "deep": ("12 x 192 at equal parameters (6.7M)", ["--shape", "deep"]),
    "muon": ("Muon for the hidden matrices", ["--optimizer", "muon"]),
    "fim-0.2": ("FIM rate 0.2", ["--fim-rate", "0.2"]),
    "fim-0.8": ("FIM rate 0.8", ["--fim-rate", "0.8"]),
}


def build_command(base: Path, work: Path, tokens: int, flags: list[str]) -> list[str]:
    """The build pipeline for one variant: corpus linked from `base`, trained to `tokens`."""
    return [
        sys.executable,
        "-m",
        "inference.build",
        "all",
        "--work",
        str(work),
        "--corpus-from",
        str(base),
        "--max-tokens",
        str(tokens),
        "--minutes",
        "600",  # the token budget ends the run; this only bounds a stuck one
        *flags,
    ]


def humaneval_command(model: Path, tasks: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.evaluate",
        "humaneval-infilling",
        "--limit-single",
        str(tasks),
        "--limit-multi",
        "0",
        "--model",
        str(model),
        "--json",
    ]


def run_variant(name: str, base: Path, work: Path, tokens: int, tasks: int) -> dict[str, Any]:
    what, flags = VARIANTS[name]
    here = work / name
    here.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (here / "build.log").open("w") as log:
        done = subprocess.run(
            build_command(base, here, tokens, flags), stdout=log, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise RuntimeError(f"variant {name} failed to build; see {here / 'build.log'}")
    built_s = time.monotonic() - started
    state = json.loads((here / "train_state.json").read_text())
    config = json.loads((here / "train_config.json").read_text())
    scored = subprocess.run(
        humaneval_command(here / "export", tasks), capture_output=True, text=True, check=True
    )
    humaneval = json.loads(scored.stdout)
    return {
        "variant": name,
        "changes": what,
        "flags": flags,
        "parameters": config["parameters"],
        "tokens": state["tokens"],
        "steps": state["step"],
        "train_minutes": round(state["elapsed_s"] / 60, 1),
        "tokens_per_s": round(state["tokens"] / max(state["elapsed_s"], 1e-9)),
        "val_bpb": round(state["final_val_bpb"], 4),
        "humaneval_tasks": tasks,
        "humaneval_single_exact": humaneval["single_line_exact_match"],
        "humaneval_single_pass_at_1": humaneval["single_line_pass_at_1"],
        "wall_minutes": round((time.monotonic() - started) / 60, 1),
        "build_minutes": round(built_s / 60, 1),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| variant | changes | parameters | tokens | minutes | tokens/s | validation bits/byte "
        "| HumanEval single-line exact / pass@1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['changes']} | {r['parameters']:,} | {r['tokens']:,} "
            f"| {r['train_minutes']} | {r['tokens_per_s']:,} | {r['val_bpb']:.3f} "
            f"| {r['humaneval_single_exact']:.3f} / {r['humaneval_single_pass_at_1']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.build.ablate")
    parser.add_argument("--base", type=Path, required=True, help="the built base work directory")
    parser.add_argument("--work", type=Path, default=Path("runs/ablate"))
    parser.add_argument("--tokens", type=int, default=2_000_000, help="tokens per variant")
    parser.add_argument("--humaneval", type=int, default=200, help="single-line tasks scored")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS)
    )
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    results_file = args.work / "ablations.json"
    results: dict[str, dict[str, Any]] = (
        json.loads(results_file.read_text()) if results_file.exists() else {}
    )
    for name in names:
        done = results.get(name)
        if done and done["tokens"] >= args.tokens and done["humaneval_tasks"] == args.humaneval:
            continue
        results[name] = run_variant(name, args.base, args.work, args.tokens, args.humaneval)
        results_file.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results[name]), flush=True)
    rows = [results[n] for n in VARIANTS if n in results]
    (args.work / "ablations.md").write_text(table(rows))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
