"""The next model's corpus: licence rule, exclusions, deduplication, the split by package."""

from __future__ import annotations

import importlib.util
from email.message import Message
from pathlib import Path
from typing import Any, cast

import pytest

from inference.build.corpus import VALIDATION_GROUPS, CorpusFile, read_source_files, split_by_group
from inference.build.dedup import content_hash, deduplicate, exact_dedup
from inference.build.sources import (
    ALLOWED_PACKAGES,
    EVAL_PROJECTS,
    Source,
    discover_sources,
    group_of,
    is_excluded,
    is_permissive,
    licence_of,
)


def metadata(**fields: Any) -> Any:
    message = Message()
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            message[key.replace("_", "-")] = item
    return cast(Any, message)


@pytest.mark.parametrize(
    "expression",
    [
        "MIT",
        "BSD-3-Clause",
        "Apache-2.0",
        "PSF-2.0",
        "ISC",
        "BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0",
        "Apache-2.0 AND Apache-2.0 WITH LLVM-exception AND BSD-2-Clause AND BSL-1.0 AND MIT",
        "GPL-3.0-only OR MIT",
        "(MIT OR Apache-2.0)",
    ],
)
def test_permissive_licences_are_accepted(expression: str) -> None:
    assert is_permissive(expression)


@pytest.mark.parametrize(
    "expression",
    [None, "", "GPL-3.0-only", "LGPL-2.1-or-later", "MPL-2.0", "MIT AND GPL-2.0-only", "UNKNOWN"],
)
def test_copyleft_weak_copyleft_and_unknown_licences_are_refused(expression: str | None) -> None:
    assert not is_permissive(expression)


def test_licence_is_read_from_the_expression_then_the_field_then_the_classifiers() -> None:
    assert licence_of(metadata(License_Expression="MIT", License="BSD")) == "MIT"
    assert licence_of(metadata(License="Apache 2.0 License")) == "Apache-2.0"
    assert licence_of(metadata(License="BSD")) == "BSD-3-Clause"
    pasted = "Copyright (c) 2005 someone\n\nRedistribution and use in source and binary forms..."
    classifier = "License :: OSI Approved :: MIT License"
    assert licence_of(metadata(License=pasted, Classifier=[classifier])) == "MIT"
    assert licence_of(metadata(Name="x")) is None


def test_vendored_directories_and_evaluated_projects_are_excluded() -> None:
    assert is_excluded("pip/_vendor/rich/console.py")
    assert is_excluded("setuptools/_vendor/packaging/version.py")
    assert is_excluded("torch/third_party/x.py")
    assert is_excluded("pkg/vendored/six.py")
    assert is_excluded("setuptools/extern/__init__.py")
    assert is_excluded("site/jinja2/runtime.py")
    assert not is_excluded("torch/nn/modules/linear.py")
    assert not is_excluded("vendor_notes.py")


def test_no_evaluated_project_is_on_the_allow_list() -> None:
    assert not {name.lower() for name in ALLOWED_PACKAGES} & set(EVAL_PROJECTS)
    refused = discover_sources({"jinja2": ("jinja2",), "no-such-dist-xyz": ("x",)})[1]
    assert refused == {"jinja2": "evaluated on", "no-such-dist-xyz": "not installed"}


def test_the_evaluation_projects_agree_with_flashcode_eval_repo() -> None:
    if importlib.util.find_spec("benchmarks.repo_cases") is None:
        pytest.skip("benchmarks/repo_cases.py (flashcode eval repo) is not in this checkout")
    from benchmarks import repo_cases

    assert set(repo_cases.DEFAULT_PROJECTS) <= set(EVAL_PROJECTS)


