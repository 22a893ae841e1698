"""`flashcode eval repo`: completion quality on real projects, through the real server, as an
editor gets it. Prints JSON.

For every case (benchmarks/repo_cases.py: the projects, the holes, the copy peer) a fresh server
is started over stdio with a fresh cache directory, on a scratch copy of the project laid out as
a workspace folder without the file under test (`rootUri` and `workspaceFolders` in initialize).
The file is opened as a buffer with the hole in it (`textDocument/didOpen`), the client waits
for `flashcode/status` "ready" and for the server's background pass over the workspace to end
(as a user who opens a project and starts typing a few seconds later), then sends one
`textDocument/inlineCompletion` with trigger kind Automatic, as typed. Nothing carries over from
one case to the next: no server, no cache, no open document, so a hole's own line can never be
learned from an earlier case of the same file. The server runs on its default settings: the
user's FLASHCODE_* variables and config file are kept out.

Latency is from sending that request to its answer. Before it, one warm-up request on a buffer
of its own (not from any project, closed again) pays the one-off costs of a process's first
model call, which an editor's user pays once per session, not per keystroke; measured here they
double the p50 (`--no-warmup` measures the first request instead). `--cursor-rest` then lets
the cursor rest at the hole first (`flashcode/cursor`, as the Neovim and VS Code clients send
it) until the warm prefill of that prompt has run: the latency of a user who places the cursor
and pauses before typing, against the default's request out of the blue. After the measured request,
`flashcode/stats` tells why an empty answer was empty (`lastEmptyReason`: the name of the
post-processing rule that emptied it, or "not-ready", "mid-line-filter", "cache-empty",
"model-empty"; "model-error" when the model failed to load).

Holes are scored as what the user sees: the first line of the suggestion, leading
blanks included, against the removed rest of the line; every case counts, an empty answer as a
miss with similarity 0. `--details FILE` writes each case's hole and answers as JSON lines.

The copy-only peer (repo_cases.copy_peer) is scored on the same cases with the same metrics:
exact match and edit similarity of the first line, answered share. Its latency is its own
compute time in this process.

`--jobs N` runs N cases at once; keep the default 1 on a small machine, since concurrent servers
share the cores and the latency figures would measure that instead.

Ablations (issue 11) switch one part off through the server's own settings, so that its gain is
measured against its absence on the same cases (same `--seed`): `--no-healing` starts every
server with `FLASHCODE_TOKEN_HEALING=0` (the prompt then only leaves out a trailing space, and
nothing is forced); `--no-workspace`, `--no-mixing` and `--no-retrieval` switch off the workspace
index, decode-time mixing and the retrieval of workspace snippets into the prompt
(`FLASHCODE_WORKSPACE__RETRIEVAL=off`); `--retrieval bm25|jaccard` picks the retrieval's scorer.
Until the workspace index is wired, retrieval reads the workspace folder itself
(lsp_server/completion/retrieval_step.py's fallback), so it is measured here already.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.repo_cases import (
    DEFAULT_PROJECTS,
    Case,
    Project,
    build_cases,
    build_workspace,
    find_project,
)
from benchmarks.repo_scores import Outcome, detail, peer_outcomes, report
from inference.router import default_model_dir

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 300.0
WORKSPACE_PASS_TIMEOUT_S = 120.0
POLL_S = 0.05
WARM_TIMEOUT_S = 10.0
INDEX_START_GRACE_S = 2.0
STOP_TIMEOUT_S = 10.0
CASE_TIMEOUT_S = 600.0  # a case that takes longer counts as an error, and the run goes on
# The warm-up request's buffer: not from any project, closed before the measured request.
WARMUP_PATH = "flashcode_warmup.py"
WARMUP_TEXT = "def add(a, b):\n    return "


def _plain(value: Any) -> Any:
    """pygls hands custom-method results over as named tuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class CaseServer:
    """One fresh server over stdio for one case, started on its workspace as an editor would."""

    def __init__(self) -> None:
        self.client = LanguageClient("flashcode-eval-repo", "1")
        self.state = asyncio.Event()  # set on "ready" or "error"
        self.final_state = ""

        @self.client.feature("flashcode/status")
        def on_status(_: LanguageClient, params: Any) -> None:
            state = getattr(params, "state", "")
            if state in ("ready", "error"):
                self.final_state = state
                self.state.set()

    async def start(
        self, model: Path, cache: Path, cwd: Path, settings: dict[str, str] | None = None
    ) -> None:
        # Default settings: none of the user's FLASHCODE_* variables, no user config file; only
        # an ablation's own `settings` (FLASHCODE_* variables) change them.
        env = {key: value for key, value in os.environ.items() if not key.startswith("FLASHCODE_")}
        env |= settings or {}
        env |= {
            "PYTHONPATH": os.pathsep.join(
                part for part in (str(ROOT), os.environ.get("PYTHONPATH", "")) if part
            ),
            "FLASHCODE_CACHE__DIRECTORY": str(cache),
            "FLASHCODE_CONFIG": str(cwd / "no-config.json"),
        }
        # cwd is the scratch folder, not the workspace: `python -m` puts the working directory
        # first on sys.path, and the workspace's copy of jinja2 must not shadow the installed one.
        await self.client.start_io(
            sys.executable, "-m", "lsp_server", "--model", str(model), "--log-level", "warning",
            env=env, cwd=str(cwd),
        )  # fmt: skip

    async def stats(self) -> dict[str, Any]:
        result = await self.client.protocol.send_request_async("flashcode/stats", {})
        plain: dict[str, Any] = _plain(result)
        return plain

    async def wait_for_workspace_pass(self) -> None:
        """Until the background passes over the workspace's files have ended (or never
        started): the pattern pass and the retrieval index's build."""
        deadline = time.perf_counter() + WORKSPACE_PASS_TIMEOUT_S
        while time.perf_counter() < deadline:
            stats = await self.stats()
            learning = stats.get("cache", {}).get("workspace")
            indexing = stats.get("retrieval", {}).get("indexing", False)
            if (learning is None or learning.get("done")) and not indexing:
                return
            await asyncio.sleep(POLL_S)

    async def wait_for_workspace_index(self) -> None:
        """Until the workspace index is built, as it is soon after a user opens a project (or it
        is switched off, or failed)."""
        started = time.perf_counter()
        while time.perf_counter() < started + WORKSPACE_PASS_TIMEOUT_S:
            state = ((await self.stats()).get("workspaceIndex") or {}).get("state", "off")
            if state in ("ready", "failed", "closed"):
                return
            # "off": switched off, or about to start now that the model is ready
            if state == "off" and time.perf_counter() - started > INDEX_START_GRACE_S:
                return
            await asyncio.sleep(POLL_S)

    async def rest_cursor(self, uri: str, line: int, character: int) -> None:
        """The cursor rests at the hole, as Neovim's CursorHold and VS Code's settled selection
        tell the server (`flashcode/cursor`), and the user reads for as long as the warm
        prefill of that prompt takes (up to WARM_TIMEOUT_S) before typing on."""
        before = (await self.stats()).get("warm", {})
        settled = before.get("warmed", 0) + before.get("dropped", 0)
        self.client.protocol.notify(
            "flashcode/cursor",
            {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}},
        )
        deadline = time.perf_counter() + WARM_TIMEOUT_S
        while time.perf_counter() < deadline:
            now = (await self.stats()).get("warm", {})
            if now.get("warmed", 0) + now.get("dropped", 0) > settled:
                return
            await asyncio.sleep(POLL_S)

    async def stop(self) -> None:
        """Shut down as an editor does; a server that does not answer in time is killed."""
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), STOP_TIMEOUT_S)
            self.client.exit(None)
        except Exception:
            process = getattr(self.client, "_server", None)  # pygls keeps no public handle
            if process is not None and process.returncode is None:
                process.kill()
        await self.client.stop()


