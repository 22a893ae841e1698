"""The pure parts of the real-size benchmarks: shapes, random weights, llama.cpp, memory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from benchmarks import engine as engine_bench
from benchmarks import llama_peer, shapes, step_cost
from benchmarks.engine_memory import kv_figures
from inference.engine import EngineOptions
from inference.model import load_model_info
from inference.router import default_model_dir

MODELS = Path(__file__).resolve().parent.parent / "fixtures" / "models"
QWEN_TOKENIZER = MODELS / "qwen2-int4"


def test_the_05b_shape_is_qwen25_coder_05b_with_its_parameter_count() -> None:
    shape = shapes.SHAPES["qwen2.5-coder-0.5b"]
    config = shapes.hf_config(shape, shapes.special_ids(QWEN_TOKENIZER))
    assert (config["hidden_size"], config["intermediate_size"]) == (896, 4864)
    assert (config["num_hidden_layers"], config["num_attention_heads"]) == (24, 14)
    assert (config["num_key_value_heads"], config["vocab_size"]) == (2, 151936)
    assert config["tie_word_embeddings"] is True and config["rope_theta"] == 1e6
    assert shape.head_dim == 64
    # Qwen2.5-0.5B's model card: 0.49B parameters
    assert round(shape.parameters / 1e6) == 494


def test_the_15b_shape_has_qwen25_coder_15b_parameter_count() -> None:
    shape = shapes.SHAPES["qwen2.5-coder-1.5b"]
    assert (shape.hidden_size, shape.intermediate_size, shape.num_hidden_layers) == (1536, 8960, 28)
    assert (shape.num_attention_heads, shape.num_key_value_heads) == (12, 2)
    assert round(shape.parameters / 1e9, 2) == 1.54


def test_tied_shapes_have_no_separate_lm_head() -> None:
    tied = shapes.SHAPES["qwen2.5-coder-0.5b"].tensor_shapes()
    assert "lm_head.weight" not in tied
    assert tied["model.layers.0.self_attn.k_proj.weight"] == (128, 896)


def test_an_unknown_shape_names_the_known_ones() -> None:
    with pytest.raises(shapes.ShapeError, match=r"qwen2\.5-coder-0\.5b"):
        shapes.shape_named("qwen2.5-coder-7b")


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header.pop("__metadata__")
    body = data[8 + size :]
    return {
        name: np.frombuffer(body[a:b], "<f4").reshape(spec["shape"])
        for name, spec in header.items()
        for a, b in [spec["data_offsets"]]
    }


def test_random_weights_zero_the_embedding_rows_the_tokenizer_cannot_decode(
    tmp_path: Path,
) -> None:
    tiny = shapes.ModelShape("tiny", 32, 64, 2, 4, 2, 1024, True, 1e6, 256)
    out = shapes.write_random_hf(tiny, tmp_path / "hf", QWEN_TOKENIZER)
    tensors = read_safetensors(out / "model.safetensors")
    assert {k: v.shape for k, v in tensors.items()} == tiny.tensor_shapes()
    embed = tensors["model.embed_tokens.weight"]
    known = shapes.special_ids(QWEN_TOKENIZER)["vocab"]
    assert known == 512
    assert not embed[known:].any()
    assert np.all(np.abs(embed[:known]).sum(axis=1) > 0)
    assert 0.015 < float(embed[:known].std()) < 0.025
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 1024
    assert (out / "tokenizer.json").is_file()


def test_the_recipe_changes_with_the_shape() -> None:
    small = shapes.ModelShape("tiny", 32, 64, 2, 4, 2, 1024, True, 1e6, 256)
    other = shapes.ModelShape("tiny", 32, 64, 3, 4, 2, 1024, True, 1e6, 256)
    assert shapes.recipe(small, QWEN_TOKENIZER) != shapes.recipe(other, QWEN_TOKENIZER)


def test_a_python_without_torch_is_refused_with_the_build_extra_named() -> None:
    with pytest.raises(shapes.ShapeError, match=r"flashcode\[build\]"):
        shapes.build_python("/nonexistent/python")


JOB = llama_peer.LlamaJob(Path("x.gguf"), 2, [1, 2], [[1, 2]], 4, 1, "a", [1])


def test_without_llama_cpp_python_every_llamacpp_key_is_null_with_a_reason() -> None:
    figures = llama_peer.figures_for(JOB, {"q4_0": Path("x.gguf")}, None)
    for key in ("decode_tps_b1", "prefill_ms_512", "throughput_tps_c8"):
        assert f"llamacpp_{key}" in figures and figures[f"llamacpp_{key}"] is None
    assert "FLASHCODE_LLAMA_PYTHON" in str(figures["llamacpp_reason"])


def test_without_a_gguf_the_reason_is_passed_through() -> None:
    figures = llama_peer.figures_for(JOB, "no GGUF of this model", "/usr/bin/python3")
    assert figures["llamacpp_decode_tps_b1"] is None
    assert figures["llamacpp_reason"] == "no GGUF of this model"


def test_a_llama_run_that_crashes_without_a_word_names_its_signal() -> None:
    assert llama_peer.exit_reason(-11, "") == "killed by SIGSEGV"
    assert llama_peer.exit_reason(-9, "  \n") == "killed by SIGKILL"
    assert llama_peer.exit_reason(1, "") == "exit status 1"
    assert llama_peer.exit_reason(1, "Traceback ... ValueError: bad gguf\n") == (
        "Traceback ... ValueError: bad gguf"
    )


def test_a_model_without_a_gguf_says_how_to_give_one() -> None:
    args = argparse.Namespace(no_llama=False, gguf=None, shape=None)
    assert "--gguf" in str(engine_bench.llama_ggufs(args))
    args.gguf = Path("/models/m-Q8_0.gguf")
    assert engine_bench.llama_ggufs(args) == {"q8_0": Path("/models/m-Q8_0.gguf")}


def test_the_shipped_model_computes_int4_matmuls_with_int8_activations() -> None:
    # accuracy level 4 is what makes an 8-row step cheap (bench steps: level 1 costs 2x at b8)
    assert step_cost.graph_accuracy_levels(load_model_info(default_model_dir())) == [4]


def test_a_variant_rewrites_every_matmulnbits_accuracy_level() -> None:
    model = onnx.load(str(MODELS / "qwen2-int4" / "model.onnx"))
    nodes = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert step_cost.with_accuracy_level(model, 1) == len(nodes) > 0
    levels = {a.i for n in nodes for a in n.attribute if a.name == "accuracy_level"}
    assert levels == {1}


def test_kv_budget_is_slots_times_slot_kv_plus_the_prefix_cache() -> None:
    info = load_model_info(MODELS / "qwen2-int4")
    figures = kv_figures(info, EngineOptions(max_batch=4, prefix_cache_mb=10))
    per_slot = (
        2 * info.num_layers * info.num_kv_heads * info.head_dim * 4
        * figures["kv_positions_per_slot"] / 2**20
    )  # fmt: skip
    assert figures["kv_mb_per_slot"] == round(per_slot, 1)
    assert figures["kv_budget_mb"] == round(4 * per_slot + 10, 1)
    by_positions = figures["kv_mb_per_slot_by_positions"]
    assert by_positions["2048"] == pytest.approx(2 * by_positions["1024"], abs=0.1)


def test_roofline_reads_steps_against_the_measured_peaks() -> None:
    info = load_model_info(MODELS / "qwen2-int4")
    steps = {"step_ms_b1_min": 1.0, "step_ms_b8_min": 2.0}
    line = step_cost.roofline(info, steps, {"fp32_matmul_gflops": 100.0, "copy_gb_per_s": 20.0})
    assert line["b8_step_ms_at_fp32_peak"] == pytest.approx(
        line["flops_per_b8_step_g"] / 100 * 1000, rel=0.05
    )
    assert line["measured_b8_ms"] == 2.0


def test_matmul_parameters_count_every_int4_weight_once() -> None:
    # the fixture: hidden 64, MLP 128, 2 layers, q 64 + k 32 + v 32, untied head over 512 ids
    per_layer = 64 * (64 + 32 + 32) + 64 * 64 + 3 * 64 * 128
    info = load_model_info(MODELS / "qwen2-int4")
    assert step_cost.matmul_parameters(info) == 2 * per_layer + 64 * 512
