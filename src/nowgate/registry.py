"""Who is connected, and which groups exist.

A group exists while it has members: it is created by the first join and removed when its
last member leaves or disconnects, so rooms never pile up (a flaw of the NowJS original).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .fanout import Outbox
from .naming import check_group_name

if TYPE_CHECKING:
    from .pending import PendingCalls



@dataclass(eq=False)
class Peer:
    """The server's view of one connected client."""

    client_id: str
    connection_id: str
    user: str | None
    roles: frozenset[str]
    address: str
    outbox: Outbox
    pending: PendingCalls
    # Unix times after which the connection has outlived its newest token, or the
    # application's credential.
    token_expires_at: float = float("inf")
    credential_expires_at: float = float("inf")
    groups: set[str] = field(default_factory=set)

    @property
    def expires_at(self) -> float:
        return min(self.token_expires_at, self.credential_expires_at)


class Registry:
    def __init__(self) -> None:
        self._peers: dict[str, Peer] = {}
        self._groups: dict[str, dict[str, Peer]] = {}

    def add(self, peer: Peer) -> bool:
        """Register a peer; False if its client id is already connected."""
        if peer.client_id in self._peers:
            return False
        self._peers[peer.client_id] = peer
        return True

    def remove(self, peer: Peer) -> list[str]:
        """Unregister a peer; returns the groups that its leaving emptied (now removed)."""
        if self._peers.get(peer.client_id) is not peer:
            return []
        del self._peers[peer.client_id]
        return [group for group in list(peer.groups) if self.leave(peer, group)]

    def get(self, client_id: str) -> Peer | None:
        return self._peers.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    def peers(self) -> Iterator[Peer]:
        return iter(self._peers.values())

    def audience(self, group: str | None, without: str | None) -> Iterator[Peer]:
        """Everyone (or a group's members) but one client: whom a broadcast reaches."""
        peers = self._peers if group is None else self._groups.get(group, {})
        return (peer for client_id, peer in peers.items() if client_id != without)

    def join(self, peer: Peer, group: str) -> bool:
        """Add a peer to a group, creating it; False if it was already a member."""
        check_group_name(group)
        members = self._groups.setdefault(group, {})
        if peer.client_id in members:
            return False
        members[peer.client_id] = peer
        peer.groups.add(group)
        return True

    def leave(self, peer: Peer, group: str) -> bool:
        """Remove a peer from a group; True if that emptied (and so removed) the group."""
        peer.groups.discard(group)
        members = self._groups.get(group)
        if members is None or members.pop(peer.client_id, None) is None:
            return False
        if not members:
            del self._groups[group]
            return True
        return False

    def members(self, group: str) -> Iterator[Peer]:
        return iter(self._groups.get(group, {}).values())

    def group_names(self) -> list[str]:
        return sorted(self._groups)

    def has_group(self, group: str) -> bool:
        return group in self._groups
