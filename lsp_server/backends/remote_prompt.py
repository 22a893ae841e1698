"""From a generation request's token ids to the body of an OpenAI-compatible `/completions` call.

The completion pipeline, test generation and docstrings build token ids for any engine; the
remote backend turns them back into text here, with the special tokens spelled out:

- `fim: "suffix"`: the text before the suffix token is `prompt`, the text between the suffix and
  middle tokens is `suffix`, and the server applies its own model's FIM template (Ollama,
  llama-cpp-python). A leading BOS is left to the server, which adds its own.
- `fim: "raw"`: the whole templated text is `prompt`; the server reads the special tokens in it
  as tokens (vLLM, llama.cpp's llama-server and TGI do), so it needs no `suffix` support, which
  those three refuse.
A prompt without FIM tokens (nothing after the cursor, a chat prompt) is `prompt` either way.

Stop strings: OpenAI's API takes at most four, so the first four go to the server, to save it
work, and all of them are applied here to the streamed text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inference.scheduler import GenerationRequest
from inference.tokenizer import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX
from lsp_server.backends.engine import EngineTokenizer
from prompts.fim import CODEGEMMA, CODELLAMA, DEEPSEEK, QWEN, STARCODER, FimTemplate

SERVER_STOPS = 4
BOS_TOKENS = frozenset({"<s>", "<bos>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>"})
# Model-name fragments and the FIM family they mean, first match wins (CodeGemma before Gemma,
# and before Qwen, whose token names it shares).
_FAMILY_NAMES: tuple[tuple[str, FimTemplate], ...] = (
    ("deepseek", DEEPSEEK),
    ("codegemma", CODEGEMMA),
    ("starcoder", STARCODER),
    ("codellama", CODELLAMA),
    ("code-llama", CODELLAMA),
    ("qwen", QWEN),
)


def template_for_model(name: str) -> FimTemplate | None:
    """The FIM template a served model's name implies ("Qwen/Qwen2.5-Coder-1.5B": Qwen's)."""
    lowered = name.lower()
    return next((t for fragment, t in _FAMILY_NAMES if fragment in lowered), None)


def spelled(ids: Sequence[int], tokenizer: EngineTokenizer) -> list[tuple[bool, str]]:
    """The ids as (is_special, text) runs: ordinary runs decoded, special tokens by name."""
    names = {token_id: text for text, token_id in tokenizer.special_tokens.items()}
    runs: list[tuple[bool, str]] = []
    ordinary: list[int] = []
    for token_id in ids:
        name = names.get(token_id)
        if name is None:
            ordinary.append(token_id)
            continue
        if ordinary:
            runs.append((False, tokenizer.decode(ordinary)))
            ordinary = []
        runs.append((True, name))
    if ordinary:
        runs.append((False, tokenizer.decode(ordinary)))
    return runs


def _index(runs: list[tuple[bool, str]], names: Sequence[str]) -> int | None:
    return next((i for i, (special, text) in enumerate(runs) if special and text in names), None)


def prompt_and_suffix(
    ids: Sequence[int], tokenizer: EngineTokenizer, fim: str
) -> tuple[str, str | None]:
    """The `prompt` and `suffix` (None: none sent) for a request's ids (module docstring)."""
    runs = spelled(ids, tokenizer)
    if runs and runs[0][0] and runs[0][1] in BOS_TOKENS:
        runs = runs[1:]
    if fim == "suffix":
        pre, suf, mid = (_index(runs, names) for names in (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE))
        if pre is not None and suf is not None and mid is not None and pre < suf < mid:
            prompt = "".join(text for _, text in runs[:pre] + runs[pre + 1 : suf])
            return prompt, "".join(text for _, text in runs[suf + 1 : mid])
    return "".join(text for _, text in runs), None


def gbnf_literal(text: str) -> str:
    """`text` as the inside of a GBNF string literal: quotes, backslashes, control and
    non-ASCII characters escaped as code points."""
    escaped = []
    for char in text:
        point = ord(char)
        if char in '"\\' or point < 0x20 or point >= 0x7F:
            kind, width = ("x", 2) if point < 0x100 else ("u", 4) if point < 0x10000 else ("U", 8)
            escaped.append(f"\\{kind}{point:0{width}X}")
        else:
            escaped.append(char)
    return "".join(escaped)


def forced_start_grammar(text: str) -> str:
    """A GBNF grammar of every answer that starts with `text`."""
    return f'root ::= "{gbnf_literal(text)}" [^\\x00]*'


def completion_body(
    request: GenerationRequest,
    tokenizer: EngineTokenizer,
    fim: str,
    model: str,
    max_length: int,
    grammar: bool = False,
) -> dict[str, Any]:
    """The JSON body of a streamed `/completions` request; the answer is held to what
    `max_length` leaves after the prompt, as the local engine holds it to its slot."""
    prompt, suffix = prompt_and_suffix(request.prompt_ids, tokenizer, fim)
    # Token healing's forced text: held as the answer's start by a grammar, or else back at the
    # prompt's end; either way the answer is reported with it in front (remote.py).
    held = grammar and bool(request.forced_prefix)
    body: dict[str, Any] = {
        "prompt": prompt if held else prompt + request.forced_prefix,
        "max_tokens": max(1, min(request.max_new_tokens, max_length - len(request.prompt_ids))),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": True,
    }
    if model:
        body["model"] = model
    if suffix is not None:
        body["suffix"] = suffix
    if request.stop_strings:
        body["stop"] = list(request.stop_strings[:SERVER_STOPS])
    if request.seed is not None:
        body["seed"] = request.seed
    if held:
        body["grammar"] = forced_start_grammar(request.forced_prefix)
    return body


def stop_texts(request: GenerationRequest, tokenizer: EngineTokenizer) -> tuple[str, ...]:
    """Every text that ends the answer: the stop strings, and the stop tokens' names for a
    server that writes special tokens out as text."""
    names = {token_id: text for text, token_id in tokenizer.special_tokens.items()}
    tokens = sorted({names[t] for t in request.stop_token_ids if t in names})
    return (*request.stop_strings, *tokens)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop string in it, and whether one was found."""
    found = [i for i in (text.find(stop) for stop in stops if stop) if i != -1]
    return (text[: min(found)], True) if found else (text, False)
