"""nowgate.client recovers what it missed (docs/protocol.md, "Missed-message recovery").

Against real gateways (tests/support/gateway.py), one node and two on a real Redis, with a
TCP relay (tests/support/relay.py) between the client and the gateway, cut abruptly (RST,
no close frame) mid-stream and kept down while messages are sent: the client comes back by
itself with the same identity, and its client functions see every message exactly once and
in order; beyond the history bound it is told, and its `vars` are the current state. One
test scripts the gateway with `websockets` instead: a cut in the middle of a replay and a
replay overlapping what was processed, which a real gateway produces only by chance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from nowgate.client import Backoff, ClientClosed, NowClient, connect
from tests.support.gateway import Gateway
from tests.support.redis import redis_server
from tests.support.relay import Relay
from tests.test_recovery import RECOVERY_POLICY

FAST = Backoff(base=0.05, cap=0.5)
DOWN_SECONDS = 2.5


async def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Heard:
    """What the receiver's client function `message(source, text)` was given, in order."""

    def __init__(self, client: NowClient) -> None:
        self.texts: list[str] = []
        client.on("message", lambda source, text: self.texts.append(text))


class Expected:
    """What was sent to the receiver, in order, and what it must get.

    A message to one client (`tell`) that the gateway could not queue because the
    receiver's connection was closing at that moment answers False but is recorded all
    the same, so the resume replays it: it may arrive. Everything else must.
    """

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.required: set[str] = set()

    def add(self, text: str, required: bool = True) -> None:
        self.sent.append(text)
        if required:
            self.required.add(text)

    def check(self, received: list[str]) -> None:
        arrived = set(received)
        assert len(received) == len(arrived), "a message arrived twice"
        assert self.required <= arrived, sorted(self.required - arrived)
        # In the order sent, nothing that was not sent.
        assert received == [text for text in self.sent if text in arrived]


async def send_mixed(
    sender: NowClient, receiver_id: str, numbers: range, expected: Expected,
    prefix: str = "m", pause: float = 0.0,
) -> None:
    """Broadcasts to everyone, to the receiver's group, and to the receiver alone.

    Each call is answered before the next is made, so `expected` is the order of delivery.
    """
    for number in numbers:
        text = f"{prefix}{number}"
        kind = number % 3
        if kind == 0:
            await sender.call("shout", text)
            expected.add(text)
        elif kind == 1:
            await sender.call("say", "red", text)
            expected.add(text)
        else:
            expected.add(text, required=await sender.call("tell", receiver_id, text))
        if pause:
            await asyncio.sleep(pause)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway(RECOVERY_POLICY, env={"NOWGATE_RESUME_PROBE_TIMEOUT": "0.5"}) as gateway:
        yield gateway


async def test_a_cut_mid_stream_loses_nothing_and_repeats_nothing(gateway: Gateway) -> None:
    async with Relay(gateway.port) as relay, \
            connect(relay.ws_url, backoff=FAST) as receiver, \
            connect(gateway.ws_url) as sender:
        heard = Heard(receiver)
        lost: list[str] = []
        receiver.on_messages_lost(lost.append)
        await receiver.call("join", "red")
        client_id, expected = receiver.client_id, Expected()
        assert receiver.recovered is False and receiver.recovery_reason == "no_position"

        stream = asyncio.create_task(
            send_mixed(sender, client_id, range(60), expected, pause=0.005))
        await eventually(lambda: len(heard.texts) >= 15)
        relay.cut()  # mid-stream, and refused until heal()
        await eventually(lambda: not receiver.connected)
        await stream
        await send_mixed(sender, client_id, range(60, 90), expected)
        await sender.call("setScore", 7)
        await sender.call("setTopic", "red", "while away")
        await asyncio.sleep(DOWN_SECONDS)
        assert not receiver.connected
        relay.heal()

        # It comes back by itself while the sender goes on: the replay first, then new ones.
        await send_mixed(sender, client_id, range(90, 150), expected, pause=0.005)
        await sender.call("shout", "last")
        expected.add("last")
        await eventually(lambda: heard.texts[-1:] == ["last"])
        await asyncio.sleep(0.2)  # nothing more (no duplicate) arrives
        expected.check(heard.texts)  # every message, once, in order
        assert receiver.client_id == client_id and receiver.resumed is True
        assert receiver.recovered is True and receiver.recovery_reason is None and lost == []
        assert receiver.vars["everyone"] == {"score": 7}
        assert receiver.vars["groups"] == {"red": {"topic": "while away"}}
        assert receiver.position is not None
        assert receiver.position.epoch == receiver.welcome["recovery"]["epoch"]


