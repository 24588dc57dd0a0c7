"""The API handler authors use: NowJS's `everyone`, groups, `this.now` and friends.

    async def syncPosition(ctx: Context, position: Position) -> bool:
        ctx.others.notify("updatePosition", position)      # everyone but the caller
        return True

`ctx.everyone`, `ctx.others`, `ctx.group(name)` are audiences: `notify()` calls a client
function on each member without waiting (one encode, one message per receiver), `set()` and
`delete()` write a shared variable of that scope (one value per scope: an audience that
excludes the caller stores it for everyone and only skips the caller's `now.set`, since the
caller holds the value it wrote). `ctx.client` is the caller, and
`ctx.find(client_id)` any connected client: `await client.call(...)` awaits its answer.
Identities, groups and roles are only ever changed here, by server code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

    def find(self, client_id: str) -> Client | None:
        peer = self._hub.registry.get(client_id)
        return Client(self._hub, peer) if peer else None

    def group_names(self) -> list[str]:
        return self._hub.registry.group_names()
