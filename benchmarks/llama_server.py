"""A real llama.cpp server on loopback, for the remote backend's test and benchmark.

llama-cpp-python's server is built from its PyPI source (`make test-remote` does it: about 17
minutes on 2 cores, fast again from pip's wheel cache); its sdist also carries llama.cpp's
`convert_hf_to_gguf.py` and `gguf-py`. This module makes the GGUF model it serves:

- `gguf`: the embedded default model itself. Its weights exist only as int4 ONNX
  (MatMulNBits, block 32, symmetric); they are dequantized exactly (each weight is its int4
  value times its block's scale) and written as an f32 GGUF with gguf-py: the same weights as
  the local int4 model, so the two backends answer alike, and no torch is needed. `--random`
  writes random weights of the default model's shape (or another shape) instead, for plumbing.
- `hf`: the same weights as a Hugging Face Qwen2 directory (config.json, model.safetensors,
  the tokenizer files), for the converter or for transformers.
- `convert`: a Hugging Face Qwen2 directory to GGUF with llama.cpp's own converter (for a real
  checkpoint, e.g. the real-size benchmark). It needs a Python with torch and transformers.
  Two pitfalls are handled: Qwen2's converter tries SentencePiece first and falls back to BPE
  only on FileNotFoundError, so a missing `sentencepiece` module is stood in for; a tokenizer
  the converter does not know stops it ("BPE pre-tokenizer was not recognized"), so `--pre`
  names its pre-tokenizer (the default model's is Qwen2's regex: "qwen2").
- `serve`: `python -m llama_cpp.server` on 127.0.0.1, its log to a file, until interrupted.
  llama-cpp-python serves one request at a time (requests queue on a lock, and their response
  headers wait with them); `--interrupt_requests false` keeps a queued request from cutting the
  one that streams. llama.cpp's own `llama-server --parallel N` batches instead.

The interpreter that has llama-cpp-python is FLASHCODE_LLAMA_PYTHON (or --llama-python); the
sdist is FLASHCODE_LLAMA_SDIST (a .tar.gz or its unpacked folder), else `pip download`-ed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from inference.router import default_model_dir

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flashcode" / "llama"
READY_TIMEOUT_S = 120.0
WARM_UP_REQUESTS = 3


# --- llama-cpp-python's sdist: the converter and gguf-py -----------------------------------------


def llama_python(explicit: str | None = None) -> str | None:
    """The interpreter with llama-cpp-python's server installed, or None."""
    python = explicit or os.environ.get("FLASHCODE_LLAMA_PYTHON") or sys.executable
    check = [python, "-c", "import llama_cpp.server.app"]
    try:
        found = subprocess.run(check, capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return python if found else None


def vendor_dir(sdist: str | None = None) -> Path:
    """llama.cpp's folder inside llama-cpp-python's sdist: `sdist` is the .tar.gz, its unpacked
    folder, or a folder holding either; without one, the sdist is downloaded into the cache."""
    source = Path(sdist or os.environ.get("FLASHCODE_LLAMA_SDIST", "") or CACHE)
    if source.is_dir():
        found = sorted(source.glob("**/vendor/llama.cpp/convert_hf_to_gguf.py"))
        if found:
            return found[0].parent
        tarballs = sorted(source.glob("llama_cpp_python-*.tar.gz"))
        if not tarballs and source == CACHE:
            download = ["download", "--no-deps", "--no-binary=:all:", "-d", str(CACHE)]
            subprocess.run([sys.executable, "-m", "pip", *download, LLAMA_CPP_PYTHON], check=True)
            tarballs = sorted(CACHE.glob("llama_cpp_python-*.tar.gz"))
        if not tarballs:
            raise FileNotFoundError(f"no llama-cpp-python sdist in {source}")
        source = tarballs[-1]
    target = CACHE / source.name.removesuffix(".tar.gz")
    if not (target / "vendor").is_dir():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source) as archive:
            archive.extractall(CACHE, filter="data")
    return target / "vendor" / "llama.cpp"


