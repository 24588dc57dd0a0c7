"""Start-up checks: every Redis the settings name answers before the gateway serves.

At run time a lost Redis degrades the service (README, "Running a cluster"); at start-up
an unreachable one is almost always a wrong URL, so `nowgate serve` says which setting
and which URL (without its password) in one line, and exits non-zero.
"""

from __future__ import annotations

import asyncio

import redis
from limits.aio.storage import Storage
from limits.errors import ConfigurationError
from redis.exceptions import RedisError

from .ratelimit import is_shared, shared_storage
from .settings import Settings
from .urls import redact_url


def unreachable_redis(settings: Settings) -> str | None:
    """Why start-up cannot go on, in one line; None when every configured Redis answers."""
    if settings.redis_url:
        reason = _ping(settings.redis_url, settings.redis_timeout)
        if reason is not None:
            return _problem("NOWGATE_REDIS_URL", settings.redis_url, reason)
    uri = settings.rate_limit_storage
    if is_shared(uri):
        plain = uri.removeprefix("async+")
        if plain.startswith(("redis://", "rediss://", "unix://")):
            reason = _ping(plain, settings.redis_timeout)
        else:  # sentinel, cluster, memcached...: what limits itself can tell
            try:
                storage, _ = shared_storage(uri, settings.redis_timeout)
            except (ConfigurationError, ValueError) as error:
                return f"cannot use {redact_url(uri)} (NOWGATE_RATE_LIMIT_STORAGE): {error}"
            reason = asyncio.run(_check_storage(storage))
        if reason is not None:
            return _problem("NOWGATE_RATE_LIMIT_STORAGE", uri, reason)
    return None


def _problem(setting: str, url: str, reason: str) -> str:
    return f"cannot reach {redact_url(url)} ({setting}): {reason}"


def _ping(url: str, timeout: float) -> str | None:
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
    except ValueError:
        return "not a Redis URL"
    try:
        client.ping()
    except RedisError as error:
        return _reason(error)
    finally:
        client.close()
    return None


def _reason(error: RedisError) -> str:
    """The error's own words (they name host and port, never the password), one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text}"


async def _check_storage(storage: Storage) -> str | None:
    try:
        reachable = await storage.check()
    except Exception as error:
        return type(error).__name__
    return None if reachable else "no answer to PING"
