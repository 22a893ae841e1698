"""The prefix cache's bookkeeping, and a failing model run reported to its callers only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from inference.engine import Engine, EngineOptions
from inference.kv_device import KVSnapshot
from inference.prefix_cache import PrefixBudget, PrefixCache
from inference.scheduler import GenerationRequest

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def snapshot(length: int, nbytes: int = 100) -> KVSnapshot:
    return KVSnapshot(values=[], length=length, nbytes=nbytes)


def test_longest_common_prefix_wins_and_is_capped() -> None:
    cache = PrefixCache(capacity_bytes=10_000)
    short, long = snapshot(3), snapshot(6)
    cache.store((1, 2, 3), short)
    cache.store((1, 2, 9, 9, 9, 9), long)
    found = cache.lookup([1, 2, 3, 4], limit=3)
    assert found is not None and found[0] is short and found[1] == 3
    found = cache.lookup([1, 2, 9, 9, 9, 9, 9], limit=5)
    assert found is not None and found[0] is long and found[1] == 5
    assert cache.lookup([7, 7], limit=1) is None
    assert (cache.hits, cache.misses, cache.reused_tokens) == (2, 1, 8)


def test_a_longer_prompt_supersedes_its_prefix() -> None:
    cache = PrefixCache(capacity_bytes=10_000)
    cache.store((1, 2, 3), snapshot(3))
    cache.store((1, 2, 3, 4), snapshot(4))
    assert len(cache) == 1 and cache.bytes == 100
    assert cache.covers((1, 2)) and cache.covers((1, 2, 3, 4)) and not cache.covers((1, 3))


def test_least_recently_used_entries_go_first_when_memory_runs_out() -> None:
    cache = PrefixCache(capacity_bytes=250)
    cache.store((1,), snapshot(1))
    cache.store((2,), snapshot(1))
    assert cache.lookup([1, 5], limit=1) is not None  # (1,) is now the most recent
    cache.store((3,), snapshot(1))
    assert len(cache) == 2 and cache.bytes == 200
    assert cache.lookup([2, 5], limit=1) is None
    assert cache.lookup([1, 5], limit=1) is not None
    cache.store((4,), snapshot(1, nbytes=1000))  # larger than the whole cache: not kept
    assert not cache.covers((4,))


def test_caches_sharing_a_budget_hold_at_most_it_together_and_evict_the_oldest_of_all() -> None:
    budget = PrefixBudget(capacity_bytes=250)
    int4, int8 = PrefixCache(250, budget), PrefixCache(250, budget)
    int4.store((1,), snapshot(1))
    int8.store((2,), snapshot(1))
    assert int4.lookup([1, 5], limit=1) is not None  # int4's entry is now the most recent
    int8.store((3,), snapshot(1))  # over the shared bound: int8's (2,) is the oldest of all
    assert budget.bytes == 200 and (len(int4), len(int8)) == (1, 1)
    assert int8.lookup([2, 5], limit=1) is None
    int8.store((4,), snapshot(1))  # now int4's (1,) is the oldest
    assert (len(int4), len(int8)) == (0, 2) and budget.bytes == 200


async def test_a_failed_step_fails_its_requests_and_the_engine_serves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Engine.load(MODELS / "qwen2-int4", EngineOptions(device="cpu", threads=1)) as engine:
        runner = engine._scheduler.runner
        real_decode = runner.decode

        def broken(slots: list[int], tokens: list[int]) -> np.ndarray:
            monkeypatch.setattr(runner, "decode", real_decode)
            raise RuntimeError("device lost")

        monkeypatch.setattr(runner, "decode", broken)
        request = GenerationRequest((5, 6, 7, 8), max_new_tokens=8)
        with pytest.raises(RuntimeError, match="device lost"):
            await engine.generate(request)
        result = await asyncio.wait_for(engine.generate(request), timeout=60)
        assert len(result.token_ids) == 8
        assert engine.stats()["failed"] == 1


async def test_a_failed_prefill_frees_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    with Engine.load(
        MODELS / "qwen2-int4", EngineOptions(device="cpu", threads=1, max_batch=1)
    ) as engine:
        runner = engine._scheduler.runner
        real_prefill = runner.prefill

        def broken(*args: object) -> np.ndarray:
            monkeypatch.setattr(runner, "prefill", real_prefill)
            raise RuntimeError("bad prompt")

        monkeypatch.setattr(runner, "prefill", broken)
        request = GenerationRequest((5, 6, 7, 8), max_new_tokens=4)
        with pytest.raises(RuntimeError, match="bad prompt"):
            await engine.generate(request)
        # the only slot is free again
        result = await asyncio.wait_for(engine.generate(request), timeout=60)
        assert len(result.token_ids) == 4
