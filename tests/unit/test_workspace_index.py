"""The workspace index with the default model's real tokenizer: built in the background,
updated by buffers and files, bounded by its budget, and saved for the next start."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inference.router import default_model_dir
from inference.tokenizer import Tokenizer
from lsp_server.workspace.encoding import Encoder, pieces, safe_cut
from lsp_server.workspace.index import ProgressEvent, WorkspaceIndex
from lsp_server.workspace.persist import SUBDIRECTORY
from lsp_server.workspace.segments import peak_bytes_per_token

TOKENIZER = Tokenizer.from_model_dir(default_model_dir())
ARTICLE = "class Article:\n    def publish(self):\n        self.state = 'published'\n"


def wait(index: WorkspaceIndex, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The index's stats once `done` holds of them (the worker is a thread: poll it)."""
    stats: dict[str, Any] = {}
    for _ in range(1000):
        stats = index.stats()
        if stats["state"] != "building" and done(stats):
            return stats
        time.sleep(0.02)
    raise AssertionError(f"the index never got there: {stats}")


def newer(generation: int) -> Callable[[dict[str, Any]], bool]:
    return lambda stats: stats["generation"] > generation


@pytest.fixture
def make_index(tmp_path: Path) -> Iterator[Callable[..., WorkspaceIndex]]:
    made: list[WorkspaceIndex] = []

    def make(budget_mb: float = 64, cache: bool = True, **options: Any) -> WorkspaceIndex:
        index = WorkspaceIndex(
            TOKENIZER,
            fingerprint="test",
            cache_dir=tmp_path / "cache" if cache else None,
            budget_bytes=int(budget_mb * 2**20),
            settle_seconds=0.01,
            **options,
        )
        made.append(index)
        return index

    yield make
    for index in made:
        index.close()


def texts(index: WorkspaceIndex) -> dict[str, str]:
    return {path.name: text for path, text in index.files()}


def test_the_build_runs_in_the_background_and_finds_the_users_own_continuations(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "models.py").write_text(ARTICLE)
    (root / "notes.txt").write_text("not source\n")
    events: list[ProgressEvent] = []
    index = make_index(on_progress=events.append)
    assert index.sources() == ()
    index.start([root])
    stats = wait(index, lambda s: s["ready"])
    assert (stats["files"], stats["skipped"]) == (1, {"not_source": 1})
    (segment,) = index.sources()
    ids = TOKENIZER.encode(ARTICLE)
    match = segment.longest_match(ids[:12])
    assert match is not None and match.counts == {ids[12]: 1}
    assert texts(index) == {"models.py": ARTICLE}
    for _ in range(500):  # the end goes out just after the index is ready
        if events[-1].kind == "end":
            break
        time.sleep(0.01)
    assert [e.kind for e in (events[0], events[-1])] == ["begin", "end"]
    assert events[-1].message == f"1 files, {stats['tokens']:,} tokens"


def test_open_buffers_override_their_files_until_closed(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "models.py").write_text(ARTICLE)
    index = make_index()
    index.start([root])
    stats = wait(index, lambda s: s["ready"])
    edited = ARTICLE.replace("published", "draft")
    index.set_open_document(root / "models.py", edited)
    index.set_open_document(tmp_path / "scratch.py", "x = 1\n")  # outside the folders: indexed
    index.set_open_document(tmp_path / ".env", "TOKEN=abc\n")  # secret-looking: never
    stats = wait(index, newer(stats["generation"]))
    assert texts(index) == {"models.py": edited, "scratch.py": "x = 1\n"}
    assert stats["segments"] == 2  # the old text is masked in the base, the new one in the delta
    base = index.sources()[-1]
    article = TOKENIZER.encode(ARTICLE)
    assert base.longest_match(article[:12]) is None or base.longest_match(article[:12]).length < 12
    index.close_document(root / "models.py")
    index.close_document(tmp_path / "scratch.py")
    wait(index, newer(stats["generation"]))
    assert texts(index) == {"models.py": ARTICLE}


