"""The call pipeline: one client request -> the handler's result, or a typed RpcError.

    authorize -> size (max_bytes) -> rate -> validate -> invoke

`dispatch()` is all of it, in that order: a call that fails a step never reaches the next,
so an unauthorized caller learns nothing of the arguments' shape and a flood is refused
before any validation work. `now.set` (a client writing a variable the policy opted in)
goes through its own checks, in the same order. The session decides what an error costs the
connection; this module only decides the answer.

A handler's exception is logged with its traceback on the server and answered with a bare
-32603: the peer never sees exception text, a path or a stack.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .decode import Params, Request
from .errors import (
    Forbidden,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    RateLimited,
    RpcError,
)
from .metrics import METRICS
from .naming import CLIENT_SET, HELLO
from .policy import ServerFunction
from .registry import Peer
from .scope import Context
from .validation import cut_errors, validate_result
from .variables import CLIENT, EVERYONE, GROUP_PREFIX

if TYPE_CHECKING:
    from .hub import Hub

log = logging.getLogger("nowgate.dispatch")


class ClientWrite(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    scope: str = Field(max_length=80)
    path: str = Field(max_length=64)
    value: Any


async def dispatch(hub: Hub, peer: Peer, context: Context, request: Request, size: int) -> Any:
    """Run one call from `peer` (its frame was `size` bytes); raise RpcError to refuse it."""
    method = request.method
    if method == HELLO:
        raise InvalidRequest("now.hello was already answered")
    if method == CLIENT_SET:
        return await client_write(hub, peer, request.params)
    function = hub.policy.functions.get(method)
    if function is None:
        raise MethodNotFound()
    if not function.rule.allows(peer.roles, peer.groups):
        raise Forbidden()
    if size > function.rule.max_bytes:
        raise InvalidParams(
            "Arguments too large",
            [{"loc": [], "msg": "Arguments too large", "type": "too_large"}],
        )
    if function.rate is not None:
        retry_after = await hub.limiter.retry_after(
            function.rate, "function", method, peer.user or peer.client_id
        )
        if retry_after is not None:
            METRICS.rate_limited.labels("function").inc()
            raise RateLimited(retry_after)
    METRICS.messages_in.labels(method).inc()
    arguments = function.arguments.validate(request.params)
    started = time.perf_counter()
    try:
        return await invoke(function, context, arguments)
    finally:
        METRICS.handler_seconds.labels(method).observe(time.perf_counter() - started)


async def client_write(hub: Hub, peer: Peer, params: Params) -> bool:
    """`now.set` from a client: a variable the policy opted in (clientWrite is off by default)."""
    try:
        write = ClientWrite.model_validate(params)
    except ValidationError as error:
        raise InvalidParams(data=cut_errors(error)) from None
    variable = hub.policy.variables.get(write.path)
    if variable is None:
        raise Forbidden("This variable is not client-writable")
    if variable.scope == "client":
        allowed = write.scope == CLIENT
    elif variable.scope == "everyone":
        allowed = write.scope == EVERYONE
    else:
        group = write.scope.removeprefix(GROUP_PREFIX)
        allowed = write.scope.startswith(GROUP_PREFIX) and group in peer.groups
    if not allowed:
        raise Forbidden("This variable is not client-writable in that scope")
    if variable.rate is not None:
        retry_after = await hub.limiter.retry_after(
            variable.rate, "variable", write.path, peer.client_id
        )
        if retry_after is not None:
            METRICS.rate_limited.labels("variable").inc()
            raise RateLimited(retry_after)
    try:
        value = validate_result(variable.schema, write.value)
    except InvalidParams as error:
        raise InvalidParams(
            data=[{**e, "loc": ["value", *e["loc"]]} for e in error.data]
        ) from None
    hub.set_variable(write.scope, write.path, value, peer.client_id)
    return True


async def invoke(function: ServerFunction, context: object, arguments: dict[str, Any]) -> Any:
    """Run a handler; any failure that is not a deliberate RpcError becomes InternalError."""
    try:
        if function.arguments.wants_context:
            return await function.handler(context, **arguments)
        return await function.handler(**arguments)
    except RpcError:
        raise
    except Exception:
        log.exception("handler %s failed", function.name)
        raise InternalError() from None
