"""Outbound delivery: one bounded queue per client, and broadcasts encoded and framed once.

`Outbox.put()` never waits. A client that stops reading fills its own queue and is then
closed with 1013; the sender and every other receiver are unaffected, which is the price:
a slow client loses its connection rather than slowing the broadcast (as websockets'
`broadcast()` does). Memory per client is bounded by `send_queue_limit` frames.

Served by `nowgate.server` (uvicorn with `nowgate.transport`), an outbox writes to its socket
directly: what a turn of the event loop queued to one client leaves in one write, after
the turn (the `Flusher`), so a busy gateway makes one system call per client for several
messages. Only a client whose socket is backed up has its writer task do the writing, once
the socket drains. Elsewhere (any other ASGI server, tests) the writer task sends each
frame through ASGI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import orjson
from pydantic_core import to_jsonable_python

from .errors import CloseConnection, TryAgainLater
from .frames import text_frame, text_of
from .history import with_seq
from .metrics import METRICS

# asyncio's default high-water mark. A backlog larger than this is written in pieces of this
# size, so that the socket's buffer holds at most about one piece past the mark when it
# pauses, and the rest waits in the bounded queue: memory per client stays one queue's worth.
WRITE_CHUNK = 64 * 1024


def encode(message: dict[str, Any]) -> str:
    """Encode an outbound message; pydantic models and dataclasses become plain JSON."""
    return orjson.dumps(message, default=_jsonable).decode()


def _jsonable(value: Any) -> Any:
    return to_jsonable_python(value)


@runtime_checkable
class FrameSink(Protocol):
    """A socket that takes ready-made frames (`nowgate.transport.DirectWriteProtocol`)."""

    def try_write(self, data: bytes) -> bool: ...

    async def drained(self) -> bool: ...

    def abort(self) -> None: ...


class Flusher:
    """Writes the outboxes that received frames during this turn of the event loop."""

    __slots__ = ("_dirty",)

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []

    def mark(self, outbox: Outbox) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(outbox)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for outbox in dirty:
            outbox.flush()


class Outbox:
    # A list and a bare future rather than a deque and an Event: one Outbox lives per
    # connection, and those two cost 1.5 KiB more per idle client.
    __slots__ = (
        "_blocked", "_flusher", "_frames", "_limit", "_sink", "_waiter", "close_error", "dropped",
        "positions",
    )

    def __init__(
        self, limit: int, sink: FrameSink | None = None, flusher: Flusher | None = None
    ) -> None:
        self._frames: list[bytes] = []
        self._limit = limit
        self._sink = sink
        self._flusher = flusher if sink is not None else None
        self._blocked = False  # the socket took no more: the writer task writes, later
        self._waiter: asyncio.Future[None] | None = None
        self.close_error: CloseConnection | None = None
        self.dropped = 0
        # The client opted in to recovery: recorded messages reach it with their "seq".
        self.positions = False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def put(self, text: str) -> bool:
        """Queue a message; False if the client is closing or its queue just overflowed."""
        accepted = self.put_frame(text_frame(text))
        if accepted:
            METRICS.messages_out.inc()
        return accepted

    def put_frame(self, frame: bytes) -> bool:
        """`put()` for a frame made by `nowgate.frames.text_frame()`, uncounted (see `fan_out`)."""
        if self.close_error is not None:
            return False
        frames = self._frames
        if len(frames) >= self._limit:
            self.dropped += 1
            METRICS.send_queue_drops.inc()
            frames.clear()  # nothing more is sent to a client that is being dropped
            self.close(TryAgainLater("Send queue full: the client reads too slowly"))
            return False
        frames.append(frame)
        if len(frames) == 1:
            if self._flusher is not None and not self._blocked:
                self._flusher.mark(self)
            else:
                self._wake()
        return True

    def flush(self) -> None:
        """Write what is queued to the socket in one write, or leave it to the writer task."""
        frames, sink = self._frames, self._sink
        if not frames or sink is None:
            return
        try:
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            if len(data) <= WRITE_CHUNK or len(frames) == 1:
                sent = len(frames) if sink.try_write(data) else 0
            else:
                sent = _write_in_chunks(sink, frames)
        except Exception:
            # The socket broke under the write: close this client (1011, if it can still be
            # told) rather than raise, which would strand the other clients of this turn.
            frames.clear()
            self.close(CloseConnection())
            return
        if sent == len(frames):
            frames.clear()
            self._blocked = False
        else:
            del frames[:sent]
            self._blocked = True
            self._wake()

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

    async def _until(self, ready: Callable[[], bool]) -> None:
        while not ready() and self.close_error is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def next_batch(self) -> list[str]:
        """Without a sink: wait for messages; an empty batch means: close with `close_error`."""
        await self._until(lambda: bool(self._frames))
        batch, self._frames = self._frames, []
        return [text_of(frame) for frame in batch]

    async def stalled(self) -> None:
        """With a sink: wait until the socket refused a write, or the client is closing."""
        await self._until(lambda: self._blocked)


def _write_in_chunks(sink: FrameSink, frames: list[bytes]) -> int:
    """Write whole frames in order, about `WRITE_CHUNK` bytes a write, until the socket
    refuses; how many frames were written."""
    start = size = 0
    for end, frame in enumerate(frames, 1):
        size += len(frame)
        if size >= WRITE_CHUNK or end == len(frames):
            if not sink.try_write(b"".join(frames[start:end])):
                break
            start, size = end, 0
    return start


def fan_out(text: str, outboxes: Iterable[Outbox], seq: int = 0) -> int:
    """Queue one message to many clients, framed once; returns how many accepted it.

    With `seq` (the message's number in `nowgate.history`), clients that opted in to
    recovery get a second framing carrying it, also made once, and only if one needs it.
    """
    frame = text_frame(text)
    numbered: bytes | None = None
    delivered = 0
    for outbox in outboxes:
        if outbox.positions and seq:
            if numbered is None:
                numbered = text_frame(with_seq(text, seq))
            delivered += outbox.put_frame(numbered)
        else:
            delivered += outbox.put_frame(frame)
    METRICS.messages_out.inc(delivered)
    return delivered
