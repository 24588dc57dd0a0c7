"""Rate limits for WebSocket traffic, on the `limits` library.

slowapi covers HTTP routes only; WebSocket messages are limited here, per identity and
function (from the policy), per connection, and for new connections per client address.
Storage is in memory by default, or shared through Redis (`redis://...`) when several
gateway nodes must count together.
"""

from __future__ import annotations

import time

import limits
from limits.aio.strategies import (
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import (
    RateLimiter as Strategy,
)
from limits.storage import storage_from_string

EXACT_UP_TO = 1000


def async_storage_uri(uri: str) -> str:
    """limits' asyncio storages are named `async+<scheme>`; accept the plain names too."""
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    def __init__(self, storage_uri: str) -> None:
        uri = async_storage_uri(storage_uri)
        # redis-py is already a dependency; limits would otherwise want coredis.
        options = {"implementation": "redispy"} if uri.startswith("async+redis") else {}
        storage = storage_from_string(uri, **options)
        if not isinstance(storage, limits.aio.storage.Storage):
            raise ValueError("the rate-limit storage must support asyncio")
        # A moving window is exact but keeps one timestamp per hit; the sliding-window counter
        # keeps two numbers and is approximate near window edges. Small budgets (connections
        # per address, calls per minute) get exactness, high message rates the cheap one.
        self._exact = MovingWindowRateLimiter(storage)
        self._cheap = SlidingWindowCounterRateLimiter(storage)

    def _strategy(self, item: limits.RateLimitItem) -> Strategy:
        return self._exact if item.amount <= EXACT_UP_TO else self._cheap

    async def retry_after(self, item: limits.RateLimitItem, *keys: str) -> float | None:
        """Count one hit; None if allowed, else the seconds until a retry can succeed."""
        strategy = self._strategy(item)
        if await strategy.hit(item, *keys):
            return None
        stats = await strategy.get_window_stats(item, *keys)
        return max(stats.reset_time - time.time(), 0.001)
