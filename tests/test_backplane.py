"""Two gateway processes behind one real Redis: broadcasts, groups, variables, rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from nowgate.client import CallError, connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import DEMO_POLICY, Gateway
from tests.support.redis import redis_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def chat_cluster(redis_url: str) -> Iterator[tuple[Gateway, Gateway]]:
    env = {"NOWGATE_REDIS_URL": redis_url, "NOWGATE_RATE_LIMIT_STORAGE": redis_url}
    first = Gateway(CHAT_POLICY, env=env)
    # Same signing key on both nodes, so a token from one resumes on the other.
    same_key = {"NOWGATE_SECRET_KEYS": first.env["NOWGATE_SECRET_KEYS"]}
    second = Gateway(CHAT_POLICY, env={**env, **same_key})
    with first, second:
        yield first, second


async def eventually(condition: Any, within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_sync_position_reaches_clients_of_every_node_but_never_the_sender(
    redis_url: str,
) -> None:
    env = {"NOWGATE_REDIS_URL": redis_url}
    with Gateway(DEMO_POLICY, env=env) as one, Gateway(DEMO_POLICY, env=env) as two:
        async with (
            connect(one.ws_url) as sender,
            connect(one.ws_url) as neighbour,
            connect(two.ws_url) as remote,
        ):
            got: dict[str, list[Any]] = {"sender": [], "neighbour": [], "remote": []}
            for name, client in (("sender", sender), ("neighbour", neighbour), ("remote", remote)):
                client.on("updatePosition", got[name].append)
            assert await sender.call("syncPosition", {"left": 1, "top": 2}) is True
            await eventually(lambda: got["remote"] and got["neighbour"])
            await asyncio.sleep(0.2)
            assert got["remote"] == [{"left": 1.0, "top": 2.0}]
            assert got["neighbour"] == [{"left": 1.0, "top": 2.0}]
            assert got["sender"] == []


async def test_group_messages_and_variables_cross_nodes(
    chat_cluster: tuple[Gateway, Gateway],
) -> None:
    one, two = chat_cluster
    async with (
        connect(one.ws_url) as alice,
        connect(two.ws_url) as bob,
        connect(two.ws_url) as outsider,
    ):
        heard: dict[str, list[str]] = {"alice": [], "bob": [], "outsider": []}
        for name, client in (("alice", alice), ("bob", bob), ("outsider", outsider)):
            client.on("message", lambda room, text, name=name: heard[name].append(text))
        await alice.call("join", "ops")
        await bob.call("join", "ops")
        await alice.call("say", "ops", "hello from node one")
        await alice.call("setRoomTopic", "ops", "deploys")
        await alice.call("setScore", 42)
        await eventually(lambda: bob.vars["everyone"].get("score") == 42)
        await eventually(lambda: bob.vars["groups"].get("ops") == {"topic": "deploys"})
        assert heard == {"alice": [], "bob": ["hello from node one"], "outsider": []}
        assert "ops" not in outsider.vars["groups"]
        assert outsider.vars["everyone"]["score"] == 42


async def test_rate_limits_count_across_nodes(chat_cluster: tuple[Gateway, Gateway]) -> None:
    one, two = chat_cluster
    async with connect(one.ws_url, auth="user:roamer") as first:
        for _ in range(3):
            assert await first.call("limited") == 1
    async with connect(two.ws_url, auth="user:roamer") as second:
        with pytest.raises(CallError) as limited:
            await second.call("limited")
        assert limited.value.code == -32029


async def test_a_token_from_one_node_resumes_on_the_other(
    chat_cluster: tuple[Gateway, Gateway],
) -> None:
    one, two = chat_cluster
    async with connect(one.ws_url) as client:
        await client.call("join", "roaming")
        await asyncio.sleep(0.1)
        token, client_id = client.token, client.client_id
    async with connect(two.ws_url, token=token) as moved:
        assert moved.resumed and moved.client_id == client_id
        assert (await moved.call("whoami"))["groups"] == ["roaming"]
