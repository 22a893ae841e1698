"""The Engine on the committed fixture models: parity with transformers, batching, prefix reuse,
cancellation, stops and deadlines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from inference.engine import Engine, EngineOptions
from inference.scheduler import GenerationRequest, GenerationResult

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
GREEDY = json.loads((MODELS / "greedy.json").read_text())
NO_REUSE = EngineOptions(device="cpu", threads=1, prefix_reuse=False)
REUSE = EngineOptions(device="cpu", threads=1, prefix_reuse=True)


@pytest.fixture(scope="module")
def qwen_int4() -> Iterator[Engine]:
    with Engine.load(MODELS / "qwen2-int4", NO_REUSE) as engine:
        yield engine


def request(
    prompt: list[int] | tuple[int, ...], tokens: int = 24, **kwargs: Any
) -> GenerationRequest:
    return GenerationRequest(prompt_ids=tuple(prompt), max_new_tokens=tokens, **kwargs)


def stat(engine: Engine, key: str) -> float:
    value = engine.stats()[key]
    assert isinstance(value, int | float)
    return value


async def until(condition: Callable[[], bool], engine: Engine) -> None:
    """Yield to the loop until `condition()` holds (no fixed sleeps)."""
    for _ in range(20_000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"condition never held: {engine.stats()}")


@pytest.mark.parametrize(
    ("model", "family"),
    [("qwen2-fp32", "qwen2"), ("llama-fp32", "llama"), ("qwen2-optimum", "qwen2")],
)
async def test_greedy_tokens_equal_transformers(model: str, family: str) -> None:
    recorded = GREEDY[family]
    with Engine.load(MODELS / model, NO_REUSE) as engine:
        for prompt, expected in zip(recorded["prompts"], recorded["tokens"], strict=True):
            result = await engine.generate(request(prompt, len(expected)))
            assert result.token_ids == expected
            assert result.finish_reason == "length"
            assert result.prompt_tokens == len(prompt) and result.reused_prompt_tokens == 0


@pytest.mark.parametrize("model", ["qwen2-int4", "llama-int4", "qwen2-optimum"])
async def test_greedy_output_is_the_same_alone_and_in_a_batch(model: str) -> None:
    prompts = GREEDY[model.split("-")[0]]["prompts"]
    with Engine.load(MODELS / model, NO_REUSE) as engine:
        alone = [await engine.generate(request(p, 32)) for p in prompts]
        together = await asyncio.gather(*(engine.generate(request(p, 32)) for p in prompts))
        assert [r.token_ids for r in together] == [r.token_ids for r in alone]
        assert stat(engine, "mean_batch") > 1.5


async def joins_running_batch(engine: Engine) -> None:
    first, second = GREEDY["qwen2"]["prompts"][:2]
    # The first runs as long as the context allows (about 200 steps) and the second joins after
    # 5: it finishes while the first still decodes unless this thread is kept off the CPU for
    # some 170 model steps.
    long_run = engine.max_length - len(first) - 40
    alone_first = await engine.generate(request(first, long_run))
    alone_second = await engine.generate(request(second, 20))
    steps_before = stat(engine, "decode_steps")
    running = asyncio.create_task(engine.generate(request(first, long_run)))
    await until(lambda: stat(engine, "decode_steps") >= steps_before + 5, engine)
    joined = await engine.generate(request(second, 20))
    assert not running.done()  # the second one finished while the first was still decoding
    assert joined.token_ids == alone_second.token_ids
    assert (await running).token_ids == alone_first.token_ids


async def test_a_request_joins_a_running_batch_and_both_match_alone(qwen_int4: Engine) -> None:
    await joins_running_batch(qwen_int4)


async def test_left_padded_batches_of_a_concatenating_graph_match_alone() -> None:
    with Engine.load(MODELS / "qwen2-optimum", NO_REUSE) as engine:
        await joins_running_batch(engine)
        steps = engine.stats()["step_ms_by_batch"]
        assert isinstance(steps, dict) and 2 in steps  # the two decoded as one batch


async def test_prefix_reuse_runs_only_the_new_tokens_and_changes_nothing() -> None:
    prompt = [t for p in GREEDY["qwen2"]["prompts"] for t in p]
    longer = [*prompt, 17, 29]
    with (
        Engine.load(MODELS / "qwen2-fp32", REUSE) as warm,
        Engine.load(MODELS / "qwen2-fp32", NO_REUSE) as cold,
    ):
        first = await warm.generate(request(prompt, 8))
        assert first.reused_prompt_tokens == 0
        again = await warm.generate(request(longer, 16))
        assert again.reused_prompt_tokens == len(prompt)
        assert again.token_ids == (await cold.generate(request(longer, 16))).token_ids
        # an edit in the middle: only the part before it is reused
        edited = [*prompt[:10], 200, *prompt[11:]]
        partial = await warm.generate(request(edited, 16))
        assert partial.reused_prompt_tokens == 10
        assert partial.token_ids == (await cold.generate(request(edited, 16))).token_ids
        # the very same prompt: all but its last token come from the cache
        repeat = await warm.generate(request(longer, 16))
        assert repeat.reused_prompt_tokens == len(longer) - 1
        assert repeat.token_ids == again.token_ids
        cache = warm.stats()["prefix_cache"]
        assert isinstance(cache, dict) and cache["hits"] == 3 and cache["misses"] == 1


async def test_cancelling_the_task_removes_the_request_at_the_next_step(qwen_int4: Engine) -> None:
    other_prompt = GREEDY["qwen2"]["prompts"][1]
    expected_other = (await qwen_int4.generate(request(other_prompt, 60))).token_ids
    steps, cancelled, generated = (
        stat(qwen_int4, k) for k in ("decode_steps", "cancelled", "generated_tokens")
    )
    victim = asyncio.create_task(qwen_int4.generate(request(GREEDY["qwen2"]["prompts"][0], 200)))
    other = asyncio.create_task(qwen_int4.generate(request(other_prompt, 60)))
    await until(lambda: stat(qwen_int4, "decode_steps") >= steps + 5, qwen_int4)
    victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await victim
    await until(lambda: stat(qwen_int4, "cancelled") == cancelled + 1, qwen_int4)
    assert stat(qwen_int4, "cancel_steps_max") <= 1
    assert stat(qwen_int4, "generated_tokens") - generated < 200
    assert (await other).token_ids == expected_other  # the batch went on without it


async def test_a_waiting_request_cancelled_before_it_ran_costs_nothing() -> None:
    with Engine.load(
        MODELS / "qwen2-int4", EngineOptions(device="cpu", threads=1, max_batch=1)
    ) as engine:
        prompts = GREEDY["qwen2"]["prompts"]
        busy = asyncio.create_task(engine.generate(request(prompts[0], 150)))
        await until(lambda: stat(engine, "active") == 1, engine)
        waiting = asyncio.create_task(engine.generate(request(prompts[1], 10)))
        await until(lambda: stat(engine, "waiting") == 1, engine)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await busy
        stats = engine.stats()
        assert stats["prefills"] == 1 and stats["cancelled"] == 1 and stats["cancel_steps_max"] == 0


async def test_stop_token_ids_end_the_completion(qwen_int4: Engine) -> None:
    prompt = GREEDY["qwen2"]["prompts"][2]
    full = (await qwen_int4.generate(request(prompt, 24))).token_ids
    cut = next(i for i, token in enumerate(full) if i >= 3 and token not in full[:i])
    result = await qwen_int4.generate(request(prompt, 24, stop_token_ids=frozenset({full[cut]})))
    assert result.finish_reason == "stop"
    assert result.token_ids == full[:cut]


async def test_stop_strings_cut_the_text(qwen_int4: Engine) -> None:
    prompt = GREEDY["qwen2"]["prompts"][0]
    full = await qwen_int4.generate(request(prompt, 40))
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 3]
    assert stop.strip() and stop in full.text
    result = await qwen_int4.generate(request(prompt, 40, stop_strings=(stop,)))
    assert result.finish_reason == "stop"
    assert result.text == full.text[: full.text.index(stop)]


async def test_deadline(qwen_int4: Engine) -> None:
    prompt = GREEDY["qwen2"]["prompts"][0]
    expired = await qwen_int4.generate(request(prompt, 20, deadline_s=0.0))
    assert expired.finish_reason == "deadline" and expired.token_ids == []
    relaxed = await qwen_int4.generate(request(prompt, 20, deadline_s=600.0))
    assert relaxed.finish_reason == "length" and len(relaxed.token_ids) == 20


async def test_sampling_with_a_seed_repeats(qwen_int4: Engine) -> None:
    prompt = GREEDY["qwen2"]["prompts"][1]
    runs: list[GenerationResult] = [
        await qwen_int4.generate(request(prompt, 16, temperature=1.0, top_p=0.9, seed=seed))
        for seed in (1, 1, 2)
    ]
    assert runs[0].token_ids == runs[1].token_ids
    assert runs[0].token_ids != runs[2].token_ids


async def test_completion_is_capped_by_the_slot_length(qwen_int4: Engine) -> None:
    prompt = list(range(10, 10 + qwen_int4.max_length - 5))
    result = await qwen_int4.generate(request(prompt, 64))
    assert result.finish_reason == "length" and len(result.token_ids) == 5


async def test_invalid_requests_are_refused_with_a_reason(qwen_int4: Engine) -> None:
    with pytest.raises(ValueError, match="empty"):
        await qwen_int4.generate(request([], 4))
    with pytest.raises(ValueError, match="holds 256 per request"):
        await qwen_int4.generate(request(list(range(300)), 4))
    with pytest.raises(ValueError, match="max_new_tokens"):
        await qwen_int4.generate(request([1, 2], 0))


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        EngineOptions(device="gpu")
    with pytest.raises(ValueError, match="max_batch"):
        EngineOptions(max_batch=0)


def test_engine_reports_what_it_runs(qwen_int4: Engine) -> None:
    assert qwen_int4.provider == "CPUExecutionProvider"
    assert qwen_int4.model.precision == "int4"
    assert qwen_int4.tokenizer.fim_token_ids is not None
    stats = qwen_int4.stats()
    assert stats["provider"] == "CPUExecutionProvider" and stats["threads"] == 1


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu and a GPU",
)
@pytest.mark.parametrize("model", ["qwen2-fp32", "qwen2-optimum"])
async def test_cuda_engine_matches_transformers(model: str) -> None:
    recorded = GREEDY["qwen2"]
    options = EngineOptions(device="cuda", prefix_reuse=True)
    with Engine.load(MODELS / model, options) as engine:
        assert engine.provider == "CUDAExecutionProvider"
        results = await asyncio.gather(
            *(
                engine.generate(request(p, len(t)))
                for p, t in zip(recorded["prompts"], recorded["tokens"], strict=True)
            )
        )
        assert [r.token_ids for r in results] == recorded["tokens"]
        again = await engine.generate(request([*recorded["prompts"][0], 7], 8))
        assert again.reused_prompt_tokens == len(recorded["prompts"][0])
