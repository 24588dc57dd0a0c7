"""Threat: one connection exhausts the gateway's memory or CPU.

Attack: huge frames, compressed frames that inflate to gigabytes, JSON nested thousands of
levels deep or with a million elements, connections that never say hello, endless
streams of bad requests, and a client that never answers the server's calls so that
pending calls pile up. Defence: a 64 KiB frame limit (close 1009) enforced by the
WebSocket layer, per-message compression never negotiated, depth and collection limits
checked before any handler runs, a hello deadline (1008), a violation budget that
closes abusive connections (1008), and a bound on server->client calls awaiting one client.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import TypeAdapter
from websockets.asyncio.client import connect as ws_connect

from nowgate.client import CallError, connect
from nowgate.errors import ClientCallError
from nowgate.pending import PendingCalls
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.wire import HELLO, call, close_code_of, next_reply, raw_exchange


async def test_frame_over_the_limit_closes_with_1009(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url, max_size=None) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        await ws.send(call("add", ["x" * 70_000]))
        assert await close_code_of(ws) == 1009


async def test_compression_is_never_negotiated(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_deep_nesting_and_huge_collections_are_refused_before_handlers(
    chat_gateway: Gateway,
) -> None:
    deep = '{"jsonrpc":"2.0","id":1,"method":"add","params":[' + "[" * 5000 + "]" * 5000 + "]}"
    wide = call("add", [list(range(5000))])
    wide_object = call("add", {"a": {str(i): i for i in range(2000)}})
    replies = await raw_exchange(chat_gateway.ws_url, [deep, wide, wide_object, call("add", [1])])
    assert [r["error"]["code"] for r in replies[:3]] == [-32600, -32600, -32600]
    assert replies[3]["result"] == 1


async def test_no_hello_in_time_closes_with_1008() -> None:
    with Gateway(env={"NOWGATE_HELLO_TIMEOUT": "0.3"}) as gateway:
        async with ws_connect(gateway.ws_url) as ws:
            assert await close_code_of(ws) == 1008


async def test_repeated_violations_close_with_1008(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        for _ in range(19):
            await ws.send(call("nothere"))
            assert (await next_reply(ws))["error"]["code"] == -32601
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "x", "result": 1}))  # never asked
        await ws.send(call("nothere"))
        assert await close_code_of(ws) == 1008


def test_pending_server_to_client_calls_are_bounded() -> None:
    async def scenario() -> None:
        pending = PendingCalls(limit=2)
        adapter: TypeAdapter[str] = TypeAdapter(str)
        pending.open(adapter)
        pending.open(adapter)
        with pytest.raises(ClientCallError):
            pending.open(adapter)
        pending.fail_all("test over")
        assert len(pending) == 0

    asyncio.run(scenario())


async def test_a_client_that_never_answers_cannot_pile_up_calls() -> None:
    with Gateway(CHAT_POLICY, env={"NOWGATE_MAX_PENDING_CALLS": "2"}) as gateway:
        async with connect(gateway.ws_url) as mute:
            async def never(question: str) -> str:
                await asyncio.sleep(60)
                return "late"

            mute.on("answer", never)
            askers = [connect(gateway.ws_url) for _ in range(3)]
            clients = [await asker.__aenter__() for asker in askers]
            try:
                started = asyncio.get_running_loop().time()
                calls = [asyncio.create_task(c.call("ask", mute.client_id, "?")) for c in clients]
                done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
                # Well before the policy's 2 s answer timeout: refused, not timed out.
                assert asyncio.get_running_loop().time() - started < 1.0
                first = done.pop().exception()
                # The third call is refused at once; the other two wait for their timeout.
                assert isinstance(first, CallError) and first.code == -32603
                assert sum(not call.done() for call in calls) == 2
                await asyncio.gather(*calls, return_exceptions=True)
            finally:
                for asker in askers:
                    await asker.__aexit__(None, None, None)
