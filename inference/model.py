"""Find and describe a model directory: layout, graph IO, KV-cache shape, precision, fingerprint.

Two layouts are understood:

- onnxruntime-genai builder output: `genai_config.json`, the decoder named there (`model.onnx`,
  weights in `model.onnx.data`), `tokenizer.json`;
- a Hugging Face Optimum export: `config.json`, `model.onnx` or `decoder_model_merged.onnx`,
  `tokenizer.json`.

Names and shapes come from the graph itself (read without its weights); the JSON configs only fill
in what a graph leaves symbolic (head size, context length).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

OPTIMUM_DECODER_FILES = ("model.onnx", "decoder_model_merged.onnx", "decoder_with_past_model.onnx")
PAST_PATTERN = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
PRESENT_PATTERN = re.compile(r"^present(?:_key_values)?\.(\d+)\.(key|value)$")
FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
}
# MatMulNBits `bits` attribute -> precision name
NBITS_PRECISION = {4: "int4", 8: "int8"}
INT8_OPS = {"MatMulInteger", "DynamicQuantizeMatMul", "QLinearMatMul", "MatMulIntegerToFloat"}


class ModelError(Exception):
    """A model directory that cannot be used; the message names what is missing or wrong."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path  # the model directory
    layout: str  # "genai" (onnxruntime-genai builder) | "optimum" (Hugging Face Optimum export)
    onnx_path: Path  # the decoder graph
    name: str  # directory name, for display
    family: str  # architecture family from the config: "qwen2", "llama", "starcoder2", ...
    num_layers: int
    num_heads: int  # query heads
    num_kv_heads: int  # key/value heads (grouped-query attention when fewer than num_heads)
    head_dim: int
    vocab_size: int
    context_length: int  # positions the model was built for
    precision: str  # "int4" | "int8" | "fp16" | "fp32"
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    has_position_ids: bool
    fingerprint: str  # content hash of graph, weights and tokenizer, for caches
    size_bytes: int  # graph + external weights
    # (key, value) graph names per layer, in layer order
    past_names: tuple[tuple[str, str], ...] = ()
    present_names: tuple[tuple[str, str], ...] = ()
    kv_dtype: str = "float32"  # numpy name of the KV-cache element type
    logits_dtype: str = "float32"
    # GroupQueryAttention reads `past` and writes `present` in place in one max-length buffer, so
    # a decode step appends to the cache instead of copying it; otherwise the graph concatenates.
    shared_kv_buffer: bool = False

    def describe(self) -> dict[str, object]:
        """JSON-able summary for `flashcode model info`."""
        return {
            "name": self.name,
            "path": str(self.path),
            "layout": self.layout,
            "onnx": self.onnx_path.name,
            "family": self.family,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "size_mb": round(self.size_bytes / 2**20, 2),
            "fingerprint": self.fingerprint,
            "layers": self.num_layers,
            "heads": self.num_heads,
            "kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "context_length": self.context_length,
            "kv_cache": "shared buffer (GroupQueryAttention)"
            if self.shared_kv_buffer
            else "concat",
            "kv_dtype": self.kv_dtype,
            "has_position_ids": self.has_position_ids,
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
        }


