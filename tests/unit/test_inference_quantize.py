"""`quantize`: MatMulNBits block 32, int4 and int8, the rest of the directory kept."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from inference.engine import Engine, EngineOptions
from inference.model import ModelError, load_model_info
from inference.quantize import QuantizeConfig, quantize
from inference.scheduler import GenerationRequest

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
GREEDY = json.loads((MODELS / "greedy.json").read_text())


def nbits_nodes(path: Path) -> list[dict[str, int]]:
    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        {a.name: a.i for a in node.attribute if a.name in ("bits", "block_size")}
        for node in graph.node
        if node.op_type == "MatMulNBits"
    ]


@pytest.mark.parametrize(("source", "bits"), [("qwen2-fp32", 8), ("qwen2-optimum", 4)])
async def test_quantized_copy_loads_and_generates(tmp_path: Path, source: str, bits: int) -> None:
    original = load_model_info(MODELS / source)
    target = quantize(MODELS / source, tmp_path / "q", bits)
    info = load_model_info(target)
    assert info.precision == f"int{bits}" and info.layout == original.layout
    assert info.size_bytes < original.size_bytes
    nodes = nbits_nodes(info.onnx_path)
    assert nodes and all(n == {"bits": bits, "block_size": 32} for n in nodes)
    kept = {p.name for p in (MODELS / source).iterdir()} - {"model.onnx", "model.onnx.data"}
    assert kept <= {p.name for p in target.iterdir()}
    recorded = GREEDY["qwen2"]
    with Engine.load(target, EngineOptions(device="cpu", threads=1)) as engine:
        results = [
            await engine.generate(GenerationRequest(tuple(p), max_new_tokens=4))
            for p in recorded["prompts"]
        ]
    assert all(len(r.token_ids) == 4 for r in results)
    if bits == 8:  # int8 stays close to fp32: the first greedy token matches transformers
        assert [r.token_ids[0] for r in results] == [t[0] for t in recorded["tokens"]]


def test_already_quantized_and_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="already quantized"):
        quantize(MODELS / "qwen2-int4", tmp_path / "q", 4)
    with pytest.raises(ValueError, match="bits must be one of 4, 8"):
        QuantizeConfig(bits=3)
    with pytest.raises(ModelError, match="not a model directory"):
        quantize(tmp_path, tmp_path / "q", 4)
