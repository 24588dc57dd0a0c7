"""Handlers of the drag demo (policies/demo.toml): NowJS's syncPosition, hardened.

Convergence when two people drag at once: one writer at a time. `grab()` takes the lease
`drag` (`ctx.lock`: in-process on one node, a Redis key across a cluster, so two people on
two nodes never both hold it); only the holder's `syncPosition` moves the shared element,
and the server relays it to everyone else (never back to the sender). `release()` publishes
the final position as the everyone-variable `position`, so every page, the releaser
included, ends on the same value. A script that just calls `syncPosition` takes the lease
implicitly when it is free.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from nowgate import Audience, Context

LOCK = "drag"
LEASE_SECONDS = 3.0
MAX_COORDINATE = 10_000


class Position(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)
    left: float = Field(ge=0, le=MAX_COORDINATE)
    top: float = Field(ge=0, le=MAX_COORDINATE)


class Grant(BaseModel):
    granted: bool
    position: Position | None  # None: unknown here (a holder on another node)
    holder: str | None


START = Position(left=40, top=40)
# This node's clients that took the lease, with their latest position (None before their
# first move). A holder's grab, syncPosition, release and disconnect all run on its node,
# and a client that never took the lease costs no Redis round trip when it leaves.
_HOLDERS: dict[str, Position | None] = {}


def _settled(ctx: Context) -> Position:
    """Where the box rests: the last released position (a shared variable, cluster-wide)."""
    value = ctx.everyone.get("position")
    return START if value is None else Position.model_validate(value)


async def grab(ctx: Context) -> Grant:
    lease = ctx.lock(LOCK, LEASE_SECONDS)
    if not await lease.acquire():
        # The box is where the holder dragged it: this node knows that if the holder is
        # its client; otherwise the page has it from the holder's updatePosition calls.
        holder = await lease.holder()
        moving = _HOLDERS.get(holder) if holder is not None else None
        return Grant(granted=False, position=moving, holder=holder)
    _HOLDERS.setdefault(ctx.client_id, None)
    return Grant(granted=True, position=_settled(ctx), holder=ctx.client_id)


async def syncPosition(ctx: Context, position: Position) -> bool:
    if not await ctx.lock(LOCK, LEASE_SECONDS).acquire():
        return False
    _HOLDERS[ctx.client_id] = position
    ctx.others.notify("updatePosition", position)
    return True


async def release(ctx: Context) -> None:
    await _let_go(ctx, ctx.everyone)


async def on_disconnect(ctx: Context) -> None:
    await _let_go(ctx, ctx.others)


async def _let_go(ctx: Context, audience: Audience) -> None:
    """Release the lease if this client holds it, and publish where it left the box."""
    if ctx.client_id not in _HOLDERS:
        return
    final = _HOLDERS.pop(ctx.client_id)
    if await ctx.lock(LOCK, LEASE_SECONDS).release() and final is not None:
        audience.set("position", final)


# Client functions the server may call (stubs: their types validate the clients' answers).
def updatePosition(position: Position) -> None: ...
