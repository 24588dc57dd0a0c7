"""nowgate.client: timeouts, client functions that call back, bounded memory, reconnect.

Against the real gateway (tests/support/gateway.py) wherever the gateway can produce the
situation. Two tests script the server side with a few lines of `websockets` instead: the
100,000-message flood (the gateway's own flow control would throttle it long before the
client's bounds are reached) and answers carrying `id: null` (the gateway now names the
request in every error it can). Missed-message recovery: tests/test_client_recovery.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from nowgate.client import Backoff, CallError, ClientClosed, Disconnected, connect
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.relay import Relay

FAST = Backoff(base=0.05, cap=0.5)


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_importing_the_client_does_not_load_the_server() -> None:
    heavy = ["fastapi", "starlette", "uvicorn", "redis", "prometheus_client", "pydantic_settings"]
    probe = (
        "import sys, nowgate.client; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_backoff_is_exponential_with_full_jitter() -> None:
    backoff = Backoff(base=0.25, cap=10.0)
    assert [backoff.delay(n, rng=lambda: 1.0) for n in range(8)] == [
        0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0,
    ]
    assert backoff.delay(5, rng=lambda: 0.0) == 0.0  # full jitter: anywhere from zero
    assert backoff.delay(10**6, rng=lambda: 1.0) == 10.0  # no overflow on long outages


async def test_a_call_times_out_and_leaves_nothing_behind(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as client:
        with pytest.raises(TimeoutError):
            await client.call("nap", 3, timeout=0.2)
        assert client._waiting == {}
        assert await client.call("add", 2, 2) == 4


async def test_the_default_call_timeout_ends_a_call_that_is_never_answered(
    chat_gateway: Gateway,
) -> None:
    # An answer that never comes (or one that cannot be matched: an error with id null)
    # must not hang the caller: `call_timeout` applies to every call without its own.
    async with connect(chat_gateway.ws_url, call_timeout=0.5) as client:
        with pytest.raises(TimeoutError):
            await client.call("nap", 1.5)
        # The gateway runs one connection's calls in order: this one waits for the nap.
        assert await client.call("add", 1, 2, timeout=5) == 3


async def test_a_call_the_gateway_cannot_parse_fails_with_its_error(chat_gateway: Gateway) -> None:
    # A lone surrogate is not strict JSON: the gateway answers -32700 with the call's id.
    async with connect(chat_gateway.ws_url, call_timeout=5) as client:
        with pytest.raises(CallError) as caught:
            await client.call("add", "\ud800")
        assert caught.value.code == -32700
        assert await client.call("add", 1, 2) == 3


@contextlib.asynccontextmanager
async def unmatched_answers_server() -> AsyncIterator[str]:
    """A scripted server that answers every call with an error carrying `id: null` (what a
    JSON-RPC server sends for a frame it could not read at all): no call can be matched."""

    async def handler(ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": hello["id"], "result": {
            "client_id": "c-null", "token": "t", "resumed": False, "functions": ["add"],
            "client_functions": [], "vars": {"everyone": {}, "groups": {}, "client": {}},
        }}))
        async for _ in ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32700, "message": "Parse error"}}))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_a_call_answered_with_id_null_times_out_instead_of_hanging() -> None:
    async with unmatched_answers_server() as url, connect(url, call_timeout=0.5) as client:
        with pytest.raises(TimeoutError):
            await client.call("add", 1, 2)
        assert client._waiting == {} and client.connected


async def test_a_client_function_may_call_back_into_the_server(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as asker, connect(chat_gateway.ws_url) as oracle:

        async def answer(question: str) -> str:
            total = await oracle.call("add", 40, 2)  # read by the reader while this awaits
            return f"{question} {total}"

        oracle.on("answer", answer)
        assert await asker.call("ask", oracle.client_id, "the answer is") == "the answer is 42"


async def test_a_failing_client_function_answers_internal_error_without_its_text(
    chat_gateway: Gateway,
) -> None:
    async with connect(chat_gateway.ws_url) as asker, connect(chat_gateway.ws_url) as oracle:

        def answer(question: str) -> str:
            raise RuntimeError("secret=hunter2")

        oracle.on("answer", answer)
        with pytest.raises(CallError) as failure:
            await asker.call("ask", oracle.client_id, "?")
        assert failure.value.code == -32603 and "hunter2" not in str(failure.value.data)


@contextlib.asynccontextmanager
async def flood_server(count: int) -> AsyncIterator[str]:
    """A scripted gateway: welcome, then `count` notifications and variable changes."""

    async def handler(ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": hello["id"], "result": {
            "client_id": "c-flood", "token": "t", "resumed": False, "functions": [],
            "client_functions": ["tick"], "vars": {"everyone": {}, "groups": {}, "client": {}},
        }}))
        for n in range(count):
            if n % 10 == 0:
                frame = {"method": "now.set", "params": {"scope": "everyone", "path": "n",
                                                         "value": n}}
            else:
                frame = {"method": "tick", "params": [n]}
            await ws.send(json.dumps({"jsonrpc": "2.0", **frame}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_memory_stays_bounded_over_100000_messages() -> None:
    count = 100_000
    ticks = [n for n in range(count) if n % 10]
    async with flood_server(count) as url:
        async with connect(url, inbox_size=64) as client:
            seen = {"count": 0, "last": -1, "in_order": True, "deepest_inbox": 0}
            gc.collect()
            baseline = len(gc.get_objects())

            async def tick(n: int) -> None:
                seen["in_order"] = seen["in_order"] and n > seen["last"]
                seen["last"], seen["count"] = n, seen["count"] + 1
                seen["deepest_inbox"] = max(seen["deepest_inbox"], client._inbox.qsize())
                if n % 1000 == 1:
                    await asyncio.sleep(0)  # a consumer that sometimes yields: the inbox fills

            client.on("tick", tick)
            await eventually(lambda: seen["count"] == len(ticks), within=120)
            gc.collect()
            grown = len(gc.get_objects()) - baseline
        assert seen["in_order"] and seen["last"] == ticks[-1]
        assert client.vars["everyone"]["n"] == count - 10
        assert seen["deepest_inbox"] <= 64
        # Keeping each message (even a tuple per message) would add 100,000+ objects.
        assert grown < 5_000, grown


async def test_reconnects_and_resumes_after_the_gateway_restarts() -> None:
    with Gateway(CHAT_POLICY) as gateway:
        async with connect(gateway.ws_url, backoff=FAST) as client:
            await client.call("join", "ops")
            client_id = client.client_id
            welcomes: list[dict[str, Any]] = []
            client.on_welcome(welcomes.append)
            gateway.stop()
            await eventually(lambda: not client.connected)
            gateway.start()
            await asyncio.wait_for(client.wait_connected(), 15)
            assert client.client_id == client_id and client.resumed is True
            assert len(welcomes) == 1
            assert (await client.call("whoami"))["groups"] == ["ops"]


async def test_reconnects_by_itself_after_the_network_is_cut(chat_gateway: Gateway) -> None:
    async with Relay(chat_gateway.port) as relay, \
            connect(relay.ws_url, backoff=FAST) as client, \
            connect(chat_gateway.ws_url) as sender:
        heard: asyncio.Queue[str] = asyncio.Queue()
        client.on("message", lambda room, text: heard.put_nowait(text))
        await sender.call("shout", "before")
        assert await asyncio.wait_for(heard.get(), 5) == "before"
        client_id, first_token = client.client_id, client.token
        in_flight = asyncio.create_task(client.call("nap", 1.0))
        await asyncio.sleep(0.2)
        relay.cut()  # no close frame, no FIN: the socket just dies
        with pytest.raises(Disconnected):  # sent, maybe run: never silently re-sent
            await asyncio.wait_for(in_flight, 5)
        queued = asyncio.create_task(client.call("add", 1, 2, timeout=20))
        refused_before = relay.accepted
        await asyncio.sleep(2.0)  # held down: every attempt meanwhile is refused
        assert not client.connected and not queued.done()
        assert relay.accepted == refused_before
        relay.heal()
        assert await asyncio.wait_for(queued, 15) == 3  # the waiting call went out after resume
        assert client.client_id == client_id and client.resumed is True
        assert client.token and first_token
        await sender.call("shout", "after")
        assert await asyncio.wait_for(heard.get(), 5) == "after"


async def test_a_policy_close_is_final_and_fails_waiting_calls() -> None:
    with Gateway(CHAT_POLICY, env={"NOWGATE_CREDENTIAL_CHECK_INTERVAL": "0.1"}) as gateway:
        async with connect(gateway.ws_url, auth="expires-in:0.3", backoff=FAST) as client:
            assert await asyncio.wait_for(client.wait_closed(), 5) == 1008
            with pytest.raises(ClientClosed):
                await client.call("add", 1, 1, timeout=2)
