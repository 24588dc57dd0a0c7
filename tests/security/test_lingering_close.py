"""Threat: "message too big" indistinguishable from a network failure behind a proxy.

Attack (or accident): a frame over the 64 KiB limit, sent through nginx as deploy/ runs it.
The gateway sent its 1009 close frame and closed the socket with the rest of the frame still
unread; the kernel answered the unread data with a TCP reset, and nginx, still forwarding,
tore down the client's side before relaying the close frame: 2 to 4 of 4 attempts ended as
1006. A client cannot tell its mistake from an outage (now.js reconnects and may resend).
Defence: a lingering close (nowgate.transport): after a close frame sent for the client's
fault the gateway reads and discards for `linger_timeout` seconds and at most
`linger_max_bytes` bytes before it closes the socket. Frames from 64 KiB + 1 to 17 MiB, via
the real nginx of deploy/ and directly: every attempt must end in 1009. With
NOWGATE_LINGER_TIMEOUT=0 (no lingering) attempts through nginx end in 1006.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import CHAT_POLICY
from tests.deploy.test_nginx import Stack, proxied_gateway
from tests.support.gateway import Gateway
from tests.support.wire import HELLO, next_reply

SIZES = [64 * 1024 + 1, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 17 * 1024 * 1024]
ATTEMPTS_PER_SIZE = 2


async def close_code_after_sending(url: str, size: int, **options: Any) -> int | None:
    """Open a session, send one text frame of `size` bytes, return the close code seen."""
    async with ws_connect(url, max_size=None, open_timeout=5, close_timeout=5, **options) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        try:
            await ws.send("x" * size)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except ConnectionClosed:
            pass
        code: int | None = ws.close_code
        return code


async def outcomes(url: str, attempts: int, **options: Any) -> list[tuple[int, int | None]]:
    return [
        (size, await close_code_after_sending(url, size, **options))
        for size in SIZES
        for _ in range(attempts)
    ]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with proxied_gateway(NOWGATE_CONNECT_RATE_PER_ADDRESS="1000/minute") as pair:
        yield pair


@pytest.mark.nginx
async def test_oversized_frames_through_nginx_end_in_1009(stack: Stack) -> None:
    _, nginx = stack
    seen = await outcomes(
        nginx.wss_url, ATTEMPTS_PER_SIZE, origin=nginx.origin, ssl=nginx.ssl_context())
    assert [code for _, code in seen] == [1009] * len(seen), seen


async def test_oversized_frames_sent_directly_end_in_1009() -> None:
    with Gateway(CHAT_POLICY) as gateway:
        seen = await outcomes(gateway.ws_url, 1)
        assert [code for _, code in seen] == [1009] * len(seen), seen
        assert "frame_too_big" in gateway.log
