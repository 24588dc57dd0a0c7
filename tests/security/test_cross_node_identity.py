"""Threat: a client takes over a live identity by replaying its token on another node.

Attack: one node refuses to hand out an identity that is connected right now (a duplicated
tab, a leaked token replayed while its owner is online get a fresh identity). In a cluster
each node's registry only knows its own connections, so the same token presented to a
second node resumed the identity a first node was serving: two connections, one identity,
and whatever the application keys on `client_id` (sender exclusion, calls, client
variables) shared with the attacker.
Defence: a resumed identity is claimed in Redis by one script before the welcome
(`nowgate.presence`); the claim fails while any other node serves that identity, and the
replayer gets a fresh identity, as on one node. The owner's own reconnection after it left
still resumes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from nowgate.client import connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.redis import redis_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[Gateway, Gateway]]:
    with redis_server() as url:
        env = {"NOWGATE_REDIS_URL": url, "NOWGATE_SECRET_KEYS": secrets.token_urlsafe(32)}
        with Gateway(CHAT_POLICY, env=env) as one, Gateway(CHAT_POLICY, env=env) as two:
            yield one, two


async def test_a_token_replayed_on_another_node_while_its_owner_is_connected_is_not_resumed(
    two_nodes: tuple[Gateway, Gateway],
) -> None:
    one, two = two_nodes
    async with connect(one.ws_url, auth="user:alice") as owner:
        await owner.call("join", "private")
        async with connect(two.ws_url, token=owner.token, auth="user:alice") as replayer:
            assert not replayer.resumed
            assert replayer.client_id != owner.client_id
            assert (await replayer.call("whoami"))["groups"] == []
        token, client_id = owner.token, owner.client_id
    # The owner's own reconnection, once it has left, resumes on either node.
    for _ in range(100):
        async with connect(two.ws_url, token=token, auth="user:alice") as back:
            if back.resumed:
                assert back.client_id == client_id
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the owner's token never resumed after it disconnected")
