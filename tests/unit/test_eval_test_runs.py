"""The test runs of `flashcode eval humaneval-infilling`: a completion that loops forever dies of
its CPU cap, even when the evaluation that started it is killed first."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.evaluate import run_python, with_cpu_limit


def test_a_looping_program_is_killed_by_its_own_cpu_cap() -> None:
    looping = subprocess.Popen([sys.executable, "-c", with_cpu_limit("while True: pass", 1)])
    # No timeout from this side: only the cap inside the child can end it.
    assert looping.wait(timeout=60) != 0


def test_a_passing_program_passes_and_a_failing_one_fails() -> None:
    assert run_python("assert sum([1, 2]) == 3", timeout_s=30)
    assert not run_python("assert sum([1, 2]) == 4", timeout_s=30)
