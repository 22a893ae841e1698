"""The KV cache on the session's device: snapshots of one sequence, and the copies behind them.

A snapshot is a copy of a sequence's first positions, kept by the prefix cache so that a later
prompt with the same start skips their prefill. The copies run as tiny ONNX graphs (Slice,
Gather) on the decoder's own provider, inputs and outputs bound by pointer, so on CUDA the cache
never leaves the GPU. A restore binds each head's positions of a slot row as an output of its
own, so nothing else in the row is written.

On the CPU a snapshot's tensors live in pages of their own (an anonymous mmap each), not in the
session's arena or the malloc heap: the prefix cache keeps them long, in every size, and frees
them in LRU order, a pattern an arena or heap fragments on without end (the soak benchmark saw
the server grow from 0.5 to 1.1 GB over 10,000 requests with the cache at its bound). Pages of
their own go back to the system the moment a snapshot is evicted.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from inference.model import ModelInfo
from inference.session import CPU, CUDA, DEVICE_TYPES

CPU_DEVICE = DEVICE_TYPES[CPU]


def _own_pages(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zeroed array in an anonymous mapping of its own, unmapped when the array is freed."""
    count = int(np.prod(shape))
    pages = mmap.mmap(-1, max(1, count * dtype.itemsize))
    return np.frombuffer(pages, dtype, count=count).reshape(shape)


@dataclass
class KVSnapshot:
    """A copy of the first `length` positions of one sequence's KV cache, on the session device."""

    values: list[ort.OrtValue]  # [key0, value0, key1, value1, ...], each (1, kv_heads, L, head_dim)
    length: int  # valid positions (L may be larger for a snapshot shared with a longer sequence)
    nbytes: int


class KVDevice:
    """Allocation and copies on the session's device."""

    def __init__(self, info: ModelInfo, provider: str) -> None:
        self.type = DEVICE_TYPES[provider]
        self.provider = provider
        self.kv_dtype = np.dtype(info.kv_dtype)
        self.kv_names = [name for pair in info.past_names for name in pair]
        self.present_names = [name for pair in info.present_names for name in pair]
        self.kv_shape_tail = (info.num_kv_heads, info.head_dim)
        self._slicer = _build_slicer(len(self.kv_names), info, provider)
        self._restorer = _build_restorer(len(self.kv_names), info, provider)

    def empty_kv(self) -> list[ort.OrtValue]:
        heads, dim = self.kv_shape_tail
        empty = np.zeros((1, heads, 0, dim), self.kv_dtype)
        return [ort.OrtValue.ortvalue_from_numpy(empty, self.type, 0) for _ in self.kv_names]

    def slice_kv(
        self, sources: Sequence[tuple[int, tuple[int, ...]] | ort.OrtValue], length: int
    ) -> list[ort.OrtValue]:
        """Copies of the first `length` positions of each source (pointer+shape or value)."""
        binding = self._slicer.io_binding()
        heads, dim = self.kv_shape_tail
        own_pages: list[ort.OrtValue] = []
        for index, source in enumerate(sources):
            name = f"x{index}"
            if isinstance(source, ort.OrtValue):
                binding.bind_ortvalue_input(name, source)
            else:
                pointer, shape = source
                binding.bind_input(name, self.type, 0, self.kv_dtype, list(shape), pointer)
            if self.type == CPU_DEVICE:
                output = ort.OrtValue.ortvalue_from_numpy(
                    _own_pages((1, heads, length, dim), self.kv_dtype)
                )  # the OrtValue keeps the array, and so the mapping, alive
                binding.bind_ortvalue_output(f"y{index}", output)
                own_pages.append(output)
            else:
                binding.bind_output(f"y{index}", self.type, 0)
        binding.bind_cpu_input("length", np.array([length], np.int64))
        self._slicer.run_with_iobinding(binding)
        return own_pages or list(binding.get_outputs())

    def restore_kv(
        self, values: Sequence[ort.OrtValue], length: int, rows: Sequence[int], max_length: int
    ) -> None:
        """Copy the first `length` positions of `values` into the slot rows starting at `rows`.

        A row is (kv_heads, max_length, head_dim), so each head's positions are a separate
        contiguous range: each is bound as its own output and nothing else in the row is written.
        """
        heads, dim = self.kv_shape_tail
        head_bytes = max_length * dim * self.kv_dtype.itemsize
        binding = self._restorer.io_binding()
        for index, (value, row) in enumerate(zip(values, rows, strict=True)):
            binding.bind_ortvalue_input(f"x{index}", value)
            for head in range(heads):
                binding.bind_output(
                    f"y{index}_{head}", self.type, 0, self.kv_dtype, [length, dim],
                    row + head * head_bytes,
                )  # fmt: skip
        binding.bind_cpu_input("length", np.array([length], np.int64))
        self._restorer.run_with_iobinding(binding)


