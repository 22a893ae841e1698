"""Typing-ahead: the user is typing what the last suggestion showed, so show the rest of it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShownSuggestion:
    """A suggestion as it was shown: the document around the cursor, and the text offered."""

    prefix: str
    suffix: str
    text: str
    id: str


def remaining_suggestion(shown: ShownSuggestion, prefix: str, suffix: str) -> str | None:
    """The part of `shown.text` still ahead of the cursor, or None when the user went elsewhere.

    It matches when the document after the cursor is unchanged and the text before it is the old
    prefix plus a non-empty start of the suggestion. Typing all of it leaves nothing to show.
    """
    if suffix != shown.suffix or len(prefix) <= len(shown.prefix):
        return None
    if not prefix.startswith(shown.prefix):
        return None
    typed = prefix[len(shown.prefix) :]
    if not shown.text.startswith(typed) or typed == shown.text:
        return None
    return shown.text[len(typed) :]
