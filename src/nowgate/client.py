"""A Python client for nowgate, on the `websockets` library: the `now` scope from Python.

    async with connect("ws://127.0.0.1:8000/ws") as now:
        now.on("updatePosition", lambda position: print(position))
        await now.call("syncPosition", {"left": 10, "top": 20})
        print(now.client_id, now.vars["everyone"])

Resuming: pass `token=previous.token` to get the same `client_id` back. The token is
refreshed by the server (`now.token`) when the client's groups change; `now.token` always
holds the latest one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

PROTOCOL_VERSION = 1


class CallError(Exception):
    """The gateway answered a call with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code}: {message}")


class NowClient:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._functions: dict[str, Callable[..., Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.client_id = ""
        self.token = ""
        self.resumed = False
        self.functions: list[str] = []
        self.client_functions: list[str] = []
        self.vars: dict[str, Any] = {"everyone": {}, "groups": {}, "client": {}}
        self.welcome: dict[str, Any] = {}
        # Every server->client call or notification received, in order: (method, params).
        self.received: list[tuple[str, Any]] = []

    async def hello(self, token: str | None = None, auth: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"protocol": PROTOCOL_VERSION, "token": token}
        if auth is not None:
            params["auth"] = auth
        await self._connection.send(
            json.dumps({"jsonrpc": "2.0", "id": 0, "method": "now.hello", "params": params})
        )
        reply = json.loads(await self._connection.recv())
        if "error" in reply:
            error = reply["error"]
            raise CallError(error["code"], error["message"], error.get("data"))
        welcome: dict[str, Any] = reply["result"]
        self.welcome = welcome
        self.client_id = welcome["client_id"]
        self.token = welcome["token"]
        self.resumed = welcome["resumed"]
        self.functions = welcome["functions"]
        self.client_functions = welcome["client_functions"]
        self.vars = welcome["vars"]
        self._reader = asyncio.create_task(self._read())
        return welcome

    def on(self, name: str, function: Callable[..., Any]) -> None:
        """Register a client function the server may call (sync or async)."""
        self._functions[name] = function

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a server function and await its result; raises CallError on an error reply."""
        if args and kwargs:
            raise TypeError("pass arguments by position or by name, not both")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            await self.send_raw(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "method": method,
                    "params": kwargs if kwargs else list(args),
                }
            )
            return await future
        finally:
            self._waiting.pop(request_id, None)

    async def notify(self, method: str, *args: Any) -> None:
        await self.send_raw({"jsonrpc": "2.0", "method": method, "params": list(args)})

    async def send_raw(self, message: Any) -> None:
        await self._connection.send(message if isinstance(message, str) else json.dumps(message))

    @property
    def close_code(self) -> int | None:
        return self._connection.close_code

    async def wait_closed(self) -> int | None:
        await self._connection.wait_closed()
        return self._connection.close_code

    async def close(self) -> None:
        await self._connection.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        try:
            async for frame in self._connection:
                message = json.loads(frame)
                if "method" in message:
                    await self._on_server_message(message)
                else:
                    self._on_reply(message)
        except ConnectionClosed:
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    def _on_reply(self, message: dict[str, Any]) -> None:
        future = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in message:
            error = message["error"]
            future.set_exception(CallError(error["code"], error["message"], error.get("data")))
        else:
            future.set_result(message.get("result"))

    async def _on_server_message(self, message: dict[str, Any]) -> None:
        method: str = message["method"]
        params: Any = message.get("params")
        self.received.append((method, params))
        if method == "now.set":
            self._scope(params["scope"])[params["path"]] = params["value"]
            return
        if method == "now.del":
            self._scope(params["scope"]).pop(params["path"], None)
            return
        if method == "now.token":
            self.token = params["token"]
            self.functions = params.get("functions", self.functions)
            return
        call_id = message.get("id")
        function = self._functions.get(method)
        if function is None:
            if call_id is not None:
                await self.send_raw(
                    {
                        "jsonrpc": "2.0",
                        "id": call_id,
                        "error": {"code": -32601, "message": "Method not found"},
                    }
                )
            return
        args = params if isinstance(params, list) else [params]
        try:
            result = function(*args)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            if call_id is not None:
                await self.send_raw(
                    {
                        "jsonrpc": "2.0",
                        "id": call_id,
                        "error": {"code": -32603, "message": "Internal error"},
                    }
                )
            return
        if call_id is not None:
            await self.send_raw({"jsonrpc": "2.0", "id": call_id, "result": result})

    def _scope(self, scope: str) -> dict[str, Any]:
        if scope.startswith("group:"):
            groups: dict[str, dict[str, Any]] = self.vars.setdefault("groups", {})
            return groups.setdefault(scope[len("group:") :], {})
        result: dict[str, Any] = self.vars.setdefault(scope, {})
        return result


@contextlib.asynccontextmanager
async def connect(
    url: str,
    *,
    token: str | None = None,
    auth: str | None = None,
    origin: str | None = None,
    **options: Any,
) -> AsyncIterator[NowClient]:
    """Open a connection and say hello; `options` go to websockets' connect()."""
    async with ws_connect(url, origin=origin, **options) as connection:  # type: ignore[arg-type]
        client = NowClient(connection)
        await client.hello(token=token, auth=auth)
        try:
            yield client
        finally:
            await client.close()
