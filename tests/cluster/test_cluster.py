"""Three gateway processes on one real Redis behind a real nginx behave as one gateway.

Clients connect through nginx (deploy/nginx.conf with an upstream of the three nodes) and
are kept on the node a test wants by asking each connection which node it reached; nodes
started later in a test are reached directly. Presence heartbeats every 0.5 s here, so the
stated bound for a dead node's clients to disappear is 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nowgate.client import CallError, NowClient, connect
from tests.support.gateway import Gateway
from tests.support.nginx import Nginx
from tests.support.redis import redis_server

pytestmark = [pytest.mark.redis, pytest.mark.nginx]

POLICY = Path(__file__).resolve().parents[1] / "fixtures" / "cluster.toml"
HEARTBEAT = 0.5
PRESENCE_BOUND = 2 * HEARTBEAT
NODES = ("one", "two", "three")


@dataclass
class Cluster:
    redis_url: str
    key: str
    nodes: dict[str, Gateway]
    nginx: Nginx
    extra: list[Gateway] = field(default_factory=list)

    def node_env(self, name: str) -> dict[str, str]:
        return {
            "NOWGATE_REDIS_URL": self.redis_url,
            "NOWGATE_SECRET_KEYS": self.key,  # one key: a token from any node verifies anywhere
            "NOWGATE_CLUSTER_HEARTBEAT_INTERVAL": str(HEARTBEAT),
            "TEST_NODE_NAME": name,
        }

    def start_node(self, name: str) -> Gateway:
        """Another node of the same cluster, outside nginx (reached directly)."""
        gateway = Gateway(POLICY, env=self.node_env(name))
        self.extra.append(gateway)
        return gateway.start()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_server() as url:
        key = "k" * 40
        probe = Cluster(url, key, {}, None)  # type: ignore[arg-type]
        nodes = {name: Gateway(POLICY, env=probe.node_env(name)) for name in NODES}
        nginx = Nginx(upstream_port=[gateway.port for gateway in nodes.values()])
        cluster = Cluster(url, key, nodes, nginx)
        try:
            with contextlib.ExitStack() as stack:
                for gateway in nodes.values():
                    stack.enter_context(gateway)
                stack.enter_context(nginx)
                yield cluster
                for gateway in cluster.extra:
                    gateway.__exit__(None, None, None)
        finally:
            nginx.cleanup()


@contextlib.asynccontextmanager
async def on_node(cluster: Cluster, name: str, **options: Any) -> AsyncIterator[NowClient]:
    """A client connected through nginx that landed on node `name`."""
    nginx = cluster.nginx
    for _ in range(40):
        async with connect(nginx.wss_url, ssl=nginx.ssl_context(), open_timeout=5,
                           **options) as client:
            if await client.call("node") == name:
                yield client
                return
    raise AssertionError(f"nginx never routed a connection to node {name}")


async def eventually(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def listen(client: NowClient) -> list[list[str]]:
    """Every `message(room, text)` the server sends this client, in order."""
    got: list[list[str]] = []
    client.on("message", lambda room, text: got.append([room, text]))
    return got


def record_sets(client: NowClient, path: str) -> list[Any]:
    """Every value `now.set` gives the variable `path`, in order (past the public API: the
    client keeps no history of its own)."""
    values: list[Any] = []
    apply = client._apply_variable

    def recording(method: str, params: dict[str, Any]) -> None:
        if method == "now.set" and params.get("path") == path:
            values.append(params.get("value"))
        apply(method, params)

    client._apply_variable = recording  # type: ignore[method-assign]
    return values


async def test_broadcasts_and_groups_reach_every_receiver_once_and_never_the_sender(
    cluster: Cluster,
) -> None:
    async with (
        on_node(cluster, "one") as sender,
        on_node(cluster, "one") as neighbour,
        on_node(cluster, "two") as second,
        on_node(cluster, "three") as third,
    ):
        heard = {client: listen(client) for client in (sender, neighbour, second, third)}
        await sender.call("join", "ops")
        await third.call("join", "ops")
        await sender.call("shout", "to everyone")
        await sender.call("say", "ops", "to ops")

        async def delivered() -> bool:
            return len(heard[third]) == 2 and bool(heard[neighbour] and heard[second])

        await eventually(delivered)
        await asyncio.sleep(0.3)  # time for any duplicate to arrive
        assert heard[sender] == []
        assert heard[neighbour] == [["everyone", "to everyone"]]
        assert heard[second] == [["everyone", "to everyone"]]
        assert heard[third] == [["everyone", "to everyone"], ["ops", "to ops"]]


async def test_a_call_to_a_client_on_another_node_returns_its_validated_answer(
    cluster: Cluster,
) -> None:
    async with on_node(cluster, "one") as asker, on_node(cluster, "three") as target:
        target.on("answer", lambda question: f"{question}? yes")
        heard = listen(target)
        assert await asker.call("ask", target.client_id, "cluster") == "cluster? yes"
        # The answer is validated against the client function's type, as on one node.
        target.on("answer", lambda question: 42)
        with pytest.raises(CallError) as invalid:
            await asker.call("ask", target.client_id, "cluster")
        assert invalid.value.code == -32603
        # A notification reaches it too, and an unknown id is not found anywhere.
        assert await asker.call("poke", target.client_id, "psst") is True
        await eventually(lambda: _true(heard == [["direct", "psst"]]))
        assert await asker.call("ask", "c-nobody", "hello") == "<gone>"


async def _true(value: bool) -> bool:
    return value


async def test_a_token_connected_on_another_node_gets_a_fresh_identity(
    cluster: Cluster,
) -> None:
    async with on_node(cluster, "one") as original:
        token, client_id = original.token, original.client_id
        async with on_node(cluster, "two", token=token) as duplicate:
            assert not duplicate.resumed
            assert duplicate.client_id != client_id
    # Once the original has gone, the token resumes its identity on any node.
    async def resumes() -> bool:
        async with on_node(cluster, "three", token=token) as moved:
            return moved.resumed and moved.client_id == client_id

    await eventually(resumes)


async def test_shared_variables_reach_late_joiners_on_any_node_and_new_nodes(
    cluster: Cluster,
) -> None:
    async with on_node(cluster, "one") as writer:
        await writer.call("join", "late")
        await writer.call("setRoomTopic", "late", "written before anyone else joined")
        await writer.call("setScore", 7)
        # Node three has no member of the group: a joiner there still gets its variables.
        async with on_node(cluster, "three") as joiner:
            assert joiner.vars["everyone"]["score"] == 7
            await joiner.call("join", "late")
            await eventually(lambda: _true(
                joiner.vars["groups"].get("late") == {"topic": "written before anyone else joined"}
            ))
        # A node started after the writes serves them in its welcome and on join.
        newcomer = cluster.start_node("four")
        async with connect(newcomer.ws_url) as fresh:
            scores = record_sets(fresh, "score")
            assert fresh.vars["everyone"]["score"] == 7
            await fresh.call("join", "late")
            await eventually(lambda: _true(
                fresh.vars["groups"].get("late") == {"topic": "written before anyone else joined"}
            ))
            # Later writes reach it, in order.
            for score in range(8, 20):
                await writer.call("setScore", score)
            await eventually(lambda: _true(fresh.vars["everyone"]["score"] == 19))
            assert scores == sorted(scores) and scores[-1] == 19


async def test_writes_to_a_variable_reach_every_node_in_order_without_going_back(
    cluster: Cluster,
) -> None:
    async with (
        on_node(cluster, "one") as writer,
        on_node(cluster, "one") as neighbour,
        on_node(cluster, "two") as remote,
    ):
        counts = {client: record_sets(client, "count") for client in (writer, neighbour, remote)}
        await writer.call("countTo", 20)
        for client in (neighbour, remote):
            await eventually(
                lambda client=client: _true(client.vars["everyone"].get("count") == 20))
        await asyncio.sleep(0.3)  # time for a stale value to arrive
        for values in counts.values():
            assert values == sorted(values) and values[-1] == 20, str(values)


async def test_a_group_s_variables_go_once_it_has_no_member_on_any_node(
    cluster: Cluster,
) -> None:
    async with on_node(cluster, "one") as writer, on_node(cluster, "two") as member:
        await writer.call("join", "fleeting")
        await member.call("join", "fleeting")
        await writer.call("setRoomTopic", "fleeting", "soon gone")
        await writer.call("leave", "fleeting")
        # A member on another node keeps the group, and its variables, alive.
        await asyncio.sleep(PRESENCE_BOUND + HEARTBEAT)
        async with on_node(cluster, "three") as joiner:
            await joiner.call("join", "fleeting")
            await eventually(lambda: _true(
                joiner.vars["groups"].get("fleeting") == {"topic": "soon gone"}))
            await joiner.call("leave", "fleeting")
        await member.call("leave", "fleeting")
    # No member anywhere: within the bound (plus one heartbeat to notice) they are gone on
    # every node, so the room and its state do not pile up (as on one node).
    await asyncio.sleep(PRESENCE_BOUND + 2 * HEARTBEAT)
    for name in NODES:
        async with on_node(cluster, name) as late:
            await late.call("join", "fleeting")
            await asyncio.sleep(0.2)
            assert "fleeting" not in late.vars["groups"]


async def test_a_killed_node_leaves_presence_within_the_bound_and_its_clients_answer_at_once(
    cluster: Cluster,
) -> None:
    doomed = cluster.start_node("doomed")
    async with (
        on_node(cluster, "one") as observer,
        connect(doomed.ws_url, reconnect=False) as victim,
    ):
        victim.on("answer", lambda question: "alive")
        await victim.call("join", "watch")

        async def listed() -> bool:
            present = await observer.call("present")
            return victim.client_id in present and victim.client_id in await observer.call(
                "members", "watch")

        await eventually(listed)
        assert await observer.call("ask", victim.client_id, "there?") == "alive"

        doomed.stop(signal.SIGKILL)
        killed = time.monotonic()
        # Still listed for up to the bound, but a call to it fails at once, not at the 2 s
        # timeout: its node has no subscriber any more.
        with pytest.raises(CallError):
            await observer.call("ask", victim.client_id, "there?")
        assert time.monotonic() - killed < 1.0

        async def gone() -> bool:
            present = await observer.call("present")
            return victim.client_id not in present and victim.client_id not in (
                await observer.call("members", "watch"))

        await eventually(gone, within=PRESENCE_BOUND + 2.0)
        # Polling adds at most one round trip to the stated bound.
        assert time.monotonic() - killed <= PRESENCE_BOUND + 0.5


async def test_the_drag_lock_holds_across_nodes(cluster: Cluster) -> None:
    async with on_node(cluster, "one") as first, on_node(cluster, "two") as second:
        for client in (first, second):
            client.on("updatePosition", lambda position: None)
        assert (await first.call("grab"))["granted"] is True
        refused = await second.call("grab")
        assert refused["granted"] is False and refused["holder"] == first.client_id
        assert await second.call("syncPosition", {"left": 5, "top": 5}) is False
        assert await first.call("syncPosition", {"left": 50, "top": 60}) is True
        await first.call("release")
        await eventually(lambda: _true(
            second.vars["everyone"].get("position") == {"left": 50.0, "top": 60.0}))
        assert (await second.call("grab"))["granted"] is True
        assert (await first.call("grab"))["granted"] is False
        await second.call("release")
