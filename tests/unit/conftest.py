"""Fixtures shared by the unit tests of test generation and docstrings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

SAMPLE = ROOT / "tests" / "fixtures" / "sample_project"


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A copy of the sample project, free to write into."""
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
