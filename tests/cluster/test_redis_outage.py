"""Shared variables through a Redis outage: written meanwhile, they converge when it is back.

While Redis is away a write applies on its node and reaches that node's clients; the other
nodes keep the value they had. When Redis returns the writer's node writes what it wrote
meanwhile (it wins, as the latest write), every node puts back what a Redis restarted empty
lost, and all of them reload: the other nodes, and a node started afterwards, converge.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nowgate.client import connect
from nowgate.cluster import COMMAND_TIMEOUT
from tests.support.gateway import Gateway, free_port, terminate

pytestmark = pytest.mark.redis

POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "cluster.toml"


class Restartable:
    """A non-persistent redis-server that can be stopped and started on the same port."""

    def __init__(self, directory: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def pause(self, pause: bool) -> None:
        """SIGSTOP / SIGCONT: a stalled Redis that keeps its data and its connections."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if pause else signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, signal.SIGTERM, 10)
            self.process = None


@contextmanager
def restartable_redis() -> Iterator[Restartable]:
    with tempfile.TemporaryDirectory(prefix="nowgate-redis-") as directory:
        server = Restartable(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


async def eventually(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def node(redis: Restartable, name: str) -> Gateway:
    return Gateway(POLICY, env={
        "NOWGATE_REDIS_URL": redis.url, "NOWGATE_SECRET_KEYS": "s" * 40,
        "NOWGATE_CLUSTER_HEARTBEAT_INTERVAL": "0.5", "TEST_NODE_NAME": name})


async def test_variables_written_during_an_outage_reach_every_node_when_redis_is_back() -> None:
    with restartable_redis() as redis, node(redis, "one") as one, node(redis, "two") as two:
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
    with restartable_redis() as redis, node(redis, "one") as one, node(redis, "two") as two:
        async with connect(one.ws_url) as writer, connect(two.ws_url) as reader:
            await writer.call("setScore", 1)
            await eventually(lambda: reader.vars["everyone"].get("score") == 1)
            redis.pause(True)  # Redis keeps score = 1; the nodes' connections stay open
            try:
                await writer.call("setScore", 2)
                await eventually(lambda: writer.vars["everyone"].get("score") == 2)
                await asyncio.sleep(COMMAND_TIMEOUT + 0.5)  # the write to Redis times out
            finally:
                redis.pause(False)
            await eventually(lambda: reader.vars["everyone"].get("score") == 2)
            await asyncio.sleep(0.5)
            assert writer.vars["everyone"]["score"] == 2
