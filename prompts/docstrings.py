"""Docstrings for "Insert docstring": the workspace's style, a skeleton from the syntax tree.

The structure never comes from the model: every parameter (with its annotation and default),
the return value and each exception raised in the body are read from
`prompts.definitions.Definition`. The model only writes the one-line descriptions, each asked for
as a fill-in-the-middle hole in the file with the skeleton already in place (`description_holes`);
a description that does not read like prose is replaced by one made from the name
(`fallback_description`).

Styles: Google ("Args:"), NumPy ("Parameters" underlined with dashes) and reST (":param x:").
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prompts.definitions import Definition
from prompts.text import line_bounds

STYLES = ("google", "numpy", "rest")
DEFAULT_STYLE = "google"

_STYLE_MARKERS: dict[str, re.Pattern[str]] = {
    "google": re.compile(
        r"^[ \t]*(?:Args|Arguments|Returns|Raises|Yields|Attributes):[ \t]*\n[ \t]+\S", re.M
    ),
    "numpy": re.compile(
        r"^[ \t]*(?:Parameters|Returns|Raises|Yields|Attributes|Examples)[ \t]*\n"
        r"[ \t]*-{3,}[ \t]*$",
        re.M,
    ),
    "rest": re.compile(r"^[ \t]*:(?:param|type|returns?|rtype|raises?)\b[^:\n]*:", re.M),
}

# Return annotations that mean "nothing comes back".
_NO_RETURN = frozenset({"None", "NoReturn", "Never", "typing.NoReturn", "typing.Never"})
_HOLE = "\x00"  # stands for the description being asked for while rendering a prompt


def detect_style(texts: Iterable[str]) -> str:
    """The docstring style most used in `texts` (source files); Google when none is found.

    Each file votes once, for the style of most of its section headers and fields, so that one
    long file does not outvote the rest of the project. Ties go to Google, then NumPy.
    """
    votes = dict.fromkeys(STYLES, 0)
    for text in texts:
        counts = {style: len(pattern.findall(text)) for style, pattern in _STYLE_MARKERS.items()}
        best = max(STYLES, key=lambda style: (counts[style], -STYLES.index(style)))
        if counts[best]:
            votes[best] += 1
    best = max(STYLES, key=lambda style: (votes[style], -STYLES.index(style)))
    return best if votes[best] else DEFAULT_STYLE


@dataclass(frozen=True)
class DocField:
    """One line of a docstring the model describes."""

    key: str  # "summary", "param:<name>", "returns", "yields", "raises:<name>"
    name: str  # the parameter or exception name ("*args" for var-positional), "" otherwise
    annotation: str | None = None
    default: str | None = None


def _returned(definition: Definition) -> tuple[bool, bool]:
    """(returns a value, is a generator), from the body, looking past nested functions."""
    try:
        tree = ast.parse(textwrap.dedent(definition.indent + definition.text))
    except SyntaxError:
        body = definition.text
        return bool(re.search(r"^\s*return\s+\S", body, re.M)), bool(
            re.search(r"^\s*(?:\w+\s*=\s*)?yield\b", body, re.M)
        )
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return False, False
    returns = generator = False
    stack: list[ast.AST] = list(functions[0].body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, ast.Return) and node.value is not None:
            is_none = isinstance(node.value, ast.Constant) and node.value.value is None
            returns = returns or not is_none
        elif isinstance(node, ast.Yield | ast.YieldFrom):
            generator = True
        stack.extend(ast.iter_child_nodes(node))
    return returns, generator


def doc_fields(definition: Definition) -> tuple[DocField, ...]:
    """What the docstring of `definition` must describe, in docstring order."""
    fields = [DocField("summary", "")]
    for parameter in definition.parameters:
        if parameter.kind == "self":
            continue
        prefix = {"var_positional": "*", "var_keyword": "**"}.get(parameter.kind, "")
        fields.append(
            DocField(
                f"param:{parameter.name}",
                prefix + parameter.name,
                parameter.annotation,
                parameter.default,
            )
        )
    if definition.kind != "class" and definition.name != "__init__":
        annotation = definition.return_annotation
        returns, generator = _returned(definition)
        if annotation in _NO_RETURN:
            pass
        elif generator:
            fields.append(DocField("yields", "", annotation))
        elif annotation is not None or returns:
            fields.append(DocField("returns", "", annotation))
    for exception in definition.raises:
        fields.append(DocField(f"raises:{exception}", exception))
    return tuple(fields)


def _words(name: str) -> str:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.strip("_*"))
    return re.sub(r"[_\s]+", " ", spaced).strip().lower()


def fallback_description(field: DocField, definition: Definition) -> str:
    """A plain description made from names, for when the model wrote nothing usable."""
    if field.key == "summary":
        words = _words(definition.name) or definition.kind
        return words[0].upper() + words[1:] + "."
    if field.key.startswith("param:"):
        return f"The {_words(field.name) or field.name}."
    if field.key == "returns":
        return f"The result of {definition.name}."
    if field.key == "yields":
        return f"The values {definition.name} produces."
    return f"When {definition.name} cannot proceed."


_CODE_LIKE = re.compile(r'"""|\'\'\'|\bdef |\breturn\b|\bimport\b|[{}\[\]=;]|^\W|\(\s*\)|>>>')


