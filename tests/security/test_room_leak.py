"""Threat: rooms that are created and never removed.

Attack: in NowJS, groups were created on demand and never deleted, so a client joining
random room names grew the server's memory without bound. Defence: a group exists while it
has members; the last leave or disconnect removes it, and its variables with it.
"""

from __future__ import annotations

import asyncio

from nowgate.client import connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway


async def test_groups_vanish_when_the_last_member_leaves_or_disconnects() -> None:
    with Gateway(CHAT_POLICY, env={"NOWGATE_CONNECTION_RATE": "100000/second"}) as gateway:
        await churn(gateway)


async def churn(gateway: Gateway) -> None:
    async with connect(gateway.ws_url) as observer:
        before = set(await observer.call("rooms"))
        async with connect(gateway.ws_url) as churner:
            for index in range(200):
                room = "r" + "".join(chr(ord("a") + int(d)) for d in str(index))
                await churner.call("join", room)
                await churner.call("setRoomTopic", room, "x")
                if index % 2:
                    await churner.call("leave", room)
            assert len(set(await observer.call("rooms")) - before) == 100
        await asyncio.sleep(0.3)
        assert set(await observer.call("rooms")) == before
