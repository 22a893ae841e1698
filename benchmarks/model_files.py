"""The default model's weights as model files: a GGUF for llama.cpp, a Hugging Face directory.

The embedded model exists only as int4 ONNX (MatMulNBits, block 32, symmetric: zero point 8).
Its weights are dequantized exactly (each weight is its int4 value times its block's scale),
so a GGUF or Hugging Face copy holds the very weights the local backend runs, and the two
backends answer alike. `random_weights` gives random ones of a shape instead, for plumbing.

The GGUF is written with llama.cpp's own gguf-py, from llama-cpp-python's sdist, without
torch: for the same weights it holds the tensors and tokenizer metadata that llama.cpp's
converter writes from the Hugging Face directory (checked once: identical tensors and
tokenizer; the converter adds only its size label and quantization version).
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inference.router import default_model_dir


def gguf_module(vendor: Path) -> Any:
    """llama.cpp's gguf-py, as shipped beside its converter (the two change together)."""
    sys.path.insert(0, str(vendor / "gguf-py"))
    return importlib.import_module("gguf")


# --- the default model's weights ---------------------------------------------------------------


def _dequantize(
    packed: np.ndarray, scales: np.ndarray, columns: int, bits: int, zero_points: np.ndarray | None
) -> np.ndarray:
    """MatMulNBits weights (int4 or int8, blocks along the input) to float32, (rows, columns).

    `packed` is (rows, blocks, bytes per block), two 4-bit values a byte low nibble first; the
    zero points are one a block (4-bit: two a byte, likewise), or the midpoint when absent."""
    rows, blocks = packed.shape[0], packed.shape[1]
    if bits == 4:
        values = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(rows, blocks, -1)
    else:
        values = packed
    if zero_points is None:
        zero = np.full((rows, blocks), 2 ** (bits - 1), np.float32)
    elif bits == 4:
        nibbles = np.stack([zero_points & 0x0F, zero_points >> 4], axis=-1).reshape(rows, -1)
        zero = nibbles[:, :blocks].astype(np.float32)
    else:
        zero = zero_points[:, :blocks].astype(np.float32)
    weights = (values.astype(np.float32) - zero[:, :, None]) * scales.reshape(rows, blocks, 1)
    return weights.reshape(rows, -1)[:, :columns]


def _matmul_weights(init: dict[str, np.ndarray], prefix: str, columns: int) -> np.ndarray:
    # Two exporter spellings: `weight_Q4` + `weight_scales` (symmetric), and `weight_Q4G32` or
    # `weight_Q8G32` + `weight_scale` + `weight_zp` (asymmetric; the 8-bit one for the lm_head).
    name = next(n for n in init if n.startswith(f"{prefix}.weight_Q"))
    bits = int(name.removeprefix(f"{prefix}.weight_Q")[0])
    scales = init.get(f"{prefix}.weight_scales", init.get(f"{prefix}.weight_scale"))
    assert scales is not None, f"no scales for {prefix}"
    return _dequantize(init[name], scales, columns, bits, init.get(f"{prefix}.weight_zp"))


