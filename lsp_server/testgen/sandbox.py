"""Runs candidate tests inside the project's interpreter; started as a script, never imported.

    python /path/to/sandbox.py MODE TEST_FILE RESULTS_FILE SECONDS_PER_TEST [RUN_SECONDS]

MODE is "pytest" or "unittest". Network connections fail, each test is stopped by an alarm after
SECONDS_PER_TEST, and the run and its children are capped (where the platform has resource
limits) at RUN_SECONDS of CPU, MEMORY_BYTES of address space and FILE_BYTES per file written, so
a runaway test fails instead of taking the machine; inside a user namespace of the run's own,
also at PROCESSES processes. The outcome of every test goes to RESULTS_FILE as JSON:
{"TestClass.test_x" or "test_x": {"outcome": ..., "message": ...}}, with "<collect>" for a
module that could not be imported; only the process that started the run writes it (a test's
forked child that runs on through the rest of the session does not). The launcher
(testgen.runner) owns the rest: the temporary directory it runs in, the scrubbed environment,
the namespaces, the limit on the whole run and the end of whatever the run left behind.

The interpreter is the user's project's (the `tests.python` setting or its virtual environment),
which has no flashcode installed and may be an older Python: so this file uses the standard
library only (pytest is imported only in pytest mode, from the project), imports nothing of
flashcode, and keeps to syntax that Python 3.7 reads. The alarm needs SIGALRM, so the run is
POSIX only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import unittest
    from collections.abc import Generator, Iterator
    from types import FrameType

COLLECT_ERROR = "<collect>"
MEMORY_BYTES = 8 * 2**30  # address space: a test that allocates more gets a MemoryError
FILE_BYTES = 64 * 2**20  # one file written: more fails with "File too large"
PROCESSES = 512  # processes in the run's own user namespace (RLIMIT_NPROC counts only those)
MESSAGE_CHARS = 600  # the end of a failure's report: where the error line is


class TestTimeout(BaseException):
    """Raised by the alarm; a BaseException so that `except Exception` in a test cannot eat it."""


class Results:
    """Each test's outcome; a later failure (a teardown error) wins over a pass."""

    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, str]] = {}

    def record(self, name: str, outcome: str, message: str = "") -> None:
        previous = self.outcomes.get(name)
        if previous is None or previous["outcome"] == "passed":
            self.outcomes[name] = {"outcome": outcome, "message": message[-MESSAGE_CHARS:]}


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise OSError("network access is blocked while flashcode runs generated tests")


def _guard(per_test: float) -> None:
    """Arm the alarm handler and block outgoing connections for the whole process."""

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TestTimeout(f"took longer than {per_test:g}s")

    signal.signal(signal.SIGALRM, on_alarm)
    socket.socket.connect = _no_network  # type: ignore[method-assign]
    socket.socket.connect_ex = _no_network  # type: ignore[method-assign]
    socket.create_connection = _no_network


def _in_own_user_namespace() -> bool:
    """Whether this process runs in a user namespace of its own (not the machine's first one)."""
    try:
        with open("/proc/self/uid_map") as uid_map:
            return uid_map.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def _limit_resources(cpu_seconds: int) -> None:
    """Caps inherited by every child. A limit already lower stays; a platform without the
    resource module (Windows) runs without them. The process count is capped only inside a
    user namespace of the run's own, where it counts the run's processes alone (outside, it
    counts all of the user's). Root on the host is exempt from it even there: the launcher's
    PID namespace caps that case (testgen/isolation.py)."""
    try:
        import resource
    except ImportError:
        return
    if hasattr(signal, "SIGXFSZ"):  # a write past FILE_BYTES raises instead of killing the run
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limits = [
        ("RLIMIT_CPU", cpu_seconds),
        ("RLIMIT_AS", MEMORY_BYTES),
        ("RLIMIT_FSIZE", FILE_BYTES),
    ]
    if _in_own_user_namespace():
        limits.append(("RLIMIT_NPROC", PROCESSES))
    for name, value in limits:
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        _, hard = resource.getrlimit(limit)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            continue  # not allowed here: the time limit of the run still holds


def _own_directory_off_the_path() -> None:
    """Run from its own place, Python puts this package's directory first on sys.path, where its
    modules (project.py, runner.py...) would shadow the project's own. Put the run's directory
    there instead, as if the script lived in it."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    sys.path.insert(0, os.getcwd())


def run_pytest(test_file: str, per_test: float, results: Results) -> None:
    import pytest

    class Collector:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
            signal.setitimer(signal.ITIMER_REAL, per_test)
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)

        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            name = report.nodeid.split("::", 1)[-1].replace("::", ".")
            if report.when == "call" or report.outcome != "passed":
                results.record(name, report.outcome, str(report.longrepr or ""))

        def pytest_collectreport(self, report: pytest.CollectReport) -> None:
            if report.failed:
                results.record(COLLECT_ERROR, "failed", str(report.longrepr or ""))

    pytest.main(
        ["-q", "-p", "no:cacheprovider", "-c", "pytest.ini", "--rootdir", ".", test_file],
        plugins=[Collector()],
    )


def _flatten(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    import unittest

    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flatten(test)
        elif isinstance(test, unittest.TestCase):
            yield test


def run_unittest(test_file: str, per_test: float, results: Results) -> None:
    import importlib.util
    import traceback
    import unittest

    try:
        spec = importlib.util.spec_from_file_location("flashcode_candidates", test_file)
        if spec is None or spec.loader is None:
            raise ImportError("cannot load " + test_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException:
        results.record(COLLECT_ERROR, "failed", traceback.format_exc())
        return
    for test in _flatten(unittest.TestLoader().loadTestsFromModule(module)):
        result = unittest.TestResult()
        signal.setitimer(signal.ITIMER_REAL, per_test)
        try:
            test.run(result)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        name = type(test).__name__ + "." + test._testMethodName
        problems = result.errors + result.failures
        if problems:
            results.record(name, "failed", problems[0][1])
        elif result.skipped:
            results.record(name, "skipped")
        else:
            results.record(name, "passed")


def main(argv: list[str]) -> None:
    started_by = os.getpid()
    mode, test_file, out_path, per_test = argv[0], argv[1], argv[2], float(argv[3])
    if len(argv) > 4:
        _limit_resources(int(float(argv[4])) + 1)
    _own_directory_off_the_path()
    _guard(per_test)
    results = Results()
    if mode == "pytest":
        run_pytest(test_file, per_test, results)
    else:
        run_unittest(test_file, per_test, results)
    if os.getpid() != started_by:
        os._exit(1)  # a test's forked child that ran on to here: its results are not the run's
    with open(out_path, "w") as out:
        json.dump(results.outcomes, out)


if __name__ == "__main__":
    main(sys.argv[1:])
