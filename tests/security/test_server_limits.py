"""Limits that cannot evaporate: the ASGI server, not the application, applies them.

Attack: the gateway's 64 KiB frame limit, its refusal of permessage-deflate (compression
bombs, memory per connection) and its pings live in uvicorn's configuration. An app served
the usual way (`uvicorn app.main:app`) gets uvicorn's defaults instead: 16 MiB frames and
deflate, silently, so a client can make every connection hold megabytes.

Defence: `nowgate serve` and `nowgate.serve(app, gateway, ...)` configure uvicorn with the
limits and mark each WebSocket scope as served with them. Production mode refuses the
handshake of a WebSocket from any other server (HTTP 403) and logs how to run the gateway;
development serves it and warns. Each mode is served here both ways, as real processes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.gateway import Gateway
from tests.support.wire import HELLO, close_code_of, next_reply

FRAME_100_KIB = '"' + "x" * (100 * 1024) + '"'


def plain_uvicorn(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "app.main:app", "--host", host, "--port", str(port)]


def embedded_with_nowgate_serve(host: str, port: int) -> list[str]:
    """app/main.py's own FastAPI app, run through `nowgate.serve()`."""
    return [sys.executable, "-m", "app.main"]


def production(gateway_port: int) -> dict[str, str]:
    return {"NOWGATE_MODE": "production",
            "NOWGATE_ALLOWED_ORIGINS": f"http://127.0.0.1:{gateway_port}"}


Command = Callable[[str, int], list[str]] | None


@contextmanager
def started(mode: str, command: Command = None) -> Iterator[Gateway]:
    gateway = Gateway(command=command)
    gateway.env.update({"HOST": gateway.host, "PORT": str(gateway.port)})
    if mode == "production":
        gateway.env.update(production(gateway.port))
    with gateway:
        yield gateway


@pytest.fixture(params=["development", "production"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


async def frame_too_big_closes_1009(gateway: Gateway) -> None:
    async with ws_connect(gateway.ws_url, origin=gateway.base_url) as ws:
        await ws.send(HELLO)
        assert "result" in await next_reply(ws)
        await ws.send(FRAME_100_KIB)
        assert await close_code_of(ws) == 1009


@pytest.mark.parametrize("command", [None, embedded_with_nowgate_serve],
                         ids=["nowgate serve", "nowgate.serve(app)"])
async def test_nowgate_serve_closes_a_100_kib_frame_with_1009(mode: str, command: Command) -> None:
    with started(mode, command) as gateway:
        await frame_too_big_closes_1009(gateway)


async def test_nowgate_serve_negotiates_no_compression(mode: str) -> None:
    with started(mode) as gateway:
        async with ws_connect(gateway.ws_url, origin=gateway.base_url) as ws:
            # The client offered permessage-deflate (websockets' default); none was agreed.
            assert ws.response is not None
            assert "sec-websocket-extensions" not in ws.response.headers


async def test_plain_uvicorn_in_production_refuses_websockets_saying_how_to_run() -> None:
    with started("production", plain_uvicorn) as gateway:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(gateway.ws_url, origin=gateway.base_url):
                pass
        assert refused.value.response.status_code == 403
        await asyncio.sleep(0.2)
        log = gateway.log
        assert "production mode refuses WebSockets" in log
        assert "nowgate serve" in log
        assert "Traceback" not in log
        # HTTP is served as usual: only the WebSocket needs the server's limits.
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{gateway.base_url}/nowjs/now.js")).status_code == 200


async def test_plain_uvicorn_in_development_serves_but_warns() -> None:
    with started("development", plain_uvicorn) as gateway:
        async with ws_connect(gateway.ws_url, origin=gateway.base_url) as ws:
            await ws.send(HELLO)
            assert "result" in await next_reply(ws)
        await asyncio.sleep(0.2)
        assert "does not apply the gateway's WebSocket limits" in gateway.log
