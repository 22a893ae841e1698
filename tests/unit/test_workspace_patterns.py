"""Finding the workspace files whose code teaches CRUD patterns."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from lsp_server.settings_sections import DEFAULT_SECRET_GLOBS
from lsp_server.workspace.patterns import (
    WorkspaceLearning,
    learn_workspace,
    mine_file,
    source_files,
)

REPOSITORY = (
    "class UserRepository:\n    def __init__(self, db):\n        self.db = db\n\n"
    "    def get_user(self, user_id):\n        return self.db.get(User, user_id)\n"
)


def write(path: Path, text: str, mtime: float = 1_000_000.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def test_source_files_skip_vendored_hidden_secret_big_and_foreign_files(tmp_path: Path) -> None:
    old = write(tmp_path / "app" / "users.py", REPOSITORY, mtime=1_000_000)
    new = write(tmp_path / "web" / "routes.ts", "export const x = 1;\n", mtime=2_000_000)
    write(tmp_path / "node_modules" / "lib" / "index.js", "module.exports = 1;\n")
    write(tmp_path / ".venv" / "lib" / "site.py", REPOSITORY)
    write(tmp_path / "app" / "secret_keys.py", REPOSITORY)
    write(tmp_path / "app" / "notes.txt", "not code\n")
    write(tmp_path / "app" / "empty.py", "")
    write(tmp_path / "data" / "huge.py", "x = 1\n" * 200_000)
    found = source_files([tmp_path], DEFAULT_SECRET_GLOBS)
    # newest first
    assert [(f.path, f.language) for f in found] == [
        (new.resolve(), "typescript"),
        (old.resolve(), "python"),
    ]
    assert source_files([tmp_path], DEFAULT_SECRET_GLOBS, max_files=1) == found[:1]
    assert source_files([tmp_path], (*DEFAULT_SECRET_GLOBS, "*.ts")) == found[1:]
    # A root the size of a home directory: the walk stops instead of crawling it all.
    assert source_files([tmp_path], DEFAULT_SECRET_GLOBS, max_scanned=3) == []


def test_a_workspace_file_is_mined_like_an_open_document(tmp_path: Path) -> None:
    examples = mine_file(write(tmp_path / "users.py", REPOSITORY), "python")
    assert any("return self.db.get(" in e.lines[0] for e in examples)
    assert {e.entity for e in examples} == {"user"}
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00")
    assert mine_file(binary, "python") == []
    assert mine_file(tmp_path / "gone.py", "python") == []


def test_a_restart_mines_only_the_files_changed_since_the_last_pass(tmp_path: Path) -> None:
    users = write(tmp_path / "users.py", REPOSITORY, mtime=1_000_000)
    write(tmp_path / "orders.py", REPOSITORY.replace("User", "Order").replace("user", "order"))
    saved: dict[str, list[int]] = {}

    def one_pass(before: dict[str, list[int]]) -> tuple[WorkspaceLearning, list[str]]:
        progress, entities = WorkspaceLearning(), []
        asyncio.run(
            learn_workspace(
                [tmp_path], DEFAULT_SECRET_GLOBS,
                lambda examples: entities.extend(e.entity for e in examples),
                progress, lambda: True, before, saved.update,
            )
        )  # fmt: skip
        return progress, entities

    first, entities = one_pass({})
    assert (first.mined, first.unchanged, first.done) == (2, 0, True)
    assert set(entities) == {"user", "order"}
    write(users, REPOSITORY.replace("User", "Customer").replace("user", "customer"), 3_000_000)
    second, entities = one_pass(dict(saved))
    assert (second.mined, second.unchanged) == (1, 1)
    assert set(entities) == {"customer"}
