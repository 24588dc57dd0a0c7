"""Threat: a client acts as someone else.

Attack: NowJS let a client rewrite its own `now.uuid` (clientWrite) and so impersonate any
other user; a token-based design invites forged, altered, replayed or expired tokens, tokens
signed by a retired key, and tokens signed for another purpose with the same key.
Defence: the server chooses every `client_id`; identity fields are never client-writable
whatever the policy says; the token is an itsdangerous signature with a purpose salt, a
maximum age and rotating keys, and anything that does not verify silently yields a fresh
identity (`resumed: false`), never an error and never the claimed identity. A valid token
whose identity is connected right now is not handed out twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from nowgate.client import CallError, connect
from nowgate.errors import PolicyFileError
from nowgate.identity import TOKEN_SALT, IdentitySigner
from nowgate.policy import load_policy
from tests.support.gateway import Gateway


def _other(char: str) -> str:
    return "A" if char != "A" else "B"


def _tampered(token: str) -> list[str]:
    payload, stamp, signature = token.rsplit(".", 2)
    forged = [
        f"{payload}.{stamp}.{_other(signature[0])}{signature[1:]}",
        f"{_other(payload[0])}{payload[1:]}.{stamp}.{signature}",
        f"{payload}.{_other(stamp[0])}{stamp[1:]}.{signature}",
        token + "x", "", "garbage", "a.b.c",
    ]
    assert token not in forged
    return forged


async def test_altered_tokens_never_resume_the_victims_identity(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url) as victim:
        await victim.call("join", "vault")
        await asyncio.sleep(0.1)
        token, victim_id = victim.token, victim.client_id
    for forged in _tampered(token):
        async with connect(chat_gateway.ws_url, token=forged) as attacker:
            assert attacker.resumed is False
            assert attacker.client_id != victim_id
            assert (await attacker.call("whoami"))["groups"] == []


async def test_token_signed_with_another_key_or_salt_is_refused(chat_gateway: Gateway) -> None:
    claims = {"cid": "c-" + "0" * 32, "usr": None, "grp": ["admins"]}
    wrong_key = URLSafeTimedSerializer("not-the-gateway-key", salt=TOKEN_SALT).dumps(claims)
    right_key_wrong_salt = URLSafeTimedSerializer(
        chat_gateway.env["NOWGATE_SECRET_KEYS"], salt="some.other.purpose"
    ).dumps(claims)
    for forged in (wrong_key, right_key_wrong_salt):
        async with connect(chat_gateway.ws_url, token=forged) as attacker:
            assert attacker.resumed is False
            assert attacker.client_id != claims["cid"]


@pytest.mark.parametrize(
    "unusable",
    ["t" * 5_000, "u" * 60_000, "", "\u00e9\u00e9.\u0000.\ud83d\ude00", "a.b.c" * 2_000],
    ids=["5000-chars", "60000-chars", "empty", "non-ascii", "dotted"],
)
async def test_an_unusable_token_of_any_length_is_a_fresh_identity(
    chat_gateway: Gateway, unusable: str
) -> None:
    # A browser whose stored token is corrupted starts over instead of being refused forever;
    # the frame limit (64 KiB) still bounds the hello.
    async with connect(chat_gateway.ws_url, token=unusable) as client:
        assert client.resumed is False
        assert await client.call("add", 1, 2) == 3


async def test_token_of_a_connected_client_is_not_handed_out_twice(chat_gateway: Gateway) -> None:
    async with (
        connect(chat_gateway.ws_url) as first,
        connect(chat_gateway.ws_url, token=first.token) as copy,
    ):
        assert copy.resumed is False
        assert copy.client_id != first.client_id


async def test_token_of_another_user_does_not_resume_for_this_user(chat_gateway: Gateway) -> None:
    async with connect(chat_gateway.ws_url, auth="user:alice") as alice:
        token = alice.token
    await asyncio.sleep(0.1)
    async with connect(chat_gateway.ws_url, auth="user:mallory", token=token) as mallory:
        assert mallory.resumed is False
        assert (await mallory.call("whoami"))["user"] == "mallory"


async def test_clients_cannot_write_identity_fields_or_undeclared_variables(
    chat_gateway: Gateway,
) -> None:
    async with connect(chat_gateway.ws_url) as client:
        attempts = [("client", "client_id"), ("client", "uuid"), ("client", "groups"),
                    ("client", "roles"), ("client", "user"), ("everyone", "score"),
                    ("everyone", "nickname"), ("group:admins", "nickname"), ("client", "token")]
        for scope, path in attempts:
            with pytest.raises(CallError) as refused:
                await client.call("now.set", scope=scope, path=path, value="c-victim")
            assert refused.value.code == -32003
        who = await client.call("whoami")
        assert who["client_id"] == client.client_id and who["groups"] == [] and who["roles"] == []


def test_a_policy_cannot_make_identity_fields_writable(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    for name in ("client_id", "uuid", "groups", "roles", "user", "token"):
        policy.write_text(
            f'handlers = "tests.fixtures.handlers"\n[variables.{name}]\n'
            'scope = "client"\nschema = "Nickname"\n'
        )
        with pytest.raises(PolicyFileError, match="identity fields"):
            load_policy(policy)


def test_expired_and_rotated_tokens() -> None:
    old = IdentitySigner(["old-key-" + "x" * 32], max_age=60)
    token = old.issue("c-" + "1" * 32, None, ["red"])
    rotated = IdentitySigner(["new-key-" + "y" * 32, "old-key-" + "x" * 32], max_age=60)
    assert rotated.verify(token) is not None  # an old key still verifies during rotation
    retired = IdentitySigner(["new-key-" + "y" * 32], max_age=60)
    assert retired.verify(token) is None  # once retired, its tokens are worthless
    real_time = time.time
    try:
        time.time = lambda: real_time() + 120  # type: ignore[assignment]
        assert old.verify(token) is None  # past max_age
    finally:
        time.time = real_time  # type: ignore[assignment]