def default_model_weights(model_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The HF Qwen2 config and tensors (HF names, float32) of the int4 ONNX default model."""
    import onnx
    from onnx import numpy_helper

    model_dir = model_dir or default_model_dir()
    genai = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))["model"]
    decoder = genai["decoder"]
    graph = onnx.load(str(model_dir / decoder["filename"])).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    hidden, heads, kv_heads = (
        decoder[k] for k in ("hidden_size", "num_attention_heads", "num_key_value_heads")
    )
    head_size = decoder["head_size"]
    layers = decoder["num_hidden_layers"]

    def matmul(prefix: str, columns: int) -> np.ndarray:
        return _matmul_weights(init, prefix, columns)

    embed = matmul("lm_head.MatMul", hidden)  # tied: the embedding gathers from it
    tensors: dict[str, Any] = {"model.embed_tokens.weight": embed}
    q, kv = heads * head_size, kv_heads * head_size
    for i in range(layers):
        src, dst = f"model.layers.{i}", f"model.layers.{i}"
        qkv = matmul(f"{src}.attn.qkv_proj.MatMul", hidden)
        bias = init[f"{src}.attn.qkv_proj.Add.bias"]
        for name, rows in (
            ("q_proj", slice(0, q)),
            ("k_proj", slice(q, q + kv)),
            ("v_proj", slice(q + kv, q + 2 * kv)),
        ):
            tensors[f"{dst}.self_attn.{name}.weight"] = qkv[rows]
            tensors[f"{dst}.self_attn.{name}.bias"] = bias[rows]
        tensors[f"{dst}.self_attn.o_proj.weight"] = matmul(f"{src}.attn.o_proj.MatMul", q)
        tensors[f"{dst}.mlp.gate_proj.weight"] = matmul(f"{src}.mlp.gate_proj.MatMul", hidden)
        intermediate = tensors[f"{dst}.mlp.gate_proj.weight"].shape[0]
        tensors[f"{dst}.mlp.up_proj.weight"] = matmul(f"{src}.mlp.up_proj.MatMul", hidden)
        tensors[f"{dst}.mlp.down_proj.weight"] = matmul(f"{src}.mlp.down_proj.MatMul", intermediate)
        tensors[f"{dst}.input_layernorm.weight"] = init[f"{src}.input_layernorm.weight"]
        tensors[f"{dst}.post_attention_layernorm.weight"] = init[
            f"{src}.post_attention_layernorm.weight"
        ]
    tensors["model.norm.weight"] = init[f"model.layers.{layers}.final_norm_layernorm.weight"]
    # cos_cache[p, i] = cos(p * theta ** (-2i / head_size)): position 1, frequency 1 gives theta.
    theta = float(np.arccos(init["cos_cache"][1, 1]) ** (-head_size / 2))
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": int(embed.shape[0]),
        "hidden_size": hidden,
        "intermediate_size": int(intermediate),
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": genai["context_length"],
        "rms_norm_eps": 1e-6,
        "rope_theta": round(theta),
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "bos_token_id": genai["bos_token_id"],
        "eos_token_id": genai["eos_token_id"],
        "pad_token_id": genai["pad_token_id"],
        "use_sliding_window": False,
        "torch_dtype": "float32",
    }
    return config, tensors


def random_weights(config: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Random tensors of the shape `config` gives, initialised as transformers does (std 0.02)."""
    rng = np.random.default_rng(seed)
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head = hidden // config["num_attention_heads"]
    q, kv, mlp = hidden, config["num_key_value_heads"] * head, config["intermediate_size"]

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    tensors: dict[str, Any] = {"model.embed_tokens.weight": normal(config["vocab_size"], hidden)}
    for i in range(layers):
        p = f"model.layers.{i}"
        for name, rows in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
            tensors[f"{p}.self_attn.{name}.weight"] = normal(rows, hidden)
            tensors[f"{p}.self_attn.{name}.bias"] = np.zeros(rows, np.float32)
        tensors[f"{p}.self_attn.o_proj.weight"] = normal(hidden, q)
        tensors[f"{p}.mlp.gate_proj.weight"] = normal(mlp, hidden)
        tensors[f"{p}.mlp.up_proj.weight"] = normal(mlp, hidden)
        tensors[f"{p}.mlp.down_proj.weight"] = normal(hidden, mlp)
        tensors[f"{p}.input_layernorm.weight"] = np.ones(hidden, np.float32)
        tensors[f"{p}.post_attention_layernorm.weight"] = np.ones(hidden, np.float32)
    tensors["model.norm.weight"] = np.ones(hidden, np.float32)
    return tensors


# --- writing them out --------------------------------------------------------------------------


def write_hf(
    out: Path, config: dict[str, Any], tensors: dict[str, Any], tokenizer_dir: Path
) -> Path:
    """A Hugging Face directory: config.json, model.safetensors (float32) and the tokenizer."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    write_f32_safetensors(
        out / "model.safetensors",
        {name: tuple(array.shape) for name, array in tensors.items()},
        iter(tensors.values()),
    )
    copy_tokenizer(tokenizer_dir, out)
    return out


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def write_f32_safetensors(
    path: Path, shapes: dict[str, tuple[int, ...]], arrays: Iterator[Any]
) -> None:
    """A float32 safetensors file: the header from `shapes` (name -> dims, in file order), then
    `arrays` in that order, written one by one so that no more than one is held at a time."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dims in shapes.items():
        size = int(np.prod(dims)) * 4
        header[name] = {
            "dtype": "F32",
            "shape": list(dims),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as file:
        file.write(len(encoded).to_bytes(8, "little") + encoded)
        for array in arrays:
            file.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


def copy_tokenizer(tokenizer_dir: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, out / name)


_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}  # fmt: skip


def gguf_name(hf_name: str) -> str:
    """llama.cpp's name of a Qwen2 tensor (layers.0.mlp.up_proj: blk.0.ffn_up)."""
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    _, _, layer, rest = hf_name.split(".", 3)
    module, kind = rest.rsplit(".", 1)
    return f"blk.{layer}.{_GGUF_NAMES[module]}.{kind}"


def write_gguf(
    out: Path,
    config: dict[str, Any],
    tensors: dict[str, Any],
    tokenizer_dir: Path,
    vendor: Path,
    name: str = "flashcode-tiny",
) -> Path:
    """An f32 GGUF of a Qwen2 model with a byte-level BPE tokenizer, written with gguf-py; the
    metadata is what llama.cpp's converter writes for the same directory."""
    gguf = gguf_module(vendor)
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(spec["model"]["vocab"])
    specials = {t["content"]: t["id"] for t in spec["added_tokens"]}
    size = max(config["vocab_size"], 1 + max([*vocab.values(), *specials.values()]))
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, token_id in vocab.items():
        tokens[token_id], types[token_id] = text, gguf.TokenType.NORMAL
    for text, token_id in specials.items():
        tokens[token_id], types[token_id] = text, gguf.TokenType.CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]

    writer = gguf.GGUFWriter(str(out), "qwen2")
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")  # the default tokenizer's pre-tokenizer is Qwen2's regex
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(config["eos_token_id"])
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_pad_token_id(config["pad_token_id"])
    writer.add_add_bos_token(False)
    for hf_name, array in tensors.items():
        writer.add_tensor(gguf_name(hf_name), np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
