"""A long prefix starts at an aligned line, so that typing keeps the prompt's start (and the KV
the prefix cache or a warm prefill holds for it) for many keystrokes."""

from __future__ import annotations

import inspect
import json.decoder

from inference.router import default_model_dir
from inference.tokenizer import Tokenizer
from lsp_server.completion.routing import fim_template
from prompts.budget import PREFIX_ALIGN_LINES, build_completion_prompt
from prompts.context import Document

CODE = inspect.getsource(json.decoder)


def test_typing_three_lines_moves_the_start_of_a_long_prefix_at_most_once() -> None:
    tokenizer = Tokenizer.from_model_dir(default_model_dir())
    template, _ = fim_template(tokenizer.special_tokens, "")
    lines = CODE.split("\n")
    start = sum(len(line) + 1 for line in lines[:200])
    typed = "\n".join(lines[200:203]) + "\n"
    base = CODE[:start] + CODE[start + len(typed) :]
    starts = []
    for count in range(len(typed) + 1):
        text = base[:start] + typed[:count] + base[start:]
        document = Document(uri="file:///d.py", path="/d.py", language_id="python", text=text)
        prompt = build_completion_prompt(document, start + count, [], tokenizer, template, 959)
        cut = text[: start + count].rfind(prompt.prefix)
        first_line = text.count("\n", 0, cut)
        assert first_line % PREFIX_ALIGN_LINES == 0, "a trimmed long prefix starts aligned"
        starts.append(first_line)
    assert len(typed) > 100 and starts[0] > 0, "the prefix is trimmed"
    assert len(set(starts)) <= 2, "the start moved at most once in three lines of typing"
