"""Threat: an attacker chooses how fast the server's log grows.

Attack: handshakes refused for a bad Origin were not rate limited, and each wrote an audit
WARNING plus uvicorn's handshake line; a rate-limited client wrote one audit line per refused
message. Either fills a disk or drowns the events that matter.
Defence: refused handshakes count against the per-address connection budget
(`connect_rate_per_address`), like accepted ones; audit events an attacker can repeat at will
are aggregated (nowgate.logs): one line per address per `audit_aggregation_window`, the next
one carrying the count of events since the previous line, while the
`nowgate_security_events_total` metric counts every event; uvicorn's and websockets'
per-handshake INFO lines are filtered out.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway, free_port
from tests.support.wire import HELLO, call, next_reply

WINDOW = 3.0
ATTEMPTS = 40


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    metrics_port = free_port()
    env = {
        "NOWGATE_LOG_FORMAT": "json",
        "NOWGATE_AUDIT_AGGREGATION_WINDOW": str(WINDOW),
        "NOWGATE_METRICS_PORT": str(metrics_port),
        "NOWGATE_CONNECT_RATE_PER_ADDRESS": "1000/minute",
    }
    with Gateway(CHAT_POLICY, env=env) as running:
        running.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"  # type: ignore[attr-defined]
        yield running


def events(gateway: Gateway, name: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in gateway.log.splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry.get("event") == name]


def metric(gateway: Gateway, event: str) -> float:
    text = httpx.get(gateway.metrics_url, timeout=5).text  # type: ignore[attr-defined]
    found = re.search(rf'nowgate_security_events_total{{event="{event}"}} ([0-9.]+)', text)
    return float(found.group(1)) if found else 0.0


async def refused(gateway: Gateway, origin: str = "https://evil.example") -> int:
    try:
        async with ws_connect(gateway.ws_url, origin=origin, open_timeout=5):  # type: ignore[arg-type]
            return 101
    except InvalidStatus as status:
        return status.response.status_code


async def test_refused_handshakes_are_one_line_per_window_and_each_counted(
    gateway: Gateway,
) -> None:
    lines_before = len(gateway.log.splitlines())
    for _ in range(ATTEMPTS):
        assert await refused(gateway) == 403
    await asyncio.sleep(0.3)
    assert [entry.get("count") for entry in events(gateway, "origin_refused")] == ["1"]
    assert metric(gateway, "origin_refused") == ATTEMPTS
    assert len(gateway.log.splitlines()) - lines_before <= 2  # no uvicorn line per handshake
    await asyncio.sleep(WINDOW)
    assert await refused(gateway) == 403
    await asyncio.sleep(0.3)
    # The next window's first line reports what the previous one folded in.
    assert [entry.get("count") for entry in events(gateway, "origin_refused")] == [
        "1", str(ATTEMPTS)
    ]


async def test_rate_limited_calls_are_one_line_per_window_and_each_counted(
    gateway: Gateway,
) -> None:
    async with ws_connect(gateway.ws_url) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        for request_id in range(15):  # under the violation limit (20)
            await ws.send(call("limited", request_id=request_id))
            await next_reply(ws)
    await asyncio.sleep(0.3)
    assert len(events(gateway, "rate_limited")) == 1
    assert metric(gateway, "rate_limited") == 12  # `limited` allows 3 a minute


async def test_refused_handshakes_count_against_the_address_budget() -> None:
    env = {"NOWGATE_CONNECT_RATE_PER_ADDRESS": "10/minute"}
    with Gateway(CHAT_POLICY, env=env) as gateway:
        for _ in range(10):
            assert await refused(gateway) == 403
        # The right origin now, but the budget is spent: accepted, then closed with 1013.
        with pytest.raises(ConnectionClosed) as closed:
            async with ws_connect(gateway.ws_url) as ws:
                await ws.send(HELLO)
                await next_reply(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


async def test_unparsable_http_requests_are_one_line_per_window_and_each_counted(
    gateway: Gateway,
) -> None:
    lines_before = len(gateway.log.splitlines())
    for _ in range(ATTEMPTS):
        reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
        writer.write(b"GET /\x00 HTTP/1.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(100), 5)).startswith(b"HTTP/1.1 400")
        writer.close()
    await asyncio.sleep(0.3)
    assert len(events(gateway, "bad_http_request")) == 1
    assert metric(gateway, "bad_http_request") == ATTEMPTS
    assert len(gateway.log.splitlines()) - lines_before <= 2  # not uvicorn's line per request
