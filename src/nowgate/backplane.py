"""Fan-out across gateway processes: nothing by default, Redis pub/sub when configured.

Every broadcast and every shared-variable write is applied locally first, then published
once; each other node delivers it to its own local members. Messages a node published
itself are skipped on receipt (each node has a random id), and a broadcast carries the
client to exclude, so `others` means the same thing across the cluster. Ordering is
per-publisher (one Redis connection publishes, in order).

What does not cross nodes: `ctx.find()` and server->client calls (they reach clients of
this node), client-scope variables, and values written before a node subscribed (a node
that starts later learns shared variables from the next write).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("nowgate.backplane")

CHANNEL = "nowgate:v1:fanout"
PUBLISH_QUEUE_LIMIT = 10_000
RECONNECT_SECONDS = 1.0

Envelope = dict[str, Any]


class Backplane(Protocol):
    async def start(self, deliver: Callable[[Envelope], None]) -> None: ...
    def publish(self, envelope: Envelope) -> None: ...
    async def stop(self) -> None: ...


class LocalBackplane:
    """One process: everything is already delivered locally."""

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        return None

    def publish(self, envelope: Envelope) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBackplane:
    def __init__(self, url: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._node = secrets.token_hex(8)
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue(PUBLISH_QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        """Subscribe before returning, so that a node is ready when it says it is."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(CHANNEL)
        self._tasks = [
            asyncio.create_task(self._receive(pubsub, deliver)),
            asyncio.create_task(self._send()),
        ]

    def publish(self, envelope: Envelope) -> None:
        try:
            self._outgoing.put_nowait(orjson.dumps({**envelope, "node": self._node}))
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("backplane publish queue full: a broadcast reached this node only")

    async def _send(self) -> None:
        while True:
            payload = await self._outgoing.get()
            while True:
                try:
                    await self._redis.publish(CHANNEL, payload)
                    break
                except RedisError:
                    log.warning("backplane: Redis unreachable, retrying")
                    await asyncio.sleep(RECONNECT_SECONDS)

    async def _receive(self, pubsub: Any, deliver: Callable[[Envelope], None]) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    envelope = orjson.loads(message["data"])
                    if envelope.get("node") != self._node:
                        deliver(envelope)
            except RedisError:
                log.warning("backplane: subscription lost, resubscribing")
                await asyncio.sleep(RECONNECT_SECONDS)
                try:
                    await pubsub.subscribe(CHANNEL)
                except RedisError:
                    continue

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()


def backplane_for(redis_url: str | None) -> Backplane:
    return RedisBackplane(redis_url) if redis_url else LocalBackplane()
