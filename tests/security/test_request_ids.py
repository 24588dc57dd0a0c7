"""Threat: an error reply the caller cannot match to its call.

Attack: a call whose arguments break a structural limit (10,000-item array, 2,002-key params,
nesting past the depth limit or past the parser's own recursion limit), carry a duplicate key
or an unsafe number, or fail validation. Answered with `"id": null`, the caller cannot tell
which call failed: the Python client's `call()` never resolves and now.js waits for its
timeout, so a hostile argument (or a peer's shared value echoed back) wedges honest callers.
Defence: every error reply names the request whenever a strict reading of the frame can
determine its id (a parse that tolerates only what RFC 8259 tolerates, then an iterative scan
for frames nested too deep to parse); `null` only when it cannot (not JSON, a duplicated or
unusable "id" member). Each error path below is walked through a live gateway.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.gateway import Gateway
from tests.support.wire import HELLO, next_reply, raw_exchange


def _frame(request_id: Any, method: str, params_json: str) -> str:
    return (
        f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},"method":"{method}",'
        f'"params":{params_json}}}'
    )


DEEP = "[" * 40 + "]" * 40
TOO_DEEP_TO_PARSE = "[" * 10_000 + "]" * 10_000
WIDE_OBJECT = json.dumps({f"k{i}": i for i in range(2_002)})
LONG_ARRAY = json.dumps(list(range(10_000)))

# (frame, expected code, expected id)
ERROR_PATHS: dict[str, tuple[str, int, Any]] = {
    "depth": (_frame(11, "add", DEEP), -32600, 11),
    "depth-past-recursion": (_frame("r", "add", TOO_DEEP_TO_PARSE), -32600, "r"),
    "object-size": (_frame(12, "add", WIDE_OBJECT), -32600, 12),
    "array-size": (_frame(13, "add", LONG_ARRAY), -32600, 13),
    "duplicate-key-in-params": (_frame(14, "add", '{"a":1,"a":2}'), -32700, 14),
    "duplicate-method": (
        '{"jsonrpc":"2.0","id":15,"method":"add","method":"boom","params":[1]}', -32700, 15
    ),
    "unsafe-integer": (_frame(16, "add", "[9007199254740993]"), -32700, 16),
    "number-overflow": (_frame(17, "add", "[1e400]"), -32700, 17),
    "lone-surrogate": (_frame(18, "say", '["room","\\ud800"]'), -32700, 18),
    "bad-params": (_frame(19, "add", '["one"]'), -32602, 19),
    "params-not-a-collection": (_frame(20, "add", "3"), -32600, 20),
    "unknown-member": ('{"jsonrpc":"2.0","id":21,"method":"add","extra":1}', -32600, 21),
    "wrong-version": ('{"jsonrpc":"1.0","id":22,"method":"add"}', -32600, 22),
    "method-not-a-string": ('{"jsonrpc":"2.0","id":23,"method":7}', -32600, 23),
    "method-not-found": (_frame(24, "noSuchFunction", "[]"), -32601, 24),
    "forbidden": (_frame(25, "staffOnly", "[]"), -32003, 25),
    "handler-failed": (_frame(26, "boom", "[]"), -32603, 26),
    "second-hello": (_frame(27, "now.hello", '{"protocol":1}'), -32600, 27),
    # The id itself cannot be read: null is the only honest answer.
    "not-json": ('{"jsonrpc":"2.0","id":30,"method":"add",', -32700, None),
    "nan": (_frame(31, "add", "[NaN]"), -32700, None),
    "duplicated-id": ('{"jsonrpc":"2.0","id":32,"id":33,"method":"add"}', -32700, None),
    "unsafe-id": (_frame(2**53, "add", "[]"), -32700, None),
    "batch": (f"[{_frame(34, 'add', '[]')}]", -32600, None),
}


@pytest.mark.parametrize("name", ERROR_PATHS)
async def test_every_error_reply_names_the_call_when_the_frame_does(
    chat_gateway: Gateway, name: str
) -> None:
    frame, code, request_id = ERROR_PATHS[name]
    (reply,) = await raw_exchange(chat_gateway.ws_url, [frame])
    assert reply["error"]["code"] == code
    assert reply["id"] == request_id


async def test_an_invalid_hello_is_answered_with_its_id(chat_gateway: Gateway) -> None:
    hello = _frame(5, "now.hello", '{"protocol":1,"token":' + DEEP + "}")
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(hello)
        reply = await next_reply(ws)
    assert reply["error"]["code"] == -32600
    assert reply["id"] == 5


async def test_the_rate_limit_reply_names_the_call(chat_gateway: Gateway) -> None:
    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        replies = []
        for request_id in range(100, 105):
            await ws.send(_frame(request_id, "limited", "[]"))
            replies.append(await next_reply(ws))
    refused = [reply for reply in replies if "error" in reply]
    assert refused and all(reply["error"]["code"] == -32029 for reply in refused)
    assert [reply["id"] for reply in refused] == [100 + 5 - len(refused) + i
                                                  for i in range(len(refused))]
