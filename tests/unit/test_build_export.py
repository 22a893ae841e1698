"""The model build's export step: the builder's tied int8 head graph made loadable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from inference.build.export import repair_tied_int8_head


def tied_head_graph(path: Path) -> None:
    """Two nodes reading the head's weights, one by the names the builder's Gather side uses."""
    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "head_Q8")
    scales = numpy_helper.from_array(np.ones((2, 3), dtype=np.float32), "head_scales")
    nodes = [
        helper.make_node("Add", ["head_Q8G32", "head_scale"], ["embedded"]),
        helper.make_node("Mul", ["head_Q8", "head_scales"], ["logits"]),
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3])
        for name in ("embedded", "logits")
    ]
    graph = helper.make_graph(nodes, "tied", [], outputs, [weight, scales])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_head_read_under_two_names_loads_after_the_repair(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    tied_head_graph(path)
    assert repair_tied_int8_head(path)
    embedded, logits = ort.InferenceSession(str(path)).run(None, {})
    assert embedded.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert logits.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert not repair_tied_int8_head(path)  # a graph that loads is left as it is
