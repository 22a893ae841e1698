"""The "Generate unit tests" command without the protocol: checks, generation, write, words.

`prepare` turns what the editor sent (the source, the cursor's offset) into a `Job`, or refuses
with the sentence the user reads: not Python, a syntax error, no definition at the cursor, the
model still loading, a test file that cannot be written. `run` generates, then writes under a
lock per test file, planning again against the file as it is by then: two commands on the same
file must not both plan against the text neither has written yet. Reading and writing the test
file are handed in, since only the LSP edge knows whether the editor has it open and what the
editor can do; nothing here imports the protocol.
"""

from __future__ import annotations

import ast
import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lsp_server.backends.engine import GenerationEngine
from lsp_server.settings import Settings
from lsp_server.testgen.edits import TestFileEdit, check_writable
from lsp_server.testgen.generation import (
    GenerationResult,
    generate_tests,
    plan_for,
    summary_message,
)
from lsp_server.testgen.project import Project, TestGenError, locate_project
from lsp_server.testgen.sampling import EnginePicker, engine_for
from lsp_server.testgen.subjects import definition_near
from prompts.definitions import Definition
from prompts.languages import language_of

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "error"]
# The test file as the user has it: (text or None when it does not exist, editor version).
ReadTestFile = Callable[[Path], tuple[str | None, int | None]]
# Applies an edit planned against (text, version); returns why it was not applied, or None.
WriteTestFile = Callable[[TestFileEdit, str | None, int | None], Awaitable[str | None]]


@dataclass(frozen=True)
class Outcome:
    """What the user is told, and what was done when something was."""

    message: str
    severity: Severity
    result: GenerationResult | None = None  # None: refused before generating
    written: bool = False
    test_path: Path | None = None


class Refusal(Exception):
    """The command cannot run as asked; the message says why, in the user's terms."""

    def __init__(self, message: str, severity: Severity = "warning") -> None:
        super().__init__(message)
        self.outcome = Outcome(message, severity)


def bad_arguments(command: str) -> Outcome:
    return Outcome(f"{command} needs two arguments: a document URI and a position.", "error")


def unreadable(uri: str) -> Outcome:
    return Outcome(f"flashcode cannot read {uri}.", "error")


def failed(exc: Exception) -> Outcome:
    """A fault of ours: the user sees a sentence (the log keeps the traceback)."""
    return Outcome(f"flashcode could not generate tests: {exc}", "error")


@dataclass(frozen=True)
class Job:
    text: str
    definition: Definition
    project: Project
    engine: GenerationEngine
    existing: str | None  # the test file when the job was prepared
    settings: Settings

    @property
    def test_label(self) -> str:
        return self.project.relative(self.project.test_path)


def _syntax_error(text: str) -> str | None:
    try:
        ast.parse(text)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    return None


def prepare(
    text: str,
    language_id: str,
    path: str,
    offset: int | None,
    workspace_roots: Sequence[Path],
    engines: EnginePicker | None,
    settings: Settings,
    read: ReadTestFile,
) -> Job:
    """The job for the cursor at `offset` (None: outside the text); raises Refusal."""
    name = Path(path).name
    if language_of(language_id, path) != "python":
        raise Refusal(f"Generate unit tests works on Python files; {name} is not one.")
    if offset is None:
        raise Refusal(f"The position is outside {name}.", "error")
    problem = _syntax_error(text)
    if problem:
        raise Refusal(f"{name} has a syntax error ({problem}); fix it before generating tests.")
    definition = definition_near(text, offset)
    if definition is None:
        raise Refusal("Put the cursor on a function, method or class to generate tests for it.")
    if engines is None:
        raise Refusal("The flashcode model is still loading; try again in a moment.")
    try:
        project = locate_project(Path(path), workspace_roots, settings.tests.python)
    except TestGenError as exc:
        raise Refusal(f"Cannot generate tests: {exc}.") from None
    label = project.relative(project.test_path)
    unwritable = check_writable(project.test_path)
    if unwritable:
        raise Refusal(f"Cannot write tests to {label}: {unwritable}. Nothing was changed.", "error")
    existing, _ = read(project.test_path)
    engine = engine_for(engines, text, offset, settings.int8_complexity)
    return Job(text, definition, project, engine, existing, settings)


_locks: dict[Path, asyncio.Lock] = {}


def _lock(path: Path) -> asyncio.Lock:
    """One writer per test file: two commands must not plan against the same old text."""
    return _locks.setdefault(path, asyncio.Lock())


async def run(
    job: Job, progress: Callable[[str], None], read: ReadTestFile, write: WriteTestFile
) -> Outcome:
    """Generate, then write what passed into the test file as it is by then."""
    project, label, tests = job.project, job.test_label, job.settings.tests
    try:
        result = await generate_tests(
            job.engine,
            project,
            job.text,
            job.definition,
            job.existing,
            run_generated=tests.run_generated,
            timeout_s=tests.timeout_seconds,
            fim_override=job.settings.fim_template,
            progress=progress,
        )
        async with _lock(project.test_path):
            # The file may have changed while the tests were made: plan against it as it is.
            current, version = read(project.test_path)
            if current != job.existing:
                result = plan_for(result, project, current)
            summary = summary_message(result, label)
            written = False
            if result.edit is not None:
                progress(f"writing {label}")
                failure = check_writable(result.edit.path) or await write(
                    result.edit, current, version
                )
                if failure:
                    summary = (
                        f"flashcode generated {len(result.candidates)} tests but could not "
                        f"write {label}: {failure}. Nothing was changed."
                    )
                written = failure is None
    except TestGenError as exc:
        return Outcome(f"Cannot generate tests: {exc}.", "warning")
    log.info(
        "generated tests for %s: %d candidates, %d kept, verified=%s, model %.0f ms, run %.0f ms",
        job.definition.qualified_name,
        len(result.candidates),
        len(result.kept),
        result.verified,
        result.model_ms,
        result.run_ms,
    )
    return Outcome(summary, "info" if written else "warning", result, written, project.test_path)
