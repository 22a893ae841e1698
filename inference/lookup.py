"""Speculative decoding by prompt lookup: drafts from the user's own tokens, checked in one forward.

Code repeats: a call written above, the other branch of an `if`, the next method of a CRUD class.
When the tokens just written (the prompt plus what was generated) also occur earlier, in the
prompt or in the request's n-gram sources (the buffer split at the cursor, open documents, the
workspace index: inference/ngram.py), the tokens that followed that occurrence are a cheap guess
at what comes next. The row's pending token and up to `max_draft` guessed ones then run in one
forward (`Runner.verify`), and the model's own choice at each position is taken, up to and
including the first position where it differs from the guess: every verify yields at least the
one token a plain step would have, and up to `max_draft` + 1.

Trade-offs:
- Greedy rows only. A sampled row would need rejection sampling against the sampler's final
  distribution (temperature, top-p, mixing, constraints) and would stop being reproducible by
  seed; completions in the editor are greedy, so sampled rows decode as before.
- Each position's token comes from the same `choose` as a plain step (mixing, forced prefix,
  stop tokens and strings applied one token at a time, in order), so the output is the plain
  decoder's; only the number of model runs changes. With float32 products that is bit for bit;
  int4 MatMulNBits at accuracy level 4 (int8 activations) rounds an occasional block of a
  several-row product differently from a one-row product, as a batched step or a prefill
  already does, which can flip a near-tie (39 of 40 held-out continuations came out the same).
  Cancels and deadlines are still seen at step boundaries: a verify is one step.
- A drafted row runs on its own (k+1 tokens on its slot's cache) while the rows without a draft
  decode together. On this CPU, int4 products of 9 rows cost about 2.8 one-row steps (they are
  compute-bound, not bound by reading the weights), so a draft needs `min_match` matched tokens,
  a request whose drafts keep failing stops drafting, and in a batch of several rows a draft
  runs only if the measured costs say it yields more tokens per millisecond than the batch.
- The rejected tail's cache positions are dropped by `Runner.rewind` (a length reset for
  shared buffers, a slice for concatenating graphs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from inference.ngram import MAX_MATCH
from inference.runners import Runner
from inference.sampling import Sampler

MAX_QUERY = 32  # longest suffix of the prompt searched for in the prompt itself
MAX_DRAFT = 15  # a verify runs in a prompt chunk's buffers (16 tokens at least)
# A request's first drafts are expected to be accepted at about the rate measured on held-out
# code (`flashcode bench lookup`: 0.82); each verify then moves its own estimate by this weight.
PRIOR_ACCEPTANCE = 0.8
ACCEPTANCE_WEIGHT = 0.15
# Below this share, a request stops drafting: 1 + 0.25 x 8 tokens for a verify that costs about 3
# decode steps alone.
MIN_ACCEPTANCE = 0.25
# After this many steps in a row whose drafts were declined, they run anyway: the verify times
# the decision rests on are measured only when verifies run (one slow sample must not stick).
EXPLORE_EVERY = 16


@dataclass(frozen=True)
class LookupOptions:
    max_draft: int = 8  # guessed tokens per verify
    min_match: int = 3  # tokens of the context a match must cover before its draft is run

    def __post_init__(self) -> None:
        if not 1 <= self.max_draft <= MAX_DRAFT:
            raise ValueError(f"max_draft must be in [1, {MAX_DRAFT}], got {self.max_draft}")
        if self.min_match < 1:
            raise ValueError(f"min_match must be >= 1, got {self.min_match}")


@runtime_checkable
class DraftSource(Protocol):
    """An n-gram source that can also say how its longest match went on (TokenSuffixIndex)."""

    def draft(
        self,
        context: Sequence[int],
        count: int,
        skip: tuple[int, int] | None = None,
        at_most: int = 0,
    ) -> tuple[int, list[int]]: ...


class LookupRequest(Protocol):
    """What a drafter reads of a request (GenerationRequest)."""

    @property
    def prompt_ids(self) -> tuple[int, ...]: ...
    @property
    def ngram_context(self) -> tuple[int, ...]: ...
    @property
    def ngram_sources(self) -> tuple[object, ...]: ...


class Drafter:
    """One request's drafts: its prompt and generated tokens, then its n-gram sources."""

    def __init__(self, request: LookupRequest, capacity: int) -> None:
        prompt = request.prompt_ids
        self._tokens = np.zeros(len(prompt) + capacity + 1, np.int64)  # prompt, then generated
        self._tokens[: len(prompt)] = prompt
        self._size = len(prompt)
        self._prompt = len(prompt)
        self._sources = [s for s in request.ngram_sources if isinstance(s, DraftSource)]
        # the sources are searched with the tokens just before the cursor, as mixing does
        self._context = list(request.ngram_context)
        self._lengths = [0] * len(self._sources)  # each source's last match length
        self._searched = False
        # share of drafted tokens this request's verifies accepted, recent ones weighing most
        self.acceptance = PRIOR_ACCEPTANCE

    def expected_tokens(self, draft_length: int) -> float:
        """Tokens a verify of that long a draft is expected to yield, the model's own included.
        Copied code is taken whole or left at once, so the share accepted is what counts (a
        token-by-token geometric model expects far fewer: 4.8 against 6.4 measured for 8)."""
        return 1 + self.acceptance * draft_length

    def accepted(self, accepted: int, drafted: int) -> None:
        self.acceptance += ACCEPTANCE_WEIGHT * (accepted / drafted - self.acceptance)

    def _sync(self, generated: Sequence[int]) -> int:
        """Take in the tokens generated since the last call; how many there were."""
        new = generated[self._size - self._prompt :]
        self._tokens[self._size : self._size + len(new)] = new
        self._size += len(new)
        self._context.extend(new)
        if len(self._context) > 4 * MAX_MATCH:
            del self._context[:-MAX_MATCH]
        return len(new)

    def draft(self, generated: Sequence[int], count: int) -> tuple[int, list[int]]:
        """(match length, up to `count` guessed tokens) after the prompt and `generated`."""
        added = self._sync(generated)
        best = self._prompt_draft(count)
        if self._context:
            for i, source in enumerate(self._sources):
                # a match now is at most `added` longer than the last one: one range search
                bound = self._lengths[i] + added if self._searched else 0
                found = source.draft(self._context, count, at_most=bound)
                self._lengths[i] = found[0]
                if found[0] > best[0] and found[1]:
                    best = found
            self._searched = True
        return best

    def _prompt_draft(self, count: int) -> tuple[int, list[int]]:
        """The longest suffix of the tokens so far that occurs earlier among them, continued as
        its latest such occurrence went on."""
        tokens = self._tokens[: self._size]
        last = len(tokens) - 1
        if last < 1:
            return 0, []
        ends = np.flatnonzero(tokens[:last] == tokens[last])  # occurrences, each followed
        if not ends.size:
            return 0, []
        length = 1
        while length < MAX_QUERY:
            longer = ends[ends >= length]  # occurrences with a token before them
            longer = longer[tokens[longer - length] == tokens[last - length]]
            if not longer.size:
                break
            ends, length = longer, length + 1
        start = int(ends[-1]) + 1
        return length, tokens[start : start + count].tolist()


