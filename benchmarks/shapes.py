"""Random-weight models of real checkpoints' exact shapes, for `flashcode bench ... --shape NAME`.

Every published figure used to be for the 7M-parameter default model; users bring
Qwen2.5-Coder-0.5B or 1.5B. Their weights cannot be downloaded here, and speed does not depend on
the values of the weights, only on their shapes, so a model of the same shape with random weights
(seeded, std 0.02 as transformers initialises) measures what a user's checkpoint would cost.

- `SHAPES` is a lookup table of shapes (no `elif name == ...` chain); `hf_config` turns one into
  the Hugging Face `config.json` a Qwen2 checkpoint of that shape has.
- The weights are written with numpy straight into `model.safetensors`, one tensor at a time, so
  the 1.5B shape never has to sit in memory whole; onnxruntime-genai's builder then makes the int4
  ONNX model (`-p int4`, block 32, accuracy level 4: the default model's settings), and llama.cpp's
  converter makes GGUF Q4_0 / Q8_0 from the very same safetensors.
- The tokenizer is the default model's (8,192 ids, the FIM tokens at their Qwen positions). The
  embedding rows past its vocabulary are zeroed: the embeddings are tied, so those ids get logit 0
  while real ids get random ones, and greedy decoding never picks an id the tokenizer cannot decode
  (true only up to a vanishing chance: every real logit would have to be negative).
- The builder and the converter import torch and transformers (the `[build]` extra), which the
  server's environment does not need: they run in a "build Python", FLASHCODE_BUILD_PYTHON or this
  interpreter when it has them.
- Everything is cached outside the repository, in ~/.cache/flashcode/shapes/<name>/ (honouring
  XDG_CACHE_HOME), under a recipe fingerprint: a changed recipe builds again, an unchanged one is
  reused (0.5B: about 300 MB int4 ONNX plus a 2 GB float32 safetensors source).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.model_files import TOKENIZER_FILES, copy_tokenizer, write_f32_safetensors
from inference.router import default_model_dir

SEED = 0
INIT_STD = 0.02
# Bumped when the way a shape's files are made changes, so old caches are rebuilt.
RECIPE_VERSION = 1
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flashcode" / "shapes"
GGUF_TYPES = {"q4_0": 2, "q8_0": 7}  # llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_0 / _Q8_0


class ShapeError(RuntimeError):
    """A shape model cannot be made here (no build Python, a build step failed)."""


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a Qwen2 checkpoint; nothing else of it is needed to time it."""

    name: str
    hidden_size: int
    intermediate_size: int  # the MLP's inner width
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # grouped-query attention: heads per KV head = heads / kv_heads
    vocab_size: int
    tie_word_embeddings: bool  # the LM head is the embedding matrix
    rope_theta: float
    max_position_embeddings: int

    def __post_init__(self) -> None:
        assert self.hidden_size % self.num_attention_heads == 0, "hidden must split into heads"
        assert self.num_attention_heads % self.num_key_value_heads == 0, "heads must group"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Hugging Face tensor names and shapes, in file order."""
        hidden, mlp = self.hidden_size, self.intermediate_size
        kv = self.num_key_value_heads * self.head_dim
        shapes: dict[str, tuple[int, ...]] = {
            "model.embed_tokens.weight": (self.vocab_size, hidden)
        }
        for i in range(self.num_hidden_layers):
            p = f"model.layers.{i}"
            for name, rows in (("q_proj", hidden), ("k_proj", kv), ("v_proj", kv)):
                shapes[f"{p}.self_attn.{name}.weight"] = (rows, hidden)
                shapes[f"{p}.self_attn.{name}.bias"] = (rows,)
            shapes[f"{p}.self_attn.o_proj.weight"] = (hidden, hidden)
            shapes[f"{p}.mlp.gate_proj.weight"] = (mlp, hidden)
            shapes[f"{p}.mlp.up_proj.weight"] = (mlp, hidden)
            shapes[f"{p}.mlp.down_proj.weight"] = (hidden, mlp)
            shapes[f"{p}.input_layernorm.weight"] = (hidden,)
            shapes[f"{p}.post_attention_layernorm.weight"] = (hidden,)
        shapes["model.norm.weight"] = (hidden,)
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (self.vocab_size, hidden)
        return shapes

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.tensor_shapes().values())


SHAPES: dict[str, ModelShape] = {
    shape.name: shape
    for shape in (
        ModelShape("qwen2.5-coder-0.5b", 896, 4864, 24, 14, 2, 151936, True, 1e6, 32768),
        ModelShape("qwen2.5-coder-1.5b", 1536, 8960, 28, 12, 2, 151936, True, 1e6, 32768),
    )
}


def shape_named(name: str) -> ModelShape:
    try:
        return SHAPES[name]
    except KeyError:
        raise ShapeError(f"unknown shape {name!r}: choose one of {', '.join(SHAPES)}") from None


def special_ids(tokenizer_dir: Path) -> dict[str, int]:
    """bos/eos/pad ids and the tokenizer's own vocabulary size (ids below it decode)."""
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {t["content"]: t["id"] for t in spec["added_tokens"]}
    size = 1 + max([*spec["model"]["vocab"].values(), *ids.values()])
    eos = ids.get("<|endoftext|>", 0)
    return {"bos": eos, "eos": eos, "pad": ids.get("<|fim_pad|>", eos), "vocab": size}


