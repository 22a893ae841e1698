"""What the cursor points at, and what gets tests for it.

The definition under the cursor counts from anywhere on its `def` or `class` line, since that is
where a user puts the cursor to ask. A function or a method is tested alone (a method with its
class, whose constructor the tests call); a class means each of its public methods. Also used
by docstrings, which ask the same first question.
"""

from __future__ import annotations

import re

from prompts.definitions import Definition, definition_at
from prompts.structured import TestSubject
from prompts.text import line_bounds


def definition_near(text: str, offset: int) -> Definition | None:
    """The definition at the cursor; anywhere on a `def` or `class` line counts as on it."""
    start, end = line_bounds(text, offset)
    header = re.match(r"[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w)", text[start:end])
    if header is not None:
        offset = start + header.start(1)
    return definition_at(text, offset, "python")


def _class_of(text: str, method: Definition) -> Definition | None:
    class_name = method.qualified_name.rsplit(".", 1)[0]
    starts = [
        m.start()
        for m in re.finditer(rf"^[ \t]*class[ \t]+{re.escape(class_name)}\b", text, re.M)
        if m.start() < method.start_offset
    ]
    if not starts:
        return None
    offset = starts[-1] + text[starts[-1] :].index("class") + len("class ")
    owner = definition_at(text, offset, "python")
    return owner if owner is not None and owner.kind == "class" else None


def subjects_at(text: str, definition: Definition, module: str) -> list[TestSubject]:
    """The function, the method, or each public method of the class: what gets tests."""
    if definition.kind == "function":
        return [TestSubject(definition, module)]
    if definition.kind == "method":
        return [TestSubject(definition, module, _class_of(text, definition))]
    subjects = []
    body = text[definition.body_start_offset : definition.body_end_offset]
    for name in definition.methods:
        if name.startswith("_"):
            continue
        match = re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}\b", body, re.M)
        if match is None:
            continue
        offset = definition.body_start_offset + match.end() - len(name)
        method = definition_at(text, offset, "python")
        if method is not None and method.name == name:
            subjects.append(TestSubject(method, module, definition))
    return subjects
