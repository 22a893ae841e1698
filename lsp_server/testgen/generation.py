"""One generation: candidates for a definition, run, the passing ones planned into the test file.

`generate_tests` does the slow part once; `plan_for` is cheap, so when the test file changed
while the model and the run were busy, the edit is planned again against the file as it is now
(leaving out tests it already has) instead of generating again. `summary_message` is the
sentence the user reads at the end: how many were generated and kept, from where, and why
nothing was written when nothing was.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lsp_server.backends.engine import GenerationEngine
from lsp_server.testgen.candidates import dedupe, propose, select
from lsp_server.testgen.edits import TestFileEdit, already_there, plan_edit
from lsp_server.testgen.project import Project, TestGenError
from lsp_server.testgen.runner import RunReport, run_candidates
from lsp_server.testgen.sampling import DEFAULT_SAMPLING, Sampling
from lsp_server.testgen.subjects import subjects_at
from prompts.candidates import Candidate
from prompts.definitions import Definition
from prompts.holes import unittest_class_name
from prompts.structured import build_test_prompt


@dataclass
class GenerationResult:
    subjects: list[str]
    candidates: list[Candidate]
    kept: list[Candidate]
    verified: bool  # the kept tests were run and passed
    edit: TestFileEdit | None
    problem: str = ""  # from the run, when nothing could be judged
    weaker_isolation: str = ""  # what the run's walls lacked, for the user; "" for none
    duplicates: int = 0  # passing tests left out because the test file already has them
    passing: list[Candidate] = field(default_factory=list)  # selected, before leaving those out
    model_ms: float = 0.0
    run_ms: float = 0.0

    def by_origin(self, candidates: Iterable[Candidate]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for candidate in candidates:
            counts[candidate.origin] = counts.get(candidate.origin, 0) + 1
        return counts


async def generate_tests(
    engine: GenerationEngine,
    project: Project,
    text: str,
    definition: Definition,
    existing_test: str | None,
    run_generated: bool = True,
    timeout_s: float = 60,
    sampling: Sampling = DEFAULT_SAMPLING,
    fim_override: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> GenerationResult:
    """Candidates for the definition, run (unless switched off), the passing ones planned in."""
    subjects = subjects_at(text, definition, project.module)
    if not subjects:
        raise TestGenError(f"{definition.name} has no public methods to test")
    prompt = build_test_prompt(
        subjects,
        project.framework,
        project.relative(project.source_path),
        project.relative(project.example_path) if project.example_path else None,
        project.example_text,
    )
    started = time.perf_counter()
    candidates = await propose(
        engine,
        subjects,
        prompt,
        project.framework,
        project.relative(project.test_path),
        sampling,
        fim_override,
        progress,
    )
    candidates = dedupe(candidates)
    model_ms = (time.perf_counter() - started) * 1000
    labels = [s.label for s in subjects]
    if run_generated:
        progress(f"running {len(candidates)} candidate tests")
        passed, report = await run_candidates(project, candidates, timeout_s)
    else:
        passed, report = [True] * len(candidates), RunReport()
    result = GenerationResult(
        labels,
        candidates,
        select(candidates, passed),
        run_generated,
        None,
        problem=report.problem,
        weaker_isolation=report.isolation.weaker() if run_generated else "",
        model_ms=model_ms,
        run_ms=report.seconds * 1000,
    )
    return plan_for(result, project, existing_test)


def plan_for(result: GenerationResult, project: Project, existing: str | None) -> GenerationResult:
    """The result with its edit planned against `existing` (the test file as it is now),
    leaving out the tests the file already has."""
    passing = result.passing or result.kept
    fresh = [c for c in passing if not already_there(c, existing)]
    class_name = unittest_class_name(result.subjects[0] if result.subjects else "")
    edit = None
    if fresh:
        edit = plan_edit(
            project.test_path, existing, project.module, fresh, project.framework, class_name
        )
    return dataclasses.replace(
        result, kept=fresh, edit=edit, duplicates=len(passing) - len(fresh), passing=passing
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def summary_message(result: GenerationResult, test_file: str) -> str:
    """What the user is told at the end: how many were generated and kept, and from where."""
    what = ", ".join(result.subjects[:3]) + ("..." if len(result.subjects) > 3 else "")
    generated = f"generated {_count(len(result.candidates), 'test')} for {what}"
    if not result.candidates:
        return (
            f"flashcode generated no test for {what}: the model's answers were not usable code "
            "and the code has no docstring examples or raised exceptions to test. "
            "Nothing was written."
        )
    if not result.verified:
        if not result.kept:
            return f"flashcode {generated}; none was usable, so nothing was written."
        return (
            f"flashcode {generated} and inserted {len(result.kept)} into {test_file} "
            "UNVERIFIED: running generated tests is switched off "
            "(flashcode.tests.runGenerated), so none of them was run."
        )
    if not result.kept and result.duplicates:
        return (
            f"flashcode {generated}; {result.duplicates} passed, but {test_file} already has "
            "them, so nothing was written."
        )
    if not result.kept:
        reason = f" ({result.problem})" if result.problem else ""
        return f"flashcode {generated}; none passed{reason}, so nothing was written."
    origins = result.by_origin(result.kept)
    parts = [
        _count(origins[key], noun) + suffix
        for key, noun, suffix in (
            ("model", "test", " written by the model"),
            ("docstring", "example", " from the docstring"),
            ("structure", "error check", " from the raised exceptions"),
        )
        if origins.get(key)
    ]
    kept = len(result.kept)
    weaker = f" {result.weaker_isolation}" if result.weaker_isolation else ""
    return (
        f"flashcode {generated}; {kept} passed and {'was' if kept == 1 else 'were'} added to "
        f"{test_file} ({', '.join(parts)}).{weaker}"
    )