def gguf_module(vendor: Path) -> Any:
    """llama.cpp's gguf-py, as shipped beside its converter (the two change together)."""
    sys.path.insert(0, str(vendor / "gguf-py"))
    return importlib.import_module("gguf")


# --- the default model's weights ---------------------------------------------------------------


def _dequantize(packed: np.ndarray, scales: np.ndarray, columns: int) -> np.ndarray:
    """MatMulNBits int4 (symmetric: zero point 8) to float32, (rows, columns)."""
    low, high = packed & 0x0F, packed >> 4
    values = np.stack([low, high], axis=-1).reshape(packed.shape[0], packed.shape[1], -1)
    weights = (values.astype(np.float32) - 8.0) * scales[:, :, None]
    return weights.reshape(packed.shape[0], -1)[:, :columns]


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
        return _dequantize(init[f"{prefix}.weight_Q4"], init[f"{prefix}.weight_scales"], columns)

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
        intermediate = init[f"{src}.mlp.gate_proj.MatMul.weight_Q4"].shape[0]
        tensors[f"{dst}.mlp.gate_proj.weight"] = matmul(f"{src}.mlp.gate_proj.MatMul", hidden)
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
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, array in tensors.items():
        size = array.size * 4
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(out / "model.safetensors", "wb") as file:
        file.write(len(encoded).to_bytes(8, "little") + encoded)
        for array in tensors.values():
            file.write(np.ascontiguousarray(array, dtype="<f4").tobytes())
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, out / name)
    return out


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


_CONVERT = """
import importlib.machinery, runpy, sys, types
vendor, pre, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path[:0] = [vendor, vendor + "/gguf-py"]
try:
    import sentencepiece  # noqa: F401
except ImportError:  # Qwen2's converter imports it before it looks for tokenizer.model
    stub = types.ModuleType("sentencepiece")
    stub.SentencePieceProcessor = type("SentencePieceProcessor", (), {})
    stub.__spec__ = importlib.machinery.ModuleSpec("sentencepiece", None)  # asked by transformers
    sys.modules["sentencepiece"] = stub
import conversion.base as base
known = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return known(self, tokenizer)
    except NotImplementedError:
        if not pre:
            raise
        return pre
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [vendor + "/convert_hf_to_gguf.py", *argv]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def convert_hf(
    hf_dir: Path, out: Path, vendor: Path, python: str, outtype: str = "f32", pre: str = "qwen2"
) -> Path:
    """`convert_hf_to_gguf.py` on a Hugging Face directory (with `python`: torch, transformers)."""
    command = [
        python,
        "-c",
        _CONVERT,
        str(vendor),
        pre,
        str(hf_dir),
        "--outfile",
        str(out),
        "--outtype",
        outtype,
    ]
    subprocess.run(command, check=True)
    return out


# --- serving -------------------------------------------------------------------------------------


class LlamaServer:
    """`python -m llama_cpp.server` on loopback; its log (access lines included) goes to a file."""

    def __init__(
        self,
        gguf: Path,
        port: int,
        log: Path,
        python: str,
        threads: int = 1,
        n_ctx: int = 1024,
        alias: str = "",
    ) -> None:
        self.gguf, self.port, self.log, self.python = gguf, port, log, python
        self.threads, self.n_ctx, self.alias = threads, n_ctx, alias
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        command = [
            self.python, "-m", "llama_cpp.server", "--model", str(self.gguf),
            "--host", "127.0.0.1", "--port", str(self.port), "--n_threads", str(self.threads),
            # Prompts too: its default takes every core, and on a busy machine threads that
            # wait for each other at every layer cost seconds a prompt.
            "--n_threads_batch", str(self.threads),
            "--n_ctx", str(self.n_ctx), "--model_alias", self.alias or self.gguf.stem,
            # By default a new request cuts the one streaming short; a team's editors must not
            # cut each other's answers.
            "--interrupt_requests", "false",
        ]  # fmt: skip
        # Unbuffered: the log shows a disconnect when it happens, not at exit.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        ends = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < ends:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as answer:
                    if answer.status == 200:
                        self._warm_up()
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"llama_cpp.server was not ready in {READY_TIMEOUT_S:.0f}s; see {self.log}"
        )

    def _warm_up(self) -> None:
        """A few short completions: the first ones after a start take seconds (buffers and
        threads set up on first use), which is not what a user of a running server waits."""
        body = json.dumps({"prompt": "def f(x):\n    return ", "max_tokens": 8}).encode()
        for _ in range(WARM_UP_REQUESTS):
            ask = urllib.request.Request(
                f"{self.url}/completions", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(ask, timeout=READY_TIMEOUT_S) as answer:
                answer.read()

    def kill(self) -> None:
        """As a crash would: no goodbye to the clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(gguf: Path, port: int, log: Path, python: str, **options: Any) -> Iterator[LlamaServer]:
    server = LlamaServer(gguf, port, log, python, **options).start()
    try:
        yield server
    finally:
        server.stop()


