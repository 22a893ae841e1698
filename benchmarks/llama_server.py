"""A real llama.cpp server on loopback, for the remote backend's test and benchmark.

llama-cpp-python's server is built from its PyPI source (`make test-remote` does it: about 17
minutes on 2 cores, fast again from pip's wheel cache); its sdist also carries llama.cpp's
`convert_hf_to_gguf.py` and `gguf-py`. This module makes the GGUF model it serves:

- `gguf`: the embedded default model itself (model_files.py). Its weights exist only as int4 ONNX
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
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.model_files import (
    default_model_weights,
    random_weights,
    write_gguf,
    write_hf,
)
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
