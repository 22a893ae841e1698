"""Test generation logic (lsp_server.testgen): project layout, the sandboxed run, selection and
the edit. The model is a fake here; tests/lsp/test_commands.py runs the real one."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lsp_server import testgen
from prompts.candidates import Candidate
from prompts.definitions import definition_at
from tests.conftest import ROOT

SAMPLE = ROOT / "tests" / "fixtures" / "sample_project"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def candidate(body: str, key: str = "", origin: str = "model", subject: str = "f") -> Candidate:
    return Candidate(subject, "case", body, origin, names=(), key=key or body)


def test_module_names_for_flat_src_and_package_layouts(tmp_path: Path) -> None:
    assert testgen.module_name(tmp_path / "pkg" / "mod.py", tmp_path) == (tmp_path, "pkg.mod")
    assert testgen.module_name(tmp_path / "src" / "pkg" / "__init__.py", tmp_path) == (
        tmp_path / "src",
        "pkg",
    )
    with pytest.raises(testgen.TestGenError, match="cannot be imported"):
        testgen.module_name(tmp_path / "my-scripts" / "run.py", tmp_path)


def test_locate_project_finds_root_tests_framework_and_example(project_dir: Path) -> None:
    project = testgen.locate_project(project_dir / "textkit" / "numbers.py")
    assert project.root == project_dir.resolve()
    assert project.module == "textkit.numbers"
    assert project.test_path == project_dir.resolve() / "tests" / "test_numbers.py"
    assert project.framework == "pytest"
    assert project.example_path is not None and project.example_path.name == "test_strings.py"


def test_unittest_projects_and_their_virtual_environment(tmp_path: Path) -> None:
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = x\n")
    (tmp_path / "lib.py").write_text("def f():\n    return 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_other.py").write_text(
        "import unittest\n\n\nclass T(unittest.TestCase):\n    pass\n"
    )
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text("")
    project = testgen.locate_project(tmp_path / "lib.py")
    assert project.framework == "unittest"
    assert project.python == str(venv_python)
    assert testgen.locate_project(tmp_path / "lib.py", python="/opt/py").python == "/opt/py"


def test_new_test_file_gets_imports_and_tests() -> None:
    kept = [
        Candidate("f", "example", "assert f(1) == 2", "docstring", names=("f",)),
        Candidate(
            "f", "raises", "with pytest.raises(ValueError):\n    f(-1)", "structure", True, ("f",)
        ),
    ]
    edit = testgen.plan_edit(Path("tests/test_m.py"), None, "pkg.m", kept, "pytest")
    assert edit.create
    assert edit.new_text.startswith("import pytest\nfrom pkg.m import f\n\n\ndef test_f_example():")
    assert edit.test_names == ("test_f_example", "test_f_raises")


def test_existing_test_file_only_gains_lines() -> None:
    existing = (
        '"""Tests."""\n\nimport pytest\nfrom pkg.m import g\n\n\ndef test_f_case():\n    pass\n'
    )
    kept = [
        Candidate("f", "case", "assert f(1) == 2", "model", names=("f",)),
        Candidate(
            "f", "raises", "with pytest.raises(KeyError):\n    f(0)", "structure", True, ("f",)
        ),
    ]
    edit = testgen.plan_edit(Path("t.py"), existing, "pkg.m", kept, "pytest")
    assert not edit.create
    assert edit.insertions[0][1] == "from pkg.m import f\n"
    assert edit.insertions[0][0] == existing.index("\n\n\ndef") + 1
    assert "test_f_case_2" in edit.test_names, "the existing test_f_case is never shadowed"
    rebuilt = edit.new_text
    for _, text in edit.insertions:
        rebuilt = rebuilt.replace(text, "", 1)
    assert rebuilt == existing
    assert edit.new_text.count("import pytest") == 1
    compile(edit.new_text, "t.py", "exec")


def test_broken_existing_file_is_appended_to_only() -> None:
    existing = "def test_x(:\n"
    kept = [Candidate("f", "case", "assert f(1) == 2", "model", names=("f",))]
    edit = testgen.plan_edit(Path("t.py"), existing, "pkg.m", kept, "pytest")
    assert len(edit.insertions) == 1 and edit.insertions[0][0] == len(existing)
    assert edit.new_text.startswith(existing)


def test_select_keeps_one_passing_test_per_behaviour() -> None:
    candidates = [
        candidate("assert f(1) == 3", key="f(1)"),
        candidate("assert f(1) == 2", key="f(1)"),
        candidate("assert f(1) == 2.0", key="f(1)"),
        candidate("assert f(2) == 4", key="f(2)", origin="structure"),
        candidate("assert f(0) == 0", key="f(0)", origin="docstring"),
    ]
    kept = testgen.select(candidates, [False, True, True, True, True])
    assert [c.body for c in kept] == ["assert f(1) == 2", "assert f(2) == 4", "assert f(0) == 0"]
    assert testgen.select(candidates, [True] * 5, per_subject=1) == [candidates[4]]


def test_run_keeps_passing_tests_and_isolates_the_rest(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHCODE_FAKE_SECRET", "do-not-leak")
    project = testgen.locate_project(project_dir / "textkit" / "numbers.py")
    candidates = [
        Candidate("clamp", "ok", "assert clamp(5, 0, 3) == 3", "model", names=("clamp",)),
        Candidate("clamp", "wrong", "assert clamp(5, 0, 3) == 4", "model", names=("clamp",)),
        Candidate("clamp", "loops", "while True:\n    pass", "model"),
        Candidate(
            "clamp",
            "network",
            "import socket\nsocket.create_connection(('127.0.0.1', 9))",
            "model",
        ),
        Candidate(
            "clamp", "env", "import os\nassert 'FLASHCODE_FAKE_SECRET' not in os.environ", "model"
        ),
        Candidate("clamp", "cwd", "open('side_effect.txt', 'w').write('x')", "model"),
    ]
    passed, report = asyncio.run(testgen.run_candidates(project, candidates, timeout_s=20))
    # The endless loop is stopped by the per-test limit and the others still run.
    assert passed == [True, False, False, False, True, True], report.output
    assert not (project_dir / "side_effect.txt").exists()
    assert not list(project_dir.rglob("test_flashcode_candidates.py"))


def test_import_errors_are_reported_not_hidden(project_dir: Path) -> None:
    project = testgen.locate_project(project_dir / "textkit" / "numbers.py")
    broken = Candidate("nope", "x", "assert nope() == 1", "model", names=("nope",))
    passed, report = asyncio.run(testgen.run_candidates(project, [broken], timeout_s=20))
    assert passed == [False]
    assert "could not be imported" in report.problem and "nope" in report.problem


def test_read_only_targets_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "tests" / "test_x.py"
    assert testgen.check_writable(target) is None  # can be created
    target.parent.mkdir()
    target.write_text("")
    assert testgen.check_writable(target) is None
    target.chmod(stat.S_IRUSR)
    assert "read-only" in (testgen.check_writable(target) or "")
    target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    target.unlink()
    target.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert "cannot be created" in (testgen.check_writable(target) or "")
    finally:
        target.parent.chmod(stat.S_IRWXU)


# --- the whole command with a fake model ------------------------------------------------------


@dataclass
class FakeResult:
    text: str


@dataclass
class FakeTokenizer:
    special_tokens: dict[str, int] = field(
        default_factory=lambda: {"<|fim_prefix|>": 1, "<|fim_suffix|>": 2, "<|fim_middle|>": 3}
    )
    eos_token_ids: frozenset[int] = frozenset({0})
    chat_template: str | None = None

    def encode(self, text: str) -> list[int]:
        return [ord(c) % 200 + 10 for c in text]

    def token_id(self, name: str) -> int | None:
        return self.special_tokens.get(name)


@dataclass
class FakeModel:
    context_length: int = 4096


@dataclass
class FakeEngine:
    """Answers every hole with the same text, and records how many requests it got."""

    answer: str
    tokenizer: FakeTokenizer = field(default_factory=FakeTokenizer)
    model: FakeModel = field(default_factory=FakeModel)
    requests: list[Any] = field(default_factory=list)

    async def generate(self, request: Any) -> FakeResult:
        self.requests.append(request)
        return FakeResult(self.answer)


def generate(
    project_dir: Path, name: str, answer: str, run: bool = True, existing: str | None = None
) -> Any:
    source = project_dir / "textkit" / "numbers.py"
    text = source.read_text()
    definition = definition_at(text, text.index(f"def {name}") + 5, "python")
    assert definition is not None
    project = testgen.locate_project(source)
    engine = FakeEngine(answer)
    result = asyncio.run(
        testgen.generate_tests(engine, project, text, definition, existing, run_generated=run)
    )
    return result, engine


def test_asking_twice_adds_nothing_twice(project_dir: Path) -> None:
    first, _ = generate(project_dir, "factorial", " 1")
    assert first.kept and first.edit is not None
    second, _ = generate(project_dir, "factorial", " 1", existing=first.edit.new_text)
    assert second.kept == [] and second.edit is None
    assert second.duplicates == len(first.kept)
    assert "already has them" in testgen.summary_message(second, "tests/test_numbers.py")


@pytest.mark.parametrize("column", [0, 3, 8, 20])
def test_anywhere_on_a_def_line_means_that_definition(column: int) -> None:
    text = "class Box:\n    def open(self, force: bool = False) -> None:\n        pass\n"
    line_start = text.index("    def")
    found = testgen.definition_near(text, line_start + column)
    assert found is not None and found.qualified_name == "Box.open"
    assert testgen.definition_near("x = 1\n\ny = 2\n", 6) is None


def test_model_values_are_kept_only_when_they_pass(project_dir: Path) -> None:
    # clamp(2.5, 1.0, 10.0) is 2.5: the fake's answer is right for that call only.
    result, engine = generate(project_dir, "clamp", " 2.5")
    assert engine.requests and all(r.prompt_ids[0] == 1 for r in engine.requests)  # FIM
    model_kept = {c.body for c in result.kept if c.origin == "model"}
    model_all = {c.body for c in result.candidates if c.origin == "model"}
    assert "assert clamp(2.5, 1.0, 10.0) == 2.5" in model_kept
    assert "assert clamp(0.0, 1.0, 10.0) == 2.5" in model_all - model_kept  # wrong, so dropped
    assert result.verified and result.edit is not None and result.edit.create
    message = testgen.summary_message(result, "tests/test_numbers.py")
    assert f"generated {len(result.candidates)} tests" in message
    assert f"{len(result.kept)} passed" in message
    assert re.search(rf"{len(model_kept)} tests? written by the model", message)


def test_nothing_passing_says_so(project_dir: Path) -> None:
    result, _ = generate(project_dir, "is_even", " 12345")
    assert result.kept == [] and result.edit is None
    message = testgen.summary_message(result, "tests/test_numbers.py")
    assert "none passed" in message and "nothing was written" in message


def test_switched_off_running_inserts_unverified(project_dir: Path) -> None:
    result, _ = generate(project_dir, "is_even", " 12345", run=False)
    assert not result.verified and result.kept
    message = testgen.summary_message(result, "tests/test_numbers.py")
    assert "UNVERIFIED" in message and "switched off" in message
    assert os.path.basename(str(result.edit.path)) == "test_numbers.py"


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
    project = testgen.locate_project(source)
    result = asyncio.run(testgen.generate_tests(engine, project, text, definition, None))
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
    project = testgen.locate_project(tmp_path / "calc.py")
    assert project.framework == "unittest"
    result = asyncio.run(testgen.generate_tests(FakeEngine(" 10"), project, text, definition, None))
    assert result.edit is not None
    written = result.edit.new_text
    assert written.startswith("import unittest\nfrom calc import double\n")
    assert "class TestDouble(unittest.TestCase):" in written
    assert "self.assertRaises(ValueError)" in written
    assert "assert double(5) == 10" in written


def test_replanning_against_a_changed_file_keeps_the_new_text(project_dir: Path) -> None:
    first, _ = generate(project_dir, "factorial", " 1")
    project = testgen.locate_project(project_dir / "textkit" / "numbers.py")
    changed = "import pytest\n\n\ndef test_mine():\n    assert True\n"
    again = testgen.plan_for(first, project, changed)
    assert again.edit is not None and again.edit.new_text.startswith(changed.split("\n\n\n")[0])
    assert "def test_mine():\n    assert True\n" in again.edit.new_text
    assert len(again.kept) == len(first.kept)


def test_a_run_past_its_time_limit_is_stopped(project_dir: Path) -> None:
    project = testgen.locate_project(project_dir / "textkit" / "numbers.py")
    stubborn = Candidate(
        "clamp",
        "hangs",
        "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(60)",
        "model",
    )
    passed, report = asyncio.run(testgen.run_candidates(project, [stubborn], timeout_s=3))
    assert passed == [False]
    assert report.problem == "the test run took longer than 3s and was stopped"
