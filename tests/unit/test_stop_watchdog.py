"""A TCP server that is told to stop ends within a bound, even when its wind-down hangs."""

from __future__ import annotations

import asyncio
import signal

from lsp_server.transport import Connections, GracefulStop, StopWatchdog


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


def test_the_first_signal_asks_the_loop_to_stop_and_a_second_ends_the_process() -> None:
    async def scenario() -> tuple[bool, list[int]]:
        ended: list[int] = []
        watchdog = StopWatchdog(limit_s=3600, end=ended.append)
        stop = GracefulStop(asyncio.get_running_loop(), watchdog)
        stop.on_signal(signal.SIGTERM, None)
        await asyncio.wait_for(stop.requested.wait(), 5)
        first_only = list(ended)
        stop.on_signal(signal.SIGINT, None)
        assert watchdog.timer is not None
        watchdog.timer.cancel()
        return not first_only, ended

    nothing_ended_at_first, ended = asyncio.run(scenario())
    assert nothing_ended_at_first
    assert ended == [1]


def test_a_stop_ends_a_connection_that_is_waiting_for_its_client() -> None:
    async def scenario() -> list[str]:
        connections = Connections()
        ended: list[str] = []
        waiting = asyncio.Event()

        async def handle(reader: asyncio.StreamReader) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.readers[task] = reader
            waiting.set()
            await reader.readline()  # an idle client: nothing comes until the stop
            ended.append("ended")

        task = asyncio.create_task(handle(asyncio.StreamReader()))
        await waiting.wait()
        await connections.end_all(timeout_s=5)
        assert task.done()
        return ended

    assert asyncio.run(scenario()) == ["ended"]
