"""Prompt construction and post-processing: pure text and token logic.

No ONNX, no LSP, no file system: everything here takes text (and a tokenizer object with
`encode` / `decode` / `token_id`) and returns text or token ids, so that unit tests reach it all.
"""

from prompts.budget import CompletionPrompt, TokenizerLike, build_completion_prompt
from prompts.context import Document
from prompts.fim import FimTemplate, select_template
from prompts.languages import language_of
from prompts.multiline import wants_multiline
from prompts.parsing import parses
from prompts.postprocess import PostprocessContext, postprocess
from prompts.scope import ScopeInfo, scope_at

__all__ = [
    "CompletionPrompt",
    "Document",
    "FimTemplate",
    "PostprocessContext",
    "ScopeInfo",
    "TokenizerLike",
    "build_completion_prompt",
    "language_of",
    "parses",
    "postprocess",
    "scope_at",
    "select_template",
    "wants_multiline",
]
