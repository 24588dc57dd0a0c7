"""nowgate.frames: outbound text frames made once, byte for byte what RFC 6455 requires."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from nowgate.frames import text_frame, text_of


def parse(data: bytes) -> Frame:
    """Read one frame as a client would (server frames arrive unmasked)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


# Each payload-length encoding on both sides of its boundary: 7 bits, 16 bits, 64 bits.
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_a_text_frame_parses_back_to_its_text(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte UTF-8: length counts bytes
    frame = parse(text_frame(text))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert not (frame.rsv1 or frame.rsv2 or frame.rsv3)
    assert frame.data.decode() == text


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536])
def test_text_of_reads_the_text_back(size: int) -> None:
    text = "a" * size
    assert text_of(text_frame(text)) == text


def test_the_header_is_as_short_as_the_length_allows() -> None:
    assert len(text_frame("a" * 125)) == 2 + 125
    assert len(text_frame("a" * 126)) == 4 + 126
    assert len(text_frame("a" * 65_536)) == 10 + 65_536
