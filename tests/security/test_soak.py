"""Threat: the attacks below the message limits, combined and sustained.

Attack: for two minutes, at once and over and over: ping floods from clients that never read
(4 KiB receive buffers), fragmented messages that never end, sockets stalled before their
handshake, malformed and oversized frames, handshakes with a forged Origin, and calls past a
function's rate limit.
Defence: everything in test_ping_flood.py, test_fragment_flood.py, test_stalled_sockets.py,
test_protocol_violations.py, test_lingering_close.py and test_log_floods.py, together.
Asserted: the server's resident memory stays within 64 MiB of what it was after warm-up;
an honest client on another address gets every answer, each within 5 s; nothing in the log
is an ERROR or a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException

from tests.conftest import CHAT_POLICY
from tests.security.test_ping_flood import flood_pings
from tests.security.test_protocol_violations import assert_no_error_lines
from tests.support.gateway import Gateway
from tests.support.rawws import CONT, TEXT, RawClient, frame, rss_kib
from tests.support.wire import HELLO, call, next_reply

SOAK_SECONDS = 120.0
RSS_BOUND_KIB = 64 * 1024
ANSWER_BOUND = 5.0
ATTACKER, HONEST = "127.0.0.3", "127.0.0.4"


async def _repeat(until: float, attack: Callable[[], Awaitable[None]]) -> None:
    while time.monotonic() < until:
        with contextlib.suppress(OSError, TimeoutError, WebSocketException, AssertionError):
            await attack()
        await asyncio.sleep(0.05)


async def test_a_mix_of_attacks_for_two_minutes_leaves_memory_bounded_and_calls_answered() -> (
    None
):
    env = {
        # Ten times the default, so that the attacks keep reaching the sockets.
        "NOWGATE_CONNECT_RATE_PER_ADDRESS": "600/minute",
        "NOWGATE_PING_TIMEOUT": "3",
        "NOWGATE_HEADER_READ_TIMEOUT": "2",
        "NOWGATE_MESSAGE_ASSEMBLY_TIMEOUT": "3",
        "NOWGATE_LINGER_TIMEOUT": "0.5",
        "NOWGATE_LOG_FORMAT": "json",
    }
    with Gateway(CHAT_POLICY, env=env) as gateway:
        assert gateway.process is not None
        pid, host, port = gateway.process.pid, gateway.host, gateway.port

        async def ping_flood() -> None:
            client = await RawClient.open(host, port, receive_buffer=4096, local_address=ATTACKER)
            await flood_pings(client, 6.0)
            client.close()

        async def fragment_flood() -> None:
            async with await RawClient.open(host, port, local_address=ATTACKER) as client:
                await client.send(frame(TEXT, b"", fin=False))
                for _ in range(200):
                    await client.send(frame(CONT, b"", fin=False) * 100)

        async def slow_fragments() -> None:
            async with await RawClient.open(host, port, local_address=ATTACKER) as client:
                await client.send(frame(TEXT, b"{", fin=False))
                await client.close_code(within=6)

        async def stalled_sockets() -> None:
            held: list[asyncio.StreamWriter] = []
            try:
                for _ in range(50):
                    _, writer = await asyncio.open_connection(
                        host, port, local_addr=(ATTACKER, 0)
                    )
                    held.append(writer)
                    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
                await asyncio.sleep(3)
            finally:
                for writer in held:
                    writer.close()

        async def malformed() -> None:
            bad = (frame(TEXT, b"\xff\xfe"), frame(TEXT, b" " * 1_000_000), frame(CONT, b"x"))
            for data in bad:
                async with await RawClient.open(host, port, local_address=ATTACKER) as client:
                    await client.send(data)
                    await client.close_code(within=3)

        async def forged_origin() -> None:
            with contextlib.suppress(InvalidStatus):
                async with ws_connect(
                    gateway.ws_url, origin="https://evil.example",  # type: ignore[arg-type]
                    local_addr=(ATTACKER, 0), open_timeout=5,
                ):
                    pass

        async def over_rate() -> None:
            async with ws_connect(gateway.ws_url, local_addr=(ATTACKER, 0)) as ws:
                await ws.send(HELLO)
                await next_reply(ws)
                for request_id in range(10):
                    await ws.send(call("limited", request_id=request_id))
                    await next_reply(ws)

        answers: list[float] = []

        async def honest(until: float) -> None:
            async with ws_connect(gateway.ws_url, local_addr=(HONEST, 0)) as ws:
                await ws.send(HELLO)
                await next_reply(ws)
                request_id = 0
                while time.monotonic() < until:
                    request_id += 1
                    started = time.monotonic()
                    await ws.send(call("add", [request_id, 1], request_id=request_id))
                    reply = await asyncio.wait_for(next_reply(ws), ANSWER_BOUND)
                    assert reply == {"jsonrpc": "2.0", "id": request_id, "result": request_id + 1}
                    answers.append(time.monotonic() - started)
                    await asyncio.sleep(0.5)

        peak = [0]

        async def sample(until: float) -> None:
            while time.monotonic() < until:
                peak[0] = max(peak[0], rss_kib(pid))
                await asyncio.sleep(0.5)

        # Warm up (imports, first connections), then measure from there.
        warm_until = time.monotonic() + 5
        await asyncio.gather(*(_repeat(warm_until, attack) for attack in (malformed, over_rate)))
        baseline = rss_kib(pid)
        until = time.monotonic() + SOAK_SECONDS
        attacks = [ping_flood, ping_flood, fragment_flood, slow_fragments, stalled_sockets,
                   malformed, forged_origin, over_rate]
        await asyncio.gather(
            honest(until), sample(until), *(_repeat(until, attack) for attack in attacks)
        )
        grown = peak[0] - baseline
        assert grown < RSS_BOUND_KIB, f"RSS grew by {grown} KiB"
        assert len(answers) >= SOAK_SECONDS / 2 * 0.5
        assert max(answers) < ANSWER_BOUND
        assert_no_error_lines(gateway.log)
