"""This node's place in a cluster of gateways sharing one Redis (`NOWGATE_REDIS_URL`).

Without a Redis URL every part is in-process and nothing here touches the network. With one,
the node gets a random id and four cluster-wide parts, one module each:

- `nowgate.presence`: which clients are connected where, and which groups have members,
  kept in Redis with expiry and refreshed by a heartbeat;
- `nowgate.shared_state`: the `everyone` and group variables, held in Redis, cached here;
- `nowgate.cluster_calls`: `ctx.find()`, server->client calls and notifications to a client
  of another node (request/response on that node's own channel);
- `nowgate.locks`: leases (`ctx.lock(name, seconds)`), SET NX PX in Redis.

Broadcasts cross nodes through `nowgate.backplane`, not here. This module owns the Redis
client of those parts and their one subscription (this node's channel and the shared-state
channel). As the backplane's, it is PINGed when quiet (a silent Redis is noticed too) and
re-established with jittered backoff up to `redis_retry_max`; every Redis command waits at
most `redis_timeout`. Every (re)subscription reloads the shared variables, so a node that
missed messages converges; so does a node whose writes failed while its subscription
stayed up (it resubscribes once Redis answers again). Redis is trusted infrastructure:
what comes from it is decoded strictly, and a payload that does not decode is logged and
dropped, never raised into the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .backplane import KEEPALIVE_SECONDS, Backoff
from .cluster_calls import RemoteCalls, node_channel
from .locks import Locks
from .metrics import METRICS
from .presence import Presence
from .shared_state import SharedState

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("nowgate.cluster")

PREFIX = "nowgate:v1:"
STATE_CHANNEL = PREFIX + "state"
IDLE_CHECK_SECONDS = 1.0


class Cluster:
    """The cluster-wide parts of one node (in-process when `redis_url` is None)."""

    def __init__(self, hub: Hub, redis_url: str | None) -> None:
        self.node = secrets.token_hex(8)
        settings = hub.settings
        timeout = settings.redis_timeout
        # Our own backoff decides when to retry; the timeouts bound a connect or a command
        # to a silent server (a handler never waits on Redis longer than `redis_timeout`).
        self.redis: Redis | None = (
            Redis.from_url(redis_url, socket_connect_timeout=timeout, socket_timeout=timeout,
                           retry=Retry(NoBackoff(), 0)) if redis_url else None
        )
        ttl_ms = int(2 * settings.cluster_heartbeat_interval * 1000)
        self.presence = Presence(hub, self.redis, self.node, ttl_ms)
        self.state = SharedState(hub, self.redis, self.node, ttl_ms)
        self.calls = RemoteCalls(hub, self.redis, self.node, settings.cluster_max_remote_calls)
        self.locks = Locks(self.redis)
        self._interval = settings.cluster_heartbeat_interval
        self._timeout = timeout
        self._retry_max = settings.redis_retry_max
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()

    @property
    def enabled(self) -> bool:
        return self.redis is not None

    async def start(self) -> None:
        """Subscribe and load the shared variables before the node says it is ready.

        An unreachable Redis does not stop the node here: it serves its own clients and
        keeps retrying in the background (start-up checks of the URL are the server's).
        """
        if self.redis is None:
            return
        self._tasks = [
            asyncio.create_task(self._subscribe()),
            asyncio.create_task(self.presence.run(self._interval)),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), 5.0)

    async def withdraw(self) -> None:
        """The node is draining: its clients leave presence at once, so that they can resume
        their identities on another node without waiting for the expiry."""
        await self.presence.withdraw()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.presence.close()
        await self.calls.stop()
        await self.state.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def _subscribe(self) -> None:
        assert self.redis is not None
        backoff = Backoff(self._retry_max)
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(node_channel(self.node), STATE_CHANNEL)
                await self.state.resync()
                self.subscribed.set()
                backoff.reset()
                await self._listen(pubsub)
            except (RedisError, OSError) as error:
                METRICS.cluster_redis_errors.labels("subscription").inc()
                log.warning("cluster: Redis unreachable (%s); this node serves its own "
                            "clients and reconnects", type(error).__name__)
            except Exception:
                log.exception("cluster: the subscription failed; reconnecting")
            finally:
                self.subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff.next())

    async def _listen(self, pubsub: PubSub) -> None:
        """Hand each message on; PING when quiet; return to resubscribe after failed writes."""
        quiet = 0.0
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=IDLE_CHECK_SECONDS)
            if message is not None:
                quiet, awaiting_pong = 0.0, False
                if message["type"] == "message":
                    self._receive(message)
                continue
            if self.state.unsynced and await self._reachable():
                # Writes failed while this subscription stayed up (a stalled or partitioned
                # Redis): resubscribing writes them and reloads.
                return
            quiet += IDLE_CHECK_SECONDS
            if awaiting_pong and quiet >= self._timeout + IDLE_CHECK_SECONDS:
                raise TimeoutError("Redis did not answer a PING")
            if not awaiting_pong and quiet >= KEEPALIVE_SECONDS:
                await pubsub.ping()
                quiet, awaiting_pong = 0.0, True

    async def _reachable(self) -> bool:
        assert self.redis is not None
        try:
            return bool(await self.redis.ping())
        except RedisError:
            return False

    def _receive(self, message: dict[str, Any]) -> None:
        try:
            payload = orjson.loads(message["data"])
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if channel == STATE_CHANNEL:
                self.state.receive(payload)
            else:
                self.calls.receive(payload)
        except (ValueError, KeyError, TypeError) as error:
            log.error("cluster: dropped an undecodable message (%s)", type(error).__name__)
