"""The gateway embedded in a FastAPI application of its own, served by plain uvicorn.

Two processes of tests/fixtures/embedded_app.py behind one real Redis: the application's
routes answer (before and after the gateway's router: no catch-all), its lifespan runs
around the gateway's, the WebSocket works, broadcasts cross the backplane, and the
sweeper closes connections whose credentials expired.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from nowgate.client import connect
from tests.support.gateway import Gateway
from tests.support.redis import redis_server
from tests.support.wire import close_code_of, next_reply

pytestmark = pytest.mark.redis


def uvicorn_app(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "tests.fixtures.embedded_app:app",
            "--host", host, "--port", str(port)]


@pytest.fixture(scope="module")
def nodes() -> Iterator[tuple[Gateway, Gateway]]:
    with redis_server() as url:
        env = {"NOWGATE_REDIS_URL": url, "NOWGATE_CREDENTIAL_CHECK_INTERVAL": "0.2"}
        first = Gateway(env=env, command=uvicorn_app)
        second = Gateway(
            env={**env, "NOWGATE_SECRET_KEYS": first.env["NOWGATE_SECRET_KEYS"]},
            command=uvicorn_app,
        )
        with first, second:
            yield first, second


async def test_the_applications_own_routes_answer_and_its_lifespan_ran(
    nodes: tuple[Gateway, Gateway],
) -> None:
    async with httpx.AsyncClient(base_url=nodes[0].base_url) as http:
        before = await http.get("/api/before")
        after = await http.get("/api/after")
        client = await http.get("/nowjs/now.js")
        missing = await http.get("/anything-else")
    assert before.json() == {"started": "by the application's own lifespan"}
    assert after.json() == {"route": "added after the gateway's router"}
    assert client.status_code == 200
    assert client.headers["content-type"].startswith("text/javascript")
    assert client.headers["x-content-type-options"] == "nosniff"
    assert missing.status_code == 404


async def test_a_broadcast_crosses_the_backplane_between_embedding_processes(
    nodes: tuple[Gateway, Gateway],
) -> None:
    first, second = nodes
    async with connect(first.ws_url) as sender, connect(second.ws_url) as remote:
        received: asyncio.Queue[Any] = asyncio.Queue()
        remote.on("message", lambda room, text: received.put_nowait((room, text)))
        assert await sender.call("add", 2, 3) == 5
        await sender.call("shout", "across nodes")
        assert await asyncio.wait_for(received.get(), 5) == ("everyone", "across nodes")


async def test_the_sweeper_closes_a_connection_whose_credentials_expired(
    nodes: tuple[Gateway, Gateway],
) -> None:
    hello = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello",
                        "params": {"protocol": 1, "token": None, "auth": "expires-in:1"}})
    async with ws_connect(nodes[0].ws_url) as ws:
        await ws.send(hello)
        assert "result" in await next_reply(ws)
        assert await close_code_of(ws) == 1008
