"""Threat: a client that keeps its TCP window shut holds a closing connection forever.

Attack: stop reading and leave the receive window at zero. `transport.close()` waits until
the send buffer is empty, which then never happens: the connection, its buffers and its
session outlive every timeout (uvicorn's keepalive timeout and the close frame's timeout
both end in such a close()). Defence: app/transport.py aborts a connection that is still
there `close_timeout` after uvicorn began closing it. The case of a client being closed by
the gateway while its socket is backed up is in test_slow_consumer.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from nowgate.transport import DirectWriteProtocol


class StuckTransport(asyncio.Transport):
    """A transport whose buffered data never leaves: close() never completes."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = self.aborted = False
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True


async def no_app(scope: Any, receive: Any, send: Any) -> None:
    return None


def connected() -> tuple[DirectWriteProtocol, StuckTransport]:
    protocol = DirectWriteProtocol(
        uvicorn.Config(no_app, ws_ping_interval=None), ServerState(), {}
    )
    protocol.close_timeout = 0.05
    transport = StuckTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def test_a_keepalive_timeout_with_a_stuck_buffer_ends_in_an_abort() -> None:
    protocol, transport = connected()
    protocol.keepalive_timeout()
    assert transport.closing and not transport.aborted  # uvicorn's close(), stuck
    await asyncio.sleep(0.2)
    assert transport.aborted


async def test_a_connection_that_closed_in_time_is_not_aborted() -> None:
    protocol, transport = connected()
    protocol.keepalive_timeout()
    protocol.connection_lost(None)
    await asyncio.sleep(0.2)
    assert not transport.aborted


async def test_no_direct_write_after_the_transport_began_closing() -> None:
    protocol, transport = connected()
    assert protocol.try_write(b"frame")
    transport.close()
    assert not protocol.try_write(b"late")
    assert b"frame" in transport.written and b"late" not in transport.written
