"""Generate unit tests: candidates from the pro model, kept only when they pass.

The steps, each a function a unit test can reach without a server:
1. `locate_project`: the project root, the module's import name, `tests/test_<module>.py`, the
   project's interpreter and test framework, and an existing test file to show as an example.
2. `subjects_at`: the function, the method, or the public methods of the class at the cursor.
3. `propose`: candidates from the docstring's examples, from the exceptions the body raises, and
   from the model, which fills the expected value of calls built from the structure (a base
   model, by fill-in-the-middle) or writes whole tests (a chat model, from the chat prompt).
4. `run_candidates`: every candidate in one subprocess of the project's interpreter, in a fresh
   temporary directory, with a scrubbed environment, network access blocked, a time limit per
   test and for the whole run, output captured.
5. `select` and `plan_edit`: one passing test per behaviour, written into the test file —
   created, or appended with only new import lines added after the existing imports.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from prompts.calls import calls_for
from prompts.candidates import (
    Candidate,
    assertion_candidate,
    assertion_stub,
    chat_candidates,
    clean_assertion,
    clean_expected,
    docstring_candidates,
    model_candidate,
    raises_candidates,
    value_stub,
)
from prompts.definitions import Definition, definition_at
from prompts.fim import FimTemplate, select_template
from prompts.structured import (
    StructuredPrompt,
    TestSubject,
    build_test_prompt,
    detect_framework,
    render_chat,
)
from prompts.testfile import defined_names, import_lines, render_tests, unique_name
from prompts.text import line_bounds

if TYPE_CHECKING:
    from inference.engine import Engine

PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", ".git")
VENV_DIRS = (".venv", "venv", "env")
MAX_KEPT_PER_SUBJECT = 6
CANDIDATE_FILE = "test_flashcode_candidates.py"
COLLECT_ERROR = "<collect>"


class TestGenError(Exception):
    """A problem the user can fix; the message is shown to them as it is."""


# --- 1. the project -------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    root: Path
    import_root: Path  # what goes on sys.path: the root, or root/src for a src layout
    module: str  # the dotted import name of the file under test
    source_path: Path
    test_path: Path
    framework: str  # "pytest" | "unittest"
    python: str  # the interpreter that runs the tests
    example_path: Path | None = None
    example_text: str | None = None

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def find_root(source: Path, workspace_roots: Sequence[Path] = ()) -> Path:
    """The nearest directory above `source` holding a project marker, within the workspace."""
    roots = [r.resolve() for r in workspace_roots]
    for parent in source.resolve().parents:
        if any((parent / marker).exists() for marker in PROJECT_MARKERS):
            return parent
        if parent in roots:
            return parent
    return source.resolve().parent


def module_name(source: Path, root: Path) -> tuple[Path, str]:
    """(import root, dotted module name) of a Python file inside `root`."""
    relative = source.resolve().relative_to(root.resolve())
    import_root = root
    parts = list(relative.with_suffix("").parts)
    if len(parts) > 1 and parts[0] == "src":
        import_root, parts = root / "src", parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(part.isidentifier() for part in parts):
        raise TestGenError(
            f"{relative.as_posix()} cannot be imported as a Python module "
            "(its path is not made of identifiers), so tests cannot import it"
        )
    return import_root, ".".join(parts)


def find_interpreter(root: Path, configured: str = "") -> str:
    """The configured interpreter, else the project's virtual environment, else this one."""
    if configured:
        return configured
    for name in VENV_DIRS:
        for candidate in (root / name / "bin" / "python", root / name / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
    return sys.executable


def _test_files(root: Path, limit: int = 40) -> list[Path]:
    found: list[Path] = []
    for folder in (root / "tests", root / "test"):
        if folder.is_dir():
            found += sorted(folder.rglob("test_*.py"))[:limit]
    return found[:limit]


def locate_project(source: Path, workspace_roots: Sequence[Path] = (), python: str = "") -> Project:
    root = find_root(source, workspace_roots)
    import_root, module = module_name(source, root)
    tests_dir = root / "tests"
    if not tests_dir.exists() and (root / "test").is_dir():
        tests_dir = root / "test"
    stem = module.rsplit(".", 1)[-1]
    test_path = tests_dir / f"test_{stem}.py"
    examples: list[tuple[Path, str]] = []
    for path in _test_files(root):
        try:
            examples.append((path, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    framework = detect_framework(text for _, text in examples)
    # The test file of this module is the best example; else the shortest one, for its style.
    example = next(((p, t) for p, t in examples if p == test_path), None)
    if example is None and examples:
        example = min(examples, key=lambda item: len(item[1]))
    return Project(
        root=root,
        import_root=import_root,
        module=module,
        source_path=source.resolve(),
        test_path=test_path,
        framework=framework,
        python=find_interpreter(root, python),
        example_path=example[0] if example else None,
        example_text=example[1] if example else None,
    )


# --- 2. what to test ------------------------------------------------------------------------


def _class_of(text: str, method: Definition) -> Definition | None:
    class_name = method.qualified_name.rsplit(".", 1)[0]
    starts = [
        m.start()
        for m in re.finditer(rf"^[ \t]*class[ \t]+{re.escape(class_name)}\b", text, re.M)
        if m.start() < method.start_offset
    ]
    if not starts:
        return None
    offset = starts[-1] + text[starts[-1] :].index("class") + len("class ")
    owner = definition_at(text, offset, "python")
    return owner if owner is not None and owner.kind == "class" else None


def definition_near(text: str, offset: int) -> Definition | None:
    """The definition at the cursor; anywhere on a `def` or `class` line counts as on it."""
    start, end = line_bounds(text, offset)
    header = re.match(r"[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w)", text[start:end])
    if header is not None:
        offset = start + header.start(1)
    return definition_at(text, offset, "python")


def subjects_at(text: str, definition: Definition, module: str) -> list[TestSubject]:
    """The function, the method, or each public method of the class: what gets tests."""
    if definition.kind == "function":
        return [TestSubject(definition, module)]
    if definition.kind == "method":
        return [TestSubject(definition, module, _class_of(text, definition))]
    subjects = []
    body = text[definition.body_start_offset : definition.body_end_offset]
    for name in definition.methods:
        if name.startswith("_"):
            continue
        match = re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}\b", body, re.M)
        if match is None:
            continue
        offset = definition.body_start_offset + match.end() - len(name)
        method = definition_at(text, offset, "python")
        if method is not None and method.name == name:
            subjects.append(TestSubject(method, module, definition))
    return subjects


# --- 3. candidates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    samples: int = 3  # per hole: one greedy, the rest sampled
    temperature: float = 0.7
    top_p: float = 0.95
    value_tokens: int = 24
    assertion_tokens: int = 40
    chat_tokens: int = 768
    deadline_s: float = 60.0


def _encode_with_specials(tokenizer: Any, text: str) -> list[int]:
    """Encode a rendered chat prompt, turning the special-token texts it contains into ids."""
    specials = sorted(getattr(tokenizer, "special_tokens", {}), key=len, reverse=True)
    if not specials:
        return list(tokenizer.encode(text))
    ids: list[int] = []
    pattern = "(" + "|".join(re.escape(s) for s in specials) + ")"
    for piece in re.split(pattern, text):
        if not piece:
            continue
        special = tokenizer.special_tokens.get(piece)
        ids.extend([special] if special is not None else tokenizer.encode(piece))
    return ids


@dataclass
class HolePrompter:
    """Turns hole prompts into token ids within the model's context, FIM when it can.

    Also used for docstring descriptions (features/docstring.py)."""

    engine: Any
    template: FimTemplate | None
    budget: int  # prompt tokens

    def ids(self, prefix: str, suffix: str) -> list[int]:
        tokenizer = self.engine.tokenizer
        suffix_ids = tokenizer.encode(suffix) if self.template else []
        room = self.budget - len(suffix_ids) - 4
        prefix_ids = tokenizer.encode(prefix)
        if len(prefix_ids) > room:
            # Drop whole lines from the top (the comments and the example go first).
            lines = prefix.split("\n")
            while len(lines) > 1 and len(prefix_ids) > room:
                lines = lines[max(1, len(lines) // 8) :]
                prefix_ids = tokenizer.encode("\n".join(lines))
        if self.template is None:
            return list(prefix_ids)
        t = self.template
        head = [tokenizer.token_id(t.bos_token)] if t.bos_token else []
        return [
            *[i for i in head if i is not None],
            tokenizer.token_id(t.prefix_token),
            *prefix_ids,
            tokenizer.token_id(t.suffix_token),
            *suffix_ids,
            tokenizer.token_id(t.middle_token),
        ]

    def stop_ids(self) -> frozenset[int]:
        tokenizer = self.engine.tokenizer
        ids = set(tokenizer.eos_token_ids)
        for text in self.template.stop_tokens if self.template else ():
            token = tokenizer.token_id(text)
            if token is not None:
                ids.add(token)
        return frozenset(ids)


async def sample_holes(
    prompter: HolePrompter, prefix: str, suffix: str, max_new_tokens: int, sampling: Sampling
) -> list[str]:
    from inference.engine import GenerationRequest

    prompt_ids = tuple(prompter.ids(prefix, suffix))
    stops = prompter.stop_ids()
    requests = [
        GenerationRequest(
            prompt_ids=prompt_ids,
            max_new_tokens=max_new_tokens,
            temperature=0.0 if i == 0 else sampling.temperature,
            top_p=1.0 if i == 0 else sampling.top_p,
            stop_token_ids=stops,
            stop_strings=("\n",),
            deadline_s=sampling.deadline_s,
            seed=i,
        )
        for i in range(max(1, sampling.samples))
    ]
    results = await asyncio.gather(*(prompter.engine.generate(r) for r in requests))
    return list(dict.fromkeys(result.text for result in results))


def _hole_file_prefix(
    prompt: StructuredPrompt, test_file: str, subjects: Sequence[TestSubject]
) -> str:
    """The prompt, then a unittest module for the subjects whose docstring examples are already
    written as tests: the model continues it with one more test method."""
    names = sorted({s.import_name for s in subjects})
    words = re.split(r"[._]", subjects[0].label)
    class_name = "Test" + "".join(word[:1].upper() + word[1:] for word in words if word)
    lines = [
        prompt.as_code(),
        f"# {test_file}",
        "import unittest",
        f"from {subjects[0].module} import {', '.join(names)}",
        "",
        "",
        f"class {class_name}(unittest.TestCase):",
    ]
    examples = [(s, c) for s in subjects for c in calls_for(s) if c.expected is not None]
    for number, (_, call) in enumerate(examples, 1):
        lines.append(f"    def test_example_{number}(self):")
        lines += [f"        {statement}" for statement in call.setup]
        lines += [f"        self.assertEqual({call.expression}, {call.expected})", ""]
    return "\n".join(lines) + "\n"


async def propose(
    engine: Engine | Any,
    subjects: Sequence[TestSubject],
    prompt: StructuredPrompt,
    framework: str,
    test_file_label: str,
    sampling: Sampling = Sampling(),
    fim_override: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> list[Candidate]:
    """Every candidate for `subjects`: docstring examples, error cases, and the model's."""
    candidates = structural_candidates(subjects, framework)
    holes = [(s, call) for s in subjects for call in calls_for(s) if call.expected is None]
    tokenizer = engine.tokenizer
    context = int(getattr(engine.model, "context_length", 1024))
    if tokenizer.chat_template:
        progress("asking the model for tests")
        rendered = render_chat(prompt.messages(), tokenizer.chat_template)
        ids = _encode_with_specials(tokenizer, rendered)
        from inference.engine import GenerationRequest

        room = max(64, min(sampling.chat_tokens, context - len(ids) - 1))
        result = await engine.generate(
            GenerationRequest(
                prompt_ids=tuple(ids[-(context - room) :]),
                max_new_tokens=room,
                stop_token_ids=frozenset(tokenizer.eos_token_ids),
                deadline_s=sampling.deadline_s * 2,
            )
        )
        names = {s.import_name: s.label for s in subjects}
        return candidates + chat_candidates(result.text, names)
    try:
        template: FimTemplate | None = select_template(
            tokenizer.special_tokens, fim_override or None
        )
    except ValueError:
        template = None  # a plain completion model: the prompt ends at the hole
    prompter = HolePrompter(engine, template, context - sampling.assertion_tokens - 1)
    prefix = _hole_file_prefix(prompt, test_file_label, subjects)
    jobs: list[Any] = []
    labels: list[tuple[str, TestSubject, Any]] = []
    taken: set[str] = set()
    for subject, call in holes:
        stub = value_stub(call, "assertEqual")
        name = unique_name(f"test_{subject.definition.name.lower()}_{call.case}", taken)
        hole_prefix = prefix + f"    def {name}(self):\n" + _indented(stub, "        ")
        jobs.append(sample_holes(prompter, hole_prefix, ")\n", sampling.value_tokens, sampling))
        labels.append(("value", subject, call))
    for subject in subjects:
        stub = assertion_stub(subject, "assertEqual")
        name = unique_name(f"test_{subject.definition.name.lower()}", taken)
        hole_prefix = prefix + f"    def {name}(self):\n" + _indented(stub, "        ")
        jobs.append(sample_holes(prompter, hole_prefix, "\n", sampling.assertion_tokens, sampling))
        labels.append(("assertion", subject, stub))
    progress(f"asking the model for {len(jobs)} expected values")
    answers = await asyncio.gather(*jobs)
    for (kind, subject, detail), texts in zip(labels, answers, strict=True):
        for text in texts:
            if kind == "value":
                expected = clean_expected(text, detail, subject)
                if expected is not None:
                    candidates.append(model_candidate(subject, detail, expected, detail.case))
            else:
                line = clean_assertion(text, detail, subject)
                if line is not None:
                    candidates.append(assertion_candidate(subject, detail, line))
    return candidates


def _indented(stub: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in stub.split("\n"))


def structural_candidates(subjects: Sequence[TestSubject], framework: str) -> list[Candidate]:
    """The candidates that need no model: docstring examples and error cases."""
    candidates: list[Candidate] = []
    for subject in subjects:
        calls = calls_for(subject)
        candidates += docstring_candidates(subject, calls)
        candidates += raises_candidates(subject, calls, framework)
    return candidates


def compiles(candidate: Candidate) -> bool:
    code, _ = render_tests([candidate], "pytest", set())
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


# --- 4. running them ------------------------------------------------------------------------

# Runs inside the project's interpreter. Network calls fail, each test has a time limit, and the
# outcome of each test goes to a JSON file: {"TestClass.test_x" or "test_x": {outcome, message}}.
RUNNER = r"""
import json, signal, socket, sys

mode, test_file, out_path, per_test = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
results = {}


class TestTimeout(BaseException):
    pass


def on_alarm(signum, frame):
    raise TestTimeout("took longer than %gs" % per_test)


def no_network(*args, **kwargs):
    raise OSError("network access is blocked while flashcode runs generated tests")


signal.signal(signal.SIGALRM, on_alarm)
socket.socket.connect = no_network
socket.socket.connect_ex = no_network
socket.create_connection = no_network


def record(name, outcome, message=""):
    previous = results.get(name)
    if previous is None or previous["outcome"] == "passed":
        results[name] = {"outcome": outcome, "message": message[-600:]}


if mode == "pytest":
    import pytest

    class Collector:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item):
            signal.setitimer(signal.ITIMER_REAL, per_test)
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)

        def pytest_runtest_logreport(self, report):
            name = report.nodeid.split("::", 1)[-1].replace("::", ".")
            if report.when == "call" or report.outcome != "passed":
                record(name, report.outcome, str(report.longrepr or ""))

        def pytest_collectreport(self, report):
            if report.failed:
                record("<collect>", "failed", str(report.longrepr or ""))

    pytest.main(
        ["-q", "-p", "no:cacheprovider", "-c", "pytest.ini", "--rootdir", ".", test_file],
        plugins=[Collector()],
    )
else:
    import importlib.util
    import traceback
    import unittest

    try:
        spec = importlib.util.spec_from_file_location("flashcode_candidates", test_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException:
        record("<collect>", "failed", traceback.format_exc())
        module = None

    def flatten(suite):
        for test in suite:
            if isinstance(test, unittest.TestSuite):
                yield from flatten(test)
            else:
                yield test

    if module is not None:
        for test in flatten(unittest.TestLoader().loadTestsFromModule(module)):
            result = unittest.TestResult()
            signal.setitimer(signal.ITIMER_REAL, per_test)
            try:
                test.run(result)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            name = type(test).__name__ + "." + test._testMethodName
            problems = result.errors + result.failures
            if problems:
                record(name, "failed", problems[0][1])
            elif result.skipped:
                record(name, "skipped")
            else:
                record(name, "passed")

with open(out_path, "w") as out:
    json.dump(results, out)
"""


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
        (workdir / "_flashcode_runner.py").write_text(RUNNER, encoding="utf-8")
        out = workdir / "results.json"
        per_test = max(1.0, min(10.0, timeout_s / 2))
        try:
            process = await asyncio.create_subprocess_exec(
                project.python,
                "_flashcode_runner.py",
                framework,
                CANDIDATE_FILE,
                str(out),
                str(per_test),
                cwd=workdir,
                env=scrubbed_environment(workdir, project.import_root),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a timeout kills the whole group, children included
            )
        except OSError as exc:
            report.problem = f"could not start the interpreter {project.python}: {exc}"
            return report
        try:
            stdout, _ = await asyncio.wait_for(process.communicate(), timeout_s)
            report.output = stdout.decode("utf-8", errors="replace")[-4000:]
        except (TimeoutError, asyncio.CancelledError) as exc:
            _kill_group(process)
            await process.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            report.problem = f"the test run took longer than {timeout_s:g}s and was stopped"
            return report
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
    code, names = render_tests(candidates, framework, set(), "TestFlashcodeCandidates")
    module = "\n".join(imports) + "\n\n\n" + code
    report = await run_tests(project, module, names, timeout_s, framework)
    passed = [report.outcomes.get(name, Outcome(False)).passed for name in names]
    return passed, report


# --- 5. keeping and writing -----------------------------------------------------------------


def select(
    candidates: Sequence[Candidate], passed: Sequence[bool], per_subject: int = MAX_KEPT_PER_SUBJECT
) -> list[Candidate]:
    """One passing test per (subject, behaviour), at most `per_subject` per subject.

    Docstring examples come first, then the model's tests, then the structural error cases.
    """
    rank = {"docstring": 0, "model": 1, "structure": 2}
    order = sorted(range(len(candidates)), key=lambda i: rank.get(candidates[i].origin, 3))
    kept: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    bodies: set[str] = set()
    per: dict[str, int] = {}
    for i in order:
        candidate = candidates[i]
        key = (candidate.subject, candidate.key or candidate.body)
        if not passed[i] or key in seen or candidate.body in bodies:
            continue
        if per.get(candidate.subject, 0) >= per_subject:
            continue
        seen.add(key)
        bodies.add(candidate.body)
        per[candidate.subject] = per.get(candidate.subject, 0) + 1
        kept.append(candidate)
    return sorted(kept, key=lambda c: candidates.index(c))


def already_there(candidate: Candidate, existing: str | None) -> bool:
    """Whether the test file already has this test's lines in a row (asking twice adds nothing
    twice)."""
    if not existing:
        return False
    wanted = [line.strip() for line in candidate.body.split("\n") if line.strip()]
    have = [line.strip() for line in existing.split("\n")]
    size = len(wanted)
    return any(have[i : i + size] == wanted for i in range(len(have) - size + 1))


def dedupe(candidates: Iterable[Candidate]) -> list[Candidate]:
    seen: set[tuple[str, str]] = set()
    result = []
    for candidate in candidates:
        if (candidate.subject, candidate.body) not in seen and compiles(candidate):
            seen.add((candidate.subject, candidate.body))
            result.append(candidate)
    return result


@dataclass(frozen=True)
class TestFileEdit:
    path: Path
    create: bool
    insertions: tuple[tuple[int, str], ...]  # (offset into the existing text, text), ascending
    new_text: str  # the whole file after the edit
    test_names: tuple[str, ...]


def _present_imports(tree: ast.Module, module: str) -> tuple[set[str], set[str]]:
    """(modules imported with `import`, names imported from `module`)."""
    modules: set[str] = set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == module:
            names |= {alias.asname or alias.name for alias in node.names}
    return modules, names


def _import_offset(text: str, tree: ast.Module) -> int:
    """Just after the last import of the file's opening block (docstring, imports)."""
    last: ast.stmt | None = None
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom) or (
            index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        ):
            last = node
        else:
            break
    if last is None or last.end_lineno is None:
        return 0
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: last.end_lineno])


def plan_edit(
    test_path: Path,
    existing: str | None,
    module: str,
    kept: Sequence[Candidate],
    framework: str,
    class_name: str = "",
) -> TestFileEdit:
    """The edit that adds `kept` to the test file: the whole file when it does not exist yet,
    else new import lines after its imports and the tests after its last line. Existing text
    is never changed, and no existing test name is reused."""
    if existing is None:
        code, names = render_tests(kept, framework, set(), class_name)
        text = "\n".join(import_lines(module, kept, framework)) + "\n\n\n" + code
        return TestFileEdit(test_path, True, ((0, text),), text, tuple(names))
    taken = defined_names(existing)
    code, names = render_tests(kept, framework, taken, class_name)
    try:
        tree: ast.Module | None = ast.parse(existing)
    except SyntaxError:
        tree = None
    needed = import_lines(module, kept, framework)
    insertions: list[tuple[int, str]] = []
    if tree is not None:
        modules, names_from = _present_imports(tree, module)
        missing: list[str] = []
        for line in needed:
            if line.startswith("import "):
                if line.split()[1] not in modules:
                    missing.append(line)
            else:
                wanted = [n.strip() for n in line.split(" import ", 1)[1].split(",")]
                new = [n for n in wanted if n not in names_from]
                if new:
                    missing.append(f"from {module} import {', '.join(new)}")
        if missing:
            offset = _import_offset(existing, tree)
            block = "\n".join(missing) + "\n"
            if offset and not existing[:offset].endswith("\n"):
                block = "\n" + block
            insertions.append((offset, block))
        tail = code
    else:
        tail = "\n".join(needed) + "\n\n\n" + code  # cannot place imports in a broken file
    stripped = existing.rstrip("\n")
    newlines = len(existing) - len(stripped)
    separator = "\n" * max(0, 3 - newlines) if stripped else ""
    insertions.append((len(existing), separator + tail))
    new_text = existing
    for offset, text in sorted(insertions, reverse=True):
        new_text = new_text[:offset] + text + new_text[offset:]
    return TestFileEdit(test_path, False, tuple(sorted(insertions)), new_text, tuple(names))


def _writable(path: Path) -> bool:
    # os.access alone says yes to root for any file; a file nobody may write is read-only to
    # the user too, whoever runs the server.
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    try:
        return os.access(path, os.W_OK) and bool(path.stat().st_mode & write_bits)
    except OSError:
        return False


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position_of(
    text: str, offset: int, units: Callable[[str], int] = utf16_units
) -> types.Position:
    """The LSP position of a str index; `units` counts the negotiated encoding's code units."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=line, character=units(text[start:offset]))


def check_writable(path: Path) -> str | None:
    """Why `path` cannot be written (created or appended to), or None when it can."""
    if path.exists():
        if not path.is_file():
            return f"{path} exists and is not a file"
        if not _writable(path):
            return f"{path} is read-only"
        return None
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not _writable(parent):
        return f"{parent} is read-only, so {path.name} cannot be created"
    return None


# --- the whole command ----------------------------------------------------------------------


@dataclass
class GenerationResult:
    subjects: list[str]
    candidates: list[Candidate]
    kept: list[Candidate]
    verified: bool  # the kept tests were run and passed
    edit: TestFileEdit | None
    problem: str = ""  # from the run, when nothing could be judged
    duplicates: int = 0  # passing tests left out because the test file already has them
    passing: list[Candidate] = field(default_factory=list)  # selected, before leaving those out
    model_ms: float = 0.0
    run_ms: float = 0.0

    def by_origin(self, candidates: Iterable[Candidate]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for candidate in candidates:
            counts[candidate.origin] = counts.get(candidate.origin, 0) + 1
        return counts


async def generate_tests(
    engine: Engine | Any,
    project: Project,
    text: str,
    definition: Definition,
    existing_test: str | None,
    run_generated: bool = True,
    timeout_s: float = 60,
    sampling: Sampling = Sampling(),
    fim_override: str = "",
    progress: Callable[[str], None] = lambda _: None,
) -> GenerationResult:
    """Candidates for the definition, run (unless switched off), the passing ones planned in."""
    subjects = subjects_at(text, definition, project.module)
    if not subjects:
        raise TestGenError(f"{definition.name} has no public methods to test")
    prompt = build_test_prompt(
        subjects,
        project.framework,
        project.relative(project.source_path),
        project.relative(project.example_path) if project.example_path else None,
        project.example_text,
    )
    started = time.perf_counter()
    candidates = await propose(
        engine,
        subjects,
        prompt,
        project.framework,
        project.relative(project.test_path),
        sampling,
        fim_override,
        progress,
    )
    candidates = dedupe(candidates)
    model_ms = (time.perf_counter() - started) * 1000
    labels = [s.label for s in subjects]
    if run_generated:
        progress(f"running {len(candidates)} candidate tests")
        passed, report = await run_candidates(project, candidates, timeout_s)
    else:
        passed, report = [True] * len(candidates), RunReport()
    result = GenerationResult(
        labels,
        candidates,
        select(candidates, passed),
        run_generated,
        None,
        problem=report.problem,
        model_ms=model_ms,
        run_ms=report.seconds * 1000,
    )
    return plan_for(result, project, existing_test)


def plan_for(result: GenerationResult, project: Project, existing: str | None) -> GenerationResult:
    """The result with its edit planned against `existing` (the test file as it is now),
    leaving out the tests the file already has."""
    passing = result.passing or result.kept
    fresh = [c for c in passing if not already_there(c, existing)]
    words = re.split(r"[._]", result.subjects[0]) if result.subjects else []
    class_name = "Test" + "".join(word[:1].upper() + word[1:] for word in words if word)
    edit = None
    if fresh:
        edit = plan_edit(
            project.test_path, existing, project.module, fresh, project.framework, class_name
        )
    return dataclasses.replace(
        result, kept=fresh, edit=edit, duplicates=len(passing) - len(fresh), passing=passing
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def summary_message(result: GenerationResult, test_file: str) -> str:
    """What the user is told at the end: how many were generated and kept, and from where."""
    what = ", ".join(result.subjects[:3]) + ("..." if len(result.subjects) > 3 else "")
    generated = f"generated {_count(len(result.candidates), 'test')} for {what}"
    if not result.candidates:
        return (
            f"flashcode generated no test for {what}: the model's answers were not usable code "
            "and the code has no docstring examples or raised exceptions to test. "
            "Nothing was written."
        )
    if not result.verified:
        if not result.kept:
            return f"flashcode {generated}; none was usable, so nothing was written."
        return (
            f"flashcode {generated} and inserted {len(result.kept)} into {test_file} "
            "UNVERIFIED: running generated tests is switched off "
            "(flashcode.tests.runGenerated), so none of them was run."
        )
    if not result.kept and result.duplicates:
        return (
            f"flashcode {generated}; {result.duplicates} passed, but {test_file} already has "
            "them, so nothing was written."
        )
    if not result.kept:
        reason = f" ({result.problem})" if result.problem else ""
        return f"flashcode {generated}; none passed{reason}, so nothing was written."
    origins = result.by_origin(result.kept)
    parts = [
        _count(origins[key], noun) + suffix
        for key, noun, suffix in (
            ("model", "test", " written by the model"),
            ("docstring", "example", " from the docstring"),
            ("structure", "error check", " from the raised exceptions"),
        )
        if origins.get(key)
    ]
    kept = len(result.kept)
    return (
        f"flashcode {generated}; {kept} passed and {'was' if kept == 1 else 'were'} added to "
        f"{test_file} ({', '.join(parts)})."
    )
