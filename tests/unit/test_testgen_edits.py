"""Edit planning (lsp_server.testgen.edits): where generated tests go in the test file, as
offsets and text, and whether it can be written."""

from __future__ import annotations

import errno
import stat
from pathlib import Path
from typing import TextIO

import pytest

from lsp_server.testgen import edits
from prompts.candidates import Candidate


def test_new_test_file_gets_imports_and_tests() -> None:
    kept = [
        Candidate("f", "example", "assert f(1) == 2", "docstring", names=("f",)),
        Candidate(
            "f", "raises", "with pytest.raises(ValueError):\n    f(-1)", "structure", True, ("f",)
        ),
    ]
    edit = edits.plan_edit(Path("tests/test_m.py"), None, "pkg.m", kept, "pytest")
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
    edit = edits.plan_edit(Path("t.py"), existing, "pkg.m", kept, "pytest")
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
    edit = edits.plan_edit(Path("t.py"), existing, "pkg.m", kept, "pytest")
    assert len(edit.insertions) == 1 and edit.insertions[0][0] == len(existing)
    assert edit.new_text.startswith(existing)


def test_read_only_targets_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "tests" / "test_x.py"
    assert edits.check_writable(target) is None  # can be created
    target.parent.mkdir()
    target.write_text("")
    assert edits.check_writable(target) is None
    target.chmod(stat.S_IRUSR)
    assert "read-only" in (edits.check_writable(target) or "")
    target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    target.unlink()
    target.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert "cannot be created" in (edits.check_writable(target) or "")
    finally:
        target.parent.chmod(stat.S_IRWXU)


def test_a_file_created_here_never_replaces_one_that_appeared(tmp_path: Path) -> None:
    kept = [Candidate("f", "case", "assert f(1) == 2", "model", names=("f",))]
    target = tmp_path / "tests" / "test_m.py"
    edit = edits.plan_edit(target, None, "pkg.m", kept, "pytest")
    assert edits.create_file(edit) is None
    assert target.read_text() == edit.new_text
    target.write_text("# mine\n")
    assert "could not create" in (edits.create_file(edit) or "")
    assert target.read_text() == "# mine\n"


def test_a_full_disk_leaves_no_half_written_test_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = [Candidate("f", "case", "assert f(1) == 2", "model", names=("f",))]
    target = tmp_path / "tests" / "test_m.py"
    edit = edits.plan_edit(target, None, "pkg.m", kept, "pytest")

    def half_then_full(out: TextIO, text: str) -> None:
        out.write(text[: len(text) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(edits, "write_text", half_then_full)
    message = edits.create_file(edit) or ""
    assert "could not create" in message and "No space left" in message
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind either
