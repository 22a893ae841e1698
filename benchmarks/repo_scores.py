"""Scoring `flashcode eval repo`'s outcomes: the copy peer's answers, exact match, edit
similarity, answered share, latency percentiles, empty reasons and the rules that changed answers.

Every case counts and an empty answer scores 0, so a completer that answers less cannot look
better by it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.lsp import percentile
from benchmarks.repo_cases import KINDS, Case, Project, copy_peer, edit_similarity, exact_match


@dataclass(frozen=True)
class Outcome:
    case: Case
    answer: str  # the first item's insertText, "" for none
    latency_ms: float
    empty_reason: str = ""  # why the answer was empty, as the server says
    changed_by: tuple[str, ...] = ()  # post-processing rules that changed the answer shown
    # "path:line" of the snippets of other files in the prompt (flashcode/stats); None: no prompt
    # of ours (the copy peer)
    snippets: tuple[str, ...] | None = None


def peer_outcomes(cases: Sequence[Case], projects: dict[str, Project]) -> list[Outcome]:
    texts = {
        name: {p: project.read(p) for p in project.files} for name, project in projects.items()
    }
    outcomes = []
    for case in cases:
        others = [text for path, text in texts[case.project].items() if path != case.path]
        started = time.perf_counter()
        answer = copy_peer(case.prefix, case.suffix, others)
        latency_ms = (time.perf_counter() - started) * 1000
        outcomes.append(Outcome(case, answer, latency_ms, "" if answer else "no-match"))
    return outcomes


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The scores of a set of outcomes: every case counts, an empty answer scores 0."""
    count = len(outcomes)
    if not count:
        return {"cases": 0}
    answered = [o for o in outcomes if o.answer]
    similarities = [edit_similarity(o.answer, o.case.expected) for o in outcomes]
    latencies = [o.latency_ms for o in outcomes if not math.isnan(o.latency_ms)]
    return {
        "cases": count,
        "answered_share": round(len(answered) / count, 3),
        "exact_match": round(
            sum(exact_match(o.answer, o.case.expected) for o in outcomes) / count, 3
        ),
        "edit_similarity": round(statistics.fmean(similarities), 3),
        # Of the answers shown: how close what the user saw was.
        "edit_similarity_answered": round(
            statistics.fmean(edit_similarity(o.answer, o.case.expected) for o in answered), 3
        )
        if answered
        else None,
        # Of the requests the server answered (a case that broke has no latency).
        "latency_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "latency_p95_ms": round(percentile(latencies, 0.95), 1) if latencies else None,
        "empty_reasons": dict(
            Counter(o.empty_reason for o in outcomes if not o.answer).most_common()
        ),
        # Answers shown after a rule changed them, and of those, how many were then exact.
        "changed_by_rule": {
            rule: {
                "shown": sum(1 for o in answered if rule in o.changed_by),
                "exact": sum(
                    1
                    for o in answered
                    if rule in o.changed_by and exact_match(o.answer, o.case.expected)
                ),
            }
            for rule in sorted({r for o in answered for r in o.changed_by})
        },
        **_snippet_share(outcomes),
    }


def _snippet_share(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """The share of prompts that held snippets of other files (retrieval's reach)."""
    prompts = [o for o in outcomes if o.snippets is not None]
    if not prompts:
        return {}
    return {
        "prompts_with_snippets": round(sum(bool(o.snippets) for o in prompts) / len(prompts), 3)
    }


def report(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    result = {"overall": summarize(outcomes)}
    for kind in KINDS:
        result[kind] = summarize([o for o in outcomes if o.case.kind == kind])
    return result


def detail(flash: Outcome, peer: Outcome) -> dict[str, Any]:
    case = flash.case
    return {
        "id": case.id,
        "project": case.project,
        "path": case.path,
        "line": case.line + 1,
        "column": case.column,
        "kind": case.kind,
        "typed": case.prefix[case.prefix.rfind("\n") + 1 :],
        "expected": case.expected,
        "flashcode": flash.answer,
        "flashcode_ms": round(flash.latency_ms, 1),
        "empty_reason": flash.empty_reason,
        "changed_by": list(flash.changed_by),
        "copy_peer": peer.answer,
        "snippets": list(flash.snippets or ()),
    }
