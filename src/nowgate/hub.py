"""The gateway's shared state and the operations handlers reach clients with.

One Hub per process: the connected peers and their groups, the shared variables, the token
signer and the rate limiter (and the node's open connections, which `nowgate.supervision`
watches). Outbound messages are encoded once and queued to each
receiver's bounded outbox; nothing here waits on a socket. `hub.cluster` is the node's place
in a cluster (`nowgate.cluster`: presence, shared variables held in Redis, calls to clients
of other nodes, leases); without a Redis URL each of those is in-process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import limits

from .backplane import backplane_for
from .cluster import Cluster
from .errors import ClientCallError
from .fanout import Flusher, encode, fan_out
from .history import MemoryHistory, with_seq
from .identity import IdentitySigner
from .naming import check_variable_name
from .policy import ClientFunction, Policy
from .ratelimit import RateLimiter
from .registry import Peer, Registry
from .settings import Settings
from .shared_history import SharedHistory
from .supervision import Connections
from .variables import CLIENT, EVERYONE, GROUP_PREFIX, VariableStore

log = logging.getLogger("nowgate.hub")


def notification(method: str, params: Any) -> str:
    return encode({"jsonrpc": "2.0", "method": method, "params": params})


class Hub:
    def __init__(self, settings: Settings, policy: Policy) -> None:
        self.settings = settings
        self.policy = policy
        self.registry = Registry()
        self.variables = VariableStore()
        self.signer = IdentitySigner(settings.signing_keys(), settings.token_max_age)
        self.limiter = RateLimiter.for_settings(settings)
        self.connection_rate = limits.parse(settings.connection_rate)
        self.connect_rate = limits.parse(settings.connect_rate_per_address)
        # Supervised here, not by the hub: expiry sweep and shutdown drain (nowgate.supervision).
        self.connections = Connections(settings)
        self.backplane = backplane_for(settings)
        # Every delivery below is numbered here first, in the same synchronous step.
        self.history = MemoryHistory(
            settings.history_size, settings.history_max_bytes, settings.history_seconds
        )
        # With a backplane, each node's history is copied to Redis so a client can resume
        # on another node (nowgate.shared_history).
        self.shared_history: SharedHistory | None = None
        if settings.redis_url and settings.history_size:
            self.shared_history = SharedHistory(
                settings.redis_url, self.history.epoch, settings.history_size,
                settings.history_seconds,
            )
            self.history.mirror = self.shared_history.push
        self.flusher = Flusher()
        # Presence, shared variables in Redis, calls to other nodes' clients, leases.
        self.cluster = Cluster(self, settings.redis_url)

    def client_function(self, function: str) -> ClientFunction:
        declared = self.policy.client_functions.get(function)
        if declared is None:
            raise ValueError(f"{function!r} is not a client function of the policy")
        return declared

    def broadcast(
        self, function: str, args: tuple[Any, ...], group: str | None, without: str | None
    ) -> int:
        """Call a client function on everyone (or a group), minus one client, cluster-wide.

        Encoded once; returns how many clients of this node it was queued to.
        """
        self.client_function(function)
        return self._share(notification(function, list(args)), group, without)

    def notify(self, peer: Peer, function: str, args: tuple[Any, ...]) -> bool:
        """Call a client function on one client of this node, without awaiting an answer."""
        self.client_function(function)
        return self._send_to(peer, notification(function, list(args)))

    def _send_to(self, peer: Peer, text: str) -> bool:
        """A recorded message to one client; False when it could not be queued now.

        False while the client's connection is closing: a client that opted in to recovery
        may still get it on resume (it is in the history), so a handler that retries on
        False can make it arrive twice; across nodes the replay may not hold it.
        """
        seq = self.history.record(text, client=peer.client_id)
        return peer.outbox.put(with_seq(text, seq) if peer.outbox.positions else text)

    def receive_for_client(self, client_id: str, text: str) -> None:
        """A message another node's handler sent to a client of this node: recorded as one
        sent here, so a resume (here or on another node) replays it; kept for the client's
        resume even when it left a moment ago (the sender's presence was not yet stale)."""
        peer = self.registry.get(client_id)
        if peer is not None:
            self._send_to(peer, text)
        else:
            self.history.record(text, client=client_id)

    def _share(self, frame: str, group: str | None, without: str | None) -> int:
        """Number, publish to the other nodes (with that number) and deliver here."""
        shared = self.shared_history is not None
        seq = self.history.record(frame, group, without=without, shared=shared)
        envelope: dict[str, Any] = {"frame": frame, "group": group, "without": without,
                                    "origin": [self.history.epoch, seq]}
        self.backplane.publish(envelope)
        return fan_out(
            frame, (peer.outbox for peer in self.registry.audience(group, without)), seq
        )

    def _deliver_here(self, frame: str, group: str | None, without: str | None) -> int:
        """A shared-variable change for this node's clients: numbered in this node's history
        and delivered, not published (variables cross nodes through `nowgate.shared_state`,
        which delivers them on every node in Redis's order)."""
        seq = self.history.record(frame, group, without=without)
        return fan_out(
            frame, (peer.outbox for peer in self.registry.audience(group, without)), seq
        )

    def receive_remote(self, envelope: dict[str, Any]) -> None:
        """A broadcast published by another node (shared variables: `nowgate.shared_state`)."""
        group, without, frame = envelope.get("group"), envelope.get("without"), envelope["frame"]
        seq = self.history.record(
            frame, group, without=without, shared=True, origin=_origin(envelope.get("origin"))
        )
        if group is not None and not self.registry.has_group(group):
            # No member here: nothing to deliver (a member cut off from this node that
            # resumes here finds it in the history).
            return
        fan_out(frame, (peer.outbox for peer in self.registry.audience(group, without)), seq)

    async def call(self, peer: Peer, function: str, args: tuple[Any, ...]) -> Any:
        """Call a client function on one peer and await its validated answer."""
        declared = self.client_function(function)
        call_id, answer = peer.pending.open(declared.result)
        frame = encode({"jsonrpc": "2.0", "id": call_id, "method": function, "params": list(args)})
        if not peer.outbox.put(frame):
            peer.pending.forget(call_id)
            raise ClientCallError("the client is disconnecting")
        timeout = declared.timeout or self.settings.call_timeout
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise ClientCallError(f"no answer from the client within {timeout:g} s") from None
        finally:
            peer.pending.forget(call_id)

    # Variables ------------------------------------------------------------------------

    def set_variable(
        self,
        scope: str,
        path: str,
        value: Any,
        client_id: str | None = None,
        without: str | None = None,
    ) -> None:
        """Store one value for the scope and send `now.set` to its members but `without`.

        `without` only skips a delivery (the writer already holds the value it wrote): the
        stored value is the scope's one value, which every later welcome shows.
        """
        check_variable_name(path)
        # Encode first: a value that cannot be sent must not be stored either.
        frame = notification("now.set", {"scope": scope, "path": path, "value": value})
        self.variables.scope(scope, client_id)[path] = value
        change = {"scope": scope, "path": path, "value": value}
        self._sync(scope, client_id, frame, change, without)

    def delete_variable(
        self, scope: str, path: str, client_id: str | None = None, without: str | None = None
    ) -> None:
        check_variable_name(path)
        if self.variables.scope(scope, client_id).pop(path, _MISSING) is _MISSING:
            return
        frame = notification("now.del", {"scope": scope, "path": path})
        change = {"scope": scope, "path": path, "deleted": True}
        self._sync(scope, client_id, frame, change, without)

    def _sync(
        self,
        scope: str,
        client_id: str | None,
        frame: str,
        change: dict[str, Any],
        without: str | None,
    ) -> None:
        if scope == CLIENT:
            peer = self.registry.get(client_id) if client_id else None
            if peer is not None:
                self._send_to(peer, frame)
            return
        group = None if scope == EVERYONE else scope[len(GROUP_PREFIX) :]
        self._deliver_here(frame, group, without)
        self.cluster.state.wrote(scope, change["path"], change.get("value"),
                                 bool(change.get("deleted")), without)

    def apply_shared_variable(
        self, scope: str, path: str, value: Any, deleted: bool, without: str | None
    ) -> None:
        """A shared variable's value changed on another node (or in Redis): store, deliver."""
        store = self.variables.scope(scope)
        if deleted:
            store.pop(path, None)
            frame = notification("now.del", {"scope": scope, "path": path})
        else:
            store[path] = value
            frame = notification("now.set", {"scope": scope, "path": path, "value": value})
        group = None if scope == EVERYONE else scope[len(GROUP_PREFIX) :]
        self._deliver_here(frame, group, without)
        if group is not None and not store and not self.registry.has_group(group):
            self.variables.drop_group(group)  # nothing left to cache for a group not here

    # Groups ---------------------------------------------------------------------------

    def join(self, peer: Peer, group: str) -> None:
        if self.registry.join(peer, group):
            self.history.record_membership(peer.client_id, peer.groups - {group}, peer.groups)
            self.cluster.presence.update(peer)
            self._refresh_token(peer)
            values = self.variables.snapshot(peer.client_id, {group})["groups"].get(group)
            for path, value in (values or {}).items():
                peer.outbox.put(
                    notification(
                        "now.set", {"scope": GROUP_PREFIX + group, "path": path, "value": value}
                    )
                )

    def leave(self, peer: Peer, group: str) -> None:
        if group not in peer.groups:
            return
        self.history.record_membership(peer.client_id, peer.groups, peer.groups - {group})
        scope = GROUP_PREFIX + group
        # The leaver's copy of the group's variables goes too, so it holds nothing stale.
        for path in self.variables.scope(scope):
            peer.outbox.put(notification("now.del", {"scope": scope, "path": path}))
        if self.registry.leave(peer, group):
            self._drop_group(group)
        self.cluster.presence.update(peer, left_group=group)
        self._refresh_token(peer)

    def remove(self, peer: Peer) -> None:
        self.cluster.presence.remove(peer)
        for group in self.registry.remove(peer):
            self._drop_group(group)
        # Recorded, not sent (no one holds them now): a client that resumes and is replayed
        # an earlier now.set of these ends up holding what the server holds.
        for path in self.variables.scope(CLIENT, peer.client_id):
            self.history.record(
                notification("now.del", {"scope": CLIENT, "path": path}), client=peer.client_id
            )
        self.variables.drop_client(peer.client_id)

    def _drop_group(self, group: str) -> None:
        """The group's last member here left: its variables go (recorded as deletions too).

        In a cluster the group may have members elsewhere: its variables then expire in Redis
        once no node renews them, and leave this cache with them (nowgate.shared_state).
        """
        if self.cluster.state.keeps_group(group):
            return
        scope = GROUP_PREFIX + group
        for path in self.variables.scope(scope):
            self.history.record(notification("now.del", {"scope": scope, "path": path}), group)
        self.variables.drop_group(group)

    def issue_token(self, peer: Peer) -> str:
        peer.token_expires_at = time.time() + self.settings.token_max_age
        return self.signer.issue(peer.client_id, peer.user, peer.groups)

    def _refresh_token(self, peer: Peer) -> None:
        # The token carries the groups, so a resumed identity gets them back; group-gated
        # functions may have come or gone with them.
        functions = self.policy.callable_names(peer.roles, peer.groups)
        peer.outbox.put(
            notification("now.token", {"token": self.issue_token(peer), "functions": functions})
        )


_MISSING = object()


def _origin(value: object) -> tuple[str, int] | None:
    """An envelope's `origin`, [node epoch, number there]: the event's cluster-wide name."""
    if isinstance(value, list) and len(value) == 2:
        epoch, number = value
        if isinstance(epoch, str) and isinstance(number, int):
            return epoch, number
    return None
