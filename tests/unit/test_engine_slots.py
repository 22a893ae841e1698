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
from tests.unit.test_inference_engine import GREEDY, MODELS, until

PROMPTS = GREEDY["qwen2"]["prompts"]


def request(prompt: list[int], tokens: int, **kwargs: float) -> GenerationRequest:
    return GenerationRequest(prompt_ids=tuple(prompt), max_new_tokens=tokens, **kwargs)


def slots_in_use(engine: Engine) -> int:
    stats = engine.stats()
    return int(stats["slots"]) - int(stats["free_slots"])  # type: ignore[call-overload]


# A GroupQueryAttention graph (shared KV buffer) and an Optimum export (concatenated KV).
@pytest.mark.parametrize("model", ["qwen2-int4", "qwen2-optimum"])
async def test_every_way_a_request_ends_gives_its_slot_back_empty(model: str) -> None:
    options = EngineOptions(device="cpu", threads=1, max_batch=2)
    with Engine.load(MODELS / model, options) as engine:
        finished = asyncio.create_task(engine.generate(request(PROMPTS[0], 60)))
        decoding = asyncio.create_task(engine.generate(request(PROMPTS[1], 400)))
        await until(lambda: slots_in_use(engine) == 2, engine)
        queued = asyncio.create_task(engine.generate(request(PROMPTS[2], 8)))
        await until(lambda: engine.stats()["waiting"] == 1, engine)
        queued.cancel()
        await until(lambda: engine.stats()["decode_steps"] >= 3, engine)  # type: ignore[operator]
        decoding.cancel()
        late = await engine.generate(request(PROMPTS[0], 400, deadline_s=0.05))
        for task in (finished, decoding, queued):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await until(lambda: engine.stats()["cancelled"] == 2, engine)
        stats = engine.stats()
        assert late.finish_reason in ("deadline", "length", "stop")
        assert stats["free_slots"] == stats["slots"] == 2
        assert stats["free_slots_holding_kv"] == 0
        assert stats["active"] == stats["waiting"] == 0
        assert stats["cancelled_in_queued"] == 1 and stats["cancelled_in_decode"] == 1


def test_a_slot_that_keeps_its_kv_after_release_is_seen() -> None:
    # The check itself must be able to fail: a slot whose KV is written and never released.
    options = EngineOptions(device="cpu", threads=1, max_batch=2)
    with Engine.load(Path(MODELS / "qwen2-int4"), options) as engine:
        runner = engine._scheduler.runner
        runner.prefill(1, PROMPTS[0], None, 0)
        assert runner.holds_kv(1) and not runner.holds_kv(0)
        runner.release(1)
        assert not runner.holds_kv(1)
