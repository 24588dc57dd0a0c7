"""One error tree for everything a peer can get wrong, and for what nowgate raises on purpose.

    NowgateError
    ├── RpcError                 answered with a JSON-RPC error; the connection stays usable
    │   ├── ParseError           -32700  not JSON (or not strict RFC 8259 JSON)
    │   ├── InvalidRequest       -32600  not a valid JSON-RPC request
    │   ├── MethodNotFound       -32601  no such function for this client
    │   ├── InvalidParams        -32602  arguments failed validation (data: loc/msg/type list)
    │   ├── InternalError        -32603  the handler failed (nothing of it is sent)
    │   ├── Forbidden            -32003  the policy forbids this client that function
    │   └── RateLimited          -32029  too many calls (data: retry_after)
    ├── CloseConnection          1011  the connection is closed with a WebSocket close code
    │   ├── NormalClosure        1000  the client left (nothing went wrong), or sat idle
    │   ├── GoingAway            1001  the server is shutting down: reconnect with your token
    │   ├── UnsupportedData      1003  binary frame
    │   ├── PolicyViolation      1008  no hello in time, too many violations, refused hello
    │   ├── TryAgainLater        1013  overloaded, too many connections, slow reader
    │   └── Superseded           4000  a resume of this identity replaced a silent connection
    ├── ClientCallError          a server->client call failed (error answer, timeout, gone)
    └── PolicyFileError          a policy file that cannot be loaded (start-up only)

A frame over the size limit is closed with 1009 by the WebSocket layer itself (uvicorn's
`ws_max_size`), before any of this code sees it; so are the other violations of RFC 6455 and
the limits below the message layer (`nowgate.transport`), audited there.

Replies are built from an error's class attributes and its explicit `message`, never from the
text of an arbitrary exception, so nothing of a handler's failure reaches the peer.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NowgateError(Exception):
    """Base of every error nowgate raises on purpose."""


class RpcError(NowgateError):
    code: ClassVar[int] = -32603
    default_message: ClassVar[str] = "Internal error"
    # Counted towards the connection's violation budget (an honest client never sends these).
    is_violation: ClassVar[bool] = True
    # The id of the request this error answers, when one could be read from it.
    request_id: int | str | None = None

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        self.message = message or self.default_message
        self.data = data
        super().__init__(self.message)

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RpcError):
    code = -32700
    default_message = "Parse error"


class InvalidRequest(RpcError):
    code = -32600
    default_message = "Invalid request"


class MethodNotFound(RpcError):
    code = -32601
    default_message = "Method not found"


class InvalidParams(RpcError):
    code = -32602
    default_message = "Invalid params"


class InternalError(RpcError):
    code = -32603
    default_message = "Internal error"
    is_violation = False


class Forbidden(RpcError):
    code = -32003
    default_message = "Forbidden"


class RateLimited(RpcError):
    code = -32029
    default_message = "Rate limited"

    def __init__(self, retry_after: float, reason: str | None = None) -> None:
        data: dict[str, Any] = {"retry_after": round(max(retry_after, 0.0), 3)}
        if reason is not None:
            data["reason"] = reason  # an extra data field; docs/protocol.md allows additions
        super().__init__(data=data)


class CloseConnection(NowgateError):
    close_code: ClassVar[int] = 1011
    default_reason: ClassVar[str] = "Unexpected server error"

    def __init__(self, reason: str | None = None) -> None:
        # Close reasons are limited to 123 bytes by RFC 6455.
        self.reason = (reason or self.default_reason)[:120]
        super().__init__(self.reason)


class NormalClosure(CloseConnection):
    close_code = 1000
    default_reason = "Connection ended"


class GoingAway(CloseConnection):
    close_code = 1001
    default_reason = "Server shutting down: reconnect with your token"


class PolicyViolation(CloseConnection):
    close_code = 1008
    default_reason = "Policy violation"


class UnsupportedData(CloseConnection):
    close_code = 1003
    default_reason = "Binary frames are not supported"


class TryAgainLater(CloseConnection):
    close_code = 1013
    default_reason = "Try again later"


class Superseded(CloseConnection):
    # A private-use code (RFC 6455 7.4.2): no standard code means "someone else took over".
    close_code = 4000
    default_reason = "Replaced by a newer connection of this identity: do not reconnect"


class PolicyFileError(NowgateError):
    """A policy file that cannot be loaded; the message names the file and the key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


class ClientCallError(NowgateError):
    """A server->client call failed: the client answered with an error, or not in time."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)
