"""A typist for the soak benchmark: one document typed character by character, with the other
edits an editor sends between keystrokes (backspace, a new line, a jump, a pasted line, a change
elsewhere), each as the incremental didChange an editor would write.

The source is copied from standard-library files, kept to ASCII so that a column is the same in
code points and in UTF-16 units; the typist keeps its own copy of the text, so every position it
sends is valid for the version it sends it with.
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass, field

from lsprotocol import types

# Standard-library modules typed in the soak: any that exist are used, in this order.
SOURCE_MODULES = ("textwrap", "shlex", "string", "fractions", "calendar", "difflib", "csv", "heapq")
EDITS = ("backspace", "newline", "jump", "paste", "elsewhere")


def source_texts() -> list[str]:
    texts = []
    for name in SOURCE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        with open(spec.origin, encoding="utf-8") as handle:
            text = handle.read().encode("ascii", errors="replace").decode("ascii")
        texts.append(text.replace("\t", "    "))
    if not texts:
        raise RuntimeError("no standard-library source found to type")
    return texts


@dataclass
class Typist:
    """Types `source` into a document that starts with its first `start_lines` lines."""

    uri: str
    source: str
    rng: random.Random
    start_lines: int = 30
    version: int = 1
    lines: list[str] = field(default_factory=list)
    line: int = 0  # the cursor
    column: int = 0
    typed: int = 0  # characters of `source` typed so far

    def __post_init__(self) -> None:
        source_lines = self.source.split("\n")
        self.lines = [*source_lines[: self.start_lines], ""]
        self.line, self.column = len(self.lines) - 1, 0
        self.typed = sum(len(line) + 1 for line in source_lines[: self.start_lines])

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def position(self) -> types.Position:
        return types.Position(line=self.line, character=self.column)

    @property
    def exhausted(self) -> bool:
        return self.typed >= len(self.source)

    def open_params(self) -> types.DidOpenTextDocumentParams:
        return types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=self.uri, language_id="python", version=self.version, text=self.text
            )
        )

    def _replace(
        self, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> types.DidChangeTextDocumentParams:
        """Replace [start, end) with `text` in the copy; the change that says so."""
        (start_line, start_col), (end_line, end_col) = start, end
        before = self.lines[start_line][:start_col]
        after = self.lines[end_line][end_col:]
        self.lines[start_line : end_line + 1] = (before + text + after).split("\n")
        self.version += 1
        return types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=start_line, character=start_col),
                        end=types.Position(line=end_line, character=end_col),
                    ),
                    text=text,
                )
            ],
        )

    def _insert_at_cursor(self, text: str) -> types.DidChangeTextDocumentParams:
        cursor = (self.line, self.column)
        change = self._replace(cursor, cursor, text)
        pieces = text.split("\n")
        if len(pieces) == 1:
            self.column += len(text)
        else:
            self.line, self.column = self.line + len(pieces) - 1, len(pieces[-1])
        return change

    def keystroke(self) -> types.DidChangeTextDocumentParams:
        """The next character of the source at the cursor."""
        char = self.source[self.typed] if not self.exhausted else " "
        self.typed += 1
        if char == "\n":  # an editor's new line keeps the indentation; the source's own follows
            return self._insert_at_cursor("\n")
        return self._insert_at_cursor(char)

    def edit(self) -> tuple[str, types.DidChangeTextDocumentParams]:
        """One edit other than typing the next character, chosen at random."""
        kind = self.rng.choice(EDITS)
        if kind == "backspace" and self.column > 0:
            self.column -= 1
            return kind, self._replace((self.line, self.column), (self.line, self.column + 1), "")
        if kind == "newline":
            indent = len(self.lines[self.line]) - len(self.lines[self.line].lstrip(" "))
            return kind, self._insert_at_cursor("\n" + " " * indent)
        if kind == "jump":
            target = self.rng.randrange(len(self.lines))
            self.line, self.column = target, len(self.lines[target])
            # Nothing changes in the text: the jump shows in the next keystroke's position.
            return kind, self._insert_at_cursor("")
        if kind == "paste":
            pasted = self.rng.choice(self.source.split("\n")[:200]) + "\n"
            return kind, self._insert_at_cursor(pasted)
        # "elsewhere" (or a backspace at column 0): rewrite another line, the cursor's unmoved.
        others = [i for i in range(len(self.lines)) if i != self.line]
        if not others:
            return "newline", self._insert_at_cursor("\n")
        target = self.rng.choice(others)
        old = self.lines[target]
        return "elsewhere", self._replace((target, 0), (target, len(old)), old.rstrip() + "  # x")
