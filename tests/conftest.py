"""Shared test settings: which real model the end-to-end tests run."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "inference" / "models" / "default"
FIXTURE_MODELS = ROOT / "tests" / "fixtures" / "models"


def e2e_model_dir() -> Path:
    """The embedded default model; FLASHCODE_TEST_MODEL may point the suite at another one."""
    explicit = os.environ.get("FLASHCODE_TEST_MODEL")
    return Path(explicit) if explicit else DEFAULT_MODEL
