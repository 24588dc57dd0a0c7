"""Missed-message recovery across two gateway nodes on one real Redis.

The receiver is on node one through a relay that is cut mid-stream; it comes back on node
two, which reads node one's history from Redis (nowgate.shared_history), replays what node
one recorded after the client's position, then what node two delivered that node one never
recorded. Messages come from a sender on each node: the cluster orders messages per
publisher, so each sender's messages must arrive once each, in that sender's order.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest

from tests.support.gateway import Gateway
from tests.support.recovering import RecoveringClient
from tests.support.redis import redis_server
from tests.support.relay import Relay
from tests.test_recovery import RECOVERY_POLICY

pytestmark = pytest.mark.redis


@pytest.fixture
def cluster() -> Iterator[tuple[Gateway, Gateway]]:
    with redis_server() as url:
        first = Gateway(RECOVERY_POLICY, env={"NOWGATE_REDIS_URL": url})
        same_key = {"NOWGATE_SECRET_KEYS": first.env["NOWGATE_SECRET_KEYS"]}
        second = Gateway(RECOVERY_POLICY, env={"NOWGATE_REDIS_URL": url, **same_key})
        with first, second:
            yield first, second


class Senders:
    """One sender per node; remembers, per sender, what the receiver must get."""

    def __init__(self, near: RecoveringClient, far: RecoveringClient, receiver_id: str) -> None:
        self.near, self.far, self.receiver_id = near, far, receiver_id
        self.expected: dict[str, list[str]] = {"near": [], "far": []}

    async def send(self, start: int, stop: int, pause: float = 0.0) -> None:
        for number in range(start, stop):
            kind = number % 4
            if kind == 0:
                await self.far.call("shout", f"far {number}")
                self.expected["far"].append(f"far {number}")
            elif kind == 1:
                await self.far.call("say", "red", f"far {number}")
                self.expected["far"].append(f"far {number}")
            elif kind == 2:
                await self.near.call("shout", f"near {number}")
                self.expected["near"].append(f"near {number}")
            elif await self.near.call("tell", self.receiver_id, f"near {number}"):
                self.expected["near"].append(f"near {number}")
            if pause:
                await asyncio.sleep(pause)

    def check(self, texts: list[str]) -> None:
        assert len(texts) == len(set(texts)), "a message arrived twice"
        for name, expected in self.expected.items():
            assert [text for text in texts if text.startswith(name)] == expected, name


async def connected_pair(
    first: Gateway, second: Gateway, relay: Relay
) -> tuple[RecoveringClient, Senders]:
    near, far, receiver = RecoveringClient(), RecoveringClient(), RecoveringClient()
    await near.connect(first.ws_url)
    await far.connect(second.ws_url)
    await receiver.connect(relay.ws_url)
    await receiver.call("join", "red")
    assert receiver.client_id is not None
    return receiver, Senders(near, far, receiver.client_id)


async def test_a_client_cut_off_from_one_node_recovers_on_the_other(
    cluster: tuple[Gateway, Gateway],
) -> None:
    first, second = cluster
    async with Relay(first.port) as relay:
        receiver, senders = await connected_pair(first, second, relay)
        stream = asyncio.create_task(senders.send(0, 60, pause=0.005))
        await receiver.wait_for(lambda: len(receiver.texts()) >= 15)
        relay.cut()  # and refuses new connections until heal()
        await receiver.closed()
        await stream
        await senders.send(60, 100)
        await senders.far.call("setScore", 9)

        resumed = asyncio.create_task(receiver.connect(second.ws_url))
        await senders.send(100, 140, pause=0.002)
        welcome = await resumed
        assert welcome["resumed"] is True and welcome["client_id"] == senders.receiver_id
        assert welcome["recovered"] is True, welcome["recovery"]
        await senders.send(140, 150)
        last = senders.expected["far"][-1]
        await receiver.wait_for(lambda: last in receiver.texts())
        await asyncio.sleep(0.3)
        senders.check(receiver.texts())
        assert ("now.set", {"scope": "everyone", "path": "score", "value": 9}) in receiver.messages
        for client in (receiver, senders.near, senders.far):
            await client.close()


async def test_after_its_node_died_a_client_recovers_on_the_other(
    cluster: tuple[Gateway, Gateway],
) -> None:
    first, second = cluster
    async with Relay(first.port) as relay:
        receiver, senders = await connected_pair(first, second, relay)
        await senders.send(0, 20)
        await receiver.wait_for(lambda: len(receiver.texts()) >= 10)
        # A node copies its history to Redis asynchronously: what it recorded in its last
        # moments dies with it (the client is then told "lost"). Give it that moment.
        await asyncio.sleep(0.5)
        first.stop(signal.SIGKILL)  # no drain, no goodbye: the node is gone
        await receiver.closed()
        senders.near = senders.far  # the near sender went down with its node
        await senders.far.call("shout", "far after the crash")
        senders.expected["far"].append("far after the crash")

        welcome = await receiver.connect(second.ws_url)
        assert welcome["resumed"] is True and welcome["recovered"] is True, welcome["recovery"]
        await receiver.wait_for(lambda: "far after the crash" in receiver.texts())
        await asyncio.sleep(0.3)
        texts = receiver.texts()
        assert len(texts) == len(set(texts))
        assert [text for text in texts if text.startswith("far")] == senders.expected["far"]
        await receiver.close()
        await senders.far.close()


async def test_an_unknown_epoch_is_not_recovered_on_another_node(
    cluster: tuple[Gateway, Gateway],
) -> None:
    first, second = cluster
    receiver = RecoveringClient()
    await receiver.connect(first.ws_url)
    await receiver.close()
    welcome = await receiver.connect(
        second.ws_url, recover={"epoch": "e-0123456789abcdef", "seq": 1}
    )
    assert welcome["resumed"] is True and welcome["recovered"] is False
    assert welcome["recovery"]["reason"] == "unknown_epoch"
    await receiver.close()
