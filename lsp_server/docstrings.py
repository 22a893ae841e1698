"""Insert docstring, without the protocol: the target, the style, the model's descriptions.

Offering the action must be cheap (it is asked for on every cursor move), so `target` is a
syntax-tree lookup only. Writing it (`plan`) learns the project's style from the document, the
other open Python documents and a bounded sample of the project's files, then asks the model
for one description per hole. The model may fail or still be loading: the docstring's structure
(every parameter, the return value, the raised exceptions) is worth inserting anyway, with
descriptions made from the names, so neither stops the insertion. The structure, the style
rules and the edit's offsets come from prompts.docstrings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lsp_server.backends.engine import GenerationEngine
from lsp_server.settings import Settings
from lsp_server.testgen.project import find_root
from lsp_server.testgen.sampling import (
    EnginePicker,
    Sampling,
    engine_for,
    hole_prompter,
    sample_holes,
)
from lsp_server.testgen.subjects import definition_near
from lsp_server.workspace.files import project_texts
from prompts.context import Document
from prompts.definitions import Definition
from prompts.docstrings import (
    Insertion,
    clean_description,
    description_holes,
    detect_style,
    docstring_insertion,
    render_docstring,
)
from prompts.languages import language_of
from prompts.parsing import parses

log = logging.getLogger(__name__)

TITLE = "Insert docstring"
DESCRIPTION_TOKENS = 24
DESCRIPTION_SAMPLING = Sampling(samples=1, deadline_s=20.0)
SYNTAX_ERROR_REASON = "the file has a syntax error; fix it first"  # a disabled action's reason
CHANGED = "The code changed since the action was offered; ask for it again."
MODEL_LOADING = (
    "The flashcode model is still loading: the docstring's descriptions are placeholders "
    "made from the names."
)


class Refusal(Exception):
    """The docstring cannot be written as asked; the message is shown as a warning."""


def target(document: Document, offset: int | None) -> Definition | None:
    """The Python function, method or class without a docstring at the cursor, if any."""
    if offset is None or language_of(document.language_id, document.path) != "python":
        return None
    definition = definition_near(document.text, offset)
    if definition is None or definition.docstring is not None:
        return None
    return definition


def workspace_style(text: str, path: str | None, other_texts: Iterable[str] = ()) -> str:
    """The docstring style the project writes: from this text, the other open Python
    documents' and a sample of the project's files."""
    texts = [text, *other_texts]
    if path:
        texts += list(project_texts(find_root(Path(path))))
    return detect_style(texts)


async def describe(
    engine: GenerationEngine, text: str, definition: Definition, style: str, fim_override: str = ""
) -> dict[str, str]:
    """Descriptions by DocField key, from the model; keys it answered badly are left out."""
    holes = description_holes(text, definition, style)
    prompter = hole_prompter(engine, DESCRIPTION_TOKENS, fim_override)
    answers = await asyncio.gather(
        *(
            sample_holes(
                engine, prompter, hole.prefix, hole.suffix, DESCRIPTION_TOKENS, DESCRIPTION_SAMPLING
            )
            for hole in holes
        )
    )
    result: dict[str, str] = {}
    for hole, texts in zip(holes, answers, strict=True):
        cleaned = clean_description(texts[0]) if texts else None
        if cleaned:
            result[hole.field.key] = cleaned
    return result


@dataclass(frozen=True)
class Plan:
    insertion: Insertion  # str offsets into the document's text
    style: str
    described: int  # descriptions the model wrote
    notice: str = ""  # something the user should know, shown as information


async def plan(
    document: Document | None,
    path: str | None,
    offset: int | None,
    offered_name: object,
    other_documents: Iterable[Document],
    engines: EnginePicker | None,
    settings: Settings,
) -> Plan:
    """The docstring for the action offered for `offered_name` at `offset` in `document` (at
    `path` on disk, None when it is not a file); raises Refusal when the document is gone, the
    code changed since the action was offered, or it no longer parses."""
    definition = target(document, offset) if document is not None else None
    if document is None or definition is None or definition.qualified_name != offered_name:
        raise Refusal(CHANGED)
    assert offset is not None, "a target was found, so the offset is inside the document"
    if not parses(document.text, "python"):
        raise Refusal(
            f"{Path(document.path).name} has a syntax error; fix it before inserting a docstring."
        )
    others = (d.text for d in other_documents if d.path.endswith(".py"))
    style = workspace_style(document.text, path, others)
    descriptions: Mapping[str, str] = {}
    notice = ""
    if engines is not None:
        engine = engine_for(engines, document.text, offset, settings.int8_complexity)
        try:
            descriptions = await describe(
                engine, document.text, definition, style, settings.fim_template
            )
        except Exception as exc:  # the structure is still worth inserting
            log.warning("docstring descriptions failed: %s", exc)
    else:
        notice = MODEL_LOADING
    docstring = render_docstring(definition, style, descriptions)
    log.info(
        "docstring for %s: style %s, %d descriptions from the model",
        definition.qualified_name,
        style,
        len(descriptions),
    )
    insertion = docstring_insertion(document.text, definition, docstring)
    return Plan(insertion, style, len(descriptions), notice)
