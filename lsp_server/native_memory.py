"""Giving memory that was freed back to the system once requests pause.

Every keystroke's request allocates and frees native memory of many sizes on several threads
(tree-sitter trees, tokenizer buffers, onnxruntime's inputs and outputs, SQLite pages). glibc keeps
what is freed inside its arenas for reuse, and the free space fragments: the soak benchmark saw
the server's resident set creep up by megabytes per thousand requests with the Python heap flat.
`malloc_trim(0)` returns the free pages of every arena to the system. It walks the arenas under
their locks (a few milliseconds), so it runs once requests have paused for `IDLE_S`, and for a
user who never pauses, after every `EVERY_REQUESTS`-th answer has been sent: never between a
keystroke and its answer. Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import platform
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

IDLE_S = 2.0  # a pause in typing this long counts as idle
EVERY_REQUESTS = 256  # without such a pause, one trim per this many requests
DUE_DELAY_S = 0.05


def glibc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim, or None where the C library is another one."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


class IdleTrimmer:
    """Calls `trim` once no request has come for `idle_s` seconds (after each burst, once)."""

    def __init__(
        self,
        trim: Callable[[], int] | None = None,
        idle_s: float = IDLE_S,
        every: int = EVERY_REQUESTS,
        enabled: bool = True,
        due_delay_s: float = DUE_DELAY_S,
    ) -> None:
        self._trim = (trim or glibc_trim()) if enabled else None
        self._idle_s = idle_s
        self._every = every
        self._due_delay_s = due_delay_s
        self._since_trim = 0
        self._pending: asyncio.TimerHandle | None = None
        self.trims = 0

    def request_done(self) -> None:
        """A request was answered: trim when the next pause is long enough (on the event loop)."""
        if self._trim is None:
            return
        if self._pending is not None:
            self._pending.cancel()
        self._since_trim += 1
        # Even when due, it waits a moment: the answer this request returns is written first.
        delay = self._due_delay_s if self._since_trim >= self._every else self._idle_s
        self._pending = asyncio.get_running_loop().call_later(delay, self._run)

    def _run(self) -> None:
        self._pending = None
        if self._trim is None:
            return
        self._since_trim = 0
        started = time.perf_counter()
        try:
            self._trim()
            self.trims += 1
            log.debug("malloc_trim took %.1f ms", (time.perf_counter() - started) * 1000)
        except Exception as exc:  # never worth a failed session
            log.debug("malloc_trim failed: %s", exc)
            self._trim = None

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
