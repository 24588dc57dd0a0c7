"""The uvicorn coupling contained: nowgate.transport feature-detects the internals it uses.

If anything it needs is missing (another uvicorn version), the protocol behaves exactly like
uvicorn's own, the endpoint sends through ASGI, and one warning says so. Served here by a
real uvicorn in this process with one required attribute simulated missing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

import nowgate.transport as transport
from nowgate.application import create_app
from nowgate.policy import load_policy
from nowgate.server import WebSocketFastPath, uvicorn_config
from nowgate.settings import Settings
from nowgate.transport import DirectWriteProtocol, missing_internals
from tests.conftest import CHAT_POLICY
from tests.support.wire import HELLO, call, next_reply


async def test_every_internal_the_transport_uses_exists_in_the_installed_uvicorn() -> None:
    config = uvicorn.Config(app=None, ws=DirectWriteProtocol, interface="asgi3")  # type: ignore[arg-type]
    config.loaded = True
    config.loaded_app = None
    protocol = DirectWriteProtocol(config=config, server_state=_State(), app_state={})
    assert missing_internals(protocol) == []
    assert protocol.hardened


def test_a_missing_internal_is_reported_by_name() -> None:
    class Older:
        conn = object()

        def data_received(self, data: bytes) -> None: ...

    missing = missing_internals(Older())
    assert "writable" in missing and "close_timeout" in missing and "handle_ping" in missing
    assert "conn.fail" in missing
    assert "data_received" not in missing


class _State:
    connections: set[Any] = set()
    tasks: set[Any] = set()
    default_headers: list[Any] = []


@pytest.fixture
def fallback_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    # An internal this uvicorn does not have, as an older or newer one might not.
    monkeypatch.setattr(
        transport, "REQUIRED_ATTRIBUTES", (*transport.REQUIRED_ATTRIBUTES, "gone_in_this_uvicorn")
    )
    monkeypatch.setattr(transport, "_warned_missing", [])
    settings = Settings()
    app = create_app(settings, load_policy(CHAT_POLICY))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fast_path = WebSocketFastPath(app, app.state.gateway)
    config = uvicorn_config(fast_path, settings, "127.0.0.1", sock.getsockname()[1])
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def test_with_an_internal_missing_the_gateway_falls_back_to_asgi_sends(
    fallback_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    from websockets.asyncio.client import connect as ws_connect

    caplog.set_level(logging.WARNING, logger="nowgate.transport")
    url = f"ws://127.0.0.1:{fallback_server}/ws"
    async with ws_connect(url) as first, ws_connect(url) as second:
        for ws in (first, second):
            await ws.send(HELLO)
            await next_reply(ws)
        await first.send(call("add", [2, 3]))
        assert (await next_reply(first))["result"] == 5
        await second.send(call("shout", ["hello"]))
        assert (await next_reply(second))["result"] == 1
        message = await asyncio.wait_for(first.recv(), 5)
        assert "hello" in str(message)
    warnings = [record.getMessage() for record in caplog.records]
    assert any("gone_in_this_uvicorn" in text and "through ASGI" in text for text in warnings)
    assert not hasattr(WebSocketsSansIOProtocol, "gone_in_this_uvicorn")
