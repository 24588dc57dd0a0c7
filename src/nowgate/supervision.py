"""Supervising the open connections of this node: expiry, idleness and the graceful drain.

The shared state (`nowgate.hub`) knows clients as peers; this module knows connections, and
only through the `Supervised` protocol, so neither imports the session. Two jobs:

- a sweep every `credential_check_interval` seconds closes connections that outlived their
  token or the application's credential (1008) or sent nothing for `idle_timeout` (1000);
- at shutdown, `drain()` stops new calls, lets running ones finish for up to the grace
  period, then closes everyone with 1001 so clients reconnect elsewhere with their token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Protocol

from .errors import CloseConnection, GoingAway, NormalClosure, PolicyViolation
from .registry import Peer
from .settings import Settings


class Supervised(Protocol):
    """What supervision needs of a connection (`nowgate.session.Session` is one)."""

    peer: Peer | None
    last_frame_at: float  # time.monotonic() of the last frame received
    draining: bool  # set: the connection takes no new calls

    @property
    def idle(self) -> bool:
        """No call running or queued."""
        ...

    def close(self, error: CloseConnection) -> None: ...


class Connections:
    """The open connections of this node, and their supervision."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._open: set[Supervised] = set()
        self.draining = False

    def add(self, connection: Supervised) -> None:
        self._open.add(connection)

    def discard(self, connection: Supervised) -> None:
        self._open.discard(connection)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Supervised]:
        return iter(list(self._open))

    def close_expired(self) -> int:
        """Close connections that outlived their credentials (1008) or sat idle (1000)."""
        now, idle_since = time.time(), time.monotonic() - self._settings.idle_timeout
        closed = 0
        for connection in list(self._open):
            if connection.peer is not None and connection.peer.expires_at <= now:
                connection.close(PolicyViolation("Credentials expired: reconnect"))
            elif connection.last_frame_at < idle_since:
                connection.close(NormalClosure("Idle timeout"))
            else:
                continue
            closed += 1
        return closed

    async def sweep_expired(self) -> None:
        """Run `close_expired()` every `credential_check_interval` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._settings.credential_check_interval)
            self.close_expired()

    async def drain(self, grace: float) -> None:
        """Graceful shutdown: take no new calls, let running ones finish, then close 1001."""
        self.draining = True
        connections = list(self._open)
        for connection in connections:
            connection.draining = True
        deadline = time.monotonic() + grace
        # Polled: this runs once, at shutdown, and an event per session would cost every call.
        while time.monotonic() < deadline and not all(c.idle for c in connections):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for connection in connections:
            connection.close(GoingAway())
        # Give the writers a moment to flush the last replies and the close frames.
        deadline = time.monotonic() + 1.0
        while self._open and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
