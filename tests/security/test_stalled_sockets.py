"""Threat: sockets that never finish their handshake exhaust file descriptors.

Attack: connect and send nothing, or part of the HTTP headers, or part of a WebSocket
upgrade, and wait. uvicorn kept each open indefinitely (still open after 180 s: its
keep-alive timeout stops at the first byte), and no per-address limit saw a socket before
its handshake completed: a few thousand such sockets from one address exhaust the server's
file descriptors when it is exposed without a proxy.
Defence (nowgate.admission): a header read timeout (`header_read_timeout`), a handshake
deadline (`handshake_timeout`) and a cap on open sockets per client address counted from
accept (`max_sockets_per_address`, trusted proxies exempt), the same defaults in development
and production; each refusal is audited (aggregated per address). An honest client from
another address is served throughout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.wire import HELLO, call, next_reply

HEADER_TIMEOUT = 1.0
HANDSHAKE_TIMEOUT = 2.0
SOCKET_CAP = 20
ATTACKER, HONEST = "127.0.0.3", "127.0.0.4"

STALLS = {
    "nothing": b"",
    "partial-request-line": b"GET /ws HT",
    "partial-headers": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    "partial-upgrade": (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
    ),
}


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    env = {
        "NOWGATE_HEADER_READ_TIMEOUT": str(HEADER_TIMEOUT),
        "NOWGATE_MAX_SOCKETS_PER_ADDRESS": str(SOCKET_CAP),
        "NOWGATE_HANDSHAKE_TIMEOUT": str(HANDSHAKE_TIMEOUT),
        "NOWGATE_LOG_FORMAT": "json",
    }
    with Gateway(CHAT_POLICY, env=env) as running:
        yield running


async def open_from(
    gateway: Gateway, address: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(gateway.host, gateway.port, local_addr=(address, 0))


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        while await asyncio.wait_for(reader.read(4096), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def honest_call(gateway: Gateway) -> object:
    async with ws_connect(gateway.ws_url, local_addr=(HONEST, 0), open_timeout=5) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        await ws.send(call("add", [5, 6]))
        return (await next_reply(ws))["result"]


@pytest.mark.parametrize("name", STALLS)
async def test_a_stalled_socket_is_closed_after_the_header_timeout(
    gateway: Gateway, name: str
) -> None:
    reader, writer = await open_from(gateway, ATTACKER)
    started = time.monotonic()
    writer.write(STALLS[name])
    assert await closed_within(reader, HEADER_TIMEOUT + 4)
    assert time.monotonic() - started >= HEADER_TIMEOUT * 0.9
    writer.close()
    assert "header_timeout" in gateway.log


async def test_sockets_past_the_per_address_cap_are_dropped_at_accept(gateway: Gateway) -> None:
    await asyncio.sleep(HEADER_TIMEOUT + 1)  # earlier tests' sockets are gone
    held = [await open_from(gateway, ATTACKER) for _ in range(SOCKET_CAP)]
    extra_reader, extra_writer = await open_from(gateway, ATTACKER)
    # Past the cap: dropped at once, long before the header timeout.
    assert await closed_within(extra_reader, HEADER_TIMEOUT / 2)
    assert await honest_call(gateway) == 11  # another address is not affected
    for _, writer in held:
        writer.close()
    extra_writer.close()
    assert '"event": "socket_limit"' in gateway.log
    # Once they are closed the address may connect again.
    await asyncio.sleep(0.3)
    reader, writer = await open_from(gateway, ATTACKER)
    assert not await closed_within(reader, HEADER_TIMEOUT / 2)
    writer.close()


async def test_an_open_session_outlives_the_handshake_deadline(gateway: Gateway) -> None:
    async with ws_connect(gateway.ws_url, local_addr=(HONEST, 0), open_timeout=5) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        await asyncio.sleep(HANDSHAKE_TIMEOUT + 1)
        await ws.send(call("add", [1, 2]))
        assert (await next_reply(ws))["result"] == 3


async def test_an_upgrade_not_answered_by_the_deadline_is_dropped() -> None:
    # The gateway answers every upgrade at once, so the deadline is driven on the protocol
    # itself: a WebSocket whose handshake is still unanswered when the deadline passes.
    import uvicorn

    from nowgate.transport import DirectWriteProtocol

    class State:
        connections: set[object] = set()
        tasks: set[object] = set()
        default_headers: list[object] = []

    class Transport:
        aborted = False

        def abort(self) -> None:
            self.aborted = True

    config = uvicorn.Config(app=None, interface="asgi3")  # type: ignore[arg-type]
    config.loaded, config.loaded_app = True, None
    protocol = DirectWriteProtocol(config=config, server_state=State(), app_state={})
    protocol.transport = Transport()  # type: ignore[assignment]
    protocol.client = (ATTACKER, 5000)
    protocol.handshake_deadline(0.05)
    await asyncio.sleep(0.2)
    assert protocol.transport.aborted  # type: ignore[attr-defined]
    answered = DirectWriteProtocol(config=config, server_state=State(), app_state={})
    answered.transport = Transport()  # type: ignore[assignment]
    answered.handshake_complete = True
    answered.handshake_deadline(0.05)
    await asyncio.sleep(0.2)
    assert not answered.transport.aborted  # type: ignore[attr-defined]
