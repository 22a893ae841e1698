"""Continuous batching on one model thread: slots, prefix reuse, stops, deadlines, cancellation.

The scheduler thread repeats one *step*: drop requests that were cancelled or ran out of time,
admit waiting requests into free slots and run one budget of prompt tokens (inference/prefill.py:
after the longest prefix in the prefix cache, a long prompt in chunks over several steps), then
run one decode step for every live slot together (a row with a worthwhile prompt-lookup draft
verifies it on its own instead: inference/lookup.py). Requests join and leave only at step
boundaries; a cancel costs at most the step already running. Warm prefills (Engine.warm) run
only when there is nothing else to do."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from inference.forcing import ForcedPrefixIndex, constrain
from inference.lookup import Drafter, PromptLookup
from inference.ngram import NgramMixer, NgramSource
from inference.prefill import PREFILL_CHUNK_TOKENS, Prefill, PromptQueue
from inference.prefix_cache import PrefixCache
from inference.runners import Runner
from inference.sampling import Sampler, TextTracker
from inference.tokenizer import Tokenizer

log = logging.getLogger("flashcode.inference")

# "error": a remote backend's server failed (lsp_server/backends/remote.py); never this scheduler.
FinishReason = Literal["stop", "length", "deadline", "cancelled", "error"]
# Where a request was when its cancel arrived: waiting for a slot, in its prefill, decoding.
Phase = Literal["queued", "prefill", "decode"]


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: tuple[int, ...]
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    # Generation stops on these ids (not included in the output). The tokenizer's EOS ids are not
    # implied: pass them (Tokenizer.eos_token_ids) when the model should stop at end of text.
    stop_token_ids: frozenset[int] = frozenset()
    stop_strings: tuple[str, ...] = ()  # the text is cut before the first one found
    # seconds from submission, checked at step boundaries (a prompt chunk being run finishes first)
    deadline_s: float | None = None
    seed: int | None = None
    # The answer must start with this text (token healing: the typed text the prompt backed off
    # from). Until it is written, only tokens consistent with what is left of it are sampled.
    forced_prefix: str = ""
    # The first token is a space and a word's start (prompts.healing.space_then_word).
    space_then_word: bool = False
    # The user's own code, mixed into each step's distribution (inference/ngram.py): token arrays
    # searched for the longest suffix of `ngram_context` (the tokens just before the cursor)
    # followed by what was generated so far; the first source wins a tie.
    ngram_sources: tuple[NgramSource, ...] = field(default=(), compare=False)
    ngram_context: tuple[int, ...] = ()


@dataclass
class GenerationResult:
    token_ids: list[int]
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    reused_prompt_tokens: int  # prompt positions whose KV came from the prefix cache
    prefill_ms: float
    total_ms: float  # submission to finish, queueing included
    steps: int  # model runs this request took part in (prefill included)
    queue_ms: float = 0.0  # submission to the start of its prefill (waiting for a slot or a step)


@dataclass(eq=False)
class Submission:
    """A request handed to the scheduler; callbacks run on the scheduler thread."""

    request: GenerationRequest
    on_done: Callable[[GenerationResult | BaseException], None]
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    runs: int = 0  # model runs that included this request
    runs_at_cancel: int = 0
    phase: Phase = "queued"  # set by the model thread
    phase_at_cancel: Phase = "queued"
    warm_key: str | None = None  # a warm prefill (Engine.warm); a newer one of its key replaces it
    _wake: Callable[[], None] | None = None

    def cancel(self) -> None:
        """Thread-safe: the request leaves at the next step boundary."""
        if not self.cancelled:
            self.runs_at_cancel = self.runs
            self.phase_at_cancel = self.phase
            self.cancelled = True
            if self._wake is not None:
                self._wake()


@dataclass(eq=False)
class _Sequence:
    """A request occupying a slot."""

    sub: Submission
    slot: int
    sampler: Sampler
    tracker: TextTracker | None
    limit: int  # new tokens allowed (request and slot capacity)
    reused: int
    prefill_ms: float
    queue_ms: float
    generated: list[int] = field(default_factory=list)
    next_token: int = -1  # sampled, not yet run through the model
    forced: str = ""  # what is left to write of the request's forced prefix
    next_allowed: np.ndarray | None = None  # once: after_blank or space_then_word (forcing.py)
    mixer: NgramMixer | None = None
    matched: bool = False  # the workspace match moved this step's distribution
    drafter: Drafter | None = None  # made at its first decode step when prompt lookup is on


def _slot_of(sequence: _Sequence) -> int:
    return sequence.slot


class Scheduler:
    """Owns the runner; all model work happens on its thread."""

    def __init__(
        self,
        runner: Runner,
        tokenizer: Tokenizer,
        prefix_cache: PrefixCache | None,
        prefill_chunk_tokens: int = PREFILL_CHUNK_TOKENS,
    ) -> None:
        self.runner = runner
        self.lookup: PromptLookup | None = None  # speculative decoding, set before start()
        self.tokenizer = tokenizer
        self.prefix_cache = prefix_cache
        self._cond = threading.Condition()
        self._incoming: list[Submission] = []
        self._active: list[_Sequence] = []
        self._free_slots = list(range(runner.max_batch))
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="flashcode-model", daemon=True)
        self.counters = {
            "requests": 0,
            "finished": 0,
            "cancelled": 0,
            "deadline": 0,
            "failed": 0,
            "generated_tokens": 0,
            "prefills": 0,
            "decode_steps": 0,
            "batched_rows": 0,  # sum of batch sizes over decode steps
            "cancel_steps_max": 0,  # most model runs a request took part in after its cancel
            "mixed_rows": 0,  # rows whose distribution a workspace match moved
            "mixing_rows": 0,  # rows that searched for one
            **{f"cancelled_in_{phase}": 0 for phase in get_args(Phase)},
        }
        self._mixing_seconds = 0.0
        self._step_seconds: dict[int, list[float]] = {}  # batch size -> [seconds, steps]
        self._forcing: ForcedPrefixIndex | None = None  # built when the model thread starts
        self._queue = PromptQueue(
            runner, prefix_cache, self.counters, self._free_slots, self._end, prefill_chunk_tokens
        )

    def start(self) -> None:
        self._thread.start()

    def submit(self, submission: Submission) -> None:
        submission._wake = self._wake
        with self._cond:
            if self._closed:
                raise RuntimeError("the engine is closed")
            self._incoming.append(submission)
            self.counters["requests" if submission.warm_key is None else "warm_requests"] += 1
            self._cond.notify()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def stats(self) -> dict[str, object]:
        stats: dict[str, object] = dict(self.counters)
        stats["active"] = len(self._active)
        stats.update(self._queue.stats(waiting_to_hand_over=len(self._incoming)))
        # Read while the model thread runs: exact only once no request is left (a leak check).
        free = list(self._free_slots)
        stats["slots"] = self.runner.max_batch
        stats["free_slots"] = len(free)
        stats["free_slots_holding_kv"] = sum(self.runner.holds_kv(slot) for slot in free)
        stats.update(getattr(self.runner, "kv_stats", dict)())  # shared KV buffers only
        steps = self.counters["decode_steps"]
        stats["mean_batch"] = round(self.counters["batched_rows"] / steps, 2) if steps else 0.0
        searched = self.counters["mixing_rows"]
        stats["mixing_ms_per_row"] = (
            round(self._mixing_seconds / searched * 1000, 4) if searched else 0.0
        )
        stats["step_ms_by_batch"] = {
            size: round(seconds / count * 1000, 3)
            # list() copies in one C call: the model thread may add a size meanwhile
            for size, (seconds, count) in sorted(list(self._step_seconds.items()))
        }
        if self.lookup is not None:
            stats.update(self.lookup.stats())
        if self.prefix_cache is not None:
            stats["prefix_cache"] = self.prefix_cache.stats()
        return stats

    # -- the model thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        # The forcing index costs tens of ms (a large vocabulary, a second): paid here, before
        # any request, and not by the first request a user makes after a partial word.
        try:
            self._forcing_index()
        except Exception:  # only forced requests need it: they fail alone, at their step
            log.exception("the forcing index could not be built")
        # Every microsecond of Python here is paid on each token, so the lock is only taken
        # when there is something to hand over or nothing to do (reading the lists is safe).
        while not self._closed:
            if self._incoming or not (self._active or self._queue.busy()):
                with self._cond:
                    while not (self._incoming or self._active or self._queue.busy()):
                        if self._closed:
                            break
                        self._cond.wait()
                    if self._closed:
                        break
                    self._queue.take(self._incoming)
            try:
                self._step()
            except Exception as error:  # a bug in one step must not leave callers waiting forever
                log.exception("scheduler step failed")
                self._fail_all(error)
        self._queue.take(self._incoming)
        self._queue.stop_all()
        for sequence in list(self._active):
            self._finish(sequence, "cancelled")

    def _step(self) -> None:
        self._retire()
        if self._queue.busy():
            for submission, prefill in self._queue.admit(decoding=bool(self._active)):
                try:
                    self._start_decoding(submission, prefill)
                except Exception as error:  # a failed request must not stop the others
                    log.exception("the first token failed")
                    self._active = [s for s in self._active if s.sub is not submission]
                    if prefill.slot not in self._free_slots:
                        self.runner.release(prefill.slot)
                        self._free_slots.append(prefill.slot)
                    self.counters["failed"] += 1
                    submission.on_done(error)
            self._retire()  # a cancel that came during the prefills
        if self._active:
            self._decode_step()

    def _fail_all(self, error: Exception) -> None:
        self.counters["failed"] += len(self._active)
        for sequence in list(self._active):
            self._release(sequence)
            sequence.sub.on_done(error)
        self._queue.fail_all(error)

    def _expired(self, submission: Submission, now: float) -> bool:
        deadline = submission.request.deadline_s
        return deadline is not None and now - submission.submitted >= deadline

    def _retire(self) -> None:
        """Step boundary: cancelled and timed-out requests leave before the next run."""
        now = time.perf_counter()
        leaving = [
            s for s in self._active if s.sub.cancelled or s.sub.request.deadline_s is not None
        ]
        for sequence in leaving:
            if sequence.sub.cancelled:
                self._finish(sequence, "cancelled")
            elif self._expired(sequence.sub, now):
                self._finish(sequence, "deadline")
        self._queue.retire(lambda submission: self._expired(submission, now))

    def _start_decoding(self, submission: Submission, prefill: Prefill) -> None:
        request, slot, started = submission.request, prefill.slot, prefill.started
        prompt, logits = request.prompt_ids, prefill.logits
        assert logits is not None, "a request decodes once its whole prompt has run"
        sequence = _Sequence(
            sub=submission,
            slot=slot,
            sampler=Sampler(request.temperature, request.top_p, request.seed),
            tracker=TextTracker(self.tokenizer.decode, request.stop_strings)
            if request.stop_strings
            else None,
            limit=min(request.max_new_tokens, self.runner.max_length - len(prompt)),
            reused=prefill.reused,
            prefill_ms=(time.perf_counter() - started) * 1000,
            queue_ms=(started - submission.submitted) * 1000,
            forced=request.forced_prefix,
            next_allowed=self._forcing_index().space_then_word()
            if request.space_then_word and not request.forced_prefix
            else None,
            mixer=NgramMixer(request.ngram_sources, list(request.ngram_context))
            if request.ngram_sources and request.ngram_context
            else None,
        )
        self._active.append(sequence)
        submission.phase = "decode"
        self._accept(sequence, self._sample(sequence, self._mixed(sequence, logits)))

    def _decode_step(self) -> None:
        sequences = self._active
        if len(sequences) > 1:
            sequences.sort(key=_slot_of)  # in place: usually already in order
        sequences = list(sequences)  # _accept may remove finished ones from self._active
        if (lookup := self.lookup) is not None:  # rows with a draft verify it on their own
            drafts = lookup.drafts(sequences, lambda s: s.sub.request, self._step_seconds)
            for sequence, draft in drafts.items():
                self._verify(lookup, sequence, draft)
            sequences = [s for s in sequences if s not in drafts]
            if not sequences:
                return
        slots = [s.slot for s in sequences]
        started = time.perf_counter()
        try:
            logits = self.runner.decode(slots, [s.next_token for s in sequences])
        except Exception as error:
            log.exception("decode step failed")
            self._fail(sequences, error)
            return
        self.counters["decode_steps"] += 1
        self.counters["batched_rows"] += len(sequences)
        timing = self._step_seconds.setdefault(len(sequences), [0.0, 0])
        timing[0] += time.perf_counter() - started
        timing[1] += 1
        greedy = logits.argmax(axis=1).tolist()
        for row, sequence in enumerate(sequences):
            sequence.sub.runs += 1
            if sequence.mixer is not None:
                self._accept(sequence, self._sample(sequence, self._mixed(sequence, logits[row])))
            elif (
                sequence.forced or sequence.next_allowed is not None or not sequence.sampler.greedy
            ):
                self._accept(sequence, self._sample(sequence, logits[row]))
            else:
                self._accept(sequence, greedy[row])

    def _verify(self, lookup: PromptLookup, sequence: _Sequence, draft: list[int]) -> None:
        cached = len(sequence.sub.request.prompt_ids) + len(sequence.generated) - 1
        sequence.sub.runs += 1
        try:
            lookup.verify(
                self.runner, sequence, cached, [sequence.next_token, *draft],
                lambda logits: self._sample(sequence, self._mixed(sequence, logits)),
                lambda token: self._accept(sequence, token),
            )  # fmt: skip
        except Exception as error:
            log.exception("draft verification failed")
            self._fail([sequence], error)

    def _fail(self, sequences: list[_Sequence], error: Exception) -> None:
        for sequence in sequences:
            self._release(sequence)
            self.counters["failed"] += 1
            sequence.sub.on_done(error)

    def _mixed(self, sequence: _Sequence, logits: np.ndarray) -> np.ndarray:
        """One row's logits with its workspace match mixed in (unchanged without a mixer)."""
        mixer = sequence.mixer
        if mixer is None:
            return logits
        started = time.perf_counter()
        before = mixer.mixed_steps
        allowed = self._forcing_index().allowed(sequence.forced) if sequence.forced else None
        mixed = mixer.mix(logits, allowed if allowed is not None and allowed.size else None)
        sequence.matched = mixer.mixed_steps > before
        self._mixing_seconds += time.perf_counter() - started
        self.counters["mixing_rows"] += 1
        self.counters["mixed_rows"] += mixer.mixed_steps - before
        return mixed

    def _forcing_index(self) -> ForcedPrefixIndex:
        if self._forcing is None:
            self._forcing = ForcedPrefixIndex(self.tokenizer.token_texts())
        return self._forcing

    def _sample(self, sequence: _Sequence, logits: np.ndarray) -> int:
        """The next token of one row, kept to the forced prefix while some of it is left, or to
        `next_allowed` once."""
        allowed, sequence.next_allowed = sequence.next_allowed, None
        if sequence.forced:
            # The project's code knows how its words are split into tokens; without a match,
            # the pieces that reach past the typed text (see ForcedPrefixIndex.reaching).
            forcing = self._forcing_index()
            matched, sequence.matched = sequence.matched, False
            allowed = (
                forcing.allowed(sequence.forced) if matched else forcing.reaching(sequence.forced)
            )
            if not allowed.size:
                # No token can write it (a vocabulary without that character whole): write
                # freely, and post-processing drops an answer that does not start with it.
                sequence.forced = ""
        if allowed is not None and allowed.size:
            return sequence.sampler(constrain(logits, allowed))
        return sequence.sampler(logits)

    def _accept(self, sequence: _Sequence, token: int) -> bool:
        """Add one chosen token; False once the request has finished (its slot released)."""
        request = sequence.sub.request
        if token in request.stop_token_ids:
            self._finish(sequence, "stop")
            return False
        sequence.generated.append(token)
        if sequence.mixer is not None:
            sequence.mixer.accept(token)
        if sequence.forced:
            remainder = sequence.forced
            sequence.forced = self._forcing_index().advance(remainder, token)
            if self._forcing_index().ends_on_blank(remainder, token):
                sequence.next_allowed = self._forcing_index().after_blank()
        tracker = sequence.tracker
        if tracker is not None and tracker.push(token):
            self._finish(sequence, "stop")
            return False
        if len(sequence.generated) >= sequence.limit:
            self._finish(sequence, "length")
            return False
        sequence.next_token = token
        return True

    def _release(self, sequence: _Sequence) -> None:
        self._active.remove(sequence)
        self.runner.release(sequence.slot)
        self._free_slots.append(sequence.slot)

    def _count_finish(self, submission: Submission, reason: FinishReason) -> None:
        if reason == "cancelled":
            self.counters["cancelled"] += 1
            after = submission.runs - submission.runs_at_cancel
            self.counters["cancel_steps_max"] = max(self.counters["cancel_steps_max"], after)
            self.counters[f"cancelled_in_{submission.phase_at_cancel}"] += 1
        elif reason == "deadline":
            self.counters["deadline"] += 1
        else:
            self.counters["finished"] += 1

    def _finish(self, sequence: _Sequence, reason: FinishReason) -> None:
        self._release(sequence)
        submission = sequence.sub
        self._count_finish(submission, reason)
        self.counters["generated_tokens"] += len(sequence.generated)
        tracker = sequence.tracker
        text = tracker.text if tracker is not None else self.tokenizer.decode(sequence.generated)
        result = GenerationResult(
            token_ids=list(sequence.generated),
            text=text,
            finish_reason=reason,
            prompt_tokens=len(submission.request.prompt_ids),
            reused_prompt_tokens=sequence.reused,
            prefill_ms=sequence.prefill_ms,
            queue_ms=sequence.queue_ms,
            total_ms=(time.perf_counter() - submission.submitted) * 1000,
            steps=submission.runs,
        )
        submission.on_done(result)

    def _end(self, submission: Submission, reason: FinishReason, prefill: Prefill | None) -> None:
        """A submission that leaves without decoding: before or during its prefill, or a warm."""
        if submission.warm_key is None:
            self._count_finish(submission, reason)
        now = time.perf_counter()
        started = prefill.started if prefill is not None else now
        result = GenerationResult(
            token_ids=[],
            text="",
            finish_reason=reason,
            prompt_tokens=len(submission.request.prompt_ids),
            reused_prompt_tokens=prefill.reused if prefill is not None else 0,
            prefill_ms=(now - started) * 1000,
            total_ms=(now - submission.submitted) * 1000,
            steps=submission.runs,
            queue_ms=(started - submission.submitted) * 1000,
        )
        submission.on_done(result)
