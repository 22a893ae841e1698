"""When a document's warm prefill is due, and for which cursor (lsp_server/completion/warm.py), and
the edge's reading of changes and cursor notifications (lsp_server/features/warm_context.py)."""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import TextDocument

from lsp_server.completion.warm import WarmTriggers, warm_offset
from lsp_server.features.warm_context import change_end, cursor_params
from prompts.context import Document

A, B = "file:///a.py", "file:///b.py"


def test_an_opened_document_is_due_after_the_pause_with_no_cursor_known() -> None:
    triggers = WarmTriggers(pause_s=0.5)
    triggers.opened(A, now=10.0)
    assert triggers.take_due(now=10.25) == []
    assert triggers.take_due(now=10.5) == [(A, None)]
    assert triggers.take_due(now=11.0) == []  # taken once


def test_a_cursor_resting_in_a_document_just_opened_is_what_gets_warmed() -> None:
    triggers = WarmTriggers(pause_s=0.5)
    triggers.opened(A, now=10.0)
    triggers.cursor_rested(A, cursor=120, now=10.25)
    assert triggers.take_due(now=10.25) == [(A, 120)]
    assert triggers.take_due(now=11.0) == []


def test_typing_is_warmed_only_after_a_pause_each_change_pushing_it_back() -> None:
    triggers = WarmTriggers(pause_s=0.5)
    triggers.changed(A, cursor=5, now=10.0)
    triggers.changed(A, cursor=6, now=10.25)  # the next key, before the pause ended
    assert triggers.take_due(now=10.5) == []
    assert triggers.next_due() == 10.75
    assert triggers.take_due(now=10.75) == [(A, 6)]


def test_a_whole_document_change_keeps_the_cursor_seen_before() -> None:
    triggers = WarmTriggers(pause_s=0.5)
    triggers.cursor_rested(A, cursor=42, now=1.0)
    assert triggers.take_due(now=1.0) == [(A, 42)]
    triggers.changed(A, cursor=None, now=2.0)
    assert triggers.take_due(now=3.0) == [(A, 42)]


def test_a_request_for_another_document_is_a_switch_and_warms_it_after_the_pause() -> None:
    triggers = WarmTriggers(pause_s=0.5)
    assert not triggers.requested(A, cursor=3, now=1.0)  # the first request switches nothing
    assert not triggers.requested(A, cursor=4, now=1.1)
    assert triggers.requested(B, cursor=9, now=2.0)
    assert triggers.take_due(now=2.0) == [(A, 4)]
    assert triggers.take_due(now=2.5) == [(B, 9)]


def test_documents_come_due_oldest_first_and_a_closed_one_is_forgotten() -> None:
    triggers = WarmTriggers(pause_s=0.5)
    triggers.changed(B, cursor=1, now=1.0)
    triggers.opened(A, now=1.2)
    triggers.changed("file:///c.py", cursor=2, now=1.1)
    triggers.closed("file:///c.py")
    assert triggers.take_due(now=5.0) == [(B, 1), (A, None)]
    assert triggers.next_due() is None


def test_the_warm_cursor_is_the_last_one_seen_else_the_end_of_the_document() -> None:
    document = Document(uri=A, path="/a.py", language_id="python", text="x = 1\n")
    assert warm_offset(document, 3) == 3
    assert warm_offset(document, None) == 6
    assert warm_offset(document, 99) == 6  # the text got shorter since


def test_the_cursor_after_a_change_is_the_end_of_the_text_it_inserted() -> None:
    def change(line: int, character: int, text: str) -> types.DidChangeTextDocumentParams:
        at = types.Position(line=line, character=character)
        return types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=A, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )

    # the document as it is after the edit "    x" + newline inserted at the start of line 1
    document = TextDocument(A, "def f():\n    x\n    return 1\n")
    assert change_end(document, change(1, 0, "    x\n")) == len("def f():\n    x\n")
    whole = types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=A, version=3),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text="y = 2\n")],
    )
    assert change_end(document, whole) is None


def test_a_cursor_notification_needs_a_uri_and_a_position() -> None:
    good = {"textDocument": {"uri": A}, "position": {"line": 3, "character": 4}}
    assert cursor_params(good) == (A, 3, 4)
    assert cursor_params({"position": {"line": 3, "character": 4}}) is None
    assert (
        cursor_params({"textDocument": {"uri": A}, "position": {"line": -1, "character": 0}})
        is None
    )
    assert (
        cursor_params({"textDocument": {"uri": 5}, "position": {"line": 0, "character": 0}}) is None
    )
    assert cursor_params(None) is None
