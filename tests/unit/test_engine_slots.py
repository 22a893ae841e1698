"""The engine's slot accounting that the soak benchmark reads for leaks: after requests that
finish, hit their deadline or are cancelled queued, in their prefill or while decoding, every
slot is free again and none still holds KV; each cancellation is counted where it was caught."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from inference.engine import Engine, EngineOptions
from inference.scheduler import GenerationRequest
from tests.conftest import DEFAULT_MODEL
from tests.unit.test_inference_engine import GREEDY, MODELS, until

PROMPTS = GREEDY["qwen2"]["prompts"]


def request(prompt: list[int], tokens: int, **kwargs: float) -> GenerationRequest:
    return GenerationRequest(prompt_ids=tuple(prompt), max_new_tokens=tokens, **kwargs)


def assert_all_slots_free_and_empty(engine: Engine) -> None:
    stats = engine.stats()
    assert stats["free_slots"] == stats["slots"]
    assert stats["free_slots_holding_kv"] == 0
    assert stats["active"] == stats["waiting"] == 0


# A GroupQueryAttention graph (shared KV buffer) and an Optimum export (concatenated KV).
@pytest.mark.parametrize("model", ["qwen2-int4", "qwen2-optimum"])
async def test_every_way_a_request_ends_gives_its_slot_back_empty(model: str) -> None:
    options = EngineOptions(device="cpu", threads=1, max_batch=1)
    with Engine.load(MODELS / model, options) as engine:
        running = asyncio.create_task(engine.generate(request(PROMPTS[0], 200)))
        # Cancelled before the one slot is free: it never leaves the queue.
        queued = asyncio.create_task(engine.generate(request(PROMPTS[2], 8)))
        await asyncio.sleep(0)  # submitted
        queued.cancel()
        late = await engine.generate(request(PROMPTS[1], 200, deadline_s=0.001))
        await running
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        await until(lambda: engine.stats()["cancelled"] == 1, engine)
        assert late.finish_reason == "deadline"
        assert engine.stats()["cancelled_in_queued"] == 1
        assert_all_slots_free_and_empty(engine)


async def test_a_request_cancelled_while_decoding_is_counted_there_and_frees_its_slot() -> None:
    # The default model's window is 1,024 positions: an answer that long outlasts the wait.
    options = EngineOptions(device="cpu", threads=1, max_batch=2)
    with Engine.load(DEFAULT_MODEL, options) as engine:
        prompt = list(engine.tokenizer.encode("def main():\n    "))
        decoding = asyncio.create_task(engine.generate(request(prompt, 1000)))
        await until(lambda: engine.stats()["decode_steps"] >= 3, engine)  # type: ignore[operator]
        decoding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await decoding
        await until(lambda: engine.stats()["cancelled"] == 1, engine)
        assert engine.stats()["cancelled_in_decode"] == 1
        assert_all_slots_free_and_empty(engine)


def test_a_slot_that_keeps_its_kv_after_release_is_seen() -> None:
    # The check itself must be able to fail: a slot whose KV is written and never released.
    options = EngineOptions(device="cpu", threads=1, max_batch=2)
    with Engine.load(Path(MODELS / "qwen2-int4"), options) as engine:
        runner = engine._scheduler.runner
        runner.prefill(1, PROMPTS[0], None, 0)
        assert runner.holds_kv(1) and not runner.holds_kv(0)
        runner.release(1)
        assert not runner.holds_kv(1)


async def test_the_kv_written_follows_the_longest_sequence_each_slot_held_within_its_buffer() -> (
    None
):
    # What the soak leaves out of the resident set's growth: a bound, not a leak.
    options = EngineOptions(device="cpu", threads=1, max_batch=2, prefix_reuse=False)
    with Engine.load(DEFAULT_MODEL, options) as engine:

        def written() -> int:
            return int(engine.stats()["kv_written_bytes"])  # type: ignore[call-overload]

        buffer = int(engine.stats()["kv_buffer_bytes"])  # type: ignore[call-overload]
        per_position = buffer // (2 * engine.max_length)
        at_load = written()  # the load's own warm-up run
        prompt = list(engine.tokenizer.encode("def main():\n    return 1\n" * 8))
        await engine.generate(request(prompt, 4))
        after_long = written()
        assert after_long - at_load >= (len(prompt) - 8) * per_position
        assert after_long >= (len(prompt) + 3) * per_position  # kept after the slot is free
        await engine.generate(request(prompt[:10], 4))  # a shorter one writes nothing new
        assert written() == after_long
        assert_all_slots_free_and_empty(engine)
        assert after_long <= buffer
