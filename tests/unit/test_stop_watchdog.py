"""A TCP server that is told to stop ends within a bound, even when its wind-down hangs."""

from __future__ import annotations

import signal

import pytest

from lsp_server.transport import StopWatchdog


def test_the_watchdog_ends_the_process_once_its_limit_has_passed() -> None:
    ended: list[int] = []
    watchdog = StopWatchdog(limit_s=0, end=ended.append)
    watchdog.arm()
    assert watchdog.timer is not None
    watchdog.timer.join(5)
    assert ended == [1]


def test_a_second_signal_does_not_restart_the_clock() -> None:
    watchdog = StopWatchdog(limit_s=3600, end=lambda code: None)
    watchdog.arm()
    first = watchdog.timer
    watchdog.arm()
    assert watchdog.timer is first
    assert first is not None
    first.cancel()


def test_the_signal_handler_stops_the_server_as_ctrl_c_does() -> None:
    watchdog = StopWatchdog(limit_s=3600, end=lambda code: None)
    with pytest.raises(KeyboardInterrupt):
        watchdog.on_signal(signal.SIGTERM, None)
    assert watchdog.timer is not None
    watchdog.timer.cancel()