def clean_description(raw: str) -> str | None:
    """The first line of a model's description, tidied; None when it does not read as prose."""
    line = raw.strip().split("\n", 1)[0].strip()
    line = re.sub(r"^[-*:]\s*", "", line).strip().strip("\"'`").strip()
    if not line or _CODE_LIKE.search(line) or not line.isprintable() or "\\" in line:
        return None
    if "\ufffd" in line:
        return None
    prose = sum(c.isalnum() or c in " ,.'()-" for c in line)
    if prose < 0.85 * len(line):
        return None
    words = re.findall(r"[A-Za-z]{2,}", line)
    if len(words) < 2 or not any(len(word) >= 3 for word in words):
        return None
    if len(line) > 100:
        line = line[:100].rsplit(" ", 1)[0]
    line = line.rstrip(" ,;:-")
    if not line.endswith((".", "!", "?")):
        line += "."
    return line[0].upper() + line[1:]


def _type_text(field: DocField) -> str:
    return (field.annotation or "") + (", optional" if field.default is not None else "")


def _with_default(description: str, field: DocField) -> str:
    if field.default is None or description == _HOLE:
        return description
    return f"{description} Defaults to {field.default}."


def _google(fields: Iterable[DocField], text_of: Mapping[str, str]) -> list[str]:
    sections: dict[str, list[str]] = {}
    for field in fields:
        description = text_of[field.key]
        if field.key.startswith("param:"):
            kind = f" ({_type_text(field)})" if field.annotation else ""
            if not field.annotation and field.default is not None:
                kind = " (optional)"
            line = f"    {field.name}{kind}: {_with_default(description, field)}"
            sections.setdefault("Args:", []).append(line)
        elif field.key in ("returns", "yields"):
            prefix = f"{field.annotation}: " if field.annotation else ""
            sections.setdefault(field.key.title() + ":", []).append(f"    {prefix}{description}")
        elif field.key.startswith("raises:"):
            sections.setdefault("Raises:", []).append(f"    {field.name}: {description}")
    lines: list[str] = []
    for header, body in sections.items():
        lines += ["", header, *body]
    return lines


def _numpy(fields: Iterable[DocField], text_of: Mapping[str, str]) -> list[str]:
    sections: dict[str, list[str]] = {}
    for field in fields:
        description = text_of[field.key]
        if field.key.startswith("param:"):
            kind = _type_text(field).lstrip(", ")
            head = f"{field.name} : {kind}" if kind else field.name
            sections.setdefault("Parameters", []).extend(
                [head, f"    {_with_default(description, field)}"]
            )
        elif field.key in ("returns", "yields"):
            sections.setdefault(field.key.title(), []).extend(
                [field.annotation or "object", f"    {description}"]
            )
        elif field.key.startswith("raises:"):
            sections.setdefault("Raises", []).extend([field.name, f"    {description}"])
    lines: list[str] = []
    for header, body in sections.items():
        lines += ["", header, "-" * len(header), *body]
    return lines