def test_created_changed_and_deleted_files_update_the_index(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text("a = 1\n")
    (root / "b.py").write_text("b = 1\n")
    index = make_index()
    index.start([root])
    stats = wait(index, lambda s: s["ready"])
    (root / "a.py").write_text("a = 2\n")
    (root / "b.py").unlink()
    (root / "c.py").write_text("c = 1\n")
    (root / "ignored.py").write_text("i = 1\n")
    (root / ".gitignore").write_text("ignored.py\n")
    index.files_changed([root / "c.py", root / "ignored.py"], [root / "a.py"], [root / "b.py"])
    stats = wait(index, newer(stats["generation"]))
    assert texts(index) == {"a.py": "a = 2\n", "c.py": "c = 1\n"}
    # A .gitignore that changes means a new walk: ignored.py goes, what it un-ignores comes.
    (root / ".gitignore").write_text("c.py\n")
    index.files_changed([], [root / ".gitignore"], [])
    wait(index, newer(stats["generation"]))
    assert texts(index) == {"a.py": "a = 2\n", "ignored.py": "i = 1\n"}


def test_past_the_budget_the_newest_files_are_kept(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    body = "".join(f"value_{n} = compute({n}, 'text {n}')\n" for n in range(2000))
    for age in range(6):
        path = root / f"age{age}.py"
        path.write_text(body)
        os.utime(path, ns=(10**18 - age * 10**12, 10**18 - age * 10**12))
    per_file = len(TOKENIZER.encode(body))
    budget = 3.5 * per_file * peak_bytes_per_token(2) / 2**20  # room for three and a half
    index = make_index(budget_mb=budget)
    index.start([root])
    stats = wait(index, lambda s: s["ready"])
    assert sorted(texts(index)) == ["age0.py", "age1.py", "age2.py"]
    assert stats["skipped"] == {"over_budget": 3}
    assert stats["tokens"] <= stats["max_tokens"]
    # A new file evicts the oldest one rather than overflow the budget.
    (root / "new.py").write_text(body)
    index.files_changed([root / "new.py"], [], [])
    stats = wait(index, newer(stats["generation"]))
    assert sorted(texts(index)) == ["age0.py", "age1.py", "new.py"]
    assert stats["evicted"] == 1 and stats["tokens"] <= stats["max_tokens"]


def test_a_restart_reuses_the_saved_index_and_reads_only_changed_files(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (root / name).write_text(f"{name[0]} = 1\n")
    first = make_index()
    first.start([root])
    wait(first, lambda s: s["ready"])
    first.close()
    saved = next((tmp_path / "cache" / SUBDIRECTORY).iterdir())
    assert {oct(p.stat().st_mode & 0o777) for p in saved.iterdir()} == {"0o600"}
    assert oct(saved.stat().st_mode & 0o777) == "0o700"

    again = make_index()
    again.start([root])
    stats = wait(again, lambda s: s["ready"])
    assert (stats["reused_files"], stats["tokenized_files"]) == (3, 0)
    assert stats["restored_suffix_array"] is True
    assert texts(again) == {"a.py": "a = 1\n", "b.py": "b = 1\n", "c.py": "c = 1\n"}
    again.close()

    (root / "b.py").write_text("b = 22\n")
    third = make_index()
    third.start([root])
    stats = wait(third, lambda s: s["ready"])
    assert (stats["reused_files"], stats["tokenized_files"]) == (2, 1)
    assert stats["restored_suffix_array"] is False
    assert texts(third)["b.py"] == "b = 22\n"


def test_a_corrupt_saved_index_is_rebuilt_with_one_log_line(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex], caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text(ARTICLE)
    first = make_index()
    first.start([root])
    wait(first, lambda s: s["ready"])
    first.close()
    saved = next((tmp_path / "cache" / SUBDIRECTORY).iterdir())
    data = bytearray((saved / "suffixes.bin").read_bytes())
    data[0] ^= 0xFF
    (saved / "suffixes.bin").write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="lsp_server.workspace"):
        again = make_index()
        again.start([root])
        stats = wait(again, lambda s: s["ready"])
    assert (stats["reused_files"], stats["tokenized_files"]) == (0, 1)
    unusable = [r for r in caplog.records if "unusable" in r.getMessage()]
    assert len(unusable) == 1 and "checksum" in unusable[0].getMessage()
    again.close()  # its worker saves the rebuilt index: let it finish before the manifest breaks
    (saved / "manifest.json").write_text("{not json")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lsp_server.workspace"):
        third = make_index()
        third.start([root])
        assert wait(third, lambda s: s["ready"])["tokenized_files"] == 1
    assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1


def test_a_workspace_of_bad_files_is_indexed_from_its_good_one(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "good.py").write_text(ARTICLE)
    (root / "blob.py").write_bytes(b"\x00\x01" * 100)
    (root / "bundle.min.js").write_text("var a=1;" * 5000)
    with open(root / "huge.py", "wb") as handle:
        handle.truncate(50 * 2**20)
    os.mkfifo(root / "pipe.py")
    (root / "gone.py").symlink_to(root / "missing.py")
    (root / "back").symlink_to(root)
    index = make_index()
    index.start([root])
    stats = wait(index, lambda s: s["ready"])
    assert stats["files"] == 1
    assert stats["skipped"] == {
        "binary": 1, "minified": 1, "too_big": 1, "not_regular": 1, "unreadable": 1,
        "linked_dir": 1,
    }  # fmt: skip


def test_many_changes_are_merged_into_a_new_base(
    tmp_path: Path, make_index: Callable[..., WorkspaceIndex]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text(ARTICLE)
    index = make_index(cache=False)
    index.start([root])
    stats = wait(index, lambda s: s["ready"])
    big = "".join(f"item_{n} = {n}\n" for n in range(6000))  # well past the delta's share
    index.set_open_document(root / "b.py", big)
    stats = wait(index, lambda s: s["merges"] == 1)
    assert stats["segments"] == 1 and stats["delta_tokens"] == 0
    assert sorted(texts(index)) == ["a.py", "b.py"]


def test_long_texts_are_encoded_in_pieces_to_the_same_ids() -> None:
    encoder = Encoder(TOKENIZER, 2)
    assert encoder.cut is not None
    text = "".join(f"def f{n}(x):\n    return x + {n}  # é\n\n\n" for n in range(4000))
    assert len(pieces(text, encoder.cut)) > 2
    assert encoder.encode([text])[0].tolist() == TOKENIZER.encode(text)
    # A tokenizer that starts every text with a space would change ids at each cut.
    assert safe_cut(lambda texts: [[0, *TOKENIZER.encode(t)] for t in texts]) is None
