"""Runners: the decoder over `max_batch` sequence slots, in the KV layout its graph asks for.

A runner owns the KV cache of `max_batch` sequence slots and runs the decoder on them:

- `SharedKVRunner`, for graphs whose attention is GroupQueryAttention (onnxruntime-genai builder
  output): one buffer per layer of shape (max_batch, kv_heads, max_length, head_dim), bound as
  both `past` and `present`, so a step writes the new position in place. Rows are sequence slots;
  each row's valid length comes from its attention-mask row (the graph turns the mask into
  GroupQueryAttention's per-row `seqlens_k`), so rows of different lengths decode in one batch.
- `ConcatKVRunner`, for graphs that concatenate past and new keys (Optimum exports): each slot
  keeps the `present` values of its last run and feeds them back as `past`; slots decoding
  together on the CPU run as one left-padded batch.

Buffers live on the session's device and are bound by pointer, so on CUDA the cache never leaves
the GPU; the same code runs on the CPU, which is how the tests cover it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnxruntime as ort

from inference.kv_device import KVDevice, KVSnapshot, kv_bytes
from inference.model import ModelInfo
from inference.session import create_session, last_position_graph

# Bounds on the per-run buffers of a prompt chunk: attention scores and logits.
PREFILL_SCORE_BYTES = 64 * 2**20
PREFILL_LOGITS_BYTES = 64 * 2**20


class Runner(Protocol):
    max_batch: int
    max_length: int  # positions per slot, prompt and generated tokens together
    logits_per_token: bool  # False when the graph's head only sees the last position

    def prefill(
        self, slot: int, tokens: Sequence[int], reuse: KVSnapshot | None, reused: int
    ) -> np.ndarray:
        """Run `tokens` after the first `reused` positions of `reuse`; logits of the last token."""
        ...

    def extend(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        """Run more prompt `tokens` after what `slot` holds (a prefill resumed in chunks)."""
        ...

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """One new token per slot; logits (len(slots), vocab)."""
        ...

    def snapshot(self, slot: int, length: int) -> KVSnapshot: ...

    def release(self, slot: int) -> None: ...

    def holds_kv(self, slot: int) -> bool:
        """Whether the slot still holds a sequence's KV (a released slot must not)."""
        ...


class _RunnerBase:
    def __init__(
        self,
        session: ort.InferenceSession,
        info: ModelInfo,
        provider: str,
        max_batch: int,
        max_length: int,
    ) -> None:
        self.session = session
        self.info = info
        self.max_batch = max_batch
        self.max_length = max_length
        self.device = KVDevice(info, provider)
        self.lengths = np.zeros(max_batch, np.int64)  # valid KV positions per slot
        # False once last_position_graph has rewritten the head: one logits row per run
        logits_shape = next(o.shape for o in session.get_outputs() if o.name == "logits")
        self.logits_per_token = logits_shape[1] != 1
        self._allocate()

    def _allocate(self) -> None:
        """Per-layout state, once the common fields are set."""