def test_reading_a_source_skips_vendored_files(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "_vendor" / "six").mkdir(parents=True)
    (package / "sub").mkdir()
    (package / "__init__.py").write_text("x = 1\n")
    (package / "sub" / "mod.py").write_text("def f():\n    return 2\n")
    (package / "_vendor" / "six" / "six.py").write_text("y = 3\n")
    files = read_source_files(Source("pkg", "1.0", "MIT", (package,)))
    assert [(f.relpath, f.group) for f in files] == [
        ("pkg/__init__.py", "pkg"),
        ("pkg/sub/mod.py", "pkg/sub"),
    ]


def test_groups_are_top_level_subpackages() -> None:
    assert group_of("torch", "torch/nn/modules/linear.py") == "torch/nn"
    assert group_of("torch", "torch/functional.py") == "torch"
    assert group_of("stdlib", "asyncio/tasks.py") == "stdlib/asyncio"
    assert group_of("stdlib", "json.py") == "stdlib/json"
    assert group_of("stdlib", "test/test_email/test_parser.py") == "stdlib/test/test_email"


def test_exact_dedup_ignores_whitespace_and_keeps_the_first() -> None:
    texts = ["def f():\n    return 1\n", "def f():\r\n        return 1   \r\n\r\n\r\n", "x = 2\n"]
    kept, removed = exact_dedup(texts, lambda t: t)
    assert kept == [texts[0], texts[2]]
    assert removed == [texts[1]]
    assert content_hash("a\n\n\nb") == content_hash("a\nb\n")


def test_near_dedup_removes_a_lightly_edited_copy_and_counts_bytes() -> None:
    pytest.importorskip("datasketch")
    body = "\n".join(
        f"def handler_{i}(request, value_{i}):\n    return value_{i} * {i}" for i in range(60)
    )
    edited = body.replace("handler_7(", "handler_seven(")
    other = "\n".join(f"class Model{i}:\n    field = '{i}' + name" for i in range(60))
    kept, stats = deduplicate([body, body + "\n", edited, other], lambda t: t)
    assert kept == [body, other]
    assert (stats.exact_files, stats.near_files) == (1, 1)
    assert stats.exact_bytes == len(body) + 1 and stats.near_bytes == len(edited)


def test_the_split_holds_out_whole_groups() -> None:
    files = [
        CorpusFile("stdlib", "stdlib/email", "email/parser.py", "a"),
        CorpusFile("stdlib", "stdlib/asyncio", "asyncio/tasks.py", "b"),
        CorpusFile("torch", "torch/distributions", "torch/distributions/normal.py", "c"),
        CorpusFile("torch", "torch/nn", "torch/nn/linear.py", "d"),
    ]
    train, validation = split_by_group(files)
    assert [f.text for f in train] == ["b", "d"]
    assert [f.text for f in validation] == ["a", "c"]
    assert {"stdlib/email", "torch/distributions"} <= VALIDATION_GROUPS
    assert train == split_by_group(list(files))[0]  # deterministic


def test_the_card_lists_each_source_its_licence_tokens_and_the_excluded_projects() -> None:
    from inference.build.card import data_lines

    source = {"version": "2.13.0", "licence": "BSD-3-Clause", "files_kept": 3, "bytes_kept": 1200}
    report = {
        "sources": {
            "stdlib": source | {"version": "3.11.7", "licence": "PSF-2.0"},
            "torch": source,
        },
        "dedup": {k: 1 for k in ("files_in", "bytes_in", "exact_files", "exact_bytes")}
        | {"near_files": 2, "near_bytes": 30},
        "validation": {"groups": ["stdlib/email"], "files": 1, "bytes": 10},
        "packed": {"train": {"tokens_per_repo": {"cpython": 1234, "torch": 5678}}},
    }
    text = "\n".join(data_lines(report))
    assert "| stdlib | 3.11.7 | PSF-2.0 | 3 | 1,200 | 1,234 |" in text
    assert "| torch | 2.13.0 | BSD-3-Clause | 3 | 1,200 | 5,678 |" in text
    assert all(project in text for project in EVAL_PROJECTS)
    assert "removed 2 files (30 bytes)" in text and "stdlib/email" in text