def default_gguf(folder: Path, vendor: Path, random: bool = False) -> Path:
    """The default model (or random weights of its shape) as GGUF in `folder`, made once per
    version of the model (its fingerprint names the file)."""
    from inference.model import load_model_info

    fingerprint = load_model_info(default_model_dir()).fingerprint[:12]
    out = folder / f"flashcode-tiny-{fingerprint}{'-random' if random else ''}.gguf"
    if not out.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        config, tensors = default_model_weights()
        if random:
            tensors = random_weights(config)
        partial = out.with_suffix(".partial")
        write_gguf(partial, config, tensors, default_model_dir(), vendor)
        partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.llama_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sdist", help="llama-cpp-python's sdist (.tar.gz or unpacked folder)")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("gguf", help="the default model (or --random weights) as an f32 GGUF")
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--random", action="store_true")
    hf = sub.add_parser("hf", help="the default model (or --random weights) as a HF directory")
    hf.add_argument("--out", type=Path, required=True)
    hf.add_argument("--random", action="store_true")
    convert = sub.add_parser(
        "convert", help="a HF Qwen2 directory to GGUF with llama.cpp's converter"
    )
    convert.add_argument("hf_dir", type=Path)
    convert.add_argument("--out", type=Path, required=True)
    convert.add_argument(
        "--python", default=sys.executable, help="a Python with torch and transformers"
    )
    convert.add_argument("--outtype", default="f32", choices=["f32", "f16", "bf16", "q8_0"])
    convert.add_argument(
        "--pre", default="qwen2", help="pre-tokenizer for a tokenizer llama.cpp does not know"
    )
    serve = sub.add_parser("serve", help="serve a GGUF on 127.0.0.1 until interrupted")
    serve.add_argument("gguf", type=Path)
    serve.add_argument("--port", type=int, default=8012)
    serve.add_argument("--log", type=Path, default=Path("llama-server.log"))
    serve.add_argument("--llama-python", help="the Python with llama-cpp-python[server]")
    serve.add_argument("--n-ctx", type=int, default=1024)
    args = parser.parse_args(argv)

    if args.command in ("gguf", "hf"):
        config, tensors = default_model_weights()
        if args.random:
            tensors = random_weights(config)
        if args.command == "hf":
            print(write_hf(args.out, config, tensors, default_model_dir()))
        else:
            print(
                write_gguf(args.out, config, tensors, default_model_dir(), vendor_dir(args.sdist))
            )
        return 0
    if args.command == "convert":
        print(
            convert_hf(
                args.hf_dir, args.out, vendor_dir(args.sdist), args.python, args.outtype, args.pre
            )
        )
        return 0
    python = llama_python(args.llama_python)
    if python is None:
        print(
            "error: no Python with llama-cpp-python[server]: set FLASHCODE_LLAMA_PYTHON",
            file=sys.stderr,
        )
        return 2
    with serving(args.gguf, args.port, args.log, python, n_ctx=args.n_ctx) as server:
        print(f"serving {args.gguf} at {server.url} (log: {args.log}); Ctrl-C stops it", flush=True)
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
