"""When a flashcode/status notification goes out: editors redraw their statusline on each one."""

from __future__ import annotations

from lsp_server.features.status import LATENCY_REFRESH_S, StatusGate

READY = {"state": "ready", "model": "flashcode-tiny", "device": "cpu"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_status_and_every_change_of_state_go_out() -> None:
    gate = StatusGate(Clock())
    assert gate.should_send({**READY, "state": "loading"})
    assert gate.should_send(READY)
    assert gate.should_send({**READY, "state": "error", "message": "no model"})


def test_the_same_status_again_stays_home() -> None:
    gate = StatusGate(Clock())
    assert gate.should_send({**READY, "lastLatencyMs": 40.0})
    assert not gate.should_send({**READY, "lastLatencyMs": 40.0})


def test_a_new_latency_alone_refreshes_the_status_at_most_every_few_seconds() -> None:
    clock = Clock()
    gate = StatusGate(clock)
    assert gate.should_send({**READY, "lastLatencyMs": 40.0})
    clock.now += 0.2
    assert not gate.should_send({**READY, "lastLatencyMs": 12.0})
    clock.now += LATENCY_REFRESH_S
    assert gate.should_send({**READY, "lastLatencyMs": 12.0})
    # A change of what else the status shows is never held back by the latency's pace.
    assert gate.should_send({**READY, "device": "cuda", "lastLatencyMs": 12.0})
