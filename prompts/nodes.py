"""Questions about tree-sitter nodes, shared by prompts.scope and prompts.definitions.

Is a node a function, method or class (a scope), which kind, what is it called, where is its body
and which statements does it hold, and which scope holds the cursor. The node type names come
from each language's `Grammar` in prompts.languages; the few shapes one grammar alone has (Go's
`type_spec`, C++ declarators, Python's indentation-ended blocks) are handled where they occur.
"""

from __future__ import annotations

from collections.abc import Iterator

from tree_sitter import Node, Tree

from prompts.languages import GRAMMARS, Grammar
from prompts.parsing import Offsets
from prompts.text import indent_width, line_bounds


def walk(node: Node) -> Iterator[Node]:
    """The node and every node under it, in document order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def ancestors(node: Node | None) -> Iterator[Node]:
    """The node, its parent, and so on up to the root."""
    while node is not None:
        yield node
        node = node.parent


def descend(node: Node, grammar: Grammar, into_functions: bool) -> Iterator[Node]:
    """The nodes under `node`, optionally not entering nested functions."""
    stack = list(reversed(node.children))
    while stack:
        current = stack.pop()
        yield current
        if not into_functions and current.type in grammar.functions:
            continue
        stack.extend(reversed(current.children))


def body_of(node: Node) -> Node | None:
    """The block of a function or class."""
    return node.child_by_field_name("body")


def block_statements(block: Node) -> list[Node]:
    """The statements of a block, looking through Go's statement_list wrapper, minus comments."""
    result: list[Node] = []
    for child in block.named_children:
        if child.type == "statement_list":
            result.extend(block_statements(child))
        elif "comment" not in child.type:
            result.append(child)
    return result


def is_docstring(node: Node) -> bool:
    return (
        node.type == "expression_statement"
        and node.named_child_count == 1
        and node.named_children[0].type in ("string", "concatenated_string")
    )


def is_scope(node: Node, grammar: Grammar) -> bool:
    if not node.is_named:  # the `function` and `class` keywords share their node type names
        return False
    if node.type == "type_spec":  # Go: only struct and interface types are class-like
        type_node = node.child_by_field_name("type")
        return type_node is not None and type_node.type in ("struct_type", "interface_type")
    return node.type in grammar.functions or node.type in grammar.classes


def _contains(node: Node, byte: int, offsets: Offsets) -> bool:
    if not node.start_byte < byte <= node.end_byte:
        return False
    # Past a closing brace is outside the block, while the end of a Python block's last
    # statement is still inside it.
    return byte < node.end_byte or offsets.data[node.end_byte - 1 : node.end_byte] != b"}"


def _python_anchor(text: str, offset: int) -> int | None:
    """The last character of code above the cursor's line (blank and comment lines skipped)."""
    end, _ = line_bounds(text, offset)
    while end > 0:
        start, _ = line_bounds(text, end - 1)
        line = text[start : end - 1]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return start + len(line.rstrip()) - 1
        end = start
    return None


def enclosing_scope(tree: Tree, text: str, offset: int, language: str) -> Node | None:
    """The innermost function, method or class that the cursor is in."""
    grammar = GRAMMARS[language]
    offsets = Offsets(text)
    byte = offsets.to_byte(offset)
    root = tree.root_node
    best: Node | None = None
    for probe in {byte, max(byte - 1, 0)}:
        for node in ancestors(root.descendant_for_byte_range(probe, probe)):
            if is_scope(node, grammar) and _contains(node, byte, offsets):
                if best is None or node.start_byte > best.start_byte:
                    best = node
                break
    if language != "python":
        return best
    # tree-sitter ends a Python block at its last statement (an empty body ends at the colon):
    # a cursor on an indented blank line below still belongs to it, by indentation.
    anchor = _python_anchor(text, offset)
    if anchor is None:
        return best
    line_start, _ = line_bounds(text, offset)
    before_cursor = text[line_start:offset]
    column = (
        len(before_cursor.expandtabs(4))
        if not before_cursor.strip()
        else indent_width(before_cursor)
    )
    anchor_byte = offsets.to_byte(anchor)
    for node in ancestors(root.descendant_for_byte_range(anchor_byte, anchor_byte + 1)):
        if is_scope(node, grammar) and node.end_byte <= byte and node.start_point[1] < column:
            if best is None or node.start_byte > best.start_byte:
                best = node
            break
    return best


def scope_kind(node: Node, grammar: Grammar) -> str:
    if node.type in grammar.classes or node.type == "type_spec":
        return "class"
    if node.type in grammar.methods:
        return "method"
    if node.type == "function_definition" and node.child_by_field_name("declarator") is not None:
        name = cpp_name_node(node)
        if name is not None and name.type == "qualified_identifier":  # C++ `void Shape::draw()`
            return "method"
    parent = node.parent
    while parent is not None:
        if parent.type in grammar.functions:
            return "function"
        if parent.type in grammar.classes:
            return "method"
        parent = parent.parent
    return "function"


def cpp_name_node(node: Node) -> Node | None:
    declarator = node.child_by_field_name("declarator")
    while declarator is not None and declarator.type not in (
        "identifier",
        "field_identifier",
        "qualified_identifier",
        "destructor_name",
        "operator_name",
    ):
        declarator = declarator.child_by_field_name("declarator")
    return declarator


def scope_name(node: Node, offsets: Offsets) -> str | None:
    name = node.child_by_field_name("name")
    if name is not None:
        return offsets.node_text(name)
    if node.type == "impl_item":
        return offsets.node_text(node.child_by_field_name("type")) or None
    cpp = cpp_name_node(node)
    if cpp is not None:
        return offsets.node_text(cpp)
    # An anonymous JS function takes the name it is bound to: `const f = () => ...`.
    parent = node.parent
    if parent is not None:
        for field in ("name", "left", "key"):
            bound = parent.child_by_field_name(field)
            if bound is not None and bound.id != node.id:
                return offsets.node_text(bound)
    return None
