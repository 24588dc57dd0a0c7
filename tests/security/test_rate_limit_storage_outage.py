"""Threat: a Redis outage (or an attacker able to cause one) turns rate limits into either
a denial of service (every message fails, every handshake gets 500) or no limit at all.

Defence: while the shared storage is unreachable, each node counts in its own memory:
limits still hold per node (a client spreading over N nodes gets at most N budgets), nothing
fails, the switch is audited both ways and shown by `nowgate_rate_limit_local`, and counting
returns to the shared storage by itself once it answers again. Tested with a real
redis-server stopped and restarted under a RateLimiter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import limits
import pytest

from nowgate.metrics import METRICS
from nowgate.ratelimit import RateLimiter
from tests.support.redis import RedisServer, redis_process

pytestmark = pytest.mark.redis

THREE_PER_MINUTE = limits.parse("3/minute")


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with redis_process() as server:
        yield server


def audited(event: str) -> float:
    return METRICS.security_events.labels(event)._value.get()


async def allowed(limiter: RateLimiter, key: str, times: int) -> list[bool]:
    return [await limiter.retry_after(THREE_PER_MINUTE, key) is None for _ in range(times)]


async def test_limits_hold_per_node_while_the_shared_storage_is_down_and_come_back(
    redis: RedisServer,
) -> None:
    limiter = RateLimiter(redis.url, timeout=0.5, recheck_seconds=0.2)
    other_node = RateLimiter(redis.url, timeout=0.5, recheck_seconds=0.2)
    assert await allowed(limiter, "shared", 2) == [True, True]
    assert await allowed(other_node, "shared", 2) == [True, False]  # one budget, two nodes
    lost, restored = audited("rate_limit_storage_lost"), audited("rate_limit_storage_restored")

    redis.stop()
    started = time.monotonic()
    # Nothing raises; this node's own counters still limit.
    assert await allowed(limiter, "outage", 5) == [True, True, True, False, False]
    assert time.monotonic() - started < 3  # each refused connect is bounded, then no more tries
    assert limiter.counting_locally
    assert METRICS.rate_limit_local._value.get() == 1
    assert audited("rate_limit_storage_lost") == lost + 1  # once per outage, not per message

    redis.start()
    deadline = time.monotonic() + 5
    while limiter.counting_locally:
        assert time.monotonic() < deadline, "never went back to the shared storage"
        await limiter.retry_after(THREE_PER_MINUTE, "probe")  # re-checked on traffic
        await asyncio.sleep(0.05)
    assert audited("rate_limit_storage_restored") == restored + 1
    # Counting is shared again: the two nodes spend one budget (Redis restarted empty).
    assert await allowed(limiter, "after", 2) == [True, True]
    assert await allowed(other_node, "after", 2) == [True, False]
    await limiter.aclose()
    await other_node.aclose()
