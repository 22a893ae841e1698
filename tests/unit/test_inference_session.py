"""The runners' IO binding on the CPU: the same pointer-bound buffers the CUDA path uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.concat_runner import ConcatKVRunner
from inference.model import ModelError, load_model_info
from inference.runners import SharedKVRunner, make_runner
from inference.session import CPU, choose_provider, physical_cores

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
PROMPT = [12, 40, 7, 300, 41, 99, 5, 17, 250, 33, 60, 61, 8, 90]


def runner_for(name: str, max_batch: int = 4) -> SharedKVRunner | ConcatKVRunner:
    info = load_model_info(MODELS / name)
    runner = make_runner(info, CPU, threads=1, max_batch=max_batch, max_length=64)
    assert isinstance(runner, SharedKVRunner | ConcatKVRunner)
    return runner


def test_provider_choice_on_a_cpu_build() -> None:
    assert choose_provider("cpu") == CPU
    assert choose_provider("auto") == CPU  # this machine's onnxruntime has no CUDA
    with pytest.raises(ModelError, match=r"flashcode\[gpu\]"):
        choose_provider("cuda")
    with pytest.raises(ModelError, match="auto, cpu, cuda"):
        choose_provider("tpu")
    assert physical_cores() >= 1


@pytest.mark.parametrize("name", ["qwen2-fp32", "qwen2-optimum"])
def test_snapshot_and_restore_continue_a_prompt_exactly(name: str) -> None:
    runner = runner_for(name)
    cold = runner.prefill(2, PROMPT, None, 0)
    runner.prefill(0, PROMPT[:9], None, 0)
    snapshot = runner.snapshot(0, 9)
    assert snapshot.length == 9
    runner.release(0)
    # only the first 6 of the snapshot's 9 positions are reused
    warm = runner.prefill(1, PROMPT[6:], snapshot, 6)
    np.testing.assert_allclose(warm, cold, rtol=1e-4, atol=1e-4)
    assert runner.lengths[1] == runner.lengths[2] == len(PROMPT)


def test_restore_writes_only_the_reused_positions_into_a_row() -> None:
    runner = runner_for("qwen2-fp32")
    assert isinstance(runner, SharedKVRunner)
    runner.prefill(0, PROMPT, None, 0)
    snapshot = runner.snapshot(0, 5)
    neighbour_before = [buffer.numpy()[2].copy() for buffer in runner._buffers]
    runner.prefill(1, PROMPT[5:], snapshot, 5)
    for buffer, before in zip(runner._buffers, neighbour_before, strict=True):
        np.testing.assert_array_equal(buffer.numpy()[2], before)  # other rows untouched
        np.testing.assert_array_equal(buffer.numpy()[1, :, :5], buffer.numpy()[0, :, :5])


def test_batched_decode_rows_match_single_rows_with_a_free_row_between() -> None:
    runner = runner_for("qwen2-int4")
    alone = runner_for("qwen2-int4")
    first, second = PROMPT[:10], PROMPT[3:]
    runner.prefill(0, first, None, 0)
    runner.prefill(2, second, None, 0)  # slot 1 stays free
    batched = runner.decode([0, 2], [5, 6])
    # a batched matmul may sum in another order than a single row: equal up to rounding
    alone.prefill(0, first, None, 0)
    np.testing.assert_allclose(batched[0], alone.decode([0], [5])[0], rtol=1e-5, atol=1e-5)
    alone.prefill(0, second, None, 0)
    np.testing.assert_allclose(batched[1], alone.decode([0], [6])[0], rtol=1e-5, atol=1e-5)


def test_chunked_prefill_matches_one_run() -> None:
    whole = runner_for("llama-fp32")
    chunked = runner_for("llama-fp32")
    assert isinstance(chunked, SharedKVRunner)
    chunked.prefill_chunk = 4
    np.testing.assert_allclose(
        chunked.prefill(0, PROMPT, None, 0), whole.prefill(0, PROMPT, None, 0), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        chunked.decode([0], [3]), whole.decode([0], [3]), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("name", ["qwen2-int4", "qwen2-optimum"])
def test_last_position_head_gives_the_last_row_of_the_full_head(name: str) -> None:
    info = load_model_info(MODELS / name)
    rewritten = make_runner(info, CPU, threads=1, max_batch=1, max_length=64)
    original = make_runner(info, CPU, 1, 1, 64, last_position_logits=False)
    assert not rewritten.logits_per_token and original.logits_per_token
    np.testing.assert_allclose(
        rewritten.prefill(0, PROMPT, None, 0),
        original.prefill(0, PROMPT, None, 0),
        rtol=1e-4,
        atol=1e-4,
    )


def test_concatenating_graph_packs_rows_of_different_lengths() -> None:
    packed = runner_for("qwen2-optimum")
    short, long = PROMPT[:5], PROMPT
    packed.prefill(0, short, None, 0)
    packed.prefill(1, long, None, 0)
    steps = [packed.decode([0, 1], [5, 6]), packed.decode([0, 1], [7, 8])]  # packed, then kept
    packed.release(0)  # unpacks: slot 1 goes on alone
    last = packed.decode([1], [9])
    for row, (prompt, tokens) in enumerate(((short, [5, 7]), (long, [6, 8]))):
        alone = runner_for("qwen2-optimum", max_batch=1)
        alone.prefill(0, prompt, None, 0)
        for step, token in zip(steps, tokens, strict=True):
            np.testing.assert_allclose(
                step[row], alone.decode([0], [token])[0], rtol=1e-4, atol=1e-4
            )
        if row == 1:
            np.testing.assert_allclose(last[0], alone.decode([0], [9])[0], rtol=1e-4, atol=1e-4)
    assert packed.lengths[1] == len(long) + 3
    assert packed.snapshot(1, len(long) + 3).length == len(long) + 3


@pytest.mark.parametrize("name", ["qwen2-fp32", "qwen2-int4", "qwen2-optimum"])
def test_verifying_a_draft_gives_each_position_the_logits_of_decoding_it(name: str) -> None:
    runner = runner_for(name)
    draft = [5, 6, 7, 8]
    runner.prefill(0, PROMPT, None, 0)
    runner.prefill(1, PROMPT, None, 0)
    runner.prefill(2, PROMPT[:5], None, 0)
    # slot 1 sits out these batched steps (as a verifying row does) and must not be disturbed
    decoded = [runner.decode([0, 2], [token, 3])[0].copy() for token in draft]
    verified = runner.verify(1, draft)
    assert verified.shape == (len(draft), runner.info.vocab_size)
    np.testing.assert_allclose(verified, np.stack(decoded), rtol=1e-4, atol=1e-4)
    assert runner.lengths[1] == len(PROMPT) + len(draft)


@pytest.mark.parametrize("name", ["qwen2-fp32", "qwen2-optimum"])
def test_a_rewound_slot_continues_as_if_the_rejected_tokens_never_ran(name: str) -> None:
    runner = runner_for(name)
    runner.prefill(0, PROMPT, None, 0)
    runner.prefill(1, PROMPT, None, 0)
    runner.decode([0], [5])
    expected = runner.decode([0], [6])[0].copy()
    runner.verify(1, [5, 9, 9, 9])  # the draft's last three tokens are rejected
    runner.rewind(1, len(PROMPT) + 1)
    assert runner.lengths[1] == len(PROMPT) + 1
    np.testing.assert_allclose(runner.decode([1], [6])[0], expected, rtol=1e-4, atol=1e-4)
