"""`flashcode doctor`: every check a user needs when completions do not appear, with the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

from lsp_server.doctor import PROBLEM, cache_checks, runtime_checks
from lsp_server.settings import merge
from tests.conftest import ROOT

NO_CONFIG = Path("/nonexistent/flashcode/config.json")  # never the user's own config file


def doctor(tmp_path: Path, **env: str) -> tuple[int, dict[str, object]]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("FLASHCODE_")}
    environ |= {
        "PYTHONPATH": str(ROOT),
        "FLASHCODE_CONFIG": str(tmp_path / "config.json"),
        "FLASHCODE_CACHE__DIRECTORY": str(tmp_path / "cache"),
        **env,
    }
    run = subprocess.run(
        [sys.executable, "-c", "from lsp_server.cli import main; main()", "doctor"],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip
    return run.returncode, json.loads(run.stdout)


def statuses(report: dict[str, object]) -> dict[str, str]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return {check["name"]: check["status"] for check in checks}


def test_a_working_installation_passes_every_check(tmp_path: Path) -> None:
    code, report = doctor(tmp_path)
    assert code == 0 and report["ok"] is True
    assert set(statuses(report).values()) == {"ok"}
    assert {"settings", "model (flash)", "device", "tree-sitter grammars", "cache"} <= set(
        statuses(report)
    )
    assert not (tmp_path / "cache").exists()  # doctor looks, it creates nothing


def test_a_missing_model_and_a_bad_setting_are_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"maxNewTokens": "many"}')
    code, report = doctor(tmp_path, FLASHCODE_MODEL_PATH=str(tmp_path / "no-model"))
    assert code == 1 and report["ok"] is False
    found = statuses(report)
    assert found["model (flash)"] == PROBLEM and found["settings"] == PROBLEM
    details = " ".join(str(c["detail"]) for c in report["checks"])  # type: ignore[attr-defined]
    assert "no-model" in details and "modelPath" in details and "maxNewTokens" in details


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="a GPU is here"
)
def test_cuda_asked_for_without_a_cuda_runtime_is_a_problem() -> None:
    settings, _ = merge({"device": "cuda"}, environ={}, config_file=NO_CONFIG)
    (check,) = runtime_checks(settings, ["CPUExecutionProvider"], {"onnxruntime"})
    assert check.status == PROBLEM and "flashcode[gpu]" in check.detail


def test_both_onnxruntime_packages_installed_is_a_problem() -> None:
    settings, _ = merge({}, environ={}, config_file=NO_CONFIG)
    checks = runtime_checks(settings, ["CPUExecutionProvider"], {"onnxruntime", "onnxruntime-gpu"})
    assert checks[0].status == PROBLEM and "uninstall" in checks[0].detail


def test_a_cache_directory_that_cannot_be_made_is_a_problem(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = {"cache": {"directory": str(blocker / "cache")}}
    settings, _ = merge(cache, environ={}, config_file=NO_CONFIG)
    (check,) = cache_checks(settings)
    assert check.status == PROBLEM and "cache.directory" in check.detail
    off, _ = merge({"cache": {"enabled": False}}, environ={}, config_file=NO_CONFIG)
    assert cache_checks(off)[0].status == "ok"
