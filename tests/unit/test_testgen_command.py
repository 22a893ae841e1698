"""The "Generate unit tests" command without a server (lsp_server.testgen.command): what it
refuses and how it says so, and how it writes into a test file that changed meanwhile. The
model is a fake; tests/lsp/test_commands.py drives the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lsp_server import settings as config
from lsp_server.testgen import command, edits
from tests.unit.fake_engine import FakeEngine, FakeEngines


class TestFiles:
    """The test files as an editor would have them, and the edits it was asked to apply."""

    __test__ = False  # a helper, not a test class

    def __init__(self) -> None:
        self.texts: dict[Path, str] = {}
        self.applied: list[edits.TestFileEdit] = []

    def read(self, path: Path) -> tuple[str | None, int | None]:
        return self.texts.get(path), None

    async def write(
        self, edit: edits.TestFileEdit, existing: str | None, version: int | None
    ) -> None:
        assert existing == self.texts.get(edit.path), "planned against the text as it is"
        self.applied.append(edit)
        self.texts[edit.path] = edit.new_text


def prepare(
    source: Path,
    text: str | None = None,
    needle: str = "def ",
    engines: FakeEngines | None = None,
    files: TestFiles | None = None,
    language_id: str = "python",
    settings: config.Settings | None = None,
) -> command.Job:
    text = source.read_text() if text is None else text
    offset = text.index(needle) if needle in text else None
    return command.prepare(
        text,
        language_id,
        str(source),
        offset,
        [],
        engines if engines is not None else FakeEngines(FakeEngine(" 1")),
        settings or config.Settings(),
        (files or TestFiles()).read,
    )


@pytest.mark.parametrize(
    ("name", "text", "needle", "language_id", "severity", "words"),
    [
        ("README.md", "# notes\n", "#", "markdown", "warning", "works on Python files"),
        ("f.py", "def f():\n    return 1\n", "nowhere", "python", "error", "outside"),
        ("f.py", "def f(x):\n    return x /\n", "def", "python", "warning", "error (line 2"),
        ("f.py", "import re\n\nx = 1\n", "x =", "python", "warning", "Put the cursor on"),
    ],
)
def test_what_cannot_be_done_is_refused_with_a_sentence(
    project_dir: Path,
    name: str,
    text: str,
    needle: str,
    language_id: str,
    severity: str,
    words: str,
) -> None:
    source = project_dir / "textkit" / name
    with pytest.raises(command.Refusal) as refused:
        prepare(source, text, needle, language_id=language_id)
    assert refused.value.outcome.severity == severity
    assert words in refused.value.outcome.message


def test_a_model_still_loading_is_told_not_waited_for(project_dir: Path) -> None:
    source = project_dir / "textkit" / "numbers.py"
    text = source.read_text()
    with pytest.raises(command.Refusal, match="still loading"):
        command.prepare(
            text,
            "python",
            str(source),
            text.index("def factorial"),
            [],
            None,
            config.Settings(),
            TestFiles().read,
        )


def test_an_unwritable_test_file_is_refused_before_the_model_runs(project_dir: Path) -> None:
    (project_dir / "tests").chmod(0o500)
    engines = FakeEngines(FakeEngine(" 1"))
    try:
        with pytest.raises(command.Refusal) as refused:
            prepare(project_dir / "textkit" / "numbers.py", engines=engines)
    finally:
        (project_dir / "tests").chmod(0o700)
    assert refused.value.outcome.severity == "error"
    assert "Nothing was changed" in refused.value.outcome.message
    assert not engines.engine.requests


def test_tests_are_written_into_the_file_as_it_is_by_then(project_dir: Path) -> None:
    source = project_dir / "textkit" / "numbers.py"
    files = TestFiles()
    engines = FakeEngines(FakeEngine(" 1"))
    job = prepare(source, needle="def factorial", engines=engines, files=files)
    assert engines.picked, "the engine is chosen by the code's complexity"
    # The user writes a test of their own while the model works.
    mine = "import pytest\n\n\ndef test_mine():\n    assert True\n"
    files.texts[job.project.test_path] = mine
    progress: list[str] = []
    outcome = asyncio.run(command.run(job, progress.append, files.read, files.write))
    assert outcome.written and outcome.severity == "info"
    assert outcome.result is not None and outcome.result.kept
    written = files.texts[job.project.test_path]
    assert written.startswith("import pytest\nfrom textkit.numbers import factorial\n")
    assert "\n\n\ndef test_mine():\n    assert True\n" in written, "the user's test is kept"
    assert progress[-1] == "writing tests/test_numbers.py"
    assert f"{len(outcome.result.kept)} passed" in outcome.message


def test_an_edit_the_editor_refuses_is_reported(project_dir: Path) -> None:
    settings = config.Settings(tests=config.TestSettings(run_generated=False))
    job = prepare(project_dir / "textkit" / "numbers.py", settings=settings)

    async def refuse(edit: edits.TestFileEdit, existing: str | None, version: int | None) -> str:
        return "the editor did not apply the edit"

    outcome = asyncio.run(command.run(job, lambda _: None, TestFiles().read, refuse))
    assert not outcome.written and outcome.severity == "warning"
    assert "could not write tests/test_numbers.py" in outcome.message
    assert "Nothing was changed" in outcome.message
