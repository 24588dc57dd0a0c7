"""WebSocket framing of outbound text, done once per message rather than once per receiver.

A server's frames are not masked (RFC 6455 section 5.1), so the bytes of one message are
the same for every receiver: a broadcast is framed once and those bytes are written to
each socket. Only unfragmented text frames are made; nothing here is compressed (the
gateway refuses permessage-deflate).
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81
_MEDIUM = struct.Struct("!BBH")
_LARGE = struct.Struct("!BBQ")


def text_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 1 << 16:
        return _MEDIUM.pack(_FIN_TEXT, 126, size) + payload
    return _LARGE.pack(_FIN_TEXT, 127, size) + payload


def text_of(frame: bytes) -> str:
    """The text a frame made by `text_frame()` carries."""
    marker = frame[1]
    start = 2 if marker < 126 else 4 if marker == 126 else 10
    return frame[start:].decode()
