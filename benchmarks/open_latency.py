"""`first_completion_after_open_ms` for `flashcode bench lsp`: open a file, move, pause, type.

The first completion in a file pays for its whole prompt (a thousand tokens: seconds on a
real-size model); warm context (lsp_server/completion/warm.py) prefills it while the user moves
and pauses. Here, as an editor: didOpen of a 1,000-line held-out file, the cursor moved to the
end of a line in its middle (`flashcode/cursor`, which the clients send when the cursor rests),
a pause, then Enter: didChange and the inlineCompletion request whose latency is measured. Each
setting gets a fresh server, warm context off then on, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from benchmarks.server import BenchServer

OPEN_LINES = 1000


def long_source() -> Path:
    """The shortest held-out CPython file of at least OPEN_LINES lines (never trained on)."""
    from inference.build.corpus import collect, stdlib_root

    long = [f for f in collect().validation if f.text.count("\n") >= OPEN_LINES]
    return stdlib_root() / min(long, key=lambda f: len(f.text)).relpath


async def _stats(server: BenchServer) -> dict[str, Any]:
    stats = await server.client.protocol.send_request_async("flashcode/stats", {})
    return _plain(stats)


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def first_completion(
    model: Path, text: str, line: int, pause_ms: float, warm: bool, max_new_tokens: int | None
) -> dict[str, Any]:
    server = BenchServer("flashcode-bench-open")
    client = await server.start(model)
    settings: dict[str, Any] = {"cache": {"enabled": False}, "warmContext": warm}
    if max_new_tokens is not None:
        settings["maxNewTokens"] = max_new_tokens
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(), initialization_options={"flashcode": settings}
        )
    )
    client.initialized(types.InitializedParams())
    await server.wait_ready()
    uri = Path("/tmp/flashcode-bench-open/opened.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=0, text=text
            )
        )
    )
    end = len(text.split("\n")[line].encode("utf-16-le")) // 2
    at = types.Position(line=line, character=end)
    client.protocol.notify(
        "flashcode/cursor",
        {"textDocument": {"uri": uri}, "position": {"line": line, "character": end}},
    )
    await asyncio.sleep(pause_ms / 1000)
    warm_before = (await _stats(server))["warm"]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=1),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text="\n"
                )
            ],
        )
    )
    sent = time.perf_counter()
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line + 1, character=0),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    latency_ms = (time.perf_counter() - sent) * 1000
    completions = (await _stats(server))["completions"]
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    return {
        "latency_ms": round(latency_ms, 1),
        "shown": bool(items),
        "prompt_tokens": completions["lastPromptTokens"],
        "reused_prompt_tokens": completions["lastReusedPromptTokens"],
        "warms_finished_before_typing": warm_before["warmed"],
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    source = Path(args.open_file) if args.open_file else long_source()
    lines = source.read_text(encoding="utf-8").split("\n")[:OPEN_LINES]
    text = "\n".join(lines)
    line = min(args.open_line, len(lines) - 2)
    runs = {
        setting: await first_completion(
            args.model, text, line, args.open_pause_ms, warm, args.open_max_new_tokens
        )
        for setting, warm in (("cold", False), ("warm", True))
    }
    return {
        "first_completion_after_open_ms": {k: run["latency_ms"] for k, run in runs.items()},
        "first_completion_after_open": {
            "file": str(source),
            "lines": len(lines),
            "cursor_line": line + 1,  # 1-based, as an editor shows it
            "pause_ms": args.open_pause_ms,
            "max_new_tokens": args.open_max_new_tokens,
            **runs,
        },
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--open-file", help="file opened (default: a held-out 1,000-line file)")
    parser.add_argument("--open-line", type=int, default=600, help="0-based line moved to")
    parser.add_argument("--open-pause-ms", type=float, default=1500.0)
    parser.add_argument(
        "--open-max-new-tokens",
        type=int,
        default=None,
        help="maxNewTokens for this measurement (a random-weight shape never stops early)",
    )
    parser.add_argument(
        "--skip-open", action="store_true", help="leave first_completion_after_open_ms out"
    )
