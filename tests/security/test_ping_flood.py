"""Threat: a ping flood from a client that never reads exhausts the server's memory.

Attack: after the hello, send WebSocket pings as fast as possible with a 4 KiB receive buffer
and never read. uvicorn answered each with a pong written straight to the socket whatever
its send buffer held: 240 MiB of server memory in 15 s from one connection. No message limit
sees it (pings are not messages).
Defence (nowgate.transport): control frames obey backpressure: while the connection's send
buffer is above high water it is not read, so the flood waits in TCP, and a client that
keeps its window shut for `ping_timeout` seconds is dropped; a client's pings are also rate
limited (`client_ping_limit` per `client_ping_window`, then 1008, audited). Bound asserted:
the server grows by less than 24 MiB during the flood (it grew by hundreds without the
defence), the flooding socket is dropped, and an honest client keeps its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.rawws import PING, PONG, TEXT, RawClient, frame, rss_kib
from tests.support.wire import call, raw_exchange

GROWTH_BOUND_KIB = 24 * 1024
FLOOD_SECONDS = 8.0
SHUT_WINDOW = 3.0


async def flood_pings(client: RawClient, seconds: float) -> float | None:
    """Send pings without reading for `seconds`; when the server dropped us, else None."""
    burst = frame(PING, b"p" * 125) * 256
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            client.writer.write(burst)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.writer.drain(), 0.5)
            if client.writer.transport.is_closing():
                return time.monotonic() - started
    except ConnectionError:
        return time.monotonic() - started
    return None


async def test_a_ping_flood_without_reading_is_backpressured_then_dropped() -> None:
    env = {
        "NOWGATE_CLIENT_PING_LIMIT": "100000000",  # only backpressure here
        "NOWGATE_PING_TIMEOUT": str(SHUT_WINDOW),
    }
    with Gateway(CHAT_POLICY, env=env) as gateway:
        assert gateway.process is not None
        before = rss_kib(gateway.process.pid)
        client = await RawClient.open(gateway.host, gateway.port, receive_buffer=4096)
        dropped_after = await flood_pings(client, FLOOD_SECONDS)
        grown = rss_kib(gateway.process.pid) - before
        client.close()
        assert grown < GROWTH_BOUND_KIB, f"server grew by {grown} KiB"
        assert dropped_after is not None and dropped_after < FLOOD_SECONDS
        assert "send_window_shut" in gateway.log
        assert (await raw_exchange(gateway.ws_url, [call("add", [1, 1])]))[0]["result"] == 2


async def test_pings_past_the_per_connection_limit_close_with_1008() -> None:
    env = {"NOWGATE_CLIENT_PING_LIMIT": "20", "NOWGATE_CLIENT_PING_WINDOW": "60"}
    with Gateway(CHAT_POLICY, env=env) as gateway:
        async with await RawClient.open(gateway.host, gateway.port) as honest:
            await honest.send(frame(PING, b"ok") * 20)  # within the limit: answered
            pongs = 0
            while pongs < 20:
                opcode, _ = await honest.read_frame()
                assert opcode in (PONG, TEXT)  # TEXT: the connect hook's notification
                pongs += opcode == PONG
        async with await RawClient.open(gateway.host, gateway.port) as flooder:
            await flooder.send(frame(PING, b"x") * 200)
            assert await flooder.close_code() == 1008
        assert "ping_flood" in gateway.log
        assert (await raw_exchange(gateway.ws_url, [call("add", [2, 2])]))[0]["result"] == 4