def hf_config(shape: ModelShape, ids: dict[str, int]) -> dict[str, Any]:
    """The `config.json` of a Qwen2 checkpoint of this shape."""
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": shape.vocab_size,
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "max_position_embeddings": shape.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_theta": shape.rope_theta,
        "tie_word_embeddings": shape.tie_word_embeddings,
        "hidden_act": "silu",
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "pad_token_id": ids["pad"],
        "use_sliding_window": False,
        "torch_dtype": "float32",
    }


def _random_tensors(
    shape: ModelShape, keep_vocab: int, seed: int
) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    for name, dims in shape.tensor_shapes().items():
        if name.endswith("layernorm.weight") or name == "model.norm.weight":
            yield name, np.ones(dims, np.float32)
        elif name.endswith(".bias"):
            yield name, np.zeros(dims, np.float32)
        else:
            array = rng.standard_normal(dims, dtype=np.float32)
            array *= INIT_STD
            if name in ("model.embed_tokens.weight", "lm_head.weight"):
                array[keep_vocab:] = 0.0  # ids the tokenizer cannot decode: see the module doc
            yield name, array


def write_random_hf(shape: ModelShape, out: Path, tokenizer_dir: Path, seed: int = SEED) -> Path:
    """A Hugging Face directory (config, float32 safetensors, tokenizer) of random weights."""
    out.mkdir(parents=True, exist_ok=True)
    ids = special_ids(tokenizer_dir)
    (out / "config.json").write_text(json.dumps(hf_config(shape, ids), indent=2), encoding="utf-8")
    write_f32_safetensors(
        out / "model.safetensors",
        {name: tuple(dims) for name, dims in shape.tensor_shapes().items()},
        (array for _, array in _random_tensors(shape, ids["vocab"], seed)),
    )
    copy_tokenizer(tokenizer_dir, out)
    return out


# --- the build Python and the cached builds ------------------------------------------------------


def build_python(explicit: str | None = None) -> str:
    """An interpreter with torch, transformers and onnxruntime-genai (the `[build]` extra)."""
    python = explicit or os.environ.get("FLASHCODE_BUILD_PYTHON") or sys.executable
    check = [python, "-c", "import torch, transformers, onnxruntime_genai.models.builder"]
    try:
        found = subprocess.run(check, capture_output=True, timeout=300).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        found = False
    if not found:
        raise ShapeError(
            f"{python} lacks torch/transformers/onnxruntime-genai: install the build extra "
            "(pip install 'flashcode[build]') or set FLASHCODE_BUILD_PYTHON to a Python that has it"
        )
    return python


def recipe(shape: ModelShape, tokenizer_dir: Path) -> str:
    """Fingerprint of everything a shape's files depend on."""
    tokenizer = (tokenizer_dir / "tokenizer.json").read_bytes()
    parts = [json.dumps(asdict(shape), sort_keys=True), str(SEED), str(RECIPE_VERSION)]
    return hashlib.sha256("|".join(parts).encode() + tokenizer).hexdigest()[:16]


def _cached(folder: Path, fingerprint: str) -> bool:
    stamp = folder / "flashcode-recipe.txt"
    return stamp.is_file() and stamp.read_text().strip() == fingerprint


def _stamp(folder: Path, fingerprint: str) -> None:
    (folder / "flashcode-recipe.txt").write_text(fingerprint + "\n")


def _log(message: str) -> None:
    print(f"[shapes] {message}", file=sys.stderr, flush=True)


def ensure_hf(shape: ModelShape, root: Path = CACHE_ROOT) -> Path:
    tokenizer_dir = default_model_dir()
    fingerprint = recipe(shape, tokenizer_dir)
    folder = root / shape.name / "hf"
    if not _cached(folder, fingerprint):
        shutil.rmtree(folder, ignore_errors=True)
        _log(f"writing random {shape.name} weights ({shape.parameters / 1e6:.0f}M) to {folder}")
        write_random_hf(shape, folder, tokenizer_dir)
        _stamp(folder, fingerprint)
    return folder


