"""A deliberately naive realtime server, for the probe's tests: every control nowgate has, missing.

It speaks enough of the protocol for the probe (hello, welcome, JSON-RPC calls, now.set) and
gets everything wrong the way real servers do: any Origin is accepted; method names are looked
up with getattr on a namespace (so `__class__` and friends resolve); arguments are validated
laxly (strings coerced to numbers, unknown fields ignored) by Python's permissive JSON parser
(NaN, duplicate keys, unbounded nesting); exceptions are echoed with their traceback; tokens
are base64 client ids with a signature nobody checks; clients may write any variable,
identity included; a hello's own client_id and roles are believed; frames have no size limit
and compression is on; there is no rate limit; files are served by joining the request path
onto a directory; no security headers are sent.

Run: `python -m tests.support.naive_server PORT ROOT [--distress]` (`NaiveServer` does it for
tests); with --distress every HTTP answer is a 503. `GET /__stats` tells how many WebSockets
were ever open at once (the probe promises one).
"""

from __future__ import annotations

import base64
import json
import secrets
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
import uvicorn
from pydantic import BaseModel, ValidationError, create_model
from starlette.types import Receive, Scope, Send

from tests.support.gateway import REPO, free_port, terminate


class Position(BaseModel):  # lax: coerces, ignores unknown fields
    left: float
    top: float


class Handlers:
    """The namespace calls are looked up in, with getattr (the flaw under test)."""

    @staticmethod
    def add(a: int, b: int) -> int:
        return a + b

    @staticmethod
    def move(position: Position) -> bool:
        return True

    @staticmethod
    def ping() -> str:
        return "pong"


HANDLERS = Handlers()
SIGNATURES: dict[str, type[BaseModel]] = {
    "add": create_model("add_args", a=(int, ...), b=(int, ...)),
    "move": create_model("move_args", position=(Position, ...)),
    "ping": create_model("ping_args"),
}
VARIABLES: dict[str, Any] = {}
SOCKETS = {"open": 0, "most": 0}


def token_for(client_id: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"cid": client_id}).encode()).decode()
    return f"{payload}.{secrets.token_hex(8)}"  # a "signature" no one verifies


def client_of(token: object) -> str | None:
    if not isinstance(token, str):
        return None
    try:
        payload = token.split(".")[0]
        cid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["cid"]
    except Exception:
        return None
    return cid if isinstance(cid, str) else None


def call(method: str, params: Any) -> Any:
    function = getattr(HANDLERS, method)
    model = SIGNATURES.get(method)
    if model is not None and isinstance(params, dict):
        arguments = model.model_validate(params)
        return function(**{name: getattr(arguments, name) for name in model.model_fields})
    return function(*params) if isinstance(params, list) else function(**params)


def answer(message: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    request_id = message.get("id")
    method, params = message.get("method"), message.get("params", [])
    try:
        if method == "now.hello":
            client_id = (params.get("client_id") or client_of(params.get("token"))
                         or "c-" + secrets.token_hex(8))
            state["client_id"] = client_id
            return {"jsonrpc": "2.0", "id": request_id, "result": {
                "client_id": client_id, "token": token_for(client_id),
                "resumed": params.get("token") is not None,
                "functions": sorted(SIGNATURES), "client_functions": ["notify"],
                "vars": {"everyone": VARIABLES, "groups": {}, "client": {}},
                "roles": params.get("roles", []),
            }}
        if method == "now.set":
            VARIABLES[params["path"]] = params["value"]
            return {"jsonrpc": "2.0", "id": request_id, "result": True}
        return {"jsonrpc": "2.0", "id": request_id, "result": call(str(method), params)}
    except ValidationError as error:
        return {"jsonrpc": "2.0", "id": request_id, "error": {
            "code": -32602, "message": "Invalid params",
            "data": json.loads(error.json(include_url=False))}}
    except Exception as error:
        return {"jsonrpc": "2.0", "id": request_id, "error": {
            "code": -32603, "message": f"{type(error).__name__}: {error}",
            "data": traceback.format_exc()}}


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect: any Origin will do
    await send({"type": "websocket.accept"})
    SOCKETS["open"] += 1
    SOCKETS["most"] = max(SOCKETS["most"], SOCKETS["open"])
    try:
        await _serve_socket(receive, send)
    finally:
        SOCKETS["open"] -= 1


async def _serve_socket(receive: Receive, send: Send) -> None:
    state: dict[str, Any] = {}
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        try:
            message = json.loads(event.get("text") or "null")
        except ValueError as error:
            reply: Any = {"jsonrpc": "2.0", "id": None,
                          "error": {"code": -32700, "message": f"ValueError: {error}"}}
        else:
            reply = answer(message, state) if isinstance(message, dict) else None
        if reply is not None:
            await send({"type": "websocket.send", "text": json.dumps(reply, default=str)})


def make_app(root: Path, distress: bool) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            await websocket(scope, receive, send)
            return
        path = unquote(scope["raw_path"].decode("latin-1"))
        if path == "/__stats" or distress:
            body = json.dumps(SOCKETS).encode()
            await send({"type": "http.response.start", "status": 503 if distress else 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        try:
            file = anyio.Path(str(root) + path) / ("index.html" if path.endswith("/") else "")
            body = await file.read_bytes()
            status = 200
        except OSError:
            body, status = f"no such file: {root}{path}".encode(), 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": body})

    return app


class NaiveServer:
    """This module in a subprocess on a loopback port."""

    def __init__(self, root: Path, *options: str) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.naive_server", str(self.port), str(root),
             *options],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/__stats", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("the naive server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def most_sockets_at_once(self) -> int:
        most: int = httpx.get(self.url + "/__stats", timeout=5.0).json()["most"]
        return most

    def stop(self) -> None:
        terminate(self.process, signal.SIGTERM, 10)


if __name__ == "__main__":
    port, root = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(make_app(root, "--distress" in sys.argv), host="127.0.0.1", port=port,
                log_level="warning", ws_max_size=64 * 1024 * 1024, lifespan="off")
