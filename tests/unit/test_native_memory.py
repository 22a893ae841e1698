"""Freed native memory goes back to the system once requests pause, once per pause."""

from __future__ import annotations

import asyncio
import platform

import pytest

from lsp_server.native_memory import IdleTrimmer, glibc_trim


async def pause() -> None:
    for _ in range(3):  # call_later(0) callbacks run within the next loop iterations
        await asyncio.sleep(0)


async def test_a_burst_of_requests_is_followed_by_one_trim_and_none_during_it() -> None:
    calls: list[int] = []
    trimmer = IdleTrimmer(trim=lambda: calls.append(1) or 1, idle_s=0)
    for _ in range(5):
        trimmer.request_done()
    assert calls == []  # nothing while requests keep coming
    await pause()
    assert calls == [1] and trimmer.trims == 1
    trimmer.request_done()
    await pause()
    assert trimmer.trims == 2


async def test_without_a_pause_it_trims_after_every_so_many_requests() -> None:
    calls: list[int] = []
    trimmer = IdleTrimmer(trim=lambda: calls.append(1) or 1, idle_s=3600, every=4, due_delay_s=0)
    for _ in range(3):
        trimmer.request_done()
    await pause()
    assert calls == []
    trimmer.request_done()  # the fourth
    await pause()
    assert calls == [1]
    trimmer.close()


async def test_switched_off_or_closed_it_never_trims() -> None:
    calls: list[int] = []
    off = IdleTrimmer(trim=lambda: calls.append(1) or 1, idle_s=0, enabled=False)
    off.request_done()
    closed = IdleTrimmer(trim=lambda: calls.append(1) or 1, idle_s=0)
    closed.request_done()
    closed.close()
    await pause()
    assert calls == []


async def test_a_failing_trim_is_given_up_without_raising() -> None:
    def broken() -> int:
        raise OSError("no such symbol")

    trimmer = IdleTrimmer(trim=broken, idle_s=0)
    trimmer.request_done()
    await pause()
    trimmer.request_done()  # no second try, no error
    await pause()
    assert trimmer.trims == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_runs_here() -> None:
    trim = glibc_trim()
    assert trim is not None
    assert trim() in (0, 1)