def ensure_onnx(
    shape: ModelShape,
    python: str | None = None,
    root: Path = CACHE_ROOT,
    accuracy_level: int = 4,
    block_size: int = 32,
) -> Path:
    """The int4 ONNX model of `shape` (onnxruntime-genai's builder), built once. The defaults
    are the shipped model's settings; others (for `bench steps`) go to folders of their own."""
    hf = ensure_hf(shape, root)
    fingerprint = recipe(shape, default_model_dir()) + f"-acc{accuracy_level}-block{block_size}"
    suffix = "" if accuracy_level == 4 else f"-acc{accuracy_level}"
    suffix += "" if block_size == 32 else f"-block{block_size}"
    out = root / shape.name / f"int4{suffix}"
    if _cached(out, fingerprint):
        return out
    shutil.rmtree(out, ignore_errors=True)
    command = [
        build_python(python), "-m", "onnxruntime_genai.models.builder", "-i", str(hf),
        "-o", str(out), "-p", "int4", "-e", "cpu", "-c", str(root / shape.name / "builder-cache"),
        # the default model's settings (inference/build/export.py)
        "--extra_options", f"int4_block_size={block_size}", f"int4_accuracy_level={accuracy_level}",
    ]  # fmt: skip
    _log(f"building {out} with onnxruntime-genai's builder")
    started = time.monotonic()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ShapeError(f"the builder failed for {shape.name}:\n{result.stderr[-3000:]}")
    for name in TOKENIZER_FILES:  # the builder rewrites them through transformers: keep ours
        if (hf / name).is_file():
            shutil.copy2(hf / name, out / name)
    _stamp(out, fingerprint)
    _log(f"built {out} in {time.monotonic() - started:.0f}s")
    return out


_QUANTIZE = """
import ctypes, sys, llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = int(sys.argv[3])
params.nthread = 2
if llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params)):
    raise SystemExit("llama_model_quantize failed")
"""


def ensure_gguf(
    shape: ModelShape,
    kind: str,
    llama_python: str,
    python: str | None = None,
    root: Path = CACHE_ROOT,
) -> Path:
    """The same random weights as GGUF `kind` (q4_0, q8_0): llama.cpp's converter to f32, then
    llama.cpp's quantizer (through llama-cpp-python, no CLI tools needed)."""
    from benchmarks.llama_server import convert_hf, vendor_dir

    if kind not in GGUF_TYPES:
        raise ShapeError(f"unknown GGUF type {kind!r}: choose one of {', '.join(GGUF_TYPES)}")
    hf = ensure_hf(shape, root)
    folder = root / shape.name / "gguf"
    fingerprint = recipe(shape, default_model_dir())
    out = folder / f"{shape.name}-{kind}.gguf"
    if out.is_file() and _cached(folder, fingerprint):
        return out
    if not _cached(folder, fingerprint):
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    f32 = folder / f"{shape.name}-f32.gguf"
    if not f32.is_file():
        _log(f"converting {hf} to GGUF with llama.cpp's converter")
        partial = f32.with_suffix(".partial")
        # The default tokenizer splits text with Qwen2's regex (its tokenizer.json's pre_tokenizer).
        convert_hf(hf, partial, vendor_dir(), build_python(python), "f32", "qwen2")
        partial.replace(f32)
    _log(f"quantizing to {kind}")
    partial = out.with_suffix(".partial")
    command = [llama_python, "-c", _QUANTIZE, str(f32), str(partial), str(GGUF_TYPES[kind])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ShapeError(f"quantizing to {kind} failed:\n{result.stderr[-3000:]}")
    partial.replace(out)
    _stamp(folder, fingerprint)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.shapes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--gguf", action="append", choices=sorted(GGUF_TYPES), default=[])
    parser.add_argument("--accuracy-level", type=int, default=4, choices=(0, 1, 2, 3, 4))
    parser.add_argument("--block-size", type=int, default=32, choices=(16, 32, 64, 128, 256))
    parser.add_argument("--llama-python", help="a Python with llama-cpp-python (for --gguf)")
    args = parser.parse_args(argv)
    shape = SHAPES[args.shape]
    try:
        print(ensure_onnx(shape, accuracy_level=args.accuracy_level, block_size=args.block_size))
        for kind in args.gguf:
            llama = args.llama_python or os.environ.get("FLASHCODE_LLAMA_PYTHON") or sys.executable
            print(ensure_gguf(shape, kind, llama))
    except ShapeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
