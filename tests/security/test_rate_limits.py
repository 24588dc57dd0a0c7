"""Threat: flooding: one client or one address overwhelms the gateway or other users.

Attack: calling a function in a tight loop, sending messages faster than any human, opening
connection after connection from one address, hammering HTTP routes. Defence: the `limits`
library counts per identity and function (from the policy, -32029 with `retry_after`), per
connection (-32029), and new connections per address (accepted then closed with 1013);
slowapi limits every HTTP route (429).
"""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from nowgate.client import CallError, connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.wire import HELLO, next_reply


async def test_function_rate_limit_answers_32029_with_retry_after(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url, auth="user:rate-tester") as client:
        assert [await client.call("limited") for _ in range(3)] == [1, 1, 1]
        with pytest.raises(CallError) as limited:
            await client.call("limited")
        assert limited.value.code == -32029
        assert 0 < limited.value.data["retry_after"] <= 60
        assert await client.call("add", 1, 1) == 2  # other functions are unaffected


async def test_limit_follows_the_user_across_connections(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url, auth="user:hopper") as first:
        for _ in range(3):
            await first.call("limited")
    async with connect(chat_gateway.ws_url, auth="user:hopper") as second:
        with pytest.raises(CallError) as limited:
            await second.call("limited")
        assert limited.value.code == -32029


async def test_connection_message_rate_answers_32029() -> None:
    with Gateway(CHAT_POLICY, env={"NOWGATE_CONNECTION_RATE": "5/second"}) as gateway:
        async with connect(gateway.ws_url) as client:
            codes = []
            for _ in range(8):
                try:
                    await client.call("add", 1, 1)
                    codes.append(0)
                except CallError as error:
                    codes.append(error.code)
            assert codes[:5] == [0] * 5 and -32029 in codes[5:]


async def test_new_connections_per_address_close_with_1013() -> None:
    with Gateway(env={"NOWGATE_CONNECT_RATE_PER_ADDRESS": "3/minute"}) as gateway:
        outcomes = []
        for _ in range(4):
            async with ws_connect(gateway.ws_url) as ws:
                try:
                    await ws.send(HELLO)
                    await next_reply(ws)
                    outcomes.append("welcome")
                except ConnectionClosed:
                    outcomes.append(ws.close_code)
        assert outcomes == ["welcome", "welcome", "welcome", 1013]
        assert "connect_rate_limited" in gateway.log


def test_http_routes_are_rate_limited() -> None:
    with Gateway(env={"NOWGATE_HTTP_RATE": "5/minute"}) as gateway:
        statuses = [httpx.get(gateway.base_url + "/").status_code for _ in range(7)]
        assert statuses[:5] == [200] * 5
        assert statuses[5:] == [429, 429]
