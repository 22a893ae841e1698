"""The soak benchmark's parts that do not depend on the transport: a server process with its
log, a client that knows when the model is ready, the count of each answer, the engine's slot
accounting, and when to cancel.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import sys
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pygls.lsp.client import LanguageClient

from benchmarks.lsp import percentile
from benchmarks.typist import Typist

ROOT = Path(__file__).resolve().parent.parent
REQUEST_TIMEOUT_S = 60.0  # an answer later than this is an error
READY_TIMEOUT_S = 120.0  # for the model to load
QUIET_TIMEOUT_S = 20.0  # for the engine to drop the last cancelled requests


@dataclass
class Tally:
    requests: int = 0
    answered: int = 0
    cancelled: int = 0
    answered_after_cancel: int = 0
    errors: int = 0
    edits: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    cancel_timing: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


class Server:
    """One server process (stdio or TCP), its log file, and its clients."""

    def __init__(self, args: argparse.Namespace, workdir: Path, name: str) -> None:
        self.args = args
        self.log = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "FLASHCODE_CACHE__DIRECTORY": str(workdir / f"{name}-cache"),  # never the user's
            "FLASHCODE_CACHE__ENABLED": "false" if args.no_cache else "true",
        }
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False

    def argv(self, *extra: str) -> list[str]:
        model = ("--model", str(self.args.model))
        return [sys.executable, "-m", "lsp_server", *model, "--log-level", "warning", *extra]

    @property
    def crashed(self) -> bool:
        process = self.process
        if process is None or process.returncode is None:
            return False
        return not self.stopping or process.returncode not in (0, -signal.SIGINT)

    def rss_mb(self) -> float | None:
        assert self.process is not None
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        return round(int(match.group(1)) / 1024, 1) if match else None

    def log_errors(self) -> tuple[int, list[str]]:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return 0, []
        bad = [line for line in lines if line.startswith("Traceback") or " ERROR " in line]
        sample = bad[:5]
        if self.crashed:  # what it said last, and how it ended
            sample += [*lines[-10:], f"exit code {self.process and self.process.returncode}"]
        return len(bad), sample


def new_client(name: str) -> tuple[LanguageClient, asyncio.Event]:
    client = LanguageClient(name, "1")
    ready = asyncio.Event()

    @client.feature("flashcode/status")
    def on_status(_: LanguageClient, params: Any) -> None:
        if getattr(params, "state", None) == "ready":
            ready.set()

    return client, ready


async def initialize(client: LanguageClient, ready: asyncio.Event) -> None:
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), process_id=os.getpid())
    )
    client.initialized(types.InitializedParams())
    await asyncio.wait_for(ready.wait(), READY_TIMEOUT_S)


async def engine_stats(client: LanguageClient) -> dict[str, dict[str, Any]]:
    """Every engine's counters (int4, int8...) once no request is left in any (or after
    QUIET_TIMEOUT_S), by engine name. A warm prefill counts as a request: the typing pause after
    the last answer starts one, and while it runs it holds a slot."""
    deadline = time.monotonic() + QUIET_TIMEOUT_S
    while True:
        report = await asyncio.wait_for(
            client.protocol.send_request_async("flashcode/stats", {}), REQUEST_TIMEOUT_S
        )
        engines: dict[str, dict[str, Any]] = _as_dict(report)["engines"]
        busy = any(
            e["active"] or e["waiting"] or e.get("prefilling") or e.get("warm_waiting")
            for e in engines.values()
        )
        if not busy or time.monotonic() > deadline:
            return engines
        await asyncio.sleep(0.1)


def _as_dict(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {k: _as_dict(v) for k, v in value.items()}
    return value


def leaked_slots(engines: dict[str, dict[str, Any]]) -> int:
    """Slots not given back, released slots that kept their KV, requests never finished."""
    return sum(
        int(e["slots"]) - int(e["free_slots"]) + int(e["free_slots_holding_kv"]) + int(e["waiting"])
        for e in engines.values()
    )


def prefix_caches(engines: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Each engine's prefix cache: entries, bytes held, and its bound."""
    return {
        name: {key: int(cache[key]) for key in ("entries", "bytes", "capacity_bytes")}
        for name, e in engines.items()
        if (cache := e.get("prefix_cache"))
    }


def cached_mb(engines: dict[str, dict[str, Any]]) -> float:
    return sum(c["bytes"] for c in prefix_caches(engines).values()) / 2**20


def kv_written_mb(engines: dict[str, dict[str, Any]]) -> float:
    """KV slot buffers written so far, over every engine (their pages are committed when first
    written, up to each engine's whole buffer)."""
    return sum(int(e.get("kv_written_bytes", 0)) for e in engines.values()) / 2**20


def inline_params(typist: Typist) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=typist.uri),
        position=typist.position,
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def outcome(
    future: Future[Any], sent: float, tally: Tally, cancel_sent: bool, measure: bool = True
) -> None:
    """Wait for one answer and count it."""
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), REQUEST_TIMEOUT_S)
    except JsonRpcRequestCancelled:
        if cancel_sent:
            tally.cancelled += 1
        else:
            tally.error("a request nobody cancelled was answered as cancelled")
        return
    except TimeoutError:
        tally.error(f"no answer in {REQUEST_TIMEOUT_S:g}s")
        return
    except Exception as exc:  # an error answer, or the server went away
        tally.error(f"{type(exc).__name__}: {exc}")
        return
    if not isinstance(result, types.InlineCompletionList):
        tally.error(f"not an InlineCompletionList: {result!r}")
        return
    if cancel_sent:
        tally.answered_after_cancel += 1
    else:
        tally.answered += 1
        if measure:
            tally.latencies_ms.append((time.perf_counter() - sent) * 1000)


@dataclass
class CancelPlan:
    """When to cancel: early delays land in the prefill, late ones in the decode."""

    prefill_ms: float = 5.0
    total_ms: float = 20.0

    def delay_s(self, rng: random.Random) -> tuple[str, float]:
        timing = rng.choice(("before_model", "prefill", "decode"))
        if timing == "before_model":
            return timing, 0.0
        if timing == "prefill":
            return timing, rng.uniform(0.0, self.prefill_ms) / 1000
        return timing, rng.uniform(self.prefill_ms, max(self.total_ms, self.prefill_ms)) / 1000


def calibrate(engines: dict[str, dict[str, Any]], latencies_ms: list[float]) -> CancelPlan:
    """Split a warm-up answer's latency into its prefill and decode parts (the busiest engine's
    counts)."""
    engine = max(engines.values(), key=lambda e: int(e["requests"]))
    total = percentile(latencies_ms, 0.5) if latencies_ms else 20.0
    finished = max(1, int(engine["finished"]) + int(engine["deadline"]))
    tokens_per_answer = int(engine["generated_tokens"]) / finished
    step_ms = float(engine["step_ms_by_batch"].get("1", engine["step_ms_by_batch"].get(1, 1.0)))
    decode = min(total * 0.9, tokens_per_answer * step_ms)
    return CancelPlan(prefill_ms=max(1.0, total - decode), total_ms=max(2.0, total))
