"""A Python client for nowgate: the shared `now` scope from Python, on the `websockets` library.

    from nowgate.client import connect

    async with connect("wss://example.org/ws", origin="https://example.org") as now:
        now.on("updatePosition", lambda position: print("moved to", position))
        await now.call("syncPosition", {"left": 10, "top": 20}, timeout=5)
        print(now.client_id, now.vars["everyone"])

What it does for you:

- **Identity.** `client_id` and the signed `token` come from the welcome; the server refreshes
  the token (`now.token`) when the client's groups change, and `token` always holds the latest.
  `connect(url, token=old.token)` resumes an earlier identity (`resumed` says whether it did).
- **Variables.** `vars` is `{"everyone": {...}, "groups": {name: {...}}, "client": {...}}`,
  kept current from `now.set` / `now.del`, and replaced by the server's snapshot at every
  welcome (so after a reconnect it is consistent again even if changes were missed).
- **Calls.** `await call(name, *args, timeout=...)` returns the result or raises `CallError`
  (the server's JSON-RPC error), `TimeoutError` (no answer within the timeout; the default
  is `call_timeout`, 30 s), `Disconnected` (the connection dropped after the call was sent:
  it may or may not have run, and it is never re-sent) or `ClientClosed`. A call made while
  reconnecting waits for the next welcome, within its timeout.
- **Client functions.** `on(name, fn)` registers a function the server may call or notify
  (plain or async). They run one at a time, in arrival order, in a dispatcher task apart
  from the reader, so a client function may itself `await now.call(...)`. A function that
  raises answers `-32603 Internal error` (no text leaks); an unknown name answers `-32601`.
- **Reconnect.** When the connection ends abnormally (1006, a network error) or the server
  asks to come back later (1001 going away, 1011, 1012, 1013, 1014), the client reconnects
  with exponential backoff and full jitter (`delay = random() * min(cap, base * 2**n)`) and
  resumes its identity with the token. A normal close (1000, e.g. the idle timeout), a policy
  close (1008, 1003, 1009) or a refused hello (auth refused, wrong protocol) ends it.
  `reconnect=False` keeps one connection only. The first connection is not retried: its
  failure is raised from `connect()`.
- **Recovery (forward compatible).** If a welcome advertises a message stream
  (`"stream": {"epoch": str, "offset": int}`), the client remembers the offset of the last
  message it was delivered (server messages may carry a top-level `"offset"`), sends it as
  `"since"` in the hello of a resume, drops messages at or below it (exactly once), and
  reports the welcome's `"recovered"` in `recovered`. A server without history (today's)
  sends none of this and the client behaves exactly as without it.
- **Bounded memory.** Nothing keeps a history: server messages for client functions wait in
  a bounded queue (`inbox_size`); when it is full the reader stops reading, so the socket
  applies back-pressure (the gateway then treats this client as a slow consumer).
- **Import cost.** This module imports `websockets` and the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = [
    "Backoff",
    "CallError",
    "ClientClosed",
    "Disconnected",
    "NowClient",
    "connect",
]

PROTOCOL_VERSION = 1
# Close codes after which coming back makes sense: dropped, going away, server trouble.
RECONNECT_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})
# Hello errors that retrying cannot change: auth refused, wrong protocol.
HELLO_REFUSALS = frozenset({-32003, -32600, -32601, -32602})
_UNSET: Any = object()

log = logging.getLogger("nowgate.client")

ClientFunction = Callable[..., Any]


def _empty_vars() -> dict[str, Any]:
    return {"everyone": {}, "groups": {}, "client": {}}


class CallError(Exception):
    """The gateway answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code}: {message}")


class Disconnected(ConnectionError):
    """The connection dropped after the call was sent: it may or may not have run."""


class ClientClosed(ConnectionError):
    """The client has stopped (closed, or the server ended it for good)."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits random() * min(cap, base * 2**n)."""

    base: float = 0.25
    cap: float = 10.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return rng() * min(self.cap, self.base * 2.0 ** min(attempt, 32))


@dataclass(frozen=True)
class StreamPosition:
    """Where this client is in the server's message stream (the recovery wire extension)."""

    epoch: str
    offset: int