async def test_beyond_the_history_the_client_is_told_and_holds_the_current_state() -> None:
    with Gateway(RECOVERY_POLICY, env={"NOWGATE_HISTORY_SIZE": "5"}) as gateway:
        async with Relay(gateway.port) as relay, \
                connect(relay.ws_url, backoff=FAST) as receiver, \
                connect(gateway.ws_url) as sender:
            heard = Heard(receiver)
            lost: list[str] = []
            receiver.on_messages_lost(lost.append)
            client_id = receiver.client_id
            await sender.call("shout", "before")
            assert await sender.call("setMine", client_id, 5) is True
            await eventually(lambda: heard.texts == ["before"]
                             and receiver.vars["client"] == {"mine": 5})
            relay.cut()
            await eventually(lambda: not receiver.connected)
            for number in range(10):
                await sender.call("shout", f"lost {number}")
            await sender.call("setScore", 42)
            relay.heal()

            await asyncio.wait_for(receiver.wait_connected(), 15)
            assert receiver.client_id == client_id and receiver.resumed is True
            assert receiver.recovered is False and receiver.recovery_reason == "expired"
            assert lost == ["expired"]
            # The state is the welcome's: the new score, and the client variable (which
            # lives as long as a connection) is gone, not kept from before the cut.
            assert receiver.vars == {"everyone": {"score": 42}, "groups": {}, "client": {}}
            await sender.call("shout", "after")
            await eventually(lambda: heard.texts[-1:] == ["after"])
            assert heard.texts == ["before", "after"]  # nothing half-replayed


@pytest.mark.redis
async def test_a_client_cut_off_from_one_node_recovers_on_the_other() -> None:
    with redis_server() as url:
        first = Gateway(RECOVERY_POLICY, env={"NOWGATE_REDIS_URL": url})
        same_key = {"NOWGATE_SECRET_KEYS": first.env["NOWGATE_SECRET_KEYS"]}
        second = Gateway(RECOVERY_POLICY, env={"NOWGATE_REDIS_URL": url, **same_key})
        with first, second:
            async with Relay(first.port) as relay, \
                    connect(relay.ws_url, backoff=FAST) as receiver, \
                    connect(first.ws_url) as near, connect(second.ws_url) as far:
                heard = Heard(receiver)
                await receiver.call("join", "red")
                client_id = receiver.client_id
                # The cluster orders the messages of each publisher, not across publishers.
                expected = {"near": Expected(), "far": Expected()}

                async def send(numbers: range, pause: float = 0.0) -> None:
                    for number in numbers:
                        await send_mixed(near, client_id, range(number, number + 1),
                                         expected["near"], prefix="near ")
                        await send_mixed(far, client_id, range(number, number + 1),
                                         expected["far"], prefix="far ")
                        await asyncio.sleep(pause)

                stream = asyncio.create_task(send(range(40), pause=0.005))
                await eventually(lambda: len(heard.texts) >= 15)
                relay.cut()
                await eventually(lambda: not receiver.connected)
                await stream
                await send(range(40, 70))
                await far.call("setScore", 9)
                await asyncio.sleep(DOWN_SECONDS)
                relay.target_port = second.port  # the network now leads to the other node
                relay.heal()

                await send(range(70, 100), pause=0.005)
                for sender, name in ((near, "near"), (far, "far")):
                    await sender.call("shout", f"{name} last")
                    expected[name].add(f"{name} last")
                await eventually(lambda: {"near last", "far last"} <= set(heard.texts))
                await asyncio.sleep(0.3)
                assert receiver.client_id == client_id and receiver.resumed is True
                assert receiver.recovered is True, receiver.welcome["recovery"]
                assert receiver.welcome["recovery"]["epoch"] != ""
                for name, sent in expected.items():
                    sent.check([text for text in heard.texts if text.startswith(name)])
                assert receiver.vars["everyone"] == {"score": 9}


async def test_after_a_network_change_the_client_takes_over_its_half_open_connection(
    gateway: Gateway,
) -> None:
    """The client's side of the socket is gone, the gateway's is open and silent (the
    gateway has not noticed yet): the client's resume replaces it and recovers what was
    sent to it meanwhile, messages to it alone included (its identity was still held)."""
    async with Relay(gateway.port) as relay, \
            connect(relay.ws_url, backoff=FAST) as receiver, \
            connect(gateway.ws_url) as sender:
        heard = Heard(receiver)
        await receiver.call("join", "red")
        client_id, expected = receiver.client_id, Expected()
        await send_mixed(sender, client_id, range(9), expected)
        await eventually(lambda: len(heard.texts) == 9)
        relay.black_hole()
        await send_mixed(sender, client_id, range(9, 30), expected, pause=0.01)
        await sender.call("shout", "last")
        expected.add("last")
        await eventually(lambda: heard.texts[-1:] == ["last"])
        await asyncio.sleep(0.2)
        expected.check(heard.texts)
        assert receiver.client_id == client_id and receiver.resumed is True
        assert receiver.recovered is True
        assert "connection_replaced" in gateway.log


