"""The cases of `flashcode eval repo`: real projects, holes in their files, workspace copies
without the file under test, the copy-only peer and the scores. Files and pure functions only:
no server, no model, so all of it is unit-tested.

- **Projects** are the Python sources of packages installed as flashcode's own dependencies
  (jinja2, pygls, diskcache, ...), found with importlib and never downloaded. The default model
  is trained on the CPython standard library only (inference/build/corpus.py skips
  site-packages), so none of them was ever seen in training.
- **Lines** worth a hole are code: at least MIN_LINE_CHARS characters after the indentation,
  not a comment, not inside a string that spans lines (docstrings), found with `tokenize`.
- **Holes** come in two kinds. mid-line: a random column inside the line (at least one
  character typed, at least one left to guess), the rest of the line removed. whole-line: the
  cursor after the line's indentation, the rest of the line removed. In both, the line's newline
  and the whole rest of the file stay, as in an editor where the user is writing that line.
- **Sampling** is seeded and spread evenly: case i takes project i mod P and alternates the kind
  every P cases, so 300 cases over 5 projects give 30 of each kind per project. Lines are drawn
  without replacement from a seeded shuffle of each project's code lines.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import io
import random
import shutil
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

Kind = Literal["mid-line", "whole-line"]
KINDS: tuple[Kind, ...] = ("mid-line", "whole-line")
# Installed dependencies of flashcode (pyproject.toml) and of its dev tools: real, maintained
# third-party code of different styles (a template engine, an LSP framework, a disk cache, a
# small OS helper, a (un)structuring library).
DEFAULT_PROJECTS = ("jinja2", "pygls", "diskcache", "platformdirs", "cattrs")
MIN_LINE_CHARS = 8  # shorter lines (`else:`, `pass`, `]`) say little about completion quality
MAX_FILE_BYTES = 200_000  # generated tables (lsprotocol's types.py) are not code people write


@dataclass(frozen=True)
class Project:
    name: str  # the import name; also the package folder's name in the workspace
    version: str
    package_dir: Path  # the installed package's sources

    @cached_property
    def files(self) -> tuple[str, ...]:
        """The package's Python files, relative to its folder, in path order."""
        found = []
        for path in sorted(self.package_dir.rglob("*.py")):
            if "__pycache__" in path.parts or path.stat().st_size > MAX_FILE_BYTES:
                continue
            found.append(path.relative_to(self.package_dir).as_posix())
        return tuple(found)

    def read(self, relpath: str) -> str:
        text = (self.package_dir / relpath).read_text(encoding="utf-8", errors="replace")
        return text.replace("\r\n", "\n")

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "files": len(self.files)}


def find_project(name: str) -> Project:
    """The installed package `name` (an import name), or ValueError saying it is not there."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{name!r} is not an installed package (a folder of Python sources)")
    distribution = importlib.metadata.packages_distributions().get(name, [name])[0]
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Project(name, version, Path(next(iter(spec.submodule_search_locations))))


def build_workspace(project: Project, left_out: str, into: Path) -> Path:
    """Copy the project into `into` as a workspace folder (the package as `<root>/<name>/`),
    without the file `left_out` (relative to the package): it exists only as the open buffer.
    Returns the workspace root."""
    root = into / project.name
    skipped = (project.package_dir / left_out).resolve()

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [
            name
            for name in names
            if name == "__pycache__"
            or name.endswith(".pyc")
            or (Path(folder) / name).resolve() == skipped
        ]

    shutil.copytree(project.package_dir, root / project.name, ignore=ignore)
    return root


# --- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: int
    project: str
    path: str  # of the file under test, relative to the package folder
    kind: Kind
    line: int  # 0-based line of the hole
    column: int  # str index of the cursor in that line
    prefix: str  # the buffer before the cursor
    suffix: str  # the buffer after it: the line's newline and the rest of the file
    expected: str  # what was removed: the rest of the line

    @property
    def text(self) -> str:
        return self.prefix + self.suffix

    @property
    def offset(self) -> int:
        return len(self.prefix)

    @property
    def workspace_path(self) -> str:
        """The file's path relative to the workspace root."""
        return f"{self.project}/{self.path}"


