"""Reaching one client of another node: `ctx.find()`, `call()` and `notify()` across nodes.

Each node listens on its own channel, `nowgate:v1:node:<node id>`. A call to a client of
node B is published there as `{"kind": "call", "id", "from", "client", "function", "args"}`;
B makes the call to its client exactly as a local call (the client's own pending-call bound,
the function's timeout, the answer validated against the client function's type) and
publishes the outcome on the caller's channel. The caller validates the answer once more
(so a handler gets the same typed value as from a local client), waits at most the
function's timeout plus `TRANSIT_SECONDS`, and bounds how many such calls wait on it
(`cluster_max_remote_calls`).

A client whose node is gone answers as disconnected at once: PUBLISH returns how many
subscribers received the message, and a dead node has none (its connection to Redis went
with it). Presence says a client is gone within 2 x the heartbeat interval; until then
`ctx.find()` may still return it, and a call then fails at once as above.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .errors import ClientCallError
from .fanout import encode
from .metrics import METRICS
from .presence import NODE_CHANNELS, PresenceRecord
from .validation import validate_result

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("nowgate.cluster_calls")

TRANSIT_SECONDS = 1.0
DISCONNECTED = "the client disconnected"


def node_channel(node: str) -> str:
    return NODE_CHANNELS + node


class RemoteCalls:
    def __init__(self, hub: Hub, redis: Redis | None, node: str, limit: int) -> None:
        self._hub = hub
        self._redis = redis
        self._node = node
        self._limit = limit
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._serving: set[asyncio.Task[None]] = set()

    # Caller's side ------------------------------------------------------------------------

    async def call(self, record: PresenceRecord, function: str, args: tuple[Any, ...]) -> Any:
        declared = self._hub.client_function(function)
        if self._redis is None:
            raise ClientCallError(DISCONNECTED)
        if len(self._waiting) >= self._limit:
            raise ClientCallError("too many calls awaiting answers from other nodes")
        call_id = secrets.token_urlsafe(16)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        timeout = declared.timeout or self._hub.settings.call_timeout
        try:
            request = {"kind": "call", "id": call_id, "from": self._node,
                       "client": record.client_id, "function": function, "args": list(args)}
            if not await self._publish(record.node, encode(request)):
                raise ClientCallError(DISCONNECTED)
            try:
                raw = await asyncio.wait_for(future, timeout + TRANSIT_SECONDS)
            except TimeoutError:
                raise ClientCallError(
                    f"no answer from the client within {timeout:g} s") from None
        finally:
            self._waiting.pop(call_id, None)
        try:
            return validate_result(declared.result, raw)
        except Exception:
            raise ClientCallError("the client's answer failed validation") from None

    def notify(self, record: PresenceRecord, function: str, args: tuple[Any, ...]) -> bool:
        """Queue a client function call without an answer; True if it was sent to the node."""
        self._hub.client_function(function)
        if self._redis is None:
            return False
        frame = encode({"jsonrpc": "2.0", "method": function, "params": list(args)})
        message = encode({"kind": "notify", "client": record.client_id, "frame": frame})
        task = asyncio.create_task(self._forward(record.node, message))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        return True

    async def _forward(self, node: str, message: str) -> None:
        try:
            await self._publish(node, message)
        except ClientCallError:
            log.warning("cluster: a notification to another node's client was lost")

    async def _publish(self, node: str, message: str) -> bool:
        assert self._redis is not None
        try:
            receivers = await self._redis.publish(node_channel(node), message)
        except RedisError:
            METRICS.cluster_redis_errors.labels("calls").inc()
            raise ClientCallError("the cluster is unreachable") from None
        return bool(receivers)

    # Node of the client -----------------------------------------------------------------

    def receive(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "answer":
            future = self._waiting.get(str(message["id"]))
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(ClientCallError(str(message["error"])))
                else:
                    future.set_result(message.get("result"))
        elif kind == "notify":
            frame = message["frame"]
            if isinstance(frame, str):
                self._hub.receive_for_client(str(message["client"]), frame)
        elif kind == "call":
            task = asyncio.create_task(self._serve(message))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        else:
            raise ValueError("unknown message kind")

    async def _serve(self, message: dict[str, Any]) -> None:
        answer: dict[str, Any] = {"kind": "answer", "id": str(message["id"])}
        peer = self._hub.registry.get(str(message["client"]))
        function = str(message["function"])
        args = message["args"]
        try:
            if peer is None or not isinstance(args, list):
                raise ClientCallError(DISCONNECTED)
            result = await self._hub.call(peer, function, tuple(args))
            declared = self._hub.client_function(function)
            answer["result"] = declared.result.dump_python(result, mode="json")
        except (ClientCallError, ValueError) as error:
            answer["error"] = str(error)
        except Exception:
            log.exception("cluster: a call for another node failed")
            answer["error"] = "the call failed on the client's node"
        try:
            await self._publish(str(message["from"]), encode(answer))
        except ClientCallError:
            log.warning("cluster: an answer to another node's call could not be sent")

    async def stop(self) -> None:
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ClientCallError("the gateway is shutting down"))
