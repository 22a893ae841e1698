"""The completion cache as the pipeline holds it: the disk cache opened from the settings, and
the pattern learner that mines the user's code for it.

Three steps of a completion use it, each in its own module, in this order: the pattern lookup
before the prompt is built (pattern_step), the exact lookup once the prompt's ids are known
(exact_step), and the storing of the model's answer after post-processing (store_step). The
cache is (re)opened when the settings change, never on a request. A cache fault costs a model
call, never the completion: every step is wrapped in `miss_on_error`. The user hears of cache
faults once per opened cache (the first warning); the rest go to the log and flashcode/stats:
a disk that stays full, or three layers found broken at once, is one thing to fix.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from inference.cache.database import cache_dir
from inference.cache.store import CompletionCache
from lsp_server.settings import CacheSettings
from prompts.patterns import PatternExample, PatternLearner

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class CacheHit:
    layer: str  # "exact" | "pattern"
    text: str  # a pattern hit's completion, or the exact layer's raw model answer


def miss_on_error(on_error: T) -> Callable[[Callable[P, R]], Callable[P, R | T]]:
    """A cache fault costs a model call, never the completion: the step answers `on_error`."""

    def decorate(step: Callable[P, R]) -> Callable[P, R | T]:
        @functools.wraps(step)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R | T:
            try:
                return step(*args, **kwargs)
            except Exception:
                log.exception("completion cache step %s failed; going on without it", step.__name__)
                return on_error

        return guarded

    return decorate


class CacheState:
    """Owns the disk cache (opened from settings) and the pattern learner."""

    def __init__(self, on_warning: Callable[[str], None] | None = None) -> None:
        self.on_warning = on_warning
        self.cache: CompletionCache | None = None
        self.learner = PatternLearner()
        self._opened_for: tuple[str, int] | None = None
        self._warned = False  # the user has heard of a fault of the cache opened now

    def configure(self, settings: CacheSettings) -> None:
        """Open, reopen or close the cache so that it follows the settings."""
        if not settings.enabled:
            self.close()
            return
        target = (str(cache_dir(settings.directory)), settings.max_size_mb)
        if self.cache is not None and target == self._opened_for:
            return
        self.close()
        self._warned = False
        self.cache = CompletionCache(target[0], target[1], on_warning=self._warn)
        self._opened_for = target
        log.info("completion cache at %s (%d MB)", target[0], target[1])

    def _warn(self, message: str) -> None:
        if self.on_warning is not None and not self._warned:
            self._warned = True
            self.on_warning(message)

    def forget(self, uri: str) -> None:
        self.learner.forget(uri)

    def learn_examples(self, examples: Sequence[PatternExample]) -> None:
        """Store examples mined from the user's own code (open documents, workspace files)."""
        if self.cache is not None:
            self.cache.add_patterns(((e.key, e.lines, e.entity) for e in examples), "workspace")

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self.cache = None
        self._opened_for = None

    def stats(self) -> dict[str, Any]:
        if self.cache is None:
            return {"enabled": False}
        return {"enabled": True, **self.cache.stats()}
