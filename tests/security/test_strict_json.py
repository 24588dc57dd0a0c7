"""Threat: JSON that one parser accepts and another reads differently, or cannot encode.

Attack: NaN and Infinity (accepted by Python's json module, rejected by browsers), integers
past 2**53 that JavaScript silently rounds, duplicate keys (first-wins vs last-wins parser
confusion, e.g. to smuggle a second "method"), and lone UTF-16 surrogates that crash strict
encoders when the value is echoed to other clients. Defence: strict RFC 8259 parsing refuses
all of them with -32700 before anything else sees the value, and outbound encoding failures
become -32603 instead of a crash.
"""

from __future__ import annotations

import pytest

from tests.support.gateway import Gateway
from tests.support.wire import call, raw_exchange


@pytest.mark.parametrize(
    "frame, request_id",
    [
        # Not JSON at all: the id cannot be read.
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[NaN]}', None),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[Infinity]}', None),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[-Infinity]}', None),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[1],}', None),
        ("{'jsonrpc':'2.0'}", None),
        # JSON, outside the strict profile: answered with the id it names.
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[1e400]}', 1),
        ('{"jsonrpc":"2.0","id":1,"method":"add","params":[9007199254740993]}', 1),
        ('{"jsonrpc":"2.0","id":1,"method":"add","method":"boom","params":[1]}', 1),
        ('{"jsonrpc":"2.0","id":1,"method":"say","params":["room","\\ud800"]}', 1),
        ('{"jsonrpc":"2.0","id":1,"method":"say","params":["room","\\udc00x"]}', 1),
    ],
)
async def test_non_strict_json_is_a_parse_error(
    chat_gateway: Gateway, frame: str, request_id: int | None
) -> None:
    replies = await raw_exchange(chat_gateway.ws_url, [frame, call("add", [2, 2])])
    assert replies[0]["error"]["code"] == -32700
    assert replies[0]["id"] == request_id
    assert replies[1]["result"] == 4


async def test_valid_surrogate_pairs_and_safe_integers_pass(chat_gateway: Gateway) -> None:
    replies = await raw_exchange(
        chat_gateway.ws_url,
        ['{"jsonrpc":"2.0","id":1,"method":"say","params":["room","\\ud83d\\ude00"]}',
         call("add", [9007199254740991, 0])],
    )
    assert replies[0]["result"] == 0  # nobody else in the room
    assert replies[1]["result"] == 9007199254740991
