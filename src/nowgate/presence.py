"""Who is connected across the cluster, and which groups have members.

In one process the registry is the truth. In a cluster each node keeps, in Redis:

    nowgate:v1:client:<client_id>   {"node", "user", "roles", "groups"}   PX 2 x heartbeat
    nowgate:v1:members:<group>      set of client ids                      PX 2 x heartbeat
    nowgate:v1:clients              set of client ids                      PX 2 x heartbeat

A heartbeat every `cluster_heartbeat_interval` seconds rewrites the records of the node's
own clients and renews the expiries; joins, leaves and disconnects are written as they
happen (coalesced, in the background). A node that dies stops renewing: its clients'
records expire, so within 2 x the interval they are gone everywhere. Sets may hold ids
whose record has expired or moved on; a read keeps only ids whose record exists and names
the group, and removes the rest.

A resumed identity is claimed by a script (set unless another live node holds it): a token
whose client is connected on any node gets a fresh identity, as on one node, while the
client of a node that died resumes elsewhere at once (the dead node has no subscription).
While Redis is unreachable, presence reads answer from this node alone and claims check
this node only; the next heartbeat after Redis is back rewrites every record (a Redis that
restarted empty is whole again within one interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .metrics import METRICS
from .registry import Peer

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("nowgate.presence")

PREFIX = "nowgate:v1:"
CLIENTS = PREFIX + "clients"
NODE_CHANNELS = PREFIX + "node:"  # + node id: each node's own channel (nowgate.cluster_calls)


# Take a client id unless another live node holds it. A record of this node for a client it
# no longer has (a connection just replaced, its removal not yet written) does not count, nor
# one of a node with no subscription left in Redis (it died: its client resumes elsewhere at
# once instead of after the records expire).
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, record = pcall(cjson.decode, current)
  if not ok or type(record) ~= 'table' or type(record['node']) ~= 'string' then
    return 0
  end
  if record['node'] ~= ARGV[3] then
    local subscribers = redis.call('PUBSUB', 'NUMSUB', ARGV[4] .. record['node'])[2]
    if subscribers ~= 0 then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def client_key(client_id: str) -> str:
    return f"{PREFIX}client:{client_id}"


def members_key(group: str) -> str:
    return f"{PREFIX}members:{group}"


@dataclass(frozen=True)
class PresenceRecord:
    """A connected client as the cluster knows it."""

    client_id: str
    node: str
    user: str | None
    roles: frozenset[str]
    groups: frozenset[str]


class Presence:
    def __init__(self, hub: Hub, redis: Redis | None, node: str, ttl_ms: int) -> None:
        self._hub = hub
        self._redis = redis
        self.node = node
        self.ttl_ms = ttl_ms
        # Writes waiting for the background writer, coalesced per client: the peer to
        # (re)write, or None for a client that disconnected (with the groups it was in).
        self._dirty: dict[str, Peer | None] = {}
        self._left: dict[str, set[str]] = {}
        self._wake = asyncio.Event()
        self._withdrawn = False
        if redis is not None:
            self._claim = redis.register_script(_CLAIM)

    # Changes (called by the hub, never awaited) -----------------------------------------

    def update(self, peer: Peer, left_group: str | None = None) -> None:
        """A client connected, or joined or left a group."""
        if self._redis is None or self._withdrawn:
            return
        self._dirty[peer.client_id] = peer
        if left_group is not None:
            self._left.setdefault(peer.client_id, set()).add(left_group)
        self._wake.set()

    def remove(self, peer: Peer) -> None:
        """A client disconnected (called while `peer.groups` still lists its groups)."""
        if self._redis is None or self._withdrawn:
            return
        self._dirty[peer.client_id] = None
        self._left.setdefault(peer.client_id, set()).update(peer.groups)
        self._wake.set()

    # Reads ------------------------------------------------------------------------------

    async def claim(self, client_id: str, user: str | None) -> bool:
        """Take `client_id` for a connection of this node; False if it is connected anywhere."""
        if client_id in self._hub.registry:
            return False
        if self._redis is None:
            return True
        record = _encode(self.node, user, frozenset(), ())
        try:
            return bool(await self._claim(keys=[client_key(client_id)],
                                          args=[record, self.ttl_ms, self.node, NODE_CHANNELS]))
        except RedisError:
            METRICS.cluster_redis_errors.labels("presence").inc()
            log.warning("presence: Redis unreachable; an identity checked on this node only")
            return True

    async def record(self, client_id: str) -> PresenceRecord | None:
        """Where a client is connected; None if nowhere (Redis away: this node only)."""
        peer = self._hub.registry.get(client_id)
        if peer is not None:
            return _record_of(peer, self.node)
        if self._redis is None:
            return None
        try:
            raw = await self._redis.get(client_key(client_id))
        except RedisError:
            return None
        return _decode(client_id, raw)

    async def member_ids(self, group: str | None) -> list[str]:
        """The ids of every connected client (or a group's members), on every node."""
        local = self._hub.registry.audience(group, None)
        if self._redis is None:
            return sorted(peer.client_id for peer in local)
        key = CLIENTS if group is None else members_key(group)
        try:
            candidates = sorted(_text(c) for c in await self._redis.smembers(key))
            raws = await self._redis.mget([client_key(c) for c in candidates]) \
                if candidates else []
        except RedisError:
            return sorted(peer.client_id for peer in local)
        present, stale = [], []
        for client_id, raw in zip(candidates, raws, strict=True):
            record = _decode(client_id, raw)
            if record is not None and (group is None or group in record.groups):
                present.append(client_id)
            else:
                stale.append(client_id)
        if stale:
            with contextlib.suppress(RedisError):
                await self._redis.srem(key, *stale)
        return present

    # Background -------------------------------------------------------------------------

    async def run(self, interval: float) -> None:
        """Heartbeat every `interval` seconds, and write changes as they come."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            if loop.time() >= next_beat:
                next_beat = loop.time() + interval
                await self._safely(self.heartbeat())
            if self._dirty:
                await self._safely(self._flush())
            self._wake.clear()
            if self._dirty:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(next_beat - loop.time(), 0))

    async def _safely(self, operation: Any) -> None:
        try:
            await operation
        except RedisError as error:
            # Presence expires on its own; the next heartbeat rewrites all of it.
            METRICS.cluster_redis_errors.labels("presence").inc()
            self._dirty.clear()
            self._left.clear()
            log.warning("presence: Redis unreachable (%s); retrying at the next heartbeat",
                        type(error).__name__)
        except Exception:
            self._dirty.clear()
            self._left.clear()
            log.exception("presence: a heartbeat failed; retrying at the next one")

    async def heartbeat(self) -> None:
        """Rewrite every local client's record and renew every expiry this node relies on."""
        if self._redis is None or self._withdrawn:
            return
        pipe = self._redis.pipeline(transaction=False)
        groups: set[str] = set()
        peers = list(self._hub.registry.peers())
        for peer in peers:
            self._write(pipe, peer)
            groups.update(peer.groups)
        for group in groups:
            pipe.pexpire(members_key(group), self.ttl_ms)
        if peers:
            pipe.pexpire(CLIENTS, self.ttl_ms)
        await pipe.execute()
        await self._hub.cluster.state.keep_alive(groups)

    def _write(self, pipe: Any, peer: Peer) -> None:
        pipe.set(client_key(peer.client_id),
                 _encode(self.node, peer.user, peer.roles, peer.groups), px=self.ttl_ms)
        pipe.sadd(CLIENTS, peer.client_id)
        for group in peer.groups:
            pipe.sadd(members_key(group), peer.client_id)
            pipe.pexpire(members_key(group), self.ttl_ms)

    async def _flush(self) -> None:
        assert self._redis is not None
        dirty, left = self._dirty, self._left
        self._dirty, self._left = {}, {}
        pipe = self._redis.pipeline(transaction=False)
        for client_id, peer in dirty.items():
            for group in left.get(client_id, ()):
                pipe.srem(members_key(group), client_id)
            if peer is None:
                pipe.delete(client_key(client_id))
                pipe.srem(CLIENTS, client_id)
            elif self._hub.registry.get(client_id) is peer:
                self._write(pipe, peer)
        pipe.pexpire(CLIENTS, self.ttl_ms)
        await pipe.execute()

    async def close(self) -> None:
        """The node stops: write the disconnections not yet written, remove the rest."""
        if self._redis is None:
            return
        if self._dirty and not self._withdrawn:
            await self._safely(self._flush())
        await self.withdraw()

    async def withdraw(self) -> None:
        """Remove every client of this node from presence now, and stop writing any."""
        if self._redis is None or self._withdrawn:
            return
        self._withdrawn = True
        peers = list(self._hub.registry.peers())
        if not peers:
            return
        pipe = self._redis.pipeline(transaction=False)
        for peer in peers:
            pipe.delete(client_key(peer.client_id))
            pipe.srem(CLIENTS, peer.client_id)
            for group in peer.groups:
                pipe.srem(members_key(group), peer.client_id)
        try:
            await pipe.execute()
        except RedisError:
            log.warning("presence: Redis unreachable while draining; records expire instead")


def _encode(
    node: str, user: str | None, roles: frozenset[str] | set[str], groups: Any
) -> bytes:
    return orjson.dumps({"node": node, "user": user, "roles": sorted(roles),
                         "groups": sorted(groups)})


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _decode(client_id: str, raw: bytes | str | None) -> PresenceRecord | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        return PresenceRecord(
            client_id=client_id,
            node=str(data["node"]),
            user=data["user"] if isinstance(data["user"], str) else None,
            roles=frozenset(str(role) for role in data["roles"]),
            groups=frozenset(str(group) for group in data["groups"]),
        )
    except (ValueError, KeyError, TypeError):
        log.error("presence: dropped an undecodable record")
        return None


def _record_of(peer: Peer, node: str) -> PresenceRecord:
    return PresenceRecord(peer.client_id, node, peer.user, peer.roles, frozenset(peer.groups))
