"""Resident memory of the Engine on a model, beside the model file and the KV budget.

Measured in a child process of its own (`python -m benchmarks.engine_memory MODEL`), so that
nothing else `flashcode bench engine` loads (onnxruntime-genai's copy of the model, freed memory
the allocator keeps) is counted: RSS after `Engine.load`, then after every slot has served a
`PROMPT_TOKENS`-token prompt (twice, so the prefix cache fills too), and the peak (VmHWM).

The KV budget is what the engine may hold beside the weights: `max_batch` slots of
`min(context, MAX_SLOT_LENGTH)` positions each (allocated at load; pages become resident as
positions are written), plus the prefix cache's byte bound. `kv_figures` says how the settings
move it: KV per slot grows linearly with the positions per slot, the budget with the slots.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from inference.engine import MAX_SLOT_LENGTH, Engine, EngineOptions
from inference.kv_device import kv_bytes
from inference.model import ModelInfo, load_model_info
from inference.scheduler import GenerationRequest

MB = 2**20
PROMPT_TOKENS = 512
NEW_TOKENS = 32
TIMEOUT_S = 1800


def status_mb(field: str) -> float:
    """A /proc/self/status size field (VmRSS, VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def kv_figures(info: ModelInfo, options: EngineOptions) -> dict[str, Any]:
    """KV memory per slot and in all, and how the slot length and slot count change it."""
    positions = min(info.context_length, MAX_SLOT_LENGTH)
    per_slot = kv_bytes(info, positions) / MB
    return {
        "kv_positions_per_slot": positions,
        "kv_mb_per_slot": round(per_slot, 1),
        "kv_slots": options.max_batch,
        "prefix_cache_mb": options.prefix_cache_mb,
        "kv_budget_mb": round(options.max_batch * per_slot + options.prefix_cache_mb, 1),
        "kv_mb_per_1k_positions": round(kv_bytes(info, 1024) / MB, 2),
        "kv_mb_per_slot_by_positions": {
            str(n): round(kv_bytes(info, n) / MB, 1) for n in (1024, 2048, 4096)
        },
    }


async def _measure(model_dir: Path, threads: int) -> dict[str, Any]:
    from benchmarks.engine import code_tokens

    options = EngineOptions(device="cpu", threads=threads)
    figures: dict[str, Any] = {"rss_mb_before_load": round(status_mb("VmRSS"), 1)}
    with Engine.load(model_dir, options) as engine:
        figures["rss_mb_after_load"] = round(status_mb("VmRSS"), 1)
        limit = min(PROMPT_TOKENS, engine.max_length - NEW_TOKENS - 2)
        prompts = [code_tokens(engine, limit, offset=i * 64) for i in range(options.max_batch)]
        for extra in ([], [1]):  # the second round reuses and replaces prefix-cache entries
            requests = [
                GenerationRequest(tuple(p + extra), max_new_tokens=NEW_TOKENS) for p in prompts
            ]
            await asyncio.gather(*(engine.generate(r) for r in requests))
        figures["rss_mb_after_bench"] = round(status_mb("VmRSS"), 1)
        figures["rss_mb_peak"] = round(status_mb("VmHWM"), 1)
        cache = engine.stats().get("prefix_cache")
        if isinstance(cache, dict):
            figures["prefix_cache_mb_used"] = round(cache["bytes"] / MB, 1)
    return figures


def measure(model_dir: Path, threads: int) -> dict[str, Any]:
    """The memory figures of `model_dir`, measured in a child process (see the module doc)."""
    info = load_model_info(model_dir)
    options = EngineOptions(device="cpu", threads=threads)
    report: dict[str, Any] = {"model_file_mb": round(info.size_bytes / MB, 1)}
    report.update(kv_figures(info, options))
    command = [sys.executable, "-m", "benchmarks.engine_memory", str(model_dir), str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    if result.returncode != 0:
        report["rss_error"] = result.stderr.strip()[-500:]
        return report
    report.update(json.loads(result.stdout.strip().splitlines()[-1]))
    bound = report["model_file_mb"] + report["kv_budget_mb"]
    report["rss_vs_file_plus_kv_budget"] = round(report["rss_mb_after_bench"] / bound, 3)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("threads", type=int, nargs="?", default=0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_measure(args.model, args.threads))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
