"""Which files of the workspace folders the index reads: a bounded walk that honours .gitignore.

Source files are those the language registry knows by their extension. The trees files.py skips
(vendored and generated code, virtual environments, hidden directories), the secret-file globs,
and every .gitignore on the way (the folder's own and each directory's, with pathspec's git
semantics: a deeper file overrides a higher one, `!` re-includes) leave files out.

Bounds, so that an editor opened on a home directory costs a pass, not a crawl:
- at most `max_entries` directory entries are looked at; the walk stops after the directory
  that crosses the line (so some files of a huge tree are never seen);
- at most `max_files` files are kept, the newest (mtime) first;
- a file over `max_file_bytes` is left out on its size, before it is opened.

Symbolic links to directories are never followed, so no link can make a loop; a link to a file
counts as that file (once, however many links name it). Every file left out is counted by its
reason, for flashcode/stats.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from inference.cache.keys import excluded
from lsp_server.workspace.files import skipped
from prompts.languages import language_of

log = logging.getLogger(__name__)

GITIGNORE = ".gitignore"
MAX_GITIGNORE_BYTES = 1_000_000  # a bigger one is not a hand-written ignore file


@dataclass(frozen=True)
class WalkLimits:
    """How much of a workspace one index may look at."""

    max_entries: int = 200_000  # directory entries looked at before the walk stops
    max_files: int = 20_000  # files kept, newest first
    max_file_bytes: int = 1_000_000  # bigger files are data or generated code


DEFAULT_LIMITS = WalkLimits()


@dataclass(frozen=True)
class Candidate:
    """A file the walk found worth reading."""

    path: Path  # absolute, as found under its folder (links not resolved)
    mtime_ns: int
    size: int


@dataclass
class WalkResult:
    files: list[Candidate]  # newest first, at most max_files
    skipped: Counter[str] = field(default_factory=Counter)  # files (or trees) left out, by reason
    entries: int = 0  # directory entries looked at


# One level of .gitignore rules: the directory they live in, and the rules.
Rules = tuple[tuple[Path, GitIgnoreSpec], ...]


def _read_gitignore(directory: Path) -> GitIgnoreSpec | None:
    path = directory / GITIGNORE
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_GITIGNORE_BYTES)
        return GitIgnoreSpec.from_lines(data.decode("utf-8", errors="replace").splitlines())
    except (OSError, ValueError) as exc:  # unreadable, or a pattern pathspec refuses
        log.info("workspace index: %s ignored (%s)", path, exc)
        return None


def _ignored(rules: Rules, path: Path, is_dir: bool) -> bool:
    """Whether git would ignore `path` under these rules: the deepest file that decides wins."""
    decision = False
    for base, spec in rules:
        relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        found = spec.check_file(relative).include
        if found is not None:
            decision = found
    return decision


class SourceRules:
    """The rules that decide whether one workspace file belongs in the index, for the whole walk
    and for a single file that was created or changed later."""

    def __init__(
        self,
        folders: Sequence[Path],
        secret_globs: Sequence[str],
        limits: WalkLimits = DEFAULT_LIMITS,
    ) -> None:
        self.folders = tuple(Path(os.path.abspath(folder)) for folder in folders)
        self.secret_globs = tuple(secret_globs)
        self.limits = limits
        self._specs: dict[Path, GitIgnoreSpec | None] = {}

    def _spec(self, directory: Path) -> GitIgnoreSpec | None:
        if directory not in self._specs:
            self._specs[directory] = _read_gitignore(directory)
        return self._specs[directory]

    def forget_gitignores(self) -> None:
        """Read the .gitignore files again on the next question (one of them changed)."""
        self._specs.clear()

    def is_source(self, path: Path) -> str | None:
        """Why a file of this name is never indexed, or None: not source, or secret-looking."""
        if language_of("", path.name) is None:
            return "not_source"
        if excluded(str(path), self.secret_globs):
            return "secret"
        return None

    def folder_of(self, path: Path) -> Path | None:
        for folder in self.folders:
            if path == folder or folder in path.parents:
                return folder
        return None

    def admit(self, path: Path) -> str | None:
        """Why the file at `path` (absolute) is left out of the index, or None when it belongs:
        the walk's rules for one file, its directories' included."""
        path = Path(os.path.abspath(path))
        folder = self.folder_of(path)
        if folder is None:
            return "outside_folders"
        reason = self.is_source(path)
        if reason is not None:
            return reason
        rules: Rules = ()
        directory = folder
        for part in path.relative_to(folder).parts[:-1]:
            spec = self._spec(directory)
            rules = (*rules, (directory, spec)) if spec is not None else rules
            directory = directory / part
            if skipped(part):
                return "skipped_dir"
            if _ignored(rules, directory, is_dir=True):
                return "gitignored"
        spec = self._spec(directory)
        rules = (*rules, (directory, spec)) if spec is not None else rules
        if _ignored(rules, path, is_dir=False):
            return "gitignored"
        return None

    def walk(self) -> WalkResult:
        """Every source file of the folders that the rules admit, newest first, within limits."""
        result = WalkResult(files=[])
        found: dict[tuple[int, int], Candidate] = {}  # by (device, inode): links count once
        for folder in self.folders:
            if not self._walk_folder(folder, result, found):
                break
        newest = sorted(found.values(), key=lambda candidate: candidate.mtime_ns, reverse=True)
        kept = self.limits.max_files
        if len(newest) > kept:
            result.skipped["over_file_cap"] += len(newest) - kept
            log.info("workspace index: kept the %d newest of %d source files", kept, len(newest))
        result.files = newest[:kept]
        return result

    def _walk_folder(
        self, folder: Path, result: WalkResult, found: dict[tuple[int, int], Candidate]
    ) -> bool:
        """Walk one folder into `found`; False once the entry limit stopped the walk."""
        stack: list[tuple[Path, Rules]] = [(folder, ())]
        while stack:
            directory, rules = stack.pop()
            try:
                with os.scandir(directory) as listing:
                    entries = list(listing)
            except OSError as exc:
                log.info("workspace index: cannot list %s (%s)", directory, exc)
                result.skipped["unreadable"] += 1
                continue
            result.entries += len(entries)
            if any(entry.name == GITIGNORE for entry in entries):
                spec = self._spec(directory)
                if spec is not None:
                    rules = (*rules, (directory, spec))
            for entry in entries:
                subdirectory = self._visit(entry, rules, result, found)
                if subdirectory is not None:
                    stack.append((subdirectory, rules))
            if result.entries >= self.limits.max_entries:
                result.skipped["walk_stopped"] += 1
                log.info(
                    "workspace index: stopped looking after %d directory entries", result.entries
                )
                return False
        return True

    def _visit(
        self,
        entry: os.DirEntry[str],
        rules: Rules,
        result: WalkResult,
        found: dict[tuple[int, int], Candidate],
    ) -> Path | None:
        """Count or keep one directory entry; a directory to walk into is returned."""
        path = Path(entry.path)
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_link and entry.is_dir():  # a link to a directory: never followed
                result.skipped["linked_dir"] += 1
                return None
        except OSError:
            result.skipped["unreadable"] += 1
            return None
        if is_dir:
            if skipped(entry.name):
                result.skipped["skipped_dir"] += 1
            elif _ignored(rules, path, is_dir=True):
                result.skipped["gitignored"] += 1
            else:
                return path
            return None
        reason = self.is_source(path) or (
            "gitignored" if _ignored(rules, path, is_dir=False) else None
        )
        if reason is None:
            reason = self._keep(entry, path, found)
        if reason is not None:
            result.skipped[reason] += 1
        return None

    def _keep(
        self,
        entry: os.DirEntry[str],
        path: Path,
        found: dict[tuple[int, int], Candidate],
    ) -> str | None:
        try:
            info = entry.stat()  # follows a link: a dangling one or a loop raises here
        except OSError:
            return "unreadable"
        if not stat.S_ISREG(info.st_mode):
            return "not_regular"  # a FIFO, a socket, a device: reading could block or never end
        if info.st_size == 0:
            return "empty"
        if info.st_size > self.limits.max_file_bytes:
            return "too_big"
        key = (info.st_dev, info.st_ino)
        if key in found:
            return "duplicate"
        found[key] = Candidate(path, info.st_mtime_ns, info.st_size)
        return None


def folders_in(paths: Iterable[Path]) -> list[Path]:
    """The folders to walk: each once, none inside another (it would be walked twice)."""
    unique = sorted({Path(os.path.abspath(path)) for path in paths})
    return [path for path in unique if not any(other in path.parents for other in unique)]
