"""Hole-filling prompts (prompts.holes): the token ids asking for one short piece of text, within
the budget, FIM when the tokenizer allows."""

from __future__ import annotations

from dataclasses import dataclass, field

from prompts import holes, structured
from prompts.definitions import definition_at
from prompts.fim import QWEN

SPECIALS = {"<|endoftext|>": 0, "<|fim_prefix|>": 1, "<|fim_middle|>": 2, "<|fim_suffix|>": 3}


@dataclass
class CharTokenizer:
    """One token per character; special-token text in a document stays text."""

    special_tokens: dict[str, int] = field(default_factory=lambda: dict(SPECIALS))
    eos_token_ids: frozenset[int] = frozenset({0})

    def encode(self, text: str) -> list[int]:
        return [ord(c) + 100 for c in text]

    def token_id(self, name: str) -> int | None:
        return self.special_tokens.get(name)


def test_fim_prompt_has_the_text_around_the_hole_and_ends_at_the_middle() -> None:
    prompter = holes.HolePrompter(CharTokenizer(), QWEN, budget=100)
    ids = prompter.ids("ab", "c")
    assert ids == [1, ord("a") + 100, ord("b") + 100, 3, ord("c") + 100, 2]
    assert prompter.stop_ids() >= {0}


def test_a_long_prefix_loses_whole_lines_from_the_top_to_fit() -> None:
    prefix = "".join(f"# comment {n}\n" for n in range(50)) + "    self.assertEqual(f(1), "
    prompter = holes.HolePrompter(CharTokenizer(), QWEN, budget=120)
    ids = prompter.ids(prefix, ")\n")
    assert len(ids) <= 120
    kept = "".join(chr(i - 100) for i in ids[1 : ids.index(3)])
    assert kept.endswith("self.assertEqual(f(1), ") and kept.startswith("# comment")
    assert prefix.endswith(kept)


def test_without_a_template_the_prompt_ends_at_the_hole() -> None:
    tokenizer = CharTokenizer(special_tokens={})
    assert holes.hole_template(tokenizer.special_tokens) is None
    # A configured template the tokenizer cannot spell gives way to the one it names.
    assert holes.hole_template(SPECIALS, "starcoder") == QWEN
    assert holes.HolePrompter(tokenizer, None, 100).ids("ab", "c") == [197, 198]


def test_special_token_text_in_a_chat_prompt_becomes_its_id() -> None:
    tokenizer = CharTokenizer(special_tokens={"<|im_start|>": 4, "<|im_end|>": 5})
    ids = holes.encode_with_specials(tokenizer, "<|im_start|>hi<|im_end|>")
    assert ids == [4, ord("h") + 100, ord("i") + 100, 5]


def test_each_hole_continues_a_unittest_module_of_the_subject() -> None:
    text = "def double(x: int) -> int:\n    return 2 * x\n"
    definition = definition_at(text, 5, "python")
    assert definition is not None
    subject = structured.TestSubject(definition, "calc")
    prompt = structured.StructuredPrompt("Write tests", ("use unittest",), "calc.py", text)
    found = holes.holes_for(prompt, "tests/test_calc.py", [subject])
    values = [h for h in found if h.call is not None]
    assertions = [h for h in found if h.call is None]
    assert values and len(assertions) == 1
    for hole in found:
        assert "# tests/test_calc.py\nimport unittest\nfrom calc import double\n" in hole.prefix
        assert "class TestDouble(unittest.TestCase):" in hole.prefix
        assert hole.prefix.endswith("        " + hole.stub)
    names = [h.prefix.rsplit("def ", 1)[1].split("(")[0] for h in found]
    assert len(names) == len(set(names)), "every test method has a name of its own"
    assert holes.unittest_class_name("Box.open_all") == "TestBoxOpenAll"
