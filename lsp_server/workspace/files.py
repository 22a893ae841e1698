"""Which of the workspace's files are worth reading, and a bounded walk over them.

One list of directories to skip serves every reader of the workspace (pattern learning, the
docstring style sample, test discovery): trees of other people's or generated code, and virtual
environments. Hidden directories are skipped as well, by whoever walks. The walk here is bounded
in files and file size, so an editor opened on a home directory costs a few reads, not a crawl;
the price is that a big project is sampled, not read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# Where a project keeps its own interpreter, in the order looked for.
VIRTUAL_ENV_DIRS = (".venv", "venv", "env")
# Trees that hold other people's or generated code, or nothing worth learning from.
SKIPPED_DIRS = frozenset(
    {
        *VIRTUAL_ENV_DIRS,
        ".git",
        ".tox",
        "__pycache__",
        "build",
        "dist",
        "node_modules",
        "site-packages",
        "target",
        "vendor",
    }
)
SAMPLE_FILES = 40  # Python files read by `project_texts` unless told otherwise
MAX_SAMPLE_BYTES = 200_000  # bigger files are data or generated code


def skipped(directory: str) -> bool:
    """Whether a walk leaves the directory of this name out: a skipped tree or a hidden one."""
    return directory in SKIPPED_DIRS or directory.startswith(".")


def project_texts(root: Path, limit: int = SAMPLE_FILES) -> Iterator[str]:
    """Python sources of the project, for learning its style: a bounded walk, big files skipped."""
    count = 0
    stack = [root]
    while stack and count < limit:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir():
                if not skipped(entry.name):
                    stack.append(entry)
            elif entry.suffix == ".py" and count < limit:
                try:
                    if entry.stat().st_size < MAX_SAMPLE_BYTES:
                        count += 1
                        yield entry.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