def _rest(fields: Iterable[DocField], text_of: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for field in fields:
        description = text_of[field.key]
        if field.key.startswith("param:"):
            lines.append(f":param {field.name}: {_with_default(description, field)}")
            if field.annotation:
                lines.append(f":type {field.name}: {_type_text(field)}")
        elif field.key in ("returns", "yields"):
            lines.append(f":{field.key}: {description}")
            if field.annotation:
                lines.append(
                    f":{'rtype' if field.key == 'returns' else 'ytype'}: {field.annotation}"
                )
        elif field.key.startswith("raises:"):
            lines.append(f":raises {field.name}: {description}")
    return ["", *lines] if lines else []


_RENDERERS = {"google": _google, "numpy": _numpy, "rest": _rest}


def render_docstring(
    definition: Definition,
    style: str,
    descriptions: Mapping[str, str] | None = None,
) -> str:
    """The docstring as it goes into the file: indented lines, quotes included, ending in \\n.

    `descriptions` maps DocField keys to text; missing keys take `fallback_description`.
    """
    if style not in _RENDERERS:
        raise ValueError(f"unknown docstring style {style!r}; allowed: {', '.join(STYLES)}")
    fields = doc_fields(definition)
    given = descriptions or {}
    text_of = {f.key: given.get(f.key) or fallback_description(f, definition) for f in fields}
    body = _RENDERERS[style](fields[1:], text_of)
    indent = definition.body_indent
    lines = [f'{indent}"""{text_of["summary"]}']
    lines += [f"{indent}{line}" if line else "" for line in body]
    if body:
        lines.append(f'{indent}"""')
    else:
        lines[0] += '"""'
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Insertion:
    """Replace text[start:end] with `text` (start == end: a pure insertion)."""

    start: int
    end: int
    text: str


def docstring_insertion(text: str, definition: Definition, docstring: str) -> Insertion:
    """Where `docstring` (from render_docstring) goes: the line after the definition's header.

    Only a body written on the header line (`def f(): return 1`) moves: it goes to its own
    line below the docstring. Nothing else in the file changes.
    """
    header_end = definition.header_end_offset
    _, line_end = line_bounds(text, header_end)
    rest = text[header_end:line_end]
    if rest.strip() and not rest.strip().startswith("#"):
        statement = header_end + len(rest) - len(rest.lstrip())
        return Insertion(header_end, statement, "\n" + docstring + definition.body_indent)
    if line_end == len(text):
        return Insertion(line_end, line_end, "\n" + docstring.rstrip("\n"))
    return Insertion(line_end + 1, line_end + 1, docstring)


@dataclass(frozen=True)
class Hole:
    """A description to ask the model for: the file up to it, and the file after it."""

    field: DocField
    prefix: str
    suffix: str


def description_holes(text: str, definition: Definition, style: str) -> list[Hole]:
    """One fill-in-the-middle prompt per DocField, each in the file with the whole skeleton.

    The other descriptions read as their fallbacks, so the model sees a complete docstring.
    """
    holes = []
    for field in doc_fields(definition):
        docstring = render_docstring(definition, style, {field.key: _HOLE})
        insertion = docstring_insertion(text, definition, docstring)
        full = text[: insertion.start] + insertion.text + text[insertion.end :]
        cut = full.index(_HOLE)
        holes.append(Hole(field, full[:cut], full[cut + len(_HOLE) :]))
    return holes


_PARAM_PATTERNS = {
    "google": r"^[ \t]+{name}(?:[ \t]*\([^)\n]*\))?:[ \t]*\S",
    "numpy": r"^[ \t]*{name}(?:[ \t]*:[^\n]*)?\n[ \t]+\S",
    "rest": r"^[ \t]*:param(?:[ \t]+[^:\n]+)?[ \t]+{name}:[ \t]*\S",
}


def documented_parameters(docstring: str, names: Iterable[str], style: str) -> set[str]:
    """Which of `names` the docstring describes in `style` (each with some description)."""
    found = set()
    for name in names:
        escaped = re.escape(name.lstrip("*"))
        pattern = _PARAM_PATTERNS[style].format(name=r"\\?\*{0,2}" + escaped)
        if re.search(pattern, docstring, re.M):
            found.add(name)
    return found
