"""Sliding-window retrieval over many files: both scorers, ranking, exclusions, empty inputs."""

from __future__ import annotations

from itertools import pairwise

import pytest

from prompts.context import Document, identifiers, jaccard
from prompts.retrieval import SCORERS, WindowIndex, code_tokens, family_of

# Twelve-line blocks, so that each block is one window of the default size.
FILLER = "".join(f"value_{i} = compute(value_{i - 1})\n" for i in range(1, 13))
USERS = (
    "def load_user_record(user_id, database):\n"
    "    record = database.fetch_user(user_id)\n"
    "    if record is None:\n"
    "        raise MissingUserError(user_id)\n"
    "    return UserRecord.from_row(record)\n"
) + "".join(f"# note {i}\n" for i in range(7))
ORDERS = (
    "def load_order(order_id, database):\n"
    "    row = database.fetch_order(order_id)\n"
    "    return OrderRecord.from_row(row)\n"
) + "".join(f"# order note {i}\n" for i in range(9))
QUERY = "def find_user(user_id, database):\n    record = database.fetch_user(user_id)\n"


def files() -> list[tuple[str, str]]:
    return [
        ("pkg/filler.py", FILLER),
        ("pkg/users.py", FILLER + USERS),
        ("pkg/orders.py", ORDERS),
    ]


@pytest.mark.parametrize("scorer", SCORERS)
def test_the_window_sharing_the_querys_names_ranks_first(scorer: str) -> None:
    index = WindowIndex(files(), scorer)  # type: ignore[arg-type]
    found = index.search(QUERY, "python")
    assert found, "the users window shares most of the query's names"
    best = found[0]
    assert (best.path, best.start_line) == ("pkg/users.py", 12)
    assert best.text == USERS
    assert all(a.score >= b.score for a, b in pairwise(found))
    assert 0 < best.score <= 1


@pytest.mark.parametrize("scorer", SCORERS)
def test_the_current_files_own_windows_are_left_out(scorer: str) -> None:
    index = WindowIndex(files(), scorer)  # type: ignore[arg-type]
    found = index.search(QUERY, "python", exclude_paths=["pkg/users.py"])
    assert "pkg/users.py" not in {s.path for s in found}


@pytest.mark.parametrize("scorer", SCORERS)
def test_an_open_document_is_scored_from_its_current_text_not_the_indexed_one(
    scorer: str,
) -> None:
    index = WindowIndex(files(), scorer)  # type: ignore[arg-type]
    edited = Document("file:///w/pkg/orders.py", "pkg/orders.py", "python", USERS)
    found = index.search(QUERY, "python", exclude_paths=["pkg/users.py"], fresh=[edited])
    assert found[0].path == "pkg/orders.py" and found[0].text == USERS
    assert ORDERS not in {s.text for s in found}, "the stale indexed text is not offered"


def test_fresh_and_indexed_bm25_scores_share_one_scale() -> None:
    index = WindowIndex(files(), "bm25")
    indexed = index.search(QUERY, "python")[0]
    copy = Document("file:///w/copy.py", "copy.py", "python", USERS)
    fresh = index.search(QUERY, "python", exclude_paths=["pkg/users.py"], fresh=[copy])[0]
    assert fresh.path == "copy.py"
    assert fresh.score == pytest.approx(indexed.score, rel=1e-5)


def test_the_jaccard_scorer_scores_as_the_open_documents_snippets_always_did() -> None:
    index = WindowIndex(files(), "jaccard")
    best = index.search(QUERY, "python")[0]
    assert best.score == pytest.approx(jaccard(identifiers(QUERY), identifiers(USERS)))


@pytest.mark.parametrize("scorer", SCORERS)
def test_overlapping_windows_of_one_file_give_one_snippet(scorer: str) -> None:
    # One function repeated over 30 lines: every window of the file matches the query.
    text = "".join(f"record = database.fetch_user(user_id)  # {i}\n" for i in range(30))
    index = WindowIndex([("pkg/same.py", text)], scorer)  # type: ignore[arg-type]
    found = index.search(QUERY, "python", min_score=0.0)
    starts = sorted(s.start_line for s in found)
    assert len(starts) >= 2
    assert all(b - a >= index.window_lines for a, b in pairwise(starts))


@pytest.mark.parametrize("scorer", SCORERS)
def test_a_window_already_in_the_prompt_is_not_offered_again(scorer: str) -> None:
    index = WindowIndex(files(), scorer)  # type: ignore[arg-type]
    found = index.search(QUERY, "python", exclude_text=QUERY + USERS)
    assert USERS not in {s.text for s in found}


@pytest.mark.parametrize("scorer", SCORERS)
def test_files_of_another_language_family_are_not_offered(scorer: str) -> None:
    script = "function loadUser(user_id, database) { return database.fetch_user(user_id) }\n"
    index = WindowIndex([("web/users.js", script)], scorer)  # type: ignore[arg-type]
    assert index.search(QUERY, "python", min_score=0.0) == []
    assert [s.path for s in index.search(QUERY, "javascript")] == ["web/users.js"]


@pytest.mark.parametrize("scorer", SCORERS)
def test_empty_inputs_give_no_snippets(scorer: str) -> None:
    empty = WindowIndex([], scorer)  # type: ignore[arg-type]
    assert (empty.file_count, empty.window_count) == (0, 0)
    assert empty.search(QUERY, "python") == []
    index = WindowIndex([("pkg/empty.py", ""), *files()], scorer)  # type: ignore[arg-type]
    assert index.search("", "python") == []
    assert index.search("if True:\n    pass\n", "python") == [], "keywords alone say nothing"
    assert "pkg/empty.py" not in {s.path for s in index.search(QUERY, "python", min_score=0.0)}


def test_an_empty_index_still_scores_the_open_documents() -> None:
    opened = Document("file:///w/users.py", "users.py", "python", USERS)
    found = WindowIndex([], "jaccard").search(QUERY, "python", fresh=[opened])
    assert [s.path for s in found] == ["users.py"]


def test_an_unknown_scorer_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="bm25, jaccard"):
        WindowIndex(files(), "tfidf")  # type: ignore[arg-type]


def test_bm25_terms_are_the_identifiers_without_keywords_repeats_kept() -> None:
    assert code_tokens("if user is None: return user.name") == ["user", "user", "name"]


def test_a_files_family_comes_from_its_extension_or_its_language_id() -> None:
    assert family_of("", "pkg/a.py") == family_of("python", "untitled") == "python"
    assert family_of("", "web/a.ts") == family_of("", "web/b.js")
    assert family_of("", "notes/a.rb") == ".rb"
    assert family_of("", "Makefile") == ""