async def inline_completion(
    client: LanguageClient, uri: str, line: int, character: int
) -> tuple[str, float]:
    """The first item's text ("" for none) of an as-typed request, and its latency in ms."""
    sent = time.perf_counter()
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    latency_ms = (time.perf_counter() - sent) * 1000
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    if items and isinstance(items[0].insert_text, str):
        return items[0].insert_text, latency_ms
    return "", latency_ms


async def warm_up(client: LanguageClient, folder: Path) -> None:
    """One request on a buffer of its own, closed again: the first model call of a process
    pays one-off costs that an editor's user pays once per session, not per keystroke."""
    uri = (folder / WARMUP_PATH).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=WARMUP_TEXT
            )
        )
    )
    last = WARMUP_TEXT.split("\n")[-1]
    await inline_completion(client, uri, WARMUP_TEXT.count("\n"), len(last))
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


async def run_case(
    case: Case,
    project: Project,
    model: Path,
    warmup: bool,
    settings: dict[str, str] | None = None,
    cursor_rest: bool = False,
) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="flashcode-eval-repo-") as scratch_name:
        scratch = Path(scratch_name)
        workspace = build_workspace(project, case.path, scratch / "workspace")
        server = CaseServer()
        try:
            await server.start(model, scratch / "cache", scratch, settings)
            return await asyncio.wait_for(
                ask(server, case, project, workspace, scratch, warmup, cursor_rest),
                CASE_TIMEOUT_S,
            )
        except Exception as exc:  # one broken case must not cost the run: it counts as empty
            return Outcome(case, "", float("nan"), f"error: {type(exc).__name__}")
        finally:
            await server.stop()


