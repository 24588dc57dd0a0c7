"""Threat: one connection exhausts the gateway's memory or CPU.

Attack: huge frames, compressed frames that inflate to gigabytes, JSON nested thousands of
levels deep or with a million elements, connections that never say hello, and endless
streams of bad requests. Defence: a 64 KiB frame limit (close 1009) enforced by the
WebSocket layer, per-message compression never negotiated, depth and collection limits
checked before any handler runs, a hello deadline (1008), and a violation budget that
closes abusive connections (1008).
"""

from __future__ import annotations

import json

from websockets.asyncio.client import connect as ws_connect

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
