"""Server-assigned identities, carried between sessions in a signed token.

The token is an itsdangerous timed signature over the client id, the authenticated user (if
any) and the groups the server put the client in. The signer uses a purpose salt, so a token
signed for something else never verifies here, and a list of keys: the newest signs, every
key verifies, so keys rotate without logging anyone out. A token that fails verification for
any reason is not an error: like a bad session cookie, it is an empty session, and the client
gets a fresh identity.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer

from .naming import GROUP_NAME

TOKEN_SALT = "nowgate.identity.v1"  # noqa: S105 - a purpose label, not a secret
MAX_TOKEN_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Claims:
    client_id: str
    user: str | None
    groups: frozenset[str]


def new_client_id() -> str:
    return "c-" + secrets.token_hex(16)


class IdentitySigner:
    def __init__(self, keys_newest_first: list[str], max_age: int) -> None:
        if not keys_newest_first:
            raise ValueError("at least one signing key is required")
        # itsdangerous signs with the last key of the list and verifies with all of them.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(keys_newest_first)), salt=TOKEN_SALT
        )
        self._max_age = max_age

    def issue(self, client_id: str, user: str | None, groups: Iterable[str]) -> str:
        payload = {"cid": client_id, "usr": user, "grp": sorted(groups)}
        return str(self._serializer.dumps(payload))

    def verify(self, token: object) -> Claims | None:
        """The claims of a valid token; None for anything forged, altered, expired or odd."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            payload = self._serializer.loads(token, max_age=self._max_age)
        except (BadData, UnicodeError):
            return None
        return _claims_from(payload)


def _claims_from(payload: object) -> Claims | None:
    # Only our own signer wrote this, but a key shared with an older release could have
    # signed another shape: check it rather than trust it.
    if not isinstance(payload, dict):
        return None
    client_id, user, groups = payload.get("cid"), payload.get("usr"), payload.get("grp")
    if not (isinstance(client_id, str) and client_id.startswith("c-")):
        return None
    if user is not None and not isinstance(user, str):
        return None
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and GROUP_NAME.fullmatch(g) for g in groups
    ):
        return None
    return Claims(client_id=client_id, user=user, groups=frozenset(groups))
