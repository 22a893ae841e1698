"""The retrieval step: a window index of the workspace's files, built off the request path."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import get_args

import pytest

from lsp_server.completion.context import build_context
from lsp_server.completion.retrieval_step import FolderFiles, RetrievalStep
from lsp_server.settings import Settings, merge
from lsp_server.settings_sections import Retrieval
from prompts.context import Document
from prompts.retrieval import SCORERS

ROOT = Path("/ws")
HELPERS = (
    "def load_user_record(user_id, database):\n"
    "    record = database.fetch_user(user_id)\n"
    "    return UserRecord.from_row(record)\n"
)
TYPED = "def find_user(user_id, database):\n    record = database.fetch_user(user_id)\n    "


class Files:
    """A workspace index's `files()`, counting its calls."""

    def __init__(self, files: dict[str, str]) -> None:
        self.texts = files
        self.calls = 0

    def files(self) -> list[tuple[Path, str]]:
        self.calls += 1
        return [(ROOT / path, text) for path, text in self.texts.items()]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def settings(retrieval: str = "jaccard", enabled: bool = True) -> Settings:
    result = Settings()
    result.workspace.retrieval = retrieval  # type: ignore[assignment]
    result.workspace.enabled = enabled
    return result


def request(text: str = TYPED, open_documents: tuple[Document, ...] = ()) -> object:
    current = Document("file:///ws/pkg/service.py", "/ws/pkg/service.py", "python", text)
    return build_context(current, len(text), open_documents, Settings())


