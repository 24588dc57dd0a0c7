"""Peer (a): a bare FastAPI WebSocket broadcast on uvicorn, with no security layer.

The ConnectionManager pattern of FastAPI's WebSocket documentation: on each syncPosition
from the publisher, `await send_text()` to every other connection in turn, then answer.
It speaks just enough of nowgate's JSON-RPC frames for the load generator to be the same
client: `now.hello` gets a welcome, `syncPosition` is relayed as an `updatePosition`
notification. No origin check, validation, rate limit, send-queue bound or identity.
Same uvicorn, websockets and settings as nowgate (app/server.py's uvicorn_config).

    python bench/peers/bare_fastapi.py --port 8001    (from /work/main/.venv)
"""

from __future__ import annotations

import argparse
import json
import uuid

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
clients: set[WebSocket] = set()


@app.websocket("/ws")
async def broadcast(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        hello = json.loads(await websocket.receive_text())
        welcome = {"client_id": "c-" + uuid.uuid4().hex, "functions": ["syncPosition"]}
        await websocket.send_text(
            json.dumps({"jsonrpc": "2.0", "id": hello.get("id"), "result": welcome})
        )
        clients.add(websocket)
        while True:
            message = json.loads(await websocket.receive_text())
            if message.get("method") == "syncPosition":
                frame = json.dumps(
                    {"jsonrpc": "2.0", "method": "updatePosition", "params": message["params"]}
                )
                for other in list(clients):
                    if other is not websocket:
                        try:
                            await other.send_text(frame)
                        except Exception:  # that one went away
                            clients.discard(other)
            if "id" in message:
                await websocket.send_text(
                    json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": True})
                )
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ws_max_size=65_536,
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        server_header=False,
        log_level="warning",
        access_log=False,
    )
