"""Fan-out across gateway processes: nothing by default, Redis pub/sub when configured.

Every broadcast is applied locally first, then published once (shared variables cross
nodes through `nowgate.shared_state`, held in Redis); each other node delivers it to its own
local members. Messages a node published itself are skipped on receipt (each node has a
random id), and a broadcast carries the client to exclude, so `others` means the same thing
across the cluster. Ordering is per-publisher (one Redis connection publishes, in order).

Redis failures (see README, "Running a cluster"): `publish()` never raises nor waits. What
this node publishes waits in one bounded buffer (`backplane_buffer_bytes`, oldest dropped
first; older than `backplane_buffer_seconds` dropped at flush), flushed in order once the
subscription is back and the other nodes have resubscribed (or a grace period passed), so
a short outage loses nothing and a long one loses a counted amount. The subscription
reconnects with jittered exponential backoff up to `redis_retry_max`, and an idle one is
PINGed, so a dead connection is noticed without traffic. A received payload that is not a
well-formed envelope is dropped, counted and audited; the receive loop never ends but by
`stop()`.

Calls and notifications to one client of another node go through `nowgate.cluster_calls`;
what does not cross nodes at all: client-scope variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .logs import audit
from .metrics import METRICS
from .settings import Settings
from .urls import redact_url

log = logging.getLogger("nowgate.backplane")

CHANNEL = "nowgate:v1:fanout"
FIRST_RETRY_SECONDS = 0.1
KEEPALIVE_SECONDS = 5.0
RECEIVERS_POLL_SECONDS = 0.05

Envelope = dict[str, Any]
ENVELOPE_KEYS = frozenset({"node", "frame", "group", "without", "origin"})
_JITTER = secrets.SystemRandom()


class Backplane(Protocol):
    @property
    def connected(self) -> bool: ...
    async def start(self, deliver: Callable[[Envelope], None]) -> None: ...
    def publish(self, envelope: Envelope) -> None: ...
    async def stop(self) -> None: ...


class BackplaneUnavailable(Exception):
    """Redis could not be reached at start-up (the message names the setting and URL)."""


class LocalBackplane:
    """One process: everything is already delivered locally."""

    connected = True

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        return None

    def publish(self, envelope: Envelope) -> None:
        return None

    async def stop(self) -> None:
        return None


def decode_envelope(data: object) -> Envelope | None:
    """A received payload as an envelope, or None if it is not one a node publishes."""
    try:
        envelope = orjson.loads(data) if isinstance(data, bytes | str) else None
    except orjson.JSONDecodeError:
        return None
    if not (
        isinstance(envelope, dict)
        and isinstance(envelope.get("node"), str)
        and isinstance(envelope.get("frame"), str)
        and isinstance(envelope.get("group"), str | None)
        and isinstance(envelope.get("without"), str | None)
    ):
        return None
    if not envelope.keys() <= ENVELOPE_KEYS:
        return None  # nothing a node publishes (shared variables have their own channel)
    return envelope


class Backoff:
    """Jittered exponential delays, so that nodes do not retry in step."""

    def __init__(self, longest: float) -> None:
        self._longest = longest
        self._failures = 0

    def reset(self) -> None:
        self._failures = 0

    def next(self) -> float:
        delay = min(self._longest, FIRST_RETRY_SECONDS * float(2**self._failures))
        self._failures = min(self._failures + 1, 32)
        jitter: float = _JITTER.uniform(0.5, 1.0)
        return delay * jitter


class RedisBackplane:
    def __init__(
        self,
        url: str,
        timeout: float = 1.0,
        retry_max: float = 2.0,
        buffer_bytes: int = 8 * 1024 * 1024,
        buffer_seconds: float = 30.0,
    ) -> None:
        self._url = url
        # Our own backoff decides when to retry; redis-py's retries would only hide an
        # outage for seconds. The timeouts bound a connect or a command to a silent server.
        self._redis: Redis = Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._timeout = timeout
        self._retry_max = retry_max
        self._buffer_bytes = buffer_bytes
        self._buffer_seconds = buffer_seconds
        self._node = secrets.token_hex(8)
        self._held: deque[tuple[float, bytes]] = deque()
        self._held_bytes = 0
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._resubscribed = False
        self._receivers = 0  # subscribers that got our last publish (this node included)
        self._dropping = False
        self._deliver: Callable[[Envelope], None] = lambda envelope: None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connected(self) -> bool:
        return self._subscribed.is_set()

    async def start(self, deliver: Callable[[Envelope], None]) -> None:
        """Subscribe before returning, so that a node is ready when it says it is."""
        self._deliver = deliver
        try:
            pubsub = await self._subscribe()
        except (RedisError, OSError) as error:
            await self._redis.aclose()
            raise BackplaneUnavailable(
                f"cannot reach Redis at {redact_url(self._url)} (NOWGATE_REDIS_URL): "
                f"{type(error).__name__}"
            ) from None
        self._tasks = [
            asyncio.create_task(self._receive(pubsub)),
            asyncio.create_task(self._send()),
        ]

    # Publishing -------------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> None:
        payload = orjson.dumps({**envelope, "node": self._node})
        now = time.monotonic()
        self._expire(now)
        while self._held and self._held_bytes + len(payload) > self._buffer_bytes:
            self._drop_oldest("buffer_full")
        self._held.append((now, payload))
        self._held_bytes += len(payload)
        METRICS.backplane_buffered.set(self._held_bytes)
        self._wake.set()

    def _expire(self, now: float) -> None:
        while self._held and self._held[0][0] < now - self._buffer_seconds:
            self._drop_oldest("expired")

    def _drop_oldest(self, reason: str) -> None:
        _, payload = self._held.popleft()
        self._held_bytes -= len(payload)
        METRICS.backplane_dropped.labels(reason).inc()
        if not self._dropping:
            self._dropping = True  # one line per outage, the metric counts each message
            log.error("backplane: Redis unreachable too long, dropping messages for other nodes")

    async def _send(self) -> None:
        backoff = Backoff(self._retry_max)
        while True:
            while not self._held:
                self._wake.clear()
                await self._wake.wait()
            await self._subscribed.wait()
            if self._resubscribed:
                self._resubscribed = False
                await self._other_nodes_resubscribed()
            self._expire(time.monotonic())
            if not self._held:
                continue
            # Taken out while in flight, so that publish() dropping the oldest meanwhile
            # cannot drop this one and make us remove another after it went out.
            held_since, payload = self._held.popleft()
            self._held_bytes -= len(payload)
            try:
                self._receivers = await self._redis.publish(CHANNEL, payload)
            except (RedisError, OSError):
                self._held.appendleft((held_since, payload))  # first again, still bounded
                self._held_bytes += len(payload)
                await asyncio.sleep(backoff.next())
                continue
            finally:
                METRICS.backplane_buffered.set(self._held_bytes)
            backoff.reset()

    async def _other_nodes_resubscribed(self) -> None:
        """After an outage, wait (bounded) until as many nodes listen as before it.

        Redis keeps no pub/sub message for a subscriber that is not there yet: a held
        message flushed before the other nodes are back would be lost for them.
        """
        deadline = time.monotonic() + self._retry_max + 1.0
        while time.monotonic() < deadline:
            try:
                counts = await self._redis.pubsub_numsub(CHANNEL)
                if counts and int(counts[0][1]) >= self._receivers:
                    return
            except (RedisError, OSError):
                pass  # a pooled connection from before the outage: the next one is fresh
            await asyncio.sleep(RECEIVERS_POLL_SECONDS)

    # Receiving --------------------------------------------------------------------------

    async def _subscribe(self) -> PubSub:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            confirmation = await pubsub.get_message(timeout=self._timeout)
            if confirmation is None or confirmation["type"] != "subscribe":
                raise TimeoutError("no subscription confirmation")
        except BaseException:
            await _close(pubsub)
            raise
        self._set_connected(True)
        return pubsub

    async def _receive(self, pubsub: PubSub | None) -> None:
        backoff = Backoff(self._retry_max)
        try:
            while True:
                try:
                    if pubsub is None:
                        pubsub = await self._subscribe()
                        METRICS.backplane_reconnects.inc()
                        log.warning("backplane: subscribed to Redis again")
                    backoff.reset()
                    await self._listen(pubsub)
                except (RedisError, OSError) as error:
                    if self.connected:
                        log.error(
                            "backplane: lost Redis (%s); local delivery goes on, "
                            "reconnecting", type(error).__name__,
                        )
                    self._set_connected(False)
                if pubsub is not None:
                    await _close(pubsub)
                    pubsub = None
                await asyncio.sleep(backoff.next())
        finally:
            if pubsub is not None:
                await _close(pubsub)

    async def _listen(self, pubsub: PubSub) -> None:
        """Hand each message on; PING when quiet, so a dead link is noticed."""
        awaiting_pong = False
        while True:
            wait = self._timeout if awaiting_pong else KEEPALIVE_SECONDS
            message = await pubsub.get_message(timeout=wait)
            if message is None:
                if awaiting_pong:
                    raise TimeoutError("Redis did not answer a PING")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            if message["type"] == "message":
                self._receive_payload(message["data"])

    def _receive_payload(self, data: object) -> None:
        envelope = decode_envelope(data)
        if envelope is None:
            METRICS.backplane_dropped.labels("undecodable").inc()
            audit("backplane_message_dropped")
            return
        if envelope["node"] == self._node:
            return
        try:
            self._deliver(envelope)
        except Exception as error:
            # A well-formed envelope the hub still cannot apply: drop it, keep receiving.
            METRICS.backplane_dropped.labels("rejected").inc()
            audit("backplane_message_dropped")
            log.error("backplane: a message from another node was refused (%s)",
                      type(error).__name__)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        METRICS.backplane_connected.set(int(connected))
        if connected:
            self._resubscribed = bool(self._tasks)  # not on the first subscription
            self._dropping = False
            self._subscribed.set()
        else:
            self._subscribed.clear()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._set_connected(False)
        await self._redis.aclose()


async def _close(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]


def backplane_for(settings: Settings) -> Backplane:
    if not settings.redis_url:
        return LocalBackplane()
    return RedisBackplane(
        settings.redis_url,
        timeout=settings.redis_timeout,
        retry_max=settings.redis_retry_max,
        buffer_bytes=settings.backplane_buffer_bytes,
        buffer_seconds=settings.backplane_buffer_seconds,
    )
