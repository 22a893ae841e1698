"""flashcode's model runtime: load an ONNX decoder, batch requests, reuse prompt prefixes.

Knows nothing of LSP or editors. Entry points: `Engine.load(model_dir)` and
`load_model_info(model_dir)`.
"""

from inference.engine import Engine, EngineOptions, GenerationRequest, GenerationResult
from inference.model import ModelError, ModelInfo, load_model_info
from inference.tokenizer import Tokenizer

__all__ = [
    "Engine",
    "EngineOptions",
    "GenerationRequest",
    "GenerationResult",
    "ModelError",
    "ModelInfo",
    "Tokenizer",
    "load_model_info",
]
