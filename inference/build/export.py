"""Export the trained Hugging Face model to ONNX with a KV cache (fp32, int4, int8) and ship it.

onnxruntime-genai's model builder does the conversion offline from the local directory; its
output runs in plain onnxruntime. The shipped default is the int4 graph (MatMulNBits, block 32),
with the int8 variant in `int8/` beside it for dynamic precision.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# The int4 body rounded by k-quant, and the tied embedding / output head, the largest and most
# output-sensitive weight, in int8: on flashcode-tiny v2, int4 greedy agreement with fp32 went
# from 0.911 (round-to-nearest, int4 head) to 0.958, at 0.210 of fp32's size instead of 0.167
# (benchmarks/README.md, "int4 export").
INT4_OPTIONS = ["algo_config=k_quant", "matmul_mixed_precision=last_matmul:int8"]
# Where the builder (0.x) shares an int8 head with the embedding, the Gather side names the head's
# initializers differently from the ones it saved; the graph then does not load.
_BUILDER_NAME_SLIPS = {"_Q8G32": "_Q8", "_scale": "_scales"}


def repair_tied_int8_head(model_path: Path) -> bool:
    """Point node inputs that name no tensor at the saved initializer they mean; True if any."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    known = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    known |= {out for node in graph.node for out in node.output}
    repaired = False
    for node in graph.node:
        for index, name in enumerate(node.input):
            if not name or name in known:
                continue
            for slip, meant in _BUILDER_NAME_SLIPS.items():
                if name.endswith(slip) and name[: -len(slip)] + meant in known:
                    node.input[index] = name[: -len(slip)] + meant
                    repaired = True
    if repaired:
        onnx.save(model, str(model_path))
    return repaired


def run_builder(hf_dir: Path, out_dir: Path, precision: str, cache_dir: Path) -> Path:
    """One ONNX export of `hf_dir` at `precision` ("fp32" | "int4" | "int8")."""
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "onnxruntime_genai.models.builder",
        "-i",
        str(hf_dir),
        "-o",
        str(out_dir),
        "-p",
        precision,
        "-e",
        "cpu",
        "-c",
        str(cache_dir),
    ]
    if precision in ("int4", "int8"):
        # accuracy level 4: int8 activations in MatMulNBits, the fast path on AVX2 CPUs
        command += ["--extra_options", "int4_block_size=32", "int4_accuracy_level=4"]
    if precision == "int4":
        command += INT4_OPTIONS
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log_path = out_dir.parent / f"builder-{precision}.log"
    with log_path.open("w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"the ONNX builder failed for {precision}; see {log_path}")
    if precision == "int4":
        repair_tied_int8_head(out_dir / "model.onnx")
    for name in TOKENIZER_FILES:
        if (hf_dir / name).exists() and not (out_dir / name).exists():
            shutil.copy2(hf_dir / name, out_dir / name)
    return out_dir


def empty_model(work: Path, hf_dir: Path) -> Any:
    """The untrained Qwen2 model of the run in `work` (its shape from train_config.json, its
    special ids from the tokenizer in `hf_dir`), for weights to be loaded into."""
    import json

    from tokenizers import Tokenizer
    from transformers import Qwen2ForCausalLM

    from inference.build.fim_data import SpecialIds
    from inference.build.train import ModelShape, qwen2_config

    shape = ModelShape(**json.loads((work / "train_config.json").read_text())["shape"])
    ids = SpecialIds.from_tokenizer(Tokenizer.from_file(str(hf_dir / "tokenizer.json")))
    return Qwen2ForCausalLM(qwen2_config(shape, ids.eos, ids.pad))


def materialize_checkpoint(work: Path) -> Path:
    """Write the latest checkpoint's weights as a Hugging Face model in `work/hf`.

    Training saves there when it ends; this also lets a run in progress be exported as a snapshot.
    """
    import json

    import torch

    hf_dir = work / "hf"
    checkpoint = work / "checkpoint.pt"
    weights = hf_dir / "model.safetensors"
    if not checkpoint.exists() or (
        weights.exists() and weights.stat().st_mtime >= checkpoint.stat().st_mtime
    ):
        return hf_dir
    model = empty_model(work, hf_dir)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    model.save_pretrained(hf_dir, safe_serialization=True)
    (work / "snapshot_state.json").write_text(json.dumps(state["state"], indent=2))
    return hf_dir


def export_all(work: Path) -> dict[str, Path]:
    import json

    from inference.build.tokenizer_train import write_tokenizer_config

    hf_dir = materialize_checkpoint(work)
    if not (hf_dir / "tokenizer_config.json").exists():
        shape = json.loads((work / "train_config.json").read_text())["shape"]
        write_tokenizer_config(hf_dir, shape["context_length"])
    cache = work / "builder-cache"
    return {
        precision: run_builder(hf_dir, work / "onnx" / precision, precision, cache)
        for precision in ("fp32", "int4", "int8")
    }


def ship(exported: dict[str, Path], out: Path) -> Path:
    """Copy the int4 model into `out` and the int8 one into `out/int8`, replacing what was there."""
    out.mkdir(parents=True, exist_ok=True)
    for variant, target in (("int4", out), ("int8", out / "int8")):
        target.mkdir(parents=True, exist_ok=True)
        for item in exported[variant].iterdir():
            if item.is_file():
                shutil.copy2(item, target / item.name)
    return out


def export_default_model(work: Path, out: Path) -> Path:
    return ship(export_all(work), out)
