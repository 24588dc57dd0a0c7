"""The gateway end to end: a real uvicorn on a loopback port, driven by the Python client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from nowgate.client import CallError, connect
from tests.support import wire
from tests.support.client import send_raw
from tests.support.gateway import Gateway
from tests.support.wire import HELLO, close_code_of


async def settle(seconds: float = 0.2) -> None:
    await asyncio.sleep(seconds)


async def raw_exchange(gateway: Gateway, frames: list[str]) -> list[dict[str, Any]]:
    return await wire.raw_exchange(gateway.ws_url, frames)


async def test_welcome_lists_exactly_the_callable_functions(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as anonymous:
        assert "adminOnly" not in anonymous.functions
        assert "say" in anonymous.functions
        assert anonymous.client_functions == ["answer", "message"]
        assert anonymous.client_id.startswith("c-")
        assert anonymous.resumed is False
    async with connect(chat_gateway.ws_url, auth="admin-credential") as admin:
        assert "adminOnly" in admin.functions
        assert await admin.call("adminOnly") == "granted"
        assert admin.welcome["user"] == "root"


async def test_valid_token_resumes_identity_and_groups(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as first:
        await first.call("join", "red")
        await settle(0.1)
        token, client_id = first.token, first.client_id
    await settle()
    async with connect(chat_gateway.ws_url, token=token) as again:
        assert again.resumed is True
        assert again.client_id == client_id
        assert (await again.call("whoami"))["groups"] == ["red"]


async def test_group_is_removed_when_its_last_member_disconnects(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as observer:
        async with connect(chat_gateway.ws_url) as a, connect(chat_gateway.ws_url) as b:
            await a.call("join", "lobby")
            await b.call("join", "lobby")
            assert "lobby" in await observer.call("rooms")
            await a.call("leave", "lobby")
            assert "lobby" in await observer.call("rooms")
        await settle(0.3)
        assert "lobby" not in await observer.call("rooms")


async def test_group_broadcast_excludes_sender_and_non_members(chat_gateway: Gateway) -> None:
    async with (
        connect(chat_gateway.ws_url) as sender,
        connect(chat_gateway.ws_url) as member,
        connect(chat_gateway.ws_url) as outsider,
    ):
        got: dict[str, list[Any]] = {"sender": [], "member": [], "outsider": []}
        for name, client in (("sender", sender), ("member", member), ("outsider", outsider)):
            client.on("message", lambda room, text, name=name: got[name].append((room, text)))
        await sender.call("join", "blue")
        await member.call("join", "blue")
        assert await sender.call("say", "blue", "hi") == 1
        await settle()
        assert got == {"sender": [], "member": [("blue", "hi")], "outsider": []}


async def test_group_changes_refresh_functions_and_drop_the_leavers_group_variables(
    chat_gateway: Gateway,
) -> None:
    async with connect(chat_gateway.ws_url) as member:
        assert "staffOnly" not in member.functions
        await member.call("join", "staff")
        await member.call("setRoomTopic", "staff", "standup at 10")
        await settle(0.1)
        assert "staffOnly" in member.functions
        assert await member.call("staffOnly") == "staff"
        assert member.vars["groups"]["staff"] == {"topic": "standup at 10"}
        await member.call("leave", "staff")
        await settle(0.1)
        assert "staffOnly" not in member.functions
        assert member.vars["groups"]["staff"] == {}
        with pytest.raises(CallError) as denied:
            await member.call("staffOnly")
        assert denied.value.code == -32003


async def test_server_to_client_call_returns_the_validated_answer(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as asker, connect(chat_gateway.ws_url) as oracle:
        oracle.on("answer", lambda question: f"42 ({question})")
        assert await asker.call("ask", oracle.client_id, "meaning?") == "42 (meaning?)"
        oracle.on("answer", lambda question: 42)  # wrong type: not a str
        with pytest.raises(CallError) as failure:
            await asker.call("ask", oracle.client_id, "again?")
        assert failure.value.code == -32603


async def test_server_to_client_call_times_out(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as asker, connect(chat_gateway.ws_url) as mute:
        async def never(question: str) -> str:
            await asyncio.sleep(30)
            return "late"
        mute.on("answer", never)
        with pytest.raises(CallError) as failure:
            await asker.call("ask", mute.client_id, "hello?")
        assert failure.value.code == -32603


async def test_answer_to_a_call_never_made_is_ignored(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as client:
        await send_raw(client, {"jsonrpc": "2.0", "id": "made-up", "result": 1})
        assert await client.call("add", 2, 3) == 5


async def test_variables_sync_as_now_set_and_arrive_in_the_welcome(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as writer, connect(chat_gateway.ws_url) as reader:
        await writer.call("setScore", 7)
        await settle()
        assert reader.vars["everyone"]["score"] == 7
        await writer.call("join", "green")
        await writer.call("setRoomTopic", "green", "gardening")
        await settle()
        assert writer.vars["groups"]["green"] == {"topic": "gardening"}
        assert "green" not in reader.vars["groups"]
        async with connect(chat_gateway.ws_url) as late:
            assert late.vars["everyone"]["score"] == 7
            await settle()
            # Written by the connect hook, which runs after the welcome.
            assert late.vars["client"] == {"greeting": f"welcome {late.client_id}"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", -32700),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[NaN]}', -32700),
        ('[{"jsonrpc":"2.0","id":1,"method":"add"}]', -32600),
        ('{"jsonrpc":"1.0","id":1,"method":"add"}', -32600),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":5}', -32600),
        ('{"jsonrpc":"2.0","id":1,"method":"add","id":2}', -32700),  # duplicate key
        ('{"jsonrpc":"2.0","id":1,"method":"nothere"}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"__class__"}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"now.__dict__"}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"constructor"}', -32601),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":["1", 2]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":{"a":1,"c":2}}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[1,2,3]}', -32602),
        ('{"jsonrpc":"2.0","id":1,"method":"boom"}', -32603),
        ('{"jsonrpc":"2.0","id":1,"method":"adminOnly"}', -32003),
    ],
)
async def test_every_error_code_is_answered_and_the_connection_stays_usable(
    chat_gateway: Gateway, frame: str, code: int
) -> None:
    error_reply, ok_reply = await raw_exchange(
        chat_gateway, [frame, '{"jsonrpc":"2.0","id":99,"method":"add","params":[1,1]}']
    )
    assert error_reply["error"]["code"] == code
    assert set(error_reply["error"]) <= {"code", "message", "data"}
    assert ok_reply == {"jsonrpc": "2.0", "id": 99, "result": 2}


async def test_parse_errors_answer_with_null_id(chat_gateway: Gateway) -> None:
    (reply,) = await raw_exchange(chat_gateway, ["{oops"])
    assert reply["id"] is None


async def test_notifications_are_executed_and_never_answered(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as client, connect(chat_gateway.ws_url) as other:
        await client.notify("setScore", 1234)
        await client.notify("nothere")
        await client.notify("add", "wrong")
        assert await client.call("add", 1, 2) == 3  # the next reply is this one's
        await settle()
        assert other.vars["everyone"]["score"] == 1234


async def test_refused_authentication_answers_minus_32003_and_closes_1008(
    chat_gateway: Gateway,
) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello",
                                  "params": {"protocol": 1, "token": None, "auth": "wrong"}}))
        reply = json.loads(await ws.recv())
        assert reply["error"]["code"] == -32003
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008


async def test_failing_authentication_hook_leaks_nothing(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello",
                                  "params": {"protocol": 1, "token": None, "auth": "explode"}}))
        reply = json.loads(await ws.recv())
        assert reply["error"] == {"code": -32603, "message": "Internal error"}
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1011


@pytest.mark.parametrize(
    "first",
    [
        '{"jsonrpc":"2.0","id":1,"method":"add","params":[1]}',
        '{"jsonrpc":"2.0","method":"now.hello","params":{"protocol":1,"token":null}}',
        '{"jsonrpc":"2.0","id":1,"method":"now.hello","params":{"protocol":2,"token":null}}',
        "not json",
    ],
)
async def test_anything_but_hello_first_closes_with_1008(chat_gateway: Gateway, first: str) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(first)
        assert await close_code_of(ws) == 1008


async def test_second_hello_is_an_invalid_request(chat_gateway: Gateway) -> None:
    (reply,) = await raw_exchange(chat_gateway, [HELLO])
    assert reply["error"]["code"] == -32600


async def test_binary_frame_closes_with_1003(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(HELLO)
        await ws.recv()
        await ws.send(b"\x01\x02")
        assert await close_code_of(ws) == 1003


