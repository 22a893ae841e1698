"""Processes a generated test starts: none outlives the run, none keeps the launcher waiting, a
fork bomb meets the run's process cap, and nothing outside the run can be signalled from it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from pathlib import Path

import pytest

from lsp_server.testgen import isolation, runner
from lsp_server.testgen.project import locate_project
from prompts.candidates import Candidate

OK = Candidate("clamp", "ok", "assert clamp(5, 0, 3) == 3", "model", names=("clamp",))


def processes_with(marker: str) -> list[int]:
    """Host PIDs whose command line contains `marker` (this test's own process excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker.encode() in command:
            found.append(int(entry.name))
    return found


def sleeper(marker: str, detached: bool) -> str:
    """A test that starts a child sleeping for a minute and checks that it runs. Detached: in a
    session of its own with its output elsewhere, as a daemon would; else it inherits the
    run's output, which the launcher reads."""
    options = "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL"
    return (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', "
        f"{marker!r}]{', ' + options if detached else ''})\n"
        "assert child.poll() is None"
    )


needs_proc = pytest.mark.skipif(not Path("/proc/self").exists(), reason="finds processes in /proc")


@needs_proc
@pytest.mark.parametrize("framework", ["pytest", "unittest"])
def test_a_child_a_test_leaves_behind_ends_with_the_run_and_does_not_hold_it_up(
    project_dir: Path, framework: str
) -> None:
    marker = f"flashcode-straggler-{uuid.uuid4().hex}"
    found = locate_project(project_dir / "textkit" / "numbers.py")
    project = dataclasses.replace(found, framework=framework)
    candidates = [Candidate("clamp", "child", sleeper(marker, detached=False), "model"), OK]
    passed, report = asyncio.run(runner.run_candidates(project, candidates, timeout_s=30))
    # The child ran while its test did; the run ended when the tests did, not when the child
    # would have (a minute, holding the run's output open: unittest does not capture it), and
    # the child did not outlive it.
    assert passed == [True, True], report.output
    assert report.problem == ""
    assert report.seconds < 30
    assert processes_with(marker) == []


@needs_proc
def test_a_daemon_a_test_starts_ends_with_the_run(project_dir: Path) -> None:
    if not isolation.available().processes:
        pytest.skip("this machine gives test runs no PID namespace: a daemon escapes the group")
    marker = f"flashcode-daemon-{uuid.uuid4().hex}"
    project = locate_project(project_dir / "textkit" / "numbers.py")
    candidates = [Candidate("clamp", "daemon", sleeper(marker, detached=True), "model"), OK]
    passed, report = asyncio.run(runner.run_candidates(project, candidates, timeout_s=30))
    assert passed == [True, True], report.output
    assert report.problem == ""
    assert processes_with(marker) == []


@needs_proc
def test_a_fork_bomb_meets_the_process_cap_and_leaves_nothing_behind(project_dir: Path) -> None:
    if not isolation.available().process_limit:
        pytest.skip("this machine cannot cap the processes of a test run (needs Linux 6.14+)")
    marker = f"flashcode-bomb-{uuid.uuid4().hex}"
    # Forks until fork fails, each child becoming a `sleep` named by the marker: the shape of a
    # fork bomb that costs this machine little memory whatever the cap, with a bound in case
    # there were none at all.
    bomb = Candidate(
        "clamp",
        "bomb",
        "import os\n"
        "for _ in range(3000):\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', [{marker!r}, '60'])\n"
        "raise AssertionError('3000 processes and no limit')",
        "model",
    )
    project = locate_project(project_dir / "textkit" / "numbers.py")
    passed, report = asyncio.run(runner.run_candidates(project, [bomb, OK], timeout_s=30))
    assert passed == [False, True], report.output
    message = report.outcomes[next(iter(report.outcomes))].message
    assert "Resource temporarily unavailable" in message, message
    assert processes_with(marker) == []


def test_a_test_cannot_see_or_signal_processes_outside_its_run(project_dir: Path) -> None:
    if not isolation.available().processes:
        pytest.skip("this machine gives test runs no PID namespace")
    project = locate_project(project_dir / "textkit" / "numbers.py")
    # Signal 0 only asks whether the process is there: this test's own process, the server's
    # stand-in, is there, but not for the run.
    probe = Candidate("clamp", "probe", f"import os\nos.kill({os.getpid()}, 0)", "model")
    passed, report = asyncio.run(runner.run_candidates(project, [probe, OK], timeout_s=30))
    assert passed == [False, True], report.output
    assert "ProcessLookupError" in report.outcomes[next(iter(report.outcomes))].message


def test_the_user_is_told_when_a_run_had_no_process_wall() -> None:
    walled = isolation.Isolation(
        ("unshare",), filesystem=True, network=True, processes=True, process_limit=True
    )
    assert walled.weaker() == ""
    uncapped = dataclasses.replace(walled, process_limit=False)
    assert "no limit on the processes" in uncapped.weaker()
    no_namespace = dataclasses.replace(walled, processes=False)
    assert "without a PID namespace" in no_namespace.weaker()
