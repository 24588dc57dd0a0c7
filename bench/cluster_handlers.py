"""The handler of bench/cluster.toml: the demo's syncPosition relay without its lease."""

from __future__ import annotations

from app.demo import Position, updatePosition
from nowgate import Context

__all__ = ["Position", "relay", "updatePosition"]


async def relay(ctx: Context, position: Position) -> bool:
    ctx.others.notify("updatePosition", position)
    return True
