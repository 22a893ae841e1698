"""What can go wrong with a remote completion server, what the user is told, and how often.

Each fault has a kind and a message that names the server's URL and what to do about it. The
message goes out once per outage: again only when the kind of fault changes, or a minute later
while the server is still failing, and afresh after the server has answered once. A user typing
against a stopped server gets one message, not one per keystroke.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Callable
from typing import Literal

FaultKind = Literal["refused", "unreachable", "timeout", "http", "malformed", "slow", "closed"]
# Faults of the connection itself: the server is not there to ask anything.
TRANSPORT_FAULTS: frozenset[str] = frozenset({"refused", "unreachable", "timeout"})
REMIND_AFTER_S = 60.0
DETAIL_CHARS = 160  # of the server's own error message; the rest goes nowhere


class RemoteFault(Exception):
    """A failed request: its kind, and what the server or the socket said (short, no prompt)."""

    def __init__(self, kind: FaultKind, detail: str, status: int = 0, path: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind: FaultKind = kind
        self.detail = detail
        self.status = status
        self.path = path

    @classmethod
    def from_http(
        cls, status: int, reason: str, body: bytes, path: str = "/completions"
    ) -> RemoteFault:
        return cls("http", f"HTTP {status} {reason}".strip() + _server_says(body), status, path)

    @classmethod
    def from_exception(cls, error: BaseException, answered: bool) -> RemoteFault:
        """The fault a socket error stands for; `answered`: the answer had begun."""
        if isinstance(error, TimeoutError):
            return cls("slow" if answered else "timeout", "")
        # asyncio joins the failures of several addresses (localhost: ::1 and 127.0.0.1) into
        # one OSError whose text names each.
        refused = errno.ECONNREFUSED
        if isinstance(error, ConnectionRefusedError) or (
            isinstance(error, OSError)
            and (error.errno == refused or f"[Errno {refused}]" in str(error))
        ):
            return cls("refused", "")
        if isinstance(error, ConnectionError):
            return cls("closed", str(error) or type(error).__name__)
        if isinstance(error, OSError):
            return cls("unreachable", error.strerror or str(error))
        return cls("malformed", str(error))


def _server_says(body: bytes) -> str:
    """The server's error message from an error body (OpenAI's {"error": {"message": ...}})."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            text = str(error)
    text = " ".join(text.split())
    if len(text) > DETAIL_CHARS:
        text = text[: DETAIL_CHARS - 3] + "..."
    return f": {text}" if text else ""


def fault_message(fault: RemoteFault, url: str, timeout_ms: int) -> str:
    """One sentence for the editor: what happened at `url`, then the fix."""
    server = f"flashcode: the completion server at {url}"
    if fault.kind == "refused":
        return (
            f"{server} refused the connection. Start the server, or set remote.url to where"
            ' it runs (or backend to "local").'
        )
    if fault.kind == "unreachable":
        return f"{server} cannot be reached ({fault.detail}). Check remote.url and the network."
    if fault.kind == "timeout":
        return (
            f"{server} did not answer in time (remote.timeoutMs is {timeout_ms}, deadlineMs"
            " bounds a completion). Check that it is running and not overloaded, or raise"
            " remote.timeoutMs."
        )
    if fault.kind == "slow":
        return (
            f"{server} stopped sending in the middle of an answer for {timeout_ms} ms. Check"
            " its load and log, or raise remote.timeoutMs."
        )
    if fault.kind == "closed":
        return f"{server} closed the connection in the middle of an answer. See the server's log."
    if fault.kind == "malformed":
        return (
            f"{server} sent an answer flashcode cannot read ({fault.detail}). remote.url must"
            " be the base of an OpenAI-compatible API, usually ending in /v1."
        )
    return f"{server} answered {fault.detail}. {_http_fix(fault.status, fault.path)}"


def _http_fix(status: int, path: str) -> str:
    if status in (401, 403):
        return (
            "Set remote.apiKeyEnv to the name of an environment variable that holds a valid"
            " key, and restart the editor."
        )
    if status == 404:
        return (
            f"It has no {path} there: remote.url should be the API's base, usually ending in"
            " /v1; check remote.model too."
        )
    if 400 <= status < 500:
        return (
            'Check remote.model, and remote.fim: servers without "suffix" support (vLLM,'
            ' TGI) need "raw".'
        )
    return "See the server's log."


class FaultGate:
    """Whether a fault's message goes out now (module docstring: once per outage)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kind: str | None = None  # the kind reported in the outage going on, if any
        self._at = 0.0

    def should_report(self, kind: str) -> bool:
        now = self._clock()
        if kind == self._kind and now - self._at < REMIND_AFTER_S:
            return False
        self._kind, self._at = kind, now
        return True

    def recovered(self) -> bool:
        """The server answered: True when that ends an outage."""
        ended = self._kind is not None
        self._kind = None
        return ended