class SharedKVRunner(_RunnerBase):
    """Batched decoding over GroupQueryAttention's shared past/present buffers (see module doc)."""

    def _allocate(self) -> None:
        info, max_batch, max_length = self.info, self.max_batch, self.max_length
        assert info.shared_kv_buffer, "SharedKVRunner needs a GroupQueryAttention graph"
        heads, dim = self.device.kv_shape_tail
        self._row_shape = (1, heads, max_length, dim)
        self._row_bytes = heads * max_length * dim * self.device.kv_dtype.itemsize
        # (max_batch, kv_heads, max_length, head_dim) per past name, on the device
        self._buffers = [
            ort.OrtValue.ortvalue_from_shape_and_type(
                [max_batch, heads, max_length, dim], self.device.kv_dtype, self.device.type, 0
            )
            for _ in self.device.kv_names
        ]
        self._pointers = [buffer.data_ptr() for buffer in self._buffers]
        # host-side inputs and outputs of a decode step, edited in place between runs
        self._input_ids = np.zeros((max_batch, 1), np.int64)
        self._positions = np.zeros((max_batch, 1), np.int64)
        # Full width, so every step has the same input shapes (onnxruntime then reuses its memory
        # plan); GroupQueryAttention reads each row's length from the row's sum, not the width.
        # A free row keeps one valid position so its seqlens_k stays >= 0 when batched.
        self._mask = np.zeros((max_batch, max_length), np.int64)
        self._mask[:, 0] = 1
        self._logits = np.zeros((max_batch, 1, info.vocab_size), np.dtype(info.logits_dtype))
        self._decode_binding: ort.IOBinding | None = None
        self._decode_rows = 0
        # GroupQueryAttention allocates heads x chunk x max_length scores per layer, and an
        # unrewritten head returns logits for every prompt position: chunks keep both bounded
        self.prefill_chunk = max(
            16,
            min(
                1024,
                PREFILL_SCORE_BYTES // (info.num_heads * max_length * 4),
                PREFILL_LOGITS_BYTES // (info.vocab_size * self._logits.itemsize)
                if self.logits_per_token
                else 1024,
            ),
        )
        # reused across prompts: a fresh multi-megabyte output per prompt costs page faults
        self._prompt_logits = np.empty(0, self._logits.dtype)

    def _row_pointer(self, index: int, slot: int) -> int:
        return self._pointers[index] + slot * self._row_bytes

    def prefill(
        self, slot: int, tokens: Sequence[int], reuse: KVSnapshot | None, reused: int
    ) -> np.ndarray:
        assert len(tokens) >= 1 and reused + len(tokens) <= self.max_length
        position = 0
        if reuse is not None and reused > 0:
            rows = [self._row_pointer(i, slot) for i in range(len(self._pointers))]
            self.device.restore_kv(reuse.values, reused, rows, self.max_length)
            position = reused
        return self._run_prompt_chunks(slot, tokens, position)

    def extend(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        position = int(self.lengths[slot])
        assert len(tokens) >= 1 and position + len(tokens) <= self.max_length
        return self._run_prompt_chunks(slot, tokens, position)

    def _run_prompt_chunks(self, slot: int, tokens: Sequence[int], position: int) -> np.ndarray:
        logits = np.empty(0, np.float32)
        for start in range(0, len(tokens), self.prefill_chunk):
            chunk = tokens[start : start + self.prefill_chunk]
            logits = self._run_prompt(slot, chunk, position)
            position += len(chunk)
        # The mask also covers the next position: a decode step of other slots runs this row
        # too (it binds rows 0..max) and writes its KV at the mask's last position, which must
        # be one the row's next run overwrites (the next prompt chunk or its first token),
        # never one of the prompt's.
        self._mask[slot] = 0
        self._mask[slot, : min(position + 1, self.max_length)] = 1
        self.lengths[slot] = position
        return logits

    def _run_prompt(self, slot: int, tokens: Sequence[int], past: int) -> np.ndarray:
        """Run prompt tokens at positions [past, past + len) of `slot`; logits of the last one."""
        count = len(tokens)
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.asarray(tokens, np.int64).reshape(1, count))
        # the cache is `past` positions long: the first prompt (past 0) or a continued one
        binding.bind_cpu_input("attention_mask", np.ones((1, past + count), np.int64))
        if self.info.has_position_ids:
            binding.bind_cpu_input(
                "position_ids", np.arange(past, past + count, dtype=np.int64)[None]
            )
        names = zip(self.device.kv_names, self.device.present_names, strict=True)
        for index, (past_name, present_name) in enumerate(names):
            pointer = self._row_pointer(index, slot)
            for name, bind in (
                (past_name, binding.bind_input),
                (present_name, binding.bind_output),
            ):
                bind(
                    name, self.device.type, 0, self.device.kv_dtype, list(self._row_shape), pointer
                )
        vocab = self.info.vocab_size
        rows = count if self.logits_per_token else 1
        if self._prompt_logits.size < rows * vocab:
            self._prompt_logits = np.empty(self.prefill_chunk * vocab, self._logits.dtype)
        logits = self._prompt_logits[: rows * vocab].reshape(1, rows, vocab)
        binding.bind_output("logits", "cpu", 0, logits.dtype, [1, rows, vocab], logits.ctypes.data)
        self.session.run_with_iobinding(binding)
        return np.array(logits[0, -1], np.float32)

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        rows = max(slots) + 1
        input_ids, positions, mask, lengths = (
            self._input_ids,
            self._positions,
            self._mask,
            self.lengths,
        )
        for slot, token in zip(slots, tokens, strict=True):
            length = int(lengths[slot])
            assert length < self.max_length, f"slot {slot} is full"
            input_ids[slot, 0] = token
            positions[slot, 0] = length
            mask[slot, length] = 1
            lengths[slot] = length + 1
        if rows != self._decode_rows or self._decode_binding is None:
            self._decode_binding = self._bind_decode(rows)
            self._decode_rows = rows
        self.session.run_with_iobinding(self._decode_binding)
        logits = self._logits[:rows, 0]
        if len(slots) != rows:
            logits = logits[np.asarray(slots)]
        # a view of the output buffer: valid until the next step
        return logits if logits.dtype == np.float32 else logits.astype(np.float32)

    def _bind_decode(self, rows: int) -> ort.IOBinding:
        """Bind the first `rows` rows of every buffer; the arrays are edited in place per step."""
        binding = self.session.io_binding()
        binding.bind_input("input_ids", "cpu", 0, np.int64, [rows, 1], self._input_ids.ctypes.data)
        binding.bind_input(
            "attention_mask", "cpu", 0, np.int64, [rows, self.max_length], self._mask.ctypes.data
        )
        if self.info.has_position_ids:
            binding.bind_input(
                "position_ids", "cpu", 0, np.int64, [rows, 1], self._positions.ctypes.data
            )
        shape = [rows, *self._row_shape[1:]]
        for name, pointer in zip(self.device.kv_names, self._pointers, strict=True):
            binding.bind_input(name, self.device.type, 0, self.device.kv_dtype, shape, pointer)
        for name, pointer in zip(self.device.present_names, self._pointers, strict=True):
            binding.bind_output(name, self.device.type, 0, self.device.kv_dtype, shape, pointer)
        binding.bind_output(
            "logits",
            "cpu",
            0,
            self._logits.dtype,
            [rows, 1, self.info.vocab_size],
            self._logits.ctypes.data,
        )
        return binding

    def snapshot(self, slot: int, length: int) -> KVSnapshot:
        sources = [
            (self._row_pointer(i, slot), self._row_shape) for i in range(len(self._pointers))
        ]
        values = self.device.slice_kv(sources, length)
        return KVSnapshot(values, length, kv_bytes(self.info, length))

    def release(self, slot: int) -> None:
        self._mask[slot] = 0
        self._mask[slot, 0] = 1
        self.lengths[slot] = 0
        self._input_ids[slot, 0] = 0

    def holds_kv(self, slot: int) -> bool:
        return bool(self.lengths[slot] > 0 or self._mask[slot, 1:].any())


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
    ) -> tuple[list[ort.OrtValue], np.ndarray]:
        """Present values and the last position's logits (rows, vocab)."""
        binding = self.session.io_binding()
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
        return list(outputs[:-1]), np.asarray(outputs[-1].numpy()[:, -1], np.float32)

    def _run_slot(
        self, slot: int, tokens: Sequence[int], past: Sequence[ort.OrtValue]
    ) -> np.ndarray:
        start = int(self.lengths[slot])
        end = start + len(tokens)
        present, logits = self._run(
            np.asarray(tokens, np.int64)[None],
            past,
            np.ones((1, end), np.int64),
            np.arange(start, end, dtype=np.int64)[None],
        )
        self._past[slot] = present
        self.lengths[slot] = end
        return logits[0]

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


def make_runner(
    info: ModelInfo,
    provider: str,
    threads: int,
    max_batch: int,
    max_length: int,
    last_position_logits: bool = True,
) -> Runner:
    graph = last_position_graph(info) if last_position_logits else None
    session = create_session(graph or info.onnx_path, provider, threads)
    runner_class = SharedKVRunner if info.shared_kv_buffer else ConcatKVRunner
    runner: Runner = runner_class(session, info, provider, max_batch, max_length)
    return runner
