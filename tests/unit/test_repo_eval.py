"""`flashcode eval repo` without a server: the cases, the workspace copy, the copy peer, scores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from benchmarks.repo_cases import (
    Project,
    build_cases,
    build_workspace,
    code_lines,
    copy_peer,
    edit_similarity,
    exact_match,
    find_project,
    make_case,
)
from benchmarks.repo_eval import ablation_settings
from benchmarks.repo_scores import Outcome, summarize
from lsp_server.cli import build_parser
from lsp_server.settings import merge

SHOP = '''"""A shop.

Docstring lines are text, not code.
"""

import json  # a comment after code is fine


class Basket:
    # a comment line is never a hole
    def __init__(self, items):
        self.items = list(items)

    def total(self):
        return sum(item.price for item in self.items)
'''


def tiny_project(tmp_path: Path) -> Project:
    package = tmp_path / "site" / "shop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from shop.basket import Basket\n")
    (package / "basket.py").write_text(SHOP)
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "basket.cpython-311.pyc").write_bytes(b"\0")
    return Project("shop", "1.0", package)


def test_only_code_lines_get_holes_not_docstrings_comments_or_short_lines() -> None:
    lines = SHOP.split("\n")
    chosen = [lines[index].strip() for index in code_lines(SHOP)]
    assert chosen == [
        "import json  # a comment after code is fine",
        "class Basket:",
        "def __init__(self, items):",
        "self.items = list(items)",
        "def total(self):",
        "return sum(item.price for item in self.items)",
    ]


def test_a_file_that_does_not_tokenize_gives_no_lines() -> None:
    assert code_lines('x = """never closed\nvalue = compute(a, b)\n') == []


def test_a_mid_line_hole_removes_the_rest_of_the_line_and_keeps_the_rest_of_the_file() -> None:
    line = SHOP.split("\n").index("        self.items = list(items)")
    case = make_case(0, "shop", "basket.py", SHOP, line, "mid-line", random.Random(1))
    assert 8 < case.column < len("        self.items = list(items)")
    assert case.prefix.endswith("\n" + "        self.items = list(items)"[: case.column])
    assert case.prefix + case.expected + case.suffix == SHOP
    assert case.suffix.startswith("\n\n    def total(self):")
    assert case.text == SHOP.replace(case.expected + "\n\n    def total", "\n\n    def total")


def test_a_whole_line_hole_puts_the_cursor_after_the_indentation() -> None:
    line = SHOP.split("\n").index("    def total(self):")
    case = make_case(0, "shop", "basket.py", SHOP, line, "whole-line", random.Random(1))
    assert (case.column, case.expected) == (4, "def total(self):")
    assert case.prefix.endswith("\n\n    ") and case.suffix.startswith("\n        return sum(")


def test_cases_alternate_projects_and_kinds_and_the_seed_makes_them_again(
    tmp_path: Path,
) -> None:
    project = tiny_project(tmp_path)
    cases = build_cases([project], 4, seed=7)
    assert [case.kind for case in cases] == ["mid-line", "whole-line", "mid-line", "whole-line"]
    assert len({(case.path, case.line) for case in cases}) == 4  # no line twice
    for case in cases:
        original = project.read(case.path)
        assert case.prefix + case.expected + case.suffix == original
        assert case.expected.strip() and "\n" not in case.expected
    assert build_cases([project], 4, seed=7) == cases
    assert build_cases([project], 4, seed=8) != cases


def test_asking_more_cases_than_the_project_has_lines_says_so(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fewer code lines"):
        build_cases([tiny_project(tmp_path)], 50, seed=0)


def test_the_workspace_copy_leaves_out_the_file_under_test_and_bytecode(tmp_path: Path) -> None:
    project = tiny_project(tmp_path)
    root = build_workspace(project, "basket.py", tmp_path / "scratch")
    assert root == tmp_path / "scratch" / "shop"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "shop",
        "shop/__init__.py",
    ]


def test_installed_packages_are_found_with_their_version_and_modules_are_not() -> None:
    jinja2 = find_project("jinja2")
    assert jinja2.version[0].isdigit() and "environment.py" in jinja2.files
    with pytest.raises(ValueError, match="not an installed package"):
        find_project("math")
    with pytest.raises(ValueError, match="not an installed package"):
        find_project("no_such_package_here")


