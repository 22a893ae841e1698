"""flashcode's model runtime: load an ONNX decoder, batch requests, reuse prompt prefixes.

Knows nothing of LSP or editors. Entry points: `inference.engine.Engine.load(model_dir)` and
`inference.model.load_model_info(model_dir)`. Nothing is re-exported here: importers name the
module that answers their question.
"""
