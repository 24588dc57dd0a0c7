"""Threat: a client reaches functions reserved for a role or a group.

Attack: call an admin function without the role, claim roles or groups in the hello or in a
forged token, join a group by writing to it, or call a function the welcome did not list.
Defence: roles come only from the application's authentication hook and groups only from
server code (or a token the server signed); the policy's role/group rules are checked on
every call (-32003), and the welcome lists exactly the callable functions.
"""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect as ws_connect

from nowgate.client import CallError, connect
from tests.support.gateway import Gateway
from tests.support.wire import next_reply


async def test_role_restricted_function_is_forbidden_without_the_role(
    chat_gateway: Gateway,
) -> None:
    async with connect(chat_gateway.ws_url, auth="user:eve") as eve:
        assert "adminOnly" not in eve.functions
        with pytest.raises(CallError) as denied:
            await eve.call("adminOnly")
        assert denied.value.code == -32003
    async with connect(chat_gateway.ws_url, auth="admin-credential") as admin:
        assert await admin.call("adminOnly") == "granted"


async def test_roles_claimed_in_the_hello_are_refused(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello", "params": {
            "protocol": 1, "token": None, "roles": ["admin"], "client_id": "c-admin"}}))
        reply = await next_reply(ws)
        assert reply["error"]["code"] == -32602  # unknown hello fields are refused outright


async def test_group_membership_cannot_be_written_by_the_client(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as client:
        with pytest.raises(CallError) as denied:
            await client.call("now.set", scope="group:staff", path="nickname", value="me")
        assert denied.value.code == -32003
        assert (await client.call("whoami"))["groups"] == []
