"""The definition under the cursor, described for "Generate unit tests" and "Insert docstring".

`definition_at` reads the function, method or class at the cursor from its syntax tree: its
name and qualified name, parameters (kinds, annotations, defaults), return annotation,
docstring (or the comment block above it), decorators, the exceptions its body raises, base
classes and methods, and where its header, body and indentation are, so that a docstring or a
test can be written into the file. Python is read in full detail; the other languages with a
grammar share one generic reading of parameters and comments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tree_sitter import Node, Tree

from prompts.languages import GRAMMARS, Grammar
from prompts.nodes import (
    ancestors,
    block_statements,
    body_of,
    cpp_name_node,
    descend,
    enclosing_scope,
    is_docstring,
    is_scope,
    scope_kind,
    scope_name,
    walk,
)
from prompts.parsing import Offsets, parse_tree
from prompts.text import indent_of, line_bounds


@dataclass(frozen=True)
class Parameter:
    name: str  # without `*` / `**`
    annotation: str | None
    default: str | None
    # "positional" | "positional_only" | "keyword_only" | "var_positional" | "var_keyword" | "self"
    kind: str = "positional"


@dataclass(frozen=True)
class Definition:
    kind: str  # "function" | "method" | "class"
    name: str
    qualified_name: str  # "Class.method" for methods, the name otherwise
    parameters: tuple[Parameter, ...]  # for a class: those of its constructor, self excluded
    return_annotation: str | None
    docstring: str | None  # its text without quotes or comment markers
    decorators: tuple[str, ...]  # without the `@`
    raises: tuple[str, ...]  # exception names raised or thrown in the body, in order
    is_async: bool
    start_offset: int  # the first decorator, or the definition itself
    end_offset: int
    header_end_offset: int  # just after the `:` or `{` that opens the body
    body_start_offset: int
    body_end_offset: int
    indent: str  # the definition line's indentation
    body_indent: str  # the indentation its body uses (or would use, when empty)
    bases: tuple[str, ...] = ()  # classes: base classes / extended and implemented types
    methods: tuple[str, ...] = ()  # classes: method names, in order
    text: str = ""  # the definition's source, decorators included


def _python_parameters(node: Node | None, offsets: Offsets, is_method: bool) -> list[Parameter]:
    if node is None:
        return []
    params: list[Parameter] = []
    keyword_only = False
    for child in node.named_children:
        if child.type == "positional_separator":
            params = [
                Parameter(p.name, p.annotation, p.default, "positional_only")
                if p.kind == "positional"
                else p
                for p in params
            ]
            continue
        if child.type == "keyword_separator":
            keyword_only = True
            continue
        kind = "keyword_only" if keyword_only else "positional"
        annotation = offsets.node_text(child.child_by_field_name("type")) or None
        default = offsets.node_text(child.child_by_field_name("value")) or None
        target = child
        if child.type in ("typed_parameter", "list_splat_pattern", "dictionary_splat_pattern"):
            inner = next((c for c in child.named_children if c.type != "type"), child)
            if child.type == "typed_parameter" and inner.type in (
                "list_splat_pattern",
                "dictionary_splat_pattern",
            ):
                child, inner = inner, inner.named_children[0]
            target = inner
            if child.type == "list_splat_pattern":
                kind, keyword_only = "var_positional", True
            elif child.type == "dictionary_splat_pattern":
                kind = "var_keyword"
        elif child.type in ("default_parameter", "typed_default_parameter"):
            target = child.child_by_field_name("name") or child
        name = offsets.node_text(target).lstrip("*")
        if is_method and not params and kind == "positional" and name in ("self", "cls"):
            kind = "self"
        params.append(Parameter(name, annotation, default, kind))
    return params


def _generic_parameters(node: Node | None, offsets: Offsets) -> list[Parameter]:
    if node is None:
        return []
    params: list[Parameter] = []
    for child in node.named_children:
        if "comment" in child.type:
            continue
        if child.type == "self_parameter":
            params.append(Parameter("self", None, None, "self"))
            continue
        name_node = (
            child.child_by_field_name("pattern")
            or child.child_by_field_name("name")
            or child.child_by_field_name("left")
            or cpp_name_node(child)
            or child.child_by_field_name("declarator")
        )
        type_node = child.child_by_field_name("type")
        default_node = (
            child.child_by_field_name("value")
            or child.child_by_field_name("right")
            or child.child_by_field_name("default_value")
        )
        name = offsets.node_text(name_node) if name_node is not None else offsets.node_text(child)
        annotation = offsets.node_text(type_node).lstrip(": ").strip() or None
        kind = (
            "var_positional" if child.type in ("rest_pattern", "spread_parameter") else "positional"
        )
        params.append(
            Parameter(name.lstrip("."), annotation, offsets.node_text(default_node) or None, kind)
        )
    return params


def _raised_names(body: Node | None, grammar: Grammar, offsets: Offsets) -> tuple[str, ...]:
    if body is None or not grammar.throws:
        return ()
    names: list[str] = []
    for node in descend(body, grammar, into_functions=False):
        if node.type in grammar.classes:
            continue
        if node.type not in grammar.throws or not node.named_children:
            continue
        thrown = node.named_children[0]
        if thrown.type in ("call", "new_expression", "object_creation_expression"):
            callee = (
                thrown.child_by_field_name("function")
                or thrown.child_by_field_name("constructor")
                or thrown.child_by_field_name("type")
            )
            thrown = callee if callee is not None else thrown
        name = offsets.node_text(thrown)
        if thrown.type in ("identifier", "attribute", "member_expression", "type_identifier") or (
            name.isidentifier()
        ):
            names.append(name)
    return tuple(dict.fromkeys(names))


def _python_docstring(body: Node | None, offsets: Offsets) -> str | None:
    if body is None:
        return None
    statements = block_statements(body)
    if not statements or not is_docstring(statements[0]):
        return None
    literal = offsets.node_text(statements[0].named_children[0])
    match = re.match(r"(?s)^[rRuUbBfF]*('''|\"\"\"|'|\")(.*)\1$", literal)
    return match.group(2) if match else literal


def _comment_above(node: Node, offsets: Offsets) -> str | None:
    """The comment block right above a definition, markers removed (JSDoc, ///, //)."""
    lines: list[str] = []
    sibling = node.prev_named_sibling
    expected_row = node.start_point[0]
    while (
        sibling is not None
        and "comment" in sibling.type
        and sibling.end_point[0] >= expected_row - 1
    ):
        lines.insert(0, offsets.node_text(sibling))
        expected_row = sibling.start_point[0]
        sibling = sibling.prev_named_sibling
    if not lines:
        return None
    cleaned = []
    for line in "\n".join(lines).splitlines():
        line = re.sub(r"^\s*(/\*\*?|\*/|\*|///?|//!)", "", line)
        cleaned.append(re.sub(r"\*/\s*$", "", line).strip())
    return "\n".join(cleaned).strip() or None


def _definition_node(tree: Tree, text: str, offset: int, language: str) -> tuple[Node, Node] | None:
    """(definition, outer) where outer also covers decorators; a cursor on a decorator counts."""
    offsets = Offsets(text)
    byte = offsets.to_byte(offset)
    node = enclosing_scope(tree, text, offset, language)
    # An anonymous callback is not something to document or test: take the named scope above.
    while node is not None and not scope_name(node, offsets):
        node = node.parent
        while node is not None and not is_scope(node, GRAMMARS[language]):
            node = node.parent
    if language == "python":
        for candidate in ancestors(tree.root_node.descendant_for_byte_range(byte, byte)):
            inner = candidate.child_by_field_name("definition")
            if candidate.type == "decorated_definition" and inner is not None:
                if byte < inner.start_byte:  # on a decorator line
                    node = inner
                break
    if node is None:
        return None
    outer = (
        node.parent
        if node.parent is not None and node.parent.type == "decorated_definition"
        else node
    )
    return node, outer


def _header_end(node: Node, body: Node | None) -> int:
    for child in node.children:
        if child.type == ":" or (body is not None and child.id == body.id):
            return child.end_byte if child.type == ":" else child.start_byte + 1
    return body.start_byte + 1 if body is not None else node.end_byte


def _indent_unit(text: str) -> str:
    """The file's indentation step: a tab, or the smallest run of leading spaces (2 to 8)."""
    widths = set()
    for line in text.splitlines():
        indent = indent_of(line)
        if indent.startswith("\t") and line.strip():
            return "\t"
        if len(indent) >= 2 and line.strip():
            widths.add(len(indent))
    return " " * min(min(widths, default=4), 8)


def _body_indent(text: str, def_indent: str, body: Node | None, offsets: Offsets) -> str:
    """The indentation of the body's first statement, or one step deeper than the definition."""
    statements = block_statements(body) if body is not None else []
    if statements:
        start = offsets.to_char(statements[0].start_byte)
        line_start, _ = line_bounds(text, start)
        indent = text[line_start:start]
        if not indent.strip() and len(indent) > len(def_indent):
            return indent
    return def_indent + _indent_unit(text)


def _class_details(
    node: Node, grammar: Grammar, offsets: Offsets, language: str
) -> tuple[tuple[str, ...], tuple[str, ...], list[Parameter]]:
    bases: list[str] = []
    superclasses = node.child_by_field_name("superclasses")
    if superclasses is not None:
        bases = [offsets.node_text(c) for c in superclasses.named_children]
    for child in node.children:
        if child.type in ("class_heritage", "superclass", "super_interfaces", "base_class_clause"):
            bases.extend(
                offsets.node_text(c)
                for c in walk(child)
                if c.type in ("identifier", "type_identifier", "member_expression")
                and c.parent is not None
                and c.parent.type not in ("member_expression",)
            )
    methods: list[str] = []
    constructor: list[Parameter] = []
    body = body_of(node)
    for child in descend(body, grammar, into_functions=False) if body is not None else ():
        if child.type in grammar.classes and child.id != node.id:
            continue
        if child.type in grammar.functions and scope_kind(child, grammar) == "method":
            parent_scope = child.parent
            while parent_scope is not None and not is_scope(parent_scope, grammar):
                parent_scope = parent_scope.parent
            if parent_scope is None or parent_scope.id != node.id:
                continue
            name = scope_name(child, offsets) or ""
            methods.append(name)
            if name in ("__init__", "constructor") or child.type == "constructor_declaration":
                params_node = child.child_by_field_name("parameters")
                if language == "python":
                    constructor = _python_parameters(params_node, offsets, is_method=True)
                else:
                    constructor = _generic_parameters(params_node, offsets)
    constructor = [p for p in constructor if p.kind != "self"]
    return tuple(dict.fromkeys(bases)), tuple(methods), constructor


def definition_at(text: str, offset: int, language: str) -> Definition | None:
    """The function, method or class at the cursor, described for generating tests or docs."""
    if language not in GRAMMARS:
        return None
    grammar = GRAMMARS[language]
    tree = parse_tree(language, text)
    found = _definition_node(tree, text, offset, language)
    if found is None:
        return None
    node, outer = found
    offsets = Offsets(text)
    kind = scope_kind(node, grammar)
    name = scope_name(node, offsets) or ""
    body = body_of(node)
    qualified = name
    parent = node.parent
    while parent is not None:
        if parent.type in grammar.classes:
            qualified = f"{scope_name(parent, offsets)}.{qualified}"
            break
        parent = parent.parent
    receiver = node.child_by_field_name("receiver")  # Go: func (s *Stack) Push(...)
    if receiver is not None:
        receiver_type = next((n for n in walk(receiver) if n.type == "type_identifier"), None)
        qualified = f"{offsets.node_text(receiver_type)}.{name}" if receiver_type else name
    if "::" in name:
        qualified = name.replace("::", ".")
        name = name.rsplit("::", 1)[-1]
    params_node = node.child_by_field_name("parameters")
    bases: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    if kind == "class":
        bases, methods, params = _class_details(node, grammar, offsets, language)
    elif language == "python":
        params = _python_parameters(params_node, offsets, is_method=kind == "method")
    else:
        if params_node is None:
            declarator = node.child_by_field_name("declarator")
            while declarator is not None and params_node is None:
                params_node = declarator.child_by_field_name("parameters")
                declarator = declarator.child_by_field_name("declarator")
        params = _generic_parameters(params_node, offsets)
        if node.type == "arrow_function" and params_node is None:
            single = node.child_by_field_name("parameter")
            if single is not None:
                params = [Parameter(offsets.node_text(single), None, None)]
    returns = (
        node.child_by_field_name("return_type")
        or node.child_by_field_name("result")
        or (node.child_by_field_name("type") if kind != "class" else None)
    )
    decorators: tuple[str, ...] = ()
    if outer.type == "decorated_definition":
        decorators = tuple(
            offsets.node_text(d).lstrip("@").strip()
            for d in outer.named_children
            if d.type == "decorator"
        )
    raises = list(_raised_names(body, grammar, offsets))
    throws_clause = next((c for c in node.children if c.type == "throws"), None)
    if throws_clause is not None:
        raises.extend(offsets.node_text(c) for c in throws_clause.named_children)
    docstring = (
        _python_docstring(body, offsets) if language == "python" else _comment_above(outer, offsets)
    )
    start = offsets.to_char(outer.start_byte)
    line_start, _ = line_bounds(text, start)
    indent = indent_of(text[line_start:start])
    body_start = (
        offsets.to_char(body.start_byte) if body is not None else offsets.to_char(node.end_byte)
    )
    body_end = offsets.to_char(body.end_byte) if body is not None else body_start
    return Definition(
        kind=kind,
        name=name,
        qualified_name=qualified,
        parameters=tuple(params),
        return_annotation=offsets.node_text(returns).lstrip(":").strip() or None,
        docstring=docstring,
        decorators=decorators,
        raises=tuple(dict.fromkeys(raises)),
        is_async=any(c.type == "async" for c in node.children),
        start_offset=start,
        end_offset=offsets.to_char(outer.end_byte),
        header_end_offset=offsets.to_char(_header_end(node, body)),
        body_start_offset=body_start,
        body_end_offset=body_end,
        indent=indent,
        body_indent=_body_indent(text, indent, body, offsets),
        bases=bases,
        methods=methods,
        text=text[start : offsets.to_char(outer.end_byte)],
    )
