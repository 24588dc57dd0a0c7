"""nowgate.identity: signed identity tokens; anything that does not verify is an empty session."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer, URLSafeTimedSerializer

from nowgate.identity import (
    MAX_TOKEN_LENGTH,
    TOKEN_SALT,
    Claims,
    IdentitySigner,
    new_client_id,
)

KEY = "k" * 32
MAX_AGE = 3600


@pytest.fixture
def signer() -> IdentitySigner:
    return IdentitySigner([KEY], MAX_AGE)


def swap_char(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def test_issued_token_verifies_to_the_same_claims(signer: IdentitySigner) -> None:
    token = signer.issue("c-abc", "alice", {"red", "blue"})
    assert signer.verify(token) == Claims("c-abc", "alice", frozenset({"red", "blue"}))


def test_anonymous_token_without_groups_verifies(signer: IdentitySigner) -> None:
    assert signer.verify(signer.issue("c-abc", None, [])) == Claims("c-abc", None, frozenset())


def test_new_client_ids_are_prefixed_and_unguessable() -> None:
    ids = {new_client_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(cid.startswith("c-") and len(cid) == 2 + 32 for cid in ids)


def test_token_with_altered_payload_does_not_verify(signer: IdentitySigner) -> None:
    token = signer.issue("c-victim", None, [])
    other_payload = signer.issue("c-attacker", None, []).split(".")[0]
    forged = ".".join([other_payload, *token.split(".")[1:]])
    assert signer.verify(forged) is None
    assert signer.verify(swap_char(token, 3)) is None


def test_token_with_altered_signature_does_not_verify(signer: IdentitySigner) -> None:
    token = signer.issue("c-abc", None, [])
    signature_start = token.rindex(".") + 1
    assert signer.verify(swap_char(token, signature_start + 5)) is None
    assert signer.verify(token[:signature_start]) is None
    assert signer.verify(token[: token.rindex(".")]) is None


def test_token_with_altered_timestamp_does_not_verify(signer: IdentitySigner) -> None:
    payload, timestamp, signature = signer.issue("c-abc", None, []).split(".")
    assert signer.verify(".".join([payload, swap_char(timestamp, 0), signature])) is None


def test_token_with_another_purpose_salt_does_not_verify(signer: IdentitySigner) -> None:
    payload = {"cid": "c-abc", "usr": None, "grp": []}
    same_salt = URLSafeTimedSerializer(KEY, salt=TOKEN_SALT).dumps(payload)
    other_salt = URLSafeTimedSerializer(KEY, salt="password-reset").dumps(payload)
    assert signer.verify(same_salt) == Claims("c-abc", None, frozenset())
    assert signer.verify(other_salt) is None


def test_token_signed_without_a_timestamp_does_not_verify(signer: IdentitySigner) -> None:
    untimed = URLSafeSerializer(KEY, salt=TOKEN_SALT).dumps({"cid": "c-abc", "usr": None,
                                                            "grp": []})
    assert signer.verify(untimed) is None


def test_token_signed_with_another_key_does_not_verify(signer: IdentitySigner) -> None:
    forged = IdentitySigner(["attacker-key" * 3], MAX_AGE).issue("c-abc", None, [])
    assert signer.verify(forged) is None


def test_token_older_than_max_age_does_not_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = IdentitySigner([KEY], max_age=60)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    token = signer.issue("c-abc", None, [])
    monkeypatch.setattr(time, "time", lambda: now + 60)
    assert signer.verify(token) is not None
    monkeypatch.setattr(time, "time", lambda: now + 62)
    assert signer.verify(token) is None


def test_token_from_the_future_does_not_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = IdentitySigner([KEY], max_age=60)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 3600)
    token = signer.issue("c-abc", None, [])
    monkeypatch.setattr(time, "time", lambda: now)
    assert signer.verify(token) is None


def test_token_signed_by_an_old_key_verifies_while_that_key_is_listed() -> None:
    old_token = IdentitySigner(["old-key"], MAX_AGE).issue("c-abc", "alice", ["red"])
    rotated = IdentitySigner(["new-key", "old-key"], MAX_AGE)
    assert rotated.verify(old_token) == Claims("c-abc", "alice", frozenset({"red"}))


def test_token_signed_by_a_retired_key_does_not_verify() -> None:
    old_token = IdentitySigner(["old-key"], MAX_AGE).issue("c-abc", None, [])
    assert IdentitySigner(["new-key"], MAX_AGE).verify(old_token) is None


def test_the_newest_key_signs_after_rotation() -> None:
    rotated = IdentitySigner(["new-key", "old-key"], MAX_AGE)
    token = rotated.issue("c-abc", None, [])
    assert IdentitySigner(["old-key"], MAX_AGE).verify(token) is None
    assert IdentitySigner(["new-key"], MAX_AGE).verify(token) == Claims(
        "c-abc", None, frozenset()
    )


def test_a_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        IdentitySigner([], MAX_AGE)


@pytest.mark.parametrize(
    "token", [None, 0, 12345, 1.5, True, b"bytes", ["token"], {"token": "x"}, ""],
    ids=["none", "zero", "int", "float", "bool", "bytes", "list", "dict", "empty"],
)
def test_non_string_or_empty_tokens_are_an_empty_session(
    signer: IdentitySigner, token: Any
) -> None:
    assert signer.verify(token) is None


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "...", "." * 4000, "\x00" * 10, "caf\u00e9.\u00e9.x"]
)
def test_malformed_tokens_are_an_empty_session(signer: IdentitySigner, token: str) -> None:
    assert signer.verify(token) is None


def test_huge_token_is_refused_before_it_is_decoded(signer: IdentitySigner) -> None:
    assert signer.verify("a" * 1_000_000) is None


def test_validly_signed_token_over_the_length_limit_is_an_empty_session(
    signer: IdentitySigner,
) -> None:
    groups = [f"g{secrets.token_hex(16)}" for _ in range(200)]  # incompressible
    token = signer.issue("c-abc", None, groups)
    assert len(token) > MAX_TOKEN_LENGTH
    assert signer.verify(token) is None


@pytest.mark.parametrize(
    "payload",
    [
        ["c-abc"],
        "c-abc",
        {"cid": "abc", "usr": None, "grp": []},
        {"cid": 7, "usr": None, "grp": []},
        {"usr": None, "grp": []},
        {"cid": "c-abc", "usr": 1, "grp": []},
        {"cid": "c-abc", "usr": None, "grp": "red"},
        {"cid": "c-abc", "usr": None, "grp": [1]},
        {"cid": "c-abc", "usr": None, "grp": ["__class__"]},
        {"cid": "c-abc", "usr": None},
    ],
)
def test_validly_signed_payload_of_another_shape_is_an_empty_session(
    signer: IdentitySigner, payload: Any
) -> None:
    token = URLSafeTimedSerializer(KEY, salt=TOKEN_SALT).dumps(payload)
    assert signer.verify(token) is None


def test_a_token_carrying_group_names_the_registry_accepts_verifies(
    signer: IdentitySigner,
) -> None:
    # The server signs every group a handler joined; dashes, dots and colons are allowed there.
    groups = {"team-1", "room.2", "a:b", "under_score", "9lives"}
    assert signer.verify(signer.issue("c-abc", None, groups)) == Claims(
        "c-abc", None, frozenset(groups)
    )


@pytest.mark.parametrize("group", ["bad name", "-team", "x" * 65, "caf\u00e9", ""])
def test_a_validly_signed_token_carrying_a_group_name_the_registry_refuses_does_not_verify(
    signer: IdentitySigner, group: str
) -> None:
    assert signer.verify(signer.issue("c-abc", None, [group])) is None


@pytest.mark.parametrize("token", ["\ud800", "a.\udfff.b", "\udc80" * 10])
def test_a_token_that_cannot_be_encoded_as_utf8_is_an_empty_session(
    signer: IdentitySigner, token: str
) -> None:
    assert signer.verify(token) is None