# --- the copy peer ---


def test_the_peer_continues_the_longest_match_to_the_end_of_its_line() -> None:
    workspace = ["total = sum(price)\ntotal = sum(item.price for item in items)\n"]
    assert copy_peer("x = 1\ntotal = sum(item", "\n", workspace) == ".price for item in items)"


def test_the_peer_never_matches_the_cursor_itself_and_reads_the_buffer_first() -> None:
    prefix = "a = compute(1)\nb = compu"
    assert copy_peer(prefix, "\nc = 3\n", []) == "te(1)"
    assert copy_peer(prefix, "\n", ["b = compute(2)\n"]) == "te(2)"  # longer match in the file
    assert copy_peer("b = compu", "\nzzz = compute(3)\n", ["x = compute(2)\n"]) == "te(3)"


def test_the_peer_skips_matches_at_the_end_of_a_line_and_answers_nothing_without_one() -> None:
    assert copy_peer("    retu", "\n", ["    retu\n    return x\n"]) == "rn x"
    assert copy_peer("xyz", "\n", ["nothing alike\n"]) == ""


def test_a_whole_line_hole_gets_the_line_after_the_same_context() -> None:
    workspace = ["def f(self):\n    return self.name\n"]
    assert copy_peer("def g(self):\n    ", "\n", workspace) == "return self.name"


# --- scores ---


def test_scores_compare_first_lines_and_an_empty_answer_scores_nothing() -> None:
    assert exact_match("value)  \nmore", "value)")
    assert not exact_match("", "") and not exact_match("valu", "value)")
    assert edit_similarity("", "value") == 0.0
    assert edit_similarity("value", "value\nx") == 1.0
    assert 0.5 < edit_similarity("valeu", "value") < 1.0


def test_the_summary_counts_every_case_and_why_each_empty_one_was_empty() -> None:
    case = make_case(0, "shop", "basket.py", SHOP, 10, "whole-line", random.Random(0))
    outcomes = [
        Outcome(case, case.expected, 10.0),
        Outcome(case, "", 30.0, "drop_indentation_mid_line"),
        Outcome(case, "", 20.0, "model-empty"),
        Outcome(case, "", 40.0, "model-empty"),
    ]
    summary = summarize(outcomes)
    assert summary["cases"] == 4 and summary["answered_share"] == 0.25
    assert summary["exact_match"] == 0.25 and summary["edit_similarity"] == 0.25
    assert summary["edit_similarity_answered"] == 1.0
    assert summary["latency_p50_ms"] in (20.0, 30.0) and summary["latency_p95_ms"] == 40.0
    assert summary["empty_reasons"] == {"model-empty": 2, "drop_indentation_mid_line": 1}


def test_flashcode_eval_repo_goes_to_its_own_module() -> None:
    args = build_parser().parse_args(["eval", "repo", "--cases", "4"])
    assert (args.name, args.rest) == ("repo", ["--cases", "4"])


def test_each_ablation_switches_its_part_off_in_every_server(tmp_path: Path) -> None:
    assert ablation_settings([]) == {}
    environ = ablation_settings(["healing", "mixing", "workspace"])
    settings, problems = merge(environ=environ, config_file=tmp_path / "none.json")
    assert problems == []
    assert settings.token_healing is False
    assert settings.workspace.mixing is False and settings.workspace.enabled is False
    defaults = merge(environ={}, config_file=tmp_path / "none.json")[0]
    assert defaults.token_healing and defaults.workspace.mixing and defaults.workspace.enabled


def test_retrieval_is_switched_off_or_given_its_scorer_in_every_server(tmp_path: Path) -> None:
    off, problems = merge(
        environ=ablation_settings(["retrieval"]), config_file=tmp_path / "none.json"
    )
    assert problems == [] and off.workspace.retrieval == "off"
    for scorer in ("bm25", "jaccard"):
        chosen = merge(environ=ablation_settings([], scorer), config_file=tmp_path / "none.json")
        assert chosen[0].workspace.retrieval == scorer
    # An ablation wins over a scorer: the part is off.
    assert ablation_settings(["retrieval"], "bm25") == {"FLASHCODE_WORKSPACE__RETRIEVAL": "off"}