def ready(step: RetrievalStep, source: Files, chosen: Settings) -> None:
    """What a request does, then the wait a test needs for the background build."""
    step.snippets(request(), chosen, source)  # type: ignore[arg-type]
    step.refresh(source, chosen.workspace.retrieval, wait=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("scorer", ["bm25", "jaccard"])
def test_a_closed_workspace_file_is_offered_once_the_index_is_built(scorer: str) -> None:
    step = RetrievalStep(clock=Clock())
    step.set_roots([ROOT])
    source = Files({"pkg/helpers.py": HELPERS, "pkg/service.py": "old = 1\n"})
    chosen = settings(scorer)
    ready(step, source, chosen)
    found = step.snippets(request(), chosen, source)  # type: ignore[arg-type]
    assert found is not None and [s.path for s in found] == ["pkg/helpers.py"]
    assert found[0].text == HELPERS
    assert step.report()["files"] == 2 and step.report()["indexing"] is False


def test_a_request_never_waits_for_the_build() -> None:
    release = threading.Event()

    class Slow(Files):
        def files(self) -> list[tuple[Path, str]]:
            release.wait(30)
            return super().files()

    step = RetrievalStep(clock=Clock())
    source = Slow({"pkg/helpers.py": HELPERS})
    assert step.snippets(request(), settings(), source) is None  # type: ignore[arg-type]
    assert step.report()["indexing"] is True
    release.set()
    step.refresh(source, "jaccard", wait=True)
    assert step.snippets(request(), settings(), source)  # type: ignore[arg-type]


def test_retrieval_off_or_workspace_off_builds_nothing() -> None:
    step = RetrievalStep(clock=Clock())
    step.set_roots([ROOT])
    source = Files({"pkg/helpers.py": HELPERS})
    assert step.snippets(request(), settings("off"), source) is None  # type: ignore[arg-type]
    assert step.snippets(request(), settings(enabled=False), source) is None  # type: ignore[arg-type]
    step.warm(settings("off"), source)
    assert source.calls == 0 and step.report()["builds"] == 0


def test_the_file_set_is_looked_at_again_only_after_the_interval() -> None:
    clock = Clock()
    step = RetrievalStep(interval_s=10, clock=clock)
    source = Files({"pkg/helpers.py": HELPERS})
    ready(step, source, settings())
    calls = source.calls
    step.snippets(request(), settings(), source)  # type: ignore[arg-type]
    assert source.calls == calls, "within the interval no check runs"
    clock.now += 11
    ready(step, source, settings())
    assert source.calls == calls + 1
    assert step.report()["builds"] == 1, "the same files are not indexed again"
    source.texts["pkg/more.py"] = HELPERS
    clock.now += 11
    ready(step, source, settings())
    assert step.report()["builds"] == 2 and step.report()["files"] == 2


def test_typing_in_an_open_document_causes_no_rebuild() -> None:
    clock = Clock()
    step = RetrievalStep(interval_s=10, clock=clock)
    step.set_roots([ROOT])
    source = Files({"pkg/helpers.py": HELPERS, "pkg/open.py": "a = 1\n"})
    opened = Document("file:///ws/pkg/open.py", "/ws/pkg/open.py", "python", "a = 1\n")
    context = request(open_documents=(opened,))
    step.snippets(context, settings(), source)  # type: ignore[arg-type]
    step.refresh(source, "jaccard", wait=True)
    source.texts["pkg/open.py"] = "a = 12\n"  # the index's copy of the open buffer changed
    clock.now += 11
    step.snippets(context, settings(), source)  # type: ignore[arg-type]
    step.refresh(source, "jaccard", wait=True)
    assert step.report()["builds"] == 1


def test_a_scorer_change_rebuilds_at_once() -> None:
    step = RetrievalStep(clock=Clock())
    source = Files({"pkg/helpers.py": HELPERS})
    ready(step, source, settings("jaccard"))
    step.snippets(request(), settings("bm25"), source)  # type: ignore[arg-type]
    step.refresh(source, "bm25", wait=True)
    assert step.snippets(request(), settings("bm25"), source)  # type: ignore[arg-type]
    assert step.report()["builds"] == 2


def test_a_source_that_fails_costs_retrieval_not_the_request() -> None:
    class Broken:
        def files(self) -> list[tuple[Path, str]]:
            raise OSError("disk gone")

    step = RetrievalStep(clock=Clock())
    step.refresh(Broken(), "jaccard", wait=True)
    assert step.snippets(request(), settings(), Broken()) is None  # type: ignore[arg-type]
    assert step.report()["builds"] == 0


def test_without_a_workspace_index_the_folders_are_read_secrets_left_out(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "helpers.py").write_text(HELPERS, encoding="utf-8")
    (tmp_path / "pkg" / "secret_keys.py").write_text(HELPERS, encoding="utf-8")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "vendored.py").write_text(HELPERS, encoding="utf-8")
    step = RetrievalStep(clock=Clock())
    step.set_roots([tmp_path])
    step.warm(settings(), None)
    step.refresh(step._folder_files(settings()), "jaccard", wait=True)  # type: ignore[arg-type]
    text = TYPED
    current = Document("file:///x/service.py", str(tmp_path / "service.py"), "python", text)
    found = step.snippets(build_context(current, len(text), (), Settings()), settings(), None)
    assert found is not None and [s.path for s in found] == ["pkg/helpers.py"]
    assert step.report()["source"] == "workspace folders"


def test_folder_files_reads_a_changed_file_again(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("first = 1\n", encoding="utf-8")
    folder = FolderFiles([tmp_path], ())
    assert folder.files() == [(path, "first = 1\n")]
    path.write_text("second = 22\n", encoding="utf-8")
    assert folder.files() == [(path, "second = 22\n")]


def test_paths_are_shown_relative_to_their_workspace_folder() -> None:
    step = RetrievalStep()
    step.set_roots([Path("/ws/one"), Path("/ws/two")])
    assert step.shown_path("/ws/two/pkg/a.py") == "pkg/a.py"
    assert step.shown_path("/elsewhere/deep/down/pkg/b.py") == "down/pkg/b.py"


def test_an_unknown_retrieval_setting_is_reported_and_the_default_used(tmp_path: Path) -> None:
    chosen, problems = merge(
        {"workspace": {"retrieval": "tfidf"}}, environ={}, config_file=tmp_path / "none.json"
    )
    assert problems == ["workspace.retrieval must be one of bm25, jaccard, off, not 'tfidf'"]
    assert chosen.workspace.retrieval == Settings().workspace.retrieval


def test_the_retrieval_setting_offers_exactly_the_scorers_and_off() -> None:
    assert get_args(Retrieval) == (*SCORERS, "off")
