"""Helpers for driving the real server over stdio with pytest-lsp."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import ROOT

# A context the default model completes with one valid line (`self.name`, a string...): the
# end-to-end tests that need an answer from the real model ask here.
REPR = (
    "class User:\n    def __init__(self, name):\n        self.name = name\n\n"
    "    def __repr__(self):\n        return "
)


def server_config(*extra_args: str, env: dict[str, str] | None = None) -> ClientServerConfig:
    """A server of the checkout, with a cache of its own: never the user's ~/.cache."""
    cache = tempfile.mkdtemp(prefix="flashcode-e2e-cache-")
    return ClientServerConfig(
        server_command=[sys.executable, "-m", "lsp_server", *extra_args],
        server_env={"PYTHONPATH": str(ROOT), "FLASHCODE_CACHE__DIRECTORY": cache, **(env or {})},
    )


def as_dict(value: Any) -> Any:
    """pygls hands custom-method params over as named tuples; tests read them as dicts."""
    if hasattr(value, "_asdict"):
        return {k: as_dict(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_dict(v) for v in value]
    return value


@dataclass
class StatusLog:
    """Every flashcode/status notification, with an event per state for waiting on it."""

    states: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, asyncio.Event] = field(default_factory=dict)

    def record(self, params: Any) -> None:
        payload = as_dict(params)
        self.states.append(payload)
        self.event(payload["state"]).set()

    def event(self, state: str) -> asyncio.Event:
        return self.events.setdefault(state, asyncio.Event())

    async def wait_for(self, state: str, timeout: float = 60) -> dict[str, Any]:
        await asyncio.wait_for(self.event(state).wait(), timeout)
        return next(s for s in reversed(self.states) if s["state"] == state)


def watch_status(client: LanguageClient) -> StatusLog:
    log = StatusLog()

    @client.feature("flashcode/status")
    def on_status(_client: LanguageClient, params: Any) -> None:
        log.record(params)

    return log


def open_document(
    client: LanguageClient, path: str, text: str, language_id: str = "python", version: int = 1
) -> str:
    uri = Path(path).resolve().as_uri() if not path.startswith("file:") else path
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language_id, version=version, text=text
            )
        )
    )
    return uri


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1].encode("utf-16-le")) // 2)


async def send_raw_request(client: LanguageClient, method: str, params: dict[str, Any]) -> Any:
    """Send params exactly as given, bypassing the client's type checks (for malformed input)."""
    msg_id = f"raw-{id(params)}"
    future: Future[Any] = Future()
    client.protocol._request_futures[msg_id] = future
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return await asyncio.wrap_future(future)


async def inline_completion(
    client: LanguageClient, uri: str, position: types.Position
) -> list[types.InlineCompletionItem]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    if result is None:
        return []
    return list(result.items if isinstance(result, types.InlineCompletionList) else result)


async def stats(client: LanguageClient) -> dict[str, Any]:
    """The server's flashcode/stats report, as plain dicts."""
    return as_dict(await client.protocol.send_request_async("flashcode/stats", {}))  # type: ignore[no-any-return]


async def end_session(lsp: LanguageClient) -> None:
    """shutdown + exit end a server that is up, even one whose model failed to load; a server
    that does not answer is killed, so a failing test cannot hang the suite."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(lsp.shutdown_session(), 30)
    process = lsp._server  # pygls keeps the process private; stop() waits for its exit
    if process is not None and process.returncode is None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
    await lsp.stop()