def load_model_info(path: Path) -> ModelInfo:
    """Describe the model in `path`; raises ModelError naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"model directory not found: {path}")
    layout, onnx_path, config = _find_layout(path)
    if not (path / "tokenizer.json").is_file():
        raise ModelError(
            f"{path} has no tokenizer.json (a Hugging Face fast tokenizer is required)"
        )
    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as error:  # a truncated or foreign file: say which
        raise ModelError(f"{onnx_path} is not a readable ONNX model: {error}") from error
    data_files = _external_data_files(graph, onnx_path.parent)
    missing = [f.name for f in data_files if not f.is_file()]
    if missing:
        raise ModelError(f"{onnx_path.name} refers to missing weight file(s): {', '.join(missing)}")

    inputs = {value.name: value for value in graph.input}
    outputs = {value.name: value for value in graph.output}
    past = _pair_by_layer(inputs, PAST_PATTERN, "input", "past_key_values.N.key/value", onnx_path)
    present = _pair_by_layer(outputs, PRESENT_PATTERN, "output", "present.N.key/value", onnx_path)
    for required, kind, pool in (
        ("input_ids", "input", inputs),
        ("attention_mask", "input", inputs),
        ("logits", "output", outputs),
    ):
        if required not in pool:
            raise ModelError(f"{onnx_path.name} has no '{required}' {kind}")
    if len(past) != len(present):
        raise ModelError(
            f"{onnx_path.name} has {len(past)} past_key_values layers but {len(present)} present"
        )

    model_config = _model_config(layout, config)
    past_shape = _dims(inputs[past[0][0]])
    num_heads = int(model_config.get("num_attention_heads") or 0)
    kv_heads = past_shape[1] if isinstance(past_shape[1], int) else None
    kv_heads = kv_heads or int(model_config.get("num_key_value_heads") or num_heads)
    head_dim = past_shape[3] if isinstance(past_shape[3], int) else None
    head_dim = head_dim or int(
        model_config.get("head_size")
        or model_config.get("head_dim")
        or model_config["hidden_size"] // max(num_heads, 1)
    )
    logits_shape = _dims(outputs["logits"])
    vocab = logits_shape[-1] if isinstance(logits_shape[-1], int) else model_config["vocab_size"]
    kv_type = inputs[past[0][0]].type.tensor_type.elem_type
    if kv_type not in FLOAT_TYPES:
        raise ModelError(f"{onnx_path.name}: unsupported KV-cache element type {kv_type}")
    logits_type = outputs["logits"].type.tensor_type.elem_type
    past_keys = {key for key, _ in past}
    shared = any(
        node.op_type == "GroupQueryAttention" and len(node.input) > 3 and node.input[3] in past_keys
        for node in graph.node
    )
    files = [onnx_path, *data_files]
    return ModelInfo(
        path=path,
        layout=layout,
        onnx_path=onnx_path,
        name=path.resolve().name,
        family=str(model_config.get("type") or model_config.get("model_type") or "unknown"),
        num_layers=len(past),
        num_heads=num_heads or kv_heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=int(vocab),
        context_length=int(
            model_config.get("context_length")
            or model_config.get("max_position_embeddings")
            or model_config.get("n_positions")
            or 2048
        ),
        precision=_precision(graph, kv_type),
        input_names=tuple(inputs),
        output_names=tuple(outputs),
        has_position_ids="position_ids" in inputs,
        fingerprint=_fingerprint([*files, path / "tokenizer.json"]),
        size_bytes=sum(f.stat().st_size for f in files),
        past_names=tuple(past),
        present_names=tuple(present),
        kv_dtype=FLOAT_TYPES[kv_type],
        logits_dtype=FLOAT_TYPES.get(logits_type, "float32"),
        shared_kv_buffer=shared,
    )


def _find_layout(path: Path) -> tuple[str, Path, dict[str, Any]]:
    genai_config = path / "genai_config.json"
    if genai_config.is_file():
        config = _read_json(genai_config)
        filename = config.get("model", {}).get("decoder", {}).get("filename", "model.onnx")
        onnx_path = path / filename
        if not onnx_path.is_file():
            raise ModelError(f"{path}: genai_config.json names decoder '{filename}', not found")
        return "genai", onnx_path, config
    hf_config = path / "config.json"
    candidates = [path / name for name in OPTIMUM_DECODER_FILES if (path / name).is_file()]
    if hf_config.is_file() and candidates:
        return "optimum", candidates[0], _read_json(hf_config)
    if hf_config.is_file():
        raise ModelError(
            f"{path} has config.json but no ONNX decoder "
            f"(expected one of: {', '.join(OPTIMUM_DECODER_FILES)})"
        )
    if candidates:
        raise ModelError(f"{path} has {candidates[0].name} but no config.json or genai_config.json")
    raise ModelError(
        f"{path} is not a model directory: expected genai_config.json (onnxruntime-genai builder) "
        f"or config.json + model.onnx (Hugging Face Optimum export)"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def _model_config(layout: str, config: dict[str, Any]) -> dict[str, Any]:
    """The fields both layouts share, under the Hugging Face names."""
    if layout == "optimum":
        return config
    model = config.get("model", {})
    decoder = model.get("decoder", {})
    return {**decoder, **{k: v for k, v in model.items() if k != "decoder"}}


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in value.type.tensor_type.shape.dim
    ]


def _pair_by_layer(
    values: dict[str, onnx.ValueInfoProto],
    pattern: re.Pattern[str],
    kind: str,
    expected: str,
    onnx_path: Path,
) -> list[tuple[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for name in values:
        match = pattern.match(name)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = name
    if not found:
        raise ModelError(
            f"{onnx_path.name} has no {kind}s named {expected}: export the decoder with a KV cache"
        )
    layers = sorted(found)
    if layers != list(range(len(layers))) or any(len(found[i]) != 2 for i in layers):
        raise ModelError(f"{onnx_path.name}: {kind}s {expected} are incomplete")
    return [(found[i]["key"], found[i]["value"]) for i in layers]


def _external_data_files(graph: onnx.GraphProto, directory: Path) -> list[Path]:
    locations: dict[str, None] = {}
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations[entry.value] = None
    return [directory / name for name in locations]


def _precision(graph: onnx.GraphProto, kv_type: int) -> str:
    for node in graph.node:
        if node.op_type == "MatMulNBits":
            bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
            return NBITS_PRECISION.get(int(bits), f"int{bits}")
        if node.op_type in INT8_OPS:
            return "int8"
    return "fp16" if kv_type == onnx.TensorProto.FLOAT16 else "fp32"


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
