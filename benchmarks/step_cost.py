"""`flashcode bench steps`: what one decode step costs at 1 row and at 8 rows, per setting.

Eight requests decoded together should cost little more than one: a decode step reads every
weight once whatever the number of rows. On the 0.5B shape an 8-row step cost 3.2x a 1-row step,
so eight concurrent requests gained only 2x over sequential ones. This bench finds out why:

- `step_ms_b1`, `step_ms_b8`: the median time of `SharedKVRunner.decode` (the very call the
  scheduler makes) with 1 and 8 slots holding a `--past`-token prompt, alternating the two so a
  change in machine load hits both alike; `b8_vs_b1` is their ratio (8.0 = no gain from batching);
- per variant of the settings that could explain it: MatMulNBits' `accuracy_level` (4 quantizes
  the activations to int8 per block; 1 computes in fp32 from dequantized weights), intra-op
  threads and spinning, and the KV buffer length the attention mask spans;
- `--profile`: onnxruntime's per-operator times of a b1 and a b8 step, by operator type;
- `peaks`: this CPU's measured fp32 matmul rate (numpy, on `--threads` threads) and memory
  bandwidth (a numpy copy), so that the step times can be read against what the machine can do:
  FLOPs per 8-row step against the peak, bytes per 1-row step against the bandwidth.

Variants rewrite the graph in memory (the `accuracy_level` attribute) or the session options; the
model files are not changed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from inference.model import ModelInfo, load_model_info
from inference.runners import SharedKVRunner
from inference.session import CPU, last_position_graph, physical_cores

ROWS = 8


@dataclass(frozen=True)
class Variant:
    name: str
    accuracy_level: int | None = None  # None: as the graph was built
    threads: int = 0  # 0: physical cores
    spinning: bool = True  # onnxruntime's pool threads spin between ops (its default)
    max_length: int = 4096  # KV positions per slot: the attention mask's width
    model_dir: str | None = None  # another build of the same model (e.g. another block size)


VARIANTS = {
    v.name: v
    for v in (
        Variant("default"),
        Variant("accuracy_level=1", accuracy_level=1),
        Variant("no_spinning", spinning=False),
        Variant("threads=1", threads=1),
        Variant("max_length=1024", max_length=1024),
        Variant("max_length=512", max_length=512),
    )
}


def with_accuracy_level(model: onnx.ModelProto, level: int) -> int:
    """Set every MatMulNBits node's accuracy_level; returns how many nodes changed."""
    changed = 0
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        for attribute in node.attribute:
            if attribute.name == "accuracy_level":
                attribute.i = level
                break
        else:
            node.attribute.append(onnx.helper.make_attribute("accuracy_level", level))
        changed += 1
    return changed


def graph_accuracy_levels(info: ModelInfo) -> list[int]:
    """The accuracy levels the graph's MatMulNBits nodes carry (0 when unset)."""
    graph = onnx.load(str(info.onnx_path), load_external_data=False).graph
    levels = set()
    for node in graph.node:
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            levels.add(int(attrs.get("accuracy_level", 0)))
    return sorted(levels)


def variant_session(
    info: ModelInfo, variant: Variant, threads: int, profile: str | None = None
) -> ort.InferenceSession:
    if variant.model_dir:
        info = load_model_info(Path(variant.model_dir))
    source: str | bytes = last_position_graph(info) or str(info.onnx_path)
    if variant.accuracy_level is not None:
        model = onnx.load_from_string(source) if isinstance(source, bytes) else onnx.load(source)
        with_accuracy_level(model, variant.accuracy_level)
        source = model.SerializeToString()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = variant.threads or threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not variant.spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    return ort.InferenceSession(source, options, providers=[CPU])


def _runner(
    info: ModelInfo, variant: Variant, threads: int, past: int, profile: str | None
) -> tuple[ort.InferenceSession, SharedKVRunner]:
    """A runner on the variant's session with every slot holding a `past`-token prompt."""
    session = variant_session(info, variant, threads, profile)
    max_length = min(info.context_length, variant.max_length)
    runner = SharedKVRunner(session, info, CPU, ROWS, max_length)
    rng = np.random.default_rng(0)
    for slot in range(ROWS):
        runner.prefill(slot, rng.integers(10, 1000, past).tolist(), None, 0)
    return session, runner


def measure_variants(
    info: ModelInfo, variants: list[Variant], threads: int, past: int, repeats: int
) -> dict[str, dict[str, Any]]:
    """Median b1 and b8 step per variant. All variants are loaded first and then take turns,
    step by step, so a change in the machine's load (it is shared) hits every variant alike."""
    runners = [_runner(info, variant, threads, past, None)[1] for variant in variants]
    tokens = list(range(11, 11 + ROWS))
    times: list[tuple[list[float], list[float]]] = [([], []) for _ in variants]
    for round_ in range(repeats + 2):  # the first two runs bind buffers and plan memory
        for runner, (one, eight) in zip(runners, times, strict=True):
            started = time.perf_counter()
            runner.decode([0], tokens[:1])
            middle = time.perf_counter()
            runner.decode(list(range(ROWS)), tokens)
            if round_ >= 2:
                one.append((middle - started) * 1000)
                eight.append((time.perf_counter() - middle) * 1000)
    report = {}
    for variant, (one, eight) in zip(variants, times, strict=True):
        b1, b8 = statistics.median(one), statistics.median(eight)
        report[variant.name] = {
            "step_ms_b1": round(b1, 2),
            "step_ms_b8": round(b8, 2),
            "b8_vs_b1": round(b8 / b1, 2),
            # on a shared machine the fastest step is the closest to the uncontended cost
            "step_ms_b1_min": round(min(one), 2),
            "step_ms_b8_min": round(min(eight), 2),
            "b8_vs_b1_min": round(min(eight) / min(one), 2),
            "settings": asdict(variant),
        }
    return report


