"""The recovery history shared through Redis, so that a client can resume on another node.

Each node copies every entry of its `nowgate.history.MemoryHistory` to its own Redis stream,
`nowgate:v1:history:<epoch>`, in order, with the entry's number as the stream id (`0-<seq>`):
the stream is the node's numbering, readable by every other node. Bounded like the memory
history: `XADD ... MAXLEN ~ history_size` by count, entries older than `history_seconds`
(by the writer's wall clock) ignored on reading, and the key expires `history_seconds`
after the node's last write, so the stream of a node that is gone goes too.

Writes leave from a bounded queue in one task (`push()` never waits), retried while Redis is
unreachable; a queue overflow drops entries, and a reader treats the first hole in a stream
as the start of what it holds (positions before it are "expired"), never as a skip.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .history import Entry, Foreign

log = logging.getLogger("nowgate.history")

STREAM = "nowgate:v1:history:"
EPOCH = re.compile(r"^e-[0-9a-f]{16}$")
PUSH_QUEUE_LIMIT = 50_000
BATCH = 500
RETRY_SECONDS = 1.0


class SharedHistory:
    def __init__(self, url: str, epoch: str, size: int, seconds: float) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._key = STREAM + epoch
        self._size = size
        self._seconds = seconds
        self._queue: deque[tuple[int, bytes]] = deque()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def push(self, entry: Entry) -> None:
        """Queue an entry for the node's stream (called by `MemoryHistory` for each one)."""
        if len(self._queue) >= PUSH_QUEUE_LIMIT:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((entry.seq, _encode(entry)))
        self._ready.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for seq, data in batch:
                            pipe.xadd(self._key, {"e": data}, id=f"0-{seq}",
                                      maxlen=self._size, approximate=True)
                        pipe.expire(self._key, int(self._seconds) + 1)
                        await pipe.execute()
                except RedisError:
                    log.warning("recovery history: Redis unreachable, retrying")
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                for _ in batch:
                    self._queue.popleft()

    async def fetch(self, epoch: str) -> Foreign | None:
        """Another node's history; None when there is none (unknown epoch, Redis down)."""
        if not EPOCH.fullmatch(epoch):
            return None
        try:
            raw = await self._redis.xrange(STREAM + epoch, "-", "+")
        except RedisError:
            log.warning("recovery history: Redis unreachable, cannot read %s", epoch)
            return None
        if not raw:
            return None
        oldest = time.time() - self._seconds
        entries: list[Entry] = []
        floor = 0
        for _, fields in raw:
            if not fields or b"e" not in fields:
                continue
            entry, wall = _decode(fields[b"e"])
            if wall < oldest:
                entries.clear()
                floor = entry.seq
                continue
            if entries and entry.seq != entries[-1].seq + 1:
                entries.clear()  # after a hole only what follows counts
            if not entries:
                floor = entry.seq - 1
            entries.append(entry)
        return Foreign(entries, floor)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._redis.aclose()


def _encode(entry: Entry) -> bytes:
    return orjson.dumps([
        entry.seq, time.time(), entry.text, entry.group, entry.client, entry.without,
        sorted(entry.before), sorted(entry.after), entry.origin, entry.origin_seq, entry.shared,
    ])


def _decode(data: Any) -> tuple[Entry, float]:
    (seq, wall, text, group, client, without, before, after, origin, origin_seq,
     shared) = orjson.loads(data)
    entry = Entry(seq, 0.0, text, group, client, without, frozenset(before), frozenset(after),
                  origin, origin_seq, shared)
    return entry, wall
