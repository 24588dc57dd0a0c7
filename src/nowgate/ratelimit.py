"""Rate limits for WebSocket traffic, on the `limits` library.

slowapi covers HTTP routes only; WebSocket messages are limited here, per identity and
function (from the policy), per connection, and for new connections per client address.
Storage is in memory by default, or shared through Redis (`redis://...`) when several
gateway nodes must count together.

A shared storage that cannot be reached never fails a message or a handshake: the node
counts in its own memory until the storage answers a PING again (re-checked at most every
`redis_retry_max` seconds, on traffic), each switch audited and shown by the
`nowgate_rate_limit_local` gauge. While it lasts, a client spreading its traffic over N
nodes gets up to N times a budget: failing open per node keeps the service up through a
Redis outage, and every node still bounds what any one connection can send to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import limits
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import (
    RateLimiter as Strategy,
)
from limits.errors import StorageError
from limits.storage import storage_from_string
from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .logs import audit
from .metrics import METRICS
from .settings import Settings

log = logging.getLogger("nowgate.ratelimit")

EXACT_UP_TO = 1000


def async_storage_uri(uri: str) -> str:
    """limits' asyncio storages are named `async+<scheme>`; accept the plain names too."""
    return uri if uri.startswith("async+") else f"async+{uri}"


def is_shared(uri: str) -> bool:
    return not async_storage_uri(uri).startswith("async+memory")


def shared_storage(uri: str, timeout: float) -> tuple[Storage, ConnectionPool | None]:
    """The storage a URI names (its errors raise `limits.errors.StorageError`), and the
    Redis connection pool to close when done with it, if it is ours."""
    uri = async_storage_uri(uri)
    options: dict[str, Any] = {"wrap_exceptions": True}
    pool: ConnectionPool | None = None
    if uri.startswith(("async+redis://", "async+rediss://")):
        # redis-py is already a dependency (limits would otherwise want coredis), and a pool
        # of our own can be closed. A stopped or unreachable Redis must cost a message at
        # most two bounded attempts (one retry for a pooled connection the server closed),
        # not redis-py's default ten retries with backoff.
        options["implementation"] = "redispy"
        options["connection_pool"] = pool = ConnectionPool.from_url(
            uri.removeprefix("async+"),
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
    elif uri.startswith("async+redis"):
        options["implementation"] = "redispy"
    storage = storage_from_string(uri, **options)
    if not isinstance(storage, Storage):
        raise ValueError("the rate-limit storage must support asyncio")
    return storage, pool


class _Counters:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        # A moving window is exact but keeps one timestamp per hit; the sliding-window counter
        # keeps two numbers and is approximate near window edges. Small budgets (connections
        # per address, calls per minute) get exactness, high message rates the cheap one.
        self._exact = MovingWindowRateLimiter(storage)
        self._cheap = SlidingWindowCounterRateLimiter(storage)

    async def retry_after(self, item: limits.RateLimitItem, keys: tuple[str, ...]) -> float | None:
        strategy: Strategy = self._exact if item.amount <= EXACT_UP_TO else self._cheap
        if await strategy.hit(item, *keys):
            return None
        stats = await strategy.get_window_stats(item, *keys)
        return max(stats.reset_time - time.time(), 0.001)


class RateLimiter:
    def __init__(
        self, storage_uri: str, timeout: float = 1.0, recheck_seconds: float = 2.0
    ) -> None:
        self._local = _Counters(MemoryStorage())
        self._shared: _Counters | None = None
        self._pool: ConnectionPool | None = None
        if is_shared(storage_uri):
            storage, self._pool = shared_storage(storage_uri, timeout)
            self._shared = _Counters(storage)
        self._recheck_seconds = recheck_seconds
        self._next_check = 0.0
        self._check: asyncio.Task[None] | None = None
        self.counting_locally = False

    @classmethod
    def for_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.rate_limit_storage, settings.redis_timeout, settings.redis_retry_max)

    async def retry_after(self, item: limits.RateLimitItem, *keys: str) -> float | None:
        """Count one hit; None if allowed, else the seconds until a retry can succeed."""
        if self._shared is not None:
            if not self.counting_locally:
                try:
                    return await self._shared.retry_after(item, keys)
                except StorageError as error:
                    self._count_locally(error)
            else:
                self._recheck_shared()
        return await self._local.retry_after(item, keys)

    def _count_locally(self, error: StorageError) -> None:
        if self.counting_locally:
            return  # another message in flight saw the same outage
        self.counting_locally = True
        self._next_check = time.monotonic() + self._recheck_seconds
        METRICS.rate_limit_local.set(1)
        audit("rate_limit_storage_lost")
        log.error(
            "rate-limit storage unreachable (%s): counting in this process until it is back",
            type(error.storage_error).__name__,
        )

    def _recheck_shared(self) -> None:
        """Start a PING of the shared storage, off the message's path, when one is due."""
        if time.monotonic() < self._next_check or (self._check and not self._check.done()):
            return
        self._next_check = time.monotonic() + self._recheck_seconds
        self._check = asyncio.create_task(self._back_to_shared())

    async def _back_to_shared(self) -> None:
        assert self._shared is not None
        try:
            reachable = await self._shared.storage.check()
        except StorageError:
            reachable = False
        if not reachable or not self.counting_locally:
            return
        self.counting_locally = False
        METRICS.rate_limit_local.set(0)
        audit("rate_limit_storage_restored")
        log.warning("rate-limit storage reachable again: counting cluster-wide")
        # What was counted during the outage is not carried over: free it.
        await self._local.storage.reset()

    async def aclose(self) -> None:
        if self._check is not None:
            self._check.cancel()
        if self._pool is not None:
            await self._pool.aclose()
