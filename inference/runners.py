"""Runners: the decoder over `max_batch` sequence slots, in the KV layout its graph asks for.

A runner owns the KV cache of `max_batch` sequence slots and runs the decoder on them:

- `SharedKVRunner`, for graphs whose attention is GroupQueryAttention (onnxruntime-genai builder
  output): one buffer per layer of shape (max_batch, kv_heads, max_length, head_dim), bound as
  both `past` and `present`, so a step writes the new position in place. Rows are sequence slots;
  each row's valid length comes from its attention-mask row (the graph turns the mask into
  GroupQueryAttention's per-row `seqlens_k`), so rows of different lengths decode in one batch.
- `ConcatKVRunner` (inference/concat_runner.py), for graphs that concatenate past and new keys
  (Optimum exports): each slot keeps the `present` values of its last run and feeds them back as
  `past`; slots decoding together on the CPU run as one left-padded batch.

Both run a speculative draft (`verify`: k+1 tokens after a slot's cache, logits of each) and
drop its rejected tail (`rewind`); for shared buffers, see inference/draft_runs.py.

Buffers live on the session's device and are bound by pointer, so on CUDA the cache never leaves
the GPU; the same code runs on the CPU, which is how the tests cover it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import onnxruntime as ort

from inference.draft_runs import SharedDraftRuns, idle_rows
from inference.kv_device import KVDevice, KVSnapshot, kv_bytes
from inference.model import ModelInfo
from inference.session import LOGITS_FROM, LOGITS_POSITIONS, create_session, last_position_graph

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

    def verify(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        """Run `tokens` after the slot's cache; logits of every one of them (len(tokens), vocab).
        A speculative draft's check: `rewind` then drops the positions that were not accepted."""
        ...

    def rewind(self, slot: int, length: int) -> None:
        """Keep only the first `length` positions of the slot's cache."""
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
        self.logits_per_token = logits_shape[1] not in (1, LOGITS_POSITIONS)
        # a rewritten head (session.last_position_graph) gives the last n rows when asked
        self._logits_window = LOGITS_FROM in {i.name for i in session.get_inputs()}
        self._last_row = np.array([-1], np.int64)  # bound by pointer: must outlive the bindings
        self._allocate()

    def _allocate(self) -> None:
        """Per-layout state, once the common fields are set."""

    def _logit_rows(self, binding: ort.IOBinding, count: int, last: int) -> int:
        """Rows of logits a run of `count` tokens returns when the last `last` are wanted."""
        if self.logits_per_token:
            return count
        if self._logits_window:
            binding.bind_cpu_input(LOGITS_FROM, np.array([-last], np.int64))
            return last
        assert last == 1, "this graph's head gives only the last position"
        return 1


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
        # Positions of each slot ever written: the system commits a buffer's pages when they are
        # first written, so the resident KV grows with the longest sequence each slot has held,
        # up to the whole buffer (a bound, not a leak; `kv_written_bytes`).
        self._written = np.zeros(max_batch, np.int64)
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
        self._drafts = SharedDraftRuns(self)

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
        rows = self._logit_rows(binding, count, 1)
        if self._prompt_logits.size < rows * vocab:
            # a head that sees every position needs a whole chunk's rows; else only the last few
            most = self.prefill_chunk if self.logits_per_token else rows
            self._prompt_logits = np.empty(most * vocab, self._logits.dtype)
        logits = self._prompt_logits[: rows * vocab].reshape(1, rows, vocab)
        binding.bind_output("logits", "cpu", 0, logits.dtype, [1, rows, vocab], logits.ctypes.data)
        self.session.run_with_iobinding(binding)
        return np.array(logits[0, -1], np.float32)

    def verify(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        return self._drafts.run(slot, tokens)

    def rewind(self, slot: int, length: int) -> None:
        # GroupQueryAttention writes and reads a row up to its mask's length: the positions past
        # it are never read, and the next step overwrites them
        assert 1 <= length <= self.lengths[slot]
        self._note_written(slot)
        self._mask[slot, length:] = 0
        self.lengths[slot] = length

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
        # a held row that sits this step out still runs: its write must land past its cache
        idle = [] if len(slots) == rows else idle_rows(lengths, slots, rows, self.max_length)
        for slot in idle:
            mask[slot, lengths[slot]] = 1
        self.session.run_with_iobinding(self._decode_binding)
        for slot in idle:
            mask[slot, lengths[slot]] = 0
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
        if self._logits_window:
            binding.bind_input(LOGITS_FROM, "cpu", 0, np.int64, [1], self._last_row.ctypes.data)
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
        self._note_written(slot)
        self._mask[slot] = 0
        self._mask[slot, 0] = 1
        self.lengths[slot] = 0
        self._input_ids[slot, 0] = 0

    def holds_kv(self, slot: int) -> bool:
        return bool(self.lengths[slot] > 0 or self._mask[slot, 1:].any())

    def _note_written(self, slot: int) -> None:
        # the position after a held row's cache is written too: batched steps run every row
        reached = min(int(self.lengths[slot]) + 1, self.max_length)
        if reached > self._written[slot]:
            self._written[slot] = reached

    @property
    def kv_written_bytes(self) -> int:
        """KV buffer bytes written so far over all slots (read on any thread: approximate while
        a step runs), at most `kv_buffer_bytes`."""
        held = np.minimum(self.lengths + 1, self.max_length)
        return sum(kv_bytes(self.info, int(n)) for n in np.maximum(self._written, held))

    @property
    def kv_buffer_bytes(self) -> int:
        return kv_bytes(self.info, self.max_length) * self.max_batch

    def kv_stats(self) -> dict[str, int]:
        return {"kv_written_bytes": self.kv_written_bytes, "kv_buffer_bytes": self.kv_buffer_bytes}


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
    # imported here: concat_runner builds on this module's _RunnerBase
    from inference.concat_runner import ConcatKVRunner

    runner_class = SharedKVRunner if info.shared_kv_buffer else ConcatKVRunner
    runner: Runner = runner_class(session, info, provider, max_batch, max_length)
    return runner
