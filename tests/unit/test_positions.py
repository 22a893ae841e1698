"""The one position/offset conversion (lsp_server.features.positions), in each encoding a
client may negotiate."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pygls.workspace import PositionCodec, TextDocument

from lsp_server.features.positions import offset_at, position_at

TEXT = 'x = "😋"\ny = 1\n'


def document(encoding: types.PositionEncodingKind) -> TextDocument:
    return TextDocument("file:///t.py", TEXT, position_codec=PositionCodec(encoding))


@pytest.mark.parametrize(
    ("encoding", "quote"),
    [
        (types.PositionEncodingKind.Utf16, 7),
        (types.PositionEncodingKind.Utf8, 9),
        (types.PositionEncodingKind.Utf32, 6),
    ],
)
def test_offsets_and_positions_agree_in_the_negotiated_encoding(
    encoding: types.PositionEncodingKind, quote: int
) -> None:
    doc = document(encoding)
    closing = TEXT.index('"', 5)
    assert offset_at(doc, types.Position(line=0, character=quote)) == closing
    units = doc.position_codec.client_num_units
    assert position_at(TEXT, closing, units) == types.Position(line=0, character=quote)
    assert position_at(TEXT, TEXT.index("1"), units) == types.Position(line=1, character=4)


def test_positions_outside_the_document_have_no_offset() -> None:
    doc = document(types.PositionEncodingKind.Utf16)
    assert offset_at(doc, types.Position(line=2, character=0)) == len(TEXT)  # after the last \n
    for line, character in ((2, 1), (3, 0), (1, 6), (0, 9)):
        assert offset_at(doc, types.Position(line=line, character=character)) is None
