"""CRUD patterns learned from the code already in the workspace, not only the open documents.

When the editor has finished initializing, the workspace folders are walked once in the
background: source files of a language with a grammar (newest first, vendored and generated
trees skipped, secret-looking files never read) are mined for pattern examples, which go to the
pattern cache as the user's own code. Mining runs on a worker thread one file at a time, so a
completion waits for at most one file.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inference.cache.keys import excluded
from lsp_server.completion.cache import CacheState
from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS, CacheSettings
from lsp_server.workspace.files import skipped
from prompts.languages import SUPPORTED_LANGUAGES, language_of
from prompts.patterns import PatternExample, PatternLearner, mine

log = logging.getLogger(__name__)

MAX_FILES = 2_000  # newest first: a huge monorepo is sampled, not read whole
MAX_FILE_BYTES = 512_000  # bigger files are data or generated code
PAUSE_S = 0.005  # between files: the pass yields the interpreter to completions
# Directory entries looked at before the walk stops: an editor opened in a home directory
# must not make the server crawl the whole disk.
MAX_SCANNED = 50_000


@dataclass
class WorkspaceLearning:
    """What the background pass has done, for flashcode/stats."""

    files: int = 0  # files found to mine
    mined: int = 0  # files mined so far
    unchanged: int = 0  # files skipped: mined by an earlier start and not changed since
    examples: int = 0  # pattern examples they gave
    done: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "files": self.files,
            "mined": self.mined,
            "unchanged": self.unchanged,
            "examples": self.examples,
            "done": self.done,
        }


@dataclass(frozen=True)
class SourceFile:
    path: Path
    language: str  # its grammar
    stamp: tuple[int, int]  # (mtime in ns, size): unchanged files are not mined again


def source_files(
    roots: Iterable[Path],
    secret_globs: Sequence[str],
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_FILE_BYTES,
    max_scanned: int = MAX_SCANNED,
) -> list[SourceFile]:
    """The workspace's source files worth mining, newest first."""
    found: dict[Path, SourceFile] = {}
    scanned = 0
    for root in roots:
        for folder, directories, names in os.walk(root):
            scanned += len(directories) + len(names)
            if scanned > max_scanned:
                log.info("workspace pass: stopped looking after %d entries", max_scanned)
                directories.clear()
                break
            directories[:] = [d for d in directories if not skipped(d)]
            for name in names:
                path = Path(folder, name)
                language = language_of("", name)
                if language not in SUPPORTED_LANGUAGES or excluded(str(path), secret_globs):
                    continue
                try:
                    info = path.stat()
                except OSError:
                    continue
                if 0 < info.st_size <= max_bytes:
                    resolved = path.resolve()
                    stamp = (info.st_mtime_ns, info.st_size)
                    found[resolved] = SourceFile(resolved, language, stamp)
    newest = sorted(found.values(), key=lambda source: source.stamp[0], reverse=True)
    return newest[:max_files]


def mine_file(path: Path, language: str) -> list[PatternExample]:
    """The examples in one file's first lines (as the learner first mines a document)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # unreadable or not text: nothing to learn
    count = text.count("\n") + 1
    try:
        return mine(text, language, line_range=(0, min(count, PatternLearner.FIRST_LINES)))
    except Exception:  # one odd file must not end the pass for the others
        log.exception("workspace pass: could not mine %s", path)
        return []


async def learn_workspace(
    roots: Sequence[Path],
    secret_globs: Sequence[str],
    store: Callable[[list[PatternExample]], None],
    progress: WorkspaceLearning,
    still_wanted: Callable[[], bool],
    mined_before: dict[str, list[int]] | None = None,
    save_mined: Callable[[dict[str, list[int]]], None] = lambda _: None,
) -> None:
    """Mine the workspace's files and `store` each file's examples; stops when `still_wanted()`
    turns false (the cache was switched off, or the server is shutting down).

    `mined_before` lists the files an earlier start stored, with their (mtime, size): those that
    have not changed are skipped. `save_mined` keeps the updated list for the next start.
    """
    mined = dict(mined_before or {})
    files = await asyncio.to_thread(source_files, roots, secret_globs)
    progress.files = len(files)
    for index, source in enumerate(files):
        if not still_wanted():
            break
        key, stamp = str(source.path), list(source.stamp)
        if mined.get(key) == stamp:
            progress.unchanged += 1
            continue
        examples = await asyncio.to_thread(mine_file, source.path, source.language)
        if examples:
            store(examples)
        mined[key] = stamp
        progress.mined += 1
        progress.examples += len(examples)
        if index % 200 == 199:
            save_mined(mined)
        await asyncio.sleep(PAUSE_S)
    save_mined(mined)
    progress.done = True
    log.info(
        "learned %d pattern examples from %d workspace files (%d unchanged since the last start)",
        progress.examples,
        progress.mined,
        progress.unchanged,
    )


def workspace_pass(
    roots: Sequence[Path],
    settings: CacheSettings,
    state: CacheState,
    progress: WorkspaceLearning,
    stopping: Callable[[], bool],
) -> Coroutine[None, None, None] | None:
    """The one background pass over the workspace's files, or None when the settings do not
    want it or there is no folder to walk. It stops when the cache closes or `stopping()`."""
    if not (settings.enabled and settings.learn_workspace and roots) or state.cache is None:
        return None
    return learn_workspace(
        roots,
        (*DEFAULT_SECRET_GLOBS, *settings.exclude_globs),
        state.learn_examples,
        progress,
        lambda: state.cache is not None and not stopping(),
        state.cache.mined_files(),
        lambda files: state.cache.save_mined_files(files) if state.cache else None,
    )