def op_profile(
    info: ModelInfo, threads: int, past: int, repeats: int, variant: Variant = VARIANTS["default"]
) -> dict[str, Any]:
    """Milliseconds per step by operator type, for a 1-row and an 8-row step."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (1, ROWS):
            session, runner = _runner(info, variant, threads, past, str(Path(tmp) / f"b{rows}"))
            slots = list(range(rows))
            for _ in range(repeats):
                runner.decode(slots, list(range(11, 11 + rows)))
            events = json.loads(Path(session.end_profiling()).read_text())
            # the slots' prefills are profiled too: keep the nodes inside the last `repeats` runs
            runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
            windows = [(e["ts"], e["ts"] + e["dur"]) for e in runs[-repeats:]]
            by_op: dict[str, float] = defaultdict(float)
            for event in events:
                if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
                    continue
                if any(start <= event["ts"] <= end for start, end in windows):
                    by_op[event["args"]["op_name"]] += event["dur"] / 1000 / len(windows)
            result[f"b{rows}"] = {
                op: round(ms, 3) for op, ms in sorted(by_op.items(), key=lambda x: -x[1])
            }
    return result


_PEAKS = """
import json, time, numpy as np
n = 2048
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = a.copy()
a @ b
best = 1e9
for _ in range(5):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
big = np.ones(2**27, np.float32)  # 512 MB
out = np.empty_like(big)
copy = 1e9
for _ in range(3):
    t = time.perf_counter(); np.copyto(out, big); copy = min(copy, time.perf_counter() - t)
print(json.dumps({"fp32_matmul_gflops": 2 * n**3 / best / 1e9,
                  "copy_gb_per_s": 2 * big.nbytes / copy / 1e9}))
"""


def machine_peaks(threads: int) -> dict[str, Any]:
    """fp32 matmul GFLOP/s (numpy's BLAS on `threads` threads) and copy bandwidth (GB/s,
    read + write), in a child process so the thread count is set before numpy loads."""
    env = {
        **os.environ,
        **{k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    result = subprocess.run(
        [sys.executable, "-c", _PEAKS], env=env, capture_output=True, text=True, check=True
    )
    peaks: dict[str, Any] = json.loads(result.stdout)
    return {key: round(value, 1) for key, value in peaks.items()} | {"threads": threads}


def matmul_parameters(info: ModelInfo) -> int:
    """Weights the MatMulNBits nodes multiply by (K x N each): 2 FLOPs each per row."""
    graph = onnx.load(str(info.onnx_path), load_external_data=False).graph
    total = 0
    for node in graph.node:
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            total += attrs["K"] * attrs["N"]
    return total


def roofline(info: ModelInfo, steps: dict[str, Any], peaks: dict[str, Any]) -> dict[str, Any]:
    """The step times read against the machine: an 8-row step's matmul FLOPs at the measured
    fp32 peak, and a 1-row step's weight bytes (the int4 file, read once) at the measured copy
    rate (bytes read plus written per second: a streaming read is not faster than that here)."""
    params = matmul_parameters(info)
    flops_b8 = 2 * params * ROWS
    return {
        "weights_mb": round(info.size_bytes / 2**20, 1),
        "matmul_parameters_m": round(params / 1e6, 1),
        "flops_per_b8_step_g": round(flops_b8 / 1e9, 2),
        "b8_step_ms_at_fp32_peak": round(flops_b8 / (peaks["fp32_matmul_gflops"] * 1e9) * 1000, 1),
        "b1_step_ms_at_copy_rate": round(
            info.size_bytes / (peaks["copy_gb_per_s"] * 1e9) * 1000, 1
        ),
        "measured_b1_ms": steps.get("step_ms_b1_min"),
        "measured_b8_ms": steps.get("step_ms_b8_min"),
    }


def main(argv: list[str]) -> int:
    from benchmarks.engine import default_model
    from benchmarks.shapes import ShapeError, ensure_onnx, shape_named

    parser = argparse.ArgumentParser(
        prog="flashcode bench steps", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", type=Path, help="model directory")
    parser.add_argument("--shape", help="a real model's shape (benchmarks/shapes.py)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument(
        "--block-sizes", default="", help="with --shape: also int4 builds of these block sizes"
    )
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--past", type=int, default=128, help="prompt tokens in every slot")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--profile", action="append", default=[], help="per-operator times of a variant"
    )
    args = parser.parse_args(argv)
    try:
        model_dir = ensure_onnx(shape_named(args.shape)) if args.shape else None
    except ShapeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    info = load_model_info(model_dir or args.model or default_model())
    threads = args.threads or physical_cores()
    report: dict[str, Any] = {
        "model": str(info.path),
        "graph_accuracy_levels": graph_accuracy_levels(info),
        "threads": threads,
        "past": args.past,
        "repeats": args.repeats,
        "load_average_before": os.getloadavg(),
    }
    variants = [VARIANTS[name] for name in args.variants.split(",") if name]
    for size in filter(None, args.block_sizes.split(",")):
        built = ensure_onnx(shape_named(args.shape), block_size=int(size))
        variants.append(Variant(f"block_size={size}", model_dir=str(built)))
    report["variants"] = measure_variants(info, variants, threads, args.past, args.repeats)
    for name in args.profile:
        report.setdefault("op_ms_per_step", {})[name] = op_profile(
            info, threads, args.past, args.repeats, VARIANTS[name]
        )
    report["peaks"] = machine_peaks(threads)
    report["roofline"] = roofline(info, report["variants"].get("default", {}), report["peaks"])
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
