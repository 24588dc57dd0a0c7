"""Threat: replies and logs leak internals, or logs can be forged.

Attack: provoke handler exceptions, validation failures and auth-hook failures to read
tracebacks, file paths, secrets or the submitted values back; plant newlines and terminal
escapes in names and tokens so that the operator's log shows invented lines; look for
tokens in logs. Defence: error replies are built from the error class (code and a fixed
message), validation errors are cut to loc/msg/type, handler failures are logged server-side
only; every logged string has control characters escaped; tokens are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging

from nowgate.client import connect
from nowgate.logs import JsonFormatter, TextFormatter, escape
from tests.support.gateway import Gateway
from tests.support.wire import call, raw_exchange

SECRET_INPUT = "hunter2-input-value"


async def test_handler_failure_reply_is_bare(chat_gateway: Gateway) -> None:
    (reply,) = await raw_exchange(chat_gateway.ws_url, [call("boom")])
    assert reply["error"] == {"code": -32603, "message": "Internal error"}
    await asyncio.sleep(0.2)
    assert "handler boom failed" in chat_gateway.log  # operators still see it


async def test_validation_errors_never_echo_the_input(chat_gateway: Gateway) -> None:
    replies = await raw_exchange(
        chat_gateway.ws_url,
        [call("add", {"a": SECRET_INPUT}), call("say", ["room", SECRET_INPUT * 20]),
         call("add", {"a": 1, SECRET_INPUT: 2})],
    )
    for reply in replies:
        assert reply["error"]["code"] == -32602
        assert SECRET_INPUT not in json.dumps(reply)
        for item in reply["error"]["data"]:
            assert set(item) == {"loc", "msg", "type"}


async def test_auth_hook_failure_leaks_nothing(chat_gateway: Gateway) -> None:
    from websockets.asyncio.client import connect as ws_connect

    async with ws_connect(chat_gateway.ws_url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello",
                                  "params": {"protocol": 1, "token": None, "auth": "explode"}}))
        reply = await ws.recv()
    assert "/srv/secret" not in str(reply) and "Traceback" not in str(reply)


async def test_tokens_never_reach_the_log(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as client:
        await client.call("join", "logs")
        await asyncio.sleep(0.1)
        token = client.token
    async with connect(chat_gateway.ws_url, token=token + "tampered"):
        pass
    await asyncio.sleep(0.2)
    assert token not in chat_gateway.log
    assert token.split(".")[-1] not in chat_gateway.log


def test_control_characters_are_escaped_in_every_log_format() -> None:
    record = logging.LogRecord("nowgate.audit", logging.WARNING, __file__, 1,
                               "unknown_call %s", ("evil\nINFO forged line\x1b[2J",), None)
    record.address = "198.51.100.7\r\nfake"
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "\n" not in line and "\r" not in line and "\x1b" not in line
        assert "forged line" in line  # kept, but escaped, so it cannot start a line
    assert escape("a\u2028b") == "a\\x2028b"
