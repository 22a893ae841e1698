"""Chunked prefill and warm prefills: prompts run a bounded number of tokens per scheduler step.

A prompt of a thousand tokens costs seconds on a real-size model. Run in one go, it would stall
every other request's ghost text for that long; here it runs at most `chunk_tokens` per step,
and the batched decode step of the other requests runs between its chunks. A prefill keeps its
position (the prompt tokens whose KV its slot holds) and resumes with `Runner.extend`.

A *warm* prefill (`Engine.warm`) is a prompt the user is likely to ask for soon (the document
just opened, the cursor after a pause): it runs only while the model has nothing else to do,
never produces a token, and leaves its KV in the prefix cache, so it is bounded by the prefix
cache's budget. A real request arriving drops it at the next chunk boundary; what it had run so
far is kept in the prefix cache too, so the real request (usually for the same document) starts
from there. A cancelled real prefill keeps its progress the same way: the next keystroke's
prompt shares most of it.

Trade-off: a short prompt among long ones waits for the step's budget like any other; the
budget is per step, not per request, so several short prompts still run in one step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from inference.prefix_cache import PrefixCache
from inference.runners import Runner

if TYPE_CHECKING:  # the scheduler imports this module
    from inference.scheduler import FinishReason, Submission

log = logging.getLogger("flashcode.inference")

# Prompt tokens run per scheduler step; a decode step of the other requests runs between
# chunks. 256 tokens: 85 ms on the default model (2-core CPU, busy), about 0.84 s at the 0.5B
# shape (half its verified 1,680 ms for 512). Smaller chunks stall less but run the weights more
# often per prompt.
PREFILL_CHUNK_TOKENS = 256
# A warm prefill runs in smaller chunks: a real request arriving waits for the one running
# (about 0.2 s at the 0.5B shape), and a warm runs when the model is idle, where the lower
# efficiency of small chunks costs nobody.
WARM_CHUNK_TOKENS = 64
MIN_CACHED_PROMPT = 4  # shorter prompts are not worth a cache entry


@dataclass(eq=False)
class Prefill:
    """A prompt being run into its slot."""

    prompt: tuple[int, ...]
    slot: int
    warm: bool  # prefill only: no token is sampled, the KV goes to the prefix cache
    started: float  # perf_counter at the start of its first chunk
    reused: int = 0  # positions restored from the prefix cache
    position: int = 0  # prompt positions whose KV the slot holds
    chunks: int = 0  # model runs so far
    logits: np.ndarray | None = None  # of the last prompt token, once all of it has run

    @property
    def done(self) -> bool:
        return self.logits is not None


class Prefiller:
    """The prefills in progress, each holding a slot; run oldest first within a token budget."""

    def __init__(
        self,
        runner: Runner,
        prefix_cache: PrefixCache | None,
        counters: dict[str, int],
        chunk_tokens: int = PREFILL_CHUNK_TOKENS,
    ) -> None:
        self.runner = runner
        self.prefix_cache = prefix_cache
        self.counters = counters
        self.chunk_tokens = chunk_tokens  # 0: a whole prompt in one step
        self.running: list[Prefill] = []

    def begin(self, prompt: tuple[int, ...], slot: int, warm: bool = False) -> Prefill:
        prefill = Prefill(prompt, slot, warm, started=time.perf_counter())
        self.running.append(prefill)
        return prefill

    def step(self, on_failure: Callable[[Prefill, Exception], None]) -> list[Prefill]:
        """Run up to one budget of prompt tokens; the prefills whose prompt is now all in (they
        leave `running`). A failed one is removed and handed to `on_failure`."""
        budget = self.chunk_tokens or max(1, self.runner.max_length)
        if self.running and all(prefill.warm for prefill in self.running):
            budget = min(budget, WARM_CHUNK_TOKENS)
        finished: list[Prefill] = []
        for prefill in list(self.running):
            if budget <= 0:
                break
            try:
                budget -= self._advance(prefill, budget)
            except Exception as error:  # a failed prompt must not stop the others
                log.exception("prefill failed")
                self.running.remove(prefill)
                on_failure(prefill, error)
                continue
            if prefill.done:
                self.running.remove(prefill)
                finished.append(prefill)
        return finished

    def _advance(self, prefill: Prefill, budget: int) -> int:
        """Run the next piece of one prompt; the tokens it ran."""
        prompt = prefill.prompt
        if prefill.chunks == 0:
            found = None
            if self.prefix_cache is not None:
                # at least one prompt token must run to give the next token's logits
                found = self.prefix_cache.lookup(prompt, len(prompt) - 1)
            snapshot, reused = found if found else (None, 0)
            piece = prompt[reused : reused + budget]
            logits = self.runner.prefill(prefill.slot, piece, snapshot, reused)
            prefill.reused = reused
            prefill.position = reused + len(piece)
        else:
            piece = prompt[prefill.position : prefill.position + budget]
            logits = self.runner.extend(prefill.slot, piece)
            prefill.position += len(piece)
        prefill.chunks += 1
        self.counters["prefill_chunks"] += 1
        if prefill.position == len(prompt):
            prefill.logits = logits
            if not prefill.warm:  # warm ones are counted as warm_prefills
                self.counters["prefills"] += 1
            self.store(prefill)
        return len(piece)

    def store(self, prefill: Prefill) -> None:
        """Keep what the slot holds of the prompt in the prefix cache (all of it, or the part a
        dropped or cancelled prefill had run)."""
        cache, length = self.prefix_cache, prefill.position
        if cache is None or length < MIN_CACHED_PROMPT or prefill.chunks == 0:
            return
        tokens = prefill.prompt[:length]
        if not cache.covers(tokens):
            cache.store(tokens, self.runner.snapshot(prefill.slot, length))

    def drop(self, prefill: Prefill) -> None:
        """Stop a prefill between chunks (cancelled, timed out, or a warm yielding): its progress
        stays in the prefix cache; the caller frees the slot."""
        self.running.remove(prefill)
        try:
            self.store(prefill)
        except Exception:  # keeping the progress is a bonus: never a reason to fail the step
            log.exception("keeping a dropped prefill's KV failed")


class PromptQueue:
    """The submissions not decoding yet: waiting for a slot, warm, or with their prompt running.

    `end` reports a submission that leaves without decoding (cancelled, timed out, a warm that
    ran to its end or yielded); `free_slots` is the scheduler's own list, shared.
    """

    def __init__(
        self,
        runner: Runner,
        prefix_cache: PrefixCache | None,
        counters: dict[str, int],
        free_slots: list[int],
        end: Callable[[Submission, FinishReason, Prefill | None], None],
        chunk_tokens: int = PREFILL_CHUNK_TOKENS,
    ) -> None:
        counters.update(prefill_chunks=0, warm_requests=0, warm_prefills=0, warm_dropped=0)
        self.prefiller = Prefiller(runner, prefix_cache, counters, chunk_tokens)
        self.runner = runner
        self.counters = counters
        self.free_slots = free_slots
        self.end = end
        self.waiting: list[Submission] = []
        self.warm: list[Submission] = []  # warm prefills not started, oldest first
        self.prefilling: dict[Prefill, Submission] = {}

    def busy(self) -> bool:
        return bool(self.waiting or self.warm or self.prefilling)

    def stats(self, waiting_to_hand_over: int) -> dict[str, int]:
        return {
            "waiting": len(self.waiting) + waiting_to_hand_over,
            "prefilling": len(self.prefilling),
            "warm_waiting": len(self.warm),
        }

    def take(self, incoming: list[Submission]) -> None:
        """Hand submissions over to the model thread; a warm replaces the older one of its key."""
        for submission in incoming:
            key = submission.warm_key
            if key is None:
                self.waiting.append(submission)
                continue
            for older in [w for w in self.warm if w.warm_key == key]:
                self.warm.remove(older)
                self.counters["warm_dropped"] += 1
                self.end(older, "cancelled", None)
            for prefill, running in list(self.prefilling.items()):
                if running.warm_key == key:
                    self._stop(prefill, "cancelled")
            self.warm.append(submission)
        incoming.clear()

    def retire(self, expired: Callable[[Submission], bool]) -> None:
        """Step boundary: cancelled and timed-out submissions leave before the next run."""
        for submission in list(self.waiting):
            reason: FinishReason | None = None
            if submission.cancelled:
                reason = "cancelled"
            elif expired(submission):
                reason = "deadline"
            if reason is not None:
                self.waiting.remove(submission)
                self.end(submission, reason, None)
        for prefill, submission in list(self.prefilling.items()):
            if submission.cancelled:
                self._stop(prefill, "cancelled")
            elif expired(submission):
                self._stop(prefill, "deadline")
        for submission in [w for w in self.warm if w.cancelled]:
            self.warm.remove(submission)
            self.end(submission, "cancelled", None)

    def admit(self, decoding: bool) -> list[tuple[Submission, Prefill]]:
        """Start prefills in free slots, real requests first; a warm only when the model has
        nothing else to do (`decoding`: some request is), and it yields at once to a real one.
        Then one budget of prompt tokens runs. The real requests whose prompt is now all in."""
        if self.waiting:
            for prefill, submission in list(self.prefilling.items()):
                if submission.warm_key is not None:
                    self._stop(prefill, "cancelled")
        while self.waiting and self.free_slots:
            self._begin(self.waiting.pop(0))
        while self.warm and not (decoding or self.prefilling) and self.free_slots:
            submission = self.warm.pop(0)
            cache = self.prefiller.prefix_cache
            if cache is None or not cache.covers(submission.request.prompt_ids):
                self._begin(submission)
            else:  # warm already: the request it was for came first, or an earlier warm
                self.counters["warm_prefills"] += 1
                self.end(submission, "stop", None)
        finished = self.prefiller.step(self._failed)
        for prefill, submission in self.prefilling.items():
            submission.runs = prefill.chunks
        ready = []
        for prefill in finished:
            submission = self.prefilling.pop(prefill)
            submission.runs = prefill.chunks
            if submission.warm_key is None:
                ready.append((submission, prefill))
                continue
            self._free(prefill.slot)
            self.counters["warm_prefills"] += 1
            self.end(submission, "stop", prefill)
        return ready

    def stop_all(self) -> None:
        """The engine closes: everything not decoding yet ends as cancelled."""
        for prefill in list(self.prefilling):
            self._stop(prefill, "cancelled")
        for submission in self.waiting + self.warm:
            self.end(submission, "cancelled", None)
        self.waiting.clear()
        self.warm.clear()

    def fail_all(self, error: Exception) -> None:
        for prefill in list(self.prefilling):
            self._failed(prefill, error)
        self.counters["failed"] += len(self.waiting)
        for submission in self.waiting + self.warm:
            submission.on_done(error)
        self.waiting.clear()
        self.warm.clear()

    def _begin(self, submission: Submission) -> None:
        slot = min(self.free_slots)
        self.free_slots.remove(slot)
        submission.phase = "prefill"
        warm = submission.warm_key is not None
        prefill = self.prefiller.begin(submission.request.prompt_ids, slot, warm)
        self.prefilling[prefill] = submission

    def _free(self, slot: int) -> None:
        self.runner.release(slot)
        self.free_slots.append(slot)

    def _failed(self, prefill: Prefill, error: Exception) -> None:
        submission = self.prefilling.pop(prefill)
        self._free(prefill.slot)
        if submission.warm_key is None:
            self.counters["failed"] += 1
        submission.on_done(error)

    def _stop(self, prefill: Prefill, reason: FinishReason) -> None:
        """Between chunks: cancelled, timed out, or a warm yielding or replaced."""
        submission = self.prefilling.pop(prefill)
        submission.runs = prefill.chunks
        self.prefiller.drop(prefill)
        self._free(prefill.slot)
        if submission.warm_key is not None:
            self.counters["warm_dropped"] += 1
        self.end(submission, reason, prefill)
