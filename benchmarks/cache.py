"""`flashcode bench cache`: how much of a CRUD editing session the completion cache answers.

A scripted workload is typed through the real server over stdio, as an editor would: for each
entity (user, order, product, ..., order_item), a repository class, a service class and an
API-handler class are appended to repositories.py, services.py and handlers.py, line by line in
editing order. models.py and web.py are open and unchanged (the entities and the request types
exist before the work starts). At the start of every non-blank line, once its indentation is
typed, the client asks for an inline completion, then types the line as written in the script
(the ground truth), whatever was suggested.

Each answer is classified by the server's own counters (flashcode/stats): exact-cache hit,
pattern hit, model, or typing-ahead. A pattern hit is *accepted* when it equals the ground truth
(the text that follows the cursor in the finished file, up to a line end) or else equals the
model's own answer for the same prompt, which is asked for right after with the cache switched
off by setting.

Latencies, p50 over the requests each layer answered:
- hit_p50_ms / miss_p50_ms: the client's round trip of the inlineCompletion request, what the
  user waits for;
- hit_server_p50_ms / miss_server_p50_ms: the server's own time for the completion (typing-ahead
  check, prompt, cache, model), as flashcode/stats reports it;
- cache_hit_latency_ms: the cache step alone (learning, lookups, re-instantiation, checks);
- round_trip_floor_p50_ms: an inlineCompletion for a document never opened, answered at once.

The cache lives in a fresh temporary directory unless --cache-dir names one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.crud_workload import ENTITIES, WEB, headers, models_file, script
from benchmarks.server import BenchServer
from inference.router import default_model_dir

TARGETS = {"hit_rate": 0.65, "hit_p50_ms": 5.0, "accepted_share": 0.95}


# --- the session ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """pygls answers custom requests with named tuples; JSON-like values are easier to read."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


@dataclass
class Counts:
    exact: int = 0
    pattern: int = 0
    typeahead: int = 0

    @classmethod
    def read(cls, stats: dict[str, Any]) -> Counts:
        total = stats.get("cache", {}).get("total", {})
        by_source = stats["completions"]["bySource"]
        return cls(
            exact=total.get("exact", {}).get("hits", 0),
            pattern=total.get("pattern", {}).get("hits", 0),
            typeahead=by_source.get("typeahead", 0),
        )


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"exact": [], "pattern": [], "model": [], "typeahead": []}
    )
    server: dict[str, list[float]] = field(  # the server's own time per request, as it reports
        default_factory=lambda: {"exact": [], "pattern": [], "model": [], "typeahead": []}
    )
    accepted_truth: int = 0
    accepted_model: int = 0
    not_accepted: list[dict[str, str]] = field(default_factory=list)


class Session:
    def __init__(
        self,
        client: LanguageClient,
        workspace: Path,
        cache_dir: Path,
        overrides: dict[str, Any],
    ) -> None:
        self.client = client
        self.overrides = overrides  # settings sent with every configuration change
        self.workspace = workspace
        self.cache_dir = cache_dir
        self.texts: dict[str, str] = {}
        self.versions: dict[str, int] = {}
        self.floor_latencies: list[float] = []

    def uri(self, name: str) -> str:
        return (self.workspace / name).as_uri()

    def open(self, name: str, text: str) -> None:
        self.texts[name] = text
        self.versions[name] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=self.uri(name), language_id="python", version=1, text=text
                )
            )
        )

    def end(self, name: str) -> types.Position:
        lines = self.texts[name].split("\n")
        return types.Position(line=len(lines) - 1, character=len(lines[-1]))

    def type(self, name: str, text: str) -> None:
        if not text:
            return
        end = self.end(name)
        self.texts[name] += text
        self.versions[name] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri(name), version=self.versions[name]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=end, end=end), text=text
                    )
                ],
            )
        )

    async def complete(self, name: str) -> tuple[str | None, float]:
        started = time.perf_counter()
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri(name)),
                position=self.end(name),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        latency = (time.perf_counter() - started) * 1000
        items = result.items if isinstance(result, types.InlineCompletionList) else result
        text = items[0].insert_text if items else None
        return (text if isinstance(text, str) else None), latency

    async def stats(self) -> dict[str, Any]:
        answer = await self.client.protocol.send_request_async("flashcode/stats", {})
        return _plain(answer)

    async def ping(self) -> None:
        """An inline completion for a document never opened, answered at once with nothing:
        the floor under every round trip (protocol and event loop only)."""
        started = time.perf_counter()
        await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=self.uri("never-opened.py")),
                position=types.Position(line=0, character=0),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        self.floor_latencies.append((time.perf_counter() - started) * 1000)

    async def set_cache(self, enabled: bool) -> None:
        self.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(
                settings={
                    "flashcode": {"cache": {"enabled": enabled, "directory": str(self.cache_dir)}}
                }
            )
        )
        for _ in range(500):  # the server applies settings in a task of its own
            if (await self.stats()).get("cache", {}).get("enabled") == enabled:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("the server did not apply the cache setting")


