"""Threat: broadcasts echo back to their sender.

Attack (a flaw of the NowJS drag demo): the sender's own update came back to it, so its
image stuttered and a chatty client could amplify its traffic; the fix there was a filter
bolted on in the client. Defence: `ctx.others` / `include_self=False` exclude the caller on
the server, and one broadcast is exactly one message per receiver.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nowgate.client import connect
from tests.support.gateway import Gateway


async def test_sender_never_receives_its_own_update_and_each_other_gets_one(
    demo_gateway: Gateway,
) -> None:
    async with (
        connect(demo_gateway.ws_url) as sender,
        connect(demo_gateway.ws_url) as first,
        connect(demo_gateway.ws_url) as second,
    ):
        got: dict[str, list[Any]] = {"sender": [], "first": [], "second": []}
        sender.on("updatePosition", got["sender"].append)
        first.on("updatePosition", got["first"].append)
        second.on("updatePosition", got["second"].append)
        for step in range(5):
            assert await sender.call("syncPosition", {"left": step, "top": step}) is True
        await asyncio.sleep(0.3)
        assert got["sender"] == []
        expected = [{"left": float(s), "top": float(s)} for s in range(5)]
        assert got["first"] == expected and got["second"] == expected
        await sender.call("release")


async def test_group_broadcast_without_self_skips_the_sender(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as sender, connect(chat_gateway.ws_url) as peer:
        seen: dict[str, list[str]] = {"sender": [], "peer": []}
        sender.on("message", lambda room, text: seen["sender"].append(text))
        peer.on("message", lambda room, text: seen["peer"].append(text))
        await sender.call("join", "echo")
        await peer.call("join", "echo")
        assert await sender.call("say", "echo", "ping") == 1
        await asyncio.sleep(0.2)
        assert seen == {"sender": [], "peer": ["ping"]}
