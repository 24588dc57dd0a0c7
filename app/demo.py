"""Handlers of the drag demo (policies/demo.toml): NowJS's syncPosition, hardened.

Convergence when two people drag at once: one writer at a time. `grab()` takes a lock with
a short lease; only the holder's `syncPosition` moves the shared element, and the server
relays it to everyone else (never back to the sender). `release()` publishes the final
position as the everyone-variable `position`, so every page, the releaser included, ends on
the same value. A script that just calls `syncPosition` takes the lock implicitly when it
is free.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from nowgate import Context

LEASE_SECONDS = 3.0
MAX_COORDINATE = 10_000


class Position(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
    left: float = Field(ge=0, le=MAX_COORDINATE)
    top: float = Field(ge=0, le=MAX_COORDINATE)


class Grant(BaseModel):
    granted: bool
    position: Position
    holder: str | None


class _Lock:
    """The drag lock of this process (a demo; a cluster would keep it in Redis)."""

    def __init__(self) -> None:
        self.holder: str | None = None
        self.expires = 0.0
        self.position = Position(left=40, top=40)

    def held_by_other(self, client_id: str) -> bool:
        if self.holder is not None and time.monotonic() > self.expires:
            self.holder = None
        return self.holder is not None and self.holder != client_id

    def take(self, client_id: str) -> None:
        self.holder = client_id
        self.expires = time.monotonic() + LEASE_SECONDS


LOCK = _Lock()


async def grab(ctx: Context) -> Grant:
    if LOCK.held_by_other(ctx.client_id):
        return Grant(granted=False, position=LOCK.position, holder=LOCK.holder)
    LOCK.take(ctx.client_id)
    return Grant(granted=True, position=LOCK.position, holder=ctx.client_id)


async def syncPosition(ctx: Context, position: Position) -> bool:
    if LOCK.held_by_other(ctx.client_id):
        return False
    LOCK.take(ctx.client_id)
    LOCK.position = position
    ctx.others.notify("updatePosition", position)
    return True


async def release(ctx: Context) -> None:
    if LOCK.holder == ctx.client_id:
        LOCK.holder = None
        ctx.everyone.set("position", LOCK.position)


async def on_disconnect(ctx: Context) -> None:
    if LOCK.holder == ctx.client_id:
        LOCK.holder = None
        ctx.others.set("position", LOCK.position)


# Client functions the server may call (stubs: their types validate the clients' answers).
def updatePosition(position: Position) -> None: ...
