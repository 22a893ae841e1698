"""One generation (lsp_server.testgen.generation) with a fake model: candidates, the run, the
selection, the planned edit and the summary. tests/lsp/test_commands.py runs the real model."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from lsp_server.testgen import generation
from lsp_server.testgen.generation import GenerationResult
from lsp_server.testgen.project import locate_project
from prompts.definitions import definition_at
from tests.unit.fake_engine import FakeEngine


def generate(
    project_dir: Path,
    name: str,
    answer: str,
    run: bool = True,
    existing: str | None = None,
    engine: FakeEngine | None = None,
) -> tuple[GenerationResult, FakeEngine]:
    source = project_dir / "textkit" / "numbers.py"
    text = source.read_text()
    definition = definition_at(text, text.index(f"def {name}") + 5, "python")
    assert definition is not None
    project = locate_project(source)
    engine = engine or FakeEngine(answer)
    result = asyncio.run(
        generation.generate_tests(engine, project, text, definition, existing, run_generated=run)
    )
    return result, engine


def test_asking_twice_adds_nothing_twice(project_dir: Path) -> None:
    first, _ = generate(project_dir, "factorial", " 1")
    assert first.kept and first.edit is not None
    second, _ = generate(project_dir, "factorial", " 1", existing=first.edit.new_text)
    assert second.kept == [] and second.edit is None
    assert second.duplicates == len(first.kept)
    assert "already has them" in generation.summary_message(second, "tests/test_numbers.py")


def test_model_values_are_kept_only_when_they_pass(project_dir: Path) -> None:
    # clamp(2.5, 1.0, 10.0) is 2.5: the fake's answer is right for that call only.
    result, engine = generate(project_dir, "clamp", " 2.5")
    assert engine.requests and all(r.prompt_ids[0] == 1 for r in engine.requests)  # FIM
    model_kept = {c.body for c in result.kept if c.origin == "model"}
    model_all = {c.body for c in result.candidates if c.origin == "model"}
    assert "assert clamp(2.5, 1.0, 10.0) == 2.5" in model_kept
    assert "assert clamp(0.0, 1.0, 10.0) == 2.5" in model_all - model_kept  # wrong, so dropped
    assert result.verified and result.edit is not None and result.edit.create
    message = generation.summary_message(result, "tests/test_numbers.py")
    assert f"generated {len(result.candidates)} tests" in message
    assert f"{len(result.kept)} passed" in message
    assert re.search(rf"{len(model_kept)} tests? written by the model", message)


def test_every_prompt_and_its_answer_fit_the_engines_slot(project_dir: Path) -> None:
    # The slot, not the model's context, bounds a request: a long-context model's engine may
    # hold far fewer positions per request than the model was trained for.
    small = FakeEngine(" 1", max_length=200)
    result, engine = generate(project_dir, "clamp", " 1", run=False, engine=small)
    assert engine.requests and result.candidates
    assert all(len(r.prompt_ids) + r.max_new_tokens <= 200 for r in engine.requests)


def test_nothing_passing_says_so(project_dir: Path) -> None:
    result, _ = generate(project_dir, "is_even", " 12345")
    assert result.kept == [] and result.edit is None
    message = generation.summary_message(result, "tests/test_numbers.py")
    assert "none passed" in message and "nothing was written" in message


def test_switched_off_running_inserts_unverified(project_dir: Path) -> None:
    result, _ = generate(project_dir, "is_even", " 12345", run=False)
    assert not result.verified and result.kept
    message = generation.summary_message(result, "tests/test_numbers.py")
    assert "UNVERIFIED" in message and "switched off" in message
    assert result.edit is not None and os.path.basename(result.edit.path) == "test_numbers.py"


def test_a_chat_model_gets_messages_and_its_tests_are_run(project_dir: Path) -> None:
    source = project_dir / "textkit" / "numbers.py"
    text = source.read_text()
    definition = definition_at(text, text.index("def is_even") + 5, "python")
    assert definition is not None
    reply = (
        "```python\nfrom textkit.numbers import is_even\n\n"
        "def test_even():\n    assert is_even(4) is True\n\n"
        "def test_odd():\n    assert is_even(3) is True\n```"
    )
    engine = FakeEngine(reply)
    engine.tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    )
    engine.tokenizer.special_tokens.update({"<|im_start|>": 4, "<|im_end|>": 5})
    project = locate_project(source)
    result = asyncio.run(generation.generate_tests(engine, project, text, definition, None))
    (request,) = engine.requests
    assert request.prompt_ids[0] == 4 and 5 in request.prompt_ids  # special tokens, not text
    assert [c.body for c in result.kept] == ["assert is_even(4) is True"]
    assert len(result.candidates) == 2


def test_unittest_projects_get_test_cases_run_by_unittest(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = calc\n")
    (tmp_path / "calc.py").write_text(
        "def double(x: int) -> int:\n    if x < 0:\n        raise ValueError(x)\n    return 2 * x\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_other.py").write_text(
        "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_x(self):\n        pass\n"
    )
    text = (tmp_path / "calc.py").read_text()
    definition = definition_at(text, 5, "python")
    assert definition is not None
    project = locate_project(tmp_path / "calc.py")
    assert project.framework == "unittest"
    result = asyncio.run(
        generation.generate_tests(FakeEngine(" 10"), project, text, definition, None)
    )
    assert result.edit is not None
    written = result.edit.new_text
    assert written.startswith("import unittest\nfrom calc import double\n")
    assert "class TestDouble(unittest.TestCase):" in written
    assert "self.assertRaises(ValueError)" in written
    assert "assert double(5) == 10" in written


def test_replanning_against_a_changed_file_keeps_the_new_text(project_dir: Path) -> None:
    first, _ = generate(project_dir, "factorial", " 1")
    project = locate_project(project_dir / "textkit" / "numbers.py")
    changed = "import pytest\n\n\ndef test_mine():\n    assert True\n"
    again = generation.plan_for(first, project, changed)
    assert again.edit is not None and again.edit.new_text.startswith(changed.split("\n\n\n")[0])
    assert "def test_mine():\n    assert True\n" in again.edit.new_text
    assert len(again.kept) == len(first.kept)
