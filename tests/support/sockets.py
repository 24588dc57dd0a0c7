"""A stand-in for `app.transport.DirectWriteProtocol` in unit tests of `app.fanout`."""

from __future__ import annotations

import asyncio


class Socket:
    """A FrameSink that records writes; `full` makes it refuse them as a backed-up socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.full = False
        self.space = asyncio.Event()
        self.space.set()

    def try_write(self, data: bytes) -> bool:
        if self.full:
            return False
        self.writes.append(data)
        return True

    async def drained(self) -> bool:
        await self.space.wait()
        return True

    def abort(self) -> None:
        raise AssertionError("an outbox never aborts its socket itself")

    def fill(self) -> None:
        self.full = True
        self.space.clear()

    def drain(self) -> None:
        self.full = False
        self.space.set()


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)
