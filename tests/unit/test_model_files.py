"""The default model's weights as llama.cpp's GGUF and Hugging Face files are read from its int4
ONNX graph: what the remote tests serve must be the weights onnxruntime computes with."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from benchmarks.model_files import _matmul_weights
from inference.router import default_model_dir


def _initializers() -> tuple[dict[str, np.ndarray], dict[str, onnx.NodeProto]]:
    graph = onnx.load(str(default_model_dir() / "model.onnx")).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = {n.input[1]: n for n in graph.node if n.op_type == "MatMulNBits"}
    return init, nodes


def _onnxruntime_product(
    node: onnx.NodeProto, init: dict[str, np.ndarray], x: np.ndarray
) -> np.ndarray:
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attributes["accuracy_level"] = 0  # float32 activations: the exact product
    weights = [numpy_helper.from_array(init[name], name) for name in node.input[1:]]
    product = helper.make_node("MatMulNBits", ["x", *node.input[1:]], ["y"], domain="com.microsoft")
    product.attribute.extend(helper.make_attribute(k, v) for k, v in attributes.items())
    graph = helper.make_graph(
        [product],
        "one_product",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        weights,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("prefix", "bits"),
    [("model.layers.0.attn.qkv_proj.MatMul", 4), ("lm_head.MatMul", 8)],
)
def test_dequantized_weights_give_onnxruntimes_product(prefix: str, bits: int) -> None:
    init, nodes = _initializers()
    name = next(n for n in nodes if n.startswith(f"{prefix}.weight_Q"))
    node = nodes[name]
    assert {a.name: helper.get_attribute_value(a) for a in node.attribute}["bits"] == bits
    columns = {a.name: helper.get_attribute_value(a) for a in node.attribute}["K"]
    x = np.random.default_rng(0).standard_normal((3, columns)).astype(np.float32)
    weights = _matmul_weights(init, prefix, columns)
    np.testing.assert_allclose(x @ weights.T, _onnxruntime_product(node, init, x), atol=1e-4)