class NowClient:
    """One logical client: an identity that outlives connections. Made by `connect()`."""

    def __init__(
        self,
        url: str,
        *,
        origin: str | None = None,
        token: str | None = None,
        auth: str | None = None,
        reconnect: bool = True,
        call_timeout: float = 30.0,
        backoff: Backoff = Backoff(),
        inbox_size: int = 1024,
        ws_options: Mapping[str, Any] | None = None,
    ) -> None:
        if call_timeout <= 0:
            raise ValueError("call_timeout must be positive")
        if inbox_size < 1:
            raise ValueError("inbox_size must be at least 1")
        self.url = url
        self.origin = origin
        self.auth = auth
        self.reconnect = reconnect
        self.call_timeout = call_timeout
        self.backoff = backoff
        self._ws_options = dict(ws_options or {})
        self.client_id = ""
        self.token = token or ""
        self.resumed = False
        # None: the server keeps no history; else whether the last resume replayed every
        # missed message (False: state was re-read from the welcome instead).
        self.recovered: bool | None = None
        self.functions: list[str] = []
        self.client_functions: list[str] = []
        self.vars: dict[str, Any] = _empty_vars()
        self.position: StreamPosition | None = None
        self.welcome: dict[str, Any] = {}  # the last welcome, as the server sent it
        self.close_code: int | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._functions: dict[str, ClientFunction] = {}
        self._welcome_hooks: list[Callable[[dict[str, Any]], Any]] = []
        self._connection: ClientConnection | None = None
        self._open = asyncio.Event()
        self._closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._stopped: BaseException | None = None
        self._inbox: asyncio.Queue[tuple[ClientConnection, dict[str, Any]]] = asyncio.Queue(
            inbox_size
        )
        self._tasks: list[asyncio.Task[None]] = []

    # ---- public API

    @property
    def connected(self) -> bool:
        """Welcomed on a live connection right now (False while reconnecting or stopped)."""
        return self._connection is not None and self._stopped is None

    def on(self, name: str, function: ClientFunction) -> None:
        """Register (or replace) the client function `name` the server may call."""
        self._functions[name] = function

    def on_welcome(self, hook: Callable[[dict[str, Any]], Any]) -> None:
        """Run `hook(welcome)` after every welcome that follows a reconnect."""
        self._welcome_hooks.append(hook)

    async def call(
        self,
        name: str,
        *args: Any,
        timeout: float | None = _UNSET,  # noqa: ASYNC109 - per call, as callers expect
        **kwargs: Any,
    ) -> Any:
        """Call the server function `name` by position or by name and return its result.

        `timeout` (seconds; default `call_timeout`; None waits forever) covers waiting for a
        connection and for the answer; on expiry TimeoutError is raised.
        """
        if args and kwargs:
            raise TypeError("pass arguments by position or by name, not both")
        limit = self.call_timeout if timeout is _UNSET else timeout
        params: Any = kwargs if kwargs else list(args)
        async with asyncio.timeout(limit):
            connection = await self._wait_open()
            request_id = next(self._ids)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting[request_id] = future
            try:
                frame = {"jsonrpc": "2.0", "id": request_id, "method": name, "params": params}
                try:
                    await connection.send(json.dumps(frame))
                except ConnectionClosed:
                    raise Disconnected(f"{name}: the connection dropped") from None
                return await future
            finally:
                del self._waiting[request_id]

    async def notify(self, name: str, *args: Any) -> None:
        """Send a notification (no answer, no error report); waits for a connection."""
        connection = await self._wait_open()
        with contextlib.suppress(ConnectionClosed):
            frame = {"jsonrpc": "2.0", "method": name, "params": list(args)}
            await connection.send(json.dumps(frame))

    async def wait_connected(self) -> None:
        """Wait until the client is connected (after a reconnect, for instance)."""
        await self._wait_open()

    async def wait_closed(self) -> int | None:
        """Wait until the current connection closes and return its close code.

        With reconnect on, the client then comes back by itself when the code allows it.
        """
        if self._stopped is not None:
            return self.close_code
        return await asyncio.shield(self._closed)

    async def close(self) -> None:
        """Stop for good: close the connection, stop reconnecting, fail waiting calls."""
        self._stop(ClientClosed("client closed"))
        connection = self._connection
        if connection is not None:
            await connection.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- connection lifecycle

    async def start(self) -> None:
        """Open the first connection (its failure is raised), then read in the background."""
        connection = await self._handshake()
        self._tasks = [
            asyncio.create_task(self._run(connection), name="nowgate-client-reader"),
            asyncio.create_task(self._dispatch(), name="nowgate-client-dispatcher"),
        ]

    async def _handshake(self) -> ClientConnection:
        connection = await ws_connect(self.url, origin=self.origin, **self._ws_options)  # type: ignore[arg-type]
        try:
            welcome = await asyncio.wait_for(self._hello(connection), self.call_timeout)
        except BaseException:
            await connection.close()
            raise
        self._welcomed(connection, welcome)
        return connection

    async def _hello(self, connection: ClientConnection) -> dict[str, Any]:
        params: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "token": self.token or None}
        if self.auth is not None:
            params["auth"] = self.auth
        if self.position is not None:
            params["since"] = {"epoch": self.position.epoch, "offset": self.position.offset}
        await connection.send(
            json.dumps({"jsonrpc": "2.0", "id": 0, "method": "now.hello", "params": params})
        )
        reply = json.loads(await connection.recv())
        if not isinstance(reply, dict):
            raise CallError(-32603, "invalid welcome")
        error = reply.get("error")
        if isinstance(error, dict):
            raise CallError(error.get("code", -32603), error.get("message", ""), error.get("data"))
        welcome = reply.get("result")
        if not isinstance(welcome, dict) or not isinstance(welcome.get("client_id"), str):
            raise CallError(-32603, "invalid welcome")
        return welcome

    def _welcomed(self, connection: ClientConnection, welcome: dict[str, Any]) -> None:
        self.welcome = welcome
        self.client_id = welcome["client_id"]
        self.token = welcome.get("token") or self.token
        self.resumed = welcome.get("resumed") is True
        self.functions = list(welcome.get("functions", []))
        self.client_functions = list(welcome.get("client_functions", []))
        state = welcome.get("vars")
        self.vars = state if isinstance(state, dict) else _empty_vars()
        self._track_stream(welcome)
        self._connection = connection
        self._closed = asyncio.get_running_loop().create_future()
        self._open.set()

    def _track_stream(self, welcome: dict[str, Any]) -> None:
        stream = welcome.get("stream")
        if not isinstance(stream, dict):
            self.position, self.recovered = None, None
            return
        recovered = welcome.get("recovered") is True
        self.recovered = recovered
        same_epoch = self.position is not None and self.position.epoch == stream.get("epoch")
        if recovered and same_epoch:
            return  # the replay that follows continues from where we were
        # Fresh start or recovery failed: the welcome's vars are the state; go on from the head.
        self.position = StreamPosition(str(stream.get("epoch")), int(stream.get("offset", 0)))

    async def _run(self, connection: ClientConnection) -> None:
        while True:
            code = await self._read(connection)
            self._disconnected(code)
            if self._stopped is not None:
                return
            if not self.reconnect or code not in RECONNECT_CODES:
                self._stop(ClientClosed(f"connection closed ({code})"))
                return
            reconnected = await self._reconnect()
            if reconnected is None:
                return
            connection = reconnected
            for hook in self._welcome_hooks:
                try:
                    hook(self.welcome)
                except Exception:
                    log.exception("welcome hook failed")

    async def _reconnect(self) -> ClientConnection | None:
        for attempt in itertools.count():
            await asyncio.sleep(self.backoff.delay(attempt))
            try:
                return await self._handshake()
            except CallError as error:
                if error.code in HELLO_REFUSALS:
                    self._stop(error)
                    return None
            except (OSError, TimeoutError, ValueError, ConnectionClosed, InvalidHandshake):
                pass  # still unreachable: back off further
        return None  # unreachable: count() never ends

    async def _read(self, connection: ClientConnection) -> int:
        try:
            async for frame in connection:
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if isinstance(message.get("method"), str):
                    await self._on_server_message(connection, message)
                else:
                    self._on_reply(message)
        except ConnectionClosed:
            pass
        code = connection.close_code
        return 1006 if code is None else code

    def _disconnected(self, code: int) -> None:
        self._open.clear()
        self._connection = None
        self.close_code = code
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(Disconnected("the connection dropped before the answer"))
        if not self._closed.done():
            self._closed.set_result(code)

    def _stop(self, reason: BaseException) -> None:
        if self._stopped is not None:
            return
        self._stopped = reason
        self._open.set()  # wake waiting callers: they see _stopped and raise
        if not self._closed.done():
            self._closed.set_result(self.close_code or 1000)

    async def _wait_open(self) -> ClientConnection:
        await self._open.wait()
        if self._stopped is not None or self._connection is None:
            raise ClientClosed("the client is closed") from self._stopped
        return self._connection

    # ---- inbound

    def _on_reply(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        if not isinstance(request_id, int):
            return  # id null (the server could not tell which request): the timeout covers it
        future = self._waiting.get(request_id)
        if future is None or future.done():
            return
        error = message.get("error")
        if isinstance(error, dict):
            future.set_exception(
                CallError(error.get("code", -32603), error.get("message", ""), error.get("data"))
            )
        else:
            future.set_result(message.get("result"))

    async def _on_server_message(
        self, connection: ClientConnection, message: dict[str, Any]
    ) -> None:
        if not self._fresh(message):
            return
        method: str = message["method"]
        params: Any = message.get("params")
        if method in ("now.set", "now.del") and isinstance(params, dict):
            self._apply_variable(method, params)
        elif method == "now.token" and isinstance(params, dict):
            self.token = params.get("token") or self.token
            if isinstance(params.get("functions"), list):
                self.functions = params["functions"]
        else:
            # Blocks when the inbox is full: back-pressure instead of unbounded memory.
            await self._inbox.put((connection, message))

    def _fresh(self, message: dict[str, Any]) -> bool:
        """Deliver each streamed message once: drop what a replay already delivered."""
        offset = message.get("offset")
        if self.position is None or not isinstance(offset, int):
            return True
        if offset <= self.position.offset:
            return False
        self.position = StreamPosition(self.position.epoch, offset)
        return True

    def _apply_variable(self, method: str, params: dict[str, Any]) -> None:
        scope, path = params.get("scope"), params.get("path")
        if not isinstance(scope, str) or not isinstance(path, str):
            return
        if scope.startswith("group:"):
            target = self.vars.setdefault("groups", {}).setdefault(scope[len("group:") :], {})
        elif scope in ("everyone", "client"):
            target = self.vars.setdefault(scope, {})
        else:
            return
        if method == "now.set":
            target[path] = params.get("value")
        else:
            target.pop(path, None)

    async def _dispatch(self) -> None:
        while True:
            connection, message = await self._inbox.get()
            reply = await self._run_function(message)
            if reply is not None and "id" in message:
                answer = {"jsonrpc": "2.0", "id": message["id"], **reply}
                with contextlib.suppress(ConnectionClosed):
                    await connection.send(json.dumps(answer))

    async def _run_function(self, message: dict[str, Any]) -> dict[str, Any] | None:
        function = self._functions.get(message["method"])
        if function is None:
            return {"error": {"code": -32601, "message": "Method not found"}}
        params = message.get("params")
        args = params if isinstance(params, list) else [] if params is None else [params]
        try:
            result = function(*args)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            log.exception("client function %s failed", message["method"])
            return {"error": {"code": -32603, "message": "Internal error"}}
        return {"result": result}


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    origin: str | None = None,
    token: str | None = None,
    auth: str | None = None,
    reconnect: bool = True,
    call_timeout: float = 30.0,
    backoff: Backoff = Backoff(),
    inbox_size: int = 1024,
    **ws_options: Any,
) -> AsyncIterator[NowClient]:
    """Connect, say hello, and yield the client; closes it on exit.

    `ws_options` go to `websockets.asyncio.client.connect` (ssl, open_timeout, ...).
    """
    client = NowClient(
        url,
        origin=origin,
        token=token,
        auth=auth,
        reconnect=reconnect,
        call_timeout=call_timeout,
        backoff=backoff,
        inbox_size=inbox_size,
        ws_options=ws_options,
    )
    await client.start()
    try:
        yield client
    finally:
        await client.close()
