"""Model directories: both layouts, names and shapes read from the graph, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from inference.model import ModelError, load_model_info

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


@pytest.mark.parametrize(
    ("name", "layout", "family", "precision", "shared"),
    [
        ("qwen2-fp32", "genai", "qwen2", "fp32", True),
        ("qwen2-int4", "genai", "qwen2", "int4", True),
        ("llama-fp32", "genai", "llama", "fp32", True),
        ("llama-int4", "genai", "llama", "int4", True),
        ("qwen2-optimum", "optimum", "qwen2", "fp32", False),
    ],
)
def test_fixture_models_are_described_from_their_graph(
    name: str, layout: str, family: str, precision: str, shared: bool
) -> None:
    info = load_model_info(MODELS / name)
    assert (info.layout, info.family, info.precision) == (layout, family, precision)
    assert info.shared_kv_buffer is shared
    assert info.num_layers == 2 and info.num_kv_heads == 2 and info.head_dim == 16
    assert info.num_heads == 4 and info.vocab_size == 512 and info.context_length == 256
    assert info.past_names == (
        ("past_key_values.0.key", "past_key_values.0.value"),
        ("past_key_values.1.key", "past_key_values.1.value"),
    )
    assert info.present_names[1] == ("present.1.key", "present.1.value")
    assert info.has_position_ids is (layout == "optimum")
    assert {"input_ids", "attention_mask"} <= set(info.input_names)
    assert "logits" in info.output_names
    data = info.onnx_path.with_name("model.onnx.data")
    expected_size = info.onnx_path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    assert info.size_bytes == expected_size
    described = json.loads(json.dumps(info.describe()))
    assert described["layout"] == layout and described["fingerprint"] == info.fingerprint


def test_fingerprint_is_stable_and_tells_models_apart(tmp_path: Path) -> None:
    first = load_model_info(MODELS / "qwen2-int4").fingerprint
    assert first == load_model_info(MODELS / "qwen2-int4").fingerprint
    assert first != load_model_info(MODELS / "qwen2-fp32").fingerprint
    copy = shutil.copytree(MODELS / "qwen2-int4", tmp_path / "copy")
    data = copy / "model.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 1  # one weight bit
    data.write_bytes(bytes(raw))
    assert load_model_info(copy).fingerprint != first


def test_optimum_merged_decoder_file_name_is_found(tmp_path: Path) -> None:
    directory = shutil.copytree(MODELS / "qwen2-optimum", tmp_path / "merged")
    (directory / "model.onnx").rename(directory / "decoder_model_merged.onnx")
    info = load_model_info(directory)
    assert info.layout == "optimum" and info.onnx_path.name == "decoder_model_merged.onnx"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model_info(tmp_path / "nope")


def test_empty_directory_names_both_layouts(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"genai_config\.json.*config\.json \+ model\.onnx"):
        load_model_info(tmp_path)


def test_config_without_decoder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=r"no ONNX decoder.*decoder_model_merged\.onnx"):
        load_model_info(tmp_path)


def test_missing_tokenizer(tmp_path: Path) -> None:
    directory = shutil.copytree(MODELS / "qwen2-int4", tmp_path / "m")
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"no tokenizer\.json"):
        load_model_info(directory)


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    directory = shutil.copytree(MODELS / "qwen2-int4", tmp_path / "m")
    (directory / "model.onnx.data").unlink()
    with pytest.raises(ModelError, match=r"missing weight file\(s\): model\.onnx\.data"):
        load_model_info(directory)


def test_genai_config_naming_absent_decoder(tmp_path: Path) -> None:
    directory = shutil.copytree(MODELS / "qwen2-int4", tmp_path / "m")
    config = json.loads((directory / "genai_config.json").read_text())
    config["model"]["decoder"]["filename"] = "decoder.onnx"
    (directory / "genai_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match=r"decoder 'decoder\.onnx', not found"):
        load_model_info(directory)


def test_graph_without_kv_cache_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)],
        "no_cache",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s"])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    shutil.copy2(MODELS / "qwen2-fp32" / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(ModelError, match=r"no inputs named past_key_values\.N\.key/value"):
        load_model_info(tmp_path)


def test_unreadable_graph(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.onnx").write_bytes(b"not a protobuf at all")
    shutil.copy2(MODELS / "qwen2-fp32" / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_model_info(tmp_path)