class StallingRelay(Relay):
    """A relay that can also stop forwarding for a while, both ways, keeping every socket
    open: to the gateway the client is silent, to the client the gateway is."""

    def stall(self) -> None:
        for client_side, gateway_side in self._links:
            client_side.transport.pause_reading()
            gateway_side.transport.pause_reading()

    def resume(self) -> None:
        for client_side, gateway_side in self._links:
            client_side.transport.resume_reading()
            gateway_side.transport.resume_reading()


async def test_a_replaced_connection_does_not_take_its_identity_back(gateway: Gateway) -> None:
    """The gateway found this connection silent when another resumed its identity, and
    closed it with 4000: the client stops instead of reconnecting to take the identity back
    (which would leave the two fighting over it whenever either went quiet)."""
    async with StallingRelay(gateway.port) as relay, \
            connect(relay.ws_url, backoff=FAST) as replaced, \
            connect(gateway.ws_url) as sender:
        client_id, accepted = replaced.client_id, relay.accepted
        relay.stall()  # its network hangs: the gateway's probe goes unanswered
        async with connect(gateway.ws_url, token=replaced.token, backoff=FAST) as successor:
            assert successor.client_id == client_id and successor.resumed is True
            relay.resume()  # the 4000 close frame now reaches the old connection
            assert await asyncio.wait_for(replaced.wait_closed(), 10) == 4000
            await asyncio.sleep(1.0)  # time to reconnect, if it were going to
            assert relay.accepted == accepted and not replaced.connected
            with pytest.raises(ClientClosed):
                await replaced.call("whoami", timeout=1)
            heard = Heard(successor)
            await sender.call("tell", client_id, "still yours")
            await eventually(lambda: heard.texts == ["still yours"])
            assert (await successor.call("whoami"))["client_id"] == client_id
            assert successor.connected


# ---- the client's bookkeeping, with a scripted gateway


@contextlib.asynccontextmanager
async def scripted_gateway(
    script: list[list[dict[str, Any]]], hellos: list[dict[str, Any]]
) -> AsyncIterator[str]:
    """Connection n answers its hello with script[n][0] (a welcome), sends the frames
    script[n][1:], and drops (1012: come back). The hellos' params are kept in `hellos`."""

    async def handler(ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        hellos.append(hello["params"])
        frames = script[min(len(hellos), len(script)) - 1]
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": hello["id"], "result": frames[0]}))
        for frame in frames[1:]:
            await ws.send(json.dumps({"jsonrpc": "2.0", **frame}))
        if len(hellos) < len(script):
            await ws.close(1012)
        else:
            await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def welcome(vars_: dict[str, Any], recovered: bool, epoch: str, seq: int, replayed: int,
            reason: str | None = None) -> dict[str, Any]:
    return {"client_id": "c-s", "token": "t", "resumed": True, "functions": [],
            "client_functions": ["tick"], "vars": vars_, "recovered": recovered,
            "recovery": {"epoch": epoch, "seq": seq, "replayed": replayed, "reason": reason}}


def tick(n: int, seq: int | None) -> dict[str, Any]:
    return {"method": "tick", "params": [n]} | ({} if seq is None else {"seq": seq})


async def test_position_overlap_and_a_cut_in_the_middle_of_a_replay() -> None:
    everyone = {"everyone": {"score": 1}, "groups": {}, "client": {}}
    final = {"everyone": {"score": 3}, "groups": {}, "client": {}}
    script = [
        # Opted in, nothing to recover; two messages, then the network drops.
        [welcome(everyone, False, "e1", 10, 0, "no_position"), tick(1, 11), tick(2, 12)],
        # Three replayed frames: one the client already processed (overlap), one, then the
        # network drops before the third.
        [welcome(final, True, "e1", 20, 3), tick(2, 12), tick(3, 13)],
        # Resumed on another node (epoch e2): a replayed message numbered in e1, one that
        # node never recorded (no seq), a variable change, then a live message of e2 whose
        # number is below e1's.
        [welcome(final, True, "e2", 5, 3), tick(4, 15), tick(5, None),
         {"method": "now.set", "params": {"scope": "everyone", "path": "score", "value": 3}},
         tick(6, 6)],
        [welcome(final, False, "e2", 6, 0, "no_position")],
    ]
    hellos: list[dict[str, Any]] = []
    async with scripted_gateway(script, hellos) as url, connect(url, backoff=FAST) as client:
        ticks: list[int] = []
        client.on("tick", ticks.append)
        await eventually(lambda: len(hellos) == 4 and client.connected)
        await eventually(lambda: len(ticks) >= 6)
        await asyncio.sleep(0.1)
        assert ticks == [1, 2, 3, 4, 5, 6]  # each once, in order
        assert [hello["recover"] for hello in hellos] == [
            True,
            {"epoch": "e1", "seq": 12},  # the last message processed
            {"epoch": "e1", "seq": 13},  # cut mid-replay: the last replayed one, not the welcome's
            {"epoch": "e2", "seq": 6},  # after the replay, the welcome's epoch and numbers
        ]
        assert all(hello["token"] == "t" for hello in hellos[1:])
        assert client.vars == final
