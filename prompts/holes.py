"""Hole-filling prompts: the token ids that ask a model for one short piece of text.

Test generation asks for the expected value of a call or a whole assertion line; docstrings ask
for each parameter's description. Each hole is a text before it and a text after it. With a
fill-in-the-middle template (chosen from the tokenizer's special tokens) the model sees both
and writes the middle; without one the prompt ends at the hole and the model continues it.

Fitting the budget drops whole lines from the top of the text before the hole, an eighth at a
time: the comments and the example test file come first there, the stub being filled comes
last, so what goes is what matters least. Cutting by eighths instead of one line at a time
re-encodes a few times, not once per line.

The tokenizer is any object with the methods and fields used here (`HoleTokenizer`); this module
knows nothing of engines or of how the ids are sent.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prompts.calls import Call, calls_for
from prompts.candidates import assertion_stub, value_stub
from prompts.fim import FimTemplate, select_template
from prompts.structured import StructuredPrompt, TestSubject
from prompts.testfile import unique_name

FIM_OVERHEAD = 4  # the template's special tokens around a hole's texts, BOS included


class HoleTokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...  # no special tokens added or recognized

    def token_id(self, name: str) -> int | None: ...

    @property
    def special_tokens(self) -> Mapping[str, int]: ...  # text of each special token -> id

    @property
    def eos_token_ids(self) -> frozenset[int]: ...


def hole_template(special_tokens: Collection[str], override: str = "") -> FimTemplate | None:
    """The FIM template to fill holes with, or None for a plain completion model. A configured
    template the tokenizer cannot spell gives way to the one it names, as for inline completion
    (which tells the user)."""
    for choice in (override, "") if override else ("",):
        try:
            return select_template(special_tokens, choice or None)
        except ValueError:
            continue
    return None


def encode_with_specials(tokenizer: HoleTokenizer, text: str) -> list[int]:
    """Encode a rendered chat prompt, turning the special-token texts it contains into ids."""
    specials = sorted(tokenizer.special_tokens, key=len, reverse=True)
    if not specials:
        return list(tokenizer.encode(text))
    ids: list[int] = []
    pattern = "(" + "|".join(re.escape(s) for s in specials) + ")"
    for piece in re.split(pattern, text):
        if not piece:
            continue
        special = tokenizer.special_tokens.get(piece)
        ids.extend([special] if special is not None else tokenizer.encode(piece))
    return ids


@dataclass(frozen=True)
class HolePrompter:
    """Turns hole prompts into token ids within a budget, FIM when the template allows."""

    tokenizer: HoleTokenizer
    template: FimTemplate | None
    budget: int  # prompt tokens

    def ids(self, prefix: str, suffix: str) -> list[int]:
        tokenizer = self.tokenizer
        suffix_ids = tokenizer.encode(suffix) if self.template else []
        room = self.budget - len(suffix_ids) - FIM_OVERHEAD
        prefix_ids = tokenizer.encode(prefix)
        if len(prefix_ids) > room:
            lines = prefix.split("\n")
            while len(lines) > 1 and len(prefix_ids) > room:
                lines = lines[max(1, len(lines) // 8) :]
                prefix_ids = tokenizer.encode("\n".join(lines))
        if self.template is None:
            return list(prefix_ids)
        t = self.template
        bos = tokenizer.token_id(t.bos_token) if t.bos_token else None
        return [
            *([bos] if bos is not None else []),
            self._required_id(t.prefix_token),
            *prefix_ids,
            self._required_id(t.suffix_token),
            *suffix_ids,
            self._required_id(t.middle_token),
        ]

    def stop_ids(self) -> frozenset[int]:
        ids = set(self.tokenizer.eos_token_ids)
        for text in self.template.stop_tokens if self.template else ():
            token = self.tokenizer.token_id(text)
            if token is not None:
                ids.add(token)
        return frozenset(ids)

    def _required_id(self, name: str) -> int:
        token = self.tokenizer.token_id(name)
        if token is None:  # select_template checks the tokens, so only a mismatched tokenizer
            raise ValueError(f"the tokenizer has no {name} token for its FIM template")
        return token


def unittest_class_name(label: str) -> str:
    """`TestClampValue` for "clamp_value", `TestBoxOpen` for "Box.open"."""
    words = re.split(r"[._]", label)
    return "Test" + "".join(word[:1].upper() + word[1:] for word in words if word)


def hole_file_prefix(
    prompt: StructuredPrompt, test_file: str, subjects: Sequence[TestSubject]
) -> str:
    """The prompt, then a unittest module for the subjects whose docstring examples are already
    written as tests: the model continues it with one more test method."""
    names = sorted({s.import_name for s in subjects})
    lines = [
        prompt.as_code(),
        f"# {test_file}",
        "import unittest",
        f"from {subjects[0].module} import {', '.join(names)}",
        "",
        "",
        f"class {unittest_class_name(subjects[0].label)}(unittest.TestCase):",
    ]
    examples = [(s, c) for s in subjects for c in calls_for(s) if c.expected is not None]
    for number, (_, call) in enumerate(examples, 1):
        lines.append(f"    def test_example_{number}(self):")
        lines += [f"        {statement}" for statement in call.setup]
        lines += [f"        self.assertEqual({call.expression}, {call.expected})", ""]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Hole:
    """One thing the model is asked for in a test method being written."""

    subject: TestSubject
    prefix: str  # the test file up to the hole
    suffix: str  # what follows the hole on its line
    stub: str  # the statement being completed
    call: Call | None  # whose expected value fills the hole; None: a whole assertion line


def holes_for(
    prompt: StructuredPrompt, test_file: str, subjects: Sequence[TestSubject]
) -> list[Hole]:
    """The expected value of every call without one, then one assertion line per subject."""
    prefix = hole_file_prefix(prompt, test_file, subjects)
    holes: list[Hole] = []
    taken: set[str] = set()
    for subject in subjects:
        for call in calls_for(subject):
            if call.expected is not None:
                continue
            stub = value_stub(call, "assertEqual")
            name = unique_name(f"test_{subject.definition.name.lower()}_{call.case}", taken)
            method = prefix + f"    def {name}(self):\n" + _indented(stub, "        ")
            holes.append(Hole(subject, method, ")\n", stub, call))
    for subject in subjects:
        stub = assertion_stub(subject, "assertEqual")
        name = unique_name(f"test_{subject.definition.name.lower()}", taken)
        method = prefix + f"    def {name}(self):\n" + _indented(stub, "        ")
        holes.append(Hole(subject, method, "\n", stub, None))
    return holes


def _indented(stub: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in stub.split("\n"))
