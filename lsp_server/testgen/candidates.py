"""Candidate tests for the subjects, and which of the passing ones are kept.

Three sources: the docstring's examples and the exceptions the body raises (structural, no
model), and the model. A base model fills holes by fill-in-the-middle in a unittest module built
from the structure (the expected value of a call, or one assertion line); a chat model (its
tokenizer has a chat template) writes whole tests from the chat prompt. A candidate that does not
compile is dropped before it costs a test run; after the run, one passing test per behaviour is
kept, docstring examples first since the code's author wrote them.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable, Iterable, Sequence

from inference.scheduler import GenerationRequest
from lsp_server.backends.engine import GenerationEngine
from lsp_server.testgen.sampling import DEFAULT_SAMPLING, Sampling, hole_prompter, sample_holes
from prompts.calls import calls_for
from prompts.candidates import (
    Candidate,
    assertion_candidate,
    chat_candidates,
    clean_assertion,
    clean_expected,
    docstring_candidates,
    model_candidate,
    raises_candidates,
)
from prompts.holes import encode_with_specials, holes_for
from prompts.structured import StructuredPrompt, TestSubject, render_chat
from prompts.testfile import render_tests

MAX_KEPT_PER_SUBJECT = 6
ORIGIN_RANK = {"docstring": 0, "model": 1, "structure": 2}  # who is kept first


def structural_candidates(subjects: Sequence[TestSubject], framework: str) -> list[Candidate]:
    """The candidates that need no model: docstring examples and error cases."""
    candidates: list[Candidate] = []
    for subject in subjects:
        calls = calls_for(subject)
        candidates += docstring_candidates(subject, calls)
        candidates += raises_candidates(subject, calls, framework)
    return candidates


async def _chat_candidates(
    engine: GenerationEngine,
    subjects: Sequence[TestSubject],
    prompt: StructuredPrompt,
    chat_template: str,
    sampling: Sampling,
) -> list[Candidate]:
    """Whole tests from a chat model, in one answer that fits the engine's slot."""
    tokenizer = engine.tokenizer
    slot = engine.max_length
    ids = encode_with_specials(tokenizer, render_chat(prompt.messages(), chat_template))
    room = max(64, min(sampling.chat_tokens, slot - len(ids) - 1))
    result = await engine.generate(
        GenerationRequest(
            prompt_ids=tuple(ids[-(slot - room) :]),
            max_new_tokens=room,
            stop_token_ids=frozenset(tokenizer.eos_token_ids),
            deadline_s=sampling.deadline_s * 2,
        )
    )
    return chat_candidates(result.text, {s.import_name: s.label for s in subjects})


async def propose(
    engine: GenerationEngine,
    subjects: Sequence[TestSubject],
    prompt: StructuredPrompt,
    framework: str,
    test_file_label: str,
    sampling: Sampling = DEFAULT_SAMPLING,
    fim_override: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> list[Candidate]:
    """Every candidate for `subjects`: docstring examples, error cases, and the model's."""
    candidates = structural_candidates(subjects, framework)
    chat_template = engine.tokenizer.chat_template
    if chat_template:
        progress("asking the model for tests")
        return candidates + await _chat_candidates(
            engine, subjects, prompt, chat_template, sampling
        )
    prompter = hole_prompter(engine, sampling.assertion_tokens, fim_override)
    holes = holes_for(prompt, test_file_label, subjects)
    jobs = [
        sample_holes(
            engine,
            prompter,
            hole.prefix,
            hole.suffix,
            sampling.value_tokens if hole.call is not None else sampling.assertion_tokens,
            sampling,
        )
        for hole in holes
    ]
    progress(f"asking the model for {len(jobs)} expected values")
    answers = await asyncio.gather(*jobs)
    for hole, texts in zip(holes, answers, strict=True):
        for text in texts:
            if hole.call is not None:
                expected = clean_expected(text, hole.call, hole.subject)
                if expected is not None:
                    candidates.append(
                        model_candidate(hole.subject, hole.call, expected, hole.call.case)
                    )
            else:
                line = clean_assertion(text, hole.stub, hole.subject)
                if line is not None:
                    candidates.append(assertion_candidate(hole.subject, hole.stub, line))
    return candidates


def compiles(candidate: Candidate) -> bool:
    code, _ = render_tests([candidate], "pytest", set())
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def dedupe(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Each (subject, body) once, and only candidates that compile."""
    seen: set[tuple[str, str]] = set()
    result = []
    for candidate in candidates:
        if (candidate.subject, candidate.body) not in seen and compiles(candidate):
            seen.add((candidate.subject, candidate.body))
            result.append(candidate)
    return result


def select(
    candidates: Sequence[Candidate], passed: Sequence[bool], per_subject: int = MAX_KEPT_PER_SUBJECT
) -> list[Candidate]:
    """One passing test per (subject, behaviour), at most `per_subject` per subject.

    Docstring examples come first, then the model's tests, then the structural error cases.
    """
    order = sorted(range(len(candidates)), key=lambda i: ORIGIN_RANK.get(candidates[i].origin, 3))
    kept: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    bodies: set[str] = set()
    per: dict[str, int] = {}
    for i in order:
        candidate = candidates[i]
        key = (candidate.subject, candidate.key or candidate.body)
        if not passed[i] or key in seen or candidate.body in bodies:
            continue
        if per.get(candidate.subject, 0) >= per_subject:
            continue
        seen.add(key)
        bodies.add(candidate.body)
        per[candidate.subject] = per.get(candidate.subject, 0) + 1
        kept.append(candidate)
    return sorted(kept, key=lambda c: candidates.index(c))
