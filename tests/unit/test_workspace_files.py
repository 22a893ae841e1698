"""Which workspace files are read (lsp_server.workspace.files): one list of skipped trees, and
a walk bounded in files and size."""

from __future__ import annotations

from pathlib import Path

from lsp_server.workspace.files import SKIPPED_DIRS, VIRTUAL_ENV_DIRS, project_texts, skipped


def test_vendored_generated_hidden_and_virtual_env_trees_are_skipped() -> None:
    for name in (*VIRTUAL_ENV_DIRS, "node_modules", "site-packages", "build", "__pycache__"):
        assert skipped(name) and (name in SKIPPED_DIRS or name.startswith("."))
    assert skipped(".mypy_cache")
    assert not skipped("src") and not skipped("tests")


def test_the_walk_reads_python_sources_only_and_stops_at_its_limit(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    for n in range(5):
        (tmp_path / "pkg" / f"m{n}.py").write_text(f"# module {n}\n")
    (tmp_path / "notes.txt").write_text("not python")
    (tmp_path / "big.py").write_text("#" * 300_000)
    for folder in ("node_modules", ".venv", ".hidden"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "lib.py").write_text("# someone else's\n")
    texts = list(project_texts(tmp_path))
    assert sorted(texts) == [f"# module {n}\n" for n in range(5)]
    assert len(list(project_texts(tmp_path, limit=2))) == 2