def _kv_graph_io(count: int, info: ModelInfo) -> tuple[int, list[onnx.ValueInfoProto]]:
    element = helper.np_dtype_to_tensor_dtype(np.dtype(info.kv_dtype))
    shape: list[int | str] = [1, info.num_kv_heads, "positions", info.head_dim]
    inputs = [helper.make_tensor_value_info(f"x{i}", element, shape) for i in range(count)]
    inputs.append(helper.make_tensor_value_info("length", TensorProto.INT64, [1]))
    return element, inputs


def _small_session(graph: onnx.GraphProto, provider: str) -> ort.InferenceSession:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    providers = [CUDA, CPU] if provider == CUDA else [CPU]
    return ort.InferenceSession(model.SerializeToString(), options, providers=providers)


def _build_slicer(count: int, info: ModelInfo, provider: str) -> ort.InferenceSession:
    """y_i = x_i[:, :, :length]: copies the first `length` positions of `count` KV tensors."""
    element, inputs = _kv_graph_io(count, info)
    out_shape: list[int | str] = [1, info.num_kv_heads, "length", info.head_dim]
    nodes = [
        helper.make_node("Slice", [f"x{i}", "zero", "length", "axis2"], [f"y{i}"])
        for i in range(count)
    ]
    graph = helper.make_graph(
        nodes,
        "kv_slice",
        inputs,
        [helper.make_tensor_value_info(f"y{i}", element, out_shape) for i in range(count)],
        initializer=[
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
        ],
    )
    return _small_session(graph, provider)


def _build_restorer(count: int, info: ModelInfo, provider: str) -> ort.InferenceSession:
    """y_i_h = x_i[0, h, :length]: one output per tensor and head, each bound into a slot row."""
    element, inputs = _kv_graph_io(count, info)
    nodes: list[onnx.NodeProto] = []
    outputs: list[onnx.ValueInfoProto] = []
    for i in range(count):
        nodes.append(helper.make_node("Slice", [f"x{i}", "zero", "length", "axis2"], [f"s{i}"]))
        nodes.append(helper.make_node("Squeeze", [f"s{i}", "axis0"], [f"q{i}"]))
        for h in range(info.num_kv_heads):
            index = helper.make_tensor(f"head{i}_{h}", TensorProto.INT64, [], [h])
            nodes.append(helper.make_node("Constant", [], [f"h{i}_{h}"], value=index))
            nodes.append(helper.make_node("Gather", [f"q{i}", f"h{i}_{h}"], [f"y{i}_{h}"], axis=0))
            outputs.append(
                helper.make_tensor_value_info(f"y{i}_{h}", element, ["length", info.head_dim])
            )
    graph = helper.make_graph(
        nodes,
        "kv_restore",
        inputs,
        outputs,
        initializer=[
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axis0", TensorProto.INT64, [1], [0]),
            helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
        ],
    )
    return _small_session(graph, provider)


def kv_bytes(info: ModelInfo, length: int) -> int:
    """Bytes of `length` positions of KV cache over all layers (keys and values)."""
    itemsize = np.dtype(info.kv_dtype).itemsize
    return 2 * info.num_layers * info.num_kv_heads * length * info.head_dim * itemsize
