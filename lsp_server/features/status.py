"""flashcode/status notifications, $/progress for model loading, and the flashcode/stats request."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.backends.local import ModelManager, ModelState

if TYPE_CHECKING:
    from lsp_server.server import FlashcodeServer

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "flashcode/status"
STATS_REQUEST = "flashcode/stats"


def status_payload(server: FlashcodeServer) -> dict[str, Any]:
    models = server.models
    payload: dict[str, Any] = {
        "state": models.state.value,
        "model": models.describe(),
        "device": models.device(),
    }
    if models.error:
        payload["message"] = models.error
    if server.completions.stats.answered:
        payload["lastLatencyMs"] = round(server.completions.stats.last_latency_ms, 1)
    return payload


# A new latency alone refreshes the status at most this often: editors redraw their statusline
# on every status, and a keystroke's completion is no reason to.
LATENCY_REFRESH_S = 5.0


class StatusGate:
    """Whether a status goes out: when anything it shows but the latency changed, and for a new
    latency alone at most every LATENCY_REFRESH_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, Any] | None = None
        self._sent_at = float("-inf")

    def should_send(self, payload: dict[str, Any]) -> bool:
        now = self._clock()
        last = self._last
        if last is not None and _without_latency(payload) == _without_latency(last):
            same_latency = payload.get("lastLatencyMs") == last.get("lastLatencyMs")
            if same_latency or now - self._sent_at < LATENCY_REFRESH_S:
                return False
        self._last, self._sent_at = payload, now
        return True


def _without_latency(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "lastLatencyMs"}


def send_status(server: FlashcodeServer, gate: StatusGate | None = None) -> None:
    """Send the status; with a gate, only when the gate lets it through."""
    payload = status_payload(server)
    if gate is None or gate.should_send(payload):
        server.protocol.notify(STATUS_NOTIFICATION, payload)


async def _begin_load_progress(server: FlashcodeServer, models: ModelManager) -> None:
    capabilities = server.client_capabilities
    if not (capabilities.window and capabilities.window.work_done_progress):
        return
    token = f"flashcode-load-{uuid.uuid4().hex[:8]}"
    try:
        await server.work_done_progress.create_async(token)
    except Exception as exc:  # the editor refused a progress bar: loading goes on without one
        log.debug("progress create refused: %s", exc)
        return
    # The load may have finished while the editor answered; a bar begun now would never end.
    if models.state is ModelState.LOADING and server.load_progress_token is None:
        server.load_progress_token = token
        server.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title="flashcode", message=f"loading {models.describe()}", cancellable=False
            ),
        )


def _end_load_progress(server: FlashcodeServer, models: ModelManager) -> None:
    token = server.load_progress_token
    if token is not None:
        server.load_progress_token = None
        server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=models.state.value))


def on_models_changed(server: FlashcodeServer, models: ModelManager, gate: StatusGate) -> None:
    if models.state is not ModelState.LOADING:
        # Ended before the status goes out, so an editor that sees "ready" has no bar left open.
        _end_load_progress(server, models)
    if models.state is ModelState.ERROR:
        # Before the status, so an editor that sees "error" has already been told why.
        server.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Error, message=models.error)
        )
    payload = status_payload(server)
    gate.should_send(payload)  # a model event always goes out; the gate only learns of it
    server.protocol.notify(STATUS_NOTIFICATION, payload)
    if models.state is ModelState.LOADING:
        server.spawn(_begin_load_progress(server, models))


def stats_payload(server: FlashcodeServer) -> dict[str, Any]:
    stats = server.completions.stats
    outcome = stats.last_outcome
    result: dict[str, Any] = {
        "completions": {
            "requests": stats.requests,
            "answered": stats.answered,
            "empty": stats.empty,
            "cancelled": stats.cancelled,
            "accepted": stats.accepted,
            "bySource": dict(stats.by_source),
            "emptyByReason": dict(stats.empty_by_reason),
            "changedByRule": dict(stats.changed_by_rule),
            "lastEmptyReason": stats.last_empty_reason,
            "lastLatencyMs": round(stats.last_latency_ms, 1),
            "lastPromptTokens": outcome.prompt_tokens if outcome is not None else 0,
            "lastReusedPromptTokens": outcome.reused_prompt_tokens if outcome is not None else 0,
        },
        "model": status_payload(server),
    }
    if server.models.flash is not None:
        result["engine"] = server.models.flash.primary.stats()
        # Every variant (int4, int8) has slots and a prefix cache of its own.
        routers = {id(r): r for r in (server.models.flash, server.models.pro) if r is not None}
        result["engines"] = {
            f"{router.primary.model.name}/{name}" if len(routers) > 1 else name: engine.stats()
            for router in routers.values()
            for name, engine in router.engines.items()
        }
    result["cache"] = server.completions.cache.stats()
    if server.workspace_learning is not None:
        result["cache"]["workspace"] = server.workspace_learning.as_dict()
    result["usage"] = server.usage.report()
    result["workspaceIndex"] = server.index_service.stats()
    result["retrieval"] = server.completions.retrieval.report()
    result["warm"] = server.warmer.stats.as_dict()
    # Messages the protocol still holds a future for; the stats request asking is one of them.
    result["protocol"] = {"heldMessages": len(server.protocol._request_futures)}
    return result


def register(server: FlashcodeServer) -> None:
    gate = StatusGate()
    unsubscribe = server.models.changed.subscribe(
        lambda models: on_models_changed(server, models, gate)
    )
    server.on_close(unsubscribe)  # the model may be shared with other clients (TCP)
    server.completions.finished.subscribe(lambda _: send_status(server, gate))
    # A client that joins a model already loaded (by another TCP client) sees no model event:
    # it is told the state once its settings are applied.
    server.configured.subscribe(
        lambda ls: send_status(ls, gate) if ls.models.state is not ModelState.LOADING else None
    )

    @server.feature(STATS_REQUEST)
    def stats(ls: FlashcodeServer, params: Any) -> dict[str, Any]:
        return stats_payload(ls)
