"""Candidates (lsp_server.testgen.candidates, .subjects): what the cursor points at, which
candidates are worth running, and which passing ones are kept."""

from __future__ import annotations

import pytest

from lsp_server.testgen import candidates as building
from lsp_server.testgen.subjects import definition_near, subjects_at
from prompts.candidates import Candidate


def candidate(body: str, key: str = "", origin: str = "model", subject: str = "f") -> Candidate:
    return Candidate(subject, "case", body, origin, names=(), key=key or body)


def test_select_keeps_one_passing_test_per_behaviour() -> None:
    candidates = [
        candidate("assert f(1) == 3", key="f(1)"),
        candidate("assert f(1) == 2", key="f(1)"),
        candidate("assert f(1) == 2.0", key="f(1)"),
        candidate("assert f(2) == 4", key="f(2)", origin="structure"),
        candidate("assert f(0) == 0", key="f(0)", origin="docstring"),
    ]
    kept = building.select(candidates, [False, True, True, True, True])
    assert [c.body for c in kept] == ["assert f(1) == 2", "assert f(2) == 4", "assert f(0) == 0"]
    assert building.select(candidates, [True] * 5, per_subject=1) == [candidates[4]]


def test_candidates_that_do_not_compile_or_repeat_are_dropped_before_running() -> None:
    good, broken = candidate("assert f(1) == 2"), candidate("assert f(1) ==")
    assert building.dedupe([good, broken, good]) == [good]


@pytest.mark.parametrize("column", [0, 3, 8, 20])
def test_anywhere_on_a_def_line_means_that_definition(column: int) -> None:
    text = "class Box:\n    def open(self, force: bool = False) -> None:\n        pass\n"
    line_start = text.index("    def")
    found = definition_near(text, line_start + column)
    assert found is not None and found.qualified_name == "Box.open"
    assert definition_near("x = 1\n\ny = 2\n", 6) is None


def test_a_class_means_its_public_methods_each_with_the_class() -> None:
    text = (
        "class Box:\n    def __init__(self, n):\n        self.n = n\n\n"
        "    def open(self):\n        return 1\n\n    def _hidden(self):\n        return 2\n\n"
        "    async def close(self):\n        return 3\n"
    )
    box = definition_near(text, 0)
    assert box is not None
    subjects = subjects_at(text, box, "pkg.box")
    assert [s.label for s in subjects] == ["Box.open", "Box.close"]
    assert all(s.owner == box and s.import_name == "Box" for s in subjects)
