"""Threat: a payload on the backplane channel that is not a node's envelope (corrupt, from
another program sharing the Redis, or forged) kills the node's receive loop, and the node
silently stops receiving cluster traffic (issue #10).

Defence: every received payload is checked for the envelope's shape; anything else, and any
envelope the hub cannot apply, is dropped, counted (`nowgate_backplane_dropped_total`) and
audited (`backplane_message_dropped`), and receiving goes on. What this node published
itself is never delivered back. Tested against a real redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from nowgate.backplane import CHANNEL, Envelope, RedisBackplane
from nowgate.metrics import METRICS
from tests.support.redis import RedisServer, redis_process

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_process() as server:
        yield server


@pytest.fixture
async def node(redis: RedisServer) -> AsyncIterator[tuple[RedisBackplane, list[Envelope]]]:
    received: list[Envelope] = []
    backplane = RedisBackplane(redis.url)
    await backplane.start(received.append)
    yield backplane, received
    await backplane.stop()


def dropped(reason: str) -> float:
    return METRICS.backplane_dropped.labels(reason)._value.get()


def envelope(frame: str, **extra: Any) -> bytes:
    return orjson.dumps({"node": "another-node", "frame": frame, "group": None, **extra})


async def until(condition: Any, within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_undecodable_payloads_are_dropped_and_counted_and_receiving_goes_on(
    redis: RedisServer, node: tuple[RedisBackplane, list[Envelope]]
) -> None:
    backplane, received = node
    before = dropped("undecodable")
    garbage = [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"frame": "no node"}',
        b'{"node": "x", "frame": 7}',
        orjson.dumps({"node": "x", "frame": "f", "variable": {"scope": "everyone"}}),
    ]
    async with Redis.from_url(redis.url) as publisher:
        for payload in garbage:
            await publisher.publish(CHANNEL, payload)
        await publisher.publish(CHANNEL, envelope("after the garbage"))
        await until(lambda: received)
    assert [e["frame"] for e in received] == ["after the garbage"]
    assert dropped("undecodable") - before == len(garbage)
    assert backplane.connected


async def test_a_message_the_hub_refuses_does_not_stop_the_loop(redis: RedisServer) -> None:
    received: list[Envelope] = []

    def deliver(envelope: Envelope) -> None:
        if envelope["frame"] == "poison":
            raise KeyError("scope")
        received.append(envelope)

    backplane = RedisBackplane(redis.url)
    await backplane.start(deliver)
    before = dropped("rejected")
    try:
        async with Redis.from_url(redis.url) as publisher:
            await publisher.publish(CHANNEL, envelope("poison"))
            await publisher.publish(CHANNEL, envelope("next"))
            await until(lambda: received)
        assert [e["frame"] for e in received] == ["next"]
        assert dropped("rejected") - before == 1
    finally:
        await backplane.stop()


async def test_own_messages_are_not_delivered_back(
    redis: RedisServer, node: tuple[RedisBackplane, list[Envelope]]
) -> None:
    backplane, received = node
    backplane.publish({"frame": "mine", "group": None, "without": None})
    async with Redis.from_url(redis.url) as publisher:
        await publisher.publish(CHANNEL, envelope("theirs"))
    await until(lambda: received)
    await asyncio.sleep(0.1)
    assert [e["frame"] for e in received] == ["theirs"]
