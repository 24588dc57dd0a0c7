"""uvicorn's WebSocket protocol, able to write ready-made frames straight to the socket.

Through ASGI every message to every receiver is one `send()` coroutine, framed again by
the websockets library: a broadcast to 1,000 clients framed 1,000 times. This protocol
adds itself to the scope's extensions under `DIRECT_WRITES`, so the endpoint can write the
bytes `nowgate.frames` made once. Everything else (handshake, pings, close, reading) stays
uvicorn's. An application served by another ASGI server does not get the extension and
sends through ASGI as usual.

Frames are written whole, so they never interleave with uvicorn's own pings and close
frames; nothing is written after a close frame was sent or the socket began closing. A
connection still open `close_timeout` after uvicorn began closing it (its client keeps
the TCP window shut, so the buffered data never leaves) is aborted.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

DIRECT_WRITES = "nowgate.direct_writes"


class DirectWriteProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's `writable` Event, as a plain flag: `try_write()` runs once per delivery.
        self.write_paused = False
        # Resolved by the next bytes from the client: see `answers()`.
        self._heard: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        heard = self._heard
        if heard is not None:
            self._heard = None
            if not heard.done():
                heard.set_result(None)
        super().data_received(data)

    async def answers(self, within: float) -> bool:
        """Ping now: does anything (the pong, any frame) arrive from the client in time?

        Tells a live connection from a half-open one whose peer is gone (its network
        changed) before uvicorn's own keepalive would notice.
        """
        if self.close_sent or self.transport.is_closing():
            return False
        heard = self._heard
        if heard is None:
            heard = self._heard = self.loop.create_future()
        self.conn.send_ping(secrets.token_bytes(4))
        self.transport.write(b"".join(self.conn.data_to_send()))
        try:
            await asyncio.wait_for(asyncio.shield(heard), within)
        except TimeoutError:
            return False
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        super().resume_writing()

    async def run_asgi(self) -> None:
        extensions = cast(dict[str, Any], self.scope["extensions"])
        extensions[DIRECT_WRITES] = self
        try:
            await super().run_asgi()
        finally:
            del extensions[DIRECT_WRITES]  # no reference cycle through the scope
            # uvicorn closes the transport at most `close_timeout` after the close frame.
            self._abort_later(self.close_timeout + 1.0)

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._abort_later(self.close_timeout)

    def _abort_later(self, delay: float) -> None:
        # `transport.close()` waits for the send buffer to empty, which a client that keeps
        # its TCP window shut never lets happen: give it `delay` seconds, then drop it.
        self.loop.call_later(delay, self._abort_if_connected)

    def _abort_if_connected(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    def try_write(self, data: bytes) -> bool:
        """Write now, unless the socket is closing or its send buffer is above high water."""
        if self.close_sent or self.write_paused or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    async def drained(self) -> bool:
        """Wait until the send buffer is below low water; False if the socket is closing."""
        await self.writable.wait()
        return not (self.close_sent or self.transport.is_closing())

    def abort(self) -> None:
        """Drop the connection and whatever its buffers hold."""
        self.transport.abort()
