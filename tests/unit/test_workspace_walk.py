"""Which workspace files the index reads: .gitignore, skips, secrets, bounds, and files that
cannot or must not be read (each is logged and skipped, and the walk stays within its bounds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS
from lsp_server.workspace import reader
from lsp_server.workspace.reader import read_source
from lsp_server.workspace.walk import DEFAULT_LIMITS, SourceRules, WalkLimits, folders_in

MB = 1_000_000


def write(path: Path, text: str = "x = 1\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def walked(root: Path, limits: WalkLimits = DEFAULT_LIMITS) -> tuple[set[str], dict[str, int]]:
    result = SourceRules([root], DEFAULT_SECRET_GLOBS, limits).walk()
    return {c.path.relative_to(root).as_posix() for c in result.files}, dict(result.skipped)


def test_gitignore_files_at_the_root_and_below_decide_with_git_semantics(tmp_path: Path) -> None:
    write(tmp_path / ".gitignore", "*.gen.py\nout/\n/top_only.py\n")
    write(tmp_path / "app" / ".gitignore", "local_*.py\n!local_keep.py\n")
    for name in ("app/main.py", "app/local_a.py", "app/local_keep.py", "app/x.gen.py"):
        write(tmp_path / name)
    write(tmp_path / "out" / "built.py")
    write(tmp_path / "top_only.py")
    write(tmp_path / "app" / "top_only.py")  # "/top_only.py" anchors at the root only
    files, skipped = walked(tmp_path)
    assert files == {"app/main.py", "app/local_keep.py", "app/top_only.py"}
    assert skipped["gitignored"] == 4  # local_a.py, x.gen.py, out/, /top_only.py
    rules = SourceRules([tmp_path], DEFAULT_SECRET_GLOBS)
    assert rules.admit(tmp_path / "app" / "local_b.py") == "gitignored"
    assert rules.admit(tmp_path / "app" / "local_keep.py") is None
    assert rules.admit(tmp_path / "out" / "new.py") == "gitignored"
    assert rules.admit(tmp_path / "node_modules" / "lib.js") == "skipped_dir"
    assert rules.admit(tmp_path.parent / "elsewhere.py") == "outside_folders"


def test_vendored_trees_secrets_and_other_files_are_left_out(tmp_path: Path) -> None:
    write(tmp_path / "src" / "app.ts")
    write(tmp_path / "node_modules" / "pkg" / "index.js")
    write(tmp_path / ".venv" / "lib" / "site.py")
    write(tmp_path / "src" / "secret_keys.py")
    write(tmp_path / "README.md")
    write(tmp_path / "src" / "empty.py", "")
    files, skipped = walked(tmp_path)
    assert files == {"src/app.ts"}
    assert skipped == {"skipped_dir": 2, "secret": 1, "not_source": 1, "empty": 1}


def test_a_workspace_of_100000_files_keeps_the_newest_20000(tmp_path: Path) -> None:
    for folder in range(100):
        directory = tmp_path / f"pkg{folder:03d}"
        directory.mkdir()
        for number in range(1000):
            (directory / f"m{number:04d}.py").write_bytes(b"x = 1\n")
    newest, oldest = tmp_path / "pkg000" / "m0000.py", tmp_path / "pkg099" / "m0999.py"
    os.utime(newest, ns=(4 * 10**18, 4 * 10**18))
    os.utime(oldest, ns=(10**9, 10**9))
    result = SourceRules([tmp_path], DEFAULT_SECRET_GLOBS).walk()
    assert len(result.files) == 20_000
    assert result.skipped == {"over_file_cap": 80_000}
    assert result.files[0].path == newest
    assert oldest not in {c.path for c in result.files}


def test_the_walk_stops_after_its_entry_limit(tmp_path: Path) -> None:
    for number in range(30):
        write(tmp_path / f"d{number}" / "a.py")
    files, skipped = walked(tmp_path, WalkLimits(max_entries=40))
    assert skipped["walk_stopped"] == 1
    assert 0 < len(files) < 30


def test_links_fifos_loops_and_huge_files_are_skipped_without_reading(tmp_path: Path) -> None:
    write(tmp_path / "pkg" / "real.py")
    (tmp_path / "pkg" / "up").symlink_to(tmp_path)  # a loop through a linked directory
    (tmp_path / "pkg.py").mkdir()  # a directory named like a source file
    write(tmp_path / "pkg.py" / "inner.py")
    (tmp_path / "gone.py").symlink_to(tmp_path / "missing.py")  # dangling
    (tmp_path / "loop.py").symlink_to(tmp_path / "loop.py")  # a link to itself
    os.mkfifo(tmp_path / "pipe.py")  # reading it would block forever
    with open(tmp_path / "huge.py", "wb") as handle:  # 50 MB, sparse: never read
        handle.truncate(50 * MB)
    (tmp_path / "alias.py").symlink_to(tmp_path / "pkg" / "real.py")  # the same file again
    files, skipped = walked(tmp_path)
    assert files == {"pkg/real.py", "pkg.py/inner.py"} or files == {"alias.py", "pkg.py/inner.py"}
    assert skipped == {
        "linked_dir": 1,
        "unreadable": 2,
        "not_regular": 1,
        "too_big": 1,
        "duplicate": 1,
    }


def test_reading_leaves_out_binary_minified_and_unreadable_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reason(name: str, data: bytes) -> str | None:
        path = tmp_path / name
        path.write_bytes(data)
        return read_source(path, MB).reason

    assert reason("ok.py", b"def f():\n    return 1\n") is None
    assert reason("blob.py", b"x = 1\n\x00\x01\x02") == "binary"
    assert reason("bundle.js", b"var a=1;" * 3000) == "minified"
    assert reason("wide.js", (b"x" * 400 + b"\n") * 20) == "minified"
    assert reason("latin.py", b"name = '\xe9'\n") == "not_utf8"
    assert reason("big.py", b"x = 1\n" * 200_000) == "too_big"
    assert read_source(tmp_path / "missing.py", MB).reason == "unreadable"
    assert read_source(tmp_path, MB).reason == "not_regular"  # a directory
    os.mkfifo(tmp_path / "pipe.py")
    assert read_source(tmp_path / "pipe.py", MB).reason == "not_regular"  # without blocking

    def failing_read(descriptor: int, size: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(reader.os, "read", failing_read)
    assert reason("bad_disk.py", b"x = 1\n") == "unreadable"


def test_a_byte_order_mark_is_not_indexed_and_the_stamp_is_the_files(tmp_path: Path) -> None:
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbfx = 1\n")
    read = read_source(path, MB)
    assert read.text == "x = 1\n"
    assert (read.stamp.mtime_ns, read.stamp.size) == (path.stat().st_mtime_ns, 9)


def test_nested_folders_are_walked_once(tmp_path: Path) -> None:
    inner = tmp_path / "a" / "b"
    assert folders_in([inner, tmp_path, tmp_path / "a", tmp_path]) == [tmp_path]
