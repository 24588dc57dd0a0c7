"""nowgate.session: the connection state machine, driven with plain strings and no socket.

Each test builds a Hub from Settings() and the chat policy (tests/fixtures/chat.toml), gives
every simulated connection an Outbox and a Session, feeds frames to `hello()` / `receive()`,
runs `work()` as the endpoint does, and reads what the session queued with `next_batch()`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from nowgate.auth import Handshake
from nowgate.errors import CloseConnection, PolicyViolation, TryAgainLater
from nowgate.fanout import Outbox
from nowgate.hub import Hub
from nowgate.identity import MAX_TOKEN_LENGTH, IdentitySigner
from nowgate.policy import Policy, load_policy
from nowgate.session import INBOX_LIMIT, Session, State
from nowgate.settings import Settings

CHAT_POLICY = Path(__file__).parent / "fixtures" / "chat.toml"
# Handlers for the regression tests of fixed bugs (group names, validators, UTF-8 sizes).
REGRESSIONS_POLICY = Path(__file__).parent / "fixtures" / "regressions.toml"
SECRET_TEXTS = ("hunter2", "/srv", "RuntimeError", "Traceback", "secret")


class Connection:
    """One simulated client: a Session and its Outbox, with the worker the endpoint would run."""

    def __init__(
        self, hub: Hub, clock: Callable[[], float] = time.monotonic, queue_limit: int = 256
    ) -> None:
        self.hub = hub
        self.outbox = Outbox(queue_limit)
        self.session = Session(hub, Handshake("203.0.113.9"), self.outbox, clock=clock)
        self.worker: asyncio.Task[None] | None = None
        self.notifications: list[dict[str, Any]] = []
        self.unclaimed: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._next_id = 100

    # Sending ------------------------------------------------------------------------------

    async def hello(
        self, token: str | None = None, auth: str | None = None, start_worker: bool = True,
        **params: Any,
    ) -> dict[str, Any]:
        """Say hello; the welcome's result (or the whole reply if it is an error)."""
        hello_params: dict[str, Any] = {"protocol": 1, "token": token, **params}
        if auth is not None:
            hello_params["auth"] = auth
        await self.session.hello(request("now.hello", hello_params, 1))
        if self.session.state is State.OPEN and start_worker:
            self.worker = asyncio.create_task(self.session.work())
        reply = await self.reply()
        return reply.get("result", reply)

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.session.receive(message if isinstance(message, str) else json.dumps(message))

    async def call(self, method: str, *params: Any, named: dict[str, Any] | None = None) -> Any:
        """Call a server function; its whole reply (other replies are kept in `unclaimed`)."""
        self._next_id += 1
        request_id = self._next_id
        await self.send(request(method, named if named is not None else list(params), request_id))
        while True:
            reply = await self.reply()
            if reply.get("id") == request_id and "method" not in reply:
                return reply
            self.unclaimed.append(reply)

    async def result(self, method: str, *params: Any) -> Any:
        reply = await self.call(method, *params)
        assert "result" in reply, reply
        return reply["result"]

    # Receiving ----------------------------------------------------------------------------

    async def frame(self) -> dict[str, Any]:
        """The next frame the session queued, waiting for the worker if need be."""
        if not self._pending:
            batch = await asyncio.wait_for(self.outbox.next_batch(), 2)
            assert batch, f"the session closed instead: {self.outbox.close_error!r}"
            self._pending = [json.loads(text) for text in batch]
        return self._pending.pop(0)

    async def reply(self) -> dict[str, Any]:
        """The next answer or server->client request, keeping the notifications before it."""
        while True:
            message = await self.frame()
            if "method" in message and "id" not in message:
                self.notifications.append(message)
            else:
                return message

    async def closed(self) -> CloseConnection:
        """Read, as the endpoint's writer does, until the session asks for the close."""
        while batch := await asyncio.wait_for(self.outbox.next_batch(), 2):
            self._pending += [json.loads(text) for text in batch]
        assert self.outbox.close_error is not None
        return self.outbox.close_error

    async def queued(self) -> list[dict[str, Any]]:
        """What is queued right now, without waiting for more."""
        frames, self._pending = self._pending, []
        if len(self.outbox):
            frames += [json.loads(text) for text in await self.outbox.next_batch()]
        return frames

    @property
    def client_id(self) -> str:
        assert self.session.peer is not None
        return self.session.peer.client_id

    @property
    def close_code(self) -> int | None:
        error = self.outbox.close_error
        return None if error is None else error.close_code