async def ask(
    server: CaseServer,
    case: Case,
    project: Project,
    workspace: Path,
    scratch: Path,
    warmup: bool,
    cursor_rest: bool = False,
) -> Outcome:
    """Initialize on the workspace, open the buffer, wait as an editor's user does, then ask."""
    client = server.client
    root_uri = workspace.as_uri()
    await client.initialize_async(
        types.InitializeParams(
            process_id=os.getpid(),
            root_uri=root_uri,
            workspace_folders=[types.WorkspaceFolder(uri=root_uri, name=project.name)],
            capabilities=types.ClientCapabilities(
                workspace=types.WorkspaceClientCapabilities(workspace_folders=True)
            ),
        )
    )
    client.initialized(types.InitializedParams())
    uri = (workspace / case.workspace_path).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=case.text
            )
        )
    )
    # On a timeout it asks anyway: the answer is then empty, counted as "not-ready".
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.state.wait(), READY_TIMEOUT_S)
    await server.wait_for_workspace_pass()
    await server.wait_for_workspace_index()
    if warmup:
        await warm_up(client, scratch)
    line_start = case.prefix.rfind("\n") + 1
    character = len(case.prefix[line_start:].encode("utf-16-le")) // 2
    if cursor_rest:
        await server.rest_cursor(uri, case.line, character)
    changed_before = (await server.stats()).get("completions", {}).get("changedByRule", {})
    answer, latency_ms = await inline_completion(client, uri, case.line, character)
    report = await server.stats()
    completions = report.get("completions", {})
    changed_after = completions.get("changedByRule", {})
    changed = tuple(r for r, n in changed_after.items() if n > changed_before.get(r, 0))
    reason = ""
    if not answer:
        reason = completions.get("lastEmptyReason") or "unreported"
        if server.final_state == "error":
            reason = "model-error"
    snippets = tuple(report.get("retrieval", {}).get("lastSnippets", ()))
    return Outcome(case, answer, latency_ms, reason, changed, snippets)


async def run_all(
    cases: Sequence[Case],
    projects: dict[str, Project],
    model: Path,
    jobs: int,
    warmup: bool,
    settings: dict[str, str] | None = None,
    cursor_rest: bool = False,
) -> list[Outcome]:
    semaphore = asyncio.Semaphore(jobs)
    done = 0

    async def one(case: Case) -> Outcome:
        nonlocal done
        async with semaphore:
            outcome = await run_case(
                case, projects[case.project], model, warmup, settings, cursor_rest
            )
        done += 1
        print(f"\r{done}/{len(cases)} cases", end="", file=sys.stderr, flush=True)
        return outcome

    outcomes = await asyncio.gather(*(one(case) for case in cases))
    print(file=sys.stderr)
    return list(outcomes)


