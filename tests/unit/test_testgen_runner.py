"""The sandboxed run (lsp_server.testgen.runner and the sandbox script it starts): passing tests
are told from the rest, and a candidate cannot reach the network, the server's environment, the
project's files or run for ever."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import socket
import sys
from pathlib import Path

import pytest

from lsp_server.testgen import isolation, runner, sandbox
from lsp_server.testgen.project import locate_project
from prompts.candidates import Candidate


def test_run_keeps_passing_tests_and_isolates_the_rest(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASHCODE_FAKE_SECRET", "do-not-leak")
    project = locate_project(project_dir / "textkit" / "numbers.py")
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
    passed, report = asyncio.run(runner.run_candidates(project, candidates, timeout_s=20))
    # The endless loop is stopped by the per-test limit and the others still run.
    assert passed == [True, False, False, False, True, True], report.output
    assert not (project_dir / "side_effect.txt").exists()
    assert not list(project_dir.rglob("test_flashcode_candidates.py"))


def test_import_errors_are_reported_not_hidden(project_dir: Path) -> None:
    project = locate_project(project_dir / "textkit" / "numbers.py")
    broken = Candidate("nope", "x", "assert nope() == 1", "model", names=("nope",))
    passed, report = asyncio.run(runner.run_candidates(project, [broken], timeout_s=20))
    assert passed == [False]
    assert "could not be imported" in report.problem and "nope" in report.problem


def test_a_run_past_its_time_limit_is_stopped(project_dir: Path) -> None:
    project = locate_project(project_dir / "textkit" / "numbers.py")
    stubborn = Candidate(
        "clamp",
        "hangs",
        "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(60)",
        "model",
    )
    passed, report = asyncio.run(runner.run_candidates(project, [stubborn], timeout_s=3))
    assert passed == [False]
    assert report.problem == "the test run took longer than 3s and was stopped"


def test_the_projects_modules_win_over_the_sandboxs_neighbours(tmp_path: Path) -> None:
    # The sandbox runs from inside lsp_server/testgen/, next to project.py and runner.py: a
    # project with its own `project` module must still import that one.
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = p\n")
    (tmp_path / "project.py").write_text("def name():\n    return 'mine'\n")
    found = locate_project(tmp_path / "project.py")
    test = Candidate("name", "x", "assert name() == 'mine'", "model", names=("name",))
    for framework in ("pytest", "unittest"):
        project = dataclasses.replace(found, framework=framework)
        passed, report = asyncio.run(runner.run_candidates(project, [test], timeout_s=20))
        assert passed == [True], (framework, report.problem, report.output)


def test_the_sandbox_runs_on_an_interpreter_without_flashcode() -> None:
    source = runner.SANDBOX_SCRIPT.read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 7))  # the project's Python may be old
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    # pytest comes from the project, and only when it uses pytest.
    assert imported - {"pytest", "__future__"} <= set(sys.stdlib_module_names), imported
    assert runner.SANDBOX_SCRIPT.samefile(sandbox.__file__)


def test_a_test_that_takes_too_much_memory_or_disk_fails_without_harm(project_dir: Path) -> None:
    project = locate_project(project_dir / "textkit" / "numbers.py")
    greedy = [
        Candidate("clamp", "memory", "data = bytearray(10 * 2**30)\nassert data", "model"),
        Candidate(
            "clamp",
            "disk",
            "with open('big.bin', 'wb') as out:\n    out.write(bytes(2**20) * 100)",
            "model",
        ),
        Candidate("clamp", "ok", "assert clamp(5, 0, 3) == 3", "model", names=("clamp",)),
    ]
    passed, report = asyncio.run(runner.run_candidates(project, greedy, timeout_s=20))
    assert passed == [False, False, True], report.output
    assert "MemoryError" in report.outcomes[next(iter(report.outcomes))].message


def test_a_test_that_goes_around_pythons_socket_block_still_has_no_network(
    project_dir: Path,
) -> None:
    if not isolation.available().network:
        pytest.skip("this machine gives processes no network namespace of their own")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    project = locate_project(project_dir / "textkit" / "numbers.py")
    # The C-level socket type, which the sandbox's patch of socket.socket does not reach.
    around = Candidate(
        "clamp",
        "raw",
        f"import _socket\nraw = _socket.socket()\nraw.connect(('127.0.0.1', {port}))",
        "model",
    )
    try:
        passed, report = asyncio.run(runner.run_candidates(project, [around], timeout_s=20))
    finally:
        listener.close()
    assert passed == [False], report.output
    assert report.isolation.network


def test_a_test_that_writes_outside_its_directory_fails_without_effect(
    project_dir: Path, tmp_path: Path
) -> None:
    if not isolation.available().filesystem:
        pytest.skip("this machine allows test runs no mount namespace")
    outside = tmp_path / "outside"
    outside.mkdir()
    project = locate_project(project_dir / "textkit" / "numbers.py")
    home_file = Path.home() / "flashcode-pwned"
    writers = [
        Candidate("clamp", "abs", f"open({str(outside / 'pwned')!r}, 'w').write('x')", "model"),
        Candidate(
            "clamp",
            "home",
            "import os\nopen(os.path.expanduser('~/flashcode-pwned'), 'w').write('x')",
            "model",
        ),
        Candidate("clamp", "ok", "assert clamp(5, 0, 3) == 3", "model", names=("clamp",)),
    ]
    passed, report = asyncio.run(runner.run_candidates(project, writers, timeout_s=20))
    # ~ is the run's own temporary home, gone after the run: that write succeeds harmlessly.
    assert passed == [False, True, True], report.output
    assert not (outside / "pwned").exists() and not home_file.exists()
    assert "Read-only file system" in report.outcomes[next(iter(report.outcomes))].message
