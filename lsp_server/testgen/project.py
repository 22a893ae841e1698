"""The project around the file under test: what is learned from the disk before any test is written.

Its root (the nearest directory with a project marker, within the workspace), the module's
import name (src layouts included), where its tests go (`tests/test_<module>.py`), the
interpreter that runs them (the setting, else the project's virtual environment, else the
server's own), its test framework, and one existing test file to show the model as an example.
Only `tests/` and `test/` are searched for test files, and at most a few dozen are read: enough
to learn the style, cheap on a big project.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lsp_server.workspace.files import VIRTUAL_ENV_DIRS
from prompts.structured import detect_framework

PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", ".git")
MAX_TEST_FILES = 40  # existing test files read for the framework and the example


class TestGenError(Exception):
    """A problem the user can fix; the message is shown to them as it is."""


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
    for name in VIRTUAL_ENV_DIRS:
        for candidate in (root / name / "bin" / "python", root / name / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
    return sys.executable


def _test_files(root: Path, limit: int = MAX_TEST_FILES) -> list[Path]:
    """The project's existing test files, `tests/` first."""
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
