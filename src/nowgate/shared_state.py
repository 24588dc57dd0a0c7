"""The `everyone` and group variables of a cluster: held in Redis, cached on every node.

    nowgate:v1:vars:<scope>       path -> the value's JSON       (scope: everyone, group:<name>)
    nowgate:v1:versions:<scope>   path -> how many writes it has had

A write is applied to this node's cache and delivered to its clients at once (as on one
node), then written to Redis by one script that counts the version, stores the value and
publishes it, atomically: Redis orders the writes of every node, and every node sees them
in that order. A node applies a published write only if its version is newer than the one
it holds, so writes stay ordered per variable and the cluster converges on Redis's last
write. Every node caches every scope (a group's variables included, whether or not the
node has a member), so a welcome and a join are answered from memory; the cache is loaded
from Redis at start-up and at every resubscription.

Group variables live while the group has members anywhere: their keys expire 2 x the
heartbeat interval after the last node with a member stopped renewing them. The
`everyone` scope never expires.

While Redis is unreachable: writes still apply here and reach this node's clients; other
nodes keep what they had. This node remembers which variables it wrote (at most one entry
per variable, the value is the cache's) and, when its subscription is back, writes them to
Redis (they win, as the latest writes), puts back any variable a Redis restarted empty has
lost, then reloads: every node converges within one reconnection (about a second after
Redis is back). Redis keeps these values only as durably as it is configured to.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson
from pydantic_core import to_jsonable_python
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .metrics import METRICS
from .variables import EVERYONE, GROUP_PREFIX

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("nowgate.shared_state")

PREFIX = "nowgate:v1:"
STATE_CHANNEL = PREFIX + "state"
VALUES = PREFIX + "vars:"
VERSIONS = PREFIX + "versions:"

# KEYS: values, versions. ARGV: path, value JSON, "1" to delete, expiry ms (0: none),
# channel, the message's JSON without its opening brace (the version goes first).
_WRITE = """
local version = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
if ARGV[3] == '1' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', ARGV[5], '{"version":' .. version .. ',' .. ARGV[6])
return version
"""

# Put back a variable a Redis that restarted empty has lost (nobody has written it since).
_SEED = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  local ttl = tonumber(ARGV[4])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return 1
"""

Key = tuple[str, str]  # (scope, path)


def value_json(value: Any) -> str:
    return orjson.dumps(value, default=to_jsonable_python).decode()


def write_message(
    node: str, seq: int, scope: str, path: str, encoded: str | None, without: str | None
) -> dict[str, Any]:
    """What the write script publishes (it puts the version first): one write of one node."""
    return {"node": node, "seq": seq, "scope": scope, "path": path,
            "deleted": encoded is None, "without": without, "value": encoded}


class SharedState:
    def __init__(self, hub: Hub, redis: Redis | None, node: str, ttl_ms: int) -> None:
        self._hub = hub
        self._redis = redis
        self._node = node
        self._ttl_ms = ttl_ms
        # The cached values' JSON per scope and path, to compare writes with.
        self._json: dict[str, dict[str, str]] = {}
        self._versions: dict[Key, int] = {}
        # How many writes this node made to each variable: a published write of this node
        # that an own later write already superseded is not applied again (no going back).
        self._local_writes: dict[Key, int] = {}
        # This node's writes not yet in Redis, in order, coalesced per variable.
        self._pending: dict[Key, str | None] = {}
        self._pending_without: dict[Key, str | None] = {}
        self._unsynced: set[Key] = set()
        self._lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        if redis is not None:
            self._write_script = redis.register_script(_WRITE)
            self._seed_script = redis.register_script(_SEED)

    @property
    def unsynced(self) -> bool:
        """Writes of this node that failed to reach Redis (written at the next resync)."""
        return bool(self._unsynced)

    def keeps_group(self, group: str) -> bool:
        """Whether the group's variables stay cached after its last local member left (in a
        cluster they live while the group has members anywhere)."""
        return bool(self._json.get(GROUP_PREFIX + group))

    # Writes of this node ----------------------------------------------------------------

    def wrote(self, scope: str, path: str, value: Any, deleted: bool, without: str | None) -> None:
        """This node stored (or deleted) a shared variable and delivered it locally."""
        if self._redis is None:
            return
        key = (scope, path)
        encoded = None if deleted else value_json(value)
        self._cache(key, encoded)
        self._local_writes[key] = self._local_writes.get(key, 0) + 1
        self._pending[key] = encoded
        self._pending_without[key] = without
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())

    def _cache(self, key: Key, encoded: str | None) -> None:
        scope, path = key
        if encoded is not None:
            self._json.setdefault(scope, {})[path] = encoded
            return
        values = self._json.get(scope)
        if values is not None:
            values.pop(path, None)
            if not values:
                del self._json[scope]

    async def _write_pending(self) -> None:
        while self._pending:
            async with self._lock:
                pending, self._pending = self._pending, {}
                withouts, self._pending_without = self._pending_without, {}
                try:
                    await self._send(pending, withouts)
                except RedisError:
                    METRICS.cluster_redis_errors.labels("shared_state").inc()
                    self._unsynced.update(pending)
                    log.warning("shared state: Redis unreachable; %d write(s) applied on this "
                                "node only until it is back", len(pending))

    async def _send(self, writes: dict[Key, str | None], withouts: dict[Key, str | None]) -> None:
        assert self._redis is not None
        pipe = self._redis.pipeline(transaction=False)
        for key, encoded in writes.items():
            scope, path = key
            message = write_message(self._node, self._local_writes.get(key, 0), scope, path,
                                    encoded, withouts.get(key))
            await self._write_script(
                keys=[VALUES + scope, VERSIONS + scope],
                args=[path, encoded or "", "1" if encoded is None else "0",
                      0 if scope == EVERYONE else self._ttl_ms, STATE_CHANNEL,
                      orjson.dumps(message).decode()[1:]],
                client=pipe,
            )
        await pipe.execute()

    # Writes of every node, as Redis ordered them -----------------------------------------

    def receive(self, message: dict[str, Any]) -> None:
        scope, path = message["scope"], message["path"]
        version = message["version"]
        if not (isinstance(scope, str) and isinstance(path, str) and isinstance(version, int)):
            raise ValueError("malformed state message")
        if not (scope == EVERYONE or scope.startswith(GROUP_PREFIX)):
            raise ValueError("unknown scope")
        key = (scope, path)
        if version <= self._versions.get(key, 0):
            return  # older than what this node holds
        self._versions[key] = version
        if message.get("node") == self._node and message.get("seq") != self._local_writes.get(
            key
        ):
            return  # this node wrote the variable again since: that write follows
        encoded = None if message["deleted"] else message["value"]
        if encoded is not None and not isinstance(encoded, str):
            raise ValueError("malformed value")
        without = message.get("without")
        self._apply(key, encoded, without if isinstance(without, str) else None)

    def _apply(self, key: Key, encoded: str | None, without: str | None) -> None:
        """Make the cache hold `encoded`; tell local members only if that changes what they hold."""
        scope, path = key
        if self._json.get(scope, {}).get(path) == encoded:
            return
        value = None if encoded is None else orjson.loads(encoded)
        self._cache(key, encoded)
        self._hub.apply_shared_variable(scope, path, value, encoded is None, without)

    # Start-up, reconnection, expiry --------------------------------------------------------

    async def resync(self) -> None:
        """Write what this node wrote while Redis was away, put back what Redis lost, then
        load every scope from Redis and make the cache (and local clients) match it."""
        assert self._redis is not None
        async with self._lock:
            unsynced = {key: self._json.get(key[0], {}).get(key[1]) for key in self._unsynced}
            if unsynced:
                await self._send(unsynced, {})
                self._unsynced.clear()
            pipe = self._redis.pipeline(transaction=False)
            for scope, values in self._json.items():
                for path, encoded in values.items():
                    await self._seed_script(
                        keys=[VALUES + scope, VERSIONS + scope],
                        args=[path, encoded, self._versions.get((scope, path), 1),
                              0 if scope == EVERYONE else self._ttl_ms],
                        client=pipe,
                    )
            await pipe.execute()
            await self._load()

    async def _load(self) -> None:
        assert self._redis is not None
        scopes = {EVERYONE}
        async for raw in self._redis.scan_iter(match=VERSIONS + "*", count=500):
            scope = (raw.decode() if isinstance(raw, bytes) else raw)[len(VERSIONS):]
            if scope.startswith(GROUP_PREFIX):
                scopes.add(scope)
        ordered = sorted(scopes)
        pipe = self._redis.pipeline(transaction=False)
        for scope in ordered:
            pipe.hgetall(VALUES + scope)
            pipe.hgetall(VERSIONS + scope)
        replies = await pipe.execute()
        loaded: dict[Key, str | None] = {}
        versions: dict[Key, int] = {}
        for index, scope in enumerate(ordered):
            values, counts = replies[2 * index], replies[2 * index + 1]
            for raw_path, raw_count in counts.items():
                key = (scope, raw_path.decode())
                versions[key] = int(raw_count)
                raw_value = values.get(raw_path)
                loaded[key] = None if raw_value is None else raw_value.decode()
        for scope, cached in list(self._json.items()):
            for path in list(cached):
                if (scope, path) not in loaded:
                    self._apply((scope, path), None, None)
        for key, encoded in loaded.items():
            self._apply(key, encoded, None)
        self._versions = versions

    async def keep_alive(self, groups: set[str]) -> None:
        """Renew the variables of the groups with members here; forget cached groups that
        expired in Redis (no member on any node renewed them)."""
        if self._redis is None:
            return
        renewed = sorted(GROUP_PREFIX + group for group in groups)
        others = sorted(scope for scope in self._json
                        if scope != EVERYONE and scope not in set(renewed))
        pipe = self._redis.pipeline(transaction=False)
        for scope in renewed:
            pipe.pexpire(VALUES + scope, self._ttl_ms)
            pipe.pexpire(VERSIONS + scope, self._ttl_ms)
        for scope in others:
            pipe.exists(VERSIONS + scope)
        replies = await pipe.execute()
        for scope, exists in zip(others, replies[2 * len(renewed):], strict=True):
            if not exists:
                self._forget(scope)

    def _forget(self, scope: str) -> None:
        """A group with no member anywhere: its variables went from Redis, and go from here."""
        for path in self._json.pop(scope, {}):
            self._versions.pop((scope, path), None)
            self._local_writes.pop((scope, path), None)
        group = scope[len(GROUP_PREFIX):]
        if not self._hub.registry.has_group(group):
            self._hub.variables.drop_group(group)

    async def stop(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
