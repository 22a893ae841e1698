"""Warm context: prefill the prompt the user is likely to ask for next, before the keystroke.

On a real-size model the first completion in a file costs seconds: the whole prompt (a thousand
tokens) is prefilled, where every later one reuses most of it from the prefix cache. The warm
prefill pays that cost while the user reads or pauses instead. The triggers (`WarmTriggers`,
pure) set a due time per document:

- the document opened: after PAUSE_S, the time a client takes to say where the cursor rests
  (the cursor is not known yet, see below);
- the cursor resting, from a client that says so (`flashcode/cursor`): at once;
- a change or a completion request: after a pause of PAUSE_S with no newer event of that
  document (debounce). A request for another document than the last one (the user switched
  files: LSP has no notification for the active editor) is the same: the pause after it warms it.

The prompt is the one the completion pipeline would build for the document's cursor
(`CompletionService.likely_prompt`: the same context, routing, retrieval and fitting): the last
cursor the server saw there (a request, the end of the last change, a cursor notification),
else the document's end, where a file opened to be extended gets its new code.

`Engine.warm` runs it at the lowest priority (inference/prefill.py): only while no request waits
or decodes, dropped at the next chunk boundary when one arrives, replaced by a newer warm of the
same document, bounded by the prefix cache's budget. A remote backend has no KV to warm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from inference.engine import Engine
from lsp_server.backends.engine import GenerationEngine
from lsp_server.settings import Settings
from prompts.context import Document

log = logging.getLogger(__name__)

# The typing pause after which a document's warm runs: longer than the gap between keys of a
# word (80-200 ms), short enough to finish before the user starts the next line.
PAUSE_S = 0.4


@dataclass
class WarmTriggers:
    """When each document's warm is due, and at which cursor (a str offset; None: unknown)."""

    pause_s: float = PAUSE_S
    cursors: dict[str, int] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)
    active: str | None = None  # the document of the last completion request

    def opened(self, uri: str, now: float) -> None:
        # Not at once: a cursor notification that follows (a client sends one when a buffer
        # is entered) names the prompt to warm before a guess at the file's end has started.
        self.due[uri] = now + self.pause_s

    def cursor_rested(self, uri: str, cursor: int, now: float) -> None:
        self.cursors[uri] = cursor
        self.due[uri] = now  # the client waited for the rest already

    def changed(self, uri: str, cursor: int | None, now: float) -> None:
        if cursor is not None:
            self.cursors[uri] = cursor
        self.due[uri] = now + self.pause_s

    def requested(self, uri: str, cursor: int, now: float) -> bool:
        """A completion request; True when it is for another document than the last one."""
        switched = self.active is not None and self.active != uri
        self.active = uri
        self.cursors[uri] = cursor
        self.due[uri] = now + self.pause_s
        return switched

    def closed(self, uri: str) -> None:
        self.cursors.pop(uri, None)
        self.due.pop(uri, None)
        if self.active == uri:
            self.active = None

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)

    def take_due(self, now: float) -> list[tuple[str, int | None]]:
        """The documents whose warm is due, with their cursor, oldest due first."""
        ready = sorted((when, uri) for uri, when in self.due.items() if when <= now)
        for _, uri in ready:
            del self.due[uri]
        return [(uri, self.cursors.get(uri)) for _, uri in ready]


@dataclass
class WarmStats:
    scheduled: int = 0  # warm prefills handed to the engine
    warmed: int = 0  # ran to their end: the prompt's KV is in the prefix cache
    dropped: int = 0  # yielded to a request, or replaced by a newer warm of the document
    switches: int = 0  # completion requests for another document than the last one
    last_prompt_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        """For flashcode/stats (camelCase, as the protocol's other keys)."""
        return {
            "scheduled": self.scheduled,
            "warmed": self.warmed,
            "dropped": self.dropped,
            "switches": self.switches,
            "lastPromptTokens": self.last_prompt_tokens,
        }


def warm_offset(document: Document, cursor: int | None) -> int:
    """The cursor to warm for: the last one seen, else the end of the document."""
    if cursor is None or not 0 <= cursor <= len(document.text):
        return len(document.text)
    return cursor


# (the document, the other open documents) of a URI, or None when it is not open
DocumentsOf = Callable[[str], tuple[Document, Sequence[Document]] | None]
LikelyPrompt = Callable[
    [Document, int, Sequence[Document], Settings],
    tuple[GenerationEngine, tuple[int, ...]] | None,
]


class ContextWarmer:
    """Runs the warms the triggers ask for, on the server's event loop."""

    def __init__(
        self,
        likely_prompt: LikelyPrompt,
        documents: DocumentsOf,
        settings: Callable[[], Settings],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.likely_prompt = likely_prompt
        self.documents = documents
        self.settings = settings
        self.clock = clock
        self.triggers = WarmTriggers()
        self.stats = WarmStats()
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    # -- events (from the LSP edge) -----------------------------------------------------------
    def opened(self, uri: str) -> None:
        self.triggers.opened(uri, self.clock())
        self._schedule()

    def cursor_rested(self, uri: str, cursor: int) -> None:
        self.triggers.cursor_rested(uri, cursor, self.clock())
        self._schedule()

    def changed(self, uri: str, cursor: int | None) -> None:
        self.triggers.changed(uri, cursor, self.clock())
        self._schedule()

    def requested(self, uri: str, cursor: int) -> None:
        if self.triggers.requested(uri, cursor, self.clock()):
            self.stats.switches += 1
        self._schedule()

    def closed(self, uri: str) -> None:
        self.triggers.closed(uri)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._running):
            task.cancel()

    # -- running ------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not self.settings().warm_context:
            self.triggers.due.clear()
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.triggers.next_due()
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): nothing can run in the background
            return
        self._timer = loop.call_later(max(0.0, due - self.clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        for uri, cursor in self.triggers.take_due(self.clock()):
            task = asyncio.ensure_future(self._warm(uri, cursor))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        self._schedule()

    async def _warm(self, uri: str, cursor: int | None) -> None:
        settings = self.settings()
        found = self.documents(uri)
        if not settings.warm_context or found is None:
            return
        document, others = found
        if not settings.language_enabled(document.language_id):
            return
        try:
            likely = self.likely_prompt(document, warm_offset(document, cursor), others, settings)
        except Exception:  # a warm is a bonus: its failure must never reach the user
            log.exception("building the warm prompt failed")
            return
        if likely is None:
            return
        engine, prompt_ids = likely
        if not isinstance(engine, Engine):
            return
        self.stats.scheduled += 1
        self.stats.last_prompt_tokens = len(prompt_ids)
        try:
            warmed = await engine.warm(prompt_ids, key=uri)
        except Exception:
            log.exception("warm prefill failed")
            return
        if warmed:
            self.stats.warmed += 1
        else:
            self.stats.dropped += 1
        log.debug("warm %s: %d tokens, %s", uri.rsplit("/", 1)[-1], len(prompt_ids), warmed)
