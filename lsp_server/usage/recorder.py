"""Counting a server's completions: the completion service's outcomes and acceptances, into the
usage store its settings name.

It listens to the service's `finished` and `accepted_ids` signals, so the pipeline knows nothing
of it. A suggestion counts as shown when a non-empty one went back to the editor: LSP has no
"shown" notification, and an editor drops an answer only when the user typed on meanwhile. An
acceptance is counted once per suggestion, for the layer and language of the text on screen when
it was accepted (a model suggestion that the user typed into and then accepted counts for
typing-ahead), on the day it was accepted. Counting never costs a completion: a fault is logged
and the request goes on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import Any

from lsp_server.completion.outcome import CompletionOutcome
from lsp_server.completion.pipeline import CompletionService, CompletionStats
from lsp_server.settings import Settings
from lsp_server.usage import figures
from lsp_server.usage.store import UsageStore, usage_dir

log = logging.getLogger(__name__)

RECENT_SHOWN = 256  # suggestions remembered for their acceptance; older ones are not counted


def local_date() -> str:
    return date.today().isoformat()


class UsageRecorder:
    def __init__(
        self,
        on_warning: Callable[[str], None] | None = None,
        today: Callable[[], str] = local_date,
    ) -> None:
        self.on_warning = on_warning
        self.store: UsageStore | None = None  # None while usage is switched off
        self.price_per_million = Settings().usage.price_per_million_tokens
        self._today = today
        self._shown: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (layer, language)

    def attach(self, service: CompletionService) -> None:
        service.finished.subscribe(self._on_finished)
        service.accepted_ids.subscribe(self._on_accepted)

    def configure(self, settings: Settings) -> None:
        """Follow the settings: on or off, and the directory in the cache directory."""
        self.price_per_million = settings.usage.price_per_million_tokens
        directory = usage_dir(settings.cache.directory) if settings.usage.enabled else None
        if self.store is not None and self.store.directory == directory:
            return
        self.close()
        if directory is not None:
            self.store = UsageStore(directory, self._warn)

    def record(self, outcome: CompletionOutcome) -> None:
        store = self.store
        if store is None:
            return
        if outcome.shown:
            self._shown[outcome.suggestion_id] = (outcome.layer, outcome.language)
            self._shown.move_to_end(outcome.suggestion_id)
            while len(self._shown) > RECENT_SHOWN:
                self._shown.popitem(last=False)

        def count(day: figures.DayUsage) -> None:
            day.count_request(outcome.layer, outcome.language, outcome.shown, outcome.latency_ms)
            day.count_tokens(
                outcome.generated_tokens, outcome.prompt_tokens, outcome.reused_prompt_tokens
            )

        store.update(self._today(), count)

    def accepted(self, suggestion_id: str) -> None:
        store = self.store
        shown = self._shown.pop(suggestion_id, None)  # popped: a second accept is not counted
        if store is not None and shown is not None:
            store.update(self._today(), lambda day: day.count_accept(*shown))

    def report(self) -> dict[str, Any]:
        """The figures for flashcode/stats: everything in the file and not yet written."""
        store = self.store
        if store is None:
            return {"enabled": False}
        totals = store.totals()
        return {
            "enabled": True,
            "directory": str(store.directory),
            **figures.report(totals, self.price_per_million),
        }

    def flush(self) -> None:
        if self.store is not None:
            self.store.flush()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.store = None

    def _on_finished(self, stats: CompletionStats) -> None:
        if stats.last_outcome is None:
            return
        try:
            self.record(stats.last_outcome)
        except Exception:
            log.exception("counting a completion's usage failed; the completion goes on")

    def _on_accepted(self, suggestion_id: str) -> None:
        try:
            self.accepted(suggestion_id)
        except Exception:
            log.exception("counting an acceptance failed")

    def _warn(self, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(message)