def code_lines(text: str) -> list[int]:
    """The 0-based lines of `text` worth a hole (see the module docstring); [] when the file
    does not tokenize."""
    in_string: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.start[0] != token.end[0]:
                in_string.update(range(token.start[0] - 1, token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return []
    chosen = []
    for index, line in enumerate(text.split("\n")):
        body = line.strip()
        if (
            index not in in_string
            and len(body) >= MIN_LINE_CHARS
            and not body.startswith("#")
            and any(char.isalnum() for char in body)
        ):
            chosen.append(index)
    return chosen


def make_case(
    case_id: int, project: str, path: str, text: str, line: int, kind: Kind, rng: random.Random
) -> Case:
    """The hole of `kind` in `line` of `text`; a mid-line column is drawn from `rng`."""
    lines = text.split("\n")
    content = lines[line].rstrip()
    indent = len(content) - len(content.lstrip())
    column = indent if kind == "whole-line" else rng.randint(indent + 1, len(content) - 1)
    line_start = sum(len(earlier) + 1 for earlier in lines[:line])
    line_end = line_start + len(lines[line])
    return Case(
        id=case_id,
        project=project,
        path=path,
        kind=kind,
        line=line,
        column=column,
        prefix=text[: line_start + column],
        suffix=text[line_end:],
        expected=content[column:],
    )


def _candidate_lines(project: Project, rng: random.Random) -> Iterator[tuple[str, int]]:
    """(file, line) of every code line of the project, in a seeded random order."""
    pairs = [(path, line) for path in project.files for line in code_lines(project.read(path))]
    rng.shuffle(pairs)
    return iter(pairs)


def build_cases(projects: Sequence[Project], count: int, seed: int) -> list[Case]:
    """`count` holes spread evenly over the projects and the kinds (module docstring)."""
    if not projects:
        raise ValueError("no project to take cases from")
    rng = random.Random(seed)
    candidates = {p.name: _candidate_lines(p, random.Random(f"{seed}:{p.name}")) for p in projects}
    texts: dict[tuple[str, str], str] = {}
    cases: list[Case] = []
    for index in range(count):
        project = projects[index % len(projects)]
        kind = KINDS[(index // len(projects)) % len(KINDS)]
        picked = next(candidates[project.name], None)
        if picked is None:
            raise ValueError(f"{project.name} has fewer code lines than the cases asked of it")
        path, line = picked
        text = texts.setdefault((project.name, path), project.read(path))
        cases.append(make_case(index, project.name, path, text, line, kind, rng))
    return cases


# --- the copy-only peer ----------------------------------------------------------------------


def _continuation(haystack: str, needle: str, skip_end: int | None) -> str | None:
    """The rest of the line after the first occurrence of `needle` that has code after it on
    its line, ignoring an occurrence that ends at `skip_end`; None when there is none."""
    start = haystack.find(needle)
    while start != -1:
        end = start + len(needle)
        if end != skip_end:
            newline = haystack.find("\n", end)
            rest = haystack[end : len(haystack) if newline == -1 else newline].rstrip()
            if rest.strip():
                return rest
        start = haystack.find(needle, start + 1)
    return None


def copy_peer(prefix: str, suffix: str, workspace_texts: Sequence[str]) -> str:
    """A completer that only copies: the longest suffix of `prefix` found in the buffer (other
    than at the cursor itself) or the workspace's files, continued to the end of that line.
    The buffer is searched first, then the files in the order given; "" when nothing matches.

    The longest match is found by bisection on its length: if a suffix of the prefix occurs with
    code after it, every shorter suffix occurs at the same place with the same continuation.
    """
    buffer = prefix + suffix
    cursor = len(prefix)

    def answer(length: int) -> str | None:
        needle = prefix[cursor - length :]
        found = _continuation(buffer, needle, cursor)
        for text in workspace_texts:
            if found is not None:
                break
            found = _continuation(text, needle, None)
        return found

    low, high, best = 1, len(prefix), ""
    while low <= high:
        middle = (low + high) // 2
        found = answer(middle)
        if found is None:
            high = middle - 1
        else:
            low, best = middle + 1, found
    return best


# --- scores ----------------------------------------------------------------------------------


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def exact_match(answer: str, expected: str) -> bool:
    """The answer's first line is the removed rest of the line (trailing blanks aside)."""
    return bool(answer) and first_line(answer) == first_line(expected)


def edit_similarity(answer: str, expected: str) -> float:
    """difflib's ratio of the first lines: 1.0 for equal, 0.0 for an empty answer."""
    if not answer:
        return 0.0
    return difflib.SequenceMatcher(None, first_line(answer), first_line(expected), False).ratio()
