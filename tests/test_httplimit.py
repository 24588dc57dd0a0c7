"""The HTTP rate limit with Redis storage never blocks the event loop that serves WebSockets.

slowapi checks through `limits`' synchronous Redis storage: a blocking round trip. Made on
the event loop, a slow or paused Redis froze every WebSocket and every probe of the node
for as long as it took; `nowgate.httplimit` runs the check in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect as ws_connect

from tests.support.gateway import Gateway
from tests.support.redis import redis_server
from tests.support.wire import HELLO, next_reply

pytestmark = pytest.mark.redis

PAUSE_MS = 4000


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    with redis_server() as url, Gateway(env={"NOWGATE_RATE_LIMIT_STORAGE": url}) as gateway:
        yield gateway, url


async def test_a_paused_redis_delays_limited_requests_but_not_websockets_or_probes(
    gateway: tuple[Gateway, str],
) -> None:
    node, url = gateway
    async with (
        httpx.AsyncClient(base_url=node.base_url, timeout=10) as http,
        ws_connect(node.ws_url) as ws,
        Redis.from_url(url) as redis,
    ):
        await ws.send(HELLO)
        assert "result" in await next_reply(ws)
        assert (await http.get("/nowjs/now.js")).status_code == 200  # the limiter is connected

        await redis.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
        limited = asyncio.create_task(http.get("/nowjs/now.js"))
        await asyncio.sleep(0.3)  # the limited request now waits on Redis
        assert not limited.done()

        # The same process answers its WebSocket and its probes while Redis is paused.
        pong = await ws.ping()
        await asyncio.wait_for(pong, PAUSE_MS / 2000)
        probe = await asyncio.wait_for(http.get("/healthz"), PAUSE_MS / 2000)
        assert probe.status_code == 200
        assert not limited.done()

        assert (await limited).status_code == 200  # and the limited one is served after
