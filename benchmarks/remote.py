"""`flashcode bench remote`: the remote backend through a real llama.cpp server on loopback.

One run, one model: the embedded default model, served by llama-cpp-python's server from its
int4 weights written as GGUF (benchmarks/llama_server.py), and run in process by the local
backend. Both flashcode servers are driven over stdio as an editor drives them, with the same
tokenizer (modelPath is the default model), `remote.fim: "raw"`, the cache off, no deadline
in the way, and one thread on each side (`threads` 1, `--n_threads 1`).

Reported:
- latency: p50/p95 of an invoked inline completion at the same cursors (a held-out stdlib
  file, each line cut in half, the rest of the file after it), local vs remote, and the share
  of cursors where both gave the same text (the same model, so close to 1);
- cancellation: from sending `$/cancelRequest` to the llama.cpp server's log line saying the
  client went away (polled every millisecond), and to the cancelled answer. The server runs
  random weights of the same shape here, so that every stream is still going when cancelled
  (the trained model often ends first); its speed is the trained model's;
- concurrency: 8 editors (each its own flashcode process) asking at once vs one editor asking
  the same number of completions in a row: completions per second and the ratio. Note that
  llama-cpp-python's server answers one request at a time; vLLM or `llama-server --parallel`
  would batch them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.lsp.client import LanguageClient

from benchmarks.llama_server import CACHE, LlamaServer, default_gguf, llama_python, vendor_dir
from benchmarks.lsp import default_source, percentile
from inference.router import default_model_dir

ROOT = Path(__file__).resolve().parent.parent
DISCONNECTED = "Disconnected from client"
ACCESS = re.compile(r'"POST /v1/completions HTTP/1\.1" 200')


class Editor:
    """One flashcode server over stdio with one client, as one editor runs it."""

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        self.client = LanguageClient(name, "1")
        self.settings = settings
        self.ready = asyncio.Event()
        self.version = 0

        @self.client.feature("flashcode/status")
        def on_status(_: LanguageClient, params: Any) -> None:
            if getattr(params, "state", None) == "ready":
                self.ready.set()

    async def start(self, env: dict[str, str]) -> Editor:
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        await self.client.start_io(
            sys.executable, "-m", "lsp_server", "--log-level", "warning",
            env={**os.environ, "PYTHONPATH": path, **env},
        )  # fmt: skip
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                initialization_options={"flashcode": self.settings},
            )
        )
        self.client.initialized(types.InitializedParams())
        await asyncio.wait_for(self.ready.wait(), 300)
        return self

    def open(self, text: str) -> str:
        self.version += 1
        uri = Path(tempfile.gettempdir(), f"flashcode-bench-remote-{self.version}.py").as_uri()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        return uri

    def send(self, uri: str, position: types.Position, msg_id: str) -> asyncio.Future[Any]:
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
        return asyncio.wrap_future(
            self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
            )
        )

    async def complete(self, text: str, position: types.Position) -> tuple[float, str]:
        """(milliseconds, text shown) for one completion at `position` in a new document."""
        uri = self.open(text)
        started = time.perf_counter()
        result = await self.send(uri, position, f"c{self.version}")
        elapsed = (time.perf_counter() - started) * 1000
        items = result.items if isinstance(result, types.InlineCompletionList) else result
        shown = items[0].insert_text if items else ""
        return elapsed, shown if isinstance(shown, str) else shown.value

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def cursors(source: Path, count: int, seed: int) -> list[tuple[str, types.Position]]:
    """Documents with the cursor in the middle of a code line, the rest of that line removed."""
    lines = source.read_text(encoding="utf-8").split("\n")
    candidates = [i for i, line in enumerate(lines) if len(line.strip()) >= 12 and i > 10]
    chosen = sorted(random.Random(seed).sample(candidates, min(count, len(candidates))))
    cases = []
    for i in chosen:
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        cut = indent + (len(line) - indent) // 2
        text = "\n".join([*lines[:i], line[:cut], *lines[i + 1 :]])
        cases.append(
            (text, types.Position(line=i, character=len(line[:cut].encode("utf-16-le")) // 2))
        )
    return cases


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "mean_ms": round(statistics.fmean(values), 1) if values else float("nan"),
    }


async def latency(
    editor: Editor, cases: list[tuple[str, types.Position]], warmup: int
) -> tuple[list[float], list[str]]:
    for text, position in cases[:warmup]:
        await editor.complete(text, position)
    timings, texts = [], []
    for text, position in cases:
        elapsed, shown = await editor.complete(text, position)
        timings.append(elapsed)
        texts.append(shown)
    return timings, texts


async def log_line(
    server: LlamaServer, pattern: re.Pattern[str], count: int, limit_s: float
) -> float:
    """When the server's log first has more than `count` matches of `pattern` (perf counter)."""
    ends = time.perf_counter() + limit_s
    while time.perf_counter() < ends:
        if len(pattern.findall(server.log_text())) > count:
            return time.perf_counter()
        await asyncio.sleep(0.001)
    raise TimeoutError(f"no new {pattern.pattern!r} in {server.log} within {limit_s}s")


