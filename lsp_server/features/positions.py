"""The one conversion between LSP positions and str offsets, done at the edge.

The protocol counts a position's character in the code units of the encoding the client
negotiated (UTF-16 unless it asked for another); the core works on str indexes (code points).
Every feature converts here, once on the way in and once on the way out, so the core never
sees a Position and no two features count a line differently.
"""

from __future__ import annotations

from collections.abc import Callable

from lsprotocol import types
from pygls.workspace import TextDocument


def offset_at(document: TextDocument, position: types.Position) -> int | None:
    """The str index of a position in the negotiated encoding, or None outside the document."""
    lines = document.lines
    if position.line > len(lines) or position.line < 0 or position.character < 0:
        return None
    if position.line == len(lines):
        # The position just past a final newline is valid; anything further on that line is not.
        return len(document.source) if position.character == 0 else None
    line = lines[position.line].rstrip("\r\n")
    if position.character > document.position_codec.client_num_units(line):
        return None
    return document.offset_at_position(position)


def position_at(text: str, offset: int, units: Callable[[str], int]) -> types.Position:
    """The LSP position of a str index; `units` counts the negotiated encoding's code units
    (a position codec's `client_num_units`)."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return types.Position(line=line, character=units(text[start:offset]))
