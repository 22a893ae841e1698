"""`flashcode bench reliability`: a soak under load, counting what must stay zero.

Stdio: one server, the default model, `--requests` inline completions typed into documents (a
typist, benchmarks/typist.py, with other edits between keystrokes). About half are cancelled, at
one of three moments chosen at random: right after the request (before the model starts), early
(while the prompt is prefilled) or late (while it decodes); the early and late delays come from
the latencies and step times measured in a warm-up of `--warmup` answered requests. A second
warm-up of `--warmup` requests of the soak's own mix follows, and goes on until the engine's
prefix cache is full (memory it takes up to its bound is not a leak); only then is the resident
set read. Then TCP: one `flashcode serve --tcp` on
loopback and `--tcp-clients` clients at once, each typing its own file for `--tcp-requests`
requests, waiting for each answer as ghost text would.

Reported (JSON):
- requests, answered, cancelled (answered "cancelled"), answered_after_cancel (the answer won the
  race with its cancel), errors (any other failure: an error answer, no answer in
  REQUEST_TIMEOUT_S, a malformed one), crashes (a server that died or exited badly),
  server_log_errors (tracebacks and ERROR lines in the servers' logs);
- cancel_timing (what the client aimed at) and engine_cancelled (where the engine found them:
  queued, prefill, decode; the rest never reached the model);
- rss_start_mb (after the warm-up), rss_end_mb, rss_growth_pct: the stdio server's resident set,
  and rss_mb_by_requests, read after every tenth of the requests (a plateau or a slope);
  prefix_caches: what each engine's prefix cache holds at the end (256 MB by default, one bound
  shared by the variants),
  and rss_growth_beyond_prefix_caches_pct, the growth less what those caches took meanwhile
  (the int8 engine takes its share only once complex scopes route to it);
  rss_growth_beyond_bounded_buffers_pct (the target's figure) also leaves out the KV slot
  buffers' pages written for the first time meanwhile (kv_written_growth_mb): the system commits
  them as sequences grow longer (the typed documents grow through the run) or a slot or an
  engine is first used, up to each engine's whole buffer (kv_buffers_mb), a bound like the
  prefix cache's;
- leaked_slots: engine slots not returned, released slots still holding KV, and requests still
  queued, once every request has ended (read from flashcode/stats), summed over both servers;
- p95_ms_under_8_clients: p95 latency of the TCP clients' answers (null for another count).
Everything is on loopback and every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.lsp import percentile
from benchmarks.soak_session import (
    READY_TIMEOUT_S,
    REQUEST_TIMEOUT_S,
    CancelPlan,
    Server,
    Tally,
    cached_mb,
    calibrate,
    engine_stats,
    initialize,
    inline_params,
    kv_written_mb,
    leaked_slots,
    new_client,
    outcome,
    prefix_caches,
)
from benchmarks.typist import Typist, source_texts
from inference.router import default_model_dir

EDIT_SHARE = 0.2  # keystrokes preceded by another edit
CANCEL_SHARE = 0.5
TARGETS = {"errors": 0, "crashes": 0, "leaked_slots": 0, "server_log_errors": 0}
RSS_GROWTH_TARGET_PCT = 10.0
PREFIX_CACHE_FULL = 0.9  # the share of its capacity at which the prefix cache counts as full
WARMUP_MAX_ROUNDS = 16  # extra warm-up rounds (of a quarter of --warmup) waiting for it


class Stdio:
    """The stdio soak: typists, cancellations and edits against one server."""

    def __init__(self, args: argparse.Namespace, server: Server) -> None:
        self.args, self.server = args, server
        self.rng = random.Random(args.seed)
        self.sources = source_texts()
        self.documents = 0
        self.typist = self._new_typist()
        self.client, self.ready = new_client("flashcode-bench-reliability")
        self.pending: list[asyncio.Task[None]] = []
        self.counter = 0

    def _new_typist(self) -> Typist:
        self.documents += 1
        source = self.sources[self.documents % len(self.sources)]
        uri = f"file:///tmp/flashcode-soak/doc{self.documents}.py"
        return Typist(uri=uri, source=source, rng=random.Random(self.rng.random()))

    async def start(self) -> None:
        with self.server.log.open("ab") as log:
            del log  # created here; the shell below appends to it
        # The client library keeps the server's stderr on a pipe nobody reads: a chatty server
        # would block on it. The shell sends it to the log file instead.
        redirect = ["/bin/sh", "-c", 'exec "$@" 2>>"$0"', str(self.server.log)]
        await self.client.start_io(*redirect, *self.server.argv(), env=self.server.env)
        self.server.process = self.client._server  # pygls keeps the process private
        await initialize(self.client, self.ready)
        self.client.text_document_did_open(self.typist.open_params())

    def _next_document_if_done(self) -> None:
        if self.typist.exhausted or len(self.typist.lines) > 3000:
            self.client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=self.typist.uri)
                )
            )
            self.typist = self._new_typist()
            self.client.text_document_did_open(self.typist.open_params())

    async def run(self, count: int, tally: Tally, plan: CancelPlan | None) -> None:
        """`count` keystrokes, each with a request; with a plan, about half are cancelled."""
        for _ in range(count):
            if self.server.crashed:
                tally.error("the server died")
                return
            self._next_document_if_done()
            if self.rng.random() < EDIT_SHARE:
                _, change = self.typist.edit()
                self.client.text_document_did_change(change)
                tally.edits += 1
            self.client.text_document_did_change(self.typist.keystroke())
            self.counter += 1
            msg_id = f"soak-{self.counter}"
            sent = time.perf_counter()
            future = self.client.protocol.send_request(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(self.typist), msg_id=msg_id
            )
            tally.requests += 1
            if plan is not None and self.rng.random() < CANCEL_SHARE:
                timing, delay = plan.delay_s(self.rng)
                tally.cancel_timing[timing] = tally.cancel_timing.get(timing, 0) + 1
                if delay:
                    await asyncio.sleep(delay)
                self.client.cancel_request(types.CancelParams(id=msg_id))
                # The next keystroke does not wait for the cancelled answer, as in an editor.
                self.pending.append(asyncio.ensure_future(outcome(future, sent, tally, True)))
            else:
                await outcome(future, sent, tally, False)
        await asyncio.gather(*self.pending)
        self.pending.clear()


async def stop(server: Server, clients: list[LanguageClient]) -> None:
    """shutdown + exit for every client; a server that does not go is killed (a crash)."""
    server.stopping = True
    for client in clients:
        try:
            await asyncio.wait_for(client.shutdown_async(None), REQUEST_TIMEOUT_S)
            client.exit(None)
        except Exception:  # counted below: the server did not end well
            pass
    process = server.process
    if process is None:
        return
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        server.stopping = False  # it had to be killed: that counts as a crash
    for client in clients:
        await client.stop()


async def soak_stdio(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = Server(args, workdir, "stdio")
    stdio = Stdio(args, server)
    await stdio.start()
    warmup = Tally()
    await stdio.run(args.warmup, warmup, plan=None)  # answers only: the latencies to plan with
    plan = calibrate(await engine_stats(stdio.client), warmup.latencies_ms)
    # Then the soak's own mix, so that batch sizes, prompt lengths and cancellations have reached
    # what the run will see before the resident set is read.
    await stdio.run(args.warmup, warmup, plan)
    # The engines' prefix caches (int4, and int8 for complex scopes) share one bound and fill up
    # to it: memory they take is not a leak, so the resident set is read once they (nearly) are,
    # or after WARMUP_MAX_ROUNDS more rounds. What the caches hold is reported beside the
    # resident set, and the growth beyond them.
    for _ in range(WARMUP_MAX_ROUNDS):
        caches = list(prefix_caches(await engine_stats(stdio.client)).values())
        bound = max((c["capacity_bytes"] for c in caches), default=0)
        if caches and sum(c["bytes"] for c in caches) >= PREFIX_CACHE_FULL * bound:
            break
        await stdio.run(max(1, args.warmup // 4), warmup, plan)
    before = await engine_stats(stdio.client)
    rss_start = server.rss_mb()
    tally = Tally()
    started = time.perf_counter()
    # In tenths, so that the resident set is seen along the way: a plateau or a slope.
    rss_by_requests: list[tuple[int, float | None]] = [(0, rss_start)]
    for tenth in range(1, 11):
        await stdio.run(args.requests * tenth // 10 - tally.requests, tally, plan)
        rss_by_requests.append((tally.requests, server.rss_mb()))
    wall = time.perf_counter() - started
    engines = await engine_stats(stdio.client)
    rss_end = server.rss_mb()
    await stop(server, [stdio.client])
    log_errors, log_sample = server.log_errors()
    engine_cancelled = {
        phase: sum(
            int(engines[name][f"cancelled_in_{phase}"]) - int(before[name][f"cancelled_in_{phase}"])
            for name in engines
        )
        for phase in ("queued", "prefill", "decode")
    }
    growth = beyond = beyond_bounds = None
    cache_growth = cached_mb(engines) - cached_mb(before)
    kv_growth = kv_written_mb(engines) - kv_written_mb(before)
    if rss_start and rss_end:
        growth = round((rss_end - rss_start) / rss_start * 100, 1)
        beyond = round((rss_end - rss_start - cache_growth) / rss_start * 100, 1)
        beyond_bounds = round((rss_end - rss_start - cache_growth - kv_growth) / rss_start * 100, 1)
    return {
        "tally": tally,
        "warmup_requests": warmup.requests,
        "crashes": int(server.crashed),
        "exit_code": server.process.returncode if server.process else None,
        "server_log_errors": log_errors,
        "warmup_errors": warmup.errors,
        "log_sample": log_sample,
        "engine_cancelled": engine_cancelled,
        "cancel_plan_ms": {"prefill": round(plan.prefill_ms, 1), "total": round(plan.total_ms, 1)},
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_growth_pct": growth,
        "rss_mb_by_requests": rss_by_requests,
        "rss_growth_beyond_prefix_caches_pct": beyond,
        "rss_growth_beyond_bounded_buffers_pct": beyond_bounds,
        "prefix_caches": prefix_caches(engines),
        "prefix_caches_mb_at_start": round(cached_mb(before), 1),
        "prefix_caches_growth_mb": round(cache_growth, 1),
        "kv_written_mb_at_start": round(kv_written_mb(before), 1),
        "kv_written_growth_mb": round(kv_growth, 1),
        "kv_buffers_mb": round(
            sum(int(e.get("kv_buffer_bytes", 0)) for e in engines.values()) / 2**20, 1
        ),
        "leaked_slots": leaked_slots(engines),
        "wall_s": round(wall, 1),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def tcp_typist(
    client: LanguageClient, typist: Typist, count: int, tally: Tally, args: argparse.Namespace
) -> None:
    client.text_document_did_open(typist.open_params())
    for index in range(count):
        client.text_document_did_change(typist.keystroke())
        sent = time.perf_counter()
        future = client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            inline_params(typist),
            msg_id=f"{typist.uri}-{index}",
        )
        tally.requests += 1
        await outcome(future, sent, tally, False)
        await asyncio.sleep(typist.rng.uniform(args.min_delay_ms, args.max_delay_ms) / 1000)


async def soak_tcp(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = Server(args, workdir, "tcp")
    port = free_port()
    with server.log.open("ab") as log:
        server.process = await asyncio.create_subprocess_exec(
            *server.argv("--tcp", f"127.0.0.1:{port}"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
            env=server.env,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    clients: list[LanguageClient] = []
    tally = Tally()
    try:
        for index in range(args.tcp_clients):
            client, ready = new_client(f"flashcode-bench-tcp-{index}")
            while True:
                try:
                    await client.start_tcp("127.0.0.1", port)
                    break
                except OSError:
                    if server.crashed or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            clients.append(client)
            await initialize(client, ready)
        rss_start = server.rss_mb()
        sources = source_texts()
        rng = random.Random(args.seed + 1)
        typists = [
            Typist(
                uri=f"file:///tmp/flashcode-soak/tcp{index}.py",
                source=sources[index % len(sources)],
                rng=random.Random(rng.random()),
            )
            for index in range(len(clients))
        ]
        await asyncio.gather(
            *(
                tcp_typist(client, typist, args.tcp_requests, tally, args)
                for client, typist in zip(clients, typists, strict=True)
            )
        )
        engines = await engine_stats(clients[0])
        rss_end = server.rss_mb()
    finally:
        await stop_tcp(server, clients)
    log_errors, log_sample = server.log_errors()
    return {
        "clients": len(clients),
        "tally": tally,
        "crashes": int(server.crashed),
        "exit_code": server.process.returncode if server.process else None,
        "server_log_errors": log_errors,
        "log_sample": log_sample,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "leaked_slots": leaked_slots(engines),
        "p95_ms": round(percentile(tally.latencies_ms, 0.95), 1),
        "p50_ms": round(percentile(tally.latencies_ms, 0.5), 1),
    }


async def stop_tcp(server: Server, clients: list[LanguageClient]) -> None:
    """Every client says goodbye; the server, which outlives its clients, then gets SIGINT."""
    for client in clients:
        try:
            await asyncio.wait_for(client.shutdown_async(None), REQUEST_TIMEOUT_S)
            client.exit(None)
        except Exception:
            pass
    process = server.process
    if process is not None and process.returncode is None:
        await asyncio.sleep(0.5)  # the exits are read before the server is stopped
        server.stopping = True
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
            server.stopping = False
    for client in clients:
        client._stop_event.set()  # a TCP client has no process of its own to wait for
        await asyncio.wait_for(client.stop(), 10)


def report(args: argparse.Namespace, stdio: dict[str, Any], tcp: dict[str, Any]) -> dict[str, Any]:
    tally: Tally = stdio.pop("tally")
    tcp_tally: Tally = tcp.pop("tally")
    result: dict[str, Any] = {
        "model": str(args.model),
        "completion_cache": not args.no_cache,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "requests": tally.requests,
        "answered": tally.answered,
        "cancelled": tally.cancelled,
        "answered_after_cancel": tally.answered_after_cancel,
        "edits": tally.edits,
        "errors": tally.errors + tcp_tally.errors + stdio["warmup_errors"],
        "error_samples": tally.error_samples + tcp_tally.error_samples,
        "crashes": stdio["crashes"] + tcp["crashes"],
        "exit_codes": {"stdio": stdio["exit_code"], "tcp": tcp["exit_code"]},
        "server_log_errors": stdio["server_log_errors"] + tcp["server_log_errors"],
        "server_log_sample": stdio.pop("log_sample") + tcp.pop("log_sample"),
        "cancel_timing": tally.cancel_timing,
        "engine_cancelled": stdio["engine_cancelled"],
        "cancel_plan_ms": stdio["cancel_plan_ms"],
        "rss_start_mb": stdio["rss_start_mb"],
        "rss_end_mb": stdio["rss_end_mb"],
        "rss_growth_pct": stdio["rss_growth_pct"],
        "rss_mb_by_requests": stdio["rss_mb_by_requests"],
        "rss_growth_beyond_prefix_caches_pct": stdio["rss_growth_beyond_prefix_caches_pct"],
        "rss_growth_beyond_bounded_buffers_pct": stdio["rss_growth_beyond_bounded_buffers_pct"],
        "prefix_caches": stdio["prefix_caches"],
        "prefix_caches_mb_at_start": stdio["prefix_caches_mb_at_start"],
        "prefix_caches_growth_mb": stdio["prefix_caches_growth_mb"],
        "kv_written_mb_at_start": stdio["kv_written_mb_at_start"],
        "kv_written_growth_mb": stdio["kv_written_growth_mb"],
        "kv_buffers_mb": stdio["kv_buffers_mb"],
        "leaked_slots": stdio["leaked_slots"] + tcp["leaked_slots"],
        "stdio_p50_ms": round(percentile(tally.latencies_ms, 0.5), 1),
        "stdio_p95_ms": round(percentile(tally.latencies_ms, 0.95), 1),
        "stdio_wall_s": stdio["wall_s"],
        "warmup_requests": stdio["warmup_requests"],
        "p95_ms_under_8_clients": tcp["p95_ms"] if tcp["clients"] == 8 else None,
        "tcp": {
            "clients": tcp["clients"],
            "requests": tcp_tally.requests,
            "answered": tcp_tally.answered,
            "errors": tcp_tally.errors,
            "p50_ms": tcp["p50_ms"],
            "p95_ms": tcp["p95_ms"],
            "rss_start_mb": tcp["rss_start_mb"],
            "rss_end_mb": tcp["rss_end_mb"],
            "leaked_slots": tcp["leaked_slots"],
            "inter_key_delay_ms": [args.min_delay_ms, args.max_delay_ms],
        },
        "targets": {
            **TARGETS,
            "rss_growth_beyond_bounded_buffers_pct_at_most": RSS_GROWTH_TARGET_PCT,
        },
    }
    growth = result["rss_growth_beyond_bounded_buffers_pct"]
    result["meets_targets"] = all(result[key] <= value for key, value in TARGETS.items()) and (
        growth is not None and growth <= RSS_GROWTH_TARGET_PCT
    )
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flashcode-bench-reliability-") as workdir:
        stdio = await soak_stdio(args, Path(workdir))
        tcp = await soak_tcp(args, Path(workdir))
        return report(args, stdio, tcp)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode bench reliability", description=__doc__)
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--requests", type=int, default=10_000, help="stdio requests (measured)")
    parser.add_argument("--warmup", type=int, default=200, help="stdio requests before measuring")
    parser.add_argument("--tcp-clients", type=int, default=8)
    parser.add_argument("--tcp-requests", type=int, default=100, help="requests per TCP client")
    parser.add_argument("--min-delay-ms", type=float, default=50.0, help="TCP inter-key delay")
    parser.add_argument("--max-delay-ms", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-cache", action="store_true", help="switch the completion cache off (an ablation)"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if not args.json:
        for key in ("requests", "cancelled", "errors", "crashes", "leaked_slots"):
            print(f"{key:>24}: {result[key]}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
