"""Leases: one holder at a time for a named resource, cluster-wide when there is a cluster.

    lease = ctx.lock("drag", seconds=3.0)
    if await lease.acquire():        # taken, or renewed if this client holds it already
        ...
    await lease.holder()             # the client id holding it, or None
    await lease.release()            # only the holder can; True if it did

A lease is held by a client id and ends by itself after `seconds` unless renewed, so a
holder that disconnects or whose node dies cannot keep it. In one process the leases are a
dictionary; with `NOWGATE_REDIS_URL` each is one Redis key (`nowgate:v1:lock:<name>`) taken
with a script that does SET PX only if the key is free or already the caller's, and
released with a compare-and-delete: two clients on two nodes never both hold it.

While Redis is unreachable a cluster lease fails closed: `acquire()` is False, `holder()`
None and `release()` False (nobody holds it, so nobody can act as its holder).
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .metrics import METRICS
from .naming import check_variable_name

log = logging.getLogger("nowgate.locks")

PREFIX = "nowgate:v1:lock:"
MAX_LEASE_SECONDS = 3600.0

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Locks:
    """The leases of this node: in-process, or in Redis."""

    def __init__(self, redis: Redis | None) -> None:
        self._redis = redis
        self._local: dict[str, tuple[str, float]] = {}  # name -> (holder, monotonic expiry)
        if redis is not None:
            self._acquire = redis.register_script(_ACQUIRE)
            self._release = redis.register_script(_RELEASE)

    async def acquire(self, name: str, holder: str, seconds: float) -> bool:
        if self._redis is None:
            current = self.local_holder(name)
            if current is not None and current != holder:
                return False
            self._local[name] = (holder, time.monotonic() + seconds)
            return True
        try:
            return bool(await self._acquire(keys=[PREFIX + name],
                                            args=[holder, max(int(seconds * 1000), 1)]))
        except RedisError:
            METRICS.cluster_redis_errors.labels("locks").inc()
            log.warning("locks: Redis unreachable; %r not granted", name)
            return False

    async def release(self, name: str, holder: str) -> bool:
        if self._redis is None:
            if self.local_holder(name) != holder:
                return False
            del self._local[name]
            return True
        try:
            return bool(await self._release(keys=[PREFIX + name], args=[holder]))
        except RedisError:
            return False

    async def holder(self, name: str) -> str | None:
        if self._redis is None:
            return self.local_holder(name)
        try:
            raw = await self._redis.get(PREFIX + name)
        except RedisError:
            return None
        return raw.decode() if isinstance(raw, bytes) else None

    def local_holder(self, name: str) -> str | None:
        entry = self._local.get(name)
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            del self._local[name]  # expired leases go when looked at: no sweeper needed
            return None
        return entry[0]


class Lease:
    """A named lease as a handler uses it, on behalf of one client."""

    def __init__(self, locks: Locks, name: str, holder: str, seconds: float) -> None:
        check_variable_name(name)
        if not 0 < seconds <= MAX_LEASE_SECONDS:
            raise ValueError(f"a lease lasts more than 0 and at most {MAX_LEASE_SECONDS:g} s")
        self._locks = locks
        self.name = name
        self._holder = holder
        self.seconds = seconds

    async def acquire(self) -> bool:
        """Take the lease for `seconds`, or renew it if this client holds it; False if another
        client holds it."""
        return await self._locks.acquire(self.name, self._holder, self.seconds)

    async def release(self) -> bool:
        """Give the lease up; False if this client did not hold it."""
        return await self._locks.release(self.name, self._holder)

    async def holder(self) -> str | None:
        """The client id holding the lease now, or None."""
        return await self._locks.holder(self.name)
