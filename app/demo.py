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

from nowgate import Context

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
# Each dragging client's latest position, kept by the node it is connected to (its
# syncPosition, release and disconnect all run there).
_DRAGGED: dict[str, Position] = {}


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
        moving = _DRAGGED.get(holder) if holder is not None else None
        return Grant(granted=False, position=moving, holder=holder)
    return Grant(granted=True, position=_settled(ctx), holder=ctx.client_id)


async def syncPosition(ctx: Context, position: Position) -> bool:
    if not await ctx.lock(LOCK, LEASE_SECONDS).acquire():
        return False
    ctx.others.notify("updatePosition", position)
    _DRAGGED[ctx.client_id] = position
    return True


async def release(ctx: Context) -> None:
    if await ctx.lock(LOCK, LEASE_SECONDS).release():
        _publish_final(ctx, include_self=True)


async def on_disconnect(ctx: Context) -> None:
    if await ctx.lock(LOCK, LEASE_SECONDS).release():
        _publish_final(ctx, include_self=False)
    _DRAGGED.pop(ctx.client_id, None)


def _publish_final(ctx: Context, include_self: bool) -> None:
    final = _DRAGGED.pop(ctx.client_id, None)
    if final is None:
        return
    audience = ctx.everyone if include_self else ctx.others
    audience.set("position", final)


# Client functions the server may call (stubs: their types validate the clients' answers).
def updatePosition(position: Position) -> None: ...
