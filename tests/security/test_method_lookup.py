"""Threat: a client-chosen method name resolves to something that was never exposed.

Attack: gateways that dispatch with `getattr(handlers, name)` or a plain JS object expose
`__class__`, `__init__`, `constructor`, `__proto__`, module globals and imported helpers;
`now.`-prefixed names may reach internals. Defence: a name must match
`^[A-Za-z][A-Za-z0-9_]{0,63}$` and is looked up in the policy's frozen table, built from the
module's own namespace; protocol names are an exact list. Anything else is -32601.
"""

from __future__ import annotations

import json

import pytest

from nowgate.policy import load_policy
from tests.conftest import CHAT_POLICY
from tests.support.gateway import Gateway
from tests.support.wire import call, raw_exchange

HOSTILE_NAMES = [
    "__class__", "__init__", "__dict__", "__globals__", "__import__", "__builtins__",
    "constructor", "__proto__", "prototype", "toString", "hasOwnProperty",
    "now.__dict__", "now.__class__", "now.hello.__init__", "now.", "now", "now.del",
    "Context", "Principal", "StringConstraints", "annotations", "time", "asyncio",
    "authenticate", "on_connect", "message", "answer", "os.system", "eval", "exec",
    "add ", " add", "add\x00", "ADD", "a" * 65, "", "1add", "add.__call__",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_method_names_are_not_found(chat_gateway: Gateway, name: str) -> None:
    (reply,) = await raw_exchange(chat_gateway.ws_url, [call(name, [])])
    assert reply["error"]["code"] == -32601, reply


def test_policy_table_holds_only_declared_functions() -> None:
    policy = load_policy(CHAT_POLICY)
    roles: frozenset[str] = frozenset({"admin"})
    for name in HOSTILE_NAMES:
        assert not policy.authorize(name, roles, set())
    # Helpers and hooks that live in the handler module are not callable either.
    assert "authenticate" not in policy.functions
    assert "on_connect" not in policy.functions


async def test_client_functions_are_not_server_functions(chat_gateway: Gateway) -> None:
    (reply,) = await raw_exchange(chat_gateway.ws_url, [call("answer", ["q"])])
    assert reply["error"]["code"] == -32601
    assert "Traceback" not in json.dumps(reply)
