"""One connection's state machine: HELLO -> OPEN -> CLOSED.

The session owns what is per connection: the hello (authentication, identity, welcome), the
connection-wide rate, the violation budget, and the order of calls. What one call does
(authorize, size, rate, validate, invoke) is `nowgate.dispatch`. It never touches the socket:
its output is the connection's `Outbox`; the endpoint feeds it frames and drains the outbox.
Calls are executed one at a time, in arrival order, by `work()`, while `receive()` keeps
reading, so a handler that awaits this client's answer to a server->client call is answered.

Every error reply counts towards a violation budget (honest clients never trip it); past the
budget the connection is closed with 1008.

A resume (a token proving this user's identity) whose identity is still connected probes
that connection: a live one (a duplicated tab) answers its ping and the newcomer gets a
fresh identity; a silent one (half-open: the client's network changed) is closed with 4000
and the newcomer resumes. A client that opted in to recovery (`recover` in the hello) is
replayed what it missed (`nowgate.history`) right after its welcome.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .auth import ANONYMOUS, Handshake, Principal
from .decode import Limits, Request, Response, decode
from .dispatch import dispatch
from .errors import (
    CloseConnection,
    Forbidden,
    InternalError,
    InvalidParams,
    MethodNotFound,
    NormalClosure,
    PolicyViolation,
    RateLimited,
    RpcError,
    Superseded,
)
from .fanout import Outbox, encode
from .history import Foreign, Replay
from .hub import Hub
from .identity import Claims, new_client_id
from .logs import audit
from .metrics import METRICS
from .naming import HELLO
from .pending import PendingCalls
from .registry import Peer
from .scope import Context
from .validation import cut_errors

log = logging.getLogger("nowgate.session")

INBOX_LIMIT = 64
# How long a resume from another node waits for this node to have received (through the
# backplane) the broadcasts that node recorded; past it, one may arrive twice.
CATCH_UP_SECONDS = 1.0
_CONNECT = object()  # queued before any call so the connect hook runs first


class State(enum.Enum):
    HELLO = "hello"
    OPEN = "open"
    CLOSED = "closed"


class RecoverFrom(BaseModel):
    """The last recorded message a client processed: the welcome's epoch, a message's seq."""

    model_config = ConfigDict(strict=True, extra="forbid")
    epoch: str = Field(max_length=64)
    seq: int = Field(ge=0)


class HelloParams(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    protocol: Literal[1]
    # Any string: one that cannot be verified (too long included) means a fresh identity.
    token: str | None = None
    auth: str | None = Field(None, max_length=8192)
    # true: opt in to recovery (numbered messages) with nothing to recover yet.
    recover: Literal[True] | RecoverFrom | None = None


class Session:
    def __init__(
        self,
        hub: Hub,
        handshake: Handshake,
        outbox: Outbox,
        clock: Callable[[], float] = time.monotonic,
        own_worker: bool = False,
        probe: Callable[[float], Awaitable[bool]] | None = None,
    ) -> None:
        self.hub = hub
        self.handshake = handshake
        self.outbox = outbox
        self.connection_id = "k-" + secrets.token_hex(6)
        self.state = State.HELLO
        self.peer: Peer | None = None
        self.context: Context | None = None
        settings = hub.settings
        self._limits = Limits(settings.max_json_depth, settings.max_collection_items)
        self._clock = clock
        # Both made at first use: most connections never err and never call.
        self._violations: deque[float] | None = None
        self._inbox: asyncio.Queue[tuple[Request, int] | object] | None = None
        # With own_worker the session starts `work()` itself at its first call: most
        # connections only listen, and an idle task per connection is memory for nothing.
        self._own_worker = own_worker
        self._worker: asyncio.Task[None] | None = None
        self._executing = False
        self.draining = False
        self.last_frame_at = clock()
        # Pings the client and says whether it answered in time (None: cannot tell).
        self._probe = probe

    # Output -----------------------------------------------------------------------------

    def _send_result(self, request_id: int | str, result: Any) -> None:
        try:
            frame = encode({"jsonrpc": "2.0", "id": request_id, "result": result})
        except TypeError:
            log.error("a result could not be encoded as JSON")
            frame = encode(
                {"jsonrpc": "2.0", "id": request_id, "error": InternalError().to_error()}
            )
        self.outbox.put(frame)

    def _send_error(self, request_id: int | str | None, error: RpcError) -> None:
        self.outbox.put(encode({"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}))

    def close(self, error: CloseConnection) -> None:
        self.state = State.CLOSED
        self.outbox.close(error)

    def _violation(self) -> None:
        now = self._clock()
        window = self.hub.settings.violation_window
        if self._violations is None:
            self._violations = deque()
        self._violations.append(now)
        while self._violations[0] <= now - window:
            self._violations.popleft()
        if len(self._violations) >= self.hub.settings.violation_limit:
            self._audit("violation_close")
            self.close(PolicyViolation("Too many protocol violations"))

    def _audit(self, event: str, **fields: Any) -> None:
        audit(
            event,
            connection_id=self.connection_id,
            client_id=self.peer.client_id if self.peer else None,
            address=self.handshake.address,
            **fields,
        )

    def _reject(
        self, error: RpcError, request_id: int | str | None, answer: bool, function: str = ""
    ) -> None:
        if answer:
            self._send_error(request_id, error)
        event = _AUDITED.get(type(error))
        if event is not None:
            self._audit(event, function=function or None, code=error.code)
            if isinstance(error, InvalidParams) and function:
                METRICS.validation_failures.labels(function).inc()
        if error.is_violation:
            self._violation()

    # HELLO ------------------------------------------------------------------------------

    async def hello(self, text: str) -> None:
        """Handle the first frame: it must be a now.hello request, else close with 1008."""
        try:
            message = decode(text, self._limits)
        except RpcError as error:
            self._send_error(error.request_id, error)
            self.close(PolicyViolation("The first message must be now.hello"))
            return
        if not (
            isinstance(message, Request) and message.method == HELLO and message.id is not None
        ):
            self.close(PolicyViolation("The first message must be a now.hello request"))
            return
        try:
            params = HelloParams.model_validate(message.params)
        except ValidationError as error:
            self._send_error(message.id, InvalidParams(data=cut_errors(error)))
            self.close(PolicyViolation("Invalid now.hello"))
            return
        principal = await self._authenticate(message.id, params.auth)
        if principal is None:
            return
        claims = self._claims(params.token, principal)
        if (
            claims is not None
            and claims.client_id in self.hub.registry
            and not await self._take_over(claims.client_id)
        ):
            claims = None  # a duplicated tab, or a race lost: a fresh identity
        if claims is not None and not await self.hub.cluster.presence.claim(
            claims.client_id, principal.user
        ):
            claims = None  # connected on another node of the cluster: a fresh identity too
        foreign = None
        if claims is not None and isinstance(params.recover, RecoverFrom):
            foreign = await self._read_foreign(params.recover)
        self._open(message.id, claims, principal, params.recover, foreign)

    async def _authenticate(self, request_id: int | str, auth: str | None) -> Principal | None:
        hook = self.hub.policy.authenticate
        if hook is None:
            return ANONYMOUS
        try:
            principal = await hook(auth, self.handshake)
        except Exception:
            log.exception("the authentication hook failed")
            self._send_error(request_id, InternalError())
            self.close(CloseConnection())
            return None
        if not isinstance(principal, Principal):
            self._audit("auth_refused")
            self._send_error(request_id, Forbidden("Authentication refused"))
            self.close(PolicyViolation("Authentication refused"))
            return None
        return principal

    def _claims(self, token: str | None, principal: Principal) -> Claims | None:
        """The identity the token proves for this user, or None."""
        claims = self.hub.signer.verify(token)
        if token is not None and claims is None:
            self._audit("bad_token")  # forged, altered, expired or signed by a retired key
        if claims is None or claims.user != principal.user:
            return None
        return claims

    async def _take_over(self, client_id: str) -> bool:
        """Replace the connection holding `client_id` if it no longer answers (half-open).

        True when the identity is free for this session afterwards.
        """
        hub = self.hub
        holder = next(
            (c for c in hub.connections
             if isinstance(c, Session) and c.peer is not None and c.peer.client_id == client_id),
            None,
        )
        if holder is None or holder._probe is None:
            return client_id not in hub.registry
        peer = holder.peer
        if await holder._probe(hub.settings.resume_probe_timeout):
            return False  # alive and answering: a duplicated tab never takes it over
        if holder.peer is not peer or client_id not in hub.registry:
            return client_id not in hub.registry  # it ended meanwhile, or another took it
        holder._audit("connection_replaced")
        holder.close(Superseded())
        await holder.finish()
        return client_id not in hub.registry

    async def _read_foreign(self, recover: RecoverFrom) -> Foreign | None:
        """The history of the node the client was on, if another one (cluster only).

        Waits (a little) until this node has received every broadcast that node recorded
        after the client's position: those are replayed, so they must not also arrive live
        after the welcome.
        """
        hub = self.hub
        if hub.shared_history is None or recover.epoch == hub.history.epoch:
            return None
        foreign = await hub.shared_history.fetch(recover.epoch)
        if foreign is None:
            return None
        marks = foreign.published_after(recover.seq)
        deadline = self._clock() + CATCH_UP_SECONDS
        while not hub.history.has_received(marks) and self._clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return foreign

    def _open(
        self,
        request_id: int | str,
        claims: Claims | None,
        principal: Principal,
        recover: Literal[True] | RecoverFrom | None,
        foreign: Foreign | None = None,
    ) -> None:
        hub = self.hub
        resumed = claims is not None and claims.client_id not in hub.registry
        client_id = claims.client_id if claims is not None and resumed else new_client_id()
        peer = Peer(
            client_id=client_id,
            connection_id=self.connection_id,
            user=principal.user,
            roles=principal.roles,
            address=self.handshake.address,
            outbox=self.outbox,
            pending=PendingCalls(hub.settings.max_pending_calls),
            credential_expires_at=(
                principal.expires_at if principal.expires_at is not None else float("inf")
            ),
        )
        self.outbox.positions = recover is not None
        hub.registry.add(peer)
        if claims is not None and resumed:
            for group in claims.groups:
                hub.registry.join(peer, group)
        hub.cluster.presence.update(peer)
        self.peer = peer
        self.context = Context(hub, peer)
        self.state = State.OPEN
        hub.connections.add(self)
        METRICS.connections.inc()
        policy = hub.policy
        welcome = {
            "client_id": client_id,
            "token": hub.issue_token(peer),
            "resumed": resumed,
            "functions": policy.callable_names(peer.roles, peer.groups),
            "client_functions": sorted(policy.client_functions),
            "vars": hub.variables.snapshot(client_id, peer.groups),
            "user": peer.user,
            "roles": sorted(peer.roles),
        }
        # From here to the last replayed message nothing awaits: no broadcast can come
        # between the welcome, the replay and what follows (nowgate.history).
        replay = None if recover is None else self._replay(recover, resumed, peer, foreign)
        if replay is not None:
            welcome["recovered"] = replay.recovered
            welcome["recovery"] = {
                "epoch": hub.history.epoch,
                "seq": hub.history.last_seq,
                "replayed": len(replay.messages),
                "reason": replay.reason,
            }
        self._send_result(request_id, welcome)
        for message in replay.messages if replay is not None else ():
            self.outbox.put(message)
        if policy.on_connect is not None:
            self._enqueue(_CONNECT)

    def _replay(
        self,
        recover: Literal[True] | RecoverFrom,
        resumed: bool,
        peer: Peer,
        foreign: Foreign | None,
    ) -> Replay:
        if recover is True:
            return Replay(False, [], "no_position")
        if not resumed:
            # The position proves nothing: only a resumed identity gets its own messages.
            return Replay(False, [], "not_resumed")
        # At most half the send queue: the rest is for what comes next.
        limit = self.hub.settings.send_queue_limit // 2
        groups = frozenset(peer.groups)
        if foreign is not None:
            return self.hub.history.replay_from(foreign, recover.seq, peer.client_id, groups, limit)
        return self.hub.history.replay(recover.epoch, recover.seq, peer.client_id, groups, limit)

    # OPEN -------------------------------------------------------------------------------

    async def receive(self, text: str) -> None:
        """Handle one frame after the hello: answers, or calls queued for `work()`."""
        if self.state is not State.OPEN:
            return
        self.last_frame_at = self._clock()
        try:
            message = decode(text, self._limits)
        except RpcError as error:
            self._reject(
                error,
                error.request_id,
                answer=not isinstance(error, MethodNotFound) or error.request_id is not None,
            )
            return
        if isinstance(message, Response):
            assert self.peer is not None
            if not self.peer.pending.resolve(message):
                self._audit("unknown_answer")
                self._violation()
            return
        if self.draining:
            # The gateway is shutting down: no new calls; the client retries after the 1001.
            if not message.is_notification:
                self._send_error(message.id, RateLimited(1.0, reason="draining"))
            return
        retry_after = await self.hub.limiter.retry_after(
            self.hub.connection_rate, "connection", self.connection_id
        )
        if retry_after is not None:
            METRICS.rate_limited.labels("connection").inc()
            self._reject(RateLimited(retry_after), message.id, not message.is_notification)
            return
        # Limits are in bytes; only non-ASCII text needs encoding to count them.
        size = len(text) if text.isascii() else len(text.encode())
        inbox = self._queue()
        if inbox.full():
            # Backpressure, not loss: this client is not read again until its calls drain
            # (TCP then slows it down). Only this connection waits; a handler awaiting this
            # client's own answer meanwhile waits at most its call timeout.
            await inbox.put((message, size))
        else:
            self._enqueue((message, size))

    def _enqueue(self, item: tuple[Request, int] | object) -> None:
        self._queue().put_nowait(item)
        if self._own_worker and self._worker is None:
            self._worker = asyncio.create_task(self.work())

    async def work(self) -> None:
        """Execute queued calls in order, until cancelled."""
        inbox = self._queue()
        while True:
            item = await inbox.get()
            if item is _CONNECT:
                await self._run_hook(self.hub.policy.on_connect)
                continue
            assert isinstance(item, tuple)
            request, size = item
            self._executing = True
            try:
                await self._execute(request, size)
            finally:
                self._executing = False

    @property
    def idle(self) -> bool:
        """No call running or queued (what a graceful shutdown waits for)."""
        return not self._executing and (self._inbox is None or self._inbox.empty())

    def _queue(self) -> asyncio.Queue[tuple[Request, int] | object]:
        if self._inbox is None:
            self._inbox = asyncio.Queue(INBOX_LIMIT)
        return self._inbox

    async def _execute(self, request: Request, size: int) -> None:
        assert self.peer is not None and self.context is not None
        answer = not request.is_notification
        try:
            result = await dispatch(self.hub, self.peer, self.context, request, size)
        except RpcError as error:
            known = request.method in self.hub.policy.functions
            self._reject(error, request.id, answer, request.method if known else "")
            return
        except Exception:
            # A validator or a rate-limit backend failed: the call fails, the session lives.
            log.exception("call to %s failed before its handler ran", request.method)
            self._reject(InternalError(), request.id, answer)
            return
        if answer:
            assert request.id is not None
            self._send_result(request.id, result)

    async def _run_hook(self, hook: Callable[..., Any] | None) -> None:
        if hook is None or self.context is None:
            return
        try:
            await hook(self.context)
        except Exception:
            log.exception("a connect/disconnect hook failed")

    # CLOSED -----------------------------------------------------------------------------

    async def finish(self) -> None:
        """Clean up after the connection ended, whichever side ended it."""
        self.state = State.CLOSED
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        peer = self.peer
        if peer is None:
            return
        self.peer = None
        self.hub.connections.discard(self)
        METRICS.connections.dec()
        peer.pending.fail_all("the client disconnected")
        if not self.outbox.closing:
            self.outbox.close(NormalClosure())
        # The hook still sees the client's groups and variables; nothing more reaches it.
        await self._run_hook(self.hub.policy.on_disconnect)
        self.hub.remove(peer)


# Errors that are security events, by the audit event name they are recorded under.
_AUDITED: dict[type[RpcError], str] = {
    MethodNotFound: "unknown_call",
    Forbidden: "denied_call",
    InvalidParams: "validation_failure",
    RateLimited: "rate_limited",
}