async def cancellations(editor: Editor, server: LlamaServer, rounds: int) -> dict[str, Any]:
    body = "def total(values):\n    "
    to_server, to_answer = [], []
    disconnected = re.compile(DISCONNECTED)
    for round_ in range(rounds):
        log = server.log_text()
        uri = editor.open(body)
        future = editor.send(uri, types.Position(line=1, character=4), f"x{round_}")
        await log_line(server, ACCESS, len(ACCESS.findall(log)), 60)
        await asyncio.sleep(0.05)  # tokens are flowing
        sent = time.perf_counter()
        editor.client.cancel_request(types.CancelParams(id=f"x{round_}"))
        try:
            await future
        except JsonRpcRequestCancelled:
            to_answer.append((time.perf_counter() - sent) * 1000)
        closed = await log_line(server, disconnected, len(disconnected.findall(log)), 30)
        to_server.append((closed - sent) * 1000)
    return {
        "rounds": rounds,
        "cancel_to_server_stream_closed": summary(to_server),
        "cancel_to_cancelled_answer": summary(to_answer),
        "cancelled_answers": len(to_answer),
    }


async def throughput(
    editors: list[Editor], cases: list[tuple[str, types.Position]], per_editor: int
) -> dict[str, Any]:
    async def one(editor: Editor, mine: list[tuple[str, types.Position]]) -> list[str]:
        return [(await editor.complete(text, position))[1] for text, position in mine]

    work = cases[: per_editor * len(editors)]
    started = time.perf_counter()
    single = await one(editors[0], work)
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    shares = [work[i :: len(editors)] for i in range(len(editors))]
    together = await asyncio.gather(*(one(e, s) for e, s in zip(editors, shares, strict=True)))
    together_s = time.perf_counter() - started
    answered = sum(bool(t) for texts in together for t in texts)
    return {
        "editors": len(editors),
        "completions": len(work),
        "one_editor_per_s": round(len(work) / single_s, 2),
        "concurrent_per_s": round(len(work) / together_s, 2),
        "ratio": round(single_s / together_s, 2),
        "answered_one_editor": sum(bool(t) for t in single),
        "answered_concurrent": answered,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    python = llama_python(args.llama_python)
    if python is None:
        raise SystemExit("no Python with llama-cpp-python[server]: set FLASHCODE_LLAMA_PYTHON")
    vendor = vendor_dir(args.sdist)
    scratch = Path(tempfile.mkdtemp(prefix="flashcode-bench-remote-"))
    port = args.port
    common = {"cache": {"enabled": False}, "deadlineMs": 120000, "threads": args.threads}
    model = str(default_model_dir())
    remote_env = {
        "FLASHCODE_BACKEND": "remote",
        "FLASHCODE_REMOTE__URL": f"http://127.0.0.1:{port}/v1",
        "FLASHCODE_REMOTE__FIM": "raw",
        "FLASHCODE_REMOTE__HEALING": args.healing,
        "FLASHCODE_REMOTE__TIMEOUT_MS": "120000",
        "FLASHCODE_MODEL_PATH": model,
    }
    cases = cursors(Path(args.file) if args.file else default_source(), args.cases, args.seed)
    options = {"threads": args.threads, "alias": "flashcode-tiny"}
    trained = LlamaServer(
        default_gguf(CACHE, vendor), port, scratch / "llama.log", python, **options
    )
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        },
        "model": "flashcode-tiny (embedded default; GGUF f32 of its int4 weights on llama.cpp)",
        "server": f"llama-cpp-python 0.3.36 server, --n_threads {args.threads}, loopback",
        "healing": args.healing,
        "cases": len(cases),
    }
    local = await Editor("bench-remote-local", {**common, "modelPath": model}).start({})
    trained.start()
    try:
        remote = await Editor("bench-remote", common).start(remote_env)
        local_ms, local_texts = await latency(local, cases, args.warmup)
        remote_ms, remote_texts = await latency(remote, cases, args.warmup)
        same = sum(a == b for a, b in zip(local_texts, remote_texts, strict=True))
        result["latency"] = {
            "local": summary(local_ms),
            "remote": summary(remote_ms),
            "same_text_share": round(same / len(cases), 3),
            "answered_local": sum(map(bool, local_texts)),
            "answered_remote": sum(map(bool, remote_texts)),
        }
        await local.stop()
        editors = [remote] + [
            await Editor(f"bench-remote-{i}", common).start(remote_env)
            for i in range(1, args.editors)
        ]
        result["concurrency"] = await throughput(editors, cases, args.per_editor)
        for editor in editors[1:]:
            await editor.stop()
        trained.stop()
        rambler = LlamaServer(
            default_gguf(CACHE, vendor, random=True),
            port,
            scratch / "random.log",
            python,
            **options,
        )
        rambler.start()
        try:
            remote.settings = {**common, "maxNewTokens": 512}
            remote.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"flashcode": remote.settings})
            )
            result["cancellation"] = await cancellations(remote, rambler, args.cancels)
        finally:
            rambler.stop()
        await remote.stop()
    finally:
        trained.stop()
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="flashcode bench remote", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--file", help="source file for the cursors (default: a held-out stdlib file)"
    )
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument(
        "--healing", choices=["prompt", "grammar"], default="prompt", help="remote.healing"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument(
        "--per-editor", type=int, default=4, help="completions each editor asks for"
    )
    parser.add_argument("--cancels", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="threads of each backend")
    parser.add_argument("--port", type=int, default=8019)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llama-python", help="the Python with llama-cpp-python[server]")
    parser.add_argument("--sdist", help="llama-cpp-python's sdist (default: FLASHCODE_LLAMA_SDIST)")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