class LookupRow(Protocol):
    """What the speculation reads of a scheduler row (scheduler._Sequence)."""

    drafter: Drafter | None
    generated: list[int]
    limit: int
    slot: int

    @property
    def sampler(self) -> Sampler: ...


Row = TypeVar("Row", bound=LookupRow)


class PromptLookup:
    """The scheduler's speculation: which rows get a draft, and how much of each one stands."""

    def __init__(self, options: LookupOptions = LookupOptions()) -> None:
        self.options = options
        self.drafts_run = 0
        self.drafted_tokens = 0
        self.accepted_tokens = 0  # drafted tokens the model agreed with
        self.verify_seconds = 0.0
        self.declined = 0  # steps whose drafts were not run: the batched step was worth more
        self._declined_in_a_row = 0
        self._warm: set[tuple[int, int]] = set()  # (slot, tokens) verified before
        self._verify_ms: dict[int, float] = {}  # tokens run -> recent milliseconds of a verify

    def drafts(
        self,
        rows: Sequence[Row],
        request_of: Callable[[Row], LookupRequest],
        step_seconds: dict[int, list[float]],
    ) -> dict[Row, list[int]]:
        """The rows worth a verify this step, each with its draft. `step_seconds` holds the
        measured batched steps (rows -> [seconds, steps])."""
        found: dict[Row, list[int]] = {}
        for row in rows:
            room = min(self.options.max_draft, row.limit - len(row.generated) - 1)
            if room < 1 or not row.sampler.greedy:
                continue
            if row.drafter is None:
                row.drafter = Drafter(request_of(row), row.limit)
            if row.drafter.acceptance < MIN_ACCEPTANCE:
                continue  # this request's code does not repeat: its drafts only cost
            length, draft = row.drafter.draft(row.generated, room)
            if length >= self.options.min_match and draft:
                found[row] = draft
        # Alone, a verify of 9 tokens costs about 3 decode steps and yields 6 on real code: a
        # row whose drafts mostly stand (MIN_ACCEPTANCE) always gains, and a declined draft that
        # would have stood loses those 6 (measured: declining by cost lost 5% of the speedup).
        if len(rows) == 1 or not found:
            return found
        return self._worth_it(found, len(rows), step_seconds)

    def _worth_it(
        self, found: dict[Row, list[int]], rows: int, step_seconds: dict[int, list[float]]
    ) -> dict[Row, list[int]]:
        """The drafts to run: those, best first, that give the most tokens per millisecond
        against one batched step of every row. Alone, a verify of k+1 tokens must yield more
        tokens than it costs decode steps; in a full batch a row's step is cheap, and a verify
        (which runs its row's weights once more) rarely pays."""

        def step_ms(batch: int) -> float | None:
            if batch == 0:
                return 0.0
            seconds, count = step_seconds.get(batch, (0.0, 0))
            return seconds / count * 1000 if count else None

        plain = step_ms(rows)
        costs = {row: self._verify_ms.get(len(draft) + 1) for row, draft in found.items()}
        if plain is None or None in costs.values():
            return found  # not measured yet: run them, and measure
        gains = {
            row: row.drafter.expected_tokens(len(draft)) if row.drafter else 1.0
            for row, draft in found.items()
        }
        order = sorted(found, key=lambda row: gains[row] / (costs[row] or 1.0), reverse=True)
        best, best_rate = 0, rows / plain if plain else 0.0
        tokens, spent = float(rows), 0.0
        for taken, row in enumerate(order, start=1):
            tokens += gains[row] - 1
            spent += costs[row] or 0.0
            rest = step_ms(rows - taken)
            # an unmeasured smaller batch: a step's cost scaled by its rows
            rest = plain * (rows - taken) / rows if rest is None else rest
            if tokens / (spent + rest) > best_rate:
                best, best_rate = taken, tokens / (spent + rest)
        if best < len(order):
            self._declined_in_a_row += 1
            if self._declined_in_a_row < EXPLORE_EVERY:
                self.declined += 1
                return {row: found[row] for row in order[:best]}
        self._declined_in_a_row = 0
        return {row: found[row] for row in order[: max(best, 1)]}

    def verify(
        self,
        runner: Runner,
        row: LookupRow,
        cached: int,
        tokens: list[int],
        choose: Callable[[np.ndarray], int],
        accept: Callable[[int], bool],
    ) -> None:
        """Run `tokens` (the row's pending token, then its draft) after the `cached` positions
        of its slot; accept the model's choice at each position while it matches the draft."""
        started = time.perf_counter()
        logits = runner.verify(row.slot, tokens)
        elapsed = (time.perf_counter() - started) * 1000
        self.verify_seconds += elapsed / 1000
        if (row.slot, len(tokens)) in self._warm:  # a slot's first run of a size binds it: slow
            known = self._verify_ms.get(len(tokens), elapsed)
            # quick down, slow up: a run the machine's other load delayed barely counts
            weight = 0.5 if elapsed < known else 0.05
            self._verify_ms[len(tokens)] = known + weight * (elapsed - known)
        self._warm.add((row.slot, len(tokens)))
        drafted, accepted = len(tokens) - 1, 0
        self.drafts_run += 1
        self.drafted_tokens += drafted
        try:
            for position, logits_row in enumerate(logits):
                token = choose(logits_row)
                stood = position + 1 < len(tokens) and token == tokens[position + 1]
                if stood:
                    # counted before accept(), which may finish the request and answer it: its
                    # client may read the stats at once
                    accepted += 1
                    self.accepted_tokens += 1
                if not accept(token):
                    return  # the request finished: its slot is already released
                if not stood:
                    break
            # the cache keeps the pending token and the draft tokens that were accepted
            runner.rewind(row.slot, cached + position + 1)
        finally:
            if row.drafter is not None:
                row.drafter.accepted(accepted, drafted)

    def stats(self) -> dict[str, object]:
        drafted = self.drafted_tokens
        runs = self.drafts_run
        return {
            "lookup_drafts": runs,
            "lookup_drafted_tokens": drafted,
            "lookup_accepted_tokens": self.accepted_tokens,
            "lookup_acceptance": round(self.accepted_tokens / drafted, 4) if drafted else 0.0,
            "lookup_verify_ms": round(self.verify_seconds / runs * 1000, 3) if runs else 0.0,
            "lookup_declined_steps": self.declined,
        }
