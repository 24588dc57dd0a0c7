"""Raw WebSocket helpers for tests that speak PROTOCOL.md frame by frame."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

HELLO = json.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "now.hello", "params": {"protocol": 1, "token": None}}
)


async def next_reply(ws: Any) -> dict[str, Any]:
    """The next answer, skipping the server's notifications (connect hooks send some)."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if "method" not in message:
            return message


async def close_code_of(ws: Any) -> int | None:
    """Read until the gateway closes the connection; its close code."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    code: int | None = ws.close_code
    return code


async def raw_exchange(ws_url: str, frames: list[str], **options: Any) -> list[dict[str, Any]]:
    """Say hello, send frames one by one, return the reply to each."""
    async with ws_connect(ws_url, **options) as ws:
        await ws.send(HELLO)
        await next_reply(ws)
        replies = []
        for frame in frames:
            await ws.send(frame)
            replies.append(await next_reply(ws))
        return replies


def call(method: str, params: Any = None, request_id: int | str = 1) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message)
