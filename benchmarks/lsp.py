"""`flashcode bench lsp`: inline-completion latency while typing, driven as an editor drives it.

A real source file is typed character by character into an open document. Every keystroke sends
didChange and a new inlineCompletion request, and cancels the previous request if it is still
pending, after an inter-key delay drawn from a typist's range. Latency is measured from sending a
request to its answer, for the requests that were answered rather than cancelled.

`--shape NAME` types against a random-weight int4 model of a real checkpoint's exact shape
(benchmarks/shapes.py builds it once, outside the repository). Such a model never emits an end
of text or a newline, so it always decodes up to maxNewTokens: `--max-new-tokens` (16 with a
shape) caps that at a realistic single-line length, and the report says which cap was used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from benchmarks import open_latency
from benchmarks.server import BenchServer
from inference.router import default_model_dir

ROOT = Path(__file__).resolve().parent.parent


def default_source() -> Path:
    """A held-out CPython file: the default model never trained on it."""
    from inference.build.corpus import collect, stdlib_root

    validation = sorted(collect().validation, key=lambda f: -len(f.text))
    return stdlib_root() / validation[len(validation) // 2].relpath


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def replay(args: argparse.Namespace) -> dict[str, Any]:
    source = Path(args.file) if args.file else default_source()
    text = source.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start_line = min(args.start_line, max(0, len(lines) - 1))
    before = "".join(lines[:start_line])
    typed = "".join(lines[start_line:])[: args.keystrokes]
    after = "".join(lines[start_line:])[args.keystrokes :] if args.with_suffix else ""

    settings: dict[str, Any] = {"cache": {"enabled": False}}
    if args.max_new_tokens:
        settings["maxNewTokens"] = args.max_new_tokens
    server = BenchServer("flashcode-bench-lsp")
    client = await server.start(args.model)
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"flashcode": settings},
        )
    )
    client.initialized(types.InitializedParams())
    await server.wait_ready()

    uri = source.resolve().as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=0, text=before + after
            )
        )
    )
    rng = random.Random(args.seed)
    line, character = start_line, 0
    latencies: list[float] = []
    suggestion_latencies: list[float] = []
    cancelled = answered = empty = 0
    pending: asyncio.Future[Any] | None = None
    tasks: list[asyncio.Task[None]] = []

    async def measure(future: asyncio.Future[Any], sent: float) -> None:
        nonlocal cancelled, answered, empty
        try:
            result = await future
        except JsonRpcRequestCancelled:
            cancelled += 1
            return
        latency = (time.perf_counter() - sent) * 1000
        latencies.append(latency)
        answered += 1
        items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
        empty += not items
        if items:
            suggestion_latencies.append(latency)

    for version, char in enumerate(typed, start=1):
        position = types.Position(line=line, character=character)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=position, end=position), text=char
                    )
                ],
            )
        )
        if char == "\n":
            line, character = line + 1, 0
        else:
            character += len(char.encode("utf-16-le")) // 2
        if pending is not None and not pending.done():
            client.cancel_request(types.CancelParams(id=f"k{version - 1}"))
        request_id = f"k{version}"
        sent = time.perf_counter()
        pending = asyncio.wrap_future(
            client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line, character=character),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Automatic
                    ),
                ),
                msg_id=request_id,
            )
        )
        tasks.append(asyncio.ensure_future(measure(pending, sent)))
        await asyncio.sleep(rng.uniform(args.min_delay_ms, args.max_delay_ms) / 1000)
    await asyncio.gather(*tasks)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return {
        "file": str(source),
        "model": str(args.model),
        "requests": len(typed),
        "answered": answered,
        "cancelled": cancelled,
        "empty_answers": empty,
        "latency_p50_ms": round(percentile(latencies, 0.5), 1),
        "latency_p95_ms": round(percentile(latencies, 0.95), 1),
        "latency_mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        # An empty answer is often quick (the model stopped at once): the latency of answers
        # that showed something is reported on its own.
        "with_suggestion": len(suggestion_latencies),
        "suggestion_latency_p50_ms": round(percentile(suggestion_latencies, 0.5), 1),
        "suggestion_latency_p95_ms": round(percentile(suggestion_latencies, 0.95), 1),
        "inter_key_delay_ms": [args.min_delay_ms, args.max_delay_ms],
        "shape": args.shape,
        "max_new_tokens": args.max_new_tokens or "server default",
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode bench lsp")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", type=Path, default=default_model_dir())
    source.add_argument("--shape", help="a real checkpoint's shape (benchmarks/shapes.py)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=0, help="cap per completion (16 with --shape)"
    )
    parser.add_argument("--file", help="source file to type (default: a held-out stdlib file)")
    parser.add_argument("--start-line", type=int, default=40, help="lines present before typing")
    parser.add_argument("--keystrokes", type=int, default=400)
    parser.add_argument("--min-delay-ms", type=float, default=80.0)
    parser.add_argument("--max-delay-ms", type=float, default=200.0)
    parser.add_argument(
        "--with-suffix", action="store_true", help="keep the rest of the file after the cursor"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    open_latency.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.shape:
        from benchmarks.shapes import ShapeError, ensure_onnx, shape_named

        try:
            args.model = ensure_onnx(shape_named(args.shape))
        except ShapeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        # a random-weight model never stops on its own: a realistic single-line length
        args.max_new_tokens = args.max_new_tokens or 16
        args.open_max_new_tokens = args.open_max_new_tokens or 16
    result = asyncio.run(replay(args))
    if not args.skip_open:
        result.update(asyncio.run(open_latency.measure(args)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