# Each part an ablation can switch off, and the server setting that does it, with its value.
ABLATIONS = {
    "healing": ("FLASHCODE_TOKEN_HEALING", "0"),
    "mixing": ("FLASHCODE_WORKSPACE__MIXING", "0"),
    "workspace": ("FLASHCODE_WORKSPACE__ENABLED", "0"),
    "retrieval": ("FLASHCODE_WORKSPACE__RETRIEVAL", "off"),
}
RETRIEVAL_VARIABLE = ABLATIONS["retrieval"][0]
RETRIEVAL_SCORERS = ("bm25", "jaccard")  # `--retrieval`: the servers' scorer instead of the default


def ablation_settings(off: Sequence[str], retrieval: str | None = None) -> dict[str, str]:
    """The FLASHCODE_* variables that switch the ablated parts off in every case's server, and
    that choose its retrieval scorer when `retrieval` names one."""
    settings = dict(ABLATIONS[part] for part in off)
    if retrieval is not None and "retrieval" not in off:
        settings[RETRIEVAL_VARIABLE] = retrieval
    return settings


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode eval repo", description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=300, help="holes in all (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--projects",
        default=",".join(DEFAULT_PROJECTS),
        help="installed packages to take holes from, comma-separated (import names)",
    )
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--jobs", type=int, default=1, help="servers at once (default 1)")
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="measure the first request a server answers, one-off costs included",
    )
    parser.add_argument(
        "--cursor-rest",
        action="store_true",
        help="before the request, the cursor rests at the hole (flashcode/cursor) until the "
        "warm prefill of its prompt ends, as in an editor whose user pauses before typing",
    )
    for part, (variable, value) in ABLATIONS.items():
        parser.add_argument(
            f"--no-{part}", action="store_true", help=f"ablation: servers with {variable}={value}"
        )
    parser.add_argument(
        "--retrieval",
        choices=RETRIEVAL_SCORERS,
        help=f"servers with {RETRIEVAL_VARIABLE} set to this scorer (default: the server's)",
    )
    parser.add_argument("--details", type=Path, help="also write every case's answers here (JSONL)")
    parser.add_argument(
        "--json", action="store_true", help="print JSON only (the default output too)"
    )
    args = parser.parse_args(list(argv))
    if args.cases < 1 or args.jobs < 1:
        parser.error("--cases and --jobs must be at least 1")
    if not args.model.is_dir():
        parser.error(f"--model {args.model} is not a model directory")
    try:
        chosen = [find_project(name.strip()) for name in args.projects.split(",") if name.strip()]
        cases = build_cases(chosen, args.cases, args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    projects = {project.name: project for project in chosen}
    off = [part for part in ABLATIONS if getattr(args, f"no_{part}")]
    if args.retrieval and args.no_retrieval:
        parser.error("--retrieval and --no-retrieval exclude each other")
    settings = ablation_settings(off, args.retrieval)
    started = time.perf_counter()
    flash = asyncio.run(
        run_all(
            cases, projects, args.model, args.jobs, not args.no_warmup, settings, args.cursor_rest
        )
    )
    peer = peer_outcomes(cases, projects)
    result = {
        "config": {
            "projects": [project.describe() for project in chosen],
            "cases": len(cases),
            "by_kind": dict(Counter(case.kind for case in cases)),
            "seed": args.seed,
            "model": str(args.model),
            "jobs": args.jobs,
            "holes": "mid-line: a random column, the rest of the line removed; whole-line: "
            "after the indentation, the line removed; the rest of the file stays",
            "server": "a fresh server and cache directory per case, default settings"
            + "".join(f", {key}={value}" for key, value in settings.items()),
            "ablations": {part: part not in off for part in ABLATIONS},
            "warmup": not args.no_warmup,
            "cursor_rest": args.cursor_rest,
            "wall_s": round(time.perf_counter() - started, 1),
        },
        "flashcode": report(flash),
        "copy_peer": report(peer),
    }
    if args.details:
        with args.details.open("w", encoding="utf-8") as out:
            for flash_outcome, peer_outcome in zip(flash, peer, strict=True):
                out.write(json.dumps(detail(flash_outcome, peer_outcome)) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