def request(method: str, params: Any, request_id: int | str | None) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message)


def notification(method: str, *params: Any) -> str:
    return request(method, list(params), None)


@pytest.fixture(autouse=True)
def no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("NOWGATE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(CHAT_POLICY)


@pytest.fixture
def make_hub(policy: Policy) -> Callable[..., Hub]:
    def make(**settings: Any) -> Hub:
        return Hub(Settings(**settings), policy)

    return make


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub()


@pytest.fixture(scope="module")
def regressions_policy() -> Policy:
    return load_policy(REGRESSIONS_POLICY)


@pytest.fixture
def regressions_hub(regressions_policy: Policy) -> Hub:
    return Hub(Settings(), regressions_policy)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Connection]]:
    connections: list[Connection] = []

    def make(hub: Hub, **options: Any) -> Connection:
        connection = Connection(hub, **options)
        connections.append(connection)
        return connection

    yield make
    workers = [c.worker for c in connections if c.worker is not None]
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# The welcome --------------------------------------------------------------------------------


async def test_welcome_names_a_server_chosen_identity_and_what_the_client_may_use(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    welcome = await client.hello()
    assert set(welcome) >= {"client_id", "token", "resumed", "functions", "client_functions",
                            "vars"}
    assert welcome["client_id"].startswith("c-") and len(welcome["client_id"]) == 34
    assert welcome["resumed"] is False
    assert welcome["functions"] == hub.policy.callable_names(frozenset(), set())
    assert "adminOnly" not in welcome["functions"] and "say" in welcome["functions"]
    assert welcome["client_functions"] == ["answer", "message"]
    assert welcome["vars"] == {"everyone": {}, "groups": {}, "client": {}}
    claims = hub.signer.verify(welcome["token"])
    assert claims is not None and claims.client_id == welcome["client_id"]
    assert client.session.state is State.OPEN
    assert hub.registry.get(welcome["client_id"]) is client.session.peer


async def test_the_welcome_answers_the_hello_id(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.session.hello(request("now.hello", {"protocol": 1}, "hello-7"))
    reply = await client.frame()
    assert reply["jsonrpc"] == "2.0" and reply["id"] == "hello-7" and "result" in reply


async def test_every_connection_gets_its_own_client_id(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    ids = {(await connect(hub).hello())["client_id"] for _ in range(5)}
    assert len(ids) == 5
    assert len(hub.registry) == 5


async def test_a_client_cannot_choose_its_client_id(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    reply = await client.hello(client_id="c-chosen")
    assert reply["error"]["code"] == -32602
    assert client.close_code == 1008
    assert "c-chosen" not in hub.registry and len(hub.registry) == 0


async def test_the_welcome_holds_a_snapshot_of_the_readable_variables(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    hub.set_variable("everyone", "score", 5)
    hub.set_variable("group:red", "topic", "not mine")
    welcome = await connect(hub).hello()
    assert welcome["vars"] == {"everyone": {"score": 5}, "groups": {}, "client": {}}


async def test_the_connect_hook_runs_before_any_call(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    assert await client.result("add", 1, 2) == 3
    assert client.notifications == [
        {"jsonrpc": "2.0", "method": "now.set",
         "params": {"scope": "client", "path": "greeting", "value": f"welcome {client.client_id}"}}
    ]


async def test_an_authenticated_client_gets_its_user_roles_and_functions(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    admin = connect(hub)
    welcome = await admin.hello(auth="admin-credential")
    assert welcome["user"] == "root" and welcome["roles"] == ["admin"]
    assert "adminOnly" in welcome["functions"]
    assert await admin.result("adminOnly") == "granted"


# Resuming an identity -----------------------------------------------------------------------


async def test_a_token_from_an_ended_session_resumes_that_identity_and_its_groups(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    first = connect(hub)
    await first.hello()
    client_id = first.client_id
    assert await first.result("join", "red") == ["red"]
    token_update = next(n for n in first.notifications if n["method"] == "now.token")
    await first.session.finish()
    assert client_id not in hub.registry

    again = connect(hub)
    welcome = await again.hello(token=token_update["params"]["token"])
    assert welcome["resumed"] is True
    assert welcome["client_id"] == client_id
    assert again.session.peer is not None and again.session.peer.groups == {"red"}
    assert [p.client_id for p in hub.registry.members("red")] == [client_id]


async def test_the_token_of_a_connected_client_gets_a_fresh_identity(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    victim = connect(hub)
    token = (await victim.hello())["token"]
    thief = connect(hub)
    welcome = await thief.hello(token=token)
    assert welcome["resumed"] is False
    assert welcome["client_id"] != victim.client_id
    assert hub.registry.get(victim.client_id) is victim.session.peer


async def test_a_client_in_groups_named_with_dashes_dots_and_colons_resumes_them(
    regressions_hub: Hub, connect: Callable[..., Connection]
) -> None:
    # The registry accepts these names; the token that carries them must verify again.
    groups = ["team-1", "room.2", "a:b"]
    first = connect(regressions_hub)
    await first.hello()
    client_id = first.client_id
    assert await first.result("enter", groups) == sorted(groups)
    tokens = [n["params"]["token"] for n in first.notifications if n["method"] == "now.token"]
    await first.session.finish()
    assert client_id not in regressions_hub.registry

    again = connect(regressions_hub)
    welcome = await again.hello(token=tokens[-1])
    assert welcome["resumed"] is True
    assert welcome["client_id"] == client_id
    assert again.session.peer is not None and again.session.peer.groups == set(groups)
    for group in groups:
        assert [p.client_id for p in regressions_hub.registry.members(group)] == [client_id]


def altered_signature(token: str, signer: IdentitySigner) -> str:
    index = token.rindex(".") + 4
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]


def swapped_payload(token: str, signer: IdentitySigner) -> str:
    other = signer.issue("c-" + "0" * 32, None, []).split(".")[0]
    return ".".join([other, *token.split(".")[1:]])


def other_key(token: str, signer: IdentitySigner) -> str:
    claims = signer.verify(token)
    assert claims is not None
    return IdentitySigner(["not the server key" * 2], 3600).issue(claims.client_id, None, [])


def other_salt(token: str, signer: IdentitySigner) -> str:
    claims = signer.verify(token)
    assert claims is not None
    payload = {"cid": claims.client_id, "usr": None, "grp": []}
    return str(URLSafeTimedSerializer("any key", salt="another.purpose").dumps(payload))


@pytest.mark.parametrize("forge", [altered_signature, swapped_payload, other_key, other_salt])
async def test_a_second_client_cannot_take_an_identity_with_an_altered_token(
    hub: Hub, connect: Callable[..., Connection], forge: Callable[[str, IdentitySigner], str]
) -> None:
    victim = connect(hub)
    token = (await victim.hello())["token"]
    victim_id = victim.client_id
    await victim.session.finish()

    thief = connect(hub)
    welcome = await thief.hello(token=forge(token, hub.signer))
    assert "result" not in welcome and "error" not in welcome  # a welcome, not an error
    assert welcome["resumed"] is False
    assert welcome["client_id"] != victim_id
    assert victim_id not in hub.registry


async def test_a_token_of_another_user_does_not_resume(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    alice = connect(hub)
    token = (await alice.hello(auth="user:alice"))["token"]
    alice_id = alice.client_id
    await alice.session.finish()

    for auth in ("user:mallory", None):
        other = connect(hub)
        welcome = await other.hello(token=token, auth=auth)
        assert welcome["resumed"] is False and welcome["client_id"] != alice_id
        await other.session.finish()

    back = connect(hub)
    assert (await back.hello(token=token, auth="user:alice"))["client_id"] == alice_id


async def test_an_expired_token_gets_a_fresh_identity(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = make_hub(token_max_age=60)
    first = connect(hub)
    token = (await first.hello())["token"]
    first_id = first.client_id
    await first.session.finish()
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    welcome = await connect(hub).hello(token=token)
    assert welcome["resumed"] is False and welcome["client_id"] != first_id


@pytest.mark.parametrize(
    "token", ["x" * (MAX_TOKEN_LENGTH + 1), "y" * 50_000, "", "\u00e9\u0000 not a token"]
)
async def test_a_token_that_cannot_be_used_is_a_fresh_identity_not_an_error(
    hub: Hub, connect: Callable[..., Connection], token: str
) -> None:
    client = connect(hub)
    welcome = await client.hello(token=token)
    assert welcome["resumed"] is False and welcome["client_id"].startswith("c-")
    assert client.close_code is None


async def test_a_token_of_the_wrong_json_type_is_invalid_params(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    reply = await client.hello(token=12345)
    assert reply["error"]["code"] == -32602
    assert client.close_code == 1008


# The hello ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        request("add", [1, 2], 1),
        notification("now.hello"),
        request("now.hello", {"protocol": 1}, None),
        json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"protocol": 1}}),
    ],
    ids=["other-call", "hello-notification-positional", "hello-notification", "response"],
)
async def test_anything_but_a_hello_request_first_closes_with_1008(
    hub: Hub, connect: Callable[..., Connection], first: str
) -> None:
    client = connect(hub)
    await client.session.hello(first)
    assert client.session.state is State.CLOSED
    assert isinstance(client.outbox.close_error, PolicyViolation)
    assert await client.queued() == []
    assert len(hub.registry) == 0


async def test_a_first_frame_that_is_not_json_is_answered_then_closed(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.session.hello("GET / HTTP/1.1")
    assert await client.queued() == [
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
    ]
    assert client.close_code == 1008


@pytest.mark.parametrize(
    "params",
    [{"protocol": 2}, {"protocol": "1"}, {}, [1, None], {"protocol": 1, "token": 5},
     {"protocol": 1, "auth": ["x"]}],
    ids=["protocol-2", "protocol-string", "no-protocol", "positional", "token-int", "auth-list"],
)
async def test_a_malformed_hello_is_refused_with_invalid_params_and_closed(
    hub: Hub, connect: Callable[..., Connection], params: Any
) -> None:
    client = connect(hub)
    await client.session.hello(request("now.hello", params, 1))
    [reply] = await client.queued()
    assert reply["id"] == 1 and reply["error"]["code"] == -32602
    assert all(set(item) == {"loc", "msg", "type"} for item in reply["error"]["data"])
    assert client.close_code == 1008
    assert len(hub.registry) == 0


async def test_a_refused_credential_is_forbidden_and_closed_with_1008(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    reply = await client.hello(auth="a forged credential")
    assert reply == {"jsonrpc": "2.0", "id": 1,
                     "error": {"code": -32003, "message": "Authentication refused"}}
    assert client.close_code == 1008
    assert len(hub.registry) == 0


async def test_a_failing_authentication_hook_leaks_nothing_and_closes_with_1011(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    reply = await client.hello(auth="explode")
    assert reply == {"jsonrpc": "2.0", "id": 1,
                     "error": {"code": -32603, "message": "Internal error"}}
    assert client.close_code == 1011
    assert len(hub.registry) == 0


async def test_frames_are_not_processed_before_the_hello(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.send(request("add", [1, 2], 1))
    assert await client.queued() == []
    assert client.session.state is State.HELLO


async def test_a_second_hello_is_an_invalid_request(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    client_id = (await client.hello())["client_id"]
    await client.send(request("now.hello", {"protocol": 1}, 2))
    assert (await client.reply())["error"]["code"] == -32600
    assert client.client_id == client_id


# Error replies ------------------------------------------------------------------------------


async def test_text_that_is_not_json_is_answered_with_a_parse_error_and_null_id(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    await client.send('{"jsonrpc":"2.0","id":5,"method":"add",')
    assert await client.reply() == {
        "jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}
    }


@pytest.mark.parametrize(
    "text, request_id",
    [
        ('[{"jsonrpc":"2.0","id":1,"method":"add"}]', None),
        ('{"jsonrpc":"1.0","id":5,"method":"add"}', 5),
        ('{"jsonrpc":"2.0","id":5,"method":7}', 5),
        ('{"jsonrpc":"2.0","id":1.5,"method":"add"}', None),
        ('{"jsonrpc":"2.0","id":6,"method":"add","params":"1,2"}', 6),
    ],
    ids=["batch", "version", "method-type", "id-type", "params-type"],
)
async def test_an_invalid_request_is_answered_with_32600(
    hub: Hub, connect: Callable[..., Connection], text: str, request_id: int | None
) -> None:
    client = connect(hub)
    await client.hello()
    await client.send(text)
    reply = await client.reply()
    assert reply["id"] == request_id
    assert reply["error"] == {"code": -32600, "message": reply["error"]["message"]}


@pytest.mark.parametrize(
    "method", ["nothere", "__class__", "constructor", "toString", "now.nothing", "authorize",
               "on_connect", "message", "Handshake"],
)
async def test_a_function_not_in_the_policy_is_answered_with_32601(
    hub: Hub, connect: Callable[..., Connection], method: str
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call(method)
    assert reply["error"] == {"code": -32601, "message": "Method not found"}


async def test_invalid_arguments_are_answered_with_32602_without_echoing_them(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call("add", "secret-value-123", 2)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"] == [
        {"loc": ["a"], "msg": "Input should be a valid integer", "type": "int_type"}
    ]
    assert "secret-value-123" not in json.dumps(reply)


async def test_arguments_by_name_are_validated_too(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    assert (await client.call("add", named={"a": 2, "b": 3}))["result"] == 5
    reply = await client.call("add", named={"a": 2, "evil_name": 3})
    assert reply["error"]["data"][0]["type"] == "extra_forbidden"
    assert "evil_name" not in json.dumps(reply)  # a client-chosen key is input too


async def test_a_frame_over_the_functions_max_bytes_is_refused_before_validation(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call("say", "red", "x" * 16_384)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"] == [
        {"loc": [], "msg": "Arguments too large", "type": "too_large"}
    ]


async def test_a_frame_of_non_ascii_text_is_measured_in_utf8_bytes_against_max_bytes(
    regressions_hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(regressions_hub)
    await client.hello()
    assert regressions_hub.policy.functions["echo"].rule.max_bytes == 256

    def echo(request_id: int, text: str) -> str:
        message = {"jsonrpc": "2.0", "id": request_id, "method": "echo", "params": [text]}
        return json.dumps(message, ensure_ascii=False)  # "é" as is, as browsers send it

    ascii_frame, accented_frame = echo(1, "e" * 120), echo(2, "\u00e9" * 120)
    assert len(ascii_frame) == len(accented_frame) <= 256 < len(accented_frame.encode())
    await client.send(ascii_frame)
    assert await client.reply() == {"jsonrpc": "2.0", "id": 1, "result": 120}
    await client.send(accented_frame)
    reply = await client.reply()
    assert reply["id"] == 2 and reply["error"]["code"] == -32602
    assert reply["error"]["data"] == [
        {"loc": [], "msg": "Arguments too large", "type": "too_large"}
    ]


async def test_a_failing_handler_is_answered_with_32603_and_nothing_of_the_failure(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call("boom")
    assert reply == {"jsonrpc": "2.0", "id": reply["id"],
                     "error": {"code": -32603, "message": "Internal error"}}
    for text in SECRET_TEXTS:
        assert text not in json.dumps(reply)


async def test_a_validator_raising_a_non_rpc_exception_is_answered_32603_and_the_session_lives(
    regressions_hub: Hub, connect: Callable[..., Connection]
) -> None:
    # Ticket's field_validator raises LookupError, which pydantic does not turn into a
    # ValidationError: it escapes argument validation, before the handler runs.
    client = connect(regressions_hub)
    await client.hello()
    reply = await client.call("book", {"n": 13})
    assert reply == {"jsonrpc": "2.0", "id": reply["id"],
                     "error": {"code": -32603, "message": "Internal error"}}
    assert "/srv" not in json.dumps(reply) and "LookupError" not in json.dumps(reply)
    assert await client.result("add", 1, 2) == 3
    assert await client.result("book", {"n": 7}) == 7
    assert client.worker is not None and not client.worker.done()
    assert client.session.state is State.OPEN and not client.outbox.closing


async def test_a_function_forbidden_to_this_client_is_answered_with_32003(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello(auth="user:alice")
    assert (await client.call("adminOnly"))["error"] == {"code": -32003, "message": "Forbidden"}


async def test_a_rate_limited_call_is_answered_with_32029_and_retry_after(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    for _ in range(3):  # the policy allows 3/minute
        assert await client.result("limited") == 1
    error = (await client.call("limited"))["error"]
    assert error["code"] == -32029
    assert 0 < error["data"]["retry_after"] <= 60


async def test_the_rate_limit_follows_the_identity_not_the_connection(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    first = connect(hub)
    await first.hello(auth="user:alice")
    for _ in range(3):
        await first.result("limited")
    second = connect(hub)
    await second.hello(auth="user:alice")
    assert (await second.call("limited"))["error"]["code"] == -32029


async def test_the_connection_rate_limit_answers_32029(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection]
) -> None:
    client = connect(make_hub(connection_rate="2/minute"))
    await client.hello()
    assert await client.result("add", 1, 1) == 2
    assert await client.result("add", 1, 1) == 2
    assert (await client.call("add", 1, 1))["error"]["code"] == -32029


async def test_every_error_leaves_the_connection_usable(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    await client.send("not json")
    await client.call("nothere")
    await client.call("add", "x")
    await client.call("boom")
    await client.call("adminOnly")
    assert await client.result("add", 20, 22) == 42
    assert client.session.state is State.OPEN and not client.outbox.closing


# Notifications ------------------------------------------------------------------------------


async def test_a_notification_is_executed_and_never_answered(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    await client.send(notification("setScore", 7))
    assert await client.result("add", 1, 1) == 2  # calls run in order: the notification ran
    assert hub.variables.everyone == {"score": 7}
    assert {"jsonrpc": "2.0", "method": "now.set",
            "params": {"scope": "everyone", "path": "score", "value": 7}} in client.notifications


@pytest.mark.parametrize(
    "text",
    [
        notification("boom"),
        notification("nothere"),
        notification("__class__"),
        notification("add", "not a number"),
        notification("adminOnly"),
        notification("say", "red", "x" * 16_384),
        request("now.set", {"scope": "everyone", "path": "score", "value": 1}, None),
    ],
    ids=["handler-fails", "unknown", "bad-name", "bad-arguments", "forbidden", "too-large",
         "write-refused"],
)
async def test_a_notification_with_an_error_is_not_answered(
    hub: Hub, connect: Callable[..., Connection], text: str
) -> None:
    client = connect(hub)
    await client.hello()
    await client.send(text)
    assert await client.result("add", 1, 2) == 3  # calls run in order: the notification ran
    assert client.unclaimed == []
    assert all("error" not in message for message in client.notifications)


async def test_rate_limited_notifications_are_not_answered(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    for _ in range(5):
        await client.send(notification("limited"))
    assert await client.result("add", 1, 2) == 3
    assert client.unclaimed == []


# Calls --------------------------------------------------------------------------------------


async def test_calls_run_their_handlers_and_are_answered_in_order(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    for request_id, (method, params) in enumerate(
        [("add", [1, 1]), ("join", ["red"]), ("join", ["blue"]), ("rooms", []),
         ("leave", ["red"]), ("rooms", []), ("add", [2, 2])],
        start=10,
    ):
        await client.send(request(method, params, request_id))
    replies = [await client.reply() for _ in range(7)]
    assert [r["id"] for r in replies] == list(range(10, 17))
    assert [r["result"] for r in replies] == [
        2, ["red"], ["blue", "red"], ["blue", "red"], ["blue"], ["blue"], 4
    ]


async def test_a_handler_sees_the_caller_as_the_server_knows_it(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello(auth="user:alice")
    await client.result("join", "red")
    assert await client.result("whoami") == {
        "client_id": client.client_id, "user": "alice", "roles": [], "groups": ["red"]
    }


async def test_a_group_message_reaches_the_other_members_only(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    alice, bob, carol = connect(hub), connect(hub), connect(hub)
    for client in (alice, bob, carol):
        await client.hello()
    await alice.result("join", "red")
    await bob.result("join", "red")
    assert await alice.result("say", "red", "hi") == 1
    assert (await bob.frame())["params"] == ["red", "hi"]
    assert [m for m in await alice.queued() if m.get("method") == "message"] == []
    assert [m for m in await carol.queued() if m.get("method") == "message"] == []


async def test_a_server_to_client_call_is_answered_through_the_session(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection]
) -> None:
    hub = make_hub(violation_limit=1)
    asker, target = connect(hub), connect(hub)
    await asker.hello()
    await target.hello()
    await asker.send(request("ask", [target.client_id, "ready?"], 1))
    question = await target.reply()
    assert question["method"] == "answer" and question["params"] == ["ready?"]
    assert isinstance(question["id"], str) and len(question["id"]) >= 16
    await target.send({"jsonrpc": "2.0", "id": question["id"], "result": "yes"})
    assert (await asker.reply())["result"] == "yes"
    assert not target.outbox.closing  # a real answer is no violation
    # The same answer again answers nothing: that is a violation.
    await target.send({"jsonrpc": "2.0", "id": question["id"], "result": "yes"})
    assert isinstance(target.outbox.close_error, PolicyViolation)


async def test_an_answer_of_the_wrong_type_fails_the_servers_call(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    asker, target = connect(hub), connect(hub)
    await asker.hello()
    await target.hello()
    await asker.send(request("ask", [target.client_id, "ready?"], 1))
    question = await target.reply()
    await target.send({"jsonrpc": "2.0", "id": question["id"], "result": 42})
    assert (await asker.reply())["error"]["code"] == -32603


async def test_a_slow_reader_is_closed_with_1013_and_the_sender_is_unaffected(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    sender, slow = connect(hub), connect(hub, queue_limit=4)
    await sender.hello()
    await slow.hello()
    await slow.queued()
    assert await sender.result("flood", 5) == 5
    assert isinstance(slow.outbox.close_error, TryAgainLater)
    assert slow.close_code == 1013
    assert await slow.queued() == []
    assert await sender.result("add", 1, 1) == 2


async def test_a_client_with_a_full_call_queue_is_not_read_until_it_drains(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello(start_worker=False)
    # One slot of the queue may hold the connect hook, which runs before any call.
    for request_id in range(INBOX_LIMIT - 1):
        await client.send(request("add", [1, 1], request_id))
    blocked = asyncio.create_task(client.send(request("add", [1, 1], INBOX_LIMIT - 1)))
    overflow = asyncio.create_task(client.send(request("add", [1, 1], INBOX_LIMIT)))
    await asyncio.sleep(0.05)
    assert not overflow.done()  # backpressure: the reader waits, nothing is dropped
    assert not client.outbox.closing
    client.worker = asyncio.create_task(client.session.work())
    await asyncio.wait_for(asyncio.gather(blocked, overflow), 5)
    answered: list[int] = []
    while len(answered) < INBOX_LIMIT + 1:
        for frame in await asyncio.wait_for(client.outbox.next_batch(), 5):
            message = json.loads(frame)
            if "id" in message and "result" in message:
                answered.append(message["id"])
    assert answered == list(range(INBOX_LIMIT + 1))  # every call answered, in order


# Client writes ------------------------------------------------------------------------------


async def test_a_client_writes_a_variable_the_policy_opted_in(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call("now.set", named={"scope": "client", "path": "nickname",
                                                "value": "al"})
    assert reply["result"] is True
    assert hub.variables.scope("client", client.client_id)["nickname"] == "al"
    assert {"jsonrpc": "2.0", "method": "now.set",
            "params": {"scope": "client", "path": "nickname", "value": "al"}} in (
        client.notifications
    )


@pytest.mark.parametrize(
    "params, code",
    [
        ({"scope": "everyone", "path": "score", "value": 1}, -32003),
        ({"scope": "client", "path": "client_id", "value": "c-admin"}, -32003),
        ({"scope": "client", "path": "groups", "value": ["admins"]}, -32003),
        ({"scope": "everyone", "path": "nickname", "value": "al"}, -32003),
        ({"scope": "group:red", "path": "nickname", "value": "al"}, -32003),
        ({"scope": "client", "path": "nickname", "value": ""}, -32602),
        ({"scope": "client", "path": "nickname", "value": 5}, -32602),
        ({"scope": "client", "path": "nickname", "value": "al", "extra": 1}, -32602),
        ({"scope": "client", "path": "nickname"}, -32602),
    ],
    ids=["server-variable", "client-id", "groups", "wrong-scope", "group-scope", "too-short",
         "wrong-type", "extra-member", "no-value"],
)
async def test_a_client_write_outside_the_policy_is_refused(
    hub: Hub, connect: Callable[..., Connection], params: dict[str, Any], code: int
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call("now.set", named=params)
    assert reply["error"]["code"] == code
    assert hub.variables.snapshot(client.client_id, set()) == {
        "everyone": {}, "groups": {}, "client": {"greeting": f"welcome {client.client_id}"}
    }


async def test_an_invalid_client_write_reports_the_location_in_the_value(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    reply = await client.call("now.set", named={"scope": "client", "path": "nickname",
                                                "value": "x" * 21})
    assert [item["loc"] for item in reply["error"]["data"]] == [["value"]]


# The violation budget -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_frame",
    ["not json", notification("__class__"), request("nothere", [], 1), request("add", ["x"], 1),
     request("adminOnly", [], 1), '{"jsonrpc":"2.0","id":"never-sent","result":1}'],
    ids=["parse-error", "bad-name-notification", "unknown", "invalid-params", "forbidden",
         "unknown-answer"],
)
async def test_the_violation_budget_closes_with_1008_after_the_configured_number(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection], bad_frame: str
) -> None:
    client = connect(make_hub(violation_limit=3))
    await client.hello()
    await client.result("add", 0, 0)
    for _ in range(2):
        await client.send(bad_frame)
    assert await client.result("add", 1, 1) == 2  # after two, still open
    await client.send(bad_frame)
    assert isinstance(await client.closed(), PolicyViolation)
    assert client.close_code == 1008
    assert client.session.state is State.CLOSED
    await client.queued()
    await client.send(request("add", [1, 1], 99))
    assert await client.queued() == []  # nothing more is processed


async def test_handler_failures_are_not_violations(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection]
) -> None:
    client = connect(make_hub(violation_limit=2))
    await client.hello()
    for _ in range(5):
        assert (await client.call("boom"))["error"]["code"] == -32603
    assert not client.outbox.closing


async def test_violations_older_than_the_window_are_forgotten(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection], clock: FakeClock
) -> None:
    client = connect(make_hub(violation_limit=3, violation_window=60), clock=clock)
    await client.hello()
    await client.send("not json")
    await client.send("not json")
    clock.now += 61
    await client.send("not json")
    await client.send("not json")
    assert not client.outbox.closing
    await client.send("not json")
    assert client.close_code == 1008


async def test_an_answer_to_a_call_never_made_is_a_silent_violation(
    make_hub: Callable[..., Hub], connect: Callable[..., Connection]
) -> None:
    client = connect(make_hub(violation_limit=2))
    await client.hello()
    await client.queued()
    await client.send({"jsonrpc": "2.0", "id": "made-up", "result": "hi"})
    await client.send({"jsonrpc": "2.0", "id": 7, "error": {"code": 1, "message": "m"}})
    assert [m for m in await client.queued() if "error" in m or "result" in m] == []
    assert isinstance(client.outbox.close_error, PolicyViolation)


# The end ------------------------------------------------------------------------------------


async def test_finish_removes_the_peer_and_empties_its_groups(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    alice, bob = connect(hub), connect(hub)
    await alice.hello()
    await bob.hello()
    alice_id, bob_id = alice.client_id, bob.client_id
    await alice.result("join", "red")
    await alice.result("join", "solo")
    await bob.result("join", "red")
    await alice.result("setRoomTopic", "red", "cats")

    await alice.session.finish()
    assert alice_id not in hub.registry
    assert alice.session.state is State.CLOSED
    assert hub.registry.group_names() == ["red"]
    assert [p.client_id for p in hub.registry.members("red")] == [bob_id]
    assert hub.variables.scope("client", alice_id) == {}
    assert isinstance(alice.outbox.close_error, CloseConnection)

    await bob.session.finish()
    assert len(hub.registry) == 0
    assert hub.registry.group_names() == []
    assert hub.variables.snapshot(bob_id, {"red"})["groups"] == {}


async def test_finish_fails_the_calls_waiting_for_that_client(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    asker, target = connect(hub), connect(hub)
    await asker.hello()
    await target.hello()
    await asker.send(request("ask", [target.client_id, "still there?"], 1))
    await target.reply()
    await target.session.finish()
    assert (await asker.reply())["error"]["code"] == -32603


async def test_finish_after_a_refused_hello_is_harmless(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.session.hello("nonsense")
    await client.session.finish()
    assert client.session.state is State.CLOSED
    assert len(hub.registry) == 0


async def test_frames_after_finish_are_ignored(
    hub: Hub, connect: Callable[..., Connection]
) -> None:
    client = connect(hub)
    await client.hello()
    await client.session.finish()
    await client.queued()
    await client.send(request("add", [1, 1], 5))
    assert await client.queued() == []
