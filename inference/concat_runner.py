"""`ConcatKVRunner`: the decoder for graphs that concatenate past and new keys (Optimum exports).

The other layout, shared KV buffers, and the Runner contract both follow: inference/runners.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from inference.kv_device import KVSnapshot, kv_bytes
from inference.runners import _RunnerBase


@dataclass
class _LeftPaddedBatch:
    """Slots decoding together in a concatenating graph, caches right-aligned in one tensor."""

    slots: tuple[int, ...]
    present: list[ort.OrtValue]  # (rows, kv_heads, width, head_dim) each, left-padded
    mask: np.ndarray  # (rows, width): 0 over each row's padding


class ConcatKVRunner(_RunnerBase):
    """Decoding for graphs that concatenate past and new keys (Optimum exports).

    Each slot keeps the `present` of its last run as its next `past`. Slots decoding together on
    the CPU are packed into one left-padded batch (position ids carry each row's own positions,
    the mask hides the padding) and stay packed, with no copy, while the same slots go on;
    a change of membership unpacks them. On other devices they run one slot at a time.
    """

    def _allocate(self) -> None:
        self._past: list[list[ort.OrtValue] | None] = [None] * self.max_batch
        self._has_cache_branch = "use_cache_branch" in self.info.input_names
        self._batch: _LeftPaddedBatch | None = None
        self._can_pack = self.device.type == "cpu" and self.info.has_position_ids

    def _run(
        self,
        tokens: np.ndarray,  # (rows, new tokens)
        past: Sequence[ort.OrtValue],
        mask: np.ndarray,  # (rows, past width + new tokens)
        positions: np.ndarray,  # (rows, new tokens)
        last: int = 1,
    ) -> tuple[list[ort.OrtValue], np.ndarray]:
        """Present values and the last position's logits (rows, vocab), or the last `last`
        positions' (rows, last, vocab) when `last` > 1."""
        binding = self.session.io_binding()
        self._logit_rows(binding, tokens.shape[1], last)
        binding.bind_cpu_input("input_ids", tokens)
        binding.bind_cpu_input("attention_mask", mask)
        if self.info.has_position_ids:
            binding.bind_cpu_input("position_ids", positions)
        if self._has_cache_branch:
            binding.bind_cpu_input("use_cache_branch", np.array([mask.shape[1] > tokens.shape[1]]))
        for name, value in zip(self.device.kv_names, past, strict=True):
            binding.bind_ortvalue_input(name, value)
        for name in self.device.present_names:
            binding.bind_output(name, self.device.type, 0)
        binding.bind_output("logits", "cpu")
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        logits = outputs[-1].numpy()
        rows = logits[:, -last:] if last > 1 else logits[:, -1]
        return list(outputs[:-1]), np.asarray(rows, np.float32)

    def _run_slot(
        self, slot: int, tokens: Sequence[int], past: Sequence[ort.OrtValue], last: int = 1
    ) -> np.ndarray:
        start = int(self.lengths[slot])
        end = start + len(tokens)
        present, logits = self._run(
            np.asarray(tokens, np.int64)[None],
            past,
            np.ones((1, end), np.int64),
            np.arange(start, end, dtype=np.int64)[None],
            last,
        )
        self._past[slot] = present
        self.lengths[slot] = end
        return logits[0]

    def verify(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        if self._batch is not None and slot in self._batch.slots:
            self._unpack()
        past = self._past[slot]
        assert past is not None, f"slot {slot} has no sequence"
        return self._run_slot(slot, tokens, past, last=len(tokens)).reshape(len(tokens), -1)

    def rewind(self, slot: int, length: int) -> None:
        # the present values hold every position run: keep a copy of the accepted ones
        if self._batch is not None and slot in self._batch.slots:
            self._unpack()
        past = self._past[slot]
        assert past is not None and 1 <= length <= self.lengths[slot]
        if length < self.lengths[slot]:
            self._past[slot] = self.device.slice_kv(past, length)
            self.lengths[slot] = length

    def prefill(
        self, slot: int, tokens: Sequence[int], reuse: KVSnapshot | None, reused: int
    ) -> np.ndarray:
        assert len(tokens) >= 1 and reused + len(tokens) <= self.max_length
        self.lengths[slot] = reused
        if reuse is None or reused == 0:
            return self._run_slot(slot, tokens, self.device.empty_kv())
        past = reuse.values
        if reuse.length != reused:
            past = self.device.slice_kv(reuse.values, reused)
        return self._run_slot(slot, tokens, past)

    def extend(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        if self._batch is not None and slot in self._batch.slots:
            self._unpack()
        past = self._past[slot]
        assert past is not None, f"slot {slot} has no sequence"
        assert len(tokens) >= 1 and int(self.lengths[slot]) + len(tokens) <= self.max_length
        return self._run_slot(slot, tokens, past)

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        if len(slots) > 1 and self._can_pack:
            return self._decode_packed(tuple(slots), tokens)
        self._unpack()
        rows = []
        for slot, token in zip(slots, tokens, strict=True):
            past = self._past[slot]
            assert past is not None, f"slot {slot} has no sequence"
            rows.append(self._run_slot(slot, [token], past))
        return np.stack(rows)

    def _decode_packed(self, slots: tuple[int, ...], tokens: Sequence[int]) -> np.ndarray:
        batch = self._batch
        if batch is None or batch.slots != slots:
            batch = self._pack(slots)
        rows = len(slots)
        lengths = self.lengths[list(slots)]
        present, logits = self._run(
            np.asarray(tokens, np.int64).reshape(rows, 1),
            batch.present,
            mask := np.concatenate([batch.mask, np.ones((rows, 1), np.int64)], axis=1),
            lengths.reshape(rows, 1),
        )
        self._batch = _LeftPaddedBatch(slots, present, mask)
        self.lengths[list(slots)] = lengths + 1
        return logits

    def _pack(self, slots: tuple[int, ...]) -> _LeftPaddedBatch:
        self._unpack()
        heads, dim = self.device.kv_shape_tail
        width = int(self.lengths[list(slots)].max())
        mask = np.zeros((len(slots), width), np.int64)
        packed = [
            np.zeros((len(slots), heads, width, dim), self.device.kv_dtype)
            for _ in self.device.kv_names
        ]
        for row, slot in enumerate(slots):
            past = self._past[slot]
            assert past is not None, f"slot {slot} has no sequence"
            length = int(self.lengths[slot])
            mask[row, width - length :] = 1
            for target, value in zip(packed, past, strict=True):
                target[row, :, width - length :] = value.numpy()[0]
            self._past[slot] = None  # the batch holds it now
        values = [ort.OrtValue.ortvalue_from_numpy(array) for array in packed]
        return _LeftPaddedBatch(slots, values, mask)

    def _unpack(self) -> None:
        """Give each packed slot its own cache again (before the batch's membership changes)."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        arrays = [value.numpy() for value in batch.present]
        width = batch.mask.shape[1]
        for row, slot in enumerate(batch.slots):
            length = int(self.lengths[slot])
            self._past[slot] = [
                ort.OrtValue.ortvalue_from_numpy(
                    np.ascontiguousarray(a[row : row + 1, :, width - length :])
                )
                for a in arrays
            ]

    def snapshot(self, slot: int, length: int) -> KVSnapshot:
        if self._batch is not None and slot in self._batch.slots:
            self._unpack()
        past = self._past[slot]
        assert past is not None, f"slot {slot} has no sequence"
        # present values are never written again (the next run makes new ones), so share them
        values = past if length == self.lengths[slot] else self.device.slice_kv(past, length)
        return KVSnapshot(values, length, kv_bytes(self.info, length))

    def release(self, slot: int) -> None:
        if self._batch is not None and slot in self._batch.slots:
            self._unpack()
        self._past[slot] = None
        self.lengths[slot] = 0

    def holds_kv(self, slot: int) -> bool:
        batch = self._batch
        packed = batch is not None and slot in batch.slots
        return packed or self._past[slot] is not None or bool(self.lengths[slot] > 0)
