"""`flashcode complete FILE --line L --character C`: one completion from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_server.cli import cursor_offset
from tests.conftest import ROOT, e2e_model_dir
from tests.lsp import harness

REPR = harness.REPR + "\n"


def test_cursor_offset_counts_lines_and_columns_from_zero() -> None:
    text = "ab\ncd\r\n\nlast"
    assert cursor_offset(text, 0, 0) == 0
    assert cursor_offset(text, 1, 2) == text.index("\r")
    assert cursor_offset(text, 2, 0) == text.index("\nlast")
    assert cursor_offset(text, 3, 4) == len(text)


@pytest.mark.parametrize(
    ("line", "character", "message"),
    [
        (4, 0, "line 4 is outside the file (lines 0 to 3)"),
        (-1, 0, "line -1 is outside the file"),
        (1, 3, "column 3 is outside line 1 (columns 0 to 2)"),
        (0, -2, "column -2 is outside line 0"),
    ],
)
def test_a_cursor_outside_the_file_is_named(line: int, character: int, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cursor_offset("ab\ncd\r\n\nlast", line, character)


def run_complete(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FLASHCODE_CACHE__DIRECTORY": str(tmp_path / "cache"),  # never the user's cache
        "FLASHCODE_MODEL_PATH": str(e2e_model_dir()),
    }
    return subprocess.run(
        [sys.executable, "-c", "from lsp_server.cli import main; main()", "complete", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_complete_prints_the_models_suggestion(tmp_path: Path) -> None:
    source = tmp_path / "user.py"
    source.write_text(REPR)
    run = run_complete(tmp_path, str(source), "--line", "5", "--character", "15")
    assert run.returncode == 0, run.stderr
    suggestion = run.stdout.rstrip("\n")
    assert suggestion.strip(), "the default model completes a __repr__ return"
    assert "\n" not in suggestion  # the rest of one line, as the editor would show it
    compile(REPR.replace("return \n", f"return {suggestion}\n"), "user.py", "exec")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--line", "9", "--character", "0"], "line 9 is outside the file"),
        (["--line", "4", "--character", "40"], "column 40 is outside line 4"),
    ],
)
def test_a_bad_cursor_is_a_clear_error_not_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    source = tmp_path / "user.py"
    source.write_text(REPR)
    run = run_complete(tmp_path, str(source), *args)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert source.read_text() == REPR


def test_a_missing_or_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = run_complete(tmp_path, str(tmp_path / "gone.py"), "--line", "0", "--character", "0")
    assert missing.returncode == 2 and "No such file" in missing.stderr
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    run = run_complete(tmp_path, str(binary), "--line", "0", "--character", "0")
    assert run.returncode == 2 and "utf-8" in run.stderr and "Traceback" not in run.stderr
