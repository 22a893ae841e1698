"""Prompt construction and post-processing: pure text and token logic.

No ONNX, no LSP, no file system: everything here takes text (and a tokenizer object with
`encode` / `decode` / `token_id`) and returns text or token ids, so that unit tests reach it all.
"""
