"""Threat: a client that stops reading slows everyone down or exhausts memory.

Attack: open a connection, subscribe to broadcasts, never read. Naive fan-out awaits each
socket in turn (everyone waits for the slowest) or buffers without bound. Defence: each
client has a bounded send queue; `Outbox.put()` never waits; when a client's queue is full
it is closed with 1013 and its queue dropped, while the others keep receiving everything.
A backlog goes to the socket in 64 KiB pieces, so the socket's buffer holds little past its
high-water mark and the rest counts against the queue. A client that does not take even
its close frame (a zero TCP window can be held forever) is aborted after the ping timeout,
which frees the socket's buffers.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect as ws_connect

from nowgate.client import connect
from nowgate.errors import TryAgainLater
from nowgate.fanout import Flusher, Outbox
from nowgate.frames import text_frame
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.sockets import Socket, next_turn
from tests.support.wire import HELLO, close_code_of


def test_outbox_overflow_closes_with_1013_and_frees_the_queue() -> None:
    outbox = Outbox(limit=3)
    assert all(outbox.put(f"frame {i}") for i in range(3))
    assert outbox.put("one too many") is False
    assert isinstance(outbox.close_error, TryAgainLater) and outbox.close_error.close_code == 1013
    assert len(outbox) == 0
    assert outbox.put("after close") is False


async def test_stalled_reader_is_dropped_and_others_receive_everything() -> None:
    env = {"NOWGATE_SEND_QUEUE_LIMIT": "64", "NOWGATE_CONNECTION_RATE": "100000/second"}
    with Gateway(CHAT_POLICY, env=env) as gateway:
        async with connect(gateway.ws_url) as sender, connect(gateway.ws_url) as healthy:
            received: list[str] = []
            healthy.on("message", lambda room, text: received.append(room))
            async with ws_connect(gateway.ws_url) as stalled:
                await stalled.send(HELLO)
                stalled.transport.pause_reading()  # kernel buffers fill, then its queue
                for _ in range(100):  # 100 x 50 x 4 KiB = 20 MiB, past any socket buffer
                    await sender.call("flood", 50)
                for _ in range(100):
                    if len(received) == 5000:
                        break
                    await asyncio.sleep(0.05)
                assert len(received) == 5000
                stalled.transport.resume_reading()
                assert await close_code_of(stalled) == 1013


async def test_a_reader_that_never_takes_its_close_frame_is_cut_off() -> None:
    env = {
        "NOWGATE_SEND_QUEUE_LIMIT": "64",
        "NOWGATE_CONNECTION_RATE": "100000/second",
        "NOWGATE_PING_TIMEOUT": "1",
    }
    with Gateway(CHAT_POLICY, env=env) as gateway:
        async with connect(gateway.ws_url) as sender:
            async with ws_connect(gateway.ws_url) as stalled:
                await stalled.send(HELLO)
                stalled.transport.pause_reading()
                for _ in range(100):
                    await sender.call("flood", 50)
                # Overflow -> 1013 pending -> ~1 s without progress: the endpoint gives up on
                # the close ("took no data"), or the transport on the shut window, first.
                cut_off = ("took no data for", "send_window_shut")
                for _ in range(100):
                    if any(sign in gateway.log for sign in cut_off):
                        break
                    await asyncio.sleep(0.1)
                assert any(sign in gateway.log for sign in cut_off)
                stalled.transport.resume_reading()
                # Cut off, not closed: no close frame ever reached the client.
                assert await close_code_of(stalled) == 1006
            assert await sender.call("rooms") == []  # the gateway carries on


async def test_a_large_backlog_goes_out_in_pieces_until_the_socket_pauses() -> None:
    socket, high_water, buffered = Socket(), 64 * 1024, [0]

    def write_until_high_water(data: bytes) -> bool:
        if socket.full:
            return False
        socket.writes.append(data)
        buffered[0] += len(data)
        socket.full = buffered[0] >= high_water  # the transport pauses
        return True

    socket.try_write = write_until_high_water  # type: ignore[method-assign]
    outbox = Outbox(100, socket, Flusher())
    texts = [f"{index:02d}" + "x" * 20_000 for index in range(10)]
    for text in texts:
        outbox.put(text)
    await next_turn()
    written = b"".join(socket.writes)
    assert high_water <= len(written) < high_water + 2 * len(text_frame(texts[0]))
    left = len(outbox)
    assert 0 < left < 10  # the rest waits in the bounded queue, in order, whole frames
    assert written == b"".join(text_frame(text) for text in texts[: 10 - left])
    while len(outbox):  # the socket drains; the writer task flushes again
        socket.full, buffered[0] = False, 0
        outbox.flush()
    assert b"".join(socket.writes) == b"".join(text_frame(text) for text in texts)
