"""`flashcode bench commands`: "Generate unit tests" and "Insert docstring" over the sample project.

A copy of tests/fixtures/sample_project is the workspace of a real server over stdio. For every
public function and method of the sample, the client runs `flashcode.generateTests` at its `def`
line and applies the returned workspace edits to disk, as an editor would; the test files
written are then run once more with pytest, outside the server, and only tests that pass there
count. For every function, method and class without a docstring, the client asks for the
"Insert docstring" action, resolves it, and checks which parameters the inserted docstring
documents in the style the server detected.

Reported:
- tests_generated, tests_kept: candidates made and kept by the server (its own claim);
- tests_passing: generated tests that pass in the final test files (checked here);
- functions_with_a_passing_test: share of the public functions with at least one passing test;
  functions_with_a_passing_model_test counts only tests whose expected values the model wrote;
- kept_by_origin: model / docstring (examples in the code) / structure (raised exceptions);
- docstring_params_covered: share of parameters the inserted docstrings document;
  docstring_descriptions_from_model: share of docstring lines whose description the model wrote
  (the rest fell back to descriptions made from names);
- generate_tests_p50_ms, docstring_p50_ms: client round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.server import BenchServer
from inference.router import default_model_dir
from lsp_server.testgen.subjects import definition_near
from prompts.definitions import definition_at
from prompts.docstrings import doc_fields, documented_parameters, fallback_description

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "sample_project"
TARGETS = {"functions_with_a_passing_test": 0.5, "docstring_params_covered": 1.0}


# --- what an editor does with workspace/applyEdit ----------------------------------------------


def _offset(text: str, position: types.Position) -> int:
    lines = text.split("\n")
    line = lines[position.line] if position.line < len(lines) else ""
    column = len(line.encode("utf-16-le")[: position.character * 2].decode("utf-16-le"))
    return sum(len(item) + 1 for item in lines[: position.line]) + column


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    for edit in sorted(edits, key=lambda e: _offset(text, e.range.start), reverse=True):
        start, end = _offset(text, edit.range.start), _offset(text, edit.range.end)
        text = text[:start] + edit.new_text + text[end:]
    return text


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def apply_workspace_edit(edit: types.WorkspaceEdit) -> None:
    """Apply a workspace edit to files on disk (file:// URIs), refusing to replace a file."""
    for change in edit.document_changes or []:
        if isinstance(change, types.CreateFile):
            path = _path(change.uri)
            if path.exists():
                raise FileExistsError(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        elif isinstance(change, types.TextDocumentEdit):
            path = _path(change.text_document.uri)
            edits = [e for e in change.edits if isinstance(e, types.TextEdit)]
            path.write_text(apply_text_edits(path.read_text(), edits))
    for uri, changes in (edit.changes or {}).items():
        path = _path(uri)
        path.write_text(apply_text_edits(path.read_text(), list(changes)))


CAPABILITIES = types.ClientCapabilities(
    workspace=types.WorkspaceClientCapabilities(
        apply_edit=True,
        workspace_edit=types.WorkspaceEditClientCapabilities(
            document_changes=True,
            resource_operations=[types.ResourceOperationKind.Create],
        ),
    ),
    text_document=types.TextDocumentClientCapabilities(
        code_action=types.CodeActionClientCapabilities(
            data_support=True,
            resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"]),
        )
    ),
)


# --- the sample -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    path: Path  # the module file in the workspace copy
    line: int  # the `def` / `class` line (0-based)
    name: str  # qualified: "clamp", "Inventory.add"
    kind: str  # "function" | "method" | "class"
    has_docstring: bool
    parameters: tuple[str, ...]  # as a docstring names them: "*args", "quantity"


def targets(workspace: Path) -> list[Target]:
    found = []
    for path in sorted((workspace / "textkit").glob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"^([ \t]*)(?:def|class)[ \t]+(\w+)", text, re.M):
            if match.group(2).startswith("_"):
                continue
            offset = match.start() + len(match.group(1)) + 4
            definition = definition_at(text, offset, "python")
            if definition is None:
                continue
            params = tuple(f.name for f in doc_fields(definition) if f.key.startswith("param:"))
            found.append(
                Target(
                    path,
                    text.count("\n", 0, match.start()),
                    definition.qualified_name,
                    definition.kind,
                    definition.docstring is not None,
                    params,
                )
            )
    return found


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Tally:
    results: list[dict[str, Any]] = field(default_factory=list)
    test_ms: list[float] = field(default_factory=list)
    docstring_ms: list[float] = field(default_factory=list)
    params_total: int = 0
    params_documented: int = 0
    description_lines: int = 0
    model_descriptions: int = 0
    messages: list[str] = field(default_factory=list)


def _passing_tests(workspace: Path) -> tuple[set[str], str]:
    """Names ("test_numbers.py::test_x") of the tests that pass in the workspace's tests/."""
    report = workspace / "junit.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    passed: set[str] = set()
    if report.is_file():
        for case in ElementTree.parse(report).iter("testcase"):
            if not any(child.tag in ("failure", "error", "skipped") for child in case):
                module = case.get("classname", "").rsplit(".", 1)[-1]
                passed.add(f"{module}.py::{case.get('name')}")
    return passed, run.stdout[-2000:]


async def _docstring(client: LanguageClient, target: Target, uri: str, tally: Tally) -> None:
    position = types.Position(line=target.line, character=0)
    started = time.perf_counter()
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    action = next((a for a in actions or [] if isinstance(a, types.CodeAction)), None)
    if action is None:
        tally.messages.append(f"no docstring action offered for {target.name}")
        tally.params_total += len(target.parameters)
        return
    resolved = await client.code_action_resolve_async(action)
    tally.docstring_ms.append((time.perf_counter() - started) * 1000)
    inserted = ""
    if resolved.edit and resolved.edit.document_changes:
        change = resolved.edit.document_changes[0]
        if isinstance(change, types.TextDocumentEdit) and change.edits:
            first = change.edits[0]
            inserted = first.new_text if isinstance(first, types.TextEdit) else ""
    text = target.path.read_text()
    definition = definition_near(text, _offset(text, position))
    style = "numpy"  # the sample's style; the server must have detected it
    documented = documented_parameters(inserted, target.parameters, style)
    tally.params_total += len(target.parameters)
    tally.params_documented += len(documented)
    if definition is not None:
        for doc_field in doc_fields(definition):
            tally.description_lines += 1
            if fallback_description(doc_field, definition) not in inserted:
                tally.model_descriptions += 1


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workspace = Path(tempfile.mkdtemp(prefix="flashcode-bench-commands-")) / "sample_project"
    shutil.copytree(SAMPLE, workspace, ignore=shutil.ignore_patterns("__pycache__"))
    server = BenchServer("flashcode-bench-commands")
    client = await server.start(args.model)
    tally = Tally()

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(_: LanguageClient, params: types.ShowMessageParams) -> None:
        tally.messages.append(params.message)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def on_apply(
        _: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        apply_workspace_edit(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    await client.initialize_async(
        types.InitializeParams(
            capabilities=CAPABILITIES,
            root_uri=workspace.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="sample")],
            initialization_options={"flashcode": {"tests": {"timeoutSeconds": 60}}},
        )
    )
    client.initialized(types.InitializedParams())
    await server.wait_ready()
    started = time.perf_counter()
    all_targets = targets(workspace)
    functions = [t for t in all_targets if t.kind in ("function", "method")]
    opened: dict[Path, str] = {}

    def open_file(path: Path) -> str:
        uri = path.as_uri()
        if path not in opened:
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="python", version=1, text=path.read_text()
                    )
                )
            )
            opened[path] = uri
        return uri

    for target in all_targets:
        if not target.has_docstring:
            await _docstring(client, target, open_file(target.path), tally)
    for target in functions:
        uri = open_file(target.path)
        began = time.perf_counter()
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="flashcode.generateTests",
                arguments=[uri, {"line": target.line, "character": 4}],
            )
        )
        tally.test_ms.append((time.perf_counter() - began) * 1000)
        answer = result if isinstance(result, dict) else getattr(result, "_asdict", dict)()
        tally.results.append({"target": target, **answer})
    passing, pytest_tail = _passing_tests(workspace)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    wall = time.perf_counter() - started

    generated = sum(int(r.get("generated") or 0) for r in tally.results)
    kept = sum(int(r.get("kept") or 0) for r in tally.results)
    origins: dict[str, int] = {}
    with_test = with_model_test = passing_generated = 0
    for result in tally.results:
        module = f"test_{result['target'].path.stem}.py"
        names = [n.split(".")[-1] for n in result.get("tests") or []]
        ok = [n for n in names if f"{module}::{n}" in passing]
        passing_generated += len(ok)
        with_test += bool(ok)
        counts = result.get("origins") or {}
        counts = counts if isinstance(counts, dict) else counts._asdict()
        for origin, count in counts.items():
            origins[origin] = origins.get(origin, 0) + int(count)
        with_model_test += bool(ok) and bool(counts.get("model"))
    report: dict[str, Any] = {
        "model": str(args.model),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "functions": len(functions),
        "tests_generated": generated,
        "tests_kept": kept,
        "tests_passing": passing_generated,
        "functions_with_a_passing_test": round(with_test / max(1, len(functions)), 3),
        "functions_with_a_passing_model_test": round(with_model_test / max(1, len(functions)), 3),
        "kept_by_origin": origins,
        "generate_tests_p50_ms": round(statistics.median(tally.test_ms), 1)
        if tally.test_ms
        else None,
        "generate_tests_max_ms": round(max(tally.test_ms), 1) if tally.test_ms else None,
        "docstrings": len(tally.docstring_ms),
        "docstring_params_covered": round(tally.params_documented / max(1, tally.params_total), 3),
        "docstring_descriptions_from_model": round(
            tally.model_descriptions / max(1, tally.description_lines), 3
        ),
        "docstring_p50_ms": _p50(tally.docstring_ms),
        "per_function": [
            {
                "name": r["target"].name,
                "generated": r.get("generated"),
                "kept": r.get("kept"),
                "message": r.get("message"),
            }
            for r in tally.results
        ],
        "wall_s": round(wall, 1),
        "targets": TARGETS,
    }
    report["meets_targets"] = all(report[key] >= value for key, value in TARGETS.items())
    if args.keep:
        report["workspace"] = str(workspace)
    else:
        shutil.rmtree(workspace.parent, ignore_errors=True)
    if args.verbose:
        report["pytest_tail"] = pytest_tail
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="flashcode bench commands", description=__doc__)
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--keep", action="store_true", help="keep the workspace copy")
    parser.add_argument("--verbose", action="store_true", help="add pytest's output")
    parser.add_argument("--json", action="store_true", help="print only the JSON report")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args))
    if not args.json:
        for key in (
            "tests_generated",
            "tests_passing",
            "functions_with_a_passing_test",
            "docstring_params_covered",
            "generate_tests_p50_ms",
        ):
            print(f"{key:>32}: {report[key]}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
