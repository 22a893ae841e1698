"""Where generated tests go in the test file: insertions as (offset, text), never LSP positions.

A test file that does not exist yet is created whole. An existing one only gains lines: the
imports it lacks, after its opening block of imports, and the tests, after its last line; no
existing text is changed and no existing test name is reused. A file that does not parse gets
everything appended at its end, since its imports cannot be found. The LSP edge turns the
offsets into positions in the encoding the client negotiated.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from prompts.candidates import Candidate
from prompts.testfile import defined_names, import_lines, render_tests


@dataclass(frozen=True)
class TestFileEdit:
    path: Path
    create: bool
    insertions: tuple[tuple[int, str], ...]  # (offset into the existing text, text), ascending
    new_text: str  # the whole file after the edit
    test_names: tuple[str, ...]


def already_there(candidate: Candidate, existing: str | None) -> bool:
    """Whether the test file already has this test's lines in a row (asking twice adds nothing
    twice)."""
    if not existing:
        return False
    wanted = [line.strip() for line in candidate.body.split("\n") if line.strip()]
    have = [line.strip() for line in existing.split("\n")]
    size = len(wanted)
    return any(have[i : i + size] == wanted for i in range(len(have) - size + 1))


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


def create_file(edit: TestFileEdit) -> str | None:
    """Write a new test file here, for an editor that cannot create files; why not, or None.

    The text goes to a temporary file beside it first and is linked into place whole, so a full
    disk leaves no half-written test file; a link never replaces a file that appeared in the
    meantime."""
    temporary = edit.path.with_name(f".{edit.path.name}.{os.getpid()}.tmp")
    try:
        edit.path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("x", encoding="utf-8") as out:
            write_text(out, edit.new_text)
            out.flush()
            os.fsync(out.fileno())
        _link_new(temporary, edit.path)
    except OSError as exc:
        return f"could not create {edit.path}: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return None


def write_text(out: TextIO, text: str) -> None:
    out.write(text)


def _link_new(source: Path, target: Path) -> None:
    """Put `source` at `target`, failing if `target` exists; a file system without hard links
    gets a rename after a last look instead (not atomic against a racing creator)."""
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP) or target.exists():
            raise
        os.rename(source, target)
