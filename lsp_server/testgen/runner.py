"""Running candidate tests: one subprocess of the project's interpreter, kept away from the rest.

Every candidate goes into one test module, run by testgen/sandbox.py (started as a script by its
path) in a fresh temporary directory that is removed afterwards, with a scrubbed environment (no
tokens, credentials, proxies or the server's settings), network connections blocked, a time
limit per test (the sandbox's alarm) and one for the whole run (here: the process group is
killed), caps on CPU time, memory and file size (the sandbox's resource limits), and namespaces
where the machine allows them (testgen/isolation.py). Whatever the run leaves behind is ended
with it: its process group is killed when it ends, and in a PID namespace the kernel ends the
rest. Its output goes to a file, not a pipe, so that a child holding it open cannot keep the
launcher waiting. One process
for all candidates keeps the interpreter's start-up cost to once per command; the price is that
a test that breaks the interpreter fails the others too, which the report then says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lsp_server.testgen import isolation
from lsp_server.testgen.isolation import Isolation
from lsp_server.testgen.project import Project
from lsp_server.testgen.sandbox import COLLECT_ERROR
from prompts.candidates import Candidate
from prompts.testfile import import_lines, render_tests

SANDBOX_SCRIPT = Path(__file__).with_name("sandbox.py")
CANDIDATE_FILE = "test_flashcode_candidates.py"
CANDIDATE_CLASS = "TestFlashcodeCandidates"
OUTPUT_CHARS = 4000  # the end of what the run printed, kept for the report


@dataclass(frozen=True)
class Outcome:
    passed: bool
    message: str = ""


@dataclass
class RunReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    problem: str = ""  # why nothing could be judged: a timeout, an import error...
    output: str = ""  # what the run printed (stdout and stderr), trimmed
    seconds: float = 0.0
    isolation: Isolation = field(default_factory=Isolation)  # the walls the run had


def scrubbed_environment(workdir: Path, import_root: Path) -> dict[str, str]:
    """Only what a test run needs: no tokens, credentials, proxies or the server's settings."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "PYTHONPATH": str(import_root),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONIOENCODING": "utf-8",
        "LANG": "C.UTF-8",
        "NO_PROXY": "*",
        "no_proxy": "*",
    }
    if sys.platform == "win32":  # the interpreter needs these to start there
        for key in ("SYSTEMROOT", "COMSPEC", "PATHEXT"):
            if key in os.environ:
                env[key] = os.environ[key]
    return env


def _first_error_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^(E\s+)?\w*(Error|Exception)\b", line):
            return line.removeprefix("E").strip()
    return lines[-1] if lines else ""


async def run_tests(
    project: Project, code: str, names: Sequence[str], timeout_s: float, framework: str
) -> RunReport:
    """Run a test module's `code` in a fresh temporary directory; outcomes by test name."""
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="flashcode-tests-"))
    report = RunReport()
    try:
        (workdir / CANDIDATE_FILE).write_text(code, encoding="utf-8")
        (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        out = workdir / "results.json"
        per_test = max(1.0, min(10.0, timeout_s / 2))
        report.isolation = await asyncio.to_thread(isolation.available)
        argv = [
            project.python,
            str(SANDBOX_SCRIPT),
            framework,
            CANDIDATE_FILE,
            str(out),
            str(per_test),
            str(timeout_s),
        ]
        # A file, not a pipe: a child left holding it cannot stall us. Closed by _tail.
        output = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            process = await asyncio.create_subprocess_exec(
                *report.isolation.command(workdir, project.root, argv),
                cwd=workdir,
                env=scrubbed_environment(workdir, project.import_root),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: ended whole, children included
            )
        except OSError as exc:
            output.close()
            report.problem = f"could not start the interpreter {project.python}: {exc}"
            return report
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            _kill_group(process)
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            report.problem = f"the test run took longer than {timeout_s:g}s and was stopped"
            return report
        finally:
            # What the run left behind (a forked child, a server it started) ends with it. In a
            # PID namespace the kernel has already done this; without one, the group is the net.
            _kill_group(process)
            report.output = _tail(output)
        try:
            raw = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = _first_error_line(report.output) or "no output"
            report.problem = f"the test run ended without results ({tail})"
            return report
        collect = raw.pop(COLLECT_ERROR, None)
        if collect is not None:
            report.problem = "the tests could not be imported: " + _first_error_line(
                collect["message"]
            )
        for name in names:
            item = raw.get(name)
            if item is None:
                report.outcomes[name] = Outcome(False, report.problem or "did not run")
            else:
                report.outcomes[name] = Outcome(
                    item["outcome"] == "passed", _first_error_line(item.get("message", ""))
                )
        return report
    finally:
        report.seconds = time.perf_counter() - started
        shutil.rmtree(workdir, ignore_errors=True)


def _tail(output: IO[bytes]) -> str:
    """The end of what the run wrote (at most OUTPUT_CHARS characters), and the file closed."""
    with output:
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - 4 * OUTPUT_CHARS))
        return output.read().decode("utf-8", errors="replace")[-OUTPUT_CHARS:]


def _kill_group(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the run and anything it started
    except AttributeError:  # no process groups (Windows): the run itself
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


async def run_candidates(
    project: Project, candidates: Sequence[Candidate], timeout_s: float
) -> tuple[list[bool], RunReport]:
    """Whether each candidate passed, run all together in one module."""
    framework = project.framework
    imports = import_lines(project.module, candidates, framework)
    code, names = render_tests(candidates, framework, set(), CANDIDATE_CLASS)
    module = "\n".join(imports) + "\n\n\n" + code
    report = await run_tests(project, module, names, timeout_s, framework)
    passed = [report.outcomes.get(name, Outcome(False)).passed for name in names]
    return passed, report
