"""Missed-message recovery and half-open connections, against a real gateway.

A TCP relay (tests/support/relay.py) stands between the receiving client and the gateway;
the tests break it abruptly (RST, no close frame) mid-stream, keep it down while messages are
sent, and check that the client, reconnecting with its token and position, processes every
message exactly once and in order, or is told it cannot and finds the current state in the
welcome. The client is raw frames (tests/support/recovering.py): what it asserts is the wire.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.support.gateway import Gateway
from tests.support.recovering import RecoveringClient
from tests.support.relay import Relay

RECOVERY_POLICY = Path(__file__).parent / "fixtures" / "recovery.toml"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway(RECOVERY_POLICY, env={"NOWGATE_RESUME_PROBE_TIMEOUT": "1.0"}) as gateway:
        yield gateway


async def send_mixed(
    sender: RecoveringClient, receiver_id: str, start: int, stop: int, expected: list[str],
    pause: float = 0.0,
) -> None:
    """Messages of every kind the receiver gets: to everyone, to its group, to it alone.

    Each call's answer comes before the next call, so `expected` is the order of delivery.
    """
    for number in range(start, stop):
        text = f"m{number}"
        kind = number % 3
        if kind == 0:
            await sender.call("shout", text)
            expected.append(text)
        elif kind == 1:
            await sender.call("say", "red", text)
            expected.append(text)
        elif await sender.call("tell", receiver_id, text):
            expected.append(text)  # only while the receiver's identity is connected
        if pause:
            await asyncio.sleep(pause)


async def test_an_abrupt_cut_loses_nothing_and_duplicates_nothing(gateway: Gateway) -> None:
    async with Relay(gateway.port) as relay:
        sender, receiver = RecoveringClient(), RecoveringClient()
        await sender.connect(gateway.ws_url)
        first = await receiver.connect(relay.ws_url)
        assert first["recovered"] is False and first["recovery"]["reason"] == "no_position"
        await receiver.call("join", "red")
        assert receiver.client_id is not None
        expected: list[str] = []

        # Mid-stream: the relay dies (RST both ways) while messages are flowing.
        stream = asyncio.create_task(send_mixed(sender, receiver.client_id, 0, 60, expected,
                                                pause=0.005))
        await receiver.wait_for(lambda: len(receiver.texts()) >= 15)
        relay.cut()  # and refuses new connections until heal()
        assert await receiver.closed() == 1006
        await stream
        # Down for a while: broadcasts and variable writes of every shared scope.
        await send_mixed(sender, receiver.client_id, 60, 90, expected)
        await sender.call("setScore", 7)
        await sender.call("setTopic", "red", "while away")
        await asyncio.sleep(1.5)
        relay.heal()

        # Reconnect while the sender keeps going: the replay comes first, then the new ones.
        stream = asyncio.create_task(send_mixed(sender, receiver.client_id, 90, 150, expected,
                                                pause=0.002))
        welcome = await receiver.connect(relay.ws_url)
        await stream
        assert welcome["resumed"] is True and welcome["client_id"] == first["client_id"]
        assert welcome["recovered"] is True, welcome["recovery"]
        await receiver.wait_for(lambda: receiver.texts()[-1:] == expected[-1:])
        await asyncio.sleep(0.2)

        assert receiver.texts() == expected  # every message, once, in order
        changes = [params for method, params in receiver.messages if method == "now.set"]
        assert changes == [
            {"scope": "everyone", "path": "score", "value": 7},
            {"scope": "group:red", "path": "topic", "value": "while away"},
        ]
        await sender.close()
        await receiver.close()


async def test_old_clients_get_todays_frames(gateway: Gateway) -> None:
    """Without `recover` in the hello: no seq member, no recovery fields."""
    async with ws_connect(gateway.ws_url) as plain:
        await plain.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "now.hello",
                                     "params": {"protocol": 1, "token": None}}))
        welcome = json.loads(await plain.recv())["result"]
        assert "recovered" not in welcome and "recovery" not in welcome
        sender = RecoveringClient()
        await sender.connect(gateway.ws_url)
        await sender.call("shout", "plain")
        message: dict[str, Any] = json.loads(await asyncio.wait_for(plain.recv(), 5))
        assert message == {"jsonrpc": "2.0", "method": "message", "params": ["everyone", "plain"]}
        await sender.close()


async def test_beyond_the_history_the_client_is_told_and_the_state_is_current() -> None:
    with Gateway(RECOVERY_POLICY, env={"NOWGATE_HISTORY_SIZE": "5"}) as gateway:
        async with Relay(gateway.port) as relay:
            sender, receiver = RecoveringClient(), RecoveringClient()
            await sender.connect(gateway.ws_url)
            await receiver.connect(relay.ws_url)
            await sender.call("shout", "before")
            await receiver.wait_for(lambda: receiver.texts() == ["before"])
            relay.cut()
            await receiver.closed()
            for number in range(10):
                await sender.call("shout", f"lost {number}")
            await sender.call("setScore", 42)

            relay.heal()
            welcome = await receiver.connect(relay.ws_url)
            assert welcome["resumed"] is True
            assert welcome["recovered"] is False
            assert welcome["recovery"]["reason"] == "expired"
            assert welcome["vars"]["everyone"] == {"score": 42}
            await sender.call("shout", "after")
            await receiver.wait_for(lambda: receiver.texts()[-1] == "after")
            assert receiver.texts() == ["before", "after"]  # nothing half-replayed
            await sender.close()
            await receiver.close()


async def test_after_a_restart_the_epoch_is_unknown() -> None:
    with Gateway(RECOVERY_POLICY) as gateway:
        receiver = RecoveringClient()
        await receiver.connect(gateway.ws_url)
        await receiver.close()
        gateway.stop()
        gateway.start()
        welcome = await receiver.connect(gateway.ws_url)
        assert welcome["resumed"] is True  # same keys: the identity survives the restart
        assert welcome["recovered"] is False
        assert welcome["recovery"]["reason"] == "unknown_epoch"
        await receiver.close()


async def test_a_half_open_connection_is_replaced_by_the_resume(gateway: Gateway) -> None:
    """The client's network changed: its old connection is still open on the gateway,
    silent. The resume (on another path) replaces it and recovers what went to it."""
    async with Relay(gateway.port) as relay:
        sender, receiver = RecoveringClient(), RecoveringClient()
        await sender.connect(gateway.ws_url)
        first = await receiver.connect(relay.ws_url)
        await receiver.call("join", "red")
        await sender.call("shout", "seen")
        await receiver.wait_for(lambda: receiver.texts() == ["seen"])
        relay.black_hole()
        await receiver.closed()
        assert receiver.client_id is not None
        expected = ["seen"]
        # The gateway still holds the identity: messages to it alone are recorded too.
        await send_mixed(sender, receiver.client_id, 0, 9, expected)
        assert await sender.call("setMine", receiver.client_id, 5) is True

        welcome = await receiver.connect(gateway.ws_url)  # the new network: no relay
        assert welcome["client_id"] == first["client_id"] and welcome["resumed"] is True
        assert welcome["recovered"] is True, welcome["recovery"]
        # Client variables live as long as a connection (as on any resume): the replay
        # ends with their deletion, so the client holds what the welcome says.
        assert welcome["vars"]["client"] == {}
        await sender.call("shout", "live")
        expected.append("live")
        await receiver.wait_for(lambda: receiver.texts()[-1:] == ["live"])
        assert receiver.texts() == expected
        own = [params for method, params in receiver.messages
               if method != "message" and params["scope"] == "client"]
        assert own == [{"scope": "client", "path": "mine", "value": 5},
                       {"scope": "client", "path": "mine"}]
        assert await receiver.call("whoami") == {"client_id": first["client_id"],
                                                 "groups": ["red"]}
        assert "connection_replaced" in gateway.log
        await sender.close()
        await receiver.close()


async def test_a_duplicated_tab_gets_a_fresh_identity(gateway: Gateway) -> None:
    """The same token and position while the original answers its pings: no takeover."""
    original, duplicate = RecoveringClient(), RecoveringClient()
    first = await original.connect(gateway.ws_url)
    duplicate.token, duplicate.epoch, duplicate.seq = original.token, original.epoch, original.seq
    welcome = await duplicate.connect(gateway.ws_url)
    assert welcome["resumed"] is False and welcome["client_id"] != first["client_id"]
    assert welcome["recovered"] is False
    assert welcome["recovery"]["reason"] == "not_resumed"
    await duplicate.call("shout", "from the copy")
    await original.wait_for(lambda: original.texts() == ["from the copy"])
    assert original.close_code is None
    assert await original.call("whoami") == {"client_id": first["client_id"], "groups": []}
    await original.close()
    await duplicate.close()
