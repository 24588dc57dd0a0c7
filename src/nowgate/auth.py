"""What the application's authentication hook receives and returns.

    async def authenticate(auth: str | None, handshake: Handshake) -> Principal | None:
        user = await my_site.user_for_session(handshake.cookies.get("session"))
        return Principal(user=user.name, roles=frozenset(user.roles)) if user else None

Returning None refuses the client (-32003, then close 1008). Without a hook every client
is anonymous with no roles, so a policy's `roles` lists then admit no one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Handshake:
    """The HTTP side of a WebSocket connection, as the gateway saw it."""

    address: str
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Principal:
    user: str | None = None
    roles: frozenset[str] = frozenset()
    # When the application's credential stops being valid (Unix time); the connection is
    # then closed with 1008 within `credential_check_interval` seconds.
    expires_at: float | None = None


ANONYMOUS = Principal()
