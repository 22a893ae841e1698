"""Starting the real server over stdio for a benchmark, as an editor would."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent


class BenchServer:
    """A client with the server started; `ready` is set when the model has loaded."""

    def __init__(self, name: str) -> None:
        self.client = LanguageClient(name, "1")
        self.ready = asyncio.Event()

        @self.client.feature("flashcode/status")
        def on_status(_: LanguageClient, params: Any) -> None:
            if getattr(params, "state", None) == "ready":
                self.ready.set()

    async def start(self, model: Path) -> LanguageClient:
        env = {
            # A benchmark's requests are not the user's: they stay out of the usage report.
            "FLASHCODE_USAGE__ENABLED": "0",
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        await self.client.start_io(
            sys.executable, "-m", "lsp_server", "--model", str(model), "--log-level", "warning",
            env=env,
        )  # fmt: skip
        return self.client

    async def wait_ready(self, timeout_s: float = 300) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout_s)
