"""The API handler authors use: NowJS's `everyone`, groups, `this.now` and friends.

    async def syncPosition(ctx: Context, position: Position) -> bool:
        ctx.others.notify("updatePosition", position)      # everyone but the caller
        return True

`ctx.everyone`, `ctx.others`, `ctx.group(name)` are audiences: `notify()` calls a client
function on each member without waiting (one encode, one message per receiver), `set()` and
`delete()` write a shared variable of that scope (one value per scope: an audience that
excludes the caller stores it for everyone and only skips the caller's `now.set`, since the
caller holds the value it wrote). `ctx.client` is the caller, and
`await ctx.find(client_id)` any connected client, on any node of a cluster:
`await client.call(...)` awaits its answer. `await audience.member_ids()` and `count()` are
presence, cluster-wide; `ctx.lock(name, seconds)` a lease (`nowgate.locks`).
Identities, groups and roles are only ever changed here, by server code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .locks import Lease
from .presence import PresenceRecord
from .registry import Peer
from .variables import CLIENT, EVERYONE, GROUP_PREFIX

if TYPE_CHECKING:
    # Only the type: the policy binds handlers to Context, and the hub imports the policy.
    from .hub import Hub


class Audience:
    """Everyone, or one group, optionally without one client (the sender)."""

    def __init__(self, hub: Hub, group: str | None = None, without: str | None = None) -> None:
        self._hub = hub
        self._group = group
        self._without = without

    @property
    def client_ids(self) -> list[str]:
        """The members connected to this node."""
        return [peer.client_id for peer in self._hub.registry.audience(self._group, self._without)]

    async def member_ids(self) -> list[str]:
        """The members connected to any node of the cluster (sorted).

        From presence: a client that connected or joined on another node a moment ago may
        be missing for a few milliseconds, one whose node died is listed for at most
        2 x `cluster_heartbeat_interval`. While Redis is away: this node's members only.
        """
        ids = await self._hub.cluster.presence.member_ids(self._group)
        return [client_id for client_id in ids if client_id != self._without]

    async def count(self) -> int:
        """How many members are connected to any node of the cluster."""
        return len(await self.member_ids())

    def excluding(self, client_id: str) -> Audience:
        return Audience(self._hub, self._group, client_id)

    def notify(self, function: str, *args: Any) -> int:
        """Call a client function on every member (on every node, with a backplane).

        Returns how many members of this node it was queued to.
        """
        return self._hub.broadcast(function, args, self._group, self._without)

    @property
    def _scope(self) -> str:
        return EVERYONE if self._group is None else GROUP_PREFIX + self._group

    def set(self, path: str, value: Any) -> None:
        """Write the scope's shared variable; every member receives `now.set`.

        The scope has one value, whatever the audience: on `ctx.others` (or a group without
        self) the value is stored for everyone, every later welcome shows it, and only the
        excluded client (the writer, which holds the value already) gets no `now.set`.
        """
        self._hub.set_variable(self._scope, path, value, without=self._without)

    def delete(self, path: str) -> None:
        """Delete the scope's shared variable; members but the excluded one get `now.del`."""
        self._hub.delete_variable(self._scope, path, without=self._without)

    def get(self, path: str, default: Any = None) -> Any:
        return self._hub.variables.scope(self._scope).get(path, default)


class Client:
    """One connected client, as handlers see it."""

    def __init__(self, hub: Hub, peer: Peer) -> None:
        self._hub = hub
        self._peer = peer

    @property
    def client_id(self) -> str:
        return self._peer.client_id

    @property
    def user(self) -> str | None:
        return self._peer.user

    @property
    def roles(self) -> frozenset[str]:
        return self._peer.roles

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self._peer.groups)

    @property
    def address(self) -> str:
        return self._peer.address

    @property
    def connected(self) -> bool:
        return self._hub.registry.get(self._peer.client_id) is self._peer

    def notify(self, function: str, *args: Any) -> bool:
        return self._hub.notify(self._peer, function, args)

    async def call(self, function: str, *args: Any) -> Any:
        """Call a client function and await its answer, validated against the stub's type."""
        return await self._hub.call(self._peer, function, args)

    def join(self, group: str) -> None:
        self._hub.join(self._peer, group)

    def leave(self, group: str) -> None:
        self._hub.leave(self._peer, group)

    def set(self, path: str, value: Any) -> None:
        self._hub.set_variable(CLIENT, path, value, self._peer.client_id)

    def delete(self, path: str) -> None:
        self._hub.delete_variable(CLIENT, path, self._peer.client_id)

    def get(self, path: str, default: Any = None) -> Any:
        return self._hub.variables.scope(CLIENT, self._peer.client_id).get(path, default)


class RemoteClient:
    """A client connected to another node of the cluster, as `ctx.find()` returns it.

    It can be called and notified like a local client; its groups and variables can only
    be changed by the node it is connected to (a handler there).
    """

    def __init__(self, hub: Hub, record: PresenceRecord) -> None:
        self._hub = hub
        self._record = record

    @property
    def client_id(self) -> str:
        return self._record.client_id

    @property
    def user(self) -> str | None:
        return self._record.user

    @property
    def roles(self) -> frozenset[str]:
        return self._record.roles

    @property
    def groups(self) -> frozenset[str]:
        """Its groups when it was looked up."""
        return self._record.groups

    def notify(self, function: str, *args: Any) -> bool:
        """Call a client function without awaiting an answer (through its node)."""
        return self._hub.cluster.calls.notify(self._record, function, args)

    async def call(self, function: str, *args: Any) -> Any:
        """Call a client function and await its validated answer, through its node.

        Raises ClientCallError as for a local client; also at once if its node is gone.
        """
        return await self._hub.cluster.calls.call(self._record, function, args)


class Context:
    """What a handler or hook receives as its first argument."""

    def __init__(self, hub: Hub, peer: Peer) -> None:
        self._hub = hub
        self.client = Client(hub, peer)
        self.everyone = Audience(hub)
        self.others = Audience(hub, without=peer.client_id)

    @property
    def client_id(self) -> str:
        return self.client.client_id

    @property
    def user(self) -> str | None:
        return self.client.user

    @property
    def roles(self) -> frozenset[str]:
        return self.client.roles

    def group(self, name: str, *, include_self: bool = True) -> Audience:
        return Audience(self._hub, name, None if include_self else self.client_id)

    async def find(self, client_id: str) -> Client | RemoteClient | None:
        """A connected client by id, on this node or (with a cluster) any other; else None."""
        peer = self._hub.registry.get(client_id)
        if peer is not None:
            return Client(self._hub, peer)
        record = await self._hub.cluster.presence.record(client_id)
        return RemoteClient(self._hub, record) if record is not None else None

    def lock(self, name: str, seconds: float) -> Lease:
        """The lease `name`, on behalf of the caller (cluster-wide with a cluster).

        `await lease.acquire()` takes (or renews) it for `seconds`, `await lease.release()`
        gives it up, `await lease.holder()` says who holds it; see `nowgate.locks`.
        """
        return Lease(self._hub.cluster.locks, name, self.client_id, seconds)

    def group_names(self) -> list[str]:
        """The groups with members on this node."""
        return self._hub.registry.group_names()
