"""Reproducible pipeline that trains and exports the embedded default model, flashcode-tiny.

Needs the optional `[build]` extra (torch, transformers, onnxruntime-genai). Nothing here is
imported by the server at run time.
"""
