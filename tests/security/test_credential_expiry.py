"""Threat: a long-lived connection outlives the credentials that opened it, or sits idle.

Attack: log in, open a WebSocket, then keep using it after the session was revoked or the
token expired: the socket stays authenticated forever. Defence: each connection carries the
expiry of its newest token and of the application's credential (`Principal.expires_at`); a
sweeper closes expired connections with 1008 every `credential_check_interval` seconds
(default 30); the same sweep closes connections silent for `idle_timeout` (1000), while the
WebSocket ping/pong heartbeat drops dead peers. A token signed by a retired key no longer
resumes (see test_identity_spoofing.py): rotating keys means restarting, which closes every
connection with 1001 and makes each prove its token again.
"""

from __future__ import annotations

import asyncio

from nowgate.client import connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway


async def test_connection_closes_1008_when_the_app_credential_expires() -> None:
    with Gateway(CHAT_POLICY, env={"NOWGATE_CREDENTIAL_CHECK_INTERVAL": "0.1"}) as gateway:
        async with connect(gateway.ws_url, auth="expires-in:0.5") as short, \
                connect(gateway.ws_url, auth="user:long") as long:
            assert await asyncio.wait_for(short.wait_closed(), 5) == 1008
            assert await long.call("add", 1, 1) == 2


async def test_idle_connection_is_closed_and_an_active_one_is_not() -> None:
    env = {"NOWGATE_CREDENTIAL_CHECK_INTERVAL": "0.1", "NOWGATE_IDLE_TIMEOUT": "1"}
    with Gateway(CHAT_POLICY, env=env) as gateway:
        async with connect(gateway.ws_url) as idle, connect(gateway.ws_url) as active:
            for _ in range(15):
                await active.call("add", 1, 1)
                await asyncio.sleep(0.1)
            assert await asyncio.wait_for(idle.wait_closed(), 5) == 1000
            assert await active.call("add", 2, 2) == 4


async def test_connection_closes_1008_when_it_outlives_its_token() -> None:
    env = {"NOWGATE_CREDENTIAL_CHECK_INTERVAL": "0.1", "NOWGATE_TOKEN_MAX_AGE": "1"}
    with Gateway(CHAT_POLICY, env=env) as gateway:
        async with connect(gateway.ws_url) as client:
            assert await asyncio.wait_for(client.wait_closed(), 5) == 1008
