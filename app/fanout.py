"""Outbound delivery: one bounded queue per client, and broadcasts encoded once.

`Outbox.put()` never waits. A client that stops reading fills its own queue and is then
closed with 1013; the sender and every other receiver are unaffected, which is the price:
a slow client loses its connection rather than slowing the broadcast (as websockets'
`broadcast()` does). Memory per client is bounded by `send_queue_limit` frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic_core import to_jsonable_python

from app.errors import CloseConnection, TryAgainLater
from app.metrics import METRICS


def encode(message: dict[str, Any]) -> str:
    """Encode an outbound message; pydantic models and dataclasses become plain JSON."""
    return orjson.dumps(message, default=_jsonable).decode()


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value)


class Outbox:
    # A list and a bare future rather than a deque and an Event: one Outbox lives per
    # connection, and those two cost 1.5 KiB more per idle client.
    __slots__ = ("_frames", "_limit", "_waiter", "close_error", "dropped")

    def __init__(self, limit: int) -> None:
        self._frames: list[str] = []
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.close_error: CloseConnection | None = None
        self.dropped = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put(self, frame: str) -> bool:
        """Queue a frame; False if the client is closing or its queue just overflowed."""
        if self.close_error is not None:
            return False
        if len(self._frames) >= self._limit:
            self.dropped += 1
            METRICS.send_queue_drops.inc()
            self._frames.clear()  # nothing more is sent to a client that is being dropped
            self.close(TryAgainLater("Send queue full: the client reads too slowly"))
            return False
        self._frames.append(frame)
        self._wake()
        return True

    def close(self, error: CloseConnection) -> None:
        """Ask the writer to send what is queued, then close with the error's code."""
        if self.close_error is None:
            self.close_error = error
            self._wake()

    @property
    def closing(self) -> bool:
        return self.close_error is not None

    def __len__(self) -> int:
        return len(self._frames)

    async def next_batch(self) -> list[str]:
        """Wait for frames; an empty batch means: close now with `close_error`."""
        while not self._frames and self.close_error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch, self._frames = self._frames, []
        return batch


def fan_out(frame: str, outboxes: Iterable[Outbox]) -> int:
    """Queue one encoded frame to many clients; returns how many accepted it."""
    delivered = 0
    for outbox in outboxes:
        delivered += outbox.put(frame)
    return delivered