def accepted_by_truth(suggestion: str, truth: str) -> bool:
    """The suggestion is the ground truth up to a line end: what the user goes on to type."""
    text = suggestion.rstrip()
    return bool(text) and truth.startswith(text) and truth[len(text) : len(text) + 1] in ("", "\n")


def default_budget(model: Path) -> int:
    """The server's default prompt budget, less room for the answer in the model's context
    (the prompt and the completion share it)."""
    from inference.model import load_model_info

    return max(64, min(1024, load_model_info(model).context_length - 128))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    entities = ENTITIES[: args.entities]
    workspace = Path(tempfile.mkdtemp(prefix="flashcode-bench-cache-"))
    cache_dir = Path(args.cache_dir) if args.cache_dir else workspace / "cache"
    final = dict(headers(entities))
    for name, text in script(entities):
        final[name] += text

    overrides: dict[str, Any] = {}
    overrides["contextBudget"] = args.context_budget or default_budget(args.model)
    if args.max_new_tokens:
        overrides["maxNewTokens"] = args.max_new_tokens
    server = BenchServer("flashcode-bench-cache")
    client = await server.start(args.model)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(_: LanguageClient, params: types.ShowMessageParams) -> None:
        print(f"server: {params.message}", file=sys.stderr)

    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={
                "flashcode": {**overrides, "cache": {"directory": str(cache_dir)}}
            },
        )
    )
    client.initialized(types.InitializedParams())
    await server.wait_ready()

    session = Session(client, workspace, cache_dir, overrides)
    session.open("models.py", models_file(entities))
    session.open("web.py", WEB)
    for name, text in headers(entities).items():
        session.open(name, text)

    results = Results()
    requests = 0
    started = time.perf_counter()
    for name, text in script(entities):
        lines = text.split("\n")
        # The text starts with the blank lines that separate it from what is above.
        for index, line in enumerate(lines):
            newline = "\n" if index < len(lines) - 1 else ""
            if not line.strip():
                session.type(name, line + newline)
                continue
            indent = line[: len(line) - len(line.lstrip())]
            session.type(name, indent)
            await session.ping()
            before = Counts.read(await session.stats())
            suggestion, latency = await session.complete(name)
            report_after = await session.stats()
            after = Counts.read(report_after)
            requests += 1
            kind = next(
                (
                    k
                    for k in ("exact", "pattern", "typeahead")
                    if getattr(after, k) > getattr(before, k)
                ),
                "model",
            )
            results.latencies[kind].append(latency)
            results.server[kind].append(report_after["completions"]["lastLatencyMs"])
            if kind == "pattern" and suggestion is not None:
                offset = len(session.texts[name])
                truth = final[name][offset:]
                if accepted_by_truth(suggestion, truth):
                    results.accepted_truth += 1
                else:
                    await session.set_cache(False)
                    model_answer, _ = await session.complete(name)
                    await session.set_cache(True)
                    if model_answer is not None and model_answer.rstrip() == suggestion.rstrip():
                        results.accepted_model += 1
                    elif len(results.not_accepted) < args.examples:
                        results.not_accepted.append(
                            {
                                "file": name,
                                "line": session.texts[name].rsplit("\n", 1)[-1] + "|",
                                "suggested": suggestion,
                                "truth": truth.split("\n", 1)[0],
                                "model": model_answer or "",
                            }
                        )
            session.type(name, line[len(indent) :] + newline)
    wall = time.perf_counter() - started
    final_stats = await session.stats()
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    lat = results.latencies
    hits = lat["exact"] + lat["pattern"]
    lookups = len(hits) + len(lat["model"])
    pattern_hits = len(lat["pattern"])
    accepted = results.accepted_truth + results.accepted_model
    hit_p50 = percentile(hits, 0.5)
    miss_p50 = percentile(lat["model"], 0.5)
    report: dict[str, Any] = {
        "benchmark": "cache",
        "model": str(args.model),
        "device": final_stats.get("model", {}).get("device"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "entities": len(entities),
        "context_budget": overrides["contextBudget"],
        "requests": requests,
        "cache_lookups": lookups,
        "hits": {"exact": len(lat["exact"]), "pattern": pattern_hits},
        "model_answers": len(lat["model"]),
        "typeahead": len(lat["typeahead"]),
        "hit_rate": round(len(hits) / lookups, 4) if lookups else 0.0,
        "hit_p50_ms": hit_p50,
        "hit_p90_ms": percentile(hits, 0.9),
        "miss_p50_ms": miss_p50,
        "miss_p90_ms": percentile(lat["model"], 0.9),
        "speedup_p50": round(miss_p50 / hit_p50, 1) if hit_p50 and miss_p50 else None,
        "hit_server_p50_ms": percentile(results.server["pattern"] + results.server["exact"], 0.5),
        "miss_server_p50_ms": percentile(results.server["model"], 0.5),
        "round_trip_floor_p50_ms": percentile(session.floor_latencies, 0.5),
        "cache_hit_latency_ms": final_stats.get("cache", {}).get("session", {}).get("hitLatencyMs"),
        "accepted_share": round(accepted / pattern_hits, 4) if pattern_hits else None,
        "accepted": {
            "ground_truth": results.accepted_truth,
            "model_answer": results.accepted_model,
            "neither": pattern_hits - accepted,
        },
        "rejected_candidates": final_stats.get("cache", {})
        .get("session", {})
        .get("pattern", {})
        .get("rejected"),
        "cache_entries": final_stats.get("cache", {}).get("entries"),
        "not_accepted_examples": results.not_accepted,
        "wall_s": round(wall, 1),
        "targets": TARGETS,
    }
    report["meets_targets"] = bool(
        report["hit_rate"] >= TARGETS["hit_rate"]
        and hit_p50 is not None
        and hit_p50 <= TARGETS["hit_p50_ms"]
        and (report["accepted_share"] or 0) >= TARGETS["accepted_share"]
    )
    if not args.cache_dir:
        shutil.rmtree(workspace, ignore_errors=True)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode bench cache", description=__doc__)
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--entities", type=int, default=len(ENTITIES), choices=range(2, 9))
    parser.add_argument("--cache-dir", help="cache directory (default: a fresh temporary one)")
    parser.add_argument(
        "--context-budget", type=int, help="prompt tokens (default: 1024 or what the model fits)"
    )
    parser.add_argument("--max-new-tokens", type=int, help="(default: the server's)")
    parser.add_argument("--examples", type=int, default=5, help="non-accepted hits to show")
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    if not args.json:
        for key in ("requests", "hit_rate", "hit_p50_ms", "miss_p50_ms", "accepted_share"):
            print(f"{key:>16}: {report[key]}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
