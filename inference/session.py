"""The onnxruntime session: provider choice (CUDA -> CPU), threads, the graph it runs.

The decoder runs as one `InferenceSession` with every graph optimization on and, unless told
otherwise, one intra-op thread per physical core (hyper-threads share a core's arithmetic units).
Before the session is made, the graph's LM head may be rewritten to see only the last position
(`last_position_graph`): a prompt chunk then yields one row of logits instead of one per token.
The rewrite serializes graph and weights into one protobuf, limited to 2 GB, so large models
are loaded as they are.

CUDA needs the `onnxruntime-gpu` package (`pip install 'flashcode[gpu]'`) *instead of*
`onnxruntime`: both install the same `onnxruntime` module, so with the two installed one silently
hides the other. Uninstall `onnxruntime` first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from inference.model import ModelError, ModelInfo

log = logging.getLogger("flashcode.inference")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
# onnxruntime IO-binding device names per provider
DEVICE_TYPES = {CUDA: "cuda", CPU: "cpu"}
# The rewritten head's Slice starts at this input: -1 for the last row, -n for the last n (a
# speculative draft's verification). A plain input, not an overridable initializer: IO binding
# cannot bind those.
LOGITS_FROM = "flashcode_last_position_starts"
LOGITS_POSITIONS = "flashcode_logit_positions"  # the rewritten logits' (symbolic) dim 1
# Graphs whose weights exceed this are loaded from disk as they are (no last-position rewrite):
# the rewrite serializes graph and weights into one protobuf, which is limited to 2 GB.
REWRITE_MAX_BYTES = 2**30


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share a core's arithmetic units)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
                cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(allowed, len(cores) or allowed))


def choose_provider(device: str) -> str:
    """ "auto" picks CUDA when this onnxruntime build has it; "cuda" insists on it."""
    available = ort.get_available_providers()
    if device == "cpu":
        return CPU
    if device in ("cuda", "auto") and CUDA in available:
        return CUDA
    if device == "cuda":
        raise ModelError(
            "device 'cuda' requested but this onnxruntime has no CUDAExecutionProvider: "
            "uninstall onnxruntime, then install flashcode[gpu] (onnxruntime-gpu)"
        )
    if device == "auto":
        return CPU
    raise ModelError(f"unknown device {device!r}: choose one of auto, cpu, cuda")


def create_session(model: Path | bytes, provider: str, threads: int = 0) -> ort.InferenceSession:
    """A session on `model` (a file, or a serialized graph with its weights inside)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Both keep memory per input shape they have seen, and a prompt's length is a new shape on
    # almost every request: with them on, a 5,000-request soak grew the server by 11%, with
    # them off by 6.5%, at the same latency (benchmarks/README.md, "Soak").
    options.enable_mem_pattern = False
    options.enable_cpu_mem_arena = False
    providers: list[str | tuple[str, dict[str, str]]] = [CPU]
    if provider == CUDA:
        providers = [(CUDA, {"device_id": "0"}), CPU]
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, options, providers=providers)
    log.info(
        "model session: %s, providers %s, %d intra-op threads",
        "rewritten graph" if isinstance(model, bytes) else model,
        session.get_providers(),
        options.intra_op_num_threads,
    )
    return session


def last_position_graph(info: ModelInfo) -> bytes | None:
    """The decoder with its LM head fed only the last position, or None when that does not apply.

    A prompt chunk then yields one row of logits instead of one per token: the head (hidden x
    vocab) is about a third of a small model's prefill, and only the last row is ever sampled.
    Feeding `LOGITS_FROM` = -n gives the last n rows (a speculative draft's verification).
    """
    if info.size_bytes > REWRITE_MAX_BYTES:
        return None
    model = onnx.load(str(info.onnx_path))  # weights included
    graph = model.graph
    index, head = next(
        ((i, n) for i, n in enumerate(graph.node) if "logits" in n.output), (0, None)
    )
    logits = next((o for o in graph.output if o.name == "logits"), None)
    if head is None or logits is None or head.op_type not in ("MatMul", "MatMulNBits"):
        return None
    dims = logits.type.tensor_type.shape.dim
    if len(dims) != 3:
        return None
    prefix = "flashcode_last_position"
    graph.initializer.extend(
        [
            helper.make_tensor(f"{prefix}_ends", TensorProto.INT64, [1], [2**63 - 1]),
            helper.make_tensor(f"{prefix}_axes", TensorProto.INT64, [1], [1]),
        ]
    )
    hidden = head.input[0]
    inputs = [hidden, LOGITS_FROM, f"{prefix}_ends", f"{prefix}_axes"]
    graph.node.insert(index, helper.make_node("Slice", inputs, [prefix], name=prefix))
    head.input[0] = prefix
    graph.input.append(helper.make_tensor_value_info(LOGITS_FROM, TensorProto.INT64, [1]))
    dims[1].Clear()
    dims[1].dim_param = LOGITS_POSITIONS
    return bytes(model.SerializeToString())
