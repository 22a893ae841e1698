"""Speculative drafts on GroupQueryAttention's shared KV buffers: one run of k+1 tokens per row.

A verify (inference/lookup.py) runs a row's pending token and its draft after the row's cache,
in place in the row's slice of the shared buffers, and wants the logits of every one of them.
It is bound once per (slot, token count) and reused, like a decode step: the slot's full-width
mask row (GroupQueryAttention reads each row's length from the mask's sum, as in decode), input
arrays edited in place, and a logits buffer of its own. Each verify then costs the model run and
almost no Python, which matters when a decode step is half a millisecond.

Rejected tokens are dropped by shortening the row's length (`SharedKVRunner.rewind`): their keys
stay in the buffer past the row's length, where nothing reads them and the next step writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    from inference.runners import SharedKVRunner

# A verify's binding and the host arrays it reads and writes: input ids, positions, logits.
_Bound = tuple[ort.IOBinding, np.ndarray, np.ndarray, np.ndarray]


class SharedDraftRuns:
    """Verify runs of one SharedKVRunner, bound once per (slot, token count)."""

    def __init__(self, runner: SharedKVRunner) -> None:
        self.runner = runner
        self._bound: dict[tuple[int, int], _Bound] = {}

    def run(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        """Logits (len(tokens), vocab) of `tokens` run after the slot's cache, which grows by
        them (the caller rewinds what it rejects)."""
        runner = self.runner
        past, count = int(runner.lengths[slot]), len(tokens)
        assert past + count <= runner.max_length, f"slot {slot} has no room for the draft"
        binding, ids, positions, logits = self._bound.get((slot, count)) or self._bind(slot, count)
        ids[0] = tokens
        positions[0] = np.arange(past, past + count)
        runner._mask[slot, past : past + count] = 1
        runner.lengths[slot] = past + count
        runner.session.run_with_iobinding(binding)
        return np.array(logits[0], np.float32)

    def _bind(self, slot: int, count: int) -> _Bound:
        runner = self.runner
        binding = runner.session.io_binding()
        ids, positions = np.zeros((1, count), np.int64), np.zeros((1, count), np.int64)
        binding.bind_input("input_ids", "cpu", 0, np.int64, [1, count], ids.ctypes.data)
        mask_row = runner._mask.ctypes.data + slot * runner._mask.strides[0]
        binding.bind_input("attention_mask", "cpu", 0, np.int64, [1, runner.max_length], mask_row)
        if runner.info.has_position_ids:
            binding.bind_input(
                "position_ids", "cpu", 0, np.int64, [1, count], positions.ctypes.data
            )
        runner._logit_rows(binding, count, count)
        device = runner.device
        kv = device.type, 0, device.kv_dtype, list(runner._row_shape)
        for index, (past, present) in enumerate(
            zip(device.kv_names, device.present_names, strict=True)
        ):
            binding.bind_input(past, *kv, runner._row_pointer(index, slot))
            binding.bind_output(present, *kv, runner._row_pointer(index, slot))
        logits = np.zeros((1, count, runner.info.vocab_size), runner._logits.dtype)
        binding.bind_output(
            "logits", "cpu", 0, logits.dtype, list(logits.shape), logits.ctypes.data
        )
        # the arrays stay with the binding, which holds their pointers
        bound = self._bound[(slot, count)] = (binding, ids, positions, logits)
        return bound


def idle_rows(lengths: np.ndarray, slots: Sequence[int], rows: int, max_length: int) -> list[int]:
    """Rows below `rows` that hold a sequence but sit a batched decode step out (verifying a
    draft on their own). They run anyway, and GroupQueryAttention writes their token at their
    length: the caller marks one more position valid for that step, so that the write lands
    past the row's cache instead of over its last key."""
    held = [slot for slot in range(rows) if 0 < lengths[slot] < max_length]
    return sorted(set(held) - set(slots))
