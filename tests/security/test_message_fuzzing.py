"""Threat: malformed or hostile frames crash the decoder, reach a handler, or wedge a session.

Attack: random bytes, truncated JSON, deep nesting, odd types in every JSON-RPC member,
unknown method names, answers to calls never made. Defence: the decoder turns every input
into a typed message or a typed error (never another exception); the session answers with a
JSON-RPC error, never dispatches anything that is not a valid call to a declared function,
and stays usable afterwards. Fuzzed with hypothesis, without sockets.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nowgate.dispatch as dispatch_module
from nowgate.auth import Handshake
from nowgate.decode import Limits, Request, Response, decode
from nowgate.errors import RpcError
from nowgate.fanout import Outbox
from nowgate.hub import Hub
from nowgate.policy import load_policy
from nowgate.session import Session, State
from nowgate.settings import Settings
from tests.conftest import CHAT_POLICY

LIMITS = Limits(max_depth=32, max_items=1000)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
names = st.sampled_from(["add", "boom", "now.hello", "now.set", "nothere", "__class__",
                         "constructor", "now.__dict__", "adminOnly"]) | st.text(max_size=70)
members = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | json_values,
        "id": st.integers() | st.text(max_size=10) | json_values,
        "method": names | json_values,
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)
frames = (
    st.text(max_size=200)
    | members.map(lambda m: json.dumps(m, allow_nan=True))
    | st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(0, 5000))
    | st.sampled_from(['{"a":1,"a":2}', '"\\ud800"', "1e999", "-Infinity", "[NaN]",
                       "9" * 5000, '{"jsonrpc":"2.0","id":1e999,"method":"add"}'])
)


@given(frames)
@settings(max_examples=300, deadline=None)
def test_decoder_returns_a_message_or_a_typed_error(frame: str) -> None:
    try:
        message = decode(frame, LIMITS)
    except RpcError:
        return
    assert isinstance(message, (Request, Response))


class Harness:
    """A session wired to a real hub, with the handler entry point recorded."""

    def __init__(self) -> None:
        settings = Settings(violation_limit=10_000, connection_rate="1000000/second")
        self.hub = Hub(settings, load_policy(CHAT_POLICY))
        self.dispatched: list[str] = []

    async def run(self, fuzz: list[str]) -> list[dict[str, Any]]:
        outbox = Outbox(10_000)
        session = Session(self.hub, Handshake("198.51.100.1"), outbox)
        await session.hello('{"jsonrpc":"2.0","id":0,"method":"now.hello","params":{"protocol":1}}')
        worker = asyncio.create_task(session.work())
        try:
            for frame in fuzz:
                await session.receive(frame)
            await session.receive('{"jsonrpc":"2.0","id":"probe","method":"add","params":[2,3]}')
            for _ in range(200):
                await asyncio.sleep(0)
                if session.idle:
                    break
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        assert session.state is State.OPEN
        replies = [json.loads(frame) for frame in await outbox.next_batch()]
        await session.finish()
        return replies


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness()


@given(fuzz=st.lists(frames, max_size=8))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_session_survives_any_frames_and_dispatches_only_valid_calls(
    harness: Harness, fuzz: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_invoke = dispatch_module.invoke
    dispatched: list[tuple[str, dict[str, Any]]] = []

    async def recording_invoke(function: Any, context: Any, arguments: dict[str, Any]) -> Any:
        dispatched.append((function.name, arguments))
        return await real_invoke(function, context, arguments)

    monkeypatch.setattr(dispatch_module, "invoke", recording_invoke)
    replies = asyncio.run(harness.run(fuzz))
    policy = harness.hub.policy
    for name, arguments in dispatched:
        assert name in policy.functions
        assert name != "adminOnly"  # anonymous sessions are never allowed it
        # Arguments reached the handler only after validation against its types.
        function = policy.functions[name]
        assert set(arguments) == set(function.arguments.names)
    # The session still answers: the probe is answered last, with the right result.
    assert replies[-1] == {"jsonrpc": "2.0", "id": "probe", "result": 5}
    for reply in replies[1:-1]:
        if "error" in reply:
            assert set(reply["error"]) <= {"code", "message", "data"}
            assert "Traceback" not in json.dumps(reply)
