"""Shared variables through a Redis outage: written meanwhile, they converge when it is back.

While Redis is away a write applies on its node and reaches that node's clients; the other
nodes keep the value they had. When Redis returns the writer's node writes what it wrote
meanwhile (it wins, as the latest write), every node puts back what a Redis restarted empty
lost, and all of them reload: the other nodes, and a node started afterwards, converge.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from nowgate.client import connect
from tests.support.gateway import Gateway
from tests.support.redis import RedisServer, redis_process

pytestmark = pytest.mark.redis

POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "cluster.toml"


def pause(redis: RedisServer, paused: bool) -> None:
    """SIGSTOP / SIGCONT: a stalled Redis that keeps its data and its connections."""
    assert redis.process is not None
    redis.process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


async def eventually(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


REDIS_TIMEOUT = 1.0


def node(redis: RedisServer, name: str) -> Gateway:
    return Gateway(POLICY, env={
        "NOWGATE_REDIS_URL": redis.url, "NOWGATE_SECRET_KEYS": "s" * 40,
        "NOWGATE_REDIS_TIMEOUT": str(REDIS_TIMEOUT),
        "NOWGATE_CLUSTER_HEARTBEAT_INTERVAL": "0.5", "TEST_NODE_NAME": name})


async def test_variables_written_during_an_outage_reach_every_node_when_redis_is_back() -> None:
    with redis_process() as redis, node(redis, "one") as one, node(redis, "two") as two:
        async with connect(one.ws_url) as writer, connect(two.ws_url) as reader:
            await writer.call("join", "kept")
            await writer.call("setRoomTopic", "kept", "written before the outage")
            await writer.call("setScore", 1)
            await eventually(lambda: reader.vars["everyone"].get("score") == 1)

            redis.stop()
            await writer.call("setScore", 2)
            await eventually(lambda: writer.vars["everyone"].get("score") == 2)
            await asyncio.sleep(0.5)
            assert reader.vars["everyone"]["score"] == 1  # the other node keeps its value

            redis.start()  # empty: it lost every variable
            await eventually(lambda: reader.vars["everyone"].get("score") == 2)
            with node(redis, "three") as three:
                async with connect(three.ws_url) as late:
                    assert late.vars["everyone"]["score"] == 2
                    await late.call("join", "kept")
                    await eventually(lambda: late.vars["groups"].get("kept")
                                     == {"topic": "written before the outage"})


async def test_a_write_made_while_redis_stalled_wins_once_it_answers_again() -> None:
    with redis_process() as redis, node(redis, "one") as one, node(redis, "two") as two:
        async with connect(one.ws_url) as writer, connect(two.ws_url) as reader:
            await writer.call("setScore", 1)
            await eventually(lambda: reader.vars["everyone"].get("score") == 1)
            pause(redis, True)  # Redis keeps score = 1; the nodes' connections stay open
            try:
                await writer.call("setScore", 2)
                await eventually(lambda: writer.vars["everyone"].get("score") == 2)
                await asyncio.sleep(REDIS_TIMEOUT + 0.5)  # the write to Redis times out
            finally:
                pause(redis, False)
            await eventually(lambda: reader.vars["everyone"].get("score") == 2)
            await asyncio.sleep(0.5)
            assert writer.vars["everyone"]["score"] == 2
