"""Redis stopped (SIGTERM) and restarted under two real gateway processes that use it for
both the backplane and the rate limits, with clients connected and calling throughout.

While Redis is away: no connection is closed, handshakes and calls go on (rate limits count
per node, and still limit), local broadcasts and server->client calls go on, /readyz says
503 with the reason and /healthz stays 200. After it is back, without any restart: /readyz
is 200 again and cross-node delivery resumes within a few seconds, including what was
published during the outage; beyond the publish buffer's bound, the oldest messages are
dropped and each counted in `nowgate_backplane_dropped_total`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nowgate.client import CallError, NowClient, connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway, free_port
from tests.support.redis import RedisServer, redis_process

pytestmark = pytest.mark.redis

BUFFER_BYTES = 4096
RESUME_WITHIN = 6.0  # seconds: redis_retry_max (2 s) backoff + resubscription + flush


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_process() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(redis: RedisServer) -> Iterator[tuple[Gateway, Gateway]]:
    env = {
        "NOWGATE_REDIS_URL": redis.url,
        "NOWGATE_RATE_LIMIT_STORAGE": redis.url,
        "NOWGATE_BACKPLANE_BUFFER_BYTES": str(BUFFER_BYTES),
    }
    one = Gateway(CHAT_POLICY, env={**env, "NOWGATE_METRICS_PORT": str(free_port())})
    same_key = {"NOWGATE_SECRET_KEYS": one.env["NOWGATE_SECRET_KEYS"]}
    two = Gateway(
        CHAT_POLICY, env={**env, **same_key, "NOWGATE_METRICS_PORT": str(free_port())}
    )
    with one, two:
        yield one, two


@pytest.fixture
def outage(redis: RedisServer) -> Iterator[RedisServer]:
    """Redis is restarted after the test whatever happened."""
    yield redis
    if redis.process is None:
        redis.start()


def metric(gateway: Gateway, name: str, labels: str = "") -> float:
    text = httpx.get(f"http://127.0.0.1:{gateway.env['NOWGATE_METRICS_PORT']}/metrics").text
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def readyz(gateway: Gateway) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{gateway.base_url}/readyz")
    return answer.status_code, answer.json()


def status_of(url: str) -> int:
    return httpx.get(url).status_code


async def eventually(condition: Any, within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def listen(clients: dict[str, NowClient]) -> dict[str, list[str]]:
    heard: dict[str, list[str]] = {name: [] for name in clients}
    for name, client in clients.items():
        client.on("message", lambda room, text, name=name: heard[name].append(text))
    return heard


async def test_a_redis_restart_closes_nothing_and_cross_node_delivery_resumes(
    cluster: tuple[Gateway, Gateway], outage: RedisServer
) -> None:
    one, two = cluster
    async with (
        connect(one.ws_url) as alice,
        connect(one.ws_url) as carol,
        connect(two.ws_url) as bob,
    ):
        clients = {"alice": alice, "carol": carol, "bob": bob}
        heard = listen(clients)
        alice.on("answer", lambda question: "still here")
        await alice.call("shout", "before")
        await eventually(lambda: heard["bob"] and heard["carol"])
        lost = 'event="rate_limit_storage_lost"'
        lost_before = metric(one, "nowgate_security_events_total", lost)

        outage.stop()
        # Every inbound message and handshake is rate-limited through the lost storage.
        for number in range(20):
            assert await alice.call("add", number, 1) == number + 1
        assert await alice.call("shout", "during") == 1  # queued to carol, local to node one
        await eventually(lambda: "during" in heard["carol"])
        assert await carol.call("ask", alice.client_id, "there?") == "still here"
        async with connect(two.ws_url) as late, connect(one.ws_url, auth="user:x") as limited:
            assert await late.call("add", 1, 2) == 3
            for _ in range(3):
                await limited.call("limited")
            with pytest.raises(CallError) as refused:
                await limited.call("limited")  # per-node counters still limit
            assert refused.value.code == -32029
        assert metric(one, "nowgate_rate_limit_local") == 1
        assert metric(one, "nowgate_security_events_total", lost) == lost_before + 1
        await eventually(lambda: readyz(one)[0] == 503 and readyz(two)[0] == 503, within=10)
        body = readyz(one)[1]
        assert body["status"] == "backplane disconnected"
        assert body["rate_limits"] == "local"
        assert status_of(f"{one.base_url}/healthz") == 200
        assert status_of(f"{one.base_url}/nowjs/now.js") == 200  # slowapi counts locally too

        outage.start()
        await eventually(lambda: readyz(one)[0] == 200 and readyz(two)[0] == 200,
                         within=RESUME_WITHIN)
        await eventually(lambda: "during" in heard["bob"], within=RESUME_WITHIN)
        await alice.call("shout", "after")
        await eventually(lambda: "after" in heard["bob"])

        async def back_to_shared() -> bool:
            await alice.call("add", 0, 0)  # the shared storage is re-checked on traffic
            return metric(one, "nowgate_rate_limit_local") == 0

        for _ in range(int(RESUME_WITHIN / 0.25)):
            if await back_to_shared():
                break
            await asyncio.sleep(0.25)
        assert metric(one, "nowgate_rate_limit_local") == 0
        assert readyz(one)[1]["rate_limits"] == "configured"

        assert heard["bob"] == ["before", "during", "after"]
        assert heard["carol"] == ["before", "during", "after"]
        assert [client.close_code for client in clients.values()] == [None, None, None]
    assert "Traceback" not in one.log + two.log


async def test_publishing_through_a_long_outage_is_bounded_and_every_loss_counted(
    cluster: tuple[Gateway, Gateway], outage: RedisServer
) -> None:
    one, two = cluster
    async with connect(one.ws_url) as alice, connect(two.ws_url) as bob:
        heard = listen({"bob": bob})
        await alice.call("shout", "warm-up")
        await eventually(lambda: heard["bob"] == ["warm-up"])
        dropped_before = metric(one, "nowgate_backplane_dropped_total", 'reason="buffer_full"')

        outage.stop()
        sent = [f"message {number:03d}" for number in range(120)]
        for text in sent:
            await alice.call("shout", text)
        held = metric(one, "nowgate_backplane_buffered_bytes")
        assert 0 < held <= BUFFER_BYTES
        dropped = metric(one, "nowgate_backplane_dropped_total", 'reason="buffer_full"')
        dropped -= dropped_before
        assert dropped > 0

        outage.start()
        await eventually(lambda: len(heard["bob"]) == 1 + len(sent) - dropped,
                         within=RESUME_WITHIN)
        await asyncio.sleep(0.3)
        # The newest survive, in order; the oldest went, each one counted.
        assert heard["bob"] == ["warm-up", *sent[int(dropped):]]
        assert metric(one, "nowgate_backplane_buffered_bytes") == 0
        assert alice.close_code is None and bob.close_code is None


async def test_readiness_can_be_kept_through_an_outage_when_the_operator_says_so(
    outage: RedisServer,
) -> None:
    env = {"NOWGATE_REDIS_URL": outage.url, "NOWGATE_READY_REQUIRES_BACKPLANE": "false"}
    with Gateway(CHAT_POLICY, env=env) as lenient:
        assert readyz(lenient) == (200, {"status": "ready", "backplane": "connected",
                                         "rate_limits": "configured"})
        outage.stop()
        await eventually(lambda: readyz(lenient)[1]["backplane"] == "disconnected")
        assert readyz(lenient)[0] == 200
