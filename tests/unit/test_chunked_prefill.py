"""Chunked prefill and warm prefills on real models: the embedded default model
(GroupQueryAttention, shared KV buffers) and an Optimum export (concatenated KV)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json.decoder
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.engine import Engine, EngineOptions
from inference.router import default_model_dir
from inference.scheduler import GenerationRequest

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
# (model directory, prompt tokens): the fixture's window is 256 positions
MODEL_CASES = [(default_model_dir(), 700), (MODELS / "qwen2-optimum", 200)]
CODE = inspect.getsource(json.decoder)


def options(chunk: int, max_batch: int = 4) -> EngineOptions:
    return EngineOptions(device="cpu", threads=1, max_batch=max_batch, prefill_chunk_tokens=chunk)


def prompt_of(engine: Engine, tokens: int, start: int = 0) -> tuple[int, ...]:
    ids = engine.tokenizer.encode(CODE)
    assert len(ids) >= start + tokens, "the sample code is long enough"
    return tuple(ids[start : start + tokens])


Run = tuple[str, tuple[int, ...], int]


def spy(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[Run]:
    """The runner's model runs in order: ("prefill"|"extend"|"verify", (slot,), tokens) or
    ("decode", slots, rows). A decoding row with a prompt-lookup draft runs "verify" instead."""
    runner: Any = engine._scheduler.runner
    runs: list[Run] = []
    for name in ("prefill", "extend", "decode", "verify"):
        real = getattr(runner, name)

        def recorded(first: Any, *rest: Any, _real: Any = real, _name: str = name) -> np.ndarray:
            slots = tuple(first) if _name == "decode" else (first,)
            runs.append((_name, slots, len(rest[0])))
            return _real(first, *rest)

        monkeypatch.setattr(runner, name, recorded)
    return runs


def hold_first(engine: Engine, name: str, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """The runner's first `name` run waits (on the model thread) until the event is set: the
    test then acts while a prefill is between two chunks, however busy the machine is."""
    runner: Any = engine._scheduler.runner
    real, gate, calls = getattr(runner, name), threading.Event(), []

    def held(*args: Any) -> np.ndarray:
        calls.append(1)
        if len(calls) == 1:
            assert gate.wait(timeout=60), "the test never released the model thread"
        return real(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(runner, name, held)
    return gate


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(60_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


@pytest.fixture(scope="module")
def unchunked() -> Iterator[dict[Path, Engine]]:
    engines = {model: Engine.load(model, options(0)) for model, _ in MODEL_CASES}
    yield engines
    for engine in engines.values():
        engine.close()


@pytest.mark.parametrize(("model", "length"), MODEL_CASES)
async def test_a_long_prompt_lets_the_decoding_request_go_on_between_its_chunks(
    model: Path, length: int, unchunked: dict[Path, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    chunk = 64
    with Engine.load(model, options(chunk)) as engine:
        runs = spy(engine, monkeypatch)
        short = GenerationRequest(prompt_of(engine, 12, start=900), max_new_tokens=200)
        long = GenerationRequest(prompt_of(engine, length), max_new_tokens=12)
        # A first request takes slot 0 and leaves it to the long prompt, so that the decoding
        # request's slot is above it: a decode step then runs the prefilling row too.
        first = asyncio.ensure_future(engine.generate(GenerationRequest((5, 6, 7), 2)))
        decoding = asyncio.ensure_future(engine.generate(short))
        await first
        long_result = await engine.generate(long)
        short_result = await decoding
    short_slot = next(slots[0] for name, slots, n in runs if name == "prefill" and n == 12)
    assert short_slot == 1
    runs = runs[next(i for i, run in enumerate(runs) if run[0] == "prefill" and run[2] == chunk) :]
    assert runs[0][1] == (0,)
    chunks = [
        i
        for i, (name, slots, _) in enumerate(runs)
        if name in ("prefill", "extend") and short_slot not in slots
    ]
    assert len(chunks) == -(-length // chunk)  # ceil: every chunk ran on its own step
    for before, after in itertools.pairwise(chunks):
        between = runs[before + 1 : after]
        assert any(
            name in ("decode", "verify") and short_slot in slots for name, slots, _ in between
        ), runs
    assert long_result.steps >= len(chunks)
    # the same tokens as when each prompt runs whole and alone
    alone = unchunked[model]
    assert long_result.token_ids == (await alone.generate(long)).token_ids
    assert short_result.token_ids == (await alone.generate(short)).token_ids


@pytest.mark.parametrize(("model", "length"), MODEL_CASES)
async def test_a_prefill_cancelled_between_chunks_leaves_at_once_and_keeps_its_progress(
    model: Path, length: int, unchunked: dict[Path, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    chunk = 32
    with Engine.load(model, options(chunk)) as engine:
        gate = hold_first(engine, "extend", monkeypatch)  # inside the second chunk
        runs = spy(engine, monkeypatch)  # records a run before it is held
        request = GenerationRequest(prompt_of(engine, length), max_new_tokens=8)
        task = asyncio.ensure_future(engine.generate(request))
        await until(lambda: len(runs) == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        await until(lambda: engine.stats()["cancelled"] == 1)
        assert len(runs) == 2, "it left at the end of the chunk that was running"
        stats = engine.stats()
        assert stats["cancelled_in_prefill"] == 1 and stats["free_slots"] == stats["slots"]
        again = await engine.generate(request)
    assert again.reused_prompt_tokens >= chunk  # the next request starts where it stopped
    # The same tokens as a run that was never cancelled, chunked alike: int8-activation
    # kernels round a chunk boundary differently on some CPUs, so a run prefilled whole can
    # break a near-tie the other way (seen on an AVX-512 machine), whatever the cancel did.
    with Engine.load(model, options(chunk)) as fresh:
        uninterrupted = await fresh.generate(request)
    assert again.token_ids == uninterrupted.token_ids


@pytest.mark.parametrize(("model", "length"), MODEL_CASES)
async def test_a_warm_prompt_is_in_the_prefix_cache_for_the_request_that_follows(
    model: Path, length: int, unchunked: dict[Path, Engine]
) -> None:
    with Engine.load(model, options(128)) as engine:
        prompt = prompt_of(engine, length)
        assert await engine.warm(prompt, key="a.py")
        request = GenerationRequest(prompt + prompt_of(engine, 3, start=length), max_new_tokens=8)
        result = await engine.generate(request)
        stats = engine.stats()
    assert result.reused_prompt_tokens == length
    assert stats["warm_prefills"] == 1 and stats["requests"] == 1
    assert result.token_ids == (await unchunked[model].generate(request)).token_ids


async def test_a_warm_yields_to_a_real_request_at_the_next_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Engine.load(default_model_dir(), options(64)) as engine:
        gate = hold_first(engine, "extend", monkeypatch)
        runs = spy(engine, monkeypatch)  # records a run before it is held
        warm = asyncio.ensure_future(engine.warm(prompt_of(engine, 700), key="a.py"))
        await until(lambda: len(runs) == 2)
        real = GenerationRequest(prompt_of(engine, 20, start=900), max_new_tokens=4)
        arrived = len(runs)
        answer = asyncio.ensure_future(engine.generate(real))
        await until(lambda: engine.stats()["waiting"] == 1)
        gate.set()
        result = await answer
        assert not await warm  # dropped: its prompt never ran to its end
        stats = engine.stats()
    assert len(result.token_ids) == 4
    assert stats["warm_dropped"] == 1 and stats["warm_prefills"] == 0
    warm_chunks_after = [run for run in runs[arrived:] if run[0] != "decode" and run[2] == 64]
    assert len(warm_chunks_after) <= 1  # at most the chunk that was running when it came
    assert result.reused_prompt_tokens == 0  # another document's prompt: nothing in common


async def test_a_newer_warm_of_the_same_document_replaces_the_older(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Engine.load(default_model_dir(), options(64, max_batch=1)) as engine:
        gate = hold_first(engine, "extend", monkeypatch)
        older = asyncio.ensure_future(engine.warm(prompt_of(engine, 700), key="a.py"))
        newer = asyncio.ensure_future(engine.warm(prompt_of(engine, 300, start=700), key="a.py"))
        await until(lambda: engine.stats()["warm_requests"] == 2)
        gate.set()
        assert await newer
        assert not await older
        other = await engine.warm(prompt_of(engine, 100, start=1200), key="b.py")
        stats = engine.stats()
    assert other and stats["warm_prefills"] == 2 and stats["warm_dropped"] == 1


def test_the_chunk_size_is_validated() -> None:
    with pytest.raises(ValueError, match="prefill_chunk_tokens must be >= 0"):
        EngineOptions(prefill_chunk_tokens=-1)


async def test_a_failure_on_the_first_token_fails_that_request_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Engine.load(MODELS / "qwen2-int4", options(64, max_batch=2)) as engine:
        scheduler: Any = engine._scheduler
        decoding = asyncio.ensure_future(
            engine.generate(GenerationRequest((9, 10, 11), max_new_tokens=200))
        )
        await until(lambda: engine.stats()["decode_steps"] > 0)
        real_sample = scheduler._sample

        def broken(*args: Any) -> int:
            monkeypatch.setattr(scheduler, "_sample", real_sample)
            raise RuntimeError("sampling failed")

        monkeypatch.setattr(scheduler, "_sample", broken)
        with pytest.raises(RuntimeError, match="sampling failed"):
            await engine.generate(GenerationRequest((5, 6, 7, 8), max_new_tokens=4))
        other = await decoding
        stats = engine.stats()
    assert len(other.token_ids) == 200 and stats["failed"] == 1
