"""fp32/fp16 ONNX decoder -> int4/int8 weight-only (MatMulNBits), for `flashcode model quantize`."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx

from inference.model import ModelError, load_model_info

log = logging.getLogger("flashcode.inference")

ALLOWED_BITS = (4, 8)


@dataclass(frozen=True)
class QuantizeConfig:
    bits: int = 4
    block_size: int = 32  # weights per scale along the input dimension
    # accuracy level 4 quantizes activations to int8 inside MatMulNBits: the fast CPU path
    accuracy_level: int = 4
    symmetric: bool = True

    def __post_init__(self) -> None:
        if self.bits not in ALLOWED_BITS:
            raise ValueError(
                f"bits must be one of {', '.join(map(str, ALLOWED_BITS))}, got {self.bits}"
            )
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two >= 16, got {self.block_size}")


def quantize(src_dir: Path, dst_dir: Path, bits: int, block_size: int = 32) -> Path:
    """Write a weight-only quantized copy of the model in `src_dir` to `dst_dir`; returns `dst_dir`.

    MatMul weights become MatMulNBits (`bits`, `block_size`); the KV-cache interface, the other
    files of the directory (tokenizer, configs) and the layout stay as they were.
    """
    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except (
        ImportError
    ) as error:  # the quantizer imports onnx-ir, which onnxruntime does not require
        raise ModelError(
            f"quantizing needs {error.name or 'onnx-ir'}: pip install onnx-ir"
        ) from error

    config = QuantizeConfig(bits=bits, block_size=block_size)
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    info = load_model_info(src_dir)
    if info.precision not in ("fp32", "fp16"):
        raise ModelError(f"{src_dir} is already quantized ({info.precision}); start from fp32/fp16")
    if dst_dir.resolve() == src_dir.resolve():
        raise ModelError("the destination must differ from the source directory")
    dst_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(info.onnx_path))  # weights included
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=config.bits,
        block_size=config.block_size,
        is_symmetric=config.symmetric,
        accuracy_level=config.accuracy_level,
    )
    # it logs every node at INFO: keep that out of the CLI's output
    quantizer_log = logging.getLogger(MatMulNBitsQuantizer.__module__)
    level = quantizer_log.level
    quantizer_log.setLevel(max(level, logging.WARNING))
    try:
        quantizer.process()
    finally:
        quantizer_log.setLevel(level)
    target = dst_dir / info.onnx_path.name
    data_name = f"{info.onnx_path.name}.data"
    for stale in (target, dst_dir / data_name):
        stale.unlink(missing_ok=True)
    onnx.save_model(
        quantizer.model.model,
        str(target),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_name,
        size_threshold=1024,
    )
    weight_files = {info.onnx_path.name, data_name} | {
        f.name for f in src_dir.iterdir() if f.suffix in (".onnx", ".data", ".onnx_data")
    }
    for item in src_dir.iterdir():
        if item.is_file() and item.name not in weight_files:
            shutil.copy2(item, dst_dir / item.name)
    result = load_model_info(dst_dir)
    log.info(
        "quantized %s (%s, %d bytes) -> %s (%s, %d bytes)",
        src_dir, info.precision, info.size_bytes, dst_dir, result.precision, result.size_bytes,
    )  # fmt: skip
    return dst_dir
